package hubclient_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/iotplan/iotplan/internal/hub"
	"github.com/iotplan/iotplan/internal/hub/hubtest"
	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/hubclient"
)

// These tests run the client against the real local hub: in-process, HTTPS on a random
// loopback port, SAS authentication, the real query engine and job runner.

const testFleet = `
device "pinger" {
  method "ping" {
    status  = 200
    payload = { pong = true }
  }
}

group "doors" {
  count = 250
  id    = "door-%05d"
  tags = {
    site = "hq"
  }
  desired = {
    building = "42"
  }
}
`

func startHub(t *testing.T) (*hub.Hub, *hubclient.Client) {
	t.Helper()
	return hubtest.Start(t, testFleet)
}

func TestQueryPagesOverLocalHub(t *testing.T) {
	t.Parallel()
	h, c := startHub(t)
	before := h.Requests()["POST /devices/query"]
	rows, err := c.Query(context.Background(), "SELECT deviceId FROM devices")
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, r := range rows {
		ids[r["deviceId"].(string)] = true
	}
	if len(rows) != 251 || len(ids) != 251 || !ids["pinger"] || !ids["door-00249"] {
		t.Fatalf("%d rows, %d distinct ids", len(rows), len(ids))
	}
	// 251 rows at 100 per page: three pages, three calls, as the hub counted them too.
	if got := c.Calls()["query"]; got != 3 {
		t.Errorf("client counted %d query calls, want 3", got)
	}
	if got := h.Requests()["POST /devices/query"] - before; got != 3 {
		t.Errorf("hub counted %d query requests, want 3", got)
	}

	rows, err = c.Query(context.Background(), "SELECT properties.desired.building AS b, COUNT() AS n FROM devices GROUP BY properties.desired.building")
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 {
		t.Errorf("groups %v", rows)
	}
}

