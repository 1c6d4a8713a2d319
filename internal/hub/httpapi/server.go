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
// Routes (all need ?api-version=2018-06-30…2021-04-12; rights: any one of those listed):
//
//	GET    /devices                  RegistryRead                   list identities (?top=, ≤ 1000)
//	GET    /devices/{id}             RegistryRead                   identity
//	PUT    /devices/{id}             RegistryWrite                  create (no If-Match) / update (If-Match)
//	DELETE /devices/{id}             RegistryWrite                  204; If-Match
//	GET    /twins/{id}               ServiceConnect                 twin
//	PATCH  /twins/{id}               ServiceConnect                 merge-patch tags + desired; If-Match
//	PUT    /twins/{id}               ServiceConnect                 replace tags + desired; If-Match
//	POST   /twins/{id}/methods       ServiceConnect                 direct method
//	POST   /devices/query            RegistryRead | ServiceConnect  query; paging headers
//	PUT    /jobs/v2/{id}             RegistryWrite | ServiceConnect create job
//	GET    /jobs/v2/{id}             RegistryRead | ServiceConnect  job
//	POST   /jobs/v2/{id}/cancel      RegistryWrite | ServiceConnect cancel job
//	GET    /jobs/v2/query            RegistryRead | ServiceConnect  ?jobType=&jobStatus=; paging headers
//	POST   /devices                  RegistryWrite                  bulk registry operation (≤ 100 devices)
//	GET    /devices/{id}/modules     RegistryRead                   list a device's modules
//	GET    /devices/{id}/modules/{mid}   RegistryRead               module identity
//	PUT    /devices/{id}/modules/{mid}   RegistryWrite              create (no If-Match) / update (If-Match)
//	DELETE /devices/{id}/modules/{mid}   RegistryWrite              204; If-Match
//	GET    /twins/{id}/modules/{mid}     ServiceConnect             module twin
//	PATCH  /twins/{id}/modules/{mid}     ServiceConnect             merge-patch; If-Match
//	PUT    /twins/{id}/modules/{mid}     ServiceConnect             replace; If-Match
//	POST   /twins/{id}/modules/{mid}/methods ServiceConnect         always 404103 (no module sessions)
//	GET    /statistics/devices       RegistryRead                   total/enabled/disabled counts
//	GET    /statistics/service       RegistryRead | ServiceConnect  connectedDeviceCount
//	GET    /configurations           RegistryRead                   ADM configurations (?top=)
//	GET    /configurations/{id}      RegistryRead                   configuration with metrics
//	PUT    /configurations/{id}      RegistryWrite                  create (no If-Match) / update (If-Match)
//	DELETE /configurations/{id}      RegistryWrite                  204; If-Match
//	POST   /configurations/testQueries RegistryRead                 check targetCondition + metric queries
//	anything else                    —                              404 GenericNotFound
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
// Imports: registry, huberr, hubapi, query, sas, stdlib. Methods and jobs are reached through
// the Methods and Jobs interfaces (satisfied by *link.Hub and *jobs.Manager).
package httpapi

