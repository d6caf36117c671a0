package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"plaza/internal/db/dbtest"
)

// TestAccountJourney is the newcomer's path of the README: register, find
// the link in the mail, activate, log in, call /users/me with the cookie and
// with a Bearer token, refresh, log out, reset the password.
func TestAccountJourney(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, eng dbtest.Engine) {
		e := start(t, eng, nil)
		c := e.client()

		r := expect(t, c.do("POST", "/api/register/", map[string]string{
			"email": "Alice@Example.com", "password": testPassword, "confirmed_password": testPassword,
			"privacy_policy": "on",
		}), http.StatusCreated)
		user := r.JSON()["user"].(map[string]any)
		if user["email"] != "alice@example.com" || user["username"] != "alice" {
			t.Fatalf("registered user %v", user)
		}
		if _, ok := r.JSON()["token"]; ok {
			t.Fatal("activation token exposed although PLAZA_EXPOSE_ACTIVATION_TOKEN is off")
		}

		// Not active yet: login fails like a wrong password.
		r = expect(t, c.do("POST", "/api/login/", map[string]string{"email": "alice@example.com", "password": testPassword}), http.StatusBadRequest)
		if r.Str("detail") != "Please check your input and try again." {
			t.Fatalf("inactive login detail %q", r.Str("detail"))
		}

		l := e.mailLink("alice@example.com", "Confirm your email")
		if l.UID != "MQ" {
			t.Errorf("uid of user 1 is %q, want MQ", l.UID)
		}
		r = expect(t, c.do("GET", "/api/activate/"+l.UID+"/"+l.Token+"/", nil), http.StatusOK)
		if r.Str("message") != "Account successfully activated." {
			t.Fatalf("activate answer %s", r.Body)
		}
		// Single use.
		r = expect(t, c.do("GET", "/api/activate/"+l.UID+"/"+l.Token+"/", nil), http.StatusBadRequest)
		if r.Str("message") != "Activation failed." || r.Str("detail") != "Activation failed." || r.Str("code") != "activation_failed" {
			t.Fatalf("second activation answer %s", r.Body)
		}

		// Cookie login.
		r = expect(t, c.do("POST", "/api/login/", map[string]string{"email": "ALICE@example.com", "password": testPassword}), http.StatusOK)
		if r.Str("detail") != "Login successful" {
			t.Fatalf("login answer %s", r.Body)
		}
		checkAuthCookies(t, r.Response, e.Config.CookieSecure)
		me := expect(t, c.do("GET", "/api/users/me/", nil), http.StatusOK).JSON()
		if me["email"] != "alice@example.com" || me["username"] != "alice" {
			t.Fatalf("me %v", me)
		}
		if pic, _ := me["profile_picture"].(string); !strings.HasPrefix(pic, e.URL+"/static/") {
			t.Errorf("default picture URL %q", pic)
		}
		pic := expect(t, e.client().do("GET", strings.TrimPrefix(me["profile_picture"].(string), e.URL), nil), http.StatusOK)
		if ct := pic.Header.Get("Content-Type"); !strings.HasPrefix(ct, "image/svg") {
			t.Errorf("default picture content type %q", ct)
		}

		// Bearer pair.
		b := e.client()
		b.Origin = ""
		r = expect(t, b.do("POST", "/api/token/", map[string]string{"email": "alice@example.com", "password": testPassword}), http.StatusOK)
		access, refresh := r.Str("access"), r.Str("refresh")
		if access == "" || refresh == "" || len(r.Cookies()) != 0 {
			t.Fatalf("token answer %s, cookies %v", r.Body, r.Cookies())
		}
		b.Bearer = access
		if got := expect(t, b.do("GET", "/api/users/me/", nil), http.StatusOK).JSON()["id"]; got != user["id"] {
			t.Fatalf("bearer me id %v", got)
		}

		// Cookie refresh: a new access cookie, the refresh cookie stays.
		oldRefresh := c.cookie("refresh_token")
		r = expect(t, c.do("POST", "/api/token/refresh/", nil), http.StatusOK)
		if r.Str("detail") != "Token refreshed" || r.Str("access") == "" {
			t.Fatalf("cookie refresh %s", r.Body)
		}
		if c.cookie("access_token") != r.Str("access") || c.cookie("refresh_token") != oldRefresh {
			t.Fatal("cookie refresh did not set the new access cookie or changed the refresh cookie")
		}
		expect(t, c.do("GET", "/api/users/me/", nil), http.StatusOK)

		// Bearer refresh rotates; the old one is dead; reusing it kills the family.
		b.Bearer = ""
		r = expect(t, b.do("POST", "/api/token/refresh/", map[string]string{"refresh": refresh}), http.StatusOK)
		refresh2 := r.Str("refresh")
		if r.Str("access") == "" || refresh2 == "" || refresh2 == refresh {
			t.Fatalf("rotation answer %s", r.Body)
		}
		r = expect(t, b.do("POST", "/api/token/refresh/", map[string]string{"refresh": refresh}), http.StatusUnauthorized)
		if r.Str("detail") != "Invalid refresh token." {
			t.Fatalf("reused refresh detail %q", r.Str("detail"))
		}
		expect(t, b.do("POST", "/api/token/refresh/", map[string]string{"refresh": refresh2}), http.StatusUnauthorized)

		// Logout revokes and clears the cookies.
		r = expect(t, c.do("POST", "/api/logout/", nil), http.StatusOK)
		if r.Str("detail") != "Logout successful! All tokens will be deleted. Refresh token is now invalid." {
			t.Fatalf("logout %s", r.Body)
		}
		for _, ck := range r.Cookies() {
			if (ck.Name == "access_token" || ck.Name == "refresh_token") && ck.MaxAge >= 0 {
				t.Errorf("logout left cookie %s with Max-Age %d", ck.Name, ck.MaxAge)
			}
		}
		if !strings.Contains(strings.Join(r.Header.Values("Set-Cookie"), "\n"), "Max-Age=0") {
			t.Error("logout did not send Max-Age=0")
		}
		expect(t, c.do("GET", "/api/users/me/", nil), http.StatusUnauthorized)
		// The revoked refresh token is refused in either form.
		c.setCookie("refresh_token", oldRefresh)
		r = expect(t, c.do("POST", "/api/token/refresh/", nil), http.StatusUnauthorized)
		if r.Str("detail") != "Invalid refresh token." {
			t.Fatalf("revoked refresh detail %q", r.Str("detail"))
		}
		expect(t, c.do("POST", "/api/logout/", nil), http.StatusUnauthorized)

		// Password reset: the mail is sent by a background job.
		r = expect(t, c.do("POST", "/api/password_reset/", map[string]string{"email": "alice@example.com"}), http.StatusOK)
		if r.Str("detail") != "An email has been sent to reset your password." {
			t.Fatalf("reset answer %s", r.Body)
		}
		rl := e.mailLink("alice@example.com", "Reset your password")
		// A bearer session from before the reset.
		r = expect(t, b.do("POST", "/api/token/", map[string]string{"email": "alice@example.com", "password": testPassword}), http.StatusOK)
		preAccess, preRefresh := r.Str("access"), r.Str("refresh")

		r = expect(t, c.do("POST", "/api/password_confirm/"+rl.UID+"/"+rl.Token+"/", map[string]string{
			"new_password": "a brand new secret", "confirm_password": "a brand new secret",
		}), http.StatusOK)
		if r.Str("detail") != "Your Password has been successfully reset." {
			t.Fatalf("confirm answer %s", r.Body)
		}
		// Single use.
		r = expect(t, c.do("POST", "/api/password_confirm/"+rl.UID+"/"+rl.Token+"/", map[string]string{
			"new_password": "another new secret", "confirm_password": "another new secret",
		}), http.StatusBadRequest)
		if r.Str("detail") != "Invalid reset link." {
			t.Fatalf("reused reset link %s", r.Body)
		}
		// Every earlier session ends.
		b.Bearer = preAccess
		expect(t, b.do("GET", "/api/users/me/", nil), http.StatusUnauthorized)
		b.Bearer = ""
		expect(t, b.do("POST", "/api/token/refresh/", map[string]string{"refresh": preRefresh}), http.StatusUnauthorized)
		expect(t, c.do("POST", "/api/login/", map[string]string{"email": "alice@example.com", "password": testPassword}), http.StatusBadRequest)
		expect(t, c.do("POST", "/api/login/", map[string]string{"email": "alice@example.com", "password": "a brand new secret"}), http.StatusOK)
		expect(t, c.do("GET", "/api/users/me/", nil), http.StatusOK)
	})
}

