package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"regexp"

	"plaza/internal/media"
)

// mediaJSON is a media item as API.md shapes it.
type mediaJSON struct {
	ID           int64    `json:"id"`
	Kind         string   `json:"kind"`
	Status       string   `json:"status"`
	Progress     int      `json:"progress"`
	URL          *string  `json:"url"`
	ThumbnailURL *string  `json:"thumbnail_url"`
	Width        *int64   `json:"width"`
	Height       *int64   `json:"height"`
	Duration     *float64 `json:"duration"`
	HLSURL       *string  `json:"hls_url"`
	Blurhash     *string  `json:"blurhash"`
	Error        *string  `json:"error,omitempty"`
}

func strp(s string) *string { return &s }

func (s *server) mediaView(it media.Item) mediaJSON {
	v := mediaJSON{ID: it.ID, Kind: it.Kind, Status: it.Status, Progress: it.Progress}
	if it.Width.Valid {
		v.Width, v.Height = &it.Width.Int64, &it.Height.Int64
	}
	if it.Blurhash.Valid && it.Blurhash.String != "" {
		v.Blurhash = &it.Blurhash.String
	}
	if it.ThumbKey != "" {
		v.ThumbnailURL = strp(s.mediaURL(it.ThumbKey))
	}
	switch it.Kind {
	case media.KindImage:
		v.URL = strp(s.mediaURL(it.Key))
	case media.KindVideo:
		if it.Duration.Valid {
			v.Duration = &it.Duration.Float64
		}
		if it.Status == media.StatusReady {
			u := fmt.Sprintf("%s/api/media/%d/hls/master.m3u8", s.cfg.PublicURL, it.ID)
			v.URL, v.HLSURL = &u, &u
		}
		if it.Status == media.StatusFailed && it.Error != "" {
			v.Error = strp(it.Error)
		}
	}
	return v
}

// mediaViews renders the media of a post.
func (s *server) mediaViews(items []media.Item) []mediaJSON {
	out := make([]mediaJSON, len(items))
	for i, it := range items {
		out[i] = s.mediaView(it)
	}
	return out
}

// handleCreateMedia turns a finished tus upload ({upload_id}) or a small
// multipart "file" into a media item; the kind comes from the bytes.
func (s *server) handleCreateMedia() http.HandlerFunc {
	type request struct {
		UploadID string `json:"upload_id"`
	}
	return func(w http.ResponseWriter, r *http.Request) {
		me := currentUser(r)
		mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if mt == "multipart/form-data" {
			s.createFromMultipart(w, r, me.ID, false, nil)
			return
		}
		var req request
		if e := decodeJSON(r, &req, s.cfg.MaxBodyBytes); e != nil {
			writeError(w, e)
			return
		}
		if req.UploadID == "" {
			writeError(w, invalidInput(map[string][]string{"upload_id": {"This field is required."}}))
			return
		}
		it, err := s.media.CreateFromUpload(r.Context(), me.ID, req.UploadID, false)
		if err != nil {
			s.mediaError(w, r, err, "upload_id")
			return
		}
		writeJSON(w, http.StatusCreated, s.mediaView(it))
	}
}

// createFromMultipart streams the "file" part to a temporary file (never
// into memory) and makes a media item of it. fields, when not nil,
// receives the other form fields (the catalog's title and so on).
func (s *server) createFromMultipart(w http.ResponseWriter, r *http.Request, ownerID int64, catalog bool, fields map[string]string) (media.Item, bool) {
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxMultipartBytes+1<<20)
	mr, err := r.MultipartReader()
	if err != nil {
		writeError(w, errorf(http.StatusBadRequest, "malformed_multipart", "Malformed multipart body."))
		return media.Item{}, false
	}
	var path string
	defer func() {
		if path != "" {
			os.Remove(path)
		}
	}()
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			writeError(w, errorf(http.StatusRequestEntityTooLarge, "body_too_large", "Request body too large; use a resumable upload (/api/uploads/)."))
			return media.Item{}, false
		}
		if err != nil {
			writeError(w, errorf(http.StatusBadRequest, "malformed_multipart", "Malformed multipart body."))
			return media.Item{}, false
		}
		name := part.FormName()
		switch {
		case name == "file" && path == "":
			tmp, err := os.CreateTemp(s.cfg.DataDir, ".multipart-*")
			if err != nil {
				s.fail(w, r, err)
				return media.Item{}, false
			}
			path = tmp.Name()
			_, err = io.Copy(tmp, part)
			tmp.Close()
			if errors.As(err, &maxErr) {
				writeError(w, errorf(http.StatusRequestEntityTooLarge, "body_too_large", "Request body too large; use a resumable upload (/api/uploads/)."))
				return media.Item{}, false
			}
			if err != nil {
				writeError(w, errorf(http.StatusBadRequest, "malformed_multipart", "Malformed multipart body."))
				return media.Item{}, false
			}
		case fields != nil && name != "":
			b, err := io.ReadAll(io.LimitReader(part, 64<<10))
			if err != nil {
				writeError(w, errorf(http.StatusBadRequest, "malformed_multipart", "Malformed multipart body."))
				return media.Item{}, false
			}
			fields[name] = string(b)
		}
		part.Close()
	}
	if path == "" {
		writeError(w, invalidInput(map[string][]string{"file": {"This field is required."}}))
		return media.Item{}, false
	}
	if fields != nil {
		if fields["title"] == "" {
			writeError(w, invalidInput(map[string][]string{"title": {"This field is required."}}))
			return media.Item{}, false
		}
	}
	it, err := s.media.Create(r.Context(), ownerID, media.Source{Path: path}, catalog)
	if err != nil {
		s.mediaError(w, r, err, "file")
		return media.Item{}, false
	}
	if fields == nil {
		writeJSON(w, http.StatusCreated, s.mediaView(it))
	}
	return it, true
}

