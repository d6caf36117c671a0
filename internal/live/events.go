package live

import (
	"context"
	"fmt"
	"time"

	"plaza/internal/db"
	"plaza/internal/media"
	"plaza/internal/post"
)

// The live service receives the other domains' events (after their
// transactions commit): counts and comments go to the sockets watching a
// post at once; notifications are stored and pushed by jobs.

type postStats struct {
	PostID        int64 `json:"post_id"`
	LikesCount    int64 `json:"likes_count"`
	CommentsCount int64 `json:"comments_count"`
}

func stats(p post.Post) postStats {
	return postStats{PostID: p.ID, LikesCount: p.LikesCount, CommentsCount: p.CommentsCount}
}

// PostCreated has nothing to do: the post's fan-out, queued with the
// post, tells the followers (FanOutTx).
func (s *Service) PostCreated(context.Context, post.Post) {}

// Liked updates the post's watchers (the author's notification was
// scheduled with the like: LikedTx).
func (s *Service) Liked(ctx context.Context, userID int64, p post.Post) {
	s.toPost(ctx, p.ID, "post.stats", stats(p))
}

// LikedTx stores the like notification in the like's own transaction (no
// job: a queued job cost as much as the like itself, and the like's
// transaction already proves the cause) and returns its push, run after
// commit.
func (s *Service) LikedTx(ctx context.Context, tx *db.Tx, userID int64, p post.Post) (func(context.Context), error) {
	if userID == p.Author.ID {
		return nil, nil
	}
	var id int64
	if err := tx.QueryRow(ctx, `INSERT INTO notifications (user_id, actor_id, type, post_id, created_at) VALUES (?, ?, ?, ?, ?) RETURNING id`,
		p.Author.ID, userID, TypeLike, p.ID, s.now().UTC()).Scan(&id); err != nil {
		return nil, fmt.Errorf("live: store like notification: %w", err)
	}
	return func(ctx context.Context) { s.LikeNoticed(ctx, id, userID, p) }, nil
}

// LikedSQL is LikedTx's insert as part of the like's own statement
// (post.StatementEvents, PostgreSQL).
func (s *Service) LikedSQL() string {
	return `INSERT INTO notifications (user_id, actor_id, type, post_id, created_at)
		SELECT author_id, user_id, '` + TypeLike + `', post_id, created_at FROM liked WHERE author_id <> user_id RETURNING id`
}

// UnlikedSQL is UnlikedTx's delete as part of the unlike's own statement.
func (s *Service) UnlikedSQL() string {
	return `DELETE FROM notifications n USING unliked u
		WHERE n.type = '` + TypeLike + `' AND n.actor_id = u.user_id AND n.post_id = u.post_id`
}

// LikeNoticed pushes a stored like notification, only when the author has
// a socket open: the query that builds the push cost as much as the like
// itself.
func (s *Service) LikeNoticed(ctx context.Context, noticeID, _ int64, p post.Post) {
	if len(s.onlineOf(ctx, []int64{p.Author.ID})) > 0 {
		s.pushNotifications(ctx, `n.id = ?`, noticeID)
	}
}

// Unliked updates the watchers.
func (s *Service) Unliked(ctx context.Context, userID int64, p post.Post) {
	s.toPost(ctx, p.ID, "post.stats", stats(p))
}

// UnlikedTx withdraws the like notification with the unlike.
func (s *Service) UnlikedTx(ctx context.Context, tx *db.Tx, userID int64, p post.Post) error {
	if _, err := tx.Exec(ctx, `DELETE FROM notifications WHERE type = ? AND actor_id = ? AND post_id = ?`, TypeLike, userID, p.ID); err != nil {
		return fmt.Errorf("live: withdraw like notification: %w", err)
	}
	return nil
}

type commentFrame struct {
	ID        int64   `json:"id"`
	PostID    int64   `json:"post_id"`
	Author    Summary `json:"author"`
	Content   string  `json:"content"`
	CreatedAt string  `json:"created_at"`
}

// Commented sends the comment and new counts to the post's watchers and
// notifies the post's author.
func (s *Service) Commented(ctx context.Context, c post.Comment, p post.Post) {
	s.toPost(ctx, p.ID, "comment.created", commentFrame{
		ID: c.ID, PostID: p.ID, Content: c.Content, CreatedAt: c.CreatedAt.UTC().Format(time.RFC3339),
		Author: Summary{ID: c.Author.ID, Username: c.Author.Username, ProfilePicture: s.pictureURL(c.Author.PictureKey)},
	})
	s.toPost(ctx, p.ID, "post.stats", stats(p))
	if c.Author.ID != p.Author.ID {
		s.enqueue(ctx, NotifyArgs{Type: TypeComment, UserID: p.Author.ID, ActorID: c.Author.ID, PostID: p.ID, CommentID: c.ID})
	}
}

// CommentDeleted updates the counts (its notification went with it).
func (s *Service) CommentDeleted(ctx context.Context, _ post.Comment, p post.Post) {
	s.toPost(ctx, p.ID, "post.stats", stats(p))
}

// PostDeleted needs nothing: notifications of the post cascade.
func (s *Service) PostDeleted(context.Context, post.Post) {}

// Followed notifies the followed user.
func (s *Service) Followed(ctx context.Context, followerID, followeeID int64) {
	s.enqueue(ctx, NotifyArgs{Type: TypeFollow, UserID: followeeID, ActorID: followerID})
}

// Unfollowed withdraws the follow notification.
func (s *Service) Unfollowed(ctx context.Context, followerID, followeeID int64) {
	s.forget(ctx, `DELETE FROM notifications WHERE type = ? AND actor_id = ? AND user_id = ?`, TypeFollow, followerID, followeeID)
}

type mediaProgress struct {
	MediaID  int64  `json:"media_id"`
	Status   string `json:"status"`
	Progress int    `json:"progress"`
}

// MediaProgress tells the owner how processing goes.
func (s *Service) MediaProgress(ctx context.Context, it media.Item) {
	s.toUser(ctx, it.OwnerID, "media.progress", mediaProgress{MediaID: it.ID, Status: it.Status, Progress: it.Progress})
}

// VideoReady tells and notifies the owner.
func (s *Service) VideoReady(ctx context.Context, it media.Item) {
	s.MediaProgress(ctx, it)
	s.enqueue(ctx, NotifyArgs{Type: TypeVideoReady, UserID: it.OwnerID, MediaID: it.ID})
}

// VideoFailed tells and notifies the owner.
func (s *Service) VideoFailed(ctx context.Context, it media.Item) {
	s.MediaProgress(ctx, it)
	s.enqueue(ctx, NotifyArgs{Type: TypeVideoFailed, UserID: it.OwnerID, MediaID: it.ID})
}

// Like notifications are scheduled in the like's transaction (post checks
// for this interface at run time, so keep it implemented).
var _ post.TxEvents = (*Service)(nil)
