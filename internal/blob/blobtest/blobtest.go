// Package blobtest is the conformance suite every blob.Store must pass, so
// the local and S3 stores cannot drift apart, and gives other packages'
// tests a fresh store on each backend: a temporary directory always, and a
// private key prefix in the bucket named by PLAZA_TEST_S3_URL when that is
// set (credentials from PLAZA_TEST_S3_ACCESS_KEY and
// PLAZA_TEST_S3_SECRET_KEY, or the URL's userinfo).
package blobtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"plaza/internal/blob"
)

// Backend is one kind of store a test can run against.
type Backend struct {
	Name string
	// New returns a fresh, empty store that is emptied when the test ends.
	New func(t testing.TB) blob.Store
}

// Each runs fn as a subtest per backend, "local" always and "s3" (skipped
// when PLAZA_TEST_S3_URL is unset).
func Each(t *testing.T, fn func(t *testing.T, b Backend)) {
	t.Helper()
	t.Run("local", func(t *testing.T) { fn(t, Backend{Name: "local", New: NewLocal}) })
	t.Run("s3", func(t *testing.T) {
		if os.Getenv("PLAZA_TEST_S3_URL") == "" {
			t.Skip("PLAZA_TEST_S3_URL is not set")
		}
		fn(t, Backend{Name: "s3", New: NewS3})
	})
}

// NewLocal returns a Local store in a new temporary directory.
func NewLocal(t testing.TB) blob.Store {
	t.Helper()
	s, err := blob.NewLocal(t.TempDir())
	if err != nil {
		t.Fatalf("blobtest: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// NewS3 returns an S3 store on the server named by PLAZA_TEST_S3_URL,
// confined to a new random key prefix that is deleted when the test ends.
// It skips the test when PLAZA_TEST_S3_URL is unset and fails it when the
// server does not answer.
func NewS3(t testing.TB) blob.Store {
	t.Helper()
	base := os.Getenv("PLAZA_TEST_S3_URL")
	if base == "" {
		t.Skip("PLAZA_TEST_S3_URL is not set")
	}
	ak, sk := os.Getenv("PLAZA_TEST_S3_ACCESS_KEY"), os.Getenv("PLAZA_TEST_S3_SECRET_KEY")
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal("blobtest: PLAZA_TEST_S3_URL is not a valid URL")
	}
	q := u.Query()
	prefix := "blobtest-" + randomHex(8)
	if p := strings.Trim(q.Get("prefix"), "/"); p != "" {
		prefix = p + "/" + prefix
	}
	q.Set("prefix", prefix)
	u.RawQuery = q.Encode()
	ctx := context.Background()
	s, err := blob.Open(ctx, u.String(), ak, sk)
	if err != nil {
		t.Fatalf("blobtest: PLAZA_TEST_S3_URL: %v", err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("blobtest: PLAZA_TEST_S3_URL does not answer: %v", err)
	}
	// The bucket-wide store removes the prefix as a whole, whatever the
	// test left behind.
	q.Del("prefix")
	if p := u.Query().Get("prefix"); strings.Contains(p, "/") {
		q.Set("prefix", p[:strings.LastIndex(p, "/")])
	}
	u.RawQuery = q.Encode()
	parent, err := blob.Open(ctx, u.String(), ak, sk)
	if err != nil {
		t.Fatalf("blobtest: PLAZA_TEST_S3_URL: %v", err)
	}
	leaf := prefix[strings.LastIndex(prefix, "/")+1:]
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := parent.DeletePrefix(ctx, leaf); err != nil {
			t.Logf("blobtest: delete test prefix %s: %v", prefix, err)
		}
	})
	return s
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Run runs the conformance suite. newStore is called once per subtest and
// must return an empty store of its own (a fresh directory, or a unique
// prefix or bucket). The large-blob tests run first, one at a time, so
// their memory measurements see only themselves; the rest run in
// parallel.
func Run(t *testing.T, newStore func(t *testing.T) blob.Store) {
	t.Helper()
	t.Run("LargeStreamedUnknownSize", func(t *testing.T) { testLarge(t, newStore(t), false) })
	t.Run("LargeStreamedKnownSize", func(t *testing.T) { testLarge(t, newStore(t), true) })
	tests := []struct {
		name string
		fn   func(t *testing.T, s blob.Store)
	}{
		{"PutOpenStat", testPutOpenStat},
		{"ContentTypes", testContentTypes},
		{"EmptyBlob", testEmpty},
		{"UnusualValidKeys", testUnusualKeys},
		{"Overwrite", testOverwrite},
		{"List", testList},
		{"Delete", testDelete},
		{"DeletePrefix", testDeletePrefix},
		{"PrefixIsNotABlob", testPrefixIsNotABlob},
		{"NotFound", testNotFound},
		{"InvalidKeys", testInvalidKeys},
		{"Seek", testSeek},
		{"ServeContentRange", testServeContent},
		{"ConcurrentPutsSameKey", testConcurrentPuts},
		{"CancelPut", testCancelPut},
		{"SizeMismatch", testSizeMismatch},
		{"PresignGet", testPresign},
		{"LocalPath", testLocalPath},
		{"Ping", testPing},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newStore(t))
		})
	}
}

