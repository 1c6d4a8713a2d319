package render

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/iotplan/iotplan/internal/reconcile"
	"github.com/iotplan/iotplan/internal/state"
)

var statusTime = time.Date(2026, 5, 1, 9, 30, 0, 0, time.UTC)

func statusReport() *reconcile.StatusReport {
	return &reconcile.StatusReport{Hub: "h.example.net", StateName: "default", Observed: statusTime,
		LastApply: &state.LastApply{ID: "abc", Operation: "apply", Finished: statusTime, Jobs: []state.LastJob{{Addr: "method.lock", JobID: "iotplan-lock-1", Type: "scheduleDeviceMethod"}}},
		Resources: []reconcile.ResourceStatus{
			{Addr: `twin.floor["43"]`, Kind: "twin", Target: "deviceId = 'secret-door'", SensitiveTarget: true, Targeted: 1200, Disconnected: 3,
				DesiredInSync: &reconcile.Metric{Devices: 1100}, ReportedInSync: &reconcile.Metric{NA: "the hub cannot compare an array value"}},
			{Addr: "method.lock", Kind: "method", Target: "tags.site = 'hq'", Method: "lockDoor", Targeted: 9, Disconnected: 2,
				Ran: &reconcile.Metric{Devices: 6}, RunTag: "r1", Failed: &reconcile.Metric{Devices: 2},
				Jobs: []reconcile.StatusJob{{JobID: "iotplan-lock-1", Type: "scheduleDeviceMethod", Status: "completed", Devices: 9, Failed: 2}}},
		},
		HubCalls: map[string]int{"query": 4, "job.get": 1}}
}

func TestStatusTable(t *testing.T) {
	var b bytes.Buffer
	if err := Status(&b, statusReport(), Options{}); err != nil {
		t.Fatal(err)
	}
	want := `Status of the fleet on h.example.net, state "default", at 2026-05-01 09:30:00 UTC

  RESOURCE          TARGETED  DESIRED IN SYNC  REPORTED IN SYNC  RAN  DISCONNECTED  FAILED
  twin.floor["43"]     1,200            1,100               n/a    -             3       -
  method.lock              9                -                 -    6             2       2

  # twin.floor["43"]: reported in sync is n/a: the hub cannot compare an array value

Last apply: apply abc, finished 2026-05-01 09:30:00 UTC, 1 job.
  method.lock: job iotplan-lock-1 (scheduleDeviceMethod) completed: 2 of 9 devices failed

Status used 5 hub calls (job.get: 1, query: 4).
`
	if b.String() != want {
		t.Errorf("status table:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestStatusJSONHidesSensitiveTargets(t *testing.T) {
	var b bytes.Buffer
	if err := StatusJSON(&b, statusReport(), "v1"); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "secret-door") {
		t.Fatalf("status -json shows a sensitive target:\n%s", b.String())
	}
	var doc map[string]any
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	rs := doc["resources"].([]any)
	twin, method := rs[0].(map[string]any), rs[1].(map[string]any)
	if twin["target"] != SensitiveValue || twin["sensitive_target"] != true || twin["desired_in_sync"] != 1100.0 ||
		twin["reported_in_sync"] != nil || twin["failed_last_apply"] != nil ||
		twin["not_available"].(map[string]any)["reported_in_sync"] != "the hub cannot compare an array value" {
		t.Errorf("twin: %v", twin)
	}
	if method["ran_with_current_triggers"] != 6.0 || method["failed_last_apply"] != 2.0 || method["desired_in_sync"] != nil ||
		len(method["last_apply_jobs"].([]any)) != 1 || doc["format_version"] != StatusFormatVersion {
		t.Errorf("method: %v", method)
	}
}

func driftReport() *reconcile.DriftReport {
	at := statusTime.Add(-time.Hour)
	return &reconcile.DriftReport{Hub: "h", StateName: "default", Observed: statusTime, HubCalls: map[string]int{"query": 6},
		Resources: []reconcile.ResourceDrift{{Addr: "twin.creds", Target: "deviceId = 'secret-door'", SensitiveTarget: true,
			Sensitive: []string{"desired.token"}, Targeted: 6, Keys: []reconcile.KeyDrift{
				{Key: "desired.floor", Value: json.RawMessage("5"), Devices: 2, Unselectable: 1, LastUpdated: &at, Samples: []string{"door-2"}},
				{Key: "desired.token", Value: json.RawMessage(`"hunter2"`), Devices: 0},
				{Key: "tags.owner", Value: json.RawMessage(`"ops"`), Devices: 1, NoTime: "tags carry no $metadata", Samples: []string{"door-1"}},
				{Key: "tags.list", Value: json.RawMessage(`[1]`), NotChecked: "the hub cannot compare an array value"},
			}}}}
}

func TestDriftText(t *testing.T) {
	var b bytes.Buffer
	if err := Drift(&b, driftReport(), 7, Options{}); err != nil {
		t.Fatal(err)
	}
	want := `Drift on h, state "default", at 2026-05-01 09:30:00 UTC: the values iotplan set, checked on the devices of each recorded target.

twin.creds (6 devices targeted)
  ~ desired.floor = 5: 2 of 6 no longer hold it (door-2, …), last changed 2026-05-01 08:30:00 UTC
      # 1 holds an object or an array, which no query condition selects: not among the examples and the time
    desired.token = (sensitive value): no drift
  ~ tags.owner = "ops": 1 of 6 no longer holds it (door-1)
      # tags carry no $metadata
    tags.list = [1]: not checked: the hub cannot compare an array value

Drift found: 2 keys of 1 resource no longer hold the value iotplan set on some devices.
Recorded in the state "default" (serial 7); no device was changed.
Drift used 6 hub calls (query: 6).
`
	if b.String() != want {
		t.Errorf("drift text:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestDriftJSONHidesSensitiveValues(t *testing.T) {
	var b bytes.Buffer
	if err := DriftJSON(&b, driftReport(), 0, "v1"); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "hunter2") || strings.Contains(b.String(), "secret-door") {
		t.Fatalf("drift -json shows a secret:\n%s", b.String())
	}
	var doc struct {
		Drift          bool   `json:"drift"`
		RecordedSerial *int64 `json:"recorded_serial"`
		Resources      []struct {
			Target string `json:"target"`
			Keys   []struct {
				Key       string          `json:"key"`
				Value     json.RawMessage `json:"value"`
				Sensitive bool            `json:"sensitive"`
				Checked   bool            `json:"checked"`
				Samples   []string        `json:"sample_device_ids"`
			} `json:"keys"`
		} `json:"resources"`
	}
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	keys := doc.Resources[0].Keys
	if !doc.Drift || doc.RecordedSerial != nil || doc.Resources[0].Target != SensitiveValue || !keys[1].Sensitive ||
		string(keys[1].Value) != `"`+SensitiveValue+`"` || keys[3].Checked || keys[2].Samples[0] != "door-1" || keys[1].Samples == nil {
		t.Errorf("drift document:\n%s", b.String())
	}
}
