package reconcile

import (
	"context"
	"fmt"
	"time"

	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/query"
	"github.com/iotplan/iotplan/internal/state"
	"github.com/iotplan/iotplan/schema"
)

// RolloutPlan is a resource's rollout in a plan: its waves, each one job per job of the
// resource (rollout.go), and the rule that stops it.
type RolloutPlan struct {
	Key   string        `json:"key"`
	Waves []PlannedWave `json:"waves"`
	// MaxFailureRatio (failed ÷ attempted devices of a wave) and MaxFailures (failed devices
	// of a wave) abort the rollout when exceeded; nil = not set.
	MaxFailureRatio *float64 `json:"max_failure_ratio,omitempty"`
	MaxFailures     *int     `json:"max_failures,omitempty"`
	PauseSeconds    int64    `json:"pause_seconds,omitempty"`
	// Resumed counts the waves an earlier apply completed (shown, not run again).
	Resumed int `json:"resumed,omitempty"`
	// Queries is what slicing cost on the hub.
	Queries int `json:"queries"`
}

// PlannedWave is one wave: the devices in [Lower, Upper) of the resource's slicing condition
// ("" = unbounded), Devices of them counted by the plan.
type PlannedWave struct {
	Number  int    `json:"number"` // 1-based, in declaration order
	Wave    string `json:"wave"`   // as declared: "10%"
	Devices int    `json:"devices"`
	Lower   string `json:"lower,omitempty"`
	Upper   string `json:"upper,omitempty"`
	Done    bool   `json:"done,omitempty"` // completed by an earlier apply
}

// Slice is the wave's deviceId range as a condition (query.All() when unbounded).
func (w PlannedWave) Slice() query.Expr { return slice(w.Lower, w.Upper) }

// Bounds are the rollout's exclusive upper bounds, one per wave but the last.
func (r *RolloutPlan) Bounds() []string {
	var out []string
	for _, w := range r.Waves[:max(0, len(r.Waves)-1)] {
		out = append(out, w.Upper)
	}
	return out
}

// Wave returns wave number n.
func (r *RolloutPlan) Wave(n int) *PlannedWave {
	for i := range r.Waves {
		if r.Waves[i].Number == n {
			return &r.Waves[i]
		}
	}
	return nil
}

func slice(lower, upper string) query.Expr {
	id := query.P("deviceId")
	var terms []query.Expr
	if lower != "" {
		terms = append(terms, query.Ge(id, lower))
	}
	if upper != "" {
		terms = append(terms, query.Lt(id, upper))
	}
	if len(terms) == 0 {
		return query.All()
	}
	return query.And(terms...)
}

// rolloutPlan is the plan of an observed rollout.
func rolloutPlan(r *schema.Rollout, ro *RolloutObserved) *RolloutPlan {
	rp := &RolloutPlan{Key: ro.Key, Resumed: ro.Resumed, Queries: ro.Queries, PauseSeconds: int64(r.Pause.Seconds())}
	if r.MaxFailureRatio >= 0 {
		v := r.MaxFailureRatio
		rp.MaxFailureRatio = &v
	}
	if r.MaxFailures >= 0 {
		v := r.MaxFailures
		rp.MaxFailures = &v
	}
	lower := ""
	for i, w := range ro.Waves {
		pw := PlannedWave{Number: i + 1, Wave: w.Wave, Upper: w.Upper, Done: w.Done}
		if !w.Done {
			pw.Lower, pw.Devices = lower, w.Cumulative-w.Below
			if i == ro.Resumed && ro.Retry {
				pw.Lower = ""
			}
		}
		rp.Waves = append(rp.Waves, pw)
		lower = w.Upper
	}
	return rp
}

// waveJobs replaces rc's jobs by one copy per wave that has devices, each scoped to the
// wave's slice and sized for the wave's devices with add (addJob); removal jobs run first,
// outside the waves. rc.Devices becomes the devices of the waves to run.
func waveJobs(rc *ResourceChange, rp *RolloutPlan, add func(PlannedJob) error) error {
	var waved []PlannedJob
	var conds []query.Expr // each waved job's condition, parsed once
	jobs := rc.Jobs
	rc.Jobs, rc.Rollout, rc.Devices = nil, rp, 0
	for _, j := range jobs {
		if j.Step == StepRemove {
			rc.Jobs = append(rc.Jobs, j)
			continue
		}
		cond, err := query.ParseCondition(j.Request.QueryCondition)
		if err != nil {
			return fmt.Errorf("%s: %w", rc.Addr, err)
		}
		waved, conds = append(waved, j), append(conds, cond)
	}
	for _, w := range rp.Waves {
		if w.Done || w.Devices == 0 {
			continue
		}
		rc.Devices += w.Devices
		for i, j := range waved {
			nj := j
			nj.Request.QueryCondition = query.Format(query.And(conds[i], w.Slice()))
			nj.Request.JobID, nj.Wave, nj.Devices = "", w.Number, w.Devices
			if err := add(nj); err != nil {
				return err
			}
		}
	}
	return nil
}

