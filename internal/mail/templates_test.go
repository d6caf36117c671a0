package mail_test

import (
	"html"
	"strings"
	"testing"

	"plaza/internal/mail"
	"plaza/internal/mail/mailtest"
)

func TestTemplatesSubjectsAndLinks(t *testing.T) {
	t.Parallel()
	const link = "http://localhost:5500/pages/auth/confirm_password.html?uid=MQ&token=abc-123"
	cases := []struct {
		name    string
		build   func(to, username, link string) mail.Message
		subject string
	}{
		{"activation", mail.ActivationMail, "Confirm your email"},
		{"reset", mail.PasswordResetMail, "Reset your password"},
	}
	for _, tc := range cases {
		m := tc.build("alice@example.com", "alice", link)
		if m.To != "alice@example.com" {
			t.Errorf("%s: To = %q", tc.name, m.To)
		}
		if m.Subject != tc.subject {
			t.Errorf("%s: Subject = %q, want %q", tc.name, m.Subject, tc.subject)
		}
		if got := mailtest.FirstLink(m.Text); got != link {
			t.Errorf("%s: first link in text = %q, want %q", tc.name, got, link)
		}
		if !strings.Contains(m.Text, "Hi alice,") {
			t.Errorf("%s: text greeting lacks the username:\n%s", tc.name, m.Text)
		}
		if !strings.Contains(m.HTML, `href="`+html.EscapeString(link)+`"`) {
			t.Errorf("%s: html lacks href to the link:\n%s", tc.name, m.HTML)
		}
		if !strings.Contains(m.HTML, "Hi alice,") {
			t.Errorf("%s: html greeting lacks the username", tc.name)
		}
	}
}

func TestTemplatesEscapeHTML(t *testing.T) {
	t.Parallel()
	const evil = `<script>alert("x")</script>`
	for _, m := range []mail.Message{
		mail.ActivationMail("a@example.com", evil, "https://x.test/a"),
		mail.PasswordResetMail("a@example.com", evil, "https://x.test/a"),
	} {
		if strings.Contains(strings.ToLower(m.HTML), "<script") {
			t.Errorf("%s: html part contains an unescaped <script>:\n%s", m.Subject, m.HTML)
		}
		if !strings.Contains(m.HTML, "&lt;script&gt;") {
			t.Errorf("%s: html part lacks the escaped username:\n%s", m.Subject, m.HTML)
		}
		// The text part is not HTML; it shows the name as typed.
		if !strings.Contains(m.Text, evil) {
			t.Errorf("%s: text part altered the username:\n%s", m.Subject, m.Text)
		}
	}

	// A link that is not http(s) must not become a live javascript: URL.
	m := mail.ActivationMail("a@example.com", "a", `javascript:alert(1)`)
	if strings.Contains(m.HTML, `href="javascript:`) {
		t.Errorf("html part has a javascript: href:\n%s", m.HTML)
	}
	// An attribute break-out attempt through the link stays inside href.
	m = mail.ActivationMail("a@example.com", "a", `https://x.test/"><img src=x onerror=alert(1)>`)
	if strings.Contains(m.HTML, "<img") {
		t.Errorf("link broke out of its attribute:\n%s", m.HTML)
	}
}

func TestTemplatesGreeting(t *testing.T) {
	t.Parallel()
	m := mail.ActivationMail("a@example.com", "", "https://x.test/a")
	if !strings.Contains(m.Text, "Hi there,") || !strings.Contains(m.HTML, "Hi there,") {
		t.Errorf("empty username should greet generically:\n%s", m.Text)
	}
	// A name with line breaks cannot forge extra lines in the text part.
	m = mail.ActivationMail("a@example.com", "eve\n\nhttps://evil.test/phish", "https://x.test/a")
	if !strings.HasPrefix(m.Text, "Hi eve https://evil.test/phish,\n") {
		t.Errorf("greeting line = %q", strings.SplitN(m.Text, "\n", 2)[0])
	}
}

func TestFirstLink(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"":                               "",
		"no links here":                  "",
		"open https://a.test/x?y=1&z=2.": "https://a.test/x?y=1&z=2",
		"see (http://a.test/p) now":      "http://a.test/p",
		"first http://1.test then https://2.test": "http://1.test",
		`<a href="https://h.test/a">`:             "https://h.test/a",
		"ftp://nope.test and mailto:x@y":          "",
		"line\nhttps://a.test/t\nnext":            "https://a.test/t",
	}
	for in, want := range cases {
		if got := mail.FirstLink(in); got != want {
			t.Errorf("FirstLink(%q) = %q, want %q", in, got, want)
		}
	}
}
