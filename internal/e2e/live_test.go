package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"plaza/internal/db/dbtest"
)

// socket is a real WebSocket client.
type socket struct {
	t    *testing.T
	conn *websocket.Conn
	ch   chan frame
}

type frame struct {
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}

func (f frame) m() map[string]any {
	var m map[string]any
	_ = json.Unmarshal(f.Data, &m)
	return m
}

// dialWS connects as u with the access token in the query string.
func (e *env) dialWS(t *testing.T, token string, origin string) (*socket, *http.Response, error) {
	t.Helper()
	u := strings.Replace(e.URL, "http://", "ws://", 1) + "/api/ws/?access_token=" + token
	h := http.Header{}
	if origin != "" {
		h.Set("Origin", origin)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		return nil, resp, err
	}
	s := &socket{t: t, conn: conn, ch: make(chan frame, 256)}
	go func() {
		defer close(s.ch)
		for {
			_, data, err := conn.Read(context.Background())
			if err != nil {
				return
			}
			var f frame
			if json.Unmarshal(data, &f) == nil {
				s.ch <- f
			}
		}
	}()
	t.Cleanup(func() { conn.Close(websocket.StatusNormalClosure, "") })
	return s, resp, nil
}

func (e *env) ws(t *testing.T, token string) *socket {
	t.Helper()
	s, _, err := e.dialWS(t, token, trustedOrigin)
	if err != nil {
		t.Fatalf("websocket: %v", err)
	}
	return s
}

func (s *socket) send(typ string, data any) {
	s.t.Helper()
	b, _ := json.Marshal(map[string]any{"type": typ, "data": data})
	if err := s.conn.Write(context.Background(), websocket.MessageText, b); err != nil {
		s.t.Fatalf("ws write: %v", err)
	}
}

// expect waits for the next frame of type typ (skipping others) matching ok.
func (s *socket) expect(typ string, ok func(map[string]any) bool) map[string]any {
	s.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case f, open := <-s.ch:
			if !open {
				s.t.Fatalf("socket closed while waiting for %s", typ)
			}
			if f.Type == typ && (ok == nil || ok(f.m())) {
				return f.m()
			}
		case <-timeout:
			s.t.Fatalf("no %s frame within 10s", typ)
			return nil
		}
	}
}

// none fails if a frame of type typ arrives within d.
func (s *socket) none(typ string, d time.Duration) {
	s.t.Helper()
	timeout := time.After(d)
	for {
		select {
		case f, open := <-s.ch:
			if !open {
				return
			}
			if f.Type == typ {
				s.t.Fatalf("unexpected %s frame: %s", typ, f.Data)
			}
		case <-timeout:
			return
		}
	}
}

