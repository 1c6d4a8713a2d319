package reconcile

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/iotplan/iotplan/internal/hubapi"
)

// scriptedRunner is a JobRunner test double: each job walks through a scripted list of
// statuses, one per GetJob, and stays at the last. It checks that jobs never overlap.
type scriptedRunner struct {
	t         *testing.T
	scripts   map[string][]hubapi.JobResponse // by job type
	failures  []hubapi.DeviceJob
	createErr error
	// methodErrors are the rows MethodErrors returns.
	methodErrors []hubapi.DeviceJob

	created []hubapi.JobRequest
	polls   map[string]int
	active  string // job id not yet seen in a final status
	djCalls []string
}

func (r *scriptedRunner) CreateJob(_ context.Context, req hubapi.JobRequest) (hubapi.JobResponse, error) {
	if r.createErr != nil {
		return hubapi.JobResponse{}, r.createErr
	}
	if r.active != "" {
		r.t.Errorf("job %s created while %s is still running", req.JobID, r.active)
	}
	r.active = req.JobID
	r.created = append(r.created, req)
	return hubapi.JobResponse{JobID: req.JobID, Type: req.Type, Status: hubapi.JobStatusQueued}, nil
}

func (r *scriptedRunner) GetJob(_ context.Context, id string) (hubapi.JobResponse, error) {
	var req *hubapi.JobRequest
	for i := range r.created {
		if r.created[i].JobID == id {
			req = &r.created[i]
		}
	}
	if req == nil {
		return hubapi.JobResponse{}, fmt.Errorf("no job %s", id)
	}
	s := r.scripts[req.Type]
	n := r.polls[id]
	r.polls[id]++
	j := s[min(n, len(s)-1)]
	j.JobID, j.Type = id, req.Type
	if finalStatus(j.Status) && r.active == id {
		r.active = ""
	}
	return j, nil
}

func (r *scriptedRunner) DeviceJobs(_ context.Context, id, status string, limit int) ([]hubapi.DeviceJob, error) {
	r.djCalls = append(r.djCalls, fmt.Sprintf("%s %s %d", id, status, limit))
	out := r.failures
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (r *scriptedRunner) MethodErrors(_ context.Context, id string, limit int) ([]hubapi.DeviceJob, error) {
	r.djCalls = append(r.djCalls, fmt.Sprintf("%s method-errors %d", id, limit))
	return r.methodErrors, nil
}

type recHook struct{ events []string }

func (h *recHook) JobCreated(rc *ResourceChange, j hubapi.JobResponse) {
	h.events = append(h.events, "created "+rc.Addr+" "+j.Status)
}
func (h *recHook) JobProgress(rc *ResourceChange, p Progress) {
	h.events = append(h.events, fmt.Sprintf("progress %s %s %d/%d %s", rc.Addr, p.Status, p.Stats.SucceededCount, p.Stats.DeviceCount, p.Elapsed))
}
func (h *recHook) JobDone(rc *ResourceChange, r *JobResult) {
	h.events = append(h.events, fmt.Sprintf("done %s %s failures=%d more=%d", rc.Addr, r.Status, len(r.Failures), r.MoreFailures))
}

func stats(dev, ok, failed, running, pending int) *hubapi.DeviceJobStatistics {
	return &hubapi.DeviceJobStatistics{DeviceCount: dev, SucceededCount: ok, FailedCount: failed, RunningCount: running, PendingCount: pending}
}

// fakeClock advances only when apply sleeps.
type fakeClock struct {
	now    time.Time
	sleeps []time.Duration
}

func (c *fakeClock) Now() time.Time { return c.now }
func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.sleeps = append(c.sleeps, d)
	c.now = c.now.Add(d)
	return ctx.Err()
}