// WaveHook receives a rollout's progress, when the apply's Hook implements it.
type WaveHook interface {
	// ConvergeProgress: one poll of a wave's convergence (Done on the last).
	ConvergeProgress(rc *ResourceChange, p ConvergeProgress)
	// WaveDone: a wave's jobs ended and it was judged (Aborted says why the rollout stops).
	WaveDone(rc *ResourceChange, w WaveResult)
	// Pausing: apply waits d before wave next.
	Pausing(rc *ResourceChange, next int, d time.Duration)
}

// WaveResult is the outcome of one wave (Wave 0: the resource's jobs without a rollout,
// judged for convergence only).
type WaveResult struct {
	Wave int
	// Attempted counts the wave's devices the hub ran the job on (succeeded + failed); Failed
	// those that failed, a method answered outside 200–299 included.
	Attempted, Failed int
	Converge          *ConvergeProgress
	Aborted           string // why the rollout stops after this wave; "" = it goes on
}

// RolloutAbort is the wave that stopped an apply.
type RolloutAbort struct {
	Addr   string
	Wave   int
	Reason string
}

// waveEnds reports whether job j of rc is the last of a wave that must be judged: the wave
// changes after it, or it is rc's last job, for a resource with a rollout (waves ≥ 1) or a
// converge plan.
func waveEnds(rc *ResourceChange, j int) bool {
	w := rc.Jobs[j].Wave
	if rc.Rollout == nil && rc.Converge == nil || rc.Rollout != nil && w == 0 {
		return false
	}
	return j == len(rc.Jobs)-1 || rc.Jobs[j+1].Wave != w
}

// endWave judges wave w of rc from the results of its jobs: the abort rule, then convergence,
// then the pause before the next wave. A wave that stops the rollout sets res.Aborted.
func endWave(ctx context.Context, rc *ResourceChange, w int, runner JobRunner, cfg applyConfig, res *ApplyResult, jobs []JobResult) error {
	wr := WaveResult{Wave: w}
	for _, jr := range jobs {
		if jr.Wave != w || jr.Step == StepMark {
			continue
		}
		if jr.Scheduled {
			return nil // runs later: judged by the apply that resumes it
		}
		wr.Attempted += jr.Stats.SucceededCount + jr.Stats.FailedCount
		wr.Failed += jr.Stats.FailedCount + len(jr.MethodErrors)
	}
	wr.Aborted = abortReason(rc.Rollout, wr)
	if wr.Aborted == "" && rc.Converge != nil {
		q, ok := runner.(Querier)
		if !ok {
			return ErrNoQueries
		}
		upper := ""
		if pw := rolloutWave(rc, w); pw != nil {
			upper = pw.Upper
		}
		p, err := waitConverged(ctx, rc, w, upper, q, cfg)
		if err != nil {
			return err
		}
		wr.Converge = &p
		if !p.Met {
			wr.Aborted = fmt.Sprintf("%s: %d of %d targeted devices (%d of the others not reporting) within %s; min_ratio %g needs %d",
				ErrNotConverged, p.Converged, p.Targeted, p.NotReporting, time.Duration(rc.Converge.TimeoutSeconds)*time.Second, rc.Converge.MinRatio, rc.Converge.Needed(p.Targeted))
		}
	}
	if wh, ok := cfg.hook.(WaveHook); ok {
		wh.WaveDone(rc, wr)
	}
	if wr.Aborted != "" {
		res.Aborted = &RolloutAbort{Addr: rc.Addr, Wave: w, Reason: wr.Aborted}
		return nil
	}
	return pauseBefore(ctx, rc, w, cfg)
}

