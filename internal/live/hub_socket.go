package live

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// socket is one client connection. Its reader is the goroutine of Accept;
// its writer is a goroutine started when a frame is queued and ended when
// the queue is empty again, so an idle socket costs one goroutine, not two
// (there is never more than one writer per socket, and frames are written in
// queue order). Pings and the token expiry are timers, which cost no
// goroutine while they wait; a ping waits for its pong on the timer's
// goroutine. Frames to send are kept as encoded JSON in a queue that grows
// on demand up to SendQueue entries; a frame published to many sockets is
// encoded once and shared by all of their queues.
type socket struct {
	hub    *Hub
	conn   *websocket.Conn
	userID int64
	ctx    context.Context // canceled to drop the connection without a handshake
	cancel context.CancelFunc
	wg     sync.WaitGroup // writer and pinger

	pingTimer, expiryTimer *time.Timer

	mu          sync.Mutex
	queue       [][]byte
	spare       [][]byte // the previous batch's backing array, for reuse
	writing     bool     // a writer runs (or the socket is done with writing)
	closeCode   websocket.StatusCode
	closeReason string
	dead        bool // dropped: no more frames, no handshake, no new goroutines

	unlisted bool    // removed from hub.users by MaxConnsPerUser (guarded by hub.mu)
	posts    []int64 // subscribed posts, sorted; owned by the reader goroutine
}

var (
	pongFrame         = []byte(`{"type":"pong","data":{}}`)
	tokenExpiredFrame = []byte(`{"type":"error","data":{"code":"token_expired","detail":"The access token expired; reconnect with a fresh one."}}`)
)

// start arms the ping and expiry timers.
func (s *socket) start(expiresAt time.Time) {
	s.mu.Lock() // ping reads pingTimer under mu
	s.pingTimer = time.AfterFunc(s.hub.cfg.PingInterval, s.ping)
	s.mu.Unlock()
	if !expiresAt.IsZero() {
		s.expiryTimer = time.AfterFunc(time.Until(expiresAt), func() {
			s.closeWith(CloseTokenExpired, "token expired", tokenExpiredFrame, &s.hub.expired)
		})
	}
}

// stop ends the socket: no frames, timers or goroutines after it, and it
// waits for the running ones.
func (s *socket) stop() {
	s.kill()
	s.pingTimer.Stop()
	if s.expiryTimer != nil {
		s.expiryTimer.Stop()
	}
	s.wg.Wait()
}

// enqueue adds an encoded frame to the socket's queue. A full queue drops
// the socket: it is closed at once, without a close handshake, since a
// client that does not read would not read the close frame either.
func (s *socket) enqueue(p []byte) {
	s.mu.Lock()
	if s.dead || s.closeCode != 0 {
		s.mu.Unlock()
		return
	}
	if len(s.queue) >= s.hub.cfg.SendQueue {
		s.dead = true
		s.mu.Unlock()
		s.hub.dropped.Add(1)
		s.hub.log.Info("live: dropping a slow client", "user_id", s.userID, "queued", s.hub.cfg.SendQueue)
		s.cancel()
		return
	}
	s.queue = append(s.queue, p)
	s.startWriterLocked()
	s.mu.Unlock()
}

func (s *socket) startWriterLocked() {
	if s.writing || s.dead {
		return
	}
	s.writing = true
	s.wg.Add(1)
	go s.writeLoop()
}

// closeWith asks the writer to send final (if any) after the frames already
// queued and then close the socket with code. Later frames are discarded.
// When the request is taken (the socket was not closing yet), counter, if
// any, is incremented.
func (s *socket) closeWith(code websocket.StatusCode, reason string, final []byte, counter *atomic.Uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead || s.closeCode != 0 {
		return
	}
	if counter != nil {
		counter.Add(1)
	}
	if final != nil {
		s.queue = append(s.queue, final)
	}
	s.closeCode, s.closeReason = code, reason
	s.startWriterLocked()
}

// kill drops the connection without a close handshake: canceling s.ctx
// closes the connection under the reader's pending Read and any write.
func (s *socket) kill() {
	s.mu.Lock()
	s.dead = true
	s.mu.Unlock()
	s.cancel()
}

// maxSpare is the largest batch whose backing array is kept for reuse; a
// burst's larger array goes back to the garbage collector.
const maxSpare = 16

