package ratelimit_test

import (
	"context"
	"crypto/rand"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"plaza/internal/ratelimit"
	"plaza/internal/ratelimit/ratelimittest"
)

func TestMemoryConformance(t *testing.T) {
	t.Parallel()
	ratelimittest.Run(t, func(*testing.T) ratelimit.Limiter { return ratelimit.NewMemory(nil) })
}

func TestRedisConformance(t *testing.T) {
	t.Parallel()
	client := redisClient(t)
	ratelimittest.Run(t, func(t *testing.T) ratelimit.Limiter {
		return ratelimit.NewRedis(client, uniquePrefix(t, client))
	})
}

// redisClient connects to PLAZA_TEST_REDIS_URL, skipping only when it is
// unset: a set but unreachable Redis is a failure, so CI cannot silently
// skip the suite.
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

// uniquePrefix returns a key prefix no other test run uses, so parallel runs
// against one Redis cannot see each other's keys, and deletes its keys when
// the test ends.
func uniquePrefix(tb testing.TB, client *redis.Client) string {
	tb.Helper()
	// rand.Text is base32: no glob characters to escape in MATCH.
	prefix := "plaza-test:ratelimit:" + rand.Text() + ":"
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		iter := client.Scan(ctx, 0, prefix+"*", 100).Iterator()
		for iter.Next(ctx) {
			if err := client.Del(ctx, iter.Val()).Err(); err != nil {
				tb.Errorf("cleanup: delete %s: %v", iter.Val(), err)
			}
		}
		if err := iter.Err(); err != nil {
			tb.Errorf("cleanup: scan %s*: %v", prefix, err)
		}
	})
	return prefix
}

// fakeClock is a settable clock for NewMemory.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *fakeClock) Advance(d time.Duration) { c.Set(c.Now().Add(d)) }

func mustAllow(t *testing.T, l ratelimit.Limiter, key string, rule ratelimit.Rule) ratelimit.Decision {
	t.Helper()
	d, err := l.Allow(t.Context(), key, rule)
	if err != nil {
		t.Fatalf("Allow(%q): %v", key, err)
	}
	return d
}

// TestMemoryExactTimes pins the window boundaries and RetryAfter to the
// nanosecond, which the real-time conformance suite cannot.
func TestMemoryExactTimes(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	t0 := clock.Now()
	m := ratelimit.NewMemory(clock.Now)
	rule := ratelimit.Rule{Limit: 2, Window: 10 * time.Second}
	const key = "k"

	steps := []struct {
		at   time.Duration
		want ratelimit.Decision
	}{
		{0, ratelimit.Decision{Allowed: true, Remaining: 1}},
		{3 * time.Second, ratelimit.Decision{Allowed: true, Remaining: 0}},
		{4 * time.Second, ratelimit.Decision{RetryAfter: 6 * time.Second}},
		{10*time.Second - time.Nanosecond, ratelimit.Decision{RetryAfter: time.Nanosecond}},
		// The first event leaves exactly one window after it happened.
		{10 * time.Second, ratelimit.Decision{Allowed: true, Remaining: 0}},
		// Now the event at 3s is the one to wait for.
		{10 * time.Second, ratelimit.Decision{RetryAfter: 3 * time.Second}},
		// A clock stepping backwards counts as standing still.
		{5 * time.Second, ratelimit.Decision{RetryAfter: 3 * time.Second}},
		{13 * time.Second, ratelimit.Decision{Allowed: true, Remaining: 0}},
	}
	for i, s := range steps {
		clock.Set(t0.Add(s.at))
		if got := mustAllow(t, m, key, rule); got != s.want {
			t.Fatalf("step %d at +%s: Allow = %+v, want %+v", i, s.at, got, s.want)
		}
	}
}

// TestMemoryLowerLimit checks that a key filled under a larger limit waits
// for enough events to leave, not just the oldest.
func TestMemoryLowerLimit(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	m := ratelimit.NewMemory(clock.Now)
	const key = "k"
	for range 4 {
		mustAllow(t, m, key, ratelimit.Rule{Limit: 4, Window: 10 * time.Second})
		clock.Advance(time.Second)
	}
	// Events at 0s, 1s, 2s, 3s; now 4s. Two may remain for one more to fit
	// under a limit of 3, so the event at 1s must leave: at 11s.
	got := mustAllow(t, m, key, ratelimit.Rule{Limit: 3, Window: 10 * time.Second})
	if want := (ratelimit.Decision{RetryAfter: 7 * time.Second}); got != want {
		t.Fatalf("Allow under a lower limit = %+v, want %+v", got, want)
	}
}