func testPlan(t *testing.T) *Plan {
	t.Helper()
	p, err := MakePlan(context.Background(), &memFleet{docs: doorFleet(20)}, doorConfig(t), PlanOptions{Hub: "h", Now: planTime})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestApplyRunsJobsInOrderAndReportsFailures(t *testing.T) {
	p := testPlan(t)
	clock := &fakeClock{now: planTime.Add(time.Minute)}
	st := 200
	r := &scriptedRunner{t: t, polls: map[string]int{}, scripts: map[string][]hubapi.JobResponse{
		hubapi.JobTypeUpdateTwin: {
			{Status: hubapi.JobStatusQueued},
			{Status: hubapi.JobStatusRunning, DeviceJobStatistics: stats(18, 5, 0, 3, 10)},
			{Status: hubapi.JobStatusCompleted, DeviceJobStatistics: stats(18, 18, 0, 0, 0)},
		},
		hubapi.JobTypeDeviceMethod: {
			{Status: hubapi.JobStatusRunning, DeviceJobStatistics: stats(20, 10, 1, 9, 0)},
			{Status: hubapi.JobStatusCompleted, DeviceJobStatistics: stats(20, 17, 3, 0, 0)},
		},
	}, failures: []hubapi.DeviceJob{
		{DeviceID: "door-00003", Status: hubapi.DeviceJobFailed, Error: &hubapi.DeviceJobError{Code: "DeviceNotOnline", Description: "Timed out waiting for device to connect."}},
		{DeviceID: "door-00007", Status: hubapi.DeviceJobFailed, Outcome: &hubapi.DeviceJobOutcome{DeviceMethodResponse: &hubapi.CloudToDeviceMethodResult{Status: st, Payload: []byte(`{"err":"jammed"}`)}}},
	}, methodErrors: []hubapi.DeviceJob{
		{DeviceID: "door-00009", Status: hubapi.DeviceJobCompleted, Outcome: &hubapi.DeviceJobOutcome{DeviceMethodResponse: &hubapi.CloudToDeviceMethodResult{Status: 500, Payload: []byte(`"bolt stuck"`)}}},
	}}
	hook := &recHook{}
	res, err := Apply(context.Background(), p, r, hook, WithClock(clock.Now, clock.Sleep), WithPollInterval(2*time.Second), WithMaxFailures(2))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.created) != 2 || r.created[0].Type != hubapi.JobTypeUpdateTwin || r.created[1].Type != hubapi.JobTypeDeviceMethod {
		t.Fatalf("created %v", r.created)
	}
	// startTime "now" is set when each job is scheduled, not when apply began.
	if !r.created[0].StartTime.Equal(planTime.Add(time.Minute)) || !r.created[1].StartTime.Equal(planTime.Add(time.Minute+4*time.Second)) {
		t.Errorf("start times %v %v", r.created[0].StartTime, r.created[1].StartTime)
	}
	if p.Resources[0].Job.StartTime != nil {
		t.Error("Apply modified the plan")
	}
	want := []string{
		"created twin.door_location queued",
		"progress twin.door_location queued 0/0 0s",
		"progress twin.door_location running 5/18 2s",
		"progress twin.door_location completed 18/18 4s",
		"done twin.door_location completed failures=0 more=0",
		"created method.lock_door queued",
		"progress method.lock_door running 10/20 0s",
		"progress method.lock_door completed 17/20 2s",
		"done method.lock_door completed failures=2 more=1",
	}
	if strings.Join(hook.events, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(hook.events, "\n"), strings.Join(want, "\n"))
	}
	if len(r.djCalls) != 2 || !strings.HasSuffix(r.djCalls[0], " failed 2") || !strings.HasSuffix(r.djCalls[1], " method-errors 2") ||
		!strings.HasPrefix(r.djCalls[0], r.created[1].JobID) {
		t.Errorf("devices.jobs reads: %v (only the method job: its failed rows, then its non-2xx answers)", r.djCalls)
	}
	if me := res.Jobs[1].MethodErrors; len(me) != 1 || me[0].DeviceID != "door-00009" || *me[0].MethodStatus != 500 {
		t.Errorf("method errors %+v", me)
	}
	if res.Success() || !res.Jobs[0].Success() || res.Jobs[1].Success() {
		t.Errorf("success: all %v, twin %v, method %v", res.Success(), res.Jobs[0].Success(), res.Jobs[1].Success())
	}
	f := res.Jobs[1].Failures
	if f[0].Code != "DeviceNotOnline" || f[1].MethodStatus == nil || *f[1].MethodStatus != 200 || string(f[1].MethodPayload) != `{"err":"jammed"}` {
		t.Errorf("failures %+v", f)
	}
}

