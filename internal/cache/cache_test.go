package cache

import (
	"testing"
	"time"
)

func TestTTLExpiresAndDeletes(t *testing.T) {
	now := time.Unix(1000, 0)
	c := New[int64, string](5*time.Second, 10)
	c.now = func() time.Time { return now }
	c.SetIfCurrent(c.Generation(), 1, "one")
	if v, ok := c.Get(1); !ok || v != "one" {
		t.Fatalf("Get = %q, %v", v, ok)
	}
	now = now.Add(5 * time.Second)
	if _, ok := c.Get(1); ok {
		t.Fatal("entry outlived its TTL")
	}
	c.SetIfCurrent(c.Generation(), 2, "two")
	c.Delete(2)
	if _, ok := c.Get(2); ok {
		t.Fatal("deleted entry still served")
	}
}

// A load that started before a Delete must not put the old value back.
func TestSetIfCurrentLosesToDelete(t *testing.T) {
	c := New[int64, string](time.Minute, 10)
	gen := c.Generation() // a reader starts loading key 1 ...
	c.Delete(1)           // ... a writer changes it meanwhile
	c.SetIfCurrent(gen, 1, "stale")
	if v, ok := c.Get(1); ok {
		t.Fatalf("stale value %q stored after a concurrent Delete", v)
	}
}

func TestBoundedAndDisabled(t *testing.T) {
	c := New[int, int](time.Minute, 3)
	for i := range 10 {
		c.SetIfCurrent(c.Generation(), i, i)
	}
	if c.Len() > 3 {
		t.Fatalf("%d entries, max 3", c.Len())
	}
	off := New[int, int](0, 3)
	off.SetIfCurrent(off.Generation(), 1, 1)
	if _, ok := off.Get(1); ok {
		t.Fatal("a zero TTL must disable caching")
	}
}

func TestLoadKeepsOnlyAccepted(t *testing.T) {
	c := New[int, string](time.Minute, 10)
	calls := 0
	load := func(v string) func() (string, error) {
		return func() (string, error) { calls++; return v, nil }
	}
	ready := func(v string) bool { return v == "ready" }
	if v, _ := c.Load(1, load("pending"), ready); v != "pending" {
		t.Fatalf("Load = %q", v)
	}
	if v, _ := c.Load(1, load("ready"), ready); v != "ready" || calls != 2 {
		t.Fatalf("Load = %q after %d loads; a rejected value must not be kept", v, calls)
	}
	if v, _ := c.Load(1, load("other"), ready); v != "ready" || calls != 2 {
		t.Fatalf("Load = %q after %d loads; want the kept value without loading", v, calls)
	}
}
