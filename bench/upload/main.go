// Command upload measures a large tus upload: throughput, and how much the
// server's memory grows while it streams (no upload may be held whole in
// memory).
//
// Self-contained (the default): the upload handler of internal/media runs
// in this process on a loopback listener, over a temporary SQLite database
// and a temporary upload directory (or -s3), with a fake authentication
// header; memory is sampled in-process (runtime.ReadMemStats and
// /proc/self/status), so the figures include the client's buffers too and
// are an upper bound for the server.
//
//	go run ./bench/upload -size 1GiB -chunk 64MiB
//
// Against a running server: pass the uploads URL, an authentication header
// and, to sample the server's memory, its process id.
//
//	go run ./bench/upload -url http://127.0.0.1:8000/api/uploads/ \
//	    -header "Authorization: Bearer $TOKEN" -pid $(pgrep -x plaza) -size 1GiB -chunk 64MiB
//
// The bytes are checked: a CRC-32C of what was sent is compared with what
// the server stored (self-contained) or the final offset (remote).
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"time"

	"plaza/internal/db"
	"plaza/internal/media"
)

func main() {
	var (
		target  = flag.String("url", "", "uploads URL of a running server (e.g. http://127.0.0.1:8000/api/uploads/); empty: self-contained")
		header  = flag.String("header", "", `"Name: value" sent with every request to -url (authentication)`)
		pid     = flag.Int("pid", 0, "with -url: the server's process id, to sample its VmRSS and VmHWM")
		sizeArg = flag.String("size", "1GiB", "upload size")
		chunk   = flag.String("chunk", "64MiB", "PATCH size")
		s3URL   = flag.String("s3", "", "self-contained: store uploads in this s3:// URL (blob.Open form; keys from PLAZA_S3_ACCESS_KEY and PLAZA_S3_SECRET_KEY)")
		dir     = flag.String("dir", "", "self-contained: directory for the database and uploads (default: a temporary directory, removed afterwards)")
		cpuProf = flag.String("cpuprofile", "", "write a CPU profile of the upload to this file")
	)
	flag.Parse()
	size, err := parseBytes(*sizeArg)
	if err != nil {
		log.Fatalf("-size: %v", err)
	}
	chunkSize, err := parseBytes(*chunk)
	if err != nil || chunkSize <= 0 {
		log.Fatalf("-chunk: %v", err)
	}

	ctx := context.Background()
	var (
		base    string
		hdrName string
		hdrVal  string
		sampler func() memSample
		verify  func(id string, sum uint32) error
	)
	if *target != "" {
		base = *target
		if !strings.HasSuffix(base, "/") {
			base += "/"
		}
		if *header != "" {
			name, val, ok := strings.Cut(*header, ":")
			if !ok {
				log.Fatal(`-header must be "Name: value"`)
			}
			hdrName, hdrVal = strings.TrimSpace(name), strings.TrimSpace(val)
		}
		if *pid > 0 {
			p := *pid
			sampler = func() memSample { return procSample(fmt.Sprintf("/proc/%d/status", p)) }
		}
	} else {
		srv, err := startLocal(ctx, *dir, *s3URL)
		if err != nil {
			log.Fatal(err)
		}
		defer srv.close()
		base, hdrName, hdrVal = srv.base, "X-Bench-User", strconv.FormatInt(srv.user, 10)
		sampler = selfSample
		verify = srv.verify
	}

	// Baseline, then sample while uploading.
	runtime.GC()
	debug.FreeOSMemory()
	var before memSample
	if sampler != nil {
		before = sampler()
	}
	peak := before
	stop := make(chan struct{})
	var wg sync.WaitGroup
	if sampler != nil {
		wg.Go(func() {
			t := time.NewTicker(20 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					peak = peak.max(sampler())
				}
			}
		})
	}

	if *cpuProf != "" {
		f, err := os.Create(*cpuProf)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	start := time.Now()
	id, sum, requests, err := upload(base, hdrName, hdrVal, size, chunkSize)
	elapsed := time.Since(start)
	close(stop)
	wg.Wait()
	if err != nil {
		log.Fatalf("upload: %v", err)
	}
	var after memSample
	if sampler != nil {
		after = sampler()
		peak = peak.max(after)
	}

	mb := float64(size) / 1e6
	fmt.Printf("uploaded %s in %s chunks (%d requests) in %.2f s: %.0f MB/s (%.0f MiB/s)\n",
		*sizeArg, *chunk, requests, elapsed.Seconds(), mb/elapsed.Seconds(), float64(size)/(1<<20)/elapsed.Seconds())
	if sampler != nil {
		who := "server"
		if *target == "" {
			who = "server + client, in-process"
		}
		fmt.Printf("memory growth (%s): RSS %+.1f MB (peak %.1f MB, VmHWM %.1f MB)", who,
			float64(peak.rss-before.rss)/1e6, float64(peak.rss)/1e6, float64(after.hwm)/1e6)
		if *target == "" {
			fmt.Printf(", Go heap in use %+.1f MB (peak %.1f MB), Go Sys %+.1f MB", float64(peak.heap-before.heap)/1e6,
				float64(peak.heap)/1e6, float64(peak.sys-before.sys)/1e6)
		}
		fmt.Println()
	}
	if verify != nil {
		if err := verify(id, sum); err != nil {
			log.Fatalf("verify: %v", err)
		}
		fmt.Println("verified: the stored bytes match what was sent (CRC-32C)")
	}
}