import (
	"context"
	"log/slog"
	"maps"
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

// Routes lists the patterns the server handles with the rights each needs (any one of them).
// It is the route table of the package documentation and of tests.
func Routes() map[string][]Rights {
	return maps.Clone(routeRights)
}

var routeRights = map[string][]Rights{
	"GET /devices":              {RegistryRead},
	"GET /devices/{id}":         {RegistryRead},
	"PUT /devices/{id}":         {RegistryWrite},
	"DELETE /devices/{id}":      {RegistryWrite},
	"GET /twins/{id}":           {ServiceConnect},
	"PATCH /twins/{id}":         {ServiceConnect},
	"PUT /twins/{id}":           {ServiceConnect},
	"POST /twins/{id}/methods":  {ServiceConnect},
	"POST /devices/query":       {RegistryRead, ServiceConnect},
	"PUT /jobs/v2/{id}":         {RegistryWrite, ServiceConnect},
	"GET /jobs/v2/{id}":         {RegistryRead, ServiceConnect},
	"POST /jobs/v2/{id}/cancel": {RegistryWrite, ServiceConnect},
	"GET /jobs/v2/query":        {RegistryRead, ServiceConnect},

	"POST /devices":                          {RegistryWrite},
	"GET /devices/{id}/modules":              {RegistryRead},
	"GET /devices/{id}/modules/{mid}":        {RegistryRead},
	"PUT /devices/{id}/modules/{mid}":        {RegistryWrite},
	"DELETE /devices/{id}/modules/{mid}":     {RegistryWrite},
	"GET /twins/{id}/modules/{mid}":          {ServiceConnect},
	"PATCH /twins/{id}/modules/{mid}":        {ServiceConnect},
	"PUT /twins/{id}/modules/{mid}":          {ServiceConnect},
	"POST /twins/{id}/modules/{mid}/methods": {ServiceConnect},
	"GET /statistics/devices":                {RegistryRead},
	"GET /statistics/service":                {RegistryRead, ServiceConnect},
	"GET /configurations":                    {RegistryRead},
	"GET /configurations/{id}":               {RegistryRead},
	"PUT /configurations/{id}":               {RegistryWrite},
	"DELETE /configurations/{id}":            {RegistryWrite},
	"POST /configurations/testQueries":       {RegistryRead},
}

// handlerFunc returns a value to encode as JSON with status 200 (nil: 204 No Content), or an error.
type handlerFunc func(w http.ResponseWriter, r *http.Request) (any, error)

func (s *Server) routes() {
	h := map[string]handlerFunc{
		"GET /devices":              s.listDevices,
		"GET /devices/{id}":         s.getDevice,
		"PUT /devices/{id}":         s.putDevice,
		"DELETE /devices/{id}":      s.deleteDevice,
		"GET /twins/{id}":           s.getTwin,
		"PATCH /twins/{id}":         s.patchTwin,
		"PUT /twins/{id}":           s.putTwin,
		"POST /twins/{id}/methods":  s.invokeMethod,
		"POST /devices/query":       s.queryDevices,
		"PUT /jobs/v2/{id}":         s.createJob,
		"GET /jobs/v2/{id}":         s.getJob,
		"POST /jobs/v2/{id}/cancel": s.cancelJob,
		"GET /jobs/v2/query":        s.queryJobs,

		"POST /devices":                          s.bulkDevices,
		"GET /devices/{id}/modules":              s.listModules,
		"GET /devices/{id}/modules/{mid}":        s.getModule,
		"PUT /devices/{id}/modules/{mid}":        s.putModule,
		"DELETE /devices/{id}/modules/{mid}":     s.deleteModule,
		"GET /twins/{id}/modules/{mid}":          s.getModuleTwin,
		"PATCH /twins/{id}/modules/{mid}":        s.patchModuleTwin,
		"PUT /twins/{id}/modules/{mid}":          s.putModuleTwin,
		"POST /twins/{id}/modules/{mid}/methods": s.invokeModuleMethod,
		"GET /statistics/devices":                s.deviceStats,
		"GET /statistics/service":                s.serviceStats,
		"GET /configurations":                    s.listConfigurations,
		"GET /configurations/{id}":               s.getConfiguration,
		"PUT /configurations/{id}":               s.putConfiguration,
		"DELETE /configurations/{id}":            s.deleteConfiguration,
		"POST /configurations/testQueries":       s.testConfigurationQueries,
	}
	for pattern, fn := range h {
		s.mux.Handle(pattern, s.wrap(pattern, routeRights[pattern], fn))
	}
	// Azure's Node SDK lists devices with GET /devices/?api-version=… (azure-iothub 1.16.6
	// Registry.list, dist/registry.js:163: devicePath('') = "/devices/"), which IoT Hub
	// serves as GET /devices; counted under that pattern.
	s.mux.Handle("GET /devices/{$}", s.wrap("GET /devices", routeRights["GET /devices"], s.listDevices))
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.count("unknown")
		s.writeError(w, r, errNoRoute(r))
	})
}

func (s *Server) wrap(pattern string, rights []Rights, fn handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.count(pattern)
		if err := checkAPIVersion(r); err != nil {
			s.writeError(w, r, err)
			return
		}
		if err := s.authorize(r, rights); err != nil {
			s.writeError(w, r, err)
			return
		}
		if err := s.admit(r, pattern); err != nil {
			s.writeThrottled(w, r, err)
			return
		}
		v, err := fn(w, r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if v == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		s.writeJSON(w, r, v)
	})
}
