package live

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"plaza/internal/pubsub"
)

// wait bounds every wait for something that must happen (generous for the
// race detector on a slow machine); quiet is how long "nothing arrives" is
// watched after a fence made it unlikely anyway.
const (
	wait  = 10 * time.Second
	quiet = 100 * time.Millisecond
)

// testServer is one hub behind an httptest server whose handler takes the
// user id from ?user= (auth is the HTTP layer's job) and an optional token
// lifetime from ?exp_ms=.
type testServer struct {
	hub *Hub
	url string
}

func startHub(t *testing.T, broker pubsub.Broker, cfg HubConfig, onMessage ClientHandler, onPresence PresenceHandler) *testServer {
	t.Helper()
	hub, err := NewHub(t.Context(), broker, cfg, onMessage, onPresence)
	if err != nil {
		t.Fatalf("NewHub: %v", err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		uid, err := strconv.ParseInt(r.URL.Query().Get("user"), 10, 64)
		if err != nil {
			http.Error(w, "no user", http.StatusUnauthorized)
			return
		}
		var exp time.Time
		if ms := r.URL.Query().Get("exp_ms"); ms != "" {
			n, _ := strconv.Atoi(ms)
			exp = time.Now().Add(time.Duration(n) * time.Millisecond)
		}
		_ = hub.Accept(w, r, uid, exp)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		if err := hub.Close(); err != nil {
			t.Errorf("hub.Close: %v", err)
		}
	})
	return &testServer{hub: hub, url: "ws" + strings.TrimPrefix(srv.URL, "http")}
}

func newInProc(t *testing.T) pubsub.Broker {
	b := pubsub.NewInProc()
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// dialRaw opens a socket for user without reading from it.
func (ts *testServer) dialRaw(t *testing.T, user int64, query string) *websocket.Conn {
	t.Helper()
	return ts.dialOpts(t, user, query, nil)
}

// dialTinyBuffer opens a socket with a 4 KiB receive buffer, so that a
// client that does not read fills the TCP window (and the server's send
// buffer, which grows with the window) after a few frames.
func (ts *testServer) dialTinyBuffer(t *testing.T, user int64) *websocket.Conn {
	t.Helper()
	d := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		return errors.Join(err, serr)
	}}
	return ts.dialOpts(t, user, "", &websocket.DialOptions{
		HTTPClient: &http.Client{Transport: &http.Transport{DialContext: d.DialContext}},
	})
}

func (ts *testServer) dialOpts(t *testing.T, user int64, query string, opts *websocket.DialOptions) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	u := ts.url + "/?user=" + strconv.FormatInt(user, 10)
	if query != "" {
		u += "&" + query
	}
	c, _, err := websocket.Dial(ctx, u, opts)
	if err != nil {
		t.Fatalf("dial user %d: %v", user, err)
	}
	c.SetReadLimit(1 << 20)
	t.Cleanup(func() { _ = c.CloseNow() })
	return c
}

// client is a socket whose frames a goroutine reads (answering pings) into
// a channel.
type client struct {
	t      *testing.T
	c      *websocket.Conn
	frames chan Frame
	done   chan struct{}
	err    error // the read error, once done is closed
}

// connect opens a socket for user and waits for a pong, so the hub has
// registered it (and subscribed its user topic) when connect returns.
func (ts *testServer) connect(t *testing.T, user int64, query string) *client {
	t.Helper()
	cl := &client{t: t, c: ts.dialRaw(t, user, query), frames: make(chan Frame, 4096), done: make(chan struct{})}
	go func() {
		defer close(cl.done)
		for {
			_, b, err := cl.c.Read(context.Background())
			if err != nil {
				cl.err = err
				return
			}
			var f Frame
			if err := json.Unmarshal(b, &f); err != nil {
				cl.err = fmt.Errorf("bad frame from server %q: %w", b, err)
				return
			}
			cl.frames <- f
		}
	}()
	cl.send(`{"type":"ping"}`)
	cl.expect("pong")
	return cl
}

func (cl *client) send(s string) {
	cl.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := cl.c.Write(ctx, websocket.MessageText, []byte(s)); err != nil {
		cl.t.Fatalf("write %s: %v", s, err)
	}
}

