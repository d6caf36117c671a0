// Package db opens Plaza's database (embedded SQLite or PostgreSQL), applies
// the embedded migrations and gives the domain stores one small query API
// whose SQL is written once, with ? placeholders, for both dialects.
package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Dialect names the SQL engine behind a DB.
type Dialect string

// The two supported engines.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// ErrNotFound is what stores return when a row does not exist.
var ErrNotFound = errors.New("not found")

// sqliteTimeLayout is fixed-width so that stored times sort and compare as
// text in the same order as in time; modernc parses it back into time.Time
// for columns declared TIMESTAMP.
const sqliteTimeLayout = "2006-01-02 15:04:05.000000+00:00"

// DB is a handle on the database with separate read and write paths: on
// SQLite one writer connection (SQLite allows one writer at a time, and
// queuing in Go is cheaper than busy-waiting in SQLite) and a pool of
// read-only connections; on PostgreSQL both are the same pool.
type DB struct {
	dialect Dialect
	write   *sql.DB
	read    *sql.DB
	pool    *pgxpool.Pool
	rebound sync.Map // query text with ? → text with $n (PostgreSQL)

	// SQLite: prepared statements by query text, for the read pool and
	// the writer. The pure-Go SQLite parses and plans a statement on every
	// unprepared call, which was a fifth of a feed request's CPU;
	// database/sql keeps each *sql.Stmt prepared on every connection it
	// has run on.
	readStmts, writeStmts stmtCache

	group group // SQLite: write transactions committed together (InTx)

	// lastRequest is when (unix ns) a write transaction not marked
	// Background last began: SinceRequestWrite.
	lastRequest atomic.Int64

	// SQLite: the checkpointer's connection, and how to stop it.
	ckpt     *sql.DB
	stopCkpt context.CancelFunc
	ckptDone chan struct{}
}

// maxStmts bounds each statement cache, for queries whose text varies (IN
// lists of different lengths).
const maxStmts = 512

type stmtCache struct {
	m sync.Map // string → *sql.Stmt
	n atomic.Int64
}

// get is the prepared statement for query on pool, or nil (a full cache;
// a statement that does not prepare, whose error the plain call then
// reports).
func (c *stmtCache) get(ctx context.Context, pool *sql.DB, query string) *sql.Stmt {
	if st := c.lookup(query); st != nil {
		return st
	}
	if c.n.Load() >= maxStmts {
		return nil
	}
	st, err := pool.PrepareContext(ctx, query)
	if err != nil {
		return nil
	}
	if prev, loaded := c.m.LoadOrStore(query, st); loaded {
		_ = st.Close()
		return prev.(*sql.Stmt)
	}
	c.n.Add(1)
	return st
}

// lookup is the statement already prepared for query, or nil.
func (c *stmtCache) lookup(query string) *sql.Stmt {
	if st, ok := c.m.Load(query); ok {
		return st.(*sql.Stmt)
	}
	return nil
}

func (c *stmtCache) close() {
	c.m.Range(func(_, v any) bool {
		_ = v.(*sql.Stmt).Close()
		return true
	})
}

// Open connects to rawURL: sqlite://path/to/file.db or postgres://...
// Unknown query parameters on a postgres URL become session settings
// (search_path=... selects a schema).
func Open(ctx context.Context, rawURL string) (*DB, error) {
	switch {
	case strings.HasPrefix(rawURL, "sqlite://"):
		return openSQLite(ctx, strings.TrimPrefix(rawURL, "sqlite://"))
	case strings.HasPrefix(rawURL, "postgres://"), strings.HasPrefix(rawURL, "postgresql://"):
		return openPostgres(ctx, rawURL)
	}
	return nil, errors.New("db: unsupported database URL (want sqlite:// or postgres://)")
}

