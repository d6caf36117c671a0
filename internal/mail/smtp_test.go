package mail_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"plaza/internal/mail"
	"plaza/internal/mail/mailtest"
)

const waitMail = 5 * time.Second

func newSMTP(t *testing.T, rawURL string, opts ...mail.SMTPOption) *mail.SMTP {
	t.Helper()
	s, err := mail.NewSMTP(rawURL, testFrom, opts...)
	if err != nil {
		t.Fatalf("NewSMTP(%q): %v", rawURL, err)
	}
	return s
}

func send(t *testing.T, s mail.Sender, m mail.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Send(ctx, m); err != nil {
		t.Fatalf("Send: %v", err)
	}
}

func TestSMTPDelivery(t *testing.T) {
	t.Parallel()
	const link = "https://plaza.test/pages/auth/activate.html?uid=MQ&token=tok-1"

	cases := []struct {
		name     string
		sinkOpts []mailtest.SinkOption
		query    string
		trust    bool
		wantTLS  bool
		wantUser string
	}{
		{name: "plain", wantTLS: false},
		{name: "starttls opportunistic", sinkOpts: []mailtest.SinkOption{mailtest.WithSTARTTLS()}, trust: true, wantTLS: true},
		{name: "starttls required", sinkOpts: []mailtest.SinkOption{mailtest.WithSTARTTLS()}, query: "?starttls=required", trust: true, wantTLS: true},
		{name: "starttls off", sinkOpts: []mailtest.SinkOption{mailtest.WithSTARTTLS()}, query: "?starttls=off", wantTLS: false},
		{name: "implicit tls", sinkOpts: []mailtest.SinkOption{mailtest.WithImplicitTLS()}, trust: true, wantTLS: true},
		{name: "auth plaintext loopback", sinkOpts: []mailtest.SinkOption{mailtest.WithAuth("alice", "pa55:w@rd/x")}, wantUser: "alice"},
		{name: "auth login only", sinkOpts: []mailtest.SinkOption{mailtest.WithAuth("alice", "pw"), mailtest.WithAuthMechanisms("LOGIN")}, wantUser: "alice"},
		{name: "auth plain only", sinkOpts: []mailtest.SinkOption{mailtest.WithAuth("alice", "pw"), mailtest.WithAuthMechanisms("PLAIN")}, wantUser: "alice"},
		{name: "auth over starttls", sinkOpts: []mailtest.SinkOption{mailtest.WithSTARTTLS(), mailtest.WithAuth("bob", "secret")}, query: "?starttls=required", trust: true, wantTLS: true, wantUser: "bob"},
		{name: "auth over implicit tls", sinkOpts: []mailtest.SinkOption{mailtest.WithImplicitTLS(), mailtest.WithAuth("bob", "secret")}, trust: true, wantTLS: true, wantUser: "bob"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sink := mailtest.StartSink(t, tc.sinkOpts...)
			var opts []mail.SMTPOption
			if tc.trust {
				opts = append(opts, mail.WithTLSConfig(sink.TLSConfig()))
			}
			s := newSMTP(t, sink.URL()+tc.query, opts...)
			send(t, s, mail.ActivationMail("Dave <dave@example.com>", "dave", link))

			got := sink.WaitFor(t, "dave@example.com", waitMail)
			if got.From != "no-reply@plaza.test" {
				t.Errorf("envelope from = %q", got.From)
			}
			if got.Subject != "Confirm your email" {
				t.Errorf("Subject = %q", got.Subject)
			}
			if l := mailtest.FirstLink(got.Text); l != link {
				t.Errorf("link in text = %q, want %q", l, link)
			}
			if !strings.Contains(got.HTML, "token=tok-1") {
				t.Errorf("html part lacks the link:\n%s", got.HTML)
			}
			if got.TLS != tc.wantTLS {
				t.Errorf("delivered over TLS = %v, want %v", got.TLS, tc.wantTLS)
			}
			if got.AuthUser != tc.wantUser {
				t.Errorf("authenticated as %q, want %q", got.AuthUser, tc.wantUser)
			}
			if n := len(sink.Messages()); n != 1 {
				t.Errorf("sink holds %d messages, want 1", n)
			}
		})
	}
}

