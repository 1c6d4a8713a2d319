// Package httpapi is the local hub's service REST API over net/http, as Azure IoT Hub serves it
// (https://learn.microsoft.com/rest/api/iothub/service/jobs and its sibling pages): the api-version check, SAS authentication with the hub's
// shared access policies and rights, the error envelopes with the iothub-errorcode header,
// and the routes for devices, twins, direct methods, queries and jobs v2.
//
// Shape of a request: route (Go 1.22 ServeMux pattern) → count → api-version → SAS auth →
// throttle (the tier's operation class, see throttle.go) → handler returning a value or an error → one writer for JSON (Content-Type
// "application/json; charset=utf-8", which Node's SDK needs to parse a body) and one writer for
// *huberr.Error (writeError). Handlers never write error bytes themselves.
//
// Routes: routeTable (routes.go) is the one list of them; each row gives the pattern, the
// rights (any one of them), the throttle class and the handler, and the mux, the SAS check
// and the throttle are built from it. Every route needs ?api-version=2018-06-30…2021-04-12;
// anything else is 404 GenericNotFound. docs/hub-api.md, "Routes, rights and throttle
// classes", shows the table (a test keeps it equal to routeTable).
//
// Queries are parsed in Options.QueryDialect (internal/query: the documented language by
// default) on every request, and each text is reported to Options.OnQuery.
//
// Query paging: the first page of a query evaluates the whole statement once (queries and
// jobs need the full match set for TOP, GROUP BY and ordering anyway) and keeps the result rows
// in a bounded, expiring cursor cache (maxCursors, cursorTTL after last use). The
// x-ms-continuation token is opaque to clients but encodes the cursor id and the offset of
// the next page, so a retried page is served again, and an evicted or expired cursor (or a
// restarted hub) is rebuilt by re-running the same query and skipping to the offset (results
// are ordered by device id, so the continuation stays correct unless the fleet changed in
// between — the hub's queries are eventually consistent too). Twin documents are immutable in
// the registry, so cached rows are references, not copies. The header is omitted on the last
// page (Node's SDK loops forever on an empty one).
//
// Methods and jobs are reached through the Methods and Jobs interfaces (satisfied by
// *link.Hub and *jobs.Manager), so this package imports neither.
package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/iotplan/iotplan/internal/hub/registry"
	"github.com/iotplan/iotplan/internal/hub/throttle"
	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/query"
)

// Methods routes direct methods to devices; *link.Hub satisfies it.
type Methods interface {
	Invoke(ctx context.Context, deviceID string, m hubapi.CloudToDeviceMethod) (hubapi.CloudToDeviceMethodResult, error)
}

// Jobs is the jobs v2 engine; *jobs.Manager satisfies it.
type Jobs interface {
	Create(req hubapi.JobRequest) (hubapi.JobResponse, error)
	Get(jobID string) (hubapi.JobResponse, error)
	Cancel(jobID string) (hubapi.JobResponse, error)
	List(jobType, status string) []hubapi.JobResponse
	ForEachDeviceJob(fn func(row map[string]any) bool)
}

// Options configure a Server.
type Options struct {
	// HostName is the hub's host name as connection strings carry it ("localhost" or
	// "localhost:8443"); SAS tokens must be scoped to it.
	HostName string
	Registry *registry.Registry
	Methods  Methods
	Jobs     Jobs
	// Configurations is the ADM engine (nil: /configurations answers 503).
	Configurations Configurations
	// Policies are the shared access policies; nil = none (every request is rejected).
	Policies []Policy
	Now      func() time.Time // nil = time.Now; for token expiry
	Logger   *slog.Logger     // nil = discard
	// Throttle enforces the tier's operation throttles (see throttle.go); nil = unlimited.
	Throttle *throttle.Limiter
	// QueryDialect is the query language POST /devices/query accepts (query.Documented, the
	// zero value, or query.Extended).
	QueryDialect query.Dialect
	// OnQuery, if set, is called with the text of every POST /devices/query request and the
	// error it was rejected with (nil when it was accepted), before the query runs.
	OnQuery func(text string, err error)
}

// Server serves the REST API.
type Server struct {
	opts  Options
	log   *slog.Logger
	mux   *http.ServeMux
	pager *pager
	reqMu sync.Mutex
	reqs  map[string]*atomic.Int64
	// policies, when set by SetPolicies, replaces Options.Policies (key regeneration).
	policies atomic.Pointer[[]Policy]
}

// New builds a Server; serve Handler() over TLS.
func New(opts Options) *Server {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{opts: opts, log: log, mux: http.NewServeMux(), pager: newPager(opts.Now), reqs: map[string]*atomic.Int64{}}
	s.routes()
	return s
}

// Handler is the API's http.Handler.
func (s *Server) Handler() http.Handler { return s.mux }

// Requests returns how many requests each route pattern received (e.g. "POST /devices/query"),
// including rejected ones; unknown routes are counted under "unknown".
func (s *Server) Requests() map[string]int64 {
	s.reqMu.Lock()
	defer s.reqMu.Unlock()
	out := make(map[string]int64, len(s.reqs))
	for k, v := range s.reqs {
		out[k] = v.Load()
	}
	return out
}

func (s *Server) count(pattern string) {
	s.reqMu.Lock()
	c := s.reqs[pattern]
	if c == nil {
		c = new(atomic.Int64)
		s.reqs[pattern] = c
	}
	s.reqMu.Unlock()
	c.Add(1)
}
