package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"plaza/internal/db/dbtest"
)

// storages lists the media storage back ends to run on: the local
// directory always, S3 when PLAZA_TEST_S3_URL is set.
func storages(t *testing.T) map[string]map[string]string {
	out := map[string]map[string]string{"local": nil}
	if raw := os.Getenv("PLAZA_TEST_S3_URL"); raw != "" {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("PLAZA_TEST_S3_URL: %v", err)
		}
		q := u.Query()
		q.Set("prefix", fmt.Sprintf("e2e-%d", time.Now().UnixNano()))
		u.RawQuery = q.Encode()
		out["s3"] = map[string]string{
			"PLAZA_STORAGE_URL":   u.String(),
			"PLAZA_S3_ACCESS_KEY": os.Getenv("PLAZA_TEST_S3_ACCESS_KEY"),
			"PLAZA_S3_SECRET_KEY": os.Getenv("PLAZA_TEST_S3_SECRET_KEY"),
		}
	}
	return out
}

// eachSetup runs fn on SQLite and PostgreSQL, each with local and S3 storage.
func eachSetup(t *testing.T, fn func(t *testing.T, eng dbtest.Engine, vars map[string]string)) {
	dbtest.Each(t, func(t *testing.T, eng dbtest.Engine) {
		for name, vars := range storages(t) {
			t.Run(name, func(t *testing.T) { fn(t, eng, vars) })
		}
	})
}

func playlistURIs(body []byte) []string {
	var out []string
	for _, line := range strings.Split(string(body), "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			out = append(out, line)
		}
	}
	return out
}

