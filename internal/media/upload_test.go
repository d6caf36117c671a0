package media

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"plaza/internal/blob"
	"plaza/internal/db"
	"plaza/internal/db/dbtest"
)

// uploadSetup is one combination of database engine and upload store.
type uploadSetup struct {
	engine dbtest.Engine
	s3     bool
}

// eachUploadSetup runs fn on SQLite and PostgreSQL (when
// PLAZA_TEST_POSTGRES_URL is set), each with the local store and S3 (when
// PLAZA_TEST_S3_URL is set).
func eachUploadSetup(t *testing.T, fn func(t *testing.T, s uploadSetup)) {
	dbtest.Each(t, func(t *testing.T, e dbtest.Engine) {
		t.Run("local", func(t *testing.T) { fn(t, uploadSetup{engine: e}) })
		t.Run("s3", func(t *testing.T) {
			if os.Getenv("PLAZA_TEST_S3_URL") == "" {
				t.Skip("PLAZA_TEST_S3_URL is not set")
			}
			fn(t, uploadSetup{engine: e, s3: true})
		})
	})
}

// upEnv is a tus server on loopback over a fresh database.
type upEnv struct {
	t     *testing.T
	db    *db.DB
	u     *Uploads
	srv   *httptest.Server
	base  string // absolute URL of the collection
	dir   string
	users []int64
	clock atomic.Int64 // offset added to the real time, in nanoseconds
}

// testUserHeader names the user in tests; authentication is not under test.
const testUserHeader = "X-Test-User"

func testUserID(r *http.Request) (int64, bool) {
	id, err := strconv.ParseInt(r.Header.Get(testUserHeader), 10, 64)
	return id, err == nil && id > 0
}

func testS3Uploads(t testing.TB) *UploadsS3 {
	t.Helper()
	ctx := context.Background()
	rawURL := os.Getenv("PLAZA_TEST_S3_URL")
	ak, sk := os.Getenv("PLAZA_TEST_S3_ACCESS_KEY"), os.Getenv("PLAZA_TEST_S3_SECRET_KEY")
	cfg, err := UploadsS3FromURL(ctx, rawURL, ak, sk)
	if err != nil {
		t.Fatalf("PLAZA_TEST_S3_URL: %v", err)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	prefix := "uploads-test-" + hex.EncodeToString(b)
	cfg.Prefix = prefix + "/"
	t.Cleanup(func() {
		st, err := blob.Open(ctx, rawURL, ak, sk)
		if err == nil {
			err = st.DeletePrefix(ctx, prefix)
		}
		if err != nil {
			t.Logf("clean up %s: %v", prefix, err)
		}
	})
	return cfg
}

func (s uploadSetup) env(t *testing.T, mod func(*UploadsConfig)) *upEnv {
	t.Helper()
	ctx := context.Background()
	e := &upEnv{t: t, db: dbtest.Open(t, s.engine), dir: t.TempDir()}
	now := time.Now().UTC()
	for i := range 3 {
		var id int64
		err := e.db.ExecRow(ctx, `INSERT INTO users (email, username, password_hash, is_active, created_at, updated_at)
			VALUES (?, ?, 'x', TRUE, ?, ?) RETURNING id`, fmt.Sprintf("u%d@example.com", i), fmt.Sprintf("u%d", i), now, now).Scan(&id)
		if err != nil {
			t.Fatal(err)
		}
		e.users = append(e.users, id)
	}
	cfg := UploadsConfig{
		DB: e.db, BasePath: "/api/uploads/", Dir: e.dir,
		Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	if s.s3 {
		cfg.S3 = testS3Uploads(t)
	}
	if mod != nil {
		mod(&cfg)
	}
	u, err := NewUploads(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	u.now = func() time.Time { return time.Now().UTC().Add(time.Duration(e.clock.Load())) }
	e.u = u
	mux := http.NewServeMux()
	mux.Handle("/api/uploads/", u.Handler(testUserID))
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	e.base = e.srv.URL + "/api/uploads/"
	return e
}

// tusResp is an answer with its body read.
type tusResp struct {
	*http.Response
	body []byte
}

func (r tusResp) errCode() string {
	var v struct{ Detail, Code string }
	if err := json.Unmarshal(r.body, &v); err != nil || v.Detail == "" {
		return "(not the error shape: " + string(r.body) + ")"
	}
	return v.Code
}

// req sends a tus request as user (0: anonymous). hdr are header pairs;
// Tus-Resumable: 1.0.0 unless hdr sets it.
func (e *upEnv) req(method, url string, user int64, body io.Reader, hdr ...string) tusResp {
	e.t.Helper()
	resp, err := e.try(method, url, user, body, hdr...)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, url, err)
	}
	return resp
}

func (e *upEnv) try(method, url string, user int64, body io.Reader, hdr ...string) (tusResp, error) {
	r, err := http.NewRequest(method, url, body)
	if err != nil {
		return tusResp{}, err
	}
	r.Header.Set("Tus-Resumable", "1.0.0")
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			r.Header.Del(hdr[i])
			continue
		}
		r.Header.Set(hdr[i], hdr[i+1])
	}
	if cl := r.Header.Get("Content-Length"); cl != "" {
		r.ContentLength, _ = strconv.ParseInt(cl, 10, 64)
	}
	if user != 0 {
		r.Header.Set(testUserHeader, strconv.FormatInt(user, 10))
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		return tusResp{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return tusResp{resp, b}, err
}

func metadata(kv ...string) string {
	var parts []string
	for i := 0; i+1 < len(kv); i += 2 {
		parts = append(parts, kv[i]+" "+base64.StdEncoding.EncodeToString([]byte(kv[i+1])))
	}
	return strings.Join(parts, ",")
}

// create makes an upload of size bytes and returns its URL.
func (e *upEnv) create(user int64, size int, hdr ...string) string {
	e.t.Helper()
	h := append([]string{"Upload-Length", strconv.Itoa(size), "Upload-Metadata", metadata("filename", "clip.mp4", "filetype", "video/mp4")}, hdr...)
	resp := e.req(http.MethodPost, e.base, user, nil, h...)
	if resp.StatusCode != http.StatusCreated {
		e.t.Fatalf("POST: %d %s", resp.StatusCode, resp.body)
	}
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, e.base) {
		e.t.Fatalf("Location %q is not an absolute URL under %s", loc, e.base)
	}
	return loc
}

