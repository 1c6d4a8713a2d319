package render

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/iotplan/iotplan/internal/hubapi"
)

func at(s string) *time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return &t
}

// sampleJobs: an iotplan method job with failures, another tool's scheduled twin job, and a
// failed job the hub gave no times or statistics for; in no particular order.
func sampleJobs() []hubapi.JobResponse {
	return []hubapi.JobResponse{
		{
			JobID: "ops-nightly-floors", Type: hubapi.JobTypeUpdateTwin, Status: hubapi.JobStatusScheduled,
			QueryCondition: "tags.site = 'hq'", CreatedTime: at("2026-11-25T16:00:00Z"), StartTime: at("2026-11-26T02:00:00Z"),
			MaxExecutionTimeInSeconds: 3600,
			UpdateTwin: &hubapi.TwinPatch{ETag: "*", Tags: map[string]any{"owner": "ops"},
				Properties: &hubapi.TwinProperties{Desired: map[string]any{"floor": 3, "building": "43"}}},
			DeviceJobStatistics: &hubapi.DeviceJobStatistics{},
		},
		{
			JobID: "iotplan-lock-door-4e5f6a7b", Type: hubapi.JobTypeDeviceMethod, Status: hubapi.JobStatusCompleted,
			QueryCondition: "deviceId IN ['door-00001', 'door-00002']", CreatedTime: at("2026-11-25T17:00:00Z"),
			StartTime: at("2026-11-25T17:00:01Z"), EndTime: at("2026-11-25T17:01:47Z"), MaxExecutionTimeInSeconds: 300,
			CloudToDeviceMethod: &hubapi.CloudToDeviceMethod{MethodName: "lockDoor", Payload: raw(`{"token":"s3cr3t"}`), ResponseTimeoutInSeconds: 15},
			DeviceJobStatistics: &hubapi.DeviceJobStatistics{DeviceCount: 12345, SucceededCount: 12000, FailedCount: 345},
		},
		{JobID: "legacy-reboot", Type: hubapi.JobTypeDeviceMethod, Status: hubapi.JobStatusFailed,
			FailureReason: "SQL query parse failed:\nIS_STRING is not a function"},
	}
}

func TestJobListGolden(t *testing.T) {
	for name, opts := range map[string]Options{"jobs_list": {}, "jobs_list_color": {Color: true}} {
		var b bytes.Buffer
		if err := JobList(&b, sampleJobs(), "", opts); err != nil {
			t.Fatal(err)
		}
		golden(t, name, b.Bytes())
	}
	var b bytes.Buffer
	JobList(&b, nil, "scheduleDeviceMethod, running", Options{})
	if got := b.String(); got != "No jobs on the hub (scheduleDeviceMethod, running).\n" {
		t.Errorf("empty list = %q", got)
	}
}

func TestJobListJSON(t *testing.T) {
	var b bytes.Buffer
	if err := JobListJSON(&b, sampleJobs()); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		FormatVersion string               `json:"format_version"`
		Jobs          []hubapi.JobResponse `json:"jobs"`
	}
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, j := range doc.Jobs {
		ids = append(ids, j.JobID)
	}
	// Newest first; a job without a creation time last.
	if doc.FormatVersion != "1" || strings.Join(ids, " ") != "iotplan-lock-door-4e5f6a7b ops-nightly-floors legacy-reboot" {
		t.Errorf("document: version %q, ids %v", doc.FormatVersion, ids)
	}
	var payload bytes.Buffer
	if m := doc.Jobs[0].CloudToDeviceMethod; m == nil || json.Compact(&payload, m.Payload) != nil || payload.String() != `{"token":"s3cr3t"}` {
		t.Errorf("the hub's fields are not all there: %+v", doc.Jobs[0])
	}
}

func failedRows() []hubapi.DeviceJob {
	return []hubapi.DeviceJob{
		{DeviceID: "door-00001", JobID: "iotplan-lock-door-4e5f6a7b", Status: hubapi.DeviceJobFailed,
			Error: &hubapi.DeviceJobError{Code: "DeviceNotOnline", Description: "Timed out waiting for device to connect.\nRetry later."}},
		{DeviceID: "door-00002", Status: hubapi.DeviceJobFailed, Error: &hubapi.DeviceJobError{Code: "GatewayTimeout"}},
		{DeviceID: "door-00003", Status: hubapi.DeviceJobFailed},
	}
}

func methodErrorRows() []hubapi.DeviceJob {
	return []hubapi.DeviceJob{
		{DeviceID: "door-00004", Status: hubapi.DeviceJobCompleted, Outcome: &hubapi.DeviceJobOutcome{
			DeviceMethodResponse: &hubapi.CloudToDeviceMethodResult{Status: 500, Payload: raw("{\n  \"error\": \"door jammed\"\n}")}}},
		{DeviceID: "door-00005", Status: hubapi.DeviceJobCompleted, Outcome: &hubapi.DeviceJobOutcome{
			DeviceMethodResponse: &hubapi.CloudToDeviceMethodResult{Status: 404, Payload: raw("null")}}},
	}
}

