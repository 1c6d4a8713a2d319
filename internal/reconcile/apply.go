package reconcile

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/iotplan/iotplan/internal/clock"
	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/state"
	"github.com/iotplan/iotplan/internal/tier"
)

// JobRunner schedules and watches hub jobs. *hubclient.Client is one.
type JobRunner interface {
	// ActiveJobs returns the jobs that hold one of the hub's job slots (queued, scheduled,
	// running): a tier runs at most MaxConcurrentJobs of them.
	ActiveJobs(ctx context.Context) ([]hubapi.JobResponse, error)
	CreateJob(ctx context.Context, req hubapi.JobRequest) (hubapi.JobResponse, error)
	GetJob(ctx context.Context, jobID string) (hubapi.JobResponse, error)
	// DeviceJobs returns devices.jobs rows of a job; status "" = all, limit 0 = no limit.
	DeviceJobs(ctx context.Context, jobID, status string, limit int) ([]hubapi.DeviceJob, error)
	// MethodErrors returns rows of a method job whose device answered outside 200–299 (the hub
	// counts those as completed).
	MethodErrors(ctx context.Context, jobID string, limit int) ([]hubapi.DeviceJob, error)
}

// Hook receives apply's progress (the renderer implements it). Calls come from the goroutine
// that called Apply, in order; every JobCreated is followed by JobDone, also when apply stops
// watching the job early (then with the last status seen).
type Hook interface {
	// JobCreated: the hub accepted the job of rc.
	JobCreated(rc *ResourceChange, job hubapi.JobResponse)
	// JobProgress: one poll of the job (status and device statistics so far).
	JobProgress(rc *ResourceChange, p Progress)
	// JobDone: the job reached a final status (or apply stopped waiting), with its failures.
	JobDone(rc *ResourceChange, r *JobResult)
	// SlotWait: the hub's job slots are all held (holders: the active jobs, limit: the tier's
	// maximum), so the next job of rc waits; called again after each check while it waits.
	SlotWait(rc *ResourceChange, holders []hubapi.JobResponse, limit int, waited time.Duration)
}

// Progress is one observation of a running job.
type Progress struct {
	JobID   string
	Status  string
	Stats   hubapi.DeviceJobStatistics
	Elapsed time.Duration
}

// NopHook ignores progress.
type NopHook struct{}

func (NopHook) JobCreated(*ResourceChange, hubapi.JobResponse) {}
func (NopHook) JobProgress(*ResourceChange, Progress)          {}
func (NopHook) JobDone(*ResourceChange, *JobResult)            {}
func (NopHook) SlotWait(*ResourceChange, []hubapi.JobResponse, int, time.Duration) {
}

// ApplyResult is what apply did, per resource with a job, in plan order.
type ApplyResult struct {
	Jobs []JobResult
	// NotRun lists the addresses of changes that were not started because an earlier one
	// could not be scheduled or watched.
	NotRun []string
	// Refused lists the resources the plan marked refused (ResourceChange.Refused): apply
	// ran none of their jobs.
	Refused []RefusedChange
	// Open: a job starts later than apply waits, so the apply stays recorded as unfinished in
	// the state; the next apply resumes it.
	Open bool
	// Unmarked counts the devices of run-once methods whose run was not recorded (they
	// failed); UnmarkedAll: too many failed to list, so every device of the run was unmarked
	// and runs again next time.
	Unmarked    int
	UnmarkedAll bool
	// HubCalls counts the hub requests apply made, by kind, when the runner counts them
	// (hubclient.Client does).
	HubCalls map[string]int
	// HubWait is what apply spent waiting on a throttling hub (nil: nothing throttled, or the
	// runner does not measure it).
	HubWait *HubWait
	// Aborted is the rollout (or convergence wait) that stopped the apply: its later waves,
	// and the resources after it, did not run (NotRun).
	Aborted *RolloutAbort
}

