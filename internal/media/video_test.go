package media

import (
	"bytes"
	"context"
	"errors"
	"image"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestSniffVideo(t *testing.T) {
	ts := make([]byte, 512)
	ts[0], ts[188], ts[376] = 0x47, 0x47, 0x47
	m2ts := make([]byte, 512)
	m2ts[4], m2ts[196], m2ts[388] = 0x47, 0x47, 0x47
	tsShort := make([]byte, 300)
	tsShort[0], tsShort[188] = 0x47, 0x47
	tsBroken := make([]byte, 512)
	tsBroken[0], tsBroken[188] = 0x47, 0x47
	ftyp := func(brand string) []byte {
		return append([]byte{0, 0, 0, 0x18, 'f', 't', 'y', 'p'}, append([]byte(brand), make([]byte, 20)...)...)
	}
	riff := func(kind string) []byte {
		return append([]byte("RIFF\x00\x10\x00\x00"), append([]byte(kind), make([]byte, 20)...)...)
	}
	pngHead := imgPNG(t, image.NewGray(image.Rect(0, 0, 4, 4)))
	cases := []struct {
		name string
		head []byte
		want string
	}{
		{"mp4 isom", ftyp("isom"), "mov"},
		{"mp4 mp42", ftyp("mp42"), "mov"},
		{"mov qt", ftyp("qt  "), "mov"},
		{"m4v", ftyp("M4V "), "mov"},
		{"3gp", ftyp("3gp4"), "mov"},
		{"heic image", ftyp("heic"), ""},
		{"avif image", ftyp("avif"), ""},
		{"heif sequence", ftyp("msf1"), ""},
		{"ftyp with bad size", append([]byte{0, 0, 0, 4}, ftyp("isom")[4:]...), ""},
		{"mkv/webm", []byte{0x1A, 0x45, 0xDF, 0xA3, 0x9F, 0x42, 0x86, 0x81}, "matroska"},
		{"avi", riff("AVI "), "avi"},
		{"wav", riff("WAVE"), ""},
		{"webp", riff("WEBP"), ""},
		{"mpegts", ts, "mpegts"},
		{"m2ts", m2ts, "mpegts"},
		{"ts too short", tsShort, ""},
		{"ts one sync missing", tsBroken, ""},
		{"m3u8", []byte("#EXTM3U\n#EXT-X-VERSION:3\n#EXTINF:10,\nhttp://127.0.0.1:1/x\n"), ""},
		{"ffconcat", []byte("ffconcat version 1.0\nfile '/etc/passwd'\n"), ""},
		{"text", []byte("hello, this is not a video at all"), ""},
		{"png", pngHead, ""},
		{"jpeg", []byte{0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, 'J', 'F', 'I', 'F', 0}, ""},
		{"gif", []byte("GIF89a\x01\x00\x01\x00"), ""},
		{"ftyp at offset 0", []byte("ftypisom\x00\x00\x00\x00"), ""},
		{"empty", nil, ""},
		{"short", []byte{0, 0, 0}, ""},
	}
	for _, c := range cases {
		got, ok := SniffVideo(c.head)
		if got != c.want || ok != (c.want != "") {
			t.Errorf("%s: SniffVideo = %q, %v; want %q", c.name, got, ok, c.want)
		}
	}
}

func TestProbeVideoContainers(t *testing.T) {
	t.Parallel()
	_, ffprobe := videoTools(t)
	dir := t.TempDir()
	cases := []struct {
		container, format, vcodec, acodec string
	}{
		{"mp4", "mov", "h264", "aac"},
		{"webm", "matroska", "vp8", "opus"},
		{"mkv", "matroska", "h264", "aac"},
		{"avi", "avi", "mpeg4", "mp3"},
		{"ts", "mpegts", "h264", "aac"},
	}
	for _, c := range cases {
		t.Run(c.container, func(t *testing.T) {
			p := videoClip(t, dir, videoClipSpec{W: 160, H: 90, Seconds: 1, Audio: true, Container: c.container})
			// SniffVideo recognises what ffmpeg wrote.
			head := make([]byte, 512)
			f, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			n, _ := f.Read(head)
			f.Close()
			if got, ok := SniffVideo(head[:n]); !ok || got != c.format {
				t.Errorf("SniffVideo = %q, %v; want %q", got, ok, c.format)
			}
			got, err := ProbeVideo(context.Background(), ffprobe, p, c.format, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if got.Format != c.format || got.Width != 160 || got.Height != 90 || got.Rotation != 0 ||
				got.VideoCodec != c.vcodec || got.AudioCodec != c.acodec || !got.HasAudio {
				t.Errorf("ProbeVideo = %+v", got)
			}
			if math.Abs(got.Duration-1) > 0.15 {
				t.Errorf("Duration = %v, want about 1", got.Duration)
			}
			if math.Abs(got.FrameRate-30) > 0.01 {
				t.Errorf("FrameRate = %v, want 30", got.FrameRate)
			}
			if got.Bitrate <= 0 {
				t.Errorf("Bitrate = %d", got.Bitrate)
			}
		})
	}
	t.Run("no audio", func(t *testing.T) {
		p := videoClip(t, dir, videoClipSpec{W: 160, H: 90, Seconds: 1})
		got, err := ProbeVideo(context.Background(), ffprobe, p, "mov", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if got.HasAudio || got.AudioCodec != "" {
			t.Errorf("ProbeVideo = %+v, want no audio", got)
		}
	})
}

func TestProbeVideoRotation(t *testing.T) {
	t.Parallel()
	_, ffprobe := videoTools(t)
	dir := t.TempDir()
	for _, rot := range []int{90, 180, 270} {
		p := videoClip(t, dir, videoClipSpec{W: 320, H: 180, Seconds: 0.5, Rotate: rot})
		got, err := ProbeVideo(context.Background(), ffprobe, p, "mov", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		wantW, wantH := 320, 180
		if rot != 180 {
			wantW, wantH = 180, 320
		}
		if got.Width != wantW || got.Height != wantH {
			t.Errorf("rotate=%d: display size %dx%d, want %dx%d", rot, got.Width, got.Height, wantW, wantH)
		}
		if got.Rotation%180 != rot%180 || got.Rotation == 0 {
			t.Errorf("rotate=%d: Rotation = %d", rot, got.Rotation)
		}
	}
}

func TestVideoRotationValues(t *testing.T) {
	type sd = []videoSideData
	dm := func(r float64) sd {
		return sd{{Type: "Display Matrix", Rotation: r}}
	}
	cases := []struct {
		tag  string
		side sd
		want int
	}{
		{"", nil, 0},
		{"90", nil, 90},
		{"-90", nil, 270},
		{"450", nil, 90},
		{"", dm(-90), 90},
		{"", dm(90), 270},
		{"", dm(180), 180},
		{"", dm(-180), 180},
		{"", dm(-89.9), 90},
		{"", sd{{Type: "Stereo 3D"}}, 0},
	}
	for _, c := range cases {
		if got := videoRotation(c.tag, c.side); got != c.want {
			t.Errorf("videoRotation(%q, %v) = %d, want %d", c.tag, c.side, got, c.want)
		}
	}
}

func TestProbeVideoAnamorphic(t *testing.T) {
	pj := videoProbeJSON{}
	pj.Format.FormatName = "mpegts"
	pj.Format.Duration = "10"
	pj.Streams = make([]videoProbeStream, 2)
	// A cover picture first: it must not be taken for the video.
	pj.Streams[0].CodecType, pj.Streams[0].CodecName = "video", "mjpeg"
	pj.Streams[0].Width, pj.Streams[0].Height = 600, 600
	pj.Streams[0].Disposition = map[string]int{"attached_pic": 1}
	pj.Streams[1].CodecType, pj.Streams[1].CodecName = "video", "mpeg2video"
	pj.Streams[1].Width, pj.Streams[1].Height, pj.Streams[1].SAR = 720, 576, "64:45"
	pj.Streams[1].AvgFrameRate = "25/1"
	p, err := videoCheckProbe(pj, "mpegts", "mpegts", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if p.Width != 1024 || p.Height != 576 || p.VideoCodec != "mpeg2video" || p.FrameRate != 25 {
		t.Errorf("got %+v, want 1024x576 mpeg2video 25 fps", p)
	}
	pj.Streams = pj.Streams[:1]
	if _, err := videoCheckProbe(pj, "mpegts", "mpegts", time.Hour); !errors.Is(err, ErrBadVideo) {
		t.Errorf("only a cover picture: err = %v, want ErrBadVideo", err)
	}
}

func TestProbeVideoRejects(t *testing.T) {
	t.Parallel()
	ffmpeg, ffprobe := videoTools(t)
	dir := t.TempDir()
	ctx := context.Background()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	clip := videoClip(t, dir, videoClipSpec{W: 160, H: 90, Seconds: 2, Audio: true})
	fastClip := videoClip(t, dir, videoClipSpec{W: 160, H: 90, Seconds: 2, Audio: true, FastStart: true})
	whole, err := os.ReadFile(clip)
	if err != nil {
		t.Fatal(err)
	}
	fastWhole, err := os.ReadFile(fastClip)
	if err != nil {
		t.Fatal(err)
	}
	mkv := videoClip(t, dir, videoClipSpec{W: 160, H: 90, Seconds: 1, Container: "mkv"})
	audioOnly := filepath.Join(dir, "audio.mp4")
	videoRunTool(t, ffmpeg, "-v", "error", "-f", "lavfi", "-i", "sine", "-t", "1", "-c:a", "aac", audioOnly)

	cases := []struct {
		name, path, format string
		maxDur             time.Duration
		want               []error
	}{
		{"text named .mp4", write("notes.mp4", []byte("just some text, not a video\n")), "mov", 0, []error{ErrNotVideo}},
		{"zero-length", write("empty.mp4", nil), "mov", 0, []error{ErrNotVideo}},
		{"png", write("image.mp4", imgPNG(t, image.NewRGBA(image.Rect(0, 0, 64, 64)))), "mov", 0, []error{ErrNotVideo}},
		{"truncated mp4 (index at end)", write("trunc.mp4", whole[:len(whole)*3/10]), "mov", 0, []error{ErrNotVideo, ErrBadVideo}},
		{"truncated mp4 (index in front)", write("trunc-fast.mp4", fastWhole[:len(fastWhole)*3/10]), "mov", 0, []error{ErrNotVideo, ErrBadVideo}},
		{"mkv forced as mov", mkv, "mov", 0, []error{ErrNotVideo}},
		{"mp4 forced as matroska", clip, "matroska", 0, []error{ErrNotVideo}},
		{"format not allowed: hls", clip, "hls", 0, []error{ErrNotVideo}},
		{"format not allowed: concat", clip, "concat", 0, []error{ErrNotVideo}},
		{"format not allowed: image2", clip, "image2", 0, []error{ErrNotVideo}},
		{"format not allowed: empty", clip, "", 0, []error{ErrNotVideo}},
		{"audio only", audioOnly, "mov", 0, []error{ErrBadVideo}},
		{"too long", clip, "mov", time.Second, []error{ErrBadVideo}},
	}
	for _, c := range cases {
		_, err := ProbeVideo(ctx, ffprobe, c.path, c.format, c.maxDur)
		ok := false
		for _, w := range c.want {
			ok = ok || errors.Is(err, w)
		}
		if !ok {
			t.Errorf("%s: err = %v, want one of %v", c.name, err, c.want)
			continue
		}
		videoNoHostPath(t, err.Error(), dir)
	}
	// The whole clips are fine.
	for _, p := range []string{clip, fastClip} {
		if _, err := ProbeVideo(ctx, ffprobe, p, "mov", time.Minute); err != nil {
			t.Errorf("complete clip: %v", err)
		}
	}
	// A missing file is not the video's fault.
	_, err = ProbeVideo(ctx, ffprobe, filepath.Join(dir, "missing.mp4"), "mov", 0)
	if err == nil || errors.Is(err, ErrNotVideo) || errors.Is(err, ErrBadVideo) {
		t.Errorf("missing file: err = %v", err)
	} else {
		videoNoHostPath(t, err.Error(), dir)
	}
	// Neither is a missing ffprobe.
	_, err = ProbeVideo(ctx, filepath.Join(dir, "no-ffprobe"), clip, "mov", 0)
	if err == nil || errors.Is(err, ErrNotVideo) || errors.Is(err, ErrBadVideo) {
		t.Errorf("missing ffprobe: err = %v", err)
	} else {
		videoNoHostPath(t, err.Error(), dir)
	}
	// A cancelled context gives the context's error.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := ProbeVideo(cctx, ffprobe, clip, "mov", 0); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: err = %v", err)
	}
}

func TestLadder(t *testing.T) {
	type wh struct {
		name string
		w, h int
	}
	all := []string{"360p", "480p", "720p", "1080p"}
	cases := []struct {
		name  string
		w, h  int
		names []string
		want  []wh
	}{
		{"1080p landscape", 1920, 1080, all, []wh{{"360p", 640, 360}, {"480p", 854, 480}, {"720p", 1280, 720}, {"1080p", 1920, 1080}}},
		{"default names", 1920, 1080, nil, []wh{{"360p", 640, 360}, {"480p", 854, 480}, {"720p", 1280, 720}, {"1080p", 1920, 1080}}},
		{"portrait 1080x1920", 1080, 1920, all, []wh{{"360p", 360, 640}, {"480p", 480, 854}, {"720p", 720, 1280}, {"1080p", 1080, 1920}}},
		{"720p source: nothing above", 1280, 720, all, []wh{{"360p", 640, 360}, {"480p", 854, 480}, {"720p", 1280, 720}}},
		{"odd 853x479", 853, 479, all, []wh{{"360p", 642, 360}}},
		{"odd 853x480", 853, 480, all, []wh{{"360p", 640, 360}, {"480p", 852, 480}}},
		{"tiny 320x240", 320, 240, all, []wh{{"240p", 320, 240}}},
		{"tiny odd 321x241", 321, 241, all, []wh{{"240p", 320, 240}}},
		{"tiny portrait 240x320", 240, 320, all, []wh{{"240p", 240, 320}}},
		{"names filter", 1920, 1080, []string{"720p", " 360P ", "bogus", "720p", "0360p", "p", "99999p"}, []wh{{"360p", 640, 360}, {"720p", 1280, 720}}},
		{"only unknown names", 640, 360, []string{"hd", "4k"}, []wh{{"360p", 640, 360}}},
		{"4:3 1440x1080", 1440, 1080, all, []wh{{"360p", 480, 360}, {"480p", 640, 480}, {"720p", 960, 720}, {"1080p", 1440, 1080}}},
		{"square", 720, 720, all, []wh{{"360p", 360, 360}, {"480p", 480, 480}, {"720p", 720, 720}}},
		{"4k with extra rungs", 3840, 2160, []string{"240p", "2160p", "1440p"}, []wh{{"240p", 426, 240}, {"1440p", 2560, 1440}, {"2160p", 3840, 2160}}},
		{"ultrawide", 2560, 1080, []string{"360p", "1080p"}, []wh{{"360p", 854, 360}, {"1080p", 2560, 1080}}},
	}
	for _, c := range cases {
		got := Ladder(ProbeResult{Width: c.w, Height: c.h}, c.names)
		var gw []wh
		for _, r := range got {
			gw = append(gw, wh{r.Name, r.Width, r.Height})
			if r.Width%2 != 0 || r.Height%2 != 0 || r.Width > c.w || r.Height > c.h {
				t.Errorf("%s: %s is %dx%d: odd or above the source", c.name, r.Name, r.Width, r.Height)
			}
			if r.VideoBitrate <= 0 || r.MaxRate < r.VideoBitrate || r.BufSize < r.MaxRate || r.AudioBitrate <= 0 {
				t.Errorf("%s: %s bitrates %+v", c.name, r.Name, r)
			}
		}
		if !reflect.DeepEqual(gw, c.want) {
			t.Errorf("%s: Ladder = %v, want %v", c.name, gw, c.want)
		}
	}

	rs := Ladder(ProbeResult{Width: 1920, Height: 1080}, all)
	wantRates := map[string][2]int64{"360p": {800000, 96000}, "480p": {1400000, 128000}, "720p": {2800000, 128000}, "1080p": {5000000, 128000}}
	for _, r := range rs {
		w := wantRates[r.Name]
		if r.VideoBitrate != w[0] || r.AudioBitrate != w[1] {
			t.Errorf("%s: video %d audio %d, want %d %d", r.Name, r.VideoBitrate, r.AudioBitrate, w[0], w[1])
		}
		if r.MaxRate != r.VideoBitrate*107/100 || r.BufSize != r.MaxRate*3/2 {
			t.Errorf("%s: maxrate %d bufsize %d", r.Name, r.MaxRate, r.BufSize)
		}
	}
	// Bitrates grow with the rung, also between and beyond the table.
	prev := int64(0)
	for _, rung := range []int{16, 100, 144, 200, 240, 300, 360, 480, 540, 720, 900, 1080, 1440, 2160, 4320} {
		b := videoBitrate(rung)
		if b <= prev {
			t.Errorf("videoBitrate(%d) = %d, not above %d", rung, b, prev)
		}
		prev = b
	}
	if Ladder(ProbeResult{}, all) != nil {
		t.Error("Ladder of an empty probe result is not nil")
	}
}

func TestParseVideoResolutions(t *testing.T) {
	got, err := ParseVideoResolutions(" 360p, 720P,360p ,1080p")
	if err != nil || !reflect.DeepEqual(got, []string{"360p", "720p", "1080p"}) {
		t.Errorf("got %v, %v", got, err)
	}
	got, err = ParseVideoResolutions("")
	if err != nil || !reflect.DeepEqual(got, DefaultVideoResolutions) {
		t.Errorf("empty: got %v, %v", got, err)
	}
	for _, bad := range []string{"720", "720p,,1080p", "hd", "8p", "9000p", "-360p"} {
		if _, err := ParseVideoResolutions(bad); err == nil || !strings.Contains(err.Error(), "resolution") {
			t.Errorf("%q: err = %v", bad, err)
		}
	}
}

func TestVideoTail(t *testing.T) {
	var tail videoTail
	for i := range 10000 {
		tail.Write([]byte{byte('a' + i%26)})
	}
	tail.Write(bytes.Repeat([]byte("x"), 100))
	s := tail.String()
	if len(s) != videoTailSize || !strings.HasSuffix(s, strings.Repeat("x", 100)) {
		t.Errorf("tail has %d bytes", len(s))
	}
	tail.Write(bytes.Repeat([]byte("y"), 3*videoTailSize))
	if s := tail.String(); s != strings.Repeat("y", videoTailSize) {
		t.Errorf("tail after a big write: %d bytes", len(s))
	}
}

func TestVideoScrub(t *testing.T) {
	r := videoRun{paths: map[string]string{"/srv/x/in.mp4": "<input>", "/srv/x": "<dir>", "/tmp/out": "<out>"}}
	got := r.scrub("Error opening 'file:/srv/x/in.mp4' and /tmp/out/360p/segment_000.ts, also /etc/passwd and (/var/lib/y) N/A 1/2 x=/home/u")
	want := "Error opening '<input>' and <out>/360p/segment_000.ts, also <path> and (<path>) N/A 1/2 x=<path>"
	if got != want {
		t.Errorf("scrub:\n got %s\nwant %s", got, want)
	}
}
