package live

import (
	"context"
	"sync"
)

// Presence tracks which users have a socket open anywhere in the cluster.
// A hub calls Connected when a user's first socket on its instance opens and
// Disconnected when the user's last socket there closes, one call at a time
// per hub, so the calls of one instance for one user alternate.
type Presence interface {
	// Connected records that userID has a socket on this instance; it
	// reports whether the user was offline everywhere before.
	Connected(ctx context.Context, userID int64) (becameOnline bool, err error)
	// Disconnected records that userID's last socket on this instance
	// closed; it reports whether the user is now offline everywhere.
	Disconnected(ctx context.Context, userID int64) (becameOffline bool, err error)
	// Online reports for each of userIDs whether it is online anywhere.
	Online(ctx context.Context, userIDs []int64) (map[int64]bool, error)
	Close() error
}

// PresenceWatcher is implemented by a Presence that learns of transitions
// nobody called it about, such as RedisPresence noticing that a crashed
// instance's users are gone. A Hub registers itself through WatchPresence
// and passes those transitions to its PresenceHandler, so one Presence
// serves one Hub.
type PresenceWatcher interface {
	WatchPresence(fn PresenceHandler)
}

// LocalPresence is the presence of a single process. Several hubs of one
// process may share it: a user is online while any of them has a socket.
type LocalPresence struct {
	mu    sync.Mutex
	conns map[int64]int // hubs on which the user has a socket
}

// NewLocalPresence returns an in-process Presence.
func NewLocalPresence() Presence {
	return &LocalPresence{conns: make(map[int64]int)}
}

// Connected implements Presence.
func (p *LocalPresence) Connected(_ context.Context, userID int64) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.conns[userID]++
	return p.conns[userID] == 1, nil
}

// Disconnected implements Presence.
func (p *LocalPresence) Disconnected(_ context.Context, userID int64) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n, ok := p.conns[userID]
	if !ok {
		return false, nil
	}
	if n <= 1 {
		delete(p.conns, userID)
		return true, nil
	}
	p.conns[userID] = n - 1
	return false, nil
}

// Online implements Presence.
func (p *LocalPresence) Online(_ context.Context, userIDs []int64) (map[int64]bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[int64]bool, len(userIDs))
	for _, id := range userIDs {
		out[id] = p.conns[id] > 0
	}
	return out, nil
}

// Close implements Presence; it forgets everyone.
func (p *LocalPresence) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	clear(p.conns)
	return nil
}
