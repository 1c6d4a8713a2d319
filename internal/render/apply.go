package render

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/reconcile"
)

// ApplyOptions control the apply progress view.
type ApplyOptions struct {
	Options
	// TTY rewrites one live progress line per job with \r; otherwise a plain line is written
	// when a job's status changes and at most every Interval while it runs.
	TTY bool
	// Interval between plain progress lines (non-TTY); zero = 5s.
	Interval time.Duration
	// MaxListed caps the failed devices listed per job; zero = 20.
	MaxListed int
	// Interrupted says a stopped apply was stopped by an interrupt, not by an error.
	Interrupted bool
}

// ApplyView shows apply's progress; it implements reconcile.Hook.
type ApplyView struct {
	out  *writer
	opts ApplyOptions
	st   styler

	mu         sync.Mutex
	lastStatus map[string]string
	lastPrint  map[string]time.Duration
	liveWidth  int
	lastSlot   string // the holders last reported by SlotWait
}

var _ reconcile.Hook = (*ApplyView)(nil)

// NewApplyView returns a progress view writing to w.
func NewApplyView(w io.Writer, opts ApplyOptions) *ApplyView {
	if opts.Interval <= 0 {
		opts.Interval = 5 * time.Second
	}
	if opts.MaxListed <= 0 {
		opts.MaxListed = 20
	}
	return &ApplyView{out: &writer{w: w}, opts: opts, st: styler{opts.Color},
		lastStatus: map[string]string{}, lastPrint: map[string]time.Duration{}}
}

// Err is the first write error, if any.
func (v *ApplyView) Err() error { return v.out.err }

// JobCreated implements reconcile.Hook.
func (v *ApplyView) JobCreated(rc *reconcile.ResourceChange, job hubapi.JobResponse) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.endLive()
	v.lastSlot = ""
	devices := rc.Devices
	what := "updating twins"
	for _, pj := range rc.Jobs {
		if pj.Request.JobID != job.JobID {
			continue
		}
		devices = pj.Devices
		if m := pj.Request.CloudToDeviceMethod; m != nil {
			what = "invoking " + m.MethodName
		}
		if len(rc.Jobs) > 1 && len(pj.Keys) > 0 {
			what += " (" + strings.Join(pj.Keys, ", ") + ")"
		}
	}
	v.out.printf("%s: %s on %s (job %s)\n", v.st.style(bold, rc.Addr), what, plural(devices, "device", "devices"), job.JobID)
}

// SlotWait implements reconcile.Hook: it says which jobs hold the hub's job slots when they
// change, and while they do not, at most every Interval.
func (v *ApplyView) SlotWait(rc *reconcile.ResourceChange, holders []hubapi.JobResponse, limit int, waited time.Duration) {
	v.mu.Lock()
	defer v.mu.Unlock()
	var held []string
	for _, j := range holders {
		h := fmt.Sprintf("%s (%s, %s", j.JobID, j.Type, j.Status)
		if t := utcTime(j.StartTime); t != "" && j.Status == hubapi.JobStatusScheduled {
			h += ", starts " + t
		}
		held = append(held, h+")")
	}
	text := strings.Join(held, ", ")
	key := "slot:" + rc.Addr
	last, printed := v.lastPrint[key]
	if text == v.lastSlot && printed && waited-last < v.opts.Interval {
		return
	}
	v.endLive()
	v.lastSlot, v.lastPrint[key] = text, waited
	slots := "its only job slot is"
	if limit > 1 {
		slots = fmt.Sprintf("all %d of its job slots are", limit)
	}
	v.out.printf("%s: waiting for a job slot — the hub runs %d at a time and %s held by %s [%s]\n",
		v.st.style(bold, rc.Addr), limit, slots, text, elapsed(waited))
}

// endLive ends a live (\r) progress line before other output.
func (v *ApplyView) endLive() {
	if v.opts.TTY && v.liveWidth > 0 {
		v.out.printf("\n")
		v.liveWidth = 0
	}
}

