package render

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/reconcile"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden with the current output")

// golden compares got with testdata/name.golden (or rewrites it with -update).
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/render -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from %s:\n--- got\n%s\n--- want\n%s", name, path, got, want)
	}
}

func raw(s string) json.RawMessage { return json.RawMessage(s) }

// tutorialPlan is a plan as reconcile makes it for the tutorial at fleet scale.
func tutorialPlan() *reconcile.Plan {
	start := time.Date(2026, 11, 26, 6, 0, 0, 0, time.UTC)
	return &reconcile.Plan{
		FormatVersion: reconcile.FormatVersion,
		CreatedAt:     time.Date(2026, 11, 25, 17, 0, 0, 0, time.UTC),
		Hub:           "contoso.azure-devices.net",
		TierName:      "S1", TierUnits: 1, TierAssumed: true,
		HubCalls: map[string]int{"query": 11},
		Resources: []reconcile.ResourceChange{
			{
				Addr: "twin.door_location", Kind: reconcile.KindTwin, Action: reconcile.Update,
				Target: "tags.site = 'hq'", TargetedDevices: 10003, Devices: 9815,
				Transitions: []reconcile.Transition{
					{Key: "desired.building", Op: reconcile.OpChange, From: raw(`"42"`), To: raw(`"43"`), Devices: 9812, SampleDeviceIDs: []string{"door-00017", "door-00345", "door-01200"}},
					{Key: "desired.floor", Op: reconcile.OpAdd, To: raw(`3`), Devices: 301, SampleDeviceIDs: []string{"door-00001", "door-00011", "door-00021"}},
					{Key: "tags.owner", Op: reconcile.OpRemove, From: raw(`"ann"`), Devices: 50, SampleDeviceIDs: []string{"door-00000"}},
					{Key: "desired.building", Op: reconcile.OpChange, From: raw(`43`), To: raw(`"43"`), Devices: 2, SampleDeviceIDs: []string{"door-00002", "door-00012"}},
					{Key: "desired.note", Op: reconcile.OpChange, From: raw(`"` + strings.Repeat("x", 80) + `"`), To: raw(`{"a":[1,2]}`), Devices: 1},
					{Key: "desired.mode", Op: reconcile.OpChange, OtherValues: true, To: raw(`"eco"`), Devices: 1},
					{Key: "tags.serial", Op: reconcile.OpRemove, OtherValues: true, Devices: 1},
				},
				Jobs: []reconcile.PlannedJob{{Request: hubapi.JobRequest{JobID: "iotplan-door-location-0a1b2c3d", Type: hubapi.JobTypeUpdateTwin, QueryCondition: "…",
					UpdateTwin: &hubapi.TwinPatch{ETag: "*"}, MaxExecutionTimeInSeconds: 3600}, Devices: 9815, ExpectedSeconds: 982}},
			},
			{
				Addr: "twin.converged", Kind: reconcile.KindTwin, Action: reconcile.NoOp, Target: "*", TargetedDevices: 12,
			},
			{
				Addr: "method.lock_door", Kind: reconcile.KindMethod, Action: reconcile.Invoke,
				Target: "deviceId IN ['myDeviceId']", TargetedDevices: 301, Devices: 301,
				SampleDeviceIDs: []string{"myDeviceId", "door-00001", "door-00002"},
				Notes:           []string{"methods run on every apply: iotplan does not record earlier invocations"},
				Jobs: []reconcile.PlannedJob{{Request: hubapi.JobRequest{JobID: "iotplan-lock-door-4e5f6a7b", Type: hubapi.JobTypeDeviceMethod, QueryCondition: "deviceId IN ['myDeviceId']",
					CloudToDeviceMethod: &hubapi.CloudToDeviceMethod{MethodName: "lockDoor", Payload: raw("null"), ResponseTimeoutInSeconds: 15},
					StartTime:           &start, MaxExecutionTimeInSeconds: 300}, Devices: 301, ExpectedSeconds: 46}},
			},
			{
				Addr: "method.nobody", Kind: reconcile.KindMethod, Action: reconcile.NoOp, Target: "deviceId = 'ghost'",
				Notes: []string{"the target selects no device: nothing to invoke"},
			},
		},
	}
}

