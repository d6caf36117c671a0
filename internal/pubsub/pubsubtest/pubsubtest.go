// Package pubsubtest is the conformance suite every pubsub.Broker must
// pass, so the in-process and Redis brokers cannot drift apart. It checks
// the behaviour the pubsub package documentation promises.
//
// Absence is checked without sleeping, through the ordering guarantee: a
// test publishes a fence message after the messages in question and reads
// up to it; whatever was going to be delivered has arrived by then.
package pubsubtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"plaza/internal/pubsub"
)

// wait bounds every wait for something that must happen, generously, for
// slow machines running the race detector.
const wait = 15 * time.Second

// Run runs the conformance suite. newBroker is called once per subtest and
// must return a broker that shares no topics with any other, e.g. a fresh
// InProc or a Redis broker with a unique prefix. The suite closes the
// brokers and subscriptions it opens.
func Run(t *testing.T, newBroker func(t *testing.T) pubsub.Broker) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, b pubsub.Broker)
	}{
		{"DeliveryByTopic", testDeliveryByTopic},
		{"Order", testOrder},
		{"AddEffectiveOnReturn", testAddEffectiveOnReturn},
		{"RemoveIsBarrier", testRemoveIsBarrier},
		{"Idempotent", testIdempotent},
		{"ManyTopics", testManyTopics},
		{"FanOut", testFanOut},
		{"SlowConsumerDrops", testSlowConsumerDrops},
		{"Payloads", testPayloads},
		{"CloseSubscription", testCloseSubscription},
		{"CloseBroker", testCloseBroker},
		{"CanceledContext", testCanceledContext},
		{"Concurrent", testConcurrent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := newBroker(t)
			t.Cleanup(func() {
				if err := b.Close(); err != nil {
					t.Errorf("Broker.Close: %v", err)
				}
			})
			tc.fn(t, b)
		})
	}
}

// subscribe opens a subscription to topics, closed when the test ends.
func subscribe(t testing.TB, b pubsub.Broker, topics ...string) pubsub.Subscription {
	t.Helper()
	s, err := b.Subscribe(context.Background())
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Subscription.Close: %v", err)
		}
	})
	if len(topics) > 0 {
		add(t, s, topics...)
	}
	return s
}

func add(t testing.TB, s pubsub.Subscription, topics ...string) {
	t.Helper()
	if err := s.Add(context.Background(), topics...); err != nil {
		t.Fatalf("Add(%s): %v", short(topics), err)
	}
}

func remove(t testing.TB, s pubsub.Subscription, topics ...string) {
	t.Helper()
	if err := s.Remove(context.Background(), topics...); err != nil {
		t.Fatalf("Remove(%s): %v", short(topics), err)
	}
}

func publish(t testing.TB, b pubsub.Broker, topic, payload string) {
	t.Helper()
	if err := b.Publish(context.Background(), topic, []byte(payload)); err != nil {
		t.Fatalf("Publish(%q, %q): %v", topic, payload, err)
	}
}

// short abbreviates a long list of topics for messages.
func short(topics []string) string {
	if len(topics) > 4 {
		return fmt.Sprintf("%q… (%d topics)", topics[:4], len(topics))
	}
	return fmt.Sprintf("%q", topics)
}

// recv returns the next message of s, failing when none comes in time or
// Messages is closed.
func recv(t testing.TB, s pubsub.Subscription) pubsub.Message {
	t.Helper()
	select {
	case m, ok := <-s.Messages():
		if !ok {
			t.Fatal("Messages closed while a message was expected")
		}
		return m
	case <-time.After(wait):
		t.Fatalf("no message within %s", wait)
	}
	panic("unreachable")
}

// recvN returns the next n messages of s.
func recvN(t testing.TB, s pubsub.Subscription, n int) []pubsub.Message {
	t.Helper()
	msgs := make([]pubsub.Message, n)
	for i := range msgs {
		msgs[i] = recv(t, s)
	}
	return msgs
}

var fenceSeq atomic.Uint64

// untilFence returns every message s receives before a fence published
// now, on a topic of its own. By the ordering guarantee these are all the
// messages s will ever get from the Publish calls that returned before.
func untilFence(t testing.TB, b pubsub.Broker, s pubsub.Subscription) []pubsub.Message {
	t.Helper()
	fence := "fence:" + strconv.FormatUint(fenceSeq.Add(1), 10)
	add(t, s, fence)
	publish(t, b, fence, "")
	var got []pubsub.Message
	for {
		m := recv(t, s)
		if m.Topic == fence {
			break
		}
		got = append(got, m)
	}
	remove(t, s, fence)
	return got
}

