// Package app wires Plaza together from a Config: database, jobs, mail,
// rate limits, services and the HTTP handler. It holds no logic of its own.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"

	"plaza/internal/account"
	"plaza/internal/blob"
	"plaza/internal/cache"
	"plaza/internal/catalog"
	"plaza/internal/config"
	"plaza/internal/db"
	"plaza/internal/httpapi"
	"plaza/internal/jobs"
	"plaza/internal/live"
	"plaza/internal/mail"
	"plaza/internal/media"
	"plaza/internal/post"
	"plaza/internal/pubsub"
	"plaza/internal/ratelimit"
	"plaza/internal/social"
)

// Options are knobs that do not come from the environment.
type Options struct {
	// Argon2 overrides the password hashing cost (tests use a cheaper one).
	Argon2 account.Argon2Params
	// JobPollInterval overrides how often workers poll for jobs.
	JobPollInterval time.Duration
}

// App is a built Plaza.
type App struct {
	Config   *config.Config
	Log      *slog.Logger
	DB       *db.DB
	Jobs     *jobs.Queue
	Accounts *account.Service
	Social   *social.Service
	Posts    *post.Service
	Blob     blob.Store
	Media    *media.Service
	Uploads  *media.Uploads
	Catalog  *catalog.Service
	Live     *live.Service
	Hub      *live.Hub
	Broker   pubsub.Broker
	Presence live.Presence
	Redis    *redis.Client
	Handler  http.Handler
	opts     Options
	working  bool
	// stopFanOut ends the fan-out loop StartWorkers started; fanOutDone
	// closes when it has.
	stopFanOut context.CancelFunc
	fanOutDone chan struct{}
}

// fanOutPoll is how often a worker looks for posts queued by other
// processes (this process's own posts wake it at once).
const fanOutPoll = 200 * time.Millisecond

// New opens the database, applies migrations and builds every component.
func New(ctx context.Context, cfg *config.Config, log *slog.Logger, opts Options) (*App, error) {
	d, err := db.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, err
	}
	a := &App{Config: cfg, Log: log, DB: d, opts: opts}
	if err := a.build(ctx); err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

