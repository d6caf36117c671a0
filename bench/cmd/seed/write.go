package main

import (
	"context"
	"fmt"
	"iter"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"plaza/internal/db"
)

// loader bulk-inserts rows into one table.
type loader interface {
	load(ctx context.Context, table string, cols []string, rows iter.Seq[[]any]) (int64, error)
}

// insertLoader writes multi-row INSERTs through plaza/internal/db, several
// statements per transaction. It works on both engines; on PostgreSQL the
// explicit ids need OVERRIDING SYSTEM VALUE (the id columns are GENERATED
// ALWAYS AS IDENTITY).
type insertLoader struct {
	d      *db.DB
	txRows int // rows per transaction
	cache  map[string]string
}

// maxParams keeps statements well under SQLite's 32766 bound variables.
const maxParams = 4000

func (l *insertLoader) load(ctx context.Context, table string, cols []string, rows iter.Seq[[]any]) (int64, error) {
	per := max(1, min(500, maxParams/len(cols)))
	next, stop := iter.Pull(rows)
	defer stop()
	var total int64
	for done := false; !done; {
		err := l.d.InTx(ctx, func(tx *db.Tx) error {
			args := make([]any, 0, per*len(cols))
			n := 0
			flush := func() error {
				if n == 0 {
					return nil
				}
				if _, err := tx.Exec(ctx, l.insertSQL(table, cols, n), args...); err != nil {
					return fmt.Errorf("insert into %s: %w", table, err)
				}
				total += int64(n)
				args, n = args[:0], 0
				return nil
			}
			for i := 0; i < l.txRows; i++ {
				row, ok := next()
				if !ok {
					done = true
					break
				}
				args = append(args, row...)
				if n++; n == per {
					if err := flush(); err != nil {
						return err
					}
				}
			}
			return flush()
		})
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

func (l *insertLoader) insertSQL(table string, cols []string, n int) string {
	key := fmt.Sprintf("%s/%d", table, n)
	if q, ok := l.cache[key]; ok {
		return q
	}
	var b strings.Builder
	b.WriteString("INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ")")
	if l.d.Dialect() == db.Postgres {
		b.WriteString(" OVERRIDING SYSTEM VALUE")
	}
	b.WriteString(" VALUES ")
	tuple := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ") + ")"
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(tuple)
	}
	q := b.String()
	if l.cache == nil {
		l.cache = map[string]string{}
	}
	l.cache[key] = q
	return q
}

// copyLoader streams rows with PostgreSQL's COPY FROM (pgx CopyFrom), one
// COPY per table. COPY writes identity columns from the input, like
// OVERRIDING SYSTEM VALUE.
type copyLoader struct {
	pool *pgxpool.Pool
}

func (l *copyLoader) load(ctx context.Context, table string, cols []string, rows iter.Seq[[]any]) (int64, error) {
	next, stop := iter.Pull(rows)
	defer stop()
	n, err := l.pool.CopyFrom(ctx, pgx.Identifier{table}, cols, pgx.CopyFromFunc(func() ([]any, error) {
		row, ok := next()
		if !ok {
			return nil, nil
		}
		return row, nil
	}))
	if err != nil {
		return n, fmt.Errorf("copy into %s: %w", table, err)
	}
	return n, nil
}
