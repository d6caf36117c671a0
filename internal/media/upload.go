package media

// Resumable uploads: the tus 1.0 protocol (github.com/tus/tusd/v2) behind
// Plaza's own authentication, with the owner of every upload recorded in
// the table uploads.
//
// # Protocol
//
// Extensions creation, creation-with-upload, termination and expiration
// (Upload-Expires on every answer about an unfinished upload). Concatenation
// and creation-defer-length are not offered: every upload declares its
// length up front, so size limits are checked before a byte is stored.
// GET on an upload URL returns its bytes to its owner (not part of tus).
//
// # Ownership
//
// POST records the caller as owner, with a random id (26 characters of
// lower-case base32) that becomes the last path element of the Location.
// Every other request on BasePath+id first reads the row: an unknown id,
// another user's upload, a consumed (claimed) one or an expired one is
// answered 404 with the API's error shape, before tusd sees the request, so
// the answer never tells whether the upload exists.
//
// # Limits
//
//   - MaxSize per upload: POST with a larger Upload-Length gets 413
//     (tusd also advertises it as Tus-Max-Size).
//   - MaxPending uploads per user that are not yet consumed (unfinished or
//     finished but not claimed, and not expired): the next POST gets 429
//     with Retry-After: 60 and code "too_many_uploads". 429 rather than
//     403 because the condition clears by itself once uploads are used,
//     deleted or expire. The check and the insert run in one transaction
//     (on PostgreSQL holding the user's row), so concurrent POSTs cannot
//     exceed the limit.
//
// # Expiry
//
// ExpireAbandoned (run periodically) removes bytes and row of uploads that
// are unfinished Expiry after their creation, finished but never claimed
// Expiry after finishing, and claimed (consumed) more than an hour ago,
// whose bytes the claimer has copied. Expired uploads are already answered
// 404 before the sweep gets to them. On local disk it also removes files
// older than Expiry that no row refers to (left by a crash between the
// database and the disk).
//
// # Memory
//
// No upload is ever held in memory. The filestore appends each PATCH body
// to a file as it streams in, through a 256 KiB buffer. The s3store cuts
// the body into parts of UploadsS3.PartSize (16 MiB by default) that it
// writes to temporary files (TemporaryDirectory) and uploads from there;
// at most four parts wait on disk per request (MaxBufferedParts), so disk,
// not memory, holds up to about (4 + 10) × PartSize per PATCH in flight.
// Setting TUSD_S3STORE_TEMP_MEMORY=1 in the environment would make tusd
// buffer those parts in memory; NewUploads refuses to start with it.

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tus/tusd/v2/pkg/handler"

	"plaza/internal/db"
)

// ErrUploadNotFound is what Claim returns for an upload that is unknown,
// someone else's, unfinished, expired or already consumed.
var ErrUploadNotFound = errors.New("media: upload not found")

// Defaults of UploadsConfig.
const (
	DefaultUploadMaxSize    int64 = 5 << 30
	DefaultUploadMaxPending       = 20
	DefaultUploadExpiry           = 24 * time.Hour
)

// consumedGrace is how long a claimed upload's bytes stay before
// ExpireAbandoned removes them (the claimer calls Remove long before).
const consumedGrace = time.Hour

// UploadsConfig configures NewUploads.
type UploadsConfig struct {
	DB       *db.DB
	BasePath string     // where the handler is mounted, "/api/uploads/" by default
	Dir      string     // local filestore directory (used when S3 is nil)
	S3       *UploadsS3 // when set, uploads are stored in this bucket instead
	MaxSize  int64      // per upload, DefaultUploadMaxSize when 0
	// MaxPending is how many unconsumed (unfinished, or finished but not
	// yet claimed) uploads a user may have; DefaultUploadMaxPending when 0.
	MaxPending int
	// Expiry is how long an unfinished upload lives, and a finished one
	// that nobody claims; DefaultUploadExpiry when 0.
	Expiry time.Duration
	// PublicURL, when set (e.g. "https://plaza.example"), is what Location
	// headers are built from, for a server behind a proxy that terminates
	// TLS. Empty: from the request's Host and TLS state.
	PublicURL string
	Log       *slog.Logger
}

// Uploads serves tus uploads and hands finished ones to the media code.
type Uploads struct {
	db         *db.DB
	basePath   string
	maxSize    int64
	maxPending int
	expiry     time.Duration
	tus        *handler.UnroutedHandler
	backend    uploadBackend
	locker     handler.Locker
	log        *slog.Logger
	now        func() time.Time // tests move the clock
}

