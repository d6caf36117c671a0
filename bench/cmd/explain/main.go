// Command explain prints the query plans of the hot read queries of the
// feed benchmark (the home feed first) on a seeded database, and times each
// query alone (no HTTP): what one request costs the database.
//
//	go run ./bench/cmd/explain -db sqlite:///tmp/plaza.db
//	go run ./bench/cmd/explain -db postgres://postgres@127.0.0.1:5432/plaza_bench
//
// The SQL is read from the application's source (internal/post,
// internal/social, internal/account) with go/parser, so the plans are those
// of the queries the server runs. On SQLite the plan is EXPLAIN QUERY PLAN;
// on PostgreSQL EXPLAIN (ANALYZE, BUFFERS) with the values inlined.
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"plaza/internal/db"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "explain:", err)
		}
		os.Exit(1)
	}
}

type query struct {
	title string
	key   string // Func#n in the application's source, or "" for sql
	sql   string
	args  func(r *rand.Rand, viewer int64) []any
}

// homeVariants strip the home feed query down step by step, to attribute
// its cost (what-if queries, not the application's).
var homeVariants = []struct{ title, sql string }{
	{"home-keys-only", `SELECT fe.post_id FROM feed_entries fe
		WHERE fe.user_id = ? AND fe.post_id < ?
		AND fe.post_id > COALESCE((SELECT floor_post_id FROM feeds WHERE user_id = ?), 0)
		ORDER BY fe.post_id DESC LIMIT ?`},
	{"home-posts-no-times", `SELECT p.id, p.title, p.content, p.likes_count, p.comments_count FROM feed_entries fe JOIN posts p ON p.id = fe.post_id
		WHERE fe.user_id = ? AND fe.post_id < ?
		AND fe.post_id > COALESCE((SELECT floor_post_id FROM feeds WHERE user_id = ?), 0)
		ORDER BY fe.post_id DESC LIMIT ?`},
	{"home-posts", `SELECT p.id, p.title, p.content, p.likes_count, p.comments_count, p.created_at, p.updated_at FROM feed_entries fe JOIN posts p ON p.id = fe.post_id
		WHERE fe.user_id = ? AND fe.post_id < ?
		AND fe.post_id > COALESCE((SELECT floor_post_id FROM feeds WHERE user_id = ?), 0)
		ORDER BY fe.post_id DESC LIMIT ?`},
	{"home-posts-authors", `SELECT p.id, p.title, p.content, p.likes_count, p.comments_count, p.created_at, p.updated_at,
		u.id, u.username, COALESCE(pr.picture_key, '') FROM feed_entries fe JOIN posts p ON p.id = fe.post_id
		JOIN users u ON u.id = p.author_id LEFT JOIN profiles pr ON pr.user_id = u.id
		WHERE fe.user_id = ? AND fe.post_id < ?
		AND fe.post_id > COALESCE((SELECT floor_post_id FROM feeds WHERE user_id = ?), 0)
		ORDER BY fe.post_id DESC LIMIT ?`},
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("explain", flag.ContinueOnError)
	dbURL := fs.String("db", "", "database URL (required)")
	src := fs.String("src", ".", "root of the plaza module (to read the SQL from)")
	viewer := fs.Int64("user", 5000, "viewer user id of the plans")
	users := fs.Int("users", 10000, "seeded users (random viewers of the timings)")
	n := fs.Int("n", 2000, "executions per query for the timings (0: none)")
	only := fs.String("only", "", "comma-separated query names to run (default all)")
	variants := fs.Bool("variants", false, "also time stripped-down variants of the home feed query (cost attribution)")
	pragmas := fs.String("sqlite-pragma", "", "what-if on SQLite: time the queries on a connection opened like the server's read pool plus these\n_pragma values (comma-separated, e.g. cache_size(-65536),mmap_size(1073741824))")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dbURL == "" {
		return errors.New("-db is required")
	}
	a, err := loadAppSQL(*src, "internal/post/post.go", "internal/post/cards.go", "internal/post/feed.go", "internal/social/social.go", "internal/account/store.go")
	if err != nil {
		return fmt.Errorf("read the application's SQL: %w", err)
	}
	d, err := db.Open(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer d.Close()

	var q querier = d
	if *pragmas != "" {
		if d.Dialect() != db.SQLite {
			return errors.New("-sqlite-pragma is for SQLite")
		}
		raw, err := openSQLiteWith(strings.TrimPrefix(*dbURL, "sqlite://"), strings.Split(*pragmas, ","))
		if err != nil {
			return err
		}
		defer raw.Close()
		q = raw
		fmt.Fprintf(out, "# what-if: read connection with extra pragmas %s\n", *pragmas)
	}

	var maxPost, floor int64
	if err := d.QueryRow(ctx, `SELECT COALESCE(max(id), 0) FROM posts`).Scan(&maxPost); err != nil {
		return err
	}
	if err := d.QueryRow(ctx, `SELECT COALESCE((SELECT floor_post_id FROM feeds WHERE user_id = ?), 0)`, *viewer).Scan(&floor); err != nil {
		return err
	}
	floorOf := func(u int64) int64 {
		var f int64
		_ = d.QueryRow(ctx, `SELECT COALESCE((SELECT floor_post_id FROM feeds WHERE user_id = ?), 0)`, u).Scan(&f)
		return f
	}
	queries := []query{
		{title: "home", key: "HomeFeed#1", args: func(_ *rand.Rand, v int64) []any { return []any{v, v, v, int64(math.MaxInt64), v, 21} }},
		{title: "home-below-floor", key: "HomeFeed#2", args: func(_ *rand.Rand, v int64) []any {
			f := floor
			if v != *viewer {
				f = floorOf(v)
			}
			return []any{v, v, v, v, f + 1, 21}
		}},
		{title: "feed-floor", key: "feedFloor#1", args: func(_ *rand.Rand, v int64) []any { return []any{v} }},
		{title: "global", key: "GlobalFeed#1", args: func(_ *rand.Rand, v int64) []any { return []any{v, v, int64(math.MaxInt64), 21} }},
		{title: "post", key: "Get#1", args: func(r *rand.Rand, v int64) []any { return []any{v, v, r.Int64N(max(maxPost, 1)) + 1} }},
		{title: "profile", key: "ProfileByUsername#1", args: func(r *rand.Rand, v int64) []any {
			return []any{v, v, fmt.Sprintf("user%05d", r.IntN(*users)+1)}
		}},
		{title: "auth-user", key: "UserByID#1", args: func(_ *rand.Rand, v int64) []any { return []any{v} }},
	}
	if *variants {
		for _, v := range homeVariants {
			queries = append(queries, query{title: v.title, sql: v.sql, args: func(_ *rand.Rand, v int64) []any {
				return []any{v, int64(math.MaxInt64), v, 21}
			}})
		}
	}
	var want []string
	if *only != "" {
		want = strings.Split(*only, ",")
	}
	fmt.Fprintf(out, "# %s; viewer user %d (feed floor %d); newest post %d\n", d.Dialect(), *viewer, floor, maxPost)
	for _, qu := range queries {
		if want != nil && !slices.Contains(want, qu.title) {
			continue
		}
		sqlText := qu.sql
		if qu.key != "" {
			if sqlText, err = a.call(qu.key); err != nil {
				return err
			}
		}
		r := rand.New(rand.NewPCG(1, 2))
		qargs := qu.args(r, *viewer)
		from := qu.key
		if from == "" {
			from = "what-if"
		}
		fmt.Fprintf(out, "\n## %s (%s)\n\n```sql\n%s\n```\n\n```\n", qu.title, from, tidy(inline(sqlText, qargs)))
		if err := explain(ctx, d, out, sqlText, qargs); err != nil {
			return fmt.Errorf("%s: %w", qu.title, err)
		}
		fmt.Fprintln(out, "```")
		if *n > 0 {
			if err := timeQuery(ctx, q, out, sqlText, qu, *n, *users); err != nil {
				return fmt.Errorf("%s: %w", qu.title, err)
			}
		}
	}
	return nil
}

// querier is what the timings need: plaza's db.DB, or a what-if connection.
type querier interface {
	Query(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

type rawDB struct{ *sql.DB }

func (r rawDB) Query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return r.QueryContext(ctx, query, args...)
}

// openSQLiteWith opens path as internal/db opens its read pool (same
// pragmas, modernc driver) plus extra pragmas, on one connection.
func openSQLiteWith(path string, extra []string) (rawDB, error) {
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() +
		"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(ON)&_pragma=synchronous(NORMAL)&_pragma=query_only(ON)"
	for _, p := range extra {
		dsn += "&_pragma=" + url.QueryEscape(strings.TrimSpace(p))
	}
	s, err := sql.Open("sqlite", dsn)
	if err != nil {
		return rawDB{}, err
	}
	s.SetMaxOpenConns(1)
	return rawDB{s}, s.Ping()
}

func explain(ctx context.Context, d *db.DB, out io.Writer, sqlText string, args []any) error {
	if d.Dialect() == db.Postgres {
		rows, err := d.Query(ctx, `EXPLAIN (ANALYZE, BUFFERS) `+inline(sqlText, args))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				return err
			}
			fmt.Fprintln(out, line)
		}
		return rows.Err()
	}
	rows, err := d.Query(ctx, `EXPLAIN QUERY PLAN `+sqlText, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	depth := map[int64]int{0: -1}
	fmt.Fprintln(out, "QUERY PLAN")
	for rows.Next() {
		var id, parent, unused int64
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			return err
		}
		depth[id] = depth[parent] + 1
		fmt.Fprintf(out, "%s--%s\n", strings.Repeat("   ", depth[id]), detail)
	}
	return rows.Err()
}