// expect checks that msgs are exactly want, written as "topic=payload".
func expect(t testing.TB, what string, msgs []pubsub.Message, want ...string) {
	t.Helper()
	got := format(msgs)
	if !slices.Equal(got, want) {
		t.Fatalf("%s received %s, want %s", what, short(got), short(want))
	}
}

func format(msgs []pubsub.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.Topic + "=" + string(m.Payload)
	}
	return out
}

// waitFor polls cond until it holds, failing after wait.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", wait, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// testDeliveryByTopic checks that a message reaches exactly the
// subscriptions that have its topic, with topics that are prefixes of each
// other and the empty topic.
func testDeliveryByTopic(t *testing.T, b pubsub.Broker) {
	a := subscribe(t, b, "post:1")
	ab := subscribe(t, b, "post:1", "post:10")
	c := subscribe(t, b, "post:10", "post:1:")
	empty := subscribe(t, b, "")
	none := subscribe(t, b)

	publish(t, b, "post:1", "like")
	publish(t, b, "post:10", "comment")
	publish(t, b, "post:1:", "odd")
	publish(t, b, "post", "nobody")
	publish(t, b, "", "empty topic")
	publish(t, b, "user:ünïcødé", "nobody either")

	expect(t, "post:1", untilFence(t, b, a), "post:1=like")
	expect(t, "post:1+post:10", untilFence(t, b, ab), "post:1=like", "post:10=comment")
	expect(t, "post:10+post:1:", untilFence(t, b, c), "post:10=comment", "post:1:=odd")
	expect(t, "the empty topic", untilFence(t, b, empty), "=empty topic")
	expect(t, "no topics", untilFence(t, b, none))
	for _, s := range []pubsub.Subscription{a, ab, c, empty, none} {
		if d := s.Dropped(); d != 0 {
			t.Errorf("Dropped() = %d, want 0", d)
		}
	}
}