// JobProgress implements reconcile.Hook.
func (v *ApplyView) JobProgress(rc *reconcile.ResourceChange, p reconcile.Progress) {
	v.mu.Lock()
	defer v.mu.Unlock()
	line := fmt.Sprintf("%s: %s", rc.Addr, progressText(p))
	if v.opts.TTY {
		pad := ""
		if n := runeLen(line); n < v.liveWidth {
			pad = strings.Repeat(" ", v.liveWidth-n)
		}
		v.liveWidth = runeLen(line)
		v.out.printf("\r%s%s", line, pad)
		return
	}
	changed := v.lastStatus[p.JobID] != p.Status
	last, printed := v.lastPrint[p.JobID]
	if !changed && printed && p.Elapsed-last < v.opts.Interval {
		return
	}
	v.lastStatus[p.JobID], v.lastPrint[p.JobID] = p.Status, p.Elapsed
	v.out.printf("%s\n", line)
}

func progressText(p reconcile.Progress) string {
	s := p.Stats
	return fmt.Sprintf("%s — %s [%s]", p.Status, countsText(Count(s.SucceededCount)+"/"+Count(s.DeviceCount), s), elapsed(p.Elapsed))
}

// countsText is a job's device statistics after the succeeded ones (given as text: progress
// lines write "3/4"): "3/4 succeeded, 0 failed, 1 running, 0 pending".
func countsText(succeeded string, s hubapi.DeviceJobStatistics) string {
	return fmt.Sprintf("%s succeeded, %s failed, %s running, %s pending",
		succeeded, Count(s.FailedCount), Count(s.RunningCount), Count(s.PendingCount))
}

func elapsed(d time.Duration) string {
	d = d.Round(time.Second)
	if d < time.Minute {
		return fmt.Sprintf("%ds", int(d.Seconds()))
	}
	return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
}

// JobDone implements reconcile.Hook.
func (v *ApplyView) JobDone(rc *reconcile.ResourceChange, r *reconcile.JobResult) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.endLive()
	if r.Scheduled {
		v.out.printf("%s: %s — the hub runs it at its start time\n", v.st.style(bold, rc.Addr), v.st.style(green, "scheduled"))
		return
	}
	s := r.Stats
	verdict := v.st.style(green, "done")
	if !r.Success() {
		verdict = v.st.style(red, "finished with failures")
		if r.Status != hubapi.JobStatusCompleted {
			verdict = v.st.style(red, "job "+r.Status)
		}
	}
	errs := ""
	if n := len(r.MethodErrors); n > 0 {
		errs = fmt.Sprintf("; %s answered with an error status", plural(n, "device", "devices"))
	}
	v.out.printf("%s: %s after %s — %s succeeded, %s failed of %s%s\n", v.st.style(bold, rc.Addr), verdict,
		elapsed(r.Elapsed), Count(s.SucceededCount), Count(s.FailedCount), plural(s.DeviceCount, "device", "devices"), errs)
	if r.FailureReason != "" {
		v.out.printf("  %s\n", r.FailureReason)
	}
}

