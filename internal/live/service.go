// Package live owns notifications, one-to-one chat, presence and the
// WebSocket hub that pushes events to every connected socket of a user, on
// whichever server instance it is connected.
package live

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"plaza/internal/db"
	"plaza/internal/page"
)

// Errors the HTTP layer maps to answers.
var (
	ErrNotFound = errors.New("live: not found")
	ErrSelf     = errors.New("live: cannot talk to yourself")
)

// Notification types.
const (
	TypeLike        = "like"
	TypeComment     = "comment"
	TypeFollow      = "follow"
	TypeNewPost     = "new_post"
	TypeVideoReady  = "video_ready"
	TypeVideoFailed = "video_failed"
	TypeMessage     = "message"
)

// Pusher delivers frames to sockets (the Hub).
type Pusher interface {
	SendToUser(ctx context.Context, userID int64, f Frame) error
	SendToPost(ctx context.Context, postID int64, f Frame) error
}

// JobQueue enqueues background work.
type JobQueue interface {
	Enqueue(ctx context.Context, tx *db.Tx, args interface{ Kind() string }) error
}

// Summary is a user as lists show them.
type Summary struct {
	ID             int64  `json:"id"`
	Username       string `json:"username"`
	ProfilePicture string `json:"profile_picture"`
	IsFollowing    bool   `json:"is_following"`
}

// Service holds the live rules.
type Service struct {
	db         *db.DB
	jobs       JobQueue
	push       Pusher
	pictureURL func(key string) string
	log        *slog.Logger
	now        func() time.Time
}

// NewService builds the service; push may be set later with SetPusher.
func NewService(d *db.DB, jobs JobQueue, pictureURL func(string) string, log *slog.Logger) *Service {
	return &Service{db: d, jobs: jobs, pictureURL: pictureURL, log: log, now: time.Now}
}

// SetPusher installs the hub.
func (s *Service) SetPusher(p Pusher) { s.push = p }

func (s *Service) toUser(ctx context.Context, userID int64, typ string, data any) {
	if s.push == nil {
		return
	}
	f, err := NewFrame(typ, data)
	if err == nil {
		err = s.push.SendToUser(ctx, userID, f)
	}
	if err != nil {
		// Live delivery is best effort: the REST state is already stored.
		s.log.WarnContext(ctx, "live delivery failed", "type", typ, "user_id", userID, "err", err)
	}
}

func (s *Service) toPost(ctx context.Context, postID int64, typ string, data any) {
	if s.push == nil {
		return
	}
	f, err := NewFrame(typ, data)
	if err == nil {
		err = s.push.SendToPost(ctx, postID, f)
	}
	if err != nil {
		s.log.WarnContext(ctx, "live delivery failed", "type", typ, "post_id", postID, "err", err)
	}
}

// Notification is one notification as API.md shapes it.
type Notification struct {
	ID             int64    `json:"id"`
	Type           string   `json:"type"`
	Actor          *Summary `json:"actor"`
	PostID         *int64   `json:"post_id"`
	CommentID      *int64   `json:"comment_id"`
	MediaID        *int64   `json:"media_id,omitempty"`
	ConversationID *int64   `json:"conversation_id,omitempty"`
	Read           bool     `json:"read"`
	CreatedAt      string   `json:"created_at"`
}

func nullable(n sql.NullInt64) *int64 {
	if !n.Valid {
		return nil
	}
	return &n.Int64
}

