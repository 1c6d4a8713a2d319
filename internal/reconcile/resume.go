package reconcile

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/query"
	"github.com/iotplan/iotplan/internal/state"
	"github.com/iotplan/iotplan/internal/tier"
	"github.com/iotplan/iotplan/schema"
)

// Record is the plan as the state records an apply of it: every job in order, and what the
// state holds once they have run — the plan's records, except that a refused resource keeps
// the record it had (or none), so the next plan shows it again.
func (p *Plan) Record(now time.Time) *state.ApplyRecord {
	op := "apply"
	if p.Destroy {
		op = "destroy"
	}
	rec := &state.ApplyRecord{ID: p.ApplyID, Started: now.UTC(), PlanSerial: p.StateSerial, Operation: op}
	refused := map[string]bool{}
	rollouts := map[string]*RolloutPlan{}
	for _, r := range p.Resources {
		if r.Refused != "" {
			refused[r.Addr] = true
			continue
		}
		if r.Rollout != nil && len(r.Jobs) > 0 {
			rollouts[r.Addr] = r.Rollout
		}
		for _, j := range r.Jobs {
			rec.Jobs = append(rec.Jobs, state.RecordedJob{Addr: r.Addr, Step: j.Step, Request: j.Request, Wave: j.Wave})
		}
	}
	for _, r := range p.Records {
		if refused[r.Addr] {
			continue
		}
		// A rollout under way is recorded as not yet past its resumed waves: an apply that
		// stops (abort, interruption) leaves the next plan a record to resume from; one that
		// completes clears it (execute).
		if rp := rollouts[r.Addr]; rp != nil {
			r.Rollout = &state.RolloutRecord{Key: rp.Key, Bounds: rp.Bounds(), Completed: rp.Resumed}
		}
		rec.Resources = append(rec.Resources, r)
	}
	for _, r := range p.Kept {
		if refused[r.Addr] {
			rec.Resources = append(rec.Resources, r)
		}
	}
	sort.SliceStable(rec.Resources, func(i, j int) bool { return rec.Resources[i].Addr < rec.Resources[j].Addr })
	return rec
}

// Resume finishes an apply the state records as unfinished: it runs the recorded jobs in
// order, reattaching to each one that exists (running, scheduled or done) and creating the
// others, with the same ids — so no device runs a job twice for one apply — then tells the
// journal the apply is done.
func Resume(ctx context.Context, rec *state.ApplyRecord, runner JobRunner, hook Hook, opts ...ApplyOption) (*ApplyResult, error) {
	cfg := newApplyConfig(tier.Tier{}, hook, opts) // WithTier gives the hub's tier
	cfg.applyID = rec.ID
	res := &ApplyResult{}
	since := meter(runner)
	defer func() { res.HubCalls, res.HubWait = since() }()
	units := recordUnits(rec)
	return res, execute(ctx, units, runner, cfg, res, rec.Resources)
}

// recordUnits groups a record's jobs by resource, as Apply runs a plan's.
func recordUnits(rec *state.ApplyRecord) []*ResourceChange {
	runTags := map[string]string{}
	for _, r := range rec.Resources {
		runTags[r.Addr] = r.RunTag
	}
	var units []*ResourceChange
	for _, j := range rec.Jobs {
		if len(units) == 0 || units[len(units)-1].Addr != j.Addr {
			kind, action := KindTwin, Update
			if schema.KindOf(j.Addr) == KindMethod {
				kind, action = KindMethod, Invoke
			}
			units = append(units, &ResourceChange{Addr: j.Addr, Kind: kind, Action: action, RunTag: runTags[j.Addr]})
		}
		u := units[len(units)-1]
		u.Jobs = append(u.Jobs, PlannedJob{Step: j.Step, Request: j.Request, Wave: j.Wave})
	}
	return units
}

