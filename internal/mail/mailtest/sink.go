// Package mailtest provides a real SMTP server (Sink) and .eml readers for
// tests. A real server, rather than a fake Sender, is used so that tests
// exercise the same code path as production: URL parsing, STARTTLS, AUTH,
// MIME encoding and the SMTP dialogue itself.
package mailtest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/mail"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	plazamail "plaza/internal/mail"
)

// Received is one message as the Sink (or ReadEML) saw it.
type Received struct {
	// From is the envelope sender (MAIL FROM) for the Sink, or the From
	// header's address for ReadEML.
	From string
	// To holds the envelope recipients (RCPT TO) for the Sink, or the To
	// header's addresses for ReadEML.
	To      []string
	Subject string // decoded (RFC 2047)
	// Text and HTML are the decoded text/plain and text/html parts (first of
	// each), with CRLF line endings turned into LF.
	Text, HTML string
	Header     mail.Header // top-level headers as received
	Raw        []byte      // the message exactly as received or read
	TLS        bool        // the message arrived over TLS (implicit or STARTTLS); Sink only
	AuthUser   string      // the user that authenticated, "" if none; Sink only
}

// SinkOption configures StartSink.
type SinkOption func(*sinkConfig)

type sinkConfig struct {
	implicitTLS bool
	starttls    bool
	user, pass  string
	mechs       []string
}

// WithImplicitTLS makes the Sink speak TLS from the first byte (smtps://).
func WithImplicitTLS() SinkOption { return func(c *sinkConfig) { c.implicitTLS = true } }

// WithSTARTTLS makes the Sink offer STARTTLS on its plain port.
func WithSTARTTLS() SinkOption { return func(c *sinkConfig) { c.starttls = true } }

// WithAuth makes the Sink require SMTP AUTH (PLAIN and LOGIN) with these
// credentials before it accepts MAIL FROM. AUTH is offered over plaintext
// too, since the Sink only listens on loopback.
func WithAuth(user, pass string) SinkOption {
	return func(c *sinkConfig) { c.user, c.pass = user, pass }
}

// WithAuthMechanisms restricts the AUTH mechanisms the Sink offers (default
// PLAIN and LOGIN), to test that a client falls back correctly.
func WithAuthMechanisms(mechs ...string) SinkOption {
	return func(c *sinkConfig) { c.mechs = mechs }
}

// Sink is an SMTP server on 127.0.0.1 that records every message it
// accepts. It is safe for concurrent use.
type Sink struct {
	cfg       sinkConfig
	srv       *smtp.Server
	addr      string
	clientTLS *tls.Config

	mu       sync.Mutex
	msgs     []Received
	changed  chan struct{} // closed and replaced whenever msgs grows
	failNext int
}

// StartSink starts a Sink on 127.0.0.1 with a random port and stops it when
// the test ends. A self-signed certificate for 127.0.0.1 and localhost is
// always generated, so TLSConfig works whatever the options.
func StartSink(t testing.TB, opts ...SinkOption) *Sink {
	t.Helper()
	s := &Sink{changed: make(chan struct{})}
	for _, o := range opts {
		o(&s.cfg)
	}
	if s.cfg.mechs == nil {
		s.cfg.mechs = []string{sasl.Plain, sasl.Login}
	}

	cert, pool, err := selfSigned()
	if err != nil {
		t.Fatalf("mailtest: certificate: %v", err)
	}
	serverTLS := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	s.clientTLS = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("mailtest: listen: %v", err)
	}
	s.addr = ln.Addr().String()

	s.srv = smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &session{sink: s, conn: c}, nil
	}))
	s.srv.Domain = "localhost"
	s.srv.ReadTimeout = 10 * time.Second
	s.srv.WriteTimeout = 10 * time.Second
	s.srv.MaxMessageBytes = 10 << 20
	s.srv.MaxRecipients = 50
	s.srv.AllowInsecureAuth = true
	s.srv.ErrorLog = log.New(io.Discard, "", 0)
	if s.cfg.starttls {
		s.srv.TLSConfig = serverTLS
	}
	if s.cfg.implicitTLS {
		ln = tls.NewListener(ln, serverTLS)
	}

	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = s.srv.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = s.srv.Close()
		// Server.Close only knows listeners that Serve has already
		// registered; closing ours too covers a Sink stopped before its
		// goroutine got to run.
		_ = ln.Close()
		<-served
	})
	return s
}

// URL returns the Sink's address as an SMTP URL for mail.NewSMTP: smtps://
// with WithImplicitTLS, smtp:// otherwise, with the credentials of WithAuth
// included.
func (s *Sink) URL() string {
	u := url.URL{Scheme: "smtp", Host: s.addr}
	if s.cfg.implicitTLS {
		u.Scheme = "smtps"
	}
	if s.cfg.user != "" {
		u.User = url.UserPassword(s.cfg.user, s.cfg.pass)
	}
	return u.String()
}

// Addr returns host:port of the Sink.
func (s *Sink) Addr() string { return s.addr }