func (e *upEnv) patch(user int64, url string, offset int, data []byte) tusResp {
	e.t.Helper()
	return e.req(http.MethodPatch, url, user, bytes.NewReader(data),
		"Content-Type", "application/offset+octet-stream", "Upload-Offset", strconv.Itoa(offset))
}

func (e *upEnv) offset(user int64, url string) int {
	e.t.Helper()
	resp := e.req(http.MethodHead, url, user, nil)
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("HEAD %s: %d", url, resp.StatusCode)
	}
	n, err := strconv.Atoi(resp.Header.Get("Upload-Offset"))
	if err != nil {
		e.t.Fatalf("HEAD: Upload-Offset %q", resp.Header.Get("Upload-Offset"))
	}
	return n
}

// upload creates and fills an upload in one request.
func (e *upEnv) upload(user int64, data []byte) string {
	e.t.Helper()
	resp := e.req(http.MethodPost, e.base, user, bytes.NewReader(data),
		"Upload-Length", strconv.Itoa(len(data)), "Content-Type", "application/offset+octet-stream",
		"Upload-Metadata", metadata("filename", "a.bin", "filetype", "application/octet-stream"))
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("Upload-Offset") != strconv.Itoa(len(data)) {
		e.t.Fatalf("POST with body: %d, Upload-Offset %q: %s", resp.StatusCode, resp.Header.Get("Upload-Offset"), resp.body)
	}
	return resp.Header.Get("Location")
}

