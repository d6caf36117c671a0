package httpapi

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"plaza/internal/blob"
	"plaza/internal/media"
)

// Options of the two profile images: a square avatar and a 3:1 cover.
var (
	avatarOptions = media.ImageOptions{Square: true, FitSide: 1024, ThumbSide: 256}
	coverOptions  = media.ImageOptions{Aspect: 3, FitSide: 1800, ThumbSide: 600}
)

// handleProfileImages takes multipart fields profile_picture and/or
// cover_image, or JSON with the same keys as base64 (optionally a data:
// URL). Each part is processed as it streams in; nothing is kept but the
// re-encoded images.
func (s *server) handleProfileImages() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		me := currentUser(r)
		limit := s.maxImageBytes
		var saved []media.SavedImage
		keys := map[string]string{}
		fail := func(e *apiError) {
			_ = media.DeleteImages(r.Context(), s.blob, savedKeys(saved)...)
			writeError(w, e)
		}
		save := func(field string, rd io.Reader) *apiError {
			opt := avatarOptions
			if field == "cover_image" {
				opt = coverOptions
			}
			img, err := media.SaveImage(r.Context(), s.blob, rd, limit, opt, "profiles/"+strconv.FormatInt(me.ID, 10))
			if e := imageError(field, err, limit); e != nil {
				if e.Status == http.StatusInternalServerError {
					s.log.ErrorContext(r.Context(), "store image", "err", err)
				}
				return e
			}
			saved = append(saved, img)
			keys[field] = img.Key
			return nil
		}
		mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		switch {
		case mt == "multipart/form-data":
			r.Body = http.MaxBytesReader(w, r.Body, 2*limit+1<<20)
			mr, err := r.MultipartReader()
			if err != nil {
				writeError(w, errorf(http.StatusBadRequest, "malformed_multipart", "Malformed multipart body."))
				return
			}
			for {
				part, err := mr.NextPart()
				if errors.Is(err, io.EOF) {
					break
				}
				var maxErr *http.MaxBytesError
				if errors.As(err, &maxErr) {
					fail(errorf(http.StatusRequestEntityTooLarge, "body_too_large", "Request body too large."))
					return
				}
				if err != nil {
					fail(errorf(http.StatusBadRequest, "malformed_multipart", "Malformed multipart body."))
					return
				}
				name := part.FormName()
				if (name == "profile_picture" || name == "cover_image") && keys[name] == "" {
					if e := save(name, part); e != nil {
						fail(e)
						return
					}
				}
				part.Close()
			}
		case isJSON(r.Header.Get("Content-Type")):
			var req map[string]any
			if e := decodeJSON(r, &req, 2*(limit*4/3+1024)); e != nil {
				writeError(w, e)
				return
			}
			for _, field := range []string{"profile_picture", "cover_image"} {
				v, ok := req[field]
				if !ok || v == nil {
					continue
				}
				str, isStr := v.(string)
				if !isStr {
					fail(invalidInput(map[string][]string{field: {"Expected a base64 string."}}))
					return
				}
				data := decodeBase64Image(str)
				if data == nil {
					fail(invalidInput(map[string][]string{field: {"Not valid base64 image data."}}))
					return
				}
				if e := save(field, strings.NewReader(string(data))); e != nil {
					fail(e)
					return
				}
			}
		default:
			writeError(w, errorf(http.StatusUnsupportedMediaType, "unsupported_media_type", "Send multipart/form-data or application/json."))
			return
		}
		if len(keys) == 0 {
			writeError(w, invalidInput(map[string][]string{"profile_picture": {"Send profile_picture and/or cover_image."}}))
			return
		}
		old, err := s.social.SetImages(r.Context(), me.ID, keys["profile_picture"], keys["cover_image"])
		if err != nil {
			_ = media.DeleteImages(r.Context(), s.blob, savedKeys(saved)...)
			s.fail(w, r, err)
			return
		}
		if err := media.DeleteImages(r.Context(), s.blob, old...); err != nil {
			s.log.WarnContext(r.Context(), "could not delete replaced images", "err", err)
		}
		s.handleMe()(w, r)
	}
}

func savedKeys(saved []media.SavedImage) []string {
	out := make([]string, len(saved))
	for i, s := range saved {
		out[i] = s.Key
	}
	return out
}

// decodeBase64Image accepts plain or data-URL base64, standard or URL-safe.
func decodeBase64Image(s string) []byte {
	if strings.HasPrefix(s, "data:") {
		_, after, ok := strings.Cut(s, ",")
		if !ok {
			return nil
		}
		s = after
	}
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) > 0 {
			return b
		}
	}
	return nil
}

func imageError(field string, err error, limit int64) *apiError {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, media.ErrImageFileTooLarge):
		return &apiError{Status: http.StatusRequestEntityTooLarge, Code: "file_too_large",
			Detail: "Image larger than " + strconv.FormatInt(limit>>20, 10) + " MB.", Errors: map[string][]string{field: {"Image file too large."}}}
	case errors.Is(err, media.ErrImageTooLarge):
		return invalidInput(map[string][]string{field: {"Image dimensions too large."}})
	case errors.Is(err, media.ErrNotImage):
		return invalidInput(map[string][]string{field: {"Upload a valid image (JPEG, PNG, GIF or WebP)."}})
	default:
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			return errorf(http.StatusRequestEntityTooLarge, "body_too_large", "Request body too large.")
		}
		if errors.Is(err, media.ErrStorage) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return errInternal
		}
		// Anything else is the file's fault: truncated, corrupt, a format
		// that lies about itself.
		return invalidInput(map[string][]string{field: {"The image could not be decoded."}})
	}
}

// handleMediaFile serves stored public files (profile and post images):
// from disk with sendfile, Range and conditional GET; from S3 by redirect
// to a short-lived presigned URL. Names are random and never reused, so
// answers are cacheable for a year.
func (s *server) handleMediaFile() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key := r.PathValue("key")
		if !blob.ValidKey(key) || !(strings.HasPrefix(key, "profiles/") || strings.HasPrefix(key, "images/") || strings.HasPrefix(key, "thumbs/")) {
			writeError(w, errNotFound)
			return
		}
		// S3 hands out a presigned URL (the bytes never pass through us);
		// the local store has none and is served from disk.
		u, err := s.blob.PresignGet(r.Context(), key, time.Hour)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if u != "" {
			w.Header().Set("Cache-Control", "private, max-age=3000")
			http.Redirect(w, r, u, http.StatusFound)
			return
		}
		s.serveBlob(w, r, key, "public, max-age=31536000, immutable")
	}
}

// serveBlob answers GET/HEAD for a stored file with Range and conditional
// requests (http.ServeContent), using sendfile for local files.
func (s *server) serveBlob(w http.ResponseWriter, r *http.Request, key, cacheControl string) {
	obj, err := s.blob.Open(r.Context(), key)
	if errors.Is(err, blob.ErrNotFound) || errors.Is(err, blob.ErrInvalidKey) {
		writeError(w, errNotFound)
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	defer obj.Close()
	info := obj.Info()
	h := w.Header()
	h.Set("Content-Type", info.ContentType)
	h.Set("Cache-Control", cacheControl)
	if info.ETag != "" {
		h.Set("ETag", info.ETag)
	}
	// The API's CSP sandbox would stop a browser rendering images inline.
	h.Del("Content-Security-Policy")
	var content io.ReadSeeker = obj
	if f, ok := obj.(interface{ File() *os.File }); ok {
		content = f.File() // *os.File lets net/http use sendfile
	}
	http.ServeContent(w, r, "", info.ModTime, content)
}
