package live

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"plaza/internal/pubsub"
)

// Frame is what travels on a socket: {"type": "...", "data": {...}}.
type Frame struct {
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}

// NewFrame builds a frame of type typ whose data is data encoded as JSON
// (a nil data becomes {}).
func NewFrame(typ string, data any) (Frame, error) {
	if typ == "" {
		return Frame{}, errors.New("live: frame type is empty")
	}
	if data == nil {
		return Frame{Type: typ, Data: json.RawMessage("{}")}, nil
	}
	b, err := json.Marshal(data)
	if err != nil {
		return Frame{}, fmt.Errorf("live: encode %s frame: %w", typ, err)
	}
	return Frame{Type: typ, Data: b}, nil
}

func (f Frame) encode() ([]byte, error) {
	if f.Type == "" {
		return nil, errors.New("live: frame type is empty")
	}
	if len(f.Data) == 0 {
		f.Data = json.RawMessage("{}")
	}
	return json.Marshal(f)
}

// Close codes the hub uses besides the standard 1001 (going away: Close)
// and 1009 (message too big: a client frame over MaxFrameBytes). Sockets
// dropped for being slow or not answering pings get no close frame (1006
// on the client).
const (
	// CloseTokenExpired closes a socket whose access token expired; a final
	// {"type":"error","data":{"code":"token_expired"}} frame precedes it.
	CloseTokenExpired websocket.StatusCode = 4001
	// CloseConnectionLimit closes the oldest socket of a user who opened more
	// than MaxConnsPerUser sockets on one instance.
	CloseConnectionLimit websocket.StatusCode = 4002
)

// ErrHubClosed is returned by Accept once Close has begun. (SendToUser and
// SendToPost keep publishing through the broker, which the hub does not
// own: a PresenceHandler may notify followers during Close.)
var ErrHubClosed = errors.New("live: hub closed")

// HubConfig tunes a Hub; zero fields take the documented defaults.
type HubConfig struct {
	// SendQueue is the number of frames buffered per socket. A socket whose
	// queue is full is dropped at once, without a close handshake (the client
	// sees 1006): a slow client never blocks the others nor grows the
	// server's memory. Default 256. The queue grows on demand, so an idle
	// socket holds no queue memory.
	SendQueue int
	// MaxConnsPerUser caps the sockets of one user on one instance; when a
	// new socket exceeds it, the user's oldest socket is closed with
	// CloseConnectionLimit (4002) and the new one is kept (a reloaded tab or
	// a new device always works). Default 8.
	MaxConnsPerUser int
	// MaxFrameBytes caps client frames; a larger frame closes the socket with
	// 1009 (message too big). Default 16 KiB.
	MaxFrameBytes int64
	// MaxPostSubscriptions caps the posts one socket may subscribe to.
	// Default 200.
	MaxPostSubscriptions int
	// PingInterval is how often the server pings each socket (a WebSocket
	// ping, which browsers answer by themselves); a socket that does not
	// answer within PongWait is dropped without a handshake. WriteTimeout
	// bounds the writing of the frames queued at one time; a socket that
	// cannot take them in time is dropped too. Defaults 25s, 60s, 10s.
	PingInterval, PongWait, WriteTimeout time.Duration
	// Presence tracks who is online cluster-wide. Default: NewLocalPresence()
	// (one process), which the hub then owns and closes. A Presence passed
	// here is not closed by the hub: close it after the hub.
	Presence Presence
	// Log receives errors and the odd notice; default: discard.
	Log *slog.Logger
}

