// Package social owns profiles (names, bio, pictures), the follow graph,
// follow suggestions and user search.
package social

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"plaza/internal/db"
	"plaza/internal/page"
)

// Errors the HTTP layer maps to answers.
var (
	ErrNotFound   = errors.New("social: not found")
	ErrSelfFollow = errors.New("social: cannot follow yourself")
)

// Profile is a user as others see them.
type Profile struct {
	ID             int64
	Username       string
	Email          string // filled only for the owner
	FirstName      string
	LastName       string
	Bio            string
	PictureKey     string
	CoverKey       string
	FollowersCount int64
	FollowingCount int64
	PostsCount     int64
	IsFollowing    bool // the viewer follows this user
	FollowsYou     bool // this user follows the viewer
	CreatedAt      time.Time
}

// Summary is the short form of a user in lists.
type Summary struct {
	ID          int64
	Username    string
	PictureKey  string
	IsFollowing bool
}

// FeedHooks lets the timeline follow the graph: called inside the follow
// or unfollow transaction (implemented by package post).
type FeedHooks interface {
	Followed(ctx context.Context, tx *db.Tx, followerID, followeeID int64) error
	Unfollowed(ctx context.Context, tx *db.Tx, followerID, followeeID int64) error
}

// Events receives what happened, after commit (notifications, live updates).
type Events interface {
	Followed(ctx context.Context, followerID, followeeID int64)
	Unfollowed(ctx context.Context, followerID, followeeID int64)
}

// Service holds the social rules.
type Service struct {
	db     *db.DB
	feed   FeedHooks
	events Events
	now    func() time.Time
	images func(ctx context.Context, keys ...string)
	// pictureChanged is told after a user's picture changes (posts keep
	// authors' pictures in memory).
	pictureChanged func(ctx context.Context, userID int64)
}

// NewService builds the service; events may be nil.
func NewService(d *db.DB, feed FeedHooks, events Events) *Service {
	return &Service{db: d, feed: feed, events: events, now: time.Now}
}

// profileQuery reads a profile with its counts and both follow flags in one
// round trip. posts_count is read from the posts table (package post's) by
// an index-only count: reads may join across domains, writes never do.
const profileQuery = `SELECT u.id, u.username, u.email, u.created_at,
	COALESCE(p.first_name, ''), COALESCE(p.last_name, ''), COALESCE(p.bio, ''),
	COALESCE(p.picture_key, ''), COALESCE(p.cover_key, ''),
	COALESCE(p.followers_count, 0), COALESCE(p.following_count, 0),
	(SELECT count(*) FROM posts WHERE author_id = u.id),
	EXISTS (SELECT 1 FROM follows WHERE follower_id = ? AND followee_id = u.id),
	EXISTS (SELECT 1 FROM follows WHERE follower_id = u.id AND followee_id = ?)
	FROM users u LEFT JOIN profiles p ON p.user_id = u.id
	WHERE u.is_active = TRUE AND `

func (s *Service) scanProfile(row *sql.Row) (Profile, error) {
	var p Profile
	err := row.Scan(&p.ID, &p.Username, &p.Email, &p.CreatedAt, &p.FirstName, &p.LastName, &p.Bio,
		&p.PictureKey, &p.CoverKey, &p.FollowersCount, &p.FollowingCount, &p.PostsCount, &p.IsFollowing, &p.FollowsYou)
	if errors.Is(err, sql.ErrNoRows) {
		return Profile{}, ErrNotFound
	}
	if err != nil {
		return Profile{}, fmt.Errorf("social: load profile: %w", err)
	}
	return p, nil
}

// ProfileByUsername loads an active user's profile as viewerID sees it
// (viewerID 0: anonymous). The email is left out.
func (s *Service) ProfileByUsername(ctx context.Context, viewerID int64, username string) (Profile, error) {
	p, err := s.scanProfile(s.db.QueryRow(ctx, profileQuery+`lower(u.username) = lower(?)`, viewerID, viewerID, username))
	p.Email = ""
	return p, err
}

// ProfileByID loads a profile by id, with the email (the owner's view).
func (s *Service) ProfileByID(ctx context.Context, id int64) (Profile, error) {
	return s.scanProfile(s.db.QueryRow(ctx, profileQuery+`u.id = ?`, id, id, id))
}

// ProfileUpdate holds the editable text fields; nil means unchanged.
type ProfileUpdate struct {
	FirstName, LastName, Bio *string
}

