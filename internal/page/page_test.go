package page

import (
	"math"
	"testing"
)

func TestParse(t *testing.T) {
	r, err := Parse("", "")
	if err != nil || r.Limit != DefaultLimit || r.Before() != math.MaxInt64 || r.After() != 0 || !r.IsFirst() {
		t.Fatalf("defaults: %+v %v", r, err)
	}
	if r, _ := Parse("500", ""); r.Limit != MaxLimit {
		t.Errorf("limit 500 → %d, want %d", r.Limit, MaxLimit)
	}
	for _, bad := range []string{"0", "-1", "x", "1.5"} {
		if _, err := Parse(bad, ""); err != ErrBadLimit {
			t.Errorf("limit %q: %v", bad, err)
		}
	}
	for _, bad := range []string{"!!!", "aTo", "eDox", "aTotMQ", "aTp4"} {
		if _, err := Parse("", bad); err != ErrBadCursor {
			t.Errorf("cursor %q: %v", bad, err)
		}
	}
	r, err = Parse("5", EncodeID(42))
	if err != nil || r.Before() != 42 || r.After() != 42 || r.Limit != 5 {
		t.Errorf("id cursor: %+v %v", r, err)
	}
	r, err = Parse("", EncodeText("bob"))
	if err != nil || r.AfterText() != "bob" {
		t.Errorf("text cursor: %+v %v", r, err)
	}
}

func TestTrim(t *testing.T) {
	items, next := Trim([]string{"a", "b", "c"}, []int64{30, 20, 10}, 2)
	if len(items) != 2 || next != EncodeID(20) {
		t.Errorf("trim: %v %q", items, next)
	}
	if items, next := Trim([]string{"a"}, []int64{1}, 2); len(items) != 1 || next != "" {
		t.Errorf("short page: %v %q", items, next)
	}
}
