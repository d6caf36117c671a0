// Package dbtest gives tests a fresh, migrated database on each engine: an
// SQLite file in a temporary directory always, and a private schema on the
// PostgreSQL server named by PLAZA_TEST_POSTGRES_URL when that is set.
package dbtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"plaza/internal/db"
)

// Engine is one database a suite runs against.
type Engine struct {
	Name string
	// URL returns a database URL for a fresh, empty database (an SQLite file
	// or a PostgreSQL schema) that is removed when the test ends.
	URL func(t testing.TB) string
}

// Engines lists SQLite and, when PLAZA_TEST_POSTGRES_URL is set, PostgreSQL.
func Engines() []Engine {
	out := []Engine{{Name: "sqlite", URL: SQLiteURL}}
	if os.Getenv("PLAZA_TEST_POSTGRES_URL") != "" {
		out = append(out, Engine{Name: "postgres", URL: PostgresURL})
	}
	return out
}

// Each runs fn as a subtest per engine; PostgreSQL is reported as skipped
// when PLAZA_TEST_POSTGRES_URL is unset.
func Each(t *testing.T, fn func(t *testing.T, e Engine)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) { fn(t, Engine{Name: "sqlite", URL: SQLiteURL}) })
	t.Run("postgres", func(t *testing.T) {
		if os.Getenv("PLAZA_TEST_POSTGRES_URL") == "" {
			t.Skip("PLAZA_TEST_POSTGRES_URL is not set")
		}
		fn(t, Engine{Name: "postgres", URL: PostgresURL})
	})
}

// SQLiteURL is a new SQLite file in the test's temporary directory.
func SQLiteURL(t testing.TB) string {
	return "sqlite://" + filepath.Join(t.TempDir(), "plaza.db")
}

// PostgresURL creates a private schema on the test server and returns a URL
// whose search_path selects it; the schema is dropped at cleanup.
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv("PLAZA_TEST_POSTGRES_URL")
	if base == "" {
		t.Skip("PLAZA_TEST_POSTGRES_URL is not set")
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "t_" + hex.EncodeToString(b)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("dbtest: connect to PLAZA_TEST_POSTGRES_URL: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("dbtest: create schema: %v", err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), base)
		if err != nil {
			t.Logf("dbtest: drop schema %s: %v", schema, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Logf("dbtest: drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("dbtest: PLAZA_TEST_POSTGRES_URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Open opens and migrates a fresh database of engine e, closed at cleanup.
func Open(t testing.TB, e Engine) *db.DB {
	t.Helper()
	ctx := context.Background()
	d, err := db.Open(ctx, e.URL(t))
	if err != nil {
		t.Fatalf("dbtest: open %s: %v", e.Name, err)
	}
	t.Cleanup(func() { d.Close() })
	if _, err := d.Migrate(ctx); err != nil {
		t.Fatalf("dbtest: migrate %s: %v", e.Name, err)
	}
	return d
}

// IsPostgres reports whether a URL names PostgreSQL.
func IsPostgres(u string) bool { return strings.HasPrefix(u, "postgres") }
