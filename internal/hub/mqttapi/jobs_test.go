package mqttapi

import (
	"testing"
	"time"

	"github.com/iotplan/iotplan/internal/hub/jobs"
	"github.com/iotplan/iotplan/internal/hubapi"
)

// The tutorial's two jobs, run by the real job manager, reach MQTT devices: the twin job's
// desired change arrives as a notification, the method job gets the device's 200, and a
// device without the method callback fails with 404103 in its job row.
func TestJobsOverMQTT(t *testing.T) {
	e := newEnv(t)
	mgr, err := jobs.New(e.db, e.reg, e.link, jobs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer mgr.Close()
	key, _ := e.addDevice("myDeviceId", "")
	otherKey, _ := e.addDevice("other", "")
	dev := e.device("myDeviceId", key)
	calls := make(chan struct{}, 4)
	if err := dev.RegisterMethod(ctxT(t), "lockDoor", func(map[string]any) (int, map[string]any, error) {
		calls <- struct{}{}
		return 200, nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	sub, err := dev.SubscribeTwinUpdates(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	e.device("other", otherKey) // connected, no method callback
	waitFor(t, "other connected", func() bool { return e.link.Connected("other") })

	if _, err := mgr.Create(hubapi.JobRequest{
		JobID: "twin-job", Type: hubapi.JobTypeUpdateTwin, QueryCondition: "deviceId IN ['myDeviceId']",
		UpdateTwin:                &hubapi.TwinPatch{ETag: "*", Properties: &hubapi.TwinProperties{Desired: map[string]any{"building": "43", "floor": 3}}},
		MaxExecutionTimeInSeconds: 300,
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := mgr.Create(hubapi.JobRequest{
		JobID: "method-job", Type: hubapi.JobTypeDeviceMethod, QueryCondition: "deviceId IN ['myDeviceId', 'other']",
		CloudToDeviceMethod:       &hubapi.CloudToDeviceMethod{MethodName: "lockDoor", ResponseTimeoutInSeconds: 15},
		MaxExecutionTimeInSeconds: 300,
	}); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-sub.C():
		if s["building"] != "43" || s["floor"] != float64(3) || s.Version() != 2 {
			t.Errorf("desired notification = %v", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no desired notification from the twin job")
	}
	for _, id := range []string{"twin-job", "method-job"} {
		waitFor(t, id+" completed", func() bool {
			j, err := mgr.Get(id)
			return err == nil && j.Status == hubapi.JobStatusCompleted
		})
	}
	if len(calls) != 1 {
		t.Errorf("lockDoor calls = %d, want 1", len(calls))
	}
	j, _ := mgr.Get("method-job")
	if st := j.DeviceJobStatistics; st == nil || st.DeviceCount != 2 || st.SucceededCount != 1 || st.FailedCount != 1 {
		t.Errorf("method job statistics = %+v", j.DeviceJobStatistics)
	}
	rows := map[string]map[string]any{}
	mgr.ForEachDeviceJob(func(row map[string]any) bool {
		if row["jobId"] == "method-job" {
			rows[row["deviceId"].(string)] = row
		}
		return true
	})
	if out, _ := rows["myDeviceId"]["outcome"].(map[string]any); out == nil || out["deviceMethodResponse"].(map[string]any)["status"] != float64(200) {
		t.Errorf("myDeviceId row = %v", rows["myDeviceId"])
	}
	if er, _ := rows["other"]["error"].(map[string]any); er == nil || er["code"] != "DeviceNotOnline" {
		t.Errorf("other row = %v", rows["other"])
	}
}