func TestNotificationsLive(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, eng dbtest.Engine) {
		e := start(t, eng, nil)
		alice, bob := e.newUser("alice"), e.newUser("bob")
		as := e.ws(t, alice.token(t))

		// follow → notification to the followed user, at once over the socket.
		expect(t, bob.do("POST", "/api/users/alice/follow/", nil), http.StatusCreated)
		n := as.expect("notification", func(m map[string]any) bool { return m["type"] == "follow" })
		if n["actor"].(map[string]any)["username"] != "bob" || n["read"] != false {
			t.Errorf("follow notification %v", n)
		}
		pid := alice.post(t, "hello followers")
		// like and comment by bob → notifications to alice.
		expect(t, bob.do("POST", fmt.Sprintf("/api/posts/%d/like/", pid), nil), http.StatusCreated)
		as.expect("notification", func(m map[string]any) bool { return m["type"] == "like" && m["post_id"] == float64(pid) })
		expect(t, bob.do("POST", fmt.Sprintf("/api/posts/%d/comments/", pid), map[string]any{"content": "nice"}), http.StatusCreated)
		c := as.expect("notification", func(m map[string]any) bool { return m["type"] == "comment" })
		if c["comment_id"] == nil || c["post_id"] != float64(pid) {
			t.Errorf("comment notification %v", c)
		}
		// Own actions notify nobody.
		expect(t, alice.do("POST", fmt.Sprintf("/api/posts/%d/like/", pid), nil), http.StatusCreated)
		as.none("notification", 500*time.Millisecond)

		// new_post → every follower (fan-out job).
		bs := e.ws(t, bob.token(t))
		expect(t, bob.do("POST", "/api/users/alice/follow/", nil), http.StatusOK)
		p2 := alice.post(t, "second post")
		bs.expect("notification", func(m map[string]any) bool { return m["type"] == "new_post" && m["post_id"] == float64(p2) })

		r := expect(t, alice.do("GET", "/api/notifications/", nil), http.StatusOK)
		list := results(t, r)
		types := []string{}
		for _, it := range list {
			types = append(types, it["type"].(string))
		}
		if fmt.Sprint(types) != "[comment like follow]" {
			t.Errorf("alice's notifications %v", types)
		}
		if got := expect(t, alice.do("GET", "/api/notifications/unread_count/", nil), http.StatusOK).JSON()["count"]; got != 3.0 {
			t.Errorf("unread %v", got)
		}
		// Undo: unlike and unfollow withdraw their notifications.
		expect(t, bob.do("DELETE", fmt.Sprintf("/api/posts/%d/like/", pid), nil), http.StatusOK)
		expect(t, bob.do("DELETE", "/api/users/alice/follow/", nil), http.StatusNoContent)
		if got := expect(t, alice.do("GET", "/api/notifications/unread_count/", nil), http.StatusOK).JSON()["count"]; got != 1.0 {
			t.Errorf("unread after undo %v", got)
		}
		// Mark read: some, then all; others' ids are ignored.
		first := int64(results(t, expect(t, alice.do("GET", "/api/notifications/", nil), http.StatusOK))[0]["id"].(float64))
		bobsID := int64(results(t, expect(t, bob.do("GET", "/api/notifications/", nil), http.StatusOK))[0]["id"].(float64))
		bobUnread := expect(t, bob.do("GET", "/api/notifications/unread_count/", nil), http.StatusOK).JSON()["count"]
		if got := expect(t, alice.do("POST", "/api/notifications/read/", map[string]any{"ids": []int64{bobsID}}), http.StatusOK).JSON()["count"]; got != 1.0 {
			t.Errorf("marking someone else's notification changed mine: %v", got)
		}
		if got := expect(t, bob.do("GET", "/api/notifications/unread_count/", nil), http.StatusOK).JSON()["count"]; got != bobUnread || got == 0.0 {
			t.Errorf("alice marked bob's notification read: %v, was %v", got, bobUnread)
		}
		if got := expect(t, alice.do("POST", "/api/notifications/read/", map[string]any{"ids": []int64{first}}), http.StatusOK).JSON()["count"]; got != 0.0 {
			t.Errorf("after marking read %v", got)
		}
		expect(t, bob.do("POST", "/api/notifications/read/", nil), http.StatusOK)
		if got := expect(t, bob.do("GET", "/api/notifications/unread_count/", nil), http.StatusOK).JSON()["count"]; got != 0.0 {
			t.Errorf("mark all read left %v", got)
		}
		expect(t, bob.do("POST", "/api/notifications/read/", map[string]any{"ids": "x"}), http.StatusBadRequest)
		// Deleting the post removes its notifications.
		expect(t, alice.do("DELETE", fmt.Sprintf("/api/posts/%d/", p2), nil), http.StatusNoContent)
		for _, it := range results(t, expect(t, bob.do("GET", "/api/notifications/", nil), http.StatusOK)) {
			if it["post_id"] == float64(p2) {
				t.Error("notification of a deleted post remains")
			}
		}
		expect(t, e.client().do("GET", "/api/notifications/", nil), http.StatusUnauthorized)
	})
}

