package jobs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/iotplan/iotplan/internal/hub/huberr"
	"github.com/iotplan/iotplan/internal/hub/registry"
	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/query"
)

// schedule moves jobs through queued → scheduled → running and expires running jobs, by
// looking at Options.Now every tick (or at once when Create kicks it).
func (m *Manager) schedule() {
	defer m.wg.Done()
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		m.step()
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
		case <-m.wake:
		}
	}
}

func (m *Manager) step() {
	now := m.now()
	var changed []string
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	for id, j := range m.jobs {
		switch j.rec.Job.Status {
		case hubapi.JobStatusQueued, hubapi.JobStatusScheduled:
			if j.rec.Job.StartTime.After(now) {
				if j.rec.Job.Status == hubapi.JobStatusQueued {
					j.rec.Job.Status = hubapi.JobStatusScheduled
					changed = append(changed, id)
				}
				continue
			}
			j.rec.Job.Status = hubapi.JobStatusRunning
			t := now
			j.rec.RunningSince = &t
			changed = append(changed, id)
			m.startRunner(j)
		case hubapi.JobStatusRunning:
			if j.cancel == nil {
				m.startRunner(j) // resumed after a restart
			}
			deadline := j.rec.RunningSince.Add(time.Duration(j.rec.Job.MaxExecutionTimeInSeconds) * time.Second)
			if !now.Before(deadline) {
				j.cancel(errExpired)
			}
		}
	}
	m.mu.Unlock()
	for _, id := range changed {
		if err := m.save(id); err != nil {
			m.log.Error("jobs: persist status", "job", id, "err", err)
		}
	}
}

// startRunner starts j's runner; m.mu is held.
func (m *Manager) startRunner(j *job) {
	ctx, cancel := context.WithCancelCause(m.ctx)
	j.cancel = cancel
	j.done = make(chan struct{})
	if j.rec.RunningSince == nil {
		t := m.now()
		j.rec.RunningSince = &t
	}
	m.wg.Add(1)
	go func() {
		defer cancel(nil) // release the context once the runner is done
		m.run(ctx, j)
	}()
}

// run executes one job: select its devices (or reload them after a restart), dispatch them to
// workers, then settle the job's final state.
func (m *Manager) run(ctx context.Context, j *job) {
	defer m.wg.Done()
	defer close(j.done)
	m.mu.Lock()
	jobID := j.rec.Job.JobID
	selected := j.rec.SelectedAt != nil
	m.mu.Unlock()

	var todo []string
	var err error
	if selected {
		todo, err = m.resume(j)
	} else {
		todo, err = m.selectDevices(ctx, j)
	}
	if err != nil {
		if errors.Is(context.Cause(ctx), errClosing) {
			return
		}
		var fe *failure
		if errors.As(err, &fe) {
			m.finish(j, hubapi.JobStatusFailed, fe.reason)
			return
		}
		m.log.Error("jobs: prepare", "job", jobID, "err", err)
		m.finish(j, hubapi.JobStatusFailed, "Internal error while selecting the job's devices.")
		return
	}

	if selected && m.opts.Ready != nil && j.rec.Job.Type == hubapi.JobTypeDeviceMethod {
		// A method job resumed after a restart waits until the devices could reconnect, so
		// that it does not count them offline while the hub is still starting.
		select {
		case <-m.opts.Ready:
		case <-ctx.Done():
		}
	}
	// A method job's workers take one device a step; a twin job's take twinStep devices,
	// whose twins are written together (processTwins).
	ch := make(chan []string)
	var wg sync.WaitGroup
	twinJob := j.rec.Job.Type == hubapi.JobTypeUpdateTwin
	workers, step := m.opts.Workers, 1
	if twinJob {
		workers, step = max(workers, TwinWorkers)/twinStep, twinStep
	}
	for range min(workers, max(len(todo)/step, 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ids := range ch {
				if twinJob {
					m.processTwins(ctx, j, ids)
					continue
				}
				m.processMethod(ctx, j, ids[0])
			}
		}()
	}
	rest := todo[:0:0]
feed:
	for i := 0; i < len(todo); i += step {
		select {
		case ch <- todo[i:min(i+step, len(todo))]:
		case <-ctx.Done():
			rest = todo[i:]
			break feed
		}
	}
	close(ch)
	wg.Wait()
	for _, id := range rest {
		m.settle(ctx, j, id, false)
	}

	switch cause := context.Cause(ctx); {
	case errors.Is(cause, errClosing):
		// Left running; the next New resumes it.
	case errors.Is(cause, errCancelled):
		m.finish(j, "", "") // status was set by Cancel; persist the final rows and counters
	case errors.Is(cause, errExpired):
		m.finish(j, hubapi.JobStatusFailed, fmt.Sprintf(
			"The job did not complete within maxExecutionTimeInSeconds (%d s); devices not reached were failed.",
			j.maxExec()))
	default:
		m.finish(j, hubapi.JobStatusCompleted, "")
	}
}

