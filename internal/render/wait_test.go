package render

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/reconcile"
)

// Plans and apply results made against a throttling hub say how long the run waited.
func TestThrottleWaitsAreReported(t *testing.T) {
	p := tutorialPlan()
	p.HubWait = &reconcile.HubWait{Waited: 9150 * time.Millisecond, Throttled: 3}
	var b bytes.Buffer
	if err := Plan(&b, p, Options{}); err != nil {
		t.Fatal(err)
	}
	golden(t, "plan_throttled", b.Bytes())
	if !strings.Contains(b.String(), "Planning waited 9.2s on hub throttling (3 calls answered 429).") {
		t.Errorf("no wait line in\n%s", b.String())
	}

	res := &reconcile.ApplyResult{Jobs: []reconcile.JobResult{{Addr: "twin.door_location", Kind: reconcile.KindTwin,
		JobID: "iotplan-door-location-0a1b2c3d", Status: "completed",
		Stats: hubapi.DeviceJobStatistics{DeviceCount: 5000, SucceededCount: 5000}}},
		HubCalls: map[string]int{"job.create": 2, "job.get": 503, "query": 1},
		HubWait:  &reconcile.HubWait{Waited: 500 * time.Second, Throttled: 1}}
	b.Reset()
	if err := ApplyResult(&b, res, false, ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	golden(t, "apply_result_throttled", b.Bytes())

	for _, c := range []struct {
		w    *reconcile.HubWait
		want string
	}{
		{nil, ""},
		{&reconcile.HubWait{}, ""},
		{&reconcile.HubWait{Waited: 850 * time.Millisecond, Throttled: 1}, "Apply waited 850ms on hub throttling (1 call answered 429)."},
		{&reconcile.HubWait{Throttled: 2}, "Apply waited 0ms on hub throttling (2 calls answered 429)."},
		{&reconcile.HubWait{Waited: 125 * time.Second, Throttled: 40}, "Apply waited 2m05s on hub throttling (40 calls answered 429)."},
	} {
		if got := waitLine("Apply", c.w); got != c.want {
			t.Errorf("waitLine(%+v) = %q, want %q", c.w, got, c.want)
		}
	}
	paced := &reconcile.HubWait{Paced: 51 * time.Second, PacedCalls: 17}
	if got, want := pacedLine("Planning", paced), "Planning held 17 calls back for 51.0s to stay within the hub tier's rates."; got != want {
		t.Errorf("pacedLine = %q, want %q", got, want)
	}
	if got := waitLine("Planning", paced); got != "" {
		t.Errorf("waitLine of a paced-only wait = %q, want none", got)
	}
	if got := pacedLine("Planning", &reconcile.HubWait{Waited: time.Second, Throttled: 1}); got != "" {
		t.Errorf("pacedLine without pacing = %q", got)
	}
}
