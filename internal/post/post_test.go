package post_test

import (
	"context"
	"errors"
	"fmt"
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
	ps := post.NewService(d, nil, nil, cfg)
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
			fanOutAll(t, ps)
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

// fanOutAll works the fan-out queue until it is empty and returns the
// feed entries each batch added.
func fanOutAll(t *testing.T, ps *post.Service, d ...*db.DB) []int {
	t.Helper()
	ctx := context.Background()
	var added []int
	entries := func() int {
		var n int
		if len(d) > 0 {
			if err := d[0].QueryRow(ctx, `SELECT count(*) FROM feed_entries`).Scan(&n); err != nil {
				t.Fatal(err)
			}
		}
		return n
	}
	for i := 0; i < 1000; i++ {
		before := entries()
		n, err := ps.FanOutPending(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			if q, err := ps.FanOutQueued(ctx); err != nil || q != 0 {
				t.Fatalf("fan-out stopped with %d posts queued (%v)", q, err)
			}
			return added
		}
		added = append(added, entries()-before)
	}
	t.Fatal("fan-out did not end")
	return nil
}

// TestFanOutBatches: queued posts reach every follower's feed, several
// posts to a batch, a large audience in slices, no batch writing more than
// FanOutRows entries; a post queued again adds nothing, and a post deleted
// before its fan-out reaches nobody.
func TestFanOutBatches(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, e dbtest.Engine) {
		ctx := context.Background()
		d, ps, ss := newWorld(t, e, 253, post.Config{FanOutRows: 50})
		follow := func(follower int, whom string) {
			if _, err := ss.Follow(ctx, int64(follower), whom); err != nil {
				t.Fatal(err)
			}
		}
		// user1 has 250 followers; user2 and user3 have 10 each.
		for i := 4; i <= 253; i++ {
			follow(i, "user1")
		}
		for i := 4; i < 14; i++ {
			follow(i, "user2")
			follow(i, "user3")
		}
		want := map[int64]int{} // post → feeds it must be in
		mk := func(author int64, audience int) post.Post {
			p, err := ps.Create(ctx, author, post.Input{Content: content("to everyone")})
			if err != nil {
				t.Fatal(err)
			}
			want[p.ID] = audience + 1 // and the author's own
			return p
		}
		mk(2, 10)
		mk(2, 10)
		big := mk(1, 250)
		mk(3, 10)
		mk(3, 10)
		added := fanOutAll(t, ps, d)
		for i, n := range added {
			if n > 50 {
				t.Errorf("batch %d added %d entries, more than FanOutRows", i, n)
			}
		}
		if len(added) >= 9 {
			t.Errorf("%d batches for 5 posts: small audiences were not batched together", len(added))
		}
		check := func(when string) {
			t.Helper()
			for id, n := range want {
				var got int
				if err := d.QueryRow(ctx, `SELECT count(*) FROM feed_entries WHERE post_id = ?`, id).Scan(&got); err != nil || got != n {
					t.Errorf("%s: post %d is in %d feeds (%v), want %d", when, id, got, err, n)
				}
			}
		}
		check("fanned out")
		if got := walk(t, ps, 9, 2); len(got) != 5 {
			t.Errorf("home feed of a follower of all three: %v, want the 5 posts", got)
		}
		// Queued again (as a job of an earlier version does): nothing new.
		if err := ps.EnqueueFanOut(ctx, big.ID); err != nil {
			t.Fatal(err)
		}
		fanOutAll(t, ps)
		check("queued again")
		// A post deleted before its fan-out ran fans out to nobody.
		p2 := mk(1, 0)
		if err := ps.Delete(ctx, 1, p2.ID); err != nil {
			t.Fatal(err)
		}
		delete(want, p2.ID)
		if added := fanOutAll(t, ps, d); len(added) != 0 {
			t.Errorf("a deleted post was fanned out: %v", added)
		}
		check("after a deleted post")
	})
}

// TestLikeRules: likes are idempotent and counted exactly, and unknown or
// deleted posts are not found, on both engines (PostgreSQL runs each like
// as one statement, SQLite as a transaction).
func TestLikeRules(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, e dbtest.Engine) {
		_, ps, _ := newWorld(t, e, 3, post.Config{})
		ctx := context.Background()
		p, err := ps.Create(ctx, 1, post.Input{Content: content("like me #likes")})
		if err != nil {
			t.Fatal(err)
		}
		steps := []struct {
			name    string
			do      func() (int64, bool, error)
			count   int64
			created bool
		}{
			{"like", func() (int64, bool, error) { return ps.Like(ctx, 2, p.ID) }, 1, true},
			{"like again", func() (int64, bool, error) { return ps.Like(ctx, 2, p.ID) }, 1, false},
			{"own like", func() (int64, bool, error) { return ps.Like(ctx, 1, p.ID) }, 2, true},
			{"unlike", func() (int64, bool, error) { n, err := ps.Unlike(ctx, 2, p.ID); return n, false, err }, 1, false},
			{"unlike again", func() (int64, bool, error) { n, err := ps.Unlike(ctx, 2, p.ID); return n, false, err }, 1, false},
			{"unlike never liked", func() (int64, bool, error) { n, err := ps.Unlike(ctx, 3, p.ID); return n, false, err }, 1, false},
		}
		for _, s := range steps {
			n, created, err := s.do()
			if err != nil || n != s.count || created != s.created {
				t.Errorf("%s: count %d created %v err %v, want %d %v", s.name, n, created, err, s.count, s.created)
			}
		}
		if got, err := ps.Get(ctx, 3, p.ID); err != nil || got.LikesCount != 1 {
			t.Errorf("post after likes: %+v %v", got, err)
		}
		if tagged, _, err := ps.Hashtag(ctx, 3, "likes", page.Request{Limit: 10}); err != nil || len(tagged) != 1 {
			t.Errorf("hashtag of a post created in one statement: %v %v", tagged, err)
		}
		if _, _, err := ps.Like(ctx, 2, 999999); !errors.Is(err, post.ErrNotFound) {
			t.Errorf("like of an unknown post: %v", err)
		}
		if _, err := ps.Unlike(ctx, 2, 999999); !errors.Is(err, post.ErrNotFound) {
			t.Errorf("unlike of an unknown post: %v", err)
		}
		if err := ps.Delete(ctx, 1, p.ID); err != nil {
			t.Fatal(err)
		}
		if _, _, err := ps.Like(ctx, 2, p.ID); !errors.Is(err, post.ErrNotFound) {
			t.Errorf("like of a deleted post: %v", err)
		}
	})
}
