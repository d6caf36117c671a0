package media

import (
	"context"
	"sync"

	"github.com/tus/tusd/v2/pkg/handler"
)

// gatedLocker wraps tusd's locker to avoid a data race in tusd (v2.10):
// when a request asks for the lock of an upload, tusd cancels the holder's
// context, and a goroutine watching that context reads the holder's body
// reader, which writeChunk assigns without synchronization. If the request
// arrives while the holder (a PATCH, or a POST with a body) is still
// before writeChunk, the two race. The gate therefore passes such a
// request on to a writing holder only once the store's WriteChunk has
// started, which is after the assignment; holders that write no body get
// it at once. A holder that stops before writing unlocks soon anyway.
type gatedLocker struct {
	inner handler.Locker

	mu      sync.Mutex
	holders map[string]*gateHolder // by upload id, writing holders only
}

type gateHolder struct {
	release func()
	writing bool // WriteChunk started
	wanted  bool // someone asked for the lock
}

func newGatedLocker(inner handler.Locker) *gatedLocker {
	return &gatedLocker{inner: inner, holders: map[string]*gateHolder{}}
}

// NewLock implements handler.Locker.
func (g *gatedLocker) NewLock(id string) (handler.Lock, error) {
	l, err := g.inner.NewLock(id)
	if err != nil {
		return nil, err
	}
	return &gatedLock{inner: l, g: g, id: id}, nil
}

// writing tells the gate that the holder of id's lock is now streaming
// its body to the store.
func (g *gatedLocker) writing(id string) {
	g.mu.Lock()
	h := g.holders[id]
	fire := false
	if h != nil {
		h.writing = true
		fire = h.wanted
	}
	g.mu.Unlock()
	if fire {
		h.release()
	}
}

func (g *gatedLocker) want(h *gateHolder) {
	g.mu.Lock()
	h.wanted = true
	fire := h.writing
	g.mu.Unlock()
	if fire {
		h.release()
	}
}

type gatedLock struct {
	inner handler.Lock
	g     *gatedLocker
	id    string
	h     *gateHolder
}

func (l *gatedLock) Lock(ctx context.Context, release func()) error {
	st, _ := ctx.Value(reqStateKey{}).(*reqState)
	if st == nil || !st.writes {
		return l.inner.Lock(ctx, release)
	}
	h := &gateHolder{release: release}
	if err := l.inner.Lock(ctx, func() { l.g.want(h) }); err != nil {
		return err
	}
	l.g.mu.Lock()
	l.g.holders[l.id] = h
	l.g.mu.Unlock()
	l.h = h
	return nil
}

func (l *gatedLock) Unlock() error {
	if l.h != nil {
		l.g.mu.Lock()
		if l.g.holders[l.id] == l.h {
			delete(l.g.holders, l.id)
		}
		l.g.mu.Unlock()
	}
	return l.inner.Unlock()
}