func idOf(url string) string { return url[strings.LastIndexByte(url, '/')+1:] }

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// claimedBytes claims an upload and reads it whole.
func (e *upEnv) claimedBytes(user int64, id string) (ClaimedUpload, []byte) {
	e.t.Helper()
	c, err := e.u.Claim(context.Background(), user, id)
	if err != nil {
		e.t.Fatalf("Claim: %v", err)
	}
	r, err := c.Open(context.Background())
	if err != nil {
		e.t.Fatalf("Open: %v", err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		e.t.Fatal(err)
	}
	return c, b
}

// storeHas tells whether the store still holds bytes of the upload.
func (e *upEnv) storeHas(id string) bool {
	e.t.Helper()
	if p := e.u.backend.localPath(id); p != "" {
		_, err1 := os.Stat(p)
		_, err2 := os.Stat(p + ".info")
		return err1 == nil || err2 == nil
	}
	_, err := e.u.backend.info(context.Background(), id)
	if err != nil && !strings.Contains(err.Error(), "not found") {
		e.t.Fatalf("info: %v", err)
	}
	return err == nil
}

// erroringReader yields n bytes of r, then fails, like a connection that
// breaks mid-request.
type erroringReader struct {
	r io.Reader
	n int
}

func (e *erroringReader) Read(p []byte) (int, error) {
	if e.n <= 0 {
		return 0, errors.New("simulated disconnect")
	}
	p = p[:min(len(p), e.n)]
	n, err := e.r.Read(p)
	e.n -= n
	return n, err
}

func sameBytes(t *testing.T, got, want []byte) {
	t.Helper()
	if sha256.Sum256(got) != sha256.Sum256(want) {
		t.Fatalf("bytes differ: got %d bytes (sha256 %x), want %d (sha256 %x)", len(got), sha256.Sum256(got), len(want), sha256.Sum256(want))
	}
}

func TestUploadProtocol(t *testing.T) {
	eachUploadSetup(t, func(t *testing.T, s uploadSetup) {
		e := s.env(t, nil)
		ctx := context.Background()
		alice := e.users[0]
		data := randomBytes(3<<20 + 12345)
		url := e.create(alice, len(data))
		id := idOf(url)

		// The row records the owner and the metadata.
		var owner, size int64
		var filename, filetype string
		if err := e.db.QueryRow(ctx, `SELECT owner_id, size, filename, filetype FROM uploads WHERE id = ?`, id).Scan(&owner, &size, &filename, &filetype); err != nil {
			t.Fatal(err)
		}
		if owner != alice || size != int64(len(data)) || filename != "clip.mp4" || filetype != "video/mp4" {
			t.Fatalf("row: owner %d size %d %q %q", owner, size, filename, filetype)
		}

		head := e.req(http.MethodHead, url, alice, nil)
		if head.StatusCode != http.StatusOK || head.Header.Get("Upload-Offset") != "0" ||
			head.Header.Get("Upload-Length") != strconv.Itoa(len(data)) || head.Header.Get("Tus-Resumable") != "1.0.0" ||
			head.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("HEAD: %d %v", head.StatusCode, head.Header)
		}
		if exp, err := http.ParseTime(head.Header.Get("Upload-Expires")); err != nil || exp.Before(time.Now().Add(23*time.Hour)) {
			t.Fatalf("Upload-Expires %q", head.Header.Get("Upload-Expires"))
		}

		// First chunk.
		const chunk = 1 << 20
		resp := e.patch(alice, url, 0, data[:chunk])
		if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Upload-Offset") != strconv.Itoa(chunk) {
			t.Fatalf("PATCH: %d %q %s", resp.StatusCode, resp.Header.Get("Upload-Offset"), resp.body)
		}
		if got := e.offset(alice, url); got != chunk {
			t.Fatalf("offset %d, want %d", got, chunk)
		}

		// A PATCH that breaks off after 300 KB: the server keeps what it
		// got (maybe less), and HEAD says where to continue.
		_, err := e.try(http.MethodPatch, url, alice, &erroringReader{r: bytes.NewReader(data[chunk:]), n: 300 << 10},
			"Content-Type", "application/offset+octet-stream", "Upload-Offset", strconv.Itoa(chunk),
			"Content-Length", strconv.Itoa(len(data)-chunk))
		if err == nil {
			t.Fatal("the broken PATCH succeeded")
		}
		// The server may still be storing what it got when the client
		// sees the break: wait for the offset to settle, as a client that
		// retries after a pause would.
		off := e.offset(alice, url)
		for range 20 {
			time.Sleep(100 * time.Millisecond)
			next := e.offset(alice, url)
			if next == off {
				break
			}
			off = next
		}
		if off < chunk || off > chunk+300<<10 {
			t.Fatalf("offset after the break: %d, want within [%d, %d]", off, chunk, chunk+300<<10)
		}

		// A stale offset is a conflict.
		if resp := e.patch(alice, url, chunk-1, data[chunk-1:chunk]); resp.StatusCode != http.StatusConflict || resp.errCode() != "mismatched_offset" {
			t.Fatalf("PATCH at a wrong offset: %d %s", resp.StatusCode, resp.body)
		}

		// Resume to the end, in two requests.
		mid := off + (len(data)-off)/2
		if resp := e.patch(alice, url, off, data[off:mid]); resp.StatusCode != http.StatusNoContent {
			t.Fatalf("PATCH: %d %s", resp.StatusCode, resp.body)
		}
		var recorded int64
		if err := e.db.QueryRow(ctx, `SELECT offset_ FROM uploads WHERE id = ?`, id).Scan(&recorded); err != nil || recorded != int64(mid) {
			t.Fatalf("offset_ = %d (%v), want %d", recorded, err, mid)
		}
		if _, err := e.u.Claim(ctx, alice, id); !errors.Is(err, ErrUploadNotFound) {
			t.Fatalf("Claim of an unfinished upload: %v", err)
		}
		resp = e.patch(alice, url, mid, data[mid:])
		if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Upload-Offset") != strconv.Itoa(len(data)) {
			t.Fatalf("last PATCH: %d %q %s", resp.StatusCode, resp.Header.Get("Upload-Offset"), resp.body)
		}
		if resp.Header.Get("Upload-Expires") != "" {
			t.Fatal("a finished upload still announces Upload-Expires")
		}
		if got := e.offset(alice, url); got != len(data) {
			t.Fatalf("offset %d, want %d", got, len(data))
		}
		var finished bool
		if err := e.db.QueryRow(ctx, `SELECT finished_at IS NOT NULL FROM uploads WHERE id = ?`, id).Scan(&finished); err != nil || !finished {
			t.Fatalf("finished_at not set (%v)", err)
		}

		// The owner may download it.
		get := e.req(http.MethodGet, url, alice, nil)
		if get.StatusCode != http.StatusOK {
			t.Fatalf("GET: %d", get.StatusCode)
		}
		sameBytes(t, get.body, data)

		// Claim hands it over once.
		c, got := e.claimedBytes(alice, id)
		sameBytes(t, got, data)
		if c.Size != int64(len(data)) || c.Filename != "clip.mp4" || c.Filetype != "video/mp4" || c.ID != id {
			t.Fatalf("claimed %+v", c)
		}
		if (c.LocalPath != "") == s.s3 {
			t.Fatalf("LocalPath %q on s3=%v", c.LocalPath, s.s3)
		}
		if _, err := e.u.Claim(ctx, alice, id); !errors.Is(err, ErrUploadNotFound) {
			t.Fatalf("second Claim: %v", err)
		}
		// A claimed upload is gone for the tus protocol.
		if resp := e.req(http.MethodHead, url, alice, nil); resp.StatusCode != http.StatusNotFound {
			t.Fatalf("HEAD of a claimed upload: %d", resp.StatusCode)
		}
		if err := e.u.Remove(ctx, id); err != nil {
			t.Fatal(err)
		}
		if e.storeHas(id) {
			t.Fatal("Remove left the bytes")
		}
		var n int
		if err := e.db.QueryRow(ctx, `SELECT COUNT(*) FROM uploads WHERE id = ?`, id).Scan(&n); err != nil || n != 0 {
			t.Fatalf("Remove left the row (%v)", err)
		}
	})
}

