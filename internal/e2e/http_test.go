package e2e

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"plaza/internal/db/dbtest"
)

var sqliteOnly = dbtest.Engine{Name: "sqlite", URL: dbtest.SQLiteURL}

// TestCSRF: a cookie-authenticated write must come from a trusted origin,
// or echo the csrftoken cookie when the browser sends no Origin/Referer.
func TestCSRF(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, eng dbtest.Engine) {
		e := start(t, eng, nil)
		c := e.registerActive("csrf@example.com")

		c.Origin = "https://evil.example"
		r := expect(t, c.do("POST", "/api/token/refresh/", nil), http.StatusForbidden)
		if r.Str("code") != "csrf_failed" {
			t.Errorf("untrusted origin: %s", r.Body)
		}
		expect(t, c.do("POST", "/api/logout/", nil), http.StatusForbidden)
		// Even with the right CSRF token, an untrusted origin never passes.
		c.Header.Set("X-CSRFToken", c.cookie("csrftoken"))
		expect(t, c.do("POST", "/api/logout/", nil), http.StatusForbidden)
		c.Header.Del("X-CSRFToken")

		// An untrusted Referer is refused too; a trusted one passes.
		c.Origin = ""
		c.Header.Set("Referer", "https://evil.example/page")
		expect(t, c.do("POST", "/api/token/refresh/", nil), http.StatusForbidden)
		c.Header.Set("Referer", trustedOrigin+"/pages/video.html")
		expect(t, c.do("POST", "/api/token/refresh/", nil), http.StatusOK)
		c.Header.Del("Referer")

		// Neither header: the X-CSRFToken header must equal the cookie.
		expect(t, c.do("POST", "/api/token/refresh/", nil), http.StatusForbidden)
		c.Header.Set("X-CSRFToken", "wrong")
		expect(t, c.do("POST", "/api/token/refresh/", nil), http.StatusForbidden)
		c.Header.Set("X-CSRFToken", c.cookie("csrftoken"))
		expect(t, c.do("POST", "/api/token/refresh/", nil), http.StatusOK)
		c.Header.Del("X-CSRFToken")

		// Safe methods are never blocked.
		c.Origin = "https://evil.example"
		expect(t, c.do("GET", "/api/users/me/", nil), http.StatusOK)

		// Bearer requests, and cookie-less ones such as a body-form refresh, need none of this.
		b := e.client()
		b.Origin = ""
		tok := expect(t, b.do("POST", "/api/token/", map[string]string{"email": "csrf@example.com", "password": testPassword}), http.StatusOK)
		b.Origin = "https://evil.example"
		expect(t, b.do("POST", "/api/token/refresh/", map[string]string{"refresh": tok.Str("refresh")}), http.StatusOK)

		// Login sets cookies, so it is checked even without any.
		l := e.client()
		l.Origin = "https://evil.example"
		expect(t, l.do("POST", "/api/login/", map[string]string{"email": "csrf@example.com", "password": testPassword}), http.StatusForbidden)

		// The server's own origin (PLAZA_PUBLIC_URL) is trusted.
		c.Origin = e.URL
		expect(t, c.do("POST", "/api/logout/", nil), http.StatusOK)
	})
}

func TestCORS(t *testing.T) {
	e := start(t, sqliteOnly, nil)
	preflight := func(origin string) *http.Response {
		req, _ := http.NewRequest("OPTIONS", e.URL+"/api/login/", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "content-type")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for _, origin := range []string{"http://localhost:5500", "http://127.0.0.1:5500"} {
		r := preflight(origin)
		if r.StatusCode != http.StatusNoContent || r.Header.Get("Access-Control-Allow-Origin") != origin ||
			r.Header.Get("Access-Control-Allow-Credentials") != "true" || !strings.Contains(r.Header.Get("Access-Control-Allow-Methods"), "POST") {
			t.Errorf("preflight from %s: %d %v", origin, r.StatusCode, r.Header)
		}
	}
	if r := preflight("https://evil.example"); r.Header.Get("Access-Control-Allow-Origin") != "" || r.Header.Get("Access-Control-Allow-Credentials") != "" {
		t.Errorf("untrusted preflight got CORS headers: %v", r.Header)
	}
	// Errors carry CORS headers for trusted origins, so the frontend can read them.
	c := e.client()
	r := expect(t, c.do("GET", "/api/users/me/", nil), http.StatusUnauthorized)
	if r.Header.Get("Access-Control-Allow-Origin") != trustedOrigin || r.Header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Errorf("401 without CORS headers: %v", r.Header)
	}
	c.Origin = "https://evil.example"
	r = expect(t, c.do("GET", "/api/users/me/", nil), http.StatusUnauthorized)
	if r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("untrusted origin got CORS headers")
	}
}

