package media

// Video pipeline, first half: recognising, probing and planning.
//
// Uploaded videos are hostile input for FFmpeg, whose demuxers can be told by
// a file's content to open other files or URLs (HLS playlists, ffconcat
// scripts, image-sequence patterns, QuickTime data references, ...). The
// pipeline therefore never lets FFmpeg guess:
//
//   - SniffVideo decides the container from the first bytes and maps it to
//     one of four allow-listed demuxers (mov, matroska, avi, mpegts), none of
//     which follows references to other resources (the mov demuxer's
//     external data references are off by default and stay off);
//   - ffprobe and ffmpeg always run with that demuxer forced (-f), with
//     -protocol_whitelist file (file,pipe for ffmpeg, whose progress goes to
//     a pipe), with "file:" in front of every path (so a name can never be
//     read as a protocol or an option), without a shell, with stdin closed,
//     a minimal environment (no FFREPORT) and under a context deadline;
//   - ProbeVideo checks that the demuxer that actually opened the file is the
//     forced one and that the file has a usable video stream.
//
// Transcode, Thumbnail and the HLS output are in video_transcode.go; process
// handling is in video_exec.go.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

var (
	// ErrNotVideo: by content the file is not one of the supported video
	// containers, the format is not on the allow-list, or the forced demuxer
	// cannot read it.
	ErrNotVideo = errors.New("media: not a supported video")
	// ErrBadVideo: the file was probed but cannot be used: no video stream,
	// zero or unknown duration, too long, dimensions out of range, or FFmpeg
	// failed on its content. The last ": "-separated part of the message is a
	// short reason without paths.
	ErrBadVideo = errors.New("media: video cannot be processed")
)

// Limits checked by ProbeVideo.
const (
	VideoMinSide = 16
	VideoMaxSide = 8192
)

// DefaultVideoResolutions is the ladder used when none is configured
// (PLAZA_VIDEO_RESOLUTIONS).
var DefaultVideoResolutions = []string{"360p", "480p", "720p", "1080p"}

// videoDemuxers maps each allow-listed demuxer (the value of -f) to the
// format_name ffprobe reports for it.
var videoDemuxers = map[string]string{
	"mov":      "mov,mp4,m4a,3gp,3g2,mj2",
	"matroska": "matroska,webm",
	"avi":      "avi",
	"mpegts":   "mpegts",
}

// videoImageBrands are ISO-BMFF major brands of still images and image
// sequences (HEIF/HEIC, AVIF, Canon raw), which also start with an ftyp box.
var videoImageBrands = map[string]bool{
	"heic": true, "heix": true, "heim": true, "heis": true, "hevc": true, "hevx": true,
	"mif1": true, "msf1": true, "avif": true, "avis": true, "crx ": true,
}

// SniffVideo decides the container from the file's first bytes (at least
// 377 are needed to recognise MPEG-TS; 512 is plenty), never from the name
// or a claimed content type, and returns the FFmpeg demuxer to force with
// -f:
//
//	"mov"      MP4, MOV, M4V, 3GP: an ftyp box at offset 4 (HEIF/AVIF
//	           image brands excluded)
//	"matroska" MKV and WebM: the EBML magic 1A 45 DF A3
//	"avi"      RIFF....AVI
//	"mpegts"   sync byte 0x47 at 0, 188 and 376 (or, for 192-byte M2TS
//	           packets, at 4, 196 and 388)
//
// Anything else (text, HLS playlists, ffconcat scripts, images, audio, ...)
// gives "", false.
func SniffVideo(head []byte) (format string, ok bool) {
	switch {
	case len(head) >= 12 && string(head[4:8]) == "ftyp":
		size := uint32(head[0])<<24 | uint32(head[1])<<16 | uint32(head[2])<<8 | uint32(head[3])
		if size < 12 || videoImageBrands[string(head[8:12])] {
			return "", false
		}
		return "mov", true
	case len(head) >= 4 && bytes.Equal(head[:4], []byte{0x1A, 0x45, 0xDF, 0xA3}):
		return "matroska", true
	case len(head) >= 12 && string(head[:4]) == "RIFF" && string(head[8:12]) == "AVI ":
		return "avi", true
	case len(head) > 376 && head[0] == 0x47 && head[188] == 0x47 && head[376] == 0x47:
		return "mpegts", true
	case len(head) > 388 && head[4] == 0x47 && head[196] == 0x47 && head[388] == 0x47:
		return "mpegts", true
	}
	return "", false
}