// writeLoop writes the queue until it is empty, then ends; after a close
// request it closes the connection and leaves writing set, so no writer
// starts again.
func (s *socket) writeLoop() {
	defer s.wg.Done()
	for {
		s.mu.Lock()
		batch := s.queue
		s.queue, s.spare = s.spare, nil
		code, reason := s.closeCode, s.closeReason
		if len(batch) == 0 && code == 0 {
			s.writing = false
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		if len(batch) > 0 {
			if !s.write(batch) {
				s.kill()
				return
			}
			if cap(batch) <= maxSpare {
				clear(batch)
				s.mu.Lock()
				s.spare = batch[:0]
				s.mu.Unlock()
			}
		}
		if code != 0 {
			_ = s.conn.Close(code, reason)
			s.kill()
			return
		}
	}
}

// write writes a batch of frames within one WriteTimeout.
func (s *socket) write(batch [][]byte) bool {
	ctx, cancel := context.WithTimeout(s.ctx, s.hub.cfg.WriteTimeout)
	defer cancel()
	for i, p := range batch {
		if err := s.conn.Write(ctx, websocket.MessageText, p); err != nil {
			s.hub.framesSent.Add(uint64(i))
			if s.ctx.Err() == nil {
				s.hub.log.Debug("live: dropping a socket that cannot be written to", "user_id", s.userID, "error", err)
			}
			return false
		}
	}
	s.hub.framesSent.Add(uint64(len(batch)))
	return true
}

// ping runs on the ping timer's goroutine: it sends a WebSocket ping, waits
// for the pong (no pong within PongWait drops the socket) and arms the
// timer for the next one.
func (s *socket) ping() {
	s.mu.Lock()
	if s.dead || s.closeCode != 0 {
		s.mu.Unlock()
		return
	}
	timer := s.pingTimer
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	ctx, cancel := context.WithTimeout(s.ctx, s.hub.cfg.PongWait)
	err := s.conn.Ping(ctx)
	cancel()
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && s.ctx.Err() == nil {
			s.hub.pingTimeouts.Add(1)
			s.hub.log.Info("live: closing a socket that does not answer pings", "user_id", s.userID)
			s.kill()
		}
		return
	}
	timer.Reset(s.hub.cfg.PingInterval)
}

func (s *socket) readLoop() {
	for {
		_, data, err := s.conn.Read(s.ctx)
		if err != nil {
			return
		}
		s.hub.framesReceived.Add(1)
		s.handle(data)
	}
}

type postIDsData struct {
	PostIDs []int64 `json:"post_ids"`
}

func (s *socket) handle(data []byte) {
	var f Frame
	if err := json.Unmarshal(data, &f); err != nil || f.Type == "" {
		s.sendError("bad_frame", `a frame is a JSON object {"type": "...", "data": {...}}`)
		return
	}
	switch f.Type {
	case "ping":
		s.enqueue(pongFrame)
	case "subscribe", "unsubscribe":
		var d postIDsData
		if len(f.Data) == 0 || json.Unmarshal(f.Data, &d) != nil || d.PostIDs == nil {
			s.sendError("bad_frame", f.Type+` takes {"post_ids": [id, ...]}`)
			return
		}
		ids := slices.Clone(d.PostIDs)
		slices.Sort(ids)
		ids = slices.Compact(ids)
		if len(ids) > 0 && ids[0] <= 0 {
			s.sendError("bad_frame", "post ids are positive integers")
			return
		}
		if f.Type == "subscribe" {
			if !s.subscribe(ids) {
				return
			}
		} else {
			s.unsubscribe(ids)
		}
		ids = s.posts
		if ids == nil {
			ids = []int64{}
		}
		s.send("subscribed", postIDsData{PostIDs: ids})
	case "message.send":
		if s.hub.onMessage == nil {
			s.sendError("bad_frame", "message.send is not available")
			return
		}
		if reply := s.callMessage(f); reply != nil {
			b, err := reply.encode()
			if err != nil {
				s.hub.log.Error("live: encode reply", "type", reply.Type, "error", err)
				return
			}
			s.enqueue(b)
		}
	default:
		t := f.Type
		if len(t) > 64 {
			t = t[:64]
		}
		s.sendError("bad_frame", fmt.Sprintf("unknown frame type %q", t))
	}
}

func (s *socket) callMessage(f Frame) (reply *Frame) {
	defer func() {
		if v := recover(); v != nil {
			s.hub.log.Error("live: message handler panicked", "user_id", s.userID, "panic", v)
			reply = &Frame{Type: "error", Data: json.RawMessage(`{"code":"internal_error","detail":"The message could not be handled."}`)}
		}
	}()
	return s.hub.onMessage(s.ctx, s.userID, f)
}

func (s *socket) subscribe(ids []int64) bool {
	var added []int64
	for _, id := range ids {
		if _, ok := slices.BinarySearch(s.posts, id); !ok {
			added = append(added, id)
		}
	}
	if limit := s.hub.cfg.MaxPostSubscriptions; len(s.posts)+len(added) > limit {
		s.sendError("too_many_subscriptions", fmt.Sprintf("a socket may follow at most %d posts; nothing was subscribed", limit))
		return false
	}
	if len(added) == 0 {
		return true
	}
	wait := s.hub.subscribe(s, added)
	s.posts = append(s.posts, added...)
	slices.Sort(s.posts)
	if wait != nil {
		s.hub.waitTopics(s.ctx, wait)
	}
	return true
}

func (s *socket) unsubscribe(ids []int64) {
	var gone []int64
	for _, id := range ids {
		if i, ok := slices.BinarySearch(s.posts, id); ok {
			gone = append(gone, id)
			s.posts = slices.Delete(s.posts, i, i+1)
		}
	}
	if len(gone) > 0 {
		s.hub.unsubscribe(s, gone)
	}
	if len(s.posts) == 0 {
		s.posts = nil
	}
}

func (s *socket) send(typ string, data any) {
	f, err := NewFrame(typ, data)
	if err == nil {
		var b []byte
		if b, err = f.encode(); err == nil {
			s.enqueue(b)
			return
		}
	}
	s.hub.log.Error("live: encode frame", "type", typ, "error", err)
}

type errorData struct {
	Code   string `json:"code"`
	Detail string `json:"detail,omitempty"`
}

func (s *socket) sendError(code, detail string) {
	s.send("error", errorData{Code: code, Detail: detail})
}
