package openapicheck

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// recorder is a testing.TB that records failures instead of failing the
// test that runs it. Methods it does not override go to the real test.
type recorder struct {
	testing.TB
	mu     sync.Mutex
	errors []string
	fatals []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fatals = append(r.fatals, fmt.Sprintf(format, args...))
}

func (r *recorder) failures() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append(append([]string(nil), r.errors...), r.fatals...)
}

const (
	jsonCT = "application/json"
	base   = "http://127.0.0.1:54321"
)

const validProfile = `{
	"id": 1, "username": "ada", "email": "ada@example.com",
	"first_name": "Ada", "last_name": "Lovelace", "bio": "",
	"profile_picture": "http://127.0.0.1:54321/static/default-avatar.png",
	"cover_image": "https://cdn.example.com/covers/1.jpg?X-Amz-Signature=abc",
	"followers_count": 0, "following_count": 2, "posts_count": 5,
	"is_following": false, "follows_you": false,
	"created_at": "2026-05-06T14:00:00Z"
}`

type exchange struct {
	name    string
	method  string
	url     string
	status  int
	header  http.Header
	body    string
	wantErr string // "" when the exchange must pass
}

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func jsonHdr(kv ...string) http.Header {
	return hdr(append([]string{"Content-Type", jsonCT}, kv...)...)
}

func (e exchange) build() (*http.Request, *http.Response) {
	req := httptest.NewRequest(e.method, e.url, nil)
	// httptest.NewRequest sets RequestURI for servers; a client request
	// keeps the absolute URL, as tests send it.
	req.RequestURI = ""
	header := e.header
	if header == nil {
		header = http.Header{}
	}
	resp := &http.Response{
		StatusCode: e.status,
		Header:     header,
		Body:       io.NopCloser(strings.NewReader(e.body)),
		Request:    req,
	}
	return req, resp
}

