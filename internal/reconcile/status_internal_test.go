package reconcile

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/query"
	"github.com/iotplan/iotplan/internal/state"
)

// TestDriftKeyHoldingTermsPartition: for every kind of managed key, the holding term selects
// exactly the devices holding iotplan's value (typed: 3 is not "3"; a key declared absent is
// held where it is missing), and the drift term every other device except those holding an
// object or an array where a scalar was set (no documented condition compares them) — never
// both. Evaluated by the query engine with the hub's semantics.
func TestDriftKeyHoldingTermsPartition(t *testing.T) {
	values := []any{"missing", "43", "3", "true", "", 43.0, 3.0, 0.0, -1.5, true, false, nil,
		map[string]any{"a": 1.0}, []any{"43"}, map[string]any{}}
	for _, want := range []any{"43", 3.0, true, false, nil} {
		l := Leaf{Section: SectionDesired, Keys: []string{"loc", "b"}, Value: want}
		holding, drifted, ok := keyHoldingTerms(l)
		if !ok {
			t.Fatalf("%v: not comparable", want)
		}
		var docs []map[string]any
		wantHolding, wantDrifted := []string{}, []string{}
		for i, v := range values {
			id := fmt.Sprintf("d%02d", i)
			loc := map[string]any{}
			if v != "missing" {
				loc["b"] = v
			}
			docs = append(docs, twinDoc(id, map[string]any{"loc": loc}, nil))
			_, compound := v.(map[string]any)
			if _, arr := v.([]any); arr {
				compound = true
			}
			switch {
			case want == nil && v == "missing", want != nil && valueKey(v) == valueKey(want):
				wantHolding = append(wantHolding, id)
			case want == nil || !compound:
				wantDrifted = append(wantDrifted, id)
			}
		}
		for _, c := range []struct {
			name string
			cond query.Expr
			want []string
		}{{"holding", holding, wantHolding}, {"drifted", drifted, wantDrifted}} {
			if err := query.CheckCondition(c.cond); err != nil {
				t.Errorf("%v %s: %v", want, c.name, err)
			}
			got, err := matching(c.cond, docs)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, ",") != strings.Join(c.want, ",") {
				t.Errorf("value %#v, %s term %s\nselects %v\nwant    %v", want, c.name, query.Format(c.cond), got, c.want)
			}
		}
	}
	if _, _, ok := keyHoldingTerms(Leaf{Section: SectionDesired, Keys: []string{"a"}, Value: []any{1.0}}); ok {
		t.Error("an array value is comparable")
	}
}

func TestDriftMetaPathAndStatusRanCondition(t *testing.T) {
	p, ok := metaPath(Leaf{Section: SectionDesired, Keys: []string{"location", "my room"}})
	if !ok || query.Format(query.IsDefined(p)) != "IS_DEFINED(properties.desired.$metadata.location.[[my room]].$lastUpdated)" {
		t.Errorf("metaPath = %v %v", p, ok)
	}
	if _, ok := metaPath(Leaf{Section: SectionTags, Keys: []string{"owner"}}); ok {
		t.Error("tags have a $metadata path")
	}
	got := query.Format(ranCondition(scope(query.All()), "r0123456789ab", "ffff0000ffff0000"))
	if want := "NOT IS_DEFINED(tags.iotplanState) AND tags.iotplanRuns.r0123456789ab.t = 'ffff0000ffff0000'"; got != want {
		t.Errorf("ranCondition = %s\nwant %s", got, want)
	}
}

func TestDriftLastUpdated(t *testing.T) {
	at, why := lastUpdated("2026-05-01T09:30:00.1234567Z")
	if at == nil || why != "" || !at.Equal(time.Date(2026, 5, 1, 9, 30, 0, 123456700, time.UTC)) {
		t.Errorf("lastUpdated = %v %q", at, why)
	}
	if at, why := lastUpdated(nil); at != nil || !strings.Contains(why, "removed") {
		t.Errorf("undefined MAX: %v %q", at, why)
	}
	if at, why := lastUpdated("yesterday"); at != nil || !strings.Contains(why, "RFC 3339") {
		t.Errorf("bad time: %v %q", at, why)
	}
}

