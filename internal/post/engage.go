package post

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"plaza/internal/db"
	"plaza/internal/page"
)

// Like records userID's like of a post and returns the new count; created
// is false when it was already liked. Insert and counter move in one
// transaction (on PostgreSQL one statement: likeStatement), so the count
// stays exact under any concurrency.
func (s *Service) Like(ctx context.Context, userID, postID int64) (count int64, created bool, err error) {
	if s.db.Dialect() == db.Postgres {
		return s.likeStatement(ctx, userID, postID)
	}
	var p Post
	var after func(context.Context)
	err = s.db.InTx(ctx, func(tx *db.Tx) error {
		after = nil // a retried transaction starts over
		res, err := tx.Exec(ctx, `INSERT INTO likes (post_id, user_id, created_at)
			SELECT ?, ?, ? WHERE EXISTS (SELECT 1 FROM posts WHERE id = ?)
			ON CONFLICT DO NOTHING`, postID, userID, s.now().UTC(), postID)
		if err != nil {
			return fmt.Errorf("post: like: %w", err)
		}
		n, _ := res.RowsAffected()
		created = n == 1
		if err := s.moveLikes(ctx, tx, postID, created, 1, &p); err != nil {
			return err
		}
		if te, ok := s.events.(TxEvents); ok && created {
			after, err = te.LikedTx(ctx, tx, userID, p)
			return err
		}
		return nil
	})
	if err == nil && created {
		s.liked(ctx, userID, p, after)
	}
	return p.LikesCount, created, err
}

// liked runs what follows a committed like: the viewer's kept likes are
// dropped, the stored notification pushed (push, may be nil) and the
// events told.
func (s *Service) liked(ctx context.Context, userID int64, p Post, push func(context.Context)) {
	s.cards.liked.Changed(ctx, userID)
	if push != nil {
		push(ctx)
	}
	if s.events != nil {
		s.events.Liked(ctx, userID, p)
	}
}

// unliked runs what follows a committed unlike that removed a like.
func (s *Service) unliked(ctx context.Context, userID int64, p Post) {
	s.cards.liked.Changed(ctx, userID)
	if s.events != nil {
		s.events.Unliked(ctx, userID, p)
	}
}

// Unlike removes userID's like (if any) and returns the new count.
func (s *Service) Unlike(ctx context.Context, userID, postID int64) (count int64, err error) {
	if s.db.Dialect() == db.Postgres {
		return s.unlikeStatement(ctx, userID, postID)
	}
	var removed bool
	var p Post
	err = s.db.InTx(ctx, func(tx *db.Tx) error {
		res, err := tx.Exec(ctx, `DELETE FROM likes WHERE post_id = ? AND user_id = ?`, postID, userID)
		if err != nil {
			return fmt.Errorf("post: unlike: %w", err)
		}
		n, _ := res.RowsAffected()
		removed = n == 1
		if err := s.moveLikes(ctx, tx, postID, removed, -1, &p); err != nil {
			return err
		}
		if te, ok := s.events.(TxEvents); ok && removed {
			return te.UnlikedTx(ctx, tx, userID, p)
		}
		return nil
	})
	if err == nil && removed {
		s.unliked(ctx, userID, p)
	}
	return p.LikesCount, err
}

// likeStatements builds PostgreSQL's like and unlike statements around
// the notification SQL of events (StatementEvents; none otherwise). In
// one statement (data-modifying CTEs) a like inserts the like, moves the
// counter, stores the notification and reads back the counters, in one
// round trip without BEGIN and COMMIT: five round trips cost twice
// PostgreSQL's CPU (docs/performance.md). The statement is atomic as the
// transaction was.
func likeStatements(events Events) (like, unlike string) {
	notice, withdraw := `SELECT 0::bigint AS id WHERE false`, `SELECT 1 WHERE false`
	if se, ok := events.(StatementEvents); ok {
		notice, withdraw = se.LikedSQL(), se.UnlikedSQL()
	}
	like = `WITH p AS (SELECT id, author_id, likes_count, comments_count FROM posts WHERE id = ?),
		ins AS (INSERT INTO likes (post_id, user_id, created_at) SELECT id, ?, ? FROM p ON CONFLICT DO NOTHING RETURNING post_id),
		liked AS (UPDATE posts SET likes_count = likes_count + 1 WHERE id IN (SELECT post_id FROM ins)
			RETURNING id AS post_id, author_id, likes_count, comments_count, CAST(? AS bigint) AS user_id, CAST(? AS timestamptz) AS created_at),
		notice AS (` + notice + `)
		SELECT p.id, p.author_id, COALESCE(liked.likes_count, p.likes_count), COALESCE(liked.comments_count, p.comments_count),
			liked.post_id IS NOT NULL, COALESCE((SELECT id FROM notice), 0)
		FROM p LEFT JOIN liked ON true`
	unlike = `WITH p AS (SELECT id, author_id, likes_count, comments_count FROM posts WHERE id = ?),
		del AS (DELETE FROM likes WHERE post_id = ? AND user_id = ? RETURNING post_id),
		unliked AS (UPDATE posts SET likes_count = likes_count - 1 WHERE id IN (SELECT post_id FROM del)
			RETURNING id AS post_id, author_id, likes_count, comments_count, CAST(? AS bigint) AS user_id),
		withdrawn AS (` + withdraw + `)
		SELECT p.id, p.author_id, COALESCE(unliked.likes_count, p.likes_count), COALESCE(unliked.comments_count, p.comments_count),
			unliked.post_id IS NOT NULL
		FROM p LEFT JOIN unliked ON true`
	return like, unlike
}