// RefusedChange is a resource apply did not run, and why.
type RefusedChange struct {
	Addr   string
	Reason string
}

// Success reports whether every job completed and every targeted device succeeded.
func (r *ApplyResult) Success() bool {
	if len(r.NotRun) > 0 || len(r.Refused) > 0 || r.Aborted != nil {
		return false
	}
	for i := range r.Jobs {
		if !r.Jobs[i].Success() {
			return false
		}
	}
	return true
}

// JobResult is the outcome of one resource's job.
type JobResult struct {
	Addr          string
	Kind          string
	JobID         string
	Type          string
	Status        string // final job status: completed, failed, cancelled
	FailureReason string // the hub's reason when the job itself failed
	Stats         hubapi.DeviceJobStatistics
	// Failures are failed devices from devices.jobs, at most ApplyOptions.MaxFailures.
	Failures []DeviceFailure
	// MoreFailures counts failed devices not listed in Failures.
	MoreFailures int
	// MethodErrors are devices of a method job that the hub counts as succeeded but that
	// answered with a status outside 200–299 (at most ApplyOptions.MaxFailures).
	MethodErrors []DeviceFailure
	// Scheduled: the job starts later than apply waits (its start_time is in the future); the
	// hub accepted it and runs it then, and its device results are not known yet.
	Scheduled bool
	// Step is the job's part of its resource's work (PlannedJob.Step).
	Step string
	// Reattached: the job existed already (a resumed apply) and apply watched it instead of
	// creating it again.
	Reattached bool
	// Notes are things the reader must know about the result (e.g. a check that could not run).
	Notes   []string
	Elapsed time.Duration
	// Wave is the rollout wave of the job (PlannedJob.Wave).
	Wave int
}

// Success reports whether the job completed and every one of its devices succeeded — or, for a
// job scheduled to start later, that the hub accepted it.
func (j *JobResult) Success() bool {
	if j.Scheduled {
		return !hubapi.JobEnded(j.Status)
	}
	return j.Status == hubapi.JobStatusCompleted && j.Stats.FailedCount == 0 &&
		j.Stats.SucceededCount == j.Stats.DeviceCount && len(j.MethodErrors) == 0
}

// DeviceFailure is one failed device of a job: the hub's error, or for a method the status
// and payload the device answered.
type DeviceFailure struct {
	DeviceID      string
	Code          string
	Description   string
	MethodStatus  *int
	MethodPayload json.RawMessage
}

// ApplyOption tunes Apply.
type ApplyOption func(*applyConfig)

type applyConfig struct {
	tier        tier.Tier
	now         func() time.Time
	sleep       func(ctx context.Context, d time.Duration) error
	maxFailures int
	grace       time.Duration
	slotTimeout time.Duration
	journal     Journal
	hook        Hook
	applyID     string
}

func newApplyConfig(t tier.Tier, hook Hook, opts []ApplyOption) applyConfig {
	cfg := applyConfig{tier: t, now: time.Now, sleep: clock.Sleep, maxFailures: 100, grace: waitGrace, hook: hook}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.hook == nil {
		cfg.hook = NopHook{}
	}
	return cfg
}

// Journal records an apply in the state on the hub, so that an interrupted apply can be
// resumed (the CLI implements it over a state lock). Begin comes before the first job; Finish
// once every job reached a final status, with what the state holds then.
type Journal interface {
	Begin(ctx context.Context, rec *state.ApplyRecord) error
	Finish(ctx context.Context, records []state.Resource) error
}

// WithJournal records the apply in j.
func WithJournal(j Journal) ApplyOption {
	return func(c *applyConfig) { c.journal = j }
}

// WithTier sets the hub's tier, which sets how often jobs are polled (a small share of its
// jobs-operations quota) and how many job slots it has; the default is the tier the plan was
// sized for.
func WithTier(t tier.Tier) ApplyOption {
	return func(c *applyConfig) { c.tier = t }
}

