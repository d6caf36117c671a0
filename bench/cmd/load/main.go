// Command load drives a running Plaza (seeded by bench/cmd/seed) over HTTP
// with many concurrent keep-alive clients, each request as a random logged
// in user, and prints requests per second and latency percentiles per
// scenario. Every answer is validated, so a broken server cannot look fast:
// a scenario with more than 0.1% errors is marked FAILED.
//
//	go run ./bench/cmd/load -url http://127.0.0.1:8000 -c 64 -d 15s \
//	    -scenario home,global,post,like,create,profile -users 10000 -logins 256
//
// The server must run with PLAZA_RATE_LIMITS=off (the logins all come from
// one address).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type options struct {
	url       string
	c         int
	d, warm   time.Duration
	scenarios []string
	users     int
	logins    int
	password  string
	json      bool
	serverPID int
	seed      uint64
	maxOther  float64
	retries   int
	cpuprof   string
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	code, err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "load:", err)
		}
		os.Exit(2)
	}
	os.Exit(code)
}

var allScenarios = []string{"home", "global", "post", "like", "create", "profile"}

// run returns exit code 1 when a scenario FAILED.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	var o options
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.StringVar(&o.url, "url", "http://127.0.0.1:8000", "base URL of the server")
	fs.IntVar(&o.c, "c", 64, "concurrent clients")
	fs.DurationVar(&o.d, "d", 15*time.Second, "measured duration of each scenario")
	fs.DurationVar(&o.warm, "warmup", 2*time.Second, "unmeasured warm-up before each scenario")
	scen := fs.String("scenario", strings.Join(allScenarios, ","), "comma-separated scenarios: "+strings.Join(allScenarios, ", "))
	fs.IntVar(&o.users, "users", 10000, "seeded users (user00001 …)")
	fs.IntVar(&o.logins, "logins", 256, "distinct users to log in and act as")
	fs.StringVar(&o.password, "password", "bench password 123", "password of the seeded users")
	fs.BoolVar(&o.json, "json", false, "print the results as JSON on stdout (the table goes to stderr)")
	fs.IntVar(&o.serverPID, "server-pid", 0, "pid of the server, to report its CPU share")
	fs.Uint64Var(&o.seed, "seed", 1, "random seed")
	fs.Float64Var(&o.maxOther, "max-other", 0, "noise guard for shared machines: repeat a scenario when processes other than the load generator,\nthe server and PostgreSQL used more than this much CPU (% of one core) during it (0: off)")
	fs.StringVar(&o.cpuprof, "cpuprofile", "", "write a CPU profile of the load generator (the scenarios only) to this file")
	fs.IntVar(&o.retries, "retries", 5, "with -max-other: how many times a noisy scenario is repeated at most")
	if err := fs.Parse(args); err != nil {
		return 0, err
	}
	for _, s := range strings.Split(*scen, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if !slices.Contains(allScenarios, s) {
			return 0, fmt.Errorf("unknown scenario %q (want %s)", s, strings.Join(allScenarios, ", "))
		}
		o.scenarios = append(o.scenarios, s)
	}
	if o.c < 1 || o.logins < 1 || o.users < 1 {
		return 0, errors.New("-c, -logins and -users must be positive")
	}
	o.url = strings.TrimRight(o.url, "/")
	table := stdout
	if o.json {
		table = stderr
	}

	b := newBench(o)
	t0 := time.Now()
	if err := b.login(ctx); err != nil {
		return 0, err
	}
	if err := b.discover(ctx); err != nil {
		return 0, err
	}
	fmt.Fprintf(table, "logged in %d users in %s; posts 1..%d; %d clients, %s warm-up + %s per scenario, GOMAXPROCS %d\n",
		len(b.sessions), time.Since(t0).Round(time.Millisecond), b.maxPost, o.c, o.warm, o.d, runtime.GOMAXPROCS(0))

	if o.cpuprof != "" {
		f, err := os.Create(o.cpuprof)
		if err != nil {
			return 0, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return 0, err
		}
		defer pprof.StopCPUProfile()
	}
	var results []*Result
	for _, s := range o.scenarios {
		if ctx.Err() != nil {
			break
		}
		res := b.runScenario(ctx, s)
		for res.Attempts = 1; b.o.maxOther > 0 && res.CPU.Other > b.o.maxOther && res.Attempts <= b.o.retries && ctx.Err() == nil; {
			fmt.Fprintf(table, "%-8s noisy: other processes used %.0f%% CPU (%.0f/s); again\n", s, res.CPU.Other, res.RPS)
			time.Sleep(5 * time.Second)
			n := res.Attempts + 1
			res = b.runScenario(ctx, s)
			res.Attempts = n
		}
		res.Noisy = b.o.maxOther > 0 && res.CPU.Other > b.o.maxOther
		results = append(results, res)
		printResult(table, res)
	}
	printSummary(table, results)
	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(results); err != nil {
			return 0, err
		}
	}
	for _, r := range results {
		if r.Failed {
			return 1, nil
		}
	}
	return 0, nil
}