func (c *HubConfig) setDefaults() {
	if c.SendQueue <= 0 {
		c.SendQueue = 256
	}
	if c.MaxConnsPerUser <= 0 {
		c.MaxConnsPerUser = 8
	}
	if c.MaxFrameBytes <= 0 {
		c.MaxFrameBytes = 16 << 10
	}
	if c.MaxPostSubscriptions <= 0 {
		c.MaxPostSubscriptions = 200
	}
	if c.PingInterval <= 0 {
		c.PingInterval = 25 * time.Second
	}
	if c.PongWait <= 0 {
		c.PongWait = 60 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
}

// ClientHandler handles client frames that need the domain (message.send):
// it returns a frame to send back to the sender (e.g. an error frame) or nil.
// It runs on the socket's reader goroutine, so one socket's frames are
// handled in order and a slow handler only slows that socket's reading; ctx
// ends when the socket closes.
type ClientHandler func(ctx context.Context, userID int64, f Frame) (reply *Frame)

// PresenceHandler is told when a user goes online/offline cluster-wide (to
// notify followers). The hub calls it from one goroutine, in order, once per
// transition cluster-wide (on the instance where the transition happened);
// keep it short or hand the work off.
type PresenceHandler func(ctx context.Context, userID int64, online bool)

// HubStats is a snapshot of a hub's counters.
type HubStats struct {
	Sockets        int    // open sockets on this instance
	Users          int    // users with at least one socket here
	Posts          int    // posts with at least one local subscriber
	Dropped        uint64 // sockets closed because their send queue was full
	PingTimeouts   uint64 // sockets closed for not answering a ping in PongWait
	Evicted        uint64 // sockets closed by MaxConnsPerUser
	Expired        uint64 // sockets closed because the access token expired
	FramesSent     uint64 // frames written to sockets
	FramesReceived uint64 // frames read from sockets
	BrokerDropped  uint64 // events the broker dropped because the hub fell behind
}

// Hub serves the WebSockets of one server instance. Every event travels
// through the broker, so a hub only delivers to its own sockets and any
// number of instances can share one broker.
//
// Broker topics: "user:<id>" is subscribed while the user has a socket on
// this instance, "post:<id>" while any local socket subscribes to the post.
// Topic changes are applied by one goroutine in batches (so a burst of
// connections costs a few broker round trips); a socket starts reading, and
// a subscribe frame is answered, only once its topics are subscribed, so a
// client that got any answer from the hub gets every later event.
//
// Per socket: the reader is the goroutine of Accept; the writer is started
// when a frame is queued and ends when the queue is empty (one at a time,
// so frames keep their order); pings and the token expiry are timers. An
// idle socket thus holds one goroutine, the connection's two 4 KiB bufio
// buffers (net/http's, reused by the WebSocket) and about 1 KiB of hub
// state; bench/ws measures about 26 KB of server memory per socket.
type Hub struct {
	cfg        HubConfig
	log        *slog.Logger
	broker     pubsub.Broker
	sub        pubsub.Subscription
	onMessage  ClientHandler
	onPresence PresenceHandler
	presence   Presence
	ownsPres   bool

	ctx    context.Context // sockets and broker calls; canceled by Close
	cancel context.CancelFunc
	bg     context.Context // presence calls and handlers: outlives ctx during Close

	mu      sync.RWMutex
	closed  bool
	users   map[int64][]*socket // oldest first
	posts   map[int64]map[*socket]struct{}
	sockets map[*socket]struct{}

	// Broker topics (guarded by mu); see topicLoop.
	topicActive map[topicKey]struct{}
	topicDirty  map[topicKey]struct{}
	topicRound  chan struct{} // closed when the round taking topicDirty ends
	topicWake   chan struct{}

	// Presence transitions (guarded by mu); see presenceLoop.
	presDirty  map[int64]struct{}
	presEvents []presenceEvent // reported by the Presence itself (crashed instances)
	presWake   chan struct{}
	presStop   chan struct{} // closed by Close once every socket is gone

	socketsWG sync.WaitGroup
	loopsWG   sync.WaitGroup // dispatchLoop and topicLoop
	presWG    sync.WaitGroup // presenceLoop
	closeOnce sync.Once
	closeErr  error

	dropped, pingTimeouts, evicted, expired atomic.Uint64
	framesSent, framesReceived              atomic.Uint64
}

type topicKey struct {
	post bool
	id   int64
}

func (k topicKey) String() string {
	if k.post {
		return "post:" + strconv.FormatInt(k.id, 10)
	}
	return "user:" + strconv.FormatInt(k.id, 10)
}

type presenceEvent struct {
	userID int64
	online bool
}

// NewHub starts a hub on broker: one broker Subscription for the whole
// instance. ctx bounds the setup only; the hub runs until Close.
// onMessage may be nil (message.send is then answered with a bad_frame
// error); onPresence may be nil.
func NewHub(ctx context.Context, broker pubsub.Broker, cfg HubConfig, onMessage ClientHandler, onPresence PresenceHandler) (*Hub, error) {
	if broker == nil {
		return nil, errors.New("live: NewHub needs a broker")
	}
	cfg.setDefaults()
	sub, err := broker.Subscribe(ctx)
	if err != nil {
		return nil, fmt.Errorf("live: subscribe to broker: %w", err)
	}
	h := &Hub{
		cfg:         cfg,
		log:         cfg.Log,
		broker:      broker,
		sub:         sub,
		onMessage:   onMessage,
		onPresence:  onPresence,
		presence:    cfg.Presence,
		users:       make(map[int64][]*socket),
		posts:       make(map[int64]map[*socket]struct{}),
		sockets:     make(map[*socket]struct{}),
		topicActive: make(map[topicKey]struct{}),
		topicDirty:  make(map[topicKey]struct{}),
		topicRound:  make(chan struct{}),
		topicWake:   make(chan struct{}, 1),
		presDirty:   make(map[int64]struct{}),
		presWake:    make(chan struct{}, 1),
		presStop:    make(chan struct{}),
	}
	if h.presence == nil {
		h.presence = NewLocalPresence()
		h.ownsPres = true
	}
	if w, ok := h.presence.(PresenceWatcher); ok {
		w.WatchPresence(h.reportPresence)
	}
	h.bg = context.WithoutCancel(ctx)
	h.ctx, h.cancel = context.WithCancel(h.bg)
	h.loopsWG.Add(2)
	go h.dispatchLoop()
	go h.topicLoop()
	h.presWG.Add(1)
	go h.presenceLoop()
	return h, nil
}

// Accept upgrades an already-authenticated request (the HTTP layer checks
// the token and the Origin, so the upgrade does not check the Origin again)
// and serves the socket until it closes, the hub stops, or expiresAt (the
// access token's expiry) passes: then a final
// {"type":"error","data":{"code":"token_expired"}} frame is sent and the
// socket is closed with CloseTokenExpired (4001). A zero expiresAt never
// expires. Accept returns once every goroutine of the socket has ended; the
// error only reports a failed upgrade or a closed hub (a response has then
// been written).
func (h *Hub) Accept(w http.ResponseWriter, r *http.Request, userID int64, expiresAt time.Time) error {
	h.mu.RLock()
	closed := h.closed
	h.mu.RUnlock()
	if closed {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return ErrHubClosed
	}
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		InsecureSkipVerify: true, // the HTTP layer checked the Origin against the trusted origins
		CompressionMode:    websocket.CompressionDisabled,
	})
	if err != nil {
		return err
	}
	conn.SetReadLimit(h.cfg.MaxFrameBytes)

	s := &socket{hub: h, conn: conn, userID: userID}
	s.ctx, s.cancel = context.WithCancel(h.ctx)

	evict, wait, err := h.register(s)
	if err != nil {
		s.cancel()
		_ = conn.Close(websocket.StatusGoingAway, "server shutting down")
		return err
	}
	defer h.socketsWG.Done()
	for _, old := range evict {
		old.closeWith(CloseConnectionLimit, "too many connections", nil, &h.evicted)
	}

	s.start(expiresAt)
	if wait != nil {
		h.waitTopics(s.ctx, wait)
	}
	s.readLoop()

	h.unregister(s)
	s.stop()
	_ = conn.CloseNow()
	return nil
}

