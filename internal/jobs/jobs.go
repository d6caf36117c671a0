// Package jobs runs Plaza's background work on River, in the same database
// as the data: jobs are enqueued in the transaction that creates what they
// refer to, retried with backoff, and worked by `plaza serve` in-process or
// by any number of `plaza worker` processes.
package jobs

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"

	"plaza/internal/db"
)

// Queue inserts jobs. Inserts always go through database/sql, so that one
// code path enqueues inside a db.Tx on both engines; working happens on a
// separate client (River's native pgx driver on PostgreSQL, for LISTEN/NOTIFY).
type Queue struct {
	db     *db.DB
	insert *river.Client[*sql.Tx]
	log    *slog.Logger

	sqliteWork *river.Client[*sql.Tx]
	pgWork     *river.Client[pgx.Tx]
	pgPool     *pgxpool.Pool // River's own connections (see Work)
}

// Options tune the working side.
type Options struct {
	// PollInterval is how often workers look for new jobs when not told
	// (SQLite has no LISTEN/NOTIFY). Default 200ms.
	PollInterval time.Duration
	// MaxWorkers is the concurrency of the default queue. Default 4.
	MaxWorkers int
	// TranscodeWorkers is the concurrency of the transcode queue. Default 1.
	TranscodeWorkers int
	// RescueAfter is when a running job is presumed lost with its worker.
	RescueAfter time.Duration
}

// Migrate creates or updates River's tables.
func Migrate(ctx context.Context, d *db.DB) error {
	var err error
	switch d.Dialect() {
	case db.Postgres:
		var m *rivermigrate.Migrator[pgx.Tx]
		if m, err = rivermigrate.New(riverpgxv5.New(d.PgxPool()), nil); err == nil {
			_, err = m.Migrate(ctx, rivermigrate.DirectionUp, nil)
		}
	default:
		var m *rivermigrate.Migrator[*sql.Tx]
		if m, err = rivermigrate.New(riversqlite.New(d.WriteDB()), nil); err == nil {
			_, err = m.Migrate(ctx, rivermigrate.DirectionUp, nil)
		}
	}
	if err != nil {
		return fmt.Errorf("jobs: migrate: %w", err)
	}
	return nil
}

