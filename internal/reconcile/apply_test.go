package reconcile

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/tier"
)

// scriptedRunner is a JobRunner test double: each job walks through a scripted list of
// statuses, one per GetJob, and stays at the last. It checks that jobs never overlap.
type scriptedRunner struct {
	t         *testing.T
	scripts   map[string][]hubapi.JobResponse // by job type
	failures  []hubapi.DeviceJob
	createErr error
	// createErrs are returned by the first CreateJob calls, one each, before createErr.
	createErrs []error
	// active lists what successive ActiveJobs calls return (the last repeats); none = no jobs.
	activeScript [][]hubapi.JobResponse
	activeCalls  int
	// methodErrors are the rows MethodErrors returns.
	methodErrors []hubapi.DeviceJob

	created []hubapi.JobRequest
	polls   map[string]int
	active  string // job id not yet seen in a final status
	djCalls []string
}

func (r *scriptedRunner) ActiveJobs(context.Context) ([]hubapi.JobResponse, error) {
	r.activeCalls++
	if len(r.activeScript) == 0 {
		return nil, nil
	}
	return r.activeScript[min(r.activeCalls, len(r.activeScript))-1], nil
}

func (r *scriptedRunner) CreateJob(_ context.Context, req hubapi.JobRequest) (hubapi.JobResponse, error) {
	if len(r.createErrs) > 0 {
		err := r.createErrs[0]
		r.createErrs = r.createErrs[1:]
		return hubapi.JobResponse{}, err
	}
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
	if hubapi.JobEnded(j.Status) && r.active == id {
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
func (h *recHook) SlotWait(rc *ResourceChange, holders []hubapi.JobResponse, limit int, waited time.Duration) {
	h.events = append(h.events, fmt.Sprintf("slot %s held by %d of %d %s", rc.Addr, len(holders), limit, waited))
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
	res, err := Apply(context.Background(), p, r, hook, WithClock(clock.Now, clock.Sleep), WithMaxFailures(2))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.created) != 2 || r.created[0].Type != hubapi.JobTypeUpdateTwin || r.created[1].Type != hubapi.JobTypeDeviceMethod {
		t.Fatalf("created %v", r.created)
	}
	// startTime "now" is set when each job is scheduled, not when apply began.
	// Polls start fast: right away, after 1s, after 2s more.
	if !r.created[0].StartTime.Equal(planTime.Add(time.Minute)) || !r.created[1].StartTime.Equal(planTime.Add(time.Minute+3*time.Second)) {
		t.Errorf("start times %v %v", r.created[0].StartTime, r.created[1].StartTime)
	}
	if p.Resources[0].Jobs[0].Request.StartTime != nil {
		t.Error("Apply modified the plan")
	}
	want := []string{
		"created twin.door_location queued",
		"progress twin.door_location queued 0/0 0s",
		"progress twin.door_location running 5/18 1s",
		"progress twin.door_location completed 18/18 3s",
		"done twin.door_location completed failures=0 more=0",
		"created method.lock_door queued",
		"progress method.lock_door running 10/20 0s",
		"progress method.lock_door completed 17/20 1s",
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
	res, err = Apply(context.Background(), p, r, nil, WithClock(clock.Now, clock.Sleep))
	if err == nil || !strings.Contains(err.Error(), "still running") || len(res.NotRun) != 1 || res.Success() {
		t.Fatalf("stuck job: err %v, notRun %v", err, res.NotRun)
	}
	// 1h + 2m grace; 1s, 2s, 4s, then every 5s (no tier: the local hub's pace).
	if n := r.polls[r.created[0].JobID]; n < 3720/5 || n > 3720/5+5 {
		t.Errorf("polled %d times for a 1h job", n)
	}

	// The hub refuses the job (a 409 for an id no GET finds): apply stops before the next one.
	r = &scriptedRunner{t: t, polls: map[string]int{}, createErr: conflictErr{}}
	res, err = Apply(context.Background(), p, r, nil, WithClock(clock.Now, clock.Sleep))
	if err == nil || !strings.Contains(err.Error(), "JobAlreadyExists") || len(res.NotRun) != 1 || len(res.Jobs) != 0 {
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

// TestPollBudget: polls start fast, then keep to a tenth of the tier's jobs-operations quota,
// and thin out for long jobs; over any 10 minutes an S1 hub sees at most 10% of its 100/min.
func TestPollBudget(t *testing.T) {
	s1 := tier.Tier{Name: "S1", Units: 1}
	var got []time.Duration
	for n := 1; n <= 6; n++ {
		got = append(got, pollInterval(n, 0, s1))
	}
	if want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 6 * time.Second, 6 * time.Second, 6 * time.Second}; !reflect.DeepEqual(got, want) {
		t.Errorf("S1 intervals %v, want %v", got, want)
	}
	for _, tc := range []struct {
		t        tier.Tier
		expected time.Duration
		steady   time.Duration
	}{
		{tier.Tier{}, 0, 5 * time.Second},                                      // unlimited local hub
		{tier.Tier{Name: "S1", Units: 4}, 0, 5 * time.Second},                  // 400/min: 1.5s by budget, 5s floor
		{tier.Tier{Name: "S3", Units: 1}, 0, 5 * time.Second},                  // 5,000/min
		{s1, 26 * time.Hour, time.Minute},                                      // 26h job: a hundredth is 15m, capped
		{s1, 50 * time.Minute, 30 * time.Second},                               // 50m job: every 30s
		{tier.Tier{Name: "S2", Units: 200}, 10 * time.Minute, 6 * time.Second}, // budget 0.03s: the hundredth rules
	} {
		if d := pollInterval(10, tc.expected, tc.t); d != tc.steady {
			t.Errorf("%s, %s job: steady interval %s, want %s", tc.t, tc.expected, d, tc.steady)
		}
	}
	// Any 10-minute window of an S1 job: at most 10% of 1,000 jobs operations (+ the fast start).
	var at time.Duration
	polls := 0
	for n := 1; at < 10*time.Minute; n++ {
		polls++
		at += pollInterval(n, 0, s1)
	}
	if polls > 100+3 {
		t.Errorf("%d polls in 10 minutes on S1 × 1 unit", polls)
	}
}

// TestApplyWaitsForJobSlot: on S1 (one job slot) a job held by another client makes apply wait
// and say who holds the slot; a 429004 on create (the slot taken since it looked) waits again.
func TestApplyWaitsForJobSlot(t *testing.T) {
	p := testPlan(t)
	p.Resources = p.Resources[1:] // the method only
	clock := &fakeClock{now: planTime}
	other := hubapi.JobResponse{JobID: "nightly-reboot", Type: hubapi.JobTypeDeviceMethod, Status: hubapi.JobStatusScheduled}
	r := &scriptedRunner{t: t, polls: map[string]int{},
		activeScript: [][]hubapi.JobResponse{{other}, {other}, nil, {other}, nil},
		createErrs:   []error{tooManyJobsErr{}},
		scripts:      map[string][]hubapi.JobResponse{hubapi.JobTypeDeviceMethod: {{Status: hubapi.JobStatusCompleted, DeviceJobStatistics: stats(20, 20, 0, 0, 0)}}},
	}
	hook := &recHook{}
	res, err := Apply(context.Background(), p, r, hook, WithClock(clock.Now, clock.Sleep), WithTier(tier.Tier{Name: "S1", Units: 1}))
	if err != nil || !res.Success() {
		t.Fatalf("apply: %v %+v", err, res)
	}
	want := []string{
		"slot method.lock_door held by 1 of 1 0s",
		"slot method.lock_door held by 1 of 1 24s", // 4 status queries per check: every 24s within 10% of 100/min
		"slot method.lock_door held by 1 of 1 0s",  // after the 429004
		"created method.lock_door queued",
	}
	if got := strings.Join(hook.events[:4], "\n"); got != strings.Join(want, "\n") {
		t.Errorf("events:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
	if r.activeCalls != 5 || len(r.created) != 1 {
		t.Errorf("%d slot checks, %d jobs created", r.activeCalls, len(r.created))
	}

	// A slot that stays held past -job-slot-timeout: ErrNoJobSlot naming the holder.
	r = &scriptedRunner{t: t, polls: map[string]int{}, activeScript: [][]hubapi.JobResponse{{other}}}
	clock = &fakeClock{now: planTime}
	_, err = Apply(context.Background(), p, r, nil, WithClock(clock.Now, clock.Sleep), WithTier(tier.Tier{Name: "S1", Units: 1}), WithSlotTimeout(time.Minute))
	if !errors.Is(err, ErrNoJobSlot) || !strings.Contains(err.Error(), "nightly-reboot") || len(r.created) != 0 {
		t.Fatalf("slot timeout: %v", err)
	}
	// Without a tier (an unlimited local hub) there are no slots to check.
	r = &scriptedRunner{t: t, polls: map[string]int{}, activeScript: [][]hubapi.JobResponse{{other}},
		scripts: map[string][]hubapi.JobResponse{hubapi.JobTypeDeviceMethod: {{Status: hubapi.JobStatusCompleted, DeviceJobStatistics: stats(20, 20, 0, 0, 0)}}}}
	if _, err := Apply(context.Background(), p, r, nil, WithClock(clock.Now, clock.Sleep), WithTier(tier.Tier{})); err != nil || r.activeCalls != 0 {
		t.Fatalf("no tier: %v, %d slot checks", err, r.activeCalls)
	}
}

type tooManyJobsErr struct{}

func (tooManyJobsErr) Error() string {
	return "iot hub job.create: ThrottlingMaxActiveJobCountExceeded (429004)"
}
func (tooManyJobsErr) HubCode() int { return 429004 }

// TestApplyRefusesInconsistentResources: a resource the plan marked refused is not run; the
// others are, and the result is not a success.
func TestApplyRefusesInconsistentResources(t *testing.T) {
	p := testPlan(t)
	p.Resources[0].Refused = "the hub's answers disagree"
	clock := &fakeClock{now: planTime}
	r := &scriptedRunner{t: t, polls: map[string]int{}, scripts: map[string][]hubapi.JobResponse{
		hubapi.JobTypeDeviceMethod: {{Status: hubapi.JobStatusCompleted, DeviceJobStatistics: stats(20, 20, 0, 0, 0)}},
	}}
	res, err := Apply(context.Background(), p, r, nil, WithClock(clock.Now, clock.Sleep))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.created) != 1 || r.created[0].Type != hubapi.JobTypeDeviceMethod || len(res.Refused) != 1 || res.Refused[0].Addr != "twin.door_location" || res.Success() {
		t.Fatalf("refused: created %d, result %+v", len(r.created), res)
	}
}
