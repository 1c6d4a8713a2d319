package reconcile_test

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/iotplan/iotplan/internal/hub"
	"github.com/iotplan/iotplan/internal/hub/hubtest"
	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/hubclient"
	"github.com/iotplan/iotplan/internal/query"
	"github.com/iotplan/iotplan/internal/reconcile"
	"github.com/iotplan/iotplan/internal/state"
	"github.com/iotplan/iotplan/internal/tier"
)

// fleetFile is a fleet of n door controllers: three quarters with a floor, one in ten of those
// already converged on building "43" and the rest on "42"; a quarter on "42" without a floor;
// plus the tutorial's device (outside the target).
func fleetFile(n int) string {
	return fmt.Sprintf(`
device "myDeviceId" {
  method "lockDoor" {
    status = 200
  }
}

group "doors" {
  count = %d
  id    = "door-%%05d"
  tags = {
    site = "hq"
  }
  desired = {
    building = index %% 10 == 0 ? "43" : "42"
    floor    = 3
  }
  method "lockDoor" {
    status = 200
  }
}

group "doors-no-floor" {
  count = %d
  id    = "nofloor-%%05d"
  tags = {
    site = "hq"
  }
  desired = {
    building = "42"
  }
  method "lockDoor" {
    status = 200
  }
}
`, n-n/4, n/4)
}

// convergedDoors is how many devices of fleetFile(n) already match doorsConfig.
func convergedDoors(n int) int { return (n - n/4 + 9) / 10 }

// startHub starts a strict local hub that audits every query and job condition (hubtest).
func startHub(t *testing.T, devices int) (*hub.Hub, *hubclient.Client) {
	t.Helper()
	h, c, _ := hubtest.StartAudited(t, fleetFile(devices))
	return h, c
}

func doorsConfig(t *testing.T) *reconcile.Config {
	t.Helper()
	target, err := query.ParseCondition("tags.site = 'hq'")
	if err != nil {
		t.Fatal(err)
	}
	return &reconcile.Config{
		Twins: []reconcile.Twin{{Addr: "twin.doors", Target: target,
			Desired: map[string]any{"building": "43", "floor": 3}, Tags: map[string]any{"owner": nil}}},
		Methods: []reconcile.Method{{Addr: "method.lock", Target: target, Method: "lockDoor", ResponseTimeout: 10 * time.Second}},
	}
}

// TestPlanHubCallsDoNotGrowWithFleet plans the same configuration against hubs of 1,000 and
// 10,000 devices and checks that the number of hub calls — as the client and as the hub count
// them — is the same.
func TestPlanHubCallsDoNotGrowWithFleet(t *testing.T) {
	t.Parallel()
	type run struct {
		clientCalls map[string]int
		hubQueries  int64
		plan        *reconcile.Plan
	}
	var runs []run
	for _, n := range []int{1000, 10000} {
		h, c := startHub(t, n)
		before := h.Requests()
		start := time.Now()
		p, err := reconcile.MakePlan(context.Background(), c, doorsConfig(t), reconcile.PlanOptions{Hub: c.HostName()})
		if err != nil {
			t.Fatal(err)
		}
		after := h.Requests()
		var total int64
		for k, v := range after {
			total += v - before[k]
		}
		r := run{clientCalls: c.Calls(), hubQueries: after["POST /devices/query"] - before["POST /devices/query"], plan: p}
		t.Logf("%6d devices: client calls %v, hub requests %d (queries %d), plan took %s", n, r.clientCalls, total, r.hubQueries, time.Since(start).Round(time.Millisecond))
		// The queries, and one read of the hub's ADM configurations (keys they also manage).
		if int64(r.clientCalls["query"]) != r.hubQueries || total != r.hubQueries+1 || r.clientCalls["configuration.list"] != 1 {
			t.Errorf("client counted %v, hub counted %d requests of which %d queries", r.clientCalls, total, r.hubQueries)
		}
		twin := p.Resources[0]
		wantDrifted := n - convergedDoors(n)
		if twin.TargetedDevices != n || twin.Devices != wantDrifted {
			t.Errorf("%d devices: targeted %d drifted %d, want %d %d", n, twin.TargetedDevices, twin.Devices, n, wantDrifted)
		}
		runs = append(runs, r)
	}
	if fmt.Sprint(runs[0].clientCalls) != fmt.Sprint(runs[1].clientCalls) || runs[0].hubQueries != runs[1].hubQueries {
		t.Fatalf("hub calls grew with the fleet: 1,000 devices %v (%d), 10,000 devices %v (%d)",
			runs[0].clientCalls, runs[0].hubQueries, runs[1].clientCalls, runs[1].hubQueries)
	}
}

