package render

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/iotplan/iotplan/internal/reconcile"
)

// The JSON form of a plan's changes, shared by the planned_change events of plan/apply -json
// and by 'iotplan show -json' (docs/json.md). Values from sensitive variables are replaced by
// SensitiveValue and flagged, as in the human plan: a saved plan holds them (apply must send
// them), its JSON form never does. A job's query condition and patch are left out for the same
// reason: they are built from the target and the values.

// ShowFormatVersion is the format_version of 'iotplan show -json'. As Terraform's
// (https://developer.hashicorp.com/terraform/internals/json-format): the minor version grows
// with additions readers may ignore, the major one with changes they must not accept.
const ShowFormatVersion = "1.0"

// jsonChange is one resource of a plan.
type jsonChange struct {
	Address         string           `json:"address"`
	Kind            string           `json:"kind"`
	Action          string           `json:"action"`
	Target          string           `json:"target"`
	SensitiveTarget bool             `json:"sensitive_target"`
	TargetedDevices int              `json:"targeted_devices"`
	Devices         int              `json:"devices"`
	Transitions     []jsonTransition `json:"transitions"`
	Method          *jsonMethod      `json:"method,omitempty"`
	SampleDeviceIDs []string         `json:"sample_device_ids"`
	RunOnce         *jsonRunOnce     `json:"run_once,omitempty"`
	Jobs            []jsonPlannedJob `json:"jobs"`
	Refused         string           `json:"refused,omitempty"`
	Notes           []string         `json:"notes"`
	Warnings        []string         `json:"warnings"`
	Rollout         *jsonRollout     `json:"rollout,omitempty"`
	Converge        *jsonConverge    `json:"converge,omitempty"`
}

// jsonRollout is a resource's waves; bounds are deviceId bounds (device ids are not secrets).
type jsonRollout struct {
	Waves           []reconcile.PlannedWave `json:"waves"`
	MaxFailureRatio *float64                `json:"max_failure_ratio"`
	MaxFailures     *int                    `json:"max_failures"`
	PauseSeconds    int64                   `json:"pause_seconds"`
	Resumed         int                     `json:"resumed"`
	Queries         int                     `json:"queries"`
}

// jsonConverge is what apply waits for after each wave. Its conditions are left out: they
// hold the desired values, which may be sensitive.
type jsonConverge struct {
	TimeoutSeconds int64   `json:"timeout_seconds"`
	MinRatio       float64 `json:"min_ratio"`
}

// jsonTransition is one distinct change of one key: From → To on Devices devices.
type jsonTransition struct {
	Key             string          `json:"key"`
	Op              string          `json:"op"`
	From            json.RawMessage `json:"from,omitempty"`
	To              json.RawMessage `json:"to,omitempty"`
	OtherValues     bool            `json:"other_values"`
	Sensitive       bool            `json:"sensitive"`
	Devices         int             `json:"devices"`
	SampleDeviceIDs []string        `json:"sample_device_ids"`
}

type jsonMethod struct {
	Name                   string          `json:"name"`
	Payload                json.RawMessage `json:"payload"`
	SensitivePayload       bool            `json:"sensitive_payload"`
	ResponseTimeoutSeconds int             `json:"response_timeout_seconds"`
	ConnectTimeoutSeconds  int             `json:"connect_timeout_seconds"`
}

type jsonRunOnce struct {
	RunTag     string `json:"run_tag"`
	AlreadyRan int    `json:"already_ran"`
}

type jsonPlannedJob struct {
	JobID               string   `json:"job_id"`
	Type                string   `json:"type"`
	Step                string   `json:"step,omitempty"`
	Wave                int      `json:"wave,omitempty"`
	Devices             int      `json:"devices"`
	Keys                []string `json:"keys,omitempty"`
	ExpectedSeconds     int64    `json:"expected_seconds"`
	MaxExecutionSeconds int64    `json:"max_execution_seconds"`
	StartTime           *string  `json:"start_time"`
}

// sensitiveJSON is SensitiveValue as a JSON value, standing in for a sensitive one.
var sensitiveJSON = json.RawMessage(`"` + SensitiveValue + `"`)