func (j *job) maxExec() int64 { return j.rec.Job.MaxExecutionTimeInSeconds }

// failure is a job-level failure to report in failureReason.
type failure struct{ reason string }

func (f *failure) Error() string { return f.reason }

// finish flushes the job's rows and records its end. status "" keeps the current status.
func (m *Manager) finish(j *job, status, reason string) {
	if err := m.rows.flush(); err != nil {
		m.log.Error("jobs: write device rows", "err", err)
	}
	m.mu.Lock()
	if status != "" && !j.terminal() {
		now := m.now()
		j.rec.Job.Status = status
		j.rec.Job.FailureReason = reason
		j.rec.Job.EndTime = &now
	}
	id := j.rec.Job.JobID
	m.mu.Unlock()
	if err := m.save(id); err != nil {
		m.log.Error("jobs: persist end", "job", id, "err", err)
	}
}

// selectDevices takes the snapshot of matching device ids and writes their pending rows.
func (m *Manager) selectDevices(ctx context.Context, j *job) ([]string, error) {
	m.mu.Lock()
	jobID, jobType, cond := j.rec.Job.JobID, j.rec.Job.Type, j.rec.Job.QueryCondition
	startTime := *j.rec.Job.StartTime
	m.mu.Unlock()

	match, err := m.compileCondition(cond)
	if err != nil {
		return nil, &failure{reason: err.Error()}
	}
	var ids []string
	m.twins.ForEachTwin(func(doc any) bool {
		if match == nil || match(doc) {
			if v, _ := query.Field(doc, "deviceId"); v != nil {
				if id, ok := v.(string); ok {
					ids = append(ids, id)
				}
			}
		}
		return true
	})

	// Rows of an earlier, interrupted selection are replaced.
	if err := m.rows.deleteJob(jobID); err != nil {
		return nil, err
	}
	now := m.now()
	batch := make([]*hubapi.DeviceJob, 0, min(len(ids), selectBatch))
	for i, id := range ids {
		batch = append(batch, &hubapi.DeviceJob{
			DeviceID: id, JobID: jobID, JobType: jobType, Status: hubapi.DeviceJobPending,
			StartTimeUTC: &startTime, CreatedDateTimeUTC: &now, LastUpdatedDateTimeUTC: &now,
			Outcome: &hubapi.DeviceJobOutcome{},
		})
		if len(batch) == selectBatch || i == len(ids)-1 {
			if errors.Is(context.Cause(ctx), errClosing) {
				return nil, context.Cause(ctx)
			}
			if err := m.rows.writeDirect(batch); err != nil {
				return nil, err
			}
			batch = batch[:0]
		}
	}
	m.mu.Lock()
	j.rec.SelectedAt = &now
	j.rec.Job.DeviceJobStatistics = &hubapi.DeviceJobStatistics{DeviceCount: len(ids), PendingCount: len(ids)}
	m.mu.Unlock()
	return ids, m.save(jobID)
}

// compileCondition compiles a job's queryCondition in the hub's dialect and reports it to
// Options.OnQuery; it returns nil (match all) for "" and "*".
func (m *Manager) compileCondition(cond string) (func(doc any) bool, error) {
	match, err := compileCondition(cond, m.opts.QueryDialect)
	if m.opts.OnQuery != nil {
		m.opts.OnQuery(cond, err)
	}
	return match, err
}

func compileCondition(cond string, d query.Dialect) (func(doc any) bool, error) {
	if c := strings.TrimSpace(cond); c == "" || c == "*" {
		return nil, nil
	}
	e, err := query.ParseConditionDialect(cond, d)
	if err != nil {
		return nil, fmt.Errorf("The job's queryCondition could not be parsed: %w", err)
	}
	c, err := query.CompileCondition(e)
	if err != nil {
		return nil, fmt.Errorf("The job's queryCondition is invalid: %w", err)
	}
	return c.Match, nil
}

