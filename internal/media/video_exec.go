package media

// Running ffmpeg and ffprobe.
//
// Every run has a context: when it ends, the whole process group of the tool
// is killed with SIGKILL (the tool is started in its own group, see
// video_exec_linux.go), and on Linux the tool also gets SIGKILL when the
// thread that started it dies, i.e. when this process dies, even by SIGKILL.
// The starting goroutine keeps its OS thread locked from Start to Wait so
// that thread cannot exit earlier. stderr is kept only as its last few KB,
// for error messages, with host paths replaced by placeholders.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"
)

// videoRun is one ffmpeg or ffprobe invocation.
type videoRun struct {
	bin    string
	args   []string
	stdout io.Writer
	// paths maps host paths that may appear in messages to placeholders.
	paths map[string]string

	stderr   videoTail
	state    *os.ProcessState
	startErr bool // the tool could not be started at all
}

// videoEnv is the whole environment of the tools: no FFREPORT (which makes
// ffmpeg write a log file wherever it says), no AV_LOG_FORCE_*.
func videoEnv() []string {
	return []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C"}
}

// run starts the tool and waits for it. On failure the error says why,
// without host paths: ctx's error if ctx ended, otherwise the exit status and
// the last stderr lines.
func (r *videoRun) run(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("media: %s: %w", filepath.Base(r.bin), err)
	}
	cmd := exec.CommandContext(ctx, r.bin, r.args...)
	cmd.Env = videoEnv()
	cmd.Stdin = nil
	cmd.Stdout = r.stdout
	cmd.Stderr = &r.stderr
	cmd.SysProcAttr = videoSysProcAttr()
	cmd.Cancel = func() error { return videoKill(cmd.Process) }
	cmd.WaitDelay = 2 * time.Second

	// Pdeathsig fires when the thread that forked the child exits: keep
	// this goroutine on its thread until the child is gone.
	runtime.LockOSThread()
	err := cmd.Start()
	if err == nil {
		err = cmd.Wait()
	}
	runtime.UnlockOSThread()
	r.state = cmd.ProcessState

	if err == nil {
		return nil
	}
	name := filepath.Base(r.bin)
	if cmd.Process == nil { // never started
		r.startErr = true
		var ee *exec.Error
		if errors.As(err, &ee) {
			err = ee.Err
		} else if pe := (*os.PathError)(nil); errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("media: cannot run %s: %w", name, err)
	}
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("media: %s stopped: %w", name, cerr)
	}
	status := "failed"
	if r.state != nil {
		status = r.state.String() // "exit status 1", "signal: killed"
	}
	msg := r.reason("")
	if msg == "" {
		return fmt.Errorf("media: %s: %s", name, status)
	}
	return fmt.Errorf("media: %s: %s: %s", name, status, msg)
}

// reason is the last meaningful stderr line, host paths replaced; def if
// there is none.
func (r *videoRun) reason(def string) string {
	lines := strings.Split(strings.TrimSpace(r.scrub(r.stderr.String())), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if l == "" || strings.HasPrefix(l, "Conversion failed") || strings.HasPrefix(l, "Exiting normally") {
			continue
		}
		// "[mov,mp4,m4a,3gp,3g2,mj2 @ 0x55d1c8] moov atom not found": drop
		// the context prefix.
		if strings.HasPrefix(l, "[") {
			if j := strings.Index(l, "] "); j > 0 {
				l = l[j+2:]
			}
		}
		if len(l) > 200 {
			l = l[:200]
		}
		return l
	}
	return def
}

// videoPathRE matches what is left of absolute paths after the known ones
// were replaced: a slash-led token at the start or after a space, quote,
// parenthesis, "=" or "file:", up to a space, quote, closing parenthesis or
// comma.
var videoPathRE = regexp.MustCompile(`(^|[\s'"(=]|file:)/[^\s'"),]*`)

func (r *videoRun) scrub(s string) string {
	keys := make([]string, 0, len(r.paths))
	for k := range r.paths {
		if k != "" && k != "/" && k != "." {
			keys = append(keys, k)
		}
	}
	// Longest first, so a file's path wins over its directory's.
	sort.Slice(keys, func(i, j int) bool { return len(keys[i]) > len(keys[j]) })
	for _, k := range keys {
		s = strings.ReplaceAll(s, "file:"+k, r.paths[k])
		s = strings.ReplaceAll(s, k, r.paths[k])
	}
	return videoPathRE.ReplaceAllString(s, "${1}<path>")
}

// cpu is the user+system time the tool used.
func (r *videoRun) cpu() time.Duration {
	if r.state == nil {
		return 0
	}
	return r.state.UserTime() + r.state.SystemTime()
}

// videoTail keeps the last videoTailSize bytes written to it.
type videoTail struct {
	mu  sync.Mutex
	buf []byte
}

const videoTailSize = 8 << 10

func (t *videoTail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(p)
	if len(p) >= videoTailSize {
		t.buf = append(t.buf[:0], p[len(p)-videoTailSize:]...)
		return n, nil
	}
	if over := len(t.buf) + len(p) - videoTailSize; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	t.buf = append(t.buf, p...)
	return n, nil
}

func (t *videoTail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// videoLimitedBuffer keeps at most max bytes and notes when more came.
type videoLimitedBuffer struct {
	bytes.Buffer
	max      int
	overflow bool
}

func (b *videoLimitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); len(p) > room {
		b.overflow = true
		if room > 0 {
			b.Buffer.Write(p[:room])
		}
		return len(p), nil
	}
	return b.Buffer.Write(p)
}

// videoDefaultTimeout gives ctx a deadline of d from now unless it has one.
func videoDefaultTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}
