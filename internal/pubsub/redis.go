package pubsub

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// defaultHealthInterval is how long a Redis subscription's connection may
// stay silent before it is pinged; a ping left unanswered for as long again
// marks the connection dead.
const defaultHealthInterval = 5 * time.Second

// Redis is a [Broker] on Redis pub/sub, so that every server instance
// sharing the Redis sees every message. Channel names are prefix+topic, so
// several deployments or tests can share one Redis. It is safe for
// concurrent use.
//
// Each subscription owns one go-redis PubSub, that is one connection, and
// one goroutine that reads it and feeds the subscription's buffer without
// ever waiting for the consumer. Add and Remove send SUBSCRIBE or
// UNSUBSCRIBE and wait for Redis to confirm every channel, which is what
// makes them take effect before they return: Redis answers a connection's
// commands in order, and interleaves published messages with those answers
// in the order it handled the PUBLISH commands.
//
// # Lost connections
//
// When the connection breaks (Redis restarts, the connection is killed),
// go-redis dials again and re-subscribes every channel on its own; messages
// published in between are lost, as pub/sub promises nothing more. An Add or
// Remove waiting for its confirmation when that happens sends its command
// again on the new connection. A connection that goes silent without
// breaking (a half-open TCP connection behind a dead NAT or a failed-over
// host) is found by a health check: after defaultHealthInterval without
// traffic the subscription pings Redis, and when the ping is not answered
// within another interval it makes go-redis replace the connection.
type Redis struct {
	client redis.UniversalClient
	prefix string
	// health is the health check interval; tests shorten it.
	health time.Duration

	// closed is written under mu, so that Subscribe and Close agree on
	// which subscriptions Close must close, and read without it by Publish.
	closed atomic.Bool
	mu     sync.Mutex
	subs   map[*redisSub]struct{}
}

// NewRedis returns a broker that publishes to and subscribes on the channels
// prefix+topic of client (for example prefix "plaza:events:"). The client
// stays the caller's: Close does not close it.
func NewRedis(client redis.UniversalClient, prefix string) *Redis {
	return &Redis{
		client: client,
		prefix: prefix,
		health: defaultHealthInterval,
		subs:   make(map[*redisSub]struct{}),
	}
}

// Publish implements [Broker] with one PUBLISH. The error is go-redis's,
// wrapped; the client's timeouts and retries bound how long it takes.
func (r *Redis) Publish(ctx context.Context, topic string, payload []byte) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("pubsub: redis publish: %w", err)
	}
	if r.closed.Load() {
		return fmt.Errorf("pubsub: redis publish: %w", ErrClosed)
	}
	if err := r.client.Publish(ctx, r.prefix+topic, payload).Err(); err != nil {
		return fmt.Errorf("pubsub: redis publish: %w", err)
	}
	return nil
}

// Subscribe implements [Broker]. It connects at once, so an unreachable
// Redis is an error here rather than a silent subscription.
func (r *Redis) Subscribe(ctx context.Context) (Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("pubsub: redis subscribe: %w", err)
	}
	if r.closed.Load() {
		return nil, fmt.Errorf("pubsub: redis subscribe: %w", ErrClosed)
	}
	ps := r.client.Subscribe(ctx)
	// PING makes go-redis dial; its answer reaches the read loop, which
	// ignores it.
	if err := ps.Ping(ctx); err != nil {
		_ = ps.Close()
		return nil, fmt.Errorf("pubsub: redis subscribe: %w", err)
	}
	s := &redisSub{
		r:          r,
		ps:         ps,
		subscribed: make(map[string]struct{}),
		msgs:       make(chan Message, BufferSize),
		lost:       make(chan struct{}),
		closing:    make(chan struct{}),
		loopDone:   make(chan struct{}),
		healthDone: make(chan struct{}),
	}
	r.mu.Lock()
	if r.closed.Load() {
		r.mu.Unlock()
		_ = ps.Close()
		return nil, fmt.Errorf("pubsub: redis subscribe: %w", ErrClosed)
	}
	r.subs[s] = struct{}{}
	r.mu.Unlock()
	go s.loop()
	go s.healthCheck(r.health)
	return s, nil
}

// Close implements [Broker]: it closes every open subscription.
func (r *Redis) Close() error {
	r.mu.Lock()
	r.closed.Store(true)
	subs := make([]*redisSub, 0, len(r.subs))
	for s := range r.subs {
		subs = append(subs, s)
	}
	r.mu.Unlock()
	for _, s := range subs {
		_ = s.Close()
	}
	return nil
}

