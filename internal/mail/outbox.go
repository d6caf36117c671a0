package mail

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Outbox is a Sender that writes every message as an .eml file into a
// directory instead of delivering it. It is the zero-infrastructure default:
// locally the developer clicks the link from the log line, and end-to-end
// tests read the files back.
type Outbox struct {
	dir    string
	from   string
	logger *slog.Logger
}

var _ Sender = (*Outbox)(nil)

// NewOutbox returns an Outbox writing into dir, creating it (mode 0700, mail
// carries activation and reset tokens) if it does not exist. A nil logger
// means slog.Default(), because the whole point of the log line is that a
// developer sees it.
func NewOutbox(dir, from string, logger *slog.Logger) (*Outbox, error) {
	if dir == "" {
		return nil, errors.New("mail: outbox directory is empty")
	}
	if err := validateFrom(from); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("mail: create outbox directory: %w", err)
	}
	if logger == nil {
		logger = slog.Default()
	}
	return &Outbox{dir: dir, from: from, logger: logger}, nil
}

// Dir returns the directory the outbox writes into.
func (o *Outbox) Dir() string { return o.dir }

// Send writes m to a new file in the outbox directory. The file appears
// atomically (written to a hidden temporary file, synced, then renamed), so a
// reader polling the directory never sees a half-written message. File names
// start with the UTC time to the nanosecond so that a lexical sort is a
// chronological sort, and end in random characters so that two messages in
// the same nanosecond, or from two processes, never collide.
func (o *Outbox) Send(ctx context.Context, m Message) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("mail: outbox: %w", err)
	}
	now := time.Now().UTC()
	msg, err := m.compose(o.from, now)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if _, err := msg.WriteTo(&buf); err != nil {
		return fmt.Errorf("mail: outbox: render message: %w", err)
	}

	name := now.Format("20060102T150405.000000000Z") + "-" + strings.ToLower(rand.Text()[:16]) + ".eml"
	path := filepath.Join(o.dir, name)
	if err := writeFileAtomic(o.dir, path, buf.Bytes()); err != nil {
		return fmt.Errorf("mail: outbox: %w", err)
	}

	o.logger.InfoContext(ctx, "mail written to outbox",
		slog.String("to", m.To),
		slog.String("subject", m.Subject),
		slog.String("file", path),
		slog.String("link", FirstLink(m.Text)),
	)
	return nil
}

// writeFileAtomic writes data to path via a temporary file in dir. The
// temporary name does not end in .eml so directory scans ignore it.
func writeFileAtomic(dir, path string, data []byte) (err error) {
	f, err := os.CreateTemp(dir, ".outbox-*.tmp")
	if err != nil {
		return fmt.Errorf("create temporary file: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename to %s: %w", path, err)
	}
	return nil
}