// ApplyResult writes the failed devices of every job, the resources not run, and the closing
// summary line; stopped says apply ended with an error (shown by the caller), so the summary
// never claims completion.
func ApplyResult(w io.Writer, res *reconcile.ApplyResult, stopped bool, opts ApplyOptions) error {
	out := &writer{w: w}
	st := styler{opts.Color}
	maxListed := opts.MaxListed
	if maxListed <= 0 {
		maxListed = 20
	}
	for i := range res.Jobs {
		j := &res.Jobs[i]
		if len(j.Failures) == 0 && len(j.MethodErrors) == 0 && j.MoreFailures == 0 && len(j.Notes) == 0 {
			continue
		}
		out.printf("\n%s\n", st.style(bold, fmt.Sprintf("%s (job %s):", j.Addr, j.JobID)))
		listed := 0
		list := func(f reconcile.DeviceFailure) {
			if listed >= maxListed {
				return
			}
			listed++
			out.printf("  %s %s  %s\n", st.style(red, "✗"), f.DeviceID, failureText(f))
		}
		for _, f := range j.Failures {
			list(f)
		}
		for _, f := range j.MethodErrors {
			list(f)
		}
		if rest := len(j.Failures) + len(j.MethodErrors) + j.MoreFailures - listed; rest > 0 {
			out.printf("  … and %s\n", plural(rest, "more failed device", "more failed devices"))
		}
		for _, n := range j.Notes {
			out.printf("  %s\n", st.style(dim, "# "+n))
		}
	}
	for _, r := range res.Refused {
		out.printf("%s\n", st.style(red, r.Addr+": refused — "+r.Reason))
	}
	if a := res.Aborted; a != nil {
		out.printf("%s\n", st.style(red, AbortText(a)))
	}
	why := "stopped after an earlier error"
	if res.Aborted != nil {
		why = "the rollout of " + res.Aborted.Addr + " stopped the apply"
	}
	for _, a := range res.NotRun {
		out.printf("%s\n", st.style(red, a+": not applied ("+why+")"))
	}
	switch {
	case res.UnmarkedAll:
		out.printf("%s\n", st.style(yellow, "More devices failed a run-once method than iotplan records one by one: every device of this run will run it again on the next apply."))
	case res.Unmarked > 0:
		out.printf("%s\n", st.style(dim, fmt.Sprintf("%s that failed a run-once method will run it again on the next apply.", plural(res.Unmarked, "device", "devices"))))
	}
	if res.Open {
		out.printf("%s\n", st.style(dim, "Jobs that start later keep this apply open in the state: the next 'iotplan apply' reattaches to them and records the apply when they are done."))
	}
	defer func() {
		if line := callsLine("Apply", res.HubCalls); line != "" {
			out.printf("%s\n", st.style(dim, line))
		}
		for _, line := range []string{pacedLine("Apply", res.HubWait), waitLine("Apply", res.HubWait)} {
			if line != "" {
				out.printf("%s\n", st.style(dim, line))
			}
		}
	}()
	kind, line := Outcome(res, stopped, opts.Interrupted)
	out.printf("\n%s\n", st.style(outcomeStyle[kind], line))
	return out.err
}

// Outcomes: how an apply ended, as its closing line says (and the apply_summary event's
// "result").
const (
	OutcomeInterrupted = "interrupted"   // an interrupt stopped apply's wait
	OutcomeStopped     = "stopped"       // an error stopped apply
	OutcomeNothing     = "nothing_to_do" // no job to run
	OutcomeComplete    = "complete"      // every job completed on every device
	OutcomeFailures    = "failures"      // it ran to the end, and something failed
)

var outcomeStyle = map[string]string{OutcomeInterrupted: bold + yellow, OutcomeStopped: bold + red,
	OutcomeNothing: bold + green, OutcomeComplete: bold + green, OutcomeFailures: bold + red}

// Outcome is how an apply ended and its closing line; stopped says apply ended with an error,
// so the line never claims completion.
func Outcome(res *reconcile.ApplyResult, stopped, interrupted bool) (kind, line string) {
	t := tallyApply(res)
	switch {
	case stopped && interrupted:
		return OutcomeInterrupted, fmt.Sprintf("Apply interrupted: %s finished before the interrupt.", plural(len(res.Jobs), "job", "jobs"))
	case stopped:
		return OutcomeStopped, fmt.Sprintf("Apply stopped after an error: %s ran.", plural(len(res.Jobs), "job", "jobs"))
	case len(res.Jobs) == 0 && len(res.NotRun) == 0 && len(res.Refused) == 0:
		return OutcomeNothing, "Apply complete! Nothing to do."
	case !res.Success():
		return OutcomeFailures, "Apply finished with failures: " + failureSummary(res, t.failed, t.devices) + "."
	}
	var parts []string
	if t.twinJobs > 0 {
		parts = append(parts, fmt.Sprintf("%s on %s", plural(t.twinJobs, "twin update", "twin updates"), plural(t.twinDevices, "device", "devices")))
	}
	if t.methodJobs > 0 {
		parts = append(parts, fmt.Sprintf("%s on %s", plural(t.methodJobs, "method invocation", "method invocations"), plural(t.methodDevices, "device", "devices")))
	}
	if t.later > 0 {
		parts = append(parts, plural(t.later, "job", "jobs")+" scheduled to start later")
	}
	return OutcomeComplete, "Apply complete! " + strings.Join(parts, ", ") + "."
}