// Limits of profile fields, in characters.
const (
	MaxNameLen = 150
	MaxBioLen  = 2000
)

// ValidationError carries per-field messages.
type ValidationError struct{ Fields map[string][]string }

func (e *ValidationError) Error() string { return "social: invalid input" }

// UpdateProfile changes names and bio. Text is stored as written.
func (s *Service) UpdateProfile(ctx context.Context, userID int64, u ProfileUpdate) error {
	fields := map[string][]string{}
	check := func(name string, v *string, limit int) {
		if v != nil && len([]rune(*v)) > limit {
			fields[name] = append(fields[name], fmt.Sprintf("At most %d characters.", limit))
		}
	}
	check("first_name", u.FirstName, MaxNameLen)
	check("last_name", u.LastName, MaxNameLen)
	check("bio", u.Bio, MaxBioLen)
	if len(fields) > 0 {
		return &ValidationError{Fields: fields}
	}
	if u.FirstName == nil && u.LastName == nil && u.Bio == nil {
		return nil
	}
	now := s.now().UTC()
	return s.db.InTx(ctx, func(tx *db.Tx) error {
		if err := ensureProfile(ctx, tx, userID); err != nil {
			return err
		}
		set := []string{"updated_at = ?"}
		args := []any{now}
		for _, f := range []struct {
			col string
			v   *string
		}{{"first_name", u.FirstName}, {"last_name", u.LastName}, {"bio", u.Bio}} {
			if f.v != nil {
				set = append(set, f.col+" = ?")
				args = append(args, *f.v)
			}
		}
		args = append(args, userID)
		if _, err := tx.Exec(ctx, `UPDATE profiles SET `+strings.Join(set, ", ")+` WHERE user_id = ?`, args...); err != nil {
			return fmt.Errorf("social: update profile: %w", err)
		}
		return nil
	})
}

// ensureProfile creates the profile row on first write.
func ensureProfile(ctx context.Context, tx *db.Tx, userID int64) error {
	if _, err := tx.Exec(ctx, `INSERT INTO profiles (user_id) VALUES (?) ON CONFLICT (user_id) DO NOTHING`, userID); err != nil {
		return fmt.Errorf("social: create profile: %w", err)
	}
	return nil
}

// SetImages stores new picture and/or cover keys (empty: unchanged) and
// returns the keys they replace, for the caller to delete from storage.
func (s *Service) SetImages(ctx context.Context, userID int64, pictureKey, coverKey string) (old []string, err error) {
	err = s.db.InTx(ctx, func(tx *db.Tx) error {
		if err := ensureProfile(ctx, tx, userID); err != nil {
			return err
		}
		var oldPic, oldCover string
		if err := tx.QueryRow(ctx, `SELECT picture_key, cover_key FROM profiles WHERE user_id = ?`, userID).Scan(&oldPic, &oldCover); err != nil {
			return fmt.Errorf("social: read images: %w", err)
		}
		if pictureKey != "" {
			old = append(old, oldPic)
		} else {
			pictureKey = oldPic
		}
		if coverKey != "" {
			old = append(old, oldCover)
		} else {
			coverKey = oldCover
		}
		_, err := tx.Exec(ctx, `UPDATE profiles SET picture_key = ?, cover_key = ?, updated_at = ? WHERE user_id = ?`,
			pictureKey, coverKey, s.now().UTC(), userID)
		if err != nil {
			return fmt.Errorf("social: set images: %w", err)
		}
		return nil
	})
	if err == nil && pictureKey != "" && s.pictureChanged != nil {
		s.pictureChanged(ctx, userID)
	}
	var keep []string
	for _, k := range old {
		if k != "" {
			keep = append(keep, k)
		}
	}
	return keep, err
}

// activeUserID resolves a username to an active user's id.
func activeUserID(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) *sql.Row
}, username string) (int64, error) {
	var id int64
	err := q.QueryRow(ctx, `SELECT id FROM users WHERE lower(username) = lower(?) AND is_active = TRUE`, username).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, ErrNotFound
	}
	if err != nil {
		return 0, fmt.Errorf("social: find user: %w", err)
	}
	return id, nil
}

// UserID resolves a username to an active user's id.
func (s *Service) UserID(ctx context.Context, username string) (int64, error) {
	return activeUserID(ctx, s.db, username)
}