func TestUploadCreationWithUploadAndTermination(t *testing.T) {
	eachUploadSetup(t, func(t *testing.T, s uploadSetup) {
		e := s.env(t, nil)
		ctx := context.Background()
		alice := e.users[0]

		// The whole file in the POST.
		data := randomBytes(700 << 10)
		url := e.upload(alice, data)
		_, got := e.claimedBytes(alice, idOf(url))
		sameBytes(t, got, data)

		// Part of it in the POST, the rest by PATCH.
		data = randomBytes(6<<20 + 1)
		resp := e.req(http.MethodPost, e.base, alice, bytes.NewReader(data[:100<<10]),
			"Upload-Length", strconv.Itoa(len(data)), "Content-Type", "application/offset+octet-stream")
		if resp.StatusCode != http.StatusCreated || resp.Header.Get("Upload-Offset") != strconv.Itoa(100<<10) {
			t.Fatalf("POST: %d %q %s", resp.StatusCode, resp.Header.Get("Upload-Offset"), resp.body)
		}
		if resp.Header.Get("Upload-Expires") == "" {
			t.Fatal("no Upload-Expires for an unfinished upload")
		}
		url = resp.Header.Get("Location")
		if resp := e.patch(alice, url, 100<<10, data[100<<10:]); resp.StatusCode != http.StatusNoContent {
			t.Fatalf("PATCH: %d %s", resp.StatusCode, resp.body)
		}
		_, got = e.claimedBytes(alice, idOf(url))
		sameBytes(t, got, data)

		// An empty upload is finished at once.
		url = e.create(alice, 0)
		c, got := e.claimedBytes(alice, idOf(url))
		if c.Size != 0 || len(got) != 0 {
			t.Fatalf("empty upload: %+v, %d bytes", c, len(got))
		}

		// Termination.
		url = e.create(alice, 1000)
		e.patch(alice, url, 0, randomBytes(500))
		if resp := e.req(http.MethodDelete, url, alice, nil); resp.StatusCode != http.StatusNoContent {
			t.Fatalf("DELETE: %d %s", resp.StatusCode, resp.body)
		}
		if resp := e.req(http.MethodHead, url, alice, nil); resp.StatusCode != http.StatusNotFound {
			t.Fatalf("HEAD after DELETE: %d", resp.StatusCode)
		}
		if resp := e.req(http.MethodDelete, url, alice, nil); resp.StatusCode != http.StatusNotFound {
			t.Fatalf("second DELETE: %d", resp.StatusCode)
		}
		if e.storeHas(idOf(url)) {
			t.Fatal("DELETE left the bytes")
		}
		var n int
		if err := e.db.QueryRow(ctx, `SELECT COUNT(*) FROM uploads WHERE id = ?`, idOf(url)).Scan(&n); err != nil || n != 0 {
			t.Fatalf("DELETE left the row (%v)", err)
		}

		// Method override, for clients that cannot send PATCH.
		url = e.create(alice, 10)
		resp = e.req(http.MethodPost, url, alice, strings.NewReader("0123456789"),
			"X-HTTP-Method-Override", "PATCH", "Content-Type", "application/offset+octet-stream", "Upload-Offset", "0")
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("overridden PATCH: %d %s", resp.StatusCode, resp.body)
		}
	})
}

