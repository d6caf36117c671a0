package httpapi

import (
	"bytes"
	"errors"
	"io"
	"net/http"

	"plaza/internal/account"
)

type userSummaryJSON struct {
	ID       int64  `json:"id"`
	Email    string `json:"email"`
	Username string `json:"username"`
}

func (s *server) handleRegister() http.HandlerFunc {
	type request struct {
		Email             string `json:"email"`
		Password          string `json:"password"`
		ConfirmedPassword string `json:"confirmed_password"`
		Username          string `json:"username"`
	}
	type response struct {
		User  userSummaryJSON `json:"user"`
		Token string          `json:"token,omitempty"`
	}
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.allow(w, r, "register:ip:"+s.clientIP(r), limitRegisterIP) {
			return
		}
		var req request
		if e := decodeJSON(r, &req, s.cfg.MaxBodyBytes); e != nil {
			writeError(w, e)
			return
		}
		if f := required(nil, "email", req.Email, "password", req.Password, "confirmed_password", req.ConfirmedPassword); f != nil {
			writeError(w, invalidInput(f))
			return
		}
		u, token, err := s.accounts.Register(r.Context(), account.RegisterInput{
			Email: req.Email, Password: req.Password, ConfirmedPassword: req.ConfirmedPassword, Username: req.Username,
		})
		var verr *account.ValidationError
		switch {
		case errors.As(err, &verr):
			writeError(w, invalidInput(verr.Fields))
			return
		case errors.Is(err, account.ErrMailUnavailable):
			writeError(w, errorf(http.StatusServiceUnavailable, "mail_unavailable", "The activation email could not be sent. Please try again later."))
			return
		case err != nil:
			s.fail(w, r, err)
			return
		}
		resp := response{User: userSummaryJSON{ID: u.ID, Email: u.Email, Username: u.Username}}
		if s.cfg.ExposeActivationToken {
			resp.Token = token
		}
		writeJSON(w, http.StatusCreated, resp)
	}
}

func (s *server) handleActivate() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		err := s.accounts.Activate(r.Context(), r.PathValue("uidb64"), r.PathValue("token"))
		if errors.Is(err, account.ErrActivationFailed) {
			writeError(w, &apiError{Status: http.StatusBadRequest, Code: "activation_failed", Detail: "Activation failed.", Message: "Activation failed."})
			return
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"message": "Account successfully activated."})
	}
}

type credentials struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

// checkCredentials decodes and checks email and password under the login
// rate limits; it has answered the request when it returns nil.
func (s *server) checkCredentials(w http.ResponseWriter, r *http.Request) *account.User {
	if !s.allow(w, r, "login:ip:"+s.clientIP(r), limitLoginIP) {
		return nil
	}
	var req credentials
	if e := decodeJSON(r, &req, s.cfg.MaxBodyBytes); e != nil {
		writeError(w, e)
		return nil
	}
	if f := required(nil, "email", req.Email, "password", req.Password); f != nil {
		writeError(w, invalidInput(f))
		return nil
	}
	norm, _ := account.NormalizeEmail(req.Email)
	acctKey := "login:account:" + norm
	if !s.allow(w, r, acctKey, limitLoginAccount) {
		return nil
	}
	u, err := s.accounts.Authenticate(r.Context(), req.Email, req.Password)
	if errors.Is(err, account.ErrBadCredentials) {
		return &account.User{} // ID 0: bad credentials, the caller words the answer
	}
	if err != nil {
		s.fail(w, r, err)
		return nil
	}
	s.resetLimit(r, acctKey)
	return &u
}

func (s *server) handleLogin() http.HandlerFunc {
	type response struct {
		Detail string          `json:"detail"`
		User   userSummaryJSON `json:"user"`
	}
	return func(w http.ResponseWriter, r *http.Request) {
		u := s.checkCredentials(w, r)
		if u == nil {
			return
		}
		if u.ID == 0 {
			writeError(w, errorf(http.StatusBadRequest, "invalid_credentials", invalidInputDetail))
			return
		}
		sess, err := s.accounts.StartSession(r.Context(), *u)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		s.setAuthCookies(w, sess)
		writeJSON(w, http.StatusOK, response{Detail: "Login successful", User: userSummaryJSON{ID: u.ID, Email: u.Email, Username: u.Username}})
	}
}

func (s *server) handleTokenObtain() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		u := s.checkCredentials(w, r)
		if u == nil {
			return
		}
		if u.ID == 0 {
			writeError(w, errorf(http.StatusUnauthorized, "invalid_credentials", "No active account found with the given credentials."))
			return
		}
		sess, err := s.accounts.StartSession(r.Context(), *u)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"access": sess.Access, "refresh": sess.Refresh})
	}
}

var (
	errRefreshMissing = errorf(http.StatusBadRequest, "refresh_token_missing", "Refresh token missing.")
	errRefreshInvalid = errorf(http.StatusUnauthorized, "invalid_refresh_token", "Invalid refresh token.")
)

