// Package account owns users, passwords, access and refresh tokens,
// activation, password reset and staff rights.
package account

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"plaza/internal/cache"
	"plaza/internal/db"
	"plaza/internal/mail"
)

// Errors the HTTP layer maps to fixed answers.
var (
	ErrBadCredentials    = errors.New("account: bad credentials")
	ErrActivationFailed  = errors.New("account: activation failed")
	ErrInvalidResetLink  = errors.New("account: invalid reset link")
	ErrMailUnavailable   = errors.New("account: mail could not be sent")
	ErrUserNotActive     = errors.New("account: user not active")
	ErrEmailAlreadyTaken = ErrEmailTaken
)

// JobQueue enqueues background work, in tx when tx is not nil (so the job
// exists exactly when the data it refers to does).
type JobQueue interface {
	Enqueue(ctx context.Context, tx *db.Tx, args interface{ Kind() string }) error
}

// PasswordResetMailArgs is the job that sends a reset mail. Doing it in the
// background makes the request take the same time whether or not the email
// belongs to an account.
type PasswordResetMailArgs struct {
	Email string `json:"email"`
}

// Kind names the job for River.
func (PasswordResetMailArgs) Kind() string { return "account.password_reset_mail" }

// Config holds the account rules that come from configuration.
type Config struct {
	SecretKey     string
	AccessTTL     time.Duration
	RefreshTTL    time.Duration
	ActivationTTL time.Duration
	ResetTTL      time.Duration
	ActivationURL string // template with {uid} and {token}
	ResetURL      string
	Argon2        Argon2Params
	// UserCacheTTL is how long the user behind an access token is kept in
	// memory (0: read on every request). Changes made through this service
	// drop the entry at once, here and (see OnUserChanged) on the other
	// instances; the TTL bounds staleness otherwise (the CLI, lost messages).
	UserCacheTTL time.Duration
}

// Service holds the account rules.
type Service struct {
	store     *Store
	cfg       Config
	signer    tokenSigner
	passwords passwordChecker
	mail      mail.Sender
	jobs      JobQueue
	log       *slog.Logger
	now       func() time.Time
	dummyHash string // verified against when no account matches, to keep timing even

	deletionHooks []DeletionHook

	users *cache.TTL[int64, User]
	// verified holds access tokens whose signature and claims checked
	// out, so that a client's every request does not redo the HMAC and
	// the JSON decoding (a few percent of a feed request). Expiry, the
	// user and the session version are still checked on every use.
	verified *cache.TTL[string, tokenClaims]
}

// NewService builds the account service. now may be nil (time.Now).
func NewService(store *Store, cfg Config, sender mail.Sender, jobs JobQueue, log *slog.Logger, now func() time.Time) (*Service, error) {
	if len(cfg.SecretKey) < 32 {
		return nil, errors.New("account: secret key shorter than 32 characters")
	}
	if cfg.Argon2 == (Argon2Params{}) {
		cfg.Argon2 = DefaultArgon2
	}
	if now == nil {
		now = time.Now
	}
	dummy, err := HashPassword(randomToken(12), cfg.Argon2)
	if err != nil {
		return nil, err
	}
	return &Service{
		store: store, cfg: cfg, signer: tokenSigner{key: []byte(cfg.SecretKey)},
		passwords: newPasswordChecker(), mail: sender, jobs: jobs, log: log, now: now, dummyHash: dummy,
		users:    cache.New[int64, User](cfg.UserCacheTTL, 100_000),
		verified: cache.New[string, tokenClaims](time.Minute, 50_000),
	}, nil
}

// OnUserChanged registers fn, called after this service changes a user
// (to tell the other instances: see ForgetUser). Set at wiring time.
func (s *Service) OnUserChanged(fn func(ctx context.Context, id int64)) { s.users.OnChange(fn) }

// ForgetUser drops the cached copy of a user, for a change made elsewhere.
func (s *Service) ForgetUser(id int64) { s.users.Delete(id) }

// Store exposes the store (for the CLI and other packages' tests).
func (s *Service) Store() *Store { return s.store }

