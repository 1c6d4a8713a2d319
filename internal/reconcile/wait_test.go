package reconcile

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/iotplan/iotplan/internal/hubapi"
)

// waitingRunner is a scriptedRunner whose job creation was throttled once (a 429 and a 3 s
// wait before the retry), as hubclient measures it.
type waitingRunner struct {
	*scriptedRunner
	waited    time.Duration
	throttled int
}

func (r *waitingRunner) CreateJob(ctx context.Context, req hubapi.JobRequest) (hubapi.JobResponse, error) {
	r.waited += 3 * time.Second
	r.throttled++
	return r.scriptedRunner.CreateJob(ctx, req)
}
func (r *waitingRunner) Waited() time.Duration { return r.waited }
func (r *waitingRunner) Throttled() int        { return r.throttled }

// waitingFleet is a memFleet whose queries were throttled: 1.5 s and one 429 per query.
type waitingFleet struct {
	*memFleet
	waited    time.Duration
	throttled int
}

func (f *waitingFleet) QueryRows(ctx context.Context, q string, max int) ([]map[string]any, bool, error) {
	f.waited += 1500 * time.Millisecond
	f.throttled++
	return f.memFleet.QueryRows(ctx, q, max)
}
func (f *waitingFleet) Waited() time.Duration { return f.waited }
func (f *waitingFleet) Throttled() int        { return f.throttled }

func TestPlanAndApplyReportHubWaits(t *testing.T) {
	// Waits from before the command do not count: the fleet has already waited 10 s.
	fleet := &waitingFleet{memFleet: &memFleet{docs: doorFleet(20)}, waited: 10 * time.Second, throttled: 4}
	p, err := MakePlan(context.Background(), fleet, doorConfig(t), PlanOptions{Hub: "h", Now: planTime})
	if err != nil {
		t.Fatal(err)
	}
	queries := len(fleet.queries)
	if p.HubWait == nil || p.HubWait.Throttled != queries || p.HubWait.Waited != time.Duration(queries)*1500*time.Millisecond {
		t.Fatalf("plan wait %+v after %d throttled queries", p.HubWait, queries)
	}
	// Saved plans keep it.
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var back Plan
	if err := json.Unmarshal(b, &back); err != nil || back.HubWait == nil || *back.HubWait != *p.HubWait {
		t.Fatalf("round trip: %+v %v", back.HubWait, err)
	}

	clock := &fakeClock{now: planTime.Add(time.Minute)}
	r := &waitingRunner{scriptedRunner: &scriptedRunner{t: t, polls: map[string]int{}, scripts: map[string][]hubapi.JobResponse{
		hubapi.JobTypeUpdateTwin:   {{Status: hubapi.JobStatusCompleted, DeviceJobStatistics: stats(18, 18, 0, 0, 0)}},
		hubapi.JobTypeDeviceMethod: {{Status: hubapi.JobStatusCompleted, DeviceJobStatistics: stats(20, 20, 0, 0, 0)}},
	}}, waited: time.Hour, throttled: 9}
	res, err := Apply(context.Background(), p, r, nil, WithClock(clock.Now, clock.Sleep))
	if err != nil {
		t.Fatal(err)
	}
	if res.HubWait == nil || res.HubWait.Throttled != 2 || res.HubWait.Waited != 6*time.Second {
		t.Fatalf("apply wait %+v, want 2 throttled, 6s", res.HubWait)
	}

	// A runner that does not measure waits: nothing reported.
	res, err = Apply(context.Background(), p, &scriptedRunner{t: t, polls: map[string]int{}, scripts: r.scripts}, nil, WithClock(clock.Now, clock.Sleep))
	if err != nil || res.HubWait != nil {
		t.Fatalf("a runner that does not measure waits: %+v %v", res.HubWait, err)
	}
}
