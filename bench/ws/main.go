// Command ws loads Plaza's WebSocket hub: it opens many sockets and
// measures the server's memory per socket, the fan-out latency of post
// events to the subscribers of one post, and the end-to-end latency of chat
// messages at a target rate.
//
// Against a running server (PLAZA_RATE_LIMITS=off), with a file of access
// tokens, one per line (socket i uses token i mod T, so T must be at least
// N / MaxConnsPerUser, 8 by default):
//
//	go run ./bench/ws -url http://127.0.0.1:8000 -tokens tokens.txt -n 10000 \
//	    -post 1 -fanout 1000 -chat-rate 500
//
// Standalone, against a stand-in server (the real hub on an in-process
// broker, run as a child process so its memory is its own; see self.go):
//
//	go run ./bench/ws -self -n 10000
//
// Memory per socket is the growth of the server's
// process_resident_memory_bytes and of go_memstats_heap_inuse_bytes +
// go_memstats_stack_inuse_bytes (read from -metrics) while the sockets
// open, divided by their number. With -gc (implied by -self) the tool
// POSTs /debug/gc before each reading so the heap holds only live memory;
// without it the heap figure includes garbage not yet collected.
//
// Fan-out: the first -fanout sockets subscribe to post -post; the tool
// likes and unlikes the post -events times (POST/DELETE
// /api/posts/<id>/like/ with the first token, or -liker), one at a time,
// and times the post.stats frame carrying the new likes_count at every
// subscriber: from the frame's "sent_at" (Unix ns) when the server puts one
// in, else from the moment the request was sent.
//
// Chat: -chat-pairs pairs of distinct token users (tokens 2p and 2p+1) get
// a conversation (POST /api/conversations/ {username}); for -chat-duration
// the tool sends message.send at -chat-rate messages per second, spread
// over the pairs in both directions, and times the message.created frame at
// the other participant's socket from the send time carried in the content.
//
// Sockets come from -sources loopback addresses (127.0.0.1, .2, ...), to
// stay clear of ephemeral port exhaustion with very many sockets; the tool
// raises its open file limit as far as it may.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
)