func TestPostLiveCountsAndComments(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, eng dbtest.Engine) {
		e := start(t, eng, nil)
		alice, bob, carol := e.newUser("alice"), e.newUser("bob"), e.newUser("carol")
		pid := alice.post(t, "watch me")
		other := alice.post(t, "not watched")
		cs := e.ws(t, carol.token(t))
		cs.send("subscribe", map[string]any{"post_ids": []int64{pid}})
		cs.expect("subscribed", nil)
		expect(t, bob.do("POST", fmt.Sprintf("/api/posts/%d/like/", pid), nil), http.StatusCreated)
		st := cs.expect("post.stats", nil)
		if st["post_id"] != float64(pid) || st["likes_count"] != 1.0 || st["comments_count"] != 0.0 {
			t.Errorf("post.stats %v", st)
		}
		expect(t, bob.do("POST", fmt.Sprintf("/api/posts/%d/comments/", pid), map[string]any{"content": "<b>hi</b>"}), http.StatusCreated)
		cm := cs.expect("comment.created", nil)
		if cm["content"] != "<b>hi</b>" || cm["author"].(map[string]any)["username"] != "bob" {
			t.Errorf("comment.created %v", cm)
		}
		cs.expect("post.stats", func(m map[string]any) bool { return m["comments_count"] == 1.0 })
		// Not subscribed: nothing.
		expect(t, bob.do("POST", fmt.Sprintf("/api/posts/%d/like/", other), nil), http.StatusCreated)
		cs.none("post.stats", 300*time.Millisecond)
		cs.send("unsubscribe", map[string]any{"post_ids": []int64{pid}})
		time.Sleep(100 * time.Millisecond)
		expect(t, bob.do("DELETE", fmt.Sprintf("/api/posts/%d/like/", pid), nil), http.StatusOK)
		cs.none("post.stats", 300*time.Millisecond)
		// ping, and frames that are not understood.
		cs.send("ping", map[string]any{})
		cs.expect("pong", nil)
		if err := cs.conn.Write(context.Background(), websocket.MessageText, []byte("not json")); err != nil {
			t.Fatal(err)
		}
		cs.expect("error", func(m map[string]any) bool { return m["code"] == "bad_frame" })
		cs.send("no.such.type", map[string]any{})
		cs.expect("error", nil)
		// A frame over the size limit closes the socket.
		big := `{"type":"ping","data":{"x":"` + strings.Repeat("a", 70<<10) + `"}}`
		_ = cs.conn.Write(context.Background(), websocket.MessageText, []byte(big))
		deadline := time.After(5 * time.Second)
	wait:
		for {
			select {
			case _, open := <-cs.ch:
				if !open {
					break wait
				}
			case <-deadline:
				t.Fatal("socket stayed open after a huge frame")
			}
		}
	})
}

func TestWebSocketAuth(t *testing.T) {
	e := start(t, sqliteOnly, map[string]string{"PLAZA_ACCESS_TOKEN_TTL": "2s"})
	u := e.newUser("wsuser")
	tok := u.token(t)
	if _, resp, err := e.dialWS(t, "garbage", trustedOrigin); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("bad token: %v %v", err, resp)
	}
	if _, resp, err := e.dialWS(t, tok, "https://evil.example"); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("untrusted origin: %v %v", err, resp)
	}
	// The token's expiry ends the socket with a last error frame.
	s := e.ws(t, tok)
	s.expect("error", func(m map[string]any) bool { return m["code"] == "token_expired" })
	// Cookie authentication works too.
	c := u.client
	url := strings.Replace(e.URL, "http://", "ws://", 1) + "/api/ws/"
	expect(t, c.do("POST", "/api/login/", map[string]string{"email": "wsuser@example.com", "password": testPassword}), http.StatusOK)
	h := http.Header{"Origin": {trustedOrigin}, "Cookie": {"access_token=" + c.cookie("access_token")}}
	conn, _, err := websocket.Dial(context.Background(), url, &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		t.Fatalf("cookie websocket: %v", err)
	}
	conn.Close(websocket.StatusNormalClosure, "")
}