// WithClock replaces time.Now and the waits between polls (tests).
func WithClock(now func() time.Time, sleep func(ctx context.Context, d time.Duration) error) ApplyOption {
	return func(c *applyConfig) { c.now, c.sleep = now, sleep }
}

// WithMaxFailures sets how many failed devices to read per job (default 100: one page).
func WithMaxFailures(n int) ApplyOption {
	return func(c *applyConfig) { c.maxFailures = n }
}

// WithSlotTimeout bounds how long apply waits for a free job slot before it gives up
// (ErrNoJobSlot); 0, the default, waits as long as the slots are held.
func WithSlotTimeout(d time.Duration) ApplyOption {
	return func(c *applyConfig) { c.slotTimeout = d }
}

// waitScheduled: a job whose startTime is further than this in the future is scheduled and not
// waited for.
const waitScheduled = time.Minute

// waitGrace is how long past a job's start + maxExecutionTime apply keeps polling before it
// gives up on the hub reporting a final status.
const waitGrace = 2 * time.Minute

// Apply executes the plan's jobs one at a time, in plan order, waiting for each to finish by
// polling its status (within the poll budget, see pollInterval) and reporting through hook,
// then reading its failed devices from devices.jobs. Before scheduling a job it waits for a
// free job slot when the tier's are all held (1 on S1: scheduled jobs count). A job's
// startTime is its resource's start_time, or the moment it is scheduled. Resources the plan
// marked refused are not run (ApplyResult.Refused). The error is non-nil when a job could not
// be scheduled or watched; per-device failures are not errors: see ApplyResult.Success.
func Apply(ctx context.Context, plan *Plan, runner JobRunner, hook Hook, opts ...ApplyOption) (*ApplyResult, error) {
	cfg := newApplyConfig(plan.HubTier(), hook, opts)
	if err := plan.Validate(); err != nil {
		return nil, err
	}
	res := &ApplyResult{}
	since := meter(runner)
	defer func() { res.HubCalls, res.HubWait = since() }()
	rec := plan.Record(cfg.now())
	if cfg.journal != nil {
		if err := cfg.journal.Begin(ctx, rec); err != nil {
			return res, fmt.Errorf("recording the apply in the state: %w", err)
		}
	}
	var units []*ResourceChange
	for i := range plan.Resources {
		rc := &plan.Resources[i]
		switch {
		case rc.Action == NoOp:
		case rc.Refused != "":
			res.Refused = append(res.Refused, RefusedChange{Addr: rc.Addr, Reason: rc.Refused})
		default:
			units = append(units, rc)
		}
	}
	cfg.applyID = plan.ApplyID
	return res, execute(ctx, units, runner, cfg, res, rec.Resources)
}

// execute runs the resources' jobs in order and, when every job reached a final status, tells
// the journal the apply is done (with records, what the state then holds). A job the hub runs
// later (a future start time) keeps the apply open: the next apply resumes it.
func execute(ctx context.Context, units []*ResourceChange, runner JobRunner, cfg applyConfig, res *ApplyResult, records []state.Resource) error {
	for i, rc := range units {
		err := runResource(ctx, rc, runner, cfg, res)
		if err != nil || res.Aborted != nil {
			for _, rest := range units[i+1:] {
				res.NotRun = append(res.NotRun, rest.Addr)
			}
		}
		if err != nil {
			return err
		}
		if res.Aborted != nil {
			recordAbort(records, rc, res.Aborted)
			break
		}
		clearRollout(records, rc.Addr)
	}
	for _, j := range res.Jobs {
		if j.Scheduled {
			res.Open = true
			return nil
		}
	}
	if cfg.journal == nil {
		return nil
	}
	if err := cfg.journal.Finish(ctx, records); err != nil {
		return fmt.Errorf("recording the finished apply in the state: %w", err)
	}
	return nil
}