func openSQLite(ctx context.Context, path string) (*DB, error) {
	if path == "" {
		return nil, errors.New("db: sqlite URL has no path")
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("db: create directory for sqlite file: %w", err)
		}
	}
	common := "_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(ON)&_pragma=synchronous(NORMAL)"
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + common
	// The one writer keeps its pages: a 64 MiB page cache (the default
	// is 2 MiB, so a like's random B-tree pages were read back with a
	// syscall each) over the same file mapping as the readers. It does not
	// checkpoint the WAL itself (see checkpoint): a checkpoint run by the
	// writer stalled every write behind it.
	write, err := sql.Open("sqlite", dsn+"&_txlock=immediate&_pragma=mmap_size(1073741824)&_pragma=cache_size(-65536)"+
		"&_pragma=wal_autocheckpoint(0)&_pragma=journal_size_limit(67108864)")
	if err != nil {
		return nil, fmt.Errorf("db: open sqlite: %w", err)
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)
	write.SetConnMaxIdleTime(0)
	// The writer creates the file and switches it to WAL before readers open
	// it. Switching to WAL needs the file to itself for a moment, which the
	// busy timeout does not cover: when several processes start at once,
	// retry for a while.
	for attempt := 0; attempt < 50; attempt++ {
		if err = write.PingContext(ctx); err == nil || !isBusy(err) {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(20+attempt*10) * time.Millisecond):
		}
	}
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("db: open sqlite %s: %w", path, err)
	}
	// Readers map the file (up to 1 GiB) instead of copying pages in with
	// a read(2) each: page fetches were another fifth of a feed request.
	read, err := sql.Open("sqlite", dsn+"&_pragma=query_only(ON)&_pragma=mmap_size(1073741824)")
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("db: open sqlite: %w", err)
	}
	n := max(4, 2*runtime.NumCPU())
	read.SetMaxOpenConns(n)
	read.SetMaxIdleConns(n)
	read.SetConnMaxIdleTime(0)
	read.SetConnMaxLifetime(0)
	ckpt, err := sql.Open("sqlite", dsn)
	if err != nil {
		write.Close()
		read.Close()
		return nil, fmt.Errorf("db: open sqlite: %w", err)
	}
	ckpt.SetMaxOpenConns(1)
	ckpt.SetConnMaxIdleTime(0)
	ckpt.SetConnMaxLifetime(0)
	d := &DB{dialect: SQLite, write: write, read: read, ckpt: ckpt, ckptDone: make(chan struct{})}
	cctx, stop := context.WithCancel(context.Background())
	d.stopCkpt = stop
	go d.checkpoint(cctx)
	return d, nil
}

// Checkpointing, on SQLite. Commits append pages to the WAL; a checkpoint
// copies them back into the database file and syncs it. Run by the writer
// (SQLite's default, every 1,000 pages) it stalled every write queued
// behind it, for hundreds of milliseconds when a feed fan-out had touched
// thousands of pages. Here a connection of its own checkpoints every
// checkpointEvery, PASSIVE: alongside the writer and the readers, never
// waiting for them. The writer starts the WAL over once it is fully copied
// back; should readers keep that from happening until the WAL passes
// checkpointRestart, one RESTART checkpoint waits for them (and briefly
// holds up writers).
const (
	checkpointEvery   = 100 * time.Millisecond
	checkpointRestart = 65536 // pages: 256 MiB of WAL
)

func (d *DB) checkpoint(ctx context.Context) {
	defer close(d.ckptDone)
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var busy, logPages, copied int
		if err := d.ckpt.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &logPages, &copied); err != nil {
			continue // busy or closing: the next tick tries again
		}
		if logPages > checkpointRestart {
			_, _ = d.ckpt.ExecContext(ctx, "PRAGMA wal_checkpoint(RESTART)")
		}
	}
}

func openPostgres(ctx context.Context, rawURL string) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(rawURL)
	if err != nil {
		return nil, errors.New("db: invalid postgres URL")
	}
	if !strings.Contains(rawURL, "pool_max_conns") {
		cfg.MaxConns = int32(max(16, 4*runtime.NumCPU()))
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("db: connect postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("db: connect postgres at %s: %w", cfg.ConnConfig.Host, err)
	}
	// database/sql borrows its connections from the same pgxpool, and an
	// idle database/sql connection still holds its pgx connection:
	// OpenDBFromPool therefore keeps no idle ones (pgxpool keeps them).
	// Raising MaxIdleConns here once starved River's own pgx queries until
	// shutdown hung.
	sdb := stdlib.OpenDBFromPool(pool)
	sdb.SetMaxOpenConns(int(cfg.MaxConns))
	return &DB{dialect: Postgres, write: sdb, read: sdb, pool: pool}, nil
}