// testOrder checks that messages whose Publish calls follow each other
// arrive in that order, across topics, and that concurrent publishers each
// keep their own order.
func testOrder(t *testing.T, b pubsub.Broker) {
	topics := []string{"a", "b", "c"}
	s := subscribe(t, b, topics...)
	var want []string
	for i := range 600 {
		topic := topics[i%len(topics)]
		payload := strconv.Itoa(i)
		publish(t, b, topic, payload)
		want = append(want, topic+"="+payload)
	}
	expect(t, "one publisher", untilFence(t, b, s), want...)

	// Four concurrent publishers, each on a topic of its own and on a
	// shared one: each publisher's messages keep their order.
	const publishers, each = 4, 200
	shared := "shared"
	add(t, s, shared)
	for p := range publishers {
		add(t, s, "own:"+strconv.Itoa(p))
	}
	var wg sync.WaitGroup
	errs := make(chan error, publishers)
	for p := range publishers {
		wg.Go(func() {
			for i := range each {
				topic := shared
				if i%2 == 0 {
					topic = "own:" + strconv.Itoa(p)
				}
				payload := strconv.Itoa(p) + ":" + strconv.Itoa(i)
				if err := b.Publish(context.Background(), topic, []byte(payload)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Publish: %v", err)
	}
	next := make([]int, publishers)
	got := untilFence(t, b, s)
	for _, m := range got {
		var p, i int
		if _, err := fmt.Sscanf(string(m.Payload), "%d:%d", &p, &i); err != nil {
			t.Fatalf("unexpected message %s=%s", m.Topic, m.Payload)
		}
		if i != next[p] {
			t.Fatalf("publisher %d: received message %d, want %d (order broken or message lost)", p, i, next[p])
		}
		next[p]++
	}
	if len(got) != publishers*each {
		t.Fatalf("received %d messages, want %d", len(got), publishers*each)
	}
}

// testAddEffectiveOnReturn checks that a message published right after Add
// returns is delivered, and one published before Add is not.
func testAddEffectiveOnReturn(t *testing.T, b pubsub.Broker) {
	s := subscribe(t, b)
	publish(t, b, "t", "before")
	add(t, s, "t")
	publish(t, b, "t", "after")
	expect(t, "first message", []pubsub.Message{recv(t, s)}, "t=after")

	// Many fresh topics, each published to the moment Add returns, catch an
	// Add that returns before the subscription is in place.
	for i := range 50 {
		topic := "fresh:" + strconv.Itoa(i)
		add(t, s, topic)
		publish(t, b, topic, "x")
		expect(t, "after Add("+topic+")", []pubsub.Message{recv(t, s)}, topic+"=x")
	}
	// Several topics in one call.
	topics := []string{"m:1", "m:2", "m:3"}
	add(t, s, topics...)
	for _, topic := range topics {
		publish(t, b, topic, "y")
	}
	expect(t, "after Add of three topics", untilFence(t, b, s), "m:1=y", "m:2=y", "m:3=y")
}

// testRemoveIsBarrier checks the documented Remove guarantee: messages
// published before Remove are in the buffer when it returns, none published
// after it returns arrives, and other topics are unaffected.
func testRemoveIsBarrier(t *testing.T, b pubsub.Broker) {
	s := subscribe(t, b, "t", "u")
	var before []string
	for i := range 10 {
		publish(t, b, "t", strconv.Itoa(i))
		before = append(before, "t="+strconv.Itoa(i))
	}
	remove(t, s, "t")
	if n := len(s.Messages()); n != len(before) {
		t.Fatalf("%d messages buffered when Remove returned, want the %d published before it", n, len(before))
	}
	for i := range 10 {
		publish(t, b, "t", "late"+strconv.Itoa(i))
	}
	publish(t, b, "u", "kept")
	expect(t, "after Remove(t)", untilFence(t, b, s), append(before, "u=kept")...)

	// Removing again, or a topic never added, is fine; and the topic can
	// come back.
	remove(t, s, "t")
	remove(t, s, "never-added")
	add(t, s, "t")
	publish(t, b, "t", "again")
	expect(t, "after adding t back", untilFence(t, b, s), "t=again")
}

// testIdempotent checks that repeated Add and Remove calls, repeated topics
// within a call and empty calls change nothing.
func testIdempotent(t *testing.T, b pubsub.Broker) {
	s := subscribe(t, b)
	add(t, s, "t")
	add(t, s, "t")
	add(t, s, "t", "t")
	publish(t, b, "t", "once")
	expect(t, "after adding t thrice", untilFence(t, b, s), "t=once")

	// No topics is a no-op, in particular not "remove everything".
	add(t, s)
	remove(t, s)
	publish(t, b, "t", "still")
	expect(t, "after empty Add and Remove", untilFence(t, b, s), "t=still")

	remove(t, s, "t", "t")
	remove(t, s, "t")
	publish(t, b, "t", "gone")
	expect(t, "after removing t", untilFence(t, b, s))
}

// testManyTopics puts 1,000 topics on one subscription, half in one call
// and half one at a time, then removes every other one.
func testManyTopics(t *testing.T, b pubsub.Broker) {
	const n = 1000
	topics := make([]string, n)
	for i := range topics {
		topics[i] = "post:" + strconv.Itoa(i)
	}
	s := subscribe(t, b, topics[:n/2]...)
	for _, topic := range topics[n/2:] {
		add(t, s, topic)
	}
	var want []string
	for _, topic := range topics {
		publish(t, b, topic, "m")
		want = append(want, topic+"=m")
	}
	expect(t, "1,000 topics", untilFence(t, b, s), want...)

	var odd []string
	want = want[:0]
	for i, topic := range topics {
		if i%2 == 0 {
			odd = append(odd, topic)
		} else {
			want = append(want, topic+"=n")
		}
	}
	remove(t, s, odd...)
	for _, topic := range topics {
		publish(t, b, topic, "n")
	}
	expect(t, "500 remaining topics", untilFence(t, b, s), want...)
	if d := s.Dropped(); d != 0 {
		t.Fatalf("Dropped() = %d, want 0", d)
	}
}

// testFanOut delivers to 1,000 subscriptions of one topic.
func testFanOut(t *testing.T, b pubsub.Broker) {
	const n = 1000
	subs := make([]pubsub.Subscription, n)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		next atomic.Int64
	)
	for range 16 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				s, err := b.Subscribe(context.Background())
				if err == nil {
					subs[i] = s
					err = s.Add(context.Background(), "hot")
				}
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, s := range subs {
			if s != nil {
				_ = s.Close()
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("opening %d subscriptions: %v", n, err)
	}
	publish(t, b, "hot", "1")
	publish(t, b, "cold", "x")
	publish(t, b, "hot", "2")
	publish(t, b, "hot", "3")
	for i, s := range subs {
		expect(t, "subscription "+strconv.Itoa(i), recvN(t, s, 3), "hot=1", "hot=2", "hot=3")
		if d := s.Dropped(); d != 0 {
			t.Fatalf("subscription %d: Dropped() = %d, want 0", i, d)
		}
	}
	// Nothing else is pending: each subscription is drained up to a fence.
	for _, i := range []int{0, n / 2, n - 1} {
		expect(t, "subscription "+strconv.Itoa(i)+" after 3 messages", untilFence(t, b, subs[i]))
	}
}

// testSlowConsumerDrops checks the drop policy: a subscription whose buffer
// is full loses new messages, counted by Dropped, keeps the ones it has in
// order, and neither blocks Publish nor delays another subscription.
func testSlowConsumerDrops(t *testing.T, b pubsub.Broker) {
	const batch, batches = 256, 5
	const total = batch * batches
	const extra = total - pubsub.BufferSize
	slow := subscribe(t, b, "t")
	fast := subscribe(t, b, "t")

	published := make(chan error, 1)
	next := make(chan struct{})
	go func() {
		defer close(published)
		for i := range total {
			if i > 0 && i%batch == 0 {
				// Let fast drain each batch, so only slow overflows.
				select {
				case <-next:
				case <-time.After(wait):
					published <- errors.New("fast did not read its batch")
					return
				}
			}
			if err := b.Publish(context.Background(), "t", []byte(strconv.Itoa(i))); err != nil {
				published <- err
				return
			}
		}
	}()
	for k := range batches {
		for j := range batch {
			m := recv(t, fast)
			if want := strconv.Itoa(k*batch + j); string(m.Payload) != want {
				t.Fatalf("fast subscription received %q, want %q", m.Payload, want)
			}
		}
		if k < batches-1 {
			next <- struct{}{}
		}
	}
	select {
	case err := <-published:
		if err != nil {
			t.Fatalf("publishing: %v", err)
		}
	case <-time.After(wait):
		t.Fatalf("Publish blocked on a full subscription")
	}

	waitFor(t, fmt.Sprintf("Dropped() = %d on the slow subscription", extra), func() bool {
		return slow.Dropped() >= extra
	})
	if d := slow.Dropped(); d != extra {
		t.Fatalf("slow subscription Dropped() = %d, want %d", d, extra)
	}
	if n := len(slow.Messages()); n != pubsub.BufferSize {
		t.Fatalf("slow subscription holds %d messages, want BufferSize = %d", n, pubsub.BufferSize)
	}
	// The oldest messages were kept, in order: new ones were dropped.
	for i, m := range recvN(t, slow, pubsub.BufferSize) {
		if string(m.Payload) != strconv.Itoa(i) {
			t.Fatalf("slow subscription message %d is %q, want %q", i, m.Payload, strconv.Itoa(i))
		}
	}
	if d := fast.Dropped(); d != 0 {
		t.Fatalf("fast subscription Dropped() = %d, want 0", d)
	}
	// Once drained, the slow subscription receives again.
	publish(t, b, "t", "recovered")
	expect(t, "slow subscription after draining", untilFence(t, b, slow), "t=recovered")
	expect(t, "fast subscription", untilFence(t, b, fast), "t=recovered")
}

// testPayloads checks that payloads arrive intact, whatever their bytes
// and size, and that neither the publisher nor another subscription shares
// their memory.
func testPayloads(t *testing.T, b pubsub.Broker) {
	s1 := subscribe(t, b, "t")
	s2 := subscribe(t, b, "t")
	ctx := context.Background()

	buf := []byte("hello")
	if err := b.Publish(ctx, "t", buf); err != nil {
		t.Fatal(err)
	}
	copy(buf, "HELLO") // the publisher reuses its buffer
	m1, m2 := recv(t, s1), recv(t, s2)
	if string(m1.Payload) != "hello" || string(m2.Payload) != "hello" {
		t.Fatalf("payloads %q and %q, want %q: aliased with the publisher's buffer", m1.Payload, m2.Payload, "hello")
	}
	// A receiver owns its copy: writing to it, or appending to it, leaves
	// the other subscription's copy alone.
	m1.Payload[0] = 'j'
	_ = append(m1.Payload, "!!!!!!!!"...)
	_ = append(m1.Payload[:2], "??"...)
	if string(m2.Payload) != "hello" {
		t.Fatalf("other subscription's payload became %q after the first one changed its own", m2.Payload)
	}

	binary := make([]byte, 4*256)
	for i := range binary {
		binary[i] = byte(i)
	}
	large := make([]byte, 1<<20)
	for i := range large {
		large[i] = byte(rand.Uint32())
	}
	for _, p := range [][]byte{{}, binary, []byte("line\r\nbreak"), large} {
		if err := b.Publish(ctx, "t", p); err != nil {
			t.Fatal(err)
		}
		for _, s := range []pubsub.Subscription{s1, s2} {
			m := recv(t, s)
			if m.Topic != "t" || !bytes.Equal(m.Payload, p) {
				t.Fatalf("payload of %d bytes came back as %d bytes (topic %q), or changed", len(p), len(m.Payload), m.Topic)
			}
		}
	}
}

// testCloseSubscription checks Close: idempotent, closes Messages after
// the buffered messages, refuses further changes, leaves others alone.
func testCloseSubscription(t *testing.T, b pubsub.Broker) {
	s, err := b.Subscribe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if ch := s.Messages(); ch != s.Messages() {
		t.Fatal("Messages returns a different channel on each call")
	}
	add(t, s, "t")
	other := subscribe(t, b, "t")
	for i := range 3 {
		publish(t, b, "t", strconv.Itoa(i))
	}
	waitFor(t, "3 buffered messages", func() bool { return len(s.Messages()) == 3 })

	for range 2 {
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	expect(t, "closed subscription", recvN(t, s, 3), "t=0", "t=1", "t=2")
	select {
	case m, ok := <-s.Messages():
		if ok {
			t.Fatalf("message %s=%s after the buffered ones, want Messages closed", m.Topic, m.Payload)
		}
	case <-time.After(wait):
		t.Fatal("Messages not closed after Close")
	}
	if err := s.Add(context.Background(), "u"); !errors.Is(err, pubsub.ErrClosed) {
		t.Fatalf("Add after Close: %v, want ErrClosed", err)
	}
	if err := s.Remove(context.Background(), "t"); !errors.Is(err, pubsub.ErrClosed) {
		t.Fatalf("Remove after Close: %v, want ErrClosed", err)
	}
	_ = s.Dropped()

	publish(t, b, "t", "3")
	expect(t, "other subscription", untilFence(t, b, other), "t=0", "t=1", "t=2", "t=3")
}

// testCloseBroker checks that closing the broker closes its subscriptions
// and refuses further use.
func testCloseBroker(t *testing.T, b pubsub.Broker) {
	s1 := subscribe(t, b, "t")
	s2 := subscribe(t, b)
	publish(t, b, "t", "x")
	expect(t, "before Close", []pubsub.Message{recv(t, s1)}, "t=x")

	for range 2 {
		if err := b.Close(); err != nil {
			t.Fatalf("Broker.Close: %v", err)
		}
	}
	for i, s := range []pubsub.Subscription{s1, s2} {
		select {
		case m, ok := <-s.Messages():
			if ok {
				t.Fatalf("subscription %d: message %s=%s after Broker.Close", i, m.Topic, m.Payload)
			}
		case <-time.After(wait):
			t.Fatalf("subscription %d: Messages not closed by Broker.Close", i)
		}
		if err := s.Add(context.Background(), "u"); !errors.Is(err, pubsub.ErrClosed) {
			t.Fatalf("subscription %d: Add after Broker.Close: %v, want ErrClosed", i, err)
		}
	}
	if err := b.Publish(context.Background(), "t", nil); !errors.Is(err, pubsub.ErrClosed) {
		t.Fatalf("Publish after Close: %v, want ErrClosed", err)
	}
	if s, err := b.Subscribe(context.Background()); !errors.Is(err, pubsub.ErrClosed) {
		if err == nil {
			_ = s.Close()
		}
		t.Fatalf("Subscribe after Close: %v, want ErrClosed", err)
	}
}

// testCanceledContext checks that a canceled context fails each call
// without effect.
func testCanceledContext(t *testing.T, b pubsub.Broker) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	s := subscribe(t, b, "kept")

	if err := b.Publish(canceled, "kept", []byte("x")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Publish with a canceled context: %v, want context.Canceled", err)
	}
	if sub, err := b.Subscribe(canceled); !errors.Is(err, context.Canceled) {
		if err == nil {
			_ = sub.Close()
		}
		t.Fatalf("Subscribe with a canceled context: %v, want context.Canceled", err)
	}
	if err := s.Add(canceled, "t"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Add with a canceled context: %v, want context.Canceled", err)
	}
	if err := s.Remove(canceled, "kept"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Remove with a canceled context: %v, want context.Canceled", err)
	}
	publish(t, b, "t", "not added")
	publish(t, b, "kept", "not removed")
	expect(t, "after calls with a canceled context", untilFence(t, b, s), "kept=not removed")
}

// testConcurrent runs Publish, Add, Remove, Subscribe and Close against
// each other (for the race detector and for deadlocks), then checks that
// every subscription still works.
func testConcurrent(t *testing.T, b pubsub.Broker) {
	topics := []string{"t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7"}
	isTopic := func(s string) bool { return slices.Contains(topics, s) }
	const nsubs = 4
	subs := make([]pubsub.Subscription, nsubs)
	for i := range subs {
		subs[i] = subscribe(t, b, topics[i])
	}
	doomed := subscribe(t, b, topics...) // closed while in use

	var (
		mu   sync.Mutex
		errs []error
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	ctx := context.Background()
	stop := make(chan struct{})
	var readers, writers sync.WaitGroup
	for _, s := range append(slices.Clone(subs), doomed) {
		readers.Go(func() {
			for {
				select {
				case m, ok := <-s.Messages():
					if !ok {
						return
					}
					if !isTopic(m.Topic) {
						fail(fmt.Errorf("message on unexpected topic %q", m.Topic))
					}
				case <-stop:
					return
				}
			}
		})
	}
	// 800 messages in all: fewer than BufferSize, so that none is dropped
	// even if the readers stop early, and the checks below are exact.
	for p := range 4 {
		writers.Go(func() {
			for i := range 200 {
				topic := topics[(p+i)%len(topics)]
				if err := b.Publish(ctx, topic, []byte(strconv.Itoa(i))); err != nil {
					fail(fmt.Errorf("publish: %w", err))
					return
				}
			}
		})
	}
	for i, s := range subs {
		writers.Go(func() {
			r := rand.New(rand.NewPCG(uint64(i), 1))
			for range 60 {
				topic := topics[r.IntN(len(topics))]
				var err error
				if r.IntN(2) == 0 {
					err = s.Add(ctx, topic, topics[r.IntN(len(topics))])
				} else {
					err = s.Remove(ctx, topic)
				}
				if err != nil {
					fail(fmt.Errorf("add or remove: %w", err))
					return
				}
			}
		})
	}
	// Two goroutines change one subscription at once.
	writers.Go(func() {
		for i := range 60 {
			if err := subs[0].Add(ctx, topics[i%len(topics)]); err != nil {
				fail(fmt.Errorf("add: %w", err))
				return
			}
		}
	})
	writers.Go(func() {
		for range 20 {
			s, err := b.Subscribe(ctx)
			if err != nil {
				fail(fmt.Errorf("subscribe: %w", err))
				return
			}
			if err := s.Add(ctx, topics...); err != nil {
				fail(fmt.Errorf("add: %w", err))
			}
			if err := s.Close(); err != nil {
				fail(fmt.Errorf("close: %w", err))
			}
		}
	})
	writers.Go(func() {
		time.Sleep(time.Millisecond)
		if err := doomed.Close(); err != nil {
			fail(fmt.Errorf("close: %w", err))
		}
	})
	writers.Wait()
	close(stop)
	readers.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}

	// Quiet again: every subscription gets every topic it now has.
	for _, s := range subs {
		add(t, s, topics...)
	}
	for _, topic := range topics {
		publish(t, b, topic, "final")
	}
	for i, s := range subs {
		var finals []string
		for _, m := range untilFence(t, b, s) {
			if string(m.Payload) == "final" {
				finals = append(finals, m.Topic)
			} else if !isTopic(m.Topic) {
				t.Fatalf("subscription %d: message on unexpected topic %q", i, m.Topic)
			}
		}
		if !slices.Equal(finals, topics) {
			t.Fatalf("subscription %d received the final messages on %s, want %s", i, strings.Join(finals, ","), strings.Join(topics, ","))
		}
		if d := s.Dropped(); d != 0 {
			t.Fatalf("subscription %d: Dropped() = %d, want 0", i, d)
		}
	}
}
