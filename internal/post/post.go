// Package post owns posts, comments, likes, hashtags, the home and global
// feeds and trends.
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
	"plaza/internal/media"
	"plaza/internal/page"
)

// Errors the HTTP layer maps to answers.
var (
	ErrNotFound  = errors.New("post: not found")
	ErrForbidden = errors.New("post: not allowed")
)

// Limits of post text, in characters.
const (
	MaxTitleLen   = 200
	MaxContentLen = 10000
	MaxCommentLen = 2000
)

// Author is the short form of a user on a post or comment.
type Author struct {
	ID          int64
	Username    string
	PictureKey  string
	IsFollowing bool
}

// Post is a post as a viewer sees it.
type Post struct {
	ID            int64
	Author        Author
	Title         string
	Content       string
	Media         []media.Item
	LikesCount    int64
	CommentsCount int64
	LikedByMe     bool
	hasMedia      bool   // read with the post, so text-only pages skip the media query
	version       string // updated_at as the page query read it (cards)
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// Comment is a comment on a post.
type Comment struct {
	ID        int64
	PostID    int64
	Author    Author
	Content   string
	CreatedAt time.Time
}

// ValidationError carries per-field messages.
type ValidationError struct{ Fields map[string][]string }

func (e *ValidationError) Error() string { return "post: invalid input" }

// Events receives what happened, after commit (notifications and live
// updates hang off it); every method must return quickly.
type Events interface {
	PostCreated(ctx context.Context, p Post)
	// Liked and Unliked get a partial Post: ID, Author.ID and the counters.
	Liked(ctx context.Context, userID int64, p Post)
	Unliked(ctx context.Context, userID int64, p Post)
	Commented(ctx context.Context, c Comment, p Post)
	CommentDeleted(ctx context.Context, c Comment, p Post)
	PostDeleted(ctx context.Context, p Post)
}

// TxEvents is implemented by Events that have work which must commit with
// a like or unlike (storing or withdrawing its notification): it runs
// inside the action's transaction, so a like costs one commit, and the
// notification exists exactly when the like does. LikedTx may return work
// to run once the like has committed (pushing the stored notification).
type TxEvents interface {
	LikedTx(ctx context.Context, tx *db.Tx, userID int64, p Post) (after func(context.Context), err error)
	UnlikedTx(ctx context.Context, tx *db.Tx, userID int64, p Post) error
}

// StatementEvents are TxEvents whose like work can also be written as SQL
// that rides in the like's own statement, as PostgreSQL runs likes
// (likeStatement). Either form must do the same work.
type StatementEvents interface {
	TxEvents
	// LikedSQL stores the like's notification: a data-modifying statement
	// that reads the CTE liked(post_id, author_id, likes_count,
	// comments_count, user_id, created_at) and returns the notification's
	// id as column id (no row when none is stored).
	LikedSQL() string
	// UnlikedSQL withdraws it, reading unliked(post_id, author_id,
	// likes_count, comments_count, user_id).
	UnlikedSQL() string
	// LikeNoticed runs once the like has committed, with the id of the
	// notification stored (pushing it, as LikedTx's after does).
	LikeNoticed(ctx context.Context, noticeID, userID int64, p Post)
}

// MediaAttacher links uploaded media to posts (implemented by package
// media); nil until media exists.
type MediaAttacher interface {
	// Attach claims mediaIDs for postID inside tx: each must belong to
	// ownerID and be unattached.
	Attach(ctx context.Context, tx *db.Tx, ownerID, postID int64, mediaIDs []int64) error
	// Attached is called after the attaching transaction commits (cached
	// copies of the items must learn their new post).
	Attached(ctx context.Context, mediaIDs []int64)
	// ForPosts returns the media of each post, in order.
	ForPosts(ctx context.Context, postIDs []int64) (map[int64][]media.Item, error)
	// Detach is called inside the delete transaction and returns the
	// storage cleanup to run after commit.
	Detach(ctx context.Context, tx *db.Tx, postID int64) (after func(context.Context), err error)
}

// FanOutArgs is the job, one per post, by which earlier versions fanned
// posts out; such jobs still queued now put their post on the fan-out
// queue (fanout.go).
type FanOutArgs struct {
	PostID   int64 `json:"post_id"`
	AuthorID int64 `json:"author_id,omitempty"` // 0 in jobs queued before it was added
}

// Kind names the job for River.
func (FanOutArgs) Kind() string { return "post.fan_out" }

// Config tunes the feeds.
type Config struct {
	// FeedKeep is how many entries a materialised home feed keeps; older
	// pages are read from the posts table directly.
	FeedKeep int
	// FollowBackfill is how many of a newly followed user's posts are
	// copied into the follower's feed at once.
	FollowBackfill int
	// FanOutRows bounds the follower rows one fan-out transaction writes
	// (default 5,000).
	FanOutRows int
	// CacheTTL bounds how long an author's name and picture stay in
	// memory (0: no caching); see cards.
	CacheTTL time.Duration
}

// Service holds the post rules.
type Service struct {
	db     *db.DB
	events Events
	media  MediaAttacher
	cfg    Config
	cards  cards
	now    func() time.Time

	fanOutHook FanOutHook
	fanOutKick chan struct{} // wakes RunFanOut when this process queued a post

	// likeSQL and unlikeSQL are PostgreSQL's like and unlike statements
	// with the events' SQL in them, built when the events are set.
	likeSQL, unlikeSQL string
}

// NewService builds the service; events and media may be nil.
func NewService(d *db.DB, events Events, media MediaAttacher, cfg Config) *Service {
	if cfg.FeedKeep <= 0 {
		cfg.FeedKeep = 1000
	}
	if cfg.FanOutRows <= 0 {
		cfg.FanOutRows = 5000
	}
	if cfg.FollowBackfill <= 0 {
		cfg.FollowBackfill = 200
	}
	s := &Service{db: d, media: media, cfg: cfg, cards: newCards(cfg.CacheTTL), now: time.Now,
		fanOutKick: make(chan struct{}, 1)}
	s.SetEvents(events)
	return s
}

// SetEvents installs the receiver of post events (wired after construction
// because the live package depends on this one).
func (s *Service) SetEvents(e Events) {
	s.events = e
	s.likeSQL, s.unlikeSQL = likeStatements(e)
}

// SetMedia installs the media attacher.
func (s *Service) SetMedia(m MediaAttacher) { s.media = m }

// Input is what a client sends to create or edit a post.
type Input struct {
	Title    *string
	Content  *string
	MediaIDs []int64
}

func validateText(title, content *string, requireSomething bool, mediaCount int) error {
	f := map[string][]string{}
	if title != nil && utf8.RuneCountInString(*title) > MaxTitleLen {
		f["title"] = append(f["title"], fmt.Sprintf("At most %d characters.", MaxTitleLen))
	}
	if content != nil && utf8.RuneCountInString(*content) > MaxContentLen {
		f["content"] = append(f["content"], fmt.Sprintf("At most %d characters.", MaxContentLen))
	}
	if requireSomething && (content == nil || strings.TrimSpace(*content) == "") && mediaCount == 0 {
		f["content"] = append(f["content"], "A post needs content or media.")
	}
	if len(f) > 0 {
		return &ValidationError{Fields: f}
	}
	return nil
}

// Create publishes a post: the post, its hashtags, the author's own feed
// entry and its place on the fan-out queue (fanout.go), in one transaction.
func (s *Service) Create(ctx context.Context, authorID int64, in Input) (Post, error) {
	if err := validateText(in.Title, in.Content, true, len(in.MediaIDs)); err != nil {
		return Post{}, err
	}
	if len(in.MediaIDs) > 10 {
		return Post{}, &ValidationError{Fields: map[string][]string{"media_ids": {"At most 10 media per post."}}}
	}
	title, content := deref(in.Title), deref(in.Content)
	// Stored times have microseconds: the answer shows what later reads do.
	now := s.now().UTC().Truncate(time.Microsecond)
	var id int64
	var version string
	var err error
	if s.db.Dialect() == db.Postgres && len(in.MediaIDs) == 0 {
		id, version, err = s.createStatement(ctx, authorID, title, content, now)
	} else {
		id, version, err = s.createTx(ctx, authorID, title, content, now, in.MediaIDs)
	}
	if err != nil {
		return Post{}, err
	}
	s.kickFanOut()
	if len(in.MediaIDs) > 0 {
		s.media.Attached(ctx, in.MediaIDs)
	}
	// The new post is known whole: its card goes to memory and the answer
	// is built from it (the author's name and picture, and media, are
	// read as for any page), instead of reading the post back.
	c := card{
		authorID: authorID, title: title, content: content, createdAt: now, updatedAt: now,
		version: version, hasMedia: len(in.MediaIDs) > 0,
	}
	s.cards.posts.SetIfCurrent(s.cards.posts.Generation(), id, c)
	posts, err := s.complete(ctx, []Post{{ID: id, Author: Author{ID: authorID}, version: version}}, map[int64]card{id: c})
	if err != nil {
		return Post{}, err
	}
	if len(posts) == 0 {
		return Post{}, ErrNotFound // deleted at once by another request
	}
	p := posts[0]
	if s.events != nil {
		s.events.PostCreated(ctx, p)
	}
	return p, nil
}

// createTx stores a post, its hashtags, the author's own feed entry, its
// media and its place on the fan-out queue in one transaction.
func (s *Service) createTx(ctx context.Context, authorID int64, title, content string, now time.Time, mediaIDs []int64) (id int64, version string, err error) {
	err = s.db.InTx(ctx, func(tx *db.Tx) error {
		if err := tx.QueryRow(ctx, `INSERT INTO posts (author_id, title, content, created_at, updated_at) VALUES (?, ?, ?, ?, ?)
			RETURNING id, updated_at || ''`, authorID, title, content, now, now).Scan(&id, &version); err != nil {
			return fmt.Errorf("post: create: %w", err)
		}
		if err := insertTags(ctx, tx, id, authorID, title+"\n"+content, now); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO feed_entries (user_id, post_id, author_id) VALUES (?, ?, ?)`, authorID, id, authorID); err != nil {
			return fmt.Errorf("post: own feed entry: %w", err)
		}
		if len(mediaIDs) > 0 {
			if s.media == nil {
				return &ValidationError{Fields: map[string][]string{"media_ids": {"Media are not available."}}}
			}
			if err := s.media.Attach(ctx, tx, authorID, id, mediaIDs); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO fanout_queue (post_id, author_id) VALUES (?, ?)`, id, authorID); err != nil {
			return fmt.Errorf("post: queue fan-out: %w", err)
		}
		return nil
	})
	return id, version, err
}