func TestApplyFailedJobAndErrors(t *testing.T) {
	p := testPlan(t)
	clock := &fakeClock{now: planTime}
	r := &scriptedRunner{t: t, polls: map[string]int{}, scripts: map[string][]hubapi.JobResponse{
		hubapi.JobTypeUpdateTwin:   {{Status: hubapi.JobStatusFailed, FailureReason: "SQL query parse failed"}},
		hubapi.JobTypeDeviceMethod: {{Status: hubapi.JobStatusCompleted, DeviceJobStatistics: stats(2, 2, 0, 0, 0)}},
	}}
	res, err := Apply(context.Background(), p, r, nil, WithClock(clock.Now, clock.Sleep))
	if err != nil {
		t.Fatal(err)
	}
	// A failed job is an outcome, not an error: the next (independent) resource still runs.
	if res.Success() || len(res.Jobs) != 2 || res.Jobs[0].FailureReason != "SQL query parse failed" || !res.Jobs[1].Success() || len(r.djCalls) != 2 {
		t.Errorf("failed job: %+v, dj %v", res.Jobs[0], r.djCalls)
	}

	// A job that never ends: apply stops after maxExecution + grace, and says it may finish.
	r = &scriptedRunner{t: t, polls: map[string]int{}, scripts: map[string][]hubapi.JobResponse{
		hubapi.JobTypeUpdateTwin: {{Status: hubapi.JobStatusRunning}},
	}}
	clock = &fakeClock{now: planTime}
	res, err = Apply(context.Background(), p, r, nil, WithClock(clock.Now, clock.Sleep), WithPollInterval(time.Minute))
	if err == nil || !strings.Contains(err.Error(), "still running") || len(res.NotRun) != 1 || res.Success() {
		t.Fatalf("stuck job: err %v, notRun %v", err, res.NotRun)
	}
	if n := r.polls[r.created[0].JobID]; n < 60 || n > 70 {
		t.Errorf("polled %d times for a 1h job at 1/min", n)
	}

	// The hub refuses the job: apply stops before the next one.
	r = &scriptedRunner{t: t, polls: map[string]int{}, createErr: conflictErr{}}
	res, err = Apply(context.Background(), p, r, nil, WithClock(clock.Now, clock.Sleep))
	if err == nil || !strings.Contains(err.Error(), "applied already") || len(res.NotRun) != 1 || len(res.Jobs) != 0 {
		t.Fatalf("conflict: %v %+v", err, res)
	}

	// Cancelled context while waiting.
	ctx, cancel := context.WithCancel(context.Background())
	r = &scriptedRunner{t: t, polls: map[string]int{}, scripts: map[string][]hubapi.JobResponse{
		hubapi.JobTypeUpdateTwin: {{Status: hubapi.JobStatusRunning}},
	}}
	_, err = Apply(ctx, p, r, nil, WithClock(clock.Now, func(ctx context.Context, d time.Duration) error { cancel(); return ctx.Err() }))
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "keeps running on the hub") {
		t.Fatalf("cancel: %v", err)
	}

	// A plan that fails validation is not applied at all.
	bad := *p
	bad.FormatVersion = "0"
	if _, err := Apply(context.Background(), &bad, r, nil); err == nil {
		t.Error("applied a plan of another format version")
	}
}

type conflictErr struct{}

func (conflictErr) Error() string   { return "iot hub job.create: JobAlreadyExists (409104)" }
func (conflictErr) HTTPStatus() int { return 409 }

func TestApplyDoesNotWaitForFutureJobs(t *testing.T) {
	cfg := doorConfig(t)
	cfg.Methods[0].StartTime = planTime.Add(24 * time.Hour)
	p, err := MakePlan(context.Background(), &memFleet{docs: doorFleet(20)}, cfg, PlanOptions{Hub: "h", Now: planTime})
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{now: planTime}
	r := &scriptedRunner{t: t, polls: map[string]int{}, scripts: map[string][]hubapi.JobResponse{
		hubapi.JobTypeUpdateTwin:   {{Status: hubapi.JobStatusCompleted, DeviceJobStatistics: stats(18, 18, 0, 0, 0)}},
		hubapi.JobTypeDeviceMethod: {{Status: hubapi.JobStatusScheduled}},
	}}
	hook := &recHook{}
	res, err := Apply(context.Background(), p, r, hook, WithClock(clock.Now, clock.Sleep))
	if err != nil {
		t.Fatal(err)
	}
	m := res.Jobs[1]
	if !m.Scheduled || !m.Success() || !res.Success() || len(m.Notes) != 1 || r.polls[m.JobID] != 1 || len(clock.sleeps) != 0 {
		t.Fatalf("future job: %+v, polls %d, sleeps %v", m, r.polls[m.JobID], clock.sleeps)
	}
	if !r.created[1].StartTime.Equal(planTime.Add(24 * time.Hour)) {
		t.Errorf("start time %v", r.created[1].StartTime)
	}
	if last := hook.events[len(hook.events)-1]; last != "done method.lock_door scheduled failures=0 more=0" {
		t.Errorf("last event %q", last)
	}
}
