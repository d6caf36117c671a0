package pubsub_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"plaza/internal/pubsub"
	"plaza/internal/pubsub/pubsubtest"
)

func TestInProcConformance(t *testing.T) {
	t.Parallel()
	pubsubtest.Run(t, func(*testing.T) pubsub.Broker { return pubsub.NewInProc() })
}

func TestRedisConformance(t *testing.T) {
	t.Parallel()
	client := redisClient(t, redisOptions(t))
	pubsubtest.Run(t, func(*testing.T) pubsub.Broker {
		return pubsub.NewRedis(client, uniquePrefix())
	})
}

// redisOptions parses PLAZA_TEST_REDIS_URL, skipping only when it is unset:
// a set but unreachable Redis is a failure, so CI cannot silently skip.
func redisOptions(tb testing.TB) *redis.Options {
	tb.Helper()
	url := os.Getenv("PLAZA_TEST_REDIS_URL")
	if url == "" {
		tb.Skip("PLAZA_TEST_REDIS_URL is not set")
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		tb.Fatalf("PLAZA_TEST_REDIS_URL: %v", err)
	}
	return opts
}

// redisClient connects with opts and checks that Redis answers.
func redisClient(tb testing.TB, opts *redis.Options) *redis.Client {
	tb.Helper()
	client := redis.NewClient(opts)
	tb.Cleanup(func() { _ = client.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		tb.Fatalf("Redis at %s does not answer: %v", opts.Addr, err)
	}
	return client
}

// uniquePrefix returns a channel prefix no other test or test run uses, so
// runs sharing one Redis never see each other's messages. Pub/sub channels
// are not keys, so there is nothing to clean up.
func uniquePrefix() string {
	return "plaza-test:pubsub:" + rand.Text() + ":"
}

func subscribe(tb testing.TB, b pubsub.Broker, topics ...string) pubsub.Subscription {
	tb.Helper()
	s, err := b.Subscribe(tb.Context())
	if err != nil {
		tb.Fatalf("Subscribe: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	if err := s.Add(tb.Context(), topics...); err != nil {
		tb.Fatalf("Add: %v", err)
	}
	return s
}

func recv(tb testing.TB, s pubsub.Subscription, timeout time.Duration) (pubsub.Message, bool) {
	tb.Helper()
	select {
	case m, ok := <-s.Messages():
		if !ok {
			tb.Fatal("Messages closed")
		}
		return m, true
	case <-time.After(timeout):
		return pubsub.Message{}, false
	}
}

func mustRecv(tb testing.TB, s pubsub.Subscription, topic, payload string) {
	tb.Helper()
	m, ok := recv(tb, s, 10*time.Second)
	if !ok {
		tb.Fatalf("no message, want %s=%s", topic, payload)
	}
	if m.Topic != topic || string(m.Payload) != payload {
		tb.Fatalf("received %s=%s, want %s=%s", m.Topic, m.Payload, topic, payload)
	}
}

// drain reads s up to a fence on a topic of its own and returns what came
// before it.
func drain(tb testing.TB, b pubsub.Broker, s pubsub.Subscription) []string {
	tb.Helper()
	fence := "fence:" + rand.Text()
	if err := s.Add(tb.Context(), fence); err != nil {
		tb.Fatal(err)
	}
	if err := b.Publish(tb.Context(), fence, nil); err != nil {
		tb.Fatal(err)
	}
	var got []string
	for {
		m, ok := recv(tb, s, 10*time.Second)
		if !ok {
			tb.Fatal("fence did not arrive")
		}
		if m.Topic == fence {
			break
		}
		got = append(got, m.Topic+"="+string(m.Payload))
	}
	if err := s.Remove(tb.Context(), fence); err != nil {
		tb.Fatal(err)
	}
	return got
}

// awaitDelivery publishes to topic every 20ms until s receives one of those
// messages, for checks that a subscription has recovered. It returns how
// long that took.
func awaitDelivery(tb testing.TB, b pubsub.Broker, s pubsub.Subscription, topic string, timeout time.Duration) time.Duration {
	tb.Helper()
	start := time.Now()
	for i := 0; ; i++ {
		if time.Since(start) > timeout {
			tb.Fatalf("no message on %s delivered within %s", topic, timeout)
		}
		// Errors are expected while the subscription is reconnecting, not
		// while publishing on a healthy client; still, only delivery counts.
		if err := b.Publish(tb.Context(), topic, []byte("probe "+strconv.Itoa(i))); err != nil {
			tb.Logf("Publish while recovering: %v", err)
		}
		if m, ok := recv(tb, s, 20*time.Millisecond); ok {
			if m.Topic != topic || !strings.HasPrefix(string(m.Payload), "probe ") {
				tb.Fatalf("received %s=%s, want a probe on %s", m.Topic, m.Payload, topic)
			}
			return time.Since(start)
		}
	}
}

// TestRedisSharedAcrossInstances checks the point of the Redis broker:
// brokers on separate clients, standing in for separate server instances,
// see each other's messages when they share a prefix, and only then.
func TestRedisSharedAcrossInstances(t *testing.T) {
	t.Parallel()
	opts := redisOptions(t)
	prefix := uniquePrefix()
	a := pubsub.NewRedis(redisClient(t, opts), prefix)
	b := pubsub.NewRedis(redisClient(t, opts), prefix)
	other := pubsub.NewRedis(redisClient(t, opts), uniquePrefix())
	for _, br := range []pubsub.Broker{a, b, other} {
		t.Cleanup(func() { _ = br.Close() })
	}
	sa := subscribe(t, a, "post:1")
	sb := subscribe(t, b, "post:1")
	so := subscribe(t, other, "post:1")

	if err := a.Publish(t.Context(), "post:1", []byte("like on A")); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(t.Context(), "post:1", []byte("like on B")); err != nil {
		t.Fatal(err)
	}
	want := []string{"post:1=like on A", "post:1=like on B"}
	for name, got := range map[string][]string{"A": drain(t, a, sa), "B": drain(t, b, sb)} {
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("instance %s received %q, want %q", name, got, want)
		}
	}
	if got := drain(t, other, so); len(got) != 0 {
		t.Errorf("broker with another prefix received %q", got)
	}
}

// TestRedisChannelNames pins the channel naming, prefix+topic, that other
// tools (redis-cli, monitoring) rely on.
func TestRedisChannelNames(t *testing.T) {
	t.Parallel()
	client := redisClient(t, redisOptions(t))
	prefix := uniquePrefix()
	b := pubsub.NewRedis(client, prefix)
	t.Cleanup(func() { _ = b.Close() })
	ctx := t.Context()

	raw := client.Subscribe(ctx, prefix+"post:7")
	t.Cleanup(func() { _ = raw.Close() })
	if _, err := raw.Receive(ctx); err != nil { // the confirmation
		t.Fatal(err)
	}
	if err := b.Publish(ctx, "post:7", []byte("from the broker")); err != nil {
		t.Fatal(err)
	}
	msg, err := raw.ReceiveMessage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if msg.Channel != prefix+"post:7" || msg.Payload != "from the broker" {
		t.Fatalf("raw subscriber received %s=%s", msg.Channel, msg.Payload)
	}

	s := subscribe(t, b, "post:8")
	if err := client.Publish(ctx, prefix+"post:8", "from redis-cli").Err(); err != nil {
		t.Fatal(err)
	}
	mustRecv(t, s, "post:8", "from redis-cli")
}

// TestRedisRecoversAfterConnectionKilled drops the subscription's
// connection the way a Redis restart or failover would, with CLIENT KILL
// from another client, and checks that go-redis's reconnection brings the
// subscription back: later messages arrive, and Add and Remove work.
func TestRedisRecoversAfterConnectionKilled(t *testing.T) {
	t.Parallel()
	opts := redisOptions(t)
	admin := redisClient(t, opts)
	// A name of its own picks out this test's connections, so parallel
	// tests sharing the Redis keep theirs.
	named := *opts
	named.ClientName = "plaza-test-pubsub-" + rand.Text()
	b := pubsub.NewRedis(redisClient(t, &named), uniquePrefix())
	t.Cleanup(func() { _ = b.Close() })
	s := subscribe(t, b, "post:1")
	if err := b.Publish(t.Context(), "post:1", []byte("before")); err != nil {
		t.Fatal(err)
	}
	mustRecv(t, s, "post:1", "before")

	killed := killPubSubClients(t, admin, named.ClientName)
	if len(killed) == 0 {
		t.Fatal("found no pub/sub connection to kill")
	}
	took := awaitDelivery(t, b, s, "post:1", 10*time.Second)
	t.Logf("killed connection %v; delivering again after %s", killed, took)
	drain(t, b, s) // probes that arrived late

	// The subscription is on a new connection, not a survivor of the kill.
	ids := pubSubClientIDs(t, admin, named.ClientName)
	if len(ids) != 1 || ids[0] == killed[0] {
		t.Fatalf("pub/sub connections after the kill: %v, want one new one (killed %v)", ids, killed)
	}
	if err := s.Add(t.Context(), "post:2"); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(t.Context(), "post:1"); err != nil {
		t.Fatal(err)
	}
	for _, topic := range []string{"post:1", "post:2"} {
		if err := b.Publish(t.Context(), topic, []byte("after")); err != nil {
			t.Fatal(err)
		}
	}
	if got := drain(t, b, s); len(got) != 1 || got[0] != "post:2=after" {
		t.Fatalf("after recovery received %q, want [post:2=after]", got)
	}
	if d := s.Dropped(); d != 0 {
		t.Fatalf("Dropped() = %d, want 0", d)
	}
}

// TestRedisRefusedChannel checks that an error reply to SUBSCRIBE (here an
// ACL refusing the channel) fails Add instead of leaving it waiting.
func TestRedisRefusedChannel(t *testing.T) {
	t.Parallel()
	opts := redisOptions(t)
	admin := redisClient(t, opts)
	prefix := uniquePrefix()
	user := "plaza-test-pubsub-" + rand.Text()
	password := rand.Text()
	if err := admin.Do(t.Context(), "ACL", "SETUSER", user, "on", ">"+password, "~*", "resetchannels", "&"+prefix+"allowed:*", "&"+prefix+"fence:*", "+@all").Err(); err != nil {
		t.Fatalf("ACL SETUSER: %v", err)
	}
	t.Cleanup(func() { _ = admin.Do(context.Background(), "ACL", "DELUSER", user).Err() })
	limited := *opts
	limited.Username, limited.Password = user, password
	limited.ClientName = user
	b := pubsub.NewRedis(redisClient(t, &limited), prefix)
	t.Cleanup(func() { _ = b.Close() })

	s := subscribe(t, b, "allowed:1")
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	err := s.Add(ctx, "allowed:1", "forbidden", "allowed:2")
	if err == nil || errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "NOPERM") {
		t.Fatalf("Add of a forbidden channel: %v, want the NOPERM error at once", err)
	}
	// The subscription carries on with what it had.
	if err := s.Add(t.Context(), "allowed:3"); err != nil {
		t.Fatal(err)
	}
	for _, topic := range []string{"allowed:1", "allowed:2", "allowed:3"} {
		if err := b.Publish(t.Context(), topic, []byte("ok")); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := strings.Join(drain(t, b, s), " "), "allowed:1=ok allowed:3=ok"; got != want {
		t.Fatalf("after the refused Add received %q, want %q", got, want)
	}
	// Even after a reconnection, which re-subscribes in one command that a
	// forbidden channel would make Redis refuse whole.
	if len(killPubSubClients(t, admin, user)) == 0 {
		t.Fatal("found no pub/sub connection to kill")
	}
	awaitDelivery(t, b, s, "allowed:3", 10*time.Second)
	drain(t, b, s)
	if err := b.Publish(t.Context(), "allowed:1", []byte("again")); err != nil {
		t.Fatal(err)
	}
	mustRecv(t, s, "allowed:1", "again")
}

// pubSubClientIDs lists the ids of the pub/sub connections named name.
func pubSubClientIDs(tb testing.TB, admin *redis.Client, name string) []string {
	tb.Helper()
	list, err := admin.ClientList(tb.Context()).Result()
	if err != nil {
		tb.Fatal(err)
	}
	var ids []string
	for line := range strings.Lines(list) {
		fields := map[string]string{}
		for f := range strings.FieldsSeq(line) {
			k, v, _ := strings.Cut(f, "=")
			fields[k] = v
		}
		// A subscribed connection has sub= or psub= above zero; flags
		// contain P for pub/sub.
		if fields["name"] == name && strings.Contains(fields["flags"], "P") {
			ids = append(ids, fields["id"])
		}
	}
	return ids
}

// killPubSubClients kills the pub/sub connections named name with CLIENT
// KILL TYPE pubsub, narrowed by ID so no other test's connection is hit.
func killPubSubClients(tb testing.TB, admin *redis.Client, name string) []string {
	tb.Helper()
	ids := pubSubClientIDs(tb, admin, name)
	for _, id := range ids {
		if err := admin.ClientKillByFilter(tb.Context(), "TYPE", "pubsub", "ID", id).Err(); err != nil {
			tb.Fatalf("CLIENT KILL TYPE pubsub ID %s: %v", id, err)
		}
	}
	return ids
}

// TestRedisReplacesSilentConnection freezes the subscription's connection
// without closing it, as a dead NAT entry or a vanished host would, and
// checks that the health check notices and has the connection replaced.
//
// It does not run in parallel with the other tests: under their load (a
// thousand subscriptions under the race detector) a pong can take longer
// than the short interval used here, and rightly cost the connection.
func TestRedisReplacesSilentConnection(t *testing.T) {
	opts := redisOptions(t)
	prefix := uniquePrefix()
	direct := pubsub.NewRedis(redisClient(t, opts), prefix)
	t.Cleanup(func() { _ = direct.Close() })

	p := startProxy(t, opts.Addr)
	viaProxy := *opts
	viaProxy.Addr = p.addr()
	proxied := pubsub.NewRedis(redisClient(t, &viaProxy), prefix)
	const interval = 200 * time.Millisecond
	pubsub.SetHealthCheckInterval(proxied, interval)
	t.Cleanup(func() { _ = proxied.Close() })

	s := subscribe(t, proxied, "post:1")
	if err := direct.Publish(t.Context(), "post:1", []byte("before")); err != nil {
		t.Fatal(err)
	}
	mustRecv(t, s, "post:1", "before")

	// An idle but healthy connection answers its pings and is kept.
	accepted := p.accepted.Load()
	time.Sleep(5 * interval)
	if n := p.accepted.Load(); n != accepted {
		t.Fatalf("%d new connections while idle, want none: the health check replaced a healthy connection", n-accepted)
	}
	p.freeze()
	took := awaitDelivery(t, direct, s, "post:1", 10*time.Second)
	t.Logf("delivering again %s after the connection went silent", took)
	if p.accepted.Load() <= accepted {
		t.Fatal("delivery resumed without a new connection: the freeze did not work")
	}
}

// proxy forwards TCP connections to Redis. Frozen, the connections open at
// that moment stay open but carry nothing in either direction, while new
// ones work; stopped, it refuses connections until restarted on the same
// address.
type proxy struct {
	target   string
	address  string
	accepted atomic.Int64

	mu     sync.Mutex
	ln     net.Listener
	frozen []*atomic.Bool
	conns  []net.Conn
}

func startProxy(tb testing.TB, target string) *proxy {
	tb.Helper()
	p := &proxy{target: target}
	p.listen(tb, "127.0.0.1:0")
	tb.Cleanup(p.stop)
	return p
}

func (p *proxy) listen(tb testing.TB, addr string) {
	tb.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	p.mu.Lock()
	p.ln, p.address = ln, ln.Addr().String()
	p.mu.Unlock()
	go p.serve(ln)
}

func (p *proxy) addr() string { return p.address }

func (p *proxy) serve(ln net.Listener) {
	for {
		client, err := ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = client.Close()
			continue
		}
		p.accepted.Add(1)
		frozen := new(atomic.Bool)
		p.mu.Lock()
		p.frozen = append(p.frozen, frozen)
		p.conns = append(p.conns, client, server)
		p.mu.Unlock()
		go pipe(server, client, frozen)
		go pipe(client, server, frozen)
	}
}