// ClaimedUpload is a finished upload that Claim handed over.
type ClaimedUpload struct {
	ID       string
	Size     int64
	Filename string
	Filetype string
	// Open streams the bytes.
	Open func(ctx context.Context) (io.ReadCloser, error)
	// LocalPath is set when the bytes are in a local file, so callers can
	// rename or sendfile it instead of copying. Remove tolerates the file
	// having been renamed away.
	LocalPath string
}

// NewUploads prepares the store (creating Dir, or the S3 client) and the
// tus handler.
func NewUploads(ctx context.Context, cfg UploadsConfig) (*Uploads, error) {
	if cfg.DB == nil {
		return nil, errors.New("media: uploads: no database")
	}
	if os.Getenv("TUSD_S3STORE_TEMP_MEMORY") == "1" {
		return nil, errors.New("media: uploads: unset TUSD_S3STORE_TEMP_MEMORY, it makes tusd hold upload parts in memory")
	}
	u := &Uploads{
		db:         cfg.DB,
		basePath:   cfg.BasePath,
		maxSize:    cfg.MaxSize,
		maxPending: cfg.MaxPending,
		expiry:     cfg.Expiry,
		log:        cfg.Log,
		now:        func() time.Time { return time.Now().UTC() },
	}
	if u.basePath == "" {
		u.basePath = "/api/uploads/"
	}
	if !strings.HasPrefix(u.basePath, "/") {
		return nil, fmt.Errorf("media: uploads: base path %q must start with /", u.basePath)
	}
	if !strings.HasSuffix(u.basePath, "/") {
		u.basePath += "/"
	}
	if u.maxSize <= 0 {
		u.maxSize = DefaultUploadMaxSize
	}
	if u.maxPending <= 0 {
		u.maxPending = DefaultUploadMaxPending
	}
	if u.expiry <= 0 {
		u.expiry = DefaultUploadExpiry
	}
	if u.log == nil {
		u.log = slog.Default()
	}

	var err error
	if cfg.S3 != nil {
		tmp := cfg.S3.TempDir
		if tmp == "" && cfg.Dir != "" {
			tmp = filepath.Join(cfg.Dir, "tmp")
		}
		if tmp != "" {
			if err := os.MkdirAll(tmp, 0o700); err != nil {
				return nil, fmt.Errorf("media: uploads: %w", err)
			}
		}
		u.backend, u.locker, err = newS3Backend(ctx, cfg.S3, tmp)
	} else {
		u.backend, u.locker, err = newLocalBackend(cfg.Dir)
	}
	if err != nil {
		return nil, err
	}

	composer := handler.NewStoreComposer()
	u.backend.useIn(composer)
	composer.UseLocker(u.locker)
	tusBase := u.basePath
	if cfg.PublicURL != "" {
		pu, err := url.Parse(cfg.PublicURL)
		if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			return nil, fmt.Errorf("media: uploads: public URL %q is not an absolute http(s) URL", cfg.PublicURL)
		}
		tusBase = strings.TrimRight(cfg.PublicURL, "/") + u.basePath
	}
	u.tus, err = handler.NewUnroutedHandler(handler.Config{
		StoreComposer:        composer,
		BasePath:             tusBase,
		MaxSize:              u.maxSize,
		DisableConcatenation: true,
		// CORS is the outer middleware's business (trusted origins only).
		Cors:                       &handler.CorsConfig{Disable: true},
		Logger:                     newTusLogger(u.log),
		PreUploadCreateCallback:    u.beforeCreate,
		PreFinishResponseCallback:  u.beforeFinishResponse,
		PreUploadTerminateCallback: u.beforeTerminate,
	})
	if err != nil {
		return nil, fmt.Errorf("media: uploads: %w", err)
	}
	return u, nil
}

// uploadIDEncoding spells ids in lower-case base32: URL-safe, and safe as
// file names on case-insensitive file systems.
var uploadIDEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

const uploadIDLen = 26 // 16 random bytes

func newUploadID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return uploadIDEncoding.EncodeToString(b)
}

// validUploadID reports whether id could have come from newUploadID; other
// strings never reach the database or the store.
func validUploadID(id string) bool {
	if len(id) != uploadIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < 'a' || c > 'z') && (c < '2' || c > '7') {
			return false
		}
	}
	return true
}