func checkAuthCookies(t *testing.T, r *http.Response, secure bool) {
	t.Helper()
	got := map[string]*http.Cookie{}
	for _, c := range r.Cookies() {
		got[c.Name] = c
	}
	for _, name := range []string{"access_token", "refresh_token"} {
		c := got[name]
		if c == nil || c.Value == "" {
			t.Fatalf("login did not set %s", name)
		}
		if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Secure != secure || c.Path != "/" {
			t.Errorf("%s: HttpOnly=%v SameSite=%v Secure=%v Path=%q", name, c.HttpOnly, c.SameSite, c.Secure, c.Path)
		}
	}
	if c := got["csrftoken"]; c == nil || c.Value == "" || c.HttpOnly {
		t.Errorf("csrftoken cookie missing or not readable: %+v", c)
	}
}

func TestCookieSecureSetting(t *testing.T) {
	e := start(t, dbtest.Engine{Name: "sqlite", URL: dbtest.SQLiteURL}, map[string]string{"PLAZA_COOKIE_SECURE": "true"})
	c := e.client()
	expect(t, c.do("POST", "/api/register/", map[string]string{"email": "s@example.com", "password": testPassword, "confirmed_password": testPassword}), http.StatusCreated)
	l := e.mailLink("s@example.com", "Confirm your email")
	expect(t, c.do("GET", "/api/activate/"+l.UID+"/"+l.Token+"/", nil), http.StatusOK)
	r := expect(t, c.do("POST", "/api/login/", map[string]string{"email": "s@example.com", "password": testPassword}), http.StatusOK)
	checkAuthCookies(t, r.Response, true)
}

