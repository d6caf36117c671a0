// Package e2e drives the whole application over real HTTP, as a client
// would: a real listener, a cookie jar, a real SMTP server receiving the
// mail, and every answer checked against api/openapi.yaml. Each test runs on
// SQLite and, when PLAZA_TEST_POSTGRES_URL is set, on PostgreSQL.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"plaza/internal/account"
	"plaza/internal/app"
	"plaza/internal/config"
	"plaza/internal/db/dbtest"
	"plaza/internal/mail/mailtest"
	"plaza/internal/openapicheck"
)

// trustedOrigin is the frontend origin the tests act as.
const trustedOrigin = "http://localhost:5500"

// env is one running Plaza.
type env struct {
	t      *testing.T
	URL    string
	App    *app.App
	Config *config.Config
	Sink   *mailtest.Sink
	check  *openapicheck.Checker
	logs   *syncBuffer
}

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

// start runs Plaza on engine e with the test settings, overridden by vars.
func start(t *testing.T, e dbtest.Engine, vars map[string]string) *env {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	sink := mailtest.StartSink(t)
	values := map[string]string{
		"PLAZA_ADDR":         addr,
		"PLAZA_PUBLIC_URL":   "http://" + addr,
		"PLAZA_DATA_DIR":     t.TempDir(),
		"PLAZA_DATABASE_URL": e.URL(t),
		"PLAZA_SMTP_URL":     sink.URL(),
		"PLAZA_SECRET_KEY":   "test-secret-key-0123456789abcdef-0123456789",
		"PLAZA_RATE_LIMITS":  "off",
		"PLAZA_LOG_LEVEL":    "debug",
	}
	if u := os.Getenv("PLAZA_TEST_REDIS_URL"); u != "" {
		values["PLAZA_REDIS_URL"] = u
		values["PLAZA_REDIS_PREFIX"] = fmt.Sprintf("plazatest:%d:%s:", time.Now().UnixNano(), t.Name())
	}
	for k, v := range vars {
		values[k] = v
	}
	cfg, err := config.Load("serve", nil, func(k string) string { return values[k] }, io.Discard)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(io.MultiWriter(logs, testLogWriter{t}), &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg, log, app.Options{
		Argon2:          account.Argon2Params{MemoryKiB: 1024, Time: 1, Threads: 1},
		JobPollInterval: 50 * time.Millisecond,
	})
	if err != nil {
		cancel()
		t.Fatalf("app: %v", err)
	}
	if cfg.Workers != "off" {
		if err := a.StartWorkers(ctx); err != nil {
			t.Fatalf("workers: %v", err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		a.Close()
	})
	return &env{t: t, URL: "http://" + addr, App: a, Config: cfg, Sink: sink, check: openapicheck.New(t), logs: logs}
}

// testLogWriter sends server logs to the test log only when -v is on and
// the test fails, keeping passing runs quiet.
type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(p []byte) (int, error) {
	if testing.Verbose() {
		w.t.Log(strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

// client is one user agent: a cookie jar, an Origin, optionally a Bearer token.
type client struct {
	t      *testing.T
	e      *env
	http   *http.Client
	Origin string
	Bearer string
	// Header is added to every request.
	Header http.Header
}

func (e *env) client() *client {
	c := e.uncheckedClient()
	c.http.Transport = e.check.Wrap(e.t, http.DefaultTransport)
	return c
}

// uncheckedClient is a client whose answers are not checked against the
// OpenAPI document, for requests to routes that deliberately do not exist.
func (e *env) uncheckedClient() *client {
	jar, _ := cookiejar.New(nil)
	return &client{
		t: e.t, e: e, Origin: trustedOrigin, Header: http.Header{},
		http: &http.Client{Jar: jar, Timeout: 2 * time.Minute,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
	}
}

// response is an answer with its body read.
type response struct {
	*http.Response
	Body []byte
}

// JSON decodes the body as an object.
func (r response) JSON() map[string]any {
	var m map[string]any
	_ = json.Unmarshal(r.Body, &m)
	return m
}

// Str is a top-level string field of the JSON body.
func (r response) Str(key string) string {
	s, _ := r.JSON()[key].(string)
	return s
}

// do sends a request; body may be nil, a []byte/string (sent as is with
// Content-Type application/json) or any value (encoded as JSON).
func (c *client) do(method, path string, body any) response {
	c.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			c.t.Fatal(err)
		}
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequest(method, c.e.URL+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Origin != "" {
		req.Header.Set("Origin", c.Origin)
	}
	if c.Bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.Bearer)
	}
	for k, vs := range c.Header {
		req.Header[k] = vs
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return response{Response: resp, Body: b}
}

// expect fails the test unless the answer has the given status.
func expect(t *testing.T, r response, status int) response {
	t.Helper()
	if r.StatusCode != status {
		t.Fatalf("%s %s: status %d, want %d; body %s", r.Request.Method, r.Request.URL.Path, r.StatusCode, status, r.Body)
	}
	return r
}

// cookie returns the value of a cookie the jar holds for the server.
func (c *client) cookie(name string) string {
	u, _ := url.Parse(c.e.URL)
	for _, ck := range c.http.Jar.Cookies(u) {
		if ck.Name == name {
			return ck.Value
		}
	}
	return ""
}

// setCookie puts a cookie into the jar.
func (c *client) setCookie(name, value string) {
	u, _ := url.Parse(c.e.URL)
	c.http.Jar.SetCookies(u, []*http.Cookie{{Name: name, Value: value, Path: "/"}})
}

// link is what an activation or reset mail carries.
type link struct{ UID, Token string }

// mailLink waits for the next mail to addr with subject and returns its link.
func (e *env) mailLink(addr, subject string) link {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		msgs := e.Sink.Messages()
		for i := len(msgs) - 1; i >= 0; i-- {
			m := msgs[i]
			if m.Subject == subject && len(m.To) > 0 && strings.EqualFold(m.To[0], addr) {
				u, err := url.Parse(mailtest.FirstLink(m.Text))
				if err != nil {
					e.t.Fatalf("mail link: %v", err)
				}
				if !strings.Contains(m.HTML, u.Query().Get("token")) {
					e.t.Errorf("HTML part lacks the link token")
				}
				return link{UID: u.Query().Get("uid"), Token: u.Query().Get("token")}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.t.Fatalf("no mail %q to %s", subject, addr)
	return link{}
}

// countMail counts mails with subject to addr.
func (e *env) countMail(addr, subject string) int {
	n := 0
	for _, m := range e.Sink.Messages() {
		if m.Subject == subject && len(m.To) > 0 && strings.EqualFold(m.To[0], addr) {
			n++
		}
	}
	return n
}

const testPassword = "correct horse battery"

// registerActive registers, activates and logs in a user with cookies.
func (e *env) registerActive(email string) *client {
	e.t.Helper()
	c := e.client()
	expect(e.t, c.do("POST", "/api/register/", map[string]string{
		"email": email, "password": testPassword, "confirmed_password": testPassword,
	}), http.StatusCreated)
	l := e.mailLink(email, "Confirm your email")
	expect(e.t, c.do("GET", "/api/activate/"+l.UID+"/"+l.Token+"/", nil), http.StatusOK)
	expect(e.t, c.do("POST", "/api/login/", map[string]string{"email": email, "password": testPassword}), http.StatusOK)
	return c
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
