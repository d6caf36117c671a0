package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	// Answers are decoded with go-json, a drop-in for encoding/json that
	// decodes a feed page ~4x faster: the load generator shares the
	// server's two cores, and encoding/json was most of its CPU.
	json "github.com/goccy/go-json"
)

// Result is one scenario's outcome.
type Result struct {
	Scenario    string           `json:"scenario"`
	Clients     int              `json:"clients"`
	Seconds     float64          `json:"seconds"`
	Requests    int64            `json:"requests"`
	Errors      int64            `json:"errors"`
	RPS         float64          `json:"rps"`
	P50ms       float64          `json:"p50_ms"`
	P90ms       float64          `json:"p90_ms"`
	P99ms       float64          `json:"p99_ms"`
	Maxms       float64          `json:"max_ms"`
	Failed      bool             `json:"failed"`
	ErrorKinds  map[string]int64 `json:"error_kinds,omitempty"`
	Goal        string           `json:"goal,omitempty"`
	GoalMet     *bool            `json:"goal_met,omitempty"`
	CPU         CPUShare         `json:"cpu"`
	Connections int64            `json:"new_connections"`
	Attempts    int              `json:"attempts"`
	// CPU time per request (µs): steadier than req/s on a shared machine.
	ServerUs   float64 `json:"server_cpu_us_per_req"`
	PostgresUs float64 `json:"postgres_cpu_us_per_req"`
	LoadGenUs  float64 `json:"loadgen_cpu_us_per_req"`
	Noisy      bool    `json:"noisy,omitempty"` // other processes took more CPU than -max-other
}

// goals of the issue, at 64 clients on the 2-core machine.
var goals = map[string]struct {
	rps   float64
	p99ms float64
}{
	"home":   {4000, 50},
	"like":   {3000, 0},
	"create": {1500, 0},
}

// worker is one client goroutine; its samples are merged at the end.
type worker struct {
	b            *bench
	r            *rand.Rand
	buf          bytes.Buffer
	measureFrom  time.Time
	samples      []time.Duration
	requests     int64
	errors       int64
	kinds        map[string]int64
	seq          int
	id           int
	lastMeasured bool
}

// do sends one request and reads the whole answer; it is counted and timed
// when it started inside the measured window. It returns the body (valid
// until the next call) and whether the status was one of want; a wrong
// status or a transport failure is counted as an error here.
func (w *worker) do(ctx context.Context, method, path, auth string, body []byte, label string, want ...int) ([]byte, int, bool) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, w.b.o.url+path, rd)
	if err != nil {
		w.fail(label + ": " + err.Error())
		return nil, 0, false
	}
	req.Header.Set("Authorization", auth)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	start := time.Now()
	measured := !start.Before(w.measureFrom)
	resp, err := w.b.client.Do(req)
	if err == nil {
		w.buf.Reset()
		_, err = w.buf.ReadFrom(resp.Body)
		resp.Body.Close()
	}
	el := time.Since(start)
	if measured {
		w.requests++
		w.samples = append(w.samples, el)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, 0, false // the run ended mid-request
		}
		w.failMeasured(measured, label+": transport: "+shortErr(err))
		return nil, 0, false
	}
	if !slices.Contains(want, resp.StatusCode) {
		msg := w.buf.String()
		if len(msg) > 120 {
			msg = msg[:120]
		}
		w.failMeasured(measured, fmt.Sprintf("%s: status %d (want %v): %s", label, resp.StatusCode, want, msg))
		return nil, resp.StatusCode, false
	}
	w.lastMeasured = measured
	return w.buf.Bytes(), resp.StatusCode, true
}

// fail counts a validation error of the last request (when it was measured).
func (w *worker) fail(msg string) { w.failMeasured(w.lastMeasured, msg) }

func (w *worker) failMeasured(measured bool, msg string) {
	if !measured {
		return
	}
	w.errors++
	if w.kinds == nil {
		w.kinds = map[string]int64{}
	}
	if len(w.kinds) < 50 || w.kinds[msg] > 0 {
		w.kinds[msg]++
	}
}

func shortErr(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 && len(s) > 100 {
		s = s[i+2:]
	}
	return s
}

func (w *worker) user() *session { return &w.b.sessions[w.r.IntN(len(w.b.sessions))] }

func (w *worker) randomPost() int64 { return w.r.Int64N(w.b.maxPost) + 1 }

// JSON shapes read back, with pointers where presence is checked.
type authorJ struct {
	ID          int64  `json:"id"`
	Username    string `json:"username"`
	IsFollowing *bool  `json:"is_following"`
}