// likeStatement is Like on PostgreSQL (likeStatements). A like of a post
// deleted meanwhile fails its foreign key: not found.
func (s *Service) likeStatement(ctx context.Context, userID, postID int64) (count int64, created bool, err error) {
	var p Post
	var noticeID int64
	now := s.now().UTC()
	err = s.db.ExecRow(ctx, s.likeSQL, postID, userID, now, userID, now).
		Scan(&p.ID, &p.Author.ID, &p.LikesCount, &p.CommentsCount, &created, &noticeID)
	if errors.Is(err, sql.ErrNoRows) || db.IsForeignKeyViolation(err) {
		return 0, false, ErrNotFound
	}
	if err != nil {
		return 0, false, fmt.Errorf("post: like: %w", err)
	}
	if !created {
		return p.LikesCount, false, nil
	}
	var push func(context.Context)
	if se, ok := s.events.(StatementEvents); ok && noticeID != 0 {
		push = func(ctx context.Context) { se.LikeNoticed(ctx, noticeID, userID, p) }
	}
	s.liked(ctx, userID, p, push)
	return p.LikesCount, true, nil
}

// unlikeStatement is Unlike on PostgreSQL (likeStatements).
func (s *Service) unlikeStatement(ctx context.Context, userID, postID int64) (count int64, err error) {
	var p Post
	var removed bool
	err = s.db.ExecRow(ctx, s.unlikeSQL, postID, postID, userID, userID).
		Scan(&p.ID, &p.Author.ID, &p.LikesCount, &p.CommentsCount, &removed)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, ErrNotFound
	}
	if err != nil {
		return 0, fmt.Errorf("post: unlike: %w", err)
	}
	if removed {
		s.unliked(ctx, userID, p)
	}
	return p.LikesCount, nil
}

// moveLikes moves the like counter when changed and reads back what the
// like events need (id, author, both counters) in the same statement, so a
// like costs no extra read of the post.
func (s *Service) moveLikes(ctx context.Context, tx *db.Tx, postID int64, changed bool, delta int, p *Post) error {
	var err error
	if changed {
		err = tx.QueryRow(ctx, `UPDATE posts SET likes_count = likes_count + ? WHERE id = ?
			RETURNING id, author_id, likes_count, comments_count`, delta, postID).Scan(&p.ID, &p.Author.ID, &p.LikesCount, &p.CommentsCount)
	} else {
		err = tx.QueryRow(ctx, `SELECT id, author_id, likes_count, comments_count FROM posts WHERE id = ?`, postID).
			Scan(&p.ID, &p.Author.ID, &p.LikesCount, &p.CommentsCount)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("post: count likes: %w", err)
	}
	return nil
}

// Comments lists a post's comments, oldest first.
func (s *Service) Comments(ctx context.Context, viewerID, postID int64, p page.Request) ([]Comment, string, error) {
	if err := s.exists(ctx, postID); err != nil {
		return nil, "", err
	}
	rows, err := s.db.Query(ctx, `SELECT c.id, c.post_id, c.content, c.created_at, u.id, u.username, COALESCE(pr.picture_key, ''),
		EXISTS (SELECT 1 FROM follows fv WHERE fv.follower_id = ? AND fv.followee_id = u.id)
		FROM comments c JOIN users u ON u.id = c.author_id LEFT JOIN profiles pr ON pr.user_id = u.id
		WHERE c.post_id = ? AND c.id > ? ORDER BY c.id LIMIT ?`, viewerID, postID, p.After(), p.Limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("post: comments: %w", err)
	}
	defer rows.Close()
	var out []Comment
	var keys []int64
	for rows.Next() {
		var c Comment
		if err := rows.Scan(&c.ID, &c.PostID, &c.Content, &c.CreatedAt, &c.Author.ID, &c.Author.Username, &c.Author.PictureKey, &c.Author.IsFollowing); err != nil {
			return nil, "", fmt.Errorf("post: comments: %w", err)
		}
		out, keys = append(out, c), append(keys, c.ID)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("post: comments: %w", err)
	}
	out, next := page.Trim(out, keys, p.Limit)
	return out, next, nil
}