// upload sends size bytes of a repeating random block: POST, then PATCHes
// of chunk bytes. It returns the upload id and a CRC-32C of the bytes.
func upload(base, hdrName, hdrVal string, size, chunk int64) (string, uint32, int, error) {
	client := &http.Client{Transport: &http.Transport{
		Proxy: nil, MaxIdleConnsPerHost: 1, WriteBufferSize: 256 << 10, ReadBufferSize: 64 << 10,
	}}
	do := func(method, url string, body io.Reader, n int64, hdr ...string) (*http.Response, error) {
		r, err := http.NewRequest(method, url, body)
		if err != nil {
			return nil, err
		}
		r.ContentLength = n
		r.Header.Set("Tus-Resumable", "1.0.0")
		if hdrName != "" {
			r.Header.Set(hdrName, hdrVal)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			r.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := client.Do(r)
		if err != nil {
			return nil, err
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if resp.StatusCode >= 300 {
			return nil, fmt.Errorf("%s %s: %s %s", method, url, resp.Status, b)
		}
		return resp, nil
	}
	resp, err := do(http.MethodPost, base, nil, 0, "Upload-Length", strconv.FormatInt(size, 10),
		"Upload-Metadata", "filename YmVuY2guYmlu,filetype YXBwbGljYXRpb24vb2N0ZXQtc3RyZWFt")
	if err != nil {
		return "", 0, 0, err
	}
	loc := resp.Header.Get("Location")
	id := loc[strings.LastIndexByte(loc, '/')+1:]
	src := newPattern(size)
	requests := 1
	for off := int64(0); off < size; {
		n := min(chunk, size-off)
		resp, err := do(http.MethodPatch, loc, io.LimitReader(src, n), n,
			"Content-Type", "application/offset+octet-stream", "Upload-Offset", strconv.FormatInt(off, 10))
		if err != nil {
			return "", 0, requests, err
		}
		requests++
		got, _ := strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64)
		if got != off+n {
			return "", 0, requests, fmt.Errorf("PATCH at %d: Upload-Offset %d, want %d", off, got, off+n)
		}
		off = got
	}
	return id, src.crc.Sum32(), requests, nil
}

// pattern yields size bytes of a 1 MiB random block over and over (cheap
// to produce), keeping a CRC-32C of what it yielded.
type pattern struct {
	block []byte
	off   int
	left  int64
	crc   hash.Hash32
}

func newPattern(size int64) *pattern {
	b := make([]byte, 1<<20)
	_, _ = rand.Read(b)
	return &pattern{block: b, left: size, crc: crc32.New(crc32.MakeTable(crc32.Castagnoli))}
}

func (p *pattern) Read(buf []byte) (int, error) {
	if p.left <= 0 {
		return 0, io.EOF
	}
	n := copy(buf[:min(int64(len(buf)), p.left)], p.block[p.off:])
	p.crc.Write(buf[:n])
	p.off = (p.off + n) % len(p.block)
	p.left -= int64(n)
	return n, nil
}

// local is the in-process server.
type local struct {
	base   string
	user   int64
	d      *db.DB
	u      *media.Uploads
	srv    *http.Server
	tmpDir string
}

func startLocal(ctx context.Context, dir, s3URL string) (*local, error) {
	l := &local{}
	if dir == "" {
		tmp, err := os.MkdirTemp("", "plaza-bench-upload-")
		if err != nil {
			return nil, err
		}
		dir, l.tmpDir = tmp, tmp
	}
	d, err := db.Open(ctx, "sqlite://"+filepath.Join(dir, "bench.db"))
	if err != nil {
		return nil, err
	}
	l.d = d
	if _, err := d.Migrate(ctx); err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	if err := d.ExecRow(ctx, `INSERT INTO users (email, username, password_hash, is_active, created_at, updated_at)
		VALUES (?, ?, 'x', TRUE, ?, ?) RETURNING id`, fmt.Sprintf("bench-%d@example.com", now.UnixNano()),
		fmt.Sprintf("bench%d", now.UnixNano()), now, now).Scan(&l.user); err != nil {
		return nil, err
	}
	cfg := media.UploadsConfig{DB: d, Dir: filepath.Join(dir, "uploads"),
		Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	if s3URL != "" {
		if cfg.S3, err = media.UploadsS3FromURL(ctx, s3URL, os.Getenv("PLAZA_S3_ACCESS_KEY"), os.Getenv("PLAZA_S3_SECRET_KEY")); err != nil {
			return nil, err
		}
		cfg.S3.Prefix = fmt.Sprintf("bench-uploads-%d/", now.UnixNano())
	}
	if l.u, err = media.NewUploads(ctx, cfg); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/api/uploads/", l.u.Handler(func(r *http.Request) (int64, bool) {
		id, err := strconv.ParseInt(r.Header.Get("X-Bench-User"), 10, 64)
		return id, err == nil
	}))
	l.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = l.srv.Serve(ln) }()
	l.base = "http://" + ln.Addr().String() + "/api/uploads/"
	return l, nil
}

