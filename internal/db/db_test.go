package db_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"plaza/internal/db"
	"plaza/internal/db/dbtest"
)

func TestEngines(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, e dbtest.Engine) {
		ctx := context.Background()
		url := e.URL(t)

		// Several processes may migrate one database at once at start.
		var wg sync.WaitGroup
		errs := make([]error, 3)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d, err := db.Open(ctx, url)
				if err != nil {
					errs[i] = err
					return
				}
				defer d.Close()
				_, errs[i] = d.Migrate(ctx)
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("concurrent migrate: %v", err)
		}

		d, err := db.Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		applied, err := d.Migrate(ctx)
		if err != nil || len(applied) != 0 {
			t.Fatalf("second migrate applied %v, err %v; want nothing", applied, err)
		}
		if err := d.Ping(ctx); err != nil {
			t.Fatal(err)
		}

		// Times round-trip exactly (to the microsecond) and compare in SQL in time order.
		base := time.Date(2026, 5, 6, 14, 0, 0, 0, time.UTC)
		times := []time.Time{base.Add(1500 * time.Millisecond), base, base.Add(time.Second), base.Add(1100 * time.Millisecond)}
		for i, ts := range times {
			_, err := d.Exec(ctx, `INSERT INTO users (email, username, password_hash, created_at, updated_at) VALUES (?, ?, 'x', ?, ?)`,
				"u"+string(rune('a'+i))+"@example.com", "u"+string(rune('a'+i)), ts, ts.In(time.FixedZone("X", 3600)))
			if err != nil {
				t.Fatalf("insert: %v", err)
			}
		}
		rows, err := d.Query(ctx, `SELECT created_at, updated_at FROM users WHERE created_at > ? ORDER BY created_at`, base)
		if err != nil {
			t.Fatal(err)
		}
		var got []time.Time
		for rows.Next() {
			var c, u time.Time
			if err := rows.Scan(&c, &u); err != nil {
				t.Fatal(err)
			}
			if !c.Equal(u) {
				t.Errorf("created %v and updated %v differ though the same instant was stored", c, u)
			}
			got = append(got, c)
		}
		rows.Close()
		want := []time.Time{times[2], times[3], times[0]}
		if len(got) != len(want) {
			t.Fatalf("got %v, want %v", got, want)
		}
		for i := range want {
			if !got[i].Equal(want[i]) {
				t.Errorf("row %d: %v, want %v", i, got[i], want[i])
			}
		}

		// Unique violations are recognisable on both engines.
		_, err = d.Exec(ctx, `INSERT INTO users (email, username, password_hash, created_at, updated_at) VALUES ('ua@example.com', 'other', 'x', ?, ?)`, base, base)
		if !db.IsUniqueViolation(err) {
			t.Errorf("duplicate email: got %v, want a unique violation", err)
		}
		_, err = d.Exec(ctx, `INSERT INTO users (email, username, password_hash, created_at, updated_at) VALUES ('new@example.com', 'UA', 'x', ?, ?)`, base, base)
		if !db.IsUniqueViolation(err) {
			t.Errorf("username differing only in case: got %v, want a unique violation", err)
		}
		_, err = d.Exec(ctx, `INSERT INTO refresh_tokens (user_id, family, token_hash, created_at, expires_at) VALUES (99999, 'f', 'h', ?, ?)`, base, base)
		if !db.IsForeignKeyViolation(err) {
			t.Errorf("dangling user id: got %v, want a foreign key violation", err)
		}

		// A failed transaction leaves nothing behind; reads see committed writes.
		boom := errors.New("boom")
		err = d.InTx(ctx, func(tx *db.Tx) error {
			if _, err := tx.Exec(ctx, `UPDATE users SET username = username || 'x'`); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("InTx returned %v", err)
		}
		var n int
		if err := d.QueryRow(ctx, `SELECT count(*) FROM users WHERE username LIKE '%x'`).Scan(&n); err != nil || n != 0 {
			t.Fatalf("rolled back update visible: n=%d err=%v", n, err)
		}
		// A question mark inside a literal is not a placeholder.
		var s string
		if err := d.QueryRow(ctx, `SELECT 'what?' || ?`, "!").Scan(&s); err != nil || s != "what?!" {
			t.Fatalf("literal with ?: %q, %v", s, err)
		}
	})
}

