package httpapi_test

import (
	"sort"
	"testing"

	"github.com/iotplan/iotplan/internal/hub/httpapi"
	"github.com/iotplan/iotplan/internal/tier"
)

// unthrottledRoutes are routes with no documented throttle class, on purpose.
var unthrottledRoutes = map[string]string{}

// Every route the server serves is throttled by the class its resource belongs to
// (https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-quotas-throttling); a route with an unknown prefix fails here until it is classified.
func TestEveryRouteHasAThrottleClass(t *testing.T) {
	want := map[string]tier.Class{
		"GET /devices":                                 tier.RegistryOps,
		"GET /devices/{id}":                            tier.RegistryOps,
		"PUT /devices/{id}":                            tier.RegistryOps,
		"DELETE /devices/{id}":                         tier.RegistryOps,
		"POST /devices":                                tier.RegistryOps,
		"GET /devices/{id}/modules":                    tier.RegistryOps,
		"GET /twins/{id}":                              tier.TwinReads,
		"PATCH /twins/{id}":                            tier.TwinUpdates,
		"PUT /twins/{id}":                              tier.TwinUpdates,
		"GET /twins/{id}/modules/{mid}":                tier.TwinReads,
		"PATCH /twins/{id}/modules/{mid}":              tier.TwinUpdates,
		"POST /twins/{id}/methods":                     tier.DirectMethods,
		"POST /twins/{id}/modules/{mid}/methods":       tier.DirectMethods,
		"POST /devices/query":                          tier.Queries,
		"PUT /jobs/v2/{id}":                            tier.JobsOps,
		"GET /jobs/v2/query":                           tier.JobsOps,
		"POST /jobs/v2/{id}/cancel":                    tier.JobsOps,
		"GET /configurations/{id}":                     tier.Configurations,
		"PUT /configurations/{id}":                     tier.Configurations,
		"POST /configurations/testQueries":             tier.Configurations,
		"POST /devices/{id}/applyConfigurationContent": tier.Configurations,
		"GET /statistics/devices":                      tier.RegistryOps,
		"POST /messages/deviceBound":                   tier.CloudToDevice,
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
