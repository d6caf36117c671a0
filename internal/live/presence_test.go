package live

import (
	"context"
	"crypto/rand"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisClient connects to PLAZA_TEST_REDIS_URL, skipping only when it is
// unset: a set but unreachable Redis is a failure.
func redisClient(tb testing.TB) *redis.Client {
	tb.Helper()
	url := os.Getenv("PLAZA_TEST_REDIS_URL")
	if url == "" {
		tb.Skip("PLAZA_TEST_REDIS_URL is not set")
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		tb.Fatalf("PLAZA_TEST_REDIS_URL: %v", err)
	}
	client := redis.NewClient(opts)
	tb.Cleanup(func() { _ = client.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		tb.Fatalf("Redis at PLAZA_TEST_REDIS_URL does not answer: %v", err)
	}
	return client
}

// uniquePrefix returns a key prefix no other test run uses and deletes its
// keys when the test ends.
func uniquePrefix(tb testing.TB, client *redis.Client) string {
	tb.Helper()
	prefix := "plaza-test:live:" + rand.Text() + ":"
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		iter := client.Scan(ctx, 0, prefix+"*", 100).Iterator()
		for iter.Next(ctx) {
			_ = client.Del(ctx, iter.Val()).Err()
		}
	})
	return prefix
}

func newRedisPresence(tb testing.TB, client redis.UniversalClient, prefix, id string, ttl time.Duration) *RedisPresence {
	tb.Helper()
	p, err := NewRedisPresence(context.Background(), client, prefix, id, ttl)
	if err != nil {
		tb.Fatalf("NewRedisPresence: %v", err)
	}
	tb.Cleanup(func() { _ = p.Close() })
	return p.(*RedisPresence)
}

func mustBool(t *testing.T, what string, got bool, err error, want bool) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if got != want {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
}

func checkOnline(t *testing.T, p Presence, want map[int64]bool) {
	t.Helper()
	ids := make([]int64, 0, len(want))
	for id := range want {
		ids = append(ids, id)
	}
	got, err := p.Online(t.Context(), ids)
	if err != nil {
		t.Fatalf("Online: %v", err)
	}
	for id, w := range want {
		if got[id] != w {
			t.Errorf("user %d online = %v, want %v", id, got[id], w)
		}
	}
}

// testTwoPresences runs the transitions of one user across two instances.
func testTwoPresences(t *testing.T, a, b Presence) {
	ctx := t.Context()
	checkOnline(t, a, map[int64]bool{7: false})
	on, err := a.Connected(ctx, 7)
	mustBool(t, "a.Connected(7)", on, err, true)
	on, err = b.Connected(ctx, 7)
	mustBool(t, "b.Connected(7)", on, err, false)
	checkOnline(t, b, map[int64]bool{7: true, 8: false})
	off, err := a.Disconnected(ctx, 7)
	mustBool(t, "a.Disconnected(7)", off, err, false)
	checkOnline(t, a, map[int64]bool{7: true})
	off, err = b.Disconnected(ctx, 7)
	mustBool(t, "b.Disconnected(7)", off, err, true)
	checkOnline(t, a, map[int64]bool{7: false})
	off, err = b.Disconnected(ctx, 7) // not connected: no transition
	mustBool(t, "b.Disconnected(7) again", off, err, false)

	on, err = b.Connected(ctx, 8)
	mustBool(t, "b.Connected(8)", on, err, true)
	checkOnline(t, a, map[int64]bool{7: false, 8: true})
}

func TestLocalPresence(t *testing.T) {
	t.Parallel()
	p := NewLocalPresence()
	testTwoPresences(t, p, p) // two hubs of one process share it
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	checkOnline(t, p, map[int64]bool{8: false})
}

func TestRedisPresence(t *testing.T) {
	t.Parallel()
	client := redisClient(t)
	prefix := uniquePrefix(t, client)
	a := newRedisPresence(t, client, prefix, "a", time.Minute)
	b := newRedisPresence(t, client, prefix, "b", time.Minute)
	testTwoPresences(t, a, b)

	// A graceful Close takes the instance's users offline at once.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	checkOnline(t, a, map[int64]bool{8: false})

	// Many users in one call.
	ids := make([]int64, 2500)
	for i := range ids {
		ids[i] = int64(i + 1000)
		if i%2 == 0 {
			if _, err := a.Connected(t.Context(), ids[i]); err != nil {
				t.Fatal(err)
			}
		}
	}
	got, err := a.Online(t.Context(), ids)
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		if got[id] != (i%2 == 0) {
			t.Fatalf("user %d online = %v", id, got[id])
		}
	}
}

func TestRedisPresenceCrash(t *testing.T) {
	t.Parallel()
	client := redisClient(t)
	prefix := uniquePrefix(t, client)
	const ttl = time.Second
	a := newRedisPresence(t, client, prefix, "a", ttl)
	b := newRedisPresence(t, client, prefix, "b", ttl)
	events := make(presenceLog, 10)
	b.WatchPresence(events.handler)
	ctx := t.Context()

	for _, id := range []int64{1, 2} {
		if _, err := a.Connected(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	on, err := b.Connected(ctx, 2) // also on b: survives a's crash
	mustBool(t, "b.Connected(2)", on, err, false)
	time.Sleep(ttl) // heartbeats keep a alive meanwhile
	checkOnline(t, b, map[int64]bool{1: true, 2: true})

	a.stopHeartbeat() // crash: no goodbye
	crashed := time.Now()
	events.expect(t, 1, false) // reported by b, once
	if d := time.Since(crashed); d < ttl*2/3 {
		t.Errorf("offline reported %v after the crash, before ttl", d)
	}
	checkOnline(t, b, map[int64]bool{1: false, 2: true})
	events.expectNone(t)

	// The crashed instance comes back (it was only paused): its users are
	// put back and reported online again.
	a2 := &RedisPresence{}
	*a2 = RedisPresence{client: a.client, id: a.id, ttl: a.ttl, instances: a.instances, own: a.own,
		instPrefix: a.instPrefix, log: a.log, local: map[int64]struct{}{1: {}, 2: {}},
		stop: make(chan struct{}), done: make(chan struct{})}
	a2.WatchPresence(events.handler)
	go a2.heartbeatLoop()
	t.Cleanup(a2.stopHeartbeat)
	events.expect(t, 1, true)
	checkOnline(t, b, map[int64]bool{1: true, 2: true})
}
