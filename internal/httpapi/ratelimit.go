package httpapi

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"plaza/internal/ratelimit"
)

// The auth rate limits. Per-address limits stop one client from guessing
// many accounts; per-account limits stop many clients guessing one.
var (
	limitLoginIP      = ratelimit.Rule{Limit: 30, Window: time.Minute}
	limitLoginAccount = ratelimit.Rule{Limit: 10, Window: 15 * time.Minute}
	limitRegisterIP   = ratelimit.Rule{Limit: 10, Window: time.Hour}
	limitRefreshIP    = ratelimit.Rule{Limit: 60, Window: time.Minute}
	limitResetIP      = ratelimit.Rule{Limit: 10, Window: time.Hour}
	limitResetAccount = ratelimit.Rule{Limit: 3, Window: time.Hour}
	limitConfirmIP    = ratelimit.Rule{Limit: 20, Window: time.Hour}
)

// allow records one event under key and rule; when over the limit it
// answers 429 with Retry-After and returns false. A limiter failure (Redis
// down) lets the request through and is logged: availability over strictness.
func (s *server) allow(w http.ResponseWriter, r *http.Request, key string, rule ratelimit.Rule) bool {
	if s.limiter == nil {
		return true
	}
	d, err := s.limiter.Allow(r.Context(), key, rule)
	if err != nil {
		s.log.WarnContext(r.Context(), "rate limiter unavailable; allowing", "err", err)
		return true
	}
	if d.Allowed {
		return true
	}
	secs := int(math.Ceil(d.RetryAfter.Seconds()))
	if secs < 1 {
		secs = 1
	}
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeError(w, errorf(http.StatusTooManyRequests, "rate_limited", fmt.Sprintf("Too many requests. Try again in %d seconds.", secs)))
	return false
}

func (s *server) resetLimit(r *http.Request, key string) {
	if s.limiter != nil {
		_ = s.limiter.Reset(r.Context(), key)
	}
}
