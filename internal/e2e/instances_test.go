package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"plaza/internal/db/dbtest"
)

// instance is one `plaza serve` process.
type instance struct {
	URL string
	cmd *exec.Cmd
}

func startInstance(t *testing.T, bin string, env []string) *instance {
	t.Helper()
	cmd := exec.Command(bin, "serve")
	cmd.Env = env
	stdout, _ := cmd.StdoutPipe()
	var logs strings.Builder
	var mu sync.Mutex
	cmd.Stderr = writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return logs.Write(p) })
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		if t.Failed() {
			mu.Lock()
			t.Logf("instance logs:\n%s", logs.String())
			mu.Unlock()
		}
	})
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		re := regexp.MustCompile(`listening on (http://\S+)`)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
	}()
	select {
	case u := <-addr:
		return &instance{URL: u, cmd: cmd}
	case <-time.After(60 * time.Second):
		t.Fatal("instance did not start")
		return nil
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestTwoInstances: two server processes on one PostgreSQL and one Redis;
// a like on instance A reaches a socket on instance B, and presence agrees
// on both.
func TestTwoInstances(t *testing.T) {
	if os.Getenv("PLAZA_TEST_POSTGRES_URL") == "" || os.Getenv("PLAZA_TEST_REDIS_URL") == "" {
		t.Skip("needs PLAZA_TEST_POSTGRES_URL and PLAZA_TEST_REDIS_URL")
	}
	bin := buildPlaza(t)
	dbURL := dbtest.PostgresURL(t)
	media := t.TempDir()
	base := append(os.Environ(),
		"PLAZA_DATABASE_URL="+dbURL, "PLAZA_REDIS_URL="+os.Getenv("PLAZA_TEST_REDIS_URL"),
		fmt.Sprintf("PLAZA_REDIS_PREFIX=plazatest:%d:", time.Now().UnixNano()),
		"PLAZA_SECRET_KEY=two-instance-secret-key-0123456789abcdef", "PLAZA_STORAGE_URL=file://"+media,
		"PLAZA_RATE_LIMITS=off", "PLAZA_LOG_LEVEL=warn", "PLAZA_ADDR=127.0.0.1:0",
		// Long enough that only the instances telling each other can make
		// a change show on the other within the test's deadlines.
		"PLAZA_CACHE_TTL=1m")
	for _, email := range []string{"alice@example.com", "bob@example.com"} {
		cmd := exec.Command(bin, "user", "create", "--email", email, "--password", testPassword)
		cmd.Env = append(base, "PLAZA_DATA_DIR="+t.TempDir())
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("user create: %v %s", err, out)
		}
	}
	a := startInstance(t, bin, append(base, "PLAZA_DATA_DIR="+t.TempDir()))
	b := startInstance(t, bin, append(base, "PLAZA_DATA_DIR="+t.TempDir()))

	// Clients of each instance, sharing the database behind them.
	ea := &env{t: t, URL: a.URL, check: nil}
	eb := &env{t: t, URL: b.URL, check: nil}
	login := func(e *env, email string) *client {
		c := e.uncheckedClient()
		c.Origin = ""
		c.Bearer = expect(t, c.do("POST", "/api/token/", map[string]string{"email": email, "password": testPassword}), http.StatusOK).Str("access")
		return c
	}
	aliceA, bobA := login(ea, "alice@example.com"), login(ea, "bob@example.com")
	aliceB := login(eb, "alice@example.com")

	pid := int64(expect(t, aliceA.do("POST", "/api/posts/", map[string]any{"content": "across instances"}), http.StatusCreated).JSON()["id"].(float64))
	sock := eb.ws(t, aliceB.Bearer)
	// Presence agrees on both instances.
	for _, c := range []*client{bobA, login(eb, "bob@example.com")} {
		deadline := time.Now().Add(5 * time.Second)
		for {
			got := expect(t, c.do("GET", "/api/presence/?users=alice", nil), http.StatusOK).JSON()
			if got["alice"] == true {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("presence on %s: %v", c.e.URL, got)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// A like on A notifies the socket on B.
	expect(t, bobA.do("POST", fmt.Sprintf("/api/posts/%d/like/", pid), nil), http.StatusCreated)
	n := sock.expect("notification", func(m map[string]any) bool { return m["type"] == "like" })
	if n["actor"].(map[string]any)["username"] != "bob" {
		t.Errorf("notification %v", n)
	}
	// Live counts cross instances too.
	sock.send("subscribe", map[string]any{"post_ids": []int64{pid}})
	sock.expect("subscribed", nil)
	expect(t, bobA.do("DELETE", fmt.Sprintf("/api/posts/%d/like/", pid), nil), http.StatusOK)
	sock.expect("post.stats", func(m map[string]any) bool { return m["likes_count"] == 0.0 })
	// Going offline is seen on both.
	sock.conn.Close(1000, "")
	for _, e := range []*env{ea, eb} {
		c := login(e, "bob@example.com")
		deadline := time.Now().Add(10 * time.Second)
		for expect(t, c.do("GET", "/api/presence/?users=alice", nil), http.StatusOK).JSON()["alice"] != false {
			if time.Now().After(deadline) {
				t.Fatalf("alice still online on %s", e.URL)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// Posts show their text and author from memory on each instance: an
	// edit, a new username and a new picture made on A show on B.
	bobB := login(eb, "bob@example.com")
	findPost := func() map[string]any {
		for _, it := range expect(t, bobB.do("GET", "/api/feed/global/", nil), http.StatusOK).JSON()["results"].([]any) {
			if p := it.(map[string]any); int64(p["id"].(float64)) == pid {
				return p
			}
		}
		t.Fatalf("post %d not in B's global feed", pid)
		return nil
	}
	before := findPost() // now cached on B
	expect(t, aliceA.do("PATCH", fmt.Sprintf("/api/posts/%d/", pid), map[string]any{"content": "edited on A"}), http.StatusOK)
	if got := findPost()["content"]; got != "edited on A" {
		t.Errorf("B shows %q right after the edit on A", got)
	}
	expect(t, aliceA.do("PATCH", "/api/users/me/", map[string]any{"username": "alice_renamed"}), http.StatusOK)
	expect(t, aliceA.multipart("PUT", "/api/users/me/images/", map[string][]byte{"profile_picture": testPNG(t, 64, 64)}), http.StatusOK)
	deadline := time.Now().Add(5 * time.Second)
	for {
		a := findPost()["author"].(map[string]any)
		if a["username"] == "alice_renamed" && a["profile_picture"] != before["author"].(map[string]any)["profile_picture"] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("B still shows the old author %v (before: %v)", a, before["author"])
		}
		time.Sleep(20 * time.Millisecond)
	}
	// B's home feed takes liked_by_me from the viewer's likes in memory:
	// a like and an unlike on A show on B.
	likedOnB := func() any {
		for _, it := range expect(t, aliceB.do("GET", "/api/feed/", nil), http.StatusOK).JSON()["results"].([]any) {
			if p := it.(map[string]any); int64(p["id"].(float64)) == pid {
				return p["liked_by_me"]
			}
		}
		t.Fatalf("post %d not in alice's home feed on B", pid)
		return nil
	}
	if got := likedOnB(); got != false {
		t.Fatalf("liked_by_me before the like: %v", got)
	}
	for _, step := range []struct {
		method string
		status int
		want   bool
	}{{"POST", http.StatusCreated, true}, {"DELETE", http.StatusOK, false}} {
		expect(t, aliceA.do(step.method, fmt.Sprintf("/api/posts/%d/like/", pid), nil), step.status)
		deadline := time.Now().Add(5 * time.Second)
		for likedOnB() != step.want {
			if time.Now().After(deadline) {
				t.Fatalf("after %s like on A, B's home feed still says liked_by_me %v", step.method, !step.want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// proxy is a TCP relay on loopback that can be cut and restored, to lose
// Redis for a while without touching the real server.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	up     bool
	conns  []net.Conn
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, up: true}
	t.Cleanup(func() { ln.Close(); p.cut() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			up := p.up
			p.mu.Unlock()
			if !up {
				c.Close()
				continue
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			go func() { io.Copy(s, c); s.Close() }()
			go func() { io.Copy(c, s); c.Close() }()
		}
	}()
	return p
}

func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.up = false
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *proxy) restore() {
	p.mu.Lock()
	p.up = true
	p.mu.Unlock()
}

// TestRedisOutage: without Redis, REST keeps working and notifications are
// stored; live delivery resumes when Redis returns.
func TestRedisOutage(t *testing.T) {
	raw := os.Getenv("PLAZA_TEST_REDIS_URL")
	if raw == "" {
		t.Skip("PLAZA_TEST_REDIS_URL is not set")
	}
	host := strings.TrimPrefix(raw, "redis://")
	host = strings.SplitN(host, "/", 2)[0]
	px := newProxy(t, host)
	e := start(t, sqliteOnly, map[string]string{"PLAZA_REDIS_URL": "redis://" + px.ln.Addr().String() + "/0"})
	alice, bob := e.newUser("alice"), e.newUser("bob")
	sock := e.ws(t, alice.token(t))
	pid := alice.post(t, "redis or not")
	expect(t, bob.do("POST", fmt.Sprintf("/api/posts/%d/like/", pid), nil), http.StatusCreated)
	sock.expect("notification", func(m map[string]any) bool { return m["type"] == "like" })

	px.cut()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = ctx
	// REST works and the notification is stored, though it cannot be pushed.
	expect(t, bob.do("POST", fmt.Sprintf("/api/posts/%d/comments/", pid), map[string]any{"content": "while redis is away"}), http.StatusCreated)
	deadline := time.Now().Add(10 * time.Second)
	for {
		found := false
		for _, n := range results(t, expect(t, alice.do("GET", "/api/notifications/", nil), http.StatusOK)) {
			found = found || n["type"] == "comment"
		}
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the comment notification was not stored while Redis was away")
		}
		time.Sleep(100 * time.Millisecond)
	}
	expect(t, e.client().do("GET", "/readyz", nil), http.StatusServiceUnavailable)

	px.restore()
	// Delivery resumes: keep liking/unliking until a frame arrives.
	deadline = time.Now().Add(30 * time.Second)
	for {
		expect(t, bob.do("DELETE", fmt.Sprintf("/api/posts/%d/like/", pid), nil), http.StatusOK)
		expect(t, bob.do("POST", fmt.Sprintf("/api/posts/%d/like/", pid), nil), http.StatusCreated)
		select {
		case f, ok := <-sock.ch:
			if ok && f.Type == "notification" {
				expect(t, e.client().do("GET", "/readyz", nil), http.StatusOK)
				return
			}
		case <-time.After(time.Second):
		}
		if time.Now().After(deadline) {
			t.Fatal("live delivery did not resume after Redis came back")
		}
	}
}