func TestCheck(t *testing.T) {
	c := New(t)
	profileWithout := func(field string) string {
		s := strings.NewReplacer(`"`+field+`": false,`, "", `"`+field+`": false`, "").Replace(validProfile)
		if s == validProfile {
			t.Fatalf("fixture: %s not removed", field)
		}
		return s
	}
	cases := []exchange{
		// ── passing ──
		{name: "own profile", method: "GET", url: base + "/api/users/me/", status: 200, header: jsonHdr(), body: validProfile},
		{name: "relative URL request", method: "GET", url: "/api/users/me/", status: 200, header: jsonHdr(), body: validProfile},
		{name: "charset in content type", method: "GET", url: base + "/api/users/me/", status: 200,
			header: hdr("Content-Type", "application/json; charset=utf-8"), body: validProfile},
		{name: "unauthenticated", method: "GET", url: base + "/api/users/me/", status: 401,
			header: jsonHdr("WWW-Authenticate", "Bearer"), body: `{"detail": "Authentication credentials were not provided.", "code": "not_authenticated"}`},
		{name: "register", method: "POST", url: base + "/api/register/", status: 201, header: jsonHdr(),
			body: `{"user": {"id": 3, "email": "a@example.com", "username": "a"}}`},
		{name: "register with token", method: "POST", url: base + "/api/register/", status: 201, header: jsonHdr(),
			body: `{"user": {"id": 3, "email": "a@example.com", "username": "a"}, "token": "abc-123"}`},
		{name: "register validation error", method: "POST", url: base + "/api/register/", status: 400, header: jsonHdr(),
			body: `{"detail": "Please check your input and try again.", "code": "invalid", "errors": {"password": ["Too short."]}}`},
		{name: "register mail down", method: "POST", url: base + "/api/register/", status: 503, header: jsonHdr(),
			body: `{"detail": "Please try again later.", "code": "unavailable"}`},
		{name: "activate", method: "GET", url: base + "/api/activate/MQ/abc-def/", status: 200, header: jsonHdr(),
			body: `{"message": "Account successfully activated."}`},
		{name: "activate failed", method: "GET", url: base + "/api/activate/MQ/nope/", status: 400, header: jsonHdr(),
			body: `{"message": "Activation failed.", "detail": "Activation failed.", "code": "activation_failed"}`},
		{name: "login", method: "POST", url: base + "/api/login/", status: 200,
			header: jsonHdr("Set-Cookie", "access_token=x; Path=/; HttpOnly; SameSite=Lax", "Set-Cookie", "refresh_token=y; Path=/; HttpOnly; SameSite=Lax"),
			body:   `{"detail": "Login successful", "user": {"id": 1, "username": "ada", "email": "ada@example.com"}}`},
		{name: "login without trailing slash", method: "POST", url: base + "/api/login", status: 400, header: jsonHdr(),
			body: `{"detail": "Please check your input and try again."}`},
		{name: "login rate limited", method: "POST", url: base + "/api/login/", status: 429,
			header: jsonHdr("Retry-After", "30"), body: `{"detail": "Too many requests.", "code": "rate_limited"}`},
		{name: "logout", method: "POST", url: base + "/api/logout/", status: 200,
			header: jsonHdr("Set-Cookie", "access_token=; Path=/; Max-Age=0"),
			body:   `{"detail": "Logout successful! All tokens will be deleted. Refresh token is now invalid."}`},
		{name: "logout without cookie", method: "POST", url: base + "/api/logout/", status: 400, header: jsonHdr(),
			body: `{"detail": "Refresh token missing."}`},
		{name: "refresh, cookie form", method: "POST", url: base + "/api/token/refresh/", status: 200,
			header: jsonHdr("Set-Cookie", "access_token=z; Path=/; HttpOnly"), body: `{"detail": "Token refreshed", "access": "z"}`},
		{name: "refresh, body form", method: "POST", url: base + "/api/token/refresh/", status: 200, header: jsonHdr(),
			body: `{"access": "a", "refresh": "r"}`},
		{name: "refresh invalid", method: "POST", url: base + "/api/token/refresh/", status: 401, header: jsonHdr(),
			body: `{"detail": "Invalid refresh token."}`},
		{name: "password reset", method: "POST", url: base + "/api/password_reset/", status: 200, header: jsonHdr(),
			body: `{"detail": "An email has been sent to reset your password."}`},
		{name: "password confirm", method: "POST", url: base + "/api/password_confirm/MQ/tok/", status: 400, header: jsonHdr(),
			body: `{"detail": "Invalid reset link."}`},
		{name: "token pair", method: "POST", url: base + "/api/token/", status: 200, header: jsonHdr(),
			body: `{"access": "a", "refresh": "r"}`},
		{name: "token bad credentials", method: "POST", url: base + "/api/token/", status: 401, header: jsonHdr(),
			body: `{"detail": "No active account found with the given credentials"}`},
		{name: "healthz json", method: "GET", url: base + "/healthz", status: 200, header: jsonHdr(), body: `{"status": "ok"}`},
		{name: "healthz text", method: "GET", url: base + "/healthz", status: 200, header: hdr("Content-Type", "text/plain; charset=utf-8"), body: "ok\n"},
		{name: "healthz HEAD", method: "HEAD", url: base + "/healthz", status: 200},
		{name: "readyz down", method: "GET", url: base + "/readyz", status: 503, header: jsonHdr(),
			body: `{"status": "unavailable", "checks": {"database": "ok", "redis": "timeout"}}`},
		{name: "metrics", method: "GET", url: base + "/metrics", status: 200,
			header: hdr("Content-Type", "text/plain; version=0.0.4; charset=utf-8; escaping=underscores"), body: "# HELP up 1\nup 1\n"},
		{name: "openapi document", method: "GET", url: base + "/api/openapi.yaml", status: 200,
			header: hdr("Content-Type", "application/yaml"), body: "openapi: 3.0.3\ninfo: {title: x, version: '1'}\npaths: {}\n"},
		{name: "method not allowed", method: "GET", url: base + "/api/login/", status: 405,
			header: jsonHdr("Allow", "POST, OPTIONS"), body: `{"detail": "Method \"GET\" not allowed.", "code": "method_not_allowed"}`},
		{name: "CORS preflight", method: "OPTIONS", url: base + "/api/login/", status: 204,
			header: hdr("Access-Control-Allow-Origin", "http://localhost:5500")},
		{name: "not modified", method: "GET", url: base + "/api/openapi.yaml", status: 304},

		// ── failing ──
		{name: "undocumented status", method: "POST", url: base + "/api/login/", status: 418, header: jsonHdr(),
			body: `{"detail": "teapot"}`, wantErr: "status 418 is not documented for POST /api/login/"},
		{name: "404 not documented for login", method: "POST", url: base + "/api/login/", status: 404, header: jsonHdr(),
			body: `{"detail": "Not found."}`, wantErr: "status 404 is not documented"},
		{name: "missing required field", method: "GET", url: base + "/api/users/me/", status: 200, header: jsonHdr(),
			body: profileWithout("follows_you"), wantErr: "follows_you"},
		{name: "missing nested required field", method: "POST", url: base + "/api/register/", status: 201, header: jsonHdr(),
			body: `{"user": {"id": 3, "email": "a@example.com"}}`, wantErr: "username"},
		{name: "wrong type", method: "GET", url: base + "/api/users/me/", status: 200, header: jsonHdr(),
			body: strings.Replace(validProfile, `"id": 1`, `"id": "1"`, 1), wantErr: "id"},
		{name: "null where a string is required", method: "GET", url: base + "/api/users/me/", status: 200, header: jsonHdr(),
			body: strings.Replace(validProfile, `"bio": ""`, `"bio": null`, 1), wantErr: "bio"},
		{name: "relative media URL", method: "GET", url: base + "/api/users/me/", status: 200, header: jsonHdr(),
			body:    strings.Replace(validProfile, `"http://127.0.0.1:54321/static/default-avatar.png"`, `"/static/default-avatar.png"`, 1),
			wantErr: "profile_picture"},
		{name: "time not in UTC", method: "GET", url: base + "/api/users/me/", status: 200, header: jsonHdr(),
			body: strings.Replace(validProfile, `2026-05-06T14:00:00Z`, `2026-05-06T16:00:00+02:00`, 1), wantErr: "created_at"},
		{name: "error without detail", method: "POST", url: base + "/api/login/", status: 400, header: jsonHdr(),
			body: `{"error": "bad"}`, wantErr: "detail"},
		{name: "activation failure without message", method: "GET", url: base + "/api/activate/MQ/x/", status: 400, header: jsonHdr(),
			body: `{"detail": "Activation failed.", "code": "activation_failed"}`, wantErr: "message"},
		{name: "refresh answer of neither form", method: "POST", url: base + "/api/token/refresh/", status: 200, header: jsonHdr(),
			body: `{"detail": "Token refreshed"}`, wantErr: "doesn't match"},
		{name: "401 without WWW-Authenticate", method: "GET", url: base + "/api/users/me/", status: 401, header: jsonHdr(),
			body: `{"detail": "Authentication credentials were not provided."}`, wantErr: "WWW-Authenticate"},
		{name: "429 without Retry-After", method: "POST", url: base + "/api/login/", status: 429, header: jsonHdr(),
			body: `{"detail": "Too many requests."}`, wantErr: "Retry-After"},
		{name: "login without cookies", method: "POST", url: base + "/api/login/", status: 200, header: jsonHdr(),
			body: `{"detail": "Login successful", "user": {"id": 1, "username": "ada", "email": "ada@example.com"}}`, wantErr: "Set-Cookie"},
		{name: "HTML instead of JSON", method: "GET", url: base + "/api/users/me/", status: 200,
			header: hdr("Content-Type", "text/html"), body: "<html></html>", wantErr: "text/html"},
		{name: "no content type", method: "GET", url: base + "/api/users/me/", status: 200, body: validProfile, wantErr: "Content-Type"},
		{name: "body not JSON", method: "GET", url: base + "/api/users/me/", status: 200, header: jsonHdr(),
			body: "{not json", wantErr: "decode"},
		{name: "undocumented path", method: "GET", url: base + "/api/nope/", status: 404, header: jsonHdr(),
			body: `{"detail": "Not found."}`, wantErr: "path not documented"},
		{name: "undocumented method", method: "DELETE", url: base + "/api/login/", status: 200, header: jsonHdr(),
			body: `{"detail": "ok"}`, wantErr: "method DELETE not documented"},
		{name: "405 not in the error shape", method: "GET", url: base + "/api/login/", status: 405,
			header: hdr("Content-Type", "text/plain"), body: "Method Not Allowed\n", wantErr: "text/plain"},
		{name: "HEAD with undocumented status", method: "HEAD", url: base + "/healthz", status: 404, wantErr: "status 404"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, resp := tc.build()
			rec := &recorder{TB: t}
			c.Check(rec, req, resp, []byte(tc.body))
			got := rec.failures()
			if tc.wantErr == "" {
				if len(got) != 0 {
					t.Fatalf("valid exchange failed the check:\n%s", strings.Join(got, "\n"))
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("want exactly one failure containing %q, got %d: %q", tc.wantErr, len(got), got)
			}
			msg := got[0]
			t.Logf("reported: %s", msg)
			if !strings.Contains(msg, tc.wantErr) {
				t.Errorf("failure does not mention %q:\n%s", tc.wantErr, msg)
			}
			// The message names the exchange.
			path := req.URL.Path
			for _, want := range []string{tc.method, path, fmt.Sprintf("-> %d", tc.status)} {
				if !strings.Contains(msg, want) {
					t.Errorf("failure does not name %q:\n%s", want, msg)
				}
			}
		})
	}
}