func (a *App) build(ctx context.Context) error {
	cfg := a.Config
	if err := Migrate(ctx, a.DB); err != nil {
		return err
	}
	var err error
	if a.Jobs, err = jobs.NewQueue(a.DB, a.Log); err != nil {
		return err
	}
	var sender mail.Sender
	if cfg.SMTPURL != "" {
		if sender, err = mail.NewSMTP(cfg.SMTPURL, cfg.MailFrom); err != nil {
			return fmt.Errorf("PLAZA_SMTP_URL: %w", err)
		}
	} else if sender, err = mail.NewOutbox(filepath.Join(cfg.DataDir, "outbox"), cfg.MailFrom, a.Log); err != nil {
		return err
	}
	a.Accounts, err = account.NewService(account.NewStore(a.DB), account.Config{
		SecretKey: cfg.SecretKey, AccessTTL: cfg.AccessTokenTTL, RefreshTTL: cfg.RefreshTokenTTL,
		ActivationTTL: cfg.ActivationTokenTTL, ResetTTL: cfg.ResetTokenTTL,
		ActivationURL: cfg.ActivationURL, ResetURL: cfg.ResetURL, Argon2: a.opts.Argon2,
		UserCacheTTL: cfg.CacheTTL,
	}, sender, a.Jobs, a.Log, nil)
	if err != nil {
		return err
	}

	if a.Blob, err = blob.Open(ctx, cfg.StorageURL, cfg.S3AccessKey, cfg.S3SecretKey); err != nil {
		return fmt.Errorf("PLAZA_STORAGE_URL: %w", err)
	}
	uploadsCfg := media.UploadsConfig{
		DB: a.DB, BasePath: "/api/uploads/", Dir: filepath.Join(cfg.DataDir, "uploads"),
		MaxSize: cfg.MaxUploadBytes, Expiry: cfg.UploadExpiry, Log: a.Log,
	}
	if s3, ok := a.Blob.(*blob.S3); ok {
		uploadsCfg.S3 = media.UploadsS3FromBlob(s3)
	}
	if a.Uploads, err = media.NewUploads(ctx, uploadsCfg); err != nil {
		return err
	}
	a.Media = media.NewService(a.DB, a.Blob, a.Jobs, a.Uploads, media.Config{
		FFmpeg: cfg.FFmpeg, FFprobe: cfg.FFprobe, Resolutions: cfg.VideoResolutions, MaxVideoDuration: cfg.MaxVideoDuration,
		TempDir: filepath.Join(cfg.DataDir, "tmp"), MaxImageBytes: cfg.MaxImageBytes, CacheTTL: cfg.CacheTTL,
	}, a.Log)
	a.Catalog = catalog.NewService(a.DB, a.Media)
	a.Posts = post.NewService(a.DB, nil, a.Media, post.Config{CacheTTL: cfg.CacheTTL})
	a.Social = social.NewService(a.DB, a.Posts, nil)
	a.Social.SetImageRemover(func(ctx context.Context, keys ...string) {
		if err := media.DeleteImages(ctx, a.Blob, keys...); err != nil {
			a.Log.WarnContext(ctx, "could not delete profile images", "err", err)
		}
	})
	a.Accounts.AddDeletionHook(a.Social)
	a.Accounts.AddDeletionHook(a.Posts)
	a.Accounts.AddDeletionHook(a.Media)

	ready := []httpapi.ReadyCheck{{Name: "database", Check: a.DB.Ping}, {Name: "storage", Check: a.Blob.Ping}}
	var limiter ratelimit.Limiter
	if cfg.RedisURL != "" {
		ropts, err := redis.ParseURL(cfg.RedisURL)
		if err != nil {
			return fmt.Errorf("PLAZA_REDIS_URL: %w", err)
		}
		a.Redis = redis.NewClient(ropts)
		ready = append(ready, httpapi.ReadyCheck{Name: "redis", Check: func(ctx context.Context) error {
			return a.Redis.Ping(ctx).Err()
		}})
		if err := a.Redis.Ping(ctx).Err(); err != nil {
			// Not fatal: Redis carries live delivery and shared limits, and
			// the process should come up and report itself unready instead.
			a.Log.WarnContext(ctx, "redis does not answer yet", "err", err)
		}
	}
	if cfg.RateLimits {
		if a.Redis != nil {
			limiter = ratelimit.NewRedis(a.Redis, cfg.RedisPrefix+"rl:")
		} else {
			limiter = ratelimit.NewMemory(nil)
		}
	}
	if err := a.buildLive(ctx); err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a.Handler = httpapi.NewServer(httpapi.Deps{
		Config: cfg, Log: a.Log, Accounts: a.Accounts, Social: a.Social, Posts: a.Posts, Blob: a.Blob,
		Media: a.Media, Catalog: a.Catalog, Uploads: a.Uploads.Handler, Live: a.Live, Hub: a.Hub,
		Limiter: limiter, Ready: ready, Registry: reg,
	})
	return nil
}

// pictureURL is the absolute URL of a profile picture key (or the default).
func (a *App) pictureURL(key string) string {
	if key == "" {
		return a.Config.PublicURL + "/static/default-avatar.svg"
	}
	return a.Config.PublicURL + "/media/" + key
}

// buildLive wires pub/sub, presence, the WebSocket hub and the live
// service, and subscribes it to the other domains' events.
func (a *App) buildLive(ctx context.Context) error {
	var presence live.Presence
	if a.Redis != nil {
		a.Broker = pubsub.NewRedis(a.Redis, a.Config.RedisPrefix+"ev:")
		p, err := live.NewRedisPresence(ctx, a.Redis, a.Config.RedisPrefix, "", 30*time.Second)
		if err != nil {
			// Presence needs Redis only for its shared state; start anyway
			// and report Redis unready rather than refuse to serve.
			a.Log.WarnContext(ctx, "redis presence unavailable, using local presence", "err", err)
			p = live.NewLocalPresence()
		}
		presence = p
	} else {
		a.Broker = pubsub.NewInProc()
		presence = live.NewLocalPresence()
	}
	a.Presence = presence
	a.Live = live.NewService(a.DB, a.Jobs, a.pictureURL, a.Log)
	hub, err := live.NewHub(ctx, a.Broker, live.HubConfig{Presence: presence, Log: a.Log}, a.Live.HandleClientFrame, a.Live.PresenceChanged)
	if err != nil {
		return err
	}
	a.Hub = hub
	// Posts keep authors' names and pictures in memory: a change drops
	// them here at once, and on the other instances through the broker.
	var inv *cache.Invalidations
	if a.Redis != nil {
		// Other instances cache what this one changes: tell them.
		inv, err = cache.Listen(ctx, a.Broker, "cache.invalidate", map[string]func(int64){
			"users": func(id int64) {
				a.Accounts.ForgetUser(id)
				a.Posts.ForgetAuthor(id)
			},
			"authors": a.Posts.ForgetAuthor,
			"likes":   a.Posts.ForgetLikes,
			"media":   a.Media.ForgetCached,
		}, a.Log)
		if err != nil {
			// Serve anyway: entries then expire on their TTL.
			a.Log.WarnContext(ctx, "cache invalidation across instances unavailable", "err", err)
			inv = nil
		} else {
			a.Media.OnCachedChanged(func(ctx context.Context, id int64) { inv.Publish(ctx, "media", id) })
			a.Posts.OnLikesChanged(func(ctx context.Context, id int64) { inv.Publish(ctx, "likes", id) })
		}
	}
	a.Accounts.OnUserChanged(func(ctx context.Context, id int64) {
		a.Posts.ForgetAuthor(id)
		if inv != nil {
			inv.Publish(ctx, "users", id)
		}
	})
	a.Social.OnPictureChanged(func(ctx context.Context, id int64) {
		a.Posts.ForgetAuthor(id)
		if inv != nil {
			inv.Publish(ctx, "authors", id)
		}
	})
	a.Live.SetPusher(hub)
	a.Posts.SetEvents(a.Live)
	a.Posts.SetFanOutHook(a.Live)
	a.Social.SetEvents(a.Live)
	a.Media.SetEvents(a.Live)
	return nil
}

