package render

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/reconcile"
	"github.com/iotplan/iotplan/schema"
)

// eventSchema is the documented shape of each event type (docs/json.md), beyond the fields
// every event has: a dotted path and its JSON kind ("string", "number", "bool", "array",
// "object", or two joined by "|", e.g. "string|null").
var eventSchema = map[string]map[string]string{
	EventVersion:    {"iotplan": "string", "ui": "string"},
	EventDiagnostic: {"diagnostic.severity": "string", "diagnostic.summary": "string", "diagnostic.detail": "string"},
	EventLog:        {},
	EventOutputs:    {"outputs": "object"},
	EventPlannedChange: {"change.address": "string", "change.kind": "string", "change.action": "string", "change.target": "string",
		"change.sensitive_target": "bool", "change.targeted_devices": "number", "change.devices": "number", "change.transitions": "array",
		"change.sample_device_ids": "array", "change.jobs": "array", "change.notes": "array", "change.warnings": "array"},
	EventChangeSummary: {"changes.operation": "string", "changes.update": "number", "changes.remove": "number", "changes.invoke": "number",
		"changes.no_op": "number", "changes.refused": "number", "changes.twin_devices": "number", "changes.twin_devices_upper_bound": "bool",
		"changes.method_devices": "number", "changes.has_changes": "bool", "changes.hub_calls": "object"},
	EventJobSlotWait: {"slot_wait.address": "string", "slot_wait.limit": "number", "slot_wait.waited_seconds": "number", "slot_wait.holders": "array"},
	EventJobCreated: {"job.job_id": "string", "job.address": "string", "job.type": "string", "job.status": "string",
		"job.planned_devices": "number", "job.start_time": "string|null"},
	EventJobProgress: {"job.job_id": "string", "job.address": "string", "job.status": "string", "job.elapsed_seconds": "number",
		"job.statistics.device_count": "number", "job.statistics.succeeded": "number", "job.statistics.failed": "number",
		"job.statistics.running": "number", "job.statistics.pending": "number"},
	EventJobCompleted: {"job.job_id": "string", "job.address": "string", "job.type": "string", "job.status": "string", "job.success": "bool",
		"job.scheduled": "bool", "job.reattached": "bool", "job.statistics.device_count": "number", "job.statistics.failed": "number",
		"job.error_status_devices": "number", "job.unlisted_failures": "number", "job.elapsed_seconds": "number", "job.notes": "array"},
	EventDeviceFailed: {"failure.job_id": "string", "failure.address": "string", "failure.device_id": "string", "failure.kind": "string",
		"failure.error_code": "string", "failure.error_message": "string", "failure.method_status": "number|null"},
	EventApplySummary: {"outcome.operation": "string", "outcome.result": "string", "outcome.success": "bool", "outcome.jobs": "number",
		"outcome.twin_updates": "number", "outcome.twin_devices": "number", "outcome.method_invocations": "number",
		"outcome.method_devices": "number", "outcome.scheduled_jobs": "number", "outcome.devices": "number",
		"outcome.failed_devices": "number", "outcome.refused": "array", "outcome.not_run": "array", "outcome.open": "bool",
		"outcome.hub_calls": "object"},
	EventConvergeProgress: {"converge.address": "string", "converge.wave": "number", "converge.targeted": "number",
		"converge.converged": "number", "converge.pending": "number", "converge.not_reporting": "number",
		"converge.elapsed_seconds": "number", "converge.done": "bool", "converge.met": "bool", "converge.pending_devices": "array"},
	EventWaveCompleted: {"wave.address": "string", "wave.wave": "number", "wave.waves": "number", "wave.attempted": "number", "wave.failed": "number"},
	EventRolloutPaused: {"pause.address": "string", "pause.next_wave": "number", "pause.pause_seconds": "number"},
}

// transitionSchema is the shape of each item of a planned change's transitions.
var transitionSchema = map[string]string{"key": "string", "op": "string", "devices": "number", "other_values": "bool",
	"sensitive": "bool", "sample_device_ids": "array"}

// kindOf is the JSON kind of a decoded value.
func kindOf(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "bool"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return "?"
}

// lookup follows a dotted path through decoded objects.
func lookup(obj map[string]any, path string) (any, bool) {
	var v any = obj
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[k]; !ok {
			return nil, false
		}
	}
	return v, true
}

