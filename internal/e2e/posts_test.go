package e2e

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"plaza/internal/db/dbtest"
)

func (u user) post(t *testing.T, content string) int64 {
	t.Helper()
	r := expect(t, u.do("POST", "/api/posts/", map[string]any{"content": content}), http.StatusCreated)
	return int64(r.JSON()["id"].(float64))
}

func ids(items []map[string]any) []int64 {
	var out []int64
	for _, it := range items {
		out = append(out, int64(it["id"].(float64)))
	}
	return out
}

// waitFeed polls a feed until want is its first post (fan-out is a job).
func waitFeed(t *testing.T, u user, path string, want int64) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		items := results(t, expect(t, u.do("GET", path, nil), http.StatusOK))
		if len(items) > 0 && int64(items[0]["id"].(float64)) == want {
			return items
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s of %s never showed post %d: %v", path, u.Name, want, ids(items))
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func TestPostsCommentsLikes(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, eng dbtest.Engine) {
		e := start(t, eng, nil)
		alice, bob := e.newUser("alice"), e.newUser("bob")
		anon := e.client()

		tricky := `<img src=x onerror=alert(1)> '); DELETE FROM posts; -- #Go #go #über_cool #123 a#b`
		r := expect(t, alice.do("POST", "/api/posts/", map[string]any{"title": "Hello", "content": tricky, "likes_count": 50, "author": 2}), http.StatusCreated)
		p := r.JSON()
		id := int64(p["id"].(float64))
		if p["content"] != tricky || p["title"] != "Hello" || p["likes_count"] != 0.0 || p["comments_count"] != 0.0 || p["liked_by_me"] != false {
			t.Errorf("created post %v", p)
		}
		if a := p["author"].(map[string]any); a["username"] != "alice" || a["id"] != float64(alice.ID) {
			t.Errorf("author %v", a)
		}
		if media, ok := p["media"].([]any); !ok || len(media) != 0 {
			t.Errorf("media %v", p["media"])
		}
		if r.Header.Get("Location") != fmt.Sprintf("/api/posts/%d/", id) {
			t.Errorf("Location %q", r.Header.Get("Location"))
		}
		expect(t, alice.do("POST", "/api/posts/", map[string]any{"content": "   "}), http.StatusBadRequest)
		expect(t, alice.do("POST", "/api/posts/", map[string]any{"title": "only a title"}), http.StatusBadRequest)
		expect(t, alice.do("POST", "/api/posts/", map[string]any{"content": strings.Repeat("x", 10001)}), http.StatusBadRequest)
		expect(t, alice.do("POST", "/api/posts/", map[string]any{"content": []int{1}}), http.StatusBadRequest)
		expect(t, anon.do("POST", "/api/posts/", map[string]any{"content": "hi"}), http.StatusUnauthorized)

		// Hashtags: #go once (case folded), #über_cool; not #123 or a#b.
		for tag, want := range map[string]int{"go": 1, "GO": 1, "%23go": 1, "über_cool": 1, "123": 0, "b": 0} {
			items := results(t, expect(t, anon.do("GET", "/api/hashtags/"+tag+"/", nil), http.StatusOK))
			if len(items) != want {
				t.Errorf("#%s: %d posts, want %d", tag, len(items), want)
			}
		}
		expect(t, anon.do("GET", "/api/hashtags/no%20tag/", nil), http.StatusNotFound)

		// Edit: author only; hashtags re-indexed.
		expect(t, bob.do("PATCH", fmt.Sprintf("/api/posts/%d/", id), map[string]any{"content": "hijack"}), http.StatusForbidden)
		r = expect(t, alice.do("PATCH", fmt.Sprintf("/api/posts/%d/", id), map[string]any{"content": "now about #rust"}), http.StatusOK)
		if r.JSON()["content"] != "now about #rust" || r.JSON()["title"] != "Hello" {
			t.Errorf("patched %v", r.JSON())
		}
		if n := len(results(t, expect(t, anon.do("GET", "/api/hashtags/go/", nil), http.StatusOK))); n != 0 {
			t.Errorf("#go still lists the edited post")
		}
		if n := len(results(t, expect(t, anon.do("GET", "/api/hashtags/rust/", nil), http.StatusOK))); n != 1 {
			t.Errorf("#rust: %d", n)
		}
		expect(t, alice.do("PATCH", "/api/posts/999999/", map[string]any{"content": "x"}), http.StatusNotFound)
		expect(t, anon.do("GET", "/api/posts/999999/", nil), http.StatusNotFound)
		expect(t, anon.do("GET", "/api/posts/abc/", nil), http.StatusNotFound)
		expect(t, anon.do("GET", "/api/posts/-1/", nil), http.StatusNotFound)

		// Likes: idempotent, exact, liked_by_me per viewer.
		path := fmt.Sprintf("/api/posts/%d/like/", id)
		if r := expect(t, bob.do("POST", path, nil), http.StatusCreated); r.JSON()["likes_count"] != 1.0 {
			t.Errorf("like: %s", r.Body)
		}
		if r := expect(t, bob.do("POST", path, nil), http.StatusOK); r.JSON()["likes_count"] != 1.0 {
			t.Errorf("like again: %s", r.Body)
		}
		if got := expect(t, bob.do("GET", fmt.Sprintf("/api/posts/%d/", id), nil), http.StatusOK).JSON(); got["liked_by_me"] != true || got["likes_count"] != 1.0 {
			t.Errorf("bob's view %v", got)
		}
		if got := expect(t, alice.do("GET", fmt.Sprintf("/api/posts/%d/", id), nil), http.StatusOK).JSON(); got["liked_by_me"] != false {
			t.Errorf("alice's view %v", got)
		}
		if r := expect(t, bob.do("DELETE", path, nil), http.StatusOK); r.JSON()["likes_count"] != 0.0 {
			t.Errorf("unlike: %s", r.Body)
		}
		if r := expect(t, bob.do("DELETE", path, nil), http.StatusOK); r.JSON()["likes_count"] != 0.0 {
			t.Errorf("unlike again: %s", r.Body)
		}
		expect(t, bob.do("POST", "/api/posts/999999/like/", nil), http.StatusNotFound)
		expect(t, bob.do("DELETE", "/api/posts/999999/like/", nil), http.StatusNotFound)
		expect(t, anon.do("POST", path, nil), http.StatusUnauthorized)

		// Comments: oldest first; author of comment or post may delete.
		cpath := fmt.Sprintf("/api/posts/%d/comments/", id)
		c1 := expect(t, bob.do("POST", cpath, map[string]any{"content": "first <b>!</b>"}), http.StatusCreated).JSON()
		c2 := expect(t, alice.do("POST", cpath, map[string]any{"content": "second"}), http.StatusCreated).JSON()
		expect(t, bob.do("POST", cpath, map[string]any{"content": ""}), http.StatusBadRequest)
		expect(t, bob.do("POST", "/api/posts/999999/comments/", map[string]any{"content": "x"}), http.StatusNotFound)
		list := results(t, expect(t, anon.do("GET", cpath, nil), http.StatusOK))
		if len(list) != 2 || list[0]["content"] != "first <b>!</b>" || list[1]["id"] != c2["id"] {
			t.Errorf("comments %v", list)
		}
		if got := expect(t, anon.do("GET", fmt.Sprintf("/api/posts/%d/", id), nil), http.StatusOK).JSON()["comments_count"]; got != 2.0 {
			t.Errorf("comments_count %v", got)
		}
		carol := e.newUser("carol")
		expect(t, carol.do("DELETE", fmt.Sprintf("/api/comments/%v/", c1["id"]), nil), http.StatusForbidden)
		expect(t, alice.do("DELETE", fmt.Sprintf("/api/comments/%v/", c1["id"]), nil), http.StatusNoContent) // post author
		expect(t, alice.do("DELETE", fmt.Sprintf("/api/comments/%v/", c1["id"]), nil), http.StatusNotFound)
		expect(t, alice.do("DELETE", fmt.Sprintf("/api/comments/%v/", c2["id"]), nil), http.StatusNoContent) // comment author
		if got := expect(t, anon.do("GET", fmt.Sprintf("/api/posts/%d/", id), nil), http.StatusOK).JSON()["comments_count"]; got != 0.0 {
			t.Errorf("comments_count after deletes %v", got)
		}
		expect(t, anon.do("GET", "/api/posts/999999/comments/", nil), http.StatusNotFound)

		// Delete: author only; everything goes with it.
		expect(t, bob.do("POST", cpath, map[string]any{"content": "again"}), http.StatusCreated)
		expect(t, bob.do("POST", path, nil), http.StatusCreated)
		expect(t, bob.do("DELETE", fmt.Sprintf("/api/posts/%d/", id), nil), http.StatusForbidden)
		expect(t, alice.do("DELETE", fmt.Sprintf("/api/posts/%d/", id), nil), http.StatusNoContent)
		expect(t, alice.do("DELETE", fmt.Sprintf("/api/posts/%d/", id), nil), http.StatusNotFound)
		expect(t, anon.do("GET", fmt.Sprintf("/api/posts/%d/", id), nil), http.StatusNotFound)
		expect(t, anon.do("GET", cpath, nil), http.StatusNotFound)
		expect(t, bob.do("POST", path, nil), http.StatusNotFound)
		if n := len(results(t, expect(t, anon.do("GET", "/api/hashtags/rust/", nil), http.StatusOK))); n != 0 {
			t.Errorf("deleted post still under #rust")
		}
		var left int
		if err := e.App.DB.QueryRow(t.Context(), `SELECT (SELECT count(*) FROM comments) + (SELECT count(*) FROM likes) + (SELECT count(*) FROM feed_entries WHERE post_id = ?)`, id).Scan(&left); err != nil || left != 0 {
			t.Errorf("rows left behind by delete: %d %v", left, err)
		}
		if got := expect(t, anon.do("GET", "/api/users/alice/", nil), http.StatusOK).JSON()["posts_count"]; got != 0.0 {
			t.Errorf("posts_count after delete %v", got)
		}
	})
}