// redisSub is a subscription of a Redis broker.
type redisSub struct {
	r       *Redis
	ps      *redis.PubSub
	msgs    chan Message
	dropped atomic.Uint64
	// active is set by the read loop whenever something arrives, and
	// cleared by the health check.
	active atomic.Bool

	// opMu serializes Add and Remove, so at most one of them waits for
	// confirmations at a time. It guards subscribed, the channels Redis
	// has confirmed.
	opMu       sync.Mutex
	subscribed map[string]struct{}

	// mu guards the fields below, shared by Add or Remove and the loop.
	mu sync.Mutex
	// pending are the channels whose confirmation of kind pendingKind
	// ("subscribe" or "unsubscribe") the running Add or Remove waits for;
	// pendingDone is closed when the last one arrives, or when Redis
	// answers with an error, which is then in pendingErr.
	pending     map[string]struct{}
	pendingKind string
	pendingDone chan struct{}
	pendingErr  error
	// lost is closed, and replaced, whenever the loop sees the connection
	// fail.
	lost chan struct{}

	closeOnce  sync.Once
	closing    chan struct{}
	loopDone   chan struct{}
	healthDone chan struct{}
}

func (s *redisSub) Add(ctx context.Context, topics ...string) error {
	if err := s.change(ctx, "subscribe", topics); err != nil {
		return fmt.Errorf("pubsub: redis add: %w", err)
	}
	return nil
}

func (s *redisSub) Remove(ctx context.Context, topics ...string) error {
	if err := s.change(ctx, "unsubscribe", topics); err != nil {
		return fmt.Errorf("pubsub: redis remove: %w", err)
	}
	return nil
}

// change sends SUBSCRIBE or UNSUBSCRIBE (kind) for topics and waits until
// Redis has confirmed every channel, sending the command again for the
// unconfirmed ones after a lost connection.
func (s *redisSub) change(ctx context.Context, kind string, topics []string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.opMu.Lock()
	defer s.opMu.Unlock()
	if s.isClosing() {
		return ErrClosed
	}
	if len(topics) == 0 {
		// UNSUBSCRIBE without channels would drop them all.
		return nil
	}
	channels := make([]string, 0, len(topics))
	for _, t := range dedupe(topics) {
		channels = append(channels, s.r.prefix+t)
	}

	done := make(chan struct{})
	s.mu.Lock()
	s.pending = make(map[string]struct{}, len(channels))
	for _, c := range channels {
		s.pending[c] = struct{}{}
	}
	s.pendingKind = kind
	s.pendingDone = done
	lost := s.lost
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.pending, s.pendingKind, s.pendingDone, s.pendingErr = nil, "", nil, nil
		s.mu.Unlock()
	}()

	if err := s.send(ctx, kind, channels); err != nil {
		return err
	}
	for {
		select {
		case <-done:
			s.mu.Lock()
			err := s.pendingErr
			s.mu.Unlock()
			if err != nil {
				s.forgetRefused(ctx, kind, channels)
				return err
			}
			for _, c := range channels {
				if kind == "subscribe" {
					s.subscribed[c] = struct{}{}
				} else {
					delete(s.subscribed, c)
				}
			}
			return nil
		case <-lost:
			s.mu.Lock()
			rest := make([]string, 0, len(s.pending))
			for c := range s.pending {
				rest = append(rest, c)
			}
			lost = s.lost
			s.mu.Unlock()
			if len(rest) == 0 {
				continue // done is closed
			}
			if err := s.send(ctx, kind, rest); err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		case <-s.closing:
			return ErrClosed
		}
	}
}

// send writes one SUBSCRIBE or UNSUBSCRIBE. A write that fails on a broken
// connection (Redis restarted while the subscription was idle) makes
// go-redis reconnect, so it is tried once more before giving up.
func (s *redisSub) send(ctx context.Context, kind string, channels []string) error {
	var err error
	for range 2 {
		if kind == "subscribe" {
			err = s.ps.Subscribe(ctx, channels...)
		} else {
			err = s.ps.Unsubscribe(ctx, channels...)
		}
		if err == nil || ctx.Err() != nil {
			break
		}
		if s.isClosing() {
			return ErrClosed
		}
	}
	return err
}

