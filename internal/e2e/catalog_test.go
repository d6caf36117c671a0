package e2e

import (
	"bytes"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"testing"
	"time"

	"plaza/internal/db/dbtest"
)

// staff creates a staff account with the operator path and logs it in.
func (e *env) staff(name string) user {
	e.t.Helper()
	if _, err := e.App.Accounts.CreateUser(e.t.Context(), name+"@example.com", testPassword, name, true); err != nil {
		e.t.Fatal(err)
	}
	c := e.client()
	expect(e.t, c.do("POST", "/api/login/", map[string]string{"email": name + "@example.com", "password": testPassword}), http.StatusOK)
	me := expect(e.t, c.do("GET", "/api/users/me/", nil), http.StatusOK).JSON()
	return user{client: c, Name: name, ID: int64(me["id"].(float64))}
}

func (c *client) multipartForm(method, path string, fields map[string]string, file string) response {
	c.t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for k, v := range fields {
		mw.WriteField(k, v)
	}
	if file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			c.t.Fatal(err)
		}
		fw, _ := mw.CreateFormFile("file", "upload.bin")
		fw.Write(data)
	}
	mw.Close()
	req, _ := http.NewRequest(method, c.e.URL+path, &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	c.auth(req)
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{Response: resp, Body: b}
}

