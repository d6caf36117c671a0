package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// allowScript is the sliding window log of one key as a Redis sorted set:
// members are allowed events, scored by their time in microseconds. Running
// it as one script makes read-decide-write atomic, so concurrent API
// processes cannot both take the last slot.
//
// The time comes from the Redis server (TIME), not from the callers, so
// processes whose clocks disagree still share one timeline. Redis 5 and
// later replicate the script's effects rather than the script, which is what
// makes the non-deterministic TIME call safe before writes.
//
// The boundaries match Memory exactly: an event at time s still counts at
// time now while s > now-window, and RetryAfter is the time until the event
// that must leave for one more to fit does so.
//
// KEYS[1]  the sorted set
// ARGV[1]  limit
// ARGV[2]  window in microseconds
// ARGV[3]  random token that keeps members unique within one microsecond
//
// Returns {allowed (0|1), remaining, retry after in microseconds}.
const allowScript = `
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])

local t = redis.call('TIME')
-- Build the microsecond timestamp as a string: Lua 5.1 would print the
-- number in exponent notation and lose digits.
local nowstr = t[1] .. string.sub('000000' .. t[2], -6)
local now = tonumber(nowstr)

redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local count = redis.call('ZCARD', key)

if count < limit then
  redis.call('ZADD', key, nowstr, nowstr .. ':' .. ARGV[3])
  -- The key disappears on its own once its newest event has left the
  -- window; never shorten a longer expiry set under a longer window.
  local ttl = math.ceil(window / 1000)
  if redis.call('PTTL', key) < ttl then
    redis.call('PEXPIRE', key, ttl)
  end
  return {1, limit - count - 1, 0}
end

local gate = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
return {0, 0, tonumber(gate[2]) + window - now}
`

// Redis is a [Limiter] whose state lives in Redis, so that every API process
// sharing that Redis enforces the same limit. It is safe for concurrent use.
//
// Each key is one sorted set named prefix+key that expires on its own one
// window after its newest event, so abandoned keys cost nothing. Errors from
// Redis are returned, not hidden: whether to fail open or closed is the
// caller's decision.
type Redis struct {
	client redis.UniversalClient
	prefix string
	// allow is per instance because redis.Script caches its digest.
	allow *redis.Script
}

// NewRedis returns a limiter that stores its keys in client under prefix
// (for example "plaza:ratelimit:"), which keeps them apart from other data
// in the same database.
func NewRedis(client redis.UniversalClient, prefix string) *Redis {
	return &Redis{client: client, prefix: prefix, allow: redis.NewScript(allowScript)}
}

// Allow implements [Limiter].
func (r *Redis) Allow(ctx context.Context, key string, rule Rule) (Decision, error) {
	if err := rule.validate(); err != nil {
		return Decision{}, fmt.Errorf("ratelimit: redis allow: %w", err)
	}
	// Redis works in whole microseconds; round up so a window never shrinks.
	window := (rule.Window + time.Microsecond - 1) / time.Microsecond
	token := strconv.FormatUint(rand.Uint64(), 36)

	res, err := r.allow.Run(ctx, r.client, []string{r.prefix + key}, rule.Limit, int64(window), token).Int64Slice()
	if err != nil {
		return Decision{}, fmt.Errorf("ratelimit: redis allow: %w", err)
	}
	if len(res) != 3 {
		return Decision{}, fmt.Errorf("ratelimit: redis allow: %w: got %d values, want 3", errBadReply, len(res))
	}
	return Decision{
		Allowed:    res[0] == 1,
		Remaining:  int(res[1]),
		RetryAfter: time.Duration(res[2]) * time.Microsecond,
	}, nil
}

// errBadReply marks a script reply of the wrong shape, which means the
// script and this code disagree.
var errBadReply = errors.New("unexpected script reply")

// Reset implements [Limiter].
func (r *Redis) Reset(ctx context.Context, key string) error {
	if err := r.client.Del(ctx, r.prefix+key).Err(); err != nil {
		return fmt.Errorf("ratelimit: redis reset: %w", err)
	}
	return nil
}