// ProbeResult is what ProbeVideo learned about a video.
type ProbeResult struct {
	Format   string  // the forced demuxer: mov, matroska, avi or mpegts
	Duration float64 // seconds
	// Width and Height are the display size: sample aspect ratio and
	// rotation applied (a phone video stored as 1920x1080 with a 90° display
	// matrix is 1080x1920).
	Width, Height int
	// Rotation is the clockwise rotation in degrees (0, 90, 180 or 270)
	// needed to display the stored frames; FFmpeg applies it automatically.
	Rotation   int
	FrameRate  float64 // frames per second, 0 if unknown
	VideoCodec string  // e.g. "h264"
	AudioCodec string  // "" without audio
	HasAudio   bool
	Bitrate    int64 // bits/s of the whole file, 0 if unknown
}

// ffprobe's JSON, the parts we read.
type videoProbeJSON struct {
	Format struct {
		FormatName string `json:"format_name"`
		Duration   string `json:"duration"`
		BitRate    string `json:"bit_rate"`
	} `json:"format"`
	Streams []videoProbeStream `json:"streams"`
}

type videoProbeStream struct {
	CodecType    string            `json:"codec_type"`
	CodecName    string            `json:"codec_name"`
	Width        int               `json:"width"`
	Height       int               `json:"height"`
	SAR          string            `json:"sample_aspect_ratio"`
	AvgFrameRate string            `json:"avg_frame_rate"`
	RFrameRate   string            `json:"r_frame_rate"`
	Duration     string            `json:"duration"`
	StartTime    string            `json:"start_time"`
	Tags         map[string]string `json:"tags"`
	Disposition  map[string]int    `json:"disposition"`
	SideData     []videoSideData   `json:"side_data_list"`
}

type videoSideData struct {
	Type     string  `json:"side_data_type"`
	Rotation float64 `json:"rotation"`
}

// ProbeVideo runs ffprobe (the binary ffprobe, "ffprobe" if empty) on the
// local file path with the demuxer format forced, -protocol_whitelist file
// and JSON output, under ctx, and validates the result: the demuxer must be
// the allow-listed one asked for, the file needs a video stream (cover art
// does not count), 0 < duration <= maxDuration (maxDuration <= 0: no limit)
// and display dimensions within VideoMinSide..VideoMaxSide. A second, short
// ffprobe run reads the video stream from the last keyframe before 80% of
// its duration to the end, so that a file cut off after a header promising
// more (an MP4 with its index in front) is refused as ErrBadVideo. Without
// a deadline on ctx, each run is limited to 2 minutes.
//
// Errors: ErrNotVideo when format is not allow-listed, the file is empty or
// the demuxer cannot read it; ErrBadVideo when it can but the video is
// unusable; ctx's error when ctx ends first; other errors (missing file,
// ffprobe not runnable) as they are. No message contains a host path.
func ProbeVideo(ctx context.Context, ffprobe, path, format string, maxDuration time.Duration) (ProbeResult, error) {
	want, ok := videoDemuxers[format]
	if !ok {
		return ProbeResult{}, fmt.Errorf("%w: format %q is not allowed", ErrNotVideo, format)
	}
	if ffprobe == "" {
		ffprobe = "ffprobe"
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return ProbeResult{}, fmt.Errorf("media: probe: %w", err)
	}
	st, err := os.Stat(abs)
	if err != nil {
		return ProbeResult{}, fmt.Errorf("media: probe: source file: %w", errors.Unwrap(err))
	}
	if !st.Mode().IsRegular() || st.Size() == 0 {
		return ProbeResult{}, fmt.Errorf("%w: empty file", ErrNotVideo)
	}
	ctx, cancel := videoDefaultTimeout(ctx, 2*time.Minute)
	defer cancel()

	out := &videoLimitedBuffer{max: 4 << 20}
	r := videoRun{
		bin: ffprobe,
		args: []string{"-hide_banner", "-v", "error",
			"-protocol_whitelist", "file", "-f", format,
			"-show_format", "-show_streams", "-of", "json",
			"-i", "file:" + abs},
		stdout: out,
		paths:  map[string]string{abs: "<input>", filepath.Dir(abs): "<dir>"},
	}
	if err := r.run(ctx); err != nil {
		if ctx.Err() != nil || r.startErr {
			return ProbeResult{}, err
		}
		return ProbeResult{}, fmt.Errorf("%w: %s", ErrNotVideo, r.reason("unreadable as "+format))
	}
	if out.overflow {
		return ProbeResult{}, fmt.Errorf("%w: too much metadata", ErrBadVideo)
	}
	var pj videoProbeJSON
	if err := json.Unmarshal(out.Bytes(), &pj); err != nil {
		return ProbeResult{}, fmt.Errorf("%w: unreadable probe output", ErrBadVideo)
	}
	p, err := videoCheckProbe(pj, format, want, maxDuration)
	if err != nil {
		return ProbeResult{}, err
	}
	if err := videoCheckTail(ctx, ffprobe, abs, format, pj, p); err != nil {
		return ProbeResult{}, err
	}
	return p, nil
}

