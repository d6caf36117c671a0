// Command seed fills a fresh Plaza database with a realistic social graph
// for the feed and like benchmarks (bench/feed.sh): users with one shared
// password, profiles, a skewed follow graph, posts with hashtags, likes,
// comments and materialised home feeds, with every counter exact.
//
//	go run ./bench/cmd/seed -db sqlite:///tmp/plaza.db
//	go run ./bench/cmd/seed -db postgres://postgres@127.0.0.1:5432/plaza_bench \
//	    -users 10000 -follows 100 -posts 50 -likes 1000000 -comments 200000 -seed 1
//	go run ./bench/cmd/seed -db ... -verify-only   # re-check the counters later
//
// The database must be empty (migrations are applied here). Ids are
// assigned by the seeder and inserted explicitly, in time order, so that a
// second run with the same -seed produces the same data.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"iter"
	"math/rand/v2"
	"os"
	"os/signal"
	"runtime"
	"time"

	"plaza/internal/account"
	"plaza/internal/app"
	"plaza/internal/db"
	"plaza/internal/post"
	"plaza/internal/social"
)

// Password is the password of every seeded user (bench/cmd/load logs in
// with it).
const Password = "bench password 123"

type options struct {
	url         string
	sz          sizes
	seed        uint64
	feedKeep    int
	feeds       string
	feedWorkers int
	pgCopy      bool
	analyze     string
	txRows      int
	verifyOnly  bool
	warmOnly    bool
	waitJobs    time.Duration
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "seed:", err)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	var o options
	fs := flag.NewFlagSet("seed", flag.ContinueOnError)
	fs.StringVar(&o.url, "db", "", "database URL: sqlite://path or postgres://... (required)")
	fs.IntVar(&o.sz.Users, "users", 10000, "users")
	fs.IntVar(&o.sz.Follows, "follows", 100, "accounts each user follows")
	fs.IntVar(&o.sz.Posts, "posts", 50, "posts per user")
	fs.IntVar(&o.sz.Likes, "likes", 1000000, "likes in total (distinct post, user pairs)")
	fs.IntVar(&o.sz.Comments, "comments", 200000, "comments in total")
	fs.Uint64Var(&o.seed, "seed", 1, "random seed")
	fs.IntVar(&o.feedKeep, "feed-keep", 200, "entries per materialised home feed (post.Config.FeedKeep)")
	fs.StringVar(&o.feeds, "feeds", "rebuild", "rebuild: post.Service.RebuildFeed per user; bulk: computed here and bulk-inserted (same rows); none")
	fs.IntVar(&o.feedWorkers, "feed-workers", 0, "concurrent RebuildFeed calls (0: 1 on SQLite, 2×CPUs on PostgreSQL)")
	fs.BoolVar(&o.pgCopy, "pg-copy", true, "on PostgreSQL, load with COPY (pgx CopyFrom) instead of multi-row INSERTs")
	fs.StringVar(&o.analyze, "analyze", "auto", "gather planner statistics after loading: on, off, auto (PostgreSQL: VACUUM ANALYZE, as autovacuum would soon; SQLite: no, as the app never runs ANALYZE)")
	fs.IntVar(&o.txRows, "tx-rows", 5000, "rows per transaction for INSERT loading")
	fs.BoolVar(&o.verifyOnly, "verify-only", false, "only check that the counters match the rows (e.g. after a load run)")
	fs.DurationVar(&o.waitJobs, "wait-jobs", 0, "only wait (up to this long) until the server has worked every queued job, and say how long that took (after a load: the work the load left behind)")
	fs.BoolVar(&o.warmOnly, "warm-only", false, "only compute what the server's periodic jobs keep (suggestions, trends), as a server that has been running would have them")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.url == "" {
		fs.Usage()
		return errors.New("-db is required")
	}
	d, err := db.Open(ctx, o.url)
	if err != nil {
		return err
	}
	defer d.Close()
	if o.warmOnly {
		return warm(ctx, d, out)
	}
	if o.waitJobs > 0 {
		return waitJobs(ctx, d, o.waitJobs, out)
	}
	if o.verifyOnly {
		t0 := time.Now()
		if err := verifyCounters(ctx, d, out); err != nil {
			return err
		}
		fmt.Fprintf(out, "verify: counters exact (%s)\n", since(t0))
		return nil
	}
	return seed(ctx, d, o, out)
}