func runResource(ctx context.Context, rc *ResourceChange, runner JobRunner, cfg applyConfig, res *ApplyResult) error {
	first := len(res.Jobs)
	for j := range rc.Jobs {
		if stop, err := unjudgedWave(ctx, rc, j, runner, res); stop || err != nil {
			return err
		}
		jr, err := runJob(ctx, rc, &rc.Jobs[j], runner, cfg)
		if jr != nil {
			jr.Wave = rc.Jobs[j].Wave
			res.Jobs = append(res.Jobs, *jr)
		}
		if err != nil {
			return err
		}
		if rc.Jobs[j].Step == StepInvoke && rc.RunTag != "" && !jr.Scheduled {
			if err := unmarkFailed(ctx, rc, jr, runner, cfg, res); err != nil {
				return err
			}
		}
		if !waveEnds(rc, j) {
			continue
		}
		if err := endWave(ctx, rc, rc.Jobs[j].Wave, runner, cfg, res, res.Jobs[first:]); err != nil || res.Aborted != nil {
			return err
		}
	}
	return nil
}

func runJob(ctx context.Context, rc *ResourceChange, pj *PlannedJob, runner JobRunner, cfg applyConfig) (*JobResult, error) {
	hook := cfg.hook
	req := pj.Request
	start := cfg.now()
	if req.StartTime == nil {
		st := start.UTC()
		req.StartTime = &st
	}
	created, reattached, err := ensureJob(ctx, rc, req, runner, cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: scheduling job %s: %w", rc.Addr, req.JobID, err)
	}
	if reattached && created.StartTime != nil {
		req.StartTime = created.StartTime // the job's own, as the hub holds it
	}
	hook.JobCreated(rc, created)
	jr := &JobResult{Addr: rc.Addr, Kind: rc.Kind, JobID: req.JobID, Type: req.Type, Step: pj.Step, Reattached: reattached}
	if err := watchJob(ctx, rc, pj, req, start, runner, hook, cfg, jr); err != nil || jr.Scheduled {
		return jr, err
	}
	if jr.Stats.FailedCount > 0 || jr.Status != hubapi.JobStatusCompleted {
		if err := readFailures(ctx, runner, jr, cfg.maxFailures); err != nil {
			hook.JobDone(rc, jr)
			return jr, fmt.Errorf("%s: reading the failed devices of job %s: %w", rc.Addr, req.JobID, err)
		}
	}
	if req.Type == hubapi.JobTypeDeviceMethod && jr.Stats.SucceededCount > 0 && cfg.maxFailures > 0 {
		rows, err := runner.MethodErrors(ctx, jr.JobID, cfg.maxFailures)
		if err != nil {
			// Not fatal: the job ran; say that the answers could not be checked.
			jr.Notes = append(jr.Notes, "could not check the status codes the devices answered: "+err.Error())
		}
		for _, r := range rows {
			jr.MethodErrors = append(jr.MethodErrors, FailureOf(r))
		}
	}
	hook.JobDone(rc, jr)
	return jr, nil
}