// forgetRefused takes the channels of a refused SUBSCRIBE that were not
// subscribed before out of go-redis's set, which it re-subscribes with one
// command after a reconnection: Redis would refuse that command whole, and
// the subscription would lose every channel. s.opMu must be held.
func (s *redisSub) forgetRefused(ctx context.Context, kind string, channels []string) {
	if kind != "subscribe" {
		return
	}
	var fresh []string
	for _, c := range channels {
		if _, ok := s.subscribed[c]; !ok {
			fresh = append(fresh, c)
		}
	}
	if len(fresh) > 0 {
		// Best effort: the UNSUBSCRIBE itself changes nothing on the
		// server, and its confirmations are not waited for.
		_ = s.ps.Unsubscribe(context.WithoutCancel(ctx), fresh...)
	}
}

// refused hands an error reply from Redis (a NOPERM from an ACL, say) to
// the running Add or Remove: the connection itself is fine, and sending
// the command again would only repeat the answer.
func (s *redisSub) refused(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pendingDone == nil || s.pendingErr != nil {
		return
	}
	s.pendingErr = err
	close(s.pendingDone)
}

// confirm records Redis's confirmation of one channel.
func (s *redisSub) confirm(kind, channel string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if kind != s.pendingKind {
		return
	}
	if _, ok := s.pending[channel]; !ok || s.pendingErr != nil {
		return
	}
	delete(s.pending, channel)
	if len(s.pending) == 0 {
		close(s.pendingDone)
	}
}

// connectionLost wakes an Add or Remove waiting for confirmations that the
// lost connection will never deliver.
func (s *redisSub) connectionLost() {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.lost)
	s.lost = make(chan struct{})
}

// loop reads the connection until Close, delivering messages and
// confirmations. It is the only sender on s.msgs and closes it on the way
// out.
func (s *redisSub) loop() {
	defer close(s.loopDone)
	defer close(s.msgs)
	ctx := context.Background()
	prefix := s.r.prefix
	failures := 0
	for {
		v, err := s.ps.Receive(ctx)
		if err != nil {
			if s.isClosing() {
				return
			}
			if rerr, ok := errors.AsType[redis.Error](err); ok {
				s.refused(rerr)
				continue
			}
			// go-redis has dropped the connection and dials again on the
			// next call; back off while Redis stays unreachable.
			s.connectionLost()
			failures++
			backoff := min(time.Duration(failures)*50*time.Millisecond, time.Second)
			select {
			case <-time.After(backoff):
			case <-s.closing:
				return
			}
			continue
		}
		failures = 0
		s.active.Store(true)
		switch m := v.(type) {
		case *redis.Message:
			msg := Message{Topic: strings.TrimPrefix(m.Channel, prefix), Payload: []byte(m.Payload)}
			select {
			case s.msgs <- msg:
			default:
				s.dropped.Add(1)
			}
		case *redis.Subscription:
			s.confirm(m.Kind, m.Channel)
		}
	}
}

// healthCheck pings a connection that has been silent for a whole
// interval, and replaces it when the ping has not been answered an
// interval later.
func (s *redisSub) healthCheck(interval time.Duration) {
	defer close(s.healthDone)
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	pinged := false
	for {
		select {
		case <-ticker.C:
		case <-s.closing:
			return
		}
		if s.active.Swap(false) {
			pinged = false
			continue
		}
		if pinged {
			// A ping written with an expired deadline fails as a timeout,
			// which go-redis treats as a broken connection: it closes it
			// (ending the loop's read) and dials again, re-subscribing.
			expired, cancel := context.WithDeadline(context.Background(), time.Now())
			_ = s.ps.Ping(expired)
			cancel()
			pinged = false
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), interval)
		err := s.ps.Ping(ctx)
		cancel()
		pinged = err == nil
	}
}

func (s *redisSub) isClosing() bool {
	select {
	case <-s.closing:
		return true
	default:
		return false
	}
}

func (s *redisSub) Messages() <-chan Message { return s.msgs }

func (s *redisSub) Dropped() uint64 { return s.dropped.Load() }

// Close closes the connection and waits for the read loop to close
// Messages.
func (s *redisSub) Close() error {
	s.closeOnce.Do(func() {
		close(s.closing)
		// An error means the connection is gone already.
		_ = s.ps.Close()
		<-s.loopDone
		<-s.healthDone
		s.r.mu.Lock()
		delete(s.r.subs, s)
		s.r.mu.Unlock()
	})
	return nil
}
