package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"plaza/internal/live"
	"plaza/internal/pubsub"
)

// The -self server is a stand-in for plaza serve that has only what this
// tool touches, with the real hub on an in-process broker:
//
//	GET  /api/ws/?access_token=<user id>     the hub (the token is the user id)
//	GET  /api/users/me/                      {"id", "username": "u<id>"}
//	POST /api/conversations/ {username}      the one-to-one conversation {"id"}
//	POST|DELETE /api/posts/<id>/like/        {"likes_count"}, and a post.stats frame
//	                                         (with "sent_at", Unix ns) to the post's subscribers
//	GET  /metrics                            Prometheus (Go and process collectors)
//	POST /debug/gc                           runtime.GC + debug.FreeOSMemory
//	GET  /debug/pprof/                       the profiles
//
// message.send {conversation_id, content} sends message.created to both
// participants, as the real server does.

// startSelf runs this binary again as the -self server (so the server's
// memory is not mixed with the clients') and returns its base URL.
func startSelf(ctx context.Context, stderr io.Writer) (base string, stop func(), err error) {
	exe, err := os.Executable()
	if err != nil {
		return "", nil, err
	}
	cmd := exec.CommandContext(ctx, exe, "-serve-self", "127.0.0.1:0")
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, err
	}
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop = func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	if err != nil || !ok {
		stop()
		return "", nil, fmt.Errorf("self server did not start: %q %v", line, err)
	}
	go func() { _, _ = io.Copy(io.Discard, out) }()
	return "http://" + addr, stop, nil
}

type selfServer struct {
	hub *live.Hub

	mu    sync.Mutex
	convs map[[2]int64]int64 // participants (lower id first) → id
	byID  map[int64][2]int64

	likes   sync.Map // post id → *atomic.Int64
	msgSeq  atomic.Int64
	convSeq atomic.Int64
}

// serveSelf is the child process.
func serveSelf(ctx context.Context, addr string, stdout io.Writer) error {
	raiseNoFile(1 << 20)
	broker := pubsub.NewInProc()
	defer func() { _ = broker.Close() }()
	s := &selfServer{convs: make(map[[2]int64]int64), byID: make(map[int64][2]int64)}
	hub, err := live.NewHub(ctx, broker, live.HubConfig{
		Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})),
	}, s.onMessage, nil)
	if err != nil {
		return err
	}
	s.hub = hub
	reg := prometheus.DefaultRegisterer
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "plaza_ws_sockets", Help: "Open WebSockets."},
		func() float64 { return float64(hub.Stats().Sockets) }))
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "plaza_ws_frames_sent_total", Help: "Frames written."},
		func() float64 { return float64(hub.Stats().FramesSent) }))
	for name, fn := range map[string]func(live.HubStats) uint64{
		"plaza_ws_dropped_total":        func(s live.HubStats) uint64 { return s.Dropped },
		"plaza_ws_ping_timeouts_total":  func(s live.HubStats) uint64 { return s.PingTimeouts },
		"plaza_ws_broker_dropped_total": func(s live.HubStats) uint64 { return s.BrokerDropped },
	} {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: "Hub counter."},
			func() float64 { return float64(fn(hub.Stats())) }))
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/ws/", func(w http.ResponseWriter, r *http.Request) {
		uid, ok := selfUser(r)
		if !ok {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		_ = hub.Accept(w, r, uid, time.Time{})
	})
	mux.HandleFunc("GET /api/users/me/", func(w http.ResponseWriter, r *http.Request) {
		uid, ok := selfUser(r)
		if !ok {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"id": uid, "username": "u" + strconv.FormatInt(uid, 10)})
	})
	mux.HandleFunc("POST /api/conversations/", s.createConversation)
	mux.HandleFunc("POST /api/posts/{id}/like/", s.like(1))
	mux.HandleFunc("DELETE /api/posts/{id}/like/", s.like(-1))
	mux.Handle("GET /metrics", promhttp.Handler())
	mux.HandleFunc("POST /debug/gc", func(w http.ResponseWriter, r *http.Request) {
		runtime.GC()
		debug.FreeOSMemory()
		w.WriteHeader(http.StatusNoContent)
	})

	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stdout, "listening %s\n", ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err = <-errc:
	case <-ctx.Done():
	}
	_ = hub.Close()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

func selfUser(r *http.Request) (int64, bool) {
	tok := r.URL.Query().Get("access_token")
	if h, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		tok = h
	}
	id, err := strconv.ParseInt(tok, 10, 64)
	return id, err == nil && id > 0
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *selfServer) createConversation(w http.ResponseWriter, r *http.Request) {
	uid, ok := selfUser(r)
	if !ok {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	var body struct {
		Username string `json:"username"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	other, err := strconv.ParseInt(strings.TrimPrefix(body.Username, "u"), 10, 64)
	if err != nil || other == uid {
		http.Error(w, "bad username", http.StatusBadRequest)
		return
	}
	key := [2]int64{min(uid, other), max(uid, other)}
	s.mu.Lock()
	id, ok := s.convs[key]
	status := http.StatusOK
	if !ok {
		id = s.convSeq.Add(1)
		s.convs[key] = id
		s.byID[id] = key
		status = http.StatusCreated
	}
	s.mu.Unlock()
	writeJSON(w, status, map[string]any{"id": id})
}

func (s *selfServer) like(delta int64) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if _, ok := selfUser(r); !ok {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		v, _ := s.likes.LoadOrStore(id, new(atomic.Int64))
		n := v.(*atomic.Int64).Add(delta)
		f, _ := live.NewFrame("post.stats", map[string]any{
			"post_id": id, "likes_count": n, "comments_count": 0, "sent_at": time.Now().UnixNano(),
		})
		if err := s.hub.SendToPost(r.Context(), id, f); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"likes_count": n})
	}
}

func (s *selfServer) onMessage(ctx context.Context, userID int64, f live.Frame) *live.Frame {
	var d struct {
		ConversationID int64  `json:"conversation_id"`
		Content        string `json:"content"`
	}
	if err := json.Unmarshal(f.Data, &d); err != nil {
		e, _ := live.NewFrame("error", map[string]string{"code": "bad_frame", "detail": err.Error()})
		return &e
	}
	s.mu.Lock()
	parts, ok := s.byID[d.ConversationID]
	s.mu.Unlock()
	if !ok || (parts[0] != userID && parts[1] != userID) {
		e, _ := live.NewFrame("error", map[string]string{"code": "not_found"})
		return &e
	}
	msg, _ := live.NewFrame("message.created", map[string]any{
		"id":              s.msgSeq.Add(1),
		"conversation_id": d.ConversationID,
		"sender":          map[string]any{"id": userID, "username": "u" + strconv.FormatInt(userID, 10)},
		"content":         d.Content,
		"created_at":      time.Now().UTC().Format(time.RFC3339),
	})
	for _, p := range parts {
		_ = s.hub.SendToUser(ctx, p, msg)
	}
	return nil
}
