package post

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"time"
)

// Trend parameters, after Mastodon's trending tags: a tag trends when more
// distinct accounts use it now than it usually has, and recent uses count
// more than older ones.
const (
	trendWindow    = 24 * time.Hour
	trendBaseline  = 7 * 24 * time.Hour // the usual rate is measured over the week before the window
	trendHalfLife  = 6 * time.Hour
	trendMinUsers  = 2 // a tag used by one account does not trend
	trendTagCount  = 10
	trendPostCount = 20
)

// TrendingTag is one tag of the trends answer.
type TrendingTag struct {
	Tag   string  `json:"tag"`
	Posts int64   `json:"posts"`
	Score float64 `json:"score"`
}

// TrendsSnapshot is what the trends job stores.
type TrendsSnapshot struct {
	ComputedAt time.Time     `json:"computed_at"`
	Hashtags   []TrendingTag `json:"hashtags"`
	PostIDs    []int64       `json:"post_ids"`
}

// ComputeTrends scores hashtags and posts over the recent window and
// stores the result for Trends to serve.
//
// Tags: observed = sum over distinct accounts of 0.5^(age/half-life) of
// their latest use in the window; expected = distinct accounts per day in
// the baseline week (at least 1); score = (observed - expected)^2 / expected
// when observed > expected.
// Posts: (likes + 2 × comments + 1) × 0.5^(age/half-life), recent posts only.
func (s *Service) ComputeTrends(ctx context.Context) (TrendsSnapshot, error) {
	now := s.now().UTC()
	windowStart := now.Add(-trendWindow)

	type use struct {
		users    map[int64]time.Time
		posts    int64
		observed float64
	}
	uses := map[string]*use{}
	rows, err := s.db.Query(ctx, `SELECT tag, author_id, post_id, created_at FROM post_hashtags WHERE created_at > ?`, windowStart)
	if err != nil {
		return TrendsSnapshot{}, fmt.Errorf("post: trends: %w", err)
	}
	for rows.Next() {
		var tag string
		var author, postID int64
		var at time.Time
		if err := rows.Scan(&tag, &author, &postID, &at); err != nil {
			rows.Close()
			return TrendsSnapshot{}, fmt.Errorf("post: trends: %w", err)
		}
		u := uses[tag]
		if u == nil {
			u = &use{users: map[int64]time.Time{}}
			uses[tag] = u
		}
		u.posts++
		if at.After(u.users[author]) {
			u.users[author] = at
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return TrendsSnapshot{}, fmt.Errorf("post: trends: %w", err)
	}

	baseline := map[string]float64{}
	if len(uses) > 0 {
		rows, err := s.db.Query(ctx, `SELECT tag, count(DISTINCT author_id) FROM post_hashtags
			WHERE created_at > ? AND created_at <= ? GROUP BY tag`, windowStart.Add(-trendBaseline), windowStart)
		if err != nil {
			return TrendsSnapshot{}, fmt.Errorf("post: trends baseline: %w", err)
		}
		for rows.Next() {
			var tag string
			var n int64
			if err := rows.Scan(&tag, &n); err != nil {
				rows.Close()
				return TrendsSnapshot{}, fmt.Errorf("post: trends baseline: %w", err)
			}
			baseline[tag] = float64(n) / (trendBaseline.Hours() / 24)
		}
		rows.Close()
	}

	var tags []TrendingTag
	for tag, u := range uses {
		if len(u.users) < trendMinUsers {
			continue
		}
		for _, at := range u.users {
			u.observed += decay(now.Sub(at))
		}
		expected := math.Max(1, baseline[tag])
		if u.observed <= expected {
			continue
		}
		score := (u.observed - expected) * (u.observed - expected) / expected
		tags = append(tags, TrendingTag{Tag: tag, Posts: u.posts, Score: math.Round(score*1000) / 1000})
	}
	sort.Slice(tags, func(i, j int) bool {
		if tags[i].Score != tags[j].Score {
			return tags[i].Score > tags[j].Score
		}
		return tags[i].Tag < tags[j].Tag
	})
	if len(tags) > trendTagCount {
		tags = tags[:trendTagCount]
	}

	// Candidate posts: the most engaged of the window by raw engagement
	// (an index-friendly bound), then ranked with decay.
	type cand struct {
		id    int64
		score float64
	}
	var cands []cand
	rows, err = s.db.Query(ctx, `SELECT id, likes_count, comments_count, created_at FROM posts
		WHERE created_at > ? ORDER BY likes_count + 2 * comments_count DESC, id DESC LIMIT 500`, windowStart)
	if err != nil {
		return TrendsSnapshot{}, fmt.Errorf("post: trending posts: %w", err)
	}
	for rows.Next() {
		var id, likes, comments int64
		var at time.Time
		if err := rows.Scan(&id, &likes, &comments, &at); err != nil {
			rows.Close()
			return TrendsSnapshot{}, fmt.Errorf("post: trending posts: %w", err)
		}
		if likes+comments == 0 {
			continue
		}
		cands = append(cands, cand{id, float64(likes+2*comments+1) * decay(now.Sub(at))})
	}
	rows.Close()
	sort.Slice(cands, func(i, j int) bool {
		if cands[i].score != cands[j].score {
			return cands[i].score > cands[j].score
		}
		return cands[i].id > cands[j].id
	})
	snap := TrendsSnapshot{ComputedAt: now, Hashtags: tags, PostIDs: []int64{}}
	if snap.Hashtags == nil {
		snap.Hashtags = []TrendingTag{}
	}
	for i := 0; i < len(cands) && i < trendPostCount; i++ {
		snap.PostIDs = append(snap.PostIDs, cands[i].id)
	}
	data, err := json.Marshal(snap)
	if err != nil {
		return TrendsSnapshot{}, fmt.Errorf("post: trends: %w", err)
	}
	if _, err := s.db.Exec(ctx, `INSERT INTO trend_snapshots (computed_at, data) VALUES (?, ?)`, now, string(data)); err != nil {
		return TrendsSnapshot{}, fmt.Errorf("post: store trends: %w", err)
	}
	// Only the latest snapshot is ever read; keep a day of them for debugging.
	if _, err := s.db.Exec(ctx, `DELETE FROM trend_snapshots WHERE computed_at < ?`, now.Add(-24*time.Hour)); err != nil {
		return TrendsSnapshot{}, fmt.Errorf("post: prune trends: %w", err)
	}
	return snap, nil
}

func decay(age time.Duration) float64 {
	if age < 0 {
		age = 0
	}
	return math.Pow(0.5, age.Hours()/trendHalfLife.Hours())
}

// Trends returns the last computed trends with their posts as viewerID
// sees them now (deleted posts drop out).
func (s *Service) Trends(ctx context.Context, viewerID int64) ([]TrendingTag, []Post, error) {
	var data string
	err := s.db.QueryRow(ctx, `SELECT data FROM trend_snapshots ORDER BY id DESC LIMIT 1`).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return []TrendingTag{}, []Post{}, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("post: trends: %w", err)
	}
	var snap TrendsSnapshot
	if err := json.Unmarshal([]byte(data), &snap); err != nil {
		return nil, nil, fmt.Errorf("post: trends: %w", err)
	}
	posts, err := s.ByIDs(ctx, viewerID, snap.PostIDs)
	if err != nil {
		return nil, nil, err
	}
	if posts == nil {
		posts = []Post{}
	}
	return snap.Hashtags, posts, nil
}