func TestVideoCatalog(t *testing.T) {
	needFFmpeg(t)
	dbtest.Each(t, func(t *testing.T, eng dbtest.Engine) {
		e := start(t, eng, map[string]string{"PLAZA_VIDEO_RESOLUTIONS": "240p,360p"})
		admin := e.staff("admin")
		viewer := e.newUser("viewer")
		clip := clip640(t)

		// Only staff add videos.
		expect(t, viewer.multipartForm("POST", "/api/admin/videos/", map[string]string{"title": "x"}, clip), http.StatusForbidden)
		expect(t, viewer.do("GET", "/api/admin/videos/", nil), http.StatusForbidden)
		expect(t, e.client().do("GET", "/api/video/", nil), http.StatusUnauthorized)
		expect(t, admin.multipartForm("POST", "/api/admin/videos/", map[string]string{"description": "no title"}, clip), http.StatusBadRequest)
		text := makeTextFile(t)
		expect(t, admin.multipartForm("POST", "/api/admin/videos/", map[string]string{"title": "not a video"}, text), http.StatusBadRequest)

		r := expect(t, admin.multipartForm("POST", "/api/admin/videos/", map[string]string{
			"title": "Ocean <Waves>", "description": "Relaxing", "category": "Nature",
		}, clip), http.StatusCreated).JSON()
		vid := int64(r["id"].(float64))
		if r["processing_status"] == "failed" || r["title"] != "Ocean <Waves>" {
			t.Fatalf("created %v", r)
		}
		// By upload id too.
		id := admin.tusUpload(mustRead(t, clip), "second.mp4", 1<<20)
		r2 := expect(t, admin.do("POST", "/api/admin/videos/", map[string]any{"upload_id": id, "title": "Second", "category": "Drama"}), http.StatusCreated).JSON()

		// Not listed until ready.
		deadline := time.Now().Add(90 * time.Second)
		var list []any
		for {
			resp := expect(t, viewer.do("GET", "/api/video/", nil), http.StatusOK)
			list = resp.JSONArray(t)
			if len(list) == 2 {
				break
			}
			for _, v := range list {
				if st := findAdmin(t, admin, int64(v.(map[string]any)["id"].(float64))); st["processing_status"] != "ready" {
					t.Fatalf("listed a video that is %v", st["processing_status"])
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("videos never became ready: %s", expect(t, admin.do("GET", "/api/admin/videos/", nil), http.StatusOK).Body)
			}
			time.Sleep(200 * time.Millisecond)
		}
		// Newest first, exact shape.
		first := list[0].(map[string]any)
		if int64(first["id"].(float64)) != int64(r2["id"].(float64)) || int64(list[1].(map[string]any)["id"].(float64)) != vid {
			t.Errorf("order %v", list)
		}
		keys := map[string]bool{}
		for k := range first {
			keys[k] = true
		}
		if fmt.Sprint(len(keys)) != "6" || !keys["id"] || !keys["created_at"] || !keys["title"] || !keys["description"] || !keys["thumbnail_url"] || !keys["category"] {
			t.Errorf("video shape %v", first)
		}
		thumb := expect(t, e.client().do("GET", first["thumbnail_url"].(string)[len(e.URL):], nil), http.StatusOK)
		if thumb.Header.Get("Content-Type") != "image/jpeg" {
			t.Errorf("thumbnail %v", thumb.Header)
		}

		// The Videoflix HLS routes.
		m := expect(t, viewer.do("GET", fmt.Sprintf("/api/video/%d/master.m3u8", vid), nil), http.StatusOK)
		if m.Header.Get("Content-Type") != "application/vnd.apple.mpegurl" {
			t.Errorf("master type %q", m.Header.Get("Content-Type"))
		}
		idx := expect(t, viewer.do("GET", fmt.Sprintf("/api/video/%d/360p/index.m3u8", vid), nil), http.StatusOK)
		if segs := playlistURIs(idx.Body); len(segs) == 0 || segs[0] != "segment_000.ts" {
			t.Fatalf("index %s", idx.Body)
		}
		seg := expect(t, viewer.do("GET", fmt.Sprintf("/api/video/%d/360p/segment_000.ts/", vid), nil), http.StatusOK)
		if seg.Header.Get("Content-Type") != "video/MP2T" || len(seg.Body) == 0 {
			t.Errorf("segment %v", seg.Header)
		}
		expect(t, viewer.do("GET", fmt.Sprintf("/api/video/%d/360p/segment_000.ts", vid), nil), http.StatusOK)
		for _, p := range []string{"/api/video/999/master.m3u8", fmt.Sprintf("/api/video/%d/1080p/index.m3u8", vid), fmt.Sprintf("/api/video/%d/360p/segment_500.ts/", vid)} {
			expect(t, viewer.do("GET", p, nil), http.StatusNotFound)
		}
		expect(t, e.client().do("GET", fmt.Sprintf("/api/video/%d/master.m3u8", vid), nil), http.StatusUnauthorized)

		// Admin list shows status, error and progress; retry only a failed one.
		all := expect(t, admin.do("GET", "/api/admin/videos/", nil), http.StatusOK).JSONArray(t)
		if len(all) != 2 || all[0].(map[string]any)["processing_status"] != "ready" || all[0].(map[string]any)["progress"] != 100.0 {
			t.Errorf("admin list %v", all)
		}
		expect(t, admin.do("POST", fmt.Sprintf("/api/admin/videos/%d/retry/", vid), nil), http.StatusConflict)
		expect(t, admin.do("DELETE", fmt.Sprintf("/api/admin/videos/%d/", vid), nil), http.StatusNoContent)
		expect(t, viewer.do("GET", fmt.Sprintf("/api/video/%d/master.m3u8", vid), nil), http.StatusNotFound)
		if got := len(expect(t, viewer.do("GET", "/api/video/", nil), http.StatusOK).JSONArray(t)); got != 1 {
			t.Errorf("%d videos after delete", got)
		}
	})
}

func findAdmin(t *testing.T, admin user, id int64) map[string]any {
	t.Helper()
	for _, v := range expect(t, admin.do("GET", "/api/admin/videos/", nil), http.StatusOK).JSONArray(t) {
		if int64(v.(map[string]any)["id"].(float64)) == id {
			return v.(map[string]any)
		}
	}
	t.Fatalf("video %d not in the admin list", id)
	return nil
}

func (r response) JSONArray(t *testing.T) []any {
	t.Helper()
	var out []any
	if err := jsonUnmarshal(r.Body, &out); err != nil {
		t.Fatalf("not a JSON array: %s", r.Body)
	}
	return out
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func makeTextFile(t *testing.T) string {
	t.Helper()
	p := t.TempDir() + "/video.mp4"
	if err := os.WriteFile(p, []byte("this is only text pretending to be a video\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
