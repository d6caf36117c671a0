package httpapi

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
)

type ctxKey int

const (
	ctxInfo ctxKey = iota
	ctxUser
)

// reqInfo travels with a request so that the outer middleware (access log,
// metrics) learns what the inner layers found: the route and the user.
type reqInfo struct {
	id      string
	route   string
	logPath string // the path with secret segments (link tokens) masked
	userID  int64
}

func info(ctx context.Context) *reqInfo {
	if ri, ok := ctx.Value(ctxInfo).(*reqInfo); ok {
		return ri
	}
	return &reqInfo{}
}

// statusWriter remembers the status and size of an answer. It passes
// through http.Flusher and io.ReaderFrom (sendfile) via Unwrap.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// ReadFrom lets io.Copy reach net/http's own ReadFrom, which sends a file
// with sendfile(2) instead of copying it through user space: without it,
// every media file and HLS segment served through this wrapper was copied.
func (w *statusWriter) ReadFrom(src io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := io.Copy(w.ResponseWriter, src)
	w.bytes += n
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// observe assigns the request id, recovers panics, writes the access log
// and records metrics. It is the outermost layer.
func (s *server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get("X-Request-ID")
		if !validRequestID(id) {
			id = newRequestID()
		}
		ri := &reqInfo{id: id}
		w.Header().Set("X-Request-ID", id)
		sw := &statusWriter{ResponseWriter: w}
		r = r.WithContext(context.WithValue(r.Context(), ctxInfo, ri))
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.log.ErrorContext(r.Context(), "panic serving request", "request_id", id, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				if sw.status == 0 {
					writeError(sw, errInternal)
				}
			}
			status := sw.status
			if status == 0 {
				status = http.StatusOK
			}
			route := ri.route
			if route == "" {
				route = "unmatched"
			}
			logPath := ri.logPath
			if logPath == "" {
				logPath = r.URL.Path
			}
			elapsed := time.Since(start)
			s.metrics.requests.WithLabelValues(r.Method, route, strconv.Itoa(status)).Inc()
			s.metrics.duration.WithLabelValues(r.Method, route).Observe(elapsed.Seconds())
			// The path only: query strings may carry access tokens (WebSocket),
			// and headers and bodies (cookies, passwords) are never logged.
			s.log.LogAttrs(r.Context(), slog.LevelInfo, "request",
				slog.String("request_id", id),
				slog.String("method", r.Method),
				slog.String("path", logPath),
				slog.String("route", route),
				slog.Int("status", status),
				slog.Int64("bytes", sw.bytes),
				slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
				slog.String("remote", s.clientIP(r)),
				slog.Int64("user_id", ri.userID),
			)
		}()
		next.ServeHTTP(sw, r)
	})
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

func newRequestID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// secure sets the headers every answer carries. API answers are JSON or
// media, never pages, so their CSP forbids everything.
func (s *server) secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "strict-origin-when-cross-origin")
		h.Set("X-Frame-Options", "DENY")
		if strings.HasPrefix(r.URL.Path, "/api/") || r.URL.Path == "/healthz" || r.URL.Path == "/readyz" || r.URL.Path == "/metrics" {
			h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'; sandbox")
			h.Set("Cache-Control", "no-store")
		}
		next.ServeHTTP(w, r)
	})
}

// cors answers preflights and adds CORS headers for trusted origins only,
// on every answer (errors and media included). Other origins get none.
func (s *server) cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" || !s.trusted(origin) {
			if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
				// A preflight from an origin we do not trust: no CORS headers,
				// so the browser stops there.
				w.WriteHeader(http.StatusNoContent)
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Add("Vary", "Origin")
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Allow-Credentials", "true")
		h.Set("Access-Control-Expose-Headers", "Location, Retry-After, X-Request-ID, ETag, Content-Range, Content-Length, Accept-Ranges, Upload-Offset, Upload-Length, Upload-Metadata, Upload-Expires, Tus-Resumable, Tus-Version, Tus-Extension, Tus-Max-Size")
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Add("Vary", "Access-Control-Request-Method, Access-Control-Request-Headers")
			h.Set("Access-Control-Allow-Methods", "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS")
			h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, X-CSRFToken, X-Requested-With, X-Request-ID, Range, If-None-Match, If-Modified-Since, Tus-Resumable, Upload-Length, Upload-Offset, Upload-Metadata, Upload-Defer-Length, Upload-Concat, X-HTTP-Method-Override")
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *server) trusted(origin string) bool {
	_, ok := s.origins[strings.ToLower(origin)]
	return ok
}

// csrf protects cookie-authenticated writes: an unsafe request must come
// from a trusted Origin (or Referer); with neither header it must echo the
// csrftoken cookie in X-CSRFToken.
func (s *server) csrf(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
			next.ServeHTTP(w, r)
			return
		}
		// Only requests a browser could make on the user's behalf need the
		// check: those carrying our auth cookies, and login, which sets them
		// (so no other site can log a visitor into an account of its choice).
		// Bearer requests are exempt: a browser never adds that header itself.
		if strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") || (!hasAuthCookie(r) && r.URL.Path != "/api/login/") {
			next.ServeHTTP(w, r)
			return
		}
		origin := r.Header.Get("Origin")
		if origin == "" {
			if ref := r.Header.Get("Referer"); ref != "" {
				if u, err := url.Parse(ref); err == nil && u.Scheme != "" && u.Host != "" {
					origin = u.Scheme + "://" + u.Host
				} else {
					origin = "invalid"
				}
			}
		}
		if origin != "" {
			if !s.trusted(origin) {
				writeError(w, errForbiddenCSRF)
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		if hasAuthCookie(r) {
			c, err := r.Cookie(cookieCSRF)
			header := r.Header.Get("X-CSRFToken")
			if err != nil || c.Value == "" || subtle.ConstantTimeCompare([]byte(c.Value), []byte(header)) != 1 {
				writeError(w, errForbiddenToken)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func hasAuthCookie(r *http.Request) bool {
	for _, name := range []string{cookieAccess, cookieRefresh} {
		if c, err := r.Cookie(name); err == nil && c.Value != "" {
			return true
		}
	}
	return false
}

// slashes makes /api/login answer as /api/login/ does, in place (a redirect
// would lose a POST body). The HLS playlist and spec files keep their names.
func slashes(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if strings.HasPrefix(p, "/api/") && !strings.HasSuffix(p, "/") &&
			!strings.HasSuffix(p, ".m3u8") && p != "/api/openapi.yaml" && !strings.HasPrefix(p, "/api/uploads/") {
			r.URL.Path = p + "/"
			if r.URL.RawPath != "" {
				r.URL.RawPath += "/"
			}
		}
		next.ServeHTTP(w, r)
	})
}

// clientIP is the peer address, or the first address in X-Forwarded-For
// not belonging to a trusted proxy when the peer is one.
func (s *server) clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if len(s.cfg.TrustedProxies) == 0 || !s.isProxy(host) {
		return host
	}
	hops := strings.Split(r.Header.Get("X-Forwarded-For"), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		h := strings.TrimSpace(hops[i])
		if net.ParseIP(h) == nil {
			break
		}
		if !s.isProxy(h) {
			return h
		}
	}
	return host
}

func (s *server) isProxy(host string) bool {
	ip := net.ParseIP(host)
	for _, n := range s.cfg.TrustedProxies {
		if ip != nil && n.Contains(ip) {
			return true
		}
	}
	return false
}
