package mail

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// DefaultSMTPTimeout bounds one Send when the caller's context has no
// deadline, so a relay that accepts the connection and then hangs cannot
// block a request handler or a job worker forever.
const DefaultSMTPTimeout = 15 * time.Second

// SMTP is a Sender that delivers through an SMTP relay. It opens a fresh
// connection per Send: transactional mail is rare (registration, password
// reset), and a pooled connection would need keep-alive handling and
// reconnects that buy nothing at that rate. It holds no mutable state and
// is safe for concurrent use.
type SMTP struct {
	host        string
	port        int
	implicitTLS bool
	tlsPolicy   gomail.TLSPolicy
	user, pass  string
	auth        bool
	from        string
	tlsConfig   *tls.Config
	timeout     time.Duration
	display     string // the URL with the password replaced, for errors and logs
}

var _ Sender = (*SMTP)(nil)

// SMTPOption configures NewSMTP.
type SMTPOption func(*SMTP)

// WithTLSConfig sets the TLS configuration for STARTTLS and implicit TLS,
// typically so tests can trust a self-signed certificate. The config is
// cloned; if it has no ServerName, the URL's host is used so that the
// certificate is still verified against the host being dialled.
func WithTLSConfig(cfg *tls.Config) SMTPOption {
	return func(s *SMTP) {
		if cfg != nil {
			s.tlsConfig = cfg.Clone()
		}
	}
}

// NewSMTP parses rawURL and returns an SMTP sender. Accepted forms:
//
//	smtp://[user:pass@]host[:port]   port 25 by default; STARTTLS is used when the
//	                                 server offers it, unless ?starttls=off;
//	                                 ?starttls=required refuses servers without it
//	smtps://[user:pass@]host[:port]  implicit TLS, port 465 by default
//
// User and password are percent-decoded. SMTP AUTH (PLAIN, else LOGIN) is
// attempted only when a user is given; credentials are never sent over an
// unencrypted connection except to a loopback address.
//
// No error from NewSMTP or Send contains the password: URLs come from
// configuration that ends up in logs, and so do errors.
func NewSMTP(rawURL, from string, opts ...SMTPOption) (*SMTP, error) {
	s := &SMTP{from: from, timeout: DefaultSMTPTimeout}
	if err := s.parseURL(rawURL); err != nil {
		return nil, err
	}
	if err := validateFrom(from); err != nil {
		return nil, err
	}
	for _, opt := range opts {
		opt(s)
	}
	if s.tlsConfig == nil {
		s.tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if s.tlsConfig.ServerName == "" {
		s.tlsConfig.ServerName = s.host
	}
	return s, nil
}

// parseURL fills s from rawURL. The user info is split off and decoded by
// hand before net/url sees the rest, because net/url errors quote the whole
// input (or fragments of it, e.g. a bad escape) and would leak the password.
func (s *SMTP) parseURL(rawURL string) error {
	scheme, rest, ok := strings.Cut(strings.TrimSpace(rawURL), "://")
	if !ok || scheme == "" {
		return errors.New("mail: invalid SMTP URL: missing scheme, want smtp:// or smtps://")
	}
	scheme = strings.ToLower(scheme)
	switch scheme {
	case "smtp":
		s.port = 25
	case "smtps":
		s.port = 465
		s.implicitTLS = true
	default:
		return fmt.Errorf("mail: invalid SMTP URL: unsupported scheme %q, want smtp or smtps", scheme)
	}

	// The last '@' ends the user info: an SMTP URL has no '@' after its host,
	// and this way an unencoded '@', '/', '?' or '#' in a password still
	// parses (and never reaches an error message).
	var userinfo string
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		userinfo, rest = rest[:i], rest[i+1:]
		rawUser, rawPass, hasPass := strings.Cut(userinfo, ":")
		user, err := url.PathUnescape(rawUser)
		if err != nil {
			return errors.New("mail: invalid SMTP URL: user name is not valid percent-encoding")
		}
		pass, err := url.PathUnescape(rawPass)
		if err != nil {
			return errors.New("mail: invalid SMTP URL: password is not valid percent-encoding")
		}
		if user == "" {
			if hasPass {
				return errors.New("mail: invalid SMTP URL: password given without a user name")
			}
			// "smtp://@host" — treat as no credentials.
		} else {
			s.user, s.pass, s.auth = user, pass, true
		}
	}

	authority := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority = rest[:i]
	}
	host, port, err := splitHostPort(authority)
	if err != nil {
		return fmt.Errorf("mail: invalid SMTP URL: %w", err)
	}
	s.host = host
	if port != 0 {
		s.port = port
	}
	u, err := url.Parse(scheme + "://" + rest)
	if err != nil {
		// Not even net/url's inner error is quoted: it can contain fragments
		// of the input, and the input is a configuration secret's neighbour.
		return errors.New("mail: invalid SMTP URL: malformed host or query")
	}
	if u.Path != "" && u.Path != "/" {
		return fmt.Errorf("mail: invalid SMTP URL: unexpected path %q", u.Path)
	}
	if u.Fragment != "" {
		return errors.New("mail: invalid SMTP URL: unexpected fragment")
	}

	s.tlsPolicy = gomail.TLSOpportunistic
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return fmt.Errorf("mail: invalid SMTP URL: query: %w", err)
	}
	for key, vals := range q {
		if key != "starttls" {
			return fmt.Errorf("mail: invalid SMTP URL: unknown parameter %q (only starttls is supported)", key)
		}
		if s.implicitTLS {
			return errors.New("mail: invalid SMTP URL: starttls does not apply to smtps://, which is TLS from the start")
		}
		switch v := strings.ToLower(vals[len(vals)-1]); v {
		case "", "opportunistic", "auto":
			s.tlsPolicy = gomail.TLSOpportunistic
		case "off", "false", "no", "none":
			s.tlsPolicy = gomail.NoTLS
		case "required", "mandatory", "on", "true", "yes":
			s.tlsPolicy = gomail.TLSMandatory
		default:
			return fmt.Errorf("mail: invalid SMTP URL: starttls=%q, want off, opportunistic or required", v)
		}
	}

	display := url.URL{Scheme: scheme, Host: net.JoinHostPort(s.host, strconv.Itoa(s.port)), RawQuery: u.RawQuery}
	switch {
	case s.auth && s.pass != "":
		display.User = url.UserPassword(s.user, "xxxxx")
	case s.auth:
		display.User = url.User(s.user)
	}
	s.display = display.String()
	return nil
}

