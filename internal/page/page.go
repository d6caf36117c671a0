// Package page implements the cursor pagination of API.md: ?limit=
// (default 20, at most 100) and an opaque ?cursor= naming where the previous
// page ended. Cursors are keys (ids or sort text), not offsets, so pages stay
// stable while rows are inserted: nothing is skipped or repeated.
package page

import (
	"encoding/base64"
	"errors"
	"math"
	"strconv"
)

// Limits of a page.
const (
	DefaultLimit = 20
	MaxLimit     = 100
)

// ErrBadCursor is a cursor this server did not hand out.
var ErrBadCursor = errors.New("page: invalid cursor")

// ErrBadLimit is a limit that is not a positive number.
var ErrBadLimit = errors.New("page: invalid limit")

// Request is one page request.
type Request struct {
	Limit int
	id    int64
	text  string
	set   bool
}

// Parse reads limit and cursor query values.
func Parse(limit, cursor string) (Request, error) {
	r := Request{Limit: DefaultLimit}
	if limit != "" {
		n, err := strconv.Atoi(limit)
		if err != nil || n < 1 {
			return r, ErrBadLimit
		}
		r.Limit = min(n, MaxLimit)
	}
	if cursor == "" {
		return r, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil || len(raw) < 2 || raw[1] != ':' {
		return r, ErrBadCursor
	}
	r.set = true
	switch raw[0] {
	case 'i':
		id, err := strconv.ParseInt(string(raw[2:]), 10, 64)
		if err != nil || id < 0 {
			return r, ErrBadCursor
		}
		r.id = id
	case 't':
		r.text = string(raw[2:])
	default:
		return r, ErrBadCursor
	}
	return r, nil
}

// First is the first page with the given limit.
func First(limit int) Request { return Request{Limit: limit} }

// Before is the exclusive upper bound for newest-first lists by id.
func (r Request) Before() int64 {
	if !r.set || r.id == 0 {
		return math.MaxInt64
	}
	return r.id
}

// After is the exclusive lower bound for oldest-first lists by id.
func (r Request) After() int64 {
	if !r.set {
		return 0
	}
	return r.id
}

// AfterText is the exclusive lower bound for lists ordered by text.
func (r Request) AfterText() string { return r.text }

// IsFirst reports whether no cursor was given.
func (r Request) IsFirst() bool { return !r.set }

// EncodeID makes the cursor that continues after id.
func EncodeID(id int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte("i:" + strconv.FormatInt(id, 10)))
}

// EncodeText makes the cursor that continues after text.
func EncodeText(s string) string {
	return base64.RawURLEncoding.EncodeToString([]byte("t:" + s))
}

// Trim cuts a result fetched with limit+1 rows to limit and returns the
// cursor for the next page ("" when there is none); keys[i] is the sort key
// of items[i].
func Trim[T any](items []T, keys []int64, limit int) ([]T, string) {
	if len(items) <= limit {
		return items, ""
	}
	return items[:limit], EncodeID(keys[limit-1])
}
