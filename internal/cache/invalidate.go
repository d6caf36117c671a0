package cache

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"plaza/internal/pubsub"
)

// Invalidations carries "forget this entry" messages between the instances
// of a deployment over the pub/sub broker: a message "users:42" runs the
// handler registered for "users" with 42 on every instance.
type Invalidations struct {
	broker   pubsub.Broker
	topic    string
	handlers map[string]func(id int64)
	log      *slog.Logger
}

// Listen subscribes to topic and applies what arrives until ctx ends.
// handlers maps a cache name to what forgets an id in it.
func Listen(ctx context.Context, b pubsub.Broker, topic string, handlers map[string]func(id int64), log *slog.Logger) (*Invalidations, error) {
	sub, err := b.Subscribe(ctx)
	if err != nil {
		return nil, fmt.Errorf("cache: subscribe: %w", err)
	}
	if err := sub.Add(ctx, topic); err != nil {
		_ = sub.Close()
		return nil, fmt.Errorf("cache: subscribe: %w", err)
	}
	inv := &Invalidations{broker: b, topic: topic, handlers: handlers, log: log}
	go func() {
		<-ctx.Done()
		_ = sub.Close()
	}()
	go func() {
		for m := range sub.Messages() {
			inv.apply(string(m.Payload))
		}
	}()
	return inv, nil
}

func (inv *Invalidations) apply(msg string) {
	name, idText, _ := strings.Cut(msg, ":")
	id, err := strconv.ParseInt(idText, 10, 64)
	h := inv.handlers[name]
	if err != nil || h == nil {
		inv.log.Warn("cache: ignoring invalidation", "message", msg)
		return
	}
	h(id)
}

// Publish tells every instance (this one included) to forget id in the
// named cache. A lost message (broker down) leaves the entry to its TTL.
func (inv *Invalidations) Publish(ctx context.Context, name string, id int64) {
	if err := inv.broker.Publish(ctx, inv.topic, []byte(name+":"+strconv.FormatInt(id, 10))); err != nil {
		inv.log.WarnContext(ctx, "cache: invalidation not sent; other instances keep the entry until it expires", "cache", name, "err", err)
	}
}