// checkFields checks that obj has every field of shape with its kind.
func checkFields(t *testing.T, what string, obj map[string]any, shape map[string]string) {
	t.Helper()
	for path, kinds := range shape {
		v, ok := lookup(obj, path)
		if !ok {
			t.Errorf("%s: no %s in %v", what, path, obj)
			continue
		}
		if !strings.Contains("|"+kinds+"|", "|"+kindOf(v)+"|") {
			t.Errorf("%s: %s is %s (%v), want %s", what, path, kindOf(v), v, kinds)
		}
	}
}

// CheckEvent checks one decoded event against the documented schema: the fields every event
// has, and those of its type. It returns the type.
func checkEvent(t *testing.T, line int, ev map[string]any) string {
	t.Helper()
	checkFields(t, "event", ev, map[string]string{"type": "string", "@level": "string", "@message": "string", "@module": "string", "@timestamp": "string"})
	typ, _ := ev["type"].(string)
	shape, known := eventSchema[typ]
	if !known {
		t.Errorf("line %d: unknown event type %q", line, typ)
		return typ
	}
	checkFields(t, typ, ev, shape)
	if ts, _ := ev["@timestamp"].(string); ts != "" {
		if _, err := time.Parse(time.RFC3339, ts); err != nil {
			t.Errorf("line %d: @timestamp %q is not RFC 3339: %v", line, ts, err)
		}
	}
	if l := ev["@level"]; l != LevelInfo && l != LevelWarn && l != LevelError {
		t.Errorf("line %d: @level %v", line, l)
	}
	if m, _ := ev["@message"].(string); m == "" || strings.ContainsAny(m, "\r\n") {
		t.Errorf("line %d: @message %q is not one line of text", line, m)
	}
	if typ == EventPlannedChange {
		ts, _ := lookup(ev, "change.transitions")
		for _, tr := range ts.([]any) {
			checkFields(t, "transition", tr.(map[string]any), transitionSchema)
		}
	}
	return typ
}

// decodeStream decodes JSON Lines, failing on any line that is not one JSON object, and
// checks each event against the schema.
func decodeStream(t *testing.T, b []byte) (events []map[string]any, types []string) {
	t.Helper()
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		var ev map[string]any
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("line %d is not a JSON object: %v\n%s", n, err, sc.Bytes())
		}
		events = append(events, ev)
		types = append(types, checkEvent(t, n, ev))
	}
	return events, types
}

var fixedNow = func() time.Time { return time.Date(2026, 11, 25, 17, 0, 0, 0, time.UTC) }

// jsonApplyRun drives a JSON stream through a whole apply, as the CLI and reconcile.Apply do:
// a configuration warning, the plan, a wait for a slot, two jobs (one with failures) and the
// summary.
func jsonApplyRun(u *JSONUI, p *reconcile.Plan) {
	u.Diagnostics([]schema.JSONDiagnostic{{Severity: "warning", Summary: "Connection string written in the configuration",
		Range: &schema.JSONRange{Filename: "main.hcl", Start: schema.JSONPos{Line: 1, Column: 1}, End: schema.JSONPos{Line: 1, Column: 4, Byte: 3}}}})
	u.Log(LevelWarn, "An apply has not finished.\nSecond line.")
	p.Targets = []string{"twin.door_location", "method.lock_door"}
	p.Outputs = []reconcile.Output{{Name: "doors", Known: true, Value: raw(`9815`)}, {Name: "later", Known: false}}
	u.Plan(p, "apply")
	twin, method := &p.Resources[0], &p.Resources[2]
	u.SlotWait(twin, []hubapi.JobResponse{{JobID: "nightly-reboot", Type: hubapi.JobTypeDeviceMethod, Status: hubapi.JobStatusRunning}}, 1, 24*time.Second)
	twinJob := twin.Jobs[0].Request.JobID
	u.JobCreated(twin, hubapi.JobResponse{JobID: twinJob, Type: hubapi.JobTypeUpdateTwin, Status: "queued"})
	u.JobProgress(twin, reconcile.Progress{JobID: twinJob, Status: "running", Elapsed: time.Second,
		Stats: hubapi.DeviceJobStatistics{DeviceCount: 9815, SucceededCount: 1200, RunningCount: 10, PendingCount: 8605}})
	twinDone := &reconcile.JobResult{Addr: twin.Addr, JobID: twinJob, Type: hubapi.JobTypeUpdateTwin, Status: "completed",
		Stats: hubapi.DeviceJobStatistics{DeviceCount: 9815, SucceededCount: 9815}, Elapsed: 65 * time.Second}
	u.JobDone(twin, twinDone)
	u.ConvergeProgress(twin, reconcile.ConvergeProgress{Wave: 1, Targeted: 100, Converged: 90, NotReporting: 4, Elapsed: 30 * time.Second})
	u.WaveDone(twin, reconcile.WaveResult{Wave: 1, Attempted: 100, Failed: 1})
	u.Pausing(twin, 2, 10*time.Minute)
	m := methodResult()
	m.Type = hubapi.JobTypeDeviceMethod
	u.JobCreated(method, hubapi.JobResponse{JobID: m.JobID, Type: hubapi.JobTypeDeviceMethod, Status: "queued", StartTime: method.Jobs[0].Request.StartTime})
	u.JobDone(method, m)
	u.ApplyResult(&reconcile.ApplyResult{Jobs: []reconcile.JobResult{*twinDone, *m}, NotRun: []string{"method.later"},
		Refused:  []reconcile.RefusedChange{{Addr: "twin.racy", Reason: "the hub's answers disagree"}},
		HubCalls: map[string]int{"job.create": 2}}, false, false, "apply")
	u.Error("watching job x: the hub answered 503\nwith a body")
}