// Dialect tells which engine this is, for the rare query that differs.
func (d *DB) Dialect() Dialect { return d.dialect }

// WriteDB is the pool that writes go through (River on SQLite shares it, so
// that jobs can be enqueued in the same transaction as the data).
func (d *DB) WriteDB() *sql.DB { return d.write }

// PgxPool is the native pool on PostgreSQL (for River's LISTEN/NOTIFY
// driver), nil on SQLite.
func (d *DB) PgxPool() *pgxpool.Pool { return d.pool }

// Ping checks that the database answers (readiness).
func (d *DB) Ping(ctx context.Context) error {
	if err := d.write.PingContext(ctx); err != nil {
		return fmt.Errorf("db: ping: %w", err)
	}
	var one int
	if err := d.read.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("db: ping: %w", err)
	}
	return nil
}

// Close releases every connection.
func (d *DB) Close() error {
	if d.stopCkpt != nil {
		d.stopCkpt()
		<-d.ckptDone
		_ = d.ckpt.Close()
	}
	d.readStmts.close()
	d.writeStmts.close()
	err := d.write.Close()
	if d.read != d.write {
		err = errors.Join(err, d.read.Close())
	}
	if d.pool != nil {
		d.pool.Close()
	}
	return err
}

// Exec runs a statement on the write path.
func (d *DB) Exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	d.noteWrite(ctx)
	if st := d.writeStmt(ctx, query); st != nil {
		return st.ExecContext(ctx, d.args(args)...)
	}
	return d.write.ExecContext(ctx, d.rebind(query), d.args(args)...)
}

// ExecRow runs a writing statement that returns one row (INSERT ... RETURNING).
func (d *DB) ExecRow(ctx context.Context, query string, args ...any) *sql.Row {
	d.noteWrite(ctx)
	if st := d.writeStmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, d.args(args)...)
	}
	return d.write.QueryRowContext(ctx, d.rebind(query), d.args(args)...)
}

// Query runs a read-only query on the read path.
func (d *DB) Query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := d.readStmt(ctx, query); st != nil {
		return st.QueryContext(ctx, d.args(args)...)
	}
	return d.read.QueryContext(ctx, d.rebind(query), d.args(args)...)
}

// QueryRow runs a read-only query that returns at most one row.
func (d *DB) QueryRow(ctx context.Context, query string, args ...any) *sql.Row {
	if st := d.readStmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, d.args(args)...)
	}
	return d.read.QueryRowContext(ctx, d.rebind(query), d.args(args)...)
}

// readStmt and writeStmt are the prepared statement for query on SQLite's
// read pool or writer, or nil (PostgreSQL, where pgx caches prepared
// statements itself; see stmtCache.get).
func (d *DB) readStmt(ctx context.Context, query string) *sql.Stmt {
	if d.dialect != SQLite {
		return nil
	}
	return d.readStmts.get(ctx, d.read, query)
}

func (d *DB) writeStmt(ctx context.Context, query string) *sql.Stmt {
	if d.dialect != SQLite {
		return nil
	}
	return d.writeStmts.get(ctx, d.write, query)
}

// Tx is a write transaction.
type Tx struct {
	db         *DB
	tx         *sql.Tx
	unprepared []string // SQLite: statements to prepare once the writer is free
	shared     bool     // one of a group's transactions: see Context
}

// Context is the context to run the transaction's statements with. A
// transaction that shares its commit with others (SQLite's group commit)
// ignores its caller's cancellation: SQLite stops an interrupted write by
// rolling back the whole transaction, the others' work included. Callers
// that hand the underlying *sql.Tx to other code pass this context along.
func (t *Tx) Context(ctx context.Context) context.Context {
	if t.shared {
		return context.WithoutCancel(ctx)
	}
	return ctx
}