func TestRoutingShapes(t *testing.T) {
	e := start(t, sqliteOnly, nil)
	c := e.client()
	// Without the trailing slash, the same answer (no redirect, body kept).
	r := expect(t, c.do("POST", "/api/register", map[string]string{"email": "slash@example.com", "password": testPassword, "confirmed_password": testPassword}), http.StatusCreated)
	if r.JSON()["user"] == nil {
		t.Errorf("slashless register: %s", r.Body)
	}
	expect(t, c.do("GET", "/api/users/me", nil), http.StatusUnauthorized)
	// Unknown routes and wrong methods answer in the error shape.
	r = expect(t, e.uncheckedClient().do("GET", "/api/nothing-here/", nil), http.StatusNotFound)
	if r.Str("code") != "not_found" || r.Header.Get("Content-Type") != "application/json" {
		t.Errorf("404: %s", r.Body)
	}
	r = expect(t, c.do("GET", "/api/login/", nil), http.StatusMethodNotAllowed)
	if r.Str("code") != "method_not_allowed" || !strings.Contains(r.Header.Get("Allow"), "POST") {
		t.Errorf("405: %v %s", r.Header, r.Body)
	}
	// Path tricks do not reach anything else.
	for _, p := range []string{"/static/../go.mod", "/static/%2e%2e/go.mod", "/static/", "/api/activate/MQ/../../../etc/passwd/"} {
		req, _ := http.NewRequest("GET", e.URL+p, nil)
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK || strings.Contains(string(body), "module plaza") {
			t.Errorf("%s: %d %s", p, resp.StatusCode, body)
		}
	}
	// Security headers on API answers.
	r = c.do("GET", "/healthz", nil)
	for k, want := range map[string]string{
		"X-Content-Type-Options": "nosniff", "Referrer-Policy": "strict-origin-when-cross-origin", "X-Frame-Options": "DENY",
	} {
		if got := r.Header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("CSP %q", csp)
	}
	if r.Header.Get("X-Request-ID") == "" {
		t.Error("no X-Request-ID")
	}
	c.Header.Set("X-Request-ID", "trace-me-123")
	if got := c.do("GET", "/healthz", nil).Header.Get("X-Request-ID"); got != "trace-me-123" {
		t.Errorf("request id not propagated: %q", got)
	}
}

func TestRateLimits(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, eng dbtest.Engine) {
		e := start(t, eng, map[string]string{"PLAZA_RATE_LIMITS": "on"})
		e.registerActive("rl@example.com")
		c := e.client()
		// Per account: 10 attempts per 15 minutes, whatever the address.
		var last response
		for i := 0; i < 11; i++ {
			last = c.do("POST", "/api/login/", map[string]string{"email": "rl@example.com", "password": "wrong password " + strconv.Itoa(i)})
		}
		if last.StatusCode != http.StatusTooManyRequests || last.Str("code") != "rate_limited" {
			t.Fatalf("11th failed login: %d %s", last.StatusCode, last.Body)
		}
		if ra, err := strconv.Atoi(last.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 900 {
			t.Errorf("Retry-After %q", last.Header.Get("Retry-After"))
		}
		// Even the right password waits now.
		expect(t, c.do("POST", "/api/login/", map[string]string{"email": "rl@example.com", "password": testPassword}), http.StatusTooManyRequests)
		// Another account from the same address is still served.
		expect(t, c.do("POST", "/api/login/", map[string]string{"email": "other@example.com", "password": "x"}), http.StatusBadRequest)
		// Password reset: 3 per address and hour.
		for i := 0; i < 3; i++ {
			expect(t, c.do("POST", "/api/password_reset/", map[string]string{"email": "rl@example.com"}), http.StatusOK)
		}
		expect(t, c.do("POST", "/api/password_reset/", map[string]string{"email": "rl@example.com"}), http.StatusTooManyRequests)
	})
}

