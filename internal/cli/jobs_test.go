package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/hubclient"
)

// jobsFleet: 150 doors that never connect (a method job fails on every one: more than one
// page of failed rows), 3 that answer lockDoor with 500 (completed for the hub, failed for
// iotplan) and 2 that answer 200.
const jobsFleet = `
group "dead" {
  count            = 150
  id               = "dead-%03d"
  tags             = { site = "lab" }
  offline_fraction = 1
  method "lockDoor" {
    status = 200
  }
}
group "jammed" {
  count = 3
  id    = "jammed-%d"
  tags  = { site = "lab" }
  method "lockDoor" {
    status           = 200
    failure_fraction = 1
    failure_status   = 500
    failure_payload  = { error = "door jammed" }
  }
}
group "ok" {
  count = 2
  id    = "ok-%d"
  tags  = { site = "lab" }
  method "lockDoor" {
    status  = 200
    payload = { locked = true }
  }
}
`

func jobsHub(t *testing.T) (*hubclient.Client, string) {
	t.Helper()
	fleet := filepath.Join(t.TempDir(), "fleet.hcl")
	if err := os.WriteFile(fleet, []byte(jobsFleet), 0o644); err != nil {
		t.Fatal(err)
	}
	h, dir := testHub(t, fleet)
	return testClient(t, h), dir
}

// runJob creates a job and, unless it starts later, waits until it has ended.
func runJob(t *testing.T, c *hubclient.Client, req hubapi.JobRequest) hubapi.JobResponse {
	t.Helper()
	ctx := context.Background()
	if req.MaxExecutionTimeInSeconds == 0 {
		req.MaxExecutionTimeInSeconds = 60
	}
	if _, err := c.CreateJob(ctx, req); err != nil {
		t.Fatal(err)
	}
	for range 300 {
		j, err := c.GetJob(ctx, req.JobID)
		if err != nil {
			t.Fatal(err)
		}
		if hubapi.JobEnded(j.Status) || (req.StartTime != nil && req.StartTime.After(time.Now())) {
			return j
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("job %s did not end in 15s", req.JobID)
	return hubapi.JobResponse{}
}

func lockJob(id, condition string) hubapi.JobRequest {
	return hubapi.JobRequest{JobID: id, Type: hubapi.JobTypeDeviceMethod, QueryCondition: condition,
		CloudToDeviceMethod: &hubapi.CloudToDeviceMethod{MethodName: "lockDoor", Payload: json.RawMessage("null"), ResponseTimeoutInSeconds: 5}}
}

func twinJob(id, condition string, start *time.Time) hubapi.JobRequest {
	return hubapi.JobRequest{JobID: id, Type: hubapi.JobTypeUpdateTwin, QueryCondition: condition, StartTime: start,
		UpdateTwin: &hubapi.TwinPatch{ETag: "*", Properties: &hubapi.TwinProperties{Desired: map[string]any{"floor": 3}}}}
}

// lines returns the lines of out that start with prefix.
func lines(out, prefix string) []string {
	var ls []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix) {
			ls = append(ls, l)
		}
	}
	return ls
}

