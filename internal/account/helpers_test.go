package account_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"plaza/internal/account"
	"plaza/internal/db"
	"plaza/internal/db/dbtest"
	"plaza/internal/jobs"
	"plaza/internal/mail"
	"plaza/internal/mail/mailtest"
)

// Cheap argon2 cost for tests; DefaultArgon2 has a test of its own.
var testArgon2 = account.Argon2Params{MemoryKiB: 1024, Time: 1, Threads: 1}

const (
	testSecret    = "test-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
	activationURL = "http://front.test/pages/auth/activate.html?uid={uid}&token={token}"
	resetURL      = "http://front.test/pages/auth/confirm_password.html?uid={uid}&token={token}"
	goodPassword  = "correct horse battery"
	mailWait      = 5 * time.Second
)

var testConfig = account.Config{
	SecretKey:     testSecret,
	AccessTTL:     30 * time.Minute,
	RefreshTTL:    7 * 24 * time.Hour,
	ActivationTTL: 24 * time.Hour,
	ResetTTL:      time.Hour,
	ActivationURL: activationURL,
	ResetURL:      resetURL,
	Argon2:        testArgon2,
	// As in production: every test runs with the user cache on, so a
	// change that forgot to drop its entry shows up as a stale session.
	UserCacheTTL: time.Minute,
}

// clock is a fake time source that tests move by hand; safe for the
// concurrent calls the service makes.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is one account service on a fresh database of one engine, with a
// real SMTP sink, a real River queue and a fake clock.
type env struct {
	svc   *account.Service
	db    *db.DB
	sink  *mailtest.Sink
	clock *clock
	ctx   context.Context
}

func newEnv(t *testing.T, e dbtest.Engine) *env {
	t.Helper()
	ctx := context.Background()
	d := dbtest.Open(t, e)
	if err := jobs.Migrate(ctx, d); err != nil {
		t.Fatalf("jobs.Migrate: %v", err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	q, err := jobs.NewQueue(d, log)
	if err != nil {
		t.Fatalf("jobs.NewQueue: %v", err)
	}
	sink := mailtest.StartSink(t)
	sender, err := mail.NewSMTP(sink.URL(), "Plaza <no-reply@example.com>")
	if err != nil {
		t.Fatalf("mail.NewSMTP: %v", err)
	}
	// Whole seconds, as JWT times are: expiry arithmetic stays exact.
	clk := &clock{t: time.Now().UTC().Truncate(time.Second)}
	svc, err := account.NewService(account.NewStore(d), testConfig, sender, q, log, clk.Now)
	if err != nil {
		t.Fatalf("NewService: %v", err)
	}
	return &env{svc: svc, db: d, sink: sink, clock: clk, ctx: ctx}
}

// activeUser creates an active account through the CLI path.
func (v *env) activeUser(t *testing.T, email, username string) account.User {
	t.Helper()
	u, err := v.svc.CreateUser(v.ctx, email, goodPassword, username, false)
	if err != nil {
		t.Fatalf("CreateUser(%s): %v", email, err)
	}
	return u
}

// session logs u in with goodPassword and starts a session.
func (v *env) session(t *testing.T, email string) (account.User, account.Session) {
	t.Helper()
	u, err := v.svc.Authenticate(v.ctx, email, goodPassword)
	if err != nil {
		t.Fatalf("Authenticate(%s): %v", email, err)
	}
	s, err := v.svc.StartSession(v.ctx, u)
	if err != nil {
		t.Fatalf("StartSession: %v", err)
	}
	return u, s
}

// register registers email with goodPassword and returns the user, the
// activation mail and the uid and token its link carries.
func (v *env) register(t *testing.T, email string) (account.User, mailtest.Received, string, string) {
	t.Helper()
	u, _, err := v.svc.Register(v.ctx, account.RegisterInput{Email: email, Password: goodPassword, ConfirmedPassword: goodPassword})
	if err != nil {
		t.Fatalf("Register(%s): %v", email, err)
	}
	m := v.waitMail(t, u.Email, mail.SubjectActivation, 1)
	uid, token := linkParams(t, m, "http://front.test/pages/auth/activate.html")
	return u, m, uid, token
}

// mails returns the messages received for to with subject.
func (v *env) mails(to, subject string) []mailtest.Received {
	var out []mailtest.Received
	for _, m := range v.sink.Messages() {
		if m.Subject != subject {
			continue
		}
		for _, r := range m.To {
			if strings.EqualFold(r, to) {
				out = append(out, m)
				break
			}
		}
	}
	return out
}

// waitMail waits until n messages for to with subject arrived and returns
// the n-th.
func (v *env) waitMail(t *testing.T, to, subject string, n int) mailtest.Received {
	t.Helper()
	deadline := time.Now().Add(mailWait)
	for {
		if got := v.mails(to, subject); len(got) >= n {
			return got[n-1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no mail #%d %q to %s within %s (%d received in all)", n, subject, to, mailWait, len(v.sink.Messages()))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// linkParams checks that the mail's first link is built from the template
// at base and returns its uid and token.
func linkParams(t *testing.T, m mailtest.Received, base string) (uid, token string) {
	t.Helper()
	link := mailtest.FirstLink(m.Text)
	u, err := url.Parse(link)
	if err != nil {
		t.Fatalf("mail link %q: %v", link, err)
	}
	q := u.Query()
	uid, token = q.Get("uid"), q.Get("token")
	if want := base + "?uid=" + uid + "&token=" + token; link != want || uid == "" || token == "" {
		t.Fatalf("mail link = %q, want the template's shape %s?uid=...&token=...", link, base)
	}
	if !strings.Contains(m.HTML, "uid="+uid) || !strings.Contains(m.HTML, "token="+token) {
		t.Errorf("HTML part does not carry the same link:\n%s", m.HTML)
	}
	return uid, token
}

type jobRow struct {
	Kind string
	Args map[string]any
}

// jobRows reads what was enqueued, straight from River's table.
func (v *env) jobRows(t *testing.T) []jobRow {
	t.Helper()
	rows, err := v.db.Query(v.ctx, `SELECT kind, args FROM river_job ORDER BY id`)
	if err != nil {
		t.Fatalf("query river_job: %v", err)
	}
	defer rows.Close()
	var out []jobRow
	for rows.Next() {
		var (
			r   jobRow
			raw []byte
		)
		if err := rows.Scan(&r.Kind, &raw); err != nil {
			t.Fatalf("scan river_job: %v", err)
		}
		if err := json.Unmarshal(raw, &r.Args); err != nil {
			t.Fatalf("river_job args %q: %v", raw, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func (v *env) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	if err := v.db.QueryRow(v.ctx, query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func (v *env) exec(t *testing.T, query string, args ...any) {
	t.Helper()
	if _, err := v.db.Exec(v.ctx, query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// validationFields returns the fields of a *ValidationError, failing the
// test for any other error.
func validationFields(t *testing.T, err error) map[string][]string {
	t.Helper()
	var verr *account.ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("error = %v (%T), want *account.ValidationError", err, err)
	}
	return verr.Fields
}

func wantErr(t *testing.T, what string, got, want error) {
	t.Helper()
	if !errors.Is(got, want) {
		t.Fatalf("%s: error = %v, want %v", what, got, want)
	}
}