// resume reloads a running job's rows after a restart: it recounts the statistics and returns
// the devices still to do (see the package doc for devices caught mid-call).
func (m *Manager) resume(j *job) ([]string, error) {
	m.mu.Lock()
	jobID, jobType := j.rec.Job.JobID, j.rec.Job.Type
	m.mu.Unlock()
	var st hubapi.DeviceJobStatistics
	var todo []string
	var interrupted []*hubapi.DeviceJob
	err := m.rows.jobRows(jobID, func(r *hubapi.DeviceJob) {
		st.DeviceCount++
		switch r.Status {
		case hubapi.DeviceJobPending:
			st.PendingCount++
			todo = append(todo, r.DeviceID)
		case hubapi.DeviceJobRunning:
			if jobType == hubapi.JobTypeUpdateTwin {
				st.PendingCount++
				todo = append(todo, r.DeviceID)
			} else {
				st.FailedCount++
				interrupted = append(interrupted, r)
			}
		case hubapi.DeviceJobCompleted:
			st.SucceededCount++
		case hubapi.DeviceJobFailed:
			st.FailedCount++
		}
	})
	if err != nil {
		return nil, err
	}
	now := m.now()
	for _, r := range interrupted {
		r.Status = hubapi.DeviceJobFailed
		r.EndTimeUTC, r.LastUpdatedDateTimeUTC = &now, &now
		r.Error = &hubapi.DeviceJobError{Code: CodeJobInterrupted,
			Description: "The hub restarted while the method call to this device was in flight; its outcome is unknown."}
		m.rows.put(r)
	}
	m.mu.Lock()
	j.rec.Job.DeviceJobStatistics = &st
	m.mu.Unlock()
	m.log.Info("jobs: resuming after restart", "job", jobID, "pending", len(todo), "interrupted", len(interrupted))
	return todo, nil
}

// processMethod runs one device of a method job. The device's row is stored running before
// the call (see putDurable): at most one call per device and job, whatever kills the hub.
func (m *Manager) processMethod(ctx context.Context, j *job, deviceID string) {
	base, ok := m.begin(ctx, j, deviceID)
	if !ok {
		return
	}
	m.mu.Lock()
	method := *j.rec.Job.CloudToDeviceMethod
	m.mu.Unlock()
	outcome := &hubapi.DeviceJobOutcome{}
	opErr := m.rows.putDurable(runningRow(base, m.now()))
	if opErr == nil {
		res, err := m.inv.Invoke(ctx, deviceID, method)
		if err == nil {
			outcome.DeviceMethodResponse = &res
		}
		opErr = err
	} else {
		opErr = &huberr.Error{Code: huberr.ServerError, Msg: "The hub could not record the call before making it; the device was not called."}
	}
	m.end(ctx, j, base, opErr, outcome)
}

// processTwins runs a twin job's step over several devices: their twins are written together
// (one registry lock and one commit record for all, registry.ApplyPatches), so a job's writers
// do not queue for the registry's mutex one device at a time.
func (m *Manager) processTwins(ctx context.Context, j *job, ids []string) {
	bases := make([]hubapi.DeviceJob, 0, len(ids))
	for _, id := range ids {
		base, ok := m.begin(ctx, j, id)
		if !ok {
			continue
		}
		m.rows.put(runningRow(base, m.now()))
		bases = append(bases, base)
	}
	errs := m.updateTwins(j, bases)
	for i, base := range bases {
		m.end(ctx, j, base, errs[i], &hubapi.DeviceJobOutcome{})
	}
}

// begin counts a device running and returns its row's fixed part; false when the job's
// context ended first (the device is settled).
func (m *Manager) begin(ctx context.Context, j *job, deviceID string) (hubapi.DeviceJob, bool) {
	if err := m.limiter.wait(ctx); err != nil {
		m.settle(ctx, j, deviceID, false)
		return hubapi.DeviceJob{}, false
	}
	m.mu.Lock()
	if ctx.Err() != nil {
		m.mu.Unlock()
		m.settle(ctx, j, deviceID, false)
		return hubapi.DeviceJob{}, false
	}
	st := j.rec.Job.DeviceJobStatistics
	st.PendingCount--
	st.RunningCount++
	base := hubapi.DeviceJob{DeviceID: deviceID, JobID: j.rec.Job.JobID, JobType: j.rec.Job.Type,
		StartTimeUTC: j.rec.Job.StartTime, CreatedDateTimeUTC: j.rec.SelectedAt}
	m.mu.Unlock()
	return base, true
}