func TestJobsList(t *testing.T) {
	t.Parallel()
	c, dir := jobsHub(t)
	runJob(t, c, twinJob("ops-floors", "deviceId IN ['ok-0', 'ok-1']", nil))
	method := runJob(t, c, lockJob("iotplan-lock-doors-0a1b2c3d", "tags.site = 'lab'"))
	if st := method.DeviceJobStatistics; method.Status != hubapi.JobStatusCompleted || st == nil || st.FailedCount != 150 {
		t.Fatalf("method job %+v, statistics %+v; want completed with 150 failed", method, st)
	}

	r := iotplan(t, "jobs", "list", "-dev", "-data", dir)
	if r.code != 0 {
		t.Fatalf("jobs list: exit %d\n%s%s", r.code, r.out, r.err)
	}
	// id, type, status, created, start, end (date and time each), succeeded, failed, total, made by;
	// the hub counts devices that answered 500 as succeeded.
	for id, want := range map[string]string{
		"iotplan-lock-doors-0a1b2c3d": "scheduleDeviceMethod completed 5 150 155 iotplan",
		"ops-floors":                  "scheduleUpdateTwin completed 2 0 2 other",
	} {
		rows := lines(r.out, id+" ")
		if len(rows) != 1 {
			t.Fatalf("%d rows for %s:\n%s", len(rows), id, r.out)
		}
		f := strings.Fields(rows[0])
		if got := strings.Join(append(f[1:3], f[9:]...), " "); len(f) != 13 || got != want {
			t.Errorf("row of %s = %q, want %q", id, rows[0], want)
		}
	}
	if i, j := strings.Index(r.out, "iotplan-lock-doors"), strings.Index(r.out, "ops-floors"); i > j {
		t.Errorf("not newest first:\n%s", r.out)
	}

	r = iotplan(t, "jobs", "list", "-dev", "-data", dir, "-type", "scheduleUpdateTwin")
	if r.code != 0 || !strings.Contains(r.out, "ops-floors") || strings.Contains(r.out, "iotplan-lock") {
		t.Errorf("-type scheduleUpdateTwin: exit %d\n%s%s", r.code, r.out, r.err)
	}
	r = iotplan(t, "jobs", "list", "-dev", "-data", dir, "-status", "failed")
	if r.code != 0 || !strings.Contains(r.out, "No jobs on the hub (failed).") {
		t.Errorf("-status failed: exit %d\n%s%s", r.code, r.out, r.err)
	}
}

func TestJobsListJSON(t *testing.T) {
	t.Parallel()
	c, dir := jobsHub(t)
	runJob(t, c, twinJob("ops-floors", "deviceId = 'ok-0'", nil))
	runJob(t, c, lockJob("iotplan-lock-1", "deviceId = 'jammed-0'"))

	r := iotplan(t, "jobs", "list", "-dev", "-data", dir, "-json")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.err)
	}
	var doc struct {
		FormatVersion string               `json:"format_version"`
		Jobs          []hubapi.JobResponse `json:"jobs"`
	}
	if err := json.Unmarshal([]byte(r.out), &doc); err != nil {
		t.Fatalf("%v\n%s", err, r.out)
	}
	if doc.FormatVersion != "1" || len(doc.Jobs) != 2 || doc.Jobs[0].JobID != "iotplan-lock-1" ||
		doc.Jobs[0].CloudToDeviceMethod == nil || doc.Jobs[1].UpdateTwin == nil || doc.Jobs[1].DeviceJobStatistics.SucceededCount != 1 {
		t.Errorf("document = %+v", doc)
	}
	var again bytes.Buffer
	enc := json.NewEncoder(&again)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil || again.String() != r.out {
		t.Errorf("the document does not round-trip:\n%s\nvs\n%s", r.out, again.String())
	}

	r = iotplan(t, "jobs", "list", "-dev", "-data", dir, "-json", "-status", "cancelled")
	if r.code != 0 || strings.TrimSpace(r.out) != "{\n  \"format_version\": \"1\",\n  \"jobs\": []\n}" {
		t.Errorf("empty list: exit %d %q", r.code, r.out)
	}
}

