package media

import (
	"context"
	"errors"
	"fmt"
	"image/jpeg"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// videoTranscodeCase transcodes a clip and checks the output thoroughly.
type videoTranscodeCase struct {
	spec      videoClipSpec
	format    string
	names     []string
	want      map[string][2]int // rendition -> display size
	segSecs   int
	wantAudio bool
}

func videoCheckTranscode(t *testing.T, c videoTranscodeCase) TranscodeResult {
	t.Helper()
	ffmpeg, ffprobe := videoTools(t)
	dir := t.TempDir()
	src := videoClip(t, dir, c.spec)
	format := c.format
	if format == "" {
		format = "mov"
	}
	probe, err := ProbeVideo(context.Background(), ffprobe, src, format, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ladder := Ladder(probe, c.names)
	out := filepath.Join(dir, "hls")
	var mu sync.Mutex
	var progress []int
	res, err := Transcode(context.Background(), TranscodeOptions{
		FFmpeg: ffmpeg, Input: src, Format: format, OutDir: out, Renditions: ladder,
		HasAudio: probe.HasAudio, Duration: probe.Duration, SegmentSeconds: c.segSecs,
		OnProgress: func(p int) {
			mu.Lock()
			progress = append(progress, p)
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}

	// Progress: increasing, 0..99, reaching at least 90.
	mu.Lock()
	if len(progress) == 0 || progress[len(progress)-1] < 90 {
		t.Errorf("progress %v does not reach 90", progress)
	}
	for i, p := range progress {
		if p < 0 || p > 99 || (i > 0 && p <= progress[i-1]) {
			t.Errorf("progress %v is not increasing within 0..99", progress)
			break
		}
	}
	mu.Unlock()

	// Folder layout: master.m3u8 and one folder per rendition, nothing else.
	ents, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	wantNames := []string{"master.m3u8"}
	for n := range c.want {
		wantNames = append(wantNames, n)
	}
	slices.Sort(names)
	slices.Sort(wantNames)
	if !slices.Equal(names, wantNames) {
		t.Errorf("OutDir holds %v, want %v", names, wantNames)
	}

	variants := videoTestMaster(t, filepath.Join(out, "master.m3u8"))
	if len(variants) != len(c.want) || len(res.Renditions) != len(c.want) {
		t.Fatalf("master has %d variants, result %d renditions, want %d", len(variants), len(res.Renditions), len(c.want))
	}
	var segCounts []int
	var segDurs [][]float64
	prevBW := int64(0)
	for i, v := range variants {
		name, ok := strings.CutSuffix(v.uri, "/index.m3u8")
		size, known := c.want[name]
		if !ok || !known {
			t.Fatalf("unexpected variant URI %q", v.uri)
		}
		r := res.Renditions[i]
		if r.Name != name {
			t.Errorf("result rendition %d is %s, master lists %s", i, r.Name, name)
		}
		if got := v.attrs["RESOLUTION"]; got != fmt.Sprintf("%dx%d", size[0], size[1]) {
			t.Errorf("%s: RESOLUTION=%s, want %dx%d", name, got, size[0], size[1])
		}
		bw, _ := strconv.ParseInt(v.attrs["BANDWIDTH"], 10, 64)
		avg, _ := strconv.ParseInt(v.attrs["AVERAGE-BANDWIDTH"], 10, 64)
		if bw != r.Bandwidth || avg != r.AverageBandwidth || bw < avg || avg <= 0 {
			t.Errorf("%s: BANDWIDTH=%d AVERAGE-BANDWIDTH=%d, result %d %d", name, bw, avg, r.Bandwidth, r.AverageBandwidth)
		}
		if bw < prevBW {
			t.Errorf("variants are not lowest BANDWIDTH first")
		}
		prevBW = bw
		if fr, err := strconv.ParseFloat(v.attrs["FRAME-RATE"], 64); err != nil || math.Abs(fr-30) > 0.01 {
			t.Errorf("%s: FRAME-RATE=%q, want 30", name, v.attrs["FRAME-RATE"])
		}

		rdir := filepath.Join(out, name)
		segs := videoTestPlaylist(t, filepath.Join(rdir, "index.m3u8"))
		if len(segs) != res.Segments[name] {
			t.Errorf("%s: %d segments, result says %d", name, len(segs), res.Segments[name])
		}
		streams, keys, first := videoReadBack(t, filepath.Join(rdir, "index.m3u8"))
		var totalBits, totalDur float64
		var durs []float64
		for j, s := range segs {
			if want := fmt.Sprintf("segment_%03d.ts", j); s.name != want {
				t.Errorf("%s: segment %d is %q, want %q", name, j, s.name, want)
			}
			st, err := os.Stat(filepath.Join(rdir, s.name))
			if err != nil {
				t.Fatal(err)
			}
			bits := float64(st.Size() * 8)
			totalBits += bits
			totalDur += s.dur
			if rate := bits / s.dur; rate > float64(bw) {
				t.Errorf("%s/%s: %.0f bit/s above BANDWIDTH %d", name, s.name, rate, bw)
			}
			// Each segment starts with a keyframe.
			start := first + totalDur - s.dur
			if !slices.ContainsFunc(keys, func(k float64) bool { return math.Abs(k-start) < 0.02 }) {
				t.Errorf("%s/%s does not start with a keyframe (at %.3f; keyframes %v)", name, s.name, start, keys)
			}
			durs = append(durs, math.Round(s.dur*10)/10)
		}
		if math.Abs(totalBits/totalDur-float64(avg)) > 1 {
			t.Errorf("%s: AVERAGE-BANDWIDTH %d, measured %.0f", name, avg, totalBits/totalDur)
		}
		segCounts = append(segCounts, len(segs))
		segDurs = append(segDurs, durs)

		// The rendition itself: H.264 High at the right size, AAC iff audio.
		var hasV, hasA bool
		for _, s := range streams {
			switch s.CodecType {
			case "video":
				hasV = true
				if s.CodecName != "h264" || s.Width != size[0] || s.Height != size[1] || s.PixFmt != "yuv420p" || s.Profile != "High" {
					t.Errorf("%s: video %+v, want h264 High yuv420p %dx%d", name, s, size[0], size[1])
				}
				wantCodecs := fmt.Sprintf("avc1.6400%02x", s.Level)
				if c.wantAudio {
					wantCodecs += ",mp4a.40.2"
				}
				if v.attrs["CODECS"] != wantCodecs || r.Codecs != wantCodecs {
					t.Errorf("%s: CODECS=%q (result %q), want %q", name, v.attrs["CODECS"], r.Codecs, wantCodecs)
				}
			case "audio":
				hasA = true
				if s.CodecName != "aac" {
					t.Errorf("%s: audio codec %s", name, s.CodecName)
				}
			}
		}
		if !hasV || hasA != c.wantAudio {
			t.Errorf("%s: video %v audio %v, want audio %v", name, hasV, hasA, c.wantAudio)
		}
	}
	// Alignment: every rendition is cut at the same instants.
	for i := 1; i < len(segCounts); i++ {
		if segCounts[i] != segCounts[0] || !slices.Equal(segDurs[i], segDurs[0]) {
			t.Errorf("renditions are not aligned: %v %v", segCounts, segDurs)
		}
	}
	if res.CPUTime <= 0 {
		t.Errorf("CPUTime = %v", res.CPUTime)
	}
	return res
}

func TestTranscodeLadder(t *testing.T) {
	t.Parallel()
	res := videoCheckTranscode(t, videoTranscodeCase{
		spec:      videoClipSpec{W: 640, H: 360, Seconds: 3, Audio: true},
		names:     []string{"240p", "360p", "720p"},
		want:      map[string][2]int{"240p": {426, 240}, "360p": {640, 360}},
		segSecs:   1,
		wantAudio: true,
	})
	for name, n := range res.Segments {
		if n != 3 {
			t.Errorf("%s: %d segments of 1 s for 3 s, want 3", name, n)
		}
	}
}

func TestTranscodeNoAudio(t *testing.T) {
	t.Parallel()
	videoCheckTranscode(t, videoTranscodeCase{
		spec:  videoClipSpec{W: 320, H: 180, Seconds: 2},
		names: []string{"180p"},
		want:  map[string][2]int{"180p": {320, 180}},
	})
}

func TestTranscodePortraitByRotation(t *testing.T) {
	t.Parallel()
	// Stored 640x360 with a 90° display matrix: a portrait 360x640 video.
	videoCheckTranscode(t, videoTranscodeCase{
		spec:      videoClipSpec{W: 640, H: 360, Seconds: 2, Audio: true, Rotate: 90},
		names:     []string{"240p", "360p"},
		want:      map[string][2]int{"240p": {240, 426}, "360p": {360, 640}},
		segSecs:   1,
		wantAudio: true,
	})
}

func TestTranscodeOddSizeMKV(t *testing.T) {
	t.Parallel()
	// 4:4:4 so that x264 accepts odd dimensions for the source.
	videoCheckTranscode(t, videoTranscodeCase{
		spec:      videoClipSpec{W: 427, H: 241, Seconds: 2, Audio: true, Container: "mkv", PixFmt: "yuv444p"},
		format:    "matroska",
		names:     []string{"240p", "360p"},
		want:      map[string][2]int{"240p": {426, 240}},
		wantAudio: true,
	})
}

func TestTranscodeTinyTS(t *testing.T) {
	t.Parallel()
	// Smaller than every rung: one rendition at the source's own size.
	videoCheckTranscode(t, videoTranscodeCase{
		spec:      videoClipSpec{W: 160, H: 120, Seconds: 2, Audio: true, Container: "ts"},
		format:    "mpegts",
		names:     DefaultVideoResolutions,
		want:      map[string][2]int{"120p": {160, 120}},
		wantAudio: true,
	})
}

func TestTranscodeErrors(t *testing.T) {
	t.Parallel()
	ffmpeg, _ := videoTools(t)
	dir := t.TempDir()
	ctx := context.Background()
	text := filepath.Join(dir, "text.mp4")
	if err := os.WriteFile(text, []byte("not a video\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rs := []Rendition{{Name: "240p", Width: 426, Height: 240}}

	// ffmpeg fails on the content: ErrBadVideo, no host paths, OutDir gone.
	out := filepath.Join(dir, "out")
	_, err := Transcode(ctx, TranscodeOptions{FFmpeg: ffmpeg, Input: text, Format: "mov", OutDir: out, Renditions: rs, Duration: 1})
	if !errors.Is(err, ErrBadVideo) {
		t.Errorf("text file: err = %v, want ErrBadVideo", err)
	} else {
		videoNoHostPath(t, err.Error(), dir)
	}
	if _, serr := os.Stat(out); !errors.Is(serr, os.ErrNotExist) {
		t.Errorf("OutDir left behind after a failure: %v", serr)
	}
	// An existing empty OutDir stays, emptied.
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Transcode(ctx, TranscodeOptions{FFmpeg: ffmpeg, Input: text, Format: "mov", OutDir: out, Renditions: rs}); err == nil {
		t.Error("text file: no error")
	}
	if ents, err := os.ReadDir(out); err != nil || len(ents) != 0 {
		t.Errorf("existing OutDir after failure: %v, %v", ents, err)
	}

	bad := []struct {
		name string
		o    TranscodeOptions
		is   error
	}{
		{"format not allowed", TranscodeOptions{Input: text, Format: "hls", OutDir: out, Renditions: rs}, ErrNotVideo},
		{"empty input", TranscodeOptions{Input: filepath.Join(dir, "empty"), Format: "mov", OutDir: out, Renditions: rs}, ErrNotVideo},
		{"no renditions", TranscodeOptions{Input: text, Format: "mov", OutDir: out}, nil},
		{"odd size", TranscodeOptions{Input: text, Format: "mov", OutDir: out, Renditions: []Rendition{{Name: "x", Width: 427, Height: 240}}}, nil},
		{"path in name", TranscodeOptions{Input: text, Format: "mov", OutDir: out, Renditions: []Rendition{{Name: "../x", Width: 426, Height: 240}}}, nil},
		{"repeated name", TranscodeOptions{Input: text, Format: "mov", OutDir: out, Renditions: append(rs, rs...)}, nil},
		{"bad preset", TranscodeOptions{Input: text, Format: "mov", OutDir: out, Renditions: rs, Preset: "turbo"}, nil},
		{"percent in OutDir", TranscodeOptions{Input: text, Format: "mov", OutDir: filepath.Join(dir, "a%d"), Renditions: rs}, nil},
	}
	if err := os.WriteFile(filepath.Join(dir, "empty"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range bad {
		c.o.FFmpeg = ffmpeg
		_, err := Transcode(ctx, c.o)
		if err == nil || (c.is != nil && !errors.Is(err, c.is)) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.is)
		} else {
			videoNoHostPath(t, err.Error(), dir)
		}
	}
	// A non-empty OutDir is refused and left alone.
	if err := os.WriteFile(filepath.Join(out, "keep"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Transcode(ctx, TranscodeOptions{FFmpeg: ffmpeg, Input: text, Format: "mov", OutDir: out, Renditions: rs}); err == nil {
		t.Error("non-empty OutDir accepted")
	}
	if _, err := os.Stat(filepath.Join(out, "keep")); err != nil {
		t.Errorf("caller's file removed: %v", err)
	}
	// A missing ffmpeg.
	_, err = Transcode(ctx, TranscodeOptions{FFmpeg: filepath.Join(dir, "no-ffmpeg"), Input: text, Format: "mov", OutDir: filepath.Join(dir, "o2"), Renditions: rs})
	if err == nil || errors.Is(err, ErrBadVideo) {
		t.Errorf("missing ffmpeg: err = %v", err)
	} else {
		videoNoHostPath(t, err.Error(), dir)
	}
}

// TestTranscodeCancel cancels a transcode as soon as it reports progress:
// ffmpeg must be gone when Transcode returns, quickly, and the output too.
func TestTranscodeCancel(t *testing.T) {
	t.Parallel()
	ffmpeg, _ := videoTools(t)
	dir := t.TempDir()
	src := videoClip(t, dir, videoClipSpec{W: 1280, H: 720, Seconds: 4, Audio: true})
	out := filepath.Join(dir, "cancel-out")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var once sync.Once
	var cancelled time.Time
	var running []int
	_, err := Transcode(ctx, TranscodeOptions{
		FFmpeg: ffmpeg, Input: src, Format: "mov", OutDir: out, HasAudio: true, Duration: 4, Preset: "veryslow",
		Renditions: Ladder(ProbeResult{Width: 1280, Height: 720}, []string{"360p", "720p"}),
		OnProgress: func(int) {
			once.Do(func() {
				running = videoProcessesWith(out)
				cancelled = time.Now()
				cancel()
			})
		},
	})
	if cancelled.IsZero() {
		t.Fatalf("no progress before the end (err %v)", err)
	}
	if len(running) == 0 {
		t.Error("ffmpeg was not found running during the transcode")
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if d := time.Since(cancelled); d > 3*time.Second {
		t.Errorf("Transcode returned %v after the cancel", d)
	}
	if pids := videoProcessesWith(out); len(pids) > 0 {
		t.Errorf("ffmpeg still running after cancel: %v", pids)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("OutDir left behind: %v", err)
	}
	videoNoHostPath(t, err.Error(), dir)
}

func TestThumbnail(t *testing.T) {
	t.Parallel()
	ffmpeg, _ := videoTools(t)
	dir := t.TempDir()
	cases := []struct {
		spec   videoClipSpec
		format string
		w, h   int
	}{
		{videoClipSpec{W: 800, H: 450, Seconds: 2}, "mov", 640, 360},
		{videoClipSpec{W: 640, H: 360, Seconds: 2, Rotate: 90}, "mov", 360, 640},
		{videoClipSpec{W: 320, H: 240, Seconds: 1, Container: "mkv"}, "matroska", 320, 240},
	}
	for _, c := range cases {
		src := videoClip(t, dir, c.spec)
		out := filepath.Join(dir, filepath.Base(src)+".jpg")
		if err := Thumbnail(context.Background(), ffmpeg, src, c.format, out, c.spec.Seconds); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		img, err := jpeg.Decode(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if b := img.Bounds(); b.Dx() != c.w || b.Dy() != c.h {
			t.Errorf("%s: thumbnail %dx%d, want %dx%d", filepath.Base(src), b.Dx(), b.Dy(), c.w, c.h)
		}
	}
	// A duration past the end: falls back to the start.
	src := videoClip(t, dir, videoClipSpec{W: 320, H: 240, Seconds: 1})
	out := filepath.Join(dir, "late.jpg")
	if err := Thumbnail(context.Background(), ffmpeg, src, "mov", out, 100); err != nil {
		t.Errorf("duration past the end: %v", err)
	}
	// Not a video: an error without paths, no file left.
	text := filepath.Join(dir, "text.mp4")
	if err := os.WriteFile(text, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	out = filepath.Join(dir, "bad.jpg")
	err := Thumbnail(context.Background(), ffmpeg, text, "mov", out, 1)
	if err == nil {
		t.Fatal("thumbnail of a text file")
	}
	videoNoHostPath(t, err.Error(), dir)
	if _, serr := os.Stat(out); !errors.Is(serr, os.ErrNotExist) {
		t.Errorf("output left behind: %v", serr)
	}
	if err := Thumbnail(context.Background(), ffmpeg, src, "concat", out, 1); !errors.Is(err, ErrNotVideo) {
		t.Errorf("format concat: err = %v", err)
	}
}

func TestVideoProgressParser(t *testing.T) {
	var got []int
	p := newVideoProgress(10, func(v int) { got = append(got, v) })
	for _, chunk := range []string{"frame=1\nout_time_us=N/A\nout_", "time_us=1000000\nprogress=continue\n",
		"out_time_us=500000\n", "out_time_ms=5000000\n", "out_time_us=9990000\n", "out_time_us=20000000\nprogress=end\n"} {
		if _, err := p.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	p.close()
	if len(got) == 0 || got[len(got)-1] != 99 {
		t.Errorf("progress %v, want ending at 99", got)
	}
	for i := 1; i < len(got); i++ {
		if got[i] <= got[i-1] {
			t.Errorf("progress %v not increasing", got)
		}
	}
	// Without a duration or callback nothing happens.
	q := newVideoProgress(0, func(int) { t.Error("called") })
	q.Write([]byte("out_time_us=1000\n"))
	q.close()
	r := newVideoProgress(5, nil)
	r.Write([]byte("out_time_us=1000\n"))
	r.close()
}

func TestVideoScanSegmentGarbage(t *testing.T) {
	dir := t.TempDir()
	for name, data := range map[string][]byte{
		"empty": nil,
		"text":  []byte(strings.Repeat("not a transport stream ", 40)),
		"sync4ever": func() []byte {
			b := make([]byte, 188*10)
			for i := 0; i < len(b); i += 188 {
				b[i] = 0x47
			}
			return b
		}(),
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := videoScanSegment(p); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestVideoFilterGraph(t *testing.T) {
	rs := Ladder(ProbeResult{Width: 1920, Height: 1080}, nil)
	want := "[0:V:0]scale=w=1920:h=1080:flags=bicubic,setsar=1,format=yuv420p,split=2[v3][f2];" +
		"[f2]scale=w=1280:h=720:flags=bicubic,setsar=1,format=yuv420p,split=2[v2][f1];" +
		"[f1]scale=w=854:h=480:flags=bicubic,setsar=1,format=yuv420p,split=2[v1][f0];" +
		"[f0]scale=w=640:h=360:flags=bicubic,setsar=1,format=yuv420p[v0]"
	if got := videoFilterGraph(rs); got != want {
		t.Errorf("ladder:\n got %s\nwant %s", got, want)
	}
	// Renditions that do not contain each other are scaled from the source.
	odd := []Rendition{{Name: "a", Width: 1000, Height: 100}, {Name: "b", Width: 200, Height: 400}, {Name: "c", Width: 100, Height: 50}}
	// c fits in both; it is made from the smaller one, b.
	want = "[0:V:0]split=2[f0][f1];" +
		"[f0]scale=w=1000:h=100:flags=bicubic,setsar=1,format=yuv420p[v0];" +
		"[f1]scale=w=200:h=400:flags=bicubic,setsar=1,format=yuv420p,split=2[v1][f2];" +
		"[f2]scale=w=100:h=50:flags=bicubic,setsar=1,format=yuv420p[v2]"
	if got := videoFilterGraph(odd); got != want {
		t.Errorf("odd:\n got %s\nwant %s", got, want)
	}
	one := []Rendition{{Name: "x", Width: 320, Height: 240}}
	if got := videoFilterGraph(one); got != "[0:V:0]scale=w=320:h=240:flags=bicubic,setsar=1,format=yuv420p[v0]" {
		t.Errorf("one: %s", got)
	}
}
