package render

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/reconcile"
	"github.com/iotplan/iotplan/schema"
)

// The machine-readable output of plan, apply and destroy with -json: JSON Lines, one event
// per line, in the manner of Terraform's machine-readable UI
// (https://developer.hashicorp.com/terraform/internals/machine-readable-ui): every event has
// "type", "@level", "@message" (one line for people), "@module" and "@timestamp", and the
// first is the version event. docs/json.md is the reference; the event types are below.

// UIVersion is the "ui" version the version event announces. Readers ignore fields they do
// not know within a major version; a new major version means a change they must refuse.
const UIVersion = "1.0"

// Event types.
const (
	EventVersion       = "version"
	EventDiagnostic    = "diagnostic"
	EventLog           = "log"
	EventPlannedChange = "planned_change"
	EventOutputs       = "outputs"
	EventChangeSummary = "change_summary"
	EventJobSlotWait   = "job_slot_wait"
	EventJobCreated    = "job_created"
	EventJobProgress   = "job_progress"
	EventJobCompleted  = "job_completed"
	EventDeviceFailed  = "device_failed"
	EventApplySummary  = "apply_summary"
	// Rollouts and convergence (waves.go).
	EventConvergeProgress = "converge_progress"
	EventWaveCompleted    = "wave_completed"
	EventRolloutPaused    = "rollout_paused"
)

// Levels of events, Terraform's names.
const (
	LevelInfo  = "info"
	LevelWarn  = "warn"
	LevelError = "error"
)

// jsonModule is the "@module" of every event.
const jsonModule = "iotplan.ui"

// JSONOptions configure a JSON stream.
type JSONOptions struct {
	// Version is iotplan's version, announced by the version event.
	Version string
	// Now stamps the events (nil: time.Now; tests fix it).
	Now func() time.Time
}

// JSONUI writes the events of one plan, apply or destroy run; it is the apply's
// reconcile.Hook. Its methods may be called from several goroutines: each event is written
// whole, on its own line.
type JSONUI struct {
	mu  sync.Mutex
	enc *json.Encoder
	now func() time.Time
	err error
}

var _ reconcile.Hook = (*JSONUI)(nil)

// header is what every event has.
type header struct {
	Level     string `json:"@level"`
	Message   string `json:"@message"`
	Module    string `json:"@module"`
	Timestamp string `json:"@timestamp"`
	Type      string `json:"type"`
}

// NewJSONUI starts a stream on w with its version event.
func NewJSONUI(w io.Writer, opts JSONOptions) *JSONUI {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // query text keeps its < and >
	u := &JSONUI{enc: enc, now: opts.Now}
	if u.now == nil {
		u.now = time.Now
	}
	u.write(struct {
		header
		Iotplan string `json:"iotplan"`
		UI      string `json:"ui"`
	}{u.head(EventVersion, LevelInfo, "iotplan "+opts.Version), opts.Version, UIVersion})
	return u
}

// Err is the first write error, if any.
func (u *JSONUI) Err() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.err
}

func (u *JSONUI) head(typ, level, message string) header {
	return header{Level: level, Message: oneLineText(message), Module: jsonModule,
		Timestamp: u.now().UTC().Format(time.RFC3339Nano), Type: typ}
}

func (u *JSONUI) write(event any) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.err == nil {
		u.err = u.enc.Encode(event)
	}
}

// Log writes a message that is no other event (an unfinished apply, a saved plan).
func (u *JSONUI) Log(level, message string) {
	u.write(u.head(EventLog, level, message))
}

// Diagnostics writes one diagnostic event per diagnostic.
func (u *JSONUI) Diagnostics(ds []schema.JSONDiagnostic) {
	for _, d := range ds {
		level, prefix := LevelError, "Error: "
		if d.Severity == "warning" {
			level, prefix = LevelWarn, "Warning: "
		}
		msg := prefix + d.Summary
		if d.Address != "" {
			msg = prefix + d.Address + ": " + d.Summary
		}
		u.write(struct {
			header
			Diagnostic schema.JSONDiagnostic `json:"diagnostic"`
		}{u.head(EventDiagnostic, level, msg), d})
	}
}