func TestUploadAccessAndErrors(t *testing.T) {
	eachUploadSetup(t, func(t *testing.T, s uploadSetup) {
		e := s.env(t, func(c *UploadsConfig) { c.MaxSize = 1 << 20; c.MaxPending = 3 })
		ctx := context.Background()
		alice, bob := e.users[0], e.users[1]
		url := e.create(alice, 1000)
		e.patch(alice, url, 0, []byte("hello"))

		// Another user sees nothing, and changes nothing.
		for _, m := range []string{http.MethodHead, http.MethodPatch, http.MethodDelete, http.MethodGet} {
			var body io.Reader
			if m == http.MethodPatch {
				body = strings.NewReader("evil")
			}
			resp := e.req(m, url, bob, body, "Content-Type", "application/offset+octet-stream", "Upload-Offset", "5")
			if resp.StatusCode != http.StatusNotFound {
				t.Fatalf("%s by another user: %d", m, resp.StatusCode)
			}
			if m != http.MethodHead && resp.errCode() != "not_found" {
				t.Fatalf("%s by another user: body %s", m, resp.body)
			}
		}
		// ... exactly as for an upload that does not exist.
		for _, u := range []string{e.base + newUploadID(), e.base + "..%2f..%2fetc", e.base + "x/y", e.base + strings.Repeat("a", 27)} {
			if resp := e.req(http.MethodHead, u, alice, nil); resp.StatusCode != http.StatusNotFound {
				t.Fatalf("HEAD %s: %d", u, resp.StatusCode)
			}
		}
		if got := e.offset(alice, url); got != 5 {
			t.Fatalf("offset %d after the other user's attempts", got)
		}
		if _, err := e.u.Claim(ctx, bob, idOf(url)); !errors.Is(err, ErrUploadNotFound) {
			t.Fatalf("Claim by another user: %v", err)
		}

		// No user.
		for _, m := range []string{http.MethodPost, http.MethodHead} {
			u := url
			if m == http.MethodPost {
				u = e.base
			}
			resp := e.req(m, u, 0, nil, "Upload-Length", "10")
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("%s without a user: %d", m, resp.StatusCode)
			}
			if m == http.MethodPost && (resp.errCode() != "not_authenticated" || resp.Header.Get("Content-Type") != "application/json") {
				t.Fatalf("401 body %s", resp.body)
			}
		}

		// Too large.
		resp := e.req(http.MethodPost, e.base, alice, nil, "Upload-Length", strconv.Itoa(1<<20+1))
		if resp.StatusCode != http.StatusRequestEntityTooLarge || resp.errCode() != "max_size_exceeded" {
			t.Fatalf("too large: %d %s", resp.StatusCode, resp.body)
		}
		// A PATCH beyond the declared length.
		small := e.create(alice, 4)
		if resp := e.patch(alice, small, 0, []byte("12345")); resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("PATCH beyond the length: %d %s", resp.StatusCode, resp.body)
		}

		// Wrong protocol version.
		resp = e.req(http.MethodPost, e.base, alice, nil, "Upload-Length", "10", "Tus-Resumable", "0.2.2")
		if resp.StatusCode != http.StatusPreconditionFailed || resp.Header.Get("Tus-Version") != "1.0.0" || resp.errCode() != "unsupported_version" {
			t.Fatalf("old Tus-Resumable: %d %v %s", resp.StatusCode, resp.Header, resp.body)
		}
		resp = e.req(http.MethodPatch, url, alice, strings.NewReader("x"), "Tus-Resumable", "",
			"Content-Type", "application/offset+octet-stream", "Upload-Offset", "5")
		if resp.StatusCode != http.StatusPreconditionFailed {
			t.Fatalf("PATCH without Tus-Resumable: %d", resp.StatusCode)
		}
		// Bad offset.
		resp = e.patch(alice, url, 4, []byte("x"))
		if resp.StatusCode != http.StatusConflict {
			t.Fatalf("PATCH at a wrong offset: %d", resp.StatusCode)
		}
		// Deferred length and concatenation are not offered.
		if resp := e.req(http.MethodPost, e.base, alice, nil, "Upload-Defer-Length", "1"); resp.StatusCode < 400 || resp.StatusCode >= 500 && resp.StatusCode != http.StatusNotImplemented {
			t.Fatalf("Upload-Defer-Length: %d", resp.StatusCode)
		}
		// (Upload-Concat is ignored: without the extension it is a plain upload.)
		resp = e.req(http.MethodPost, e.base, alice, nil, "Upload-Length", "10", "Upload-Concat", "partial")
		if resp.StatusCode != http.StatusCreated || e.req(http.MethodHead, resp.Header.Get("Location"), alice, nil).Header.Get("Upload-Concat") != "" {
			t.Fatalf("Upload-Concat: %d", resp.StatusCode)
		}
		e.req(http.MethodDelete, resp.Header.Get("Location"), alice, nil)
		// Methods.
		if resp := e.req(http.MethodPut, url, alice, nil); resp.StatusCode != http.StatusMethodNotAllowed {
			t.Fatalf("PUT: %d", resp.StatusCode)
		}
		if resp := e.req(http.MethodGet, e.base, alice, nil); resp.StatusCode != http.StatusMethodNotAllowed {
			t.Fatalf("GET of the collection: %d", resp.StatusCode)
		}

		// Too many pending uploads: alice has url and small (and the 0
		// from the failed POSTs above did not count).
		e.create(alice, 10)
		resp = e.req(http.MethodPost, e.base, alice, nil, "Upload-Length", "10")
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || resp.errCode() != "too_many_uploads" {
			t.Fatalf("over MaxPending: %d %v %s", resp.StatusCode, resp.Header, resp.body)
		}
		e.create(bob, 10) // others are not affected
		if resp := e.req(http.MethodDelete, small, alice, nil); resp.StatusCode != http.StatusNoContent {
			t.Fatalf("DELETE: %d", resp.StatusCode)
		}
		e.create(alice, 10)
		// Claimed uploads do not count.
		e.req(http.MethodDelete, url, alice, nil)
		done := e.upload(alice, []byte("done"))
		if _, err := e.u.Claim(ctx, alice, idOf(done)); err != nil {
			t.Fatal(err)
		}
		e.create(alice, 10)
	})
}

