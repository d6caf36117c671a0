// Package pubsub carries live events between server instances, so that a
// like handled by instance A reaches a WebSocket connected to instance B.
//
// Two implementations share one behaviour, checked by the conformance suite
// in package pubsubtest: [InProc] delivers within the process, for the
// single-node default, and [Redis] uses Redis pub/sub (PUBLISH and
// SUBSCRIBE), so that every instance sharing that Redis sees every event.
//
// # Delivery
//
// Delivery is at most once and nothing is stored: a message reaches the
// subscriptions that have its topic when it is published, and no other.
// Subscriptions that add the topic later never see it, and neither does a
// Redis subscription while its connection is being re-established. Live
// events are a hint to refresh; whatever must not be lost is read from the
// database.
//
// # Order
//
// If Publish(a) returns before Publish(b) is called (one goroutine
// publishing both, say), every subscription that receives both receives a
// first, whatever their topics. In particular one publisher's messages on
// one topic arrive in the order they were published. Concurrent Publish
// calls have no defined order. With Redis this holds on one Redis server (a
// primary with its replicas), not across the shards of a Redis Cluster.
//
// # Add and Remove
//
// Both take effect before they return:
//
//   - A message published after Add returns is delivered (if the buffer has
//     room, see below). One whose Publish returned before Add was called is
//     not.
//   - Remove is a barrier. A message on a removed topic whose Publish
//     returned before Remove was called is in the subscription's buffer when
//     Remove returns (unless it was dropped), and one published after Remove
//     returns is never delivered. Messages already buffered stay buffered:
//     Messages is a plain channel, so a consumer that must ignore them checks
//     Message.Topic against its own set.
//   - A message published while Add or Remove runs may or may not be
//     delivered.
//
// Add and Remove are idempotent, take any number of topics (none is a
// no-op) and are serialized per subscription. When they fail (a canceled
// context, Redis unreachable) the change may or may not have been made;
// repeating the call is safe.
//
// # Slow consumers
//
// Each subscription buffers up to [BufferSize] messages. When its buffer is
// full a new message is dropped for that subscription only and counted by
// Subscription.Dropped: Publish never waits for a consumer, and a slow
// subscription never delays another. The buffered messages keep their
// order, so a consumer that falls behind sees a gap, never a reordering; it
// can compare Dropped with an earlier value to find out. A Redis
// subscription keeps reading its connection whatever its consumer does, so
// Redis never accumulates an output buffer for it (and never disconnects it
// under client-output-buffer-limit pubsub).
//
// # Payloads
//
// Publish copies payload before it returns, so the caller may reuse its
// buffer, and every subscription receives its own copy, which the receiver
// owns: it may keep or modify it without affecting anyone else.
//
// # Close
//
// Closing a subscription unsubscribes it and closes its Messages channel;
// messages buffered before that can still be read before the channel
// reports closed. Closing a broker closes every subscription it opened;
// afterwards Publish and Subscribe return [ErrClosed]. Both Close methods
// are idempotent and always return nil; Add and Remove on a closed
// subscription return [ErrClosed].
package pubsub

import (
	"context"
	"errors"
)

// BufferSize is how many messages a subscription holds for its consumer
// before it drops new ones.
const BufferSize = 1024

// ErrClosed is returned (possibly wrapped) by operations on a closed Broker
// or Subscription.
var ErrClosed = errors.New("pubsub: closed")

// Message is one published event as a subscription receives it.
type Message struct {
	Topic string
	// Payload belongs to the receiver (see the package documentation).
	Payload []byte
}

// Broker publishes messages and opens subscriptions. Implementations are
// safe for concurrent use.
type Broker interface {
	// Publish delivers payload to every current subscription of topic, on
	// every instance. It is fire-and-forget: nothing is stored, and an
	// error means that this message was not sent (Redis is down, say).
	Publish(ctx context.Context, topic string, payload []byte) error
	// Subscribe opens a subscription with no topics; topics are added and
	// removed as needed. One subscription serves one consumer, such as the
	// WebSocket hub of a server instance.
	Subscribe(ctx context.Context) (Subscription, error)
	// Close closes every subscription the broker opened. It does not close
	// the Redis client given to NewRedis, which belongs to the caller.
	Close() error
}

// Subscription is a set of topics whose messages arrive on one channel.
// Implementations are safe for concurrent use.
type Subscription interface {
	// Add subscribes to topics. It is idempotent.
	Add(ctx context.Context, topics ...string) error
	// Remove unsubscribes from topics. It is idempotent.
	Remove(ctx context.Context, topics ...string) error
	// Messages returns the channel messages arrive on, the same channel on
	// every call. Close closes it.
	Messages() <-chan Message
	// Dropped reports how many messages were discarded because the buffer
	// was full.
	Dropped() uint64
	// Close unsubscribes from everything and closes Messages.
	Close() error
}

// Compile-time checks that both implementations satisfy the interfaces.
var (
	_ Broker       = (*InProc)(nil)
	_ Broker       = (*Redis)(nil)
	_ Subscription = (*inprocSub)(nil)
	_ Subscription = (*redisSub)(nil)
)

// dedupe returns topics without repetitions, in their first order. A
// single topic, the common case, is returned as it is.
func dedupe(topics []string) []string {
	if len(topics) < 2 {
		return topics
	}
	seen := make(map[string]struct{}, len(topics))
	out := make([]string, 0, len(topics))
	for _, t := range topics {
		if _, ok := seen[t]; !ok {
			seen[t] = struct{}{}
			out = append(out, t)
		}
	}
	return out
}