// show lists every failed device, across pages of devices.jobs, and the devices that
// answered with an error status.
func TestJobsShowListsEveryFailedDevice(t *testing.T) {
	t.Parallel()
	c, dir := jobsHub(t)
	job := runJob(t, c, lockJob("iotplan-lock-doors-0a1b2c3d", "tags.site = 'lab'"))
	failed := job.DeviceJobStatistics.FailedCount
	if failed != 150 {
		t.Fatalf("job statistics %+v, want 150 failed", job.DeviceJobStatistics)
	}

	r := iotplan(t, "jobs", "show", "iotplan-lock-doors-0a1b2c3d", "-failed-only", "-dev", "-data", dir)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s%s", r.code, r.out, r.err)
	}
	dead, jammed := lines(r.out, "  ✗ dead-"), lines(r.out, "  ✗ jammed-")
	if len(dead) != failed || len(jammed) != 3 || len(lines(r.out, "  ✗ ")) != failed+3 {
		t.Errorf("%d failed and %d jammed lines, want %d and 3:\n%s", len(dead), len(jammed), failed, r.out)
	}
	for _, want := range []string{"Job iotplan-lock-doors-0a1b2c3d (made by iotplan)", "method     lockDoor, response timeout 5s",
		"devices    155 — 5 succeeded, 150 failed", "failed  DeviceNotOnline", `completed  the device answered 500: {"error":"door jammed"}`,
		"Listed 153 failed devices."} {
		if !strings.Contains(r.out, want) {
			t.Errorf("show lacks %q:\n%s", want, r.out)
		}
	}
	if strings.Contains(r.out, "ok-") {
		t.Errorf("-failed-only lists a device that succeeded:\n%s", r.out)
	}

	// Without -failed-only: every device, one line each.
	r = iotplan(t, "jobs", "show", "-dev", "-data", dir, "iotplan-lock-doors-0a1b2c3d")
	if n := len(lines(r.out, "  ✗ ")) + len(lines(r.out, "  ✓ ")); r.code != 0 || n != 155 || len(lines(r.out, "  ✓ ok-")) != 2 {
		t.Errorf("show: exit %d, %d device lines, want 155:\n%s", r.code, n, r.out)
	}

	// -limit bounds the listing and says more remain.
	r = iotplan(t, "jobs", "show", "-dev", "-data", dir, "-failed-only", "-limit", "120", "iotplan-lock-doors-0a1b2c3d")
	if n := len(lines(r.out, "  ✗ ")); r.code != 0 || n != 120 || !strings.Contains(r.out, "Listed the first 120 failed devices: more remain") {
		t.Errorf("-limit 120: exit %d, %d lines:\n%s", r.code, n, r.out)
	}
	r = iotplan(t, "jobs", "show", "-dev", "-data", dir, "-failed-only", "-limit", "153", "iotplan-lock-doors-0a1b2c3d")
	if n := len(lines(r.out, "  ✗ ")); r.code != 0 || n != 153 || !strings.Contains(r.out, "Listed 153 failed devices.") {
		t.Errorf("-limit 153 (all of them): exit %d, %d lines:\n%s", r.code, n, r.out)
	}
}

func TestJobsShowJSONLines(t *testing.T) {
	t.Parallel()
	c, dir := jobsHub(t)
	runJob(t, c, lockJob("iotplan-lock-doors-0a1b2c3d", "tags.site = 'lab'"))
	r := iotplan(t, "jobs", "show", "-dev", "-data", dir, "-failed-only", "-json", "iotplan-lock-doors-0a1b2c3d")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.err)
	}
	ls := strings.Split(strings.TrimSuffix(r.out, "\n"), "\n")
	var first struct {
		FormatVersion string             `json:"format_version"`
		Job           hubapi.JobResponse `json:"job"`
	}
	if err := json.Unmarshal([]byte(ls[0]), &first); err != nil || first.FormatVersion != "1" || first.Job.JobID != "iotplan-lock-doors-0a1b2c3d" {
		t.Fatalf("first line %q: %+v, %v", ls[0], first, err)
	}
	failed, answered := 0, 0
	for _, l := range ls[1:] {
		var row struct {
			DeviceJob *hubapi.DeviceJob `json:"device_job"`
		}
		if err := json.Unmarshal([]byte(l), &row); err != nil || row.DeviceJob == nil {
			t.Fatalf("line %q: %v", l, err)
		}
		switch dj := row.DeviceJob; {
		case dj.Status == hubapi.DeviceJobFailed && dj.Error != nil && dj.Error.Code == "DeviceNotOnline":
			failed++
		case dj.Outcome != nil && dj.Outcome.DeviceMethodResponse != nil && dj.Outcome.DeviceMethodResponse.Status == 500:
			answered++
		default:
			t.Errorf("unexpected row %s", l)
		}
	}
	if failed != first.Job.DeviceJobStatistics.FailedCount || answered != 3 {
		t.Errorf("%d failed and %d error-status rows, want %d and 3", failed, answered, first.Job.DeviceJobStatistics.FailedCount)
	}
	r = iotplan(t, "jobs", "show", "-dev", "-data", dir, "-json", "-limit", "7", "iotplan-lock-doors-0a1b2c3d")
	if n := strings.Count(r.out, "\n"); r.code != 0 || n != 8 {
		t.Errorf("-json -limit 7: exit %d, %d lines, want 8", r.code, n)
	}
}