func (s *Service) exists(ctx context.Context, postID int64) error {
	var one int
	err := s.db.QueryRow(ctx, `SELECT 1 FROM posts WHERE id = ?`, postID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("post: find: %w", err)
	}
	return nil
}

// AddComment comments on a post.
func (s *Service) AddComment(ctx context.Context, userID, postID int64, content string) (Comment, error) {
	if strings.TrimSpace(content) == "" {
		return Comment{}, &ValidationError{Fields: map[string][]string{"content": {"This field is required."}}}
	}
	if utf8.RuneCountInString(content) > MaxCommentLen {
		return Comment{}, &ValidationError{Fields: map[string][]string{"content": {fmt.Sprintf("At most %d characters.", MaxCommentLen)}}}
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	c := Comment{PostID: postID, Content: content, CreatedAt: now}
	err := s.db.InTx(ctx, func(tx *db.Tx) error {
		err := tx.QueryRow(ctx, `INSERT INTO comments (post_id, author_id, content, created_at)
			SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM posts WHERE id = ?) RETURNING id`,
			postID, userID, content, now, postID).Scan(&c.ID)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("post: comment: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE posts SET comments_count = comments_count + 1 WHERE id = ?`, postID); err != nil {
			return fmt.Errorf("post: count comments: %w", err)
		}
		return tx.QueryRow(ctx, `SELECT u.id, u.username, COALESCE(pr.picture_key, '') FROM users u LEFT JOIN profiles pr ON pr.user_id = u.id WHERE u.id = ?`,
			userID).Scan(&c.Author.ID, &c.Author.Username, &c.Author.PictureKey)
	})
	if err != nil {
		return Comment{}, err
	}
	if s.events != nil {
		if p, gerr := s.Get(ctx, userID, postID); gerr == nil {
			s.events.Commented(ctx, c, p)
		}
	}
	return c, nil
}

// DeleteComment removes a comment; its author and the post's author may.
func (s *Service) DeleteComment(ctx context.Context, userID, commentID int64) error {
	var c Comment
	var postAuthor int64
	err := s.db.InTx(ctx, func(tx *db.Tx) error {
		err := tx.QueryRow(ctx, `SELECT c.post_id, c.author_id, p.author_id FROM comments c JOIN posts p ON p.id = c.post_id WHERE c.id = ?`,
			commentID).Scan(&c.PostID, &c.Author.ID, &postAuthor)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("post: find comment: %w", err)
		}
		if userID != c.Author.ID && userID != postAuthor {
			return ErrForbidden
		}
		c.ID = commentID
		if _, err := tx.Exec(ctx, `DELETE FROM comments WHERE id = ?`, commentID); err != nil {
			return fmt.Errorf("post: delete comment: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE posts SET comments_count = comments_count - 1 WHERE id = ?`, c.PostID); err != nil {
			return fmt.Errorf("post: count comments: %w", err)
		}
		return nil
	})
	if err == nil && s.events != nil {
		if p, gerr := s.Get(ctx, userID, c.PostID); gerr == nil {
			s.events.CommentDeleted(ctx, c, p)
		}
	}
	return err
}

// BeforeUserDelete fixes the counters of other people's posts that the
// user liked or commented on; the likes, comments and the user's own posts
// cascade. The user's posts' media are detached for removal after commit.
func (s *Service) BeforeUserDelete(ctx context.Context, tx *db.Tx, userID int64) (func(context.Context), error) {
	if _, err := tx.Exec(ctx, `UPDATE posts SET likes_count = likes_count - 1
		WHERE id IN (SELECT post_id FROM likes WHERE user_id = ?) AND author_id <> ?`, userID, userID); err != nil {
		return nil, fmt.Errorf("post: forget user: %w", err)
	}
	if _, err := tx.Exec(ctx, `UPDATE posts SET comments_count = comments_count -
		(SELECT count(*) FROM comments c WHERE c.post_id = posts.id AND c.author_id = ?)
		WHERE id IN (SELECT post_id FROM comments WHERE author_id = ?) AND author_id <> ?`, userID, userID, userID); err != nil {
		return nil, fmt.Errorf("post: forget user: %w", err)
	}
	if s.media == nil {
		return nil, nil
	}
	ids, err := tx.QueryInt64s(ctx, `SELECT id FROM posts WHERE author_id = ?`, userID)
	if err != nil {
		return nil, fmt.Errorf("post: forget user: %w", err)
	}
	var afters []func(context.Context)
	for _, id := range ids {
		after, err := s.media.Detach(ctx, tx, id)
		if err != nil {
			return nil, err
		}
		if after != nil {
			afters = append(afters, after)
		}
	}
	return func(ctx context.Context) {
		for _, a := range afters {
			a(ctx)
		}
	}, nil
}
