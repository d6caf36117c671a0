package media

// Video pipeline, second half: the HLS ladder and the thumbnail.
//
// Transcode runs ONE ffmpeg process for the whole ladder: the source is
// demuxed and decoded once, split, scaled once per rendition and encoded by
// one libx264 (+ one AAC) encoder per rendition into one HLS muxer with
// -var_stream_map. Keyframes are forced at every multiple of the segment
// length on the output timeline (-force_key_frames expr:gte(t,n_forced*N),
// no scene-cut keyframes), so every rendition is cut at the same instants:
// segments are aligned and each starts with an IDR frame.
//
// ffmpeg's own master playlist is not used: after ffmpeg, every rendition's
// segments are measured (file size and EXTINF duration) and master.m3u8 is
// written from those numbers, with CODECS taken from the SPS in the first
// segment and FRAME-RATE from its timestamps.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// TranscodeOptions configures Transcode.
type TranscodeOptions struct {
	FFmpeg string // the ffmpeg binary; "ffmpeg" if empty
	// Input is a local file; Format the demuxer SniffVideo chose for it.
	Input, Format string
	// OutDir receives OutDir/master.m3u8 and OutDir/<name>/index.m3u8 and
	// OutDir/<name>/segment_000.ts, ... It must be absent or empty; it is
	// created if absent.
	OutDir     string
	Renditions []Rendition // usually from Ladder
	HasAudio   bool        // encode the first audio stream (AAC) into every rendition
	Duration   float64     // seconds, for progress (ProbeResult.Duration)
	// SegmentSeconds is the segment and GOP length; default 4.
	SegmentSeconds int
	// Preset is the x264 preset; default "veryfast".
	Preset string
	// Threads limits the decoder, the filter graph and each encoder to this
	// many threads; 0 leaves FFmpeg's defaults (one per core and more).
	Threads int
	// OnProgress gets 0..99 as encoding advances: increasing values only,
	// from another goroutine but never concurrently, and never after
	// Transcode has returned. A slow callback does not slow ffmpeg down:
	// intermediate values are skipped instead.
	OnProgress func(percent int)
	// Timeout bounds ffmpeg's run when ctx has no deadline of its own;
	// default 10 minutes plus 20 times Duration.
	Timeout time.Duration
}

// TranscodeResult describes a finished ladder.
type TranscodeResult struct {
	// Renditions as in the master playlist (lowest BANDWIDTH first), with
	// Bandwidth, AverageBandwidth and Codecs measured from the output.
	Renditions []Rendition
	Segments   map[string]int // rendition name -> number of segments
	FrameRate  float64        // of the output, measured; 0 if unknown
	CPUTime    time.Duration  // user+system time ffmpeg used
}

// x264 presets accepted in TranscodeOptions.Preset.
var videoPresets = map[string]bool{
	"ultrafast": true, "superfast": true, "veryfast": true, "faster": true, "fast": true,
	"medium": true, "slow": true, "slower": true, "veryslow": true,
}

