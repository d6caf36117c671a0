package media

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// videoTools returns the ffmpeg and ffprobe binaries, skipping the test if
// they are not installed (CI installs them).
func videoTools(t testing.TB) (ffmpeg, ffprobe string) {
	t.Helper()
	ffmpeg, err1 := exec.LookPath("ffmpeg")
	ffprobe, err2 := exec.LookPath("ffprobe")
	if err1 != nil || err2 != nil {
		t.Skip("ffmpeg/ffprobe not on PATH")
	}
	return ffmpeg, ffprobe
}

// videoClipSpec describes a generated test clip.
type videoClipSpec struct {
	W, H      int
	Seconds   float64
	Audio     bool
	Container string // mp4 (default), mkv, webm, avi, ts
	Rotate    int    // display rotation metadata (mp4 only)
	FastStart bool   // mp4: index in front
	PixFmt    string // default yuv420p
}

// videoClip generates a short testsrc2 (+ sine) clip in dir and returns its
// path.
func videoClip(t testing.TB, dir string, s videoClipSpec) string {
	t.Helper()
	ffmpeg, _ := videoTools(t)
	if s.Container == "" {
		s.Container = "mp4"
	}
	if s.Seconds == 0 {
		s.Seconds = 2
	}
	if s.PixFmt == "" {
		s.PixFmt = "yuv420p"
	}
	name := fmt.Sprintf("clip-%dx%d-%g-%v-%d-%v-%s.%s", s.W, s.H, s.Seconds, s.Audio, s.Rotate, s.FastStart, s.PixFmt, s.Container)
	out := filepath.Join(dir, name)
	args := []string{"-nostdin", "-hide_banner", "-v", "error", "-y",
		"-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=%dx%d:rate=30", s.W, s.H)}
	if s.Audio {
		args = append(args, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000")
	}
	args = append(args, "-t", strconv.FormatFloat(s.Seconds, 'f', -1, 64))
	switch s.Container {
	case "webm":
		args = append(args, "-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "300k")
		if s.Audio {
			args = append(args, "-c:a", "libopus")
		}
	case "avi":
		args = append(args, "-c:v", "mpeg4", "-q:v", "5")
		if s.Audio {
			args = append(args, "-c:a", "libmp3lame")
		}
	default:
		args = append(args, "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", s.PixFmt, "-g", "30")
		if s.Audio {
			args = append(args, "-c:a", "aac", "-b:a", "64k")
		}
	}
	switch s.Container {
	case "mp4":
		if s.FastStart {
			args = append(args, "-movflags", "+faststart")
		}
		args = append(args, "-f", "mp4")
	case "mkv":
		args = append(args, "-f", "matroska")
	case "webm":
		args = append(args, "-f", "webm")
	case "avi":
		args = append(args, "-f", "avi")
	case "ts":
		args = append(args, "-f", "mpegts")
	}
	tmp := out
	if s.Rotate != 0 {
		// Rotations of the same clip share one encode.
		tmp = filepath.Join(dir, fmt.Sprintf("clip-%dx%d-%g-%v-norot.mp4", s.W, s.H, s.Seconds, s.Audio))
	}
	if _, err := os.Stat(tmp); err != nil || tmp == out {
		videoRunTool(t, ffmpeg, append(args, tmp)...)
	}
	if s.Rotate != 0 {
		videoRunTool(t, ffmpeg, "-nostdin", "-hide_banner", "-v", "error", "-y", "-i", tmp,
			"-c", "copy", "-metadata:s:v:0", fmt.Sprintf("rotate=%d", s.Rotate), "-f", "mp4", out)
	}
	return out
}

func videoRunTool(t testing.TB, bin string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes()
}

// videoStreamInfo is what the tests read back with ffprobe.
type videoStreamInfo struct {
	CodecType string `json:"codec_type"`
	CodecName string `json:"codec_name"`
	Profile   string `json:"profile"`
	Level     int    `json:"level"`
	Width     int    `json:"width"`
	Height    int    `json:"height"`
	PixFmt    string `json:"pix_fmt"`
}

// videoReadBack probes a rendition through its playlist with one ffprobe:
// its streams, the timestamps of its video keyframes and the first video
// timestamp.
func videoReadBack(t testing.TB, playlist string) (streams []videoStreamInfo, keys []float64, first float64) {
	t.Helper()
	_, ffprobe := videoTools(t)
	out := videoRunTool(t, ffprobe, "-v", "error", "-show_entries", "stream:packet=stream_index,pts_time,flags",
		"-of", "json", playlist)
	var v struct {
		Streams []videoStreamInfo
		Packets []struct {
			StreamIndex int    `json:"stream_index"`
			PTSTime     string `json:"pts_time"`
			Flags       string `json:"flags"`
		}
	}
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatal(err)
	}
	first = math.Inf(1)
	for _, p := range v.Packets {
		f, err := strconv.ParseFloat(p.PTSTime, 64)
		if err != nil || p.StreamIndex >= len(v.Streams) || v.Streams[p.StreamIndex].CodecType != "video" {
			continue
		}
		first = min(first, f)
		if strings.HasPrefix(p.Flags, "K") {
			keys = append(keys, f)
		}
	}
	return v.Streams, keys, first
}

type videoTestSeg struct {
	name string
	dur  float64
}

func videoTestPlaylist(t testing.TB, path string) []videoTestSeg {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var segs []videoTestSeg
	dur := -1.0
	for line := range strings.SplitSeq(string(data), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "#EXTINF:"):
			d, _, _ := strings.Cut(strings.TrimPrefix(line, "#EXTINF:"), ",")
			dur, _ = strconv.ParseFloat(d, 64)
		case line != "" && !strings.HasPrefix(line, "#"):
			segs = append(segs, videoTestSeg{line, dur})
		}
	}
	return segs
}

type videoTestVariant struct {
	attrs map[string]string
	uri   string
}

func videoTestMaster(t testing.TB, path string) []videoTestVariant {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	attrRE := regexp.MustCompile(`([A-Z0-9-]+)=("[^"]*"|[^,]*)`)
	var vs []videoTestVariant
	var cur map[string]string
	for line := range strings.SplitSeq(string(data), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "#EXT-X-STREAM-INF:"):
			cur = map[string]string{}
			for _, m := range attrRE.FindAllStringSubmatch(strings.TrimPrefix(line, "#EXT-X-STREAM-INF:"), -1) {
				cur[m[1]] = strings.Trim(m[2], `"`)
			}
		case line != "" && !strings.HasPrefix(line, "#"):
			if cur == nil {
				t.Fatalf("URI without EXT-X-STREAM-INF: %q", line)
			}
			vs = append(vs, videoTestVariant{cur, line})
			cur = nil
		}
	}
	return vs
}

// videoNoHostPath fails if msg contains an absolute path.
func videoNoHostPath(t testing.TB, msg string, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		if d != "" && strings.Contains(msg, d) {
			t.Errorf("message contains the host path %q: %s", d, msg)
		}
	}
	if regexp.MustCompile(`(^|[\s'"(=:])/[A-Za-z]`).MatchString(msg) {
		t.Errorf("message contains an absolute path: %s", msg)
	}
}

// videoProcessesWith lists the processes whose command line contains s.
func videoProcessesWith(s string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(cmdline, []byte(s)) {
			continue
		}
		if stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil {
			if i := bytes.LastIndexByte(stat, ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
				continue // a zombie has no resources left
			}
		}
		pids = append(pids, pid)
	}
	return pids
}