// TestMemorySweepBoundsMemory floods the limiter with distinct keys, as an
// attacker rotating addresses would, and checks that expired keys are
// dropped so memory tracks the live keys rather than every key ever seen.
func TestMemorySweepBoundsMemory(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	m := ratelimit.NewMemory(clock.Now)
	rule := ratelimit.Rule{Limit: 5, Window: time.Minute}

	// A key with a long window must survive every sweep.
	survivor := ratelimit.Rule{Limit: 1, Window: 24 * time.Hour}
	if d := mustAllow(t, m, "survivor", survivor); !d.Allowed {
		t.Fatalf("first survivor event denied: %+v", d)
	}

	const rounds, perRound = 10, 20000
	// At most one round's keys are live at a time; the documented bound is
	// twice the live keys plus the minimum sweep interval (256) per shard (32).
	const bound = 2*perRound + 32*256 + 1
	peak := 0
	for r := range rounds {
		for i := range perRound {
			key := "flood:" + strconv.Itoa(r) + ":" + strconv.Itoa(i)
			if d := mustAllow(t, m, key, rule); !d.Allowed {
				t.Fatalf("first event of %s denied: %+v", key, d)
			}
			if i%1000 == 0 {
				peak = max(peak, m.Len())
			}
		}
		peak = max(peak, m.Len())
		clock.Advance(rule.Window + time.Second)
	}
	t.Logf("peak %d keys, bound %d, %d keys in total", peak, bound, rounds*perRound)
	if peak > bound {
		t.Fatalf("limiter held up to %d keys over %d rounds of %d, want at most %d", peak, rounds, perRound, bound)
	}
	if peak < perRound {
		t.Fatalf("limiter held at most %d keys, fewer than the %d live ones: it dropped live keys", peak, perRound)
	}
	if d := mustAllow(t, m, "survivor", survivor); d.Allowed {
		t.Fatalf("survivor allowed again within its window: the sweep dropped a live key")
	}
}

// TestRedisKeysExpire checks that Redis forgets a key on its own once its
// newest event has left the window, so abandoned keys cost nothing.
func TestRedisKeysExpire(t *testing.T) {
	t.Parallel()
	client := redisClient(t)
	prefix := uniquePrefix(t, client)
	l := ratelimit.NewRedis(client, prefix)
	ctx := t.Context()
	rule := ratelimit.Rule{Limit: 3, Window: 200 * time.Millisecond}

	mustAllow(t, l, "k", rule)
	ttl, err := client.PTTL(ctx, prefix+"k").Result()
	if err != nil {
		t.Fatal(err)
	}
	if ttl <= 0 || ttl > rule.Window {
		t.Fatalf("key TTL %s, want within (0, %s]", ttl, rule.Window)
	}
	time.Sleep(rule.Window + 50*time.Millisecond)
	n, err := client.Exists(ctx, prefix+"k").Result()
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("key still exists a window after its last event")
	}
}

// TestRedisSharedAcrossProcesses checks that limiters on separate
// connections, standing in for separate API processes, enforce one limit.
func TestRedisSharedAcrossProcesses(t *testing.T) {
	t.Parallel()
	a := redisClient(t)
	b := redisClient(t)
	prefix := uniquePrefix(t, a)
	la, lb := ratelimit.NewRedis(a, prefix), ratelimit.NewRedis(b, prefix)
	rule := ratelimit.Rule{Limit: 2, Window: time.Minute}

	if d := mustAllow(t, la, "k", rule); !d.Allowed || d.Remaining != 1 {
		t.Fatalf("first event = %+v", d)
	}
	if d := mustAllow(t, lb, "k", rule); !d.Allowed || d.Remaining != 0 {
		t.Fatalf("second event, other process = %+v", d)
	}
	if d := mustAllow(t, la, "k", rule); d.Allowed {
		t.Fatalf("third event allowed: processes do not share the limit")
	}
	if err := lb.Reset(t.Context(), "k"); err != nil {
		t.Fatal(err)
	}
	if d := mustAllow(t, la, "k", rule); !d.Allowed {
		t.Fatalf("event after Reset in the other process = %+v, want allowed", d)
	}
}

// TestRedisErrorsWrapped checks that Redis failures surface as errors that
// say where they came from, so the caller can choose to fail open or closed.
func TestRedisErrorsWrapped(t *testing.T) {
	t.Parallel()
	// Nothing listens on port 1, so the dial is refused at once.
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialerRetries: 1})
	t.Cleanup(func() { _ = client.Close() })
	l := ratelimit.NewRedis(client, "x:")

	_, err := l.Allow(t.Context(), "k", ratelimit.Rule{Limit: 1, Window: time.Second})
	if err == nil || !strings.HasPrefix(err.Error(), "ratelimit: redis allow: ") {
		t.Fatalf("Allow against an unreachable Redis: %v, want a wrapped error", err)
	}
	err = l.Reset(t.Context(), "k")
	if err == nil || !strings.HasPrefix(err.Error(), "ratelimit: redis reset: ") {
		t.Fatalf("Reset against an unreachable Redis: %v, want a wrapped error", err)
	}
}

func BenchmarkMemoryAllow(b *testing.B) {
	benchAllow(b, ratelimit.NewMemory(nil))
}

func BenchmarkRedisAllow(b *testing.B) {
	client := redisClient(b)
	benchAllow(b, ratelimit.NewRedis(client, uniquePrefix(b, client)))
}

// benchAllow spreads calls over many keys, like login attempts from many
// addresses, with a limit most of them reach so both paths are measured.
func benchAllow(b *testing.B, l ratelimit.Limiter) {
	rule := ratelimit.Rule{Limit: 10, Window: time.Minute}
	keys := make([]string, 4096)
	for i := range keys {
		keys[i] = "login:ip:" + strconv.Itoa(i)
	}
	var next atomic.Uint64
	ctx := b.Context()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			key := keys[next.Add(1)%uint64(len(keys))]
			if _, err := l.Allow(ctx, key, rule); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