// put stores data under key and fails the test on error.
func put(t *testing.T, s blob.Store, key string, data []byte, contentType string) {
	t.Helper()
	if err := s.Put(t.Context(), key, bytes.NewReader(data), int64(len(data)), contentType); err != nil {
		t.Fatalf("Put(%q, %d bytes): %v", key, len(data), err)
	}
}

// read opens key and returns its content and Info.
func read(t *testing.T, s blob.Store, key string) ([]byte, blob.Info) {
	t.Helper()
	o, err := s.Open(t.Context(), key)
	if err != nil {
		t.Fatalf("Open(%q): %v", key, err)
	}
	defer o.Close()
	b, err := io.ReadAll(o)
	if err != nil {
		t.Fatalf("read %q: %v", key, err)
	}
	return b, o.Info()
}

func stat(t *testing.T, s blob.Store, key string) blob.Info {
	t.Helper()
	info, err := s.Stat(t.Context(), key)
	if err != nil {
		t.Fatalf("Stat(%q): %v", key, err)
	}
	return info
}

func mustNotFound(t *testing.T, s blob.Store, key string) {
	t.Helper()
	if info, err := s.Stat(t.Context(), key); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("Stat(%q) = %+v, %v; want ErrNotFound", key, info, err)
	}
	o, err := s.Open(t.Context(), key)
	if err == nil {
		o.Close()
	}
	if !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("Open(%q) error = %v, want ErrNotFound", key, err)
	}
}

func listKeys(t *testing.T, s blob.Store, prefix string) []string {
	t.Helper()
	infos, err := s.List(t.Context(), prefix)
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	keys := []string{}
	for _, i := range infos {
		keys = append(keys, i.Key)
	}
	return keys
}

// pattern returns n bytes that differ at every offset modulo a period that
// divides no part size, seeded by seed.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7+i/251) ^ seed
	}
	return b
}

func checkETag(t *testing.T, key, etag string) {
	t.Helper()
	if len(etag) < 3 || etag[0] != '"' || etag[len(etag)-1] != '"' {
		t.Fatalf("%q: ETag %q is not a quoted HTTP entity tag", key, etag)
	}
}

func testPutOpenStat(t *testing.T, s blob.Store) {
	key := "media/12/images/avatar.jpg"
	data := pattern(70_000, 1)
	before := time.Now()
	put(t, s, key, data, "image/jpeg")
	info := stat(t, s, key)
	if info.Key != key || info.Size != int64(len(data)) || info.ContentType != "image/jpeg" {
		t.Fatalf("Stat = %+v, want key %q, size %d, image/jpeg", info, key, len(data))
	}
	checkETag(t, key, info.ETag)
	// Servers keep seconds; allow for clock skew with the server too.
	if d := info.ModTime.Sub(before); d < -time.Minute || d > time.Minute {
		t.Fatalf("ModTime %s is %s away from the time of Put", info.ModTime, d)
	}
	got, oinfo := read(t, s, key)
	if !bytes.Equal(got, data) {
		t.Fatalf("Open(%q) read %d bytes that differ from the %d put", key, len(got), len(data))
	}
	if oinfo.Key != info.Key || oinfo.Size != info.Size || oinfo.ContentType != info.ContentType ||
		oinfo.ETag != info.ETag || !oinfo.ModTime.Equal(info.ModTime) {
		t.Fatalf("Open(%q).Info() = %+v, Stat = %+v", key, oinfo, info)
	}
	// ETags are stable while the content is.
	if again := stat(t, s, key); again.ETag != info.ETag {
		t.Fatalf("ETag changed without a Put: %q then %q", info.ETag, again.ETag)
	}
}

