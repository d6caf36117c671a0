// Package httpapi is Plaza's HTTP surface: every route (routes.go), the
// middleware every answer passes through, JSON in and out, and the one
// error shape. Handlers are thin: decode, call a service, encode.
package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"plaza/internal/account"
	"plaza/internal/blob"
	"plaza/internal/catalog"
	"plaza/internal/config"
	"plaza/internal/live"
	"plaza/internal/media"
	"plaza/internal/post"
	"plaza/internal/ratelimit"
	"plaza/internal/social"
)

// ReadyCheck is one dependency /readyz asks.
type ReadyCheck struct {
	Name  string
	Check func(context.Context) error
}

// Deps is what the server needs from the rest of the application.
type Deps struct {
	Config   *config.Config
	Log      *slog.Logger
	Accounts *account.Service
	Social   *social.Service
	Posts    *post.Service
	Blob     blob.Store
	Media    *media.Service
	Catalog  *catalog.Service
	Live     *live.Service
	Hub      *live.Hub
	// Uploads serves the tus protocol; userID tells it who is calling.
	Uploads func(userID func(*http.Request) (int64, bool)) http.Handler
	// Limiter backs the auth rate limits; nil turns them off.
	Limiter  ratelimit.Limiter
	Ready    []ReadyCheck
	Registry *prometheus.Registry
}

type server struct {
	cfg      *config.Config
	log      *slog.Logger
	accounts *account.Service
	social   *social.Service
	posts    *post.Service
	blob     blob.Store
	media    *media.Service
	catalog  *catalog.Service
	live     *live.Service
	hub      *live.Hub
	uploads  http.Handler
	limiter  ratelimit.Limiter
	ready    []ReadyCheck
	registry *prometheus.Registry
	metrics  metrics
	origins  map[string]struct{}
	mux      *http.ServeMux

	maxImageBytes int64
}

type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewServer builds the handler for every route.
func NewServer(d Deps) http.Handler {
	s := &server{
		cfg: d.Config, log: d.Log, accounts: d.Accounts, social: d.Social, posts: d.Posts, blob: d.Blob, media: d.Media, catalog: d.Catalog, live: d.Live, hub: d.Hub, limiter: d.Limiter,
		maxImageBytes: d.Config.MaxImageBytes,
		ready:         d.Ready, registry: d.Registry, mux: http.NewServeMux(),
		origins: map[string]struct{}{},
	}
	for _, o := range d.Config.TrustedOrigins {
		s.origins[strings.ToLower(o)] = struct{}{}
	}
	s.metrics = metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "plaza_http_requests_total", Help: "HTTP requests by method, route and status.",
		}, []string{"method", "route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "plaza_http_request_duration_seconds", Help: "HTTP request latency by method and route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"method", "route"}),
	}
	d.Registry.MustRegister(s.metrics.requests, s.metrics.duration)
	if d.Uploads != nil {
		s.uploads = d.Uploads(s.uploadUser)
	}
	s.routes()
	return s.observe(s.secure(s.cors(slashes(s.csrf(http.HandlerFunc(s.dispatch))))))
}

// dispatch routes the request and turns the mux's own plain-text 404 and
// 405 answers into the JSON error shape.
func (s *server) dispatch(w http.ResponseWriter, r *http.Request) {
	// A path with dot segments or empty segments (also when they were
	// percent-encoded) is never a real resource; the mux would redirect it
	// to a cleaned path, but a path trick gets a plain 404.
	if p := r.URL.Path; strings.Contains(p, "/../") || strings.HasSuffix(p, "/..") || strings.Contains(p, "/./") ||
		strings.HasSuffix(p, "/.") || strings.Contains(p, "//") || strings.ContainsRune(p, '\\') || strings.ContainsRune(p, 0) {
		writeError(w, errNotFound)
		return
	}
	if _, pattern := s.mux.Handler(r); pattern != "" {
		s.mux.ServeHTTP(w, r)
		return
	}
	rec := &discardRecorder{header: http.Header{}}
	s.mux.ServeHTTP(rec, r)
	if rec.code == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", rec.header.Get("Allow"))
		writeError(w, errorf(http.StatusMethodNotAllowed, "method_not_allowed", "Method "+r.Method+" not allowed."))
		return
	}
	writeError(w, errNotFound)
}

// handle registers a route; the pattern becomes the route label of logs
// and metrics.
func (s *server) handle(pattern string, h http.Handler) {
	s.mux.Handle(pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ri := info(r.Context())
		ri.route = pattern
		// Activation and reset links carry their secret in the path; it
		// must not reach the access log.
		if tok := r.PathValue("token"); tok != "" {
			ri.logPath = strings.Replace(r.URL.Path, tok, "[redacted]", 1)
		}
		h.ServeHTTP(w, r)
	}))
}

// discardRecorder captures only the status and headers of the mux's own
// fallback answers.
type discardRecorder struct {
	header http.Header
	code   int
}

func (d *discardRecorder) Header() http.Header { return d.header }
func (d *discardRecorder) WriteHeader(code int) {
	if d.code == 0 {
		d.code = code
	}
}
func (d *discardRecorder) Write(b []byte) (int, error) {
	d.WriteHeader(http.StatusOK)
	return len(b), nil
}

// uploadUser authenticates a tus request for the uploads handler.
func (s *server) uploadUser(r *http.Request) (int64, bool) {
	u, err := s.authenticate(r)
	if err != nil || u == nil {
		return 0, false
	}
	info(r.Context()).userID = u.ID
	return u.ID, true
}