func TestUploadConcurrentCreationsRespectLimit(t *testing.T) {
	eachUploadSetup(t, func(t *testing.T, s uploadSetup) {
		e := s.env(t, func(c *UploadsConfig) { c.MaxPending = 5 })
		var created atomic.Int32
		var wg sync.WaitGroup
		for range 12 {
			wg.Go(func() {
				resp, err := e.try(http.MethodPost, e.base, e.users[0], nil, "Upload-Length", "10")
				if err != nil {
					t.Error(err)
					return
				}
				switch resp.StatusCode {
				case http.StatusCreated:
					created.Add(1)
				case http.StatusTooManyRequests:
				default:
					t.Errorf("POST: %d %s", resp.StatusCode, resp.body)
				}
			})
		}
		wg.Wait()
		if created.Load() != 5 {
			t.Fatalf("%d uploads created, want 5", created.Load())
		}
	})
}

func TestUploadOptions(t *testing.T) {
	e := uploadSetup{engine: dbtest.Engine{Name: "sqlite", URL: dbtest.SQLiteURL}}.env(t, func(c *UploadsConfig) { c.MaxSize = 12345 })
	for _, u := range []string{e.base, e.base + newUploadID()} {
		r, _ := http.NewRequest(http.MethodOptions, u, nil)
		r.Header.Set("Origin", "https://evil.example")
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		h := resp.Header
		if resp.StatusCode >= 300 || h.Get("Tus-Version") != "1.0.0" || h.Get("Tus-Max-Size") != "12345" {
			t.Fatalf("OPTIONS: %d %v", resp.StatusCode, h)
		}
		ext := "," + h.Get("Tus-Extension") + ","
		for _, want := range []string{"creation", "creation-with-upload", "termination", "expiration"} {
			if !strings.Contains(ext, ","+want+",") {
				t.Fatalf("Tus-Extension %q lacks %s", h.Get("Tus-Extension"), want)
			}
		}
		for _, x := range []string{"concatenation", "creation-defer-length"} {
			if strings.Contains(ext, x) {
				t.Fatalf("Tus-Extension %q offers %s", h.Get("Tus-Extension"), x)
			}
		}
		for k := range h {
			if strings.HasPrefix(k, "Access-Control-") {
				t.Fatalf("tusd added CORS header %s", k)
			}
		}
	}
	// POST with an Origin: no CORS headers either (the outer middleware's job).
	resp := e.req(http.MethodPost, e.base, e.users[0], nil, "Upload-Length", "1", "Origin", "https://evil.example")
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("POST with Origin: %d %v", resp.StatusCode, resp.Header)
	}
}

