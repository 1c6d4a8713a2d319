package state

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/iotplan/iotplan/internal/hubapi"
)

// applyRecord is an apply of n twin resources, one job each, with a patch and a condition
// as large as iotplan's usually are.
func applyRecord(n int) *ApplyRecord {
	rec := &ApplyRecord{ID: "0123456789", Started: time.Unix(1e9, 0), Operation: "apply"}
	for i := range n {
		addr := fmt.Sprintf("module.site.twin.floor[\"%d\"]", i)
		rec.Jobs = append(rec.Jobs, RecordedJob{Addr: addr, Request: hubapi.JobRequest{
			JobID: fmt.Sprintf("iotplan-site-twin-floor-%d-%08x", i, i*7919), Type: hubapi.JobTypeUpdateTwin,
			QueryCondition: fmt.Sprintf("tags.building = '%d' AND (NOT IS_DEFINED(properties.desired.floor) OR properties.desired.floor != %d)", i, i),
			UpdateTwin:     &hubapi.TwinPatch{ETag: "*", Properties: &hubapi.TwinProperties{Desired: map[string]any{"floor": i}}},
		}})
		rec.Resources = append(rec.Resources, Resource{Addr: addr, Kind: "twin", Target: fmt.Sprintf("tags.building = '%d'", i),
			Keys: map[string]json.RawMessage{"desired.floor": json.RawMessage(fmt.Sprint(i))}, ConfigHash: fmt.Sprintf("%016x", i*104729)})
	}
	return rec
}

func TestLastApplyOf(t *testing.T) {
	rec := applyRecord(3)
	rec.Jobs = append(rec.Jobs, RecordedJob{Addr: rec.Jobs[0].Addr, Step: "remove", Request: hubapi.JobRequest{JobID: "iotplan-x", Type: hubapi.JobTypeUpdateTwin}})
	finished := time.Date(2026, 5, 1, 9, 0, 0, 0, time.FixedZone("CEST", 7200))
	la := LastApplyOf(rec, finished)
	if la.ID != rec.ID || la.Operation != "apply" || !la.Finished.Equal(finished) || la.Finished.Location() != time.UTC || len(la.Jobs) != 4 {
		t.Fatalf("LastApplyOf = %+v", la)
	}
	if got := la.JobsOf(rec.Jobs[0].Addr); len(got) != 2 || got[0].JobID != rec.Jobs[0].Request.JobID || got[1].JobID != "iotplan-x" || got[0].Type != hubapi.JobTypeUpdateTwin {
		t.Errorf("JobsOf = %+v", got)
	}
	if LastApplyOf(nil, finished) != nil || (*LastApply)(nil).JobsOf("x") != nil {
		t.Error("nil records")
	}
}

func TestNewDriftRecordIsBounded(t *testing.T) {
	keys := make([]DriftKey, MaxDriftKeys+7)
	for i := range keys {
		keys[i] = DriftKey{Addr: fmt.Sprintf("twin.t%d", i), Key: "desired.floor", Devices: i + 1}
	}
	rec := NewDriftRecord(time.Unix(5, 0), keys)
	if len(rec.Keys) != MaxDriftKeys || rec.More != 7 || rec.Keys[0].Addr != "twin.t0" || rec.Observed.Location() != time.UTC {
		t.Errorf("record: %d keys, more %d", len(rec.Keys), rec.More)
	}
	if empty := NewDriftRecord(time.Unix(5, 0), nil); empty.Keys != nil || empty.More != 0 {
		t.Errorf("empty record: %+v", empty)
	}
}

// encodedSize is the length of the state's body chunks, what counts against the twin's limit.
func encodedSize(t *testing.T, st *State) int {
	t.Helper()
	body, _, err := encodeBody(st)
	if err != nil {
		t.Fatal(err)
	}
	return hubapi.TwinSize(body)
}

// TestHistoryKeepsTheStateSmall: finishing an apply never makes the state larger than it was
// while the apply ran (the last apply's ids replace the whole recorded jobs), and a full
// drift record takes about one chunk of the body.
func TestHistoryKeepsTheStateSmall(t *testing.T) {
	now := time.Unix(2e9, 0)
	var keys []DriftKey
	for i := range MaxDriftKeys {
		at := now.Add(time.Duration(i*7919) * time.Second).Add(time.Duration(i*104729) * time.Microsecond)
		keys = append(keys, DriftKey{Addr: fmt.Sprintf("module.site.twin.floor[\"%d\"]", i), Key: "desired.location.floor",
			Devices: 1000 + i*37, LastUpdated: &at})
	}
	drift := NewDriftRecord(now, keys)
	for _, n := range []int{1, 50, 200} {
		rec := applyRecord(n)
		running := &State{Format: Format, Name: "s", Resources: rec.Resources, Apply: rec, Drift: drift}
		finished := &State{Format: Format, Name: "s", Resources: rec.Resources, LastApply: LastApplyOf(rec, now), Drift: drift}
		if r, f := encodedSize(t, running), encodedSize(t, finished); f > r {
			t.Errorf("%d jobs: the finished state takes %d bytes, more than the running one (%d)", n, f, r)
		}
	}
	withDrift := encodedSize(t, &State{Format: Format, Name: "s", Drift: drift})
	without := encodedSize(t, &State{Format: Format, Name: "s"})
	t.Logf("a full drift record (%d keys) takes %d bytes of the body", MaxDriftKeys, withDrift-without)
	if d := withDrift - without; d > ChunkSize {
		t.Errorf("a full drift record takes %d bytes of the body, more than one chunk (%d)", d, ChunkSize)
	}
}