// warm computes every stale user's suggestions and the trends, the work
// the periodic jobs of a server that has been running have done: a fresh
// server would otherwise spend its first minutes catching up (the
// suggestions job runs at start, for up to 4 minutes), inside the measured
// window.
func warm(ctx context.Context, d *db.DB, out io.Writer) error {
	t0 := time.Now()
	// The load acts as random users, each of whom counts as active once
	// logged in: so every user is (suggestions are kept for active users).
	if _, err := d.Exec(ctx, `UPDATE users SET last_login_at = ? WHERE last_login_at IS NULL OR last_login_at < ?`,
		t0.UTC(), t0.UTC().Add(-24*time.Hour)); err != nil {
		return fmt.Errorf("warm: %w", err)
	}
	ss := social.NewService(d, nil, nil)
	var users int
	for {
		n, err := ss.ComputeSuggestions(ctx, 100, 6*time.Hour)
		if err != nil {
			return fmt.Errorf("warm: suggestions: %w", err)
		}
		if n == 0 {
			break
		}
		users += n
	}
	if _, err := post.NewService(d, nil, nil, post.Config{}).ComputeTrends(ctx); err != nil {
		return fmt.Errorf("warm: trends: %w", err)
	}
	fmt.Fprintf(out, "warm: suggestions of %d users and the trends computed (%s)\n", users, since(t0))
	return nil
}

// waitJobs polls River's table and the fan-out queue until no job is
// available or running and no post waits for its fan-out, and reports how
// many there were and how long they took to drain.
func waitJobs(ctx context.Context, d *db.DB, limit time.Duration, out io.Writer) error {
	t0 := time.Now()
	pending := func() (int, error) {
		var n int
		err := d.QueryRow(ctx, `SELECT (SELECT count(*) FROM river_job WHERE state IN ('available', 'running', 'retryable'))
			+ (SELECT count(*) FROM fanout_queue)`).Scan(&n)
		return n, err
	}
	first, err := pending()
	if err != nil {
		return fmt.Errorf("wait-jobs: %w", err)
	}
	n := first
	for n > 0 && time.Since(t0) < limit {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
		if n, err = pending(); err != nil {
			return fmt.Errorf("wait-jobs: %w", err)
		}
	}
	if n > 0 {
		fmt.Fprintf(out, "jobs and fan-outs: %d queued after the load, %d still queued after %s\n", first, n, since(t0))
		return nil
	}
	fmt.Fprintf(out, "jobs and fan-outs: %d queued after the load, all worked %s later\n", first, since(t0))
	return nil
}

func since(t time.Time) string { return time.Since(t).Round(time.Millisecond).String() }

type phase struct {
	out   io.Writer
	start time.Time
	t     time.Time
}

func (p *phase) done(name string, rows int64) {
	el := time.Since(p.t)
	if rows > 0 {
		fmt.Fprintf(p.out, "%-14s %10d rows %9s  %9.0f rows/s\n", name, rows, el.Round(time.Millisecond), float64(rows)/el.Seconds())
	} else {
		fmt.Fprintf(p.out, "%-14s %15s %9s\n", name, "", el.Round(time.Millisecond))
	}
	p.t = time.Now()
}

