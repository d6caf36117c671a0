package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"plaza/internal/account"
)

// Cookie names fixed by API.md.
const (
	cookieAccess  = "access_token"
	cookieRefresh = "refresh_token"
	cookieCSRF    = "csrftoken"
)

// authenticate finds the caller from a Bearer header or, failing that, the
// access_token cookie. A present but unusable credential is an error (no
// silent fallback from a bad Bearer token to a cookie).
func (s *server) authenticate(r *http.Request) (*account.User, error) {
	token := ""
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, rest, _ := strings.Cut(h, " ")
		if !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(rest) == "" {
			return nil, account.ErrInvalidToken
		}
		token = strings.TrimSpace(rest)
	} else if c, err := r.Cookie(cookieAccess); err == nil && c.Value != "" {
		token = c.Value
	} else {
		return nil, nil
	}
	u, err := s.accounts.UserFromAccessToken(r.Context(), token)
	if err != nil {
		return nil, err
	}
	return &u, nil
}

// requireUser answers 401 unless the request is authenticated.
func (s *server) requireUser(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, err := s.authenticate(r)
		if err != nil && !errors.Is(err, account.ErrInvalidToken) {
			s.fail(w, r, err)
			return
		}
		if u == nil {
			writeError(w, errNotAuth)
			return
		}
		info(r.Context()).userID = u.ID
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxUser, u)))
	})
}

// currentUser is the authenticated caller, nil when anonymous.
func currentUser(r *http.Request) *account.User {
	u, _ := r.Context().Value(ctxUser).(*account.User)
	return u
}

// setAuthCookies sets the HttpOnly token cookies and the readable CSRF cookie.
func (s *server) setAuthCookies(w http.ResponseWriter, sess account.Session) {
	s.setCookie(w, cookieAccess, sess.Access, s.cfg.AccessTokenTTL, true)
	if sess.Refresh != "" {
		s.setCookie(w, cookieRefresh, sess.Refresh, s.cfg.RefreshTokenTTL, true)
	}
	s.setCookie(w, cookieCSRF, newCSRFToken(), s.cfg.RefreshTokenTTL, false)
}

func (s *server) setCookie(w http.ResponseWriter, name, value string, ttl time.Duration, httpOnly bool) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: "/", MaxAge: int(ttl.Seconds()),
		HttpOnly: httpOnly, Secure: s.cfg.CookieSecure, SameSite: http.SameSiteLaxMode,
	})
}

func (s *server) clearAuthCookies(w http.ResponseWriter) {
	for _, name := range []string{cookieAccess, cookieRefresh, cookieCSRF} {
		http.SetCookie(w, &http.Cookie{
			Name: name, Value: "", Path: "/", MaxAge: -1, // written as Max-Age=0
			HttpOnly: name != cookieCSRF, Secure: s.cfg.CookieSecure, SameSite: http.SameSiteLaxMode,
		})
	}
}

func newCSRFToken() string { return newRequestID() + newRequestID() }

// fail answers an unexpected error: logged with the request id, and a
// generic 500 to the client (no SQL, path or stack ever leaks).
func (s *server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	if errors.As(err, &ae) {
		writeError(w, ae)
		return
	}
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		return // the client went away
	}
	s.log.ErrorContext(r.Context(), "request failed", "request_id", info(r.Context()).id, "err", err)
	writeError(w, errInternal)
}

// optionalUser adds the caller when there is one, and lets anonymous
// requests through; an invalid credential is still a 401.
func (s *server) optionalUser(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, err := s.authenticate(r)
		if errors.Is(err, account.ErrInvalidToken) {
			writeError(w, errNotAuth)
			return
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if u != nil {
			info(r.Context()).userID = u.ID
			r = r.WithContext(context.WithValue(r.Context(), ctxUser, u))
		}
		next.ServeHTTP(w, r)
	})
}