func TestFeeds(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, eng dbtest.Engine) {
		e := start(t, eng, nil)
		alice, bob, carol := e.newUser("alice"), e.newUser("bob"), e.newUser("carol")

		// Empty feeds are empty pages.
		r := expect(t, alice.do("GET", "/api/feed/", nil), http.StatusOK).JSON()
		if len(r["results"].([]any)) != 0 || r["next"] != nil {
			t.Errorf("empty feed %v", r)
		}
		expect(t, e.client().do("GET", "/api/feed/", nil), http.StatusUnauthorized)

		b1 := bob.post(t, "bob before the follow")
		c1 := carol.post(t, "carol, never followed")
		expect(t, alice.do("POST", "/api/users/bob/follow/", nil), http.StatusCreated)
		// The follow brings bob's earlier post into alice's feed at once.
		if got := ids(results(t, expect(t, alice.do("GET", "/api/feed/", nil), http.StatusOK))); fmt.Sprint(got) != fmt.Sprint([]int64{b1}) {
			t.Errorf("feed after follow %v", got)
		}
		a1 := alice.post(t, "alice's own")
		// Own posts show at once.
		if got := ids(results(t, expect(t, alice.do("GET", "/api/feed/", nil), http.StatusOK))); fmt.Sprint(got) != fmt.Sprint([]int64{a1, b1}) {
			t.Errorf("feed with own post %v", got)
		}
		b2 := bob.post(t, "bob after the follow")
		got := ids(waitFeed(t, alice, "/api/feed/", b2))
		if fmt.Sprint(got) != fmt.Sprint([]int64{b2, a1, b1}) {
			t.Errorf("home feed %v", got)
		}
		global := ids(results(t, expect(t, e.client().do("GET", "/api/feed/global/", nil), http.StatusOK)))
		if fmt.Sprint(global) != fmt.Sprint([]int64{b2, a1, c1, b1}) {
			t.Errorf("global feed %v", global)
		}
		// liked_by_me and counts in feeds.
		expect(t, alice.do("POST", fmt.Sprintf("/api/posts/%d/like/", b2), nil), http.StatusCreated)
		first := results(t, expect(t, alice.do("GET", "/api/feed/", nil), http.StatusOK))[0]
		if first["liked_by_me"] != true || first["likes_count"] != 1.0 || first["author"].(map[string]any)["is_following"] != true {
			t.Errorf("feed item %v", first)
		}
		if own := results(t, expect(t, alice.do("GET", "/api/feed/", nil), http.StatusOK))[1]; own["author"].(map[string]any)["is_following"] != false {
			t.Errorf("own post in the home feed: %v", own)
		}
		expect(t, alice.do("DELETE", fmt.Sprintf("/api/posts/%d/like/", b2), nil), http.StatusOK)
		if first := results(t, expect(t, alice.do("GET", "/api/feed/", nil), http.StatusOK))[0]; first["liked_by_me"] != false || first["likes_count"] != 0.0 {
			t.Errorf("feed item after the unlike %v", first)
		}
		expect(t, alice.do("POST", fmt.Sprintf("/api/posts/%d/like/", b2), nil), http.StatusCreated)
		// Feeds show a post's text and author from memory: an edit, a new
		// username and a new picture show on the next read.
		expect(t, bob.do("PATCH", fmt.Sprintf("/api/posts/%d/", b2), map[string]any{"content": "bob, edited"}), http.StatusOK)
		expect(t, bob.do("PATCH", "/api/users/me/", map[string]any{"username": "bobby"}), http.StatusOK)
		oldPic := first["author"].(map[string]any)["profile_picture"]
		expect(t, bob.multipart("PUT", "/api/users/me/images/", map[string][]byte{"profile_picture": testPNG(t, 32, 32)}), http.StatusOK)
		for _, path := range []string{"/api/feed/", "/api/feed/global/", fmt.Sprintf("/api/posts/%d/", b2)} {
			r := expect(t, alice.do("GET", path, nil), http.StatusOK).JSON()
			item := r
			if res, ok := r["results"].([]any); ok {
				item = res[0].(map[string]any)
			}
			a := item["author"].(map[string]any)
			if item["content"] != "bob, edited" || a["username"] != "bobby" || a["profile_picture"] == oldPic {
				t.Errorf("%s after edit, rename and new picture: %v", path, item)
			}
		}
		expect(t, bob.do("PATCH", "/api/users/me/", map[string]any{"username": "bob"}), http.StatusOK)
		// Unfollow removes bob's posts from the home feed.
		expect(t, alice.do("DELETE", "/api/users/bob/follow/", nil), http.StatusNoContent)
		if got := ids(results(t, expect(t, alice.do("GET", "/api/feed/", nil), http.StatusOK))); fmt.Sprint(got) != fmt.Sprint([]int64{a1}) {
			t.Errorf("feed after unfollow %v", got)
		}
		// A user's posts.
		if got := ids(results(t, expect(t, e.client().do("GET", "/api/users/bob/posts/", nil), http.StatusOK))); fmt.Sprint(got) != fmt.Sprint([]int64{b2, b1}) {
			t.Errorf("bob's posts %v", got)
		}
		expect(t, e.client().do("GET", "/api/users/nobody/posts/", nil), http.StatusNotFound)
		// Deleted posts leave every feed.
		expect(t, bob.do("DELETE", fmt.Sprintf("/api/posts/%d/", b2), nil), http.StatusNoContent)
		global = ids(results(t, expect(t, e.client().do("GET", "/api/feed/global/", nil), http.StatusOK)))
		if fmt.Sprint(global) != fmt.Sprint([]int64{a1, c1, b1}) {
			t.Errorf("global after delete %v", global)
		}
	})
}