// next returns the next frame.
func (cl *client) next() Frame {
	cl.t.Helper()
	select {
	case f := <-cl.frames:
		return f
	case <-cl.done:
		select {
		case f := <-cl.frames:
			return f
		default:
		}
		cl.t.Fatalf("socket closed while waiting for a frame: %v", cl.err)
	case <-time.After(wait):
		cl.t.Fatalf("no frame within %v", wait)
	}
	return Frame{}
}

// expect returns the next frame, which must be of type typ.
func (cl *client) expect(typ string) Frame {
	cl.t.Helper()
	f := cl.next()
	if f.Type != typ {
		cl.t.Fatalf("got frame %s %s, want type %s", f.Type, f.Data, typ)
	}
	return f
}

// expectNone checks that no frame is waiting (after a fence).
func (cl *client) expectNone() {
	cl.t.Helper()
	select {
	case f := <-cl.frames:
		cl.t.Fatalf("unexpected frame %s %s", f.Type, f.Data)
	case <-time.After(quiet):
	}
}

// closed waits for the socket to be closed by the server and returns the
// close status (-1 if there was none).
func (cl *client) closed() websocket.StatusCode {
	cl.t.Helper()
	select {
	case <-cl.done:
		return websocket.CloseStatus(cl.err)
	case <-time.After(wait):
		cl.t.Fatalf("socket still open after %v", wait)
	}
	return 0
}

func (cl *client) subscribe(typ string, ids ...int64) []int64 {
	cl.t.Helper()
	b, _ := json.Marshal(map[string]any{"type": typ, "data": map[string]any{"post_ids": ids}})
	cl.send(string(b))
	f := cl.expect("subscribed")
	var d struct {
		PostIDs []int64 `json:"post_ids"`
	}
	if err := json.Unmarshal(f.Data, &d); err != nil || d.PostIDs == nil {
		cl.t.Fatalf("subscribed frame %s: %v", f.Data, err)
	}
	return d.PostIDs
}

