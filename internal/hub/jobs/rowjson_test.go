package jobs

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/iotplan/iotplan/internal/hubapi"
)

// TestAppendRowMatchesEncodingJSON: the row writer gives the bytes encoding/json gives.
func TestAppendRowMatchesEncodingJSON(t *testing.T) {
	t1 := time.Date(2026, 12, 1, 23, 51, 10, 123456700, time.UTC)
	t2 := time.Date(2026, 12, 1, 23, 51, 10, 0, time.FixedZone("x", 3600))
	far := time.Date(10001, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, r := range []hubapi.DeviceJob{
		{},
		{DeviceID: "door-001", JobID: "j", JobType: hubapi.JobTypeUpdateTwin, Status: hubapi.DeviceJobPending,
			StartTimeUTC: &t1, CreatedDateTimeUTC: &t1, LastUpdatedDateTimeUTC: &t2, Outcome: &hubapi.DeviceJobOutcome{}},
		{DeviceID: `we"ird<id>é`, ModuleID: "m", JobID: "j/2", JobType: hubapi.JobTypeDeviceMethod, Status: hubapi.DeviceJobFailed,
			EndTimeUTC: &t2, Error: &hubapi.DeviceJobError{Code: "JobInterrupted", Description: "the hub\nstopped"},
			Outcome: &hubapi.DeviceJobOutcome{DeviceMethodResponse: &hubapi.CloudToDeviceMethodResult{Status: 200, Payload: json.RawMessage(`{"a":1}`)}}},
		{DeviceID: "x", StartTimeUTC: &far},
	} {
		want, err := json.Marshal(&r)
		got := appendRow(nil, &r)
		if err != nil {
			// encoding/json refuses years beyond 9999; the writer must not produce a
			// different valid row for it.
			if json.Valid(got) {
				var back hubapi.DeviceJob
				if json.Unmarshal(got, &back) == nil && back.StartTimeUTC != nil && back.StartTimeUTC.Equal(far) {
					t.Errorf("appendRow wrote a year encoding/json refuses: %s", got)
				}
			}
			continue
		}
		if string(got) != string(want) {
			t.Errorf("appendRow:\n%s\nencoding/json:\n%s", got, want)
		}
	}
}
