package httpapi_test

import (
	"maps"
	"slices"
	"testing"

	"github.com/iotplan/iotplan/internal/hub/httpapi"
	"github.com/iotplan/iotplan/internal/tier"
)

// Every route the server serves is throttled by the class its resource belongs to
// (https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-quotas-throttling), written here
// independently of routeTable: a route added without a row here fails.
func TestEveryRouteHasAThrottleClass(t *testing.T) {
	want := map[string]tier.Class{
		"GET /devices":                           tier.RegistryOps,
		"GET /devices/{id}":                      tier.RegistryOps,
		"PUT /devices/{id}":                      tier.RegistryOps,
		"DELETE /devices/{id}":                   tier.RegistryOps,
		"POST /devices":                          tier.RegistryOps,
		"GET /devices/{id}/modules":              tier.RegistryOps,
		"GET /devices/{id}/modules/{mid}":        tier.RegistryOps,
		"PUT /devices/{id}/modules/{mid}":        tier.RegistryOps,
		"DELETE /devices/{id}/modules/{mid}":     tier.RegistryOps,
		"GET /statistics/devices":                tier.RegistryOps,
		"GET /statistics/service":                tier.RegistryOps,
		"GET /twins/{id}":                        tier.TwinReads,
		"PATCH /twins/{id}":                      tier.TwinUpdates,
		"PUT /twins/{id}":                        tier.TwinUpdates,
		"GET /twins/{id}/modules/{mid}":          tier.TwinReads,
		"PATCH /twins/{id}/modules/{mid}":        tier.TwinUpdates,
		"PUT /twins/{id}/modules/{mid}":          tier.TwinUpdates,
		"POST /twins/{id}/methods":               tier.DirectMethods,
		"POST /twins/{id}/modules/{mid}/methods": tier.DirectMethods,
		"POST /devices/query":                    tier.Queries,
		"PUT /jobs/v2/{id}":                      tier.JobsOps,
		"GET /jobs/v2/{id}":                      tier.JobsOps,
		"GET /jobs/v2/query":                     tier.JobsOps,
		"POST /jobs/v2/{id}/cancel":              tier.JobsOps,
		"GET /configurations":                    tier.Configurations,
		"GET /configurations/{id}":               tier.Configurations,
		"PUT /configurations/{id}":               tier.Configurations,
		"DELETE /configurations/{id}":            tier.Configurations,
		"POST /configurations/testQueries":       tier.Configurations,
	}
	routes := slices.Sorted(maps.Keys(httpapi.Routes()))
	for _, p := range routes {
		c, ok := want[p]
		if !ok {
			t.Errorf("route %q has no expected throttle class here: add the class its resource belongs to", p)
			continue
		}
		if got := httpapi.ThrottleClass(p); got != c {
			t.Errorf("ThrottleClass(%q) = %q, want %q", p, got, c)
		}
	}
	for p := range want {
		if !slices.Contains(routes, p) {
			t.Errorf("%q is expected but the server has no such route", p)
		}
	}
	if got := httpapi.ThrottleClass("GET /digitaltwins/{id}"); got != "" {
		t.Errorf("a route the server does not serve is throttled as %q", got)
	}
}