func testContentTypes(t *testing.T, s blob.Store) {
	cases := map[string]string{
		"hls/master.m3u8":  "application/vnd.apple.mpegurl",
		"hls/720p/seg.ts":  "video/MP2T",
		"img/a.jpg":        "image/jpeg",
		"img/b.PNG":        "image/png",
		"img/c.webp":       "image/webp",
		"video/source.mp4": "video/mp4",
		"misc/blob.bin":    "application/octet-stream",
		"misc/noext":       "application/octet-stream",
	}
	for key, want := range cases {
		if got := blob.ContentTypeFor(key); got != want {
			t.Errorf("ContentTypeFor(%q) = %q, want %q", key, got, want)
		}
		// An empty content type is derived from the key.
		put(t, s, key, []byte("x"), "")
		if got := stat(t, s, key).ContentType; got != want {
			t.Errorf("after Put(%q, \"\"): Stat ContentType = %q, want %q", key, got, want)
		}
		// The matching type is returned as given, by Stat and by Open.
		put(t, s, key, []byte("xy"), want)
		if got := stat(t, s, key).ContentType; got != want {
			t.Errorf("after Put(%q, %q): Stat ContentType = %q", key, want, got)
		}
		if _, info := read(t, s, key); info.ContentType != want {
			t.Errorf("after Put(%q, %q): Open ContentType = %q", key, want, info.ContentType)
		}
	}
}

func testEmpty(t *testing.T, s blob.Store) {
	put(t, s, "empty/known.bin", nil, "")
	if err := s.Put(t.Context(), "empty/unknown.bin", strings.NewReader(""), -1, ""); err != nil {
		t.Fatalf("Put(empty, -1): %v", err)
	}
	for _, key := range []string{"empty/known.bin", "empty/unknown.bin"} {
		if info := stat(t, s, key); info.Size != 0 {
			t.Fatalf("Stat(%q).Size = %d, want 0", key, info.Size)
		}
		if got, _ := read(t, s, key); len(got) != 0 {
			t.Fatalf("read %q: %d bytes, want 0", key, len(got))
		}
	}
}

func testUnusualKeys(t *testing.T, s blob.Store) {
	var segs []string
	for n := 0; n < blob.MaxKeyLen; n += 100 {
		segs = append(segs, strings.Repeat("k", 99))
	}
	long := strings.Join(segs, "/")[:blob.MaxKeyLen-4] + ".jpg"
	keys := []string{
		"a b/ü ñ 日本.jpg",
		"a..b/c...d",
		".hidden/.dot.png",
		"x/.../y",
		"q/a+b=c&d?e#f%20.ts",
		"single",
		long,
	}
	for i, key := range keys {
		if !blob.ValidKey(key) {
			t.Fatalf("ValidKey(%q) = false", key)
		}
		data := pattern(100+i, byte(i))
		put(t, s, key, data, "")
		if got, info := read(t, s, key); !bytes.Equal(got, data) || info.Key != key {
			t.Fatalf("read %q back: %d bytes, Info.Key %q", key, len(got), info.Key)
		}
	}
	got := listKeys(t, s, "")
	want := slices.Clone(keys)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("List(\"\") = %q, want %q", got, want)
	}
}

func testOverwrite(t *testing.T, s blob.Store) {
	key := "media/1/poster.webp"
	v1, v2 := pattern(5000, 1), pattern(3000, 2)
	put(t, s, key, v1, "image/webp")
	i1 := stat(t, s, key)
	put(t, s, key, v2, "image/webp")
	i2 := stat(t, s, key)
	if got, _ := read(t, s, key); !bytes.Equal(got, v2) {
		t.Fatalf("after overwrite read %d bytes, want the %d of the second version", len(got), len(v2))
	}
	if i2.Size != int64(len(v2)) {
		t.Fatalf("after overwrite Size = %d, want %d", i2.Size, len(v2))
	}
	if i1.ETag == i2.ETag {
		t.Fatalf("ETag %q unchanged by an overwrite with different content", i1.ETag)
	}
	if keys := listKeys(t, s, "media"); !slices.Equal(keys, []string{key}) {
		t.Fatalf("List after overwrite = %q, want just %q", keys, key)
	}
}

