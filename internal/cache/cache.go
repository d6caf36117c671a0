// Package cache is a small in-process cache of values read on hot paths
// (the user behind an access token, a ready video's row, a post's card),
// so that a request does not pay a database round trip for data that
// almost never changes.
//
// Entries live for a fixed TTL. Writers call Delete after changing the
// data; other instances hear of it through Invalidator (the pub/sub
// broker), and the TTL bounds how stale an entry can get when that message
// is lost (Redis down) or the change came from another process (the CLI).
package cache

import (
	"context"
	"sync"
	"time"
)

// TTL maps keys to values that expire after a fixed time. It is safe for
// concurrent use.
type TTL[K comparable, V any] struct {
	ttl time.Duration
	max int
	now func() time.Time

	mu  sync.RWMutex
	m   map[K]entry[V]
	gen uint64 // bumped by every Delete: see Generation

	onChange func(ctx context.Context, k K) // tells the other instances; see Changed
}

type entry[V any] struct {
	v       V
	expires time.Time
}

// New makes a cache of at most max entries (when full, it starts afresh:
// cheaper than tracking recency, and rare at sensible sizes). A zero ttl
// disables caching: Get always misses.
func New[K comparable, V any](ttl time.Duration, max int) *TTL[K, V] {
	return &TTL[K, V]{ttl: ttl, max: max, now: time.Now, m: make(map[K]entry[V])}
}

// Get returns the live value of k.
func (c *TTL[K, V]) Get(k K) (V, bool) {
	c.mu.RLock()
	e, ok := c.m[k]
	c.mu.RUnlock()
	if !ok || !c.now().Before(e.expires) {
		var zero V
		return zero, false
	}
	return e.v, true
}

// Load returns the live value of k, or calls load and keeps what it
// returns (when keep, if given, accepts it) unless a Delete raced the load.
func (c *TTL[K, V]) Load(k K, load func() (V, error), keep func(V) bool) (V, error) {
	if v, ok := c.Get(k); ok {
		return v, nil
	}
	gen := c.Generation()
	v, err := load()
	if err == nil && (keep == nil || keep(v)) {
		c.SetIfCurrent(gen, k, v)
	}
	return v, err
}

// Generation is read before loading a value from its source; SetIfCurrent
// with it stores the value only if no Delete happened meanwhile, so a load
// that raced with a write cannot put the old value back.
func (c *TTL[K, V]) Generation() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.gen
}

// SetIfCurrent stores v for k unless a Delete happened since gen was read.
func (c *TTL[K, V]) SetIfCurrent(gen uint64, k K, v V) {
	if c.ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	if len(c.m) >= c.max {
		clear(c.m)
	}
	c.m[k] = entry[V]{v: v, expires: c.now().Add(c.ttl)}
}

// Delete forgets k (and makes loads in flight not store what they read).
func (c *TTL[K, V]) Delete(k K) {
	c.mu.Lock()
	delete(c.m, k)
	c.gen++
	c.mu.Unlock()
}

// OnChange registers fn, called by Changed to tell the other instances
// (Invalidations.Publish). Set at wiring time, before the cache is used.
func (c *TTL[K, V]) OnChange(fn func(ctx context.Context, k K)) { c.onChange = fn }

// Changed is what a writer calls after committing a change to k: the entry
// goes here at once, and on the other instances through OnChange.
func (c *TTL[K, V]) Changed(ctx context.Context, k K) {
	c.Delete(k)
	if c.onChange != nil {
		c.onChange(ctx, k)
	}
}

// Len is the number of entries, expired ones included.
func (c *TTL[K, V]) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}
