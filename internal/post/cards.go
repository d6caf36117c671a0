package post

import (
	"context"
	"fmt"
	"time"

	"plaza/internal/cache"
	"plaza/internal/db"
)

// A page of posts is read in two parts. The page query reads only what
// changes often or depends on the viewer: ids, author ids, counters,
// updated_at and the viewer's flags (three index probes per post for a
// home feed). The rest, a post's text and its author's name and picture,
// comes from memory: cards and authors below. A page's misses are loaded
// with one query each, so a page is at most three queries and usually one.
//
// A cached card is used only while its updated_at matches the one the page
// query just read (compared as text: parsing 21 timestamps was 6% of a
// feed request on SQLite), so an edit made on any instance shows at once without
// a message between instances. Authors change elsewhere (a username, a
// picture): those services call ForgetAuthor, and other instances hear of
// it over the cache invalidation topic (app); PLAZA_CACHE_TTL bounds the
// rest.

// card is the part of a post that only its author's edits change.
type card struct {
	authorID  int64
	title     string
	content   string
	createdAt time.Time
	updatedAt time.Time
	version   string // updated_at as text (versionColumn)
	hasMedia  bool
}

// author is the part of a user that posts show.
type author struct {
	username   string
	pictureKey string
}

// cardTTL is how long a card stays in memory: cards are checked against
// the database on every read, so only memory bounds it.
const cardTTL = 10 * time.Minute

type cards struct {
	posts   *cache.TTL[int64, card]
	authors *cache.TTL[int64, author]
	liked   *cache.TTL[int64, likedSet] // by user: liked.go
}

func newCards(ttl time.Duration) cards {
	postTTL := cardTTL
	if ttl <= 0 {
		postTTL = 0 // caching turned off
	}
	return cards{
		posts:   cache.New[int64, card](postTTL, 200_000),
		authors: cache.New[int64, author](ttl, 100_000),
		liked:   newLikedSets(ttl),
	}
}

// ForgetAuthor drops a user's cached name and picture (after a change of
// either, here or on another instance).
func (s *Service) ForgetAuthor(userID int64) { s.cards.authors.Delete(userID) }

// versionColumn is a post's updated_at as text, on both engines (Create
// reads the same expression, unqualified, in its RETURNING).
const versionColumn = `p.updated_at || ''`

// liveColumns are what a page query reads for each post p, in pageRows'
// order; the viewer id is bound twice (following, liked).
const liveColumns = `p.id, p.author_id, p.likes_count, p.comments_count, ` + versionColumn + `,
	EXISTS (SELECT 1 FROM follows fv WHERE fv.follower_id = ? AND fv.followee_id = p.author_id),
	EXISTS (SELECT 1 FROM likes lv WHERE lv.post_id = p.id AND lv.user_id = ?)`

// homeColumns are liveColumns for the home feed, where every author but
// the viewer is followed (unfollowing removes the author's entries in the
// same transaction), so no follows probe is needed.
const homeColumns = `p.id, p.author_id, p.likes_count, p.comments_count, ` + versionColumn + `,
	p.author_id <> ?,
	EXISTS (SELECT 1 FROM likes lv WHERE lv.post_id = p.id AND lv.user_id = ?)`

// homeColumnsKnownLikes are homeColumns when the viewer's likes are in
// memory (liked.go): the viewer id is bound once.
const homeColumnsKnownLikes = `p.id, p.author_id, p.likes_count, p.comments_count, ` + versionColumn + `,
	p.author_id <> ?, FALSE`