func TestCheckDoesNotConsumeBody(t *testing.T) {
	c := New(t)
	req, resp := exchange{method: "GET", url: base + "/api/users/me/", status: 200, header: jsonHdr(), body: validProfile}.build()
	rec := &recorder{TB: t}
	c.Check(rec, nil, resp, []byte(validProfile)) // the request comes from resp.Request
	if got := rec.failures(); len(got) != 0 {
		t.Fatalf("unexpected failures: %q", got)
	}
	left, err := io.ReadAll(resp.Body)
	if err != nil || string(left) != validProfile {
		t.Fatalf("resp.Body after Check = %q, %v; want it untouched", left, err)
	}
	if req.URL.Host != "127.0.0.1:54321" {
		t.Errorf("Check changed the caller's request URL to %v", req.URL)
	}
}

func TestWrap(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/users/me/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", jsonCT)
		if r.URL.Query().Get("broken") != "" {
			io.WriteString(w, `{"id": 1}`)
			return
		}
		io.WriteString(w, validProfile)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	c := New(t)
	rec := &recorder{TB: t}
	client := &http.Client{Transport: c.Wrap(rec, srv.Client().Transport)}

	get := func(url string) []byte {
		t.Helper()
		resp, err := client.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	if b := get(srv.URL + "/api/users/me/"); !bytes.Equal(b, []byte(validProfile)) {
		t.Fatalf("caller read %q; the body must be restored after the check", b)
	}
	if got := rec.failures(); len(got) != 0 {
		t.Fatalf("valid exchange failed the check: %q", got)
	}

	if b := get(srv.URL + "/api/users/me/?broken=1"); string(b) != `{"id": 1}` {
		t.Fatalf("caller read %q", b)
	}
	if got := rec.failures(); len(got) != 1 || !strings.Contains(got[0], "username") {
		t.Fatalf("want one failure about the missing fields, got %q", got)
	}

	get(srv.URL + "/api/unknown/") // the mux answers 404 text
	if got := rec.failures(); len(got) != 2 || !strings.Contains(got[1], "path not documented") {
		t.Fatalf("want a failure for the undocumented path, got %q", got)
	}
}

func TestNew(t *testing.T) {
	rec := &recorder{TB: t}
	if c := New(rec); c == nil {
		t.Fatal("New returned nil")
	}
	if got := rec.failures(); len(got) != 0 {
		t.Fatalf("api/openapi.yaml does not load or validate: %q", got)
	}
}

func TestLoadRejectsInvalidDocuments(t *testing.T) {
	for name, doc := range map[string]string{
		"not yaml":         "{{{",
		"missing info":     "openapi: 3.0.3\npaths: {}\n",
		"bad ref":          "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths:\n  /x/:\n    get:\n      responses:\n        '200': {$ref: '#/components/responses/Nope'}\n",
		"no responses":     "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths:\n  /x/:\n    get: {}\n",
		"example mismatch": "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths: {}\ncomponents:\n  schemas:\n    A: {type: integer, example: abc}\n",
	} {
		_, err := load([]byte(doc))
		if err == nil {
			t.Errorf("%s: load accepted an invalid document", name)
			continue
		}
		t.Logf("%s: %v", name, err)
	}
}

// TestCheckConcurrent runs checks from many goroutines, as parallel
// end-to-end tests sharing one Checker do; run it with -race.
func TestCheckConcurrent(t *testing.T) {
	c := New(t)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			for range 20 {
				body := validProfile
				if i%2 == 1 {
					body = `{"id": "x"}`
				}
				req, resp := exchange{method: "GET", url: base + "/api/users/me/", status: 200, header: jsonHdr(), body: body}.build()
				err := c.Validate(req, resp, []byte(body))
				if (err != nil) != (i%2 == 1) {
					t.Errorf("goroutine %d: Validate = %v", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
}