func TestOperations(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, eng dbtest.Engine) {
		e := start(t, eng, nil)
		c := e.client()
		expect(t, c.do("GET", "/healthz", nil), http.StatusOK)
		r := expect(t, c.do("GET", "/readyz", nil), http.StatusOK)
		checks, _ := r.JSON()["checks"].(map[string]any)
		if checks["database"] != "ok" {
			t.Errorf("readyz: %s", r.Body)
		}
		if e.Config.RedisURL != "" && checks["redis"] != "ok" {
			t.Errorf("readyz without redis: %s", r.Body)
		}
		expect(t, c.do("POST", "/api/login/", map[string]string{"email": "m@example.com", "password": "whatever it is"}), http.StatusBadRequest)
		m := expect(t, c.do("GET", "/metrics", nil), http.StatusOK)
		body := string(m.Body)
		for _, want := range []string{
			`plaza_http_requests_total{method="POST",route="POST /api/login/{$}",status="400"} 1`,
			`plaza_http_request_duration_seconds_bucket{method="GET",route="GET /readyz"`,
			"go_goroutines",
		} {
			if !strings.Contains(body, want) {
				t.Errorf("metrics lack %q", want)
			}
		}
		spec := expect(t, c.do("GET", "/api/openapi.yaml", nil), http.StatusOK)
		if !strings.HasPrefix(string(spec.Body), "openapi: 3") {
			t.Errorf("openapi.yaml: %.40s", spec.Body)
		}
		// Readiness fails when the database is gone.
		e.App.DB.Close()
		expect(t, c.do("GET", "/readyz", nil), http.StatusServiceUnavailable)
	})
}

// TestLogsKeepSecrets: no password, token or cookie value reaches the logs.
func TestLogsKeepSecrets(t *testing.T) {
	e := start(t, sqliteOnly, nil)
	c := e.registerActive("logs@example.com")
	b := e.client()
	tok := expect(t, b.do("POST", "/api/token/", map[string]string{"email": "logs@example.com", "password": testPassword}), http.StatusOK)
	b.Bearer = tok.Str("access")
	expect(t, b.do("GET", "/api/users/me/?access_token="+tok.Str("access"), nil), http.StatusOK)
	expect(t, c.do("POST", "/api/password_reset/", map[string]string{"email": "logs@example.com"}), http.StatusOK)
	l := e.mailLink("logs@example.com", "Reset your password")
	expect(t, c.do("POST", "/api/password_confirm/"+l.UID+"/"+l.Token+"/", map[string]string{
		"new_password": "another good secret", "confirm_password": "another good secret"}), http.StatusOK)
	act := e.client()
	expect(t, act.do("POST", "/api/register/", map[string]string{"email": "logs2@example.com", "password": testPassword, "confirmed_password": testPassword}), http.StatusCreated)
	al := e.mailLink("logs2@example.com", "Confirm your email")
	expect(t, act.do("GET", "/api/activate/"+al.UID+"/"+al.Token+"/", nil), http.StatusOK)
	logs := e.logs.String()
	if !strings.Contains(logs, `"msg":"request"`) {
		t.Fatal("no access log lines")
	}
	for name, secret := range map[string]string{
		"password": testPassword, "access": tok.Str("access"), "refresh": tok.Str("refresh"),
		"cookie": c.cookie("access_token"), "csrf": c.cookie("csrftoken"), "secret key": e.Config.SecretKey,
		"reset token": l.Token, "activation token": al.Token,
	} {
		if secret != "" && strings.Contains(logs, secret) {
			t.Errorf("the logs contain the %s", name)
		}
	}
}
