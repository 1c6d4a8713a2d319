package httpapi_test

import (
	"sort"
	"testing"

	"github.com/iotplan/iotplan/internal/hub/httpapi"
	"github.com/iotplan/iotplan/internal/hub/throttle"
)

// unthrottledRoutes are routes with no documented throttle class, on purpose.
var unthrottledRoutes = map[string]string{}

// Every route the server serves is throttled by the class its resource belongs to
// (iothub-api.md §7.1); a route with an unknown prefix fails here until it is classified.
func TestEveryRouteHasAThrottleClass(t *testing.T) {
	want := map[string]throttle.Class{
		"GET /devices":                                 throttle.RegistryOps,
		"GET /devices/{id}":                            throttle.RegistryOps,
		"PUT /devices/{id}":                            throttle.RegistryOps,
		"DELETE /devices/{id}":                         throttle.RegistryOps,
		"POST /devices":                                throttle.RegistryOps,
		"GET /devices/{id}/modules":                    throttle.RegistryOps,
		"GET /twins/{id}":                              throttle.TwinReads,
		"PATCH /twins/{id}":                            throttle.TwinUpdates,
		"PUT /twins/{id}":                              throttle.TwinUpdates,
		"GET /twins/{id}/modules/{mid}":                throttle.TwinReads,
		"PATCH /twins/{id}/modules/{mid}":              throttle.TwinUpdates,
		"POST /twins/{id}/methods":                     throttle.DirectMethods,
		"POST /twins/{id}/modules/{mid}/methods":       throttle.DirectMethods,
		"POST /devices/query":                          throttle.Queries,
		"PUT /jobs/v2/{id}":                            throttle.JobsOps,
		"GET /jobs/v2/query":                           throttle.JobsOps,
		"POST /jobs/v2/{id}/cancel":                    throttle.JobsOps,
		"GET /configurations/{id}":                     throttle.Configurations,
		"PUT /configurations/{id}":                     throttle.Configurations,
		"POST /configurations/testQueries":             throttle.Configurations,
		"POST /devices/{id}/applyConfigurationContent": throttle.Configurations,
		"GET /statistics/devices":                      throttle.RegistryOps,
		"POST /messages/deviceBound":                   throttle.CloudToDevice,
	}
	for p, c := range want {
		if got := httpapi.ThrottleClass(p); got != c {
			t.Errorf("ThrottleClass(%q) = %q, want %q", p, got, c)
		}
	}
	var ps []string
	for p := range httpapi.Routes() {
		ps = append(ps, p)
	}
	sort.Strings(ps)
	for _, p := range ps {
		if httpapi.ThrottleClass(p) == "" {
			if _, ok := unthrottledRoutes[p]; !ok {
				t.Errorf("route %q has no throttle class: classify it in httpapi/throttle.go or list it in unthrottledRoutes with the reason", p)
			}
		}
	}
	if got := httpapi.ThrottleClass("GET /digitaltwins/{id}"); got != "" {
		t.Errorf("an undocumented resource is throttled as %q", got)
	}
}