type options struct {
	base, wsPath, metrics, tokensFile, origin string
	n, sources, dialConc                      int
	self, gc                                  bool
	serveSelf                                 string
	settle, hold                              time.Duration
	post                                      int64
	fanout, events                            int
	eventGap                                  time.Duration
	liker                                     string
	chatRate, chatPairs                       int
	chatDur                                   time.Duration
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "ws:", err)
		}
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o options
	fs := flag.NewFlagSet("ws", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.base, "url", "http://127.0.0.1:8000", "server base URL")
	fs.StringVar(&o.wsPath, "ws-path", "/api/ws/", "WebSocket path")
	fs.StringVar(&o.metrics, "metrics", "", "metrics URL (default <url>/metrics)")
	fs.StringVar(&o.tokensFile, "tokens", "", "file of access tokens, one per line (-self: user ids)")
	fs.StringVar(&o.origin, "origin", "", "Origin header of the handshakes (a trusted origin)")
	fs.IntVar(&o.n, "n", 10000, "sockets to open")
	fs.IntVar(&o.sources, "sources", 0, "loopback source addresses 127.0.0.1.. (0: one per 20,000 sockets)")
	fs.IntVar(&o.dialConc, "c", 200, "concurrent handshakes")
	fs.BoolVar(&o.self, "self", false, "start a stand-in server (the real hub, in-process broker) and load it")
	fs.BoolVar(&o.gc, "gc", false, "POST <url>/debug/gc before reading memory (implied by -self)")
	fs.StringVar(&o.serveSelf, "serve-self", "", "internal: be the -self server on this address")
	fs.DurationVar(&o.settle, "settle", 2*time.Second, "wait before reading memory")
	fs.DurationVar(&o.hold, "hold", 0, "keep the sockets open this long at the end")
	fs.Int64Var(&o.post, "post", 1, "post whose subscribers get the fan-out events")
	fs.IntVar(&o.fanout, "fanout", 1000, "subscribers of -post (0: no fan-out test)")
	fs.IntVar(&o.events, "events", 200, "fan-out events")
	fs.DurationVar(&o.eventGap, "event-gap", 20*time.Millisecond, "pause between fan-out events")
	fs.StringVar(&o.liker, "liker", "", "token that likes the post (default: the first token)")
	fs.IntVar(&o.chatRate, "chat-rate", 500, "chat messages per second (0: no chat test)")
	fs.IntVar(&o.chatPairs, "chat-pairs", 50, "conversations the messages are spread over")
	fs.DurationVar(&o.chatDur, "chat-duration", 10*time.Second, "length of the chat test")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.serveSelf != "" {
		return serveSelf(ctx, o.serveSelf, stdout)
	}
	if o.n <= 0 {
		return errors.New("-n must be positive")
	}
	limit := raiseNoFile(uint64(o.n) + 1024)
	if limit < uint64(o.n)+64 {
		return fmt.Errorf("open file limit %d is too low for %d sockets", limit, o.n)
	}

	var tokens []string
	if o.self {
		base, stopSelf, err := startSelf(ctx, stderr)
		if err != nil {
			return err
		}
		defer stopSelf()
		o.base, o.gc = base, true
		if o.tokensFile == "" {
			for i := 1; i <= (o.n+7)/8; i++ { // 8 sockets per user, as MaxConnsPerUser allows
				tokens = append(tokens, strconv.Itoa(i))
			}
		}
	}
	if o.tokensFile != "" {
		var err error
		if tokens, err = readTokens(o.tokensFile); err != nil {
			return err
		}
	}
	if len(tokens) == 0 {
		return errors.New("no tokens: give -tokens (or -self)")
	}
	if o.metrics == "" {
		o.metrics = strings.TrimSuffix(o.base, "/") + "/metrics"
	}
	if o.liker == "" {
		o.liker = tokens[0]
	}
	if o.sources <= 0 {
		o.sources = (o.n + 19999) / 20000
	}
	b := &bench{o: o, tokens: tokens, out: stdout, http: &http.Client{Timeout: 30 * time.Second}}
	fmt.Fprintf(stdout, "server %s, %d sockets over %d tokens, %d source addresses\n", o.base, o.n, len(tokens), o.sources)

	before, err := b.memory(ctx)
	if err != nil {
		fmt.Fprintf(stdout, "memory before: %v (no memory figures)\n", err)
	}
	start := time.Now()
	if err := b.open(ctx); err != nil {
		b.closeAll()
		return err
	}
	fmt.Fprintf(stdout, "opened %d sockets in %v (each answered a ping)\n", len(b.socks), time.Since(start).Round(time.Millisecond))
	select {
	case <-time.After(o.settle):
	case <-ctx.Done():
	}
	if before != nil {
		after, err := b.memory(ctx)
		if err != nil {
			fmt.Fprintf(stdout, "memory after: %v\n", err)
		} else {
			reportMemory(stdout, before, after, len(b.socks))
		}
	}
	if o.fanout > 0 && ctx.Err() == nil {
		if err := b.fanOut(ctx); err != nil {
			fmt.Fprintf(stdout, "fan-out: %v\n", err)
		}
	}
	if o.chatRate > 0 && ctx.Err() == nil {
		if err := b.chat(ctx); err != nil {
			fmt.Fprintf(stdout, "chat: %v\n", err)
		}
	}
	if m, err := b.scrape(ctx); err == nil {
		var names []string
		for name := range m {
			if strings.HasPrefix(name, "plaza_ws_") {
				names = append(names, name)
			}
		}
		slices.Sort(names)
		for _, name := range names {
			fmt.Fprintf(stdout, "server %s %v\n", name, m[name])
		}
	}
	if n := b.errors.Load(); n > 0 {
		fmt.Fprintf(stdout, "error frames received: %d (last: %s)\n", n, b.lastError.Load())
	}
	if o.hold > 0 {
		select {
		case <-time.After(o.hold):
		case <-ctx.Done():
		}
	}
	closed := b.closedEarly.Load()
	b.closeAll()
	if closed > 0 {
		return fmt.Errorf("%d sockets were closed by the server during the run", closed)
	}
	return nil
}

// raiseNoFile raises the open file limit to want if it can (the hard limit
// too when running as root) and returns the soft limit now in force.
func raiseNoFile(want uint64) uint64 {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0
	}
	if r.Cur >= want {
		return r.Cur
	}
	n := r
	n.Cur = want
	n.Max = max(r.Max, want)
	if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &n) == nil {
		return want
	}
	n.Cur, n.Max = r.Max, r.Max
	if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &n) == nil {
		return r.Max
	}
	return r.Cur
}

