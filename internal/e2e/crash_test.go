package e2e

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"plaza/internal/db/dbtest"
)

// buildPlaza compiles the plaza binary once per test.
func buildPlaza(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "plaza")
	cmd := exec.Command("go", "build", "-o", bin, "plaza/cmd/plaza")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestWorkerKilledMidTranscode: a worker process is SIGKILLed while FFmpeg
// runs; FFmpeg dies with it, and another worker picks the job up again
// (after PLAZA_JOB_RESCUE_AFTER) and finishes it; the dead worker's
// scratch files are swept.
func TestWorkerKilledMidTranscode(t *testing.T) {
	needFFmpeg(t)
	if testing.Short() {
		t.Skip("slow: -short")
	}
	bin := buildPlaza(t)
	// One engine is enough here: what is under test is the worker and
	// River's rescue, which the engines share (and the run is long).
	func(t *testing.T, eng dbtest.Engine) {
		dataDir := t.TempDir()
		vars := map[string]string{
			"PLAZA_WORKERS": "off", "PLAZA_DATA_DIR": dataDir,
			"PLAZA_VIDEO_RESOLUTIONS": "360p,480p,720p", "PLAZA_JOB_RESCUE_AFTER": "3s",
		}
		e := start(t, eng, vars)
		u := e.newUser("crash")
		clip := makeClip(t, "long.mp4", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30:duration=20,noise=alls=20:allf=t",
			"-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p")
		id := int64(expect(t, u.uploadMedia(clip), http.StatusCreated).JSON()["id"].(float64))

		env := os.Environ()
		for k, v := range map[string]string{
			"PLAZA_DATA_DIR": dataDir, "PLAZA_DATABASE_URL": e.Config.DatabaseURL, "PLAZA_STORAGE_URL": e.Config.StorageURL,
			"PLAZA_SECRET_KEY": e.Config.SecretKey, "PLAZA_SMTP_URL": e.Config.SMTPURL, "PLAZA_REDIS_URL": e.Config.RedisURL,
			"PLAZA_VIDEO_RESOLUTIONS": "360p,480p,720p", "PLAZA_JOB_RESCUE_AFTER": "3s", "PLAZA_LOG_LEVEL": "warn",
		} {
			env = append(env, k+"="+v)
		}
		startWorker := func() *exec.Cmd {
			cmd := exec.Command(bin, "worker")
			cmd.Env = env
			logs := &lockedBuffer{}
			cmd.Stdout, cmd.Stderr = logs, logs
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				_ = cmd.Process.Signal(syscall.SIGTERM)
				_, _ = cmd.Process.Wait()
				if t.Failed() {
					t.Logf("worker %d logs:\n%s", cmd.Process.Pid, logs.String())
				}
			})
			return cmd
		}
		w1 := startWorker()
		// Wait until FFmpeg is working on it.
		deadline := time.Now().Add(60 * time.Second)
		for {
			m := expect(t, u.do("GET", fmt.Sprintf("/api/media/%d/", id), nil), http.StatusOK).JSON()
			if m["status"] == "processing" && m["progress"].(float64) > 0 {
				break
			}
			if m["status"] == "ready" || time.Now().After(deadline) {
				t.Fatalf("never caught the transcode in progress: %v", m)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err := w1.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_, _ = w1.Process.Wait()
		// FFmpeg must not outlive its worker.
		time.Sleep(500 * time.Millisecond)
		if out, _ := exec.Command("pgrep", "-f", filepath.Join(dataDir, "tmp")).Output(); strings.TrimSpace(string(out)) != "" {
			t.Errorf("ffmpeg survived its killed worker: pids %s", out)
		}
		leftovers, _ := filepath.Glob(filepath.Join(dataDir, "tmp", fmt.Sprintf("transcode-%d-*", w1.Process.Pid)))
		if len(leftovers) == 0 {
			t.Log("the killed worker left no scratch directory (nothing to sweep)")
		}

		startWorker()
		m := u.waitMedia(id, 150*time.Second)
		if m["status"] != "ready" {
			t.Fatalf("after the crash: %v", m)
		}
		expect(t, u.do("GET", fmt.Sprintf("/api/media/%d/hls/720p/index.m3u8", id), nil), http.StatusOK)
		if left, _ := filepath.Glob(filepath.Join(dataDir, "tmp", fmt.Sprintf("transcode-%d-*", w1.Process.Pid))); len(left) != 0 {
			t.Errorf("scratch files of the killed worker were not swept: %v", left)
		}
	}(t, dbtest.Engine{Name: "sqlite", URL: dbtest.SQLiteURL})
}

// lockedBuffer collects a child process's output safely.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
