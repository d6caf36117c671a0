package mailtest

import (
	"fmt"
	"net/smtp"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A hand-written message in encodings Plaza's own sender does not use
// (base64, nested multipart, RFC 2047 subject) proves the parser decodes
// rather than just matching what go-mail happens to produce.
const handMade = "From: A <a@example.com>\r\n" +
	"To: B <b@example.com>, c@example.com\r\n" +
	"Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: multipart/mixed; boundary=outer\r\n" +
	"\r\n" +
	"--outer\r\n" +
	"Content-Type: multipart/alternative; boundary=inner\r\n" +
	"\r\n" +
	"--inner\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"Content-Transfer-Encoding: base64\r\n" +
	"\r\n" +
	"SGVsbG8sIHNlZSBodHRwczovL3gudGVzdC9hP2I9MSZj\r\nPTIu\r\n" + // "Hello, see https://x.test/a?b=1&c=2."
	"--inner\r\n" +
	"Content-Type: text/html; charset=utf-8\r\n" +
	"Content-Transfer-Encoding: quoted-printable\r\n" +
	"\r\n" +
	"<p class=3D\"x\">Hello, a very long line that is soft-=\r\nwrapped</p>\r\n" +
	"--inner--\r\n" +
	"--outer--\r\n"

func TestReadEMLDecodes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.eml")
	if err := os.WriteFile(path, []byte(handMade), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := ReadEML(path)
	if err != nil {
		t.Fatal(err)
	}
	if r.Subject != "Grüße" {
		t.Errorf("Subject = %q", r.Subject)
	}
	if r.From != "a@example.com" || fmt.Sprint(r.To) != "[b@example.com c@example.com]" {
		t.Errorf("From/To = %q/%q", r.From, r.To)
	}
	if r.Text != "Hello, see https://x.test/a?b=1&c=2." {
		t.Errorf("Text = %q", r.Text)
	}
	if r.HTML != `<p class="x">Hello, a very long line that is soft-wrapped</p>` {
		t.Errorf("HTML = %q", r.HTML)
	}
	if FirstLink(r.Text) != "https://x.test/a?b=1&c=2" {
		t.Errorf("FirstLink = %q", FirstLink(r.Text))
	}

	if _, err := ReadEML(filepath.Join(t.TempDir(), "missing.eml")); err == nil {
		t.Error("ReadEML of a missing file succeeded")
	}
	bad := filepath.Join(t.TempDir(), "bad.eml")
	_ = os.WriteFile(bad, []byte("Content-Type: multipart/alternative\r\n\r\nno boundary"), 0o600)
	if _, err := ReadEML(bad); err == nil {
		t.Error("ReadEML accepted multipart without boundary")
	}
}

// fatalRecorder stands in for a test so the helpers' failure path can be
// observed without failing this test.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Helper() {}
func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
}

func TestSinkWithStdlibClient(t *testing.T) {
	sink := StartSink(t)
	body := "From: a@example.com\r\nTo: b@example.com\r\nSubject: hi\r\n\r\nplain body https://x.test/q\r\n"
	if err := smtp.SendMail(sink.Addr(), nil, "a@example.com", []string{"b@example.com"}, []byte(body)); err != nil {
		t.Fatalf("SendMail: %v", err)
	}
	got := sink.WaitFor(t, "B@Example.com", 5*time.Second)
	if got.Subject != "hi" || got.Text != "plain body https://x.test/q\n" || got.From != "a@example.com" {
		t.Errorf("got %+v", got)
	}

	rec := &fatalRecorder{TB: t}
	start := time.Now()
	sink.WaitFor(rec, "nobody@example.com", 100*time.Millisecond)
	if rec.msg == "" || !strings.Contains(rec.msg, "nobody@example.com") {
		t.Errorf("WaitFor did not fail for a missing recipient: %q", rec.msg)
	}
	if el := time.Since(start); el < 100*time.Millisecond || el > 2*time.Second {
		t.Errorf("WaitFor waited %v, want about 100ms", el)
	}

	sink.FailNext(2)
	for i := range 2 {
		if err := smtp.SendMail(sink.Addr(), nil, "a@example.com", []string{"c@example.com"}, []byte(body)); err == nil || !strings.HasPrefix(err.Error(), "554") {
			t.Errorf("delivery %d after FailNext(2) = %v, want a 554", i, err)
		}
	}
	if err := smtp.SendMail(sink.Addr(), nil, "a@example.com", []string{"c@example.com"}, []byte(body)); err != nil {
		t.Errorf("third delivery: %v", err)
	}
	if n := len(sink.Messages()); n != 2 {
		t.Errorf("Messages() = %d, want 2", n)
	}
}

func TestSinkWaitForSeesLateMail(t *testing.T) {
	sink := StartSink(t)
	go func() {
		time.Sleep(100 * time.Millisecond)
		_ = smtp.SendMail(sink.Addr(), nil, "a@example.com", []string{"late@example.com"},
			[]byte("Subject: late\r\n\r\nbody\r\n"))
	}()
	if got := sink.WaitFor(t, "late@example.com", 5*time.Second); got.Subject != "late" {
		t.Errorf("Subject = %q", got.Subject)
	}
}

func TestLatestEMLFailsWhenNoneArrives(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "20260101T000000.000000000Z-aaaa.eml"), []byte(handMade), 0o600); err != nil {
		t.Fatal(err)
	}
	rec := &fatalRecorder{TB: t}
	latestEML(rec, dir, "someone-else@example.com", 100*time.Millisecond)
	if !strings.Contains(rec.msg, "someone-else@example.com") {
		t.Errorf("LatestEML did not fail: %q", rec.msg)
	}
	if got := LatestEML(t, dir, "c@example.com"); got.Subject != "Grüße" {
		t.Errorf("Subject = %q", got.Subject)
	}
}

func TestSinkURL(t *testing.T) {
	plain := StartSink(t)
	if want := "smtp://" + plain.Addr(); plain.URL() != want {
		t.Errorf("URL = %q, want %q", plain.URL(), want)
	}
	tlsSink := StartSink(t, WithImplicitTLS(), WithAuth("u", "p w"))
	if want := "smtps://u:p%20w@" + tlsSink.Addr(); tlsSink.URL() != want {
		t.Errorf("URL = %q, want %q", tlsSink.URL(), want)
	}
	if tlsSink.TLSConfig() == nil || tlsSink.TLSConfig().RootCAs == nil {
		t.Error("TLSConfig has no roots")
	}
}