func testList(t *testing.T, s blob.Store) {
	keys := []string{
		"list/a.jpg",
		"list/b/c.ts",
		"list/b/d/e.m3u8",
		"list-other/x.jpg",
		"listx.jpg",
		"lis/t.jpg",
	}
	for i, k := range keys {
		put(t, s, k, pattern(10+i, byte(i)), "")
	}
	cases := map[string][]string{
		"list":    {"list/a.jpg", "list/b/c.ts", "list/b/d/e.m3u8"},
		"list/":   {"list/a.jpg", "list/b/c.ts", "list/b/d/e.m3u8"},
		"list/b":  {"list/b/c.ts", "list/b/d/e.m3u8"},
		"list/b/": {"list/b/c.ts", "list/b/d/e.m3u8"},
		"list/a":  {},
		"nothing": {},
		"":        {"lis/t.jpg", "list-other/x.jpg", "list/a.jpg", "list/b/c.ts", "list/b/d/e.m3u8", "listx.jpg"},
	}
	for prefix, want := range cases {
		if got := listKeys(t, s, prefix); !slices.Equal(got, want) {
			t.Errorf("List(%q) = %q, want %q", prefix, got, want)
		}
	}
	infos, err := s.List(t.Context(), "list")
	if err != nil {
		t.Fatal(err)
	}
	for _, li := range infos {
		si := stat(t, s, li.Key)
		if li.Size != si.Size || li.ETag != si.ETag || li.ContentType != blob.ContentTypeFor(li.Key) {
			t.Errorf("List entry %+v disagrees with Stat %+v", li, si)
		}
		if d := li.ModTime.Sub(si.ModTime); d < -time.Second || d > time.Second {
			t.Errorf("List ModTime %s, Stat ModTime %s", li.ModTime, si.ModTime)
		}
	}
}