func TestExposeActivationToken(t *testing.T) {
	e := start(t, dbtest.Engine{Name: "sqlite", URL: dbtest.SQLiteURL}, map[string]string{"PLAZA_EXPOSE_ACTIVATION_TOKEN": "true"})
	c := e.client()
	r := expect(t, c.do("POST", "/api/register/", map[string]string{"email": "v@example.com", "password": testPassword, "confirmed_password": testPassword}), http.StatusCreated)
	tok := r.Str("token")
	if tok == "" {
		t.Fatal("token not exposed")
	}
	uid := r.JSON()["user"].(map[string]any)["id"].(float64)
	_ = uid
	expect(t, c.do("GET", "/api/activate/MQ/"+tok+"/", nil), http.StatusOK)
}

func TestRegisterRejectsBadInput(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, eng dbtest.Engine) {
		e := start(t, eng, nil)
		c := e.client()
		valid := func(email string) map[string]any {
			return map[string]any{"email": email, "password": testPassword, "confirmed_password": testPassword}
		}
		expect(t, c.do("POST", "/api/register/", valid("taken@example.com")), http.StatusCreated)

		cases := []struct {
			name   string
			body   any
			status int
			field  string
		}{
			{"malformed JSON", `{"email": "x@example.com",`, 400, ""},
			{"not an object", `["a"]`, 400, ""},
			{"trailing garbage", `{"email":"a@example.com"} {}`, 400, ""},
			{"wrong type", map[string]any{"email": 42, "password": testPassword, "confirmed_password": testPassword}, 400, "email"},
			{"missing password", map[string]any{"email": "m@example.com"}, 400, "password"},
			{"invalid email", valid("not-an-email"), 400, "email"},
			{"mismatch", map[string]any{"email": "mm@example.com", "password": testPassword, "confirmed_password": testPassword + "x"}, 400, "confirmed_password"},
			{"short password", map[string]any{"email": "sp@example.com", "password": "abc12", "confirmed_password": "abc12"}, 400, "password"},
			{"numeric password", map[string]any{"email": "np@example.com", "password": "8462057319", "confirmed_password": "8462057319"}, 400, "password"},
			{"common password", map[string]any{"email": "cp@example.com", "password": "password123", "confirmed_password": "password123"}, 400, "password"},
			{"bad username", map[string]any{"email": "bu@example.com", "password": testPassword, "confirmed_password": testPassword, "username": "a b"}, 400, "username"},
		}
		for _, tc := range cases {
			r := c.do("POST", "/api/register/", tc.body)
			if r.StatusCode != tc.status {
				t.Errorf("%s: status %d, want %d (%s)", tc.name, r.StatusCode, tc.status, r.Body)
				continue
			}
			if r.Str("detail") == "" || r.Str("code") == "" {
				t.Errorf("%s: not the error shape: %s", tc.name, r.Body)
			}
			if tc.field != "" {
				errs, _ := r.JSON()["errors"].(map[string]any)
				if errs[tc.field] == nil {
					t.Errorf("%s: no error for %s: %s", tc.name, tc.field, r.Body)
				}
			}
		}

		// A taken email answers exactly like an invalid one: no enumeration.
		taken := expect(t, c.do("POST", "/api/register/", valid("TAKEN@example.com")), http.StatusBadRequest)
		invalid := expect(t, c.do("POST", "/api/register/", valid("nope@")), http.StatusBadRequest)
		if !bytes.Equal(taken.Body, invalid.Body) {
			t.Errorf("taken email answer %s differs from invalid email answer %s", taken.Body, invalid.Body)
		}
		// A taken username is public anyway, and says so.
		r := expect(t, c.do("POST", "/api/register/", map[string]any{"email": "u2@example.com", "password": testPassword, "confirmed_password": testPassword, "username": "TAKEN"}), http.StatusBadRequest)
		if errs, _ := r.JSON()["errors"].(map[string]any); errs["username"] == nil {
			t.Errorf("taken username: %s", r.Body)
		}

		// Wrong content type and a huge body.
		req, _ := http.NewRequest("POST", e.URL+"/api/register/", strings.NewReader("email=a@example.com"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", trustedOrigin)
		resp, err := c.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnsupportedMediaType {
			t.Errorf("form body: status %d, want 415", resp.StatusCode)
		}
		huge := `{"email":"h@example.com","password":"` + strings.Repeat("x", 10<<20) + `"}`
		r = c.do("POST", "/api/register/", huge)
		if r.StatusCode != http.StatusRequestEntityTooLarge || r.Str("code") != "body_too_large" {
			t.Errorf("10 MB body: status %d %s", r.StatusCode, r.Body)
		}

		// Fields the caller may not set are ignored.
		r = expect(t, c.do("POST", "/api/register/", map[string]any{
			"email": "sneaky@example.com", "password": testPassword, "confirmed_password": testPassword,
			"is_staff": true, "is_active": true, "id": 999,
		}), http.StatusCreated)
		var active, staff bool
		if err := e.App.DB.QueryRow(t.Context(), `SELECT is_active, is_staff FROM users WHERE email = ?`, "sneaky@example.com").Scan(&active, &staff); err != nil {
			t.Fatal(err)
		}
		if active || staff {
			t.Errorf("register honoured is_active=%v is_staff=%v", active, staff)
		}
		if id := r.JSON()["user"].(map[string]any)["id"].(float64); id == 999 {
			t.Error("register honoured id")
		}

		// Bad activation links.
		for _, p := range []string{"/api/activate/MQ/nonsense/", "/api/activate/!!/x/", "/api/activate/OTk5OQ/abc/", "/api/activate/LTE/abc/"} {
			r := expect(t, c.do("GET", p, nil), http.StatusBadRequest)
			if r.Str("message") != "Activation failed." {
				t.Errorf("%s: %s", p, r.Body)
			}
		}
	})
}

