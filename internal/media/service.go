package media

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"plaza/internal/blob"
	"plaza/internal/cache"
	"plaza/internal/db"
)

// Media statuses.
const (
	StatusPending    = "pending"
	StatusProcessing = "processing"
	StatusReady      = "ready"
	StatusFailed     = "failed"
)

// Kinds of media.
const (
	KindImage = "image"
	KindVideo = "video"
)

// Errors callers map to answers.
var (
	ErrNotFound    = errors.New("media: not found")
	ErrUnsupported = errors.New("media: not a supported image or video")
	ErrNotOwned    = errors.New("media: media must be your own and not used by another post")
)

// Item is a media item.
type Item struct {
	ID           int64
	OwnerID      int64
	PostID       sql.NullInt64
	Kind         string
	Status       string
	Progress     int
	Error        string
	SourceKey    string
	SourceFormat string
	Key          string // image: the file; video: the HLS directory
	ThumbKey     string
	Width        sql.NullInt64
	Height       sql.NullInt64
	Duration     sql.NullFloat64
	Blurhash     sql.NullString
	Renditions   []string
	Catalog      bool
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// HasRendition reports whether name is one of a ready video's renditions.
func (it Item) HasRendition(name string) bool {
	for _, r := range it.Renditions {
		if r == name {
			return true
		}
	}
	return false
}

// JobQueue enqueues background work inside a transaction.
type JobQueue interface {
	Enqueue(ctx context.Context, tx *db.Tx, args interface{ Kind() string }) error
}

// Events receives what happens to media, for notifications and live
// progress; methods must return quickly.
type Events interface {
	MediaProgress(ctx context.Context, it Item)
	VideoReady(ctx context.Context, it Item)
	VideoFailed(ctx context.Context, it Item)
}

// TranscodeArgs is the job that turns an uploaded video into HLS.
type TranscodeArgs struct {
	MediaID int64 `json:"media_id"`
}

// Kind names the job for River.
func (TranscodeArgs) Kind() string { return "media.transcode" }

// Config holds the media settings.
type Config struct {
	FFmpeg, FFprobe  string
	Resolutions      []string
	MaxVideoDuration time.Duration
	TempDir          string // scratch space for transcodes
	MaxImageBytes    int64
	Threads          int
	CacheTTL         time.Duration // see GetCached; 0 turns the cache off
}

// Service owns media items.
type Service struct {
	db      *db.DB
	blob    blob.Store
	jobs    JobQueue
	uploads *Uploads
	cfg     Config
	log     *slog.Logger
	events  Events
	now     func() time.Time

	// ready caches ready items for streaming, where every HLS request
	// would otherwise read the row.
	ready *cache.TTL[int64, Item]
}

// NewService builds the media service.
func NewService(d *db.DB, store blob.Store, jobs JobQueue, uploads *Uploads, cfg Config, log *slog.Logger) *Service {
	if cfg.FFmpeg == "" {
		cfg.FFmpeg = "ffmpeg"
	}
	if cfg.FFprobe == "" {
		cfg.FFprobe = "ffprobe"
	}
	if cfg.MaxVideoDuration <= 0 {
		cfg.MaxVideoDuration = 3 * time.Hour
	}
	if cfg.TempDir == "" {
		cfg.TempDir = os.TempDir()
	}
	return &Service{db: d, blob: store, jobs: jobs, uploads: uploads, cfg: cfg, log: log, now: time.Now,
		ready: cache.New[int64, Item](cfg.CacheTTL, 10_000)}
}

// SetEvents installs the receiver of media events.
func (s *Service) SetEvents(e Events) { s.events = e }

// Blob is the store media live in.
func (s *Service) Blob() blob.Store { return s.blob }

const itemColumns = `id, owner_id, post_id, kind, status, progress, error, source_key, source_format, key, thumb_key,
	width, height, duration, blurhash, renditions, catalog, created_at, updated_at`

func scanItem(r interface{ Scan(...any) error }) (Item, error) {
	var it Item
	var rend string
	err := r.Scan(&it.ID, &it.OwnerID, &it.PostID, &it.Kind, &it.Status, &it.Progress, &it.Error, &it.SourceKey, &it.SourceFormat,
		&it.Key, &it.ThumbKey, &it.Width, &it.Height, &it.Duration, &it.Blurhash, &rend, &it.Catalog, &it.CreatedAt, &it.UpdatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return Item{}, ErrNotFound
	}
	if err != nil {
		return Item{}, fmt.Errorf("media: scan: %w", err)
	}
	if rend != "" {
		_ = json.Unmarshal([]byte(rend), &it.Renditions)
	}
	return it, nil
}

// Get loads a media item.
func (s *Service) Get(ctx context.Context, id int64) (Item, error) {
	return scanItem(s.db.QueryRow(ctx, `SELECT `+itemColumns+` FROM media WHERE id = ?`, id))
}

// GetCached is Get for the streaming routes: a ready item is served from
// memory for up to Config.CacheTTL. A ready video only changes when it is
// deleted (its files go with it, so a stale entry finds nothing to serve)
// or attached to a post (non-owners may then wait out the TTL).
func (s *Service) GetCached(ctx context.Context, id int64) (Item, error) {
	return s.ready.Load(id, func() (Item, error) { return s.Get(ctx, id) },
		func(it Item) bool { return it.Status == StatusReady })
}

// OnCachedChanged registers fn, called after an item is deleted or
// attached here (to tell the other instances). Set at wiring time.
func (s *Service) OnCachedChanged(fn func(ctx context.Context, id int64)) { s.ready.OnChange(fn) }

// ForgetCached drops an item from the streaming cache.
func (s *Service) ForgetCached(id int64) { s.ready.Delete(id) }

// ByIDs loads items, keyed by id.
func (s *Service) ByIDs(ctx context.Context, ids []int64) (map[int64]Item, error) {
	out := map[int64]Item{}
	if len(ids) == 0 {
		return out, nil
	}
	list, args := db.InList(ids)
	rows, err := s.db.Query(ctx, `SELECT `+itemColumns+` FROM media WHERE id IN (`+list+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("media: load: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		it, err := scanItem(rows)
		if err != nil {
			return nil, err
		}
		out[it.ID] = it
	}
	return out, rows.Err()
}

// Source is where the bytes of a new media item come from.
type Source struct {
	// Path is a local file holding the bytes (an upload in the local
	// filestore, or a temporary file the caller removes).
	Path string
	// Open reads the bytes when there is no local file (S3 uploads).
	Open     func(ctx context.Context) (io.ReadCloser, error)
	Filename string
}

// Create makes a media item for ownerID from src, deciding the kind from
// the bytes: images are processed at once (ready), videos are probed,
// stored and queued for transcoding (pending). Anything else is
// ErrUnsupported (or the image/video error explaining why).
func (s *Service) Create(ctx context.Context, ownerID int64, src Source, catalog bool) (Item, error) {
	path := src.Path
	if path == "" {
		tmp, err := s.download(ctx, src)
		if err != nil {
			return Item{}, err
		}
		defer os.Remove(tmp)
		path = tmp
	}
	f, err := os.Open(path)
	if err != nil {
		return Item{}, fmt.Errorf("media: open source: %w", err)
	}
	defer f.Close()
	head := make([]byte, 512)
	n, _ := io.ReadFull(f, head)
	head = head[:n]
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return Item{}, fmt.Errorf("media: rewind source: %w", err)
	}
	if _, ok := SniffImage(head); ok && !catalog {
		return s.createImage(ctx, ownerID, f)
	}
	format, ok := SniffVideo(head)
	if !ok {
		return Item{}, ErrUnsupported
	}
	probe, err := ProbeVideo(ctx, s.cfg.FFprobe, path, format, s.cfg.MaxVideoDuration)
	if err != nil {
		return Item{}, err
	}
	return s.createVideo(ctx, ownerID, f, format, probe, catalog)
}

func (s *Service) download(ctx context.Context, src Source) (string, error) {
	if src.Open == nil {
		return "", errors.New("media: source has neither a path nor a reader")
	}
	rc, err := src.Open(ctx)
	if err != nil {
		return "", fmt.Errorf("media: read upload: %w", err)
	}
	defer rc.Close()
	if err := os.MkdirAll(s.cfg.TempDir, 0o700); err != nil {
		return "", fmt.Errorf("media: temp dir: %w", err)
	}
	tmp, err := os.CreateTemp(s.cfg.TempDir, "plaza-source-*")
	if err != nil {
		return "", fmt.Errorf("media: temp file: %w", err)
	}
	if _, err := io.Copy(tmp, rc); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return "", fmt.Errorf("media: read upload: %w", err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return "", fmt.Errorf("media: read upload: %w", err)
	}
	return tmp.Name(), nil
}

// imageOptions is how post images are kept: fitting 2048 px, 400 px thumbnails.
var imageOptions = ImageOptions{FitSide: 2048, ThumbSide: 400}

func (s *Service) createImage(ctx context.Context, ownerID int64, r io.Reader) (Item, error) {
	img, err := SaveImage(ctx, s.blob, r, s.cfg.MaxImageBytes, imageOptions, fmt.Sprintf("images/%d", ownerID))
	if err != nil {
		return Item{}, err
	}
	now := s.now().UTC()
	var id int64
	err = s.db.ExecRow(ctx, `INSERT INTO media (owner_id, kind, status, progress, key, thumb_key, width, height, blurhash, created_at, updated_at)
		VALUES (?, ?, ?, 100, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		ownerID, KindImage, StatusReady, img.Key, img.ThumbKey, img.Width, img.Height, img.Blurhash, now, now).Scan(&id)
	if err != nil {
		_ = DeleteImages(context.WithoutCancel(ctx), s.blob, img.Key)
		return Item{}, fmt.Errorf("media: save image: %w", err)
	}
	return s.Get(ctx, id)
}

var videoExt = map[string]string{"mov": ".mp4", "matroska": ".mkv", "avi": ".avi", "mpegts": ".ts"}

func (s *Service) createVideo(ctx context.Context, ownerID int64, f *os.File, format string, p ProbeResult, catalog bool) (Item, error) {
	st, err := f.Stat()
	if err != nil {
		return Item{}, fmt.Errorf("media: stat source: %w", err)
	}
	sourceKey := "sources/" + randomName() + videoExt[format]
	if err := s.blob.Put(ctx, sourceKey, f, st.Size(), "application/octet-stream"); err != nil {
		return Item{}, fmt.Errorf("%w: store source: %w", ErrStorage, err)
	}
	now := s.now().UTC()
	var id int64
	err = s.db.InTx(ctx, func(tx *db.Tx) error {
		if err := tx.QueryRow(ctx, `INSERT INTO media (owner_id, kind, status, source_key, source_format, width, height, duration, catalog, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			ownerID, KindVideo, StatusPending, sourceKey, format, p.Width, p.Height, p.Duration, catalog, now, now).Scan(&id); err != nil {
			return fmt.Errorf("media: save video: %w", err)
		}
		return s.jobs.Enqueue(ctx, tx, TranscodeArgs{MediaID: id})
	})
	if err != nil {
		_ = s.blob.Delete(context.WithoutCancel(ctx), sourceKey)
		return Item{}, err
	}
	return s.Get(ctx, id)
}