func mustFrame(t *testing.T, typ string, data any) Frame {
	t.Helper()
	f, err := NewFrame(typ, data)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func errorCode(t *testing.T, f Frame) string {
	t.Helper()
	if f.Type != "error" {
		t.Fatalf("got %s %s, want an error frame", f.Type, f.Data)
	}
	var d errorData
	if err := json.Unmarshal(f.Data, &d); err != nil {
		t.Fatal(err)
	}
	return d.Code
}

func TestNewFrame(t *testing.T) {
	t.Parallel()
	f := mustFrame(t, "post.stats", map[string]int{"post_id": 1})
	b, _ := json.Marshal(f)
	if string(b) != `{"type":"post.stats","data":{"post_id":1}}` {
		t.Errorf("frame encodes as %s", b)
	}
	f = mustFrame(t, "pong", nil)
	if b, _ = f.encode(); string(b) != string(pongFrame) {
		t.Errorf("nil data encodes as %s", b)
	}
	if _, err := NewFrame("", nil); err == nil {
		t.Error("NewFrame accepted an empty type")
	}
	if _, err := NewFrame("x", make(chan int)); err == nil {
		t.Error("NewFrame accepted data that is not JSON")
	}
}

func TestSendToUser(t *testing.T) {
	t.Parallel()
	ts := startHub(t, newInProc(t), HubConfig{}, nil, nil)
	a1, a2 := ts.connect(t, 1, ""), ts.connect(t, 1, "")
	b := ts.connect(t, 2, "")
	ctx := t.Context()

	if err := ts.hub.SendToUser(ctx, 1, mustFrame(t, "notification", map[string]int{"id": 7})); err != nil {
		t.Fatal(err)
	}
	// The fence: published after, so it arrives after anything the first
	// publish would have brought.
	if err := ts.hub.SendToUser(ctx, 2, mustFrame(t, "fence", nil)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client{a1, a2} {
		if f := c.expect("notification"); string(f.Data) != `{"id":7}` {
			t.Errorf("data %s", f.Data)
		}
	}
	b.expect("fence")
	a1.expectNone()
	if st := ts.hub.Stats(); st.Sockets != 3 || st.Users != 2 {
		t.Errorf("stats %+v", st)
	}
}

func TestSendToPost(t *testing.T) {
	t.Parallel()
	ts := startHub(t, newInProc(t), HubConfig{}, nil, nil)
	a, b, c := ts.connect(t, 1, ""), ts.connect(t, 2, ""), ts.connect(t, 3, "")
	ctx := t.Context()

	if got := a.subscribe("subscribe", 10, 12, 10); !slices.Equal(got, []int64{10, 12}) {
		t.Errorf("subscribed %v", got)
	}
	b.subscribe("subscribe", 11)
	if err := ts.hub.SendToPost(ctx, 10, mustFrame(t, "post.stats", map[string]int{"post_id": 10, "likes_count": 1})); err != nil {
		t.Fatal(err)
	}
	fence := func() {
		for _, u := range []int64{1, 2, 3} {
			if err := ts.hub.SendToUser(ctx, u, mustFrame(t, "fence", nil)); err != nil {
				t.Fatal(err)
			}
		}
	}
	fence()
	a.expect("post.stats")
	for _, cl := range []*client{a, b, c} {
		cl.expect("fence")
	}

	if got := a.subscribe("unsubscribe", 10, 99); !slices.Equal(got, []int64{12}) {
		t.Errorf("after unsubscribe: %v", got)
	}
	if err := ts.hub.SendToPost(ctx, 10, mustFrame(t, "post.stats", nil)); err != nil {
		t.Fatal(err)
	}
	if err := ts.hub.SendToPost(ctx, 11, mustFrame(t, "comment.created", nil)); err != nil {
		t.Fatal(err)
	}
	fence()
	a.expect("fence")
	b.expect("comment.created")
	b.expect("fence")
	c.expect("fence")
	if got := a.subscribe("unsubscribe", 12); len(got) != 0 {
		t.Errorf("after unsubscribing all: %v", got)
	}
	eventually(t, "no post topics", func() bool { return ts.hub.Stats().Posts == 1 })
}

func TestSubscriptionLimit(t *testing.T) {
	t.Parallel()
	ts := startHub(t, newInProc(t), HubConfig{MaxPostSubscriptions: 3}, nil, nil)
	a := ts.connect(t, 1, "")
	a.subscribe("subscribe", 1, 2, 3)
	a.send(`{"type":"subscribe","data":{"post_ids":[4]}}`)
	if code := errorCode(t, a.next()); code != "too_many_subscriptions" {
		t.Errorf("code %s", code)
	}
	if got := a.subscribe("subscribe", 3); !slices.Equal(got, []int64{1, 2, 3}) {
		t.Errorf("subscribed %v", got)
	}
}

func TestPingAndBadFrames(t *testing.T) {
	t.Parallel()
	ts := startHub(t, newInProc(t), HubConfig{MaxFrameBytes: 1024}, nil, nil)
	a := ts.connect(t, 1, "")
	a.send(`{"type":"ping","data":{}}`)
	if f := a.expect("pong"); string(f.Data) != "{}" {
		t.Errorf("pong data %s", f.Data)
	}
	for _, bad := range []string{
		`not json`,
		`[1,2]`,
		`null`,
		`{"type":5}`,
		`{"data":{}}`,
		`{"type":"launch.missiles","data":{}}`,
		`{"type":"subscribe"}`,
		`{"type":"subscribe","data":{"post_ids":"1"}}`,
		`{"type":"subscribe","data":{"post_ids":[1.5]}}`,
		`{"type":"unsubscribe","data":{"post_ids":[0]}}`,
		`{"type":"subscribe","data":[1]}`,
		`{"type":"message.send","data":{"conversation_id":1,"content":"hi"}}`, // no handler
	} {
		a.send(bad)
		if code := errorCode(t, a.next()); code != "bad_frame" {
			t.Errorf("%s: code %s", bad, code)
		}
	}
	a.send(`{"type":"ping"}`) // still open
	a.expect("pong")

	// A frame over MaxFrameBytes closes the socket with 1009.
	a.send(`{"type":"ping","data":{"pad":"` + strings.Repeat("x", 2048) + `"}}`)
	if code := a.closed(); code != websocket.StatusMessageTooBig {
		t.Errorf("close status %v, want 1009", code)
	}
	eventually(t, "socket gone", func() bool { return ts.hub.Stats().Sockets == 0 })
}

func TestMessageSend(t *testing.T) {
	t.Parallel()
	type call struct {
		user int64
		f    Frame
	}
	calls := make(chan call, 10)
	onMessage := func(ctx context.Context, userID int64, f Frame) *Frame {
		calls <- call{userID, f}
		if strings.Contains(string(f.Data), "boom") {
			panic("boom")
		}
		if strings.Contains(string(f.Data), "quiet") {
			return nil
		}
		r := mustFrame(t, "error", errorData{Code: "not_found"})
		return &r
	}
	ts := startHub(t, newInProc(t), HubConfig{}, onMessage, nil)
	a := ts.connect(t, 5, "")
	a.send(`{"type":"message.send","data":{"conversation_id":3,"content":"hello"}}`)
	if code := errorCode(t, a.next()); code != "not_found" {
		t.Errorf("reply code %s", code)
	}
	c := <-calls
	if c.user != 5 || c.f.Type != "message.send" || string(c.f.Data) != `{"conversation_id":3,"content":"hello"}` {
		t.Errorf("handler got %d %s %s", c.user, c.f.Type, c.f.Data)
	}
	a.send(`{"type":"message.send","data":{"content":"quiet"}}`)
	<-calls
	a.send(`{"type":"message.send","data":{"content":"boom"}}`)
	<-calls
	if code := errorCode(t, a.next()); code != "internal_error" {
		t.Errorf("after a panic: %s", code)
	}
	a.send(`{"type":"ping"}`)
	a.expect("pong")
}

func TestSlowClientDropped(t *testing.T) {
	t.Parallel()
	ts := startHub(t, newInProc(t), HubConfig{SendQueue: 64}, nil, nil)
	ctx := t.Context()
	fast := ts.connect(t, 1, "")
	fast.subscribe("subscribe", 1)

	slow := ts.dialTinyBuffer(t, 2)
	if err := slow.Write(ctx, websocket.MessageText, []byte(`{"type":"subscribe","data":{"post_ids":[1]}}`)); err != nil {
		t.Fatal(err)
	}
	if _, b, err := slow.Read(ctx); err != nil || !strings.Contains(string(b), "subscribed") {
		t.Fatalf("slow subscribe: %s %v", b, err)
	}
	// From now on the slow client never reads. 8 KiB frames fill its small
	// socket buffers quickly; published every 2ms they never queue up for
	// the fast client.
	pad := strings.Repeat("x", 8<<10)
	type event struct {
		Seq  int    `json:"seq"`
		Sent int64  `json:"sent"`
		Pad  string `json:"pad"`
	}
	var (
		mu      sync.Mutex
		maxLate time.Duration
		got     int
	)
	recv := make(chan error, 1)
	published := make(chan int, 1)
	go func() {
		total := -1
		for {
			if total >= 0 && got == total {
				recv <- nil
				return
			}
			select {
			case total = <-published:
				continue
			case f := <-fast.frames:
				var e event
				if err := json.Unmarshal(f.Data, &e); err != nil || f.Type != "tick" {
					recv <- fmt.Errorf("frame %s: %v", f.Type, err)
					return
				}
				if e.Seq != got {
					recv <- fmt.Errorf("got seq %d, want %d", e.Seq, got)
					return
				}
				mu.Lock()
				maxLate = max(maxLate, time.Since(time.Unix(0, e.Sent)))
				mu.Unlock()
				got++
			case <-time.After(wait):
				recv <- fmt.Errorf("fast client stalled after %d frames (stats %+v)", got, ts.hub.Stats())
				return
			}
		}
	}()
	seq, extra := 0, -1
	for ; extra != 0 && seq < 3000; seq++ {
		if err := ts.hub.SendToPost(ctx, 1, mustFrame(t, "tick", event{seq, time.Now().UnixNano(), pad})); err != nil {
			t.Fatal(err)
		}
		if extra < 0 && ts.hub.Stats().Dropped == 1 {
			extra = 20 // the slow one is gone: a few more for the fast one
		} else if extra > 0 {
			extra--
		}
		time.Sleep(2 * time.Millisecond)
	}
	published <- seq
	if err := <-recv; err != nil {
		t.Fatal(err)
	}
	if st := ts.hub.Stats(); st.Dropped != 1 {
		t.Fatalf("dropped %d after %d frames", st.Dropped, seq)
	}
	t.Logf("slow client dropped; fast client got all %d frames, the latest %v after publishing", seq, maxLate)
	if maxLate > 2*time.Second {
		t.Errorf("fast client got a frame %v late", maxLate)
	}
	eventually(t, "slow socket gone", func() bool { return ts.hub.Stats().Sockets == 1 })
}

func TestDeadClientClosed(t *testing.T) {
	t.Parallel()
	ts := startHub(t, newInProc(t), HubConfig{PingInterval: 50 * time.Millisecond, PongWait: 500 * time.Millisecond}, nil, nil)
	alive := ts.connect(t, 1, "")
	dead := ts.dialRaw(t, 2, "") // never reads, so never answers a ping
	_ = dead
	eventually(t, "dead client closed", func() bool { return ts.hub.Stats().PingTimeouts == 1 })
	eventually(t, "dead socket gone", func() bool { return ts.hub.Stats().Sockets == 1 })
	time.Sleep(300 * time.Millisecond) // more pings answered by the live one
	alive.send(`{"type":"ping"}`)
	alive.expect("pong")
	if st := ts.hub.Stats(); st.PingTimeouts != 1 || st.Sockets != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestTokenExpiry(t *testing.T) {
	t.Parallel()
	ts := startHub(t, newInProc(t), HubConfig{}, nil, nil)
	a := ts.connect(t, 1, "exp_ms=300")
	if code := errorCode(t, a.next()); code != "token_expired" {
		t.Errorf("code %s", code)
	}
	if code := a.closed(); code != CloseTokenExpired {
		t.Errorf("close status %v, want 4001", code)
	}
	if st := ts.hub.Stats(); st.Expired != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestMaxConnsPerUser(t *testing.T) {
	t.Parallel()
	ts := startHub(t, newInProc(t), HubConfig{MaxConnsPerUser: 2}, nil, nil)
	first := ts.connect(t, 1, "")
	second := ts.connect(t, 1, "")
	other := ts.connect(t, 2, "")
	third := ts.connect(t, 1, "")
	if code := first.closed(); code != CloseConnectionLimit {
		t.Errorf("oldest closed with %v, want 4002", code)
	}
	if err := ts.hub.SendToUser(t.Context(), 1, mustFrame(t, "notification", nil)); err != nil {
		t.Fatal(err)
	}
	second.expect("notification")
	third.expect("notification")
	other.expectNone()
	eventually(t, "evicted socket gone", func() bool { st := ts.hub.Stats(); return st.Sockets == 3 && st.Evicted == 1 })
}

// presenceLog records PresenceHandler calls.
type presenceLog chan presenceEvent

func (l presenceLog) handler(_ context.Context, userID int64, online bool) {
	l <- presenceEvent{userID, online}
}

func (l presenceLog) expect(t *testing.T, userID int64, online bool) {
	t.Helper()
	select {
	case e := <-l:
		if e != (presenceEvent{userID, online}) {
			t.Fatalf("presence event %+v, want user %d online=%v", e, userID, online)
		}
	case <-time.After(wait):
		t.Fatalf("no presence event for user %d online=%v", userID, online)
	}
}

func (l presenceLog) expectNone(t *testing.T) {
	t.Helper()
	select {
	case e := <-l:
		t.Fatalf("unexpected presence event %+v", e)
	case <-time.After(quiet):
	}
}

func TestPresence(t *testing.T) {
	t.Parallel()
	events := make(presenceLog, 100)
	ts := startHub(t, newInProc(t), HubConfig{}, nil, events.handler)
	a := ts.connect(t, 1, "")
	events.expect(t, 1, true)
	b := ts.connect(t, 1, "")
	online, err := ts.hub.Online(t.Context(), []int64{1, 2})
	if err != nil || !online[1] || online[2] {
		t.Errorf("Online = %v, %v", online, err)
	}
	_ = a.c.Close(websocket.StatusNormalClosure, "")
	eventually(t, "one socket left", func() bool { return ts.hub.Stats().Sockets == 1 })
	events.expectNone(t)
	_ = b.c.Close(websocket.StatusNormalClosure, "")
	events.expect(t, 1, false)
	online, _ = ts.hub.Online(t.Context(), []int64{1})
	if online[1] {
		t.Error("user 1 still online")
	}
	events.expectNone(t)
}

func TestClose(t *testing.T) {
	t.Parallel()
	events := make(presenceLog, 100)
	ts := startHub(t, newInProc(t), HubConfig{}, nil, events.handler)
	a, b := ts.connect(t, 1, ""), ts.connect(t, 2, "")
	a.subscribe("subscribe", 5)
	events.expect(t, 1, true)
	events.expect(t, 2, true)
	if err := ts.hub.Close(); err != nil {
		t.Fatal(err)
	}
	for _, cl := range []*client{a, b} {
		if code := cl.closed(); code != websocket.StatusGoingAway {
			t.Errorf("close status %v, want 1001", code)
		}
	}
	got := map[presenceEvent]bool{<-events: true, <-events: true}
	if !got[presenceEvent{1, false}] || !got[presenceEvent{2, false}] {
		t.Errorf("offline events %v", got)
	}
	if st := ts.hub.Stats(); st.Sockets != 0 || st.Users != 0 || st.Posts != 0 {
		t.Errorf("stats after Close %+v", st)
	}
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, ts.url+"/?user=1", nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("dial after Close: %v %v", resp, err)
	}
	if err := ts.hub.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// cluster is what two server instances share.
type cluster struct {
	name             string
	brokerA, brokerB pubsub.Broker
	presA, presB     Presence
}

func clusters(t *testing.T) []func(t *testing.T) cluster {
	t.Helper()
	return []func(t *testing.T) cluster{
		func(t *testing.T) cluster {
			b := newInProc(t)
			p := NewLocalPresence()
			return cluster{"inproc", b, b, p, p}
		},
		func(t *testing.T) cluster {
			client := redisClient(t)
			prefix := uniquePrefix(t, client)
			ba, bb := pubsub.NewRedis(client, prefix), pubsub.NewRedis(client, prefix)
			t.Cleanup(func() { _ = ba.Close(); _ = bb.Close() })
			pa, pb := newRedisPresence(t, client, prefix, "a", 30*time.Second), newRedisPresence(t, client, prefix, "b", 30*time.Second)
			return cluster{"redis", ba, bb, pa, pb}
		},
	}
}

func TestTwoInstances(t *testing.T) {
	t.Parallel()
	for i, mk := range clusters(t) {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			t.Parallel()
			cl := mk(t)
			t.Log(cl.name)
			events := make(presenceLog, 100)
			a := startHub(t, cl.brokerA, HubConfig{Presence: cl.presA}, nil, events.handler)
			b := startHub(t, cl.brokerB, HubConfig{Presence: cl.presB}, nil, events.handler)
			ctx := t.Context()

			onA := a.connect(t, 1, "")
			events.expect(t, 1, true)
			onB := b.connect(t, 1, "")
			other := b.connect(t, 2, "")
			events.expect(t, 2, true)

			// Through hub A to the sockets of user 1 on both instances.
			if err := a.hub.SendToUser(ctx, 1, mustFrame(t, "notification", map[string]int{"id": 1})); err != nil {
				t.Fatal(err)
			}
			onA.expect("notification")
			onB.expect("notification")
			// Through hub A to a post followed on hub B only.
			other.subscribe("subscribe", 9)
			if err := a.hub.SendToPost(ctx, 9, mustFrame(t, "post.stats", nil)); err != nil {
				t.Fatal(err)
			}
			other.expect("post.stats")
			if err := a.hub.SendToUser(ctx, 1, mustFrame(t, "fence", nil)); err != nil {
				t.Fatal(err)
			}
			onA.expect("fence")
			onB.expect("fence")

			for _, h := range []*Hub{a.hub, b.hub} {
				online, err := h.Online(ctx, []int64{1, 2, 3})
				if err != nil || !online[1] || !online[2] || online[3] {
					t.Errorf("Online = %v, %v", online, err)
				}
			}
			// User 1 leaves A but stays on B: still online, no event.
			_ = onA.c.Close(websocket.StatusNormalClosure, "")
			eventually(t, "user 1 gone from A", func() bool { return a.hub.Stats().Users == 0 })
			events.expectNone(t)
			_ = onB.c.Close(websocket.StatusNormalClosure, "")
			events.expect(t, 1, false)
			online, err := a.hub.Online(ctx, []int64{1, 2})
			if err != nil || online[1] || !online[2] {
				t.Errorf("Online = %v, %v", online, err)
			}
		})
	}
}