// TestJSONStreamSchema drives every event type and checks each line against the schema, the
// order (version first) and the values that carry the plan and the result.
func TestJSONStreamSchema(t *testing.T) {
	var b bytes.Buffer
	u := NewJSONUI(&b, JSONOptions{Version: "v1.2.3", Now: fixedNow})
	jsonApplyRun(u, tutorialPlan())
	if err := u.Err(); err != nil {
		t.Fatal(err)
	}
	events, types := decodeStream(t, b.Bytes())
	seen := map[string]int{}
	for _, typ := range types {
		seen[typ]++
	}
	for typ := range eventSchema {
		if seen[typ] == 0 {
			t.Errorf("the run wrote no %s event", typ)
		}
	}
	if types[0] != EventVersion || events[0]["iotplan"] != "v1.2.3" || events[0]["ui"] != UIVersion {
		t.Errorf("first event = %v, want the version", events[0])
	}
	if seen[EventPlannedChange] != 4 || seen[EventDeviceFailed] != 3 || seen[EventJobCompleted] != 2 {
		t.Errorf("event counts %v: want a planned_change per resource (4), a device_failed per failure read (3), 2 job_completed", seen)
	}
	byType := func(typ string) map[string]any {
		for i, ty := range types {
			if ty == typ {
				return events[i]
			}
		}
		return nil
	}
	change := byType(EventPlannedChange)["change"].(map[string]any)
	tr := change["transitions"].([]any)[0].(map[string]any)
	if change["address"] != "twin.door_location" || change["devices"] != float64(9815) || change["targeted_devices"] != float64(10003) ||
		tr["key"] != "desired.building" || tr["from"] != "42" || tr["to"] != "43" || tr["devices"] != float64(9812) || len(tr["sample_device_ids"].([]any)) != 3 {
		t.Errorf("planned_change = %v", change)
	}
	if s := byType(EventChangeSummary)["changes"].(map[string]any); s["update"] != float64(1) || s["invoke"] != float64(1) || s["no_op"] != float64(2) || s["twin_devices"] != float64(9815) {
		t.Errorf("change_summary = %v", s)
	}
	if o := byType(EventApplySummary); o["@level"] != LevelError || o["outcome"].(map[string]any)["result"] != OutcomeFailures ||
		o["outcome"].(map[string]any)["failed_devices"] != float64(4) {
		t.Errorf("apply_summary = %v", o)
	}
	if f := byType(EventDeviceFailed)["failure"].(map[string]any); f["device_id"] != "door-00003" || f["error_code"] != "DeviceNotOnline" || f["kind"] != "failed" {
		t.Errorf("device_failed = %v", f)
	}
	if d := events[len(events)-1]; d["type"] != EventDiagnostic || d["@level"] != LevelError {
		t.Errorf("the error is not an error diagnostic: %v", d)
	}
}

