package segments

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"plaza/internal/account"
	"plaza/internal/app"
	"plaza/internal/config"
)

// segmentSize is the size of the 360p segment_000.ts that run.sh gets
// from its generated clip (testsrc2 640x360, 10 s).
const segmentSize = 465112

// fixture is one app over a temporary SQLite database and local store,
// holding a user with an access token and a ready video whose 360p
// rendition has one segment (random bytes, written with the blob store's
// Put, as the transcoder writes them).
type fixture struct {
	app     *app.App
	token   string
	mediaID int64
	segURL  string
	userID  int64
}

var (
	fixOnce sync.Once
	fix     *fixture
	fixErr  error
)

func setup(b *testing.B) *fixture {
	b.Helper()
	fixOnce.Do(func() { fix, fixErr = newFixture() })
	if fixErr != nil {
		b.Fatal(fixErr)
	}
	return fix
}

func newFixture() (*fixture, error) {
	ctx := context.Background()
	dir, err := tempDir()
	if err != nil {
		return nil, err
	}
	env := map[string]string{
		"PLAZA_DATA_DIR":          dir,
		"PLAZA_ADDR":              "127.0.0.1:0",
		"PLAZA_RATE_LIMITS":       "off",
		"PLAZA_LOG_LEVEL":         "warn",
		"PLAZA_VIDEO_RESOLUTIONS": "360p",
		"PLAZA_ACCESS_TOKEN_TTL":  "2h",
		"PLAZA_WORKERS":           "off",
	}
	cfg, err := config.Load("serve", nil, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		return nil, err
	}
	if err := cfg.EnsureSecretKey(func(b []byte) error { _, err := rand.Read(b); return err }); err != nil {
		return nil, err
	}
	log := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
	a, err := app.New(ctx, cfg, log, app.Options{Argon2: account.Argon2Params{MemoryKiB: 1024, Time: 1, Threads: 1}})
	if err != nil {
		return nil, err
	}
	u, err := a.Accounts.CreateUser(ctx, "segbench@example.com", "segbench-Passw0rd-123", "segbench", false)
	if err != nil {
		return nil, err
	}
	sess, err := a.Accounts.StartSession(ctx, u)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	var id int64
	if err := a.DB.ExecRow(ctx, `INSERT INTO media (owner_id, kind, status, progress, key, renditions, created_at, updated_at)
		VALUES (?, 'video', 'ready', 100, 'media/bench/hls', '["360p"]', ?, ?) RETURNING id`, u.ID, now, now).Scan(&id); err != nil {
		return nil, fmt.Errorf("insert media: %w", err)
	}
	seg := make([]byte, segmentSize)
	_, _ = rand.Read(seg)
	if err := a.Blob.Put(ctx, "media/bench/hls/360p/segment_000.ts", bytes.NewReader(seg), int64(len(seg)), ""); err != nil {
		return nil, err
	}
	return &fixture{
		app: a, token: sess.Access, mediaID: id, userID: u.ID,
		segURL: "/api/media/" + strconv.FormatInt(id, 10) + "/hls/360p/segment_000.ts/",
	}, nil
}

// tempDir holds the fixture's data directory; TestMain removes it.
var dataDir string

func tempDir() (string, error) {
	// testing.B.TempDir would be removed after the first benchmark, but the
	// fixture is shared by all of them.
	d, err := os.MkdirTemp("", "segbench-*")
	dataDir = d
	return d, err
}

func TestMain(m *testing.M) {
	code := m.Run()
	if fix != nil {
		fix.app.Close()
	}
	if dataDir != "" {
		os.RemoveAll(dataDir)
	}
	os.Exit(code)
}

// discardWriter is a ResponseWriter that throws the body away. Like the
// server's own statusWriter it has no ReadFrom, so http.ServeContent copies
// the file through io.Copy's buffer exactly as plaza does in production.
type discardWriter struct {
	h      http.Header
	status int
	n      int64
}