func readTokens(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	for sc.Scan() {
		if t := strings.TrimSpace(sc.Text()); t != "" {
			out = append(out, t)
		}
	}
	return out, sc.Err()
}

type bench struct {
	o      options
	tokens []string
	out    io.Writer
	http   *http.Client
	socks  []*sock
	byTok  map[int]*sock // a socket of each token

	curFan  atomic.Pointer[fanEvent]
	curChat atomic.Pointer[chatRun]

	errors      atomic.Int64
	lastError   atomic.Value // string
	closedEarly atomic.Int64
	closing     atomic.Bool
	readers     sync.WaitGroup
}

type sock struct {
	c    *websocket.Conn
	tok  int
	pong chan struct{} // pong or subscribed
	dead atomic.Bool   // the read loop ended
}

// open dials every socket, each answering one application ping.
func (b *bench) open(ctx context.Context) error {
	u, err := url.Parse(b.o.base)
	if err != nil {
		return err
	}
	u.Scheme = map[string]string{"http": "ws", "https": "wss"}[u.Scheme]
	u.Path = b.o.wsPath
	clients := make([]*http.Client, b.o.sources)
	for i := range clients {
		d := &net.Dialer{Timeout: 10 * time.Second}
		if b.o.sources > 1 {
			d.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, byte(i/250), byte(1+i%250))}
		}
		clients[i] = &http.Client{Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
	}
	var hdr http.Header
	if b.o.origin != "" {
		hdr = http.Header{"Origin": {b.o.origin}}
	}
	b.socks = make([]*sock, b.o.n)
	b.byTok = make(map[int]*sock)
	var (
		next   atomic.Int64
		failed atomic.Int64
		first  atomic.Value
		wg     sync.WaitGroup
	)
	for range min(b.o.dialConc, b.o.n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= b.o.n || ctx.Err() != nil || failed.Load() > 0 {
					return
				}
				s, err := b.dial(ctx, u, hdr, clients[i%len(clients)], i%len(b.tokens))
				if err != nil {
					if failed.Add(1) == 1 {
						first.Store(fmt.Errorf("socket %d: %w", i, err))
					}
					return
				}
				b.socks[i] = s
				if (i+1)%2000 == 0 {
					fmt.Fprintf(b.out, "  %d sockets\n", i+1)
				}
			}
		}()
	}
	wg.Wait()
	b.socks = slices.DeleteFunc(b.socks, func(s *sock) bool { return s == nil })
	for _, s := range b.socks {
		if _, ok := b.byTok[s.tok]; !ok {
			b.byTok[s.tok] = s
		}
	}
	if err, _ := first.Load().(error); err != nil {
		return err
	}
	return ctx.Err()
}

func (b *bench) dial(ctx context.Context, u *url.URL, hdr http.Header, hc *http.Client, tok int) (*sock, error) {
	q := url.Values{"access_token": {b.tokens[tok]}}
	uu := *u
	uu.RawQuery = q.Encode()
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(dctx, uu.String(), &websocket.DialOptions{HTTPClient: hc, HTTPHeader: hdr})
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("%w (HTTP %d)", err, resp.StatusCode)
		}
		return nil, err
	}
	c.SetReadLimit(1 << 20)
	s := &sock{c: c, tok: tok, pong: make(chan struct{}, 1)}
	b.readers.Add(1)
	go b.read(s)
	if err := s.roundTrip(dctx, []byte(`{"type":"ping"}`)); err != nil {
		_ = c.CloseNow()
		return nil, fmt.Errorf("ping: %w", err)
	}
	return s, nil
}

// roundTrip sends a frame and waits for its pong or subscribed answer.
func (s *sock) roundTrip(ctx context.Context, frame []byte) error {
	if err := s.c.Write(ctx, websocket.MessageText, frame); err != nil {
		return err
	}
	select {
	case <-s.pong:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *bench) read(s *sock) {
	defer b.readers.Done()
	for {
		_, data, err := s.c.Read(context.Background())
		if err != nil {
			s.dead.Store(true)
			if fe := b.curFan.Load(); fe != nil {
				fe.wake()
			}
			if !b.closing.Load() {
				if b.closedEarly.Add(1) <= 5 {
					fmt.Fprintf(b.out, "socket closed by the server: %v\n", err)
				}
			}
			return
		}
		now := time.Now()
		var f struct {
			Type string          `json:"type"`
			Data json.RawMessage `json:"data"`
		}
		if json.Unmarshal(data, &f) != nil {
			continue
		}
		switch f.Type {
		case "pong", "subscribed":
			select {
			case s.pong <- struct{}{}:
			default:
			}
		case "post.stats":
			if ev := b.curFan.Load(); ev != nil {
				ev.record(f.Data, now)
			}
		case "message.created":
			if cr := b.curChat.Load(); cr != nil {
				cr.record(s.tok, f.Data, now)
			}
		case "error":
			b.errors.Add(1)
			b.lastError.Store(string(f.Data))
		}
	}
}

func (b *bench) closeAll() {
	b.closing.Store(true)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 256)
	for _, s := range b.socks {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			_ = s.c.CloseNow()
		}()
	}
	wg.Wait()
	b.readers.Wait()
}