// uploadRow is what the handler needs to know of an upload.
type uploadRow struct {
	owner    int64
	size     int64
	created  time.Time
	finished sql.NullTime
	consumed sql.NullTime
}

func (u *Uploads) lookup(ctx context.Context, id string) (uploadRow, error) {
	var r uploadRow
	err := u.db.QueryRow(ctx,
		`SELECT owner_id, size, created_at, finished_at, consumed_at FROM uploads WHERE id = ?`, id,
	).Scan(&r.owner, &r.size, &r.created, &r.finished, &r.consumed)
	if errors.Is(err, sql.ErrNoRows) {
		return r, ErrUploadNotFound
	}
	if err != nil {
		return r, fmt.Errorf("media: look up upload: %w", err)
	}
	return r, nil
}

// expired reports whether ExpireAbandoned would remove the row (it may not
// have run yet).
func (u *Uploads) expired(r uploadRow, now time.Time) bool {
	cutoff := now.Add(-u.expiry)
	switch {
	case r.consumed.Valid:
		return r.consumed.Time.Before(now.Add(-consumedGrace))
	case r.finished.Valid:
		return r.finished.Time.Before(cutoff)
	default:
		return r.created.Before(cutoff)
	}
}

// expiresAt is the Upload-Expires of an unfinished upload.
func (u *Uploads) expiresAt(created time.Time) string {
	return created.Add(u.expiry).UTC().Format(http.TimeFormat)
}

// truncateUTF8 shortens s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

var errTooManyUploads = func() handler.Error {
	e := handler.NewError("ERR_TOO_MANY_UPLOADS", "too many unfinished or unused uploads; finish, use or delete some first", http.StatusTooManyRequests)
	e.HTTPResponse.Header["Retry-After"] = "60"
	return e
}()

// beforeCreate records a new upload and its owner (tusd's
// PreUploadCreateCallback), enforcing the per-user limit.
func (u *Uploads) beforeCreate(hook handler.HookEvent) (handler.HTTPResponse, handler.FileInfoChanges, error) {
	st, _ := hook.Context.Value(reqStateKey{}).(*reqState)
	if st == nil || st.owner == 0 {
		return handler.HTTPResponse{}, handler.FileInfoChanges{}, errors.New("media: upload created without an owner")
	}
	info := hook.Upload
	if info.SizeIsDeferred || info.IsPartial || info.IsFinal {
		return handler.HTTPResponse{}, handler.FileInfoChanges{}, handler.ErrNotImplemented
	}
	filename := info.MetaData["filename"]
	if filename == "" {
		filename = info.MetaData["name"] // Uppy's key
	}
	filetype := info.MetaData["filetype"]
	if filetype == "" {
		filetype = info.MetaData["type"]
	}
	filename, filetype = truncateUTF8(filename, 255), truncateUTF8(filetype, 255)

	id := newUploadID()
	now := u.now()
	cutoff := now.Add(-u.expiry)
	err := u.db.InTx(hook.Context, func(tx *db.Tx) error {
		if u.db.Dialect() == db.Postgres {
			// Serialize this user's creations so the count below holds.
			var one int64
			if err := tx.QueryRow(hook.Context, `SELECT id FROM users WHERE id = ? FOR UPDATE`, st.owner).Scan(&one); err != nil {
				return err
			}
		}
		var pending int
		if err := tx.QueryRow(hook.Context, `SELECT COUNT(*) FROM uploads WHERE owner_id = ? AND consumed_at IS NULL
			AND ((finished_at IS NULL AND created_at >= ?) OR (finished_at IS NOT NULL AND finished_at >= ?))`,
			st.owner, cutoff, cutoff).Scan(&pending); err != nil {
			return err
		}
		if pending >= u.maxPending {
			return errTooManyUploads
		}
		_, err := tx.Exec(hook.Context, `INSERT INTO uploads (id, owner_id, size, offset_, filename, filetype, created_at)
			VALUES (?, ?, ?, 0, ?, ?, ?)`, id, st.owner, info.Size, filename, filetype, now)
		return err
	})
	if err != nil {
		var herr handler.Error
		if errors.As(err, &herr) {
			return handler.HTTPResponse{}, handler.FileInfoChanges{}, herr
		}
		return handler.HTTPResponse{}, handler.FileInfoChanges{}, fmt.Errorf("media: record upload: %w", err)
	}
	st.createdID = id
	resp := handler.HTTPResponse{Header: handler.HTTPHeader{"Upload-Expires": u.expiresAt(now)}}
	return resp, handler.FileInfoChanges{ID: id}, nil
}