// String returns the relay URL with the password masked, for logging the
// configuration at startup.
func (s *SMTP) String() string { return s.display }

// Send delivers m over a new connection. ctx bounds the whole exchange
// (dial, TLS, AUTH, DATA): when it is cancelled or its deadline passes the
// connection is closed, and the returned error wraps ctx.Err() so callers
// can tell a timeout from a rejection. Without a deadline, DefaultSMTPTimeout
// applies.
func (s *SMTP) Send(ctx context.Context, m Message) error {
	msg, err := m.compose(s.from, time.Now().UTC())
	if err != nil {
		return s.redact(err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.timeout)
		defer cancel()
	}
	addr := net.JoinHostPort(s.host, strconv.Itoa(s.port))
	deadline, _ := ctx.Deadline()
	wrap := func(err error) error {
		cerr := ctx.Err()
		if cerr == nil && !time.Now().Before(deadline) {
			cerr = context.DeadlineExceeded // the deadline passed; ctx's timer just has not fired yet
		}
		if cerr != nil && !errors.Is(err, cerr) {
			return s.redact(fmt.Errorf("mail: smtp send to %s via %s: %w: %w", m.To, addr, cerr, err))
		}
		return s.redact(fmt.Errorf("mail: smtp send to %s via %s: %w", m.To, addr, err))
	}
	remaining := time.Until(deadline)
	if err := ctx.Err(); err != nil || remaining <= 0 {
		if err == nil {
			err = context.DeadlineExceeded
		}
		return wrap(err)
	}

	// go-mail bounds the dial with ctx but the conversation only with a fixed
	// per-connection timeout, so the connection is also closed the moment ctx
	// is done; that unblocks any read or write in progress. The dial function
	// runs synchronously inside DialAndSendWithContext, so stopClose needs no lock.
	var stopClose func() bool
	dial := func(dctx context.Context, network, _ string) (net.Conn, error) {
		var conn net.Conn
		var err error
		nd := &net.Dialer{}
		if s.implicitTLS {
			td := &tls.Dialer{NetDialer: nd, Config: s.tlsConfig}
			conn, err = td.DialContext(dctx, network, addr)
		} else {
			conn, err = nd.DialContext(dctx, network, addr)
		}
		if err != nil {
			return nil, err
		}
		stopClose = context.AfterFunc(ctx, func() { _ = conn.Close() })
		return conn, nil
	}

	opts := []gomail.Option{
		gomail.WithPort(s.port),
		// A little slack so that ctx, not go-mail's own I/O timeout, ends a
		// stalled exchange and the error says so.
		gomail.WithTimeout(remaining + time.Second),
		gomail.WithDialContextFunc(dial),
		gomail.WithTLSConfig(s.tlsConfig),
		gomail.WithTLSPolicy(s.tlsPolicy),
	}
	if s.implicitTLS {
		// Tells go-mail the connection is already encrypted, so it neither
		// attempts STARTTLS nor treats the link as plaintext.
		opts = append(opts, gomail.WithSSL())
	}
	if s.auth {
		opts = append(opts,
			gomail.WithUsername(s.user),
			gomail.WithPassword(s.pass),
			gomail.WithOpportunisticSMTPAuth(gomail.SMTPAuthPlain, gomail.SMTPAuthLogin),
		)
	}
	client, err := gomail.NewClient(s.host, opts...)
	if err != nil {
		return wrap(fmt.Errorf("configure client: %w", err))
	}
	err = client.DialAndSendWithContext(ctx, msg)
	if stopClose != nil {
		stopClose()
	}
	if err != nil {
		return wrap(err)
	}
	return nil
}

