package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"plaza/internal/db"
	"plaza/internal/db/dbtest"
)

// syncBuffer is a bytes.Buffer that the server's goroutines and the test can
// share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testEnv is a getenv over a fresh data dir, a free port and the given
// overrides; anything else reads as unset, whatever the real environment.
func testEnv(t *testing.T, overrides map[string]string) (getenv func(string) string, dataDir string) {
	t.Helper()
	dataDir = filepath.Join(t.TempDir(), "data")
	vars := map[string]string{
		"PLAZA_DATA_DIR":  dataDir,
		"PLAZA_ADDR":      "127.0.0.1:0",
		"PLAZA_LOG_LEVEL": "warn",
	}
	for k, v := range overrides {
		vars[k] = v
	}
	return func(k string) string { return vars[k] }, dataDir
}

func TestVersion(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"version"}, func(string) string { return "" }, &stdout, &stderr); err != nil {
		t.Fatalf("version: %v", err)
	}
	if got := stdout.String(); got != "plaza dev\n" {
		t.Errorf("version printed %q, want %q", got, "plaza dev\n")
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{nil, {"frobnicate"}, {"user"}, {"user", "frobnicate"}} {
		t.Run(strings.Join(append([]string{"args"}, args...), "_"), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			getenv, _ := testEnv(t, nil)
			err := run(context.Background(), args, getenv, &stdout, &stderr)
			if err == nil {
				t.Fatalf("run(%q) = nil, want an error", args)
			}
			if len(args) == 1 && args[0] == "frobnicate" && !strings.Contains(err.Error(), "frobnicate") {
				t.Errorf("error %q does not name the unknown command", err)
			}
			if !strings.Contains(stderr.String(), "Usage: plaza <command>") || !strings.Contains(stderr.String(), "serve") {
				t.Errorf("usage not printed to stderr; got %q", stderr.String())
			}
		})
	}

	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"help"}, func(string) string { return "" }, &stdout, &stderr); err != nil {
		t.Errorf("help: %v", err)
	}
	if !strings.Contains(stdout.String(), "Usage: plaza <command>") {
		t.Errorf("help printed %q", stdout.String())
	}
}

func TestServeHelpListsVariables(t *testing.T) {
	var stdout, stderr bytes.Buffer
	getenv, dataDir := testEnv(t, nil)
	err := run(context.Background(), []string{"serve", "--help"}, getenv, &stdout, &stderr)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("serve --help = %v, want flag.ErrHelp", err)
	}
	for _, v := range []string{"PLAZA_ADDR", "PLAZA_DATABASE_URL", "PLAZA_WORKERS", "PLAZA_RATE_LIMITS", `(default "127.0.0.1:8000")`} {
		if !strings.Contains(stderr.String(), v) {
			t.Errorf("serve --help does not show %s", v)
		}
	}
	if _, err := os.Stat(dataDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("serve --help touched the data dir (stat: %v)", err)
	}
}

var listeningRE = regexp.MustCompile(`listening on (http://127\.0\.0\.1:(\d+))`)

