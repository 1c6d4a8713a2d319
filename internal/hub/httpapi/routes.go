package httpapi

import (
	"net/http"

	"github.com/iotplan/iotplan/internal/tier"
)

// route is one REST endpoint and everything the server derives from it: the mux entry
// (pattern), the SAS check (rights: any one of them, see authorize), the throttle (class, see
// throttle.go) and the handler. routeTable is the only list of routes; docs/hub-api.md,
// "Routes, rights and throttle classes", documents it and TestRouteTableIsDocumented keeps the
// two equal.
type route struct {
	pattern string     // Go 1.22 ServeMux pattern, "METHOD /path/{wildcard}"
	rights  []Rights   // the request's policy needs any one of them
	class   tier.Class // the operation class whose throttle admits it ("" = not throttled)
	handle  func(*Server, http.ResponseWriter, *http.Request) (any, error)
	// aliases are more patterns served by this route and counted under its pattern.
	aliases []string
}

// Rights sets, named for the table's sake.
var (
	rRead         = []Rights{RegistryRead}
	rWrite        = []Rights{RegistryWrite}
	rService      = []Rights{ServiceConnect}
	rReadService  = []Rights{RegistryRead, ServiceConnect}
	rWriteService = []Rights{RegistryWrite, ServiceConnect}
)

// routeTable: rights from https://learn.microsoft.com/azure/iot-hub/iot-hub-dev-guide-sas,
// classes from https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-quotas-throttling
// (choices the pages leave open are marked in docs/hub-api.md). Statistics are identity-
// registry reads, throttled as registry operations [inferred].
var routeTable = []route{
	// Azure's Node SDK lists devices with GET /devices/?api-version=… (azure-iothub 1.16.6
	// Registry.list, dist/registry.js:163: devicePath('') = "/devices/"), which IoT Hub
	// serves as GET /devices.
	{"GET /devices", rRead, tier.RegistryOps, (*Server).listDevices, []string{"GET /devices/{$}"}},
	{"GET /devices/{id}", rRead, tier.RegistryOps, (*Server).getDevice, nil},
	{"PUT /devices/{id}", rWrite, tier.RegistryOps, (*Server).putDevice, nil},
	{"DELETE /devices/{id}", rWrite, tier.RegistryOps, (*Server).deleteDevice, nil},
	{"POST /devices", rWrite, tier.RegistryOps, (*Server).bulkDevices, nil},
	{"GET /devices/{id}/modules", rRead, tier.RegistryOps, (*Server).listModules, nil},
	{"GET /devices/{id}/modules/{mid}", rRead, tier.RegistryOps, (*Server).getModule, nil},
	{"PUT /devices/{id}/modules/{mid}", rWrite, tier.RegistryOps, (*Server).putModule, nil},
	{"DELETE /devices/{id}/modules/{mid}", rWrite, tier.RegistryOps, (*Server).deleteModule, nil},
	{"GET /statistics/devices", rRead, tier.RegistryOps, (*Server).deviceStats, nil},
	{"GET /statistics/service", rReadService, tier.RegistryOps, (*Server).serviceStats, nil},

	{"GET /twins/{id}", rService, tier.TwinReads, (*Server).getTwin, nil},
	{"PATCH /twins/{id}", rService, tier.TwinUpdates, (*Server).patchTwin, nil},
	{"PUT /twins/{id}", rService, tier.TwinUpdates, (*Server).putTwin, nil},
	{"GET /twins/{id}/modules/{mid}", rService, tier.TwinReads, (*Server).getModuleTwin, nil},
	{"PATCH /twins/{id}/modules/{mid}", rService, tier.TwinUpdates, (*Server).patchModuleTwin, nil},
	{"PUT /twins/{id}/modules/{mid}", rService, tier.TwinUpdates, (*Server).putModuleTwin, nil},
	{"POST /twins/{id}/methods", rService, tier.DirectMethods, (*Server).invokeMethod, nil},
	{"POST /twins/{id}/modules/{mid}/methods", rService, tier.DirectMethods, (*Server).invokeModuleMethod, nil},

	{"POST /devices/query", rReadService, tier.Queries, (*Server).queryDevices, nil},

	{"PUT /jobs/v2/{id}", rWriteService, tier.JobsOps, (*Server).createJob, nil},
	{"GET /jobs/v2/{id}", rReadService, tier.JobsOps, (*Server).getJob, nil},
	{"POST /jobs/v2/{id}/cancel", rWriteService, tier.JobsOps, (*Server).cancelJob, nil},
	{"GET /jobs/v2/query", rReadService, tier.JobsOps, (*Server).queryJobs, nil},

	{"GET /configurations", rRead, tier.Configurations, (*Server).listConfigurations, nil},
	{"GET /configurations/{id}", rRead, tier.Configurations, (*Server).getConfiguration, nil},
	{"PUT /configurations/{id}", rWrite, tier.Configurations, (*Server).putConfiguration, nil},
	{"DELETE /configurations/{id}", rWrite, tier.Configurations, (*Server).deleteConfiguration, nil},
	{"POST /configurations/testQueries", rRead, tier.Configurations, (*Server).testConfigurationQueries, nil},
}

// Routes lists the patterns the server handles with the rights each needs (any one of them),
// from routeTable.
func Routes() map[string][]Rights {
	out := make(map[string][]Rights, len(routeTable))
	for _, rt := range routeTable {
		out[rt.pattern] = append([]Rights(nil), rt.rights...)
	}
	return out
}

// ThrottleClass is the operation class that throttles requests of a route pattern, from
// routeTable ("" = not throttled, or not a route of the server).
func ThrottleClass(pattern string) tier.Class {
	for _, rt := range routeTable {
		if rt.pattern == pattern {
			return rt.class
		}
	}
	return ""
}

// routes registers routeTable on the mux; anything else is 404 GenericNotFound.
func (s *Server) routes() {
	for _, rt := range routeTable {
		h := s.wrap(rt)
		s.mux.Handle(rt.pattern, h)
		for _, a := range rt.aliases {
			s.mux.Handle(a, h)
		}
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.count("unknown")
		s.writeError(w, r, errNoRoute(r))
	})
}

// wrap is the request pipeline of a route: count → api-version → SAS auth → throttle →
// handler → one writer for values and one for errors.
func (s *Server) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.count(rt.pattern)
		if err := checkAPIVersion(r); err != nil {
			s.writeError(w, r, err)
			return
		}
		if err := s.authorize(r, rt.pattern, rt.rights); err != nil {
			s.writeError(w, r, err)
			return
		}
		if err := s.admit(r, rt.class); err != nil {
			s.writeThrottled(w, r, err)
			return
		}
		v, err := rt.handle(s, w, r)
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
