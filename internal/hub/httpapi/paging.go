package httpapi

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
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

// pageSize reads x-ms-max-item-count: absent (or empty) is the default page of 100; a
// decimal number of items from 1 up is served, at most 100 a page (docs/hub-api.md §1). A
// larger number is served 100 at a time rather than refused, because Azure's Node SDK
// documents page sizes up to 10000 for this header (azure-iothub, registry.js, createQuery:
// "default: 1000, max: 10000"). Anything else (0, a negative number, not a number) is
// refused with 400 ArgumentInvalid: IoT Hub documents no answer, the Device Provisioning
// Service's SDK says of the same header "It must be any positive integer"
// (https://learn.microsoft.com/dotnet/api/microsoft.azure.devices.provisioning.service.query),
// and serving a default page would hide the caller's mistake [strict where the hub's docs
// are silent, docs/hub-api.md].
func pageSize(r *http.Request) (int, error) {
	v := strings.TrimSpace(r.Header.Get(hubapi.HeaderMaxItemCount))
	if v == "" {
		return hubapi.MaxPageSize, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	switch {
	case errors.Is(err, strconv.ErrRange):
		return hubapi.MaxPageSize, nil // all digits, beyond uint64: a large page size
	case err != nil || n == 0:
		return 0, huberr.New(huberr.ArgumentInvalid, "x-ms-max-item-count must be a positive number of items (at most %d are served per page).", hubapi.MaxPageSize)
	}
	return int(min(n, hubapi.MaxPageSize)), nil
}

// clampPageSize bounds an in-process caller's page size to 1..100, the pages the REST API
// serves (pageSize); in-process callers are not refused.
func clampPageSize(n int) int { return min(max(n, 1), hubapi.MaxPageSize) }

// page serves one page of the rows run produces, keyed by key (see pageRows), with the
// paging headers.
func (s *Server) page(w http.ResponseWriter, r *http.Request, key string, run func() ([]any, string, error)) (any, error) {
	size, err := pageSize(r)
	if err != nil {
		return nil, err
	}
	rows, itemType, next, err := s.pageRows(key, r.Header.Get(hubapi.HeaderContinuation), size, run)
	if err != nil {
		return nil, err
	}
	writePageHeaders(w, itemType, next)
	return rows, nil
}

// writePageHeaders sets x-ms-item-type and, unless this was the last page, x-ms-continuation.
func writePageHeaders(w http.ResponseWriter, itemType, next string) {
	w.Header().Set(hubapi.HeaderItemType, itemType)
	if next != "" {
		w.Header().Set(hubapi.HeaderContinuation, next)
	}
}

// pageRows serves one page of size rows that run produces, keyed by key (see the package
// documentation), from continuation token t ("" = the first page); next is the token of the
// following page, "" on the last one. run is called only when no cursor holds the rows (the
// first page, or a cursor evicted or expired), never after a malformed continuation token; a
// page served from a cursor does not call it.
func (s *Server) pageRows(key, t string, size int, run func() ([]any, string, error)) (rows []any, itemType, next string, err error) {
	id, off := "", 0
	if t != "" {
		var ok bool
		if id, off, ok = decodeToken(t); !ok {
			return nil, "", "", huberr.New(huberr.ArgumentInvalid, "The continuation token is not valid.")
		}
	}
	var c *cursor
	if id != "" {
		c = s.pager.get(id, key)
	}
	if c == nil {
		rows, itemType, err := run()
		if err != nil {
			return nil, "", "", err
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
	rows = []any{}
	if off < end {
		rows = c.rows[off:end]
	}
	if end < len(c.rows) {
		next = encodeToken(id, end)
	} else {
		s.pager.drop(id)
	}
	return rows, c.itemType, next, nil
}
