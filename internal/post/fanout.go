package post

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"time"

	"plaza/internal/db"
)

// Fan-out on write, batched. Creating a post adds a row to fanout_queue in
// the post's transaction (one small insert, where a job per post cost as
// much as the post itself); loops in every worker process take many
// queued posts at once and writes their followers' feed entries and
// new_post notifications with one statement each, sorted by follower, in
// one transaction that also removes them from the queue. A batch commits
// whole or not at all, so a crash can only make it run again.

// FanOutHook writes what else the followers of a batch of new posts are
// owed (live: the new_post notifications), inside the batch's
// transaction. from is a FROM ... WHERE clause with its args, yielding one
// row per follower and post as f.follower_id, q.post_id and q.author_id.
// The returned func, if any, runs after the commit (live pushes).
type FanOutHook interface {
	FanOutTx(ctx context.Context, tx *db.Tx, postIDs []int64, from string, args []any) (after func(context.Context), err error)
}

// fanOutMaxPosts bounds the posts one fan-out transaction takes;
// Config.FanOutRows bounds the followers it serves. On SQLite a batch
// holds the only writer (5,000 rows took ~400 ms on the benchmark
// machine; RunFanOut makes them smaller while requests write); a post
// whose author has more followers than that is served alone, a slice of
// followers per transaction, its progress kept in after_follow_id.
const fanOutMaxPosts = 500

// SetFanOutHook installs the hook every batch calls (wired after
// construction, as Events).
func (s *Service) SetFanOutHook(h FanOutHook) { s.fanOutHook = h }

type queuedPost struct {
	postID, authorID, after, followers int64
}

// FanOutPending works one batch of the fan-out queue and returns how many
// queued posts it served (0: none was waiting, or all were taken by other
// workers); a post with a large audience may need several batches.
func (s *Service) FanOutPending(ctx context.Context) (served int, err error) {
	return s.fanOutBatch(ctx, int64(s.cfg.FanOutRows))
}