// memory reads the server's memory metrics (after a GC when -gc).
func (b *bench) memory(ctx context.Context) (map[string]float64, error) {
	if b.o.gc {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(b.o.base, "/")+"/debug/gc", nil)
		resp, err := b.http.Do(req)
		if err != nil {
			return nil, err
		}
		_ = resp.Body.Close()
	}
	m, err := b.scrape(ctx)
	if err != nil {
		return nil, err
	}
	if _, ok := m["process_resident_memory_bytes"]; !ok {
		if _, ok := m["go_memstats_heap_inuse_bytes"]; !ok {
			return nil, fmt.Errorf("%s has neither process_resident_memory_bytes nor go_memstats_heap_inuse_bytes", b.o.metrics)
		}
	}
	return m, nil
}

// scrape reads the unlabeled samples of the metrics page.
func (b *bench) scrape(ctx context.Context) (map[string]float64, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, b.o.metrics, nil)
	resp, err := b.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: HTTP %d", b.o.metrics, resp.StatusCode)
	}
	m := make(map[string]float64)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, val, ok := strings.Cut(line, " ")
		if !ok || strings.Contains(name, "{") {
			continue
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
			m[name] = v
		}
	}
	return m, sc.Err()
}

func reportMemory(w io.Writer, before, after map[string]float64, n int) {
	per := func(names ...string) (float64, bool) {
		var d float64
		for _, name := range names {
			a, ok1 := after[name]
			bb, ok2 := before[name]
			if !ok1 || !ok2 {
				return 0, false
			}
			d += a - bb
		}
		return d / float64(n), true
	}
	fmt.Fprintf(w, "server memory per socket (%d sockets):\n", n)
	if v, ok := per("process_resident_memory_bytes"); ok {
		fmt.Fprintf(w, "  resident (RSS)          %8.0f B\n", v)
	}
	if v, ok := per("go_memstats_heap_inuse_bytes", "go_memstats_stack_inuse_bytes"); ok {
		fmt.Fprintf(w, "  Go heap + stacks in use %8.0f B\n", v)
	}
	if v, ok := per("go_memstats_heap_inuse_bytes"); ok {
		fmt.Fprintf(w, "    heap in use           %8.0f B\n", v)
	}
	if v, ok := per("go_memstats_stack_inuse_bytes"); ok {
		fmt.Fprintf(w, "    stacks in use         %8.0f B\n", v)
	}
	if v, ok := per("go_goroutines"); ok {
		fmt.Fprintf(w, "  goroutines per socket   %8.2f\n", v)
	}
}

// fanEvent is one like or unlike and the post.stats frames it caused.
type fanEvent struct {
	post int64
	t0   time.Time

	mu    sync.Mutex
	seen  map[int64][]time.Duration // likes_count → latencies
	inner bool                      // some frames carried sent_at
	cond  chan struct{}             // 1-buffered: a frame arrived
}

func (e *fanEvent) record(data json.RawMessage, now time.Time) {
	var d struct {
		PostID     int64 `json:"post_id"`
		LikesCount int64 `json:"likes_count"`
		SentAt     int64 `json:"sent_at"`
	}
	if json.Unmarshal(data, &d) != nil || d.PostID != e.post {
		return
	}
	lat := now.Sub(e.t0)
	if d.SentAt > 0 {
		lat = now.Sub(time.Unix(0, d.SentAt))
	}
	e.mu.Lock()
	e.seen[d.LikesCount] = append(e.seen[d.LikesCount], lat)
	e.inner = e.inner || d.SentAt > 0
	e.mu.Unlock()
	e.wake()
}