// Notifications lists a user's notifications, newest first.
func (s *Service) Notifications(ctx context.Context, userID int64, p page.Request) ([]Notification, string, error) {
	rows, err := s.db.Query(ctx, `SELECT n.id, n.type, n.post_id, n.comment_id, n.media_id, n.conversation_id, n.read, n.created_at,
		u.id, u.username, COALESCE(pr.picture_key, ''),
		EXISTS (SELECT 1 FROM follows fv WHERE fv.follower_id = ? AND fv.followee_id = u.id)
		FROM notifications n LEFT JOIN users u ON u.id = n.actor_id LEFT JOIN profiles pr ON pr.user_id = u.id
		WHERE n.user_id = ? AND n.id < ? ORDER BY n.id DESC LIMIT ?`, userID, userID, p.Before(), p.Limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("live: notifications: %w", err)
	}
	defer rows.Close()
	var out []Notification
	var keys []int64
	for rows.Next() {
		n, err := s.scanNotification(rows)
		if err != nil {
			return nil, "", err
		}
		out, keys = append(out, n), append(keys, n.ID)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("live: notifications: %w", err)
	}
	out, next := page.Trim(out, keys, p.Limit)
	return out, next, nil
}

func (s *Service) scanNotification(r interface{ Scan(...any) error }) (Notification, error) {
	var n Notification
	var post, comment, media, conv, actorID sql.NullInt64
	var created time.Time
	var actorName, actorPic sql.NullString
	var following sql.NullBool
	if err := r.Scan(&n.ID, &n.Type, &post, &comment, &media, &conv, &n.Read, &created, &actorID, &actorName, &actorPic, &following); err != nil {
		return n, fmt.Errorf("live: scan notification: %w", err)
	}
	n.PostID, n.CommentID, n.MediaID, n.ConversationID = nullable(post), nullable(comment), nullable(media), nullable(conv)
	n.CreatedAt = created.UTC().Format(time.RFC3339)
	if actorID.Valid {
		n.Actor = &Summary{ID: actorID.Int64, Username: actorName.String, ProfilePicture: s.pictureURL(actorPic.String), IsFollowing: following.Bool}
	}
	return n, nil
}

// UnreadCount counts a user's unread notifications.
func (s *Service) UnreadCount(ctx context.Context, userID int64) (int64, error) {
	var n int64
	if err := s.db.QueryRow(ctx, `SELECT count(*) FROM notifications WHERE user_id = ? AND read = FALSE`, userID).Scan(&n); err != nil {
		return 0, fmt.Errorf("live: unread count: %w", err)
	}
	return n, nil
}

// MarkRead marks the given notifications (all when ids is nil) read and
// returns how many stay unread. Ids of other users' notifications are
// ignored.
func (s *Service) MarkRead(ctx context.Context, userID int64, ids []int64) (int64, error) {
	q := `UPDATE notifications SET read = TRUE WHERE user_id = ? AND read = FALSE`
	args := []any{userID}
	if ids != nil {
		if len(ids) == 0 {
			return s.UnreadCount(ctx, userID)
		}
		list, idArgs := db.InList(ids)
		q += ` AND id IN (` + list + `)`
		args = append(args, idArgs...)
	}
	if _, err := s.db.Exec(ctx, q, args...); err != nil {
		return 0, fmt.Errorf("live: mark read: %w", err)
	}
	return s.UnreadCount(ctx, userID)
}

// NotifyArgs is the job that stores one notification and pushes it.
type NotifyArgs struct {
	Type           string `json:"type"`
	UserID         int64  `json:"user_id"`
	ActorID        int64  `json:"actor_id,omitempty"`
	PostID         int64  `json:"post_id,omitempty"`
	CommentID      int64  `json:"comment_id,omitempty"`
	MediaID        int64  `json:"media_id,omitempty"`
	ConversationID int64  `json:"conversation_id,omitempty"`
}

// Kind names the job.
func (NotifyArgs) Kind() string { return "live.notify" }

// NotifyFollowersArgs is the job by which earlier versions told an
// author's followers about a new post; such jobs still queued put the post
// on the fan-out queue again (post.EnqueueFanOut), which notifies whoever
// was not yet.
type NotifyFollowersArgs struct {
	PostID   int64 `json:"post_id"`
	AuthorID int64 `json:"author_id"`
}

// Kind names the job.
func (NotifyFollowersArgs) Kind() string { return "live.notify_followers" }

func zeroNull(n int64) any {
	if n == 0 {
		return nil
	}
	return n
}