var (
	videoNameRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$`)
	videoSegmentRE = regexp.MustCompile(`^segment_[0-9]{3,}\.ts$`)
)

func (o *TranscodeOptions) check() error {
	if _, ok := videoDemuxers[o.Format]; !ok {
		return fmt.Errorf("%w: format %q is not allowed", ErrNotVideo, o.Format)
	}
	if o.FFmpeg == "" {
		o.FFmpeg = "ffmpeg"
	}
	if o.SegmentSeconds <= 0 {
		o.SegmentSeconds = 4
	}
	if o.Preset == "" {
		o.Preset = "veryfast"
	}
	if !videoPresets[o.Preset] {
		return fmt.Errorf("media: transcode: unknown x264 preset %q", o.Preset)
	}
	if o.Threads < 0 {
		o.Threads = 0
	}
	if o.Input == "" || o.OutDir == "" {
		return errors.New("media: transcode: input and output directory are required")
	}
	if len(o.Renditions) == 0 {
		return errors.New("media: transcode: no renditions")
	}
	names := map[string]bool{}
	rs := make([]Rendition, len(o.Renditions))
	for i, r := range o.Renditions {
		if !videoNameRE.MatchString(r.Name) || names[strings.ToLower(r.Name)] {
			return fmt.Errorf("media: transcode: bad or repeated rendition name %q", r.Name)
		}
		names[strings.ToLower(r.Name)] = true
		if r.Width < 2 || r.Height < 2 || r.Width%2 != 0 || r.Height%2 != 0 || r.Width > VideoMaxSide || r.Height > VideoMaxSide {
			return fmt.Errorf("media: transcode: rendition %s: size %dx%d must be even and at most %d", r.Name, r.Width, r.Height, VideoMaxSide)
		}
		if r.VideoBitrate <= 0 {
			r.VideoBitrate = videoBitrate(min(r.Width, r.Height))
		}
		if r.MaxRate < r.VideoBitrate {
			r.MaxRate = r.VideoBitrate * 107 / 100
		}
		if r.BufSize <= 0 {
			r.BufSize = r.MaxRate * 3 / 2
		}
		if r.AudioBitrate <= 0 {
			r.AudioBitrate = 128000
		}
		r.Bandwidth, r.AverageBandwidth, r.Codecs = 0, 0, ""
		rs[i] = r
	}
	o.Renditions = rs
	if o.Timeout <= 0 {
		o.Timeout = 10*time.Minute + time.Duration(20*max(o.Duration, 0)*float64(time.Second))
	}
	return nil
}

// Transcode encodes the HLS ladder o.Renditions from o.Input in one ffmpeg
// process (see the top of this file) and writes OutDir/master.m3u8 itself
// from the measured segments: BANDWIDTH is the highest segment bitrate
// (segment bits over its EXTINF duration, rounded up), AVERAGE-BANDWIDTH
// the rendition's total bits over its total duration, RESOLUTION the
// encoded size, CODECS from the H.264 SPS actually written (High profile,
// level chosen by x264) plus mp4a.40.2 (AAC-LC) with audio, FRAME-RATE
// measured; URIs are relative ("720p/index.m3u8"); variants are listed
// lowest BANDWIDTH first, so players that start with the first variant
// start fast and switch up.
//
// When ctx ends (or o.Timeout passes) ffmpeg's process group is killed at
// once. On any failure Transcode removes what it wrote into OutDir (and
// OutDir itself if it created it), so the caller has nothing to clean up;
// the error is ctx's error if ctx ended, wraps ErrNotVideo or ErrBadVideo
// when the input is at fault, and never contains host paths.
func Transcode(ctx context.Context, o TranscodeOptions) (res TranscodeResult, err error) {
	if err := o.check(); err != nil {
		return TranscodeResult{}, err
	}
	in, err := filepath.Abs(o.Input)
	if err != nil {
		return TranscodeResult{}, fmt.Errorf("media: transcode: %w", err)
	}
	out, err := filepath.Abs(o.OutDir)
	if err != nil {
		return TranscodeResult{}, fmt.Errorf("media: transcode: %w", err)
	}
	if strings.ContainsAny(out, "%\n") {
		return TranscodeResult{}, errors.New("media: transcode: the output directory's path must not contain % or newlines")
	}
	if st, err := os.Stat(in); err != nil {
		return TranscodeResult{}, fmt.Errorf("media: transcode: source file: %w", errors.Unwrap(err))
	} else if !st.Mode().IsRegular() || st.Size() == 0 {
		return TranscodeResult{}, fmt.Errorf("%w: empty file", ErrNotVideo)
	}
	created, err := videoPrepareDir(out)
	if err != nil {
		return TranscodeResult{}, err
	}
	defer func() {
		if err != nil {
			videoCleanDir(out, created)
		}
	}()
	for _, r := range o.Renditions {
		if err := os.Mkdir(filepath.Join(out, r.Name), 0o755); err != nil {
			return TranscodeResult{}, fmt.Errorf("media: transcode: output directory: %w", errors.Unwrap(err))
		}
	}

	runCtx, cancel := videoDefaultTimeout(ctx, o.Timeout)
	defer cancel()
	prog := newVideoProgress(o.Duration, o.OnProgress)
	r := videoRun{
		bin:    o.FFmpeg,
		args:   videoTranscodeArgs(o, in, out),
		stdout: prog,
		paths:  map[string]string{in: "<input>", out: "<out>", filepath.Dir(in): "<dir>"},
	}
	runErr := r.run(runCtx)
	prog.close()
	res.CPUTime = r.cpu()
	if runErr != nil {
		if runCtx.Err() != nil || r.startErr {
			return res, runErr
		}
		return res, videoClassify(runErr, &r)
	}
	res, err = videoFinish(o, out, res)
	if errors.Is(err, errVideoNoOutput) {
		// ffmpeg can exit with status 0 without writing anything, both when
		// it could not open its output files and when no frame of the
		// input could be decoded.
		if cerr := videoClassify(err, &r); errors.Is(cerr, ErrBadVideo) {
			return res, fmt.Errorf("%w: no frame could be decoded", ErrBadVideo)
		}
	}
	return res, err
}

// errVideoNoOutput: ffmpeg wrote no complete playlist for a rendition.
var errVideoNoOutput = errors.New("no complete output")

// videoTranscodeArgs is the ffmpeg command line of a ladder.
func videoTranscodeArgs(o TranscodeOptions, in, out string) []string {
	fc := videoFilterGraph(o.Renditions)
	a := []string{"-nostdin", "-hide_banner", "-loglevel", "error", "-nostats",
		"-progress", "pipe:1", "-stats_period", "0.5"}
	if o.Threads > 0 {
		a = append(a, "-filter_complex_threads", strconv.Itoa(o.Threads), "-threads", strconv.Itoa(o.Threads))
	}
	a = append(a, "-protocol_whitelist", "file,pipe", "-f", o.Format, "-i", "file:"+in,
		"-filter_complex", fc)
	var vsm []string
	for i := range o.Renditions {
		a = append(a, "-map", fmt.Sprintf("[v%d]", i))
		if o.HasAudio {
			a = append(a, "-map", "0:a:0")
			vsm = append(vsm, fmt.Sprintf("v:%d,a:%d,name:%s", i, i, o.Renditions[i].Name))
		} else {
			vsm = append(vsm, fmt.Sprintf("v:%d,name:%s", i, o.Renditions[i].Name))
		}
	}
	seg := o.SegmentSeconds
	a = append(a, "-map_metadata", "-1", "-map_chapters", "-1",
		// Timestamps as they come (phones record variable frame rates):
		// the HLS muxer would otherwise make ffmpeg duplicate and drop
		// frames to a constant rate guessed from the source.
		"-fps_mode:v", "vfr",
		"-c:v", "libx264", "-preset", o.Preset, "-profile:v", "high", "-pix_fmt", "yuv420p",
		"-force_key_frames:v", fmt.Sprintf("expr:gte(t,n_forced*%d)", seg),
		"-sc_threshold:v", "0",
		// Forced keyframes restart x264's GOP; this only bounds it should
		// the frame rate be above 60.
		"-g:v", strconv.Itoa(seg*120))
	if o.Threads > 0 {
		a = append(a, "-threads", strconv.Itoa(o.Threads))
	}
	for i, r := range o.Renditions {
		a = append(a,
			fmt.Sprintf("-b:v:%d", i), strconv.FormatInt(r.VideoBitrate, 10),
			fmt.Sprintf("-maxrate:v:%d", i), strconv.FormatInt(r.MaxRate, 10),
			fmt.Sprintf("-bufsize:v:%d", i), strconv.FormatInt(r.BufSize, 10))
	}
	if o.HasAudio {
		a = append(a, "-c:a", "aac", "-ac", "2")
		for i, r := range o.Renditions {
			a = append(a, fmt.Sprintf("-b:a:%d", i), strconv.FormatInt(r.AudioBitrate, 10))
		}
	}
	a = append(a, "-max_muxing_queue_size", "4096",
		"-f", "hls", "-hls_time", strconv.Itoa(seg), "-hls_playlist_type", "vod",
		"-hls_flags", "independent_segments", "-hls_segment_type", "mpegts",
		"-hls_segment_filename", "file:"+filepath.Join(out, "%v", "segment_%03d.ts"),
		"-var_stream_map", strings.Join(vsm, " "),
		"-protocol_whitelist", "file",
		"-y", "file:"+filepath.Join(out, "%v", "index.m3u8"))
	return a
}

// videoFilterGraph scales the decoded video once per rendition, in a
// cascade: each rendition is scaled from the smallest larger rendition that
// contains it (1080p -> 720p -> 480p -> 360p), or from the source. That is
// about a third cheaper than scaling every rendition from the source, and
// the scaling runs on ffmpeg's single main thread, which also feeds every
// encoder. Sizes are explicit (computed from the display size like
// scale=-2 would) rather than -2, so the RESOLUTION in the playlist is
// exactly what was encoded and non-square source pixels come out square.
// FFmpeg has already rotated the frames (autorotate) before the graph.
// Output i is labelled [v<i>].
func videoFilterGraph(rs []Rendition) string {
	order := make([]int, len(rs))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		return rs[order[a]].Width*rs[order[a]].Height > rs[order[b]].Width*rs[order[b]].Height
	})
	parent := make([]int, len(rs)) // -1: the source
	children := make([][]int, len(rs)+1)
	for k, i := range order {
		parent[i] = -1
		for _, j := range order[:k] {
			if rs[j].Width >= rs[i].Width && rs[j].Height >= rs[i].Height &&
				(parent[i] < 0 || rs[j].Width*rs[j].Height < rs[parent[i]].Width*rs[parent[i]].Height) {
				parent[i] = j
			}
		}
		children[parent[i]+1] = append(children[parent[i]+1], i)
	}
	// in[i] is the label rendition i is scaled from.
	in := make([]string, len(rs))
	var parts []string
	if src := children[0]; len(src) == 1 {
		in[src[0]] = "[0:V:0]"
	} else {
		var b strings.Builder
		fmt.Fprintf(&b, "[0:V:0]split=%d", len(src))
		for _, c := range src {
			in[c] = fmt.Sprintf("[f%d]", c)
			b.WriteString(in[c])
		}
		parts = append(parts, b.String())
	}
	for _, i := range order {
		r := rs[i]
		var b strings.Builder
		fmt.Fprintf(&b, "%sscale=w=%d:h=%d:flags=bicubic,setsar=1,format=yuv420p", in[i], r.Width, r.Height)
		if kids := children[i+1]; len(kids) > 0 {
			fmt.Fprintf(&b, ",split=%d[v%d]", len(kids)+1, i)
			for _, c := range kids {
				in[c] = fmt.Sprintf("[f%d]", c)
				b.WriteString(in[c])
			}
		} else {
			fmt.Fprintf(&b, "[v%d]", i)
		}
		parts = append(parts, b.String())
	}
	return strings.Join(parts, ";")
}

// videoClassify turns an ffmpeg failure into ErrBadVideo, unless it looks
// like the host's fault (disk, memory, permissions, a signal), which may go
// away on a retry.
func videoClassify(err error, r *videoRun) error {
	tail := strings.ToLower(r.stderr.String())
	for _, s := range []string{"no space left", "cannot allocate memory", "permission denied", "read-only file system", "too many open files", "input/output error", "failed to open file"} {
		if strings.Contains(tail, s) {
			return err
		}
	}
	if r.state != nil && !r.state.Exited() {
		return err // killed by a signal (OOM killer, ...)
	}
	return fmt.Errorf("%w: %s", ErrBadVideo, r.reason("ffmpeg failed"))
}

// videoPrepareDir makes sure dir exists and is empty; created reports
// whether it had to be made.
func videoPrepareDir(dir string) (created bool, err error) {
	ents, err := os.ReadDir(dir)
	switch {
	case err == nil:
		if len(ents) > 0 {
			return false, errors.New("media: transcode: the output directory is not empty")
		}
		return false, nil
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return false, fmt.Errorf("media: transcode: output directory: %w", errors.Unwrap(err))
		}
		return true, nil
	default:
		return false, fmt.Errorf("media: transcode: output directory: %w", errors.Unwrap(err))
	}
}

// videoCleanDir removes everything in dir (which was empty before), and dir
// itself if it was created for the transcode.
func videoCleanDir(dir string, created bool) {
	if created {
		_ = os.RemoveAll(dir)
		return
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		_ = os.RemoveAll(filepath.Join(dir, e.Name()))
	}
}

// videoFinish measures the output and writes the master playlist.
func videoFinish(o TranscodeOptions, out string, res TranscodeResult) (TranscodeResult, error) {
	res.Segments = map[string]int{}
	version := 3
	for _, r := range o.Renditions {
		dir := filepath.Join(out, r.Name)
		v, segs, err := videoReadMediaPlaylist(dir)
		if err != nil {
			return res, fmt.Errorf("media: transcode: rendition %s: %w", r.Name, err)
		}
		version = max(version, v)
		var bits, peak int64
		var total float64
		for _, s := range segs {
			b := s.size * 8
			bits += b
			total += s.dur
			if s.dur > 0 {
				peak = max(peak, int64(math.Ceil(float64(b)/s.dur)))
			}
		}
		if total <= 0 {
			return res, fmt.Errorf("%w: rendition %s is empty", ErrBadVideo, r.Name)
		}
		info, err := videoScanSegment(filepath.Join(dir, segs[0].uri))
		if err != nil {
			return res, fmt.Errorf("media: transcode: rendition %s: %w", r.Name, err)
		}
		r.Bandwidth = peak
		r.AverageBandwidth = int64(math.Ceil(float64(bits) / total))
		r.Codecs = fmt.Sprintf("avc1.%02x%02x%02x", info.sps[0], info.sps[1], info.sps[2])
		if o.HasAudio {
			r.Codecs += ",mp4a.40.2"
		}
		if res.FrameRate == 0 {
			res.FrameRate = info.frameRate()
		}
		res.Segments[r.Name] = len(segs)
		res.Renditions = append(res.Renditions, r)
	}
	sort.SliceStable(res.Renditions, func(i, j int) bool {
		return res.Renditions[i].Bandwidth < res.Renditions[j].Bandwidth
	})

	var b strings.Builder
	fmt.Fprintf(&b, "#EXTM3U\n#EXT-X-VERSION:%d\n#EXT-X-INDEPENDENT-SEGMENTS\n", version)
	for _, r := range res.Renditions {
		fmt.Fprintf(&b, "#EXT-X-STREAM-INF:BANDWIDTH=%d,AVERAGE-BANDWIDTH=%d,CODECS=\"%s\",RESOLUTION=%dx%d",
			r.Bandwidth, r.AverageBandwidth, r.Codecs, r.Width, r.Height)
		if res.FrameRate > 0 {
			fmt.Fprintf(&b, ",FRAME-RATE=%.3f", res.FrameRate)
		}
		fmt.Fprintf(&b, "\n%s/index.m3u8\n", r.Name)
	}
	if err := os.WriteFile(filepath.Join(out, "master.m3u8"), []byte(b.String()), 0o644); err != nil {
		return res, fmt.Errorf("media: transcode: write master playlist: %w", errors.Unwrap(err))
	}
	return res, nil
}

type videoSegment struct {
	uri  string
	dur  float64
	size int64
}

// videoReadMediaPlaylist reads dir/index.m3u8 as ffmpeg wrote it: the
// version, and every segment with its duration and size. Segment URIs must
// be plain names of files in dir.
func videoReadMediaPlaylist(dir string) (version int, segs []videoSegment, err error) {
	data, err := os.ReadFile(filepath.Join(dir, "index.m3u8"))
	if err != nil {
		return 0, nil, fmt.Errorf("%w: no playlist: %w", errVideoNoOutput, errors.Unwrap(err))
	}
	dur := -1.0
	sc := bufio.NewScanner(bytes.NewReader(data))
	ended := false
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "":
		case strings.HasPrefix(line, "#EXT-X-VERSION:"):
			version, _ = strconv.Atoi(strings.TrimPrefix(line, "#EXT-X-VERSION:"))
		case strings.HasPrefix(line, "#EXTINF:"):
			d, _, _ := strings.Cut(strings.TrimPrefix(line, "#EXTINF:"), ",")
			dur = videoParseFloat(d)
		case line == "#EXT-X-ENDLIST":
			ended = true
		case strings.HasPrefix(line, "#"):
		default:
			if dur < 0 || !videoSegmentRE.MatchString(line) {
				return 0, nil, fmt.Errorf("unexpected playlist entry %q", line)
			}
			st, err := os.Stat(filepath.Join(dir, line))
			if err != nil || !st.Mode().IsRegular() {
				return 0, nil, fmt.Errorf("segment %s missing", line)
			}
			segs = append(segs, videoSegment{uri: line, dur: dur, size: st.Size()})
			dur = -1
		}
	}
	if len(segs) == 0 || !ended {
		return 0, nil, fmt.Errorf("%w: incomplete playlist", errVideoNoOutput)
	}
	return version, segs, nil
}

// videoTSInfo is what videoScanSegment learns from an MPEG-TS segment.
type videoTSInfo struct {
	sps            [3]byte // profile_idc, constraint flags, level_idc
	frames         int     // video PES packets with a PTS (one per frame)
	minPTS, maxPTS int64
}

// frameRate estimates the frame rate from the segment's timestamps.
func (t videoTSInfo) frameRate() float64 {
	if t.frames < 2 || t.maxPTS <= t.minPTS {
		return 0
	}
	f := float64(t.frames-1) * 90000 / float64(t.maxPTS-t.minPTS)
	return math.Round(f*1000) / 1000
}

// videoScanSegment reads the H.264 SPS and the video timestamps of an
// MPEG-TS file (PAT -> PMT -> the stream of type 0x1B).
func videoScanSegment(path string) (videoTSInfo, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return videoTSInfo{}, fmt.Errorf("read segment: %w", errors.Unwrap(err))
	}
	var info videoTSInfo
	pmtPID, videoPID := -1, -1
	var es []byte // the start of the video elementary stream
	haveSPS := false
	for off := 0; off+188 <= len(data); off += 188 {
		pkt := data[off : off+188]
		if pkt[0] != 0x47 {
			return videoTSInfo{}, errors.New("segment is not MPEG-TS")
		}
		pusi := pkt[1]&0x40 != 0
		pid := int(pkt[1]&0x1f)<<8 | int(pkt[2])
		afc := pkt[3] >> 4 & 3
		p := 4
		if afc&2 != 0 {
			p += 1 + int(pkt[4])
		}
		if afc&1 == 0 || p >= 188 {
			continue
		}
		pl := pkt[p:]
		switch {
		case pid == 0 && pusi && pmtPID < 0:
			pmtPID = videoPATProgram(pl)
		case pid == pmtPID && pusi && videoPID < 0:
			videoPID = videoPMTStream(pl, 0x1b)
		case pid == videoPID && videoPID >= 0:
			if pusi {
				hdr, pts, ok := videoPESHeader(pl)
				if !ok {
					continue
				}
				if pts >= 0 {
					if info.frames == 0 || pts < info.minPTS {
						info.minPTS = pts
					}
					if info.frames == 0 || pts > info.maxPTS {
						info.maxPTS = pts
					}
					info.frames++
				}
				pl = pl[hdr:]
			}
			if !haveSPS && len(es) < 1<<16 {
				es = append(es, pl...)
				if sps, ok := videoFindSPS(es); ok {
					info.sps, haveSPS = sps, true
				}
			}
		}
	}
	if !haveSPS {
		return videoTSInfo{}, errors.New("no H.264 sequence parameter set in the output")
	}
	return info, nil
}

// videoPATProgram returns the PMT PID of the first program in a PAT.
func videoPATProgram(pl []byte) int {
	if len(pl) < 1 {
		return -1
	}
	s := pl[1+int(pl[0]):]
	if len(s) < 8 || s[0] != 0x00 {
		return -1
	}
	end := min(3+videoU12(s[1], s[2]), len(s)) - 4
	for i := 8; i+4 <= end; i += 4 {
		if prog := int(s[i])<<8 | int(s[i+1]); prog != 0 {
			return int(s[i+2]&0x1f)<<8 | int(s[i+3])
		}
	}
	return -1
}

// videoPMTStream returns the PID of the first stream of type typ in a PMT.
func videoPMTStream(pl []byte, typ byte) int {
	if len(pl) < 1 {
		return -1
	}
	s := pl[1+int(pl[0]):]
	if len(s) < 12 || s[0] != 0x02 {
		return -1
	}
	end := min(3+videoU12(s[1], s[2]), len(s)) - 4
	i := 12 + videoU12(s[10], s[11])
	for i+5 <= end {
		st, pid := s[i], int(s[i+1]&0x1f)<<8|int(s[i+2])
		if st == typ {
			return pid
		}
		i += 5 + videoU12(s[i+3], s[i+4])
	}
	return -1
}

// videoU12 is a 12-bit length field.
func videoU12(hi, lo byte) int { return int(hi&0x0f)<<8 | int(lo) }

// videoPESHeader returns the PES header length and the PTS (-1 if none).
func videoPESHeader(pl []byte) (int, int64, bool) {
	if len(pl) < 9 || pl[0] != 0 || pl[1] != 0 || pl[2] != 1 {
		return 0, 0, false
	}
	hdr := 9 + int(pl[8])
	if hdr > len(pl) {
		return 0, 0, false
	}
	pts := int64(-1)
	if pl[7]&0x80 != 0 && len(pl) >= 14 {
		pts = int64(pl[9]>>1&0x07)<<30 | int64(pl[10])<<22 | int64(pl[11]>>1)<<15 | int64(pl[12])<<7 | int64(pl[13]>>1)
	}
	return hdr, pts, true
}

// videoFindSPS finds an SPS NAL unit (type 7) in an Annex B byte stream and
// returns its first three bytes.
func videoFindSPS(es []byte) ([3]byte, bool) {
	for i := 0; i+6 < len(es); i++ {
		if es[i] == 0 && es[i+1] == 0 && es[i+2] == 1 && es[i+3]&0x1f == 7 {
			return [3]byte{es[i+4], es[i+5], es[i+6]}, true
		}
	}
	return [3]byte{}, false
}

// videoProgress parses ffmpeg's -progress output and hands the percentage
// to a callback on its own goroutine, so a slow callback cannot block
// ffmpeg's writes.
type videoProgress struct {
	totalUS float64
	line    []byte
	latest  atomic.Int64
	kick    chan struct{}
	done    sync.WaitGroup
}

func newVideoProgress(duration float64, fn func(int)) *videoProgress {
	p := &videoProgress{totalUS: duration * 1e6, kick: make(chan struct{}, 1)}
	p.latest.Store(-1)
	if fn == nil || !(duration > 0) {
		p.totalUS = 0
		close(p.kick)
		return p
	}
	p.done.Add(1)
	go func() {
		defer p.done.Done()
		sent := int64(-1)
		for range p.kick {
			if v := p.latest.Load(); v > sent {
				sent = v
				fn(int(v))
			}
		}
		if v := p.latest.Load(); v > sent {
			fn(int(v))
		}
	}()
	return p
}

func (p *videoProgress) Write(b []byte) (int, error) {
	if p.totalUS == 0 {
		return len(b), nil
	}
	p.line = append(p.line, b...)
	for {
		i := bytes.IndexByte(p.line, '\n')
		if i < 0 {
			break
		}
		p.handle(string(bytes.TrimSpace(p.line[:i])))
		p.line = append(p.line[:0], p.line[i+1:]...)
	}
	if len(p.line) > 4096 {
		p.line = p.line[:0]
	}
	return len(b), nil
}

func (p *videoProgress) handle(line string) {
	k, v, ok := strings.Cut(line, "=")
	if !ok || (k != "out_time_us" && k != "out_time_ms") {
		return
	}
	us, err := strconv.ParseInt(v, 10, 64)
	if err != nil || us < 0 {
		return
	}
	pct := min(int64(float64(us)/p.totalUS*100), 99)
	if pct > p.latest.Load() {
		p.latest.Store(pct)
		select {
		case p.kick <- struct{}{}:
		default:
		}
	}
}

// close stops the callback goroutine after its last call.
func (p *videoProgress) close() {
	if p.totalUS == 0 {
		return
	}
	close(p.kick)
	p.done.Wait()
}

// Thumbnail writes a JPEG of a representative frame of the video to
// outPath: FFmpeg's thumbnail filter picks, among a batch of frames
// starting at about 10% of duration, the one closest to their average,
// after scaling to fit 640x640 (never enlarged, aspect ratio and rotation
// respected). The input is opened with the demuxer format forced and
// -protocol_whitelist file, under ctx (default deadline 2 minutes). If the
// seek point yields no frame, the start of the video is tried. On failure
// outPath is removed; the error has no host paths.
func Thumbnail(ctx context.Context, ffmpeg, input, format, outPath string, duration float64) error {
	if _, ok := videoDemuxers[format]; !ok {
		return fmt.Errorf("%w: format %q is not allowed", ErrNotVideo, format)
	}
	if ffmpeg == "" {
		ffmpeg = "ffmpeg"
	}
	in, err := filepath.Abs(input)
	if err != nil {
		return fmt.Errorf("media: thumbnail: %w", err)
	}
	out, err := filepath.Abs(outPath)
	if err != nil {
		return fmt.Errorf("media: thumbnail: %w", err)
	}
	ctx, cancel := videoDefaultTimeout(ctx, 2*time.Minute)
	defer cancel()
	start := 0.0
	if duration > 0 && !math.IsInf(duration, 0) {
		start = duration * 0.1
	}
	for {
		err = videoThumbnailAt(ctx, ffmpeg, in, format, out, start)
		if err != nil {
			break
		}
		if st, serr := os.Stat(out); serr == nil && st.Size() > 0 {
			return nil
		}
		// ffmpeg ran fine but no frame came after the seek point (a
		// duration longer than the video): try from the start.
		err = fmt.Errorf("%w: no frame for a thumbnail", ErrBadVideo)
		if start == 0 {
			break
		}
		start = 0
	}
	_ = os.Remove(out)
	return err
}

func videoThumbnailAt(ctx context.Context, ffmpeg, in, format, out string, start float64) error {
	_ = os.Remove(out)
	r := videoRun{
		bin: ffmpeg,
		args: []string{"-nostdin", "-hide_banner", "-loglevel", "error", "-nostats",
			"-protocol_whitelist", "file", "-ss", strconv.FormatFloat(start, 'f', 3, 64),
			"-f", format, "-i", "file:" + in,
			"-map", "0:V:0", "-an", "-sn", "-dn", "-map_metadata", "-1",
			"-vf", "scale=w='min(iw,640)':h='min(ih,640)':force_original_aspect_ratio=decrease:force_divisible_by=2,setsar=1,thumbnail=n=50",
			"-frames:v", "1", "-c:v", "mjpeg", "-q:v", "3", "-f", "image2", "-update", "1",
			"-protocol_whitelist", "file", "-y", "file:" + out},
		paths: map[string]string{in: "<input>", out: "<output>", filepath.Dir(in): "<dir>", filepath.Dir(out): "<outdir>"},
	}
	if err := r.run(ctx); err != nil {
		if ctx.Err() != nil || r.startErr {
			return err
		}
		return videoClassify(err, &r)
	}
	return nil
}