func (s *server) handleLogout() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie(cookieRefresh)
		if err != nil || c.Value == "" {
			writeError(w, errRefreshMissing)
			return
		}
		err = s.accounts.Logout(r.Context(), c.Value)
		if errors.Is(err, account.ErrInvalidToken) {
			writeError(w, errRefreshInvalid)
			return
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		s.clearAuthCookies(w)
		writeJSON(w, http.StatusOK, map[string]string{"detail": "Logout successful! All tokens will be deleted. Refresh token is now invalid."})
	}
}

// handleRefresh serves both forms: a JSON body {refresh} (Bearer clients;
// the refresh token rotates) or the refresh_token cookie (browsers; a new
// access cookie, the refresh cookie stays until logout).
func (s *server) handleRefresh() http.HandlerFunc {
	type request struct {
		Refresh *string `json:"refresh"`
	}
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.allow(w, r, "refresh:ip:"+s.clientIP(r), limitRefreshIP) {
			return
		}
		raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
		if err != nil {
			writeError(w, errorf(http.StatusRequestEntityTooLarge, "body_too_large", "Request body too large."))
			return
		}
		var req request
		if len(bytes.TrimSpace(raw)) > 0 {
			r.Body = io.NopCloser(bytes.NewReader(raw))
			if e := decodeJSON(r, &req, s.cfg.MaxBodyBytes); e != nil {
				writeError(w, e)
				return
			}
		}
		if req.Refresh != nil {
			if *req.Refresh == "" {
				writeError(w, errRefreshMissing)
				return
			}
			sess, err := s.accounts.Refresh(r.Context(), *req.Refresh, true)
			if errors.Is(err, account.ErrInvalidToken) {
				writeError(w, errRefreshInvalid)
				return
			}
			if err != nil {
				s.fail(w, r, err)
				return
			}
			writeJSON(w, http.StatusOK, map[string]string{"access": sess.Access, "refresh": sess.Refresh})
			return
		}
		c, err := r.Cookie(cookieRefresh)
		if err != nil || c.Value == "" {
			writeError(w, errRefreshMissing)
			return
		}
		sess, err := s.accounts.Refresh(r.Context(), c.Value, false)
		if errors.Is(err, account.ErrInvalidToken) {
			writeError(w, errRefreshInvalid)
			return
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		s.setCookie(w, cookieAccess, sess.Access, s.cfg.AccessTokenTTL, true)
		writeJSON(w, http.StatusOK, map[string]string{"detail": "Token refreshed", "access": sess.Access})
	}
}

func (s *server) handlePasswordReset() http.HandlerFunc {
	type request struct {
		Email string `json:"email"`
	}
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.allow(w, r, "reset:ip:"+s.clientIP(r), limitResetIP) {
			return
		}
		var req request
		if e := decodeJSON(r, &req, s.cfg.MaxBodyBytes); e != nil {
			writeError(w, e)
			return
		}
		if f := required(nil, "email", req.Email); f != nil {
			writeError(w, invalidInput(f))
			return
		}
		norm, ok := account.NormalizeEmail(req.Email)
		if ok && !s.allow(w, r, "reset:account:"+norm, limitResetAccount) {
			return
		}
		err := s.accounts.RequestPasswordReset(r.Context(), req.Email)
		var verr *account.ValidationError
		if errors.As(err, &verr) {
			writeError(w, invalidInput(verr.Fields))
			return
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"detail": "An email has been sent to reset your password."})
	}
}

func (s *server) handlePasswordConfirm() http.HandlerFunc {
	type request struct {
		NewPassword     string `json:"new_password"`
		ConfirmPassword string `json:"confirm_password"`
	}
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.allow(w, r, "confirm:ip:"+s.clientIP(r), limitConfirmIP) {
			return
		}
		var req request
		if e := decodeJSON(r, &req, s.cfg.MaxBodyBytes); e != nil {
			writeError(w, e)
			return
		}
		if f := required(nil, "new_password", req.NewPassword, "confirm_password", req.ConfirmPassword); f != nil {
			writeError(w, invalidInput(f))
			return
		}
		err := s.accounts.ConfirmPasswordReset(r.Context(), r.PathValue("uidb64"), r.PathValue("token"), req.NewPassword, req.ConfirmPassword)
		var verr *account.ValidationError
		switch {
		case errors.Is(err, account.ErrInvalidResetLink):
			writeError(w, errorf(http.StatusBadRequest, "invalid_reset_link", "Invalid reset link."))
		case errors.As(err, &verr):
			writeError(w, invalidInput(verr.Fields))
		case err != nil:
			s.fail(w, r, err)
		default:
			writeJSON(w, http.StatusOK, map[string]string{"detail": "Your Password has been successfully reset."})
		}
	}
}
