package account_test

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"plaza/internal/account"
	"plaza/internal/db/dbtest"
)

// claimsFor builds, by hand, the claims the service puts in its tokens.
func claimsFor(u account.User, typ string, now time.Time, ttl time.Duration) jwt.MapClaims {
	return jwt.MapClaims{
		"token_type": typ,
		"user_id":    u.ID,
		"sv":         u.SessionVersion,
		"sub":        strconv.FormatInt(u.ID, 10),
		"jti":        "hand-made-" + strconv.FormatInt(now.UnixNano(), 36),
		"iat":        now.Unix(),
		"exp":        now.Add(ttl).Unix(),
	}
}

func sign(t *testing.T, m jwt.SigningMethod, key any, c jwt.Claims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, c).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func seg(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func TestUserFromAccessToken(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, e dbtest.Engine) {
		v := newEnv(t, e)
		v.activeUser(t, "alice@example.com", "alice")
		other := v.activeUser(t, "bob@example.com", "bob")
		alice, s := v.session(t, "alice@example.com")

		u, err := v.svc.UserFromAccessToken(v.ctx, s.Access)
		if err != nil || u.ID != alice.ID || u.Email != "alice@example.com" {
			t.Fatalf("fresh access token: %+v, %v", u, err)
		}
		exp, err := v.svc.AccessTokenExpiry(s.Access)
		if want := v.clock.Now().Add(testConfig.AccessTTL); err != nil || !exp.Equal(want) {
			t.Fatalf("AccessTokenExpiry = %v, %v; want %v", exp, err, want)
		}

		// Control: a token built by hand the way the service builds them is
		// accepted, so each rejection below is down to the one thing changed.
		now := v.clock.Now()
		key := []byte(testSecret)
		if _, err := v.svc.UserFromAccessToken(v.ctx, sign(t, jwt.SigningMethodHS256, key, claimsFor(alice, "access", now, time.Minute))); err != nil {
			t.Fatalf("hand-made valid token rejected: %v", err)
		}

		parts := strings.Split(s.Access, ".")
		payload, err := base64.RawURLEncoding.DecodeString(parts[1])
		if err != nil {
			t.Fatal(err)
		}
		var claims map[string]any
		if err := json.Unmarshal(payload, &claims); err != nil {
			t.Fatal(err)
		}
		claims["user_id"] = other.ID
		claims["sub"] = strconv.FormatInt(other.ID, 10)
		tamperedPayload := parts[0] + "." + seg(claims) + "." + parts[2]
		sig := []byte(parts[2])
		if sig[0] == 'A' {
			sig[0] = 'B'
		} else {
			sig[0] = 'A'
		}
		tamperedSig := parts[0] + "." + parts[1] + "." + string(sig)

		hsig := func(m jwt.SigningMethod, header map[string]any) string {
			signing := seg(header) + "." + seg(claimsFor(alice, "access", now, time.Minute))
			b, err := m.Sign(signing, key)
			if err != nil {
				t.Fatal(err)
			}
			return signing + "." + base64.RawURLEncoding.EncodeToString(b)
		}
		noExp := claimsFor(alice, "access", now, time.Minute)
		delete(noExp, "exp")
		noJTI := claimsFor(alice, "access", now, time.Minute)
		delete(noJTI, "jti")
		zeroUser := claimsFor(alice, "access", now, time.Minute)
		zeroUser["user_id"] = 0

		for name, tok := range map[string]string{
			"refresh token as access": s.Refresh,
			"tampered payload":        tamperedPayload,
			"tampered signature":      tamperedSig,
			"signed with another key": sign(t, jwt.SigningMethodHS256, []byte("another-secret-key-of-enough-length-0123456789"), claimsFor(alice, "access", now, time.Minute)),
			"alg none":                seg(map[string]any{"alg": "none", "typ": "JWT"}) + "." + seg(claimsFor(alice, "access", now, time.Minute)) + ".",
			"alg None, signature":     seg(map[string]any{"alg": "None", "typ": "JWT"}) + "." + parts[1] + "." + parts[2],
			"HS512 with same key":     sign(t, jwt.SigningMethodHS512, key, claimsFor(alice, "access", now, time.Minute)),
			"HS384 with same key":     sign(t, jwt.SigningMethodHS384, key, claimsFor(alice, "access", now, time.Minute)),
			"RS256 header, HMAC sig":  hsig(jwt.SigningMethodHS256, map[string]any{"alg": "RS256", "typ": "JWT"}),
			"no token type":           sign(t, jwt.SigningMethodHS256, key, jwt.MapClaims{"user_id": alice.ID, "sv": 0, "jti": "x", "exp": now.Add(time.Minute).Unix()}),
			"no expiry":               sign(t, jwt.SigningMethodHS256, key, noExp),
			"no jti":                  sign(t, jwt.SigningMethodHS256, key, noJTI),
			"user id 0":               sign(t, jwt.SigningMethodHS256, key, zeroUser),
			"unknown user":            sign(t, jwt.SigningMethodHS256, key, claimsFor(account.User{ID: other.ID + 100}, "access", now, time.Minute)),
			"empty":                   "",
			"garbage":                 "garbage",
			"three dots":              "a.b.c",
			"bearer prefix":           "Bearer " + s.Access,
			"trailing space":          s.Access + " ",
			"two tokens":              s.Access + "." + parts[2],
		} {
			if u, err := v.svc.UserFromAccessToken(v.ctx, tok); err == nil || u.ID != 0 {
				t.Errorf("%s: accepted as user %d", name, u.ID)
			} else {
				wantErr(t, name, err, account.ErrInvalidToken)
			}
		}

		// An access token is no refresh token either.
		_, err = v.svc.Refresh(v.ctx, s.Access, false)
		wantErr(t, "access token as refresh", err, account.ErrInvalidToken)
		wantErr(t, "logout with access token", v.svc.Logout(v.ctx, s.Access), account.ErrInvalidToken)

		// Expiry follows the injected clock.
		v.clock.Advance(testConfig.AccessTTL - time.Second)
		if _, err := v.svc.UserFromAccessToken(v.ctx, s.Access); err != nil {
			t.Fatalf("access token rejected a second before expiry: %v", err)
		}
		v.clock.Advance(2 * time.Second)
		_, err = v.svc.UserFromAccessToken(v.ctx, s.Access)
		wantErr(t, "expired access token", err, account.ErrInvalidToken)
		_, err = v.svc.AccessTokenExpiry(s.Access)
		wantErr(t, "AccessTokenExpiry of expired token", err, account.ErrInvalidToken)
	})
}