// TestFeedPaginationUnderInserts walks a feed page by page while others
// keep posting: every post that existed when the walk began is seen exactly
// once, in order.
func TestFeedPaginationUnderInserts(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, eng dbtest.Engine) {
		e := start(t, eng, nil)
		reader, writer := e.newUser("reader"), e.newUser("writer")
		expect(t, reader.do("POST", "/api/users/writer/follow/", nil), http.StatusCreated)
		var before []int64
		for i := 0; i < 45; i++ {
			before = append([]int64{writer.post(t, "post "+strconv.Itoa(i))}, before...)
		}
		waitFeed(t, reader, "/api/feed/", before[0])

		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := e.client()
			w.Bearer = expect(t, w.do("POST", "/api/token/", map[string]string{"email": "writer@example.com", "password": testPassword}), http.StatusOK).Str("access")
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				w.do("POST", "/api/posts/", map[string]any{"content": "during the walk " + strconv.Itoa(i)})
			}
		}()
		for _, path := range []string{"/api/feed/", "/api/feed/global/", "/api/users/writer/posts/"} {
			var seen []int64
			cursor := ""
			for pages := 0; pages < 50; pages++ {
				q := path + "?limit=7"
				if cursor != "" {
					q += "&cursor=" + cursor
				}
				r := expect(t, reader.do("GET", q, nil), http.StatusOK).JSON()
				for _, it := range r["results"].([]any) {
					seen = append(seen, int64(it.(map[string]any)["id"].(float64)))
				}
				next, _ := r["next"].(string)
				if next == "" {
					break
				}
				cursor = next
			}
			// Strictly newest first: no duplicates, whatever was inserted.
			for i := 1; i < len(seen); i++ {
				if seen[i] >= seen[i-1] {
					t.Fatalf("%s walk not strictly descending at %d: %v", path, i, seen)
				}
			}
			// Every post that existed before the walk, each once (newer ones
			// may or may not appear).
			var old []int64
			for _, id := range seen {
				if id <= before[0] {
					old = append(old, id)
				}
			}
			if fmt.Sprint(old) != fmt.Sprint(before) {
				t.Errorf("%s walk saw %v, want %v", path, old, before)
			}
		}
		close(stop)
		wg.Wait()
	})
}