func TestSMTPTLSFailures(t *testing.T) {
	t.Parallel()
	m := mail.ActivationMail("x@example.com", "x", "https://x.test/")

	t.Run("required but not offered", func(t *testing.T) {
		t.Parallel()
		sink := mailtest.StartSink(t)
		s := newSMTP(t, sink.URL()+"?starttls=required")
		if err := s.Send(context.Background(), m); err == nil || !strings.Contains(err.Error(), "STARTTLS") {
			t.Errorf("Send = %v, want an error about STARTTLS", err)
		}
		if n := len(sink.Messages()); n != 0 {
			t.Errorf("mail was delivered in clear text despite starttls=required")
		}
	})
	t.Run("untrusted certificate starttls", func(t *testing.T) {
		t.Parallel()
		sink := mailtest.StartSink(t, mailtest.WithSTARTTLS())
		s := newSMTP(t, sink.URL()) // no WithTLSConfig: system roots only
		if err := s.Send(context.Background(), m); err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("Send = %v, want a certificate error", err)
		}
	})
	t.Run("untrusted certificate implicit", func(t *testing.T) {
		t.Parallel()
		sink := mailtest.StartSink(t, mailtest.WithImplicitTLS())
		s := newSMTP(t, sink.URL())
		if err := s.Send(context.Background(), m); err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("Send = %v, want a certificate error", err)
		}
	})
}

func TestSMTPFailNext(t *testing.T) {
	t.Parallel()
	sink := mailtest.StartSink(t)
	s := newSMTP(t, sink.URL())
	sink.FailNext(1)
	err := s.Send(context.Background(), mail.ActivationMail("e@example.com", "e", "https://x.test/1"))
	if err == nil {
		t.Fatal("Send succeeded although the server rejected the message")
	}
	if !strings.Contains(err.Error(), "554") || !strings.HasPrefix(err.Error(), "mail: ") {
		t.Errorf("error %q should start with \"mail: \" and carry the server's 554", err)
	}
	if n := len(sink.Messages()); n != 0 {
		t.Errorf("rejected message recorded: %d", n)
	}
	// Only the next one failed.
	send(t, s, mail.ActivationMail("e@example.com", "e", "https://x.test/2"))
	if l := mailtest.FirstLink(sink.WaitFor(t, "e@example.com", waitMail).Text); l != "https://x.test/2" {
		t.Errorf("link = %q", l)
	}
}

// silentListener accepts connections and never says a word, like a
// firewalled or wedged relay.
func silentListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return ln.Addr().String()
}

func TestSMTPHonorsContext(t *testing.T) {
	t.Parallel()
	m := mail.ActivationMail("f@example.com", "f", "https://x.test/")

	for _, scheme := range []string{"smtp", "smtps"} {
		t.Run(scheme+" deadline", func(t *testing.T) {
			t.Parallel()
			s := newSMTP(t, scheme+"://"+silentListener(t))
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			start := time.Now()
			err := s.Send(ctx, m)
			if el := time.Since(start); el > 3*time.Second {
				t.Errorf("Send took %v despite a 200ms deadline", el)
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Send = %v, want it to wrap context.DeadlineExceeded", err)
			}
		})
		t.Run(scheme+" cancel", func(t *testing.T) {
			t.Parallel()
			s := newSMTP(t, scheme+"://"+silentListener(t))
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(150*time.Millisecond, cancel)
			start := time.Now()
			err := s.Send(ctx, m)
			if el := time.Since(start); el > 3*time.Second {
				t.Errorf("Send took %v despite cancellation after 150ms", el)
			}
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Send = %v, want it to wrap context.Canceled", err)
			}
		})
	}
	t.Run("already expired", func(t *testing.T) {
		t.Parallel()
		sink := mailtest.StartSink(t)
		s := newSMTP(t, sink.URL())
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := s.Send(ctx, m); !errors.Is(err, context.Canceled) {
			t.Errorf("Send = %v, want context.Canceled", err)
		}
		if n := len(sink.Messages()); n != 0 {
			t.Errorf("delivered despite a cancelled context")
		}
	})
}

