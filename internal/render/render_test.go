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
		HubCalls:      map[string]int{"query": 11},
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
				Job: &hubapi.JobRequest{JobID: "iotplan-door-location-0a1b2c3d", Type: hubapi.JobTypeUpdateTwin, QueryCondition: "…",
					UpdateTwin: &hubapi.TwinPatch{ETag: "*"}, MaxExecutionTimeInSeconds: 3600},
			},
			{
				Addr: "twin.converged", Kind: reconcile.KindTwin, Action: reconcile.NoOp, Target: "*", TargetedDevices: 12,
			},
			{
				Addr: "method.lock_door", Kind: reconcile.KindMethod, Action: reconcile.Invoke,
				Target: "deviceId IN ['myDeviceId']", TargetedDevices: 301, Devices: 301,
				SampleDeviceIDs: []string{"myDeviceId", "door-00001", "door-00002"},
				Notes:           []string{"methods run on every apply: iotplan does not record earlier invocations"},
				Job: &hubapi.JobRequest{JobID: "iotplan-lock-door-4e5f6a7b", Type: hubapi.JobTypeDeviceMethod, QueryCondition: "deviceId IN ['myDeviceId']",
					CloudToDeviceMethod: &hubapi.CloudToDeviceMethod{MethodName: "lockDoor", Payload: raw("null"), ResponseTimeoutInSeconds: 15},
					StartTime:           &start, MaxExecutionTimeInSeconds: 300},
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

func TestCount(t *testing.T) {
	for n, want := range map[int]string{0: "0", 7: "7", 999: "999", 1000: "1,000", 9812: "9,812", 1234567: "1,234,567", -4500: "-4,500"} {
		if got := Count(n); got != want {
			t.Errorf("Count(%d) = %q, want %q", n, got, want)
		}
	}
}

// applyRun drives a view through a run like reconcile.Apply does.
func applyRun(v *ApplyView, p *reconcile.Plan) {
	twin, method := &p.Resources[0], &p.Resources[2]
	v.JobCreated(twin, hubapi.JobResponse{JobID: twin.Job.JobID, Status: "queued"})
	for _, s := range []reconcile.Progress{
		{Status: "queued", Elapsed: 0},
		{Status: "running", Stats: hubapi.DeviceJobStatistics{DeviceCount: 9815, SucceededCount: 1200, RunningCount: 10, PendingCount: 8605}, Elapsed: time.Second},
		{Status: "running", Stats: hubapi.DeviceJobStatistics{DeviceCount: 9815, SucceededCount: 2400, RunningCount: 10, PendingCount: 7405}, Elapsed: 2 * time.Second},
		{Status: "running", Stats: hubapi.DeviceJobStatistics{DeviceCount: 9815, SucceededCount: 6000, RunningCount: 10, PendingCount: 3805}, Elapsed: 6 * time.Second},
		{Status: "completed", Stats: hubapi.DeviceJobStatistics{DeviceCount: 9815, SucceededCount: 9815}, Elapsed: 65 * time.Second},
	} {
		s.JobID = twin.Job.JobID
		v.JobProgress(twin, s)
	}
	v.JobDone(twin, &reconcile.JobResult{Addr: twin.Addr, JobID: twin.Job.JobID, Status: "completed",
		Stats: hubapi.DeviceJobStatistics{DeviceCount: 9815, SucceededCount: 9815}, Elapsed: 65 * time.Second})
	v.JobCreated(method, hubapi.JobResponse{JobID: method.Job.JobID, Status: "queued"})
	v.JobProgress(method, reconcile.Progress{JobID: method.Job.JobID, Status: "completed",
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
	if err := ApplyResult(&b, ok, ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	golden(t, "apply_result_success", b.Bytes())

	later := &reconcile.ApplyResult{Jobs: append(ok.Jobs, reconcile.JobResult{Addr: "method.lock_door", Kind: reconcile.KindMethod,
		JobID: "iotplan-lock-door-4e5f6a7b", Status: "scheduled", Scheduled: true,
		Notes: []string{"starts at 2026-11-26 06:00:00 UTC; apply does not wait for jobs that start later: follow job iotplan-lock-door-4e5f6a7b on the hub"}})}
	b.Reset()
	if err := ApplyResult(&b, later, ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	golden(t, "apply_result_scheduled", b.Bytes())

	bad := &reconcile.ApplyResult{Jobs: append(ok.Jobs, *methodResult()), NotRun: []string{"method.later"},
		HubCalls: map[string]int{"job.create": 2, "job.get": 14, "query": 2}}
	b.Reset()
	if err := ApplyResult(&b, bad, ApplyOptions{MaxListed: 3}); err != nil {
		t.Fatal(err)
	}
	golden(t, "apply_result_failures", b.Bytes())
}
