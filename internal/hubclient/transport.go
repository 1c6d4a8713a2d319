package hubclient

import (
	"io"
	"math/rand/v2"
	"net/http"
	"time"
)

// retryPolicy bounds retries: attempts in total, exponential backoff from base capped at max.
type retryPolicy struct {
	attempts  int
	base, max time.Duration
}

var defaultRetry = retryPolicy{attempts: 5, base: 500 * time.Millisecond, max: 8 * time.Second}

// maxRetryAfter caps a Retry-After the hub asks for, so a confused server cannot park iotplan.
const maxRetryAfter = 60 * time.Second

// delay is the wait before retry number n (1-based): full jitter over base·2^(n-1), capped,
// or the hub's Retry-After when it gave one.
func (p retryPolicy) delay(n int, retryAfter time.Duration) time.Duration {
	if retryAfter > 0 {
		return min(retryAfter, maxRetryAfter)
	}
	d := p.base
	for i := 1; i < n && d < p.max; i++ {
		d *= 2
	}
	d = min(d, p.max)
	if d <= 0 {
		return 0
	}
	// Full jitter, but never less than half the step, so retries do not hammer the hub.
	return d/2 + rand.N(d/2+1)
}

// idempotentKinds are the calls that may be re-sent as they are after a 5xx or a transport
// error, when the first attempt may have landed.
var idempotentKinds = map[string]bool{
	"query": true, "job.get": true, "job.list": true, "job.cancel": true,
	"twin.get": true, "device.get": true, "device.list": true,
}

// retryable reports whether a status is worth retrying: throttled or a server-side failure.
func retryable(status int) bool {
	return status == http.StatusTooManyRequests || status >= 500
}

// ownRetryKinds retry in their own loop (CreateJob checks with GET before sending again), so
// the transport leaves them alone.
var ownRetryKinds = map[string]bool{"job.create": true}

// transport counts every request by kind and retries: idempotent calls after a 429, a 5xx or
// a transport error; every other call (twin and device writes, direct methods) only after a
// 429, because a throttled request was refused before the hub acted on it [inferred: Azure
// throttles at admission; its SDKs retry 429 for every operation too].
// Every wait before a retry is measured and added to the client's Waited. With a tier
// (WithTier) every attempt, retries included, first waits for its turn (pace.go).
type transport struct {
	c    *Client
	next http.RoundTripper
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	kind := callKind(req.Method, req.URL.Path)
	attempts := 1
	rewindable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	if rewindable && !ownRetryKinds[kind] {
		attempts = t.c.retry.attempts
	}
	for n := 1; ; n++ {
		if err := t.c.pace(req.Context(), kind, req); err != nil {
			return nil, err
		}
		t.c.count(kind)
		res, err := t.next.RoundTrip(req)
		if err == nil && res.StatusCode == http.StatusTooManyRequests {
			t.c.countThrottled()
		}
		if n >= attempts || req.Context().Err() != nil {
			return res, err
		}
		if !idempotentKinds[kind] && (err != nil || res.StatusCode != http.StatusTooManyRequests) {
			return res, err
		}
		var wait time.Duration
		switch {
		case err != nil:
			wait = t.c.retry.delay(n, 0)
		case retryable(res.StatusCode):
			wait = t.c.retry.delay(n, parseRetryAfter(res.Header.Get("Retry-After"), t.c.now()))
			// Drain so the connection can be reused, then drop this answer.
			_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 1<<20))
			res.Body.Close()
		default:
			return res, nil
		}
		if req.Body != nil && req.Body != http.NoBody {
			body, gerr := req.GetBody()
			if gerr != nil {
				return nil, gerr
			}
			req = req.Clone(req.Context())
			req.Body = body
		}
		if err := t.c.wait(req.Context(), wait); err != nil {
			return nil, err
		}
	}
}