func TestJobsShowUnknownJob(t *testing.T) {
	t.Parallel()
	_, dir := jobsHub(t)
	r := iotplan(t, "jobs", "show", "-dev", "-data", dir, "no-such-job")
	if r.code != exitError || !strings.Contains(r.err, `job "no-such-job"`) || !strings.Contains(r.err, "no job with this id") ||
		strings.Count(strings.TrimSpace(r.err), "\n") != 0 {
		t.Errorf("exit %d, stderr %q", r.code, r.err)
	}
}

// Usage mistakes are found before any hub is contacted.
func TestJobsUsageErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"jobs", "bogus"}, `unknown command "bogus"`},
		{[]string{"jobs", "list", "-type", "reboot"}, `-type "reboot": expected scheduleUpdateTwin or scheduleDeviceMethod`},
		{[]string{"jobs", "list", "-status", "finished"}, `-status "finished": expected queued`},
		{[]string{"jobs", "show", "-limit", "-1", "x"}, "-limit -1"},
		{[]string{"jobs", "show"}, "accepts between 1 and 2 arg(s)"},
		{[]string{"jobs", "show", " "}, "the job id is empty"},
		{[]string{"jobs", "cancel", "-auto-approve"}, "accepts between 1 and 2 arg(s)"},
	} {
		r := iotplan(t, c.args...)
		if r.code != exitError || !strings.Contains(r.err, c.want) || !strings.Contains(r.err, "--help") {
			t.Errorf("%v: exit %d, stderr %q; want 1 and %q", c.args, r.code, r.err, c.want)
		}
	}
}

func TestJobsCancel(t *testing.T) {
	t.Parallel()
	c, dir := jobsHub(t)
	later := time.Now().Add(time.Hour).UTC()
	runJob(t, c, twinJob("ops-later", "deviceId = 'ok-0'", &later))
	done := runJob(t, c, twinJob("ops-done", "deviceId = 'ok-1'", nil))

	// No terminal and no -auto-approve: refused, the job untouched.
	r := iotplan(t, "jobs", "cancel", "-dev", "-data", dir, "ops-later")
	if r.code != exitError || !strings.Contains(r.err, "-auto-approve") {
		t.Errorf("without a terminal: exit %d, stderr %q", r.code, r.err)
	}
	if j, _ := c.GetJob(context.Background(), "ops-later"); j.Status != hubapi.JobStatusScheduled {
		t.Fatalf("job after a refused cancel: %s, want scheduled", j.Status)
	}

	r = iotplan(t, "jobs", "cancel", "-dev", "-data", dir, "-auto-approve", "ops-later")
	if r.code != 0 || !strings.Contains(r.out, "status     scheduled") || !strings.Contains(r.out, "Job ops-later: cancelled") {
		t.Errorf("cancel: exit %d\n%s%s", r.code, r.out, r.err)
	}
	if j, _ := c.GetJob(context.Background(), "ops-later"); j.Status != hubapi.JobStatusCancelled {
		t.Errorf("job after cancel: %s, want cancelled", j.Status)
	}

	r = iotplan(t, "jobs", "cancel", "-dev", "-data", dir, "-auto-approve", "ops-done")
	want := "Error: job ops-done has already ended (completed at " + done.EndTime.UTC().Format("2006-01-02 15:04:05 UTC") + "): nothing to cancel\n"
	if r.code != exitError || r.err != want {
		t.Errorf("cancel of a completed job: exit %d, stderr %q, want %q", r.code, r.err, want)
	}
	if j, _ := c.GetJob(context.Background(), "ops-done"); j.Status != hubapi.JobStatusCompleted {
		t.Errorf("completed job after cancel: %s", j.Status)
	}
}