// createStatement is createTx on PostgreSQL for a post without media: the
// same rows in one statement (data-modifying CTEs), one round trip instead
// of five or more with BEGIN and COMMIT (see likeStatement).
func (s *Service) createStatement(ctx context.Context, authorID int64, title, content string, now time.Time) (id int64, version string, err error) {
	tags := ParseHashtags(title + "\n" + content)
	if tags == nil {
		tags = []string{}
	}
	err = s.db.ExecRow(ctx, `WITH p AS (INSERT INTO posts (author_id, title, content, created_at, updated_at) VALUES (?, ?, ?, ?, ?)
			RETURNING id, author_id, created_at, updated_at || '' AS version),
		tags AS (INSERT INTO post_hashtags (tag, post_id, author_id, created_at)
			SELECT t.tag, p.id, p.author_id, p.created_at FROM p, unnest(CAST(? AS text[])) AS t(tag)),
		own AS (INSERT INTO feed_entries (user_id, post_id, author_id) SELECT author_id, id, author_id FROM p),
		queued AS (INSERT INTO fanout_queue (post_id, author_id) SELECT id, author_id FROM p)
		SELECT id, version FROM p`, authorID, title, content, now, now, tags).Scan(&id, &version)
	if err != nil {
		return 0, "", fmt.Errorf("post: create: %w", err)
	}
	return id, version, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func insertTags(ctx context.Context, tx *db.Tx, postID, authorID int64, text string, now time.Time) error {
	for _, tag := range ParseHashtags(text) {
		if _, err := tx.Exec(ctx, `INSERT INTO post_hashtags (tag, post_id, author_id, created_at) VALUES (?, ?, ?, ?)`,
			tag, postID, authorID, now); err != nil {
			return fmt.Errorf("post: hashtag: %w", err)
		}
	}
	return nil
}

// Update edits title and/or content; only the author may.
func (s *Service) Update(ctx context.Context, userID, postID int64, in Input) (Post, error) {
	if err := validateText(in.Title, in.Content, false, 0); err != nil {
		return Post{}, err
	}
	err := s.db.InTx(ctx, func(tx *db.Tx) error {
		var authorID int64
		var title, content string
		var created time.Time
		err := tx.QueryRow(ctx, `SELECT author_id, title, content, created_at FROM posts WHERE id = ?`, postID).Scan(&authorID, &title, &content, &created)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("post: load for update: %w", err)
		}
		if authorID != userID {
			return ErrForbidden
		}
		if in.Title != nil {
			title = *in.Title
		}
		if in.Content != nil {
			content = *in.Content
		}
		if strings.TrimSpace(content) == "" && in.Content != nil && s.mediaCount(ctx, tx, postID) == 0 {
			return &ValidationError{Fields: map[string][]string{"content": {"A post needs content or media."}}}
		}
		if _, err := tx.Exec(ctx, `UPDATE posts SET title = ?, content = ?, updated_at = ? WHERE id = ?`, title, content, s.now().UTC(), postID); err != nil {
			return fmt.Errorf("post: update: %w", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM post_hashtags WHERE post_id = ?`, postID); err != nil {
			return fmt.Errorf("post: update hashtags: %w", err)
		}
		// Tags keep the post's creation time: trends measure when topics
		// were posted, not edited.
		return insertTags(ctx, tx, postID, authorID, title+"\n"+content, created)
	})
	if err != nil {
		return Post{}, err
	}
	s.cards.posts.Delete(postID) // (a stale card would not be used anyway: updated_at moved)
	return s.Get(ctx, userID, postID)
}

func (s *Service) mediaCount(ctx context.Context, tx *db.Tx, postID int64) int {
	if s.media == nil {
		return 0
	}
	var n int
	_ = tx.QueryRow(ctx, `SELECT count(*) FROM media WHERE post_id = ?`, postID).Scan(&n)
	return n
}

// Delete removes a post with its comments, likes, hashtags, feed entries
// and media; only the author may.
func (s *Service) Delete(ctx context.Context, userID, postID int64) error {
	p, err := s.Get(ctx, userID, postID)
	if err != nil {
		return err
	}
	if p.Author.ID != userID {
		return ErrForbidden
	}
	var after func(context.Context)
	err = s.db.InTx(ctx, func(tx *db.Tx) error {
		if s.media != nil {
			var err error
			if after, err = s.media.Detach(ctx, tx, postID); err != nil {
				return err
			}
		}
		res, err := tx.Exec(ctx, `DELETE FROM posts WHERE id = ? AND author_id = ?`, postID, userID)
		if err != nil {
			return fmt.Errorf("post: delete: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.cards.posts.Delete(postID)
	if after != nil {
		after(context.WithoutCancel(ctx))
	}
	if s.events != nil {
		s.events.PostDeleted(ctx, p)
	}
	return nil
}

// withMedia fills the Media of posts with one query for the whole page.
func (s *Service) withMedia(ctx context.Context, posts []Post) ([]Post, error) {
	if s.media == nil || len(posts) == 0 {
		return posts, nil
	}
	ids := make([]int64, 0, len(posts))
	for _, p := range posts {
		if p.hasMedia {
			ids = append(ids, p.ID)
		}
	}
	if len(ids) == 0 {
		return posts, nil
	}
	m, err := s.media.ForPosts(ctx, ids)
	if err != nil {
		return nil, err
	}
	for i := range posts {
		posts[i].Media = m[posts[i].ID]
	}
	return posts, nil
}

// Get loads one post as viewerID (0: anonymous) sees it: one query either
// way, for the live columns when the post's card is in memory, for the
// whole post (whose card is then kept) when it is not.
func (s *Service) Get(ctx context.Context, viewerID, postID int64) (Post, error) {
	var posts []Post
	var err error
	if _, cached := s.cards.posts.Get(postID); cached {
		posts, err = s.pageRows(ctx, `SELECT `+liveColumns+` FROM posts p WHERE p.id = ?`, viewerID, viewerID, postID)
	} else {
		posts, err = s.getWhole(ctx, viewerID, postID)
	}
	if err != nil {
		return Post{}, err
	}
	if len(posts) == 0 {
		return Post{}, ErrNotFound
	}
	return posts[0], nil
}

// getWhole reads a post's live columns and its card in one query.
func (s *Service) getWhole(ctx context.Context, viewerID, postID int64) ([]Post, error) {
	gen := s.cards.posts.Generation()
	var p Post
	var c card
	err := s.db.QueryRow(ctx, `SELECT `+liveColumns+`, p.title, p.content, p.created_at, p.updated_at,
		EXISTS (SELECT 1 FROM media m WHERE m.post_id = p.id)
		FROM posts p WHERE p.id = ?`, viewerID, viewerID, postID).Scan(
		&p.ID, &p.Author.ID, &p.LikesCount, &p.CommentsCount, &p.version, &p.Author.IsFollowing, &p.LikedByMe,
		&c.title, &c.content, &c.createdAt, &c.updatedAt, &c.hasMedia)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("post: get: %w", err)
	}
	c.authorID, c.version = p.Author.ID, p.version
	s.cards.posts.SetIfCurrent(gen, p.ID, c)
	return s.complete(ctx, []Post{p}, map[int64]card{p.ID: c})
}

// ByIDs loads posts in the order of ids, skipping missing ones.
func (s *Service) ByIDs(ctx context.Context, viewerID int64, ids []int64) ([]Post, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	list, idArgs := db.InList(ids)
	posts, err := s.pageRows(ctx, `SELECT `+liveColumns+` FROM posts p WHERE p.id IN (`+list+`)`, append([]any{viewerID, viewerID}, idArgs...)...)
	if err != nil {
		return nil, err
	}
	byID := make(map[int64]Post, len(posts))
	for _, p := range posts {
		byID[p.ID] = p
	}
	out := make([]Post, 0, len(posts))
	for _, id := range ids {
		if p, ok := byID[id]; ok {
			out = append(out, p)
		}
	}
	return out, nil
}

// listPage runs a newest-first page query whose last two arguments are
// the cursor bound and the limit, and returns the page and the next cursor.
func (s *Service) listPage(ctx context.Context, query string, p page.Request, args ...any) ([]Post, string, error) {
	posts, err := s.pageRows(ctx, query, append(args, p.Before(), p.Limit+1)...)
	if err != nil {
		return nil, "", err
	}
	keys := make([]int64, len(posts))
	for i, po := range posts {
		keys[i] = po.ID
	}
	posts, next := page.Trim(posts, keys, p.Limit)
	return posts, next, nil
}

// The list queries pick the page's ids first (an index range with its
// LIMIT) and join the rest to those few rows: PostgreSQL then probes the
// viewer's flags per row, where a whole-table estimate made it hash all
// of the viewer's likes and follows for every page.

// GlobalFeed is every post, newest first.
func (s *Service) GlobalFeed(ctx context.Context, viewerID int64, p page.Request) ([]Post, string, error) {
	return s.listPage(ctx, `SELECT `+liveColumns+` FROM (SELECT id FROM posts WHERE id < ? ORDER BY id DESC LIMIT ?) pg
		JOIN posts p ON p.id = pg.id ORDER BY p.id DESC`, p, viewerID, viewerID)
}

// UserPosts is one author's posts, newest first.
func (s *Service) UserPosts(ctx context.Context, viewerID, authorID int64, p page.Request) ([]Post, string, error) {
	return s.listPage(ctx, `SELECT `+liveColumns+` FROM (SELECT id FROM posts WHERE author_id = ? AND id < ? ORDER BY id DESC LIMIT ?) pg
		JOIN posts p ON p.id = pg.id ORDER BY p.id DESC`, p, viewerID, viewerID, authorID)
}

// Hashtag is the posts carrying #tag, newest first.
func (s *Service) Hashtag(ctx context.Context, viewerID int64, tag string, p page.Request) ([]Post, string, error) {
	return s.listPage(ctx, `SELECT `+liveColumns+` FROM (SELECT post_id AS id FROM post_hashtags WHERE tag = ? AND post_id < ? ORDER BY post_id DESC LIMIT ?) pg
		JOIN posts p ON p.id = pg.id ORDER BY p.id DESC`, p, viewerID, viewerID, tag)
}