func TestJobsOverLocalHub(t *testing.T) {
	t.Parallel()
	_, c := startHub(t)
	ctx := context.Background()
	now := time.Now().UTC()
	req := hubapi.JobRequest{
		JobID: "iotplan-test-update", Type: hubapi.JobTypeUpdateTwin,
		UpdateTwin:     &hubapi.TwinPatch{ETag: "*", Properties: &hubapi.TwinProperties{Desired: map[string]any{"building": "43"}}, Tags: map[string]any{"owner": "ops"}},
		QueryCondition: "deviceId IN ['door-00001', 'door-00002']", StartTime: &now, MaxExecutionTimeInSeconds: 60,
	}
	created, err := c.CreateJob(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if created.JobID != req.JobID || created.Type != hubapi.JobTypeUpdateTwin {
		t.Errorf("created %+v", created)
	}
	job := waitJob(t, c, req.JobID)
	if job.Status != hubapi.JobStatusCompleted || job.DeviceJobStatistics == nil ||
		job.DeviceJobStatistics.DeviceCount != 2 || job.DeviceJobStatistics.SucceededCount != 2 {
		t.Fatalf("job %+v stats %+v", job, job.DeviceJobStatistics)
	}
	twin, err := c.GetTwin(ctx, "door-00002")
	if err != nil {
		t.Fatal(err)
	}
	if d := twin["properties"].(map[string]any)["desired"].(map[string]any); d["building"] != "43" || twin["tags"].(map[string]any)["owner"] != "ops" {
		t.Errorf("twin after job: %v", twin)
	}
	rows, err := c.DeviceJobs(ctx, req.JobID, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].Status != hubapi.DeviceJobCompleted || rows[0].JobID != req.JobID {
		t.Errorf("device jobs %+v", rows)
	}
	if failed, err := c.DeviceJobs(ctx, req.JobID, hubapi.DeviceJobFailed, 0); err != nil || len(failed) != 0 {
		t.Errorf("failed rows %v %v", failed, err)
	}
	jobs, err := c.ListJobs(ctx, hubapi.JobTypeUpdateTwin, "")
	if err != nil || len(jobs) != 1 || jobs[0].JobID != req.JobID {
		t.Errorf("list %v %v", jobs, err)
	}
	// The same id again: the hub refuses, and the client does not retry a definite answer.
	_, err = c.CreateJob(ctx, req)
	var he *hubclient.Error
	if !errors.As(err, &he) || he.Status != 409 || he.Code != 409104 || he.Name != "JobAlreadyExists" {
		t.Errorf("duplicate job: %v", err)
	}

	// A method job.
	mreq := hubapi.JobRequest{JobID: "iotplan-test-ping", Type: hubapi.JobTypeDeviceMethod,
		CloudToDeviceMethod: &hubapi.CloudToDeviceMethod{MethodName: "ping", Payload: []byte("null"), ResponseTimeoutInSeconds: 10},
		QueryCondition:      "deviceId = 'pinger'", MaxExecutionTimeInSeconds: 60}
	if _, err := c.CreateJob(ctx, mreq); err != nil {
		t.Fatal(err)
	}
	if job := waitJob(t, c, mreq.JobID); job.Status != hubapi.JobStatusCompleted || job.DeviceJobStatistics.SucceededCount != 1 {
		t.Fatalf("method job %+v", job)
	}
	rows, err = c.DeviceJobs(ctx, mreq.JobID, "", 0)
	if err != nil || len(rows) != 1 || rows[0].Outcome == nil || rows[0].Outcome.DeviceMethodResponse == nil || rows[0].Outcome.DeviceMethodResponse.Status != 200 {
		t.Errorf("method rows %+v %v", rows, err)
	}
	if bad, err := c.MethodErrors(ctx, mreq.JobID, 10); err != nil || len(bad) != 0 {
		t.Errorf("method errors %v %v", bad, err)
	}
	// A job scheduled an hour ahead can be cancelled.
	later := time.Now().Add(time.Hour).UTC()
	creq := hubapi.JobRequest{JobID: "iotplan-test-later", Type: hubapi.JobTypeUpdateTwin, StartTime: &later,
		UpdateTwin: &hubapi.TwinPatch{ETag: "*", Tags: map[string]any{"x": "y"}}, QueryCondition: "deviceId = 'door-00009'", MaxExecutionTimeInSeconds: 60}
	if _, err := c.CreateJob(ctx, creq); err != nil {
		t.Fatal(err)
	}
	cancelled, err := c.CancelJob(ctx, creq.JobID)
	if err != nil {
		t.Fatal(err)
	}
	if j := waitJob(t, c, creq.JobID); cancelled.JobID != creq.JobID || j.Status != hubapi.JobStatusCancelled {
		t.Errorf("cancel answered %+v, job now %+v", cancelled, j)
	}

	calls := c.Calls()
	if calls["job.create"] != 4 || calls["job.get"] < 3 || calls["job.list"] != 1 || calls["job.cancel"] != 1 {
		t.Errorf("calls %v", calls)
	}
}

func waitJob(t *testing.T, c *hubclient.Client, id string) hubapi.JobResponse {
	t.Helper()
	for range 300 {
		j, err := c.GetJob(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		switch j.Status {
		case hubapi.JobStatusCompleted, hubapi.JobStatusFailed, hubapi.JobStatusCancelled:
			return j
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("job %s did not finish in 15s", id)
	return hubapi.JobResponse{}
}

func TestTwinsAndMethodsOverLocalHub(t *testing.T) {
	t.Parallel()
	_, c := startHub(t)
	ctx := context.Background()
	res, err := c.CallMethod(ctx, "pinger", hubapi.CloudToDeviceMethod{MethodName: "ping", ResponseTimeoutInSeconds: 5})
	if err != nil || res.Status != 200 || string(res.Payload) != `{"pong":true}` {
		t.Errorf("ping: %+v %v", res, err)
	}
	twin, err := c.UpdateTwin(ctx, "door-00003", hubapi.TwinPatch{Tags: map[string]any{"site": nil, "x": 1}}, "")
	if err != nil {
		t.Fatal(err)
	}
	if tags := twin["tags"].(map[string]any); tags["site"] != nil || tags["x"] != 1.0 {
		t.Errorf("tags after merge patch: %v", tags)
	}
	if ok, err := c.DeviceExists(ctx, "door-00003"); !ok || err != nil {
		t.Errorf("exists: %v %v", ok, err)
	}
	if ok, err := c.DeviceExists(ctx, "ghost"); ok || err != nil {
		t.Errorf("ghost exists: %v %v", ok, err)
	}
	if err := c.CreateDevice(ctx, "new-one"); err != nil {
		t.Fatal(err)
	}
	calls := c.Calls()
	if calls["method.invoke"] != 1 || calls["twin.update"] != 1 || calls["device.get"] != 2 || calls["device.put"] != 1 {
		t.Errorf("calls %v", calls)
	}
}

func TestErrorsOverLocalHub(t *testing.T) {
	t.Parallel()
	h, c := startHub(t)
	ctx := context.Background()
	check := func(what string, err error, status, code int, name string) {
		t.Helper()
		var he *hubclient.Error
		if !errors.As(err, &he) {
			t.Errorf("%s: %T %v is not a *hubclient.Error", what, err, err)
			return
		}
		if he.Status != status || he.Code != code || he.Name != name || he.Message == "" {
			t.Errorf("%s: got %+v, want %d %d %s", what, *he, status, code, name)
		}
	}
	_, err := c.GetJob(ctx, "no-such-job")
	check("missing job", err, 404, 404002, "JobNotFound")
	_, err = c.GetTwin(ctx, "no-such-device")
	check("missing twin (through iotservice)", err, 404, 404001, "DeviceNotFound")
	_, err = c.Query(ctx, "SELECT * FROM devices WHERE")
	var he *hubclient.Error
	if !errors.As(err, &he) || he.Status != 400 {
		t.Errorf("bad query: %v", err)
	}
	_, err = c.CallMethod(ctx, "door-00001", hubapi.CloudToDeviceMethod{MethodName: "nothing", ResponseTimeoutInSeconds: 5})
	if !errors.As(err, &he) || he.Status/100 != 4 && he.Status/100 != 5 {
		t.Errorf("method on a device without it: %v", err)
	}

	// A wrong key: 401, and the error does not echo it.
	cs := h.ServiceConnectionString()
	i := strings.Index(cs, "SharedAccessKey=")
	wrongKey := "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
	bad, err := hubclient.New(cs[:i]+"SharedAccessKey="+wrongKey, hubclient.WithRootCAs(h.RootCAs()))
	if err != nil {
		t.Fatal(err)
	}
	_, err = bad.Query(ctx, "SELECT COUNT() AS n FROM devices")
	if !errors.As(err, &he) || he.Status != 401 || strings.Contains(err.Error(), wrongKey) {
		t.Errorf("wrong key: %v", err)
	}
}
