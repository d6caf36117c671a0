// Package blob is where media files live: a local directory (the embedded
// default) or an S3-compatible bucket (scaled out). Both stores stream:
// nothing holds a whole blob in memory, so a multi-gigabyte upload costs a
// bounded buffer, and an open Object is an io.ReadSeeker that
// http.ServeContent can answer Range requests from.
//
// # Keys
//
// Keys are slash-separated relative paths such as
// "media/12/hls/720p/segment_000.ts". ValidKey lists the rules; every
// method of both stores rejects a bad key with ErrInvalidKey before touching
// anything. Prefixes given to List and DeletePrefix name a "directory": they
// follow the same rules (a trailing slash is allowed), and match whole
// segments, so List("media/1") never returns "media/12/…".
//
// # Content types
//
// The content type of a blob is a function of its key's extension
// (ContentTypeFor), on every store, unless the caller gives Put a different
// one: S3 stores the type given to Put (or ContentTypeFor(key) when it is
// empty) and returns it from Stat and Open; Local keeps no metadata besides
// the file itself, so it always reports ContentTypeFor(key) and ignores
// Put's contentType. Code that wants identical behaviour on both stores
// therefore names keys with the right extension and passes "" or the
// matching type, which is exactly what the conformance suite checks. List reports
// ContentTypeFor(key) on both stores, because S3 listings carry no types.
//
// # Serving fast
//
//   - S3: PresignGet gives a URL the client fetches from the bucket (or a CDN
//     in front of it) directly, so the server never proxies the bytes.
//   - Local: LocalPath gives the file path, and an Object opened from Local
//     also has a File() *os.File method; handing the *os.File to
//     http.ServeContent lets net/http use sendfile(2) for whole and ranged
//     responses.
//   - Info.ETag is a strong entity tag in HTTP form (with the quotes), ready
//     for the ETag header, which http.ServeContent then uses to answer
//     If-None-Match and If-Range itself.
package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"
)

// ErrNotFound is returned (wrapped) by Open and Stat for a missing key.
var ErrNotFound = errors.New("blob: not found")

// ErrInvalidKey is returned (wrapped) for a key or prefix that breaks the
// rules of ValidKey, and by Local for a key that resolves outside its
// directory through a symbolic link.
var ErrInvalidKey = errors.New("blob: invalid key")

// ErrSizeMismatch is returned (wrapped) by Put when the reader yields fewer
// or more bytes than the size it was given; nothing is stored.
var ErrSizeMismatch = errors.New("blob: size mismatch")

// MaxKeyLen is the longest key, in bytes, that ValidKey accepts.
const MaxKeyLen = 512

// tempPrefix starts the name of the temporary file Local writes a blob to
// before renaming it into place. Keys may not use it for any segment, so a
// temporary file can never be mistaken for (or collide with) a blob.
const tempPrefix = ".plaza-tmp-"

// Info describes a stored blob.
type Info struct {
	Key         string
	Size        int64
	ContentType string
	ModTime     time.Time
	// ETag is a strong HTTP entity tag, quotes included, that changes
	// whenever the content is replaced.
	ETag string
}

// Object is an open blob: seekable so http.ServeContent can answer Range
// requests.
type Object interface {
	io.ReadSeekCloser
	Info() Info
}

// Store is where blobs live.
type Store interface {
	// Put streams r into key (size -1 when unknown), replacing any existing
	// blob atomically (readers never see a partial file).
	Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) error
	Open(ctx context.Context, key string) (Object, error)
	Stat(ctx context.Context, key string) (Info, error)
	Delete(ctx context.Context, key string) error          // a missing key is not an error
	DeletePrefix(ctx context.Context, prefix string) error // removes every key under prefix/ (e.g. a video's whole HLS directory)
	List(ctx context.Context, prefix string) ([]Info, error)
	// PresignGet returns a time-limited URL the client can fetch directly,
	// or "" when the store cannot (local disk).
	PresignGet(ctx context.Context, key string, ttl time.Duration) (string, error)
	// LocalPath returns the file path for key when the store is a local
	// directory (so the server can use sendfile), else "", false.
	LocalPath(key string) (string, bool)
	Ping(ctx context.Context) error // readiness
}