// beforeFinishResponse marks the upload finished once its last byte is
// stored (tusd's PreFinishResponseCallback).
func (u *Uploads) beforeFinishResponse(hook handler.HookEvent) (handler.HTTPResponse, error) {
	st, _ := hook.Context.Value(reqStateKey{}).(*reqState)
	id := hook.Upload.ID
	if st != nil {
		st.finished = true
		if st.id != "" {
			id = st.id
		} else if st.createdID != "" {
			id = st.createdID
		}
	}
	if _, err := u.db.Exec(hook.Context, `UPDATE uploads SET finished_at = ?, offset_ = size WHERE id = ? AND finished_at IS NULL`,
		u.now(), id); err != nil {
		// Claim finds out from the store that the upload is complete, so
		// the client may as well retry.
		return handler.HTTPResponse{}, fmt.Errorf("media: mark upload finished: %w", err)
	}
	return handler.HTTPResponse{}, nil
}

// beforeTerminate deletes the row of an upload its owner DELETEs, unless a
// Claim got there first (tusd's PreUploadTerminateCallback).
func (u *Uploads) beforeTerminate(hook handler.HookEvent) (handler.HTTPResponse, error) {
	id := hook.Upload.ID
	if st, _ := hook.Context.Value(reqStateKey{}).(*reqState); st != nil && st.id != "" {
		id = st.id
	}
	res, err := u.db.Exec(hook.Context, `DELETE FROM uploads WHERE id = ? AND consumed_at IS NULL`, id)
	if err != nil {
		return handler.HTTPResponse{}, fmt.Errorf("media: delete upload: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return handler.HTTPResponse{}, handler.ErrNotFound
	}
	return handler.HTTPResponse{}, nil
}

// Claim consumes a finished upload of userID and tells how to read it. It
// is atomic: of concurrent Claims of one upload exactly one succeeds.
// Unknown, someone else's, unfinished, expired or already consumed:
// ErrUploadNotFound.
func (u *Uploads) Claim(ctx context.Context, userID int64, id string) (ClaimedUpload, error) {
	if !validUploadID(id) {
		return ClaimedUpload{}, ErrUploadNotFound
	}
	for attempt := 0; ; attempt++ {
		now := u.now()
		c := ClaimedUpload{ID: id}
		err := u.db.ExecRow(ctx, `UPDATE uploads SET consumed_at = ?
			WHERE id = ? AND owner_id = ? AND finished_at IS NOT NULL AND finished_at >= ? AND consumed_at IS NULL
			RETURNING size, filename, filetype`,
			now, id, userID, now.Add(-u.expiry)).Scan(&c.Size, &c.Filename, &c.Filetype)
		if err == nil {
			c.LocalPath = u.backend.localPath(id)
			c.Open = func(ctx context.Context) (io.ReadCloser, error) { return u.backend.open(ctx, id) }
			return c, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return ClaimedUpload{}, fmt.Errorf("media: claim upload: %w", err)
		}
		if attempt > 0 {
			return ClaimedUpload{}, ErrUploadNotFound
		}
		ok, err := u.finishIfComplete(ctx, userID, id)
		if err != nil {
			return ClaimedUpload{}, err
		}
		if !ok {
			return ClaimedUpload{}, ErrUploadNotFound
		}
	}
}

// finishIfComplete marks an upload finished when the store holds all of
// its bytes but the row does not say so (the finishing request failed to
// record it).
func (u *Uploads) finishIfComplete(ctx context.Context, userID int64, id string) (bool, error) {
	r, err := u.lookup(ctx, id)
	if errors.Is(err, ErrUploadNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if r.owner != userID || r.finished.Valid || r.consumed.Valid || u.expired(r, u.now()) {
		return false, nil
	}
	info, err := u.backend.info(ctx, id)
	if errors.Is(err, handler.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("media: upload info: %w", err)
	}
	if info.SizeIsDeferred || info.Offset != info.Size || info.Size != r.size {
		return false, nil
	}
	if _, err := u.db.Exec(ctx, `UPDATE uploads SET finished_at = ?, offset_ = size WHERE id = ? AND finished_at IS NULL`,
		u.now(), id); err != nil {
		return false, fmt.Errorf("media: mark upload finished: %w", err)
	}
	return true, nil
}

// lockUpload takes the upload's tus lock, asking a request that holds it
// to let go.
func (u *Uploads) lockUpload(ctx context.Context, id string) (handler.Lock, error) {
	lock, err := u.locker.NewLock(id)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := lock.Lock(ctx, func() {}); err != nil {
		return nil, err
	}
	return lock, nil
}

// Remove deletes an upload's bytes and row (after the caller has copied
// the bytes into media storage). An unknown id is not an error.
func (u *Uploads) Remove(ctx context.Context, id string) error {
	if !validUploadID(id) {
		return nil
	}
	lock, err := u.lockUpload(ctx, id)
	if err != nil {
		return fmt.Errorf("media: remove upload: %w", err)
	}
	defer lock.Unlock()
	if err := u.backend.remove(ctx, id); err != nil {
		return fmt.Errorf("media: remove upload: %w", err)
	}
	if _, err := u.db.Exec(ctx, `DELETE FROM uploads WHERE id = ?`, id); err != nil {
		return fmt.Errorf("media: remove upload: %w", err)
	}
	return nil
}

// expiredCond selects the rows ExpireAbandoned removes; its arguments are
// the expiry cutoff twice and the consumed cutoff.
const expiredCond = `((finished_at IS NULL AND created_at < ?)
	OR (finished_at IS NOT NULL AND consumed_at IS NULL AND finished_at < ?)
	OR (consumed_at IS NOT NULL AND consumed_at < ?))`

// ExpireAbandoned removes uploads unfinished Expiry after creation,
// finished but unclaimed Expiry after finishing, and consumed more than an
// hour ago, bytes and rows, and on local disk files no row refers to. It
// returns how many uploads it removed. A periodic job calls it.
func (u *Uploads) ExpireAbandoned(ctx context.Context) (int, error) {
	const batch = 200
	removed := 0
	for {
		now := u.now()
		cutoff := now.Add(-u.expiry)
		args := []any{cutoff, cutoff, now.Add(-consumedGrace)}
		rows, err := u.db.Query(ctx, `SELECT id FROM uploads WHERE `+expiredCond+` ORDER BY created_at LIMIT `+fmt.Sprint(batch), args...)
		if err != nil {
			return removed, fmt.Errorf("media: expire uploads: %w", err)
		}
		var ids []string
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return removed, fmt.Errorf("media: expire uploads: %w", err)
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return removed, fmt.Errorf("media: expire uploads: %w", err)
		}
		progress := 0
		for _, id := range ids {
			ok, err := u.expireOne(ctx, id, args)
			if err != nil {
				if ctx.Err() != nil {
					return removed, ctx.Err()
				}
				u.log.WarnContext(ctx, "could not expire upload", "upload", id, "err", err)
				continue
			}
			if ok {
				removed++
				progress++
			}
		}
		if len(ids) < batch || progress == 0 {
			break
		}
	}
	n, err := u.backend.sweep(ctx, u.now().Add(-u.expiry), u.rowExists)
	removed += n
	if err != nil {
		return removed, fmt.Errorf("media: sweep uploads: %w", err)
	}
	return removed, nil
}

// expireOne deletes the row of an upload if it still qualifies (a Claim or
// a finishing PATCH may have changed it), then its bytes. Row first: bytes
// nobody refers to are swept later, while bytes deleted under a live row
// would lose a claimed upload.
func (u *Uploads) expireOne(ctx context.Context, id string, args []any) (bool, error) {
	lock, err := u.lockUpload(ctx, id)
	if err != nil {
		return false, err
	}
	defer lock.Unlock()
	res, err := u.db.Exec(ctx, `DELETE FROM uploads WHERE id = ? AND `+expiredCond, append([]any{id}, args...)...)
	if err != nil {
		return false, err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return false, err
	}
	if validUploadID(id) {
		if err := u.backend.remove(ctx, id); err != nil {
			u.log.WarnContext(ctx, "could not remove expired upload's bytes", "upload", id, "err", err)
		}
	}
	return true, nil
}

func (u *Uploads) rowExists(ctx context.Context, id string) (bool, error) {
	var one int
	err := u.db.QueryRow(ctx, `SELECT 1 FROM uploads WHERE id = ?`, id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}