func TestSMTPAuthFailures(t *testing.T) {
	t.Parallel()
	const pass = "Corr3ct-Horse-Battery"
	m := mail.ActivationMail("g@example.com", "g", "https://x.test/")

	t.Run("wrong password", func(t *testing.T) {
		t.Parallel()
		sink := mailtest.StartSink(t, mailtest.WithAuth("alice", pass))
		const wrong = "Wr0ng-Staple-Pass"
		s := newSMTP(t, "smtp://alice:"+wrong+"@"+sink.Addr())
		err := s.Send(context.Background(), m)
		if err == nil {
			t.Fatal("Send with a wrong password succeeded")
		}
		if strings.Contains(err.Error(), wrong) {
			t.Errorf("error leaks the password: %v", err)
		}
		if !strings.Contains(err.Error(), "535") {
			t.Errorf("error %q should carry the server's 535", err)
		}
	})
	t.Run("no credentials", func(t *testing.T) {
		t.Parallel()
		sink := mailtest.StartSink(t, mailtest.WithAuth("alice", pass))
		s := newSMTP(t, "smtp://"+sink.Addr())
		if err := s.Send(context.Background(), m); err == nil {
			t.Fatal("Send without credentials to an AUTH-only server succeeded")
		}
		if n := len(sink.Messages()); n != 0 {
			t.Errorf("delivered without authentication")
		}
	})
	t.Run("server without AUTH", func(t *testing.T) {
		t.Parallel()
		sink := mailtest.StartSink(t)
		s := newSMTP(t, "smtp://alice:"+pass+"@"+sink.Addr())
		err := s.Send(context.Background(), m)
		if err == nil {
			t.Fatal("Send with credentials to a server without AUTH succeeded silently")
		}
		if strings.Contains(err.Error(), pass) {
			t.Errorf("error leaks the password: %v", err)
		}
	})
	t.Run("connection refused", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		_ = ln.Close()
		s := newSMTP(t, "smtp://alice:"+pass+"@"+addr)
		err = s.Send(context.Background(), m)
		if err == nil {
			t.Fatal("Send to a closed port succeeded")
		}
		if strings.Contains(err.Error(), pass) || !strings.Contains(err.Error(), addr) {
			t.Errorf("error should name %s and not the password: %v", addr, err)
		}
	})
}

// echoingServer answers AUTH with a 535 that quotes the credentials back,
// as some badly written relays do, to prove Send masks them.
func echoingServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer func() { _ = c.Close() }()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		r := bufio.NewReader(c)
		_, _ = fmt.Fprint(c, "220 echo ESMTP\r\n")
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimRight(line, "\r\n")
			verb, arg, _ := strings.Cut(line, " ")
			switch strings.ToUpper(verb) {
			case "EHLO", "HELO":
				_, _ = fmt.Fprint(c, "250-echo\r\n250 AUTH PLAIN\r\n")
			case "AUTH":
				_, b64, _ := strings.Cut(arg, " ")
				plain, _ := base64.StdEncoding.DecodeString(b64)
				parts := strings.Split(string(plain), "\x00")
				_, _ = fmt.Fprintf(c, "535 5.7.8 rejected %s (%s) raw=%s\r\n", strings.Join(parts, ":"), b64, parts[len(parts)-1])
			case "QUIT":
				_, _ = fmt.Fprint(c, "221 bye\r\n")
				return
			default:
				_, _ = fmt.Fprint(c, "250 ok\r\n")
			}
		}
	}()
	t.Cleanup(func() { _ = ln.Close(); <-done })
	return ln.Addr().String()
}

func TestSMTPErrorsNeverContainPassword(t *testing.T) {
	t.Parallel()
	const pass = "S3cr3t-Echo-Pw"
	addr := echoingServer(t)
	s := newSMTP(t, "smtp://mallory:"+url.PathEscape(pass)+"@"+addr)
	err := s.Send(context.Background(), mail.ActivationMail("h@example.com", "h", "https://x.test/"))
	if err == nil {
		t.Fatal("Send succeeded against a server that rejects AUTH")
	}
	msg := err.Error()
	b64 := base64.StdEncoding.EncodeToString([]byte("\x00mallory\x00" + pass))
	if strings.Contains(msg, pass) || strings.Contains(msg, b64) {
		t.Errorf("error leaks the password: %s", msg)
	}
	if !strings.Contains(msg, "535") || !strings.Contains(msg, "xxxxx") {
		t.Errorf("error should keep the server's answer with the secret masked: %s", msg)
	}
	if s.String() != "smtp://mallory:xxxxx@"+addr {
		t.Errorf("String() = %q", s.String())
	}
}