// On a terminal, cancel asks; only "yes" cancels.
func TestJobsCancelAsks(t *testing.T) {
	t.Parallel()
	c, dir := jobsHub(t)
	later := time.Now().Add(time.Hour).UTC()
	runJob(t, c, twinJob("ops-later", "deviceId = 'ok-0'", &later))
	ask := func(answer string) result {
		var out, errb bytes.Buffer
		s := Streams{In: strings.NewReader(answer), Out: &out, Err: &errb, InTTY: true, Width: 100}
		code := run(context.Background(), []string{"jobs", "cancel", "-dev", "-data", dir, "ops-later"}, s)
		return result{code, out.String(), errb.String()}
	}
	r := ask("no\n")
	if r.code != exitError || !strings.Contains(r.err, "Do you want to cancel job ops-later") || !strings.Contains(r.err, "Not cancelled") {
		t.Errorf("answer no: exit %d\n%s%s", r.code, r.out, r.err)
	}
	if j, _ := c.GetJob(context.Background(), "ops-later"); j.Status != hubapi.JobStatusScheduled {
		t.Fatalf("job after answering no: %s", j.Status)
	}
	if r := ask("yes\n"); r.code != 0 || !strings.Contains(r.out, "Job ops-later: cancelled") {
		t.Errorf("answer yes: exit %d\n%s%s", r.code, r.out, r.err)
	}
}

// A PATH is read for its hub block (here its tier); without one no configuration is read.
func TestJobsConfigPath(t *testing.T) {
	t.Parallel()
	c, dir := jobsHub(t)
	runJob(t, c, twinJob("ops-floors", "deviceId = 'ok-0'", nil))
	cfgDir := t.TempDir()
	cfg := filepath.Join(cfgDir, "hub.hcl")
	os.WriteFile(cfg, []byte("hub {\n  tier  = \"S1\"\n  units = 1\n}\n"), 0o644)
	if r := iotplan(t, "jobs", "list", "-dev", "-data", dir, cfg); r.code != 0 || !strings.Contains(r.out, "ops-floors") {
		t.Errorf("with a hub block: exit %d\n%s%s", r.code, r.out, r.err)
	}
	bad := filepath.Join(cfgDir, "bad.hcl")
	os.WriteFile(bad, []byte("hub {\n  tier = \"S9\"\n}\n"), 0o644)
	if r := iotplan(t, "jobs", "show", "-dev", "-data", dir, "ops-floors", bad); r.code != exitError || !strings.Contains(r.err, "bad.hcl:2") {
		t.Errorf("with a bad hub block: exit %d\n%s%s", r.code, r.out, r.err)
	}
}

// A cancel the hub answers with the job unchanged (the local hub does when the job ended
// meanwhile) or refuses is told by status and code, never by the hub's text.
func TestJobsCancelOutcomes(t *testing.T) {
	t.Parallel()
	end := time.Date(2026, 11, 25, 17, 1, 47, 0, time.UTC)
	job := hubapi.JobResponse{JobID: "ops-x", Status: hubapi.JobStatusRunning}
	err := endedError(hubapi.JobResponse{JobID: "ops-x", Status: hubapi.JobStatusCompleted, EndTime: &end}, true)
	if !errors.Is(err, errJobEnded) || err.Error() != "job ops-x had already ended (completed at 2026-11-25 17:01:47 UTC) and the hub left it so: nothing to cancel" {
		t.Errorf("unchanged: %v", err)
	}
	hs := &hubSession{name: "contoso.azure-devices.net"}
	for _, c := range []struct {
		err  error
		is   error
		want string
	}{
		{&hubclient.Error{Status: 404, Code: 404002, Name: "JobNotFound", Op: "job.cancel"}, errNoSuchJob, `job "ops-x" on contoso.azure-devices.net: the hub has no job`},
		{&hubclient.Error{Status: 400, Name: "OperationNotAllowedInCurrentState", Op: "job.cancel"}, nil, "the hub refused to cancel job ops-x (running): iot hub job.cancel: OperationNotAllowedInCurrentState"},
		{&hubclient.Error{Status: 503, Code: 503001, Name: "ServiceUnavailable", Op: "job.cancel"}, nil, "cancelling job ops-x: iot hub job.cancel: ServiceUnavailable"},
	} {
		got := cancelError(job, hs, c.err)
		if !strings.HasPrefix(got.Error(), c.want) || (c.is != nil && !errors.Is(got, c.is)) {
			t.Errorf("cancelError(%v) = %v, want %q…", c.err, got, c.want)
		}
	}
}