// ValidKey reports whether key may name a blob: a non-empty relative path
// of at most MaxKeyLen bytes of valid UTF-8 whose slash-separated segments
// are non-empty and not "." or "..", with no backslash, NUL or other control
// character, and no segment starting with ".plaza-tmp-" (reserved for
// temporary files).
func ValidKey(key string) bool {
	if key == "" || len(key) > MaxKeyLen || !utf8.ValidString(key) {
		return false
	}
	for _, r := range key {
		if r == '\\' || unicode.IsControl(r) {
			return false
		}
	}
	for seg := range strings.SplitSeq(key, "/") {
		if seg == "" || seg == "." || seg == ".." || strings.HasPrefix(seg, tempPrefix) {
			return false
		}
	}
	return true
}

// invalidKey is the error for a key that fails ValidKey.
func invalidKey(key string) error {
	return fmt.Errorf("%w: %q", ErrInvalidKey, key)
}

// cleanPrefix validates a List or DeletePrefix prefix and returns it
// without a trailing slash. "" (everything) is allowed only when
// allowEmpty.
func cleanPrefix(prefix string, allowEmpty bool) (string, error) {
	p := strings.TrimSuffix(prefix, "/")
	if p == "" && allowEmpty && (prefix == "" || prefix == "/") {
		return "", nil
	}
	if !ValidKey(p) {
		return "", fmt.Errorf("%w: prefix %q", ErrInvalidKey, prefix)
	}
	return p, nil
}

// contentTypes maps lower-case extensions to the content type both stores
// report for them.
var contentTypes = map[string]string{
	".m3u8": "application/vnd.apple.mpegurl",
	".ts":   "video/MP2T",
	".m4s":  "video/iso.segment",
	".mp4":  "video/mp4",
	".m4a":  "audio/mp4",
	".aac":  "audio/aac",
	".vtt":  "text/vtt; charset=utf-8",
	".jpg":  "image/jpeg",
	".jpeg": "image/jpeg",
	".png":  "image/png",
	".webp": "image/webp",
	".gif":  "image/gif",
	".avif": "image/avif",
	".json": "application/json",
}

// ContentTypeFor returns the content type for key from a fixed table of
// extensions (case-insensitive): .m3u8 application/vnd.apple.mpegurl,
// .ts video/MP2T, .m4s video/iso.segment, .mp4 video/mp4, .m4a audio/mp4,
// .aac audio/aac, .vtt text/vtt, .jpg/.jpeg image/jpeg, .png image/png,
// .webp image/webp, .gif image/gif, .avif image/avif, .json
// application/json, and application/octet-stream for anything else. The
// table is fixed (not the system's MIME database) so every host agrees.
func ContentTypeFor(key string) string {
	ext := strings.ToLower(path.Ext(key))
	if ct, ok := contentTypes[ext]; ok {
		return ct
	}
	return "application/octet-stream"
}