func runningRow(base hubapi.DeviceJob, now time.Time) *hubapi.DeviceJob {
	row := base
	row.Status, row.LastUpdatedDateTimeUTC, row.Outcome = hubapi.DeviceJobRunning, &now, &hubapi.DeviceJobOutcome{}
	return &row
}

// end records a device's outcome: its final row and the job's counters.
func (m *Manager) end(ctx context.Context, j *job, base hubapi.DeviceJob, opErr error, outcome *hubapi.DeviceJobOutcome) {
	if opErr != nil && ctx.Err() != nil {
		m.settle(ctx, j, base.DeviceID, true)
		return
	}
	now := m.now()
	row := base
	row.EndTimeUTC, row.LastUpdatedDateTimeUTC, row.Outcome = &now, &now, outcome
	m.mu.Lock()
	st := j.rec.Job.DeviceJobStatistics
	st.RunningCount--
	if opErr == nil {
		row.Status = hubapi.DeviceJobCompleted
		st.SucceededCount++
	} else {
		he := huberr.As(opErr)
		row.Status = hubapi.DeviceJobFailed
		row.Error = &hubapi.DeviceJobError{Code: he.Code.Name(), Description: he.Msg}
		st.FailedCount++
	}
	m.mu.Unlock()
	m.rows.put(&row)
}

// settle records a device the job did not finish because its context ended: canceled on
// cancel, failed on expiry, untouched on Close (so a restart resumes it).
func (m *Manager) settle(ctx context.Context, j *job, deviceID string, wasRunning bool) {
	cause := context.Cause(ctx)
	if errors.Is(cause, errClosing) {
		return
	}
	now := m.now()
	m.mu.Lock()
	st := j.rec.Job.DeviceJobStatistics
	if wasRunning {
		st.RunningCount--
	} else {
		st.PendingCount--
	}
	row := hubapi.DeviceJob{DeviceID: deviceID, JobID: j.rec.Job.JobID, JobType: j.rec.Job.Type,
		StartTimeUTC: j.rec.Job.StartTime, CreatedDateTimeUTC: j.rec.SelectedAt,
		LastUpdatedDateTimeUTC: &now, EndTimeUTC: &now, Outcome: &hubapi.DeviceJobOutcome{}}
	if errors.Is(cause, errExpired) {
		st.FailedCount++
		row.Status = hubapi.DeviceJobFailed
		row.Error = &hubapi.DeviceJobError{Code: CodeJobExpired, Description: fmt.Sprintf(
			"The job reached its maxExecutionTimeInSeconds (%d s) before this device completed.", j.maxExec())}
	} else {
		row.Status = hubapi.DeviceJobCanceled
	}
	m.mu.Unlock()
	m.rows.put(&row)
}

// limiter spaces device operations hub-wide (DeviceOpsPerSecond). A nil limiter is unlimited.
type limiter struct {
	mu       sync.Mutex
	interval time.Duration
	next     time.Time
}

func (l *limiter) wait(ctx context.Context) error {
	if l == nil {
		return ctx.Err()
	}
	l.mu.Lock()
	now := time.Now()
	at := l.next
	if at.Before(now) {
		at = now
	}
	l.next = at.Add(l.interval)
	l.mu.Unlock()
	d := at.Sub(now)
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// batchPatcher is implemented by a Twins store that applies a prepared patch to several
// devices at once (*registry.Registry).
type batchPatcher interface {
	ApplyPatches(deviceIDs []string, p *registry.PreparedPatch) []error
}

// updateTwins applies a twin job's patch to the devices of bases; errs[i] is bases[i]'s. A
// store that applies prepared patches in batches (the registry) gets the patch checked and
// normalised once for the whole job.
func (m *Manager) updateTwins(j *job, bases []hubapi.DeviceJob) []error {
	m.mu.Lock()
	patch := *j.rec.Job.UpdateTwin
	m.mu.Unlock()
	patch.DeviceID = nil
	errs := make([]error, len(bases))
	bp, ok := m.twins.(batchPatcher)
	if !ok {
		for i, b := range bases {
			_, errs[i] = m.twins.UpdateTwin(b.DeviceID, patch, "*")
		}
		return errs
	}
	j.prepareOnce.Do(func() { j.prepared, j.prepareErr = registry.PreparePatch(patch) })
	if j.prepareErr != nil {
		for i := range errs {
			errs[i] = j.prepareErr
		}
		return errs
	}
	ids := make([]string, len(bases))
	for i, b := range bases {
		ids[i] = b.DeviceID
	}
	return bp.ApplyPatches(ids, j.prepared)
}
