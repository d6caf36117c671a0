package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"

	"plaza/internal/db/dbtest"
)

func testPNG(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.RGBA{uint8(x), uint8(y), 200, 255})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// jpegWithSecretExif is a JPEG carrying an APP1 Exif segment with a
// recognisable string where GPS data would be.
func jpegWithSecretExif(t *testing.T) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 64, 48))
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, nil); err != nil {
		t.Fatal(err)
	}
	payload := append([]byte("Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08"), []byte("GPS-SECRET-52.5200N-13.4050E")...)
	seg := []byte{0xFF, 0xE1, 0, 0}
	binary.BigEndian.PutUint16(seg[2:], uint16(len(payload)+2))
	seg = append(seg, payload...)
	out := append([]byte{0xFF, 0xD8}, seg...)
	return append(out, b.Bytes()[2:]...)
}

// bombPNG declares 100000×100000 pixels in a few bytes.
func bombPNG() []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	chunk := func(typ string, data []byte) {
		binary.Write(&b, binary.BigEndian, uint32(len(data)))
		b.WriteString(typ)
		b.Write(data)
		crc := crc32.NewIEEE()
		crc.Write([]byte(typ))
		crc.Write(data)
		binary.Write(&b, binary.BigEndian, crc.Sum32())
	}
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], 100000)
	binary.BigEndian.PutUint32(ihdr[4:], 100000)
	ihdr[8], ihdr[9] = 8, 6
	chunk("IHDR", ihdr)
	chunk("IDAT", []byte{0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01})
	chunk("IEND", nil)
	return b.Bytes()
}

func (c *client) multipart(method, path string, files map[string][]byte) response {
	c.t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for field, data := range files {
		fw, err := mw.CreateFormFile(field, field+".png")
		if err != nil {
			c.t.Fatal(err)
		}
		fw.Write(data)
	}
	mw.Close()
	req, _ := http.NewRequest(method, c.e.URL+path, &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	if c.Origin != "" {
		req.Header.Set("Origin", c.Origin)
	}
	if c.Bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.Bearer)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{Response: resp, Body: b}
}