func TestPlanGolden(t *testing.T) {
	p := tutorialPlan()
	var plain, color bytes.Buffer
	if err := Plan(&plain, p, Options{}); err != nil {
		t.Fatal(err)
	}
	golden(t, "plan_changes", plain.Bytes())
	if err := Plan(&color, p, Options{Color: true}); err != nil {
		t.Fatal(err)
	}
	golden(t, "plan_changes_color", color.Bytes())
	if strings.Contains(plain.String(), "\x1b[") {
		t.Error("escape codes without color")
	}
	if got := SummaryLine(p); got != "Plan: 1 resource to change (9,815 devices), 1 method to invoke on 301 devices." {
		t.Errorf("summary %q", got)
	}

	none := &reconcile.Plan{FormatVersion: reconcile.FormatVersion, Hub: "h", HubCalls: map[string]int{"query": 5},
		Resources: []reconcile.ResourceChange{{Addr: "twin.t", Kind: reconcile.KindTwin, Action: reconcile.NoOp, TargetedDevices: 4}}}
	var b bytes.Buffer
	if err := Plan(&b, none, Options{}); err != nil {
		t.Fatal(err)
	}
	golden(t, "plan_nochanges", b.Bytes())
}

// TestPlanSafeApplyGolden: a removal, a run-once method with its steps, a warning for an empty
// target, and a summary that counts distinct devices (two resources share some).
func TestPlanSafeApplyGolden(t *testing.T) {
	distinct := 640
	p := &reconcile.Plan{FormatVersion: reconcile.FormatVersion, Hub: "contoso.azure-devices.net",
		TierName: "S1", TierUnits: 1, HubCalls: map[string]int{"query": 9}, DistinctDevices: &distinct,
		Resources: []reconcile.ResourceChange{
			{Addr: "twin.eco", Kind: reconcile.KindTwin, Action: reconcile.Remove, Target: "tags.site = 'hq'", TargetedDevices: 700, Devices: 600,
				Transitions: []reconcile.Transition{{Key: "desired.mode", Op: reconcile.OpRemove, From: raw(`"eco"`), Devices: 600, SampleDeviceIDs: []string{"door-00001"}}},
				Jobs: []reconcile.PlannedJob{{Request: hubapi.JobRequest{JobID: "iotplan-eco-1", Type: hubapi.JobTypeUpdateTwin, MaxExecutionTimeInSeconds: 3600},
					Keys: []string{"desired.mode"}, Devices: 600, ExpectedSeconds: 60}}},
			{Addr: "twin.door", Kind: reconcile.KindTwin, Action: reconcile.Update, Target: "tags.site = 'hq'", TargetedDevices: 700, Devices: 100,
				Transitions: []reconcile.Transition{{Key: "desired.floor", Op: reconcile.OpAdd, To: raw(`3`), Devices: 100}},
				Jobs: []reconcile.PlannedJob{{Request: hubapi.JobRequest{JobID: "iotplan-door-1", Type: hubapi.JobTypeUpdateTwin, MaxExecutionTimeInSeconds: 3600},
					Devices: 100, ExpectedSeconds: 10}}},
			{Addr: "method.lock_door", Kind: reconcile.KindMethod, Action: reconcile.Invoke, Target: "tags.site = 'hq'", TargetedDevices: 700, Devices: 40,
				RunTag: "lock_door-1a2b", AlreadyRan: 660, SampleDeviceIDs: []string{"door-00003", "door-00007"},
				Notes: []string{"runs once per device for these triggers (recorded in tags.iotplanRuns.lock_door-1a2b): 660 of 700 targeted devices already ran with them"},
				Jobs: []reconcile.PlannedJob{
					{Step: reconcile.StepMark, Devices: 40, ExpectedSeconds: 4, Request: hubapi.JobRequest{JobID: "iotplan-lock-door-m", Type: hubapi.JobTypeUpdateTwin, MaxExecutionTimeInSeconds: 3600}},
					{Step: reconcile.StepInvoke, Devices: 40, ExpectedSeconds: 4, Request: hubapi.JobRequest{JobID: "iotplan-lock-door-i", Type: hubapi.JobTypeDeviceMethod,
						CloudToDeviceMethod: &hubapi.CloudToDeviceMethod{MethodName: "lockDoor", Payload: raw("null"), ResponseTimeoutInSeconds: 15}, MaxExecutionTimeInSeconds: 3600}},
				}},
			{Addr: "twin.lab", Kind: reconcile.KindTwin, Action: reconcile.NoOp, Target: "tags.site = 'lab'",
				Warnings: []string{"the target selects no device"}},
		}}
	var b bytes.Buffer
	if err := Plan(&b, p, Options{}); err != nil {
		t.Fatal(err)
	}
	golden(t, "plan_safe_apply", b.Bytes())
	// Without the union's count (its condition would be too long), the total is an upper bound.
	p.DistinctDevices = nil
	if got := SummaryLine(p); got != "Plan: 2 resources to change (at most 700 devices), 1 method to invoke on 40 devices." {
		t.Errorf("summary without the distinct count: %q", got)
	}
}

