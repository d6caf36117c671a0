package live

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisPresence is the cluster-wide Presence of several instances sharing
// one Redis.
//
// Keys (all in one Redis Cluster hash slot, through the {presence} tag):
//
//	<prefix>{presence}:instances    ZSET instance id → last heartbeat (Redis TIME, ms)
//	<prefix>{presence}:inst:<id>    SET of the user ids with a socket on instance <id>
//
// Each instance refreshes its score and its set's expiry every ttl/3. An
// instance is live while its score is younger than ttl; a user is online
// while a live instance's set holds it. Every change and question is one Lua
// script, so Connected and Disconnected are atomic against each other
// across instances: of two instances connecting the same user at once,
// exactly one reports becameOnline, and of two disconnecting it, exactly
// one reports becameOffline.
//
// A crashed instance stops heartbeating: ttl later its users read as
// offline in Online, and within ttl/3 more the first live instance to
// heartbeat removes it and reports those users (unless online elsewhere) to
// its PresenceWatcher handler as gone offline, exactly once cluster-wide. An
// instance that was paused for longer than ttl (and so removed) puts its
// users back on its next heartbeat and reports those who were offline
// everywhere as online again.
//
// Race windows, all small: during the ttl after a crash the crashed
// instance's users still read as online; a user that connects to an
// instance while another instance is being declared dead may see one
// offline/online pair of events; Online answers from the moment it runs.
type RedisPresence struct {
	client     redis.UniversalClient
	id         string
	ttl        time.Duration
	instances  string // ZSET key
	own        string // this instance's SET key
	instPrefix string // prefix of the instance SET keys
	log        *slog.Logger

	mu    sync.Mutex
	local map[int64]struct{} // users this instance has in its set
	watch PresenceHandler

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// NewRedisPresence registers instanceID (unique per running process; empty:
// a random one) in Redis and heartbeats every ttl/3 until Close. ttl
// (default 30s) is how long a crashed instance's users keep reading as
// online. ctx bounds the registration only. Keys start with prefix.
func NewRedisPresence(ctx context.Context, client redis.UniversalClient, prefix, instanceID string, ttl time.Duration) (Presence, error) {
	if client == nil {
		return nil, errors.New("live: NewRedisPresence needs a client")
	}
	if ttl <= 0 {
		ttl = 30 * time.Second
	}
	if ttl < 30*time.Millisecond {
		return nil, fmt.Errorf("live: presence ttl %v is too short", ttl)
	}
	if instanceID == "" {
		instanceID = randomInstanceID()
	}
	base := prefix + "{presence}:"
	p := &RedisPresence{
		client:     client,
		id:         instanceID,
		ttl:        ttl,
		instances:  base + "instances",
		own:        base + "inst:" + instanceID,
		instPrefix: base + "inst:",
		log:        slog.Default(),
		local:      make(map[int64]struct{}),
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
	}
	// A restarted process that reuses its id starts with an empty set.
	if err := registerScript.Run(ctx, client, p.keys(), p.id, p.ttlMS()).Err(); err != nil {
		return nil, fmt.Errorf("live: register presence instance: %w", err)
	}
	go p.heartbeatLoop()
	return p, nil
}

func randomInstanceID() string {
	host, _ := os.Hostname()
	var b [6]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

func (p *RedisPresence) keys() []string { return []string{p.instances, p.own} }
func (p *RedisPresence) ttlMS() int64   { return p.ttl.Milliseconds() }

// The scripts share these Lua helpers.
const luaPrelude = `
local function now_ms()
	local t = redis.call('TIME')
	return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function live_instances(zset, now, ttl)
	return redis.call('ZRANGEBYSCORE', zset, now - ttl, '+inf')
end
local function elsewhere(live, self, prefix, uid)
	for _, id in ipairs(live) do
		if id ~= self and redis.call('SISMEMBER', prefix .. id, uid) == 1 then
			return true
		end
	end
	return false
end
local function beat(zset, own, self, now, ttl)
	local fresh = redis.call('ZADD', zset, now, self)
	redis.call('PEXPIRE', zset, ttl * 4)
	redis.call('PEXPIRE', own, ttl * 2)
	return fresh
end
`

// KEYS: instances, own. ARGV: id, ttl.
var registerScript = redis.NewScript(luaPrelude + `
redis.call('DEL', KEYS[2])
beat(KEYS[1], KEYS[2], ARGV[1], now_ms(), tonumber(ARGV[2]))
return 1
`)

// KEYS: instances, own. ARGV: id, ttl, instance key prefix, user.
// Returns {added to own set, online elsewhere, this instance was missing}.
var connectScript = redis.NewScript(luaPrelude + `
local now, ttl = now_ms(), tonumber(ARGV[2])
local added = redis.call('SADD', KEYS[2], ARGV[4])
local fresh = beat(KEYS[1], KEYS[2], ARGV[1], now, ttl)
local other = 0
if elsewhere(live_instances(KEYS[1], now, ttl), ARGV[1], ARGV[3], ARGV[4]) then other = 1 end
return {added, other, fresh}
`)

// KEYS: instances, own. ARGV: id, ttl, instance key prefix, user.
// Returns {removed from own set, online elsewhere}.
var disconnectScript = redis.NewScript(luaPrelude + `
local now, ttl = now_ms(), tonumber(ARGV[2])
local removed = redis.call('SREM', KEYS[2], ARGV[4])
local other = 0
if elsewhere(live_instances(KEYS[1], now, ttl), ARGV[1], ARGV[3], ARGV[4]) then other = 1 end
return {removed, other}
`)

// KEYS: instances. ARGV: ttl, instance key prefix, users...
// Returns 1 or 0 per user.
var onlineScript = redis.NewScript(luaPrelude + `
local live = live_instances(KEYS[1], now_ms(), tonumber(ARGV[1]))
local out = {}
for i = 3, #ARGV do
	local on = 0
	if elsewhere(live, '', ARGV[2], ARGV[i]) then on = 1 end
	out[#out + 1] = on
end
return out
`)

// KEYS: instances, own. ARGV: id, ttl, instance key prefix.
// Refreshes this instance, removes the dead ones and returns
// {this instance was missing, {users of dead instances now offline}}.
var heartbeatScript = redis.NewScript(luaPrelude + `
local now, ttl, prefix = now_ms(), tonumber(ARGV[2]), ARGV[3]
local fresh = beat(KEYS[1], KEYS[2], ARGV[1], now, ttl)
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - ttl))
local offline, seen = {}, {}
if #dead > 0 then
	local live = live_instances(KEYS[1], now, ttl)
	for _, d in ipairs(dead) do
		redis.call('ZREM', KEYS[1], d)
		local key = prefix .. d
		local members = redis.call('SMEMBERS', key)
		redis.call('DEL', key)
		for _, u in ipairs(members) do
			if not seen[u] then
				seen[u] = true
				if not elsewhere(live, '', prefix, u) then offline[#offline + 1] = u end
			end
		end
	end
end
return {fresh, offline}
`)

// KEYS: instances, own. ARGV: id, ttl, instance key prefix, users...
// Puts users back into this instance's set; returns those that were
// offline everywhere.
var resyncScript = redis.NewScript(luaPrelude + `
local now, ttl = now_ms(), tonumber(ARGV[2])
beat(KEYS[1], KEYS[2], ARGV[1], now, ttl)
local live = live_instances(KEYS[1], now, ttl)
local back = {}
for i = 4, #ARGV do
	if redis.call('SADD', KEYS[2], ARGV[i]) == 1 and not elsewhere(live, ARGV[1], ARGV[3], ARGV[i]) then
		back[#back + 1] = ARGV[i]
	end
end
redis.call('PEXPIRE', KEYS[2], ttl * 2)
return back
`)

// Connected implements Presence.
func (p *RedisPresence) Connected(ctx context.Context, userID int64) (bool, error) {
	p.mu.Lock()
	p.local[userID] = struct{}{}
	p.mu.Unlock()
	r, err := connectScript.Run(ctx, p.client, p.keys(), p.id, p.ttlMS(), p.instPrefix, userID).Int64Slice()
	if err != nil {
		return false, fmt.Errorf("live: presence connect: %w", err)
	}
	if len(r) != 3 {
		return false, fmt.Errorf("live: presence connect: unexpected reply %v", r)
	}
	if r[2] == 1 { // this instance had been declared dead: put its users back
		p.resync(ctx)
	}
	return r[0] == 1 && r[1] == 0, nil
}

// Disconnected implements Presence.
func (p *RedisPresence) Disconnected(ctx context.Context, userID int64) (bool, error) {
	p.mu.Lock()
	delete(p.local, userID)
	p.mu.Unlock()
	r, err := disconnectScript.Run(ctx, p.client, p.keys(), p.id, p.ttlMS(), p.instPrefix, userID).Int64Slice()
	if err != nil {
		return false, fmt.Errorf("live: presence disconnect: %w", err)
	}
	if len(r) != 2 {
		return false, fmt.Errorf("live: presence disconnect: unexpected reply %v", r)
	}
	return r[0] == 1 && r[1] == 0, nil
}

// presenceChunk bounds the users passed to one script run.
const presenceChunk = 1000

// Online implements Presence.
func (p *RedisPresence) Online(ctx context.Context, userIDs []int64) (map[int64]bool, error) {
	out := make(map[int64]bool, len(userIDs))
	for len(userIDs) > 0 {
		n := min(len(userIDs), presenceChunk)
		args := make([]any, 0, n+2)
		args = append(args, p.ttlMS(), p.instPrefix)
		for _, id := range userIDs[:n] {
			args = append(args, id)
		}
		r, err := onlineScript.Run(ctx, p.client, []string{p.instances}, args...).Int64Slice()
		if err != nil {
			return nil, fmt.Errorf("live: presence online: %w", err)
		}
		if len(r) != n {
			return nil, fmt.Errorf("live: presence online: %d answers for %d users", len(r), n)
		}
		for i, id := range userIDs[:n] {
			out[id] = r[i] == 1
		}
		userIDs = userIDs[n:]
	}
	return out, nil
}

// WatchPresence implements PresenceWatcher: fn learns of the users of
// crashed instances going offline and of this instance's users coming back
// after it was declared dead.
func (p *RedisPresence) WatchPresence(fn PresenceHandler) {
	p.mu.Lock()
	p.watch = fn
	p.mu.Unlock()
}

func (p *RedisPresence) report(ctx context.Context, ids []string, online bool) {
	p.mu.Lock()
	fn := p.watch
	p.mu.Unlock()
	if fn == nil {
		return
	}
	for _, s := range ids {
		if id, err := strconv.ParseInt(s, 10, 64); err == nil {
			fn(ctx, id, online)
		}
	}
}

func (p *RedisPresence) heartbeatLoop() {
	defer close(p.done)
	t := time.NewTicker(p.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		p.heartbeat()
	}
}

func (p *RedisPresence) heartbeat() {
	ctx, cancel := context.WithTimeout(context.Background(), p.ttl/2)
	defer cancel()
	r, err := heartbeatScript.Run(ctx, p.client, p.keys(), p.id, p.ttlMS(), p.instPrefix).Slice()
	if err != nil || len(r) != 2 {
		p.log.Warn("live: presence heartbeat failed", "instance", p.id, "error", err)
		return
	}
	if fresh, _ := r[0].(int64); fresh == 1 {
		p.log.Warn("live: presence instance had been declared dead; re-registering its users", "instance", p.id)
		p.resync(ctx)
	}
	if gone, _ := r[1].([]any); len(gone) > 0 {
		ids := make([]string, 0, len(gone))
		for _, g := range gone {
			if s, ok := g.(string); ok {
				ids = append(ids, s)
			}
		}
		p.report(ctx, ids, false)
	}
}

// resync puts every local user back into this instance's set.
func (p *RedisPresence) resync(ctx context.Context) {
	p.mu.Lock()
	users := make([]int64, 0, len(p.local))
	for id := range p.local {
		users = append(users, id)
	}
	p.mu.Unlock()
	for len(users) > 0 {
		n := min(len(users), presenceChunk)
		args := make([]any, 0, n+3)
		args = append(args, p.id, p.ttlMS(), p.instPrefix)
		for _, id := range users[:n] {
			args = append(args, id)
		}
		back, err := resyncScript.Run(ctx, p.client, p.keys(), args...).StringSlice()
		if err != nil {
			p.log.Warn("live: presence resync failed", "instance", p.id, "error", err)
			return
		}
		p.report(ctx, back, true)
		users = users[n:]
	}
}

// stopHeartbeat stops heartbeating without leaving Redis, as a crash would.
func (p *RedisPresence) stopHeartbeat() {
	p.closeOnce.Do(func() {
		close(p.stop)
		<-p.done
	})
}

// Close stops heartbeating and removes this instance from Redis: users
// still in its set read as offline at once, without events (close the hub,
// which disconnects everyone, first).
func (p *RedisPresence) Close() error {
	p.closeOnce.Do(func() {
		close(p.stop)
		<-p.done
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := p.client.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
			pipe.ZRem(ctx, p.instances, p.id)
			pipe.Del(ctx, p.own)
			return nil
		})
		if err != nil {
			p.closeErr = fmt.Errorf("live: presence close: %w", err)
		}
	})
	return p.closeErr
}
