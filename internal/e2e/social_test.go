package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"plaza/internal/db/dbtest"
)

// user is a registered, active, logged-in client with its username.
type user struct {
	*client
	Name string
	ID   int64
}

func (e *env) newUser(name string) user {
	e.t.Helper()
	c := e.registerActive(name + "@example.com")
	me := expect(e.t, c.do("GET", "/api/users/me/", nil), http.StatusOK).JSON()
	return user{client: c, Name: me["username"].(string), ID: int64(me["id"].(float64))}
}

func results(t *testing.T, r response) []map[string]any {
	t.Helper()
	raw, ok := r.JSON()["results"].([]any)
	if !ok {
		t.Fatalf("no results list: %s", r.Body)
	}
	out := make([]map[string]any, len(raw))
	for i, x := range raw {
		out[i] = x.(map[string]any)
	}
	return out
}

func usernames(items []map[string]any) []string {
	var out []string
	for _, it := range items {
		out = append(out, it["username"].(string))
	}
	return out
}

func TestProfilesAndFollows(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, eng dbtest.Engine) {
		e := start(t, eng, nil)
		alice, bob, carol := e.newUser("alice"), e.newUser("bob"), e.newUser("carol")
		anon := e.client()

		// A fresh profile: zero counts, default images.
		p := expect(t, anon.do("GET", "/api/users/bob/", nil), http.StatusOK).JSON()
		for _, k := range []string{"followers_count", "following_count", "posts_count"} {
			if p[k] != 0.0 {
				t.Errorf("fresh %s = %v", k, p[k])
			}
		}
		if _, has := p["email"]; has {
			t.Error("someone else's profile shows the email")
		}
		if !strings.HasSuffix(p["cover_image"].(string), "/static/default-cover.svg") {
			t.Errorf("default cover %v", p["cover_image"])
		}
		expect(t, anon.do("GET", "/api/users/nobody-here/", nil), http.StatusNotFound)

		// Edit own profile; text round-trips verbatim, HTML and SQL included.
		tricky := `<script>alert("x")</script> ' OR 1=1; DROP TABLE users; -- ü 😀`
		r := expect(t, alice.do("PATCH", "/api/users/me/", map[string]any{
			"first_name": "Alice", "last_name": tricky, "bio": tricky, "is_staff": true, "followers_count": 99,
		}), http.StatusOK).JSON()
		if r["bio"] != tricky || r["last_name"] != tricky || r["first_name"] != "Alice" || r["followers_count"] != 0.0 {
			t.Errorf("patched profile %v", r)
		}
		if got := expect(t, anon.do("GET", "/api/users/alice/", nil), http.StatusOK).JSON()["bio"]; got != tricky {
			t.Errorf("bio read back as %q", got)
		}
		expect(t, alice.do("PATCH", "/api/users/me/", map[string]any{"bio": strings.Repeat("x", 2001)}), http.StatusBadRequest)
		expect(t, alice.do("PATCH", "/api/users/me/", map[string]any{"bio": 5}), http.StatusBadRequest)
		expect(t, alice.do("PATCH", "/api/users/me/", map[string]any{"username": "BOB"}), http.StatusBadRequest)
		expect(t, alice.do("PATCH", "/api/users/me/", map[string]any{"username": "a"}), http.StatusBadRequest)
		expect(t, anon.do("PATCH", "/api/users/me/", map[string]any{"bio": "x"}), http.StatusUnauthorized)
		r = expect(t, alice.do("PATCH", "/api/users/me/", map[string]any{"username": "alice_w"}), http.StatusOK).JSON()
		if r["username"] != "alice_w" {
			t.Fatalf("rename: %v", r)
		}
		alice.Name = "alice_w"

		// Follow graph.
		expect(t, alice.do("POST", "/api/users/bob/follow/", nil), http.StatusCreated)
		expect(t, alice.do("POST", "/api/users/BOB/follow/", nil), http.StatusOK) // idempotent, case-insensitive
		expect(t, carol.do("POST", "/api/users/bob/follow/", nil), http.StatusCreated)
		expect(t, bob.do("POST", "/api/users/alice_w/follow/", nil), http.StatusCreated)
		r = expect(t, alice.do("POST", "/api/users/alice_w/follow/", nil), http.StatusBadRequest).JSON()
		if r["code"] != "self_follow" {
			t.Errorf("self follow: %v", r)
		}
		expect(t, alice.do("POST", "/api/users/ghost/follow/", nil), http.StatusNotFound)
		expect(t, anon.do("POST", "/api/users/bob/follow/", nil), http.StatusUnauthorized)

		bp := expect(t, alice.do("GET", "/api/users/bob/", nil), http.StatusOK).JSON()
		if bp["followers_count"] != 2.0 || bp["following_count"] != 1.0 || bp["is_following"] != true || bp["follows_you"] != true {
			t.Errorf("bob as alice sees him: %v", bp)
		}
		cp := expect(t, carol.do("GET", "/api/users/alice_w/", nil), http.StatusOK).JSON()
		if cp["is_following"] != false || cp["follows_you"] != false || cp["followers_count"] != 1.0 {
			t.Errorf("alice as carol sees her: %v", cp)
		}
		f := results(t, expect(t, carol.do("GET", "/api/users/bob/followers/", nil), http.StatusOK))
		if got := usernames(f); fmt.Sprint(got) != "[carol alice_w]" {
			t.Errorf("followers newest first: %v", got)
		}
		if f[0]["is_following"] != false || f[1]["is_following"] != false {
			t.Errorf("carol follows neither herself nor alice: %v", f)
		}
		if got := usernames(results(t, expect(t, anon.do("GET", "/api/users/bob/following/", nil), http.StatusOK))); fmt.Sprint(got) != "[alice_w]" {
			t.Errorf("following: %v", got)
		}
		// Pagination of a follow list.
		pg := expect(t, anon.do("GET", "/api/users/bob/followers/?limit=1", nil), http.StatusOK).JSON()
		next, _ := pg["next"].(string)
		if len(pg["results"].([]any)) != 1 || next == "" {
			t.Fatalf("first page %v", pg)
		}
		pg2 := expect(t, anon.do("GET", "/api/users/bob/followers/?limit=1&cursor="+next, nil), http.StatusOK).JSON()
		if pg2["results"].([]any)[0].(map[string]any)["username"] != "alice_w" || pg2["next"] != nil {
			t.Errorf("second page %v", pg2)
		}
		expect(t, anon.do("GET", "/api/users/bob/followers/?cursor=bogus!", nil), http.StatusBadRequest)
		expect(t, anon.do("GET", "/api/users/bob/followers/?limit=0", nil), http.StatusBadRequest)
		expect(t, anon.do("GET", "/api/users/ghost/followers/", nil), http.StatusNotFound)

		// Unfollow: 204, counts follow, idempotent.
		expect(t, alice.do("DELETE", "/api/users/bob/follow/", nil), http.StatusNoContent)
		expect(t, alice.do("DELETE", "/api/users/bob/follow/", nil), http.StatusNoContent)
		bp = expect(t, alice.do("GET", "/api/users/bob/", nil), http.StatusOK).JSON()
		if bp["followers_count"] != 1.0 || bp["is_following"] != false {
			t.Errorf("after unfollow: %v", bp)
		}
		me := expect(t, alice.do("GET", "/api/users/me/", nil), http.StatusOK).JSON()
		if me["following_count"] != 0.0 || me["followers_count"] != 1.0 || me["email"] != "alice@example.com" {
			t.Errorf("own profile after unfollow: %v", me)
		}

		// Search: prefix on username and names, case-insensitive.
		e.newUser("alfred")
		got := usernames(results(t, expect(t, anon.do("GET", "/api/users/?search=AL", nil), http.StatusOK)))
		if fmt.Sprint(got) != "[alfred alice_w]" {
			t.Errorf("search al: %v", got)
		}
		expect(t, carol.do("PATCH", "/api/users/me/", map[string]any{"first_name": "Zelda"}), http.StatusOK)
		if got := usernames(results(t, expect(t, anon.do("GET", "/api/users/?search=zel", nil), http.StatusOK))); fmt.Sprint(got) != "[carol]" {
			t.Errorf("search by first name: %v", got)
		}
		if got := results(t, expect(t, anon.do("GET", "/api/users/?search=%25", nil), http.StatusOK)); len(got) != 0 {
			t.Errorf("search %% matched %v", usernames(got))
		}
		pg = expect(t, anon.do("GET", "/api/users/?search=a&limit=1", nil), http.StatusOK).JSON()
		if next, _ := pg["next"].(string); next == "" {
			t.Errorf("search pagination: %v", pg)
		} else if got := usernames(results(t, expect(t, anon.do("GET", "/api/users/?search=a&limit=5&cursor="+next, nil), http.StatusOK))); fmt.Sprint(got) != "[alice_w]" {
			t.Errorf("search page 2: %v", got)
		}
		expect(t, anon.do("GET", "/api/users/", nil), http.StatusBadRequest)
	})
}