// Error writes an error that ended the command, as an error diagnostic without a range.
func (u *JSONUI) Error(message string) {
	u.Diagnostics([]schema.JSONDiagnostic{{Severity: "error", Summary: oneLineText(message)}})
}

// Plan writes a plan: a planned_change per resource, its warnings (targeting, the resources')
// as diagnostics, its notes as log events, its outputs, and the change_summary last.
// operation is "plan", "apply" or "destroy": the command that made the plan.
func (u *JSONUI) Plan(p *reconcile.Plan, operation string) {
	for _, r := range p.Resources {
		u.write(struct {
			header
			Change jsonChange `json:"change"`
		}{u.head(EventPlannedChange, LevelInfo, changeMessage(r)), changeJSON(r)})
	}
	var warnings []schema.JSONDiagnostic
	if len(p.Targets) > 0 {
		warnings = append(warnings, schema.JSONDiagnostic{Severity: "warning", Summary: "Resource targeting is in effect",
			Detail: TargetingWarning + "\n  -target " + strings.Join(p.Targets, "\n  -target ")})
	}
	for _, r := range p.Resources {
		for _, w := range r.Warnings {
			warnings = append(warnings, schema.JSONDiagnostic{Severity: "warning", Summary: w, Address: r.Addr})
		}
	}
	u.Diagnostics(warnings)
	if p.TierAssumed {
		u.Log(LevelWarn, fmt.Sprintf("the hub's tier is not declared; jobs are sized and hub calls paced for %s", p.HubTier()))
	}
	for _, n := range p.Notes {
		u.Log(LevelInfo, n)
	}
	if len(p.Outputs) > 0 {
		u.write(struct {
			header
			Outputs map[string]jsonOutput `json:"outputs"`
		}{u.head(EventOutputs, LevelInfo, "Outputs: "+Count(len(p.Outputs))), outputsJSON(p)})
	}
	u.write(struct {
		header
		Changes jsonSummary `json:"changes"`
	}{u.head(EventChangeSummary, LevelInfo, SummaryLine(p)), summaryJSON(p, operation)})
}

// jsonStats are a job's device statistics.
type jsonStats struct {
	DeviceCount int `json:"device_count"`
	Succeeded   int `json:"succeeded"`
	Failed      int `json:"failed"`
	Running     int `json:"running"`
	Pending     int `json:"pending"`
}

func statsJSON(s hubapi.DeviceJobStatistics) jsonStats {
	return jsonStats{DeviceCount: s.DeviceCount, Succeeded: s.SucceededCount, Failed: s.FailedCount, Running: s.RunningCount, Pending: s.PendingCount}
}

// SlotWait implements reconcile.Hook.
func (u *JSONUI) SlotWait(rc *reconcile.ResourceChange, holders []hubapi.JobResponse, limit int, waited time.Duration) {
	type holder struct {
		JobID     string  `json:"job_id"`
		Type      string  `json:"type"`
		Status    string  `json:"status"`
		StartTime *string `json:"start_time"`
	}
	body := struct {
		Address       string   `json:"address"`
		Limit         int      `json:"limit"`
		WaitedSeconds float64  `json:"waited_seconds"`
		Holders       []holder `json:"holders"`
	}{rc.Addr, limit, waited.Seconds(), []holder{}}
	for _, j := range holders {
		h := holder{JobID: j.JobID, Type: j.Type, Status: j.Status}
		if j.StartTime != nil {
			h.StartTime = timeJSON(*j.StartTime)
		}
		body.Holders = append(body.Holders, h)
	}
	msg := fmt.Sprintf("%s: waiting for a job slot: the hub runs %d at a time, held by %s [%s]", rc.Addr, limit, plural(len(holders), "job", "jobs"), elapsed(waited))
	u.write(struct {
		header
		SlotWait any `json:"slot_wait"`
	}{u.head(EventJobSlotWait, LevelInfo, msg), body})
}

