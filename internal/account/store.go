package account

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"plaza/internal/db"
)

// User is an account.
type User struct {
	ID             int64
	Email          string
	Username       string
	PasswordHash   string
	IsActive       bool
	IsStaff        bool
	SessionVersion int64
	CreatedAt      time.Time
	UpdatedAt      time.Time
	LastLoginAt    sql.NullTime
}

// Store is the SQL behind accounts.
type Store struct {
	db *db.DB
}

// NewStore returns a Store on d.
func NewStore(d *db.DB) *Store { return &Store{db: d} }

// ErrEmailTaken and ErrUsernameTaken report unique conflicts.
var (
	ErrEmailTaken    = errors.New("account: email taken")
	ErrUsernameTaken = errors.New("account: username taken")
)

const userColumns = `id, email, username, password_hash, is_active, is_staff, session_version, created_at, updated_at, last_login_at`

type rowScanner interface{ Scan(dest ...any) error }

func scanUser(r rowScanner) (User, error) {
	var u User
	err := r.Scan(&u.ID, &u.Email, &u.Username, &u.PasswordHash, &u.IsActive, &u.IsStaff, &u.SessionVersion, &u.CreatedAt, &u.UpdatedAt, &u.LastLoginAt)
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, db.ErrNotFound
	}
	if err != nil {
		return User{}, fmt.Errorf("account: scan user: %w", err)
	}
	return u, nil
}

// CreateUser inserts u and returns it with its id. Conflicts come back as
// ErrEmailTaken or ErrUsernameTaken.
func (s *Store) CreateUser(ctx context.Context, u User) (User, error) {
	now := time.Now().UTC()
	u.CreatedAt, u.UpdatedAt = now, now
	err := s.db.ExecRow(ctx, `INSERT INTO users (email, username, password_hash, is_active, is_staff, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		u.Email, u.Username, u.PasswordHash, u.IsActive, u.IsStaff, now, now).Scan(&u.ID)
	if db.IsUniqueViolation(err) {
		if s.emailExists(ctx, u.Email) {
			return User{}, ErrEmailTaken
		}
		return User{}, ErrUsernameTaken
	}
	if err != nil {
		return User{}, fmt.Errorf("account: create user: %w", err)
	}
	return u, nil
}

func (s *Store) emailExists(ctx context.Context, email string) bool {
	var n int
	err := s.db.QueryRow(ctx, `SELECT count(*) FROM users WHERE email = ?`, email).Scan(&n)
	return err == nil && n > 0
}

// UsernameExists reports whether a username is taken, ignoring case.
func (s *Store) UsernameExists(ctx context.Context, username string) (bool, error) {
	var n int
	if err := s.db.QueryRow(ctx, `SELECT count(*) FROM users WHERE lower(username) = lower(?)`, username).Scan(&n); err != nil {
		return false, fmt.Errorf("account: check username: %w", err)
	}
	return n > 0, nil
}

// UserByID loads a user.
func (s *Store) UserByID(ctx context.Context, id int64) (User, error) {
	return scanUser(s.db.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE id = ?`, id))
}