func TestSQLiteReadPathIsReadOnly(t *testing.T) {
	d := dbtest.Open(t, dbtest.Engine{Name: "sqlite", URL: dbtest.SQLiteURL})
	// Reads go to query-only connections, so a write sent down the read path
	// by mistake fails loudly instead of racing the single writer.
	rows, err := d.Query(context.Background(), `DELETE FROM users RETURNING id`)
	if err == nil {
		rows.Close()
		t.Fatal("a write on the read path succeeded")
	}
}

// TestPostgresSharedPoolNotStarved: database/sql and River share one
// pgxpool on PostgreSQL. After a burst of concurrent queries through
// database/sql, every connection must be back in pgxpool, where River's
// own queries (job fetch, completion, leadership) can take it; otherwise
// jobs stall and shutdown hangs.
func TestPostgresSharedPoolNotStarved(t *testing.T) {
	d, err := db.Open(context.Background(), dbtest.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	pool := d.PgxPool()
	n := int(pool.Config().MaxConns) * 2
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := d.Exec(t.Context(), "SELECT pg_sleep(0.05)"); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if got := pool.Stat().AcquiredConns(); got != 0 {
		t.Fatalf("%d pgx connections still held after the queries ended", got)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	for range pool.Config().MaxConns {
		c, err := pool.Acquire(ctx)
		if err != nil {
			t.Fatalf("pgxpool starved: %v", err)
		}
		defer c.Release()
	}
}

// TestSinceRequestWrite: requests' write transactions count as activity
// that background work yields to; background work's own do not.
func TestSinceRequestWrite(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, e dbtest.Engine) {
		ctx := context.Background()
		noop := func(*db.Tx) error { return nil }
		// A request writes in a transaction or in a single statement
		// (PostgreSQL's likes and posts); both count, background work's
		// do not.
		writes := map[string]func(d *db.DB, ctx context.Context) error{
			"transaction": func(d *db.DB, ctx context.Context) error { return d.InTx(ctx, noop) },
			"statement": func(d *db.DB, ctx context.Context) error {
				_, err := d.Exec(ctx, `UPDATE plaza_migrations SET name = name WHERE version < 0`)
				return err
			},
		}
		for name, write := range writes {
			d := dbtest.Open(t, e)
			if got := d.SinceRequestWrite(); got < time.Minute {
				t.Errorf("%s: before any write: %s", name, got)
			}
			if err := write(d, db.Background(ctx)); err != nil {
				t.Fatal(err)
			}
			if got := d.SinceRequestWrite(); got < time.Minute {
				t.Errorf("%s: after a background write: %s", name, got)
			}
			if err := write(d, ctx); err != nil {
				t.Fatal(err)
			}
			if got := d.SinceRequestWrite(); got > time.Second {
				t.Errorf("%s: after a request's write: %s", name, got)
			}
		}
	})
}

// TestSQLiteCheckpointsInBackground: the writer does not checkpoint, yet
// committed pages reach the database file while the database stays open.
func TestSQLiteCheckpointsInBackground(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ckpt.db")
	d, err := db.Open(ctx, "sqlite://"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.Exec(ctx, `CREATE TABLE blobs (b BLOB)`); err != nil {
		t.Fatal(err)
	}
	size := func() int64 {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return st.Size()
	}
	before := size()
	if err := d.InTx(ctx, func(tx *db.Tx) error {
		for i := 0; i < 64; i++ {
			if _, err := tx.Exec(ctx, `INSERT INTO blobs (b) VALUES (?)`, make([]byte, 32<<10)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for size() < before+2<<20 {
		if time.Now().After(deadline) {
			t.Fatalf("database file still %d bytes (was %d): the WAL was not checkpointed", size(), before)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
