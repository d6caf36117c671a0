package post

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"plaza/internal/db"
	"plaza/internal/page"
)

// HomeFeed is the viewer's own posts and those of everyone they follow,
// newest first. It reads the materialised timeline (one indexed range of
// feed_entries joined to the posts: one query per page); below the
// timeline's floor, where old entries were trimmed, it reads the posts
// table directly. liked_by_me comes from the viewer's likes in memory
// when they are kept (liked.go).
func (s *Service) HomeFeed(ctx context.Context, userID int64, p page.Request) ([]Post, string, error) {
	liked, known, err := s.likedBy(ctx, userID)
	if err != nil {
		return nil, "", err
	}
	cols, viewer := homeColumns, []any{userID, userID}
	if known {
		cols, viewer = homeColumnsKnownLikes, []any{userID}
	}
	posts, err := s.pageRows(ctx, `SELECT `+cols+` FROM feed_entries fe JOIN posts p ON p.id = fe.post_id
		WHERE fe.user_id = ? AND fe.post_id < ?
		AND fe.post_id > COALESCE((SELECT floor_post_id FROM feeds WHERE user_id = ?), 0)
		ORDER BY fe.post_id DESC LIMIT ?`, append(viewer, userID, p.Before(), userID, p.Limit+1)...)
	if err != nil {
		return nil, "", fmt.Errorf("post: home feed: %w", err)
	}
	if len(posts) <= p.Limit {
		floor, err := s.feedFloor(ctx, userID)
		if err != nil {
			return nil, "", err
		}
		if floor > 0 {
			before := min(p.Before(), floor+1)
			if len(posts) > 0 {
				before = min(before, posts[len(posts)-1].ID)
			}
			older, err := s.pageRows(ctx, `SELECT `+cols+` FROM posts p
				WHERE (p.author_id = ? OR p.author_id IN (SELECT followee_id FROM follows WHERE follower_id = ?))
				AND p.id < ? ORDER BY p.id DESC LIMIT ?`, append(viewer, userID, userID, before, p.Limit+1-len(posts))...)
			if err != nil {
				return nil, "", fmt.Errorf("post: home feed (old): %w", err)
			}
			posts = append(posts, older...)
		}
	}
	keys := make([]int64, len(posts))
	for i := range posts {
		keys[i] = posts[i].ID
		if known {
			posts[i].LikedByMe = liked.has(posts[i].ID)
		}
	}
	posts, next := page.Trim(posts, keys, p.Limit)
	return posts, next, nil
}

func (s *Service) feedFloor(ctx context.Context, userID int64) (int64, error) {
	var floor int64
	err := s.db.QueryRow(ctx, `SELECT floor_post_id FROM feeds WHERE user_id = ?`, userID).Scan(&floor)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("post: feed floor: %w", err)
	}
	return floor, nil
}

// Followed copies the followee's recent posts into the follower's feed, in
// the follow transaction (implements social.FeedHooks). When the followee
// has more than FollowBackfill posts above the feed's floor, the floor is
// raised so that older pages come from the posts table, complete.
func (s *Service) Followed(ctx context.Context, tx *db.Tx, followerID, followeeID int64) error {
	var floor int64
	err := tx.QueryRow(ctx, `SELECT floor_post_id FROM feeds WHERE user_id = ?`, followerID).Scan(&floor)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("post: backfill: %w", err)
	}
	var lowest sql.NullInt64
	var n int
	if err := tx.QueryRow(ctx, `SELECT min(id), count(*) FROM (SELECT id FROM posts WHERE author_id = ? AND id > ? ORDER BY id DESC LIMIT ?) b`,
		followeeID, floor, s.cfg.FollowBackfill+1).Scan(&lowest, &n); err != nil {
		return fmt.Errorf("post: backfill: %w", err)
	}
	if n == 0 {
		return nil
	}
	if n > s.cfg.FollowBackfill {
		// One more post exists than we copy: everything at or below the
		// lowest id fetched is served from the posts table from now on.
		if err := setFloor(ctx, tx, followerID, lowest.Int64); err != nil {
			return err
		}
		floor = lowest.Int64
	}
	if _, err := tx.Exec(ctx, `INSERT INTO feed_entries (user_id, post_id, author_id)
		SELECT ?, id, author_id FROM posts WHERE author_id = ? AND id > ?
		ON CONFLICT DO NOTHING`, followerID, followeeID, floor); err != nil {
		return fmt.Errorf("post: backfill: %w", err)
	}
	return nil
}