func TestTokensOfDeactivatedOrDeletedUser(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, e dbtest.Engine) {
		v := newEnv(t, e)
		v.activeUser(t, "alice@example.com", "alice")
		v.activeUser(t, "bob@example.com", "bob")
		alice, sa := v.session(t, "alice@example.com")
		bob, sb := v.session(t, "bob@example.com")

		v.exec(t, `UPDATE users SET is_active = FALSE WHERE id = ?`, alice.ID)
		_, err := v.svc.UserFromAccessToken(v.ctx, sa.Access)
		wantErr(t, "deactivated user's access token", err, account.ErrInvalidToken)
		_, err = v.svc.Refresh(v.ctx, sa.Refresh, false)
		wantErr(t, "deactivated user's refresh token", err, account.ErrInvalidToken)
		_, err = v.svc.Refresh(v.ctx, sa.Refresh, true)
		wantErr(t, "deactivated user's refresh token (rotate)", err, account.ErrInvalidToken)

		if err := v.svc.Store().DeleteUser(v.ctx, bob.ID); err != nil {
			t.Fatal(err)
		}
		_, err = v.svc.UserFromAccessToken(v.ctx, sb.Access)
		wantErr(t, "deleted user's access token", err, account.ErrInvalidToken)
		_, err = v.svc.Refresh(v.ctx, sb.Refresh, false)
		wantErr(t, "deleted user's refresh token", err, account.ErrInvalidToken)
	})
}