// timeQuery runs the query n times as random viewers, reading every row,
// and prints the latency distribution (one connection at a time).
func timeQuery(ctx context.Context, d querier, out io.Writer, sqlText string, q query, n, users int) error {
	r := rand.New(rand.NewPCG(3, 4))
	lat := make([]time.Duration, 0, n)
	var rowsSeen int64
	for i := range n + n/10 {
		v := int64(r.IntN(users) + 1)
		args := q.args(r, v)
		t := time.Now()
		rows, err := d.Query(ctx, sqlText, args...)
		if err != nil {
			return err
		}
		cols, _ := rows.Columns()
		dst := make([]any, len(cols))
		for j := range dst {
			dst[j] = new(any)
		}
		for rows.Next() {
			if err := rows.Scan(dst...); err != nil {
				rows.Close()
				return err
			}
			rowsSeen++
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if i >= n/10 { // the first tenth warms the caches
			lat = append(lat, time.Since(t))
		}
	}
	slices.Sort(lat)
	var sum time.Duration
	for _, l := range lat {
		sum += l
	}
	us := func(x time.Duration) float64 { return float64(x.Nanoseconds()) / 1000 }
	fmt.Fprintf(out, "\ntiming over %d runs (random viewers): mean %.0f µs, p50 %.0f µs, p99 %.0f µs, %.1f rows per run\n",
		len(lat), us(sum/time.Duration(len(lat))), us(lat[len(lat)/2]), us(lat[len(lat)*99/100]), float64(rowsSeen)/float64(n+n/10))
	return nil
}