func TestChat(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, eng dbtest.Engine) {
		e := start(t, eng, nil)
		alice, bob, eve := e.newUser("alice"), e.newUser("bob"), e.newUser("eve")
		r := expect(t, alice.do("POST", "/api/conversations/", map[string]any{"username": "bob"}), http.StatusCreated).JSON()
		cid := int64(r["id"].(float64))
		if len(r["participants"].([]any)) != 2 || r["last_message"] != nil || r["unread_count"] != 0.0 {
			t.Errorf("new conversation %v", r)
		}
		if again := expect(t, bob.do("POST", "/api/conversations/", map[string]any{"username": "alice"}), http.StatusOK).JSON(); int64(again["id"].(float64)) != cid {
			t.Errorf("the pair has two conversations")
		}
		expect(t, alice.do("POST", "/api/conversations/", map[string]any{"username": "alice"}), http.StatusBadRequest)
		expect(t, alice.do("POST", "/api/conversations/", map[string]any{"username": "nobody"}), http.StatusNotFound)

		as, bs := e.ws(t, alice.token(t)), e.ws(t, bob.token(t))
		m := expect(t, alice.do("POST", fmt.Sprintf("/api/conversations/%d/messages/", cid), map[string]any{"content": "hi <bob>"}), http.StatusCreated).JSON()
		if m["content"] != "hi <bob>" || m["sender"].(map[string]any)["username"] != "alice" {
			t.Errorf("message %v", m)
		}
		for _, s := range []*socket{as, bs} {
			got := s.expect("message.created", nil)
			if got["id"] != m["id"] || got["conversation_id"] != float64(cid) {
				t.Errorf("message.created %v", got)
			}
		}
		bs.expect("notification", func(n map[string]any) bool { return n["type"] == "message" })
		// Over the socket.
		bs.send("message.send", map[string]any{"conversation_id": cid, "content": "hello alice"})
		as.expect("message.created", func(x map[string]any) bool { return x["content"] == "hello alice" })
		bs.send("message.send", map[string]any{"conversation_id": 999999, "content": "x"})
		bs.expect("error", func(x map[string]any) bool { return x["code"] == "not_found" })

		// Unread counts, cleared by reading.
		list := results(t, expect(t, bob.do("GET", "/api/conversations/", nil), http.StatusOK))
		if len(list) != 1 || list[0]["unread_count"] != 0.0 || list[0]["last_message"].(map[string]any)["content"] != "hello alice" {
			t.Errorf("bob's conversations %v", list)
		}
		alist := results(t, expect(t, alice.do("GET", "/api/conversations/", nil), http.StatusOK))
		if alist[0]["unread_count"] != 1.0 {
			t.Errorf("alice unread %v", alist[0]["unread_count"])
		}
		msgs := results(t, expect(t, alice.do("GET", fmt.Sprintf("/api/conversations/%d/messages/", cid), nil), http.StatusOK))
		if len(msgs) != 2 || msgs[0]["content"] != "hello alice" {
			t.Errorf("history newest first %v", msgs)
		}
		if got := results(t, expect(t, alice.do("GET", "/api/conversations/", nil), http.StatusOK))[0]["unread_count"]; got != 0.0 {
			t.Errorf("after reading: unread %v", got)
		}
		// Pagination.
		for i := 0; i < 5; i++ {
			expect(t, alice.do("POST", fmt.Sprintf("/api/conversations/%d/messages/", cid), map[string]any{"content": fmt.Sprint("m", i)}), http.StatusCreated)
		}
		pg := expect(t, bob.do("GET", fmt.Sprintf("/api/conversations/%d/messages/?limit=3", cid), nil), http.StatusOK).JSON()
		next := pg["next"].(string)
		pg2 := results(t, expect(t, bob.do("GET", fmt.Sprintf("/api/conversations/%d/messages/?limit=10&cursor=%s", cid, next), nil), http.StatusOK))
		if len(pg["results"].([]any)) != 3 || len(pg2) != 4 {
			t.Errorf("pages %d + %d", len(pg["results"].([]any)), len(pg2))
		}
		// Outsiders see nothing.
		expect(t, eve.do("GET", fmt.Sprintf("/api/conversations/%d/messages/", cid), nil), http.StatusNotFound)
		expect(t, eve.do("POST", fmt.Sprintf("/api/conversations/%d/messages/", cid), map[string]any{"content": "let me in"}), http.StatusNotFound)
		if got := results(t, expect(t, eve.do("GET", "/api/conversations/", nil), http.StatusOK)); len(got) != 0 {
			t.Errorf("eve sees %v", got)
		}
		expect(t, alice.do("POST", fmt.Sprintf("/api/conversations/%d/messages/", cid), map[string]any{"content": ""}), http.StatusBadRequest)
		expect(t, alice.do("POST", fmt.Sprintf("/api/conversations/%d/messages/", cid), map[string]any{"content": strings.Repeat("x", 4001)}), http.StatusBadRequest)
	})
}

func TestPresence(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, eng dbtest.Engine) {
		e := start(t, eng, nil)
		alice, bob := e.newUser("alice"), e.newUser("bob")
		expect(t, bob.do("POST", "/api/users/alice/follow/", nil), http.StatusCreated)
		bs := e.ws(t, bob.token(t))
		got := expect(t, bob.do("GET", "/api/presence/?users=alice,bob,ghost", nil), http.StatusOK).JSON()
		if got["alice"] != false || got["bob"] != true || got["ghost"] != false {
			t.Errorf("presence %v", got)
		}
		as1 := e.ws(t, alice.token(t))
		bs.expect("presence", func(m map[string]any) bool { return m["username"] == "alice" && m["online"] == true })
		as2 := e.ws(t, alice.token(t))
		if got := expect(t, bob.do("GET", "/api/presence/?users=alice", nil), http.StatusOK).JSON(); got["alice"] != true {
			t.Errorf("alice online %v", got)
		}
		// One socket closing is not going offline while another is open.
		as1.conn.Close(websocket.StatusNormalClosure, "")
		bs.none("presence", 500*time.Millisecond)
		as2.conn.Close(websocket.StatusNormalClosure, "")
		bs.expect("presence", func(m map[string]any) bool { return m["username"] == "alice" && m["online"] == false })
		expect(t, bob.do("GET", "/api/presence/", nil), http.StatusBadRequest)
	})
}