// Follow makes followerID follow username. created is false when the
// follow already existed (idempotent).
func (s *Service) Follow(ctx context.Context, followerID int64, username string) (created bool, err error) {
	var followeeID int64
	err = s.db.InTx(ctx, func(tx *db.Tx) error {
		id, err := activeUserID(ctx, tx, username)
		if err != nil {
			return err
		}
		followeeID = id
		if id == followerID {
			return ErrSelfFollow
		}
		res, err := tx.Exec(ctx, `INSERT INTO follows (follower_id, followee_id, created_at) VALUES (?, ?, ?)
			ON CONFLICT (follower_id, followee_id) DO NOTHING`, followerID, id, s.now().UTC())
		if err != nil {
			return fmt.Errorf("social: follow: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		created = true
		if err := bumpCounts(ctx, tx, followerID, id, 1); err != nil {
			return err
		}
		return s.feed.Followed(ctx, tx, followerID, id)
	})
	if err == nil && created && s.events != nil {
		s.events.Followed(ctx, followerID, followeeID)
	}
	return created, err
}

// SetEvents installs the receiver of follow events.
func (s *Service) SetEvents(e Events) { s.events = e }

// Unfollow removes the follow if there is one.
func (s *Service) Unfollow(ctx context.Context, followerID int64, username string) error {
	var followeeID int64
	removed := false
	err := s.db.InTx(ctx, func(tx *db.Tx) error {
		id, err := activeUserID(ctx, tx, username)
		if err != nil {
			return err
		}
		followeeID = id
		res, err := tx.Exec(ctx, `DELETE FROM follows WHERE follower_id = ? AND followee_id = ?`, followerID, id)
		if err != nil {
			return fmt.Errorf("social: unfollow: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		removed = true
		if err := bumpCounts(ctx, tx, followerID, id, -1); err != nil {
			return err
		}
		return s.feed.Unfollowed(ctx, tx, followerID, id)
	})
	if err == nil && removed && s.events != nil {
		s.events.Unfollowed(ctx, followerID, followeeID)
	}
	return err
}

// FollowerIDs lists who follows userID (presence goes to them).
func (s *Service) FollowerIDs(ctx context.Context, userID int64) ([]int64, error) {
	ids, err := s.db.QueryInt64s(ctx, `SELECT follower_id FROM follows WHERE followee_id = ?`, userID)
	if err != nil {
		return nil, fmt.Errorf("social: followers: %w", err)
	}
	return ids, nil
}

// bumpCounts moves both counters of a follow edge by delta, in the
// transaction that changed the edge, so they never drift.
func bumpCounts(ctx context.Context, tx *db.Tx, followerID, followeeID int64, delta int) error {
	for _, q := range []struct {
		col string
		id  int64
	}{{"following_count", followerID}, {"followers_count", followeeID}} {
		if _, err := tx.Exec(ctx, `INSERT INTO profiles (user_id, `+q.col+`) VALUES (?, ?)
			ON CONFLICT (user_id) DO UPDATE SET `+q.col+` = profiles.`+q.col+` + ?`, q.id, max(delta, 0), delta); err != nil {
			return fmt.Errorf("social: update %s: %w", q.col, err)
		}
	}
	return nil
}

// Followers lists who follows username, newest first.
func (s *Service) Followers(ctx context.Context, viewerID int64, username string, p page.Request) ([]Summary, string, error) {
	return s.edges(ctx, viewerID, username, p, "follower_id", "followee_id")
}

// Following lists whom username follows, newest first.
func (s *Service) Following(ctx context.Context, viewerID int64, username string, p page.Request) ([]Summary, string, error) {
	return s.edges(ctx, viewerID, username, p, "followee_id", "follower_id")
}

func (s *Service) edges(ctx context.Context, viewerID int64, username string, p page.Request, other, self string) ([]Summary, string, error) {
	id, err := activeUserID(ctx, s.db, username)
	if err != nil {
		return nil, "", err
	}
	rows, err := s.db.Query(ctx, `SELECT f.id, u.id, u.username, COALESCE(pr.picture_key, ''),
		EXISTS (SELECT 1 FROM follows v WHERE v.follower_id = ? AND v.followee_id = u.id)
		FROM follows f JOIN users u ON u.id = f.`+other+` LEFT JOIN profiles pr ON pr.user_id = u.id
		WHERE f.`+self+` = ? AND f.id < ? AND u.is_active = TRUE
		ORDER BY f.id DESC LIMIT ?`, viewerID, id, p.Before(), p.Limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("social: list follows: %w", err)
	}
	defer rows.Close()
	var out []Summary
	var keys []int64
	for rows.Next() {
		var sm Summary
		var k int64
		if err := rows.Scan(&k, &sm.ID, &sm.Username, &sm.PictureKey, &sm.IsFollowing); err != nil {
			return nil, "", fmt.Errorf("social: list follows: %w", err)
		}
		out, keys = append(out, sm), append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("social: list follows: %w", err)
	}
	out, next := page.Trim(out, keys, p.Limit)
	return out, next, nil
}

// Search finds active users whose username, first or last name starts
// with q (case-insensitive for ASCII), ordered by username.
func (s *Service) Search(ctx context.Context, viewerID int64, q string, p page.Request) ([]Summary, string, error) {
	q = strings.ToLower(strings.TrimSpace(q))
	after := p.AfterText()
	var cond func(col string) string
	var arg func() []any
	if s.db.Dialect() == db.Postgres {
		pattern := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(q) + "%"
		cond = func(col string) string { return col + ` LIKE ? ESCAPE '\'` }
		arg = func() []any { return []any{pattern} }
	} else {
		cond = func(col string) string { return col + ` >= ? AND ` + col + ` < ?` }
		arg = func() []any { return []any{q, q + "\xff"} }
	}
	args := append(append(append([]any{viewerID}, arg()...), arg()...), arg()...)
	args = append(args, after, p.Limit+1)
	rows, err := s.db.Query(ctx, `SELECT u.id, u.username, COALESCE(pr.picture_key, ''),
		EXISTS (SELECT 1 FROM follows v WHERE v.follower_id = ? AND v.followee_id = u.id)
		FROM (SELECT id FROM users WHERE `+cond("lower(username)")+`
			UNION SELECT user_id FROM profiles WHERE `+cond("lower(first_name)")+`
			UNION SELECT user_id FROM profiles WHERE `+cond("lower(last_name)")+`) m
		JOIN users u ON u.id = m.id LEFT JOIN profiles pr ON pr.user_id = u.id
		WHERE u.is_active = TRUE AND lower(u.username) > ?
		ORDER BY lower(u.username) LIMIT ?`, args...)
	if err != nil {
		return nil, "", fmt.Errorf("social: search: %w", err)
	}
	defer rows.Close()
	var out []Summary
	for rows.Next() {
		var sm Summary
		if err := rows.Scan(&sm.ID, &sm.Username, &sm.PictureKey, &sm.IsFollowing); err != nil {
			return nil, "", fmt.Errorf("social: search: %w", err)
		}
		out = append(out, sm)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("social: search: %w", err)
	}
	next := ""
	if len(out) > p.Limit {
		out = out[:p.Limit]
		next = page.EncodeText(strings.ToLower(out[len(out)-1].Username))
	}
	return out, next, nil
}

// BeforeUserDelete moves the follow counters of everyone connected to a
// user who is about to be deleted (the follows themselves cascade).
func (s *Service) BeforeUserDelete(ctx context.Context, tx *db.Tx, userID int64) (func(context.Context), error) {
	if _, err := tx.Exec(ctx, `UPDATE profiles SET followers_count = followers_count - 1
		WHERE user_id IN (SELECT followee_id FROM follows WHERE follower_id = ?)`, userID); err != nil {
		return nil, fmt.Errorf("social: forget user: %w", err)
	}
	if _, err := tx.Exec(ctx, `UPDATE profiles SET following_count = following_count - 1
		WHERE user_id IN (SELECT follower_id FROM follows WHERE followee_id = ?)`, userID); err != nil {
		return nil, fmt.Errorf("social: forget user: %w", err)
	}
	var pic, cover string
	err := tx.QueryRow(ctx, `SELECT picture_key, cover_key FROM profiles WHERE user_id = ?`, userID).Scan(&pic, &cover)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("social: forget user: %w", err)
	}
	if pic == "" && cover == "" || s.images == nil {
		return nil, nil
	}
	return func(ctx context.Context) { s.images(ctx, pic, cover) }, nil
}

// SetImageRemover installs what deletes a removed user's profile images.
func (s *Service) SetImageRemover(f func(ctx context.Context, keys ...string)) { s.images = f }

// OnPictureChanged registers fn, called after a user's profile picture
// changes.
func (s *Service) OnPictureChanged(fn func(ctx context.Context, userID int64)) { s.pictureChanged = fn }
