package httpapi

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/iotplan/iotplan/internal/hub/huberr"
	"github.com/iotplan/iotplan/internal/hubapi"
)

// Cursor cache bounds (see the package documentation). A cursor over a SELECT * of 1M twins
// holds 1M references (~16 MB), so maxCursors bounds the cache at roughly half a GiB in the
// worst case.
const (
	maxCursors = 32
	cursorTTL  = 5 * time.Minute
)

type cursor struct {
	key      string // what produced the rows: the query text, or the jobs filter
	rows     []any
	itemType string
	used     time.Time
}

type pager struct {
	now func() time.Time
	mu  sync.Mutex
	m   map[string]*cursor
}

func newPager(now func() time.Time) *pager { return &pager{now: now, m: map[string]*cursor{}} }

func (p *pager) get(id, key string) *cursor {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.m[id]
	if c == nil || c.key != key || p.now().Sub(c.used) > cursorTTL {
		delete(p.m, id)
		return nil
	}
	c.used = p.now()
	return c
}

func (p *pager) put(id string, c *cursor) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	c.used = now
	for k, old := range p.m {
		if now.Sub(old.used) > cursorTTL {
			delete(p.m, k)
		}
	}
	for len(p.m) >= maxCursors {
		oldest := ""
		for k, old := range p.m {
			if oldest == "" || old.used.Before(p.m[oldest].used) {
				oldest = k
			}
		}
		delete(p.m, oldest)
	}
	p.m[id] = c
}

func (p *pager) drop(id string) {
	p.mu.Lock()
	delete(p.m, id)
	p.mu.Unlock()
}

// Continuation tokens: base64url("c1:<cursor id>:<offset>").
func encodeToken(id string, off int) string {
	return base64.RawURLEncoding.EncodeToString([]byte("c1:" + id + ":" + strconv.Itoa(off)))
}

func decodeToken(t string) (id string, off int, ok bool) {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimSpace(t))
	if err != nil {
		return "", 0, false
	}
	parts := strings.Split(string(b), ":")
	if len(parts) != 3 || parts[0] != "c1" || parts[1] == "" {
		return "", 0, false
	}
	off, err = strconv.Atoi(parts[2])
	if err != nil || off < 0 {
		return "", 0, false
	}
	return parts[1], off, true
}

// pageSize reads x-ms-max-item-count, clamped to 1..100 (default 100), silently, as the
// swagger allows ("the service may use a different value").
func pageSize(r *http.Request) int {
	n, err := strconv.Atoi(strings.TrimSpace(r.Header.Get(hubapi.HeaderMaxItemCount)))
	if err != nil || n > hubapi.MaxPageSize {
		return hubapi.MaxPageSize
	}
	return max(n, 1)
}

// page serves one page of the rows run produces, keyed by key (see the package documentation).
// run is called only when no cursor holds the rows (the first page, or a cursor evicted or
// expired), never after a malformed continuation token; a page served from a cursor does not
// call it.
func (s *Server) page(w http.ResponseWriter, r *http.Request, key string, run func() ([]any, string, error)) (any, error) {
	size := pageSize(r)
	id, off := "", 0
	if t := r.Header.Get(hubapi.HeaderContinuation); t != "" {
		var ok bool
		if id, off, ok = decodeToken(t); !ok {
			return nil, huberr.New(huberr.ArgumentInvalid, "The continuation token is not valid.")
		}
	}
	var c *cursor
	if id != "" {
		c = s.pager.get(id, key)
	}
	if c == nil {
		rows, itemType, err := run()
		if err != nil {
			return nil, err
		}
		c = &cursor{key: key, rows: rows, itemType: itemType}
		if id == "" {
			b := make([]byte, 12)
			_, _ = rand.Read(b)
			id = hex.EncodeToString(b)
		}
		if off+size < len(rows) {
			s.pager.put(id, c)
		}
	}
	end := min(off+size, len(c.rows))
	rows := []any{}
	if off < end {
		rows = c.rows[off:end]
	}
	w.Header().Set(hubapi.HeaderItemType, c.itemType)
	if end < len(c.rows) {
		w.Header().Set(hubapi.HeaderContinuation, encodeToken(id, end))
	} else {
		s.pager.drop(id)
	}
	return rows, nil
}
