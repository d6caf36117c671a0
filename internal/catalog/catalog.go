// Package catalog is the staff-curated video catalog (the Videoflix
// routes): titled, described, categorised videos whose files and
// processing belong to package media.
package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"plaza/internal/db"
	"plaza/internal/media"
)

// ErrNotFound is an unknown catalog video.
var ErrNotFound = errors.New("catalog: not found")

// Meta is what staff write about a video.
type Meta struct {
	Title, Description, Category string
}

// Video is a catalog entry with its media item.
type Video struct {
	ID int64
	Meta
	CreatedAt time.Time
	Media     media.Item
}

// Service holds the catalog.
type Service struct {
	db    *db.DB
	media *media.Service
	now   func() time.Time
}

// NewService builds the catalog on d and the media service.
func NewService(d *db.DB, m *media.Service) *Service {
	return &Service{db: d, media: m, now: time.Now}
}

// Create adds a video for an existing catalog media item.
func (s *Service) Create(ctx context.Context, staffID, mediaID int64, m Meta) (Video, error) {
	var id int64
	if err := s.db.ExecRow(ctx, `INSERT INTO videos (media_id, title, description, category, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id`,
		mediaID, m.Title, m.Description, m.Category, staffID, s.now().UTC()).Scan(&id); err != nil {
		return Video{}, fmt.Errorf("catalog: create: %w", err)
	}
	return s.Get(ctx, id)
}

// Get loads one video.
func (s *Service) Get(ctx context.Context, id int64) (Video, error) {
	var v Video
	var mediaID int64
	err := s.db.QueryRow(ctx, `SELECT id, media_id, title, description, category, created_at FROM videos WHERE id = ?`, id).
		Scan(&v.ID, &mediaID, &v.Title, &v.Description, &v.Category, &v.CreatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return Video{}, ErrNotFound
	}
	if err != nil {
		return Video{}, fmt.Errorf("catalog: get: %w", err)
	}
	if v.Media, err = s.media.Get(ctx, mediaID); err != nil {
		if errors.Is(err, media.ErrNotFound) {
			return Video{}, ErrNotFound
		}
		return Video{}, err
	}
	return v, nil
}

// List returns videos newest first; readyOnly leaves out those still
// processing or failed (what viewers see).
func (s *Service) List(ctx context.Context, readyOnly bool) ([]Video, error) {
	q := `SELECT v.id, v.media_id, v.title, v.description, v.category, v.created_at FROM videos v`
	var args []any
	if readyOnly {
		q += ` JOIN media m ON m.id = v.media_id WHERE m.status = ?`
		args = append(args, media.StatusReady)
	}
	rows, err := s.db.Query(ctx, q+` ORDER BY v.id DESC`, args...)
	if err != nil {
		return nil, fmt.Errorf("catalog: list: %w", err)
	}
	var out []Video
	var ids []int64
	for rows.Next() {
		var v Video
		var mediaID int64
		if err := rows.Scan(&v.ID, &mediaID, &v.Title, &v.Description, &v.Category, &v.CreatedAt); err != nil {
			rows.Close()
			return nil, fmt.Errorf("catalog: list: %w", err)
		}
		v.Media.ID = mediaID
		out = append(out, v)
		ids = append(ids, mediaID)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("catalog: list: %w", err)
	}
	items, err := s.media.ByIDs(ctx, ids)
	if err != nil {
		return nil, err
	}
	for i := range out {
		out[i].Media = items[out[i].Media.ID]
	}
	return out, nil
}