func TestUploadLocationBehindProxy(t *testing.T) {
	e := uploadSetup{engine: dbtest.Engine{Name: "sqlite", URL: dbtest.SQLiteURL}}.env(t, func(c *UploadsConfig) {
		c.PublicURL = "https://plaza.example/"
	})
	resp := e.req(http.MethodPost, e.base, e.users[0], nil, "Upload-Length", "1", "X-Forwarded-Host", "evil.example")
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusCreated || !strings.HasPrefix(loc, "https://plaza.example/api/uploads/") || !validUploadID(idOf(loc)) {
		t.Fatalf("Location %q", loc)
	}
	// Without PublicURL the request's Host counts, never X-Forwarded-Host.
	e = uploadSetup{engine: dbtest.Engine{Name: "sqlite", URL: dbtest.SQLiteURL}}.env(t, nil)
	resp = e.req(http.MethodPost, e.base, e.users[0], nil, "Upload-Length", "1", "X-Forwarded-Host", "evil.example")
	if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, e.base) {
		t.Fatalf("Location %q", loc)
	}
}

func TestUploadClaimOnce(t *testing.T) {
	eachUploadSetup(t, func(t *testing.T, s uploadSetup) {
		e := s.env(t, nil)
		ctx := context.Background()
		alice := e.users[0]
		data := randomBytes(64 << 10)
		id := idOf(e.upload(alice, data))
		if _, err := e.u.Claim(ctx, alice, "nonsense"); !errors.Is(err, ErrUploadNotFound) {
			t.Fatalf("Claim of a bad id: %v", err)
		}
		var wins atomic.Int32
		var won ClaimedUpload
		var wg sync.WaitGroup
		for range 10 {
			wg.Go(func() {
				c, err := e.u.Claim(ctx, alice, id)
				switch {
				case err == nil:
					wins.Add(1)
					won = c
				case !errors.Is(err, ErrUploadNotFound):
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("%d Claims succeeded, want exactly 1", wins.Load())
		}
		r, err := won.Open(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		sameBytes(t, got, data)

		// A finished upload whose row missed finished_at (the finishing
		// request failed to record it) can still be claimed.
		id = idOf(e.upload(alice, data))
		if _, err := e.db.Exec(ctx, `UPDATE uploads SET finished_at = NULL WHERE id = ?`, id); err != nil {
			t.Fatal(err)
		}
		_, got = e.claimedBytes(alice, id)
		sameBytes(t, got, data)

		// A DELETE after a Claim finds nothing to delete.
		url := e.upload(alice, data)
		e.claimedBytes(alice, idOf(url))
		if resp := e.req(http.MethodDelete, url, alice, nil); resp.StatusCode != http.StatusNotFound {
			t.Fatalf("DELETE of a claimed upload: %d", resp.StatusCode)
		}
	})
}

func TestUploadExpireAbandoned(t *testing.T) {
	eachUploadSetup(t, func(t *testing.T, s uploadSetup) {
		e := s.env(t, func(c *UploadsConfig) { c.Expiry = 2 * time.Hour })
		ctx := context.Background()
		alice := e.users[0]

		abandoned := e.create(alice, 1000)
		e.patch(alice, abandoned, 0, randomBytes(600))
		unclaimed := e.upload(alice, randomBytes(100))
		consumed := e.upload(alice, randomBytes(100))
		e.claimedBytes(alice, idOf(consumed))

		if n, err := e.u.ExpireAbandoned(ctx); err != nil || n != 0 {
			t.Fatalf("ExpireAbandoned now: %d, %v", n, err)
		}

		// 90 minutes later: the consumed one goes.
		e.clock.Store(int64(90 * time.Minute))
		fresh := e.create(alice, 1000)
		e.patch(alice, fresh, 0, randomBytes(10))
		if n, err := e.u.ExpireAbandoned(ctx); err != nil || n != 1 {
			t.Fatalf("ExpireAbandoned after 90 min: %d, %v", n, err)
		}
		if e.storeHas(idOf(consumed)) {
			t.Fatal("the consumed upload's bytes are left")
		}

		// 2 h 10 min after creation: the abandoned and the unclaimed go,
		// the fresh one stays. An expired upload is 404 at once.
		e.clock.Store(int64(130 * time.Minute))
		if resp := e.req(http.MethodHead, abandoned, alice, nil); resp.StatusCode != http.StatusNotFound {
			t.Fatalf("HEAD of an expired upload: %d", resp.StatusCode)
		}
		if _, err := e.u.Claim(ctx, alice, idOf(unclaimed)); !errors.Is(err, ErrUploadNotFound) {
			t.Fatalf("Claim of an expired upload: %v", err)
		}
		if n, err := e.u.ExpireAbandoned(ctx); err != nil || n != 2 {
			t.Fatalf("ExpireAbandoned after 130 min: %d, %v", n, err)
		}
		for _, u := range []string{abandoned, unclaimed} {
			if e.storeHas(idOf(u)) {
				t.Fatalf("expired upload %s: bytes left", u)
			}
			var n int
			if err := e.db.QueryRow(ctx, `SELECT COUNT(*) FROM uploads WHERE id = ?`, idOf(u)).Scan(&n); err != nil || n != 0 {
				t.Fatalf("expired upload %s: row left (%v)", u, err)
			}
		}
		if got := e.offset(alice, fresh); got != 10 || !e.storeHas(idOf(fresh)) {
			t.Fatalf("the fresh upload: offset %d", got)
		}

		if s.s3 {
			return
		}
		// Local files that no row refers to go once they are old.
		orphan := newUploadID()
		for _, p := range []string{filepath.Join(e.dir, orphan), filepath.Join(e.dir, orphan+".info")} {
			if err := os.WriteFile(p, []byte("{}"), 0o600); err != nil {
				t.Fatal(err)
			}
			old := time.Now().Add(-3 * time.Hour)
			if err := os.Chtimes(p, old, old); err != nil {
				t.Fatal(err)
			}
		}
		if n, err := e.u.ExpireAbandoned(ctx); err != nil || n != 1 {
			t.Fatalf("ExpireAbandoned with an orphan: %d, %v", n, err)
		}
		if _, err := os.Stat(filepath.Join(e.dir, orphan)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("orphan left: %v", err)
		}
		if !e.storeHas(idOf(fresh)) {
			t.Fatal("the sweep removed a live upload")
		}
	})
}

func TestUploadIDs(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := newUploadID()
		if !validUploadID(id) || seen[id] {
			t.Fatalf("id %q", id)
		}
		seen[id] = true
	}
	for _, bad := range []string{"", "../../etc/passwd", strings.Repeat("A", 26), strings.Repeat("a", 25) + "1", strings.Repeat("a", 25) + "/"} {
		if validUploadID(bad) {
			t.Fatalf("%q accepted", bad)
		}
	}
}

func TestTusErrorShape(t *testing.T) {
	for _, c := range []struct {
		status       int
		body         string
		code, detail string
	}{
		{409, "ERR_MISMATCHED_OFFSET: mismatched offset\n", "mismatched_offset", "Mismatched offset."},
		{500, "ERR_INTERNAL_SERVER_ERROR: open /data/uploads/x: permission denied\n", "internal_error", "Internal server error."},
		{500, "something: /secret/path\n", "internal_error", "Internal server error."},
		{404, "ERR_UPLOAD_NOT_FOUND: upload not found\n", "not_found", "Not found."},
		{416, "invalid range: failed to overlap\n", "requested_range_not_satisfiable", "Invalid range: failed to overlap."},
		{400, "", "bad_request", "Bad Request."},
	} {
		code, detail := tusErrorShape(c.status, []byte(c.body))
		if code != c.code || detail != c.detail {
			t.Errorf("%d %q: %q %q, want %q %q", c.status, c.body, code, detail, c.code, c.detail)
		}
	}
}
