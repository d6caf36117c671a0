package media

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"plaza/internal/db/dbtest"
)

// tusJSDir returns a directory with testdata/tusjs's script and its
// node_modules: testdata/tusjs itself when someone ran npm install there,
// else a temporary copy where the test runs npm ci (npm's cache makes that
// a few seconds after the first time).
func tusJSDir(t *testing.T) string {
	t.Helper()
	src, err := filepath.Abs(filepath.Join("testdata", "tusjs"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(src, "node_modules", "tus-js-client", "package.json")); err == nil {
		return src
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Fatal("node is installed but npm is not; install npm to run the tus-js-client test")
	}
	dir := t.TempDir()
	for _, name := range []string{"package.json", "package-lock.json", "upload.js"} {
		b, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci of tus-js-client (testdata/tusjs) failed: %v\n%s\n"+
			"The npm registry must be reachable (or run npm install in internal/media/testdata/tusjs once while online).", err, out)
	}
	return dir
}

type tusJSResult struct {
	Status  string `json:"status"`
	URL     string `json:"url"`
	Resumed bool   `json:"resumed"`
	Error   string `json:"error"`
}

// runTusJS runs upload.js and returns what it reports.
func runTusJS(t *testing.T, node, dir string, args ...string) tusJSResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, append([]string{filepath.Join(dir, "upload.js")}, args...)...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var res tusJSResult
	if jerr := json.Unmarshal([]byte(lines[len(lines)-1]), &res); jerr != nil {
		t.Fatalf("node upload.js %v: %v\nstdout: %s\nstderr: %s", args, errors.Join(err, jerr), stdout.String(), stderr.String())
	}
	if res.Status == "error" || err != nil {
		t.Fatalf("node upload.js %v: %v %s\nstderr: %s", args, err, res.Error, stderr.String())
	}
	return res
}

// TestUploadTusJSClient proves that a stock client works unchanged:
// tus-js-client from npm, under Node, uploads in chunks, and resumes an
// upload it aborted mid-request in an earlier run.
func TestUploadTusJSClient(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not on PATH")
	}
	dir := tusJSDir(t)
	sqlite := dbtest.Engine{Name: "sqlite", URL: dbtest.SQLiteURL}
	setups := []uploadSetup{{engine: sqlite}}
	if os.Getenv("PLAZA_TEST_S3_URL") != "" {
		setups = append(setups, uploadSetup{engine: sqlite, s3: true})
	}
	for _, s := range setups {
		t.Run(map[bool]string{false: "local", true: "s3"}[s.s3], func(t *testing.T) {
			e := s.env(t, nil)
			ctx := context.Background()
			alice := e.users[0]
			auth := fmt.Sprintf("%s: %d", testUserHeader, alice)
			const size, chunk = 5 << 20, 1 << 20
			work := t.TempDir()

			// A plain upload in five chunks.
			data := randomBytes(size)
			file := filepath.Join(work, "plain.bin")
			if err := os.WriteFile(file, data, 0o600); err != nil {
				t.Fatal(err)
			}
			res := runTusJS(t, node, dir, e.base, file, fmt.Sprint(chunk), auth)
			if res.Status != "success" || res.Resumed || !strings.HasPrefix(res.URL, e.base) {
				t.Fatalf("first upload: %+v", res)
			}
			c, got := e.claimedBytes(alice, idOf(res.URL))
			sameBytes(t, got, data)
			if c.Filename != "plain.bin" || c.Filetype != "application/octet-stream" {
				t.Fatalf("claimed %+v", c)
			}

			// Aborted while sending the third chunk (on loopback the chunk
			// has usually left the client by then)...
			data = randomBytes(size)
			file = filepath.Join(work, "interrupted.bin")
			if err := os.WriteFile(file, data, 0o600); err != nil {
				t.Fatal(err)
			}
			res = runTusJS(t, node, dir, e.base, file, fmt.Sprint(chunk), auth, fmt.Sprint(2*chunk+chunk/2))
			if res.Status != "aborted" || !strings.HasPrefix(res.URL, e.base) {
				t.Fatalf("aborted upload: %+v", res)
			}
			url := res.URL
			off := e.offset(alice, url)
			t.Logf("aborted at offset %d of %d", off, size)
			if off < 2*chunk || off >= size {
				t.Fatalf("offset %d after the abort, want within [%d, %d)", off, 2*chunk, size)
			}
			if _, err := e.u.Claim(ctx, alice, idOf(url)); !errors.Is(err, ErrUploadNotFound) {
				t.Fatalf("Claim of the interrupted upload: %v", err)
			}
			// ... and resumed by a new process from the stored URL.
			res = runTusJS(t, node, dir, e.base, file, fmt.Sprint(chunk), auth)
			if res.Status != "success" || !res.Resumed || res.URL != url {
				t.Fatalf("resumed upload: %+v (first URL %s)", res, url)
			}
			_, got = e.claimedBytes(alice, idOf(url))
			sameBytes(t, got, data)

			// Someone else's client gets nowhere with the URL.
			if resp := e.req(http.MethodHead, url, e.users[1], nil); resp.StatusCode != http.StatusNotFound {
				t.Fatalf("HEAD by another user: %d", resp.StatusCode)
			}
		})
	}
}
