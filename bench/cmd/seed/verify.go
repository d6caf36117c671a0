package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"

	"plaza/internal/db"
)

// verifyTotals checks the row count of every seeded table.
func verifyTotals(ctx context.Context, d *db.DB, ds *dataset, feedRows int64, feeds bool) error {
	want := []struct {
		table string
		n     int64
	}{
		{"users", int64(ds.Users)}, {"profiles", int64(ds.Users)}, {"follows", int64(ds.nFollows)},
		{"posts", int64(len(ds.postAuthor))}, {"post_hashtags", int64(len(ds.tags))},
		{"likes", int64(len(ds.likes))}, {"comments", int64(len(ds.comments))},
	}
	if feeds {
		want = append(want, struct {
			table string
			n     int64
		}{"feeds", int64(ds.Users)})
	}
	for _, w := range want {
		var n int64
		if err := d.QueryRow(ctx, `SELECT count(*) FROM `+w.table).Scan(&n); err != nil {
			return fmt.Errorf("verify %s: %w", w.table, err)
		}
		if n != w.n {
			return fmt.Errorf("verify: %s has %d rows, want %d", w.table, n, w.n)
		}
	}
	if feeds {
		var n int64
		if err := d.QueryRow(ctx, `SELECT count(*) FROM feed_entries`).Scan(&n); err != nil {
			return fmt.Errorf("verify feed_entries: %w", err)
		}
		if n != feedRows {
			return fmt.Errorf("verify: feed_entries has %d rows, want %d", n, feedRows)
		}
	}
	return nil
}

// verifyCounters checks every denormalised counter against the rows it
// counts, over the whole tables (not a sample): likes_count and
// comments_count of posts, followers_count and following_count of
// profiles. It is also run after a load run, to show that concurrent like
// toggles kept the counts exact.
func verifyCounters(ctx context.Context, d *db.DB, out io.Writer) error {
	checks := []struct{ name, q string }{
		{"posts.likes_count", `SELECT count(*) FROM posts p WHERE p.likes_count <> (SELECT count(*) FROM likes l WHERE l.post_id = p.id)`},
		{"posts.comments_count", `SELECT count(*) FROM posts p WHERE p.comments_count <> (SELECT count(*) FROM comments c WHERE c.post_id = p.id)`},
		{"profiles.followers_count", `SELECT count(*) FROM profiles pr WHERE pr.followers_count <> (SELECT count(*) FROM follows f WHERE f.followee_id = pr.user_id)`},
		{"profiles.following_count", `SELECT count(*) FROM profiles pr WHERE pr.following_count <> (SELECT count(*) FROM follows f WHERE f.follower_id = pr.user_id)`},
	}
	for _, c := range checks {
		var bad int64
		if err := d.QueryRow(ctx, c.q).Scan(&bad); err != nil {
			return fmt.Errorf("verify %s: %w", c.name, err)
		}
		if bad != 0 {
			return fmt.Errorf("verify: %d rows have a wrong %s", bad, c.name)
		}
	}
	var users, posts, likes, comments, maxFollowers, maxLikes int64
	if err := d.QueryRow(ctx, `SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM posts), (SELECT count(*) FROM likes),
		(SELECT count(*) FROM comments), (SELECT COALESCE(max(followers_count), 0) FROM profiles), (SELECT COALESCE(max(likes_count), 0) FROM posts)`).
		Scan(&users, &posts, &likes, &comments, &maxFollowers, &maxLikes); err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	fmt.Fprintf(out, "verify: %d users, %d posts, %d likes, %d comments; counters exact on every row (most followed: %d followers, most liked post: %d likes)\n",
		users, posts, likes, comments, maxFollowers, maxLikes)
	return nil
}

// verifyFeeds compares the materialised feeds of a sample of users with
// the feed computed from the generated graph: same post ids, same floor.
func verifyFeeds(ctx context.Context, d *db.DB, ds *dataset, keep, sample int) error {
	r := rand.New(rand.NewPCG(ds.seed, 7))
	for range min(sample, ds.Users) {
		u := r.IntN(ds.Users) + 1
		want, wantFloor := ds.feedOf(u, keep)
		rows, err := d.Query(ctx, `SELECT post_id FROM feed_entries WHERE user_id = ? ORDER BY post_id DESC`, u)
		if err != nil {
			return fmt.Errorf("verify feed of %d: %w", u, err)
		}
		var got []int32
		for rows.Next() {
			var id int32
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return fmt.Errorf("verify feed of %d: %w", u, err)
			}
			got = append(got, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("verify feed of %d: %w", u, err)
		}
		if !slices.Equal(got, want) {
			return fmt.Errorf("verify: feed of user %d has %d entries, not the %d expected newest posts", u, len(got), len(want))
		}
		var floor int64
		if err := d.QueryRow(ctx, `SELECT floor_post_id FROM feeds WHERE user_id = ?`, u).Scan(&floor); err != nil {
			return fmt.Errorf("verify floor of %d: %w", u, err)
		}
		if floor != wantFloor {
			return fmt.Errorf("verify: feed floor of user %d is %d, want %d", u, floor, wantFloor)
		}
	}
	return nil
}