func TestSuggestions(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, eng dbtest.Engine) {
		e := start(t, eng, nil)
		a, b, c, d, x := e.newUser("ann"), e.newUser("ben"), e.newUser("cat"), e.newUser("dan"), e.newUser("xav")
		// ann follows ben and cat; both follow dan; ben follows xav; dan is popular.
		for _, pair := range []struct {
			from user
			to   string
		}{{a, "ben"}, {a, "cat"}, {b, "dan"}, {c, "dan"}, {b, "xav"}, {x, "dan"}} {
			expect(t, pair.from.do("POST", "/api/users/"+pair.to+"/follow/", nil), http.StatusCreated)
		}
		// Before the job ran: popular accounts not yet followed. (The
		// periodic job also runs once at start: wait for that run to end,
		// then forget what it computed.)
		deadline := time.Now().Add(30 * time.Second)
		for {
			var done, open int
			if err := e.App.DB.QueryRow(t.Context(), `SELECT
				count(*) FILTER (WHERE state = 'completed'), count(*) FILTER (WHERE state NOT IN ('completed', 'discarded', 'cancelled'))
				FROM river_job WHERE kind = 'social.suggestions'`).Scan(&done, &open); err != nil {
				t.Fatal(err)
			}
			if done > 0 && open == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the start-up suggestions job did not finish")
			}
			time.Sleep(20 * time.Millisecond)
		}
		if _, err := e.App.DB.Exec(t.Context(), `DELETE FROM suggestions`); err != nil {
			t.Fatal(err)
		}
		res := results(t, expect(t, a.do("GET", "/api/suggestions/", nil), http.StatusOK))
		if len(res) == 0 || res[0]["reason"] != "popular" || res[0]["user"].(map[string]any)["username"] != "dan" {
			t.Errorf("fallback suggestions: %v", res)
		}
		n, err := e.App.Social.ComputeSuggestions(t.Context(), 100, 0)
		if err != nil || n == 0 {
			t.Fatalf("compute: %d %v", n, err)
		}
		res = results(t, expect(t, a.do("GET", "/api/suggestions/", nil), http.StatusOK))
		if len(res) < 2 {
			t.Fatalf("suggestions: %v", res)
		}
		first := res[0]["user"].(map[string]any)
		if first["username"] != "dan" || res[0]["mutuals"] != 2.0 || res[0]["reason"] != "followed_by" {
			t.Errorf("top suggestion %v", res[0])
		}
		if res[1]["user"].(map[string]any)["username"] != "xav" || res[1]["mutuals"] != 1.0 {
			t.Errorf("second suggestion %v", res[1])
		}
		for _, sg := range res {
			name := sg["user"].(map[string]any)["username"]
			if name == "ann" || name == "ben" || name == "cat" {
				t.Errorf("suggested self or someone followed: %v", name)
			}
		}
		// Following a suggestion removes it at once.
		expect(t, a.do("POST", "/api/users/dan/follow/", nil), http.StatusCreated)
		for _, sg := range results(t, expect(t, a.do("GET", "/api/suggestions/", nil), http.StatusOK)) {
			if sg["user"].(map[string]any)["username"] == "dan" {
				t.Error("followed user still suggested")
			}
		}
		_ = d
		expect(t, e.client().do("GET", "/api/suggestions/", nil), http.StatusUnauthorized)
	})
}