func (w *discardWriter) Header() http.Header { return w.h }
func (w *discardWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}
func (w *discardWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.n += int64(len(p))
	return len(p), nil
}

func (f *fixture) request(path string, headers ...string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, path, nil)
	r.RemoteAddr = "127.0.0.1:40000"
	r.Header.Set("Authorization", "Bearer "+f.token)
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Set(headers[i], headers[i+1])
	}
	return r
}

// cpuClock reports the process's CPU time (user+system) per operation
// next to the wall-clock ns/op: on a shared machine ns/op includes time
// spent waiting for a core, cpu-ns/op does not (it does include GC and the
// runtime's background work).
type cpuClock struct{ start time.Duration }

func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startCPU(b *testing.B) *cpuClock {
	b.ReportAllocs()
	return &cpuClock{start: processCPU()}
}

func (c *cpuClock) report(b *testing.B) {
	if b.N > 0 {
		b.ReportMetric(float64(processCPU()-c.start)/float64(b.N), "cpu-ns/op")
	}
}

func serve(b *testing.B, h http.Handler, r *http.Request, wantStatus int, wantBytes int64) {
	w := &discardWriter{h: http.Header{}}
	h.ServeHTTP(w, r)
	if w.status != wantStatus || (wantBytes >= 0 && w.n != wantBytes) {
		b.Fatalf("%s: status %d, %d bytes; want %d, %d", r.URL.Path, w.status, w.n, wantStatus, wantBytes)
	}
}

// BenchmarkSegment is one authenticated segment GET through the whole
// handler (middleware, JWT, user query, media query, blob open,
// ServeContent), without the network.
func BenchmarkSegment(b *testing.B) {
	f := setup(b)
	h := f.app.Handler
	b.Run("full", func(b *testing.B) {
		cpu := startCPU(b)
		defer cpu.report(b)
		b.SetBytes(segmentSize)
		for b.Loop() {
			serve(b, h, f.request(f.segURL), http.StatusOK, segmentSize)
		}
	})
	b.Run("range64k", func(b *testing.B) {
		cpu := startCPU(b)
		defer cpu.report(b)
		b.SetBytes(65536)
		for b.Loop() {
			serve(b, h, f.request(f.segURL, "Range", "bytes=0-65535"), http.StatusPartialContent, 65536)
		}
	})
	b.Run("not-modified", func(b *testing.B) {
		// If-None-Match: everything but the body (auth, queries, open, stat).
		w := &discardWriter{h: http.Header{}}
		h.ServeHTTP(w, f.request(f.segURL))
		etag := w.h.Get("ETag")
		cpu := startCPU(b)
		defer cpu.report(b)
		for b.Loop() {
			serve(b, h, f.request(f.segURL, "If-None-Match", etag), http.StatusNotModified, 0)
		}
	})
	b.Run("full-parallel", func(b *testing.B) {
		cpu := startCPU(b)
		defer cpu.report(b)
		b.SetBytes(segmentSize)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				serve(b, h, f.request(f.segURL), http.StatusOK, segmentSize)
			}
		})
	})
}