// JobCreated implements reconcile.Hook.
func (u *JSONUI) JobCreated(rc *reconcile.ResourceChange, job hubapi.JobResponse) {
	body := struct {
		JobID          string   `json:"job_id"`
		Address        string   `json:"address"`
		Type           string   `json:"type"`
		Step           string   `json:"step,omitempty"`
		Status         string   `json:"status"`
		PlannedDevices int      `json:"planned_devices"`
		Method         string   `json:"method,omitempty"`
		Keys           []string `json:"keys,omitempty"`
		StartTime      *string  `json:"start_time"`
	}{JobID: job.JobID, Address: rc.Addr, Type: job.Type, Status: job.Status, PlannedDevices: rc.Devices}
	for _, pj := range rc.Jobs {
		if pj.Request.JobID == job.JobID {
			body.PlannedDevices, body.Step, body.Keys = pj.Devices, pj.Step, pj.Keys
			if body.Type == "" {
				body.Type = pj.Request.Type
			}
			if m := pj.Request.CloudToDeviceMethod; m != nil {
				body.Method = m.MethodName
			}
		}
	}
	if job.StartTime != nil {
		body.StartTime = timeJSON(*job.StartTime)
	}
	msg := fmt.Sprintf("%s: created job %s (%s on %s)", rc.Addr, job.JobID, body.Type, plural(body.PlannedDevices, "device", "devices"))
	u.write(struct {
		header
		Job any `json:"job"`
	}{u.head(EventJobCreated, LevelInfo, msg), body})
}

// JobProgress implements reconcile.Hook: one event per poll of the job (apply polls within a
// small share of the hub's quota, so there are few).
func (u *JSONUI) JobProgress(rc *reconcile.ResourceChange, p reconcile.Progress) {
	body := struct {
		JobID          string    `json:"job_id"`
		Address        string    `json:"address"`
		Status         string    `json:"status"`
		Statistics     jsonStats `json:"statistics"`
		ElapsedSeconds float64   `json:"elapsed_seconds"`
	}{p.JobID, rc.Addr, p.Status, statsJSON(p.Stats), p.Elapsed.Seconds()}
	u.write(struct {
		header
		Job any `json:"job"`
	}{u.head(EventJobProgress, LevelInfo, rc.Addr+": "+progressText(p)), body})
}

// JobDone implements reconcile.Hook: a device_failed event per failed device read, then the
// job_completed event.
func (u *JSONUI) JobDone(rc *reconcile.ResourceChange, r *reconcile.JobResult) {
	for _, f := range r.Failures {
		u.deviceFailed(rc, r, f, "failed")
	}
	for _, f := range r.MethodErrors {
		u.deviceFailed(rc, r, f, "error_status")
	}
	body := struct {
		JobID          string    `json:"job_id"`
		Address        string    `json:"address"`
		Type           string    `json:"type"`
		Step           string    `json:"step,omitempty"`
		Status         string    `json:"status"`
		Success        bool      `json:"success"`
		Scheduled      bool      `json:"scheduled"`
		Reattached     bool      `json:"reattached"`
		FailureReason  string    `json:"failure_reason,omitempty"`
		Statistics     jsonStats `json:"statistics"`
		ErrorStatuses  int       `json:"error_status_devices"`
		Unlisted       int       `json:"unlisted_failures"`
		ElapsedSeconds float64   `json:"elapsed_seconds"`
		Notes          []string  `json:"notes"`
	}{r.JobID, rc.Addr, r.Type, r.Step, r.Status, r.Success(), r.Scheduled, r.Reattached, oneLineText(r.FailureReason),
		statsJSON(r.Stats), len(r.MethodErrors), r.MoreFailures, r.Elapsed.Seconds(), nonNil(r.Notes)}
	level := LevelInfo
	if !r.Success() {
		level = LevelError
	}
	msg := fmt.Sprintf("%s: job %s %s — %s [%s]", rc.Addr, r.JobID, r.Status, countsText(Count(r.Stats.SucceededCount)+"/"+Count(r.Stats.DeviceCount), r.Stats), elapsed(r.Elapsed))
	u.write(struct {
		header
		Job any `json:"job"`
	}{u.head(EventJobCompleted, level, msg), body})
}