// RegisterInput is what the register form sends.
type RegisterInput struct {
	Email             string
	Password          string
	ConfirmedPassword string
	Username          string
}

// Register creates an inactive user and mails the activation link. When the
// mail cannot be sent the user is removed again and ErrMailUnavailable is
// returned. The activation token is returned for deployments that expose it.
func (s *Service) Register(ctx context.Context, in RegisterInput) (User, string, error) {
	verr := &ValidationError{}
	email, ok := NormalizeEmail(in.Email)
	if !ok {
		verr.add("email", emailUnusable)
	}
	username := strings.TrimSpace(in.Username)
	if username != "" && !ValidUsername(username) {
		verr.add("username", "Use 3 to 30 letters, digits, '_', '.' or '-', not only digits.")
	}
	if p := s.passwords.problems(in.Password, email, username); len(p) > 0 {
		verr.Fields = mergeFields(verr.Fields, "password", p)
	}
	if in.Password != in.ConfirmedPassword {
		verr.add("confirmed_password", "The passwords do not match.")
	}
	if err := verr.orNil(); err != nil {
		return User{}, "", err
	}
	// Hash before looking at the email, so that a taken address answers in
	// the same time as a free one.
	hash, err := HashPassword(in.Password, s.cfg.Argon2)
	if err != nil {
		return User{}, "", err
	}
	u := User{Email: email, Username: username, PasswordHash: hash}
	if u, err = s.createWithUsername(ctx, u); err != nil {
		return User{}, "", err
	}
	token := randomToken(32)
	if err := s.store.CreateOneTimeToken(ctx, u.ID, purposeActivation, hashToken(token), s.now().UTC(), s.cfg.ActivationTTL); err != nil {
		s.discard(ctx, u.ID)
		return User{}, "", err
	}
	link := s.link(s.cfg.ActivationURL, u.ID, token)
	if err := s.mail.Send(ctx, mail.ActivationMail(u.Email, u.Username, link)); err != nil {
		s.log.ErrorContext(ctx, "activation mail failed; registration rolled back", "user_id", u.ID, "err", err)
		s.discard(ctx, u.ID)
		return User{}, "", ErrMailUnavailable
	}
	return u, token, nil
}

const emailUnusable = "Enter a valid email address that is not registered yet."

// createWithUsername inserts u, deriving a free username from the email
// when none was given. Taken emails come back as a ValidationError worded
// like an invalid one, so the answer does not tell who has an account.
func (s *Service) createWithUsername(ctx context.Context, u User) (User, error) {
	derive := u.Username == ""
	base := usernameFromEmail(u.Email)
	for attempt := 0; attempt < 8; attempt++ {
		if derive {
			u.Username = base
			if attempt > 0 {
				u.Username = fmt.Sprintf("%s%d", base, 1000+int(randomUint32()%9000))
			}
		}
		created, err := s.store.CreateUser(ctx, u)
		switch {
		case err == nil:
			return created, nil
		case errors.Is(err, ErrEmailTaken):
			return User{}, &ValidationError{Fields: map[string][]string{"email": {emailUnusable}}}
		case errors.Is(err, ErrUsernameTaken) && !derive:
			return User{}, &ValidationError{Fields: map[string][]string{"username": {"This username is taken."}}}
		case errors.Is(err, ErrUsernameTaken):
			continue
		default:
			return User{}, err
		}
	}
	return User{}, errors.New("account: could not derive a free username")
}

func (s *Service) discard(ctx context.Context, id int64) {
	if err := s.store.DeleteUser(context.WithoutCancel(ctx), id); err != nil {
		s.log.ErrorContext(ctx, "could not remove user after failed registration", "user_id", id, "err", err)
	}
}

func (s *Service) link(template string, id int64, token string) string {
	return strings.NewReplacer("{uid}", EncodeUID(id), "{token}", token).Replace(template)
}

