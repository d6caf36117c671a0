package db

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
)

// TestSQLiteGroupCommit: concurrent write transactions on SQLite share
// commits, yet each keeps its own outcome: a failing or panicking one
// leaves nothing behind and its caller sees its own error or panic; a
// cancelled caller gets its context's error; every other one commits.
func TestSQLiteGroupCommit(t *testing.T) {
	ctx := context.Background()
	d, err := Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "g.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.Exec(ctx, `CREATE TABLE items (n INTEGER PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	errOwn := errors.New("own failure")
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	const n = 400
	outcome := make([]any, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if p := recover(); p != nil {
					outcome[i] = p
				}
			}()
			c := ctx
			if i%10 == 9 {
				c = cancelled
			}
			outcome[i] = d.InTx(c, func(tx *Tx) error {
				if _, err := tx.Exec(ctx, `INSERT INTO items (n) VALUES (?)`, i); err != nil {
					return err
				}
				switch i % 10 {
				case 3:
					return errOwn
				case 6:
					panic(fmt.Sprintf("panic %d", i))
				case 8:
					// A failing statement inside: the transaction's own
					// error, after its first insert.
					_, err := tx.Exec(ctx, `INSERT INTO items (n) VALUES (?)`, i)
					return err
				}
				return nil
			})
		}()
	}
	wg.Wait()
	for i := range n {
		var got int
		if err := d.QueryRow(ctx, `SELECT count(*) FROM items WHERE n = ?`, i).Scan(&got); err != nil {
			t.Fatal(err)
		}
		want, o := 1, outcome[i]
		switch i % 10 {
		case 3:
			want = 0
			if !errors.Is(o.(error), errOwn) {
				t.Errorf("%d: outcome %v, want its own error", i, o)
			}
		case 6:
			want = 0
			if o != fmt.Sprintf("panic %d", i) {
				t.Errorf("%d: outcome %v, want its panic", i, o)
			}
		case 8:
			want = 0
			if err, _ := o.(error); err == nil || !IsUniqueViolation(err) {
				t.Errorf("%d: outcome %v, want a unique violation", i, o)
			}
		case 9:
			want = 0
			if err, _ := o.(error); !errors.Is(err, context.Canceled) {
				t.Errorf("%d: outcome %v, want context.Canceled", i, o)
			}
		default:
			if o != nil && o != error(nil) {
				if err, ok := o.(error); !ok || err != nil {
					t.Errorf("%d: outcome %v, want success", i, o)
				}
			}
		}
		if got != want {
			t.Errorf("%d: %d rows, want %d", i, got, want)
		}
	}
	if c := d.group.commits.Load(); c >= n/2 {
		t.Errorf("%d commits for %d concurrent transactions: not grouped", c, n)
	}
}