func TestCount(t *testing.T) {
	for n, want := range map[int]string{0: "0", 7: "7", 999: "999", 1000: "1,000", 9812: "9,812", 1234567: "1,234,567", -4500: "-4,500"} {
		if got := Count(n); got != want {
			t.Errorf("Count(%d) = %q, want %q", n, got, want)
		}
	}
}

// applyRun drives a view through a run like reconcile.Apply does.
func applyRun(v reconcile.Hook, p *reconcile.Plan) {
	twin, method := &p.Resources[0], &p.Resources[2]
	twinJob, methodJob := twin.Jobs[0].Request.JobID, method.Jobs[0].Request.JobID
	nightly := time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC)
	v.SlotWait(twin, []hubapi.JobResponse{{JobID: "nightly-reboot", Type: hubapi.JobTypeDeviceMethod, Status: hubapi.JobStatusScheduled, StartTime: &nightly}}, 1, 0)
	// The same holders again within the interval: not repeated.
	v.SlotWait(twin, []hubapi.JobResponse{{JobID: "nightly-reboot", Type: hubapi.JobTypeDeviceMethod, Status: hubapi.JobStatusScheduled, StartTime: &nightly}}, 1, 2*time.Second)
	v.SlotWait(twin, []hubapi.JobResponse{{JobID: "nightly-reboot", Type: hubapi.JobTypeDeviceMethod, Status: hubapi.JobStatusRunning}}, 1, 24*time.Second)
	v.SlotWait(twin, []hubapi.JobResponse{{JobID: "nightly-reboot", Type: hubapi.JobTypeDeviceMethod, Status: hubapi.JobStatusRunning}}, 1, 48*time.Second)
	v.JobCreated(twin, hubapi.JobResponse{JobID: twinJob, Status: "queued"})
	for _, s := range []reconcile.Progress{
		{Status: "queued", Elapsed: 0},
		{Status: "running", Stats: hubapi.DeviceJobStatistics{DeviceCount: 9815, SucceededCount: 1200, RunningCount: 10, PendingCount: 8605}, Elapsed: time.Second},
		{Status: "running", Stats: hubapi.DeviceJobStatistics{DeviceCount: 9815, SucceededCount: 2400, RunningCount: 10, PendingCount: 7405}, Elapsed: 2 * time.Second},
		{Status: "running", Stats: hubapi.DeviceJobStatistics{DeviceCount: 9815, SucceededCount: 6000, RunningCount: 10, PendingCount: 3805}, Elapsed: 6 * time.Second},
		{Status: "completed", Stats: hubapi.DeviceJobStatistics{DeviceCount: 9815, SucceededCount: 9815}, Elapsed: 65 * time.Second},
	} {
		s.JobID = twinJob
		v.JobProgress(twin, s)
	}
	v.JobDone(twin, &reconcile.JobResult{Addr: twin.Addr, JobID: twinJob, Status: "completed",
		Stats: hubapi.DeviceJobStatistics{DeviceCount: 9815, SucceededCount: 9815}, Elapsed: 65 * time.Second})
	v.JobCreated(method, hubapi.JobResponse{JobID: methodJob, Status: "queued"})
	v.JobProgress(method, reconcile.Progress{JobID: methodJob, Status: "completed",
		Stats: hubapi.DeviceJobStatistics{DeviceCount: 301, SucceededCount: 298, FailedCount: 3}, Elapsed: 3 * time.Second})
	v.JobDone(method, methodResult())
}

func methodResult() *reconcile.JobResult {
	st := 500
	return &reconcile.JobResult{Addr: "method.lock_door", Kind: reconcile.KindMethod, JobID: "iotplan-lock-door-4e5f6a7b", Status: "completed",
		Stats: hubapi.DeviceJobStatistics{DeviceCount: 301, SucceededCount: 298, FailedCount: 3}, Elapsed: 3 * time.Second,
		Failures: []reconcile.DeviceFailure{
			{DeviceID: "door-00003", Code: "DeviceNotOnline", Description: "Timed out waiting for device to connect."},
			{DeviceID: "door-00004", Code: "GatewayTimeout", Description: "Timed out waiting for the response from device."},
		},
		MoreFailures: 1,
		MethodErrors: []reconcile.DeviceFailure{{DeviceID: "door-00009", MethodStatus: &st, MethodPayload: raw(`{"error":"bolt stuck"}`)}},
	}
}

func TestApplyProgressGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		tty  bool
	}{{"apply_progress_tty", true}, {"apply_progress_plain", false}} {
		var b bytes.Buffer
		v := NewApplyView(&b, ApplyOptions{TTY: tc.tty})
		applyRun(v, tutorialPlan())
		if v.Err() != nil {
			t.Fatal(v.Err())
		}
		golden(t, tc.name, b.Bytes())
	}
}

func TestApplyResultGolden(t *testing.T) {
	ok := &reconcile.ApplyResult{Jobs: []reconcile.JobResult{{Addr: "twin.door_location", Kind: reconcile.KindTwin, JobID: "iotplan-door-location-0a1b2c3d", Status: "completed",
		Stats: hubapi.DeviceJobStatistics{DeviceCount: 9815, SucceededCount: 9815}}}}
	var b bytes.Buffer
	if err := ApplyResult(&b, ok, false, ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	golden(t, "apply_result_success", b.Bytes())

	later := &reconcile.ApplyResult{Jobs: append(ok.Jobs, reconcile.JobResult{Addr: "method.lock_door", Kind: reconcile.KindMethod,
		JobID: "iotplan-lock-door-4e5f6a7b", Status: "scheduled", Scheduled: true,
		Notes: []string{"starts at 2026-11-26 06:00:00 UTC; apply does not wait for jobs that start later: follow job iotplan-lock-door-4e5f6a7b on the hub"}})}
	b.Reset()
	if err := ApplyResult(&b, later, false, ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	golden(t, "apply_result_scheduled", b.Bytes())

	bad := &reconcile.ApplyResult{Jobs: append(ok.Jobs, *methodResult()), NotRun: []string{"method.later"},
		Refused:  []reconcile.RefusedChange{{Addr: "twin.racy", Reason: "the hub's answers disagree: the key groups show 12 devices differing, but the update condition selects 13; run plan again when the fleet is quiet (queries are eventually consistent)"}},
		HubCalls: map[string]int{"job.create": 2, "job.get": 14, "query": 2}}
	b.Reset()
	if err := ApplyResult(&b, bad, false, ApplyOptions{MaxListed: 3}); err != nil {
		t.Fatal(err)
	}
	golden(t, "apply_result_failures", b.Bytes())

	// Stopped by an error before any job ran: never "Apply complete!".
	b.Reset()
	if err := ApplyResult(&b, &reconcile.ApplyResult{NotRun: []string{"method.lock_door"}}, true, ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := b.String(); strings.Contains(got, "complete") || !strings.Contains(got, "Apply stopped after an error: 0 jobs ran.") {
		t.Errorf("stopped apply:\n%s", got)
	}
}

// TestApplySummaryNeverCountsUnknownDevices: a job that failed or was cancelled on the hub, a
// refused resource or an interrupted apply never read as "0 of N devices failed" or "complete".
func TestApplySummaryNeverCountsUnknownDevices(t *testing.T) {
	failedJob := reconcile.JobResult{Addr: "twin.bad", JobID: "iotplan-bad-1", Status: hubapi.JobStatusFailed,
		FailureReason: "the query condition is not valid", Stats: hubapi.DeviceJobStatistics{}}
	cancelled := reconcile.JobResult{Addr: "method.lock", JobID: "iotplan-lock-2", Status: hubapi.JobStatusCancelled,
		Stats: hubapi.DeviceJobStatistics{DeviceCount: 40, SucceededCount: 10}}
	cases := []struct {
		name        string
		res         *reconcile.ApplyResult
		stopped     bool
		interrupted bool
		want        string
	}{
		{"failed on the hub", &reconcile.ApplyResult{Jobs: []reconcile.JobResult{failedJob}}, false, false,
			"Apply finished with failures: 1 job failed on the hub."},
		{"cancelled and refused", &reconcile.ApplyResult{Jobs: []reconcile.JobResult{cancelled},
			Refused: []reconcile.RefusedChange{{Addr: "twin.racy", Reason: "disagree"}}}, false, false,
			"Apply finished with failures: 1 job cancelled on the hub; 1 resource refused."},
		{"refused only", &reconcile.ApplyResult{Refused: []reconcile.RefusedChange{{Addr: "twin.racy", Reason: "disagree"}}}, false, false,
			"Apply finished with failures: 1 resource refused."},
		{"still running", &reconcile.ApplyResult{Jobs: []reconcile.JobResult{{Addr: "twin.slow", Status: hubapi.JobStatusRunning,
			Stats: hubapi.DeviceJobStatistics{DeviceCount: 9}}}}, false, false,
			"Apply finished with failures: 1 job still running."},
		{"interrupted", &reconcile.ApplyResult{Jobs: []reconcile.JobResult{failedJob}}, true, true,
			"Apply interrupted: 1 job finished before the interrupt."},
		{"scheduled job cancelled", &reconcile.ApplyResult{Jobs: []reconcile.JobResult{{Addr: "method.later", Scheduled: true,
			Status: hubapi.JobStatusCancelled}}}, false, false,
			"Apply finished with failures: 1 of 1 job did not fully succeed."},
		{"devices unaccounted for", &reconcile.ApplyResult{Jobs: []reconcile.JobResult{{Addr: "twin.t", Status: hubapi.JobStatusCompleted,
			Stats: hubapi.DeviceJobStatistics{DeviceCount: 5, SucceededCount: 3}}}}, false, false,
			"Apply finished with failures: 1 of 1 job did not fully succeed."},
	}
	for _, c := range cases {
		var b bytes.Buffer
		if err := ApplyResult(&b, c.res, c.stopped, ApplyOptions{Interrupted: c.interrupted}); err != nil {
			t.Fatal(err)
		}
		got := b.String()
		if !strings.Contains(got, c.want) || strings.Contains(got, "0 of") || strings.Contains(got, "complete!") {
			t.Errorf("%s:\n%s\nwant %q", c.name, got, c.want)
		}
	}
}

// TestPlanShowsSplitJobsAndRefusals: a resource with several jobs lists each with its keys and
// devices; a refused one says apply will refuse it, and the summary counts it.
func TestPlanShowsSplitJobsAndRefusals(t *testing.T) {
	p := tutorialPlan()
	p.TierAssumed = false
	p.Resources = p.Resources[:1]
	r := &p.Resources[0]
	j := r.Jobs[0]
	j2 := j
	j.Keys, j2.Keys = []string{"desired.building", "desired.floor"}, []string{"tags.owner"}
	j2.Request.JobID, j2.Devices, j2.ExpectedSeconds = "iotplan-door-location-9f8e7d6c", 50, 5
	r.Jobs = []reconcile.PlannedJob{j, j2}
	r.Refused = "the hub's answers disagree: 10,003 targeted devices, but the groups of desired.floor add up to 10,004; run plan again when the fleet is quiet (queries are eventually consistent)"
	var b bytes.Buffer
	if err := Plan(&b, p, Options{}); err != nil {
		t.Fatal(err)
	}
	golden(t, "plan_split_refused", b.Bytes())
}

// TestPlanTargetsAndOutputsGolden: instance addresses, Terraform's targeting warning and the
// outputs (known, sensitive, not known in a targeted plan).
func TestPlanTargetsAndOutputsGolden(t *testing.T) {
	p := &reconcile.Plan{FormatVersion: reconcile.FormatVersion, Hub: "h", HubCalls: map[string]int{"query": 3},
		Targets: []string{`twin.floor["43"]`, "module.site"},
		Resources: []reconcile.ResourceChange{{
			Addr: `twin.floor["43"]`, Kind: reconcile.KindTwin, Action: reconcile.Update,
			Target: "tags.building = '43'", TargetedDevices: 110, Devices: 64,
			Transitions: []reconcile.Transition{{Key: "desired.floor", Op: reconcile.OpChange, From: raw(`1`), To: raw(`3`), Devices: 64, SampleDeviceIDs: []string{"door-00005"}}},
			Jobs: []reconcile.PlannedJob{{Request: hubapi.JobRequest{JobID: "iotplan-floor-43-bb98dc5f", Type: hubapi.JobTypeUpdateTwin, QueryCondition: "…",
				UpdateTwin: &hubapi.TwinPatch{ETag: "*"}, MaxExecutionTimeInSeconds: 3600}, Devices: 64}},
		}},
		Outputs: []reconcile.Output{
			{Name: "doors_changing", Known: true, Value: raw(`64`)},
			{Name: "all_changing", Known: false},
			{Name: "token", Sensitive: true, Known: true},
			{Name: "targets", Known: true, Value: raw(`["tags.building = '43'"]`)},
		},
	}
	var b bytes.Buffer
	if err := Plan(&b, p, Options{}); err != nil {
		t.Fatal(err)
	}
	golden(t, "plan_targets_outputs", b.Bytes())
}
