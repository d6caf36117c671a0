package mailtest

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// ReadEML parses an .eml file (as written by mail.Outbox). From and To come
// from the message headers, since a file has no envelope.
func ReadEML(path string) (Received, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return Received{}, fmt.Errorf("mailtest: %w", err)
	}
	r, err := parse(raw)
	if err != nil {
		return Received{}, fmt.Errorf("mailtest: %s: %w", path, err)
	}
	if a, err := mail.ParseAddress(r.Header.Get("From")); err == nil {
		r.From = a.Address
	}
	if list, err := r.Header.AddressList("To"); err == nil {
		for _, a := range list {
			r.To = append(r.To, a.Address)
		}
	}
	return r, nil
}

// LatestEML returns the newest .eml file in dir addressed to to, waiting up
// to five seconds for one to appear (mail is often sent by a background job),
// and fails the test if none does. File names sort by time, so "newest" is
// the last in lexical order. It must be called from the test's goroutine.
func LatestEML(t testing.TB, dir, to string) Received {
	t.Helper()
	return latestEML(t, dir, to, 5*time.Second)
}

func latestEML(t testing.TB, dir, to string, wait time.Duration) Received {
	t.Helper()
	want := normalizeAddr(to)
	deadline := time.Now().Add(wait)
	var lastErr error
	for {
		names, err := filepath.Glob(filepath.Join(dir, "*.eml"))
		if err != nil {
			t.Fatalf("mailtest: %v", err)
		}
		slices.Sort(names)
		for _, name := range slices.Backward(names) {
			r, err := ReadEML(name)
			if err != nil {
				lastErr = err
				continue
			}
			if hasRecipient(r.To, want) {
				return r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("mailtest: no .eml to %s in %s within %s (%d file(s); last parse error: %v)", to, dir, wait, len(names), lastErr)
			return Received{}
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// parse reads an RFC 5322 message and extracts the subject and the first
// text/plain and text/html parts, decoding transfer encodings.
func parse(raw []byte) (Received, error) {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return Received{}, fmt.Errorf("read message: %w", err)
	}
	r := Received{Raw: raw, Header: msg.Header}
	subj, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		return Received{}, fmt.Errorf("decode subject: %w", err)
	}
	r.Subject = subj
	if err := walk(msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), msg.Body, &r); err != nil {
		return Received{}, err
	}
	return r, nil
}

// walk descends into multipart bodies and stores leaf text parts in r.
func walk(contentType, transferEncoding string, body io.Reader, r *Received) error {
	if contentType == "" {
		contentType = "text/plain; charset=us-ascii" // RFC 2045 default
	}
	mediaType, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return fmt.Errorf("content type %q: %w", contentType, err)
	}
	if strings.HasPrefix(mediaType, "multipart/") {
		boundary := params["boundary"]
		if boundary == "" {
			return fmt.Errorf("%s without boundary", mediaType)
		}
		mr := multipart.NewReader(body, boundary)
		for {
			p, err := mr.NextRawPart()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("%s part: %w", mediaType, err)
			}
			if err := walk(p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p, r); err != nil {
				return err
			}
		}
	}
	var dec io.Reader
	switch strings.ToLower(strings.TrimSpace(transferEncoding)) {
	case "", "7bit", "8bit", "binary":
		dec = body
	case "quoted-printable":
		dec = quotedprintable.NewReader(body)
	case "base64":
		dec = base64.NewDecoder(base64.StdEncoding, body)
	default:
		return fmt.Errorf("unknown Content-Transfer-Encoding %q", transferEncoding)
	}
	data, err := io.ReadAll(dec)
	if err != nil {
		return fmt.Errorf("decode %s part (%s): %w", mediaType, transferEncoding, err)
	}
	switch mediaType {
	case "text/plain":
		if r.Text == "" {
			r.Text = bytesTrimCR(data)
		}
	case "text/html":
		if r.HTML == "" {
			r.HTML = bytesTrimCR(data)
		}
	}
	return nil
}
