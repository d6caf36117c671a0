package media

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image/jpeg"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"plaza/internal/blob"
)

// ErrBusy means another live worker holds the video's lease.
var ErrBusy = errors.New("media: video is being processed elsewhere")

// Lease timing: a worker renews its lease while it transcodes; when it
// dies, the lease runs out and another worker may take over.
const (
	leaseFor   = 30 * time.Second
	leaseRenew = 10 * time.Second
)

// ErrPermanent marks a transcode failure that retrying cannot fix (the
// input itself is unusable); the job is not retried.
var ErrPermanent = errors.New("media: permanent failure")

// TranscodeJob is the body of the media.transcode job. lastAttempt says
// whether a failure now is final (the item is then marked failed).
func (s *Service) TranscodeJob(ctx context.Context, id int64, lastAttempt bool) error {
	it, err := s.Get(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil // deleted while queued
	}
	if err != nil {
		return err
	}
	if it.Kind != KindVideo || it.Status == StatusReady {
		return nil
	}
	release, err := s.lease(ctx, id)
	if err != nil {
		return err
	}
	defer release()
	err = s.transcode(ctx, it)
	if err == nil {
		return nil
	}
	permanent := errors.Is(err, ErrNotVideo) || errors.Is(err, ErrBadVideo)
	if permanent || lastAttempt {
		s.markFailed(context.WithoutCancel(ctx), it, err)
	} else {
		s.setStatus(context.WithoutCancel(ctx), it.ID, StatusPending, 0)
	}
	if permanent {
		return fmt.Errorf("%w: %w", ErrPermanent, err)
	}
	return err
}

// lease takes the video's transcode lease (ErrBusy when a live worker
// holds it) and keeps it renewed until release is called.
func (s *Service) lease(ctx context.Context, id int64) (release func(), err error) {
	owner := fmt.Sprintf("%d-%s", os.Getpid(), randomName()[:8])
	now := s.now().UTC()
	res, err := s.db.Exec(ctx, `UPDATE media SET lease_owner = ?, lease_until = ? WHERE id = ? AND (lease_until IS NULL OR lease_until < ?)`,
		owner, now.Add(leaseFor), id, now)
	if err != nil {
		return nil, fmt.Errorf("media: lease: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return nil, ErrBusy
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(leaseRenew)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if _, err := s.db.Exec(context.WithoutCancel(ctx), `UPDATE media SET lease_until = ? WHERE id = ? AND lease_owner = ?`,
					s.now().UTC().Add(leaseFor), id, owner); err != nil {
					s.log.WarnContext(ctx, "could not renew transcode lease", "media_id", id, "err", err)
				}
			}
		}
	}()
	return func() {
		close(stop)
		<-done
		_, _ = s.db.Exec(context.WithoutCancel(ctx), `UPDATE media SET lease_owner = '', lease_until = NULL WHERE id = ? AND lease_owner = ?`, id, owner)
	}, nil
}

func (s *Service) setStatus(ctx context.Context, id int64, status string, progress int) {
	if _, err := s.db.Exec(ctx, `UPDATE media SET status = ?, progress = ?, updated_at = ? WHERE id = ?`, status, progress, s.now().UTC(), id); err != nil {
		s.log.WarnContext(ctx, "could not update media status", "media_id", id, "err", err)
	}
}

func (s *Service) markFailed(ctx context.Context, it Item, cause error) {
	msg := publicError(cause)
	if _, err := s.db.Exec(ctx, `UPDATE media SET status = ?, error = ?, updated_at = ? WHERE id = ?`, StatusFailed, msg, s.now().UTC(), it.ID); err != nil {
		s.log.WarnContext(ctx, "could not mark media failed", "media_id", it.ID, "err", err)
	}
	s.log.WarnContext(ctx, "video processing failed", "media_id", it.ID, "err", cause)
	if s.events != nil {
		it.Status, it.Error = StatusFailed, msg
		s.events.VideoFailed(ctx, it)
	}
}

// publicError is the message shown to users and staff: what went wrong,
// without host paths.
func publicError(err error) string {
	switch {
	case errors.Is(err, ErrNotVideo):
		return "The file is not a supported video."
	case errors.Is(err, ErrBadVideo):
		msg := err.Error()
		if i := strings.LastIndex(msg, ": "); i >= 0 && !strings.Contains(msg[i:], "/") {
			return "The video cannot be processed" + msg[i:] + "."
		}
		return "The video cannot be processed."
	case errors.Is(err, context.DeadlineExceeded):
		return "Processing took too long."
	default:
		return "Processing failed."
	}
}