// pipe copies src to dst until either fails; once frozen, it swallows what
// it reads.
func pipe(dst, src net.Conn, frozen *atomic.Bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			_ = dst.Close()
			return
		}
		if frozen.Load() {
			continue
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			return
		}
	}
}

func (p *proxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range p.frozen {
		f.Store(true)
	}
}

// stop closes the listener and every connection.
func (p *proxy) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	_ = p.ln.Close()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns, p.frozen = nil, nil
}

// restart listens again on the address it had.
func (p *proxy) restart(tb testing.TB) { p.listen(tb, p.address) }

// TestRedisOutage cuts the subscription's client off from Redis, checks
// that calls fail quickly instead of hanging, and that the subscription
// comes back by itself when Redis is reachable again.
func TestRedisOutage(t *testing.T) {
	t.Parallel()
	opts := redisOptions(t)
	prefix := uniquePrefix()
	direct := pubsub.NewRedis(redisClient(t, opts), prefix)
	t.Cleanup(func() { _ = direct.Close() })

	p := startProxy(t, opts.Addr)
	via := *opts
	via.Addr = p.addr()
	via.DialTimeout = 200 * time.Millisecond
	via.ReadTimeout = 200 * time.Millisecond
	via.WriteTimeout = 200 * time.Millisecond
	via.DialerRetries = 1
	proxied := pubsub.NewRedis(redisClient(t, &via), prefix)
	t.Cleanup(func() { _ = proxied.Close() })
	s := subscribe(t, proxied, "post:1")
	if err := direct.Publish(t.Context(), "post:1", []byte("before")); err != nil {
		t.Fatal(err)
	}
	mustRecv(t, s, "post:1", "before")

	p.stop()
	const quick = 3 * time.Second
	fails := func(what string, call func() error) {
		t.Helper()
		start := time.Now()
		err := call()
		if took := time.Since(start); took > quick {
			t.Fatalf("%s during the outage took %s, want an error within %s", what, took, quick)
		}
		if err == nil {
			t.Fatalf("%s during the outage succeeded", what)
		}
		t.Logf("%s during the outage: %v", what, err)
	}
	fails("Publish", func() error { return proxied.Publish(t.Context(), "post:1", []byte("lost")) })
	// No deadline on the context: only the client's timeouts bound it.
	fails("Add", func() error { return s.Add(context.Background(), "post:2") })
	fails("Subscribe", func() error {
		s2, err := proxied.Subscribe(t.Context())
		if err == nil {
			_ = s2.Close()
		}
		return err
	})

	p.restart(t)
	took := awaitDelivery(t, direct, s, "post:1", 10*time.Second)
	t.Logf("delivering again %s after Redis came back", took)
	drain(t, direct, s)
	if err := s.Add(t.Context(), "post:3"); err != nil {
		t.Fatal(err)
	}
	if err := direct.Publish(t.Context(), "post:3", []byte("after")); err != nil {
		t.Fatal(err)
	}
	mustRecv(t, s, "post:3", "after")
	if err := proxied.Publish(t.Context(), "post:3", []byte("from the recovered client")); err != nil {
		t.Fatal(err)
	}
	mustRecv(t, s, "post:3", "from the recovered client")
}