// Deliver stores a notification if its cause still stands (a like may have
// been undone before the job ran) and pushes it to the recipient's sockets.
func (s *Service) Deliver(ctx context.Context, a NotifyArgs) error {
	if a.ActorID != 0 && a.ActorID == a.UserID {
		return nil // never for one's own actions
	}
	var cause string
	var causeArgs []any
	switch a.Type {
	case TypeLike:
		cause, causeArgs = `EXISTS (SELECT 1 FROM likes WHERE post_id = ? AND user_id = ?)`, []any{a.PostID, a.ActorID}
	case TypeFollow:
		cause, causeArgs = `EXISTS (SELECT 1 FROM follows WHERE follower_id = ? AND followee_id = ?)`, []any{a.ActorID, a.UserID}
	case TypeComment:
		cause, causeArgs = `EXISTS (SELECT 1 FROM comments WHERE id = ?)`, []any{a.CommentID}
	case TypeVideoReady, TypeVideoFailed:
		cause, causeArgs = `EXISTS (SELECT 1 FROM media WHERE id = ?)`, []any{a.MediaID}
	case TypeMessage:
		cause, causeArgs = `EXISTS (SELECT 1 FROM conversations WHERE id = ?)`, []any{a.ConversationID}
	default:
		return fmt.Errorf("live: unknown notification type %q", a.Type)
	}
	var id int64
	err := s.db.ExecRow(ctx, `INSERT INTO notifications (user_id, actor_id, type, post_id, comment_id, media_id, conversation_id, created_at)
		SELECT ?, ?, ?, ?, ?, ?, ?, ? WHERE `+cause+` RETURNING id`,
		append([]any{a.UserID, zeroNull(a.ActorID), a.Type, zeroNull(a.PostID), zeroNull(a.CommentID), zeroNull(a.MediaID), zeroNull(a.ConversationID), s.now().UTC()}, causeArgs...)...).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		if db.IsForeignKeyViolation(err) {
			return nil // the post, comment or user went away meanwhile
		}
		return fmt.Errorf("live: store notification: %w", err)
	}
	s.pushNotifications(ctx, `n.id = ?`, id)
	return nil
}

// pushNotifications sends stored notifications matching cond to their
// recipients' sockets.
func (s *Service) pushNotifications(ctx context.Context, cond string, args ...any) {
	if s.push == nil {
		return
	}
	rows, err := s.db.Query(ctx, `SELECT n.user_id, n.id, n.type, n.post_id, n.comment_id, n.media_id, n.conversation_id, n.read, n.created_at,
		u.id, u.username, COALESCE(pr.picture_key, ''),
		EXISTS (SELECT 1 FROM follows fv WHERE fv.follower_id = n.user_id AND fv.followee_id = u.id)
		FROM notifications n LEFT JOIN users u ON u.id = n.actor_id LEFT JOIN profiles pr ON pr.user_id = u.id
		WHERE `+cond, args...)
	if err != nil {
		s.log.WarnContext(ctx, "load notifications to push", "err", err)
		return
	}
	type item struct {
		to int64
		n  Notification
	}
	var items []item
	for rows.Next() {
		var to int64
		var n Notification
		var post, comment, media, conv, actorID sql.NullInt64
		var created time.Time
		var actorName, actorPic sql.NullString
		var following sql.NullBool
		if err := rows.Scan(&to, &n.ID, &n.Type, &post, &comment, &media, &conv, &n.Read, &created, &actorID, &actorName, &actorPic, &following); err != nil {
			break
		}
		n.PostID, n.CommentID, n.MediaID, n.ConversationID = nullable(post), nullable(comment), nullable(media), nullable(conv)
		n.CreatedAt = created.UTC().Format(time.RFC3339)
		if actorID.Valid {
			n.Actor = &Summary{ID: actorID.Int64, Username: actorName.String, ProfilePicture: s.pictureURL(actorPic.String), IsFollowing: following.Bool}
		}
		items = append(items, item{to, n})
	}
	rows.Close()
	for _, it := range items {
		s.toUser(ctx, it.to, "notification", it.n)
	}
}