func changeJSON(r reconcile.ResourceChange) jsonChange {
	c := jsonChange{Address: r.Addr, Kind: r.Kind, Action: string(r.Action), Target: r.Target, SensitiveTarget: r.SensitiveTarget,
		TargetedDevices: r.TargetedDevices, Devices: r.Devices, Transitions: []jsonTransition{},
		SampleDeviceIDs: nonNil(r.SampleDeviceIDs), Jobs: []jsonPlannedJob{}, Refused: r.Refused,
		Notes: nonNil(r.Notes), Warnings: nonNil(r.Warnings)}
	if r.SensitiveTarget {
		c.Target = SensitiveValue
	}
	for _, t := range r.Transitions {
		c.Transitions = append(c.Transitions, transitionJSON(r, t))
	}
	if r.RunTag != "" {
		c.RunOnce = &jsonRunOnce{RunTag: r.RunTag, AlreadyRan: r.AlreadyRan}
	}
	if ro := r.Rollout; ro != nil {
		c.Rollout = &jsonRollout{Waves: ro.Waves, MaxFailureRatio: ro.MaxFailureRatio, MaxFailures: ro.MaxFailures,
			PauseSeconds: ro.PauseSeconds, Resumed: ro.Resumed, Queries: ro.Queries}
	}
	if cv := r.Converge; cv != nil {
		c.Converge = &jsonConverge{TimeoutSeconds: cv.TimeoutSeconds, MinRatio: cv.MinRatio}
	}
	for _, pj := range r.Jobs {
		c.Jobs = append(c.Jobs, plannedJobJSON(pj))
		if m := pj.Request.CloudToDeviceMethod; m != nil {
			c.Method = &jsonMethod{Name: m.MethodName, Payload: m.Payload, SensitivePayload: r.SensitivePayload,
				ResponseTimeoutSeconds: m.ResponseTimeoutInSeconds, ConnectTimeoutSeconds: m.ConnectTimeoutInSeconds}
			if r.SensitivePayload {
				c.Method.Payload = sensitiveJSON
			} else if len(m.Payload) == 0 {
				c.Method.Payload = json.RawMessage("null")
			}
		}
	}
	return c
}

func transitionJSON(r reconcile.ResourceChange, t reconcile.Transition) jsonTransition {
	jt := jsonTransition{Key: t.Key, Op: string(t.Op), From: t.From, To: t.To, OtherValues: t.OtherValues,
		Sensitive: IsSensitive(r.SensitiveKeys, t.Key), Devices: t.Devices, SampleDeviceIDs: nonNil(t.SampleDeviceIDs)}
	if jt.Sensitive {
		if len(jt.From) > 0 {
			jt.From = sensitiveJSON
		}
		if len(jt.To) > 0 {
			jt.To = sensitiveJSON
		}
	}
	return jt
}

func plannedJobJSON(pj reconcile.PlannedJob) jsonPlannedJob {
	j := jsonPlannedJob{JobID: pj.Request.JobID, Type: pj.Request.Type, Step: pj.Step, Wave: pj.Wave, Devices: pj.Devices, Keys: pj.Keys,
		ExpectedSeconds: pj.ExpectedSeconds, MaxExecutionSeconds: pj.Request.MaxExecutionTimeInSeconds}
	if s := pj.Request.StartTime; s != nil {
		j.StartTime = timeJSON(*s)
	}
	return j
}

func timeJSON(t time.Time) *string {
	s := t.UTC().Format(time.RFC3339)
	return &s
}

// nonNil makes an empty list [] rather than null, so readers need not tell the two apart.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// jsonSummary counts a plan's changes by action (change_summary, and show's summary).
type jsonSummary struct {
	Operation string `json:"operation"`
	Update    int    `json:"update"`
	Remove    int    `json:"remove"`
	Invoke    int    `json:"invoke"`
	NoOp      int    `json:"no_op"`
	Refused   int    `json:"refused"`
	// TwinDevices counts the devices that updates and removals touch: distinct, unless
	// TwinDevicesUpperBound (a sum over resources that may share devices).
	TwinDevices           int            `json:"twin_devices"`
	TwinDevicesUpperBound bool           `json:"twin_devices_upper_bound"`
	MethodDevices         int            `json:"method_devices"`
	HasChanges            bool           `json:"has_changes"`
	HubCalls              map[string]int `json:"hub_calls"`
	HubWait               *jsonWait      `json:"hub_wait,omitempty"`
}

type jsonWait struct {
	WaitedSeconds  float64 `json:"waited_seconds"`
	ThrottledCalls int     `json:"throttled_calls"`
	PacedSeconds   float64 `json:"paced_seconds"`
	PacedCalls     int     `json:"paced_calls"`
}

func summaryJSON(p *reconcile.Plan, operation string) jsonSummary {
	s := p.Summary()
	js := jsonSummary{Operation: operation, Refused: s.Refused, TwinDevices: s.TwinDevices, TwinDevicesUpperBound: s.TwinDevicesSummed,
		MethodDevices: s.MethodDevices, HasChanges: p.HasChanges(), HubCalls: nonNilMap(p.HubCalls), HubWait: waitJSON(p.HubWait)}
	for _, r := range p.Resources {
		switch r.Action {
		case reconcile.Update:
			js.Update++
		case reconcile.Remove:
			js.Remove++
		case reconcile.Invoke:
			js.Invoke++
		default:
			js.NoOp++
		}
	}
	return js
}

