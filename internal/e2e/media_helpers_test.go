package e2e

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// needFFmpeg skips when FFmpeg is not installed (CI installs it).
func needFFmpeg(t *testing.T) {
	t.Helper()
	for _, bin := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not on PATH", bin)
		}
	}
}

// makeClip generates a short test video with FFmpeg.
func makeClip(t *testing.T, name string, args ...string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), name)
	cmd := exec.Command("ffmpeg", append(append([]string{"-hide_banner", "-loglevel", "error", "-y"}, args...), out)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v: %s", err, b)
	}
	return out
}

// clip640 is a 3 s 640x360 video with sound.
func clip640(t *testing.T) string {
	return makeClip(t, "clip.mp4", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25:duration=3",
		"-f", "lavfi", "-i", "sine=frequency=440:duration=3", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest")
}

// tusUpload uploads data with the tus protocol in chunks and returns the
// upload id (the last element of the Location URL).
func (c *client) tusUpload(data []byte, filename string, chunk int) string {
	c.t.Helper()
	meta := "filename " + base64.StdEncoding.EncodeToString([]byte(filename)) + ",filetype " + base64.StdEncoding.EncodeToString([]byte("application/octet-stream"))
	req, _ := http.NewRequest("POST", c.e.URL+"/api/uploads/", nil)
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Upload-Length", strconv.Itoa(len(data)))
	req.Header.Set("Upload-Metadata", meta)
	c.auth(req)
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		c.t.Fatalf("tus create: %d", resp.StatusCode)
	}
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, "http") {
		c.t.Fatalf("tus Location %q is not absolute", loc)
	}
	for off := 0; off < len(data); off += chunk {
		end := min(off+chunk, len(data))
		req, _ := http.NewRequest("PATCH", loc, bytes.NewReader(data[off:end]))
		req.Header.Set("Tus-Resumable", "1.0.0")
		req.Header.Set("Upload-Offset", strconv.Itoa(off))
		req.Header.Set("Content-Type", "application/offset+octet-stream")
		c.auth(req)
		resp, err := c.http.Do(req)
		if err != nil {
			c.t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Upload-Offset") != strconv.Itoa(end) {
			c.t.Fatalf("tus patch at %d: %d offset %q", off, resp.StatusCode, resp.Header.Get("Upload-Offset"))
		}
	}
	return loc[strings.LastIndex(strings.TrimSuffix(loc, "/"), "/")+1:]
}

func (c *client) auth(req *http.Request) {
	if c.Origin != "" {
		req.Header.Set("Origin", c.Origin)
	}
	if c.Bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.Bearer)
	}
}

// uploadMedia uploads a file with tus and turns it into a media item.
func (c *client) uploadMedia(path string) response {
	c.t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		c.t.Fatal(err)
	}
	id := c.tusUpload(data, filepath.Base(path), 256<<10)
	return c.do("POST", "/api/media/", map[string]string{"upload_id": id})
}

// waitMedia polls a media item until its status is final.
func (c *client) waitMedia(id int64, timeout time.Duration) map[string]any {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		m := expect(c.t, c.do("GET", fmt.Sprintf("/api/media/%d/", id), nil), http.StatusOK).JSON()
		if m["status"] == "ready" || m["status"] == "failed" {
			return m
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("media %d still %v after %v", id, m["status"], timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ffprobeStreams describes the streams of a file as "codec WxH" / "codec".
func ffprobeStreams(t *testing.T, data []byte) []string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "probe.ts")
	if err := os.WriteFile(f, data, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "stream=codec_type,codec_name,width,height", "-of", "csv=p=0", f).Output()
	if err != nil {
		t.Fatalf("ffprobe segment: %v", err)
	}
	return strings.Fields(strings.TrimSpace(string(out)))
}