// Open opens the store named by a storage URL (PLAZA_STORAGE_URL):
//
//	file:///abs/dir or file://./rel/dir
//	s3://bucket?endpoint=host:port&region=us-east-1[&secure=true|false][&path_style=true][&create_bucket=true][&prefix=p][&part_size=8MiB]
//
// For s3, accessKey and secretKey (PLAZA_S3_ACCESS_KEY and
// PLAZA_S3_SECRET_KEY) are the credentials, unless the URL carries its own
// in its userinfo (s3://KEY:SECRET@bucket?…, percent-encoded), which then
// take precedence. secure defaults to true; endpoint defaults to
// s3.amazonaws.com and may also be written http://host:port (implying
// secure=false) or https://host:port. prefix keeps every key of the store
// under that path in the bucket. Errors never contain the secret key.
func Open(ctx context.Context, storageURL, accessKey, secretKey string) (Store, error) {
	scheme, _, ok := strings.Cut(storageURL, "://")
	if !ok {
		return nil, errors.New("blob: storage URL must start with file:// or s3://")
	}
	u, err := url.Parse(storageURL)
	if err != nil {
		// url.Parse's error quotes the whole URL, secret included.
		return nil, fmt.Errorf("blob: storage URL (%s://…) is not a valid URL; check its percent-encoding", scheme)
	}
	switch u.Scheme {
	case "file":
		dir, err := fileDir(u)
		if err != nil {
			return nil, err
		}
		return NewLocal(dir)
	case "s3":
		opts, err := s3Options(u, accessKey, secretKey)
		if err != nil {
			return nil, err
		}
		return NewS3(ctx, opts)
	default:
		return nil, fmt.Errorf("blob: storage URL scheme %q is not supported; use file:// or s3://", u.Scheme)
	}
}

// fileDir returns the directory of a file:// URL.
func fileDir(u *url.URL) (string, error) {
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", errors.New("blob: file storage URL takes no credentials or parameters; use file:///abs/dir or file://./rel/dir")
	}
	var dir string
	switch u.Host {
	case "", "localhost":
		dir = u.Path
	case ".", "..":
		dir = u.Host + u.Path
	default:
		return "", fmt.Errorf("blob: file storage URL %q names host %q; use file:///abs/dir or file://./rel/dir", u.Redacted(), u.Host)
	}
	if dir == "" {
		return "", errors.New("blob: file storage URL has no directory; use file:///abs/dir or file://./rel/dir")
	}
	return filepath.FromSlash(dir), nil
}

// s3Options parses an s3:// URL.
func s3Options(u *url.URL, accessKey, secretKey string) (S3Options, error) {
	// Never print the URL with its password: Redacted masks it.
	shown := u.Redacted()
	opts := S3Options{
		Bucket:    u.Host,
		Endpoint:  "s3.amazonaws.com",
		Secure:    true,
		AccessKey: accessKey,
		SecretKey: secretKey,
	}
	if u.User != nil {
		pw, ok := u.User.Password()
		if u.User.Username() == "" || !ok || pw == "" {
			return S3Options{}, fmt.Errorf("blob: storage URL %s: credentials in the URL must be KEY:SECRET@bucket", shown)
		}
		opts.AccessKey, opts.SecretKey = u.User.Username(), pw
	}
	if opts.Bucket == "" {
		return S3Options{}, fmt.Errorf("blob: storage URL %s names no bucket; use s3://bucket?endpoint=host:port&region=…", shown)
	}
	if u.Path != "" && u.Path != "/" {
		return S3Options{}, fmt.Errorf("blob: storage URL %s: put a key prefix in ?prefix=, not in the path", shown)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return S3Options{}, fmt.Errorf("blob: storage URL %s: bad query string", shown)
	}
	secureSet := false
	for name, vals := range q {
		if len(vals) != 1 {
			return S3Options{}, fmt.Errorf("blob: storage URL %s: parameter %q given %d times", shown, name, len(vals))
		}
		v := vals[0]
		switch name {
		case "endpoint":
			opts.Endpoint = v
		case "region":
			opts.Region = v
		case "prefix":
			opts.Prefix = v
		case "secure", "path_style", "create_bucket":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return S3Options{}, fmt.Errorf("blob: storage URL %s: %s=%q, want true or false", shown, name, v)
			}
			switch name {
			case "secure":
				opts.Secure, secureSet = b, true
			case "path_style":
				opts.PathStyle = b
			case "create_bucket":
				opts.CreateBucket = b
			}
		case "part_size":
			n, err := parseBytes(v)
			if err != nil {
				return S3Options{}, fmt.Errorf("blob: storage URL %s: part_size=%q: %v", shown, v, err)
			}
			opts.PartSize = n
		default:
			return S3Options{}, fmt.Errorf("blob: storage URL %s: unknown parameter %q (known: endpoint, region, secure, path_style, create_bucket, prefix, part_size)", shown, name)
		}
	}
	if scheme, host, ok := strings.Cut(opts.Endpoint, "://"); ok {
		switch scheme {
		case "http", "https":
			if secureSet && opts.Secure != (scheme == "https") {
				return S3Options{}, fmt.Errorf("blob: storage URL %s: endpoint scheme %s contradicts secure=%t", shown, scheme, opts.Secure)
			}
			opts.Secure = scheme == "https"
			opts.Endpoint = strings.TrimSuffix(host, "/")
		default:
			return S3Options{}, fmt.Errorf("blob: storage URL %s: endpoint scheme %q, want host:port, http:// or https://", shown, scheme)
		}
	}
	return opts, nil
}

