package db

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
)

// TestSQLiteReadStatements: reads on SQLite go through prepared statements
// kept by query text, the cache stays bounded when texts vary, and a query
// that does not prepare still reports its error.
func TestSQLiteReadStatements(t *testing.T) {
	ctx := context.Background()
	d, err := Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for i := range maxStmts + 100 {
		var got int
		if err := d.QueryRow(ctx, fmt.Sprintf("SELECT ? + %d", i), 1).Scan(&got); err != nil || got != i+1 {
			t.Fatalf("query %d: %d, %v", i, got, err)
		}
	}
	if n := d.readStmts.n.Load(); n != maxStmts {
		t.Fatalf("%d cached statements, want the cap %d", n, maxStmts)
	}
	var got int
	if err := d.QueryRow(ctx, "SELECT ? + 0", 41).Scan(&got); err != nil || got != 41 {
		t.Fatalf("cached statement again: %d, %v", got, err)
	}
	if _, err := d.Query(ctx, "SELEC nonsense"); err == nil {
		t.Fatal("a malformed query succeeded")
	}
}