// session is one logged-in user.
type session struct {
	id       int64
	username string
	auth     string // "Bearer …"
}

type bench struct {
	o        options
	client   *http.Client
	dials    atomic.Int64
	sessions []session
	maxPost  int64
	cores    int
}

func newBench(o options) *bench {
	b := &bench{o: o, cores: runtime.NumCPU()}
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			b.dials.Add(1)
			return dialer.DialContext(ctx, network, addr)
		},
		MaxIdleConns:        2*o.c + 16,
		MaxIdleConnsPerHost: 2*o.c + 16,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	b.client = &http.Client{Transport: tr, Timeout: 30 * time.Second}
	return b
}

// login gets Bearer tokens for -logins distinct random users, a few at a
// time (each login costs the server an argon2id hash).
func (b *bench) login(ctx context.Context) error {
	r := rand.New(rand.NewPCG(b.o.seed, 1))
	n := min(b.o.logins, b.o.users)
	picked := r.Perm(b.o.users)[:n]
	b.sessions = make([]session, n)
	var wg sync.WaitGroup
	var next atomic.Int64
	var firstErr error
	var mu sync.Mutex
	for range 4 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				s, err := b.loginOne(ctx, picked[i]+1)
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				b.sessions[i] = s
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return fmt.Errorf("login: %w", firstErr)
	}
	return ctx.Err()
}

func (b *bench) loginOne(ctx context.Context, num int) (session, error) {
	name := fmt.Sprintf("user%05d", num)
	body, _ := json.Marshal(map[string]string{"email": name + "@bench.test", "password": b.o.password})
	status, raw, err := b.simple(ctx, http.MethodPost, "/api/token/", "", body)
	if err != nil {
		return session{}, err
	}
	if status != http.StatusOK {
		return session{}, fmt.Errorf("POST /api/token/ as %s: status %d: %.200s (is the database seeded, and PLAZA_RATE_LIMITS=off?)", name, status, raw)
	}
	var tok struct{ Access, Refresh string }
	if err := json.Unmarshal(raw, &tok); err != nil || tok.Access == "" || tok.Refresh == "" {
		return session{}, fmt.Errorf("POST /api/token/: no access and refresh tokens in %.200s", raw)
	}
	s := session{username: name, auth: "Bearer " + tok.Access}
	status, raw, err = b.simple(ctx, http.MethodGet, "/api/users/me/", s.auth, nil)
	if err != nil {
		return session{}, err
	}
	var me struct {
		ID       int64  `json:"id"`
		Username string `json:"username"`
	}
	if status != http.StatusOK || json.Unmarshal(raw, &me) != nil || me.ID <= 0 || !strings.EqualFold(me.Username, name) {
		return session{}, fmt.Errorf("GET /api/users/me/ as %s: status %d: %.200s", name, status, raw)
	}
	s.id = me.ID
	return s, nil
}

// discover finds the newest post id (random post targets are drawn from
// 1..newest; the seeder numbers posts from 1 and nothing deletes them).
func (b *bench) discover(ctx context.Context) error {
	status, raw, err := b.simple(ctx, http.MethodGet, "/api/feed/global/?limit=1", b.sessions[0].auth, nil)
	if err != nil {
		return err
	}
	var pg struct {
		Results []struct {
			ID int64 `json:"id"`
		} `json:"results"`
	}
	if status != http.StatusOK || json.Unmarshal(raw, &pg) != nil || len(pg.Results) != 1 || pg.Results[0].ID <= 0 {
		return fmt.Errorf("GET /api/feed/global/: status %d: %.200s (no posts: seed the database first)", status, raw)
	}
	b.maxPost = pg.Results[0].ID
	return nil
}

func (b *bench) simple(ctx context.Context, method, path, auth string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, b.o.url+path, bytesReader(body))
	if err != nil {
		return 0, nil, err
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, raw, err
}

func bytesReader(b []byte) io.Reader {
	if b == nil {
		return nil
	}
	return strings.NewReader(string(b))
}