// TLSConfig returns a client configuration that trusts the Sink's
// certificate (pass it to mail.WithTLSConfig). Each call returns a new copy.
func (s *Sink) TLSConfig() *tls.Config { return s.clientTLS.Clone() }

// Messages returns everything received so far, oldest first.
func (s *Sink) Messages() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Received, len(s.msgs))
	copy(out, s.msgs)
	return out
}

// FailNext makes the next n deliveries fail with a permanent 554 error at
// the end of DATA, so callers can test what happens when mail cannot be sent.
func (s *Sink) FailNext(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext = n
}

// WaitFor returns the first message received for envelope recipient to
// (case-insensitive), waiting up to timeout for it to arrive, and fails the
// test if it does not. It must be called from the test's goroutine.
func (s *Sink) WaitFor(t testing.TB, to string, timeout time.Duration) Received {
	t.Helper()
	want := normalizeAddr(to)
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		s.mu.Lock()
		for _, m := range s.msgs {
			if hasRecipient(m.To, want) {
				s.mu.Unlock()
				return m
			}
		}
		changed := s.changed
		n := len(s.msgs)
		s.mu.Unlock()
		select {
		case <-changed:
		case <-timer.C:
			t.Fatalf("mailtest: no mail to %s within %s (%d other message(s) received)", to, timeout, n)
			return Received{}
		}
	}
}

func (s *Sink) record(r Received) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, r)
	close(s.changed)
	s.changed = make(chan struct{})
}

// takeFailure reports whether this delivery should be rejected.
func (s *Sink) takeFailure() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failNext > 0 {
		s.failNext--
		return true
	}
	return false
}

// session is one SMTP connection's state; go-smtp calls it from that
// connection's goroutine only.
type session struct {
	sink     *Sink
	conn     *smtp.Conn
	authUser string
	from     string
	to       []string
}

var _ smtp.AuthSession = (*session)(nil)

func (ss *session) AuthMechanisms() []string {
	if ss.sink.cfg.user == "" {
		return nil
	}
	return ss.sink.cfg.mechs
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	cfg := ss.sink.cfg
	if cfg.user == "" {
		return nil, smtp.ErrAuthUnsupported
	}
	check := func(user, pass string) error {
		if user != cfg.user || pass != cfg.pass {
			return smtp.ErrAuthFailed
		}
		ss.authUser = user
		return nil
	}
	offered := false
	for _, m := range cfg.mechs {
		offered = offered || strings.EqualFold(m, mech)
	}
	if !offered {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	switch strings.ToUpper(mech) {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, user, pass string) error {
			if identity != "" && identity != user {
				return smtp.ErrAuthFailed
			}
			return check(user, pass)
		}), nil
	case sasl.Login:
		return &loginServer{check: check}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if ss.sink.cfg.user != "" && ss.authUser == "" {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
	}
	ss.from = from
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if ss.sink.takeFailure() {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 0, 0}, Message: "Rejected by mailtest sink (FailNext)"}
	}
	rec, err := parse(raw)
	if err != nil {
		// A real MTA would accept it, but a test wants to hear about a
		// message its own code cannot have meant to produce.
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "mailtest sink cannot parse message: " + err.Error()}
	}
	rec.From = ss.from
	rec.To = append([]string(nil), ss.to...)
	_, rec.TLS = ss.conn.TLSConnectionState()
	rec.AuthUser = ss.authUser
	ss.sink.record(rec)
	return nil
}

func (ss *session) Reset() {
	ss.from = ""
	ss.to = nil
}

func (ss *session) Logout() error { return nil }

// loginServer is the server side of the (non-standard but ubiquitous) LOGIN
// SASL mechanism, which go-sasl no longer ships.
type loginServer struct {
	check    func(user, pass string) error
	step     int
	username string
}

func (l *loginServer) Next(response []byte) (challenge []byte, done bool, err error) {
	switch l.step {
	case 0:
		l.step++
		if len(response) > 0 { // initial response carries the user name
			l.username = string(response)
			l.step++
			return []byte("Password:"), false, nil
		}
		return []byte("Username:"), false, nil
	case 1:
		l.step++
		l.username = string(response)
		return []byte("Password:"), false, nil
	case 2:
		l.step++
		return nil, true, l.check(l.username, string(response))
	}
	return nil, false, errors.New("unexpected client response")
}

// selfSigned makes a throwaway ECDSA certificate for the loopback addresses
// and a pool that trusts it.
func selfSigned() (tls.Certificate, *x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "mailtest sink"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("create certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("parse certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool, nil
}

// FirstLink returns the first http(s) URL in a mail body, "" if none.
func FirstLink(text string) string { return plazamail.FirstLink(text) }

func normalizeAddr(s string) string {
	if a, err := mail.ParseAddress(s); err == nil {
		s = a.Address
	}
	return strings.ToLower(strings.TrimSpace(s))
}

func hasRecipient(to []string, want string) bool {
	for _, a := range to {
		if normalizeAddr(a) == want {
			return true
		}
	}
	return false
}

// bytesTrimCR is shared by the parsers: bodies are compared in tests with
// "\n" line endings, whatever the wire used.
func bytesTrimCR(b []byte) string {
	return string(bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")))
}