func (l *local) verify(id string, sum uint32) error {
	ctx := context.Background()
	c, err := l.u.Claim(ctx, l.user, id)
	if err != nil {
		return err
	}
	defer l.u.Remove(ctx, id)
	r, err := c.Open(ctx)
	if err != nil {
		return err
	}
	defer r.Close()
	h := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	if _, err := io.CopyBuffer(h, r, make([]byte, 1<<20)); err != nil {
		return err
	}
	if h.Sum32() != sum {
		return errors.New("CRC-32C of the stored upload differs from what was sent")
	}
	return nil
}

func (l *local) close() {
	if l.srv != nil {
		_ = l.srv.Close()
	}
	if l.d != nil {
		_ = l.d.Close()
	}
	if l.tmpDir != "" {
		_ = os.RemoveAll(l.tmpDir)
	}
}

// memSample is one reading of memory use, in bytes.
type memSample struct {
	rss, hwm  int64 // VmRSS, VmHWM
	heap, sys int64 // Go HeapInuse, Sys (self-contained only)
}

func (a memSample) max(b memSample) memSample {
	return memSample{rss: max(a.rss, b.rss), hwm: max(a.hwm, b.hwm), heap: max(a.heap, b.heap), sys: max(a.sys, b.sys)}
}

func selfSample() memSample {
	s := procSample("/proc/self/status")
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s.heap, s.sys = int64(ms.HeapInuse), int64(ms.Sys)
	return s
}

func procSample(path string) memSample {
	var s memSample
	b, err := os.ReadFile(path)
	if err != nil {
		return s
	}
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		name, val, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		f := strings.Fields(string(val))
		if len(f) < 1 {
			continue
		}
		kb, _ := strconv.ParseInt(f[0], 10, 64)
		switch string(name) {
		case "VmRSS":
			s.rss = kb << 10
		case "VmHWM":
			s.hwm = kb << 10
		}
	}
	return s
}

// parseBytes reads 1073741824, 1GiB, 64MiB, 500MB, 10KiB.
func parseBytes(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1}}
	num, mult := s, int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			num, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return int64(n * float64(mult)), nil
}