// notifyBatch is how many recipients one push query serves.
const notifyBatch = 1000

// FanOutTx stores the new_post notifications of a fan-out batch inside its
// transaction (implements post.FanOutHook: from yields one row per
// follower and post) and returns the push to the recipients who are
// online. Followers who already have a post's notification are skipped,
// so a batch that runs again adds nothing.
func (s *Service) FanOutTx(ctx context.Context, tx *db.Tx, postIDs []int64, from string, args []any) (func(context.Context), error) {
	q := `INSERT INTO notifications (user_id, actor_id, type, post_id, created_at)
		SELECT f.follower_id, q.author_id, ?, q.post_id, ? ` + from + `
		AND NOT EXISTS (SELECT 1 FROM notifications x WHERE x.post_id = q.post_id AND x.user_id = f.follower_id AND x.type = ?)
		ORDER BY f.follower_id, q.post_id`
	all := append(append([]any{TypeNewPost, s.now().UTC()}, args...), TypeNewPost)
	if _, err := tx.Exec(ctx, q, all...); err != nil {
		return nil, fmt.Errorf("live: new_post notifications: %w", err)
	}
	return func(ctx context.Context) { s.pushNewPosts(ctx, postIDs) }, nil
}

// pushNewPosts pushes the new_post notifications of posts to the
// recipients who are online (most are not; a client reads its
// notifications when it connects). The recipients come from the
// notifications' (post_id, user_id) index alone; the few other
// notifications on the posts (likes, comments: for their authors) are
// filtered out by the push query.
func (s *Service) pushNewPosts(ctx context.Context, postIDs []int64) {
	if s.push == nil || len(postIDs) == 0 {
		return
	}
	posts, postArgs := db.InList(postIDs)
	to, err := s.db.QueryInt64s(ctx, `SELECT DISTINCT user_id FROM notifications WHERE post_id IN (`+posts+`)`, postArgs...)
	if err != nil {
		s.log.WarnContext(ctx, "load new_post recipients", "err", err)
		return
	}
	online := s.onlineOf(ctx, to)
	for len(online) > 0 {
		chunk := online[:min(len(online), notifyBatch)]
		online = online[len(chunk):]
		users, userArgs := db.InList(chunk)
		args := append(append(append([]any{}, postArgs...), TypeNewPost), userArgs...)
		s.pushNotifications(ctx, `n.post_id IN (`+posts+`) AND n.type = ? AND n.user_id IN (`+users+`)`, args...)
	}
}

// onlineOf is the users of ids with a socket open anywhere, or all of ids
// when the pusher cannot tell (or presence fails: a push too many is
// harmless, one too few is not).
func (s *Service) onlineOf(ctx context.Context, ids []int64) []int64 {
	o, ok := s.push.(interface {
		Online(ctx context.Context, userIDs []int64) (map[int64]bool, error)
	})
	if !ok {
		return ids
	}
	on, err := o.Online(ctx, ids)
	if err != nil {
		s.log.WarnContext(ctx, "presence unavailable; pushing to every follower", "err", err)
		return ids
	}
	var out []int64
	for _, id := range ids {
		if on[id] {
			out = append(out, id)
		}
	}
	return out
}

// forget removes notifications whose cause was undone.
func (s *Service) forget(ctx context.Context, q string, args ...any) {
	if _, err := s.db.Exec(ctx, q, args...); err != nil {
		s.log.WarnContext(ctx, "could not remove notification", "err", err)
	}
}

// enqueue schedules a job after the fact; a failure loses only the
// notification, never the action, and is logged.
func (s *Service) enqueue(ctx context.Context, args interface{ Kind() string }) {
	if err := s.jobs.Enqueue(context.WithoutCancel(ctx), nil, args); err != nil {
		s.log.ErrorContext(ctx, "could not schedule notification", "kind", args.Kind(), "err", err)
	}
}
