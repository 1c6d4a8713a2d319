package httpapi

import (
	"net/http"
	"strconv"

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
// Each route's operation class is its row of routeTable (routes.go). Every request costs one
// token — a bulk POST /devices too, whatever its device count [inferred: Azure documents the
// registry throttle per operation, not per device] — except direct methods (4 KB chunks).
// Refused requests are still counted by Requests().

// admit passes a request through the throttle of its route's class, at its tier.Cost: direct
// methods one token per started 4 KB of request payload (Content-Length; at least one), any
// other request one.
func (s *Server) admit(r *http.Request, c tier.Class) error {
	lim := s.opts.Throttle
	if lim.Unlimited() || c == "" {
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