// applyTally counts an apply's jobs and devices as its closing line states them.
type applyTally struct {
	twinJobs, twinDevices, methodJobs, methodDevices int // succeeded devices of the changes asked for
	later                                            int // jobs scheduled to start later
	// failed and devices are counted per job: a device in two jobs counts twice.
	failed, devices int
}

func tallyApply(res *reconcile.ApplyResult) applyTally {
	var t applyTally
	for i := range res.Jobs {
		j := &res.Jobs[i]
		t.failed += j.Stats.FailedCount + len(j.MethodErrors)
		t.devices += j.Stats.DeviceCount
		switch {
		case j.Scheduled:
			t.later++
		case j.Step == reconcile.StepMark || j.Step == reconcile.StepUnmark:
			// bookkeeping of run-once methods, not a change the user asked for
		case j.Type == hubapi.JobTypeDeviceMethod:
			t.methodJobs++
			t.methodDevices += j.Stats.SucceededCount
		default:
			t.twinJobs++
			t.twinDevices += j.Stats.SucceededCount
		}
	}
	return t
}

// failureSummary says what went wrong, stating device counts only where the hub reported them:
// a job that failed or was cancelled on the hub, a refused resource or one not applied has no
// failed devices to count, and "0 of N devices failed" would read as a success.
func failureSummary(res *reconcile.ApplyResult, failed, devices int) string {
	var parts []string
	if failed > 0 {
		// Devices are counted per job: a device in two jobs counts twice.
		parts = append(parts, fmt.Sprintf("%s of %s failed", Count(failed), plural(devices, "device", "devices")))
	}
	byStatus := map[string]int{}
	for i := range res.Jobs {
		if j := &res.Jobs[i]; !j.Scheduled && j.Status != hubapi.JobStatusCompleted {
			byStatus[j.Status]++
		}
	}
	for _, status := range []string{hubapi.JobStatusFailed, hubapi.JobStatusCancelled} {
		if n := byStatus[status]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %s on the hub", plural(n, "job", "jobs"), status))
			delete(byStatus, status)
		}
	}
	pending := slices.Sorted(maps.Keys(byStatus)) // not final: apply's wait for them ran out
	for _, status := range pending {
		parts = append(parts, fmt.Sprintf("%s still %s", plural(byStatus[status], "job", "jobs"), status))
	}
	if a := res.Aborted; a != nil {
		parts = append(parts, fmt.Sprintf("the rollout of %s stopped at wave %d", a.Addr, a.Wave))
	}
	if n := len(res.Refused); n > 0 {
		parts = append(parts, plural(n, "resource", "resources")+" refused")
	}
	if n := len(res.NotRun); n > 0 {
		parts = append(parts, plural(n, "resource", "resources")+" not applied")
	}
	if len(parts) == 0 { // e.g. a job whose devices the hub counts neither succeeded nor failed
		bad := 0
		for i := range res.Jobs {
			if !res.Jobs[i].Success() {
				bad++
			}
		}
		parts = append(parts, fmt.Sprintf("%s of %s did not fully succeed", Count(bad), plural(len(res.Jobs), "job", "jobs")))
	}
	return strings.Join(parts, "; ")
}

// failureText is a failed device's reason, on one line: the hub's error (code: description),
// or the status and payload the device answered.
func failureText(f reconcile.DeviceFailure) string {
	switch {
	case f.Code != "" || f.Description != "":
		parts := slices.DeleteFunc([]string{f.Code, f.Description}, func(s string) bool { return s == "" })
		return oneLineText(strings.Join(parts, ": "))
	case f.MethodStatus != nil:
		s := fmt.Sprintf("the device answered %d", *f.MethodStatus)
		if len(f.MethodPayload) > 0 && string(f.MethodPayload) != "null" {
			s += ": " + compactJSON(f.MethodPayload)
		}
		return s
	}
	return "(the hub gave no reason)"
}

// AbortText says which wave stopped an apply, why, and what the next apply does.
func AbortText(a *reconcile.RolloutAbort) string {
	if a.Wave == 0 {
		return fmt.Sprintf("%s: its convergence wait failed: %s.", a.Addr, a.Reason)
	}
	return fmt.Sprintf("%s: stopped at wave %d: %s. Later waves did not run; the next apply of the same change resumes the rollout at this wave.", a.Addr, a.Wave, a.Reason)
}
