// Package ratelimittest is the conformance suite every ratelimit.Limiter
// must pass, so the in-memory and Redis limiters cannot drift apart.
//
// Tests that need time to pass use real windows of a few hundred
// milliseconds rather than an injected clock, because the Redis limiter
// reads the Redis server's clock. The subtests run in parallel so the whole
// suite takes about one window's worth of sleeping.
package ratelimittest

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"plaza/internal/ratelimit"
)

// long is a window no test outlives, for checks that must not race the
// clock.
const long = time.Minute

// Run runs the conformance suite. newLimiter is called once per subtest and
// must return a limiter with no keys in use, e.g. a fresh Memory or a Redis
// limiter with a unique key prefix.
func Run(t *testing.T, newLimiter func(t *testing.T) ratelimit.Limiter) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, l ratelimit.Limiter)
	}{
		{"LimitThenDeny", testLimitThenDeny},
		{"RemainingCountsDown", testRemainingCountsDown},
		{"DeniedDoNotExtendBlock", testDeniedDoNotExtendBlock},
		{"AllowedAgainAfterWindow", testAllowedAgainAfterWindow},
		{"WindowSlides", testWindowSlides},
		{"KeysIndependent", testKeysIndependent},
		{"Reset", testReset},
		{"ConcurrentAllowExactlyLimit", testConcurrent},
		{"InvalidRule", testInvalidRule},
		{"CanceledContext", testCanceledContext},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newLimiter(t))
		})
	}
}

// allow calls l.Allow and fails the test on error.
func allow(t *testing.T, l ratelimit.Limiter, key string, rule ratelimit.Rule) ratelimit.Decision {
	t.Helper()
	d, err := l.Allow(t.Context(), key, rule)
	if err != nil {
		t.Fatalf("Allow(%q, %+v): %v", key, rule, err)
	}
	return d
}

// mustAllow asserts that the event is allowed with the given Remaining.
func mustAllow(t *testing.T, l ratelimit.Limiter, key string, rule ratelimit.Rule, remaining int) {
	t.Helper()
	d := allow(t, l, key, rule)
	want := ratelimit.Decision{Allowed: true, Remaining: remaining}
	if d != want {
		t.Fatalf("Allow(%q) = %+v, want %+v", key, d, want)
	}
}

// mustDeny asserts that the event is denied with a RetryAfter in (0, upper]
// and returns that RetryAfter.
func mustDeny(t *testing.T, l ratelimit.Limiter, key string, rule ratelimit.Rule, upper time.Duration) time.Duration {
	t.Helper()
	d := allow(t, l, key, rule)
	if d.Allowed || d.Remaining != 0 {
		t.Fatalf("Allow(%q) = %+v, want denied with Remaining 0", key, d)
	}
	if d.RetryAfter <= 0 || d.RetryAfter > upper {
		t.Fatalf("Allow(%q) denied with RetryAfter %s, want within (0, %s]", key, d.RetryAfter, upper)
	}
	return d.RetryAfter
}

func testLimitThenDeny(t *testing.T, l ratelimit.Limiter) {
	rule := ratelimit.Rule{Limit: 3, Window: long}
	key := "login:ip:198.51.100.7"
	for i := range rule.Limit {
		mustAllow(t, l, key, rule, rule.Limit-1-i)
	}
	retry := mustDeny(t, l, key, rule, rule.Window)
	// The events were just recorded, so the block lasts nearly a window.
	if retry < rule.Window-10*time.Second {
		t.Fatalf("RetryAfter %s, want close to the window %s", retry, rule.Window)
	}
	// Still denied on further attempts.
	mustDeny(t, l, key, rule, retry)
}

func testRemainingCountsDown(t *testing.T, l ratelimit.Limiter) {
	rule := ratelimit.Rule{Limit: 5, Window: long}
	key := "register:ip:203.0.113.9"
	var got []int
	for range rule.Limit + 2 {
		got = append(got, allow(t, l, key, rule).Remaining)
	}
	if want := []int{4, 3, 2, 1, 0, 0, 0}; !slices.Equal(got, want) {
		t.Fatalf("Remaining over %d calls = %v, want %v", len(got), got, want)
	}
}

func testDeniedDoNotExtendBlock(t *testing.T, l ratelimit.Limiter) {
	rule := ratelimit.Rule{Limit: 2, Window: 300 * time.Millisecond}
	key := "token:account:42"
	mustAllow(t, l, key, rule, 1)
	mustAllow(t, l, key, rule, 0)
	first := mustDeny(t, l, key, rule, rule.Window)
	// Measured after the call returned, so no earlier than the real end of
	// the block.
	unblocked := time.Now().Add(first)

	// Hammer the key while it is blocked. If denied events counted, or
	// moved the window, the block would end a window after the last one.
	prev := first
	for time.Until(unblocked) > 60*time.Millisecond {
		retry := mustDeny(t, l, key, rule, prev)
		prev = retry
		time.Sleep(10 * time.Millisecond)
	}

	time.Sleep(time.Until(unblocked) + 30*time.Millisecond)
	d := allow(t, l, key, rule)
	if !d.Allowed {
		t.Fatalf("Allow after the first block ended = %+v, want allowed: denied events extended the block", d)
	}
}