// mediaError answers the errors of media creation and lookup.
func (s *server) mediaError(w http.ResponseWriter, r *http.Request, err error, field string) {
	switch {
	case errors.Is(err, media.ErrUploadNotFound):
		writeError(w, invalidInput(map[string][]string{field: {"No finished upload of yours with this id."}}))
	case errors.Is(err, media.ErrUnsupported), errors.Is(err, media.ErrNotVideo), errors.Is(err, media.ErrNotImage):
		writeError(w, invalidInput(map[string][]string{field: {"Not a supported image or video."}}))
	case errors.Is(err, media.ErrBadVideo):
		writeError(w, invalidInput(map[string][]string{field: {"The video cannot be processed: it is broken, too long or has no picture."}}))
	case errors.Is(err, media.ErrImageTooLarge):
		writeError(w, invalidInput(map[string][]string{field: {"Image dimensions too large."}}))
	case errors.Is(err, media.ErrImageFileTooLarge):
		writeError(w, errorf(http.StatusRequestEntityTooLarge, "file_too_large", "Image file too large."))
	case errors.Is(err, media.ErrNotFound):
		writeError(w, errNotFound)
	default:
		s.fail(w, r, err)
	}
}

// visibleMedia loads a media item the caller may see: their own, one
// attached to a post (posts are public), or a catalog video.
func (s *server) visibleMedia(w http.ResponseWriter, r *http.Request) (media.Item, bool) {
	return s.visibleMediaFrom(w, r, s.media.Get)
}

// visibleMediaCached is visibleMedia for the HLS routes, where a player
// asks for a segment every few seconds: ready items come from memory.
func (s *server) visibleMediaCached(w http.ResponseWriter, r *http.Request) (media.Item, bool) {
	return s.visibleMediaFrom(w, r, s.media.GetCached)
}

func (s *server) visibleMediaFrom(w http.ResponseWriter, r *http.Request, get func(context.Context, int64) (media.Item, error)) (media.Item, bool) {
	id, ok := pathID(w, r, "id")
	if !ok {
		return media.Item{}, false
	}
	it, err := get(r.Context(), id)
	if err != nil {
		s.mediaError(w, r, err, "id")
		return media.Item{}, false
	}
	if it.OwnerID != currentUser(r).ID && !it.PostID.Valid && !it.Catalog {
		writeError(w, errNotFound)
		return media.Item{}, false
	}
	return it, true
}

func (s *server) handleGetMedia() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		it, ok := s.visibleMedia(w, r)
		if ok {
			writeJSON(w, http.StatusOK, s.mediaView(it))
		}
	}
}

var (
	renditionName = regexp.MustCompile(`^[0-9]{3,4}p$`)
	segmentName   = regexp.MustCompile(`^segment_[0-9]{3,6}\.ts$`)
)

// serveHLS answers one file of a ready video: master.m3u8 when res is
// empty, else res/index.m3u8 or res/segment. Names are checked against
// fixed patterns and the video's own renditions, so nothing outside the
// video's directory can be named.
func (s *server) serveHLS(w http.ResponseWriter, r *http.Request, it media.Item, res, segment string) {
	if it.Kind != media.KindVideo || it.Status != media.StatusReady {
		writeError(w, errNotFound)
		return
	}
	key := it.Key + "/master.m3u8"
	if res != "" {
		if !renditionName.MatchString(res) || !it.HasRendition(res) {
			writeError(w, errNotFound)
			return
		}
		key = it.Key + "/" + res + "/index.m3u8"
		if segment != "" {
			if !segmentName.MatchString(segment) {
				writeError(w, errNotFound)
				return
			}
			key = it.Key + "/" + res + "/" + segment
		}
	}
	// Segments never change once written; playlists change only when a
	// video is transcoded again, which revalidation (ETag) catches.
	cache := "private, max-age=86400"
	if segment == "" {
		cache = "private, no-cache"
	}
	s.serveBlob(w, r, key, cache)
}

func (s *server) handleMediaHLS(level int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		it, ok := s.visibleMediaCached(w, r)
		if !ok {
			return
		}
		switch level {
		case 0:
			s.serveHLS(w, r, it, "", "")
		case 1:
			s.serveHLS(w, r, it, r.PathValue("res"), "")
		default:
			s.serveHLS(w, r, it, r.PathValue("res"), r.PathValue("segment"))
		}
	}
}