func TestRegisterRollsBackWhenMailFails(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, eng dbtest.Engine) {
		e := start(t, eng, nil)
		c := e.client()
		e.Sink.FailNext(1)
		body := map[string]string{"email": "bounce@example.com", "password": testPassword, "confirmed_password": testPassword}
		r := expect(t, c.do("POST", "/api/register/", body), http.StatusServiceUnavailable)
		if r.Str("detail") == "" {
			t.Fatalf("503 without detail: %s", r.Body)
		}
		var n int
		if err := e.App.DB.QueryRow(t.Context(), `SELECT count(*) FROM users WHERE email = ?`, "bounce@example.com").Scan(&n); err != nil || n != 0 {
			t.Fatalf("user kept after failed mail: n=%d err=%v", n, err)
		}
		// Once mail works again, the same address registers normally.
		expect(t, c.do("POST", "/api/register/", body), http.StatusCreated)
	})
}

func TestLoginAnswersAlike(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, eng dbtest.Engine) {
		e := start(t, eng, nil)
		e.registerActive("known@example.com")
		c := e.client()
		expect(t, c.do("POST", "/api/register/", map[string]string{"email": "inactive@example.com", "password": testPassword, "confirmed_password": testPassword}), http.StatusCreated)

		var bodies [][]byte
		for _, creds := range []map[string]string{
			{"email": "known@example.com", "password": "wrong password here"},
			{"email": "unknown@example.com", "password": testPassword},
			{"email": "inactive@example.com", "password": testPassword},
		} {
			r := expect(t, c.do("POST", "/api/login/", creds), http.StatusBadRequest)
			if len(r.Cookies()) != 0 {
				t.Errorf("failed login set cookies %v", r.Cookies())
			}
			if r.Str("detail") != "Please check your input and try again." {
				t.Errorf("detail %q", r.Str("detail"))
			}
			bodies = append(bodies, r.Body)
		}
		if !bytes.Equal(bodies[0], bodies[1]) || !bytes.Equal(bodies[1], bodies[2]) {
			t.Errorf("failed logins differ: %s / %s / %s", bodies[0], bodies[1], bodies[2])
		}
		r := expect(t, c.do("POST", "/api/login/", map[string]string{"email": "known@example.com"}), http.StatusBadRequest)
		if errs, _ := r.JSON()["errors"].(map[string]any); errs["password"] == nil {
			t.Errorf("missing password: %s", r.Body)
		}
		// The Bearer pair answers 401 for bad credentials.
		r = expect(t, c.do("POST", "/api/token/", map[string]string{"email": "unknown@example.com", "password": testPassword}), http.StatusUnauthorized)
		if r.Str("detail") == "" {
			t.Errorf("token 401 without detail")
		}
		expect(t, c.do("POST", "/api/token/", map[string]string{"email": "inactive@example.com", "password": testPassword}), http.StatusUnauthorized)

		// Timing: an unknown email costs the same hashing as a wrong password.
		known, unknown := pairedMedians(t, 9,
			func() {
				c.do("POST", "/api/login/", map[string]string{"email": "known@example.com", "password": "wrong password here"})
			},
			func() {
				c.do("POST", "/api/login/", map[string]string{"email": "nobody@example.com", "password": "wrong password here"})
			})
		if ratio := float64(max(known, unknown)) / float64(min(known, unknown)); ratio > 3 && max(known, unknown)-min(known, unknown) > 20*time.Millisecond {
			t.Errorf("login timing leaks: known %v, unknown %v", known, unknown)
		}
	})
}