// waitTopics waits for a topic round, bounded by ctx and WriteTimeout.
func (h *Hub) waitTopics(ctx context.Context, round <-chan struct{}) {
	t := time.NewTimer(h.cfg.WriteTimeout)
	defer t.Stop()
	select {
	case <-round:
	case <-ctx.Done():
	case <-t.C:
		h.log.Warn("live: broker subscription is slow; serving the socket anyway")
	}
}

// SendToUser publishes a frame to every socket of userID on every instance
// (through the broker topic "user:<id>").
func (h *Hub) SendToUser(ctx context.Context, userID int64, f Frame) error {
	return h.publish(ctx, topicKey{id: userID}, f)
}

// SendToPost publishes a frame to every socket, on every instance,
// subscribed to post postID (topic "post:<id>").
func (h *Hub) SendToPost(ctx context.Context, postID int64, f Frame) error {
	return h.publish(ctx, topicKey{post: true, id: postID}, f)
}

func (h *Hub) publish(ctx context.Context, k topicKey, f Frame) error {
	b, err := f.encode()
	if err != nil {
		return err
	}
	if err := h.broker.Publish(ctx, k.String(), b); err != nil {
		return fmt.Errorf("live: publish %s: %w", k, err)
	}
	return nil
}

// Online reports, cluster-wide, which of userIDs have a socket open.
// Presence is written by a background loop (batched, retried), so a socket
// that just opened here may not be in it yet: this instance's own sockets
// count at once, so a client sees its own connection reflected.
func (h *Hub) Online(ctx context.Context, userIDs []int64) (map[int64]bool, error) {
	online, err := h.presence.Online(ctx, userIDs)
	if err != nil {
		return nil, err
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, id := range userIDs {
		if len(h.users[id]) > 0 {
			online[id] = true
		}
	}
	return online, nil
}

// Stats returns a snapshot of the hub's counters.
func (h *Hub) Stats() HubStats {
	h.mu.RLock()
	st := HubStats{Sockets: len(h.sockets), Users: len(h.users), Posts: len(h.posts)}
	h.mu.RUnlock()
	st.Dropped = h.dropped.Load()
	st.PingTimeouts = h.pingTimeouts.Load()
	st.Evicted = h.evicted.Load()
	st.Expired = h.expired.Load()
	st.FramesSent = h.framesSent.Load()
	st.FramesReceived = h.framesReceived.Load()
	st.BrokerDropped = h.sub.Dropped()
	return st
}

// closeGrace bounds how long Close waits for close handshakes before it
// drops the remaining connections.
const closeGrace = 5 * time.Second

// Close closes every socket (1001 going away), reports the users who went
// offline through the PresenceHandler, closes the broker subscription (not
// the broker) and the default presence. Clients that do not answer the
// close handshake are dropped after a few seconds, so Close returns within
// about 10 s. New sockets are refused with 503 from the start of Close. It
// is safe to call more than once.
func (h *Hub) Close() error {
	h.closeOnce.Do(func() {
		h.mu.Lock()
		h.closed = true
		all := make([]*socket, 0, len(h.sockets))
		for s := range h.sockets {
			all = append(all, s)
		}
		h.mu.Unlock()
		for _, s := range all {
			s.closeWith(websocket.StatusGoingAway, "server shutting down", nil, nil)
		}
		done := make(chan struct{})
		go func() { h.socketsWG.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(closeGrace):
			h.cancel() // hard-close whatever is still handshaking
			<-done
		}
		// Every socket is gone: let the presence loop report the last
		// offline transitions, then stop everything.
		close(h.presStop)
		h.signalPresence()
		h.presWG.Wait()
		h.cancel()
		h.loopsWG.Wait()
		h.closeErr = h.sub.Close()
		if h.ownsPres {
			if err := h.presence.Close(); err != nil && h.closeErr == nil {
				h.closeErr = err
			}
		}
	})
	return h.closeErr
}

// register adds s to the hub. It returns the sockets evicted by
// MaxConnsPerUser and, when the user's topic is not subscribed yet, the
// topic round to wait for.
func (h *Hub) register(s *socket) (evict []*socket, wait <-chan struct{}, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, nil, ErrHubClosed
	}
	h.socketsWG.Add(1)
	h.sockets[s] = struct{}{}
	socks := h.users[s.userID]
	if socks == nil {
		h.markPresenceLocked(s.userID)
	}
	for len(socks) >= h.cfg.MaxConnsPerUser {
		evict = append(evict, socks[0])
		socks[0].unlisted = true
		socks = append(socks[:0], socks[1:]...)
	}
	h.users[s.userID] = append(socks, s)
	return evict, h.needTopicLocked(topicKey{id: s.userID}), nil
}