// pageRows runs a page query selecting liveColumns (or homeColumns) and
// completes its posts from the cards.
func (s *Service) pageRows(ctx context.Context, query string, args ...any) ([]Post, error) {
	rows, err := s.db.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("post: list: %w", err)
	}
	defer rows.Close()
	var out []Post
	for rows.Next() {
		var p Post
		if err := rows.Scan(&p.ID, &p.Author.ID, &p.LikesCount, &p.CommentsCount, &p.version, &p.Author.IsFollowing, &p.LikedByMe); err != nil {
			return nil, fmt.Errorf("post: scan: %w", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("post: scan: %w", err)
	}
	rows.Close()
	return s.complete(ctx, out, nil)
}

// complete fills the text and author of posts read by a page query, with
// one query for the cards and one for the authors neither in memory nor
// in known (cards the caller just read). Posts deleted meanwhile are
// dropped.
func (s *Service) complete(ctx context.Context, posts []Post, known map[int64]card) ([]Post, error) {
	if len(posts) == 0 {
		return posts, nil
	}
	got := make(map[int64]card, len(posts))
	var missing []int64
	for _, p := range posts {
		if c, ok := known[p.ID]; ok {
			got[p.ID] = c
		} else if c, ok := s.cards.posts.Get(p.ID); ok && c.version == p.version {
			got[p.ID] = c
		} else {
			missing = append(missing, p.ID)
		}
	}
	if len(missing) > 0 {
		if err := s.loadCards(ctx, missing, got); err != nil {
			return nil, err
		}
	}
	authors := make(map[int64]author, len(posts))
	var missingAuthors []int64
	for _, p := range posts {
		if _, seen := authors[p.Author.ID]; seen {
			continue
		}
		if a, ok := s.cards.authors.Get(p.Author.ID); ok {
			authors[p.Author.ID] = a
		} else {
			authors[p.Author.ID] = author{}
			missingAuthors = append(missingAuthors, p.Author.ID)
		}
	}
	if len(missingAuthors) > 0 {
		if err := s.loadAuthors(ctx, missingAuthors, authors); err != nil {
			return nil, err
		}
	}
	out := posts[:0]
	for _, p := range posts {
		c, ok := got[p.ID]
		if !ok {
			continue // deleted between the two queries
		}
		a := authors[p.Author.ID]
		p.Title, p.Content, p.CreatedAt, p.hasMedia = c.title, c.content, c.createdAt, c.hasMedia
		p.UpdatedAt = c.updatedAt
		p.Author.Username, p.Author.PictureKey = a.username, a.pictureKey
		out = append(out, p)
	}
	return s.withMedia(ctx, out)
}

func (s *Service) loadCards(ctx context.Context, ids []int64, into map[int64]card) error {
	gen := s.cards.posts.Generation()
	list, args := db.InList(ids)
	rows, err := s.db.Query(ctx, `SELECT p.id, p.author_id, p.title, p.content, p.created_at, p.updated_at, `+versionColumn+`,
		EXISTS (SELECT 1 FROM media m WHERE m.post_id = p.id)
		FROM posts p WHERE p.id IN (`+list+`)`, args...)
	if err != nil {
		return fmt.Errorf("post: load cards: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var c card
		if err := rows.Scan(&id, &c.authorID, &c.title, &c.content, &c.createdAt, &c.updatedAt, &c.version, &c.hasMedia); err != nil {
			return fmt.Errorf("post: load cards: %w", err)
		}
		into[id] = c
		s.cards.posts.SetIfCurrent(gen, id, c)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("post: load cards: %w", err)
	}
	return nil
}

func (s *Service) loadAuthors(ctx context.Context, ids []int64, into map[int64]author) error {
	gen := s.cards.authors.Generation()
	list, args := db.InList(ids)
	rows, err := s.db.Query(ctx, `SELECT u.id, u.username, COALESCE(pr.picture_key, '')
		FROM users u LEFT JOIN profiles pr ON pr.user_id = u.id WHERE u.id IN (`+list+`)`, args...)
	if err != nil {
		return fmt.Errorf("post: load authors: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var a author
		if err := rows.Scan(&id, &a.username, &a.pictureKey); err != nil {
			return fmt.Errorf("post: load authors: %w", err)
		}
		into[id] = a
		s.cards.authors.SetIfCurrent(gen, id, a)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("post: load authors: %w", err)
	}
	return nil
}