func testAllowedAgainAfterWindow(t *testing.T, l ratelimit.Limiter) {
	rule := ratelimit.Rule{Limit: 2, Window: 250 * time.Millisecond}
	key := "reset:account:7"
	mustAllow(t, l, key, rule, 1)
	mustAllow(t, l, key, rule, 0)
	lastAllowed := time.Now()
	mustDeny(t, l, key, rule, rule.Window)

	time.Sleep(time.Until(lastAllowed.Add(rule.Window + 50*time.Millisecond)))
	// The whole limit is available again, not just one event.
	mustAllow(t, l, key, rule, 1)
	mustAllow(t, l, key, rule, 0)
	mustDeny(t, l, key, rule, rule.Window)
}

// testWindowSlides tells a sliding window from a fixed one: an event leaves
// the window exactly one window after it happened, one at a time.
func testWindowSlides(t *testing.T, l ratelimit.Limiter) {
	rule := ratelimit.Rule{Limit: 2, Window: 400 * time.Millisecond}
	key := "login:account:alice"
	mustAllow(t, l, key, rule, 1)
	time.Sleep(200 * time.Millisecond)
	mustAllow(t, l, key, rule, 0)
	secondAt := time.Now()

	// Only the first event has to leave, which happens about 200ms from now,
	// not a full window after the second event.
	retry := mustDeny(t, l, key, rule, 300*time.Millisecond)
	time.Sleep(retry + 30*time.Millisecond)
	if time.Since(secondAt) >= rule.Window-50*time.Millisecond {
		t.Skip("the machine is too slow for this timing test")
	}

	// The first event has left, the second still counts: one slot.
	mustAllow(t, l, key, rule, 0)
	mustDeny(t, l, key, rule, rule.Window)
}

func testKeysIndependent(t *testing.T, l ratelimit.Limiter) {
	rule := ratelimit.Rule{Limit: 1, Window: long}
	keys := []string{"login:ip:192.0.2.1", "login:ip:192.0.2.10", "login:ip:192.0.2.1:", "", "login:ip:192.0.2.2"}
	for _, key := range keys {
		mustAllow(t, l, key, rule, 0)
	}
	for _, key := range keys {
		mustDeny(t, l, key, rule, rule.Window)
	}
}

func testReset(t *testing.T, l ratelimit.Limiter) {
	ctx := t.Context()
	rule := ratelimit.Rule{Limit: 2, Window: long}
	key, other := "login:account:bob", "login:account:carol"
	for _, k := range []string{key, other} {
		mustAllow(t, l, k, rule, 1)
		mustAllow(t, l, k, rule, 0)
		mustDeny(t, l, k, rule, rule.Window)
	}

	if err := l.Reset(ctx, key); err != nil {
		t.Fatalf("Reset(%q): %v", key, err)
	}
	mustAllow(t, l, key, rule, 1)
	mustAllow(t, l, key, rule, 0)
	mustDeny(t, l, key, rule, rule.Window)
	// Other keys keep their state.
	mustDeny(t, l, other, rule, rule.Window)

	if err := l.Reset(ctx, "never-used"); err != nil {
		t.Fatalf("Reset of an unknown key: %v", err)
	}
}

// testConcurrent checks atomicity: racing callers must never both take the
// last slot, and each slot is handed out exactly once.
func testConcurrent(t *testing.T, l ratelimit.Limiter) {
	const goroutines, perGoroutine = 50, 3
	rule := ratelimit.Rule{Limit: 10, Window: long}
	key := "login:ip:198.51.100.200"

	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		remaining []int
		denied    int
		errs      []error
	)
	startGate := make(chan struct{})
	for range goroutines {
		wg.Go(func() {
			<-startGate
			for range perGoroutine {
				d, err := l.Allow(t.Context(), key, rule)
				mu.Lock()
				switch {
				case err != nil:
					errs = append(errs, err)
				case d.Allowed:
					remaining = append(remaining, d.Remaining)
				default:
					denied++
				}
				mu.Unlock()
			}
		})
	}
	close(startGate)
	wg.Wait()

	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent Allow: %v", err)
	}
	if len(remaining) != rule.Limit || denied != goroutines*perGoroutine-rule.Limit {
		t.Fatalf("concurrent Allow: %d allowed, %d denied; want exactly %d allowed", len(remaining), denied, rule.Limit)
	}
	slices.Sort(remaining)
	if want := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}; !slices.Equal(remaining, want) {
		t.Fatalf("Remaining of allowed events = %v, want each of %v once", remaining, want)
	}
}

func testInvalidRule(t *testing.T, l ratelimit.Limiter) {
	for _, rule := range []ratelimit.Rule{
		{Limit: 0, Window: time.Minute},
		{Limit: -1, Window: time.Minute},
		{Limit: 1, Window: 0},
		{Limit: 1, Window: -time.Second},
	} {
		if d, err := l.Allow(t.Context(), "k", rule); !errors.Is(err, ratelimit.ErrInvalidRule) {
			t.Errorf("Allow with %+v = %+v, %v; want ErrInvalidRule", rule, d, err)
		}
	}
	// An invalid rule must not have recorded anything.
	mustAllow(t, l, "k", ratelimit.Rule{Limit: 1, Window: long}, 0)
}

func testCanceledContext(t *testing.T, l ratelimit.Limiter) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	rule := ratelimit.Rule{Limit: 1, Window: long}
	if d, err := l.Allow(ctx, "k", rule); !errors.Is(err, context.Canceled) {
		t.Fatalf("Allow with a canceled context = %+v, %v; want context.Canceled", d, err)
	}
	if err := l.Reset(ctx, "k"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Reset with a canceled context = %v; want context.Canceled", err)
	}
	// The canceled call must not have used the only slot.
	mustAllow(t, l, "k", rule, 0)
}