func (s *Service) fanOutBatch(ctx context.Context, maxRows int64) (served int, err error) {
	var after func(context.Context)
	err = s.db.InTx(ctx, func(tx *db.Tx) error {
		served, after = 0, nil // a retried transaction starts over
		claim := `SELECT q.post_id, q.author_id, q.after_follow_id, COALESCE(pr.followers_count, 0)
			FROM fanout_queue q LEFT JOIN profiles pr ON pr.user_id = q.author_id
			ORDER BY q.post_id LIMIT ?`
		if s.db.Dialect() == db.Postgres {
			// Several workers take disjoint batches side by side.
			claim += ` FOR UPDATE OF q SKIP LOCKED`
		}
		rows, err := tx.Query(ctx, claim, fanOutMaxPosts)
		if err != nil {
			return fmt.Errorf("post: fan-out claim: %w", err)
		}
		var batch []queuedPost
		var audience int64
		for rows.Next() {
			var q queuedPost
			if err := rows.Scan(&q.postID, &q.authorID, &q.after, &q.followers); err != nil {
				rows.Close()
				return fmt.Errorf("post: fan-out claim: %w", err)
			}
			if len(batch) > 0 && audience+q.followers > maxRows {
				break
			}
			batch, audience = append(batch, q), audience+q.followers
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("post: fan-out claim: %w", err)
		}
		if len(batch) == 0 {
			return nil
		}
		ids := make([]int64, len(batch))
		for i, q := range batch {
			ids[i] = q.postID
		}
		list, listArgs := db.InList(ids)
		// upTo bounds the followers served now: all of them, or for a
		// single post with a large audience the next maxRows.
		upTo := int64(1<<63 - 1)
		finished := true
		if len(batch) == 1 && batch[0].followers > maxRows {
			q := batch[0]
			var n int64
			var hi sql.NullInt64
			if err := tx.QueryRow(ctx, `SELECT max(id), count(*) FROM (SELECT id FROM follows WHERE followee_id = ? AND id > ? ORDER BY id LIMIT ?) b`,
				q.authorID, q.after, maxRows).Scan(&hi, &n); err != nil {
				return fmt.Errorf("post: fan-out slice: %w", err)
			}
			if hi.Valid && n == maxRows {
				upTo, finished = hi.Int64, false
			}
		}
		from := `FROM fanout_queue q JOIN follows f ON f.followee_id = q.author_id AND f.id > q.after_follow_id AND f.id <= ?
			WHERE q.post_id IN (` + list + `)`
		args := append([]any{upTo}, listArgs...)
		// Sorted by follower, neighbouring rows land on the same index
		// pages.
		if _, err := tx.Exec(ctx, `INSERT INTO feed_entries (user_id, post_id, author_id)
			SELECT f.follower_id, q.post_id, q.author_id `+from+`
			ORDER BY f.follower_id, q.post_id
			ON CONFLICT DO NOTHING`, args...); err != nil {
			return fmt.Errorf("post: fan-out: %w", err)
		}
		if s.fanOutHook != nil {
			if after, err = s.fanOutHook.FanOutTx(ctx, tx, ids, from, args); err != nil {
				return err
			}
		}
		served = len(batch)
		if !finished {
			if _, err := tx.Exec(ctx, `UPDATE fanout_queue SET after_follow_id = ? WHERE post_id = ?`, upTo, ids[0]); err != nil {
				return fmt.Errorf("post: fan-out progress: %w", err)
			}
			return nil
		}
		if _, err := tx.Exec(ctx, `DELETE FROM fanout_queue WHERE post_id IN (`+list+`)`, listArgs...); err != nil {
			return fmt.Errorf("post: fan-out dequeue: %w", err)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if after != nil {
		after(ctx)
	}
	return served, nil
}

// FanOutQueued is how many posts wait for their fan-out.
func (s *Service) FanOutQueued(ctx context.Context) (int64, error) {
	var n int64
	if err := s.db.QueryRow(ctx, `SELECT count(*) FROM fanout_queue`).Scan(&n); err != nil {
		return 0, fmt.Errorf("post: fan-out queue: %w", err)
	}
	return n, nil
}

// EnqueueFanOut puts a post on the fan-out queue (jobs queued by earlier
// versions, one per post, come here); already queued posts and posts that
// are gone are skipped.
func (s *Service) EnqueueFanOut(ctx context.Context, postID int64) error {
	if _, err := s.db.Exec(ctx, `INSERT INTO fanout_queue (post_id, author_id)
		SELECT id, author_id FROM posts WHERE id = ? ON CONFLICT DO NOTHING`, postID); err != nil {
		return fmt.Errorf("post: enqueue fan-out: %w", err)
	}
	s.kickFanOut()
	return nil
}

// kickFanOut wakes this process's fan-out loop, if it runs one.
func (s *Service) kickFanOut() {
	select {
	case s.fanOutKick <- struct{}{}:
	default:
	}
}

// RunFanOut works the fan-out queue until ctx ends: at once when this
// process queued a post, and every poll otherwise (posts queued by other
// processes). A failing batch is logged and tried again after a poll.
//
// Requests go first: on SQLite a batch holds the only writer, on
// PostgreSQL it takes a core. While requests write, the fan-out takes at
// most half of the time, in batches a fifth of the size (~1,000 rows: tens
// of milliseconds), after each leaving the database to requests for as
// long as the batch took. When requests are quiet it runs full batches
// back to back (on SQLite, 1,000-row batches drained 74 posts/s, 5,000-row
// ones 130/s).
func (s *Service) RunFanOut(ctx context.Context, poll time.Duration, log *slog.Logger) {
	t := time.NewTimer(poll)
	defer t.Stop()
	for {
		rows := int64(s.cfg.FanOutRows)
		busy := s.db.SinceRequestWrite() < requestsQuiet
		if busy {
			rows = max(1, rows/5)
		}
		start := time.Now()
		n, err := s.fanOutBatch(db.Background(ctx), rows)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			log.ErrorContext(ctx, "fan-out batch failed", "err", err)
		} else if n > 0 {
			if busy {
				sleep(ctx, min(time.Since(start), time.Second))
			}
			continue // more may be waiting
		}
		t.Reset(poll)
		select {
		case <-ctx.Done():
			return
		case <-s.fanOutKick:
		case <-t.C:
		}
	}
}

// requestsQuiet is how long requests must have written nothing for the
// fan-out to take SQLite's writer in full batches.
const requestsQuiet = 20 * time.Millisecond

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