type postJ struct {
	ID            int64    `json:"id"`
	Author        *authorJ `json:"author"`
	Content       *string  `json:"content"`
	LikesCount    *int64   `json:"likes_count"`
	CommentsCount *int64   `json:"comments_count"`
	LikedByMe     *bool    `json:"liked_by_me"`
	CreatedAt     string   `json:"created_at"`
}

type pageJ struct {
	Results []postJ `json:"results"`
	Next    *string `json:"next"`
}

// checkPost returns what is wrong with a post of an answer, or "".
func checkPost(p *postJ) string {
	switch {
	case p.ID <= 0:
		return "post without id"
	case p.Author == nil || p.Author.ID <= 0 || p.Author.Username == "" || p.Author.IsFollowing == nil:
		return "post without author"
	case p.LikesCount == nil || *p.LikesCount < 0:
		return "post without likes_count"
	case p.CommentsCount == nil || *p.CommentsCount < 0:
		return "post without comments_count"
	case p.LikedByMe == nil:
		return "post without liked_by_me"
	case p.Content == nil:
		return "post without content"
	}
	if _, err := time.Parse(time.RFC3339, p.CreatedAt); err != nil {
		return "post with a bad created_at"
	}
	return ""
}

// checkPage validates a feed page: 1 to 20 posts, newest first, each
// complete; home feeds hold only the viewer's and followed authors' posts.
func checkPage(raw []byte, viewer int64, home bool) string {
	var pg pageJ
	if err := json.Unmarshal(raw, &pg); err != nil {
		return "feed: bad JSON: " + shortErr(err)
	}
	if len(pg.Results) == 0 || len(pg.Results) > 20 {
		return fmt.Sprintf("feed: %d results (want 1..20)", len(pg.Results))
	}
	for i := range pg.Results {
		p := &pg.Results[i]
		if msg := checkPost(p); msg != "" {
			return "feed: " + msg
		}
		if i > 0 && p.ID >= pg.Results[i-1].ID {
			return "feed: not newest first"
		}
		if home && p.Author.ID != viewer && !*p.Author.IsFollowing {
			return "home feed: post by someone the viewer does not follow"
		}
	}
	if len(pg.Results) == 20 && pg.Next == nil {
		return "feed: a full page without a next cursor"
	}
	return ""
}

