package ratelimit

import (
	"context"
	"fmt"
	"hash/maphash"
	"sync"
	"time"
)

const (
	// memoryShards spreads keys over independent mutexes so that concurrent
	// requests for different clients rarely wait on each other.
	memoryShards = 32
	// minSweepInterval is the fewest Allow calls a shard takes between two
	// sweeps, so that small shards are not swept on every call.
	minSweepInterval = 256
)

// Memory is an in-process [Limiter] for a single node. It is safe for
// concurrent use; the zero value is not usable, call [NewMemory].
//
// Memory stays bounded under a flood of distinct keys (one per spoofed
// address, say): events that have left their window are trimmed lazily when
// their key is next used, and each shard sweeps out the keys whose events
// have all expired once it has taken as many Allow calls as it held keys
// after its previous sweep (at least minSweepInterval). That keeps the sweep
// cost amortised constant per call while a shard never holds more than about
// twice the keys that were live at its last sweep, plus minSweepInterval.
type Memory struct {
	now    func() time.Time
	seed   maphash.Seed
	shards [memoryShards]memoryShard
}

type memoryShard struct {
	mu sync.Mutex
	// keys holds the event log of every key hashed to this shard.
	keys map[string]*memoryLog
	// calls counts Allow calls since the last sweep; the shard sweeps when
	// it reaches sweepAt.
	calls   int
	sweepAt int
}

// memoryLog is the sliding window log of one key.
type memoryLog struct {
	// events are the times of the allowed events still in their window,
	// oldest first.
	events []time.Time
	// expires is when every recorded event has left its window, so the
	// whole log can be dropped.
	expires time.Time
}

// NewMemory returns an in-memory limiter that reads the time from now, or
// from time.Now when now is nil. Tests inject a clock to step through
// windows without sleeping.
func NewMemory(now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	m := &Memory{now: now, seed: maphash.MakeSeed()}
	for i := range m.shards {
		m.shards[i].keys = make(map[string]*memoryLog)
		m.shards[i].sweepAt = minSweepInterval
	}
	return m
}

// shard picks the shard of key with a per-instance random seed, so a client
// cannot choose keys that all land on one mutex.
func (m *Memory) shard(key string) *memoryShard {
	return &m.shards[maphash.String(m.seed, key)%memoryShards]
}

// Allow implements [Limiter].
func (m *Memory) Allow(ctx context.Context, key string, rule Rule) (Decision, error) {
	if err := rule.validate(); err != nil {
		return Decision{}, fmt.Errorf("ratelimit: memory allow: %w", err)
	}
	// Behave as Redis does on a cancelled request, so callers see one
	// contract whichever backend is configured.
	if err := ctx.Err(); err != nil {
		return Decision{}, fmt.Errorf("ratelimit: memory allow: %w", err)
	}

	s := m.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()

	// Read the clock under the lock so that events of one key are recorded
	// in the order their timestamps were taken.
	now := m.now()
	s.calls++
	if s.calls >= s.sweepAt {
		s.sweep(now)
	}

	log := s.keys[key]
	if log == nil {
		log = &memoryLog{}
		s.keys[key] = log
	}
	// A clock that steps backwards (only possible with a wall clock or an
	// injected one) is treated as standing still for this key, which keeps
	// the log ordered and RetryAfter within the window.
	if n := len(log.events); n > 0 && now.Before(log.events[n-1]) {
		now = log.events[n-1]
	}
	log.trim(now.Add(-rule.Window))

	if len(log.events) < rule.Limit {
		log.events = append(log.events, now)
		if exp := now.Add(rule.Window); exp.After(log.expires) {
			log.expires = exp
		}
		return Decision{Allowed: true, Remaining: rule.Limit - len(log.events)}, nil
	}
	// One more event fits once all but Limit-1 of the counted events have
	// left the window. Usually that is the oldest; it is a later one when the
	// key was filled under a larger limit.
	gate := log.events[len(log.events)-rule.Limit]
	return Decision{RetryAfter: gate.Add(rule.Window).Sub(now)}, nil
}

// Reset implements [Limiter].
func (m *Memory) Reset(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("ratelimit: memory reset: %w", err)
	}
	s := m.shard(key)
	s.mu.Lock()
	delete(s.keys, key)
	s.mu.Unlock()
	return nil
}

// Len reports how many keys the limiter holds, including expired ones not
// swept yet. It is meant for metrics and tests.
func (m *Memory) Len() int {
	n := 0
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		n += len(s.keys)
		s.mu.Unlock()
	}
	return n
}

// sweep drops every key whose events have all expired and schedules the next
// sweep after as many calls as there are keys left, which amortises the
// O(keys) walk to a constant cost per call. The caller holds s.mu.
func (s *memoryShard) sweep(now time.Time) {
	for key, log := range s.keys {
		if !now.Before(log.expires) {
			delete(s.keys, key)
		}
	}
	s.calls = 0
	s.sweepAt = max(minSweepInterval, len(s.keys))
}

// trim drops the events at or before cutoff, i.e. those that have left the
// window (now-Window, now]. It shifts the rest down instead of re-slicing so
// the backing array is reused and a key's memory stays proportional to its
// limit.
func (l *memoryLog) trim(cutoff time.Time) {
	i := 0
	for i < len(l.events) && !l.events[i].After(cutoff) {
		i++
	}
	if i > 0 {
		n := copy(l.events, l.events[i:])
		clear(l.events[n:])
		l.events = l.events[:n]
	}
}
