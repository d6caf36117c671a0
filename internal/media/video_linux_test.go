package media

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// videoFIFOCanary makes a named pipe at path and reports whether anything
// opened it for reading: opening a FIFO for writing blocks until a reader
// comes, so the writer side finishing its open proves a read attempt.
func videoFIFOCanary(t *testing.T, path string) (opened func() bool) {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err == nil {
			f.Close()
		}
		close(done)
	}()
	var seen atomic.Bool
	t.Cleanup(func() {
		// Release the writer if nobody came.
		if f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
			<-done
			f.Close()
		}
	})
	return func() bool {
		if seen.Load() {
			return true
		}
		select {
		case <-done:
			seen.Store(true)
			return true
		case <-time.After(300 * time.Millisecond):
			return false
		}
	}
}

// videoTCPCanary listens on loopback and counts connections.
func videoTCPCanary(t *testing.T) (addr string, conns *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns = new(atomic.Int32)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String(), conns
}

// TestProbeVideoCraftedReferences: playlists and concat scripts that point
// at local files and URLs are refused by SniffVideo, and even when forced
// through ProbeVideo (or Transcode, or Thumbnail) as "mov" nothing they
// reference is opened.
func TestProbeVideoCraftedReferences(t *testing.T) {
	t.Parallel()
	ffmpeg, ffprobe := videoTools(t)
	dir := t.TempDir()
	addr, conns := videoTCPCanary(t)

	// The canary works: ffprobe left to its own devices follows an
	// ffconcat script into the FIFO.
	control := filepath.Join(dir, "control.fifo")
	controlOpened := videoFIFOCanary(t, control)
	script := filepath.Join(dir, "control.ffconcat")
	if err := os.WriteFile(script, fmt.Appendf(nil, "ffconcat version 1.0\nfile '%s'\n", control), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	_ = exec.CommandContext(ctx, ffprobe, "-v", "quiet", "-safe", "0", "-i", script).Run()
	cancel()
	if !controlOpened() {
		t.Fatal("control: ffprobe on an ffconcat script did not open the FIFO; the canary proves nothing")
	}

	fifo := filepath.Join(dir, "canary.fifo")
	fifoOpened := videoFIFOCanary(t, fifo)
	files := map[string]string{
		"playlist.m3u8": fmt.Sprintf("#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXT-X-MEDIA-SEQUENCE:0\n"+
			"#EXTINF:10,\n%s\n#EXTINF:10,\nfile:///etc/passwd\n#EXTINF:10,\n/etc/passwd\n"+
			"#EXTINF:10,\nhttp://%s/x.ts\n#EXTINF:10,\nhttp://127.0.0.1:1/x\n#EXT-X-ENDLIST\n", fifo, addr),
		"script.ffconcat": fmt.Sprintf("ffconcat version 1.0\nfile '%s'\nfile '/etc/passwd'\n"+
			"file 'http://%s/x.mp4'\nfile 'http://127.0.0.1:1/x'\n", fifo, addr),
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if f, ok := SniffVideo([]byte(content)); ok {
			t.Errorf("%s: SniffVideo = %q", name, f)
		}
		for _, format := range []string{"mov", "mpegts"} {
			_, err := ProbeVideo(context.Background(), ffprobe, p, format, 0)
			if !errors.Is(err, ErrNotVideo) && !errors.Is(err, ErrBadVideo) {
				t.Errorf("%s forced as %s: err = %v", name, format, err)
			}
		}
		for _, format := range []string{"hls", "concat", "applehttp"} {
			if _, err := ProbeVideo(context.Background(), ffprobe, p, format, 0); !errors.Is(err, ErrNotVideo) {
				t.Errorf("%s as %s: err = %v", name, format, err)
			}
		}
		_, err := Transcode(context.Background(), TranscodeOptions{FFmpeg: ffmpeg, Input: p, Format: "mov",
			OutDir: filepath.Join(dir, name+".out"), Renditions: []Rendition{{Name: "240p", Width: 426, Height: 240}}})
		if err == nil {
			t.Errorf("%s: Transcode succeeded", name)
		}
		if err := Thumbnail(context.Background(), ffmpeg, p, "mov", filepath.Join(dir, name+".jpg"), 10); err == nil {
			t.Errorf("%s: Thumbnail succeeded", name)
		}
	}
	if fifoOpened() {
		t.Error("a referenced local file (FIFO) was opened")
	}
	if n := conns.Load(); n != 0 {
		t.Errorf("%d connections to the referenced URL", n)
	}
}

// TestTranscodeDiesWithParent: when the process running Transcode is
// killed with SIGKILL (no chance to clean up), ffmpeg dies too.
func TestTranscodeDiesWithParent(t *testing.T) {
	t.Parallel()
	videoTools(t)
	dir := t.TempDir()
	src := videoClip(t, dir, videoClipSpec{W: 1280, H: 720, Seconds: 4, Audio: true})
	out := filepath.Join(dir, "orphan-out")
	cmd := exec.Command(os.Args[0], "-test.run=^TestVideoHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "PLAZA_VIDEO_HELPER_IN="+src, "PLAZA_VIDEO_HELPER_OUT="+out)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	deadline := time.After(60 * time.Second)
wait:
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("helper ended before transcoding")
			}
			if l == "transcoding" {
				break wait
			}
		case <-deadline:
			t.Fatal("helper did not start transcoding")
		}
	}
	pids := videoProcessesWith(out)
	if len(pids) == 0 {
		t.Fatal("no ffmpeg found for the helper's transcode")
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	for start := time.Now(); time.Since(start) < 5*time.Second; time.Sleep(50 * time.Millisecond) {
		if len(videoProcessesWith(out)) == 0 {
			return
		}
	}
	t.Errorf("ffmpeg %v survived its parent's SIGKILL", videoProcessesWith(out))
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// TestVideoHelperProcess is the process killed by TestTranscodeDiesWithParent.
func TestVideoHelperProcess(t *testing.T) {
	in, out := os.Getenv("PLAZA_VIDEO_HELPER_IN"), os.Getenv("PLAZA_VIDEO_HELPER_OUT")
	if in == "" || out == "" {
		t.Skip("helper process only")
	}
	ffmpeg, _ := videoTools(t)
	said := false
	_, _ = Transcode(context.Background(), TranscodeOptions{
		FFmpeg: ffmpeg, Input: in, Format: "mov", OutDir: out, HasAudio: true, Duration: 4, Preset: "veryslow",
		Renditions: Ladder(ProbeResult{Width: 1280, Height: 720}, []string{"360p", "720p"}),
		OnProgress: func(int) {
			if !said {
				said = true
				fmt.Println("transcoding")
			}
		},
	})
	time.Sleep(time.Minute) // killed before this ends
}