// SQL exposes the underlying transaction (for River's InsertTx).
func (t *Tx) SQL() *sql.Tx { return t.tx }

// txStmt is the writer's prepared statement for query bound to the
// transaction, or nil. A statement not yet prepared is prepared after the
// transaction ends: SQLite's writer is one connection, which the
// transaction holds until then.
func (t *Tx) txStmt(ctx context.Context, query string) *sql.Stmt {
	if t.db.dialect != SQLite {
		return nil
	}
	if st := t.db.writeStmts.lookup(query); st != nil {
		return t.tx.StmtContext(ctx, st)
	}
	t.unprepared = append(t.unprepared, query)
	return nil
}

// Exec runs a statement in the transaction.
func (t *Tx) Exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	ctx = t.Context(ctx)
	if st := t.txStmt(ctx, query); st != nil {
		return st.ExecContext(ctx, t.db.args(args)...)
	}
	return t.tx.ExecContext(ctx, t.db.rebind(query), t.db.args(args)...)
}

// Query runs a query in the transaction.
func (t *Tx) Query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	ctx = t.Context(ctx)
	if st := t.txStmt(ctx, query); st != nil {
		return st.QueryContext(ctx, t.db.args(args)...)
	}
	return t.tx.QueryContext(ctx, t.db.rebind(query), t.db.args(args)...)
}

// QueryRow runs a query returning one row in the transaction.
func (t *Tx) QueryRow(ctx context.Context, query string, args ...any) *sql.Row {
	ctx = t.Context(ctx)
	if st := t.txStmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, t.db.args(args)...)
	}
	return t.tx.QueryRowContext(ctx, t.db.rebind(query), t.db.args(args)...)
}

// InTx runs fn in a write transaction, committing when it returns nil and
// rolling back otherwise (also on panic, which is then re-raised). On
// SQLite, transactions that arrive together commit together (see group):
// fn must use the Tx for all its writes, as it always had to.
func (d *DB) InTx(ctx context.Context, fn func(tx *Tx) error) (err error) {
	d.noteWrite(ctx)
	if d.dialect == SQLite {
		return d.inGroupTx(ctx, fn)
	}
	stx, err := d.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("db: begin: %w", err)
	}
	defer func() {
		if p := recover(); p != nil {
			_ = stx.Rollback()
			panic(p)
		}
		if err != nil {
			_ = stx.Rollback()
		}
	}()
	if err = fn(&Tx{db: d, tx: stx}); err != nil {
		return err
	}
	if err = stx.Commit(); err != nil {
		return fmt.Errorf("db: commit: %w", err)
	}
	return nil
}

// group is SQLite's group commit. SQLite has one writer at a time, so
// write transactions queue anyway; a commit (the WAL append and its
// bookkeeping) was a third of a like's cost. Transactions that queue while
// another batch runs form the next batch: one SQLite transaction in which
// each runs inside its own savepoint, so that one failing rolls back only
// its own work, and which commits once for all. Each caller still learns
// its own outcome, after the shared commit.
type group struct {
	mu      sync.Mutex
	queue   []*txRequest
	leading bool // a goroutine is running batches; it hands over when done
	commits atomic.Int64
}

type txRequest struct {
	ctx  context.Context
	fn   func(*Tx) error
	done chan txOutcome // buffered: the batch runner never waits on a caller
}

type txOutcome struct {
	lead     bool // run the next batch (the request is still queued)
	err      error
	panicked bool
	panicVal any
}

// maxGroup bounds a batch, and so how long a transaction can wait behind
// others.
const maxGroup = 64