// unregister removes s from the hub (its user list and its posts).
func (h *Hub) unregister(s *socket) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.sockets, s)
	if !s.unlisted {
		socks := h.users[s.userID]
		for i, o := range socks {
			if o == s {
				socks = append(socks[:i], socks[i+1:]...)
				break
			}
		}
		if len(socks) == 0 {
			delete(h.users, s.userID)
			h.markPresenceLocked(s.userID)
			h.markTopicLocked(topicKey{id: s.userID})
		} else {
			h.users[s.userID] = socks
		}
	}
	for _, id := range s.posts {
		h.removePostLocked(s, id)
	}
	s.posts = nil
}

func (h *Hub) removePostLocked(s *socket, id int64) {
	subs := h.posts[id]
	if subs == nil {
		return
	}
	delete(subs, s)
	if len(subs) == 0 {
		delete(h.posts, id)
		h.markTopicLocked(topicKey{post: true, id: id})
	}
}

// subscribe adds post subscriptions to s (called on s's reader goroutine,
// which owns s.posts); it returns the topic round to wait for, if any.
func (h *Hub) subscribe(s *socket, ids []int64) (wait <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil
	}
	for _, id := range ids {
		subs := h.posts[id]
		if subs == nil {
			subs = make(map[*socket]struct{})
			h.posts[id] = subs
		}
		subs[s] = struct{}{}
		if w := h.needTopicLocked(topicKey{post: true, id: id}); w != nil {
			wait = w
		}
	}
	return wait
}