// metaDoc is twinDoc with a $lastUpdated for the desired floor and a connection state.
func metaDoc(id string, floor any, reported any, updated, conn string) map[string]any {
	d := twinDoc(id, map[string]any{"floor": floor}, map[string]any{"site": "hq"})
	props := d["properties"].(map[string]any)
	props["desired"].(map[string]any)["$metadata"] = map[string]any{"floor": map[string]any{"$lastUpdated": updated}}
	if reported != nil {
		props["reported"].(map[string]any)["floor"] = reported
	}
	d["connectionState"] = conn
	return d
}

// TestDriftOverMemFleet: the count is exact (an object counts, but is not selectable), the
// time is the latest change among the drifted devices only, and the queries are the ones
// documented in Drift.
func TestDriftOverMemFleet(t *testing.T) {
	fleet := &memFleet{docs: []map[string]any{
		metaDoc("ok-1", 5.0, nil, "2026-05-03T00:00:00Z", "Connected"), // converged, changed last
		metaDoc("str-1", "5", nil, "2026-05-02T00:00:00Z", "Connected"),
		metaDoc("six-1", 6.0, nil, "2026-05-01T00:00:00Z", "Connected"),
		metaDoc("obj-1", map[string]any{"x": 1.0}, nil, "2026-05-02T12:00:00Z", "Connected"),
	}}
	prior := &state.State{Name: "s", Resources: []state.Resource{{Addr: "twin.f", Kind: KindTwin, Target: "tags.site = 'hq'",
		Keys: map[string]json.RawMessage{"desired.floor": json.RawMessage("5"), "desired.gone": json.RawMessage("null"), "tags.list": json.RawMessage(`[1]`)}}}}
	rep, err := Drift(context.Background(), fleet, prior, DriftOptions{Now: time.Unix(0, 0)})
	if err != nil {
		t.Fatal(err)
	}
	keys := rep.Resources[0].Keys
	floor := keys[0]
	if floor.Key != "desired.floor" || floor.Devices != 3 || floor.Unselectable != 1 || fmt.Sprint(floor.Samples) != "[six-1 str-1]" ||
		floor.LastUpdated == nil || !floor.LastUpdated.Equal(time.Date(2026, 5, 2, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("desired.floor: %+v", floor)
	}
	if keys[1].Key != "desired.gone" || keys[1].Devices != 0 || keys[2].Key != "tags.list" || keys[2].NotChecked == "" {
		t.Errorf("other keys: %+v", keys[1:])
	}
	want := []string{
		"SELECT COUNT() AS n FROM devices WHERE tags.site = 'hq' AND NOT IS_DEFINED(tags.iotplanState)",
		"SELECT COUNT() AS n FROM devices WHERE tags.site = 'hq' AND NOT IS_DEFINED(tags.iotplanState) AND properties.desired.floor = 5",
		"SELECT COUNT() AS n, MAX(properties.desired.$metadata.floor.$lastUpdated) AS t FROM devices WHERE tags.site = 'hq' AND NOT IS_DEFINED(tags.iotplanState) AND " +
			"(NOT IS_DEFINED(properties.desired.floor) OR properties.desired.floor != 5 OR properties.desired.floor >= '' OR properties.desired.floor IN [true, false, null])",
		"SELECT TOP 3 deviceId AS deviceId FROM devices WHERE tags.site = 'hq' AND NOT IS_DEFINED(tags.iotplanState) AND " +
			"(NOT IS_DEFINED(properties.desired.floor) OR properties.desired.floor != 5 OR properties.desired.floor >= '' OR properties.desired.floor IN [true, false, null])",
		"SELECT COUNT() AS n FROM devices WHERE tags.site = 'hq' AND NOT IS_DEFINED(tags.iotplanState) AND NOT IS_DEFINED(properties.desired.gone)",
	}
	if !reflect.DeepEqual(fleet.queries, want) {
		t.Errorf("queries:\n%s\nwant\n%s", strings.Join(fleet.queries, "\n"), strings.Join(want, "\n"))
	}
	rec := rep.Record()
	if !rep.Drifted() || len(rec.Keys) != 1 || rec.Keys[0].Devices != 3 || !rec.Observed.Equal(time.Unix(0, 0)) {
		t.Errorf("record %+v", rec)
	}
}

// jobFleet is a memFleet that also answers job GETs.
type jobFleet struct {
	*memFleet
	jobs map[string]hubapi.JobResponse
	gets int
}

type notFound struct{}

func (notFound) Error() string   { return "job not found" }
func (notFound) HTTPStatus() int { return http.StatusNotFound }

func (f *jobFleet) GetJob(_ context.Context, id string) (hubapi.JobResponse, error) {
	f.gets++
	j, ok := f.jobs[id]
	if !ok {
		return j, notFound{}
	}
	return j, nil
}

// TestStatusOverMemFleet: exact metrics, one GROUP BY for resources sharing a target, n/a
// with its reason for values the hub cannot compare, and failed devices from the last
// apply's jobs (a job the hub no longer has makes the count unknown).
func TestStatusOverMemFleet(t *testing.T) {
	fleet := &jobFleet{memFleet: &memFleet{docs: []map[string]any{
		metaDoc("a", 5.0, 5.0, "", "Connected"),
		metaDoc("b", 5.0, 4.0, "", "Disconnected"),
		metaDoc("c", 4.0, 4.0, "", "Connected"),
	}}, jobs: map[string]hubapi.JobResponse{"j1": {JobID: "j1", Status: "completed", DeviceJobStatistics: &hubapi.DeviceJobStatistics{DeviceCount: 3, FailedCount: 1}}}}
	target, _ := query.ParseCondition("tags.site = 'hq'")
	cfg := &Config{
		Twins: []Twin{{Addr: "twin.f", Target: target, Desired: map[string]any{"floor": 5}},
			{Addr: "twin.arr", Target: target, Desired: map[string]any{"list": []any{1}}}},
		Methods: []Method{{Addr: "method.m", Target: target, Method: "reboot"}},
	}
	prior := &state.State{LastApply: &state.LastApply{ID: "x", Jobs: []state.LastJob{{Addr: "twin.f", JobID: "j1"}, {Addr: "method.m", JobID: "gone"}}}}
	rep, err := Status(context.Background(), fleet, cfg, StatusOptions{Prior: prior})
	if err != nil {
		t.Fatal(err)
	}
	f, arr, m := rep.Resources[0], rep.Resources[1], rep.Resources[2]
	if f.Targeted != 3 || f.Disconnected != 1 || f.DesiredInSync.Devices != 2 || f.ReportedInSync.Devices != 1 || f.Failed.Devices != 1 || !f.Failed.Known() {
		t.Errorf("twin.f: %+v desired %+v reported %+v failed %+v", f, f.DesiredInSync, f.ReportedInSync, f.Failed)
	}
	if arr.DesiredInSync.Known() || !strings.Contains(arr.ReportedInSync.NA, "array") || arr.Failed != nil {
		t.Errorf("twin.arr: %+v %+v", arr.DesiredInSync, arr.ReportedInSync)
	}
	if m.Targeted != 3 || m.DesiredInSync != nil || m.Ran != nil || m.Failed.Known() || !m.Jobs[0].Gone {
		t.Errorf("method.m: %+v failed %+v", m, m.Failed)
	}
	// One GROUP BY for the shared target, the desired and reported COUNTs of twin.f; twin.arr
	// and the method need no more.
	if len(fleet.queries) != 3 || fleet.gets != 2 {
		t.Errorf("%d queries, %d job GETs:\n%s", len(fleet.queries), fleet.gets, strings.Join(fleet.queries, "\n"))
	}
}