func (d *DB) inGroupTx(ctx context.Context, fn func(*Tx) error) error {
	req := &txRequest{ctx: ctx, fn: fn, done: make(chan txOutcome, 1)}
	g := &d.group
	g.mu.Lock()
	g.queue = append(g.queue, req)
	lead := !g.leading
	g.leading = true
	g.mu.Unlock()
	for {
		if lead {
			d.runGroup()
		}
		out := <-req.done
		if out.lead {
			lead = true
			continue
		}
		if out.panicked {
			panic(out.panicVal)
		}
		return out.err
	}
}

type backgroundKey struct{}

// Background marks ctx as background work's (the feed fan-out): its
// write transactions do not count as requests' in SinceRequestWrite.
func Background(ctx context.Context) context.Context {
	return context.WithValue(ctx, backgroundKey{}, true)
}

// noteWrite records that a request (not background work) began a write,
// for SinceRequestWrite.
func (d *DB) noteWrite(ctx context.Context) {
	if ctx.Value(backgroundKey{}) == nil {
		d.lastRequest.Store(time.Now().UnixNano())
	}
}

// SinceRequestWrite is how long ago a write (a transaction or a
// statement) other than background work's last began, so that background
// work can let requests go first (on SQLite they queue for its single
// writer; on PostgreSQL they share the machine's cores).
func (d *DB) SinceRequestWrite() time.Duration {
	last := d.lastRequest.Load()
	if last == 0 {
		return time.Hour
	}
	return time.Since(time.Unix(0, last))
}

// runGroup runs the queue's next batch (which includes the caller's own
// request), answers its requests, and hands the lead to the first request
// still queued, so that no caller keeps running others' batches.
func (d *DB) runGroup() {
	g := &d.group
	g.mu.Lock()
	n := min(len(g.queue), maxGroup)
	batch := g.queue[:n:n]
	g.queue = append([]*txRequest(nil), g.queue[n:]...)
	g.mu.Unlock()

	outs := d.runBatch(batch)
	for i, r := range batch {
		r.done <- outs[i]
	}

	g.mu.Lock()
	if len(g.queue) == 0 {
		g.leading = false
	} else {
		g.queue[0].done <- txOutcome{lead: true}
	}
	g.mu.Unlock()
}

// runBatch runs batch in one transaction and returns each one's outcome.
func (d *DB) runBatch(batch []*txRequest) []txOutcome {
	outs := make([]txOutcome, len(batch))
	committed := make([]bool, len(batch)) // whose work the commit carries
	// abort fails the batch from request i on, and those before it whose
	// work was to be committed; the others keep their own error.
	abort := func(i int, err error) []txOutcome {
		for j := range outs {
			if j >= i || committed[j] {
				outs[j] = txOutcome{err: err}
			}
		}
		return outs
	}
	ctx := context.Background() // no one caller's cancellation ends the batch
	stx, err := d.write.BeginTx(ctx, nil)
	if err != nil {
		return abort(0, fmt.Errorf("db: begin: %w", err))
	}
	tx := &Tx{db: d, tx: stx, shared: len(batch) > 1}
	defer func() {
		for _, q := range tx.unprepared {
			d.writeStmt(ctx, q)
		}
	}()
	for i, r := range batch {
		if err := r.ctx.Err(); err != nil {
			outs[i] = txOutcome{err: err}
			continue
		}
		if !tx.shared {
			outs[i] = callTx(r.fn, tx)
			if outs[i].err != nil || outs[i].panicked {
				_ = stx.Rollback()
				return outs
			}
			committed[i] = true
			break
		}
		if _, err := stx.ExecContext(ctx, "SAVEPOINT grouped"); err != nil {
			_ = stx.Rollback()
			return abort(i, fmt.Errorf("db: savepoint: %w", err))
		}
		outs[i] = callTx(r.fn, tx)
		undo := outs[i].err != nil || outs[i].panicked
		if undo {
			if _, err := stx.ExecContext(ctx, "ROLLBACK TO grouped"); err != nil {
				// SQLite ended the transaction itself (I/O error, disk
				// full): nothing of the batch is kept.
				_ = stx.Rollback()
				own := outs[i]
				abort(i, fmt.Errorf("db: roll back a grouped transaction: %w", err))
				outs[i] = own
				return outs
			}
		}
		if _, err := stx.ExecContext(ctx, "RELEASE grouped"); err != nil {
			_ = stx.Rollback()
			return abort(i, fmt.Errorf("db: release savepoint: %w", err))
		}
		committed[i] = !undo
	}
	if err := stx.Commit(); err != nil {
		for j := range outs {
			if committed[j] {
				outs[j] = txOutcome{err: fmt.Errorf("db: commit: %w", err)}
			}
		}
		return outs
	}
	d.group.commits.Add(1)
	return outs
}

