package social

import (
	"context"
	"fmt"
	"time"

	"plaza/internal/db"
)

// Suggestion is someone the user may want to follow.
type Suggestion struct {
	User    Summary
	Reason  string // "followed_by": followed by people you follow; "popular": many followers
	Mutuals int64
}

// SuggestionsPerUser is how many suggestions are kept per user.
const SuggestionsPerUser = 20

// ComputeSuggestions refreshes the friends-of-friends suggestions of users
// active in the last 30 days whose suggestions are older than maxAge, at
// most batch users per call. It returns how many users it refreshed; the
// periodic job calls it until that is 0.
func (s *Service) ComputeSuggestions(ctx context.Context, batch int, maxAge time.Duration) (int, error) {
	now := s.now().UTC()
	ids, err := s.db.QueryInt64s(ctx, `SELECT u.id FROM users u
		WHERE u.is_active = TRUE AND u.last_login_at > ?
		AND NOT EXISTS (SELECT 1 FROM suggestions sg WHERE sg.user_id = u.id AND sg.computed_at > ?)
		ORDER BY u.id LIMIT ?`, now.Add(-30*24*time.Hour), now.Add(-maxAge), batch)
	if err != nil {
		return 0, fmt.Errorf("social: pick users for suggestions: %w", err)
	}
	for _, id := range ids {
		if err := s.computeFor(ctx, id, now); err != nil {
			return 0, err
		}
	}
	return len(ids), nil
}

// computeFor replaces one user's suggestions: people followed by the people
// they follow, ranked by how many of those follow them, excluding
// themselves and whom they already follow. A sentinel row (suggested_id =
// user_id, never shown) records when the computation ran, also when there
// is nothing to suggest.
func (s *Service) computeFor(ctx context.Context, userID int64, now time.Time) error {
	return s.db.InTx(ctx, func(tx *db.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM suggestions WHERE user_id = ?`, userID); err != nil {
			return fmt.Errorf("social: clear suggestions: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO suggestions (user_id, suggested_id, mutuals, computed_at)
			SELECT ?, f2.followee_id, count(*), ?
			FROM follows f1 JOIN follows f2 ON f2.follower_id = f1.followee_id
			JOIN users u ON u.id = f2.followee_id AND u.is_active = TRUE
			WHERE f1.follower_id = ? AND f2.followee_id <> ?
			AND NOT EXISTS (SELECT 1 FROM follows x WHERE x.follower_id = ? AND x.followee_id = f2.followee_id)
			GROUP BY f2.followee_id
			ORDER BY count(*) DESC, f2.followee_id
			LIMIT ?`, userID, now, userID, userID, userID, SuggestionsPerUser); err != nil {
			return fmt.Errorf("social: compute suggestions: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO suggestions (user_id, suggested_id, mutuals, computed_at) VALUES (?, ?, -1, ?)`,
			userID, userID, now); err != nil {
			return fmt.Errorf("social: mark suggestions: %w", err)
		}
		return nil
	})
}

// Suggestions returns the stored suggestions for userID, skipping anyone
// followed since they were computed, topped up with popular accounts.
func (s *Service) Suggestions(ctx context.Context, userID int64, limit int) ([]Suggestion, error) {
	rows, err := s.db.Query(ctx, `SELECT u.id, u.username, COALESCE(p.picture_key, ''), sg.mutuals
		FROM suggestions sg JOIN users u ON u.id = sg.suggested_id LEFT JOIN profiles p ON p.user_id = u.id
		WHERE sg.user_id = ? AND sg.suggested_id <> ? AND u.is_active = TRUE
		AND NOT EXISTS (SELECT 1 FROM follows x WHERE x.follower_id = ? AND x.followee_id = sg.suggested_id)
		ORDER BY sg.mutuals DESC, u.id LIMIT ?`, userID, userID, userID, limit)
	if err != nil {
		return nil, fmt.Errorf("social: suggestions: %w", err)
	}
	var out []Suggestion
	seen := map[int64]bool{userID: true}
	for rows.Next() {
		var sg Suggestion
		if err := rows.Scan(&sg.User.ID, &sg.User.Username, &sg.User.PictureKey, &sg.Mutuals); err != nil {
			rows.Close()
			return nil, fmt.Errorf("social: suggestions: %w", err)
		}
		sg.Reason = "followed_by"
		seen[sg.User.ID] = true
		out = append(out, sg)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("social: suggestions: %w", err)
	}
	if len(out) >= limit {
		return out, nil
	}
	// Popular accounts the user does not follow yet.
	rows, err = s.db.Query(ctx, `SELECT u.id, u.username, COALESCE(p.picture_key, ''), COALESCE(p.followers_count, 0)
		FROM profiles p JOIN users u ON u.id = p.user_id
		WHERE u.is_active = TRUE AND u.id <> ?
		AND NOT EXISTS (SELECT 1 FROM follows x WHERE x.follower_id = ? AND x.followee_id = u.id)
		ORDER BY p.followers_count DESC, u.id LIMIT ?`, userID, userID, limit+len(out))
	if err != nil {
		return nil, fmt.Errorf("social: popular accounts: %w", err)
	}
	defer rows.Close()
	for rows.Next() && len(out) < limit {
		var sg Suggestion
		var followers int64
		if err := rows.Scan(&sg.User.ID, &sg.User.Username, &sg.User.PictureKey, &followers); err != nil {
			return nil, fmt.Errorf("social: popular accounts: %w", err)
		}
		if seen[sg.User.ID] {
			continue
		}
		sg.Reason = "popular"
		out = append(out, sg)
	}
	return out, rows.Err()
}