// show writes a job and its listings through v.
func show(t *testing.T, v JobShow, j hubapi.JobResponse, listings map[JobListing][]hubapi.DeviceJob, more bool) {
	t.Helper()
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(v.Job(j))
	listed := 0
	for _, l := range []JobListing{ListAll, ListFailed, ListMethodErrors} {
		rows, ok := listings[l]
		if !ok {
			continue
		}
		must(v.Listing(l))
		for _, dj := range rows {
			must(v.Device(dj))
			listed++
		}
	}
	must(v.End(listed, more))
}

func TestJobShowFailedGolden(t *testing.T) {
	var b bytes.Buffer
	show(t, NewJobShow(&b, Options{}), sampleJobs()[1],
		map[JobListing][]hubapi.DeviceJob{ListFailed: failedRows(), ListMethodErrors: methodErrorRows()}, false)
	golden(t, "jobs_show_failed", b.Bytes())
	if strings.Contains(b.String(), "s3cr3t") {
		t.Errorf("show prints the method's payload:\n%s", b.String())
	}
}

func TestJobShowAllGolden(t *testing.T) {
	twin := sampleJobs()[0]
	twin.Status, twin.StartTime, twin.EndTime = hubapi.JobStatusRunning, at("2026-11-25T16:00:01Z"), nil
	twin.DeviceJobStatistics = &hubapi.DeviceJobStatistics{DeviceCount: 9815, SucceededCount: 2, FailedCount: 1, RunningCount: 1, PendingCount: 9811}
	rows := []hubapi.DeviceJob{
		{DeviceID: "door-00017", Status: hubapi.DeviceJobCompleted, Outcome: &hubapi.DeviceJobOutcome{}},
		{DeviceID: "door-00345", Status: hubapi.DeviceJobCompleted},
		{DeviceID: "door-01200", Status: hubapi.DeviceJobFailed, Error: &hubapi.DeviceJobError{Code: "EtagDoesNotMatch", Description: "The etag does not match."}},
		{DeviceID: "door-01201", Status: hubapi.DeviceJobRunning},
		{DeviceID: "door-01202", Status: hubapi.DeviceJobPending},
	}
	var b bytes.Buffer
	show(t, NewJobShow(&b, Options{}), twin, map[JobListing][]hubapi.DeviceJob{ListAll: rows}, true)
	golden(t, "jobs_show_all", b.Bytes())
	if strings.Contains(b.String(), `"43"`) {
		t.Errorf("show prints a patch value:\n%s", b.String())
	}
}

func TestJobShowEnds(t *testing.T) {
	for _, c := range []struct {
		listings map[JobListing][]hubapi.DeviceJob
		want     string
	}{
		{map[JobListing][]hubapi.DeviceJob{ListFailed: nil, ListMethodErrors: nil}, "\nNo failed devices.\n"},
		{map[JobListing][]hubapi.DeviceJob{ListAll: nil}, "\nNo device rows: the job has not selected its devices (yet).\n"},
		{map[JobListing][]hubapi.DeviceJob{ListFailed: failedRows()[:1]}, "\nListed 1 failed device.\n"},
	} {
		var b bytes.Buffer
		show(t, NewJobShow(&b, Options{}), sampleJobs()[2], c.listings, false)
		if !strings.HasSuffix(b.String(), c.want) {
			t.Errorf("output ends %q, want %q", b.String(), c.want)
		}
		if len(c.listings[ListAll])+len(c.listings[ListFailed]) == 0 && strings.Contains(b.String(), "evices:") {
			t.Errorf("an empty listing has a heading:\n%s", b.String())
		}
	}
}

func TestJobShowJSONLines(t *testing.T) {
	var b bytes.Buffer
	j := sampleJobs()[1]
	show(t, NewJobShowJSON(&b), j, map[JobListing][]hubapi.DeviceJob{ListFailed: failedRows(), ListMethodErrors: methodErrorRows()}, true)
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 6 {
		t.Fatalf("%d lines, want the job and 5 devices:\n%s", len(lines), b.String())
	}
	var first struct {
		FormatVersion string             `json:"format_version"`
		Job           hubapi.JobResponse `json:"job"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil || first.FormatVersion != "1" || first.Job.JobID != j.JobID ||
		first.Job.DeviceJobStatistics.FailedCount != 345 {
		t.Errorf("first line %s: %v", lines[0], err)
	}
	want := append(failedRows(), methodErrorRows()...)
	for i, l := range lines[1:] {
		var row struct {
			DeviceJob hubapi.DeviceJob `json:"device_job"`
		}
		if err := json.Unmarshal([]byte(l), &row); err != nil || row.DeviceJob.DeviceID != want[i].DeviceID || row.DeviceJob.Status != want[i].Status {
			t.Errorf("line %d %s: %v", i+2, l, err)
		}
	}
}

func TestJobCancelledGolden(t *testing.T) {
	before := sampleJobs()[0]
	after := before
	after.Status, after.EndTime = hubapi.JobStatusCancelled, at("2026-11-25T18:30:00Z")
	var b bytes.Buffer
	if err := JobDetail(&b, before, Options{}); err != nil {
		t.Fatal(err)
	}
	if err := JobCancelled(&b, after, Options{}); err != nil {
		t.Fatal(err)
	}
	golden(t, "jobs_cancelled", b.Bytes())
}