// TestRedisUnreachable checks that an unreachable Redis makes Publish and
// Subscribe fail quickly with an error, whether nothing listens or a
// server accepts connections and never answers. It needs no Redis.
func TestRedisUnreachable(t *testing.T) {
	t.Parallel()
	// A port that was just free: connections are refused at once.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := ln.Addr().String()
	_ = ln.Close()

	// A server that accepts and then says nothing, like a hung Redis.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = silent.Close() })
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			go func() {
				_, _ = io.Copy(io.Discard, bufio.NewReader(c))
				_ = c.Close()
			}()
		}
	}()

	for name, addr := range map[string]string{"refused": refused, "silent": silent.Addr().String()} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			client := redis.NewClient(&redis.Options{
				Addr:          addr,
				DialTimeout:   200 * time.Millisecond,
				ReadTimeout:   200 * time.Millisecond,
				WriteTimeout:  200 * time.Millisecond,
				MaxRetries:    -1,
				DialerRetries: 1,
			})
			t.Cleanup(func() { _ = client.Close() })
			b := pubsub.NewRedis(client, "plaza-test:unreachable:")
			t.Cleanup(func() { _ = b.Close() })

			const quick = 3 * time.Second
			start := time.Now()
			err := b.Publish(t.Context(), "post:1", []byte("like"))
			if took := time.Since(start); took > quick {
				t.Fatalf("Publish took %s, want an error within %s", took, quick)
			}
			if err == nil || !strings.HasPrefix(err.Error(), "pubsub: redis publish: ") {
				t.Fatalf("Publish to an unreachable Redis: %v, want a wrapped error", err)
			}

			start = time.Now()
			s, err := b.Subscribe(t.Context())
			if took := time.Since(start); took > quick {
				t.Fatalf("Subscribe took %s, want an error within %s", took, quick)
			}
			if err == nil {
				_ = s.Close()
				t.Fatal("Subscribe to an unreachable Redis succeeded")
			}
			if errors.Is(err, pubsub.ErrClosed) {
				t.Fatalf("Subscribe: %v, want a connection error", err)
			}
		})
	}
}