// TestConcurrentLikes: many users like and unlike at once; the count is
// exactly the number of likes that remain.
func TestConcurrentLikes(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, eng dbtest.Engine) {
		e := start(t, eng, nil)
		author := e.newUser("author")
		id := author.post(t, "like me")
		const n = 12
		likers := make([]*client, n)
		for i := range likers {
			c := e.client()
			email := fmt.Sprintf("liker%d@example.com", i)
			expect(t, c.do("POST", "/api/register/", map[string]string{"email": email, "password": testPassword, "confirmed_password": testPassword}), http.StatusCreated)
			l := e.mailLink(email, "Confirm your email")
			expect(t, c.do("GET", "/api/activate/"+l.UID+"/"+l.Token+"/", nil), http.StatusOK)
			c.Origin = ""
			c.Bearer = expect(t, c.do("POST", "/api/token/", map[string]string{"email": email, "password": testPassword}), http.StatusOK).Str("access")
			likers[i] = c
		}
		path := fmt.Sprintf("/api/posts/%d/like/", id)
		var wg sync.WaitGroup
		for i, c := range likers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for round := 0; round < 5; round++ {
					c.do("POST", path, nil)
					c.do("POST", path, nil)
					if i%2 == 0 || round < 4 {
						c.do("DELETE", path, nil)
					}
				}
				if i%2 == 0 {
					c.do("POST", path, nil) // evens end liked
				}
			}()
		}
		wg.Wait()
		got := expect(t, e.client().do("GET", fmt.Sprintf("/api/posts/%d/", id), nil), http.StatusOK).JSON()["likes_count"]
		var rows int
		if err := e.App.DB.QueryRow(t.Context(), `SELECT count(*) FROM likes WHERE post_id = ?`, id).Scan(&rows); err != nil {
			t.Fatal(err)
		}
		// Evens: liked at the end. Odds: round 4 likes without unliking.
		if got != float64(n) || rows != n {
			t.Errorf("likes_count %v, rows %d, want %d", got, rows, n)
		}
	})
}