// callTx runs one transaction's function, turning a panic into an outcome
// (re-raised in the caller's goroutine).
func callTx(fn func(*Tx) error, tx *Tx) (out txOutcome) {
	defer func() {
		if p := recover(); p != nil {
			out = txOutcome{panicked: true, panicVal: p}
		}
	}()
	return txOutcome{err: fn(tx)}
}

// rebind turns ? placeholders into $1, $2, ... for PostgreSQL. Question
// marks inside quoted literals are left alone. Results are cached: the set
// of query texts is fixed by the code.
func (d *DB) rebind(query string) string {
	if d.dialect != Postgres || !strings.Contains(query, "?") {
		return query
	}
	if q, ok := d.rebound.Load(query); ok {
		return q.(string)
	}
	var b strings.Builder
	b.Grow(len(query) + 8)
	n := 0
	var quote byte
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '?':
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteByte(c)
	}
	q := b.String()
	d.rebound.Store(query, q)
	return q
}

// args writes times in a fixed-width UTC text form on SQLite, so that
// comparisons in SQL are correct; PostgreSQL takes them as they are.
func (d *DB) args(args []any) []any {
	if d.dialect != SQLite {
		return args
	}
	var out []any // copied only when a value changes: the caller's slice is theirs
	for i, a := range args {
		var text any
		switch v := a.(type) {
		case time.Time:
			text = v.UTC().Format(sqliteTimeLayout)
		case *time.Time:
			if v == nil {
				continue
			}
			text = v.UTC().Format(sqliteTimeLayout)
		case sql.NullTime:
			if v.Valid {
				text = v.Time.UTC().Format(sqliteTimeLayout)
			}
		default:
			continue
		}
		if out == nil {
			out = append([]any(nil), args...)
		}
		out[i] = text
	}
	if out == nil {
		return args
	}
	return out
}

// InList is the placeholders and arguments of an IN (...) list of ids:
// `x IN (`+list+`)` with args... (ids must not be empty).
func InList(ids []int64) (list string, args []any) {
	args = make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	return strings.TrimSuffix(strings.Repeat("?,", len(ids)), ","), args
}

// QueryInt64s runs a read query of one integer column and returns its
// values.
func (d *DB) QueryInt64s(ctx context.Context, query string, args ...any) ([]int64, error) {
	return scanInt64s(d.Query(ctx, query, args...))
}

// QueryInt64s is DB.QueryInt64s inside the transaction.
func (t *Tx) QueryInt64s(ctx context.Context, query string, args ...any) ([]int64, error) {
	return scanInt64s(t.Query(ctx, query, args...))
}

func scanInt64s(rows *sql.Rows, err error) ([]int64, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// IsUniqueViolation reports whether err is a unique-constraint failure, on
// either engine, so stores can turn it into a domain conflict.
func IsUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "23505"
	}
	var sqErr *sqlite.Error
	if errors.As(err, &sqErr) {
		return sqErr.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || sqErr.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return false
}

// IsForeignKeyViolation reports whether err is a foreign-key failure.
func IsForeignKeyViolation(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "23503"
	}
	var sqErr *sqlite.Error
	if errors.As(err, &sqErr) {
		return sqErr.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
	}
	return false
}

func isBusy(err error) bool {
	var sqErr *sqlite.Error
	return errors.As(err, &sqErr) && (sqErr.Code()&0xff == sqlite3.SQLITE_BUSY || sqErr.Code()&0xff == sqlite3.SQLITE_LOCKED)
}