// parseBytes parses a byte count such as 8388608, 8MiB or 16MB.
func parseBytes(s string) (uint64, error) {
	num, mult := s, uint64(1)
	for _, u := range []struct {
		suffix string
		mult   uint64
	}{{"MiB", 1 << 20}, {"MB", 1000 * 1000}, {"GiB", 1 << 30}, {"GB", 1000 * 1000 * 1000}} {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			num, mult = n, u.mult
			break
		}
	}
	n, err := strconv.ParseUint(strings.TrimSpace(num), 10, 64)
	if err != nil {
		return 0, errors.New("want a byte count such as 8388608 or 8MiB")
	}
	return n * mult, nil
}

// ctxReader fails a Read once its context is done, so a Put stops soon
// after cancellation even when the source reader never blocks.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// exactReader passes r through and, when want >= 0, fails with
// ErrSizeMismatch if r ends early or holds more than want bytes. The check
// for extra bytes happens while the last expected bytes are returned, before
// the consumer sees them, so a consumer that stops after exactly want bytes
// (as an S3 upload does) still fails instead of storing a truncated blob.
type exactReader struct {
	r    io.Reader
	want int64 // -1 when unknown
	n    int64
	// mismatch holds the ErrSizeMismatch error once returned, for callers
	// whose consumer (minio, possibly in another goroutine) may not wrap it.
	mismatch atomic.Pointer[error]
}

// fail records and returns a size mismatch.
func (e *exactReader) fail(format string, args ...any) error {
	err := fmt.Errorf("%w: "+format, append([]any{ErrSizeMismatch}, args...)...)
	e.mismatch.Store(&err)
	return err
}

// mismatchErr returns the size mismatch seen, if any.
func (e *exactReader) mismatchErr() error {
	if p := e.mismatch.Load(); p != nil {
		return *p
	}
	return nil
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.want < 0 {
		k, err := e.r.Read(p)
		e.n += int64(k)
		return k, err
	}
	left := e.want - e.n
	if left == 0 {
		if err := e.checkEOF(); err != nil {
			return 0, err
		}
		return 0, io.EOF
	}
	if int64(len(p)) > left {
		p = p[:left]
	}
	k, err := e.r.Read(p)
	e.n += int64(k)
	switch {
	case err == io.EOF && e.n < e.want:
		return k, e.fail("reader ended after %d bytes, want %d", e.n, e.want)
	case err == nil && e.n == e.want:
		if err := e.checkEOF(); err != nil {
			return 0, err
		}
		return k, io.EOF
	}
	return k, err
}

// checkEOF reads past the expected end and reports extra bytes.
func (e *exactReader) checkEOF() error {
	var b [1]byte
	for range 100 {
		k, err := e.r.Read(b[:])
		if k > 0 {
			return e.fail("reader holds more than %d bytes", e.want)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return io.ErrNoProgress
}