// NewQueue returns an insert-only queue on d.
func NewQueue(d *db.DB, log *slog.Logger) (*Queue, error) {
	cfg := &river.Config{Logger: quiet(log)}
	var (
		c   *river.Client[*sql.Tx]
		err error
	)
	if d.Dialect() == db.Postgres {
		c, err = river.NewClient(riverdatabasesql.New(d.WriteDB()), cfg)
	} else {
		c, err = river.NewClient(riversqlite.New(d.WriteDB()), cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("jobs: new client: %w", err)
	}
	return &Queue{db: d, insert: c, log: log}, nil
}

// Enqueue inserts a job, inside tx when it is not nil.
func (q *Queue) Enqueue(ctx context.Context, tx *db.Tx, args interface{ Kind() string }) error {
	return q.EnqueueOpts(ctx, tx, args, nil)
}

// QueueTranscode is the queue of video transcodes: they use every core, so
// a worker runs few at once, apart from the quick jobs of the default queue.
const QueueTranscode = "transcode"

// defaultOpts are the insert options of job kinds that need their own.
var defaultOpts = map[string]*river.InsertOpts{
	"media.transcode": {Queue: QueueTranscode, MaxAttempts: 3},
}

// EnqueueOpts inserts a job with River insert options (uniqueness, queue,
// schedule).
func (q *Queue) EnqueueOpts(ctx context.Context, tx *db.Tx, args interface{ Kind() string }, opts *river.InsertOpts) error {
	if opts == nil {
		opts = defaultOpts[args.Kind()]
	}
	var err error
	if tx != nil {
		_, err = q.insert.InsertTx(tx.Context(ctx), tx.SQL(), args, opts)
	} else {
		_, err = q.insert.Insert(ctx, args, opts)
	}
	if err != nil {
		return fmt.Errorf("jobs: enqueue %s: %w", args.Kind(), err)
	}
	return nil
}

// Work starts working jobs with the given workers and periodic schedule
// until Stop. Only one Work per Queue.
func (q *Queue) Work(ctx context.Context, workers *river.Workers, periodic []*river.PeriodicJob, opt Options) error {
	if opt.PollInterval <= 0 {
		opt.PollInterval = 200 * time.Millisecond
	}
	if opt.MaxWorkers <= 0 {
		opt.MaxWorkers = 4
	}
	if opt.TranscodeWorkers <= 0 {
		opt.TranscodeWorkers = 1
	}
	if opt.RescueAfter <= 0 {
		opt.RescueAfter = 2*time.Hour + 10*time.Minute
	}
	cfg := &river.Config{
		Logger:            quiet(q.log),
		Workers:           workers,
		PeriodicJobs:      periodic,
		FetchPollInterval: opt.PollInterval,
		// A fetch takes at most a queue's free workers' worth of jobs and
		// the next waits for the cooldown: River's default of 100 ms
		// capped a backlog's drain at 40 jobs/s with 4 workers (a burst
		// of posts left feeds minutes behind).
		FetchCooldown: min(opt.PollInterval, 5*time.Millisecond),
		Queues: map[string]river.QueueConfig{
			river.QueueDefault: {MaxWorkers: opt.MaxWorkers},
			QueueTranscode:     {MaxWorkers: opt.TranscodeWorkers},
		},
		// River wants the rescue delay at least the default job timeout.
		JobTimeout: min(5*time.Minute, opt.RescueAfter),
		// A worker process killed mid-job leaves the job running in the
		// table; River hands it out again after this long.
		RescueStuckJobsAfter: opt.RescueAfter,
	}
	var err error
	if q.db.Dialect() == db.Postgres {
		// River fetches, completes and elects its leader on a few
		// connections of its own: on the application's pool, requests
		// that saturate it starved River's leader election and job
		// completion for seconds (pgxpool's waiters are not served in
		// order).
		pc := q.db.PgxPool().Config()
		pc.MaxConns = 4
		pc.MinConns = 0
		if q.pgPool, err = pgxpool.NewWithConfig(ctx, pc); err != nil {
			return fmt.Errorf("jobs: connect: %w", err)
		}
		q.pgWork, err = river.NewClient(riverpgxv5.New(q.pgPool), cfg)
		if err == nil {
			err = q.pgWork.Start(ctx)
		}
	} else {
		cfg.PollOnly = true
		q.sqliteWork, err = river.NewClient(riversqlite.New(q.db.WriteDB()), cfg)
		if err == nil {
			err = q.sqliteWork.Start(ctx)
		}
	}
	if err != nil {
		return fmt.Errorf("jobs: start workers: %w", err)
	}
	return nil
}

// Stop lets jobs in flight finish (until ctx ends, when they are cancelled).
func (q *Queue) Stop(ctx context.Context) error {
	var err error
	switch {
	case q.pgWork != nil:
		err = q.pgWork.Stop(ctx)
	case q.sqliteWork != nil:
		err = q.sqliteWork.Stop(ctx)
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		// Cancel what still runs, but never wait forever: a process that
		// is shutting down must end even if the database does not answer.
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if q.pgWork != nil {
			err = q.pgWork.StopAndCancel(cctx)
		} else if q.sqliteWork != nil {
			err = q.sqliteWork.StopAndCancel(cctx)
		}
	}
	if q.pgPool != nil {
		// Close waits for River to hand its connections back: bounded,
		// like the stop above.
		closed := make(chan struct{})
		go func() { q.pgPool.Close(); close(closed) }()
		select {
		case <-closed:
		case <-time.After(5 * time.Second):
		}
	}
	if err != nil {
		return fmt.Errorf("jobs: stop: %w", err)
	}
	return nil
}

// quiet keeps River's routine chatter out of the logs: warnings and errors only.
func quiet(log *slog.Logger) *slog.Logger {
	return slog.New(levelFilter{h: log.Handler(), min: slog.LevelWarn})
}

type levelFilter struct {
	h   slog.Handler
	min slog.Level
}

func (f levelFilter) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= f.min && f.h.Enabled(ctx, l)
}
func (f levelFilter) Handle(ctx context.Context, r slog.Record) error { return f.h.Handle(ctx, r) }
func (f levelFilter) WithAttrs(a []slog.Attr) slog.Handler {
	return levelFilter{h: f.h.WithAttrs(a), min: f.min}
}
func (f levelFilter) WithGroup(n string) slog.Handler {
	return levelFilter{h: f.h.WithGroup(n), min: f.min}
}
