package httpapi

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/iotplan/iotplan/internal/hub/huberr"
	"github.com/iotplan/iotplan/internal/tier"
)

// Throttling (owner: hub-throttle). Every authorized request of a route is admitted by the
// hub's throttle.Limiter (Options.Throttle; nil = unlimited) before its handler runs: at once,
// after being held in the class's queue, or refused with 429 ThrottlingException (429001,
// legacy envelope) and a Retry-After header in whole seconds. Requests that fail the
// api-version or authorization checks are refused before they reach the throttle and cost
// nothing [inferred: Azure does not document whether rejected requests count].
//
// The operation class of a route is chosen from its pattern by ThrottleClass: the explicit
// table below first, then by the first path segment, so routes added later fall into the
// class their resource belongs to (devices/… → identity registry, twins/… → twin reads or
// updates, jobs/… → jobs operations, configurations/… → configurations). Routes whose
// resource has no documented throttle are not throttled (class ""). Every request costs one
// token — a bulk POST /devices too, whatever its device count [inferred: Azure documents the
// registry throttle per operation, not per device] — except direct methods (4 KB chunks).
// Refused requests are still counted by Requests().

// throttleClasses are the routes whose class is not what their prefix says.
var throttleClasses = map[string]tier.Class{
	"POST /devices/query": tier.Queries,
}

// ThrottleClass is the operation class that throttles requests of a route pattern ("" = not
// throttled).
func ThrottleClass(pattern string) tier.Class {
	if c, ok := throttleClasses[pattern]; ok {
		return c
	}
	method, path, _ := strings.Cut(pattern, " ")
	segs := strings.Split(strings.Trim(path, "/"), "/")
	last := segs[len(segs)-1]
	switch segs[0] {
	case "devices":
		switch {
		case last == "methods":
			return tier.DirectMethods // module methods: /devices/{id}/modules/{mid}/methods
		case contains(segs, "twin"):
			return twinClass(method)
		case last == "applyConfigurationContent":
			return tier.Configurations // an edge deployment applied to one device
		case contains(segs, "messages"):
			return tier.CloudToDevice // /devices/{id}/messages/deviceBound (C2D queue)
		}
		return tier.RegistryOps
	case "twins":
		if last == "methods" {
			return tier.DirectMethods
		}
		return twinClass(method)
	case "jobs":
		return tier.JobsOps
	case "configurations", "applyConfigurationContent":
		return tier.Configurations
	case "statistics":
		// [inferred] statistics are identity-registry reads (RegistryRead grants them).
		return tier.RegistryOps
	case "messages":
		return tier.CloudToDevice
	}
	return ""
}

func twinClass(method string) tier.Class {
	if method == http.MethodGet {
		return tier.TwinReads
	}
	return tier.TwinUpdates
}

func contains(segs []string, s string) bool {
	for _, x := range segs {
		if x == s {
			return true
		}
	}
	return false
}

// admit passes a request through the throttle of its route's class, at its tier.Cost: direct
// methods one token per started 4 KB of request payload (Content-Length; at least one), any
// other request one.
func (s *Server) admit(r *http.Request, pattern string) error {
	lim := s.opts.Throttle
	if lim.Unlimited() {
		return nil
	}
	c := ThrottleClass(pattern)
	if c == "" {
		return nil
	}
	return lim.Wait(r.Context(), c, tier.Cost(c, r.ContentLength))
}

// writeThrottled answers a refused request: Retry-After, then the hub's error.
func (s *Server) writeThrottled(w http.ResponseWriter, r *http.Request, err error) {
	if he, ok := err.(*huberr.Error); ok {
		if n, ok := he.Info["retryAfterSeconds"].(int); ok && n > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(n))
		}
		s.writeError(w, r, err)
		return
	}
	// The client went away while its request was held: nobody reads the answer.
	s.writeError(w, r, huberr.New(huberr.ServiceUnavailable, "The request was cancelled while throttled."))
}
