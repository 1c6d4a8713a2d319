package httpapi

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/iotplan/iotplan/internal/hubapi"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

// A scan of N pages evaluates the query once; an evicted or expired cursor is rebuilt from the
// token's offset; the last page drops the cursor and omits the header.
func TestPagerEvaluatesOncePerScan(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s := New(Options{Now: clk.now})
	rows := make([]any, 1050)
	for i := range rows {
		rows[i] = i
	}
	runs := 0
	run := func() ([]any, string, error) { runs++; return rows, "raw", nil }
	get := func(tok string) ([]any, string) {
		r := httptest.NewRequest("POST", "/devices/query", nil)
		if tok != "" {
			r.Header.Set(hubapi.HeaderContinuation, tok)
		}
		w := httptest.NewRecorder()
		v, err := s.page(w, r, "k", run)
		if err != nil {
			t.Fatal(err)
		}
		return v.([]any), w.Header().Get(hubapi.HeaderContinuation)
	}
	var tok string
	seen := 0
	for page := 0; ; page++ {
		got, next := get(tok)
		if got[0] != seen {
			t.Fatalf("page %d starts at %v, want %d", page, got[0], seen)
		}
		seen += len(got)
		if next == "" {
			break
		}
		if page == 4 { // let the cursor expire in the middle of the scan
			clk.t = clk.t.Add(cursorTTL + time.Second)
		}
		tok = next
	}
	if seen != 1050 || runs != 2 {
		t.Fatalf("saw %d rows with %d evaluations, want 1050 with 2 (one rebuild after expiry)", seen, runs)
	}
	if len(s.pager.m) != 0 {
		t.Fatalf("finished scan left %d cursors", len(s.pager.m))
	}
	// The cache is bounded.
	for range maxCursors + 10 {
		get("")
	}
	if len(s.pager.m) > maxCursors {
		t.Fatalf("%d cursors cached, bound %d", len(s.pager.m), maxCursors)
	}
}