func (h *Hub) unsubscribe(s *socket, ids []int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, id := range ids {
		h.removePostLocked(s, id)
	}
}

// dispatchLoop delivers broker messages to the local sockets.
func (h *Hub) dispatchLoop() {
	defer h.loopsWG.Done()
	msgs := h.sub.Messages()
	for {
		select {
		case <-h.ctx.Done():
			return
		case m, ok := <-msgs:
			if !ok {
				if h.ctx.Err() == nil {
					h.log.Error("live: broker subscription ended; no more events are delivered")
				}
				return
			}
			h.dispatch(m)
		}
	}
}

func (h *Hub) dispatch(m pubsub.Message) {
	k, ok := parseTopic(m.Topic)
	if !ok {
		return
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	if k.post {
		for s := range h.posts[k.id] {
			s.enqueue(m.Payload)
		}
		return
	}
	for _, s := range h.users[k.id] {
		s.enqueue(m.Payload)
	}
}

func parseTopic(t string) (topicKey, bool) {
	var k topicKey
	rest, ok := strings.CutPrefix(t, "user:")
	if !ok {
		if rest, ok = strings.CutPrefix(t, "post:"); !ok {
			return k, false
		}
		k.post = true
	}
	id, err := strconv.ParseInt(rest, 10, 64)
	if err != nil {
		return k, false
	}
	k.id = id
	return k, true
}

// needTopicLocked returns nil when topic k is subscribed on the broker, or
// else schedules it and returns the round to wait for.
func (h *Hub) needTopicLocked(k topicKey) <-chan struct{} {
	if _, ok := h.topicActive[k]; ok {
		return nil
	}
	h.markTopicLocked(k)
	return h.topicRound
}

func (h *Hub) markTopicLocked(k topicKey) {
	h.topicDirty[k] = struct{}{}
	select {
	case h.topicWake <- struct{}{}:
	default:
	}
}

func (h *Hub) wantTopicLocked(k topicKey) bool {
	if k.post {
		return len(h.posts[k.id]) > 0
	}
	return len(h.users[k.id]) > 0
}

// topicRetry is how long a failed broker subscription change waits before
// it is tried again.
const topicRetry = time.Second

// topicLoop is the only caller of sub.Add and sub.Remove, so the broker
// sees the changes of one topic in order. Each round takes every topic
// whose wanted state changed and applies the difference in two calls.
func (h *Hub) topicLoop() {
	defer h.loopsWG.Done()
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-h.topicWake:
		}
		h.mu.Lock()
		dirty := h.topicDirty
		h.topicDirty = make(map[topicKey]struct{})
		done := h.topicRound
		h.topicRound = make(chan struct{})
		var add, remove []topicKey
		for k := range dirty {
			_, have := h.topicActive[k]
			switch want := h.wantTopicLocked(k); {
			case want && !have:
				add = append(add, k)
			case !want && have:
				remove = append(remove, k)
			}
		}
		h.mu.Unlock()

		addErr := h.applyTopics(h.sub.Add, add)
		removeErr := h.applyTopics(h.sub.Remove, remove)

		h.mu.Lock()
		retry := false
		for _, k := range add {
			if addErr != nil {
				h.topicDirty[k] = struct{}{}
				retry = true
			} else {
				h.topicActive[k] = struct{}{}
			}
		}
		for _, k := range remove {
			if removeErr != nil {
				h.topicDirty[k] = struct{}{}
				retry = true
			} else {
				delete(h.topicActive, k)
			}
		}
		h.mu.Unlock()
		close(done)
		if h.ctx.Err() != nil {
			return // Close: the subscription goes anyway
		}
		if addErr != nil || removeErr != nil {
			h.log.Error("live: broker subscription change failed; retrying", "add_error", addErr, "remove_error", removeErr)
		}
		if retry {
			time.AfterFunc(topicRetry, func() {
				select {
				case h.topicWake <- struct{}{}:
				default:
				}
			})
		}
	}
}