func TestProfileImages(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, eng dbtest.Engine) {
		e := start(t, eng, map[string]string{"PLAZA_MAX_IMAGE_BYTES": "300000"})
		u := e.newUser("pics")

		r := expect(t, u.multipart("PUT", "/api/users/me/images/", map[string][]byte{"profile_picture": testPNG(t, 300, 200)}), http.StatusOK).JSON()
		pic := r["profile_picture"].(string)
		if !strings.HasPrefix(pic, e.URL+"/media/profiles/") || !strings.HasSuffix(r["cover_image"].(string), "default-cover.svg") {
			t.Fatalf("after upload: %v", r)
		}
		img := expect(t, e.client().do("GET", strings.TrimPrefix(pic, e.URL), nil), http.StatusOK)
		if img.Header.Get("Content-Type") != "image/jpeg" || !strings.Contains(img.Header.Get("Cache-Control"), "immutable") || img.Header.Get("ETag") == "" {
			t.Errorf("image headers %v", img.Header)
		}
		cfg, format, err := image.DecodeConfig(bytes.NewReader(img.Body))
		if err != nil || format != "jpeg" || cfg.Width != 200 || cfg.Height != 200 {
			t.Errorf("stored avatar: %v %s %dx%d (want a 200x200 square crop)", err, format, cfg.Width, cfg.Height)
		}
		// Conditional and range requests.
		c := e.client()
		c.Header.Set("If-None-Match", img.Header.Get("ETag"))
		expect(t, c.do("GET", strings.TrimPrefix(pic, e.URL), nil), http.StatusNotModified)
		c.Header.Del("If-None-Match")
		c.Header.Set("Range", "bytes=0-9")
		if rg := expect(t, c.do("GET", strings.TrimPrefix(pic, e.URL), nil), http.StatusPartialContent); len(rg.Body) != 10 {
			t.Errorf("range body %d bytes", len(rg.Body))
		}

		// JSON with base64 (a data: URL), for the cover; metadata is stripped.
		exif := jpegWithSecretExif(t)
		r = expect(t, u.do("PUT", "/api/users/me/images/", map[string]any{
			"cover_image": "data:image/jpeg;base64," + base64.StdEncoding.EncodeToString(exif),
		}), http.StatusOK).JSON()
		cover := r["cover_image"].(string)
		if r["profile_picture"] != pic || !strings.HasPrefix(cover, e.URL+"/media/profiles/") {
			t.Fatalf("after cover: %v", r)
		}
		stored := expect(t, e.client().do("GET", strings.TrimPrefix(cover, e.URL), nil), http.StatusOK).Body
		if bytes.Contains(stored, []byte("GPS-SECRET")) || bytes.Contains(stored, []byte("Exif")) {
			t.Error("stored cover keeps EXIF data")
		}

		// Replacing the picture removes the old file.
		r = expect(t, u.multipart("PUT", "/api/users/me/images/", map[string][]byte{"profile_picture": testPNG(t, 64, 64)}), http.StatusOK).JSON()
		if r["profile_picture"] == pic {
			t.Fatal("picture URL unchanged after replacement")
		}
		expect(t, e.client().do("GET", strings.TrimPrefix(pic, e.URL), nil), http.StatusNotFound)

		// Bad input, and nothing changes.
		current := r["profile_picture"]
		for name, tc := range map[string]struct {
			files  map[string][]byte
			status int
		}{
			"text":          {map[string][]byte{"profile_picture": []byte("hello, I am not an image")}, 400},
			"html":          {map[string][]byte{"profile_picture": []byte("<html><script>alert(1)</script></html>")}, 400},
			"svg":           {map[string][]byte{"profile_picture": []byte(`<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>`)}, 400},
			"bomb":          {map[string][]byte{"profile_picture": bombPNG()}, 400},
			"truncated":     {map[string][]byte{"profile_picture": truncated(testPNG(t, 100, 100))}, 400},
			"too large":     {map[string][]byte{"profile_picture": append(testPNG(t, 10, 10), make([]byte, 400000)...)}, 413},
			"empty":         {map[string][]byte{"profile_picture": {}}, 400},
			"no known part": {map[string][]byte{"avatar": testPNG(t, 10, 10)}, 400},
		} {
			got := u.multipart("PUT", "/api/users/me/images/", tc.files)
			if got.StatusCode != tc.status || got.Str("detail") == "" {
				t.Errorf("%s: %d %s, want %d", name, got.StatusCode, got.Body, tc.status)
			}
		}
		expect(t, u.do("PUT", "/api/users/me/images/", map[string]any{"profile_picture": "not base64 !!!"}), http.StatusBadRequest)
		expect(t, u.do("PUT", "/api/users/me/images/", map[string]any{"profile_picture": 12}), http.StatusBadRequest)
		expect(t, u.do("PUT", "/api/users/me/images/", `text`), http.StatusBadRequest)
		req, _ := http.NewRequest("PUT", e.URL+"/api/users/me/images/", strings.NewReader("x"))
		req.Header.Set("Content-Type", "image/png")
		req.Header.Set("Origin", trustedOrigin)
		if resp, err := u.http.Do(req); err != nil || resp.StatusCode != http.StatusUnsupportedMediaType {
			t.Errorf("raw image body: %v %v", resp.StatusCode, err)
		} else {
			resp.Body.Close()
		}
		expect(t, e.client().multipart("PUT", "/api/users/me/images/", map[string][]byte{"profile_picture": testPNG(t, 10, 10)}), http.StatusUnauthorized)
		if got := expect(t, u.do("GET", "/api/users/me/", nil), http.StatusOK).JSON()["profile_picture"]; got != current {
			t.Errorf("a failed upload changed the picture: %v", got)
		}

		// Path tricks and private prefixes under /media/.
		for _, p := range []string{"/media/../go.mod", "/media/profiles/../../secret_key", "/media/%2e%2e/plaza.db", "/media/uploads/x", "/media/profiles/1/nope.jpg"} {
			got := e.uncheckedClient().do("GET", p, nil)
			if got.StatusCode != http.StatusNotFound && got.StatusCode != http.StatusMovedPermanently {
				t.Errorf("%s: %d", p, got.StatusCode)
			}
		}
	})
}

func truncated(b []byte) []byte { return b[:len(b)/2] }