func (e *fanEvent) wake() {
	select {
	case e.cond <- struct{}{}:
	default:
	}
}

func liveCount(socks []*sock) int {
	n := 0
	for _, s := range socks {
		if !s.dead.Load() {
			n++
		}
	}
	return n
}

func (b *bench) fanOut(ctx context.Context) error {
	subs := b.socks[:min(b.o.fanout, len(b.socks))]
	frame := fmt.Appendf(nil, `{"type":"subscribe","data":{"post_ids":[%d]}}`, b.o.post)
	var wg sync.WaitGroup
	var failed atomic.Int64
	sem := make(chan struct{}, 100)
	for _, s := range subs {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if s.roundTrip(sctx, frame) != nil {
				failed.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		return fmt.Errorf("%d subscriptions failed", n)
	}
	likeURL := fmt.Sprintf("%s/api/posts/%d/like/", strings.TrimSuffix(b.o.base, "/"), b.o.post)
	// Start from "not liked", so that the events alternate like, unlike.
	if _, err := b.likeRequest(ctx, http.MethodDelete, likeURL); err != nil {
		return err
	}
	time.Sleep(200 * time.Millisecond)

	var all []time.Duration
	missing, inner := 0, false
	for i := range b.o.events {
		method := http.MethodPost
		if i%2 == 1 {
			method = http.MethodDelete
		}
		ev := &fanEvent{post: b.o.post, t0: time.Now(), seen: make(map[int64][]time.Duration), cond: make(chan struct{}, 1)}
		b.curFan.Store(ev)
		want, err := b.likeRequest(ctx, method, likeURL)
		if err != nil {
			return err
		}
		deadline := time.After(5 * time.Second)
	wait:
		for {
			ev.mu.Lock()
			n := len(ev.seen[want])
			ev.mu.Unlock()
			if n >= liveCount(subs) { // sockets the server dropped are not waited for
				break
			}
			select {
			case <-ev.cond:
			case <-deadline:
				break wait
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		b.curFan.Store(nil)
		ev.mu.Lock()
		got := ev.seen[want]
		all = append(all, got...)
		missing += max(0, liveCount(subs)-len(got))
		inner = inner || ev.inner
		ev.mu.Unlock()
		time.Sleep(b.o.eventGap)
	}
	from := "the like request being sent"
	if inner {
		from = "the server's sent_at in the frame"
	}
	fmt.Fprintf(b.out, "fan-out to %d subscribers of post %d, %d events, latency from %s:\n", len(subs), b.o.post, b.o.events, from)
	fmt.Fprintf(b.out, "  %s; frames missing at open sockets: %d; subscribers dropped by the server: %d\n",
		percentiles(all), missing, len(subs)-liveCount(subs))
	return nil
}

func (b *bench) likeRequest(ctx context.Context, method, u string) (int64, error) {
	req, _ := http.NewRequestWithContext(ctx, method, u, nil)
	req.Header.Set("Authorization", "Bearer "+b.o.liker)
	resp, err := b.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	var body struct {
		LikesCount *int64 `json:"likes_count"`
	}
	if resp.StatusCode >= 300 || json.NewDecoder(resp.Body).Decode(&body) != nil || body.LikesCount == nil {
		return 0, fmt.Errorf("%s %s: HTTP %d, no likes_count", method, u, resp.StatusCode)
	}
	return *body.LikesCount, nil
}

// chatRun is one chat test.
type chatRun struct {
	to       []int32       // recipient token of message seq
	received []atomic.Bool // first arrival at the recipient counted
	mu       sync.Mutex
	lat      []time.Duration
}

func (c *chatRun) record(tok int, data json.RawMessage, now time.Time) {
	var d struct {
		Content string `json:"content"`
		Message struct {
			Content string `json:"content"`
		} `json:"message"`
	}
	if json.Unmarshal(data, &d) != nil {
		return
	}
	content := d.Content
	if content == "" {
		content = d.Message.Content
	}
	rest, ok := strings.CutPrefix(content, "bench:")
	if !ok {
		return
	}
	seqS, tS, ok := strings.Cut(rest, ":")
	seq, err1 := strconv.Atoi(seqS)
	t, err2 := strconv.ParseInt(tS, 10, 64)
	if !ok || err1 != nil || err2 != nil || seq < 0 || seq >= len(c.to) || int(c.to[seq]) != tok {
		return
	}
	if c.received[seq].Swap(true) {
		return
	}
	c.mu.Lock()
	c.lat = append(c.lat, now.Sub(time.Unix(0, t)))
	c.mu.Unlock()
}

func (b *bench) chat(ctx context.Context) error {
	pairs := min(b.o.chatPairs, len(b.tokens)/2)
	if pairs == 0 {
		return errors.New("needs at least two tokens")
	}
	type pair struct {
		conv int64
		a, b int // token indexes
	}
	ps := make([]pair, 0, pairs)
	for p := range pairs {
		a, bt := 2*p, 2*p+1
		if b.byTok[a] == nil || b.byTok[bt] == nil {
			return fmt.Errorf("tokens %d and %d have no socket (raise -n)", a, bt)
		}
		name, err := b.username(ctx, b.tokens[bt])
		if err != nil {
			return err
		}
		conv, err := b.conversation(ctx, b.tokens[a], name)
		if err != nil {
			return err
		}
		ps = append(ps, pair{conv, a, bt})
	}
	total := int(float64(b.o.chatRate) * b.o.chatDur.Seconds())
	cr := &chatRun{to: make([]int32, total), received: make([]atomic.Bool, total)}
	b.curChat.Store(cr)
	defer b.curChat.Store(nil)

	// Open loop: message seq is due at start + seq*interval, whatever
	// happened to the earlier ones; a late loop catches up at once.
	interval := time.Second / time.Duration(b.o.chatRate)
	var sendErrs atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for seq := 0; seq < total; seq++ {
		if d := time.Until(start.Add(time.Duration(seq) * interval)); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		p := ps[seq%len(ps)]
		from, to := p.a, p.b
		if (seq/len(ps))%2 == 1 {
			from, to = to, from
		}
		cr.to[seq] = int32(to)
		frame := fmt.Appendf(nil, `{"type":"message.send","data":{"conversation_id":%d,"content":"bench:%d:%d"}}`, p.conv, seq, time.Now().UnixNano())
		wg.Add(1)
		go func(s *sock) {
			defer wg.Done()
			wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			if s.c.Write(wctx, websocket.MessageText, frame) != nil {
				sendErrs.Add(1)
			}
		}(b.byTok[from])
	}
	wg.Wait()
	elapsed := time.Since(start)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		cr.mu.Lock()
		n := len(cr.lat)
		cr.mu.Unlock()
		if n == total {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	cr.mu.Lock()
	lat := slices.Clone(cr.lat)
	cr.mu.Unlock()
	fmt.Fprintf(b.out, "chat: %d messages over %d conversations in %v (%.0f msg/s), received %d, lost %d, send errors %d, latency:\n",
		total, len(ps), elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds(), len(lat), total-len(lat), sendErrs.Load())
	fmt.Fprintf(b.out, "  %s\n", percentiles(lat))
	return nil
}

func (b *bench) username(ctx context.Context, token string) (string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(b.o.base, "/")+"/api/users/me/", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := b.http.Do(req)
	if err != nil {
		return "", err
	}
	defer func() { _ = resp.Body.Close() }()
	var me struct {
		Username string `json:"username"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&me) != nil || me.Username == "" {
		return "", fmt.Errorf("GET /api/users/me/: HTTP %d", resp.StatusCode)
	}
	return me.Username, nil
}

func (b *bench) conversation(ctx context.Context, token, username string) (int64, error) {
	body, _ := json.Marshal(map[string]string{"username": username})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(b.o.base, "/")+"/api/conversations/", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	var conv struct {
		ID int64 `json:"id"`
	}
	if resp.StatusCode >= 300 || json.NewDecoder(resp.Body).Decode(&conv) != nil || conv.ID == 0 {
		return 0, fmt.Errorf("POST /api/conversations/ {%q}: HTTP %d", username, resp.StatusCode)
	}
	return conv.ID, nil
}

func percentiles(d []time.Duration) string {
	if len(d) == 0 {
		return "no samples"
	}
	s := slices.Clone(d)
	slices.Sort(s)
	q := func(p float64) time.Duration { return s[min(len(s)-1, int(p*float64(len(s))))] }
	r := func(x time.Duration) time.Duration { return x.Round(10 * time.Microsecond) }
	return fmt.Sprintf("n=%d p50=%v p90=%v p99=%v max=%v", len(s), r(q(0.50)), r(q(0.90)), r(q(0.99)), r(s[len(s)-1]))
}