func TestNewSMTPRejectsBadURLs(t *testing.T) {
	t.Parallel()
	const pass = "hunter2xyz"
	cases := []struct {
		url, want string
	}{
		{"", "scheme"},
		{"mail.example.com:25", "scheme"},
		{"http://u:" + pass + "@mail.example.com", `unsupported scheme "http"`},
		{"smtp://u:" + pass + "@", "missing host"},
		{"smtp://u:" + pass + "@:587", "missing host"},
		{"smtp://u:" + pass + "@mail.example.com:99999", "port"},
		{"smtp://u:" + pass + "@mail.example.com:0", "port"},
		{"smtp://u:" + pass + "@mail.example.com:smtp", "port"},
		{"smtp://u:" + pass + "@mail.example.com:", "port"},
		{"smtp://u:" + pass, "port"}, // forgot "@host": the password must not be echoed as a port
		{"smtp://u:" + pass + "%zz@mail.example.com", "percent-encoding"},
		{"smtp://:" + pass + "@mail.example.com", "without a user"},
		{"smtp://u:" + pass + "@mail.example.com/relay", "path"},
		{"smtp://u:" + pass + "@mail.example.com?starttls=maybe", "starttls"},
		{"smtp://u:" + pass + "@mail.example.com?startls=off", `unknown parameter "startls"`},
		{"smtps://u:" + pass + "@mail.example.com?starttls=off", "smtps"},
		{"smtp://u:" + pass + "@::1:25", "brackets"},
	}
	for _, tc := range cases {
		_, err := mail.NewSMTP(tc.url, testFrom)
		if err == nil {
			t.Errorf("NewSMTP(%q) succeeded", tc.url)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, tc.want) || !strings.HasPrefix(msg, "mail: ") {
			t.Errorf("NewSMTP(%q) = %q, want it to mention %q", tc.url, msg, tc.want)
		}
		if strings.Contains(msg, pass) || strings.Contains(msg, "hunter") {
			t.Errorf("NewSMTP(%q) error leaks the password: %q", tc.url, msg)
		}
	}
	if _, err := mail.NewSMTP("smtp://mail.example.com", "nobody"); err == nil {
		t.Error("NewSMTP accepted an invalid sender")
	}
}

func TestNewSMTPAcceptsGoodURLs(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"smtp://mail.example.com":                           "smtp://mail.example.com:25",
		"SMTP://mail.example.com:587/":                      "smtp://mail.example.com:587",
		"smtps://mail.example.com":                          "smtps://mail.example.com:465",
		"smtp://u%40x:p%3Aw@mail.example.com:2525":          "smtp://u%40x:xxxxx@mail.example.com:2525",
		"smtp://user:p@ss/w?rd#x@mail.example.com":          "smtp://user:xxxxx@mail.example.com:25",
		"smtp://[::1]:2525?starttls=required":               "smtp://[::1]:2525?starttls=required",
		"smtp://mail.example.com?starttls=off":              "smtp://mail.example.com:25?starttls=off",
		"  smtp://apikey:k@smtp.example.net:587  ":          "smtp://apikey:xxxxx@smtp.example.net:587",
		"smtps://user@mail.example.com":                     "smtps://user@mail.example.com:465",
		"smtp://mail.example.com:25?starttls=opportunistic": "smtp://mail.example.com:25?starttls=opportunistic",
	}
	for in, want := range cases {
		s, err := mail.NewSMTP(in, testFrom)
		if err != nil {
			t.Errorf("NewSMTP(%q): %v", in, err)
			continue
		}
		if s.String() != want {
			t.Errorf("NewSMTP(%q).String() = %q, want %q", in, s.String(), want)
		}
	}
}

// A password with URL metacharacters reaches the server intact.
func TestSMTPAuthWithUnescapedPassword(t *testing.T) {
	t.Parallel()
	const pass = "p@ss/w?rd#1:x"
	sink := mailtest.StartSink(t, mailtest.WithAuth("alice", pass))
	s := newSMTP(t, "smtp://alice:"+pass+"@"+sink.Addr())
	send(t, s, mail.PasswordResetMail("i@example.com", "i", "https://x.test/r"))
	if got := sink.WaitFor(t, "i@example.com", waitMail); got.AuthUser != "alice" {
		t.Errorf("AuthUser = %q", got.AuthUser)
	}
}