func TestRefreshRotation(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, e dbtest.Engine) {
		v := newEnv(t, e)
		v.activeUser(t, "alice@example.com", "alice")
		alice, s0 := v.session(t, "alice@example.com")
		_, other := v.session(t, "alice@example.com") // a second login: its own family

		s1, err := v.svc.Refresh(v.ctx, s0.Refresh, true)
		if err != nil {
			t.Fatalf("rotate: %v", err)
		}
		if s1.Refresh == "" || s1.Refresh == s0.Refresh || s1.Access == "" || s1.Access == s0.Access {
			t.Fatal("rotation did not return a new refresh and access token")
		}
		if u, err := v.svc.UserFromAccessToken(v.ctx, s1.Access); err != nil || u.ID != alice.ID {
			t.Fatalf("rotated access token: %+v, %v", u, err)
		}
		// The new one rotates on.
		s2, err := v.svc.Refresh(v.ctx, s1.Refresh, true)
		if err != nil {
			t.Fatalf("second rotation: %v", err)
		}

		// Presenting a rotated token again is reuse: it fails, and the whole
		// family is revoked, the newest token included.
		_, err = v.svc.Refresh(v.ctx, s0.Refresh, true)
		wantErr(t, "rotated token presented again", err, account.ErrInvalidToken)
		_, err = v.svc.Refresh(v.ctx, s2.Refresh, true)
		wantErr(t, "newest token after reuse", err, account.ErrInvalidToken)
		_, err = v.svc.Refresh(v.ctx, s2.Refresh, false)
		wantErr(t, "newest token after reuse (no rotation)", err, account.ErrInvalidToken)
		wantErr(t, "logout of revoked family", v.svc.Logout(v.ctx, s2.Refresh), account.ErrInvalidToken)

		// Another login's family is untouched.
		if _, err := v.svc.Refresh(v.ctx, other.Refresh, false); err != nil {
			t.Fatalf("other family affected by reuse: %v", err)
		}
	})
}

func TestRefreshWithoutRotation(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, e dbtest.Engine) {
		v := newEnv(t, e)
		v.activeUser(t, "alice@example.com", "alice")
		alice, s := v.session(t, "alice@example.com")
		for i := range 3 {
			v.clock.Advance(20 * time.Minute) // the Videoflix frontend's interval
			got, err := v.svc.Refresh(v.ctx, s.Refresh, false)
			if err != nil {
				t.Fatalf("refresh %d: %v", i, err)
			}
			if got.Refresh != s.Refresh {
				t.Fatalf("refresh %d replaced the refresh token", i)
			}
			if u, err := v.svc.UserFromAccessToken(v.ctx, got.Access); err != nil || u.ID != alice.ID {
				t.Fatalf("refresh %d: new access token: %+v, %v", i, u, err)
			}
		}
		// An unrotated token still rotates later, once.
		s1, err := v.svc.Refresh(v.ctx, s.Refresh, true)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.svc.Refresh(v.ctx, s1.Refresh, false); err != nil {
			t.Fatalf("refresh of rotated-to token: %v", err)
		}

		// Refresh tokens expire after RefreshTTL.
		_, fresh := v.session(t, "alice@example.com")
		v.clock.Advance(testConfig.RefreshTTL - time.Second)
		if _, err := v.svc.Refresh(v.ctx, fresh.Refresh, false); err != nil {
			t.Fatalf("refresh a second before expiry: %v", err)
		}
		v.clock.Advance(2 * time.Second)
		_, err = v.svc.Refresh(v.ctx, fresh.Refresh, false)
		wantErr(t, "expired refresh token", err, account.ErrInvalidToken)
		_, err = v.svc.Refresh(v.ctx, fresh.Refresh, true)
		wantErr(t, "expired refresh token (rotate)", err, account.ErrInvalidToken)
	})
}