func seed(ctx context.Context, d *db.DB, o options, out io.Writer) error {
	ph := &phase{out: out, start: time.Now(), t: time.Now()}
	fmt.Fprintf(out, "seeding %s: %d users × %d follows, %d posts each, %d likes, %d comments, seed %d\n",
		d.Dialect(), o.sz.Users, o.sz.Follows, o.sz.Posts, o.sz.Likes, o.sz.Comments, o.seed)
	if err := app.Migrate(ctx, d); err != nil {
		return err
	}
	var existing int
	if err := d.QueryRow(ctx, `SELECT count(*) FROM users`).Scan(&existing); err != nil {
		return err
	}
	if existing > 0 {
		return fmt.Errorf("the database already has %d users: seed a fresh one", existing)
	}
	if d.Dialect() == db.SQLite {
		// The single writer connection gets a large page cache for the load
		// (random inserts into the secondary indexes of 1M-row tables thrash
		// the default 2 MiB); the server's own connections are not affected.
		if _, err := d.Exec(ctx, `PRAGMA cache_size = -524288`); err != nil {
			return err
		}
	}
	ph.done("migrate", 0)

	hash, err := account.HashPassword(Password, account.DefaultArgon2)
	if err != nil {
		return err
	}
	ds := generate(o.sz, o.seed, time.Now())
	ph.done("generate", 0)

	var ld loader = &insertLoader{d: d, txRows: o.txRows}
	if d.Dialect() == db.Postgres && o.pgCopy {
		ld = &copyLoader{pool: d.PgxPool()}
	}
	r := rand.New(rand.NewPCG(o.seed, 42))
	tables := []struct {
		name string
		cols []string
		rows iter.Seq[[]any]
	}{
		{"users", []string{"id", "email", "username", "password_hash", "is_active", "is_staff", "session_version", "created_at", "updated_at"},
			func(yield func([]any) bool) {
				for i := range ds.Users {
					at := fromMicros(ds.userCreated[i])
					if !yield([]any{i + 1, email(i + 1), username(i + 1), hash, true, false, 0, at, at}) {
						return
					}
				}
			}},
		{"profiles", []string{"user_id", "first_name", "last_name", "bio", "followers_count", "following_count", "updated_at"},
			func(yield func([]any) bool) {
				for i := range ds.Users {
					bio := "Hello, I am " + username(i+1) + ". " + commentText(r)
					if !yield([]any{i + 1, firstNames[r.IntN(len(firstNames))], lastNames[r.IntN(len(lastNames))], bio,
						ds.followers[i], len(ds.followees[i]), fromMicros(ds.userCreated[i])}) {
						return
					}
				}
			}},
		{"follows", []string{"id", "follower_id", "followee_id", "created_at"},
			func(yield func([]any) bool) {
				id := 0
				end := micros(ds.now.Add(-postDays * day))
				for i, list := range ds.followees {
					for _, f := range list {
						id++
						from := max(ds.userCreated[i], ds.userCreated[f-1])
						at := from + r.Int64N(max(end-from, 1))
						if !yield([]any{id, i + 1, f, fromMicros(at)}) {
							return
						}
					}
				}
			}},
		{"posts", []string{"id", "author_id", "title", "content", "likes_count", "comments_count", "created_at", "updated_at"},
			func(yield func([]any) bool) {
				for i, a := range ds.postAuthor {
					title, content := postText(ds.seed, i+1)
					at := fromMicros(ds.postCreated[i])
					if !yield([]any{i + 1, a, title, content, ds.likesCount[i], ds.commentsCount[i], at, at}) {
						return
					}
				}
			}},
		{"post_hashtags", []string{"tag", "post_id", "author_id", "created_at"},
			func(yield func([]any) bool) {
				for _, t := range ds.tags {
					if !yield([]any{t.tag, t.post, ds.postAuthor[t.post-1], fromMicros(ds.postCreated[t.post-1])}) {
						return
					}
				}
			}},
		{"likes", []string{"post_id", "user_id", "created_at"},
			func(yield func([]any) bool) {
				now := micros(ds.now)
				for _, k := range ds.likes {
					p, u := int32(k>>32), int32(k&0xffffffff)
					pc := ds.postCreated[p-1]
					if !yield([]any{p, u, fromMicros(pc + r.Int64N(max(now-pc, 1)))}) {
						return
					}
				}
			}},
		{"comments", []string{"id", "post_id", "author_id", "content", "created_at"},
			func(yield func([]any) bool) {
				for i, c := range ds.comments {
					if !yield([]any{i + 1, c.post, c.author, commentText(r), fromMicros(c.at)}) {
						return
					}
				}
			}},
	}
	for _, t := range tables {
		n, err := ld.load(ctx, t.name, t.cols, t.rows)
		if err != nil {
			return err
		}
		ph.done(t.name, n)
	}
	if d.Dialect() == db.Postgres {
		// Explicit ids leave the identity sequences behind: move them on.
		for _, t := range []string{"users", "follows", "posts", "comments"} {
			if _, err := d.Exec(ctx, `SELECT setval(pg_get_serial_sequence('`+t+`', 'id'), (SELECT COALESCE(max(id), 0) + 1 FROM `+t+`), false)`); err != nil {
				return fmt.Errorf("reset sequence of %s: %w", t, err)
			}
		}
	}

	var feedRows int64
	switch o.feeds {
	case "rebuild":
		workers := o.feedWorkers
		if workers <= 0 {
			workers = 1
			if d.Dialect() == db.Postgres {
				workers = 2 * runtime.NumCPU()
			}
		}
		if err := rebuildFeeds(ctx, d, ds.Users, o.feedKeep, workers, out); err != nil {
			return err
		}
		if err := d.QueryRow(ctx, `SELECT count(*) FROM feed_entries`).Scan(&feedRows); err != nil {
			return err
		}
	case "bulk":
		if feedRows, err = bulkFeeds(ctx, ld, ds, o.feedKeep); err != nil {
			return err
		}
	case "none":
	default:
		return fmt.Errorf("-feeds: want rebuild, bulk or none, not %q", o.feeds)
	}
	ph.done("feeds ("+o.feeds+")", feedRows)

	analyze := o.analyze == "on" || (o.analyze == "auto" && d.Dialect() == db.Postgres)
	switch {
	case d.Dialect() == db.Postgres && analyze:
		if _, err := d.PgxPool().Exec(ctx, `VACUUM (ANALYZE)`); err != nil {
			return fmt.Errorf("vacuum analyze: %w", err)
		}
		ph.done("vacuum analyze", 0)
	case d.Dialect() == db.SQLite:
		if analyze {
			if _, err := d.Exec(ctx, `ANALYZE`); err != nil {
				return fmt.Errorf("analyze: %w", err)
			}
		}
		// Fold the write-ahead log into the database file so that the server
		// starts on a compact file.
		if _, err := d.Exec(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
			return fmt.Errorf("checkpoint: %w", err)
		}
		ph.done(map[bool]string{true: "analyze+ckpt", false: "checkpoint"}[analyze], 0)
	}
	loadTime := time.Since(ph.start)

	if err := verifyTotals(ctx, d, ds, feedRows, o.feeds != "none"); err != nil {
		return err
	}
	if err := verifyCounters(ctx, d, out); err != nil {
		return err
	}
	if o.feeds != "none" {
		if err := verifyFeeds(ctx, d, ds, o.feedKeep, 200); err != nil {
			return err
		}
	}
	ph.done("verify", 0)
	fmt.Fprintf(out, "seeded in %s (verified in %s more); every seeded user's password is %q\n",
		loadTime.Round(time.Millisecond), time.Since(ph.start.Add(loadTime)).Round(time.Millisecond), Password)
	fmt.Fprintf(out, "usernames %s..%s, emails %s..; post ids 1..%d\n", username(1), username(ds.Users), email(1), len(ds.postAuthor))
	return nil
}
