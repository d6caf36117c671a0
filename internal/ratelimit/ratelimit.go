// Package ratelimit limits how often something may happen per key, for
// example login attempts per client IP or password resets per account.
//
// Two implementations share one behaviour, checked by the conformance suite
// in package ratelimittest: [Memory] keeps state in the process, for the
// embedded single-node deployment, and [Redis] keeps it in Redis, so that
// several API processes behind a load balancer enforce one shared limit.
//
// # Algorithm: sliding window log
//
// Both implementations keep, per key, the timestamps of the events they
// allowed. An event at time now is allowed when fewer than Rule.Limit of the
// recorded events lie in the half-open window (now-Window, now]; it is then
// recorded. A denied event is not recorded, so a client that keeps hammering
// while blocked does not push its own unblocking further away, and
// Decision.RetryAfter is exact: the time until the oldest event that still
// counts leaves the window.
//
// The sliding log was chosen over the cheaper alternatives because Rule
// promises "at most Limit events in any Window", and for brute-force
// protection that bound is the point:
//
//   - a fixed window counter lets 2×Limit events through around a window
//     boundary;
//   - GCRA (a token bucket) with a burst of Limit lets the burst through and
//     then one more event every Window/Limit, so close to 2×Limit events can
//     fall within one Window.
//
// The price is memory proportional to Limit per key, which is negligible for
// the small limits that authentication endpoints use (tens of events, not
// thousands). Rules with very large limits should use a coarser tool.
//
// A key is expected to be used with one Rule; callers namespace keys by what
// they limit ("login:ip:198.51.100.7", "reset:account:42").
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Rule allows at most Limit events per Window, in any window of that length
// (a sliding window, not calendar-aligned buckets).
type Rule struct {
	Limit  int
	Window time.Duration
}

// ErrInvalidRule is returned (wrapped) by Allow for a rule with a
// non-positive Limit or Window, which would otherwise silently block or
// allow everything.
var ErrInvalidRule = errors.New("invalid rate limit rule")

// validate rejects rules that cannot be enforced meaningfully.
func (r Rule) validate() error {
	if r.Limit < 1 {
		return fmt.Errorf("%w: limit %d, want at least 1", ErrInvalidRule, r.Limit)
	}
	if r.Window <= 0 {
		return fmt.Errorf("%w: window %s, want a positive duration", ErrInvalidRule, r.Window)
	}
	return nil
}

// Decision is the outcome of one Allow call.
type Decision struct {
	// Allowed reports whether the event was within the limit (and so was
	// recorded).
	Allowed bool
	// Remaining is how many more events the key may have right now; 0 when
	// denied.
	Remaining int
	// RetryAfter is positive only when the event was denied: how long until
	// one more event would be allowed. It suits a Retry-After header after
	// rounding up to whole seconds.
	RetryAfter time.Duration
}

// Limiter records events per key and says whether they are within a Rule.
// Implementations are safe for concurrent use.
type Limiter interface {
	// Allow records one event for key under rule and says whether it is
	// within the limit. Denied events do not count.
	Allow(ctx context.Context, key string, rule Rule) (Decision, error)
	// Reset forgets key (e.g. after a successful login).
	Reset(ctx context.Context, key string) error
}

// Compile-time checks that both implementations satisfy Limiter.
var (
	_ Limiter = (*Memory)(nil)
	_ Limiter = (*Redis)(nil)
)
