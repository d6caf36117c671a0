// Package mail delivers Plaza's transactional mail (activation, password
// reset). Two Sender implementations exist because the two deployment modes
// need different things: Outbox writes .eml files to a directory so that a
// developer running everything on one machine needs no mail server and can
// click the link from the log, and SMTP hands mail to a real relay in
// production. Both build the same RFC 5322 multipart/alternative message, so
// what a test reads from the outbox is what a user would receive.
package mail

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/mail"
	"regexp"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// Message is one mail: multipart/alternative text + HTML.
//
// Text is required in practice (it is what plain-text clients and the outbox
// log line use); HTML is optional, and a message with only one of the two is
// sent as a single part instead of a one-part alternative.
type Message struct {
	To      string // one recipient, "addr@example.com" or "Name <addr@example.com>"
	Subject string
	Text    string
	HTML    string
}

// Sender delivers mail. Implementations must be safe for concurrent use,
// since request handlers and job workers share one Sender.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// linkRE matches an http(s) URL up to whitespace or a character that cannot
// end a URL in running text (quotes and angle brackets delimit links in
// both plain text and HTML).
var linkRE = regexp.MustCompile(`https?://[^\s<>"'` + "`" + `]+`)

// FirstLink returns the first http(s) URL in text, or "" if there is none.
// Trailing sentence punctuation is dropped, because "open https://x/y." means
// the link https://x/y, not https://x/y. — activation tokens would otherwise
// come out wrong when copied from a log or a test.
func FirstLink(text string) string {
	u := linkRE.FindString(text)
	return strings.TrimRight(u, ".,;:!?)]}")
}

// compose turns m into a go-mail message with all headers a receiving MTA
// expects (From, To, Subject, Date, Message-ID, MIME-Version). It is shared by
// Outbox and SMTP so both produce byte-for-byte the same kind of message.
func (m Message) compose(from string, now time.Time) (*gomail.Msg, error) {
	if strings.TrimSpace(m.To) == "" {
		return nil, errors.New("mail: message has no recipient")
	}
	if m.Text == "" && m.HTML == "" {
		return nil, errors.New("mail: message has neither a text nor an HTML body")
	}
	msg := gomail.NewMsg()
	if err := msg.From(from); err != nil {
		return nil, fmt.Errorf("mail: invalid sender %q: %w", from, err)
	}
	if err := msg.To(m.To); err != nil {
		return nil, fmt.Errorf("mail: invalid recipient %q: %w", m.To, err)
	}
	msg.Subject(m.Subject)
	msg.SetDateWithValue(now)
	msg.SetMessageIDWithValue(messageID(from))
	switch {
	case m.Text != "" && m.HTML != "":
		msg.SetBodyString(gomail.TypeTextPlain, m.Text)
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	case m.Text != "":
		msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	default:
		msg.SetBodyString(gomail.TypeTextHTML, m.HTML)
	}
	return msg, nil
}

// messageID returns a unique Message-ID (without angle brackets) in the
// sender's domain; using the sender's domain rather than the local host name
// keeps internal host names out of outgoing mail and helps spam scoring.
func messageID(from string) string {
	domain := "plaza.invalid"
	if a, err := mail.ParseAddress(from); err == nil {
		if i := strings.LastIndexByte(a.Address, '@'); i >= 0 && i+1 < len(a.Address) {
			domain = a.Address[i+1:]
		}
	}
	return strings.ToLower(rand.Text()) + "@" + domain
}

// validateFrom checks the configured sender once at construction, so a typo
// in PLAZA_MAIL_FROM fails at startup instead of on the first registration.
func validateFrom(from string) error {
	if strings.TrimSpace(from) == "" {
		return errors.New("mail: sender address is empty")
	}
	if _, err := mail.ParseAddress(from); err != nil {
		return fmt.Errorf("mail: invalid sender address %q: %w", from, err)
	}
	return nil
}