// CreateFromUpload claims a finished tus upload of ownerID and makes a
// media item of it; the upload is consumed whatever the outcome, except on
// errors of our own (storage, database), when the client may try again.
func (s *Service) CreateFromUpload(ctx context.Context, ownerID int64, uploadID string, catalog bool) (Item, error) {
	up, err := s.uploads.Claim(ctx, ownerID, uploadID)
	if err != nil {
		return Item{}, err
	}
	it, err := s.Create(ctx, ownerID, Source{Path: up.LocalPath, Open: up.Open, Filename: up.Filename}, catalog)
	if err == nil || !errors.Is(err, ErrStorage) {
		if rerr := s.uploads.Remove(context.WithoutCancel(ctx), uploadID); rerr != nil {
			s.log.WarnContext(ctx, "could not remove consumed upload", "upload", uploadID, "err", rerr)
		}
	}
	return it, err
}

// Retry queues a failed video for another transcode.
func (s *Service) Retry(ctx context.Context, id int64) (Item, error) {
	err := s.db.InTx(ctx, func(tx *db.Tx) error {
		res, err := tx.Exec(ctx, `UPDATE media SET status = ?, progress = 0, error = '', updated_at = ? WHERE id = ? AND kind = ? AND status = ?`,
			StatusPending, s.now().UTC(), id, KindVideo, StatusFailed)
		if err != nil {
			return fmt.Errorf("media: retry: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		return s.jobs.Enqueue(ctx, tx, TranscodeArgs{MediaID: id})
	})
	if err != nil {
		return Item{}, err
	}
	return s.Get(ctx, id)
}

// Delete removes a media item and its files.
func (s *Service) Delete(ctx context.Context, id int64) error {
	it, err := s.Get(ctx, id)
	if err != nil {
		return err
	}
	if _, err := s.db.Exec(ctx, `DELETE FROM media WHERE id = ?`, id); err != nil {
		return fmt.Errorf("media: delete: %w", err)
	}
	s.ready.Changed(ctx, id)
	s.removeFiles(context.WithoutCancel(ctx), []Item{it})
	return nil
}

// removeFiles deletes every stored file of items, best effort.
func (s *Service) removeFiles(ctx context.Context, items []Item) {
	for _, it := range items {
		var errs []error
		if it.Kind == KindImage {
			errs = append(errs, DeleteImages(ctx, s.blob, it.Key))
		} else {
			if it.SourceKey != "" {
				errs = append(errs, s.blob.Delete(ctx, it.SourceKey))
			}
			if it.ThumbKey != "" {
				errs = append(errs, s.blob.Delete(ctx, it.ThumbKey))
			}
			errs = append(errs, s.blob.DeletePrefix(ctx, hlsPrefix(it.ID)))
		}
		if err := errors.Join(errs...); err != nil {
			s.log.WarnContext(ctx, "could not remove media files", "media_id", it.ID, "err", err)
		}
	}
}

func hlsPrefix(id int64) string { return fmt.Sprintf("media/%d/hls", id) }

// Attach claims mediaIDs for a new post (implements post.MediaAttacher).
func (s *Service) Attach(ctx context.Context, tx *db.Tx, ownerID, postID int64, mediaIDs []int64) error {
	seen := map[int64]bool{}
	for _, id := range mediaIDs {
		if seen[id] {
			return ErrNotOwned
		}
		seen[id] = true
		res, err := tx.Exec(ctx, `UPDATE media SET post_id = ?, updated_at = ? WHERE id = ? AND owner_id = ? AND post_id IS NULL AND catalog = FALSE`,
			postID, s.now().UTC(), id, ownerID)
		if err != nil {
			return fmt.Errorf("media: attach: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return ErrNotOwned
		}
	}
	return nil
}

// Attached drops cached copies of items just attached to a post, here and
// on the other instances, so that everyone may stream them at once.
func (s *Service) Attached(ctx context.Context, ids []int64) {
	for _, id := range ids {
		s.ready.Changed(ctx, id)
	}
}

// ForPosts returns each post's media, oldest first.
func (s *Service) ForPosts(ctx context.Context, postIDs []int64) (map[int64][]Item, error) {
	out := map[int64][]Item{}
	if len(postIDs) == 0 {
		return out, nil
	}
	list, args := db.InList(postIDs)
	rows, err := s.db.Query(ctx, `SELECT `+itemColumns+` FROM media WHERE post_id IN (`+list+`) ORDER BY id`, args...)
	if err != nil {
		return nil, fmt.Errorf("media: for posts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		it, err := scanItem(rows)
		if err != nil {
			return nil, err
		}
		out[it.PostID.Int64] = append(out[it.PostID.Int64], it)
	}
	return out, rows.Err()
}

// Detach deletes a post's media rows inside the post's delete transaction
// and returns the file removal to run after commit.
func (s *Service) Detach(ctx context.Context, tx *db.Tx, postID int64) (func(context.Context), error) {
	rows, err := tx.Query(ctx, `SELECT `+itemColumns+` FROM media WHERE post_id = ?`, postID)
	if err != nil {
		return nil, fmt.Errorf("media: detach: %w", err)
	}
	var items []Item
	for rows.Next() {
		it, err := scanItem(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		items = append(items, it)
	}
	rows.Close()
	if len(items) == 0 {
		return nil, nil
	}
	if _, err := tx.Exec(ctx, `DELETE FROM media WHERE post_id = ?`, postID); err != nil {
		return nil, fmt.Errorf("media: detach: %w", err)
	}
	return func(ctx context.Context) { s.removeFiles(ctx, items) }, nil
}

// BeforeUserDelete collects the user's unattached media and catalog videos
// for removal after the account is gone (attached media go with the posts).
func (s *Service) BeforeUserDelete(ctx context.Context, tx *db.Tx, userID int64) (func(context.Context), error) {
	rows, err := tx.Query(ctx, `SELECT `+itemColumns+` FROM media WHERE owner_id = ? AND post_id IS NULL`, userID)
	if err != nil {
		return nil, fmt.Errorf("media: forget user: %w", err)
	}
	var items []Item
	for rows.Next() {
		it, err := scanItem(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		items = append(items, it)
	}
	rows.Close()
	return func(ctx context.Context) { s.removeFiles(ctx, items) }, nil
}

// tempDir makes a scratch directory for one transcode; its name carries
// the process id so a sweep at start can tell abandoned ones.
func (s *Service) tempDir(id int64) (string, error) {
	if err := os.MkdirAll(s.cfg.TempDir, 0o700); err != nil {
		return "", fmt.Errorf("media: temp dir: %w", err)
	}
	return os.MkdirTemp(s.cfg.TempDir, fmt.Sprintf("transcode-%d-%d-", os.Getpid(), id))
}

// SweepTemp removes scratch directories left by processes that died
// (SIGKILL skips every deferred clean-up).
func (s *Service) SweepTemp() {
	entries, err := os.ReadDir(s.cfg.TempDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		var pid, id int
		if _, err := fmt.Sscanf(e.Name(), "transcode-%d-%d-", &pid, &id); err != nil || pid == os.Getpid() {
			continue
		}
		if processAlive(pid) {
			continue
		}
		_ = os.RemoveAll(filepath.Join(s.cfg.TempDir, e.Name()))
	}
}