// scenarios: each call performs one operation (like performs two requests).
var scenarioOps = map[string]func(ctx context.Context, w *worker){
	"home": func(ctx context.Context, w *worker) {
		u := w.user()
		if raw, _, ok := w.do(ctx, http.MethodGet, "/api/feed/", u.auth, nil, "GET /api/feed/", 200); ok {
			if msg := checkPage(raw, u.id, true); msg != "" {
				w.fail(msg)
			}
		}
	},
	"global": func(ctx context.Context, w *worker) {
		u := w.user()
		if raw, _, ok := w.do(ctx, http.MethodGet, "/api/feed/global/", u.auth, nil, "GET /api/feed/global/", 200); ok {
			if msg := checkPage(raw, u.id, false); msg != "" {
				w.fail(msg)
			}
		}
	},
	"post": func(ctx context.Context, w *worker) {
		u, id := w.user(), w.randomPost()
		raw, _, ok := w.do(ctx, http.MethodGet, "/api/posts/"+strconv.FormatInt(id, 10)+"/", u.auth, nil, "GET /api/posts/{id}/", 200)
		if !ok {
			return
		}
		var p postJ
		if err := json.Unmarshal(raw, &p); err != nil {
			w.fail("post: bad JSON: " + shortErr(err))
			return
		}
		if msg := checkPost(&p); msg != "" {
			w.fail("post: " + msg)
		} else if p.ID != id {
			w.fail("post: another post's id")
		}
	},
	// like toggles: like then unlike the same post as the same user. The
	// like answers 201, or 200 when the seed had it liked already.
	"like": func(ctx context.Context, w *worker) {
		u, id := w.user(), w.randomPost()
		path := "/api/posts/" + strconv.FormatInt(id, 10) + "/like/"
		raw, _, ok := w.do(ctx, http.MethodPost, path, u.auth, nil, "POST /api/posts/{id}/like/", 201, 200)
		if !ok {
			return
		}
		var c struct {
			LikesCount *int64 `json:"likes_count"`
		}
		if json.Unmarshal(raw, &c) != nil || c.LikesCount == nil || *c.LikesCount < 1 {
			w.fail("like: likes_count missing or < 1 after a like")
		}
		raw, _, ok = w.do(ctx, http.MethodDelete, path, u.auth, nil, "DELETE /api/posts/{id}/like/", 200)
		if !ok {
			return
		}
		c.LikesCount = nil
		if json.Unmarshal(raw, &c) != nil || c.LikesCount == nil || *c.LikesCount < 0 {
			w.fail("unlike: likes_count missing or negative")
		}
	},
	"create": func(ctx context.Context, w *worker) {
		u := w.user()
		w.seq++
		content := fmt.Sprintf("bench post %d-%d by %s: %s", w.id, w.seq, u.username, benchWords[w.r.IntN(len(benchWords))])
		if w.seq%4 == 0 {
			content += " #benchmark"
		}
		body, _ := json.Marshal(map[string]string{"content": content})
		raw, _, ok := w.do(ctx, http.MethodPost, "/api/posts/", u.auth, body, "POST /api/posts/", 201)
		if !ok {
			return
		}
		var p postJ
		if err := json.Unmarshal(raw, &p); err != nil {
			w.fail("create: bad JSON: " + shortErr(err))
			return
		}
		switch msg := checkPost(&p); {
		case msg != "":
			w.fail("create: " + msg)
		case *p.Content != content:
			w.fail("create: content not echoed")
		case p.Author.ID != u.id:
			w.fail("create: wrong author")
		case *p.LikesCount != 0:
			w.fail("create: a new post with likes")
		}
	},
	"profile": func(ctx context.Context, w *worker) {
		u := w.user()
		name := fmt.Sprintf("user%05d", w.r.IntN(w.b.o.users)+1)
		raw, _, ok := w.do(ctx, http.MethodGet, "/api/users/"+name+"/", u.auth, nil, "GET /api/users/{username}/", 200)
		if !ok {
			return
		}
		var p struct {
			ID             int64  `json:"id"`
			Username       string `json:"username"`
			FollowersCount *int64 `json:"followers_count"`
			FollowingCount *int64 `json:"following_count"`
			PostsCount     *int64 `json:"posts_count"`
			IsFollowing    *bool  `json:"is_following"`
			FollowsYou     *bool  `json:"follows_you"`
		}
		switch err := json.Unmarshal(raw, &p); {
		case err != nil:
			w.fail("profile: bad JSON: " + shortErr(err))
		case p.ID <= 0 || !strings.EqualFold(p.Username, name):
			w.fail("profile: another user")
		case p.FollowersCount == nil || p.FollowingCount == nil || p.PostsCount == nil || *p.FollowersCount < 0 || *p.PostsCount < 0:
			w.fail("profile: counts missing")
		case p.IsFollowing == nil || p.FollowsYou == nil:
			w.fail("profile: follow flags missing")
		}
	},
}

var benchWords = strings.Fields("hello world lorem ipsum sunny today coffee time reading a good book going for a run")