// Activate consumes an activation link and activates its user.
func (s *Service) Activate(ctx context.Context, uid, token string) (err error) {
	id, ok := DecodeUID(uid)
	if !ok || token == "" || len(token) > 256 {
		return ErrActivationFailed
	}
	now := s.now().UTC()
	defer func() {
		if err == nil {
			s.users.Changed(ctx, id)
		}
	}()
	return s.store.db.InTx(ctx, func(tx *db.Tx) error {
		used, err := consumeOneTimeToken(ctx, tx, id, purposeActivation, hashToken(token), now)
		if err != nil {
			return err
		}
		if !used {
			return ErrActivationFailed
		}
		if _, err := tx.Exec(ctx, `UPDATE users SET is_active = TRUE, updated_at = ? WHERE id = ?`, now, id); err != nil {
			return fmt.Errorf("account: activate: %w", err)
		}
		return nil
	})
}

// Authenticate checks an email and password. Unknown, inactive and wrong
// password all return ErrBadCredentials after the same amount of hashing.
func (s *Service) Authenticate(ctx context.Context, email, password string) (User, error) {
	norm, _ := NormalizeEmail(email)
	u, err := s.store.UserByEmail(ctx, norm)
	if errors.Is(err, db.ErrNotFound) {
		_, _ = CheckPassword(password, s.dummyHash)
		return User{}, ErrBadCredentials
	}
	if err != nil {
		return User{}, err
	}
	ok, err := CheckPassword(password, u.PasswordHash)
	if err != nil {
		return User{}, err
	}
	if !ok || !u.IsActive {
		return User{}, ErrBadCredentials
	}
	if err := s.store.TouchLogin(ctx, u.ID, s.now().UTC()); err != nil {
		s.log.WarnContext(ctx, "could not record login", "user_id", u.ID, "err", err)
	}
	return u, nil
}

// Session is a pair of tokens.
type Session struct {
	Access  string
	Refresh string
}

// StartSession issues an access token and a refresh token that starts a
// new token family.
func (s *Service) StartSession(ctx context.Context, u User) (Session, error) {
	now := s.now().UTC()
	return s.issue(ctx, nil, u, randomToken(12), now)
}

func (s *Service) issue(ctx context.Context, tx *db.Tx, u User, family string, now time.Time) (Session, error) {
	access, err := s.signer.sign(newClaims(tokenAccess, u.ID, u.SessionVersion, now, s.cfg.AccessTTL))
	if err != nil {
		return Session{}, err
	}
	rc := newClaims(tokenRefresh, u.ID, u.SessionVersion, now, s.cfg.RefreshTTL)
	refresh, err := s.signer.sign(rc)
	if err != nil {
		return Session{}, err
	}
	if tx != nil {
		err = s.store.insertRefresh(ctx, tx, u.ID, family, hashToken(refresh), now, rc.ExpiresAt.Time)
	} else {
		err = s.store.insertRefresh(ctx, s.store.db, u.ID, family, hashToken(refresh), now, rc.ExpiresAt.Time)
	}
	if err != nil {
		return Session{}, err
	}
	return Session{Access: access, Refresh: refresh}, nil
}