// topicBatch bounds the topics given to one Add or Remove call.
const topicBatch = 512

func (h *Hub) applyTopics(fn func(context.Context, ...string) error, keys []topicKey) error {
	for len(keys) > 0 {
		n := min(len(keys), topicBatch)
		names := make([]string, n)
		for i, k := range keys[:n] {
			names[i] = k.String()
		}
		ctx, cancel := context.WithTimeout(h.ctx, h.cfg.WriteTimeout)
		err := fn(ctx, names...)
		cancel()
		if err != nil {
			return err
		}
		keys = keys[n:]
	}
	return nil
}

func (h *Hub) markPresenceLocked(userID int64) {
	h.presDirty[userID] = struct{}{}
	h.signalPresence()
}

func (h *Hub) signalPresence() {
	select {
	case h.presWake <- struct{}{}:
	default:
	}
}

// reportPresence receives transitions that the Presence learned by itself
// (users of a crashed instance going offline).
func (h *Hub) reportPresence(_ context.Context, userID int64, online bool) {
	h.mu.Lock()
	h.presEvents = append(h.presEvents, presenceEvent{userID, online})
	h.mu.Unlock()
	h.signalPresence()
}

// presenceCallTimeout bounds one call to the Presence.
const presenceCallTimeout = 10 * time.Second

// presenceLoop is the only caller of Presence.Connected and Disconnected,
// so one user's transitions reach the Presence in order. It compares what a
// user needs (a socket here or not) with what it last told the Presence, so
// a socket that disconnects and reconnects within one round (a page reload)
// causes no transition at all.
func (h *Hub) presenceLoop() {
	defer h.presWG.Done()
	told := make(map[int64]bool) // users this instance reported connected
	for {
		<-h.presWake
		h.mu.Lock()
		dirty := h.presDirty
		h.presDirty = make(map[int64]struct{})
		events := h.presEvents
		h.presEvents = nil
		h.mu.Unlock()

		for _, e := range events {
			h.notifyPresence(e.userID, e.online)
		}
		retry := false
		for id := range dirty {
			h.mu.RLock()
			want := len(h.users[id]) > 0
			h.mu.RUnlock()
			if want == told[id] {
				continue
			}
			ctx, cancel := context.WithTimeout(h.bg, presenceCallTimeout)
			var changed bool
			var err error
			if want {
				changed, err = h.presence.Connected(ctx, id)
			} else {
				changed, err = h.presence.Disconnected(ctx, id)
			}
			cancel()
			if err != nil {
				h.log.Error("live: presence update failed", "user_id", id, "online", want, "error", err)
				h.mu.Lock()
				h.presDirty[id] = struct{}{}
				h.mu.Unlock()
				retry = true
				continue
			}
			if want {
				told[id] = true
			} else {
				delete(told, id)
			}
			if changed {
				h.notifyPresence(id, want)
			}
		}

		select {
		case <-h.presStop:
			h.mu.RLock()
			pending := len(h.presDirty) + len(h.presEvents)
			h.mu.RUnlock()
			if pending == 0 || retry {
				return
			}
			h.signalPresence()
			continue
		default:
		}
		if retry {
			time.AfterFunc(topicRetry, h.signalPresence)
		}
	}
}

func (h *Hub) notifyPresence(userID int64, online bool) {
	if h.onPresence == nil {
		return
	}
	defer func() {
		if v := recover(); v != nil {
			h.log.Error("live: presence handler panicked", "user_id", userID, "panic", v)
		}
	}()
	ctx, cancel := context.WithTimeout(h.bg, presenceCallTimeout)
	defer cancel()
	h.onPresence(ctx, userID, online)
}
