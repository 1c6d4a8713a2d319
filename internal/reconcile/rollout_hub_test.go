package reconcile_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/iotplan/iotplan/internal/hub/hubtest"
	"github.com/iotplan/iotplan/internal/query"
	"github.com/iotplan/iotplan/internal/reconcile"
	"github.com/iotplan/iotplan/internal/state"
	"github.com/iotplan/iotplan/schema"
)

func waves(texts ...string) []schema.Wave {
	var out []schema.Wave
	for _, s := range texts {
		var w schema.Wave
		w.Text = s
		if n, ok := strings.CutSuffix(s, "%"); ok {
			fmt.Sscan(n, &w.Percent)
		} else {
			fmt.Sscan(s, &w.Count)
		}
		out = append(out, w)
	}
	return out
}

func mustTarget(t *testing.T, s string) query.Expr {
	t.Helper()
	e, err := query.ParseCondition(s)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// waveDevices lists the devices each planned wave covers.
func waveDevices(r reconcile.ResourceChange) []int {
	var out []int
	for _, w := range r.Rollout.Waves {
		out = append(out, w.Devices)
	}
	return out
}

// TestRolloutWavesOverLocalHub: a twin change over 1,000 drifted devices (and 200 converged
// ones) in three waves: the waves hold 1%, 9% and 90% of the drifted devices (the first
// exactly, the others within 2%), each is one job over its slice, the slicing costs a bounded
// number of queries, and applying them reaches every drifted device exactly once.
func TestRolloutWavesOverLocalHub(t *testing.T) {
	t.Parallel()
	fleet := `
group "doors" {
  count   = 1000
  id      = format("door-%05d", index * 7)
  tags    = { site = "hq" }
  desired = { floor = 1 }
}
group "done" {
  count   = 200
  id      = format("done-%04d", index)
  tags    = { site = "hq" }
  desired = { floor = 3 }
}`
	_, c, _ := hubtest.StartAudited(t, fleet)
	ctx := context.Background()
	cfg := &reconcile.Config{Twins: []reconcile.Twin{{Addr: "twin.floor", Target: mustTarget(t, "tags.site = 'hq'"),
		Desired: map[string]any{"floor": 3}, Rollout: &schema.Rollout{Waves: waves("1%", "10%", "100%"), MaxFailureRatio: 0.05, MaxFailures: -1}}}}
	p, err := reconcile.MakePlan(ctx, c, cfg, reconcile.PlanOptions{Hub: c.HostName()})
	if err != nil {
		t.Fatal(err)
	}
	r := p.Resources[0]
	got := waveDevices(r)
	if len(got) != 3 || got[0] != 10 || got[1] < 88 || got[1] > 92 || got[0]+got[1]+got[2] != 1000 || r.Devices != 1000 {
		t.Fatalf("waves %v (devices %d)", got, r.Devices)
	}
	if len(r.Jobs) != 3 || r.Jobs[0].Wave != 1 || r.Jobs[2].Wave != 3 || !strings.Contains(r.Jobs[1].Request.QueryCondition, "deviceId >= ") {
		t.Fatalf("jobs %+v", r.Jobs)
	}
	if r.Rollout.Queries > 1+2*12 {
		t.Errorf("slicing used %d queries", r.Rollout.Queries)
	}
	t.Logf("slicing: %d queries, waves %v", r.Rollout.Queries, got)

	res, err := reconcile.Apply(ctx, p, c, nil)
	if err != nil || !res.Success() {
		t.Fatalf("apply: %v %+v", err, res)
	}
	succeeded := 0
	for _, j := range res.Jobs {
		succeeded += j.Stats.SucceededCount
	}
	if succeeded != 1000 {
		t.Errorf("the waves' jobs updated %d devices, want 1000", succeeded)
	}
	if p, err = reconcile.MakePlan(ctx, c, cfg, reconcile.PlanOptions{Hub: c.HostName()}); err != nil || p.HasChanges() {
		t.Fatalf("after the rollout: %v %+v", err, p.Resources)
	}
}

// TestRolloutAbortsAndResumes: a run-once method rolled out in waves of 10%, 50% and 100%
// stops after wave 2, where 30 of 80 devices fail (more than max_failure_ratio 0.1): wave 3
// never starts and the state records the progress. With the ratio raised to 1 (the failing devices are known), the next plan
// resumes at wave 2 with the same bounds — wave 1 is shown done and not run again, wave 2
// retries its failures — and completes.
func TestRolloutAbortsAndResumes(t *testing.T) {
	t.Parallel()
	h, c, _ := hubtest.StartAudited(t, hubtest.RolloutFleet)
	ctx := context.Background()
	cfg := func(ratio float64) *reconcile.Config {
		return &reconcile.Config{Methods: []reconcile.Method{{Addr: "method.lock", Target: mustTarget(t, "tags.site = 'hq'"), Method: "lockDoor",
			ResponseTimeout: 10 * time.Second, Triggers: map[string]any{"rev": 1.0}, TriggersSet: true,
			Rollout: &schema.Rollout{Waves: waves("10%", "50%", "100%"), MaxFailureRatio: ratio, MaxFailures: -1}}}}
	}
	calls := func(group string, n int) int {
		total := 0
		for i := range n {
			total += h.Sim().Calls(fmt.Sprintf("%s-%03d", group, i), "lockDoor")
		}
		return total
	}
	prior := &state.State{Format: state.Format, Name: state.DefaultName, Lineage: "l", Serial: 1}
	p, err := reconcile.MakePlan(ctx, c, cfg(0.1), reconcile.PlanOptions{Hub: c.HostName(), Prior: prior})
	if err != nil {
		t.Fatal(err)
	}
	if got := waveDevices(p.Resources[0]); fmt.Sprint(got) != "[20 80 100]" {
		t.Fatalf("waves %v", got)
	}
	j := &memJournal{}
	res, err := reconcile.Apply(ctx, p, c, nil, reconcile.WithJournal(j))
	if err != nil {
		t.Fatal(err)
	}
	if res.Success() || res.Aborted == nil || res.Aborted.Wave != 2 || !strings.Contains(res.Aborted.Reason, "30 of 80 devices failed in wave 2") {
		t.Fatalf("abort: %+v", res.Aborted)
	}
	if a, b, cc := calls("a", 20), calls("b", 30), calls("c", 150); a != 20 || b != 30 || cc != 50 {
		t.Fatalf("lockDoor calls after the abort: a %d, b %d, c %d (want 20, 30, 50: wave 3 never starts)", a, b, cc)
	}
	rec := j.records[0].Rollout
	if j.done != 1 || rec == nil || rec.Completed != 1 || len(rec.Bounds) != 2 {
		t.Fatalf("recorded rollout %+v", rec)
	}

	prior = &state.State{Format: state.Format, Name: state.DefaultName, Lineage: "l", Serial: 2, Resources: j.records}
	p, err = reconcile.MakePlan(ctx, c, cfg(1), reconcile.PlanOptions{Hub: c.HostName(), Prior: prior})
	if err != nil {
		t.Fatal(err)
	}
	r := p.Resources[0]
	if !r.Rollout.Waves[0].Done || r.Rollout.Resumed != 1 || fmt.Sprint(waveDevices(r)) != "[0 30 100]" {
		t.Fatalf("resumed plan: %+v", r.Rollout)
	}
	if _, err := reconcile.Apply(ctx, p, c, nil, reconcile.WithJournal(j)); err != nil {
		t.Fatal(err)
	}
	if a, b, cc := calls("a", 20), calls("b", 30), calls("c", 150); a != 20 || b != 60 || cc != 150 {
		t.Fatalf("lockDoor calls after the resumed rollout: a %d, b %d, c %d (want 20, 60, 150)", a, b, cc)
	}
	if j.records[0].Rollout != nil {
		t.Errorf("a completed rollout is still recorded: %+v", j.records[0].Rollout)
	}
}

// waveRecorder records a rollout's progress.
type waveRecorder struct {
	reconcile.NopHook
	polls  []reconcile.ConvergeProgress
	waves  []reconcile.WaveResult
	pauses int
}

func (w *waveRecorder) ConvergeProgress(_ *reconcile.ResourceChange, p reconcile.ConvergeProgress) {
	w.polls = append(w.polls, p)
}
func (w *waveRecorder) WaveDone(_ *reconcile.ResourceChange, r reconcile.WaveResult) {
	w.waves = append(w.waves, r)
}
func (w *waveRecorder) Pausing(*reconcile.ResourceChange, int, time.Duration) { w.pauses++ }

// convergeFleet: 40 devices that echo desired properties into reported ones, 5 that never
// connect (their ids sort last, so the first wave holds echoing devices only).
const convergeFleet = `
group "ok" {
  count               = 40
  id                  = format("ok-%03d", index)
  tags                = { site = "hq" }
  desired             = { floor = 1 }
  reported            = { floor = 1 }
  reported_echo_delay = "100ms"
}
group "off" {
  count            = 5
  id               = format("zz-off-%d", index)
  tags             = { site = "hq" }
  desired          = { floor = 1 }
  reported         = { floor = 1 }
  offline_fraction = 1
}`

// TestConvergeOverLocalHub: after each wave apply waits until devices report the desired
// values: with min_ratio 0.8 the 40 echoing devices suffice; with min_ratio 1 the 5 offline
// ones never report, the wait times out, and the rollout stops with them as samples and
// counted as not reporting.
func TestConvergeOverLocalHub(t *testing.T) {
	t.Parallel()
	_, c, _ := hubtest.StartAudited(t, convergeFleet)
	ctx := context.Background()
	cfg := func(floor int, ratio float64) *reconcile.Config {
		return &reconcile.Config{Twins: []reconcile.Twin{{Addr: "twin.floor", Target: mustTarget(t, "tags.site = 'hq'"),
			Desired:  map[string]any{"floor": floor},
			Rollout:  &schema.Rollout{Waves: waves("50%", "100%"), MaxFailureRatio: -1, MaxFailures: -1, Pause: time.Second},
			Converge: &schema.Converge{Timeout: 4 * time.Second, MinRatio: ratio}}}}
	}
	run := func(floor int, ratio float64) (*reconcile.ApplyResult, *waveRecorder) {
		p, err := reconcile.MakePlan(ctx, c, cfg(floor, ratio), reconcile.PlanOptions{Hub: c.HostName()})
		if err != nil {
			t.Fatal(err)
		}
		if cp := p.Resources[0].Converge; cp == nil || !strings.Contains(cp.Converged, "properties.reported.floor = ") {
			t.Fatalf("converge plan %+v", cp)
		}
		rec := &waveRecorder{}
		res, err := reconcile.Apply(ctx, p, c, rec)
		if err != nil {
			t.Fatal(err)
		}
		return res, rec
	}

	res, rec := run(2, 0.8)
	if res.Aborted != nil || len(rec.waves) != 2 || rec.pauses != 1 {
		t.Fatalf("min_ratio 0.8: aborted %+v, waves %+v, pauses %d", res.Aborted, rec.waves, rec.pauses)
	}
	last := rec.waves[1].Converge
	if last == nil || !last.Met || last.Targeted != 45 || last.Converged != 40 || last.NotReporting != 5 {
		t.Fatalf("last wave's convergence: %+v", last)
	}

	res, rec = run(3, 1)
	if res.Aborted == nil || !strings.Contains(res.Aborted.Reason, "did not report the desired values") {
		t.Fatalf("min_ratio 1: aborted %+v", res.Aborted)
	}
	p := rec.polls[len(rec.polls)-1]
	if !p.Done || p.Met || p.NotReporting == 0 || len(p.Samples) == 0 || !strings.HasPrefix(p.Samples[0].DeviceID, "zz-off-") || !p.Samples[0].Disconnected {
		t.Fatalf("timed-out poll: %+v", p)
	}
}

// TestResumeStopsAtAnUnjudgedWave: an apply interrupted while wave 2's job ran is resumed
// from the state's record: the job of wave 2 is reattached to, but wave 3 is not created —
// the resumed apply cannot judge wave 2 (it has no plan) — and the record says the rollout
// resumes at wave 2. The next plan does so with the recorded bounds.
func TestResumeStopsAtAnUnjudgedWave(t *testing.T) {
	t.Parallel()
	h, c, _ := hubtest.StartAudited(t, hubtest.RolloutFleet)
	ctx := context.Background()
	cfg := &reconcile.Config{Methods: []reconcile.Method{{Addr: "method.lock", Target: mustTarget(t, "tags.site = 'hq'"), Method: "lockDoor",
		ResponseTimeout: 10 * time.Second, Triggers: map[string]any{"rev": 2.0}, TriggersSet: true,
		Rollout: &schema.Rollout{Waves: waves("10%", "50%", "100%"), MaxFailureRatio: 1, MaxFailures: -1}}}}
	prior := &state.State{Format: state.Format, Name: state.DefaultName, Lineage: "l", Serial: 1}
	p, err := reconcile.MakePlan(ctx, c, cfg, reconcile.PlanOptions{Hub: c.HostName(), Prior: prior})
	if err != nil {
		t.Fatal(err)
	}
	j := &memJournal{}
	stop, cancel := context.WithCancel(ctx)
	if _, err := reconcile.Apply(stop, p, c, &cancelOnCreate{match: func(j reconcile.PlannedJob) bool { return j.Wave == 2 }, cancel: cancel}, reconcile.WithJournal(j)); err == nil || j.rec == nil {
		t.Fatalf("interrupted apply: %v", err)
	}
	res, err := reconcile.Resume(ctx, j.rec, c, nil, reconcile.WithJournal(j))
	if err != nil || j.done != 1 || res.Aborted == nil || res.Aborted.Wave != 2 {
		t.Fatalf("resume: %v, aborted %+v, journal %+v", err, res.Aborted, j)
	}
	calls := 0
	for i := range 150 {
		calls += h.Sim().Calls(fmt.Sprintf("c-%03d", i), "lockDoor")
	}
	if calls > 50 {
		t.Errorf("wave 3 ran: lockDoor on %d c- devices (wave 2 holds 50)", calls)
	}
	rec := j.records[0].Rollout
	if rec == nil || rec.Completed != 1 || len(rec.Bounds) != 2 {
		t.Fatalf("recorded rollout %+v", rec)
	}
	prior = &state.State{Format: state.Format, Name: state.DefaultName, Lineage: "l", Serial: 2, Resources: j.records}
	p, err = reconcile.MakePlan(ctx, c, cfg, reconcile.PlanOptions{Hub: c.HostName(), Prior: prior})
	if err != nil {
		t.Fatal(err)
	}
	if ro := p.Resources[0].Rollout; ro == nil || ro.Resumed != 1 || !ro.Waves[0].Done || ro.Waves[1].Upper != rec.Bounds[1] {
		t.Fatalf("the next plan does not resume at wave 2: %+v", ro)
	}
}
