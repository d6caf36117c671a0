package media

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	expslog "golang.org/x/exp/slog"
)

// Handler serves the tus protocol under BasePath to authenticated users.
// userID tells who is calling (false: 401). OPTIONS (protocol discovery)
// needs no authentication. Errors use the API's JSON shape
// {"detail", "code"}; tusd's own CORS handling is off, so the outer
// middleware must allow and expose the tus headers (Tus-*, Upload-*,
// Location).
func (u *Uploads) Handler(userID func(*http.Request) (int64, bool)) http.Handler {
	tus := u.tus.Middleware(http.HandlerFunc(u.dispatch))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, item, ok := u.route(r.URL.Path)
		if !ok {
			writeUploadError(w, r, http.StatusNotFound, "not_found", "Not found.")
			return
		}
		if r.Method == http.MethodOptions {
			tw := &tusWriter{ResponseWriter: w, st: &reqState{}}
			tus.ServeHTTP(tw, r)
			tw.finish(r)
			return
		}
		method := r.Method
		if o := r.Header.Get("X-HTTP-Method-Override"); method == http.MethodPost && o != "" {
			method = strings.ToUpper(o)
		}
		owner, ok := userID(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="api"`)
			writeUploadError(w, r, http.StatusUnauthorized, "not_authenticated", "Authentication credentials were not provided or are invalid.")
			return
		}
		st := &reqState{owner: owner, writes: method == http.MethodPatch || method == http.MethodPost}
		if !item {
			if method != http.MethodPost {
				w.Header().Set("Allow", "POST, OPTIONS")
				writeUploadError(w, r, http.StatusMethodNotAllowed, "method_not_allowed", "Method not allowed.")
				return
			}
		} else {
			switch method {
			case http.MethodHead, http.MethodPatch, http.MethodGet, http.MethodDelete:
			default:
				w.Header().Set("Allow", "GET, HEAD, PATCH, DELETE, OPTIONS")
				writeUploadError(w, r, http.StatusMethodNotAllowed, "method_not_allowed", "Method not allowed.")
				return
			}
			row, err := u.lookup(r.Context(), id)
			if err != nil && !errors.Is(err, ErrUploadNotFound) {
				u.log.ErrorContext(r.Context(), "upload lookup failed", "err", err)
				writeUploadError(w, r, http.StatusInternalServerError, "internal_error", "Internal server error.")
				return
			}
			// Unknown, someone else's, claimed or expired: all look alike.
			if err != nil || row.owner != owner || row.consumed.Valid || u.expired(row, u.now()) {
				writeUploadError(w, r, http.StatusNotFound, "not_found", "Not found.")
				return
			}
			st.id = id
			if !row.finished.Valid {
				w.Header().Set("Upload-Expires", u.expiresAt(row.created))
			}
		}
		r2 := r.WithContext(context.WithValue(r.Context(), reqStateKey{}, st))
		r2.Method = method
		url := *r.URL
		url.Path, url.RawPath = "/"+id, ""
		r2.URL = &url
		tw := &tusWriter{ResponseWriter: w, st: st, head: method == http.MethodHead}
		tus.ServeHTTP(tw, r2)
		tw.finish(r2)
		u.after(r2, tw, st)
	})
}

// route splits a request path into an upload id: "", false for the
// collection (BasePath), id, true for an upload; ok is false for anything
// else (including ids we never hand out).
func (u *Uploads) route(p string) (id string, item, ok bool) {
	if p == u.basePath || p+"/" == u.basePath {
		return "", false, true
	}
	rest, found := strings.CutPrefix(p, u.basePath)
	if !found {
		return "", false, false
	}
	rest = strings.TrimSuffix(rest, "/")
	if !validUploadID(rest) {
		return "", false, false
	}
	return rest, true, true
}

// dispatch runs behind tusd's middleware (which checks Tus-Resumable and
// answers OPTIONS), on a request Handler has already vetted.
func (u *Uploads) dispatch(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodPost:
		u.tus.PostFile(w, r)
	case http.MethodHead:
		u.tus.HeadFile(w, r)
	case http.MethodPatch:
		u.tus.PatchFile(w, r)
	case http.MethodGet:
		u.tus.GetFile(w, r)
	case http.MethodDelete:
		u.tus.DelFile(w, r)
	}
}

// after keeps the row in step with what the request did.
func (u *Uploads) after(r *http.Request, tw *tusWriter, st *reqState) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Second)
	defer cancel()
	id := st.id
	if id == "" {
		id = st.createdID
	}
	switch {
	case id == "":
	case st.createdID != "" && tw.status >= 400:
		// Creation failed (the store, or the body of a
		// creation-with-upload): the client got no Location, so nobody
		// can reach this upload; do not let it count against the limit.
		if err := u.Remove(ctx, id); err != nil {
			u.log.WarnContext(ctx, "could not remove failed upload", "upload", id, "err", err)
		}
	case tw.status == http.StatusCreated || tw.status == http.StatusNoContent:
		off, err := strconv.ParseInt(tw.Header().Get("Upload-Offset"), 10, 64)
		if err != nil || off <= 0 || st.finished {
			return
		}
		if _, err := u.db.Exec(ctx, `UPDATE uploads SET offset_ = ? WHERE id = ? AND offset_ < ?`, off, id, off); err != nil {
			u.log.WarnContext(ctx, "could not record upload offset", "upload", id, "err", err)
		}
	}
}

// reqState travels with a request through tusd (its hook contexts keep
// the request context's values) to the callbacks.
type reqStateKey struct{}

type reqState struct {
	owner     int64
	id        string // the existing upload the request is about
	createdID string // the upload a POST recorded
	finished  bool   // the request stored the last byte
	writes    bool   // PATCH or POST: may stream a body to the store
}

// tusWriter adjusts tusd's answers: "expiration" joins Tus-Extension,
// Upload-Expires goes once an upload is finished, and errors take the
// API's JSON shape (with no internal detail on 5xx).
type tusWriter struct {
	http.ResponseWriter
	st      *reqState
	head    bool
	status  int
	isErr   bool
	errBody []byte
}

func (w *tusWriter) WriteHeader(code int) {
	if w.status != 0 || code < 200 {
		return
	}
	w.status = code
	h := w.Header()
	if w.st.finished {
		h.Del("Upload-Expires")
	}
	if ext := h.Get("Tus-Extension"); ext != "" && !strings.Contains(ext, "expiration") {
		h.Set("Tus-Extension", ext+",expiration")
	}
	if code >= 400 {
		w.isErr = true // written by finish
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *tusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.isErr {
		if room := 1024 - len(w.errBody); room > 0 {
			w.errBody = append(w.errBody, p[:min(len(p), room)]...)
		}
		return len(p), nil
	}
	return w.ResponseWriter.Write(p)
}

// ReadFrom keeps sendfile(2) for GET of a local upload.
func (w *tusWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok && !w.isErr {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{w}, r)
}

// Unwrap lets tusd's http.ResponseController reach the connection (to
// extend read deadlines while a body streams in).
func (w *tusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *tusWriter) finish(r *http.Request) {
	if !w.isErr {
		return
	}
	code, detail := tusErrorShape(w.status, w.errBody)
	h := w.Header()
	h.Del("Content-Length")
	h.Del("Content-Disposition")
	if w.status == http.StatusPreconditionFailed {
		h.Set("Tus-Version", "1.0.0")
	}
	writeUploadError(w.ResponseWriter, r, w.status, code, detail)
}

// tusErrorShape turns tusd's "ERR_CODE: message" body into a code and a
// detail.
func tusErrorShape(status int, body []byte) (code, detail string) {
	text := strings.TrimSpace(string(body))
	if c, msg, ok := strings.Cut(text, ": "); ok && strings.HasPrefix(c, "ERR_") && !strings.Contains(c, " ") {
		code, text = strings.ToLower(strings.TrimPrefix(c, "ERR_")), msg
	}
	switch {
	case status == http.StatusNotFound:
		return "not_found", "Not found."
	case status >= 500 && (code == "" || code == "internal_server_error"):
		return "internal_error", "Internal server error."
	}
	if code == "" {
		code = strings.ToLower(strings.ReplaceAll(http.StatusText(status), " ", "_"))
	}
	if text == "" {
		text = http.StatusText(status)
	}
	text = strings.ToUpper(text[:1]) + text[1:]
	if !strings.HasSuffix(text, ".") {
		text += "."
	}
	return code, text
}

// writeUploadError answers in the API's error shape; every tus answer
// carries Tus-Resumable.
func writeUploadError(w http.ResponseWriter, r *http.Request, status int, code, detail string) {
	h := w.Header()
	h.Set("Tus-Resumable", "1.0.0")
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_ = json.NewEncoder(w).Encode(struct {
			Detail string `json:"detail"`
			Code   string `json:"code"`
		}{detail, code})
	}
}

// newTusLogger gives tusd (which logs through golang.org/x/exp/slog) our
// logger, warnings and errors only: at info it logs every request and
// chunk. A client breaking off a PATCH is normal for resumable uploads,
// so tusd's BodyReadError goes to debug.
func newTusLogger(l *slog.Logger) *expslog.Logger {
	return expslog.New(tusLogHandler{h: l.Handler()})
}

type tusLogHandler struct {
	h     slog.Handler
	attrs []slog.Attr
}

func (t tusLogHandler) Enabled(ctx context.Context, l expslog.Level) bool {
	return l >= expslog.LevelWarn && t.h.Enabled(ctx, slog.Level(l))
}

func (t tusLogHandler) Handle(ctx context.Context, r expslog.Record) error {
	level := slog.Level(r.Level)
	if r.Message == "BodyReadError" {
		level = slog.LevelDebug
	}
	if !t.h.Enabled(ctx, level) {
		return nil
	}
	rec := slog.NewRecord(r.Time, level, "tusd: "+r.Message, 0)
	rec.AddAttrs(t.attrs...)
	r.Attrs(func(a expslog.Attr) bool {
		rec.AddAttrs(slog.Any(a.Key, a.Value.Any()))
		return true
	})
	return t.h.Handle(ctx, rec)
}

func (t tusLogHandler) WithAttrs(as []expslog.Attr) expslog.Handler {
	out := tusLogHandler{h: t.h, attrs: make([]slog.Attr, 0, len(t.attrs)+len(as))}
	out.attrs = append(out.attrs, t.attrs...)
	for _, a := range as {
		out.attrs = append(out.attrs, slog.Any(a.Key, a.Value.Any()))
	}
	return out
}

func (t tusLogHandler) WithGroup(string) expslog.Handler { return t }

// UploadCORSHeaders lists the request headers a browser tus client sends
// (for Access-Control-Allow-Headers) and the response headers it must
// read (for Access-Control-Expose-Headers), for the outer CORS middleware.
var UploadCORSHeaders = struct{ Allow, Expose []string }{
	Allow:  []string{"Tus-Resumable", "Upload-Length", "Upload-Offset", "Upload-Metadata", "Upload-Defer-Length", "Upload-Concat", "X-HTTP-Method-Override", "Content-Type"},
	Expose: []string{"Location", "Upload-Offset", "Upload-Length", "Upload-Metadata", "Upload-Expires", "Tus-Resumable", "Tus-Version", "Tus-Extension", "Tus-Max-Size", "Retry-After"},
}
