package mail_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"mime"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"plaza/internal/mail"
	"plaza/internal/mail/mailtest"
)

const testFrom = "Plaza <no-reply@plaza.test>"

// logRecord is one JSON line of the outbox logger.
type logRecord struct {
	Msg     string `json:"msg"`
	Level   string `json:"level"`
	To      string `json:"to"`
	Subject string `json:"subject"`
	File    string `json:"file"`
	Link    string `json:"link"`
}

func decodeLog(t *testing.T, buf *bytes.Buffer) []logRecord {
	t.Helper()
	var out []logRecord
	for line := range strings.Lines(buf.String()) {
		var r logRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, r)
	}
	return out
}

var emlName = regexp.MustCompile(`^\d{8}T\d{6}\.\d{9}Z-[a-z0-9]{16}\.eml$`)

func TestOutboxWritesParseableMultipartMailAndLogsLink(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data", "outbox") // does not exist yet
	var logs bytes.Buffer
	ob, err := mail.NewOutbox(dir, testFrom, slog.New(slog.NewJSONHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(dir)
	if err != nil {
		t.Fatalf("outbox dir not created: %v", err)
	}
	if perm := info.Mode().Perm(); perm != 0o700 {
		t.Errorf("outbox dir mode = %o, want 700", perm)
	}

	link := "http://localhost:5500/pages/auth/activate.html?uid=MQ&token=c3x-9f2a"
	if err := ob.Send(context.Background(), mail.ActivationMail("alice@example.com", "alice", link)); err != nil {
		t.Fatalf("Send: %v", err)
	}

	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("outbox holds %d entries, want exactly 1 (no temporary files left): %v", len(entries), entries)
	}
	name := entries[0].Name()
	if !emlName.MatchString(name) {
		t.Errorf("file name %q does not match %s", name, emlName)
	}
	path := filepath.Join(dir, name)
	if fi, err := os.Stat(path); err != nil {
		t.Fatal(err)
	} else if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		t.Errorf("eml mode = %o, want no group/other access", perm)
	}

	got, err := mailtest.ReadEML(path)
	if err != nil {
		t.Fatalf("ReadEML: %v", err)
	}
	if got.Subject != "Confirm your email" {
		t.Errorf("Subject = %q", got.Subject)
	}
	if got.From != "no-reply@plaza.test" {
		t.Errorf("From = %q", got.From)
	}
	if len(got.To) != 1 || got.To[0] != "alice@example.com" {
		t.Errorf("To = %q", got.To)
	}
	if !strings.Contains(got.Text, link) {
		t.Errorf("text part lacks the link:\n%s", got.Text)
	}
	if mailtest.FirstLink(got.Text) != link {
		t.Errorf("FirstLink(text) = %q, want %q", mailtest.FirstLink(got.Text), link)
	}
	if !strings.Contains(got.HTML, strings.ReplaceAll(link, "&", "&amp;")) {
		t.Errorf("html part lacks the (escaped) link:\n%s", got.HTML)
	}

	h := got.Header
	if v := h.Get("MIME-Version"); v != "1.0" {
		t.Errorf("MIME-Version = %q", v)
	}
	mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" || params["boundary"] == "" {
		t.Errorf("Content-Type = %q (%v), want multipart/alternative with boundary", h.Get("Content-Type"), err)
	}
	if d, err := h.Date(); err != nil {
		t.Errorf("Date header %q: %v", h.Get("Date"), err)
	} else if time.Since(d) > time.Minute || time.Until(d) > time.Minute {
		t.Errorf("Date = %v, not now", d)
	}
	if id := h.Get("Message-ID"); !regexp.MustCompile(`^<[^<>@\s]+@plaza\.test>$`).MatchString(id) {
		t.Errorf("Message-ID = %q, want <unique@plaza.test>", id)
	}

	recs := decodeLog(t, &logs)
	if len(recs) != 1 {
		t.Fatalf("got %d log lines, want 1: %s", len(recs), logs.String())
	}
	r := recs[0]
	if r.Msg != "mail written to outbox" || r.Level != "INFO" {
		t.Errorf("log msg/level = %q/%q", r.Msg, r.Level)
	}
	if r.To != "alice@example.com" || r.Subject != "Confirm your email" || r.File != path || r.Link != link {
		t.Errorf("log attrs = %+v, want to, subject, file=%s, link=%s", r, path, link)
	}
}

func TestOutboxFileNamesSortByTimeAndLatestEML(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ob, err := mail.NewOutbox(dir, testFrom, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i, link := range []string{"https://a.test/1", "https://a.test/2", "https://a.test/3"} {
		to := "bob@example.com"
		if i == 2 {
			to = "carol@example.com" // the newest file is for someone else
		}
		if err := ob.Send(ctx, mail.PasswordResetMail(to, "bob", link)); err != nil {
			t.Fatal(err)
		}
	}
	got := mailtest.LatestEML(t, dir, "BOB@example.com")
	if l := mailtest.FirstLink(got.Text); l != "https://a.test/2" {
		t.Errorf("LatestEML(bob) link = %q, want the second mail's", l)
	}
	if got.Subject != "Reset your password" {
		t.Errorf("Subject = %q", got.Subject)
	}
	names, _ := filepath.Glob(filepath.Join(dir, "*.eml"))
	if len(names) != 3 {
		t.Fatalf("%d files, want 3", len(names))
	}
	// Glob sorts lexically; that order must be the sending order.
	for i, want := range []string{"https://a.test/1", "https://a.test/2", "https://a.test/3"} {
		r, err := mailtest.ReadEML(names[i])
		if err != nil {
			t.Fatal(err)
		}
		if l := mailtest.FirstLink(r.Text); l != want {
			t.Errorf("file %d link = %q, want %q", i, l, want)
		}
	}
}

func TestOutboxRejectsBadInput(t *testing.T) {
	t.Parallel()
	if _, err := mail.NewOutbox(t.TempDir(), "not an address", nil); err == nil {
		t.Error("NewOutbox accepted an invalid sender")
	}
	if _, err := mail.NewOutbox("", testFrom, nil); err == nil {
		t.Error("NewOutbox accepted an empty directory")
	}

	dir := t.TempDir()
	ob, err := mail.NewOutbox(dir, testFrom, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := ob.Send(ctx, mail.ActivationMail("a@example.com", "a", "https://x.test/")); err == nil {
		t.Error("Send with a cancelled context succeeded")
	}
	for _, to := range []string{"", "no-at-sign", "a@example.com, b@example.com"} {
		if err := ob.Send(context.Background(), mail.ActivationMail(to, "a", "https://x.test/")); err == nil {
			t.Errorf("Send to %q succeeded", to)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("failed sends left files: %v", entries)
	}
}