// TestVideoToHLS: upload over tus → media item → background transcode →
// master playlist → rendition → segment, checked with ffprobe; protected
// and path-safe serving; posts carrying the video; deletion removes files.
func TestVideoToHLS(t *testing.T) {
	needFFmpeg(t)
	eachSetup(t, func(t *testing.T, eng dbtest.Engine, vars map[string]string) {
		if vars == nil {
			vars = map[string]string{}
		}
		vars["PLAZA_VIDEO_RESOLUTIONS"] = "240p,360p,720p"
		e := start(t, eng, vars)
		owner, other := e.newUser("owner"), e.newUser("other")
		clip := clip640(t)

		r := expect(t, owner.uploadMedia(clip), http.StatusCreated).JSON()
		id := int64(r["id"].(float64))
		if r["kind"] != "video" || (r["status"] != "pending" && r["status"] != "processing" && r["status"] != "ready") || r["hls_url"] != nil && r["status"] != "ready" {
			t.Fatalf("new video item %v", r)
		}
		m := owner.waitMedia(id, 90*time.Second)
		if m["status"] != "ready" {
			t.Fatalf("video failed: %v", m)
		}
		if m["width"] != 640.0 || m["height"] != 360.0 || m["duration"].(float64) < 2.5 || m["progress"] != 100.0 || m["thumbnail_url"] == nil {
			t.Errorf("ready video %v", m)
		}
		master := m["hls_url"].(string)
		if master != fmt.Sprintf("%s/api/media/%d/hls/master.m3u8", e.URL, id) {
			t.Errorf("hls_url %q", master)
		}
		base := fmt.Sprintf("/api/media/%d/hls/", id)
		mr := expect(t, owner.do("GET", base+"master.m3u8", nil), http.StatusOK)
		if ct := mr.Header.Get("Content-Type"); ct != "application/vnd.apple.mpegurl" {
			t.Errorf("master content type %q", ct)
		}
		variants := playlistURIs(mr.Body)
		// Never above the source: 720p is left out of a 360p source.
		if fmt.Sprint(variants) != "[240p/index.m3u8 360p/index.m3u8]" && fmt.Sprint(variants) != "[360p/index.m3u8 240p/index.m3u8]" {
			t.Errorf("variants %v\n%s", variants, mr.Body)
		}
		if !strings.Contains(string(mr.Body), "RESOLUTION=640x360") || !strings.Contains(string(mr.Body), "BANDWIDTH=") {
			t.Errorf("master lacks RESOLUTION/BANDWIDTH:\n%s", mr.Body)
		}
		ir := expect(t, owner.do("GET", base+"360p/index.m3u8", nil), http.StatusOK)
		segs := playlistURIs(ir.Body)
		if len(segs) == 0 || segs[0] != "segment_000.ts" {
			t.Fatalf("rendition playlist:\n%s", ir.Body)
		}
		seg := expect(t, owner.do("GET", base+"360p/segment_000.ts/", nil), http.StatusOK)
		if ct := seg.Header.Get("Content-Type"); ct != "video/MP2T" {
			t.Errorf("segment content type %q", ct)
		}
		streams := ffprobeStreams(t, seg.Body)
		if all := fmt.Sprint(streams); !strings.Contains(all, "h264,video,640,360") || !strings.Contains(all, "aac,audio") {
			t.Errorf("segment streams %v", streams)
		}
		// Without the trailing slash, the same bytes.
		if again := expect(t, owner.do("GET", base+"360p/segment_000.ts", nil), http.StatusOK); len(again.Body) != len(seg.Body) {
			t.Errorf("segment without slash: %d bytes, want %d", len(again.Body), len(seg.Body))
		}
		// Range, conditional GET, range past the end.
		c := e.client()
		c.Bearer = owner.token(t)
		c.Header.Set("Range", "bytes=10-19")
		if rg := expect(t, c.do("GET", base+"360p/segment_000.ts/", nil), http.StatusPartialContent); string(rg.Body) != string(seg.Body[10:20]) {
			t.Errorf("range bytes differ")
		}
		c.Header.Set("Range", fmt.Sprintf("bytes=%d-", len(seg.Body)+10))
		expect(t, c.do("GET", base+"360p/segment_000.ts/", nil), http.StatusRequestedRangeNotSatisfiable)
		c.Header.Del("Range")
		c.Header.Set("If-None-Match", seg.Header.Get("ETag"))
		expect(t, c.do("GET", base+"360p/segment_000.ts/", nil), http.StatusNotModified)
		c.Header.Del("If-None-Match")
		// CORS on HLS files for the trusted origin.
		if seg.Header.Get("Access-Control-Allow-Origin") != trustedOrigin {
			t.Errorf("segment without CORS: %v", seg.Header)
		}

		// Authentication and visibility.
		anon := e.client()
		expect(t, anon.do("GET", base+"master.m3u8", nil), http.StatusUnauthorized)
		expect(t, other.do("GET", base+"master.m3u8", nil), http.StatusNotFound) // not attached to a post yet
		expect(t, other.do("GET", fmt.Sprintf("/api/media/%d/", id), nil), http.StatusNotFound)
		// Unknown ids, renditions, segments and path tricks: 404.
		raw := e.uncheckedClient()
		raw.Bearer = owner.token(t)
		for _, p := range []string{
			"/api/media/999999/hls/master.m3u8", base + "720p/index.m3u8", base + "999p/index.m3u8", base + "360p/segment_999.ts",
			base + "360p/index.m3u8/", base + "360p/../../../../../etc/passwd", base + "360p/%2e%2e%2f%2e%2e%2fmaster.m3u8",
			base + "..%2f..%2fsecret_key", base + "360p/%2Fetc%2Fpasswd", base + "360p/segment_000.ts%00", base + "360p//segment_000.ts",
			"/api/media/abc/hls/master.m3u8", base + "360p/source.mp4",
		} {
			if got := raw.do("GET", p, nil); got.StatusCode != http.StatusNotFound {
				t.Errorf("%s: %d", p, got.StatusCode)
			}
		}

		// A post carrying the video: everyone signed in may watch it.
		pr := expect(t, owner.do("POST", "/api/posts/", map[string]any{"content": "my clip", "media_ids": []int64{id}}), http.StatusCreated).JSON()
		media := pr["media"].([]any)
		if len(media) != 1 || media[0].(map[string]any)["hls_url"] != master {
			t.Errorf("post media %v", pr["media"])
		}
		expect(t, other.do("GET", base+"master.m3u8", nil), http.StatusOK)
		// Media is used once, and only by its owner.
		expect(t, owner.do("POST", "/api/posts/", map[string]any{"content": "again", "media_ids": []int64{id}}), http.StatusBadRequest)
		expect(t, other.do("POST", "/api/posts/", map[string]any{"content": "steal", "media_ids": []int64{id}}), http.StatusBadRequest)
		expect(t, owner.do("POST", "/api/posts/", map[string]any{"content": "ghost", "media_ids": []int64{999999}}), http.StatusBadRequest)

		// Deleting the post removes the video's files.
		expect(t, owner.do("DELETE", fmt.Sprintf("/api/posts/%v/", pr["id"]), nil), http.StatusNoContent)
		expect(t, owner.do("GET", fmt.Sprintf("/api/media/%d/", id), nil), http.StatusNotFound)
		deadline := time.Now().Add(5 * time.Second)
		for {
			left, err := e.App.Blob.List(t.Context(), fmt.Sprintf("media/%d", id))
			if err != nil {
				t.Fatal(err)
			}
			if len(left) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d files left after delete", len(left))
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

// token logs the user in with the Bearer flow.
func (u user) token(t *testing.T) string {
	t.Helper()
	c := u.e.client()
	c.Origin = ""
	me := expect(t, u.do("GET", "/api/users/me/", nil), http.StatusOK).JSON()
	return expect(t, c.do("POST", "/api/token/", map[string]string{"email": me["email"].(string), "password": testPassword}), http.StatusOK).Str("access")
}