// BenchmarkParts times the pieces of a segment request one by one.
func BenchmarkParts(b *testing.B) {
	f := setup(b)
	ctx := context.Background()
	b.Run("middleware-only", func(b *testing.B) {
		// GET /healthz: the same middleware chain (request id, metrics,
		// access log, security headers, CORS, CSRF, routing) and a tiny
		// JSON answer, no auth, no queries.
		cpu := startCPU(b)
		defer cpu.report(b)
		for b.Loop() {
			serve(b, f.app.Handler, f.request("/healthz"), http.StatusOK, -1)
		}
	})
	b.Run("jwt-parse", func(b *testing.B) {
		// AccessTokenExpiry is the signature check and claims decoding
		// alone, the first half of UserFromAccessToken.
		cpu := startCPU(b)
		defer cpu.report(b)
		for b.Loop() {
			if _, err := f.app.Accounts.AccessTokenExpiry(f.token); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("user-from-token", func(b *testing.B) {
		// JWT plus the users row (one SQLite query).
		cpu := startCPU(b)
		defer cpu.report(b)
		for b.Loop() {
			if _, err := f.app.Accounts.UserFromAccessToken(ctx, f.token); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("user-by-id", func(b *testing.B) {
		cpu := startCPU(b)
		defer cpu.report(b)
		for b.Loop() {
			if _, err := f.app.Accounts.Store().UserByID(ctx, f.userID); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("media-get", func(b *testing.B) {
		cpu := startCPU(b)
		defer cpu.report(b)
		for b.Loop() {
			if _, err := f.app.Media.Get(ctx, f.mediaID); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("blob-open-close", func(b *testing.B) {
		cpu := startCPU(b)
		defer cpu.report(b)
		for b.Loop() {
			o, err := f.app.Blob.Open(ctx, "media/bench/hls/360p/segment_000.ts")
			if err != nil {
				b.Fatal(err)
			}
			o.Close()
		}
	})
	b.Run("blob-copy-32k", func(b *testing.B) {
		// What ServeContent does with the file when the ResponseWriter
		// cannot sendfile: read it through io.Copy's 32 KiB buffer.
		cpu := startCPU(b)
		defer cpu.report(b)
		b.SetBytes(segmentSize)
		for b.Loop() {
			o, err := f.app.Blob.Open(ctx, "media/bench/hls/360p/segment_000.ts")
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.Copy(struct{ io.Writer }{io.Discard}, io.LimitReader(o, segmentSize)); err != nil {
				b.Fatal(err)
			}
			o.Close()
		}
	})
}

// BenchmarkOpenSegment compares ways to open the segment file safely
// (nothing outside the store may be reached): the blob store's os.Root,
// which walks the key one component at a time (an openat and a close per
// directory), against a single openat2(RESOLVE_BENEATH|RESOLVE_NO_MAGICLINKS)
// from the store's directory, and against an os.Root kept open on the
// rendition directory (one openat). Plain os.Open is the unsafe baseline.
func BenchmarkOpenSegment(b *testing.B) {
	f := setup(b)
	const key = "media/bench/hls/360p/segment_000.ts"
	local, ok := f.app.Blob.(interface{ Dir() string })
	if !ok {
		b.Skip("not a local store")
	}
	dir := local.Dir()
	openStat := func(b *testing.B, open func() (*os.File, error)) {
		cpu := startCPU(b)
		defer cpu.report(b)
		for b.Loop() {
			fh, err := open()
			if err != nil {
				b.Fatal(err)
			}
			if _, err := fh.Stat(); err != nil {
				b.Fatal(err)
			}
			fh.Close()
		}
	}
	b.Run("blob.Local.Open", func(b *testing.B) {
		cpu := startCPU(b)
		defer cpu.report(b)
		for b.Loop() {
			o, err := f.app.Blob.Open(context.Background(), key)
			if err != nil {
				b.Fatal(err)
			}
			o.Close()
		}
	})
	root, err := os.OpenRoot(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer root.Close()
	b.Run("os.Root.Open", func(b *testing.B) {
		openStat(b, func() (*os.File, error) { return root.Open(key) })
	})
	sub, err := root.OpenRoot("media/bench/hls/360p")
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Close()
	b.Run("cached-rendition-root", func(b *testing.B) {
		openStat(b, func() (*os.File, error) { return sub.Open("segment_000.ts") })
	})
	dirf, err := os.Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer dirf.Close()
	b.Run("openat2-beneath", func(b *testing.B) {
		how := &unix.OpenHow{Flags: unix.O_RDONLY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS}
		openStat(b, func() (*os.File, error) {
			fd, err := unix.Openat2(int(dirf.Fd()), key, how)
			if err != nil {
				return nil, err
			}
			return os.NewFile(uintptr(fd), key), nil
		})
	})
	b.Run("os.Open-unsafe", func(b *testing.B) {
		openStat(b, func() (*os.File, error) { return os.Open(dir + "/" + key) })
	})
}