func (s *Service) transcode(ctx context.Context, it Item) error {
	s.setStatus(ctx, it.ID, StatusProcessing, 0)
	it.Status, it.Progress = StatusProcessing, 0
	if s.events != nil {
		s.events.MediaProgress(ctx, it)
	}
	dir, err := s.tempDir(it.ID)
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	src, ok := s.blob.LocalPath(it.SourceKey)
	if !ok {
		src = filepath.Join(dir, "source")
		if err := s.fetch(ctx, it.SourceKey, src); err != nil {
			return err
		}
	}
	probe, err := ProbeVideo(ctx, s.cfg.FFprobe, src, it.SourceFormat, s.cfg.MaxVideoDuration)
	if err != nil {
		return err
	}
	ladder := Ladder(probe, s.cfg.Resolutions)
	out := filepath.Join(dir, "hls")
	lastReport := time.Time{}
	res, err := Transcode(ctx, TranscodeOptions{
		FFmpeg: s.cfg.FFmpeg, Input: src, Format: it.SourceFormat, OutDir: out, Renditions: ladder,
		HasAudio: probe.HasAudio, Duration: probe.Duration, Threads: s.cfg.Threads,
		OnProgress: func(p int) {
			if time.Since(lastReport) < time.Second {
				return
			}
			lastReport = time.Now()
			s.setStatus(ctx, it.ID, StatusProcessing, p)
			if s.events != nil {
				it.Progress = p
				s.events.MediaProgress(ctx, it)
			}
		},
	})
	if err != nil {
		return err
	}
	thumb := filepath.Join(dir, "thumb.jpg")
	if err := Thumbnail(ctx, s.cfg.FFmpeg, src, it.SourceFormat, thumb, probe.Duration); err != nil {
		return err
	}
	hash := thumbBlurhash(thumb)

	// A previous attempt may have left files: start the directory afresh.
	prefix := hlsPrefix(it.ID)
	if err := s.blob.DeletePrefix(ctx, prefix); err != nil {
		return fmt.Errorf("%w: clear old output: %w", ErrStorage, err)
	}
	if err := s.putTree(ctx, out, prefix); err != nil {
		return err
	}
	thumbKey := "thumbs/" + randomName() + ".jpg"
	if err := putFile(ctx, s.blob, thumb, thumbKey, "image/jpeg"); err != nil {
		return err
	}
	var names []string
	for _, r := range res.Renditions {
		names = append(names, r.Name)
	}
	rend, _ := json.Marshal(names)
	if _, err := s.db.Exec(ctx, `UPDATE media SET status = ?, progress = 100, error = '', key = ?, thumb_key = ?, width = ?, height = ?,
		duration = ?, blurhash = ?, renditions = ?, updated_at = ? WHERE id = ?`,
		StatusReady, prefix, thumbKey, probe.Width, probe.Height, probe.Duration, hash, string(rend), s.now().UTC(), it.ID); err != nil {
		_ = s.blob.Delete(context.WithoutCancel(ctx), thumbKey)
		return fmt.Errorf("media: mark ready: %w", err)
	}
	if it.ThumbKey != "" && it.ThumbKey != thumbKey {
		_ = s.blob.Delete(ctx, it.ThumbKey)
	}
	if s.events != nil {
		if ready, err := s.Get(ctx, it.ID); err == nil {
			s.events.VideoReady(ctx, ready)
		}
	}
	return nil
}

func (s *Service) fetch(ctx context.Context, key, dst string) error {
	obj, err := s.blob.Open(ctx, key)
	if err != nil {
		return fmt.Errorf("%w: open source: %w", ErrStorage, err)
	}
	defer obj.Close()
	f, err := os.Create(dst)
	if err != nil {
		return fmt.Errorf("media: temp source: %w", err)
	}
	if _, err := f.ReadFrom(obj); err != nil {
		f.Close()
		return fmt.Errorf("%w: read source: %w", ErrStorage, err)
	}
	return f.Close()
}

// putTree uploads every file under dir to prefix, keeping relative paths.
func (s *Service) putTree(ctx context.Context, dir, prefix string) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		key := prefix + "/" + filepath.ToSlash(rel)
		return putFile(ctx, s.blob, path, key, blob.ContentTypeFor(key))
	})
}

func putFile(ctx context.Context, store blob.Store, path, key, contentType string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("media: open output: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("media: stat output: %w", err)
	}
	if err := store.Put(ctx, key, f, st.Size(), contentType); err != nil {
		return fmt.Errorf("%w: store %s: %w", ErrStorage, filepath.Base(key), err)
	}
	return nil
}

func thumbBlurhash(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	img, err := jpeg.Decode(f)
	if err != nil {
		return ""
	}
	h, _ := EncodeBlurhash(img, 4, 3)
	return h
}

func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
