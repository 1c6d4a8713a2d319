package hubapi

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// The wire structs must read and write the hub's documented JSON exactly: every documented
// field decodes into a field of ours (no unknown names), and encoding gives the same document
// back (nulls aside, which our optional fields omit). The documents are the captured shapes
// of https://learn.microsoft.com/rest/api/iothub/service/jobs and the job docs; the devices.jobs row is the documented
// one with a method outcome and its two zoneless times written with the zone we send
// (reading zoneless times is TestDeviceJobReadsZonelessTimes).
func TestDocumentedJSONRoundTrips(t *testing.T) {
	for file, v := range map[string]any{
		"job_completed.json":      &JobResponse{},
		"job_request_method.json": &JobRequest{},
		"device_job_row.json":     &DeviceJob{},
	} {
		t.Run(file, func(t *testing.T) {
			src, err := os.ReadFile(filepath.Join("testdata", file))
			if err != nil {
				t.Fatal(err)
			}
			dec := json.NewDecoder(bytes.NewReader(src))
			dec.DisallowUnknownFields()
			if err := dec.Decode(v); err != nil {
				t.Fatalf("decode: %v", err)
			}
			out, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			var want, got any
			json.Unmarshal(src, &want)
			json.Unmarshal(out, &got)
			want = dropNulls(want)
			if !reflect.DeepEqual(want, got) {
				t.Errorf("round trip changed the document:\nwant %v\ngot  %v", want, got)
			}
		})
	}
}

func dropNulls(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := map[string]any{}
		for k, e := range x {
			if e != nil {
				m[k] = dropNulls(e)
			}
		}
		return m
	case []any:
		for i := range x {
			x[i] = dropNulls(x[i])
		}
	}
	return v
}

// The documented devices.jobs row has zoneless UTC times; a client must still read it.
func TestDeviceJobReadsZonelessTimes(t *testing.T) {
	src := `{"deviceId":"myDeviceId","jobId":"myJobId","jobType":"scheduleUpdateTwin","status":"completed",
	"startTimeUtc":"2016-09-29T18:18:52.7418462","endTimeUtc":"2016-09-29T18:20:52.7418462",
	"createdDateTimeUtc":"2016-09-29T18:18:56.7787107Z","lastUpdatedDateTimeUtc":"2016-09-29T18:18:56.8894408Z",
	"outcome":{"deviceMethodResponse":null}}`
	var d DeviceJob
	if err := json.Unmarshal([]byte(src), &d); err != nil {
		t.Fatal(err)
	}
	if d.StartTimeUTC == nil || d.StartTimeUTC.Format(time.RFC3339Nano) != "2016-09-29T18:18:52.7418462Z" ||
		d.EndTimeUTC == nil || d.EndTimeUTC.Minute() != 20 || d.CreatedDateTimeUTC == nil || d.LastUpdatedDateTimeUTC == nil {
		t.Errorf("times = %v %v %v %v", d.StartTimeUTC, d.EndTimeUTC, d.CreatedDateTimeUTC, d.LastUpdatedDateTimeUTC)
	}
	if d.DeviceID != "myDeviceId" || d.Status != DeviceJobCompleted || d.Outcome == nil {
		t.Errorf("row = %+v", d)
	}
	if err := json.Unmarshal([]byte(`{"startTimeUtc":"yesterday"}`), &d); err == nil {
		t.Error("a non-timestamp was accepted")
	}
}