// runScenario runs c workers for warm-up + duration and gathers their samples.
func (b *bench) runScenario(ctx context.Context, name string) *Result {
	op := scenarioOps[name]
	start := time.Now()
	measureFrom := start.Add(b.o.warm)
	end := measureFrom.Add(b.o.d)
	rctx, cancel := context.WithDeadline(ctx, end.Add(5*time.Second))
	defer cancel()

	var cpuA, cpuB cpuSnap
	var dialsA int64
	var snap sync.WaitGroup
	snap.Go(func() {
		time.Sleep(time.Until(measureFrom))
		cpuA, dialsA = readCPU(b.o.serverPID), b.dials.Load()
		time.Sleep(time.Until(end))
		cpuB = readCPU(b.o.serverPID)
	})

	workers := make([]*worker, b.o.c)
	var wg sync.WaitGroup
	for i := range workers {
		w := &worker{b: b, id: i, measureFrom: measureFrom,
			r:       rand.New(rand.NewPCG(b.o.seed+uint64(i), uint64(len(name)))),
			samples: make([]time.Duration, 0, 4096)}
		workers[i] = w
		wg.Go(func() {
			for time.Now().Before(end) && rctx.Err() == nil {
				op(rctx, w)
			}
		})
	}
	wg.Wait()
	snap.Wait()
	elapsed := time.Since(measureFrom).Seconds()

	res := &Result{Scenario: name, Clients: b.o.c, Seconds: elapsed, ErrorKinds: map[string]int64{}}
	var all []time.Duration
	for _, w := range workers {
		res.Requests += w.requests
		res.Errors += w.errors
		all = append(all, w.samples...)
		for k, n := range w.kinds {
			res.ErrorKinds[k] += n
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	q := func(f float64) float64 {
		if len(all) == 0 {
			return 0
		}
		return float64(all[int(f*float64(len(all)-1))].Microseconds()) / 1000
	}
	res.RPS = float64(res.Requests) / elapsed
	res.P50ms, res.P90ms, res.P99ms, res.Maxms = q(0.50), q(0.90), q(0.99), q(1)
	res.Failed = res.Requests == 0 || float64(res.Errors) > 0.001*float64(res.Requests)
	res.CPU = cpuBetween(cpuA, cpuB, b.cores)
	res.Connections = b.dials.Load() - dialsA
	if res.RPS > 0 {
		perReq := func(pct float64) float64 { return pct / 100 * 1e6 / res.RPS }
		res.ServerUs, res.PostgresUs, res.LoadGenUs = perReq(res.CPU.Server), perReq(res.CPU.Postgres), perReq(res.CPU.LoadGen)
	}
	if g, ok := goals[name]; ok {
		met := !res.Failed && res.RPS >= g.rps && (g.p99ms == 0 || res.P99ms < g.p99ms)
		res.GoalMet = &met
		res.Goal = fmt.Sprintf("≥ %.0f/s", g.rps)
		if g.p99ms > 0 {
			res.Goal += fmt.Sprintf(", p99 < %.0f ms", g.p99ms)
		}
	}
	if len(res.ErrorKinds) == 0 {
		res.ErrorKinds = nil
	}
	return res
}

func printResult(out io.Writer, r *Result) {
	status := "ok"
	if r.Failed {
		status = "FAILED"
	}
	goal := ""
	if r.GoalMet != nil {
		goal = "  goal " + r.Goal + ": " + map[bool]string{true: "met", false: "MISSED"}[*r.GoalMet]
	}
	fmt.Fprintf(out, "%-8s %8d req %8.0f/s  p50 %6.2f  p90 %6.2f  p99 %6.2f  max %7.2f ms  errors %d  %s%s\n",
		r.Scenario, r.Requests, r.RPS, r.P50ms, r.P90ms, r.P99ms, r.Maxms, r.Errors, status, goal)
	noisy := ""
	if r.Noisy {
		noisy = " NOISY"
	}
	fmt.Fprintf(out, "         cpu (%% of one core, %d cores): machine %.0f, load generator %.0f, server %.0f, postgres %.0f, irq %.0f, other processes %.0f%s; new connections %d\n",
		r.CPU.Cores, r.CPU.Machine, r.CPU.LoadGen, r.CPU.Server, r.CPU.Postgres, r.CPU.IRQ, r.CPU.Other, noisy, r.Connections)
	fmt.Fprintf(out, "         cpu per request: server %.0f µs, postgres %.0f µs, load generator %.0f µs\n", r.ServerUs, r.PostgresUs, r.LoadGenUs)
	kinds := make([]string, 0, len(r.ErrorKinds))
	for k := range r.ErrorKinds {
		kinds = append(kinds, k)
	}
	sort.Slice(kinds, func(i, j int) bool { return r.ErrorKinds[kinds[i]] > r.ErrorKinds[kinds[j]] })
	for i, k := range kinds {
		if i == 10 {
			fmt.Fprintf(out, "         … %d more kinds of error\n", len(kinds)-10)
			break
		}
		fmt.Fprintf(out, "         error ×%d: %s\n", r.ErrorKinds[k], k)
	}
}

func printSummary(out io.Writer, rs []*Result) {
	fmt.Fprintln(out, "\n| scenario | requests | req/s | p50 ms | p90 ms | p99 ms | max ms | errors | goal | CPU % load gen / server / postgres / irq / other |")
	fmt.Fprintln(out, "|---|---:|---:|---:|---:|---:|---:|---:|---|---|")
	for _, r := range rs {
		goal := ""
		if r.GoalMet != nil {
			goal = r.Goal + ": " + map[bool]string{true: "met", false: "**missed**"}[*r.GoalMet]
		}
		errs := strconv.FormatInt(r.Errors, 10)
		if r.Failed {
			errs += " FAILED"
		}
		fmt.Fprintf(out, "| %s | %d | %.0f | %.2f | %.2f | %.2f | %.2f | %s | %s | %.0f / %.0f / %.0f / %.0f / %.0f |\n",
			r.Scenario, r.Requests, r.RPS, r.P50ms, r.P90ms, r.P99ms, r.Maxms, errs, goal,
			r.CPU.LoadGen, r.CPU.Server, r.CPU.Postgres, r.CPU.IRQ, r.CPU.Other)
	}
}