func TestTrends(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, eng dbtest.Engine) {
		e := start(t, eng, nil)
		r := expect(t, e.client().do("GET", "/api/trends/", nil), http.StatusOK).JSON()
		if r["hashtags"] == nil || r["posts"] == nil {
			t.Fatalf("trends shape %v", r)
		}
		a, b, c := e.newUser("ann"), e.newUser("ben"), e.newUser("cid")
		p1 := a.post(t, "loving #golang today")
		b.post(t, "#golang is great #solo")
		c.post(t, "me too #GoLang")
		b.post(t, "#solo again")
		expect(t, b.do("POST", fmt.Sprintf("/api/posts/%d/like/", p1), nil), http.StatusCreated)
		expect(t, c.do("POST", fmt.Sprintf("/api/posts/%d/comments/", p1), map[string]any{"content": "yes"}), http.StatusCreated)
		if _, err := e.App.Posts.ComputeTrends(t.Context()); err != nil {
			t.Fatal(err)
		}
		r = expect(t, e.client().do("GET", "/api/trends/", nil), http.StatusOK).JSON()
		tags := r["hashtags"].([]any)
		if len(tags) == 0 {
			t.Fatalf("no trending tags: %v", r)
		}
		top := tags[0].(map[string]any)
		if top["tag"] != "golang" || top["posts"] != 3.0 || top["score"].(float64) <= 0 {
			t.Errorf("top tag %v", top)
		}
		for _, tg := range tags {
			if tg.(map[string]any)["tag"] == "solo" {
				t.Error("#solo used by one account trends")
			}
		}
		posts := r["posts"].([]any)
		if len(posts) == 0 || int64(posts[0].(map[string]any)["id"].(float64)) != p1 {
			t.Errorf("trending posts %v", posts)
		}
		// A deleted post leaves the trends answer.
		expect(t, a.do("DELETE", fmt.Sprintf("/api/posts/%d/", p1), nil), http.StatusNoContent)
		r = expect(t, e.client().do("GET", "/api/trends/", nil), http.StatusOK).JSON()
		for _, p := range r["posts"].([]any) {
			if int64(p.(map[string]any)["id"].(float64)) == p1 {
				t.Error("deleted post still trending")
			}
		}
	})
}
