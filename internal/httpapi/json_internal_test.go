package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"testing"
)

// TestWriteJSONMatchesEncodingJSON: answers are encoded by go-json, and
// must be byte for byte what encoding/json writes for the same values:
// HTML and control characters escaped, invalid UTF-8 replaced, sorted map
// keys, null for nil pointers and slices, floats formatted alike.
func TestWriteJSONMatchesEncodingJSON(t *testing.T) {
	tricky := "<script>alert('x')</script> & \"quotes\" \\ \u2028\u2029 \x01 \xff\xfe é 😀 ' OR 1=1; --"
	dur, w := 12.345678, int64(1920)
	next := "cD0xMjM"
	values := []any{
		newPage([]postJSON{{
			ID: 1, Author: summaryJSON{ID: 2, Username: tricky, ProfilePicture: "http://x/y?a=1&b=2"},
			Title: tricky, Content: tricky, LikesCount: 3, LikedByMe: true, CreatedAt: "2026-12-05T10:00:00Z",
			Media: []mediaJSON{{ID: 4, Kind: "video", Duration: &dur, Width: &w, URL: strp(tricky)}},
		}, {ID: 5, Media: nil}}, next),
		newPage[commentJSON](nil, ""),
		invalidInput(map[string][]string{"b": {tricky}, "a": {"x"}}),
		map[string]any{"z": 1.5e21, "a": 1e-7, "m": []int(nil), "n": nil, "f": 0.1, "i": int64(-9007199254740993)},
		profileJSON{Bio: tricky, Email: ""},
	}
	for i, v := range values {
		var want bytes.Buffer
		if err := json.NewEncoder(&want).Encode(v); err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		writeJSON(rec, 200, v)
		if got := rec.Body.String(); got != want.String() {
			t.Errorf("value %d:\n got  %s\n want %s", i, got, want.String())
		}
	}
}