func testDelete(t *testing.T, s blob.Store) {
	put(t, s, "d/x/1.jpg", []byte("one"), "")
	put(t, s, "d/x/2.jpg", []byte("two"), "")
	if err := s.Delete(t.Context(), "d/x/1.jpg"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	mustNotFound(t, s, "d/x/1.jpg")
	if got, _ := read(t, s, "d/x/2.jpg"); string(got) != "two" {
		t.Fatalf("sibling after Delete = %q", got)
	}
	// Deleting what is not there is no error.
	for _, key := range []string{"d/x/1.jpg", "never/was.jpg", "d"} {
		if err := s.Delete(t.Context(), key); err != nil {
			t.Fatalf("Delete(%q) of a missing key: %v", key, err)
		}
	}
	// The last key of a directory can go and come back.
	if err := s.Delete(t.Context(), "d/x/2.jpg"); err != nil {
		t.Fatal(err)
	}
	if keys := listKeys(t, s, ""); len(keys) != 0 {
		t.Fatalf("List after deleting everything = %q", keys)
	}
	put(t, s, "d/x/3.jpg", []byte("three"), "")
	if got, _ := read(t, s, "d/x/3.jpg"); string(got) != "three" {
		t.Fatalf("read after re-put = %q", got)
	}
}

func testDeletePrefix(t *testing.T, s blob.Store) {
	gone := []string{
		"media/7/hls/master.m3u8",
		"media/7/hls/720p/index.m3u8",
		"media/7/hls/720p/segment_000.ts",
		"media/7/hls/720p/segment_001.ts",
	}
	for i := range 40 {
		gone = append(gone, fmt.Sprintf("media/7/hls/360p/segment_%03d.ts", i))
	}
	kept := []string{"media/7/hlsx.jpg", "media/7/poster.jpg", "media/70/hls/a.ts", "media/7h/hls/a.ts"}
	var wg sync.WaitGroup
	errs := make(chan error, len(gone)+len(kept))
	for i, k := range append(slices.Clone(gone), kept...) {
		wg.Go(func() {
			data := pattern(1000+i, byte(i))
			errs <- s.Put(t.Context(), k, bytes.NewReader(data), int64(len(data)), "")
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Put: %v", err)
		}
	}
	if err := s.DeletePrefix(t.Context(), "media/7/hls"); err != nil {
		t.Fatalf("DeletePrefix: %v", err)
	}
	for _, k := range gone {
		mustNotFound(t, s, k)
	}
	if got := listKeys(t, s, ""); !slices.Equal(got, kept) {
		t.Fatalf("List after DeletePrefix = %q, want %q", got, kept)
	}
	// Again, and with a trailing slash, and for a prefix that never was.
	for _, p := range []string{"media/7/hls", "media/7/hls/", "nothing/here"} {
		if err := s.DeletePrefix(t.Context(), p); err != nil {
			t.Fatalf("DeletePrefix(%q) with nothing under it: %v", p, err)
		}
	}
	// A prefix is a directory: a blob named like it stays.
	if err := s.DeletePrefix(t.Context(), "media/7/poster.jpg"); err != nil {
		t.Fatal(err)
	}
	if got := listKeys(t, s, ""); !slices.Equal(got, kept) {
		t.Fatalf("DeletePrefix of a blob's own key removed it: List = %q", got)
	}
	for _, p := range []string{"", "/", "../media", "/media", "media//7"} {
		if err := s.DeletePrefix(t.Context(), p); !errors.Is(err, blob.ErrInvalidKey) {
			t.Fatalf("DeletePrefix(%q) = %v, want ErrInvalidKey", p, err)
		}
	}
	if got := listKeys(t, s, ""); !slices.Equal(got, kept) {
		t.Fatalf("after invalid DeletePrefix calls List = %q, want %q", got, kept)
	}
}

func testPrefixIsNotABlob(t *testing.T, s blob.Store) {
	put(t, s, "dir/sub/x.ts", []byte("x"), "")
	for _, key := range []string{"dir", "dir/sub"} {
		mustNotFound(t, s, key)
	}
}

func testNotFound(t *testing.T, s blob.Store) {
	mustNotFound(t, s, "missing.jpg")
	mustNotFound(t, s, "missing/deeper/file.ts")
	put(t, s, "present.jpg", []byte("x"), "")
	mustNotFound(t, s, "present.jpg/child")
	mustNotFound(t, s, "present.jp")
}

// InvalidKeys is every kind of key ValidKey must reject.
func InvalidKeys() []string {
	return []string{
		"",
		"/abs/key.jpg",
		"/",
		"a//b.jpg",
		"a/",
		"./a.jpg",
		"a/./b.jpg",
		".",
		"..",
		"../a.jpg",
		"a/../b.jpg",
		"a/..",
		`a\b.jpg`,
		`..\a.jpg`,
		"a\x00b.jpg",
		"a\nb.jpg",
		"a\rb.jpg",
		"a\tb.jpg",
		"a\x7fb.jpg",
		"a\u0085b.jpg",
		"a\xffb.jpg",
		strings.Repeat("k", blob.MaxKeyLen+1),
		strings.Repeat("k/", blob.MaxKeyLen/2) + "k",
		".plaza-tmp-1234",
		"a/.plaza-tmp-1234",
	}
}

func testInvalidKeys(t *testing.T, s blob.Store) {
	ctx := t.Context()
	for _, key := range InvalidKeys() {
		if blob.ValidKey(key) {
			t.Errorf("ValidKey(%q) = true", key)
		}
		check := func(op string, err error) {
			t.Helper()
			if !errors.Is(err, blob.ErrInvalidKey) {
				t.Errorf("%s(%q) error = %v, want ErrInvalidKey", op, key, err)
			}
		}
		check("Put", s.Put(ctx, key, strings.NewReader("x"), 1, ""))
		check("Put(-1)", s.Put(ctx, key, strings.NewReader("x"), -1, ""))
		o, err := s.Open(ctx, key)
		if err == nil {
			o.Close()
		}
		check("Open", err)
		_, err = s.Stat(ctx, key)
		check("Stat", err)
		check("Delete", s.Delete(ctx, key))
		_, err = s.PresignGet(ctx, key, time.Minute)
		check("PresignGet", err)
		if p, ok := s.LocalPath(key); ok || p != "" {
			t.Errorf("LocalPath(%q) = %q, %t", key, p, ok)
		}
		if key != "" && key != "/" && !strings.HasSuffix(key, "/") {
			_, err = s.List(ctx, key)
			check("List", err)
			check("DeletePrefix", s.DeletePrefix(ctx, key))
		}
	}
	if keys := listKeys(t, s, ""); len(keys) != 0 {
		t.Fatalf("invalid keys stored something: %q", keys)
	}
}

func testSeek(t *testing.T, s blob.Store) {
	key := "seek/video.mp4"
	data := pattern(100_000, 3)
	put(t, s, key, data, "")
	o, err := s.Open(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	seek := func(off int64, whence int, want int64) {
		t.Helper()
		got, err := o.Seek(off, whence)
		if err != nil || got != want {
			t.Fatalf("Seek(%d, %d) = %d, %v; want %d", off, whence, got, err, want)
		}
	}
	readN := func(n int, from int) {
		t.Helper()
		buf := make([]byte, n)
		if _, err := io.ReadFull(o, buf); err != nil {
			t.Fatalf("read %d bytes at %d: %v", n, from, err)
		}
		if !bytes.Equal(buf, data[from:from+n]) {
			t.Fatalf("read %d bytes at %d: wrong content", n, from)
		}
	}
	size := int64(len(data))
	// What http.ServeContent does: find the size, rewind, then seek to
	// each range.
	seek(0, io.SeekEnd, size)
	seek(0, io.SeekStart, 0)
	readN(10, 0)
	seek(50_000, io.SeekStart, 50_000)
	readN(1000, 50_000)
	seek(500, io.SeekCurrent, 51_500)
	readN(100, 51_500)
	seek(-100, io.SeekCurrent, 51_500)
	readN(100, 51_500)
	seek(-10, io.SeekEnd, size-10)
	rest, err := io.ReadAll(o)
	if err != nil || !bytes.Equal(rest, data[size-10:]) {
		t.Fatalf("read the last 10 bytes: %d bytes, %v", len(rest), err)
	}
	seek(size, io.SeekStart, size)
	if n, err := o.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Fatalf("Read at the end = %d, %v; want 0, EOF", n, err)
	}
	seek(20_000, io.SeekStart, 20_000)
	readN(5, 20_000)
	if _, err := o.Seek(-1, io.SeekStart); err == nil {
		t.Fatal("Seek(-1, SeekStart) succeeded")
	}
	seek(0, io.SeekStart, 0)
	all, err := io.ReadAll(o)
	if err != nil || !bytes.Equal(all, data) {
		t.Fatalf("read all after seeking: %d bytes, %v", len(all), err)
	}
}

func testServeContent(t *testing.T, s blob.Store) {
	key := "serve/hls/720p/segment_003.ts"
	data := pattern(200_000, 4)
	put(t, s, key, data, "")
	for _, tc := range []struct {
		rng        string
		status     int
		start, end int // of the expected body
	}{
		{"", http.StatusOK, 0, len(data)},
		{"bytes=100-199", http.StatusPartialContent, 100, 200},
		{"bytes=150000-", http.StatusPartialContent, 150_000, len(data)},
		{"bytes=-1000", http.StatusPartialContent, len(data) - 1000, len(data)},
	} {
		o, err := s.Open(t.Context(), key)
		if err != nil {
			t.Fatal(err)
		}
		info := o.Info()
		req := httptest.NewRequest(http.MethodGet, "/media/"+key, nil)
		if tc.rng != "" {
			req.Header.Set("Range", tc.rng)
		}
		rec := httptest.NewRecorder()
		rec.Header().Set("Content-Type", info.ContentType)
		rec.Header().Set("ETag", info.ETag)
		http.ServeContent(rec, req, "", info.ModTime, o)
		o.Close()
		body := rec.Body.Bytes()
		if rec.Code != tc.status || !bytes.Equal(body, data[tc.start:tc.end]) {
			t.Fatalf("Range %q: status %d with %d bytes, want %d with bytes [%d, %d)", tc.rng, rec.Code, len(body), tc.status, tc.start, tc.end)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "video/MP2T" {
			t.Fatalf("Content-Type %q", ct)
		}
	}
	// The ETag answers conditional requests without a body.
	info := stat(t, s, key)
	o, err := s.Open(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	req := httptest.NewRequest(http.MethodGet, "/media/"+key, nil)
	req.Header.Set("If-None-Match", info.ETag)
	rec := httptest.NewRecorder()
	rec.Header().Set("ETag", info.ETag)
	http.ServeContent(rec, req, "", info.ModTime, o)
	if rec.Code != http.StatusNotModified {
		t.Fatalf("If-None-Match with the ETag: status %d, want 304", rec.Code)
	}
}

func testConcurrentPuts(t *testing.T, s blob.Store) {
	key := "race/segment.ts"
	const writers = 8
	// Version i is writerSize(i) bytes of the byte 'a'+i, so any mix or
	// truncation is visible.
	writerSize := func(i int) int { return 300_000 + i*1111 }
	version := func(i int) []byte { return bytes.Repeat([]byte{byte('a' + i)}, writerSize(i)) }
	check := func(b []byte) error {
		if len(b) == 0 {
			return errors.New("empty read")
		}
		i := int(b[0] - 'a')
		if i < 0 || i >= writers || len(b) != writerSize(i) || bytes.Count(b, b[:1]) != len(b) {
			return fmt.Errorf("read %d bytes starting %q: not one complete version", len(b), b[:1])
		}
		return nil
	}
	put(t, s, key, version(0), "")
	ctx, stop := context.WithCancel(t.Context())
	var readers sync.WaitGroup
	var readErr error
	var mu sync.Mutex
	for range 3 {
		readers.Go(func() {
			for ctx.Err() == nil {
				o, err := s.Open(ctx, key)
				if err != nil {
					continue
				}
				b, err := io.ReadAll(o)
				o.Close()
				// A read may fail when the blob is replaced under it (S3
				// refuses to mix versions); it must never succeed with
				// a partial or mixed blob.
				if err == nil {
					if err := check(b); err != nil {
						mu.Lock()
						readErr = err
						mu.Unlock()
					}
				}
			}
		})
	}
	var writersWG sync.WaitGroup
	errs := make([]error, writers)
	for i := range writers {
		writersWG.Go(func() {
			for range 3 {
				size := int64(writerSize(i))
				if i%2 == 1 {
					size = -1
				}
				if err := s.Put(t.Context(), key, bytes.NewReader(version(i)), size, ""); err != nil {
					errs[i] = err
					return
				}
			}
		})
	}
	writersWG.Wait()
	stop()
	readers.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("writer %d: %v", i, err)
		}
	}
	if readErr != nil {
		t.Fatalf("a reader saw: %v", readErr)
	}
	got, info := read(t, s, key)
	if err := check(got); err != nil {
		t.Fatal(err)
	}
	if info.Size != int64(len(got)) {
		t.Fatalf("Info.Size %d, read %d bytes", info.Size, len(got))
	}
	if keys := listKeys(t, s, ""); !slices.Equal(keys, []string{key}) {
		t.Fatalf("List after concurrent puts = %q", keys)
	}
}

// cancelReader yields n bytes, cancels, then keeps yielding until limit.
type cancelReader struct {
	n, limit int
	cancel   func()
	read     int
}

func (c *cancelReader) Read(p []byte) (int, error) {
	if c.read >= c.limit {
		return 0, io.EOF
	}
	if c.read >= c.n {
		c.cancel()
	}
	k := copy(p[:min(len(p), c.limit-c.read)], genBlock())
	c.read += k
	return k, nil
}

func testCancelPut(t *testing.T, s blob.Store) {
	const limit = 24 << 20
	v1 := pattern(4000, 9)
	put(t, s, "cancel/existing.ts", v1, "")
	for _, tc := range []struct {
		key   string
		after int // bytes before cancelling
		size  int64
	}{
		{"cancel/fresh-unknown.ts", 64 << 10, -1},
		{"cancel/fresh-known.ts", 64 << 10, limit},
		{"cancel/fresh-unknown-late.ts", 12 << 20, -1},
		{"cancel/existing.ts", 64 << 10, -1},
		{"cancel/existing.ts", 64 << 10, limit},
		{"cancel/fresh-before.ts", 0, limit},
	} {
		ctx, cancel := context.WithCancel(t.Context())
		r := &cancelReader{n: tc.after, limit: limit, cancel: cancel}
		if tc.after == 0 {
			cancel()
		}
		err := s.Put(ctx, tc.key, r, tc.size, "")
		cancel()
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Put(%q) cancelled after %d bytes (size %d) = %v, want context.Canceled", tc.key, tc.after, tc.size, err)
		}
		if tc.key == "cancel/existing.ts" {
			if got, _ := read(t, s, tc.key); !bytes.Equal(got, v1) {
				t.Fatalf("cancelled overwrite of %q changed it to %d bytes", tc.key, len(got))
			}
		} else {
			mustNotFound(t, s, tc.key)
		}
	}
	if keys := listKeys(t, s, ""); !slices.Equal(keys, []string{"cancel/existing.ts"}) {
		t.Fatalf("List after cancelled puts = %q", keys)
	}
}

func testSizeMismatch(t *testing.T, s blob.Store) {
	put(t, s, "size/existing.jpg", []byte("old"), "")
	for _, tc := range []struct {
		key  string
		data int
		size int64
	}{
		{"size/short.jpg", 50, 100},
		{"size/long.jpg", 150, 100},
		{"size/long-empty.jpg", 1, 0},
		{"size/short-large.ts", 9 << 20, 10 << 20},
		{"size/long-large.ts", 11 << 20, 10 << 20},
		{"size/existing.jpg", 10, 5},
	} {
		err := s.Put(t.Context(), tc.key, newGen(int64(tc.data)), tc.size, "")
		if !errors.Is(err, blob.ErrSizeMismatch) {
			t.Fatalf("Put(%q) of %d bytes as size %d = %v, want ErrSizeMismatch", tc.key, tc.data, tc.size, err)
		}
		if tc.key == "size/existing.jpg" {
			if got, _ := read(t, s, tc.key); string(got) != "old" {
				t.Fatalf("failed overwrite changed %q to %q", tc.key, got)
			}
		} else {
			mustNotFound(t, s, tc.key)
		}
	}
}

func testPresign(t *testing.T, s blob.Store) {
	key := "presign/hls/720p/segment_000.ts"
	data := pattern(30_000, 6)
	put(t, s, key, data, "")
	u, err := s.PresignGet(t.Context(), key, time.Minute)
	if err != nil {
		t.Fatalf("PresignGet: %v", err)
	}
	if u == "" {
		// Only a local directory cannot presign.
		if _, ok := s.LocalPath(key); !ok {
			t.Fatal("PresignGet returned \"\" but the store is not local (LocalPath has no path)")
		}
		return
	}
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("GET presigned URL: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(body, data) {
		t.Fatalf("GET presigned URL: status %d, %d bytes, %v", resp.StatusCode, len(body), err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "video/MP2T" {
		t.Fatalf("GET presigned URL: Content-Type %q", ct)
	}
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Range", "bytes=10-19")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, data[10:20]) {
		t.Fatalf("ranged GET of presigned URL: status %d, %d bytes", resp.StatusCode, len(body))
	}
	for _, ttl := range []time.Duration{0, -time.Second} {
		if _, err := s.PresignGet(t.Context(), key, ttl); err == nil {
			t.Fatalf("PresignGet with ttl %s succeeded", ttl)
		}
	}
}

func testLocalPath(t *testing.T, s blob.Store) {
	key := "lp/image.png"
	data := pattern(1234, 7)
	put(t, s, key, data, "")
	p, ok := s.LocalPath(key)
	if !ok {
		if p != "" {
			t.Fatalf("LocalPath = %q, false", p)
		}
		return // not a local store
	}
	got, err := os.ReadFile(p)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("reading LocalPath %q: %d bytes, %v", p, len(got), err)
	}
	if p, ok := s.LocalPath("lp/missing.png"); ok {
		t.Fatalf("LocalPath of a missing key = %q, true", p)
	}
}

func testPing(t *testing.T, s blob.Store) {
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

// genReader yields size bytes of a pattern whose period divides no
// power-of-two part size, without holding them.
type genReader struct {
	block []byte
	off   int64
	size  int64
}

var genBlock = sync.OnceValue(func() []byte {
	b := make([]byte, 1<<20+4099)
	_, _ = rand.Read(b)
	return b
})

func newGen(size int64) *genReader { return &genReader{block: genBlock(), size: size} }

func (g *genReader) Read(p []byte) (int, error) {
	if g.off >= g.size {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), g.size-g.off)]
	n := 0
	for n < len(p) {
		n += copy(p[n:], g.block[(g.off+int64(n))%int64(len(g.block)):])
	}
	g.off += int64(n)
	return n, nil
}