// TestDeletedUser: deleting an account removes what it made and corrects
// every count that mentioned it.
func TestDeletedUser(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, eng dbtest.Engine) {
		e := start(t, eng, nil)
		a, x := e.newUser("anna"), e.newUser("xena")
		pa := a.post(t, "anna's post")
		px := x.post(t, "xena's post")
		expect(t, x.do("POST", "/api/users/anna/follow/", nil), http.StatusCreated)
		expect(t, a.do("POST", "/api/users/xena/follow/", nil), http.StatusCreated)
		expect(t, x.do("POST", fmt.Sprintf("/api/posts/%d/like/", pa), nil), http.StatusCreated)
		expect(t, x.do("POST", fmt.Sprintf("/api/posts/%d/comments/", pa), map[string]any{"content": "one"}), http.StatusCreated)
		expect(t, x.do("POST", fmt.Sprintf("/api/posts/%d/comments/", pa), map[string]any{"content": "two"}), http.StatusCreated)
		expect(t, a.do("POST", fmt.Sprintf("/api/posts/%d/comments/", pa), map[string]any{"content": "mine"}), http.StatusCreated)
		expect(t, a.do("POST", fmt.Sprintf("/api/posts/%d/like/", px), nil), http.StatusCreated)

		expect(t, x.do("DELETE", "/api/users/me/", map[string]any{"password": "wrong one"}), http.StatusBadRequest)
		expect(t, x.do("DELETE", "/api/users/me/", map[string]any{"password": testPassword}), http.StatusNoContent)

		anon := e.client()
		expect(t, anon.do("GET", "/api/users/xena/", nil), http.StatusNotFound)
		expect(t, anon.do("GET", fmt.Sprintf("/api/posts/%d/", px), nil), http.StatusNotFound)
		p := expect(t, anon.do("GET", fmt.Sprintf("/api/posts/%d/", pa), nil), http.StatusOK).JSON()
		if p["likes_count"] != 0.0 || p["comments_count"] != 1.0 {
			t.Errorf("anna's post after xena left: %v", p)
		}
		prof := expect(t, anon.do("GET", "/api/users/anna/", nil), http.StatusOK).JSON()
		if prof["followers_count"] != 0.0 || prof["following_count"] != 0.0 || prof["posts_count"] != 1.0 {
			t.Errorf("anna's counts: %v", prof)
		}
		if got := len(results(t, expect(t, anon.do("GET", "/api/users/anna/followers/", nil), http.StatusOK))); got != 0 {
			t.Errorf("followers list still has %d", got)
		}
		if got := ids(results(t, expect(t, a.do("GET", "/api/feed/", nil), http.StatusOK))); fmt.Sprint(got) != fmt.Sprint([]int64{pa}) {
			t.Errorf("anna's feed %v", got)
		}
		if got := ids(results(t, expect(t, anon.do("GET", "/api/feed/global/", nil), http.StatusOK))); fmt.Sprint(got) != fmt.Sprint([]int64{pa}) {
			t.Errorf("global feed %v", got)
		}
		// The old session is gone too.
		expect(t, x.do("GET", "/api/users/me/", nil), http.StatusUnauthorized)
	})
}
