package httpapi

import (
	"context"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"plaza/api"
	"plaza/web"
)

func (s *server) handleHealth() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}
}

// handleReady asks every dependency, in parallel, within two seconds.
func (s *server) handleReady() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		type result struct {
			name string
			err  error
		}
		ch := make(chan result, len(s.ready))
		for _, c := range s.ready {
			go func() { ch <- result{c.Name, c.Check(ctx)} }()
		}
		checks := map[string]string{}
		ok := true
		for range s.ready {
			res := <-ch
			if res.err != nil {
				ok = false
				checks[res.name] = "unavailable"
				s.log.WarnContext(r.Context(), "readiness check failed", "check", res.name, "err", res.err)
			} else {
				checks[res.name] = "ok"
			}
		}
		status, word := http.StatusOK, "ok"
		if !ok {
			status, word = http.StatusServiceUnavailable, "unavailable"
		}
		writeJSON(w, status, map[string]any{"status": word, "checks": checks})
	}
}

func (s *server) handleMetrics() http.Handler {
	return promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{})
}

func (s *server) handleOpenAPI() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		w.Header().Set("Cache-Control", "public, max-age=300")
		_, _ = w.Write(api.OpenAPIYAML)
	}
}

// handleStatic serves the embedded static files with long caching: their
// names are fixed and they change only with a new release (ETag by size and
// release covers that).
func (s *server) handleStatic() http.Handler {
	sub, _ := fs.Sub(web.Static, "static")
	files := http.StripPrefix("/static/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") {
			writeError(w, errNotFound) // no directory listings
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=86400")
		files.ServeHTTP(w, r)
	})
}