const largeSize = 64 << 20

func testLarge(t *testing.T, s blob.Store, known bool) {
	key := "large/source.mp4"
	size := int64(-1)
	if known {
		size = largeSize
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if err := s.Put(t.Context(), key, newGen(largeSize), size, ""); err != nil {
		t.Fatalf("Put of %d bytes (size %d): %v", largeSize, size, err)
	}
	runtime.ReadMemStats(&after)
	t.Logf("Put of %d MiB allocated %.1f MiB", largeSize>>20, float64(after.TotalAlloc-before.TotalAlloc)/(1<<20))
	if grew := after.TotalAlloc - before.TotalAlloc; grew > largeSize/2 {
		t.Fatalf("Put of %d MiB allocated %d MiB: it must stream, not buffer", largeSize>>20, grew>>20)
	}
	if info := stat(t, s, key); info.Size != largeSize {
		t.Fatalf("Stat.Size = %d, want %d", info.Size, largeSize)
	}
	runtime.ReadMemStats(&before)
	o, err := s.Open(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	want := newGen(largeSize)
	got, exp := make([]byte, 256<<10), make([]byte, 256<<10)
	var total int64
	for {
		n, err := io.ReadFull(o, got)
		if n > 0 {
			if _, err := io.ReadFull(want, exp[:n]); err != nil {
				t.Fatalf("blob longer than %d bytes", largeSize)
			}
			if !bytes.Equal(got[:n], exp[:n]) {
				t.Fatalf("content differs within bytes [%d, %d)", total, total+int64(n))
			}
			total += int64(n)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			t.Fatalf("read at %d: %v", total, err)
		}
	}
	if total != largeSize {
		t.Fatalf("read %d bytes, want %d", total, largeSize)
	}
	runtime.ReadMemStats(&after)
	t.Logf("reading %d MiB allocated %.1f MiB", largeSize>>20, float64(after.TotalAlloc-before.TotalAlloc)/(1<<20))
	if grew := after.TotalAlloc - before.TotalAlloc; grew > largeSize/2 {
		t.Fatalf("reading %d MiB allocated %d MiB: it must stream, not buffer", largeSize>>20, grew>>20)
	}
}
