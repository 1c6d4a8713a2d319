package render

import (
	"fmt"
	"io"
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
	what := "updating twins"
	if rc.Kind == reconcile.KindMethod && rc.Job != nil && rc.Job.CloudToDeviceMethod != nil {
		what = "invoking " + rc.Job.CloudToDeviceMethod.MethodName
	}
	v.out.printf("%s: %s on %s (job %s)\n", v.st.style(bold, rc.Addr), what, plural(rc.Devices, "device", "devices"), job.JobID)
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
	return fmt.Sprintf("%s — %s/%s succeeded, %s failed, %s running, %s pending [%s]",
		p.Status, Count(s.SucceededCount), Count(s.DeviceCount), Count(s.FailedCount),
		Count(s.RunningCount), Count(s.PendingCount), elapsed(p.Elapsed))
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
	if v.opts.TTY && v.liveWidth > 0 {
		v.out.printf("\n")
		v.liveWidth = 0
	}
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

// ApplyResult writes the failed devices of every job and the closing summary line.
func ApplyResult(w io.Writer, res *reconcile.ApplyResult, opts ApplyOptions) error {
	out := &writer{w: w}
	st := styler{opts.Color}
	maxListed := opts.MaxListed
	if maxListed <= 0 {
		maxListed = 20
	}
	failed, devices := 0, 0
	for i := range res.Jobs {
		j := &res.Jobs[i]
		failed += j.Stats.FailedCount + len(j.MethodErrors)
		devices += j.Stats.DeviceCount
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
	for _, a := range res.NotRun {
		out.printf("%s\n", st.style(red, a+": not applied (stopped after an earlier error)"))
	}
	defer func() {
		if line := callsLine("Apply", res.HubCalls); line != "" {
			out.printf("%s\n", st.style(dim, line))
		}
		if line := waitLine("Apply", res.HubWait); line != "" {
			out.printf("%s\n", st.style(dim, line))
		}
	}()
	switch {
	case len(res.Jobs) == 0 && len(res.NotRun) == 0:
		out.printf("\n%s\n", st.style(bold+green, "Apply complete! Nothing to do."))
	case res.Success():
		var twinJobs, twinDevices, methodJobs, methodDevices, later int
		for i := range res.Jobs {
			if res.Jobs[i].Scheduled {
				later++
				continue
			}
			if res.Jobs[i].Kind == reconcile.KindMethod {
				methodJobs++
				methodDevices += res.Jobs[i].Stats.SucceededCount
			} else {
				twinJobs++
				twinDevices += res.Jobs[i].Stats.SucceededCount
			}
		}
		var parts []string
		if twinJobs > 0 {
			parts = append(parts, fmt.Sprintf("%s on %s", plural(twinJobs, "twin update", "twin updates"), plural(twinDevices, "device", "devices")))
		}
		if methodJobs > 0 {
			parts = append(parts, fmt.Sprintf("%s on %s", plural(methodJobs, "method invocation", "method invocations"), plural(methodDevices, "device", "devices")))
		}
		if later > 0 {
			parts = append(parts, plural(later, "job", "jobs")+" scheduled to start later")
		}
		out.printf("\n%s\n", st.style(bold+green, "Apply complete! "+strings.Join(parts, ", ")+"."))
	default:
		bad := len(res.NotRun)
		for i := range res.Jobs {
			if !res.Jobs[i].Success() {
				bad++
			}
		}
		// Devices are counted per job: a device in two jobs counts twice.
		out.printf("\n%s\n", st.style(bold+red, fmt.Sprintf("Apply finished with failures: %d of %s did not fully succeed (%s of %s failed).",
			bad, plural(len(res.Jobs)+len(res.NotRun), "job", "jobs"), Count(failed), plural(devices, "device", "devices"))))
	}
	return out.err
}

func failureText(f reconcile.DeviceFailure) string {
	switch {
	case f.Code != "" || f.Description != "":
		s := f.Code
		if f.Description != "" {
			if s != "" {
				s += ": "
			}
			s += f.Description
		}
		return s
	case f.MethodStatus != nil:
		s := fmt.Sprintf("the device answered %d", *f.MethodStatus)
		if len(f.MethodPayload) > 0 && string(f.MethodPayload) != "null" {
			s += ": " + value(f.MethodPayload)
		}
		return s
	}
	return "failed (the hub gave no reason)"
}