func TestRefreshTokenMustBeStored(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, e dbtest.Engine) {
		v := newEnv(t, e)
		v.activeUser(t, "alice@example.com", "alice")
		alice, s := v.session(t, "alice@example.com")
		// Correctly signed, right type, but never issued: not in the table.
		forged := sign(t, jwt.SigningMethodHS256, []byte(testSecret), claimsFor(alice, "refresh", v.clock.Now(), time.Hour))
		_, err := v.svc.Refresh(v.ctx, forged, false)
		wantErr(t, "unstored refresh token", err, account.ErrInvalidToken)
		wantErr(t, "logout with unstored refresh token", v.svc.Logout(v.ctx, forged), account.ErrInvalidToken)
		for _, tok := range []string{"", "garbage", s.Refresh + "x"} {
			_, err := v.svc.Refresh(v.ctx, tok, true)
			wantErr(t, "refresh "+tok, err, account.ErrInvalidToken)
		}
		// Only hashes are stored.
		if n := v.count(t, `SELECT count(*) FROM refresh_tokens WHERE token_hash = ?`, s.Refresh); n != 0 {
			t.Fatal("refresh token stored in clear")
		}
		if n := v.count(t, `SELECT count(*) FROM refresh_tokens WHERE user_id = ?`, alice.ID); n != 1 {
			t.Fatalf("%d refresh rows, want 1", n)
		}
	})
}

func TestConcurrentRotationOfOneToken(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, e dbtest.Engine) {
		v := newEnv(t, e)
		v.activeUser(t, "alice@example.com", "alice")
		_, s := v.session(t, "alice@example.com")

		const n = 10
		var (
			wg      sync.WaitGroup
			start   = make(chan struct{})
			results = make([]account.Session, n)
			errs    = make([]error, n)
		)
		for i := range n {
			wg.Go(func() {
				<-start
				results[i], errs[i] = v.svc.Refresh(v.ctx, s.Refresh, true)
			})
		}
		close(start)
		wg.Wait()
		wins := 0
		for i, err := range errs {
			switch {
			case err == nil:
				wins++
				if results[i].Refresh == s.Refresh {
					t.Error("rotation returned the old token")
				}
			default:
				// Losing is ErrInvalidToken, never a database error.
				wantErr(t, "losing rotation", err, account.ErrInvalidToken)
			}
		}
		if wins > 1 {
			t.Fatalf("%d concurrent rotations of one token succeeded, want at most 1", wins)
		}
		_, err := v.svc.Refresh(v.ctx, s.Refresh, true)
		wantErr(t, "token after concurrent rotation", err, account.ErrInvalidToken)
	})
}

func TestLogout(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, e dbtest.Engine) {
		v := newEnv(t, e)
		v.activeUser(t, "alice@example.com", "alice")
		_, s := v.session(t, "alice@example.com")
		_, other := v.session(t, "alice@example.com")

		if err := v.svc.Logout(v.ctx, s.Refresh); err != nil {
			t.Fatalf("Logout: %v", err)
		}
		_, err := v.svc.Refresh(v.ctx, s.Refresh, false)
		wantErr(t, "refresh after logout", err, account.ErrInvalidToken)
		_, err = v.svc.Refresh(v.ctx, s.Refresh, true)
		wantErr(t, "rotate after logout", err, account.ErrInvalidToken)
		wantErr(t, "second logout", v.svc.Logout(v.ctx, s.Refresh), account.ErrInvalidToken)
		wantErr(t, "logout garbage", v.svc.Logout(v.ctx, "garbage"), account.ErrInvalidToken)
		if _, err := v.svc.Refresh(v.ctx, other.Refresh, false); err != nil {
			t.Fatalf("logout ended another login: %v", err)
		}

		// Logout with a token that was rotated away revokes its successor too.
		s1, err := v.svc.Refresh(v.ctx, other.Refresh, true)
		if err != nil {
			t.Fatal(err)
		}
		if err := v.svc.Logout(v.ctx, s1.Refresh); err != nil {
			t.Fatalf("Logout of rotated-to token: %v", err)
		}
		_, err = v.svc.Refresh(v.ctx, s1.Refresh, false)
		wantErr(t, "refresh after logout of rotated family", err, account.ErrInvalidToken)
	})
}
