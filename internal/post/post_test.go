package post_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"plaza/internal/db"
	"plaza/internal/db/dbtest"
	"plaza/internal/jobs"
	"plaza/internal/page"
	"plaza/internal/post"
	"plaza/internal/social"
)

func TestParseHashtags(t *testing.T) {
	for in, want := range map[string]string{
		"#Go and #go":                 "[go]",
		"a#b c #d_e #123 #x1":         "[d_e x1]",
		"&#39; html entity, ##double": "[]",
		"#über #Ünïcödé":              "[über ünïcödé]",
		"(#paren) #end.":              "[paren end]",
		"#" + string(make([]byte, 0)): "[]",
		"#aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa": "[]", // 65 characters
	} {
		if got := fmt.Sprint(post.ParseHashtags(in)); got != want {
			t.Errorf("ParseHashtags(%q) = %s, want %s", in, got, want)
		}
	}
	if post.NormalizeTag("#Go") != "go" || post.NormalizeTag("a b") != "" || post.NormalizeTag("") != "" {
		t.Error("NormalizeTag")
	}
}

// newWorld is a database with users 1..n, a post service with a tiny feed
// window, and a social service wired to it.
func newWorld(t *testing.T, e dbtest.Engine, n int, cfg post.Config) (*db.DB, *post.Service, *social.Service) {
	t.Helper()
	d := dbtest.Open(t, e)
	ctx := context.Background()
	if err := jobs.Migrate(ctx, d); err != nil {
		t.Fatal(err)
	}
	q, err := jobs.NewQueue(d, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ps := post.NewService(d, q, nil, nil, cfg)
	ss := social.NewService(d, ps, nil)
	for i := 1; i <= n; i++ {
		if _, err := d.Exec(ctx, `INSERT INTO users (email, username, password_hash, is_active, created_at, updated_at) VALUES (?, ?, 'x', TRUE, ?, ?)`,
			fmt.Sprintf("u%d@example.com", i), fmt.Sprintf("user%d", i), time.Now(), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	return d, ps, ss
}

func content(s string) *string { return &s }

// walk reads a whole home feed with the given page size.
func walk(t *testing.T, ps *post.Service, user int64, limit int) []int64 {
	t.Helper()
	var out []int64
	p := page.First(limit)
	for i := 0; i < 100; i++ {
		posts, next, err := ps.HomeFeed(context.Background(), user, p)
		if err != nil {
			t.Fatal(err)
		}
		for _, po := range posts {
			out = append(out, po.ID)
		}
		if next == "" {
			return out
		}
		if p, err = page.Parse(fmt.Sprint(limit), next); err != nil {
			t.Fatal(err)
		}
	}
	t.Fatal("feed walk did not end")
	return nil
}

// TestHomeFeedAcrossTheFloor: with a materialised window of 3 entries and
// a backfill of 2, the home feed is still every post of the user and the
// people they follow, newest first, across the floor, for any page size.
func TestHomeFeedAcrossTheFloor(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, e dbtest.Engine) {
		ctx := context.Background()
		_, ps, ss := newWorld(t, e, 3, post.Config{FeedKeep: 3, FollowBackfill: 2})
		var want []int64
		mk := func(author int64, follows bool) {
			p, err := ps.Create(ctx, author, post.Input{Content: content("hello")})
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := ps.FanOut(ctx, p.ID); err != nil {
				t.Fatal(err)
			}
			if follows {
				want = append([]int64{p.ID}, want...)
			}
		}
		// user2 posts 5 times before user1 follows: the follow copies only 2.
		for i := 0; i < 5; i++ {
			mk(2, true)
		}
		mk(3, false) // never followed
		if _, err := ss.Follow(ctx, 1, "user2"); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 4; i++ {
			mk(1, true)
			mk(2, true)
		}
		for _, limit := range []int{1, 2, 3, 5, 20} {
			if got := walk(t, ps, 1, limit); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("limit %d before trim: %v, want %v", limit, got, want)
			}
		}
		// Trim to 3 entries: older pages come from the posts table.
		if _, err := ps.TrimFeeds(ctx, 0, 100); err != nil {
			t.Fatal(err)
		}
		for _, limit := range []int{1, 2, 4, 20} {
			if got := walk(t, ps, 1, limit); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("limit %d after trim: %v, want %v", limit, got, want)
			}
		}
		// Rebuild gives the same feed.
		if err := ps.RebuildFeed(ctx, 1); err != nil {
			t.Fatal(err)
		}
		if got := walk(t, ps, 1, 4); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("after rebuild: %v, want %v", got, want)
		}
		// Unfollow leaves only one's own posts, also below the floor.
		if err := ss.Unfollow(ctx, 1, "user2"); err != nil {
			t.Fatal(err)
		}
		var own []int64
		for _, id := range want {
			p, err := ps.Get(ctx, 1, id)
			if err != nil {
				t.Fatal(err)
			}
			if p.Author.ID == 1 {
				own = append(own, id)
			}
		}
		if got := walk(t, ps, 1, 2); fmt.Sprint(got) != fmt.Sprint(own) {
			t.Errorf("after unfollow: %v, want %v", got, own)
		}
	})
}

// TestFanOutBatches: a post reaches every follower however many batches
// that takes, and running the job twice changes nothing.
func TestFanOutBatches(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, e dbtest.Engine) {
		ctx := context.Background()
		d, ps, ss := newWorld(t, e, 1203, post.Config{})
		for i := 2; i <= 1203; i++ {
			if _, err := ss.Follow(ctx, int64(i), "user1"); err != nil {
				t.Fatal(err)
			}
		}
		p, err := ps.Create(ctx, 1, post.Input{Content: content("to everyone")})
		if err != nil {
			t.Fatal(err)
		}
		for round := 0; round < 2; round++ {
			author, n, err := ps.FanOut(ctx, p.ID)
			if err != nil || author != 1 {
				t.Fatalf("fan-out: author %d, %v", author, err)
			}
			if want := int64(1202 * (1 - round)); n != want {
				t.Errorf("round %d added %d entries, want %d", round, n, want)
			}
		}
		var n int
		if err := d.QueryRow(ctx, `SELECT count(*) FROM feed_entries WHERE post_id = ?`, p.ID).Scan(&n); err != nil || n != 1203 {
			t.Errorf("entries %d (%v), want 1203", n, err)
		}
		// A post deleted before its fan-out ran fans out to nobody.
		p2, _ := ps.Create(ctx, 1, post.Input{Content: content("gone")})
		if err := ps.Delete(ctx, 1, p2.ID); err != nil {
			t.Fatal(err)
		}
		if author, n, err := ps.FanOut(ctx, p2.ID); err != nil || n != 0 || author != 0 {
			t.Errorf("fan-out of deleted post: author %d, %d entries, %v", author, n, err)
		}
	})
}