// deviceFailed writes one failed device. kind is "failed" (the hub failed the device's job)
// or "error_status" (the device answered a method with a status outside 200–299, which the
// hub counts as completed). A device's answer is left out when the method's payload is
// sensitive: a device may echo what it was sent.
func (u *JSONUI) deviceFailed(rc *reconcile.ResourceChange, r *reconcile.JobResult, f reconcile.DeviceFailure, kind string) {
	if rc.SensitivePayload || !json.Valid(f.MethodPayload) {
		f.MethodPayload = nil
	}
	body := struct {
		JobID         string          `json:"job_id"`
		Address       string          `json:"address"`
		DeviceID      string          `json:"device_id"`
		Kind          string          `json:"kind"`
		ErrorCode     string          `json:"error_code"`
		ErrorMessage  string          `json:"error_message"`
		MethodStatus  *int            `json:"method_status"`
		MethodPayload json.RawMessage `json:"method_payload,omitempty"`
	}{r.JobID, rc.Addr, f.DeviceID, kind, f.Code, oneLineText(f.Description), f.MethodStatus, f.MethodPayload}
	u.write(struct {
		header
		Failure any `json:"failure"`
	}{u.head(EventDeviceFailed, LevelError, fmt.Sprintf("%s: %s failed: %s", rc.Addr, f.DeviceID, failureText(f))), body})
}

// jsonOutcome is how an apply ended (the apply_summary event).
type jsonOutcome struct {
	Operation         string         `json:"operation"`
	Result            string         `json:"result"`
	Success           bool           `json:"success"`
	Jobs              int            `json:"jobs"`
	TwinUpdates       int            `json:"twin_updates"`
	TwinDevices       int            `json:"twin_devices"`
	MethodInvocations int            `json:"method_invocations"`
	MethodDevices     int            `json:"method_devices"`
	ScheduledJobs     int            `json:"scheduled_jobs"`
	Devices           int            `json:"devices"`
	FailedDevices     int            `json:"failed_devices"`
	Refused           []jsonRefused  `json:"refused"`
	NotRun            []string       `json:"not_run"`
	Open              bool           `json:"open"`
	RerunDevices      int            `json:"rerun_devices"`
	RerunAll          bool           `json:"rerun_all"`
	HubCalls          map[string]int `json:"hub_calls"`
	HubWait           *jsonWait      `json:"hub_wait,omitempty"`
	Aborted           *jsonAbort     `json:"aborted,omitempty"`
}

// jsonAbort is the rollout wave that stopped an apply.
type jsonAbort struct {
	Address string `json:"address"`
	Wave    int    `json:"wave"`
	Reason  string `json:"reason"`
}

type jsonRefused struct {
	Address string `json:"address"`
	Reason  string `json:"reason"`
}

// ApplyResult writes the apply_summary event, the last of an apply; stopped and interrupted
// are as for the human ApplyResult, operation is "apply" or "destroy".
func (u *JSONUI) ApplyResult(res *reconcile.ApplyResult, stopped, interrupted bool, operation string) {
	kind, line := Outcome(res, stopped, interrupted)
	t := tallyApply(res)
	o := jsonOutcome{Operation: operation, Result: kind, Success: !stopped && res.Success(), Jobs: len(res.Jobs),
		TwinUpdates: t.twinJobs, TwinDevices: t.twinDevices, MethodInvocations: t.methodJobs, MethodDevices: t.methodDevices,
		ScheduledJobs: t.later, Devices: t.devices, FailedDevices: t.failed, Refused: []jsonRefused{}, NotRun: nonNil(res.NotRun),
		Open: res.Open, RerunDevices: res.Unmarked, RerunAll: res.UnmarkedAll, HubCalls: nonNilMap(res.HubCalls), HubWait: waitJSON(res.HubWait)}
	for _, r := range res.Refused {
		o.Refused = append(o.Refused, jsonRefused{r.Addr, r.Reason})
	}
	if a := res.Aborted; a != nil {
		o.Aborted = &jsonAbort{a.Addr, a.Wave, a.Reason}
	}
	level := LevelInfo
	if !o.Success {
		level = LevelError
	}
	u.write(struct {
		header
		Outcome jsonOutcome `json:"outcome"`
	}{u.head(EventApplySummary, level, line), o})
}