// Unfollowed removes the followee's posts from the follower's feed.
func (s *Service) Unfollowed(ctx context.Context, tx *db.Tx, followerID, followeeID int64) error {
	if _, err := tx.Exec(ctx, `DELETE FROM feed_entries WHERE user_id = ? AND post_id IN (SELECT id FROM posts WHERE author_id = ?)`,
		followerID, followeeID); err != nil {
		return fmt.Errorf("post: remove from feed: %w", err)
	}
	return nil
}

func setFloor(ctx context.Context, tx *db.Tx, userID, floor int64) error {
	if _, err := tx.Exec(ctx, `INSERT INTO feeds (user_id, floor_post_id) VALUES (?, ?)
		ON CONFLICT (user_id) DO UPDATE SET floor_post_id =
		CASE WHEN excluded.floor_post_id > feeds.floor_post_id THEN excluded.floor_post_id ELSE feeds.floor_post_id END`, userID, floor); err != nil {
		return fmt.Errorf("post: set feed floor: %w", err)
	}
	return nil
}

// TrimFeeds keeps at most FeedKeep entries in each materialised feed of
// the users in (afterUserID, afterUserID+batch], raising floors to match.
// It returns the last user id examined (0 when done).
func (s *Service) TrimFeeds(ctx context.Context, afterUserID int64, batch int) (int64, error) {
	ids, err := s.db.QueryInt64s(ctx, `SELECT id FROM users WHERE id > ? ORDER BY id LIMIT ?`, afterUserID, batch)
	if err != nil {
		return 0, fmt.Errorf("post: trim feeds: %w", err)
	}
	for _, id := range ids {
		var cut int64
		err := s.db.QueryRow(ctx, `SELECT post_id FROM feed_entries WHERE user_id = ? ORDER BY post_id DESC LIMIT 1 OFFSET ?`, id, s.cfg.FeedKeep).Scan(&cut)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("post: trim feeds: %w", err)
		}
		if err := s.db.InTx(ctx, func(tx *db.Tx) error {
			if err := setFloor(ctx, tx, id, cut); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `DELETE FROM feed_entries WHERE user_id = ? AND post_id <= ?`, id, cut)
			return err
		}); err != nil {
			return 0, fmt.Errorf("post: trim feed of %d: %w", id, err)
		}
	}
	if len(ids) < batch {
		return 0, nil
	}
	return ids[len(ids)-1], nil
}

// RebuildFeed recreates a user's materialised feed from the posts table
// with the newest FeedKeep entries (used by the seeder and for repairs).
func (s *Service) RebuildFeed(ctx context.Context, userID int64) error {
	return s.db.InTx(ctx, func(tx *db.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM feed_entries WHERE user_id = ?`, userID); err != nil {
			return fmt.Errorf("post: rebuild feed: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO feed_entries (user_id, post_id, author_id)
			SELECT ?, p.id, p.author_id FROM posts p
			WHERE p.author_id = ? OR p.author_id IN (SELECT followee_id FROM follows WHERE follower_id = ?)
			ORDER BY p.id DESC LIMIT ?`, userID, userID, userID, s.cfg.FeedKeep); err != nil {
			return fmt.Errorf("post: rebuild feed: %w", err)
		}
		var lowest sql.NullInt64
		var n int
		if err := tx.QueryRow(ctx, `SELECT min(post_id), count(*) FROM feed_entries WHERE user_id = ?`, userID).Scan(&lowest, &n); err != nil {
			return fmt.Errorf("post: rebuild feed: %w", err)
		}
		floor := int64(0)
		if n >= s.cfg.FeedKeep && lowest.Valid {
			floor = lowest.Int64 - 1
		}
		if _, err := tx.Exec(ctx, `INSERT INTO feeds (user_id, floor_post_id) VALUES (?, ?)
			ON CONFLICT (user_id) DO UPDATE SET floor_post_id = excluded.floor_post_id`, userID, floor); err != nil {
			return fmt.Errorf("post: rebuild feed: %w", err)
		}
		return nil
	})
}