// Migrate applies Plaza's and River's migrations.
func Migrate(ctx context.Context, d *db.DB) error {
	if _, err := d.Migrate(ctx); err != nil {
		return err
	}
	return jobs.Migrate(ctx, d)
}

// StartWorkers starts working background jobs in this process.
func (a *App) StartWorkers(ctx context.Context) error {
	a.Media.SweepTemp()
	err := a.Jobs.Work(ctx, jobs.Workers(jobs.Deps{
		Accounts: a.Accounts, Social: a.Social, Posts: a.Posts, Media: a.Media, Uploads: a.Uploads, Live: a.Live, Log: a.Log,
		TranscodeTimeout: a.Config.TranscodeTimeout,
	}), jobs.Periodic(), jobs.Options{
		PollInterval: a.opts.JobPollInterval, TranscodeWorkers: a.Config.TranscodeWorkers, RescueAfter: a.Config.JobRescueAfter,
	})
	if err != nil {
		return err
	}
	a.working = true
	// PostgreSQL works disjoint fan-out batches side by side (one
	// backend, one core each); SQLite has one writer.
	loops := 1
	if a.DB.Dialect() == db.Postgres {
		loops = min(4, runtime.NumCPU())
	}
	fctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	a.stopFanOut, a.fanOutDone = stop, make(chan struct{})
	var wg sync.WaitGroup
	for range loops {
		wg.Go(func() { a.Posts.RunFanOut(fctx, fanOutPoll, a.Log) })
	}
	go func() {
		wg.Wait()
		close(a.fanOutDone)
	}()
	return nil
}

// Serve answers HTTP on ln until ctx ends, then shuts down gracefully:
// requests in flight finish (up to the shutdown timeout), then jobs.
func (a *App) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           a.Handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(a.Log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	a.Log.Info("shutting down", "timeout", a.Config.ShutdownTimeout.String())
	// WebSockets are hijacked connections Shutdown does not wait for: tell
	// clients to reconnect elsewhere (1001 going away).
	if a.Hub != nil {
		_ = a.Hub.Close()
	}
	sctx, cancel := context.WithTimeout(context.Background(), a.Config.ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		_ = srv.Close()
	}
	return errors.Join(err, a.StopWorkers(sctx))
}

// StopWorkers lets running jobs finish, within ctx.
func (a *App) StopWorkers(ctx context.Context) error {
	if !a.working {
		return nil
	}
	a.working = false
	// A fan-out batch commits or rolls back whole: stopping mid-batch
	// leaves its posts queued for the next worker.
	a.stopFanOut()
	select {
	case <-a.fanOutDone:
	case <-ctx.Done():
	}
	return a.Jobs.Stop(ctx)
}

// Close releases connections.
func (a *App) Close() {
	if a.Hub != nil {
		_ = a.Hub.Close()
	}
	if a.Broker != nil {
		_ = a.Broker.Close()
	}
	if a.Presence != nil {
		_ = a.Presence.Close()
	}
	if a.Redis != nil {
		_ = a.Redis.Close()
	}
	if a.DB != nil {
		_ = a.DB.Close()
	}
}
