package pubsub

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
)

// InProc is a [Broker] that delivers within the process, for a single
// server instance. It is safe for concurrent use; the zero value is not
// usable, call [NewInProc].
//
// Publish sends to every subscription of the topic under a read lock, with
// a send that never waits, so publishers run in parallel with each other
// and Add, Remove and Close, which take the write lock, wait only for
// Publish calls already running. That lock is also what makes Add and
// Remove take effect before they return.
type InProc struct {
	mu     sync.RWMutex
	topics map[string]map[*inprocSub]struct{}
	subs   map[*inprocSub]struct{}
	closed bool
}

// NewInProc returns an in-process broker.
func NewInProc() *InProc {
	return &InProc{
		topics: make(map[string]map[*inprocSub]struct{}),
		subs:   make(map[*inprocSub]struct{}),
	}
}

// Publish implements [Broker].
func (b *InProc) Publish(ctx context.Context, topic string, payload []byte) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("pubsub: inproc publish: %w", err)
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return fmt.Errorf("pubsub: inproc publish: %w", ErrClosed)
	}
	subs := b.topics[topic]
	if len(subs) == 0 {
		return nil
	}
	// One allocation holds every subscription's copy (bytes.Repeat neither
	// zeroes it first nor copies byte by byte). Each copy is capped at its
	// length, so a receiver appending to its payload reallocates rather than
	// writing into the next one. The price: a receiver that keeps its payload
	// keeps the whole block, which matters only when one process has many
	// subscriptions to one topic (it has one per WebSocket hub).
	n := len(payload)
	block := bytes.Repeat(payload, len(subs))
	i := 0
	for s := range subs {
		p := block[i : i+n : i+n]
		i += n
		select {
		case s.msgs <- Message{Topic: topic, Payload: p}:
		default:
			s.dropped.Add(1)
		}
	}
	return nil
}

// Subscribe implements [Broker].
func (b *InProc) Subscribe(ctx context.Context) (Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("pubsub: inproc subscribe: %w", err)
	}
	s := &inprocSub{
		b:      b,
		msgs:   make(chan Message, BufferSize),
		topics: make(map[string]struct{}),
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, fmt.Errorf("pubsub: inproc subscribe: %w", ErrClosed)
	}
	b.subs[s] = struct{}{}
	return s, nil
}

// Close implements [Broker]: it closes every open subscription.
func (b *InProc) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for s := range b.subs {
		b.closeLocked(s)
	}
	return nil
}

// closeLocked detaches s from every topic and closes its channel. b.mu
// must be held for writing, so that no Publish is sending to s.
func (b *InProc) closeLocked(s *inprocSub) {
	if s.closed {
		return
	}
	s.closed = true
	for t := range s.topics {
		b.detachLocked(s, t)
	}
	delete(b.subs, s)
	close(s.msgs)
}

// detachLocked removes s from topic t. b.mu must be held for writing.
func (b *InProc) detachLocked(s *inprocSub, t string) {
	delete(s.topics, t)
	subs := b.topics[t]
	delete(subs, s)
	if len(subs) == 0 {
		delete(b.topics, t)
	}
}

// inprocSub is a subscription of an InProc broker. Its fields other than
// msgs and dropped are guarded by b.mu.
type inprocSub struct {
	b       *InProc
	msgs    chan Message
	dropped atomic.Uint64
	topics  map[string]struct{}
	closed  bool
}

func (s *inprocSub) Add(ctx context.Context, topics ...string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("pubsub: inproc add: %w", err)
	}
	b := s.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if s.closed {
		return fmt.Errorf("pubsub: inproc add: %w", ErrClosed)
	}
	for _, t := range topics {
		subs := b.topics[t]
		if subs == nil {
			subs = make(map[*inprocSub]struct{})
			b.topics[t] = subs
		}
		subs[s] = struct{}{}
		s.topics[t] = struct{}{}
	}
	return nil
}

func (s *inprocSub) Remove(ctx context.Context, topics ...string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("pubsub: inproc remove: %w", err)
	}
	b := s.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if s.closed {
		return fmt.Errorf("pubsub: inproc remove: %w", ErrClosed)
	}
	for _, t := range topics {
		if _, ok := s.topics[t]; ok {
			b.detachLocked(s, t)
		}
	}
	return nil
}

func (s *inprocSub) Messages() <-chan Message { return s.msgs }

func (s *inprocSub) Dropped() uint64 { return s.dropped.Load() }

func (s *inprocSub) Close() error {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	s.b.closeLocked(s)
	return nil
}