// TestApplyOverLocalHub plans, applies with the real client, and plans again: the second plan
// has no twin changes, and the method reached every targeted device.
func TestApplyOverLocalHub(t *testing.T) {
	t.Parallel()
	h, c := startHub(t, 200)
	ctx := context.Background()
	cfg := doorsConfig(t)
	p, err := reconcile.MakePlan(ctx, c, cfg, reconcile.PlanOptions{Hub: c.HostName()})
	if err != nil {
		t.Fatal(err)
	}
	if p.Resources[0].Action != reconcile.Update || p.Resources[1].Action != reconcile.Invoke {
		t.Fatalf("plan %+v", p.Resources)
	}
	res, err := reconcile.Apply(ctx, p, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Success() || len(res.Jobs) != 2 {
		t.Fatalf("apply: %+v", res)
	}
	if s := res.Jobs[0].Stats; s.DeviceCount != p.Resources[0].Devices || s.SucceededCount != s.DeviceCount {
		t.Errorf("twin job stats %+v, plan said %d devices", s, p.Resources[0].Devices)
	}
	if s := res.Jobs[1].Stats; s.DeviceCount != 200 || s.SucceededCount != 200 {
		t.Errorf("method job stats %+v", s)
	}
	// Two job PUTs; polling GETs; one devices.jobs query (the method's non-2xx answers): no
	// failed-device reads when nothing failed.
	if c := res.HubCalls; c["job.create"] != 2 || c["job.get"] < 2 || c["query"] != 1 {
		t.Errorf("apply hub calls %v", c)
	}
	if n := h.Sim().Calls("nofloor-00007", "lockDoor"); n != 1 {
		t.Errorf("lockDoor reached nofloor-00007 %d times", n)
	}
	again, err := reconcile.MakePlan(ctx, c, cfg, reconcile.PlanOptions{Hub: c.HostName()})
	if err != nil {
		t.Fatal(err)
	}
	if again.HasTwinChanges() {
		t.Errorf("second plan still has twin changes: %+v", again.Resources[0])
	}
	// Applying the first plan again reattaches to its jobs (their ids derive from the plan):
	// nothing runs twice. (The CLI refuses such a stale plan before: its state serial moved.)
	again2, err := reconcile.Apply(ctx, p, c, nil)
	if err != nil || len(again2.Jobs) != 2 || !again2.Jobs[0].Reattached || !again2.Jobs[1].Reattached {
		t.Errorf("re-applying a plan: %v %+v", err, again2)
	}
	if n := h.Sim().Calls("nofloor-00007", "lockDoor"); n != 1 {
		t.Errorf("lockDoor reached nofloor-00007 %d times after the plan was applied again", n)
	}
}

// mixedFleetFile: door controllers whose managed keys hold every kind of drift the plan must
// select — 43 vs "43", "3" vs 3, true, an object where a scalar is wanted, a missing key,
// 1000000 vs 2500000, a value with a quote — and converged ones that must not be touched.
const mixedFleetFile = `
device "ok-1" {
  tags    = { site = "hq", owner = "O'Brien" }
  desired = { building = "43", floor = 3, limit = 2500000 }
}
device "ok-2" {
  tags    = { site = "hq", owner = "O'Brien" }
  desired = { building = "43", floor = 3, limit = 2500000, extra = "kept" }
}
device "number-building" {
  tags    = { site = "hq", owner = "O'Brien" }
  desired = { building = 43, floor = 3, limit = 2500000 }
}
device "string-floor" {
  tags    = { site = "hq", owner = "O'Brien" }
  desired = { building = "43", floor = "3", limit = 2500000 }
}
device "bool-floor" {
  tags    = { site = "hq", owner = "O'Brien" }
  desired = { building = "43", floor = true, limit = 2500000 }
}
device "no-building" {
  tags    = { site = "hq", owner = "O'Brien" }
  desired = { floor = 3, limit = 2500000 }
}
device "object-building" {
  tags    = { site = "hq", owner = "O'Brien" }
  desired = { building = { number = 43 }, floor = 3, limit = 2500000 }
}
device "missing-floor" {
  tags    = { site = "hq", owner = "O'Brien" }
  desired = { building = "43", limit = 2500000 }
}
device "small-limit" {
  tags    = { site = "hq", owner = "O'Brien" }
  desired = { building = "43", floor = 3, limit = 1000000 }
}
device "other-owner" {
  tags    = { site = "hq", owner = "OBrien" }
  desired = { building = "43", floor = 3, limit = 2500000 }
}
device "elsewhere" {
  tags    = { site = "branch" }
  desired = { building = 1 }
}
`

func mixedHubConfig(t *testing.T) *reconcile.Config {
	t.Helper()
	target, err := query.ParseCondition("tags.site = 'hq'")
	if err != nil {
		t.Fatal(err)
	}
	return &reconcile.Config{Twins: []reconcile.Twin{{Addr: "twin.mixed", Target: target,
		Desired: map[string]any{"building": "43", "floor": 3, "limit": 2500000},
		Tags:    map[string]any{"owner": "O'Brien"}}}}
}

// TestMixedTypesOverLocalHub plans and applies over the strict local hub a fleet with every
// kind of drift, through the real client: the job selects exactly the drifted devices, the
// converged ones are not written (their desired $version stays), and a second plan is clean.
// With -v it logs every query and job condition iotplan sent.
func TestMixedTypesOverLocalHub(t *testing.T) {
	t.Parallel()
	h, c, audit := hubtest.StartAudited(t, mixedFleetFile)
	ctx := context.Background()
	defer func() {
		for _, ev := range audit.Events() {
			t.Logf("%-5s %s", ev.Source, ev.Text)
		}
	}()
	drifted := []string{"bool-floor", "missing-floor", "no-building", "number-building", "object-building", "other-owner", "small-limit", "string-floor"}
	versions := map[string]float64{}
	for _, id := range []string{"ok-1", "ok-2"} {
		tw, err := c.GetTwin(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		versions[id] = tw["properties"].(map[string]any)["desired"].(map[string]any)["$version"].(float64)
	}
	p, err := reconcile.MakePlan(ctx, c, mixedHubConfig(t), reconcile.PlanOptions{Hub: c.HostName()})
	if err != nil {
		t.Fatal(err)
	}
	r := p.Resources[0]
	if r.Action != reconcile.Update || r.Refused != "" || r.TargetedDevices != 10 || r.Devices != len(drifted) || len(r.Jobs) != 1 {
		t.Fatalf("plan: %+v", r)
	}
	cond := r.Jobs[0].Request.QueryCondition
	t.Logf("job condition: %s", cond)
	res, err := reconcile.Apply(ctx, p, c, nil)
	if err != nil || !res.Success() {
		t.Fatalf("apply: %v %+v", err, res)
	}
	rows, err := c.DeviceJobs(ctx, res.Jobs[0].JobID, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, row := range rows {
		got = append(got, row.DeviceID)
	}
	sort.Strings(got)
	if !reflect.DeepEqual(got, drifted) {
		t.Errorf("the job updated %q\nwant %q", got, drifted)
	}
	for id, v := range versions {
		tw, err := c.GetTwin(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if now := tw["properties"].(map[string]any)["desired"].(map[string]any)["$version"].(float64); now != v {
			t.Errorf("converged %s was written: desired $version %v → %v", id, v, now)
		}
	}
	again, err := reconcile.MakePlan(ctx, c, mixedHubConfig(t), reconcile.PlanOptions{Hub: c.HostName()})
	if err != nil || again.HasChanges() {
		t.Fatalf("second plan: %v %+v", err, again.Resources)
	}
	if n := h.Sim().DeviceCount(); n != 11 {
		t.Errorf("%d devices", n)
	}
}

// sitesFleetFile: 20 sites of 50 devices each; on drifted sites every device has floor 2 and
// building "42" where the configuration wants 3 and "43".
func sitesFleetFile(drifted bool) string {
	floor, building := 3, `"43"`
	if drifted {
		floor, building = 2, `"42"`
	}
	return fmt.Sprintf(`
group "doors" {
  count   = 1000
  id      = "door-%%05d"
  tags    = { site = format("s%%d", index %% 20) }
  desired = { floor = %d, building = %s }
}
`, floor, building)
}

func sitesConfig(t *testing.T, resources, keys int) *reconcile.Config {
	t.Helper()
	cfg := &reconcile.Config{}
	for i := range resources {
		target, err := query.ParseCondition(fmt.Sprintf("tags.site = 's%d'", i))
		if err != nil {
			t.Fatal(err)
		}
		desired := map[string]any{"floor": 3}
		if keys == 2 {
			desired["building"] = "43"
		}
		cfg.Twins = append(cfg.Twins, reconcile.Twin{Addr: fmt.Sprintf("twin.site%d", i), Target: target, Desired: desired})
	}
	return cfg
}

// TestPlanHubCallsByConfigSize counts the queries of a plan for 1, 5 and 20 resources, with one
// and two managed keys, over a converged and a drifted fleet of 1,000 devices on the local hub,
// with S1's sample budget (the plan stays within one minute of an S1 hub's 20 queries when it
// can) and without a tier. BENCHMARKS.md records the table this logs (go test -v -run
// TestPlanHubCallsByConfigSize ./internal/reconcile).
func TestPlanHubCallsByConfigSize(t *testing.T) {
	t.Parallel()
	s1 := tier.Tier{Name: "S1", Units: 1}
	want := map[string]int{ // resources/keys/fleet/tier → queries
		"1/1/converged/S1": 1, "5/1/converged/S1": 5, "20/1/converged/S1": 20,
		"1/2/converged/S1": 2, "5/2/converged/S1": 10, "20/2/converged/S1": 40,
		// Drifted, with two or more resources: one more COUNT of their conditions ORed, the
		// devices the plan changes counted once.
		"1/1/drifted/S1": 3, "5/1/drifted/S1": 16, "20/1/drifted/S1": 41,
		"1/2/drifted/S1": 6, "5/2/drifted/S1": 21, "20/2/drifted/S1": 81,
		"1/1/drifted/none": 3, "5/1/drifted/none": 16, "20/1/drifted/none": 61,
		"1/2/drifted/none": 6, "5/2/drifted/none": 31, "20/2/drifted/none": 121,
	}
	for _, fleet := range []string{"converged", "drifted"} {
		_, c, _ := hubtest.StartAudited(t, sitesFleetFile(fleet == "drifted"))
		for _, keys := range []int{1, 2} {
			for _, n := range []int{1, 5, 20} {
				for _, tr := range []tier.Tier{s1, {}} {
					name := fmt.Sprintf("%d/%d/%s/%s", n, keys, fleet, map[bool]string{true: "S1", false: "none"}[tr.Known()])
					w, ok := want[name]
					if !ok {
						continue
					}
					p, err := reconcile.MakePlan(context.Background(), c, sitesConfig(t, n, keys), reconcile.PlanOptions{Hub: c.HostName(), Tier: tr})
					if err != nil {
						t.Fatal(err)
					}
					t.Logf("%-20s %3d queries, changes %v", name, p.HubCalls["query"], p.HasChanges())
					if p.HubCalls["query"] != w || p.HasChanges() != (fleet == "drifted") {
						t.Errorf("%s: %d queries (want %d), changes %v", name, p.HubCalls["query"], w, p.HasChanges())
					}
				}
			}
		}
	}
}

// slotHook records the jobs apply waited for.
type slotHook struct {
	reconcile.NopHook
	holders []string
}

func (h *slotHook) SlotWait(_ *reconcile.ResourceChange, holders []hubapi.JobResponse, limit int, _ time.Duration) {
	for _, j := range holders {
		h.holders = append(h.holders, fmt.Sprintf("%s %s %d", j.JobID, j.Status, limit))
	}
}

// TestApplyWaitsForAJobSlotOnTheHub: on an S1 hub (one job slot) a job scheduled by someone
// else for later holds the slot; apply waits, says which job holds it, and runs once the slot
// is free (here: the other job is cancelled) instead of failing with 429004.
func TestApplyWaitsForAJobSlotOnTheHub(t *testing.T) {
	t.Parallel()
	s1 := tier.Tier{Name: "S1", Units: 10} // one job slot; 10 units make the slot checks 5 s apart
	h, _, _ := hubtest.StartAuditedWith(t, hub.Options{Tier: "S1", Units: 10}, fleetFile(40))
	c := hubtest.Client(t, h, hubclient.WithTier(s1))
	other := hubtest.Client(t, h)
	ctx := context.Background()
	later := time.Now().Add(time.Hour)
	if _, err := other.CreateJob(ctx, hubapi.JobRequest{JobID: "nightly-reboot", Type: hubapi.JobTypeDeviceMethod, QueryCondition: "*",
		CloudToDeviceMethod: &hubapi.CloudToDeviceMethod{MethodName: "reboot", ResponseTimeoutInSeconds: 30}, StartTime: &later}); err != nil {
		t.Fatal(err)
	}
	cfg := doorsConfig(t)
	cfg.Methods = nil
	p, err := reconcile.MakePlan(ctx, c, cfg, reconcile.PlanOptions{Hub: c.HostName(), Tier: s1})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(2 * time.Second)
		other.CancelJob(ctx, "nightly-reboot")
	}()
	hook := &slotHook{}
	res, err := reconcile.Apply(ctx, p, c, hook)
	if err != nil || !res.Success() {
		t.Fatalf("apply: %v %+v", err, res)
	}
	if len(hook.holders) == 0 || !strings.HasPrefix(hook.holders[0], "nightly-reboot ") || !strings.HasSuffix(hook.holders[0], " 1") {
		t.Errorf("slot waits %q", hook.holders)
	}
	if st := h.Throttle().Stats()[tier.JobsOps]; st.Refused != 0 {
		t.Errorf("jobs operations refused: %+v", st)
	}
}

// runOnceFleet: 20 doors that answer lockDoor, 3 that answer 500, 2 offline.
const runOnceFleet = `
group "ok" {
  count = 20
  id    = "ok-%02d"
  tags  = { site = "hq" }
  method "lockDoor" {
    status = 200
  }
}
group "jammed" {
  count = 3
  id    = "jammed-%d"
  tags  = { site = "hq" }
  method "lockDoor" {
    status = 500
  }
}
group "away" {
  count   = 2
  id      = "away-%d"
  tags    = { site = "hq" }
  offline_fraction = 1
}
`

func runOnceConfig(t *testing.T, rev int) *reconcile.Config {
	t.Helper()
	target, _ := query.ParseCondition("tags.site = 'hq'")
	return &reconcile.Config{Methods: []reconcile.Method{{Addr: "method.lock", Target: target, Method: "lockDoor",
		ResponseTimeout: 5 * time.Second, Triggers: map[string]any{"rev": rev}, TriggersSet: true}}}
}

// memJournal keeps what apply records, as the state on the hub would.
type memJournal struct {
	rec     *state.ApplyRecord
	records []state.Resource
	begun   int
	done    int
}

func (j *memJournal) Begin(_ context.Context, rec *state.ApplyRecord) error {
	j.rec, j.begun = rec, j.begun+1
	return nil
}
func (j *memJournal) Finish(_ context.Context, rs []state.Resource) error {
	j.rec, j.records, j.done = nil, rs, j.done+1
	return nil
}

// TestRunOnceMethodOverLocalHub: a method with triggers runs once per device for each triggers
// value. Devices that failed (an error status, offline) lose their record and run again next
// time; the others do not; new triggers run it everywhere again; and a fleet where every device
// ran it plans no change.
func TestRunOnceMethodOverLocalHub(t *testing.T) {
	t.Parallel()
	h, c, _ := hubtest.StartAudited(t, runOnceFleet)
	ctx := context.Background()
	plan := func(rev int) *reconcile.Plan {
		p, err := reconcile.MakePlan(ctx, c, runOnceConfig(t, rev), reconcile.PlanOptions{Hub: c.HostName()})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	apply := func(p *reconcile.Plan) *reconcile.ApplyResult {
		j := &memJournal{}
		res, err := reconcile.Apply(ctx, p, c, nil, reconcile.WithJournal(j))
		if err != nil || j.done != 1 || j.rec != nil {
			t.Fatalf("apply: %v, journal %+v", err, j)
		}
		return res
	}
	calls := func() (ok, jammed int) {
		for i := range 20 {
			ok += h.Sim().Calls(fmt.Sprintf("ok-%02d", i), "lockDoor")
		}
		for i := range 3 {
			jammed += h.Sim().Calls(fmt.Sprintf("jammed-%d", i), "lockDoor")
		}
		return
	}

	p := plan(1)
	if r := p.Resources[0]; r.Action != reconcile.Invoke || r.Devices != 25 || len(r.Jobs) != 2 || r.Jobs[0].Step != reconcile.StepMark {
		t.Fatalf("first plan: %+v", r)
	}
	res := apply(p)
	if ok, jammed := calls(); ok != 20 || jammed != 3 || res.Unmarked != 5 {
		t.Fatalf("first apply: lockDoor on ok devices %d, jammed %d; unmarked %d", ok, jammed, res.Unmarked)
	}

	p = plan(1)
	r := p.Resources[0]
	if r.Devices != 5 || r.AlreadyRan != 20 || !strings.Contains(strings.Join(r.Notes, ";"), "20 of 25 targeted devices already ran") {
		t.Fatalf("second plan: %+v", r)
	}
	apply(p)
	if ok, jammed := calls(); ok != 20 || jammed != 6 {
		t.Fatalf("second apply: ok devices called %d times (want 20: they ran already), jammed %d", ok, jammed)
	}

	if p = plan(2); p.Resources[0].Devices != 25 {
		t.Fatalf("new triggers: %+v", p.Resources[0])
	}
	apply(p)
	if ok, _ := calls(); ok != 40 {
		t.Fatalf("new triggers: ok devices called %d times, want 40", ok)
	}

	// Only the devices that answer: once they ran, nothing is left to do.
	only, _ := query.ParseCondition("STARTSWITH(deviceId, 'ok-')")
	cfg := runOnceConfig(t, 2)
	cfg.Methods[0].Target = only
	p, err := reconcile.MakePlan(ctx, c, cfg, reconcile.PlanOptions{Hub: c.HostName()})
	if err != nil || p.HasChanges() {
		t.Fatalf("converged run-once method: %v %+v", err, p.Resources)
	}
}

// TestResumeReattaches: an apply interrupted after its method job was created (as Ctrl-C, a
// crash or kill -9 leave it) is resumed from the state's record: the recorded jobs are
// reattached to, the rest created, and no device runs the method twice.
func TestResumeReattaches(t *testing.T) {
	t.Parallel()
	h, c, _ := hubtest.StartAudited(t, runOnceFleet)
	ctx := context.Background()
	p, err := reconcile.MakePlan(ctx, c, runOnceConfig(t, 1), reconcile.PlanOptions{Hub: c.HostName()})
	if err != nil {
		t.Fatal(err)
	}
	j := &memJournal{}
	stop, cancel := context.WithCancel(ctx)
	hook := &cancelOnCreate{match: func(j reconcile.PlannedJob) bool { return j.Step == reconcile.StepInvoke }, cancel: cancel}
	if _, err := reconcile.Apply(stop, p, c, hook, reconcile.WithJournal(j)); err == nil || j.rec == nil || j.done != 0 {
		t.Fatalf("interrupted apply: %v, journal %+v", err, j)
	}
	res, err := reconcile.Resume(ctx, j.rec, c, nil, reconcile.WithJournal(j))
	if err != nil || j.done != 1 {
		t.Fatalf("resume: %v, journal %+v", err, j)
	}
	reattached := 0
	for _, jr := range res.Jobs {
		if jr.Reattached {
			reattached++
		}
	}
	if reattached != 2 { // mark and invoke existed; unmark is new
		t.Errorf("%d jobs reattached: %+v", reattached, res.Jobs)
	}
	for i := range 20 {
		if n := h.Sim().Calls(fmt.Sprintf("ok-%02d", i), "lockDoor"); n != 1 {
			t.Errorf("ok-%02d ran lockDoor %d times", i, n)
		}
	}
	if len(j.records) != 1 || j.records[0].RunTag == "" {
		t.Errorf("records %+v", j.records)
	}
}

// cancelOnCreate cancels the apply's context once a planned job that match selects is
// created.
type cancelOnCreate struct {
	reconcile.NopHook
	match  func(reconcile.PlannedJob) bool
	cancel context.CancelFunc
}

func (h *cancelOnCreate) JobCreated(rc *reconcile.ResourceChange, job hubapi.JobResponse) {
	for _, j := range rc.Jobs {
		if j.Request.JobID == job.JobID && h.match(j) {
			h.cancel()
		}
	}
}
