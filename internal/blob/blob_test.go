package blob_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"plaza/internal/blob"
	"plaza/internal/blob/blobtest"
)

func TestLocal(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) blob.Store { return blobtest.NewLocal(t) })
}

// TestS3 runs the suite against the server named by PLAZA_TEST_S3_URL
// (see .ci/s3.sh), each subtest under its own key prefix.
func TestS3(t *testing.T) {
	if os.Getenv("PLAZA_TEST_S3_URL") == "" {
		t.Skip("PLAZA_TEST_S3_URL is not set")
	}
	blobtest.Run(t, func(t *testing.T) blob.Store { return blobtest.NewS3(t) })
}

func TestS3HonoursContentType(t *testing.T) {
	s := blobtest.NewS3(t)
	key := "docs/report.bin"
	if err := s.Put(t.Context(), key, strings.NewReader("%PDF"), 4, "application/pdf"); err != nil {
		t.Fatal(err)
	}
	info, err := s.Stat(t.Context(), key)
	if err != nil || info.ContentType != "application/pdf" {
		t.Fatalf("Stat = %+v, %v; want application/pdf", info, err)
	}
}

func newLocal(t *testing.T) (*blob.Local, string) {
	t.Helper()
	dir := t.TempDir()
	s, err := blob.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, s.Dir()
}

func putString(t *testing.T, s blob.Store, key, data string) {
	t.Helper()
	if err := s.Put(t.Context(), key, strings.NewReader(data), int64(len(data)), ""); err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
}