// startServe runs `plaza serve` in a goroutine until ctx ends; it returns
// the base URL once the server said where it listens, and a channel that
// receives run's result.
func startServe(t *testing.T, ctx context.Context, getenv func(string) string) (string, <-chan error) {
	t.Helper()
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve"}, getenv, stdout, stderr) }()
	deadline := time.After(20 * time.Second)
	for {
		if m := listeningRE.FindStringSubmatch(stdout.String()); m != nil {
			if m[2] == "0" {
				t.Fatalf("serve printed port 0: %q", stdout.String())
			}
			return m[1], done
		}
		select {
		case err := <-done:
			t.Fatalf("serve returned before listening: %v\nstdout: %s\nstderr: %s", err, stdout.String(), stderr.String())
		case <-deadline:
			t.Fatalf("serve did not say where it listens within 20s\nstdout: %s\nstderr: %s", stdout.String(), stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// waitRun waits for run to return after its context was cancelled.
func waitRun(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not return within 20s of cancellation")
		return nil
	}
}

func newClient(t *testing.T) *http.Client {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 15 * time.Second}
}

func get(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

func TestServeHealthAndGracefulStop(t *testing.T) {
	getenv, dataDir := testEnv(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	base, done := startServe(t, ctx, getenv)
	c := newClient(t)

	if code, body := get(t, c, base+"/healthz"); code != http.StatusOK {
		t.Errorf("GET /healthz = %d %s, want 200", code, body)
	}
	if code, body := get(t, c, base+"/readyz"); code != http.StatusOK {
		t.Errorf("GET /readyz = %d %s, want 200", code, body)
	}
	// The server trusts its own origin, on the port it really bound.
	req, _ := http.NewRequest(http.MethodGet, base+"/healthz", nil)
	req.Header.Set("Origin", base)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != base {
		t.Errorf("Access-Control-Allow-Origin for the server's own origin %s = %q", base, got)
	}
	// The embedded defaults landed in the data dir.
	for _, name := range []string{"plaza.db", "secret_key"} {
		if _, err := os.Stat(filepath.Join(dataDir, name)); err != nil {
			t.Errorf("data dir lacks %s: %v", name, err)
		}
	}

	cancel()
	if err := waitRun(t, done); err != nil {
		t.Fatalf("serve after cancellation = %v, want nil", err)
	}
	if _, err := c.Get(base + "/healthz"); err == nil {
		t.Error("server still answers after run returned")
	}
}

func TestServeFinishesRequestInFlight(t *testing.T) {
	getenv, _ := testEnv(t, map[string]string{"PLAZA_WORKERS": "off"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	base, done := startServe(t, ctx, getenv)
	c := newClient(t)

	pr, pw := io.Pipe()
	defer pw.Close()
	req, err := http.NewRequest(http.MethodPost, base+"/api/register/", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	type result struct {
		code int
		ct   string
		body []byte
		err  error
	}
	resc := make(chan result, 1)
	go func() {
		resp, err := c.Do(req)
		if err != nil {
			resc <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		resc <- result{code: resp.StatusCode, ct: resp.Header.Get("Content-Type"), body: b, err: err}
	}()

	// The first half of the body: once the pipe write returns the transport
	// has taken it; give the server a moment to start the handler.
	if _, err := io.WriteString(pw, `{"email": "slow@example.com", `); err != nil {
		t.Fatalf("write first half: %v", err)
	}
	time.Sleep(200 * time.Millisecond)

	cancel()
	// Shutdown must wait for this request, not cut it off.
	select {
	case err := <-done:
		t.Fatalf("serve returned (%v) while a request was still being read", err)
	case r := <-resc:
		t.Fatalf("request ended before its body was complete: %d %s %v", r.code, r.body, r.err)
	case <-time.After(300 * time.Millisecond):
	}
	if _, err := io.WriteString(pw, `"password": "long enough pass", "confirmed_password": "long enough pass"}`); err != nil {
		t.Fatalf("write second half: %v", err)
	}
	pw.Close()

	var r result
	select {
	case r = <-resc:
	case <-time.After(15 * time.Second):
		t.Fatal("no response to the request in flight")
	}
	if r.err != nil {
		t.Fatalf("request in flight during shutdown failed: %v", r.err)
	}
	t.Logf("request in flight during shutdown answered %d %s", r.code, r.body)
	if r.code < 200 || r.code >= 500 || r.code >= 300 && r.code < 400 {
		t.Errorf("request in flight answered %d %s, want a 2xx or 4xx", r.code, r.body)
	}
	if !strings.HasPrefix(r.ct, "application/json") || !json.Valid(r.body) {
		t.Errorf("request in flight answered %q %q, want JSON", r.ct, r.body)
	}
	if err := waitRun(t, done); err != nil {
		t.Fatalf("serve after cancellation = %v, want nil", err)
	}
}

func TestServeRejectsBadConfig(t *testing.T) {
	getenv, dataDir := testEnv(t, map[string]string{"PLAZA_WORKERS": "bogus"})
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := run(ctx, []string{"serve"}, getenv, &stdout, &stderr)
	if err == nil {
		t.Fatal("serve with PLAZA_WORKERS=bogus returned nil")
	}
	if !strings.Contains(err.Error(), "PLAZA_WORKERS") || strings.Contains(err.Error(), "\n") {
		t.Errorf("error %q should name PLAZA_WORKERS in one line", err)
	}
	if strings.Contains(stdout.String(), "listening") {
		t.Errorf("serve started listening despite the bad value: %q", stdout.String())
	}
	if _, err := os.Stat(dataDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("serve with a bad value created the data dir (stat: %v)", err)
	}
}

func TestMigrate(t *testing.T) {
	getenv, dataDir := testEnv(t, nil)
	ctx := context.Background()
	for i := range 2 {
		var stdout, stderr bytes.Buffer
		if err := run(ctx, []string{"migrate"}, getenv, &stdout, &stderr); err != nil {
			t.Fatalf("migrate run %d: %v\nstderr: %s", i+1, err, stderr.String())
		}
		if !strings.Contains(stdout.String(), "migrations applied") {
			t.Errorf("migrate run %d printed %q", i+1, stdout.String())
		}
	}
	path := filepath.Join(dataDir, "plaza.db")
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("migrate did not create the SQLite file: %v", err)
	}
	d, err := db.Open(ctx, "sqlite://"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var n int
	if err := d.QueryRow(ctx, "SELECT count(*) FROM users").Scan(&n); err != nil {
		t.Fatalf("users table after migrate: %v", err)
	}
	if n != 0 {
		t.Errorf("fresh database has %d users", n)
	}
}

// userFlags checks a user's flags straight in the database.
func userFlags(t *testing.T, dbURL, email string) (active, staff bool) {
	t.Helper()
	ctx := context.Background()
	d, err := db.Open(ctx, dbURL)
	if err != nil {
		t.Fatalf("open %s: %v", dbURL, err)
	}
	defer d.Close()
	if err := d.QueryRow(ctx, "SELECT is_active, is_staff FROM users WHERE email = ?", email).Scan(&active, &staff); err != nil {
		t.Fatalf("select user %s: %v", email, err)
	}
	return active, staff
}

func countUsers(t *testing.T, dbURL string) int {
	t.Helper()
	ctx := context.Background()
	d, err := db.Open(ctx, dbURL)
	if err != nil {
		t.Fatalf("open %s: %v", dbURL, err)
	}
	defer d.Close()
	var n int
	if err := d.QueryRow(ctx, "SELECT count(*) FROM users").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func runUser(getenv func(string) string, args ...string) (string, string, error) {
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), append([]string{"user"}, args...), getenv, &stdout, &stderr)
	return stdout.String(), stderr.String(), err
}

// testUserCommands drives `plaza user` against the database getenv names.
func testUserCommands(t *testing.T, getenv func(string) string, dbURL string) {
	out, stderr, err := runUser(getenv, "create", "--email", "a@example.com", "--password", "long enough pass", "--username", "alice", "--staff")
	if err != nil {
		t.Fatalf("user create: %v\nstderr: %s", err, stderr)
	}
	for _, want := range []string{"alice", "a@example.com", "staff=true"} {
		if !strings.Contains(out, want) {
			t.Errorf("user create printed %q, want it to mention %q", out, want)
		}
	}
	if active, staff := userFlags(t, dbURL, "a@example.com"); !active || !staff {
		t.Errorf("created user: is_active=%v is_staff=%v, want both true", active, staff)
	}

	for _, email := range []string{"a@example.com", "A@Example.COM"} {
		_, _, err = runUser(getenv, "create", "--email", email, "--password", "another long pass", "--username", "alice2")
		if err == nil || !strings.Contains(err.Error(), "already exists") {
			t.Errorf("user create with taken email %s = %v, want an error saying it already exists", email, err)
		}
	}
	if _, _, err = runUser(getenv, "create", "--email", "b@example.com", "--username", "bob"); err == nil || !strings.Contains(err.Error(), "--password") {
		t.Errorf("user create without --password = %v, want an error naming --password", err)
	}
	if _, _, err = runUser(getenv, "create", "--email", "c@example.com", "--password", "12345678901"); err == nil || !strings.Contains(err.Error(), "password") {
		t.Errorf("user create with an all-digit password = %v, want a password error", err)
	}
	if _, _, err = runUser(getenv, "create", "--password", "long enough pass"); err == nil || !strings.Contains(err.Error(), "--email") {
		t.Errorf("user create without --email = %v, want an error naming --email", err)
	}
	if n := countUsers(t, dbURL); n != 1 {
		t.Errorf("%d users after the failed creations, want 1", n)
	}

	out, stderr, err = runUser(getenv, "set-staff", "--email", "a@example.com", "--off")
	if err != nil {
		t.Fatalf("user set-staff --off: %v\nstderr: %s", err, stderr)
	}
	if !strings.Contains(out, "staff=false") {
		t.Errorf("set-staff --off printed %q", out)
	}
	if active, staff := userFlags(t, dbURL, "a@example.com"); !active || staff {
		t.Errorf("after set-staff --off: is_active=%v is_staff=%v, want true false", active, staff)
	}
	if _, _, err = runUser(getenv, "set-staff", "--email", "A@example.com"); err != nil {
		t.Errorf("user set-staff (mixed-case email): %v", err)
	}
	if _, staff := userFlags(t, dbURL, "a@example.com"); !staff {
		t.Error("set-staff without --off did not make the user staff")
	}
	if _, _, err = runUser(getenv, "set-staff", "--email", "nobody@example.com"); err == nil || !strings.Contains(err.Error(), "nobody@example.com") {
		t.Errorf("set-staff on an unknown email = %v, want an error naming it", err)
	}
}

func TestUserCommandsSQLite(t *testing.T) {
	getenv, dataDir := testEnv(t, nil)
	testUserCommands(t, getenv, "sqlite://"+filepath.Join(dataDir, "plaza.db"))
}

func TestUserCommandsPostgres(t *testing.T) {
	if os.Getenv("PLAZA_TEST_POSTGRES_URL") == "" {
		t.Skip("PLAZA_TEST_POSTGRES_URL is not set")
	}
	dbURL := dbtest.PostgresURL(t)
	getenv, _ := testEnv(t, map[string]string{"PLAZA_DATABASE_URL": dbURL})
	testUserCommands(t, getenv, dbURL)
}

func TestUserCreateWhileServing(t *testing.T) {
	getenv, _ := testEnv(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	base, done := startServe(t, ctx, getenv)

	out, stderr, err := runUser(getenv, "create", "--email", "live@example.com", "--password", "long enough pass", "--username", "live")
	if err != nil {
		t.Fatalf("user create beside a running serve: %v\nstderr: %s", err, stderr)
	}
	if !strings.Contains(out, "live@example.com") {
		t.Errorf("user create printed %q", out)
	}

	// The running server sees the new, active user at once: it can log in.
	c := newClient(t)
	body := `{"email": "live@example.com", "password": "long enough pass"}`
	resp, err := c.Post(base+"/api/login/", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("login as the created user = %d %s, want 200", resp.StatusCode, b)
	}
	var login struct {
		User struct {
			Username string `json:"username"`
			Email    string `json:"email"`
		} `json:"user"`
	}
	if err := json.Unmarshal(b, &login); err != nil || login.User.Username != "live" {
		t.Errorf("login answered %s (%v), want the user live", b, err)
	}

	// Media URLs the server hands out point at where it really listens.
	resp, err = c.Post(base+"/api/token/", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("token: %v", err)
	}
	var tok struct{ Access string }
	err = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || tok.Access == "" {
		t.Fatalf("POST /api/token/ = %d (%v), want 200 with an access token", resp.StatusCode, err)
	}
	req, _ := http.NewRequest(http.MethodGet, base+"/api/users/me/", nil)
	req.Header.Set("Authorization", "Bearer "+tok.Access)
	resp, err = c.Do(req)
	if err != nil {
		t.Fatalf("me: %v", err)
	}
	var me struct {
		ProfilePicture string `json:"profile_picture"`
	}
	err = json.NewDecoder(resp.Body).Decode(&me)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/users/me/ = %d (%v)", resp.StatusCode, err)
	}
	if !strings.HasPrefix(me.ProfilePicture, base+"/") {
		t.Errorf("profile_picture = %q, want a URL under %s", me.ProfilePicture, base)
	} else if code, _ := get(t, c, me.ProfilePicture); code != http.StatusOK {
		t.Errorf("GET %s = %d, want 200", me.ProfilePicture, code)
	}

	cancel()
	if err := waitRun(t, done); err != nil {
		t.Fatalf("serve after cancellation = %v", err)
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://plaza:s3cret@db:5432/plaza": "postgres://plaza:xxxxx@db:5432/plaza",
		"postgres://plaza@db/plaza":             "postgres://plaza@db/plaza",
		"sqlite://./data/plaza.db":              "sqlite://./data/plaza.db",
		"postgres://u:p@ss@db/plaza":            "postgres://u:xxxxx@db/plaza",
	} {
		if got := redactURL(in); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
		if strings.Contains(redactURL(in), "s3cret") {
			t.Errorf("redactURL(%q) leaks the password", in)
		}
	}
}