func nonNilMap(m map[string]int) map[string]int {
	if m == nil {
		return map[string]int{}
	}
	return m
}

func waitJSON(w *reconcile.HubWait) *jsonWait {
	if w == nil {
		return nil
	}
	return &jsonWait{WaitedSeconds: w.Waited.Seconds(), ThrottledCalls: w.Throttled, PacedSeconds: w.Paced.Seconds(), PacedCalls: w.PacedCalls}
}

// changeMessage is a planned change in one line, the @message of its event.
func changeMessage(r reconcile.ResourceChange) string {
	var s string
	switch r.Action {
	case reconcile.Update:
		s = fmt.Sprintf("%s: update on %s of %s targeted", r.Addr, plural(r.Devices, "device", "devices"), Count(r.TargetedDevices))
	case reconcile.Remove:
		s = fmt.Sprintf("%s: remove its keys from %s", r.Addr, plural(r.Devices, "device", "devices"))
	case reconcile.Invoke:
		s = fmt.Sprintf("%s: invoke %s on %s", r.Addr, r.MethodName(), plural(r.Devices, "device", "devices"))
	default:
		s = r.Addr + ": no changes"
	}
	if r.Refused != "" {
		s += " (apply will refuse it)"
	}
	return s
}

// jsonOutput is an output value of the configuration, evaluated with the plan's device
// counts: Value is absent when it is sensitive or not known in the plan.
type jsonOutput struct {
	Sensitive bool            `json:"sensitive"`
	Known     bool            `json:"known"`
	Value     json.RawMessage `json:"value,omitempty"`
}

// outputsJSON is the plan's outputs by name, as Terraform's JSON keys them.
func outputsJSON(p *reconcile.Plan) map[string]jsonOutput {
	out := make(map[string]jsonOutput, len(p.Outputs))
	for _, o := range p.Outputs {
		jo := jsonOutput{Sensitive: o.Sensitive, Known: o.Known, Value: o.Value}
		if o.Sensitive || !o.Known || !json.Valid(o.Value) {
			jo.Value = nil
		}
		out[o.Name] = jo
	}
	return out
}

// jsonShow is the document 'iotplan show -json' writes for a saved plan.
type jsonShow struct {
	FormatVersion     string                `json:"format_version"`
	IotplanVersion    string                `json:"iotplan_version"`
	PlanFormatVersion string                `json:"plan_format_version"`
	CreatedAt         *string               `json:"created_at"`
	Hub               string                `json:"hub"`
	State             jsonState             `json:"state"`
	ApplyID           string                `json:"apply_id"`
	Destroy           bool                  `json:"destroy"`
	Tier              *jsonTier             `json:"tier"`
	Configuration     []string              `json:"configuration"`
	Targets           []string              `json:"targets"`
	ResourceChanges   []jsonChange          `json:"resource_changes"`
	Outputs           map[string]jsonOutput `json:"outputs"`
	Summary           jsonSummary           `json:"summary"`
	SummaryLine       string                `json:"summary_line"`
	Notes             []string              `json:"notes"`
}

type jsonState struct {
	Name    string `json:"name"`
	Serial  int64  `json:"serial"`
	Lineage string `json:"lineage"`
}

type jsonTier struct {
	Name    string `json:"name"`
	Units   int    `json:"units"`
	Assumed bool   `json:"assumed"`
}

// ShowJSON writes a saved plan as one JSON document for scripts ('iotplan show -json'):
// what it would change, resource by resource, and where (hub, state), with the iotplan
// version that reads it.
func ShowJSON(w io.Writer, p *reconcile.Plan, version string) error {
	doc := jsonShow{FormatVersion: ShowFormatVersion, IotplanVersion: version, PlanFormatVersion: p.FormatVersion,
		Hub: p.Hub, State: jsonState{Name: p.StateName, Serial: p.StateSerial, Lineage: p.StateLineage},
		ApplyID: p.ApplyID, Destroy: p.Destroy, Configuration: nonNil(p.Config), Targets: nonNil(p.Targets),
		ResourceChanges: []jsonChange{}, Outputs: outputsJSON(p),
		Summary: summaryJSON(p, "plan"), SummaryLine: SummaryLine(p), Notes: nonNil(p.Notes)}
	if !p.CreatedAt.IsZero() {
		doc.CreatedAt = timeJSON(p.CreatedAt)
	}
	if p.TierName != "" {
		doc.Tier = &jsonTier{Name: p.TierName, Units: p.TierUnits, Assumed: p.TierAssumed}
	}
	for _, r := range p.Resources {
		doc.ResourceChanges = append(doc.ResourceChanges, changeJSON(r))
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}