// UserByEmail loads a user by (normalised) email.
func (s *Store) UserByEmail(ctx context.Context, email string) (User, error) {
	return scanUser(s.db.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE email = ?`, email))
}

// DeleteUser removes a user and, by cascade, everything that hangs off it.
func (s *Store) DeleteUser(ctx context.Context, id int64) error {
	if _, err := s.db.Exec(ctx, `DELETE FROM users WHERE id = ?`, id); err != nil {
		return fmt.Errorf("account: delete user: %w", err)
	}
	return nil
}

// SetStaff grants or withdraws staff rights.
func (s *Store) SetStaff(ctx context.Context, id int64, staff bool) error {
	res, err := s.db.Exec(ctx, `UPDATE users SET is_staff = ?, updated_at = ? WHERE id = ?`, staff, time.Now().UTC(), id)
	if err != nil {
		return fmt.Errorf("account: set staff: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return db.ErrNotFound
	}
	return nil
}

// TouchLogin records a successful login.
func (s *Store) TouchLogin(ctx context.Context, id int64, at time.Time) error {
	if _, err := s.db.Exec(ctx, `UPDATE users SET last_login_at = ? WHERE id = ?`, at, id); err != nil {
		return fmt.Errorf("account: record login: %w", err)
	}
	return nil
}

// OneTimeToken purposes.
const (
	purposeActivation = "activation"
	purposeReset      = "reset"
)

// CreateOneTimeToken stores the hash of a single-use token.
func (s *Store) CreateOneTimeToken(ctx context.Context, userID int64, purpose, tokenHash string, now time.Time, ttl time.Duration) error {
	_, err := s.db.Exec(ctx, `INSERT INTO user_tokens (user_id, purpose, token_hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?)`,
		userID, purpose, tokenHash, now, now.Add(ttl))
	if err != nil {
		return fmt.Errorf("account: create %s token: %w", purpose, err)
	}
	return nil
}

// consumeOneTimeToken marks an unused, unexpired token of user and purpose
// used within tx; false when there is none. The conditional UPDATE makes
// single use hold even when two requests race with the same link.
func consumeOneTimeToken(ctx context.Context, tx *db.Tx, userID int64, purpose, tokenHash string, now time.Time) (bool, error) {
	res, err := tx.Exec(ctx, `UPDATE user_tokens SET used_at = ?
		WHERE token_hash = ? AND user_id = ? AND purpose = ? AND used_at IS NULL AND expires_at > ?`,
		now, tokenHash, userID, purpose, now)
	if err != nil {
		return false, fmt.Errorf("account: use %s token: %w", purpose, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("account: use %s token: %w", purpose, err)
	}
	return n == 1, nil
}

// refreshRow is a stored refresh token.
type refreshRow struct {
	ID        int64
	UserID    int64
	Family    string
	ExpiresAt time.Time
	UsedAt    sql.NullTime
	RevokedAt sql.NullTime
}

func (s *Store) insertRefresh(ctx context.Context, q interface {
	Exec(context.Context, string, ...any) (sql.Result, error)
}, userID int64, family, tokenHash string, now, expires time.Time) error {
	_, err := q.Exec(ctx, `INSERT INTO refresh_tokens (user_id, family, token_hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?)`,
		userID, family, tokenHash, now, expires)
	if err != nil {
		return fmt.Errorf("account: store refresh token: %w", err)
	}
	return nil
}

func (s *Store) refreshByHash(ctx context.Context, tokenHash string) (refreshRow, error) {
	var r refreshRow
	err := s.db.QueryRow(ctx, `SELECT id, user_id, family, expires_at, used_at, revoked_at FROM refresh_tokens WHERE token_hash = ?`,
		tokenHash).Scan(&r.ID, &r.UserID, &r.Family, &r.ExpiresAt, &r.UsedAt, &r.RevokedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return r, db.ErrNotFound
	}
	if err != nil {
		return r, fmt.Errorf("account: load refresh token: %w", err)
	}
	return r, nil
}

// RevokeFamily revokes every token descended from one login.
func (s *Store) RevokeFamily(ctx context.Context, family string, now time.Time) error {
	if _, err := s.db.Exec(ctx, `UPDATE refresh_tokens SET revoked_at = ? WHERE family = ? AND revoked_at IS NULL`, now, family); err != nil {
		return fmt.Errorf("account: revoke token family: %w", err)
	}
	return nil
}

// PurgeExpired deletes refresh and one-time tokens that expired before
// cutoff; they can no longer be used, and keeping them only grows the tables.
func (s *Store) PurgeExpired(ctx context.Context, cutoff time.Time) (int64, error) {
	var total int64
	for _, q := range []string{
		`DELETE FROM refresh_tokens WHERE expires_at < ?`,
		`DELETE FROM user_tokens WHERE expires_at < ?`,
	} {
		res, err := s.db.Exec(ctx, q, cutoff)
		if err != nil {
			return total, fmt.Errorf("account: purge expired tokens: %w", err)
		}
		n, _ := res.RowsAffected()
		total += n
	}
	return total, nil
}