// unmarkFailed is the last step of a run-once method (methods.go): the devices whose run
// failed lose the record of it, so the next apply runs them again. The jobs' ids derive from
// the apply and the devices, so a resumed apply reattaches to them.
func unmarkFailed(ctx context.Context, rc *ResourceChange, invoke *JobResult, runner JobRunner, cfg applyConfig, res *ApplyResult) error {
	failed, all, err := failedDevices(ctx, invoke, runner)
	if err != nil {
		return fmt.Errorf("%s: reading the devices whose run failed: %w", rc.Addr, err)
	}
	if len(failed) == 0 && !all {
		return nil
	}
	conds := unmarkConditions(rc.RunTag, cfg.applyID, failed, all)
	res.Unmarked, res.UnmarkedAll = res.Unmarked+len(failed), res.UnmarkedAll || all
	for i, c := range conds {
		pj := PlannedJob{Step: StepUnmark, Request: hubapi.JobRequest{Type: hubapi.JobTypeUpdateTwin,
			QueryCondition: query.Format(c), UpdateTwin: unmarkPatch(rc.RunTag)}}
		pj.Request.JobID = stepJobID(rc.Addr, cfg.applyID, i, &pj.Request)
		jr, err := runJob(ctx, rc, &pj, runner, cfg)
		if jr != nil {
			res.Jobs = append(res.Jobs, *jr)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// failedDevices lists the devices of a finished method job that did not run it successfully:
// failed rows and answers outside 200–299. all is true when there are more than unmarkBound
// (or the job itself failed): then every device of the run is to be unmarked.
func failedDevices(ctx context.Context, jr *JobResult, runner JobRunner) (ids []string, all bool, err error) {
	if jr.Status != hubapi.JobStatusCompleted || jr.Stats.FailedCount > unmarkBound {
		return nil, true, nil
	}
	rows, err := runner.DeviceJobs(ctx, jr.JobID, hubapi.DeviceJobFailed, unmarkBound+1)
	if err != nil {
		return nil, false, err
	}
	errs, err := runner.MethodErrors(ctx, jr.JobID, unmarkBound+1)
	if err != nil {
		return nil, false, err
	}
	seen := map[string]bool{}
	for _, r := range append(rows, errs...) {
		if !seen[r.DeviceID] {
			seen[r.DeviceID] = true
			ids = append(ids, r.DeviceID)
		}
	}
	if len(ids) > unmarkBound {
		return nil, true, nil
	}
	sort.Strings(ids)
	return ids, false, nil
}

// Abandon gives up an unfinished apply: it cancels the recorded jobs that have not finished
// and, for run-once methods, removes the records this apply's mark step wrote on devices (one
// job, waited for), so that those devices run the method on a later apply. The caller then
// forgets the apply record; the state keeps the records it had before. When the hub refuses
// to cancel a job (Azure may refuse for a running one), Abandon stops with that error and the
// apply stays resumable.
func Abandon(ctx context.Context, rec *state.ApplyRecord, runner interface {
	JobRunner
	CancelJob(ctx context.Context, jobID string) (hubapi.JobResponse, error)
}, hook Hook, opts ...ApplyOption) (cancelled []string, err error) {
	cfg := newApplyConfig(tier.Tier{}, hook, opts)
	cfg.applyID = rec.ID
	marked := map[string]bool{}
	for _, j := range rec.Jobs {
		got, err := runner.GetJob(ctx, j.Request.JobID)
		if err != nil || got.Type != j.Request.Type {
			continue // never created
		}
		if j.Step == StepMark {
			marked[j.Addr] = true
		}
		if !hubapi.JobEnded(got.Status) {
			if _, err := runner.CancelJob(ctx, j.Request.JobID); err != nil {
				return cancelled, fmt.Errorf("%s: cancelling job %s: %w", j.Addr, j.Request.JobID, err)
			}
			cancelled = append(cancelled, j.Request.JobID)
		}
	}
	res := &ApplyResult{}
	for _, u := range recordUnits(rec) {
		if !marked[u.Addr] || u.RunTag == "" {
			continue
		}
		if err := unmarkFailed(ctx, u, &JobResult{Status: hubapi.JobStatusCancelled}, runner, cfg, res); err != nil {
			return cancelled, err
		}
	}
	return cancelled, nil
}