func readString(t *testing.T, s blob.Store, key string) string {
	t.Helper()
	o, err := s.Open(t.Context(), key)
	if err != nil {
		t.Fatalf("Open(%q): %v", key, err)
	}
	defer o.Close()
	b, err := io.ReadAll(o)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestLocalSymlinkEscape plants symbolic links inside the directory that
// point outside it: no operation may read, write or delete through them.
func TestLocalSymlinkEscape(t *testing.T) {
	s, dir := newLocal(t)
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret.txt")
	if err := os.WriteFile(secret, []byte("top secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Symlink(outside, filepath.Join(dir, "evil")))                // directory, absolute
	must(os.Symlink(secret, filepath.Join(dir, "leak.jpg")))             // file, absolute
	must(os.MkdirAll(filepath.Join(dir, "media", "1"), 0o750))           //
	must(os.Symlink("../../..", filepath.Join(dir, "media", "1", "up"))) // directory, relative
	must(os.Symlink("../../../"+filepath.Base(outside)+"/secret.txt", filepath.Join(dir, "media", "1", "rel.jpg")))
	ctx := t.Context()

	for _, key := range []string{"evil/secret.txt", "leak.jpg", "media/1/rel.jpg", "media/1/up/" + filepath.Base(outside) + "/secret.txt"} {
		if o, err := s.Open(ctx, key); err == nil {
			b, _ := io.ReadAll(o)
			o.Close()
			t.Fatalf("Open(%q) escaped and read %q", key, b)
		} else if !errors.Is(err, blob.ErrInvalidKey) && !errors.Is(err, blob.ErrNotFound) {
			t.Fatalf("Open(%q) = %v, want ErrInvalidKey", key, err)
		}
		if _, err := s.Stat(ctx, key); err == nil {
			t.Fatalf("Stat(%q) escaped", key)
		}
		if p, ok := s.LocalPath(key); ok {
			t.Fatalf("LocalPath(%q) = %q, true", key, p)
		}
	}
	if _, err := s.Open(ctx, "evil/secret.txt"); !errors.Is(err, blob.ErrInvalidKey) {
		t.Fatalf("Open through an escaping link = %v, want ErrInvalidKey", err)
	}

	// Writes through an escaping directory link fail and create nothing.
	for _, key := range []string{"evil/new.jpg", "evil/sub/new.jpg", "media/1/up/x.jpg"} {
		err := s.Put(ctx, key, strings.NewReader("x"), 1, "")
		if !errors.Is(err, blob.ErrInvalidKey) {
			t.Fatalf("Put(%q) = %v, want ErrInvalidKey", key, err)
		}
	}
	if err := s.Delete(ctx, "evil/secret.txt"); !errors.Is(err, blob.ErrInvalidKey) {
		t.Fatalf("Delete through an escaping link = %v, want ErrInvalidKey", err)
	}
	for _, p := range []string{"evil", "media/1/up"} {
		if err := s.DeletePrefix(ctx, p); err != nil {
			t.Fatalf("DeletePrefix(%q) = %v", p, err)
		}
	}
	if infos, err := s.List(ctx, ""); err != nil || len(infos) != 0 {
		t.Fatalf("List lists through links: %+v, %v", infos, err)
	}
	if infos, err := s.List(ctx, "evil"); err != nil || len(infos) != 0 {
		t.Fatalf("List(evil) = %+v, %v", infos, err)
	}

	// Overwriting a planted file link replaces the link, not its target.
	putString(t, s, "leak.jpg", "replaced")
	if got := readString(t, s, "leak.jpg"); got != "replaced" {
		t.Fatalf("leak.jpg = %q", got)
	}
	fi, err := os.Lstat(filepath.Join(dir, "leak.jpg"))
	if err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("leak.jpg is still a link: %v %v", fi, err)
	}

	entries, err := os.ReadDir(outside)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "secret.txt" {
		t.Fatalf("outside directory changed: %v", entries)
	}
	if b, err := os.ReadFile(secret); err != nil || string(b) != "top secret" {
		t.Fatalf("outside file changed: %q, %v", b, err)
	}
}

// TestLocalSymlinkInside: links that stay inside the directory work for
// reads, and LocalPath resolves them.
func TestLocalSymlinkInside(t *testing.T) {
	s, dir := newLocal(t)
	putString(t, s, "real/a.jpg", "inside")
	if err := os.Symlink("real", filepath.Join(dir, "alias")); err != nil {
		t.Fatal(err)
	}
	if got := readString(t, s, "alias/a.jpg"); got != "inside" {
		t.Fatalf("read through an inside link = %q", got)
	}
	p, ok := s.LocalPath("alias/a.jpg")
	if !ok || p != filepath.Join(dir, "real", "a.jpg") {
		t.Fatalf("LocalPath through an inside link = %q, %t", p, ok)
	}
	// The store's own directory may itself be reached through a link.
	link := filepath.Join(t.TempDir(), "media")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	s2, err := blob.NewLocal(link)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if got := readString(t, s2, "real/a.jpg"); got != "inside" {
		t.Fatalf("read through a linked store directory = %q", got)
	}
}

func TestLocalFileModesAndTempFiles(t *testing.T) {
	s, dir := newLocal(t)
	putString(t, s, "m/1/hls/720p/segment_000.ts", "segment")
	fi, err := os.Stat(filepath.Join(dir, "m", "1", "hls", "720p", "segment_000.ts"))
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm&^0o640 != 0 || perm&0o600 != 0o600 {
		t.Fatalf("file mode %v, want 0640 (or narrower by umask)", perm)
	}
	for _, d := range []string{"m", "m/1", "m/1/hls", "m/1/hls/720p"} {
		fi, err := os.Stat(filepath.Join(dir, d))
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm&^0o750 != 0 || perm&0o700 != 0o700 {
			t.Fatalf("dir %s mode %v, want 0750 (or narrower by umask)", d, perm)
		}
	}
	// Failed and cancelled puts leave no temporary files.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_ = s.Put(ctx, "m/1/hls/720p/segment_001.ts", strings.NewReader("x"), -1, "")
	_ = s.Put(t.Context(), "m/1/hls/720p/segment_002.ts", strings.NewReader("short"), 10, "")
	_ = s.Put(t.Context(), "m/1/hls/720p/segment_003.ts", errReader{}, -1, "")
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), ".plaza-tmp-") {
			t.Errorf("temporary file left behind: %s", p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// A temporary file left by a crash is never listed.
	if err := os.WriteFile(filepath.Join(dir, "m", ".plaza-tmp-abc"), []byte("partial"), 0o640); err != nil {
		t.Fatal(err)
	}
	infos, err := s.List(t.Context(), "")
	if err != nil || len(infos) != 1 {
		t.Fatalf("List = %+v, %v; want one blob", infos, err)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

func TestLocalIgnoresContentType(t *testing.T) {
	s, _ := newLocal(t)
	if err := s.Put(t.Context(), "a.jpg", strings.NewReader("x"), 1, "text/plain"); err != nil {
		t.Fatal(err)
	}
	if info, err := s.Stat(t.Context(), "a.jpg"); err != nil || info.ContentType != "image/jpeg" {
		t.Fatalf("Stat = %+v, %v; want image/jpeg from the extension", info, err)
	}
}

func TestLocalPrunesEmptyDirectories(t *testing.T) {
	s, dir := newLocal(t)
	putString(t, s, "media/9/hls/720p/a.ts", "a")
	putString(t, s, "media/9/poster.jpg", "p")
	if err := s.Delete(t.Context(), "media/9/hls/720p/a.ts"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "media", "9", "hls")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("empty directory media/9/hls kept: %v", err)
	}
	if err := s.DeletePrefix(t.Context(), "media/9"); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Fatalf("store directory not empty: %v", entries)
	}
}

func TestLocalObjectFile(t *testing.T) {
	s, _ := newLocal(t)
	putString(t, s, "f.ts", "0123456789")
	o, err := s.Open(t.Context(), "f.ts")
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	lo, ok := o.(*blob.LocalObject)
	if !ok {
		t.Fatalf("Local.Open returned %T", o)
	}
	buf := make([]byte, 3)
	if _, err := lo.File().ReadAt(buf, 4); err != nil || string(buf) != "456" {
		t.Fatalf("File().ReadAt = %q, %v", buf, err)
	}
}

func TestOpenURL(t *testing.T) {
	ctx := context.Background()
	abs := t.TempDir()
	s, err := blob.Open(ctx, "file://"+abs, "", "")
	if err != nil {
		t.Fatalf("Open(file://%s): %v", abs, err)
	}
	if l, ok := s.(*blob.Local); !ok || l.Dir() != mustEval(t, abs) {
		t.Fatalf("Open(file://abs) = %T %v", s, s)
	}
	s.(*blob.Local).Close()

	t.Chdir(t.TempDir())
	s, err = blob.Open(ctx, "file://./data/media", "", "")
	if err != nil {
		t.Fatalf("Open(file://./data/media): %v", err)
	}
	wd, _ := os.Getwd()
	if got, want := s.(*blob.Local).Dir(), filepath.Join(mustEval(t, wd), "data", "media"); got != want {
		t.Fatalf("relative dir = %q, want %q", got, want)
	}
	s.(*blob.Local).Close()

	// S3 stores are made without contacting the server.
	for _, u := range []string{
		"s3://plaza-media?endpoint=127.0.0.1:1&region=us-east-1&secure=false&path_style=true",
		"s3://plaza-media?endpoint=http://127.0.0.1:1&prefix=prod/media&part_size=16MiB",
		"s3://plaza-media",
	} {
		s, err := blob.Open(ctx, u, "AK", "SK")
		if err != nil {
			t.Fatalf("Open(%q): %v", u, err)
		}
		if s3, ok := s.(*blob.S3); !ok || s3.Bucket() != "plaza-media" {
			t.Fatalf("Open(%q) = %T", u, s)
		}
	}
	if _, err := blob.Open(ctx, "s3://KEY:SECRET@plaza-media?endpoint=127.0.0.1:1", "", ""); err != nil {
		t.Fatalf("credentials in the URL: %v", err)
	}
}

func mustEval(t *testing.T, p string) string {
	t.Helper()
	r, err := filepath.EvalSymlinks(p)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestOpenURLErrors(t *testing.T) {
	const secret = "s3cr3tS3cr3t"
	for _, tc := range []struct{ url, want string }{
		{"", "file:// or s3://"},
		{"/var/media", "file:// or s3://"},
		{"ftp://host/dir", "not supported"},
		{"file://data/media", "host"},
		{"file:///dir?x=1", "no credentials or parameters"},
		{"s3://?endpoint=127.0.0.1:7070", "no bucket"},
		{"s3://B_ad?endpoint=127.0.0.1:7070", "bucket"},
		{"s3://bucket/sub?endpoint=127.0.0.1:7070", "prefix"},
		{"s3://bucket?endpoint=127.0.0.1:7070&secure=maybe", "secure"},
		{"s3://bucket?endpoint=127.0.0.1:7070&regoin=x", `unknown parameter "regoin"`},
		{"s3://bucket?endpoint=ftp://127.0.0.1:7070", "endpoint scheme"},
		{"s3://bucket?endpoint=127.0.0.1:7070&prefix=../x", "prefix"},
		{"s3://bucket?endpoint=127.0.0.1:7070&part_size=1MiB", "part size"},
		{"s3://bucket?endpoint=127.0.0.1:7070", "no credentials"},
		{"s3://KEY:" + secret + "@bucket?endpoint=127.0.0.1:7070&bogus=1", "bogus"},
		{"s3://KEY:" + secret + "%zz@bucket?endpoint=127.0.0.1:7070", "not a valid URL"},
		{"s3://KEY:" + secret + "@bucket/x?endpoint=127.0.0.1:7070", "prefix"},
		{"s3://KEY@bucket?endpoint=127.0.0.1:7070", "KEY:SECRET"},
	} {
		_, err := blob.Open(context.Background(), tc.url, "", "")
		if err == nil {
			t.Errorf("Open(%q) succeeded", tc.url)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(%q) = %q, want it to mention %q", tc.url, err, tc.want)
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("Open(%q) error reveals the secret: %q", tc.url, err)
		}
	}
	// Secrets passed as arguments never show either.
	_, err := blob.Open(context.Background(), "s3://bucket?endpoint=127.0.0.1:7070&bogus=1", "AK", secret)
	if err == nil || strings.Contains(err.Error(), secret) {
		t.Fatalf("Open = %v", err)
	}
}

func TestValidKey(t *testing.T) {
	for _, k := range []string{"a", "a/b.jpg", "media/12/hls/720p/segment_000.ts", ".a/..b/c..", strings.Repeat("a", blob.MaxKeyLen)} {
		if !blob.ValidKey(k) {
			t.Errorf("ValidKey(%q) = false", k)
		}
	}
	for _, k := range blobtest.InvalidKeys() {
		if blob.ValidKey(k) {
			t.Errorf("ValidKey(%q) = true", k)
		}
	}
}

// FuzzValidKey: every valid key is a clean, local, slash-separated path,
// so no store can be steered outside its root by one.
func FuzzValidKey(f *testing.F) {
	for _, k := range append(blobtest.InvalidKeys(), "a/b.jpg", "media/1/hls/x.ts", "a/../b", "a/./b") {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, key string) {
		if !blob.ValidKey(key) {
			return
		}
		if path.Clean(key) != key || path.IsAbs(key) || !fs.ValidPath(key) || !filepath.IsLocal(key) || len(key) > blob.MaxKeyLen {
			t.Fatalf("ValidKey(%q) = true for an unclean or non-local path", key)
		}
		if strings.ContainsAny(key, "\\\x00") {
			t.Fatalf("ValidKey(%q) = true with a backslash or NUL", key)
		}
	})
}

func benchOpenRead(b *testing.B, s blob.Store) {
	const size = 200_000
	data := bytes.Repeat([]byte("plaza-segment!"), size/14+1)[:size]
	key := "bench/hls/720p/segment_000.ts"
	if err := s.Put(context.Background(), key, bytes.NewReader(data), size, ""); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	buf := make([]byte, 32<<10)
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		o, err := s.Open(ctx, key)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{o}, buf)
		o.Close()
		if err != nil || n != size {
			b.Fatalf("read %d bytes: %v", n, err)
		}
	}
}

func BenchmarkLocalOpenRead(b *testing.B) { benchOpenRead(b, blobtest.NewLocal(b)) }

func BenchmarkS3OpenRead(b *testing.B) {
	if os.Getenv("PLAZA_TEST_S3_URL") == "" {
		b.Skip("PLAZA_TEST_S3_URL is not set")
	}
	benchOpenRead(b, blobtest.NewS3(b))
}
