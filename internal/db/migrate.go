package db

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

//go:embed migrations
var migrations embed.FS

type migration struct {
	version int
	name    string
	sql     string
}

func (d *DB) migrationSet() ([]migration, error) {
	dir := path.Join("migrations", string(d.dialect))
	entries, err := fs.ReadDir(migrations, dir)
	if err != nil {
		return nil, fmt.Errorf("db: read migrations: %w", err)
	}
	var out []migration
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".sql") {
			continue
		}
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("db: migration %s: name must start with a number and _", name)
		}
		b, err := fs.ReadFile(migrations, path.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("db: read migration %s: %w", name, err)
		}
		out = append(out, migration{version: v, name: name, sql: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	return out, nil
}

// Migrate applies the embedded migrations not yet applied, each in its own
// transaction. Several processes may start at once: PostgreSQL serialises
// them with an advisory lock, SQLite with its single writer.
func (d *DB) Migrate(ctx context.Context) (applied []string, err error) {
	set, err := d.migrationSet()
	if err != nil {
		return nil, err
	}
	conn, err := d.write.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("db: migrate: %w", err)
	}
	defer conn.Close()
	if d.dialect == Postgres {
		if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock(7205731)"); err != nil {
			return nil, fmt.Errorf("db: migrate: lock: %w", err)
		}
		defer conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock(7205731)") //nolint:errcheck // the lock also ends with the session
	}
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS plaza_migrations (
		version INTEGER PRIMARY KEY,
		name TEXT NOT NULL,
		applied_at TEXT NOT NULL)`); err != nil {
		return nil, fmt.Errorf("db: migrate: create version table: %w", err)
	}
	for _, m := range set {
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			return applied, fmt.Errorf("db: migrate %s: %w", m.name, err)
		}
		var n int
		if err := tx.QueryRowContext(ctx, d.rebind("SELECT count(*) FROM plaza_migrations WHERE version = ?"), m.version).Scan(&n); err != nil {
			_ = tx.Rollback()
			return applied, fmt.Errorf("db: migrate %s: %w", m.name, err)
		}
		if n > 0 {
			_ = tx.Rollback()
			continue
		}
		if _, err := tx.ExecContext(ctx, m.sql); err != nil {
			_ = tx.Rollback()
			return applied, fmt.Errorf("db: migrate %s: %w", m.name, err)
		}
		if _, err := tx.ExecContext(ctx, d.rebind("INSERT INTO plaza_migrations (version, name, applied_at) VALUES (?, ?, ?)"),
			m.version, m.name, time.Now().UTC().Format(time.RFC3339)); err != nil {
			_ = tx.Rollback()
			return applied, fmt.Errorf("db: migrate %s: %w", m.name, err)
		}
		if err := tx.Commit(); err != nil {
			return applied, fmt.Errorf("db: migrate %s: commit: %w", m.name, err)
		}
		applied = append(applied, m.name)
	}
	return applied, nil
}