// TestJSONPlanHidesSensitiveValues: the values, target and payload of sensitive variables,
// and what a device answered to a sensitive payload, never appear in the stream or in show's
// document; they are flagged instead.
func TestJSONPlanHidesSensitiveValues(t *testing.T) {
	const secret = "s3cr3t-t0ken"
	p := tutorialPlan()
	twin, method := &p.Resources[0], &p.Resources[2]
	twin.Target, twin.SensitiveTarget = "tags.token = '"+secret+"'", true
	twin.SensitiveKeys = []string{"desired.building"}
	twin.Transitions[0].From, twin.Transitions[0].To = raw(`"`+secret+`-old"`), raw(`{"v":"`+secret+`"}`)
	method.SensitivePayload = true
	p.Outputs = []reconcile.Output{{Name: "token", Sensitive: true, Known: true, Value: raw(`"` + secret + `"`)}}
	method.Jobs[0].Request.CloudToDeviceMethod.Payload = raw(`{"token":"` + secret + `"}`)
	var stream, show bytes.Buffer
	u := NewJSONUI(&stream, JSONOptions{Version: "dev", Now: fixedNow})
	u.Plan(p, "plan")
	status := 500
	u.JobDone(method, &reconcile.JobResult{Addr: method.Addr, JobID: "j", Status: "completed",
		MethodErrors: []reconcile.DeviceFailure{{DeviceID: "door-1", MethodStatus: &status, MethodPayload: raw(`{"echo":"` + secret + `"}`)}}})
	if err := ShowJSON(&show, p, "dev"); err != nil {
		t.Fatal(err)
	}
	var doc bytes.Buffer
	if err := json.Compact(&doc, show.Bytes()); err != nil {
		t.Fatal(err)
	}
	for name, out := range map[string]string{"stream": stream.String(), "show": doc.String()} {
		if strings.Contains(out, secret) {
			t.Fatalf("a sensitive value is in the %s JSON:\n%s", name, out)
		}
		for _, want := range []string{`"target":"(sensitive value)","sensitive_target":true`,
			`"from":"(sensitive value)","to":"(sensitive value)","other_values":false,"sensitive":true`,
			`"payload":"(sensitive value)","sensitive_payload":true`} {
			if !strings.Contains(out, want) {
				t.Errorf("the %s JSON lacks %s:\n%s", name, want, out)
			}
		}
	}
	if !strings.Contains(stream.String(), `"method_status":500`) {
		t.Errorf("the device's error status is missing:\n%s", stream.String())
	}
}

// TestShowJSON checks the document of 'iotplan show -json' against its documented fields.
func TestShowJSON(t *testing.T) {
	p := tutorialPlan()
	p.StateName, p.StateSerial, p.StateLineage, p.ApplyID = "doors", 7, "l-1", "0a1b2c3d4e"
	var b bytes.Buffer
	if err := ShowJSON(&b, p, "v1.2.3"); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	checkFields(t, "show", doc, map[string]string{"format_version": "string", "iotplan_version": "string", "plan_format_version": "string",
		"created_at": "string|null", "hub": "string", "state.name": "string", "state.serial": "number", "state.lineage": "string",
		"apply_id": "string", "destroy": "bool", "tier": "object|null", "configuration": "array", "resource_changes": "array",
		"summary.has_changes": "bool", "summary.update": "number", "summary_line": "string", "notes": "array",
		"targets": "array", "outputs": "object"})
	if doc["format_version"] != ShowFormatVersion || doc["hub"] != "contoso.azure-devices.net" || doc["created_at"] != "2026-11-25T17:00:00Z" {
		t.Errorf("show document header = %v", doc)
	}
	rcs := doc["resource_changes"].([]any)
	if len(rcs) != len(p.Resources) {
		t.Fatalf("%d resource_changes, want %d", len(rcs), len(p.Resources))
	}
	for _, rc := range rcs {
		checkFields(t, "resource_change", rc.(map[string]any), map[string]string{"address": "string", "kind": "string", "action": "string",
			"target": "string", "targeted_devices": "number", "devices": "number", "transitions": "array", "jobs": "array"})
	}
	lock := rcs[2].(map[string]any)
	if m := lock["method"].(map[string]any); m["name"] != "lockDoor" || m["payload"] != nil || m["response_timeout_seconds"] != float64(15) {
		t.Errorf("method = %v", m)
	}
	if j := lock["jobs"].([]any)[0].(map[string]any); j["job_id"] != "iotplan-lock-door-4e5f6a7b" || j["start_time"] != "2026-11-26T06:00:00Z" || j["devices"] != float64(301) {
		t.Errorf("job = %v", j)
	}
}

// TestJSONDocumented: docs/json.md describes every event type and every field the schema
// above requires, so the reference cannot fall behind the stream.
func TestJSONDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/json.md")
	if err != nil {
		t.Fatal(err)
	}
	for typ, shape := range eventSchema {
		if !bytes.Contains(doc, []byte("`"+typ+"`")) {
			t.Errorf("docs/json.md does not describe the %s event", typ)
		}
		for path := range shape {
			field := path[strings.LastIndex(path, ".")+1:]
			if !bytes.Contains(doc, []byte(`"`+field+`"`)) {
				t.Errorf("docs/json.md does not name the field %q of %s", field, typ)
			}
		}
	}
}