// pairedMedians times a and b alternately n times each, so that whatever
// else the machine is doing weighs on both alike, and returns the medians.
func pairedMedians(t *testing.T, n int, a, b func()) (time.Duration, time.Duration) {
	t.Helper()
	da, db := make([]time.Duration, n), make([]time.Duration, n)
	for i := 0; i < n; i++ {
		start := time.Now()
		a()
		da[i] = time.Since(start)
		start = time.Now()
		b()
		db[i] = time.Since(start)
	}
	return median(da), median(db)
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func TestPasswordResetRevealsNothing(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, eng dbtest.Engine) {
		e := start(t, eng, nil)
		e.registerActive("reset@example.com")
		c := e.client()
		a := expect(t, c.do("POST", "/api/password_reset/", map[string]string{"email": "reset@example.com"}), http.StatusOK)
		b := expect(t, c.do("POST", "/api/password_reset/", map[string]string{"email": "ghost@example.com"}), http.StatusOK)
		if !bytes.Equal(a.Body, b.Body) {
			t.Errorf("reset answers differ: %s vs %s", a.Body, b.Body)
		}
		e.mailLink("reset@example.com", "Reset your password")
		time.Sleep(300 * time.Millisecond) // let the job for the unknown address run too
		if n := e.countMail("ghost@example.com", "Reset your password"); n != 0 {
			t.Errorf("mail sent to an unknown address")
		}
		known, unknown := pairedMedians(t, 9,
			func() { c.do("POST", "/api/password_reset/", map[string]string{"email": "reset@example.com"}) },
			func() { c.do("POST", "/api/password_reset/", map[string]string{"email": "ghost@example.com"}) })
		if ratio := float64(max(known, unknown)) / float64(min(known, unknown)); ratio > 3 && max(known, unknown)-min(known, unknown) > 20*time.Millisecond {
			t.Errorf("reset timing leaks: known %v, unknown %v", known, unknown)
		}

		expect(t, c.do("POST", "/api/password_reset/", map[string]string{"email": "not an email"}), http.StatusBadRequest)
		expect(t, c.do("POST", "/api/password_reset/", map[string]any{"email": []string{"a@example.com"}}), http.StatusBadRequest)

		// Bad links, and password rules on a good link (which stays usable).
		l := e.mailLink("reset@example.com", "Reset your password")
		good := map[string]string{"new_password": "fresh password 1", "confirm_password": "fresh password 1"}
		for _, p := range []string{"/api/password_confirm/MQ/wrong/", "/api/password_confirm/xx/" + l.Token + "/", "/api/password_confirm/Mg/" + l.Token + "/"} {
			r := expect(t, c.do("POST", p, good), http.StatusBadRequest)
			if r.Str("detail") != "Invalid reset link." {
				t.Errorf("%s: %s", p, r.Body)
			}
		}
		path := "/api/password_confirm/" + l.UID + "/" + l.Token + "/"
		r := expect(t, c.do("POST", path, map[string]string{"new_password": "fresh password 1", "confirm_password": "fresh password 2"}), http.StatusBadRequest)
		if errs, _ := r.JSON()["errors"].(map[string]any); errs["confirm_password"] == nil {
			t.Errorf("mismatch: %s", r.Body)
		}
		r = expect(t, c.do("POST", path, map[string]string{"new_password": "12345678", "confirm_password": "12345678"}), http.StatusBadRequest)
		if errs, _ := r.JSON()["errors"].(map[string]any); errs["new_password"] == nil {
			t.Errorf("weak: %s", r.Body)
		}
		expect(t, c.do("POST", path, good), http.StatusOK)
	})
}