// Refresh exchanges a refresh token for a new access token. With rotate
// (the Bearer flow) it also replaces the refresh token: the old one stops
// working, and presenting an already rotated one revokes its whole family,
// since that means a copy of it is in someone else's hands.
func (s *Service) Refresh(ctx context.Context, refresh string, rotate bool) (Session, error) {
	now := s.now().UTC()
	row, u, err := s.checkRefresh(ctx, refresh, now)
	if err != nil {
		return Session{}, err
	}
	if !rotate {
		access, err := s.signer.sign(newClaims(tokenAccess, u.ID, u.SessionVersion, now, s.cfg.AccessTTL))
		return Session{Access: access, Refresh: refresh}, err
	}
	var out Session
	reused := false
	err = s.store.db.InTx(ctx, func(tx *db.Tx) error {
		res, err := tx.Exec(ctx, `UPDATE refresh_tokens SET used_at = ? WHERE id = ? AND used_at IS NULL AND revoked_at IS NULL`, now, row.ID)
		if err != nil {
			return fmt.Errorf("account: rotate refresh token: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			reused = true // another request rotated it first
			return ErrInvalidToken
		}
		out, err = s.issue(ctx, tx, u, row.Family, now)
		return err
	})
	if reused {
		_ = s.store.RevokeFamily(ctx, row.Family, now)
	}
	return out, err
}

// checkRefresh validates a refresh token against its signature and its
// stored state, revoking the family on reuse.
func (s *Service) checkRefresh(ctx context.Context, refresh string, now time.Time) (refreshRow, User, error) {
	c, err := s.signer.parse(refresh, tokenRefresh, now)
	if err != nil {
		return refreshRow{}, User{}, ErrInvalidToken
	}
	row, err := s.store.refreshByHash(ctx, hashToken(refresh))
	if errors.Is(err, db.ErrNotFound) {
		return refreshRow{}, User{}, ErrInvalidToken
	}
	if err != nil {
		return refreshRow{}, User{}, err
	}
	if row.RevokedAt.Valid || !row.ExpiresAt.After(now) || row.UserID != c.UserID {
		return refreshRow{}, User{}, ErrInvalidToken
	}
	if row.UsedAt.Valid {
		if err := s.store.RevokeFamily(ctx, row.Family, now); err != nil {
			return refreshRow{}, User{}, err
		}
		s.log.WarnContext(ctx, "rotated refresh token presented again; family revoked", "user_id", row.UserID)
		return refreshRow{}, User{}, ErrInvalidToken
	}
	u, err := s.store.UserByID(ctx, row.UserID)
	if errors.Is(err, db.ErrNotFound) {
		return refreshRow{}, User{}, ErrInvalidToken
	}
	if err != nil {
		return refreshRow{}, User{}, err
	}
	if !u.IsActive || u.SessionVersion != c.Version {
		return refreshRow{}, User{}, ErrInvalidToken
	}
	return row, u, nil
}

// Logout revokes the refresh token's whole family.
func (s *Service) Logout(ctx context.Context, refresh string) error {
	now := s.now().UTC()
	c, err := s.signer.parse(refresh, tokenRefresh, now)
	if err != nil {
		return ErrInvalidToken
	}
	row, err := s.store.refreshByHash(ctx, hashToken(refresh))
	if errors.Is(err, db.ErrNotFound) || (err == nil && (row.RevokedAt.Valid || row.UserID != c.UserID)) {
		return ErrInvalidToken
	}
	if err != nil {
		return err
	}
	return s.store.RevokeFamily(ctx, row.Family, now)
}

// UserFromAccessToken authenticates a request: the token must be a valid,
// unexpired access token of an active user whose sessions were not reset
// since it was issued.
func (s *Service) UserFromAccessToken(ctx context.Context, token string) (User, error) {
	now := s.now()
	c, ok := s.verified.Get(token)
	if !ok {
		var err error
		if c, err = s.signer.parse(token, tokenAccess, now); err != nil {
			return User{}, ErrInvalidToken
		}
		s.verified.SetIfCurrent(s.verified.Generation(), token, c)
	} else if !now.Before(c.ExpiresAt.Time) {
		return User{}, ErrInvalidToken
	}
	u, err := s.users.Load(c.UserID, func() (User, error) { return s.store.UserByID(ctx, c.UserID) }, nil)
	if errors.Is(err, db.ErrNotFound) {
		return User{}, ErrInvalidToken
	}
	if err != nil {
		return User{}, err
	}
	if !u.IsActive || u.SessionVersion != c.Version {
		return User{}, ErrInvalidToken
	}
	return u, nil
}

// AccessTokenExpiry returns when a valid access token expires (the
// WebSocket hub closes connections then).
func (s *Service) AccessTokenExpiry(token string) (time.Time, error) {
	c, err := s.signer.parse(token, tokenAccess, s.now())
	if err != nil {
		return time.Time{}, ErrInvalidToken
	}
	return c.ExpiresAt.Time, nil
}

// RequestPasswordReset schedules the reset mail. It does the same work
// whether or not the email has an account; the job finds out.
func (s *Service) RequestPasswordReset(ctx context.Context, email string) error {
	norm, ok := NormalizeEmail(email)
	if !ok {
		return &ValidationError{Fields: map[string][]string{"email": {"Enter a valid email address."}}}
	}
	if err := s.jobs.Enqueue(ctx, nil, PasswordResetMailArgs{Email: norm}); err != nil {
		return fmt.Errorf("account: schedule reset mail: %w", err)
	}
	return nil
}

// SendPasswordReset creates a reset token and mails it, if the email
// belongs to an active account (a job; unknown addresses are a no-op).
func (s *Service) SendPasswordReset(ctx context.Context, email string) error {
	u, err := s.store.UserByEmail(ctx, email)
	if errors.Is(err, db.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if !u.IsActive {
		// An inactive account cannot log in after a reset either; the user
		// needs the activation mail, not this one.
		return nil
	}
	token := randomToken(32)
	if err := s.store.CreateOneTimeToken(ctx, u.ID, purposeReset, hashToken(token), s.now().UTC(), s.cfg.ResetTTL); err != nil {
		return err
	}
	if err := s.mail.Send(ctx, mail.PasswordResetMail(u.Email, u.Username, s.link(s.cfg.ResetURL, u.ID, token))); err != nil {
		return fmt.Errorf("account: send reset mail: %w", err)
	}
	return nil
}

// ConfirmPasswordReset sets a new password with a reset link. The link is
// single use, and every session of the user ends (refresh tokens revoked,
// access tokens invalidated through the session version).
func (s *Service) ConfirmPasswordReset(ctx context.Context, uid, token, password, confirm string) (err error) {
	id, ok := DecodeUID(uid)
	if !ok || token == "" || len(token) > 256 {
		return ErrInvalidResetLink
	}
	u, err := s.store.UserByID(ctx, id)
	if errors.Is(err, db.ErrNotFound) {
		return ErrInvalidResetLink
	}
	if err != nil {
		return err
	}
	verr := &ValidationError{}
	if p := s.passwords.problems(password, u.Email, u.Username); len(p) > 0 {
		verr.Fields = mergeFields(verr.Fields, "new_password", p)
	}
	if password != confirm {
		verr.add("confirm_password", "The passwords do not match.")
	}
	hash, err := HashPassword(password, s.cfg.Argon2)
	if err != nil {
		return err
	}
	now := s.now().UTC()
	defer func() {
		if err == nil {
			s.users.Changed(ctx, id)
		}
	}()
	return s.store.db.InTx(ctx, func(tx *db.Tx) error {
		// The link is checked before the password rules, so a bad link
		// answers "Invalid reset link." whatever the passwords are; it is
		// only consumed when the new password is accepted.
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM user_tokens WHERE token_hash = ? AND user_id = ? AND purpose = ?
			AND used_at IS NULL AND expires_at > ?`, hashToken(token), id, purposeReset, now).Scan(&n); err != nil {
			return fmt.Errorf("account: check reset token: %w", err)
		}
		if n == 0 {
			return ErrInvalidResetLink
		}
		if err := verr.orNil(); err != nil {
			return err
		}
		used, err := consumeOneTimeToken(ctx, tx, id, purposeReset, hashToken(token), now)
		if err != nil {
			return err
		}
		if !used {
			return ErrInvalidResetLink
		}
		// Other reset links of the user die with the old password, as
		// Django's do: an older mail must not reset the new password.
		if _, err := tx.Exec(ctx, `UPDATE user_tokens SET used_at = ? WHERE user_id = ? AND purpose = ? AND used_at IS NULL`,
			now, id, purposeReset); err != nil {
			return fmt.Errorf("account: end other reset links: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE users SET password_hash = ?, session_version = session_version + 1, updated_at = ? WHERE id = ?`,
			hash, now, id); err != nil {
			return fmt.Errorf("account: set password: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE refresh_tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL`, now, id); err != nil {
			return fmt.Errorf("account: revoke sessions: %w", err)
		}
		return nil
	})
}

// CreateUser makes an active account directly (the CLI, for operators).
func (s *Service) CreateUser(ctx context.Context, email, password, username string, staff bool) (User, error) {
	norm, ok := NormalizeEmail(email)
	if !ok {
		return User{}, &ValidationError{Fields: map[string][]string{"email": {"Enter a valid email address."}}}
	}
	if username != "" && !ValidUsername(username) {
		return User{}, &ValidationError{Fields: map[string][]string{"username": {"Use 3 to 30 letters, digits, '_', '.' or '-', not only digits."}}}
	}
	if p := s.passwords.problems(password, norm, username); len(p) > 0 {
		return User{}, &ValidationError{Fields: map[string][]string{"password": p}}
	}
	hash, err := HashPassword(password, s.cfg.Argon2)
	if err != nil {
		return User{}, err
	}
	u, err := s.createWithUsername(ctx, User{Email: norm, Username: username, PasswordHash: hash, IsActive: true, IsStaff: staff})
	var verr *ValidationError
	if errors.As(err, &verr) && verr.Fields["email"] != nil {
		return User{}, ErrEmailTaken
	}
	return u, err
}

// ChangeUsername renames a user. Usernames are unique ignoring case.
func (s *Service) ChangeUsername(ctx context.Context, userID int64, username string) error {
	if !ValidUsername(username) {
		return &ValidationError{Fields: map[string][]string{"username": {"Use 3 to 30 letters, digits, '_', '.' or '-', not only digits."}}}
	}
	_, err := s.store.db.Exec(ctx, `UPDATE users SET username = ?, updated_at = ? WHERE id = ?`, username, s.now().UTC(), userID)
	if db.IsUniqueViolation(err) {
		return &ValidationError{Fields: map[string][]string{"username": {"This username is taken."}}}
	}
	if err != nil {
		return fmt.Errorf("account: change username: %w", err)
	}
	s.users.Changed(ctx, userID)
	return nil
}

// DeletionHook lets other domains clean up when a user is deleted: it runs
// inside the deletion transaction (to fix counters the cascade cannot) and
// may return work to do after commit (removing stored files).
type DeletionHook interface {
	BeforeUserDelete(ctx context.Context, tx *db.Tx, userID int64) (after func(context.Context), err error)
}

// AddDeletionHook registers a hook (at wiring time, before serving).
func (s *Service) AddDeletionHook(h DeletionHook) { s.deletionHooks = append(s.deletionHooks, h) }

// DeleteUser removes an account and everything it made. With checkPassword
// the password must match (the user deleting themselves); operators pass
// false.
func (s *Service) DeleteUser(ctx context.Context, userID int64, password string, checkPassword bool) error {
	u, err := s.store.UserByID(ctx, userID)
	if errors.Is(err, db.ErrNotFound) {
		return err
	}
	if err != nil {
		return err
	}
	if checkPassword {
		ok, err := CheckPassword(password, u.PasswordHash)
		if err != nil {
			return err
		}
		if !ok {
			return ErrBadCredentials
		}
	}
	var afters []func(context.Context)
	err = s.store.db.InTx(ctx, func(tx *db.Tx) error {
		for _, h := range s.deletionHooks {
			after, err := h.BeforeUserDelete(ctx, tx, userID)
			if err != nil {
				return err
			}
			if after != nil {
				afters = append(afters, after)
			}
		}
		if _, err := tx.Exec(ctx, `DELETE FROM users WHERE id = ?`, userID); err != nil {
			return fmt.Errorf("account: delete user: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.users.Changed(ctx, userID)
	for _, after := range afters {
		after(context.WithoutCancel(ctx))
	}
	return nil
}

// PurgeExpiredTokens removes tokens that can no longer be used.
func (s *Service) PurgeExpiredTokens(ctx context.Context) (int64, error) {
	return s.store.PurgeExpired(ctx, s.now().UTC())
}

func mergeFields(m map[string][]string, field string, msgs []string) map[string][]string {
	if m == nil {
		m = map[string][]string{}
	}
	m[field] = append(m[field], msgs...)
	return m
}