// watchJob polls the job until it reaches a final status, is handed over (it starts later
// than apply waits), or outlives its maximum execution time; it fills jr and reports progress.
func watchJob(ctx context.Context, rc *ResourceChange, pj *PlannedJob, req hubapi.JobRequest, start time.Time, runner JobRunner, hook Hook, cfg applyConfig, jr *JobResult) error {
	maxExec := time.Duration(req.MaxExecutionTimeInSeconds) * time.Second
	deadline := req.StartTime.Add(maxExec).Add(cfg.grace)
	if deadline.Before(start) {
		deadline = start.Add(maxExec).Add(cfg.grace)
	}
	expected := time.Duration(pj.ExpectedSeconds) * time.Second
	for n := 1; ; n++ {
		job, err := runner.GetJob(ctx, req.JobID)
		if err != nil {
			jr.Elapsed = cfg.now().Sub(start)
			hook.JobDone(rc, jr)
			return fmt.Errorf("%s: watching job %s: %w", rc.Addr, req.JobID, err)
		}
		jr.Status, jr.FailureReason = job.Status, job.FailureReason
		if job.DeviceJobStatistics != nil {
			jr.Stats = *job.DeviceJobStatistics
		}
		jr.Elapsed = cfg.now().Sub(start)
		hook.JobProgress(rc, Progress{JobID: req.JobID, Status: job.Status, Stats: jr.Stats, Elapsed: jr.Elapsed})
		switch {
		case hubapi.JobEnded(job.Status):
			return nil
		case req.StartTime.After(start.Add(waitScheduled)):
			// A job set to start later is the hub's to run: apply hands it over and does not
			// sit waiting for its start.
			jr.Scheduled = true
			jr.Notes = append(jr.Notes, fmt.Sprintf("starts at %s; apply does not wait for jobs that start later: follow job %s on the hub",
				TimeText(*req.StartTime), req.JobID))
			hook.JobDone(rc, jr)
			return nil
		case cfg.now().After(deadline):
			hook.JobDone(rc, jr)
			return fmt.Errorf("%s: job %s is still %s %s after its maximum execution time; it may still finish on the hub", rc.Addr, req.JobID, job.Status, jr.Elapsed.Round(time.Second))
		}
		if err := cfg.sleep(ctx, pollInterval(n, expected, cfg.tier)); err != nil {
			hook.JobDone(rc, jr)
			return fmt.Errorf("%s: stopped waiting for job %s (it keeps running on the hub): %w", rc.Addr, req.JobID, err)
		}
	}
}

// ensureJob creates the job, or, when a job with its id exists already (an interrupted apply
// created it: ids derive from the apply and the job, and the hub answers a second PUT with 409
// JobAlreadyExists), reattaches to it. Before creating, it waits for a free job slot.
func ensureJob(ctx context.Context, rc *ResourceChange, req hubapi.JobRequest, runner JobRunner, cfg applyConfig) (job hubapi.JobResponse, reattached bool, err error) {
	if err := waitForSlot(ctx, rc, req.JobID, runner, cfg.hook, cfg); err != nil {
		return job, false, err
	}
	created, err := createJob(ctx, rc, req, runner, cfg.hook, cfg)
	if hubapi.StatusOf(err) != http.StatusConflict {
		return created, false, err
	}
	got, gerr := runner.GetJob(ctx, req.JobID)
	switch {
	case gerr != nil:
		return job, false, err
	case got.Type != req.Type:
		return job, false, fmt.Errorf("job id %s belongs to a %s job, not a %s one: %w", req.JobID, got.Type, req.Type, err)
	}
	return got, true, nil
}

func readFailures(ctx context.Context, runner JobRunner, jr *JobResult, max int) error {
	if max <= 0 {
		jr.MoreFailures = jr.Stats.FailedCount
		return nil
	}
	rows, err := runner.DeviceJobs(ctx, jr.JobID, hubapi.DeviceJobFailed, max)
	if err != nil {
		return err
	}
	for _, r := range rows {
		jr.Failures = append(jr.Failures, FailureOf(r))
	}
	if more := jr.Stats.FailedCount - len(jr.Failures); more > 0 {
		jr.MoreFailures = more
	}
	return nil
}

// FailureOf is a devices.jobs row as a DeviceFailure: the hub's error, and for a method the
// status and payload the device answered.
func FailureOf(r hubapi.DeviceJob) DeviceFailure {
	f := DeviceFailure{DeviceID: r.DeviceID}
	if r.Error != nil {
		f.Code, f.Description = r.Error.Code, r.Error.Description
	}
	if r.Outcome != nil && r.Outcome.DeviceMethodResponse != nil {
		st := r.Outcome.DeviceMethodResponse.Status
		f.MethodStatus = &st
		f.MethodPayload = r.Outcome.DeviceMethodResponse.Payload
	}
	return f
}