// TestTamperedTokens presents access tokens a client could forge.
func TestTamperedTokens(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, eng dbtest.Engine) {
		e := start(t, eng, nil)
		e.registerActive("tok@example.com")
		c := e.client()
		c.Origin = ""
		r := expect(t, c.do("POST", "/api/token/", map[string]string{"email": "tok@example.com", "password": testPassword}), http.StatusOK)
		access, refresh := r.Str("access"), r.Str("refresh")
		key := []byte(e.Config.SecretKey)

		var claims jwt.MapClaims
		if _, _, err := jwt.NewParser().ParseUnverified(access, &claims); err != nil {
			t.Fatal(err)
		}
		sign := func(m jwt.MapClaims, method jwt.SigningMethod, k any) string {
			s, err := jwt.NewWithClaims(method, m).SignedString(k)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		with := func(k string, v any) jwt.MapClaims {
			m := jwt.MapClaims{}
			for kk, vv := range claims {
				m[kk] = vv
			}
			m[k] = v
			return m
		}
		parts := strings.Split(access, ".")
		payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
		var pm map[string]any
		_ = json.Unmarshal(payload, &pm)
		pm["user_id"] = 2
		forged, _ := json.Marshal(pm)
		noneHeader := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))

		bad := map[string]string{
			"alg none":            noneHeader + "." + parts[1] + ".",
			"payload changed":     parts[0] + "." + base64.RawURLEncoding.EncodeToString(forged) + "." + parts[2],
			"wrong key":           sign(claims, jwt.SigningMethodHS256, []byte("another-secret-key-another-secret-key")),
			"HS512 same key":      sign(claims, jwt.SigningMethodHS512, key),
			"expired":             sign(with("exp", time.Now().Add(-time.Minute).Unix()), jwt.SigningMethodHS256, key),
			"no expiry":           sign(with("exp", nil), jwt.SigningMethodHS256, key),
			"refresh as access":   refresh,
			"garbage":             "not.a.token",
			"empty signature":     parts[0] + "." + parts[1] + ".",
			"other user, our key": sign(with("user_id", 99999), jwt.SigningMethodHS256, key),
		}
		for name, tok := range bad {
			c.Bearer = tok
			r := c.do("GET", "/api/users/me/", nil)
			if r.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s: status %d, want 401", name, r.StatusCode)
			}
			if !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s: no WWW-Authenticate: Bearer", name)
			}
		}
		// A bad Bearer header does not fall back to a good cookie.
		cookie := e.registerActive("tok2@example.com")
		cookie.Bearer = "garbage"
		expect(t, cookie.do("GET", "/api/users/me/", nil), http.StatusUnauthorized)
		// Unauthenticated: 401 with WWW-Authenticate, never 403.
		anon := e.client()
		r = expect(t, anon.do("GET", "/api/users/me/", nil), http.StatusUnauthorized)
		if r.Header.Get("WWW-Authenticate") == "" || r.Str("code") != "not_authenticated" {
			t.Errorf("anonymous me: %v %s", r.Header, r.Body)
		}
		// Refresh tokens forged or of the wrong type.
		c.Bearer = ""
		for name, tok := range map[string]string{"access as refresh": access, "wrong key": sign(claims, jwt.SigningMethodHS256, []byte("another-secret-key-another-secret-key")), "garbage": "x"} {
			r := c.do("POST", "/api/token/refresh/", map[string]string{"refresh": tok})
			if r.StatusCode != http.StatusUnauthorized || r.Str("detail") != "Invalid refresh token." {
				t.Errorf("refresh %s: %d %s", name, r.StatusCode, r.Body)
			}
		}
		r = expect(t, e.client().do("POST", "/api/token/refresh/", nil), http.StatusBadRequest)
		if r.Str("detail") != "Refresh token missing." {
			t.Errorf("refresh without token: %s", r.Body)
		}
		r = expect(t, e.client().do("POST", "/api/logout/", nil), http.StatusBadRequest)
		if r.Str("detail") != "Refresh token missing." {
			t.Errorf("logout without token: %s", r.Body)
		}
	})
}