// videoCheckTail catches truncated files whose header promises more than
// they hold (an MP4 with its index in front, cut off): ffprobe demuxes the
// video stream from the last keyframe before 80% of its duration to the
// end, and the last timestamp read must reach that point.
func videoCheckTail(ctx context.Context, ffprobe, abs, format string, pj videoProbeJSON, p ProbeResult) error {
	var start, dur float64
	for _, s := range pj.Streams {
		if s.CodecType == "video" && s.CodecName == p.VideoCodec && s.Disposition["attached_pic"] == 0 {
			start, dur = videoParseFloat(s.StartTime), videoParseFloat(s.Duration)
			break
		}
	}
	if dur <= 0 || dur > p.Duration+1 {
		dur = p.Duration
	}
	need := start + dur*0.8
	last := &videoMaxFloat{max: math.Inf(-1)}
	r := videoRun{
		bin: ffprobe,
		args: []string{"-hide_banner", "-v", "error",
			"-protocol_whitelist", "file", "-f", format,
			"-select_streams", "V:0", "-read_intervals", strconv.FormatFloat(need, 'f', 3, 64) + "%",
			"-show_entries", "packet=pts_time", "-of", "csv=p=0",
			"-i", "file:" + abs},
		stdout: last,
		paths:  map[string]string{abs: "<input>", filepath.Dir(abs): "<dir>"},
	}
	if err := r.run(ctx); err != nil {
		if ctx.Err() != nil || r.startErr {
			return err
		}
		return fmt.Errorf("%w: %s", ErrBadVideo, r.reason("unreadable"))
	}
	last.flush()
	if last.max < need-0.5 {
		return fmt.Errorf("%w: the file is truncated", ErrBadVideo)
	}
	return nil
}

// videoMaxFloat is a writer that keeps the largest number among the lines
// written to it, without keeping the lines.
type videoMaxFloat struct {
	max  float64
	line []byte
}

func (m *videoMaxFloat) Write(p []byte) (int, error) {
	for _, c := range p {
		if c == '\n' {
			m.flush()
			continue
		}
		if len(m.line) < 64 {
			m.line = append(m.line, c)
		}
	}
	return len(p), nil
}

func (m *videoMaxFloat) flush() {
	s := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(string(m.line)), ","))
	m.line = m.line[:0]
	if f, err := strconv.ParseFloat(s, 64); err == nil && f > m.max {
		m.max = f
	}
}

func videoCheckProbe(pj videoProbeJSON, format, want string, maxDuration time.Duration) (ProbeResult, error) {
	if pj.Format.FormatName != want {
		return ProbeResult{}, fmt.Errorf("%w: read by the wrong demuxer", ErrNotVideo)
	}
	p := ProbeResult{Format: format}
	vi := -1
	for i, s := range pj.Streams {
		switch s.CodecType {
		case "video":
			if vi < 0 && s.CodecName != "" && s.Disposition["attached_pic"] == 0 && s.Disposition["timed_thumbnails"] == 0 {
				vi = i
			}
		case "audio":
			if !p.HasAudio && s.CodecName != "" {
				p.HasAudio, p.AudioCodec = true, s.CodecName
			}
		}
	}
	if vi < 0 {
		return ProbeResult{}, fmt.Errorf("%w: no video stream", ErrBadVideo)
	}
	v := pj.Streams[vi]
	p.VideoCodec = v.CodecName
	p.Duration = videoParseFloat(pj.Format.Duration)
	if p.Duration <= 0 {
		p.Duration = videoParseFloat(v.Duration)
	}
	if p.Duration <= 0 {
		return ProbeResult{}, fmt.Errorf("%w: unknown or zero duration", ErrBadVideo)
	}
	if maxDuration > 0 && p.Duration > maxDuration.Seconds() {
		return ProbeResult{}, fmt.Errorf("%w: longer than %s", ErrBadVideo, maxDuration)
	}
	if v.Width < VideoMinSide || v.Height < VideoMinSide || v.Width > VideoMaxSide || v.Height > VideoMaxSide {
		return ProbeResult{}, fmt.Errorf("%w: frame size %dx%d out of range", ErrBadVideo, v.Width, v.Height)
	}
	w, h := v.Width, v.Height
	if n, d := videoParseRatio(v.SAR, ":"); n > 0 && d > 0 && n != d {
		// Non-square pixels (anamorphic DV, broadcast): the display width.
		w = int(math.Round(float64(w) * float64(n) / float64(d)))
	}
	p.Rotation = videoRotation(v.Tags["rotate"], v.SideData)
	if p.Rotation == 90 || p.Rotation == 270 {
		w, h = h, w
	}
	if w < VideoMinSide || h < VideoMinSide || w > VideoMaxSide || h > VideoMaxSide {
		return ProbeResult{}, fmt.Errorf("%w: display size %dx%d out of range", ErrBadVideo, w, h)
	}
	p.Width, p.Height = w, h
	p.FrameRate = videoFrameRate(v.AvgFrameRate)
	if p.FrameRate == 0 {
		p.FrameRate = videoFrameRate(v.RFrameRate)
	}
	if b, err := strconv.ParseInt(pj.Format.BitRate, 10, 64); err == nil && b > 0 {
		p.Bitrate = b
	}
	return p, nil
}

