package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"plaza/internal/db/dbtest"
)

// TestCraftedMediaInputs: files that would make FFmpeg open something else,
// broken files and files that lie about their type are refused with 400,
// and the upload is consumed.
func TestCraftedMediaInputs(t *testing.T) {
	needFFmpeg(t)
	dbtest.Each(t, func(t *testing.T, eng dbtest.Engine) {
		e := start(t, eng, nil)
		u := e.newUser("crafty")
		dir := t.TempDir()
		write := func(name, content string) string {
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			return p
		}
		good := clip640(t)
		full := mustRead(t, good)
		cases := map[string]string{
			"m3u8 to passwd":   write("a.m3u8", "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n/etc/passwd\n#EXT-X-ENDLIST\n"),
			"m3u8 to loopback": write("b.mp4", "#EXTM3U\n#EXTINF:10,\nhttp://127.0.0.1:1/secret.ts\n#EXT-X-ENDLIST\n"),
			"ffconcat":         write("c.mp4", "ffconcat version 1.0\nfile '/etc/passwd'\n"),
			"text named mp4":   write("d.mp4", "just some text\n"),
			"truncated mp4":    write("e.mp4", string(full[:len(full)*3/10])),
			"html":             write("f.mp4", "<html><body>hi</body></html>"),
		}
		for name, path := range cases {
			r := u.uploadMedia(path)
			if r.StatusCode != http.StatusBadRequest || r.Str("code") != "invalid_input" {
				t.Errorf("%s: %d %s", name, r.StatusCode, r.Body)
			}
		}
		// A zero-length upload.
		id := u.tusUpload(nil, "empty.mp4", 1)
		expect(t, u.do("POST", "/api/media/", map[string]string{"upload_id": id}), http.StatusBadRequest)
		// Consumed: the same id again is unknown.
		r := expect(t, u.do("POST", "/api/media/", map[string]string{"upload_id": id}), http.StatusBadRequest)
		if errs, _ := r.JSON()["errors"].(map[string]any); errs["upload_id"] == nil {
			t.Errorf("reused upload id: %s", r.Body)
		}
		// Someone else's upload id.
		other := e.newUser("other")
		theirs := other.tusUpload(full, "clip.mp4", 1<<20)
		expect(t, u.do("POST", "/api/media/", map[string]string{"upload_id": theirs}), http.StatusBadRequest)
		// No media item was made of any of it.
		var n int
		if err := e.App.DB.QueryRow(t.Context(), `SELECT count(*) FROM media`).Scan(&n); err != nil || n != 0 {
			t.Errorf("%d media rows from bad input (%v)", n, err)
		}
		// A small image by multipart works, decided by content not name.
		img := filepath.Join(dir, "photo.mp4")
		if err := os.WriteFile(img, testPNG(t, 50, 40), 0o600); err != nil {
			t.Fatal(err)
		}
		m := expect(t, u.multipartForm("POST", "/api/media/", nil, img), http.StatusCreated).JSON()
		if m["kind"] != "image" || m["status"] != "ready" || m["width"] != 50.0 || m["blurhash"] == nil || m["url"] == nil {
			t.Errorf("image item %v", m)
		}
		expect(t, u.multipartForm("POST", "/api/media/", nil, ""), http.StatusBadRequest)
	})
}
