package reconcile_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/reconcile"
	"github.com/iotplan/iotplan/internal/state"
)

// lastApplyJournal keeps what a state would hold after an apply: the records and the last
// apply (as the CLI's session does).
type lastApplyJournal struct {
	rec  *state.ApplyRecord
	last *state.LastApply
	recs []state.Resource
}

func (j *lastApplyJournal) Begin(_ context.Context, rec *state.ApplyRecord) error {
	j.rec = rec
	return nil
}

func (j *lastApplyJournal) Finish(_ context.Context, rs []state.Resource) error {
	j.last, j.recs, j.rec = state.LastApplyOf(j.rec, time.Now()), rs, nil
	return nil
}

// statusRun is what one fleet size gave: the counts and the hub calls, as the client and the
// hub count them.
type statusRun struct {
	status, drift map[string]int
	hubRequests   int64
}

// TestStatusAndDriftHubCallsDoNotGrowWithFleet applies doorsConfig to fleets of 10 and 500
// devices, changes two devices' floor, and takes the status and the drift: exact counts, and
// the same hub calls for both sizes.
func TestStatusAndDriftHubCallsDoNotGrowWithFleet(t *testing.T) {
	t.Parallel()
	var runs []statusRun
	for _, n := range []int{10, 500} {
		runs = append(runs, statusAndDrift(t, n))
	}
	a, b := runs[0], runs[1]
	if fmt.Sprint(a.status) != fmt.Sprint(b.status) || fmt.Sprint(a.drift) != fmt.Sprint(b.drift) || a.hubRequests != b.hubRequests {
		t.Fatalf("hub calls grew with the fleet: 10 devices %+v, 500 devices %+v", a, b)
	}
	// Status: the target's GROUP BY connectionState (shared with the method), desired and
	// reported COUNTs, one GET per job (update, invoke). Drift: the target's COUNT, a COUNT
	// per key holding iotplan's value (3), then for the drifted key a COUNT/MAX and examples.
	if fmt.Sprint(a.status) != "map[job.get:2 query:3]" || fmt.Sprint(a.drift) != "map[query:6]" || a.hubRequests != 11 {
		t.Errorf("hub calls: status %v, drift %v, hub requests %d; want job.get 2 query 3, query 6, 11", a.status, a.drift, a.hubRequests)
	}
}

func statusAndDrift(t *testing.T, n int) statusRun {
	t.Helper()
	ctx := context.Background()
	h, c := startHub(t, n)
	cfg := doorsConfig(t)
	p, err := reconcile.MakePlan(ctx, c, cfg, reconcile.PlanOptions{Hub: c.HostName()})
	if err != nil {
		t.Fatal(err)
	}
	j := &lastApplyJournal{}
	if res, err := reconcile.Apply(ctx, p, c, nil, reconcile.WithJournal(j)); err != nil || !res.Success() {
		t.Fatalf("apply: %v %+v", err, res)
	}
	for _, id := range []string{"door-00001", "door-00002"} {
		if _, err := c.UpdateTwin(ctx, id, hubapi.TwinPatch{Properties: &hubapi.TwinProperties{Desired: map[string]any{"floor": "3"}}}, "*"); err != nil {
			t.Fatal(err)
		}
	}
	prior := &state.State{Name: state.DefaultName, Resources: j.recs, LastApply: j.last}
	before := h.Requests()
	st, err := reconcile.Status(ctx, c, cfg, reconcile.StatusOptions{Hub: c.HostName(), Prior: prior})
	if err != nil {
		t.Fatal(err)
	}
	checkStatus(t, n, st)
	dr, err := reconcile.Drift(ctx, c, prior, reconcile.DriftOptions{Hub: c.HostName()})
	if err != nil {
		t.Fatal(err)
	}
	checkDrift(t, n, dr)
	var requests int64
	for k, v := range h.Requests() {
		requests += v - before[k]
	}
	return statusRun{status: st.HubCalls, drift: dr.HubCalls, hubRequests: requests}
}

func checkStatus(t *testing.T, n int, st *reconcile.StatusReport) {
	t.Helper()
	if len(st.Resources) != 2 {
		t.Fatalf("%d devices: status of %d resources", n, len(st.Resources))
	}
	twin, method := st.Resources[0], st.Resources[1]
	if twin.Targeted != n || twin.Disconnected != 0 || !twin.DesiredInSync.Known() || twin.DesiredInSync.Devices != n-2 ||
		!twin.ReportedInSync.Known() || twin.Ran != nil || !twin.Failed.Known() || twin.Failed.Devices != 0 || len(twin.Jobs) != 1 {
		t.Errorf("%d devices: twin status %+v (desired %+v, failed %+v)", n, twin, twin.DesiredInSync, twin.Failed)
	}
	if method.Targeted != n || method.DesiredInSync != nil || method.Ran != nil || !method.Failed.Known() ||
		method.Failed.Devices != 0 || len(method.Jobs) != 1 || method.Jobs[0].Devices != n {
		t.Errorf("%d devices: method status %+v", n, method)
	}
}

func checkDrift(t *testing.T, n int, dr *reconcile.DriftReport) {
	t.Helper()
	if !dr.Drifted() || len(dr.Resources) != 1 || dr.Resources[0].Targeted != n {
		t.Fatalf("%d devices: drift %+v", n, dr)
	}
	for _, k := range dr.Resources[0].Keys {
		want := 0
		if k.Key == "desired.floor" {
			want = 2
		}
		if k.Devices != want || k.NotChecked != "" {
			t.Errorf("%d devices: %s drifted on %d, want %d (%+v)", n, k.Key, k.Devices, want, k)
		}
		if want > 0 && (fmt.Sprint(k.Samples) != "[door-00001 door-00002]" || k.LastUpdated == nil || time.Since(*k.LastUpdated) > time.Minute) {
			t.Errorf("%d devices: %s examples %v, last updated %v", n, k.Key, k.Samples, k.LastUpdated)
		}
	}
	rec := dr.Record()
	if len(rec.Keys) != 1 || rec.Keys[0] != (state.DriftKey{Addr: "twin.doors", Key: "desired.floor", Devices: 2, LastUpdated: rec.Keys[0].LastUpdated}) {
		t.Errorf("%d devices: record %+v", n, rec)
	}
}