// videoRotation: the clockwise display rotation from the legacy rotate tag
// (clockwise) or the display matrix (ffprobe reports it counter-clockwise),
// rounded to a multiple of 90.
func videoRotation(tag string, side []videoSideData) int {
	deg := 0.0
	if t, err := strconv.ParseFloat(tag, 64); err == nil {
		deg = t
	} else {
		for _, sd := range side {
			if sd.Type == "Display Matrix" {
				deg = -sd.Rotation
				break
			}
		}
	}
	if math.IsNaN(deg) || math.IsInf(deg, 0) {
		return 0
	}
	r := int(math.Round(deg/90)) * 90 % 360
	if r < 0 {
		r += 360
	}
	return r
}

func videoParseFloat(s string) float64 {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0
	}
	return f
}

func videoParseRatio(s, sep string) (int64, int64) {
	a, b, ok := strings.Cut(s, sep)
	if !ok {
		return 0, 0
	}
	n, err1 := strconv.ParseInt(a, 10, 64)
	d, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0
	}
	return n, d
}

// videoFrameRate parses "30000/1001"; nonsense (0/0, > 1000 fps) gives 0.
func videoFrameRate(s string) float64 {
	n, d := videoParseRatio(s, "/")
	if n <= 0 || d <= 0 {
		return 0
	}
	f := float64(n) / float64(d)
	if f > 1000 {
		return 0
	}
	return f
}

// Rendition is one rung of the HLS ladder.
type Rendition struct {
	Name          string // "720p": the folder and the URL element
	Width, Height int    // even
	// Encoder settings, bits/s.
	VideoBitrate, MaxRate, BufSize, AudioBitrate int64
	// Measured by Transcode from the segments written, bits/s: the peak
	// segment bitrate and the average over the whole rendition.
	Bandwidth, AverageBandwidth int64
	Codecs                      string // filled by Transcode, e.g. "avc1.64001f,mp4a.40.2"
}

// videoRungKbps: H.264 video bitrates (kbit/s) per rung (the shorter side).
var videoRungKbps = []struct{ rung, kbps float64 }{
	{144, 200}, {240, 400}, {360, 800}, {480, 1400}, {720, 2800},
	{1080, 5000}, {1440, 8000}, {2160, 14000},
}

// videoBitrate is the default H.264 video bitrate (bits/s) for a rung
// (the shorter side of the frame): the table above, interpolated
// geometrically between its entries and extrapolated with the 1.5th power of
// the rung beyond them.
func videoBitrate(rung int) int64 {
	r := float64(max(rung, 2))
	t := videoRungKbps
	var kbps float64
	switch {
	case r <= t[0].rung:
		kbps = t[0].kbps * math.Pow(r/t[0].rung, 1.5)
	case r >= t[len(t)-1].rung:
		kbps = t[len(t)-1].kbps * math.Pow(r/t[len(t)-1].rung, 1.5)
	default:
		i := sort.Search(len(t), func(i int) bool { return t[i].rung >= r })
		lo, hi := t[i-1], t[i]
		f := math.Log(r/lo.rung) / math.Log(hi.rung/lo.rung)
		kbps = lo.kbps * math.Pow(hi.kbps/lo.kbps, f)
	}
	kbps = min(max(kbps, 64), 60000)
	return int64(math.Round(kbps)) * 1000
}