// redact masks the password (and its common encodings: percent-escaped,
// base64, and the base64 PLAIN blob) in err's message. Servers and libraries
// sometimes echo what they received, and an error is a log line waiting to
// happen. The original error stays reachable through Unwrap for errors.Is/As.
func (s *SMTP) redact(err error) error {
	if err == nil || s.pass == "" {
		return err
	}
	msg := err.Error()
	secrets := []string{
		s.pass,
		url.PathEscape(s.pass),
		url.QueryEscape(s.pass),
		base64.StdEncoding.EncodeToString([]byte(s.pass)),
		base64.StdEncoding.EncodeToString([]byte("\x00" + s.user + "\x00" + s.pass)),
	}
	red := msg
	for _, sec := range secrets {
		red = strings.ReplaceAll(red, sec, "xxxxx")
	}
	if red == msg {
		return err
	}
	return &redactedError{msg: red, err: err}
}

// redactedError carries an error whose message had a secret masked.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// splitHostPort splits an URL authority (without user info) into host and
// port (0 when absent), with errors that say what is wrong without quoting
// the input, which may be a mistyped credential.
func splitHostPort(authority string) (host string, port int, err error) {
	portStr, hasPort := "", false
	if strings.HasPrefix(authority, "[") {
		end := strings.IndexByte(authority, ']')
		if end < 0 {
			return "", 0, errors.New("unterminated IPv6 address, missing ']'")
		}
		host = authority[1:end]
		switch after := authority[end+1:]; {
		case after == "":
		case after[0] == ':':
			portStr, hasPort = after[1:], true
		default:
			return "", 0, errors.New("unexpected characters after IPv6 address")
		}
	} else {
		host = authority
		if i := strings.LastIndexByte(authority, ':'); i >= 0 {
			host, portStr, hasPort = authority[:i], authority[i+1:], true
			if strings.Contains(host, ":") {
				return "", 0, errors.New("IPv6 address must be enclosed in brackets")
			}
		}
	}
	if host == "" {
		return "", 0, errors.New("missing host")
	}
	if hasPort {
		n, err := strconv.Atoi(portStr)
		if err != nil || n < 1 || n > 65535 || portStr[0] == '+' {
			return "", 0, errors.New("port must be a number between 1 and 65535")
		}
		port = n
	}
	return host, port, nil
}
