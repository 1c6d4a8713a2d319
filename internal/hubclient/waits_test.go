package hubclient

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/iotplan/iotplan/internal/hubapi"
)

// Throttled calls are retried and the waits before the retries are measured; a 429 is retried
// for writes too (the hub refused before acting), a 5xx on a write is not.
func TestThrottledCallsAreRetriedAndWaitsMeasured(t *testing.T) {
	f := &faultServer{reply: func(n int, r *http.Request, w http.ResponseWriter) {
		switch {
		case r.Method == http.MethodPost && n <= 2: // the first two queries are throttled
			hubError(w, 429, "ThrottlingException", "The request has been throttled.")
		case r.Method == http.MethodPost:
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `[{"n":1}]`)
		case r.Method == http.MethodPatch && n == 4:
			hubError(w, 429, "ThrottlingException", "The request has been throttled.")
		case r.Method == http.MethodPatch && n == 5:
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"deviceId":"d1","etag":"AAAA","properties":{"desired":{"x":1}}}`)
		case r.Method == http.MethodPatch:
			hubError(w, 503, "ServiceUnavailable", "busy")
		}
	}}
	c := f.start(t) // retry: 4 attempts, backoff 1 ms doubling to 4 ms
	c.retry = retryPolicy{attempts: 4, base: 40 * time.Millisecond, max: 80 * time.Millisecond}
	if c.Waited() != 0 || c.Throttled() != 0 {
		t.Fatal("a new client has waited")
	}
	if _, err := c.Query(context.Background(), "SELECT COUNT() AS n FROM devices"); err != nil {
		t.Fatal(err)
	}
	// Two waits: ≥ 20 ms (half of 40) and ≥ 40 ms (half of 80).
	if w := c.Waited(); w < 60*time.Millisecond || w > 5*time.Second {
		t.Errorf("waited %v after two throttled queries, want ≥ 60ms", w)
	}
	if c.Throttled() != 2 || c.Calls()["query"] != 3 {
		t.Errorf("throttled %d, calls %v", c.Throttled(), c.Calls())
	}
	before := c.Waited()
	if _, err := c.UpdateTwin(context.Background(), "d1", hubapi.TwinPatch{Tags: map[string]any{"x": 1}}, "*"); err != nil {
		t.Fatalf("throttled twin update was not retried: %v", err)
	}
	if c.Waited() <= before || c.Throttled() != 3 {
		t.Errorf("twin update: waited %v (was %v), throttled %d", c.Waited(), before, c.Throttled())
	}
	// A 503 on a write may have landed: not re-sent.
	before = c.Waited()
	_, err := c.UpdateTwin(context.Background(), "d1", hubapi.TwinPatch{Tags: map[string]any{"x": 2}}, "*")
	if !IsStatus(err, 503) || c.Calls()["twin.update"] != 3 || c.Waited() != before {
		t.Errorf("503 on a write: %v, calls %v, waited %v", err, c.Calls(), c.Waited()-before)
	}
	if got := strings.Count(strings.Join(f.log, ","), "PATCH"); got != 3 {
		t.Errorf("%d PATCHes, want 3", got)
	}
}

func TestCreateJobWaitsAreMeasured(t *testing.T) {
	f := &faultServer{reply: func(n int, r *http.Request, w http.ResponseWriter) {
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			hubError(w, 429, "ThrottlingException", "throttled")
			return
		}
		io.WriteString(w, `{"jobId":"iotplan-t-1","type":"scheduleUpdateTwin","status":"queued"}`)
	}}
	c := f.start(t)
	req := hubapi.JobRequest{JobID: "iotplan-t-1", Type: hubapi.JobTypeUpdateTwin, QueryCondition: "*",
		UpdateTwin: &hubapi.TwinPatch{ETag: "*", Tags: map[string]any{"a": "b"}}}
	start := time.Now()
	if _, err := c.CreateJob(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	// Retry-After: 1 is honoured (the policy's own backoff is 1 ms) and measured.
	if w := c.Waited(); w < time.Second || w > time.Since(start) {
		t.Errorf("waited %v, want ≥ 1s (Retry-After) and ≤ the call's %v", w, time.Since(start))
	}
	if c.Throttled() != 1 || c.Calls()["job.create"] != 2 {
		t.Errorf("throttled %d calls %v", c.Throttled(), c.Calls())
	}
}

// TestCreateJobReturnsSlotRefusals: a 429004 (every job slot held) is not retried with
// backoff: the caller waits for a slot, which may take hours (a scheduled job holds it).
func TestCreateJobReturnsSlotRefusals(t *testing.T) {
	f := &faultServer{reply: func(n int, r *http.Request, w http.ResponseWriter) {
		hubError(w, 429, "ThrottlingMaxActiveJobCountExceeded", "one job at a time")
	}}
	c := f.start(t)
	req := hubapi.JobRequest{JobID: "iotplan-t-1", Type: hubapi.JobTypeUpdateTwin, QueryCondition: "*",
		UpdateTwin: &hubapi.TwinPatch{ETag: "*", Tags: map[string]any{"a": "b"}}}
	_, err := c.CreateJob(context.Background(), req)
	var he *Error
	if !errors.As(err, &he) || he.HubCode() != hubapi.CodeTooManyActiveJobs || c.Calls()["job.create"] != 1 {
		t.Fatalf("err %v, calls %v", err, c.Calls())
	}
}

// A Retry-After given as an HTTP date is read against the client's clock, the one its waits
// are measured on.
func TestRetryAfterDateUsesTheClientsClock(t *testing.T) {
	clk := newFakeClock()
	f := queryServer(func(n int, w http.ResponseWriter) bool {
		if n != 1 {
			return false
		}
		w.Header().Set("Retry-After", clk.Now().Add(5*time.Second).Format(http.TimeFormat))
		hubError(w, 429, "ThrottlingException", "The request has been throttled.")
		return true
	})
	c := f.start(t, withClock(clk.Now, clk.Sleep))
	if _, err := c.Query(context.Background(), "SELECT COUNT() AS n FROM devices"); err != nil {
		t.Fatal(err)
	}
	if c.Waited() != 5*time.Second || len(clk.slept) != 1 || clk.slept[0] != 5*time.Second {
		t.Errorf("waited %v (sleeps %v), want the 5 s to the Retry-After date", c.Waited(), clk.slept)
	}
}