// BenchmarkInProcFanOut1000 measures one Publish of a 256-byte payload to
// 1,000 subscriptions of its topic. The subscriptions are drained outside
// the timer, so nothing is dropped.
func BenchmarkInProcFanOut1000(b *testing.B) {
	const n = 1000
	br := pubsub.NewInProc()
	b.Cleanup(func() { _ = br.Close() })
	subs := make([]pubsub.Subscription, n)
	for i := range subs {
		subs[i] = subscribe(b, br, "hot")
	}
	payload := make([]byte, 256)
	drainAll := func() {
		for _, s := range subs {
			for len(s.Messages()) > 0 {
				<-s.Messages()
			}
		}
	}
	ctx := b.Context()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if i%64 == 63 {
			b.StopTimer()
			drainAll()
			b.StartTimer()
		}
		if err := br.Publish(ctx, "hot", payload); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/delivery")
	for _, s := range subs {
		if d := s.Dropped(); d != 0 {
			b.Fatalf("Dropped() = %d", d)
		}
	}
}

// BenchmarkRedisPublish measures one PUBLISH of a 256-byte payload to a
// channel with one subscription, which drains in the background.
func BenchmarkRedisPublish(b *testing.B) {
	br := pubsub.NewRedis(redisClient(b, redisOptions(b)), uniquePrefix())
	b.Cleanup(func() { _ = br.Close() })
	s := subscribe(b, br, "hot")
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range s.Messages() {
		}
	}()
	b.Cleanup(func() { _ = s.Close(); <-done })
	payload := make([]byte, 256)
	ctx := b.Context()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := br.Publish(ctx, "hot", payload); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRedisRoundTrip measures the latency from Publish to the message
// arriving on a subscription of another client: a like on one instance
// reaching a WebSocket hub on another.
func BenchmarkRedisRoundTrip(b *testing.B) {
	opts := redisOptions(b)
	prefix := uniquePrefix()
	pub := pubsub.NewRedis(redisClient(b, opts), prefix)
	sub := pubsub.NewRedis(redisClient(b, opts), prefix)
	b.Cleanup(func() { _ = pub.Close(); _ = sub.Close() })
	s := subscribe(b, sub, "hot")
	payload := make([]byte, 256)
	ctx := b.Context()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := pub.Publish(ctx, "hot", payload); err != nil {
			b.Fatal(err)
		}
		<-s.Messages()
	}
}
