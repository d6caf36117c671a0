package httpapi

import (
	"errors"
	"mime"
	"net/http"
	"strings"

	"plaza/internal/catalog"
)

type videoJSON struct {
	ID           int64   `json:"id"`
	CreatedAt    string  `json:"created_at"`
	Title        string  `json:"title"`
	Description  string  `json:"description"`
	ThumbnailURL *string `json:"thumbnail_url"`
	Category     string  `json:"category"`
}

type adminVideoJSON struct {
	videoJSON
	ProcessingStatus string   `json:"processing_status"`
	ProcessingError  string   `json:"processing_error"`
	Progress         int      `json:"progress"`
	Duration         *float64 `json:"duration"`
	HLSURL           *string  `json:"hls_url"`
}

func (s *server) videoView(v catalog.Video) videoJSON {
	out := videoJSON{ID: v.ID, CreatedAt: timeJSON(v.CreatedAt), Title: v.Title, Description: v.Description, Category: v.Category}
	if v.Media.ThumbKey != "" {
		out.ThumbnailURL = strp(s.mediaURL(v.Media.ThumbKey))
	}
	return out
}

func (s *server) adminVideoView(v catalog.Video) adminVideoJSON {
	out := adminVideoJSON{videoJSON: s.videoView(v), ProcessingStatus: v.Media.Status, ProcessingError: v.Media.Error, Progress: v.Media.Progress}
	if v.Media.Duration.Valid {
		out.Duration = &v.Media.Duration.Float64
	}
	if v.Media.Status == "ready" {
		out.HLSURL = strp(s.cfg.PublicURL + "/api/video/" + itoa(v.ID) + "/master.m3u8")
	}
	return out
}

// handleVideoList is Videoflix's list: ready videos only, newest first, a
// plain JSON array.
func (s *server) handleVideoList() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		list, err := s.catalog.List(r.Context(), true)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		out := make([]videoJSON, len(list))
		for i, v := range list {
			out[i] = s.videoView(v)
		}
		writeJSON(w, http.StatusOK, out)
	}
}

func (s *server) handleVideoHLS(level int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, ok := pathID(w, r, "id")
		if !ok {
			return
		}
		v, err := s.catalog.Get(r.Context(), id)
		if errors.Is(err, catalog.ErrNotFound) {
			writeError(w, errNotFound)
			return
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		switch level {
		case 0:
			s.serveHLS(w, r, v.Media, "", "")
		case 1:
			s.serveHLS(w, r, v.Media, r.PathValue("res"), "")
		default:
			s.serveHLS(w, r, v.Media, r.PathValue("res"), r.PathValue("segment"))
		}
	}
}

// requireStaff answers 403 to authenticated users who are not staff.
func (s *server) requireStaff(next http.Handler) http.Handler {
	return s.requireUser(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !currentUser(r).IsStaff {
			writeError(w, errorf(http.StatusForbidden, "permission_denied", "Staff only."))
			return
		}
		next.ServeHTTP(w, r)
	}))
}

func (s *server) handleAdminVideoList() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		list, err := s.catalog.List(r.Context(), false)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		out := make([]adminVideoJSON, len(list))
		for i, v := range list {
			out[i] = s.adminVideoView(v)
		}
		writeJSON(w, http.StatusOK, out)
	}
}

// handleAdminVideoCreate takes multipart (file, title, description,
// category) or JSON ({upload_id, title, description, category}).
func (s *server) handleAdminVideoCreate() http.HandlerFunc {
	type request struct {
		UploadID    string `json:"upload_id"`
		Title       string `json:"title"`
		Description string `json:"description"`
		Category    string `json:"category"`
	}
	return func(w http.ResponseWriter, r *http.Request) {
		me := currentUser(r)
		mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		var meta catalog.Meta
		var mediaID int64
		if mt == "multipart/form-data" {
			fields := map[string]string{}
			it, ok := s.createFromMultipart(w, r, me.ID, true, fields)
			if !ok {
				return
			}
			meta = catalog.Meta{Title: fields["title"], Description: fields["description"], Category: fields["category"]}
			mediaID = it.ID
		} else {
			var req request
			if e := decodeJSON(r, &req, s.cfg.MaxBodyBytes); e != nil {
				writeError(w, e)
				return
			}
			if f := required(nil, "upload_id", req.UploadID, "title", req.Title); f != nil {
				writeError(w, invalidInput(f))
				return
			}
			meta = catalog.Meta{Title: req.Title, Description: req.Description, Category: req.Category}
			if e := validateMeta(meta); e != nil {
				writeError(w, e)
				return
			}
			it, err := s.media.CreateFromUpload(r.Context(), me.ID, req.UploadID, true)
			if err != nil {
				s.mediaError(w, r, err, "upload_id")
				return
			}
			mediaID = it.ID
		}
		if e := validateMeta(meta); e != nil {
			_ = s.media.Delete(r.Context(), mediaID)
			writeError(w, e)
			return
		}
		v, err := s.catalog.Create(r.Context(), me.ID, mediaID, meta)
		if err != nil {
			_ = s.media.Delete(r.Context(), mediaID)
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusCreated, s.adminVideoView(v))
	}
}

func validateMeta(m catalog.Meta) *apiError {
	f := map[string][]string{}
	if strings.TrimSpace(m.Title) == "" {
		f["title"] = []string{"This field is required."}
	}
	if len([]rune(m.Title)) > 200 {
		f["title"] = []string{"At most 200 characters."}
	}
	if len([]rune(m.Description)) > 5000 {
		f["description"] = []string{"At most 5000 characters."}
	}
	if len([]rune(m.Category)) > 100 {
		f["category"] = []string{"At most 100 characters."}
	}
	if len(f) > 0 {
		return invalidInput(f)
	}
	return nil
}

func (s *server) handleAdminVideoRetry() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, ok := pathID(w, r, "id")
		if !ok {
			return
		}
		v, err := s.catalog.Get(r.Context(), id)
		if errors.Is(err, catalog.ErrNotFound) {
			writeError(w, errNotFound)
			return
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if v.Media.Status != "failed" {
			writeError(w, errorf(http.StatusConflict, "not_failed", "Only a failed video can be retried."))
			return
		}
		if _, err := s.media.Retry(r.Context(), v.Media.ID); err != nil {
			s.mediaError(w, r, err, "id")
			return
		}
		v, err = s.catalog.Get(r.Context(), id)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusAccepted, s.adminVideoView(v))
	}
}

func (s *server) handleAdminVideoDelete() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, ok := pathID(w, r, "id")
		if !ok {
			return
		}
		v, err := s.catalog.Get(r.Context(), id)
		if errors.Is(err, catalog.ErrNotFound) {
			writeError(w, errNotFound)
			return
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if err := s.media.Delete(r.Context(), v.Media.ID); err != nil {
			s.fail(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}