// videoRendition fills the bitrates of a rendition of the given size.
func videoRendition(name string, w, h, rung int) Rendition {
	vb := videoBitrate(rung)
	maxRate := vb * 107 / 100
	ab := int64(128000)
	if rung < 480 {
		ab = 96000
	}
	return Rendition{Name: name, Width: w, Height: h, VideoBitrate: vb, MaxRate: maxRate, BufSize: maxRate * 3 / 2, AudioBitrate: ab}
}

// videoEven rounds to the nearest even number, at least 2 (as FFmpeg's
// scale=-2 does).
func videoEven(x float64) int {
	return max(2, int(math.Round(x/2))*2)
}

// videoRungOf parses "720p" (case-insensitive, spaces trimmed).
func videoRungOf(name string) (int, bool) {
	s := strings.ToLower(strings.TrimSpace(name))
	num, ok := strings.CutSuffix(s, "p")
	if !ok || num == "" || len(num) > 5 {
		return 0, false
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < VideoMinSide || n > VideoMaxSide || strconv.Itoa(n) != num {
		return 0, false
	}
	return n, true
}

// ParseVideoResolutions parses a comma-separated ladder such as
// "360p,480p,720p,1080p" (the PLAZA_VIDEO_RESOLUTIONS syntax). Each entry is
// a number of lines from VideoMinSide to VideoMaxSide followed by "p";
// duplicates are dropped; an empty string gives DefaultVideoResolutions.
func ParseVideoResolutions(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return append([]string(nil), DefaultVideoResolutions...), nil
	}
	var out []string
	seen := map[int]bool{}
	for part := range strings.SplitSeq(s, ",") {
		n, ok := videoRungOf(part)
		if !ok {
			return nil, fmt.Errorf("media: bad video resolution %q: want e.g. 720p (%d to %d lines)", strings.TrimSpace(part), VideoMinSide, VideoMaxSide)
		}
		if !seen[n] {
			seen[n] = true
			out = append(out, fmt.Sprintf("%dp", n))
		}
	}
	return out, nil
}

// Ladder picks the renditions for a video from names like "360p", "720p"
// (nil or empty: DefaultVideoResolutions), smallest first. The number is the
// SHORTER side of the display size, so a portrait 1080x1920 video's 1080p is
// 1080 wide and 1920 high; the other side keeps the aspect ratio, rounded to
// an even number like FFmpeg's scale=-2. Rungs above the source's shorter
// side are dropped (never upscaled); a source smaller than every rung gives
// one rendition at its own size rounded down to even numbers, named after its
// shorter side (a 320x240 source: "240p"). Names that do not parse are
// ignored. Video bitrates per rung: 400k at 240p, 800k at 360p, 1400k at
// 480p, 2800k at 720p, 5000k at 1080p, 8000k at 1440p, 14000k at 2160p,
// interpolated geometrically in between; maxrate 1.07x, bufsize 1.5x
// maxrate; AAC 96 kbit/s below 480p and 128 kbit/s from 480p up.
func Ladder(p ProbeResult, names []string) []Rendition {
	if len(names) == 0 {
		names = DefaultVideoResolutions
	}
	w, h := p.Width, p.Height
	if w < 2 || h < 2 {
		return nil
	}
	short, long := min(w, h), max(w, h)
	var rungs []int
	seen := map[int]bool{}
	for _, n := range names {
		r, ok := videoRungOf(n)
		if !ok || r > short || seen[r] {
			continue
		}
		seen[r] = true
		rungs = append(rungs, r)
	}
	sort.Ints(rungs)
	var out []Rendition
	for _, r := range rungs {
		s := videoEven(float64(r))
		if s > short { // an odd rung equal to an odd source side
			s = short &^ 1
		}
		l := min(videoEven(float64(r)*float64(long)/float64(short)), long&^1)
		if w >= h {
			out = append(out, videoRendition(fmt.Sprintf("%dp", r), l, s, r))
		} else {
			out = append(out, videoRendition(fmt.Sprintf("%dp", r), s, l, r))
		}
	}
	if len(out) == 0 {
		ew, eh := w&^1, h&^1
		r := min(ew, eh)
		out = append(out, videoRendition(fmt.Sprintf("%dp", r), ew, eh, r))
	}
	// Two rungs can round to the same size (e.g. 359p and 360p): keep one.
	dedup := out[:0]
	for i, r := range out {
		if i > 0 && r.Width == dedup[len(dedup)-1].Width && r.Height == dedup[len(dedup)-1].Height {
			dedup[len(dedup)-1] = r
			continue
		}
		dedup = append(dedup, r)
	}
	return dedup
}