// abortReason applies the rollout's abort rule to a wave; "" = it goes on.
func abortReason(rp *RolloutPlan, wr WaveResult) string {
	if rp == nil || wr.Attempted == 0 {
		return ""
	}
	ratio := float64(wr.Failed) / float64(wr.Attempted)
	switch {
	case rp.MaxFailureRatio != nil && ratio > *rp.MaxFailureRatio:
		return fmt.Sprintf("%d of %d devices failed in wave %d (%.1f%%), more than max_failure_ratio %g", wr.Failed, wr.Attempted, wr.Wave, 100*ratio, *rp.MaxFailureRatio)
	case rp.MaxFailures != nil && wr.Failed > *rp.MaxFailures:
		return fmt.Sprintf("%d of %d devices failed in wave %d, more than max_failures %d", wr.Failed, wr.Attempted, wr.Wave, *rp.MaxFailures)
	}
	return ""
}

// pauseBefore waits the rollout's pause when another wave of rc follows w.
func pauseBefore(ctx context.Context, rc *ResourceChange, w int, cfg applyConfig) error {
	if rc.Rollout == nil || rc.Rollout.PauseSeconds <= 0 {
		return nil
	}
	for _, j := range rc.Jobs {
		if j.Wave > w {
			d := time.Duration(rc.Rollout.PauseSeconds) * time.Second
			if wh, ok := cfg.hook.(WaveHook); ok {
				wh.Pausing(rc, j.Wave, d)
			}
			return cfg.sleep(ctx, d)
		}
	}
	return nil
}

// rolloutWave is wave w of rc's rollout, nil without one.
func rolloutWave(rc *ResourceChange, w int) *PlannedWave {
	if rc.Rollout == nil {
		return nil
	}
	return rc.Rollout.Wave(w)
}

// unjudgedWave stops a resumed apply (which has the recorded jobs but not the plan's abort
// rule, convergence or pause) before it would create the first job of a wave: that wave's
// predecessor ended without being judged. The jobs of a wave that exist on the hub were
// created after their predecessor was judged, so they are reattached to. The next plan
// resumes the rollout at the unjudged wave.
func unjudgedWave(ctx context.Context, rc *ResourceChange, j int, runner JobRunner, res *ApplyResult) (bool, error) {
	w := rc.Jobs[j].Wave
	if rc.Rollout != nil || w <= 1 || (j > 0 && rc.Jobs[j-1].Wave == w) {
		return false, nil
	}
	_, err := runner.GetJob(ctx, rc.Jobs[j].Request.JobID)
	if hubapi.CodeOf(err) != hubapi.CodeJobNotFound {
		return false, err
	}
	res.Aborted = &RolloutAbort{Addr: rc.Addr, Wave: w - 1,
		Reason: "the interrupted apply did not judge this wave (its failures, convergence and pause); the next plan resumes the rollout here"}
	return true, nil
}

// clearRollout forgets the rollout record of a resource whose waves all ran.
func clearRollout(records []state.Resource, addr string) {
	for i := range records {
		if records[i].Addr == addr {
			records[i].Rollout = nil
		}
	}
}

// recordAbort records in rc's state record how far its rollout got, so that the next plan
// of the same change resumes it at the failed wave with the same bounds.
func recordAbort(records []state.Resource, rc *ResourceChange, a *RolloutAbort) {
	for i := range records {
		r := &records[i]
		switch {
		case r.Addr != rc.Addr:
		case rc.Rollout != nil:
			r.Rollout = &state.RolloutRecord{Key: rc.Rollout.Key, Bounds: rc.Rollout.Bounds(), Completed: a.Wave - 1, Aborted: a.Reason}
		case r.Rollout != nil: // a resumed apply: the record of the plan it came from
			r.Rollout.Completed, r.Rollout.Aborted = max(r.Rollout.Completed, a.Wave-1), a.Reason
		}
	}
}

// twinWaves splits a twin resource's update jobs into its rollout's waves and plans its
// convergence wait.
func twinWaves(rc *ResourceChange, t Twin, pt *preparedTwin, o *TwinObserved, p *Plan, opts PlanOptions) error {
	if rc.Action != Update || rc.Refused != "" || len(rc.Jobs) == 0 {
		return nil
	}
	if t.Converge != nil {
		cp, why := convergePlan(t.Converge, scope(t.Target), pt.leaves)
		if why != "" {
			return fmt.Errorf("%s: %s", t.Addr, why)
		}
		rc.Converge = cp
	}
	if o.Rollout == nil {
		return nil
	}
	return waveJobs(rc, rolloutPlan(t.Rollout, o.Rollout), func(pj PlannedJob) error {
		return addJob(rc, pj, t.Addr, t.MaxExecution, 0, p, opts)
	})
}
