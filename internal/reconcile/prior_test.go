package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/query"
	"github.com/iotplan/iotplan/internal/state"
)

// priorOf is the state after applying cfg's resources (its plan's records).
func priorOf(t *testing.T, cfg *Config, docs []map[string]any) *state.State {
	t.Helper()
	p, err := MakePlan(context.Background(), &memFleet{docs: docs}, cfg, PlanOptions{Now: planTime})
	if err != nil {
		t.Fatal(err)
	}
	return &state.State{Format: state.Format, Name: state.DefaultName, Lineage: "l1", Serial: 7, Resources: p.Records}
}

// TestRemovals: a key, or a whole twin block, that leaves the configuration is removed from
// the devices that still hold the value iotplan set — not from those whose value someone else
// changed — one job per key; keep_on_removal forgets it instead; destroy removes everything.
func TestRemovals(t *testing.T) {
	target, _ := query.ParseCondition("tags.site = 'hq'")
	full := &Config{Twins: []Twin{
		{Addr: "twin.a", Target: target, Desired: map[string]any{"mode": "eco", "floor": 3}},
		{Addr: "twin.b", Target: target, Tags: map[string]any{"owner": "ops"}},
		{Addr: "twin.kept", Target: target, Desired: map[string]any{"legacy": "x"}, KeepOnRemoval: true},
	}}
	var docs []map[string]any
	for i := range 10 {
		d := map[string]any{"mode": "eco", "floor": 3.0, "legacy": "x"}
		if i < 3 {
			d["mode"] = "turbo" // changed by someone else: not iotplan's value any more
		}
		docs = append(docs, twinDoc(fmt.Sprintf("d%d", i), d, map[string]any{"site": "hq", "owner": "ops"}))
	}
	prior := priorOf(t, full, docs)

	// twin.a loses "mode"; twin.b and twin.kept leave the configuration.
	now := &Config{Twins: []Twin{{Addr: "twin.a", Target: target, Desired: map[string]any{"floor": 3}}}}
	fleet := &memFleet{docs: docs}
	p, err := MakePlan(context.Background(), fleet, now, PlanOptions{Now: planTime, Prior: prior})
	if err != nil {
		t.Fatal(err)
	}
	byAddr := map[string]ResourceChange{}
	for _, r := range p.Resources {
		byAddr[r.Addr] = r
	}
	a, b, kept := byAddr["twin.a"], byAddr["twin.b"], byAddr["twin.kept"]
	if a.Action != Update || len(a.Jobs) != 1 || a.Jobs[0].Step != StepRemove || a.Transitions[0].Devices != 7 ||
		js(a.Jobs[0].Request.UpdateTwin) != `{"etag":"*","properties":{"desired":{"mode":null}}}` {
		t.Fatalf("twin.a: %s", js(a))
	}
	if got := selects(t, a.Jobs[0].Request.QueryCondition, docs); len(got) != 7 || strings.Contains(strings.Join(got, ","), "d0") {
		t.Errorf("removal of mode selects %q", got)
	}
	if b.Action != Remove || b.Devices != 10 || js(b.Jobs[0].Request.UpdateTwin) != `{"etag":"*","tags":{"owner":null}}` {
		t.Errorf("twin.b: %s", js(b))
	}
	if kept.Action != NoOp || len(kept.Jobs) != 0 || !strings.Contains(strings.Join(kept.Notes, ";"), "keep_on_removal") {
		t.Errorf("twin.kept: %s", js(kept))
	}
	if len(p.Records) != 1 || p.Records[0].Addr != "twin.a" || p.StateSerial != 7 || p.StateLineage != "l1" {
		t.Errorf("records %s serial %d lineage %q", js(p.Records), p.StateSerial, p.StateLineage)
	}
	if p.Summary().TwinChanges != 2 || p.DistinctDevices == nil || *p.DistinctDevices != 10 || p.Summary().TwinDevices != 10 {
		t.Errorf("summary %+v, distinct %v", p.Summary(), p.DistinctDevices)
	}

	// Destroy: everything the state manages goes, whatever the configuration says.
	p, err = MakePlan(context.Background(), &memFleet{docs: docs}, full, PlanOptions{Now: planTime, Prior: prior, Destroy: true})
	if err != nil {
		t.Fatal(err)
	}
	removed := 0
	for _, r := range p.Resources {
		for _, j := range r.Jobs {
			if j.Step != StepRemove {
				t.Errorf("destroy job %s", js(j))
			}
			removed++
		}
	}
	if removed != 3 || len(p.Records) != 0 || !p.Destroy {
		t.Errorf("destroy: %d removal jobs, records %s", removed, js(p.Records))
	}
}

// TestConflicts: two resources setting one key to different values on shared devices are a
// plan error naming both and the overlap; the same value, or disjoint targets, are fine.
func TestConflicts(t *testing.T) {
	docs := doorFleet(20)
	hq, _ := query.ParseCondition("tags.site = 'hq'")
	owned, _ := query.ParseCondition("IS_DEFINED(tags.owner)")
	elsewhere, _ := query.ParseCondition("tags.site = 'elsewhere'")
	cfg := &Config{Twins: []Twin{
		{Addr: "twin.all", Target: hq, Desired: map[string]any{"floor": 3}},
		{Addr: "twin.owned", Target: owned, Desired: map[string]any{"floor": 5}},
	}}
	_, err := MakePlan(context.Background(), &memFleet{docs: docs}, cfg, PlanOptions{Now: planTime})
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "twin.all and twin.owned both manage desired.floor") || !strings.Contains(err.Error(), "on 5 devices") {
		t.Fatalf("conflict: %v", err)
	}
	cfg.Twins[1].Desired["floor"] = 3
	if _, err := MakePlan(context.Background(), &memFleet{docs: docs}, cfg, PlanOptions{Now: planTime}); err != nil {
		t.Errorf("same value: %v", err)
	}
	cfg.Twins[1].Desired["floor"], cfg.Twins[1].Target = 5, elsewhere
	if _, err := MakePlan(context.Background(), &memFleet{docs: docs}, cfg, PlanOptions{Now: planTime}); err != nil {
		t.Errorf("disjoint targets: %v", err)
	}
}

// admFleet is a memFleet that also lists ADM configurations.
type admFleet struct {
	memFleet
	configs []hubapi.Configuration
}

func (f *admFleet) ListConfigurations(context.Context) ([]hubapi.Configuration, error) {
	return f.configs, nil
}

func TestADMOverlapsAreReported(t *testing.T) {
	f := &admFleet{memFleet: memFleet{docs: doorFleet(10)}, configs: []hubapi.Configuration{
		{ID: "fw", Priority: 10, TargetCondition: "tags.site='hq'", Content: &hubapi.ConfigurationContent{DeviceContent: map[string]any{"properties.desired.building": "44"}}},
		{ID: "other", Priority: 1, Content: &hubapi.ConfigurationContent{DeviceContent: map[string]any{"properties.desired.telemetry": 1}}},
	}}
	p, err := MakePlan(context.Background(), f, doorConfig(t), PlanOptions{Now: planTime})
	if err != nil {
		t.Fatal(err)
	}
	notes := strings.Join(p.Notes, "\n")
	if !strings.Contains(notes, `ADM configuration "fw" (priority 10`) || strings.Contains(notes, `"other"`) {
		t.Errorf("notes:\n%s", notes)
	}
}

// TestStalePlanChecks: the queries a plan's changes depend on are recorded with their answers;
// Recheck passes while the fleet stands still and names what moved when it does not.
func TestStalePlanChecks(t *testing.T) {
	docs := doorFleet(30)
	p, err := MakePlan(context.Background(), &memFleet{docs: docs}, doorConfig(t), PlanOptions{Now: planTime})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Checks) == 0 {
		t.Fatal("no checks recorded")
	}
	for _, c := range p.Checks {
		if strings.Contains(c.Statement, "TOP") {
			t.Errorf("an example query is a check: %s", c.Statement)
		}
	}
	fleet := &memFleet{docs: docs}
	if err := Recheck(context.Background(), fleet, p); err != nil || len(fleet.queries) != len(p.Checks) {
		t.Fatalf("still fleet: %v (%d queries for %d checks)", err, len(fleet.queries), len(p.Checks))
	}
	docs[3]["properties"].(map[string]any)["desired"].(map[string]any)["floor"] = 7.0 // written by someone else
	err = Recheck(context.Background(), &memFleet{docs: docs}, p)
	if !errors.Is(err, ErrStale) || !strings.Contains(err.Error(), "twin.door_location") || !strings.Contains(err.Error(), `"v":7`) {
		t.Fatalf("moved fleet: %v", err)
	}
	// A sensitive target's query is not printed.
	for i := range p.Checks {
		p.Checks[i].Sensitive = true
	}
	if err := Recheck(context.Background(), &memFleet{docs: docs}, p); strings.Contains(err.Error(), "tags.site") {
		t.Errorf("a sensitive query printed: %v", err)
	}
	var round Plan
	b, _ := json.Marshal(p)
	if json.Unmarshal(b, &round) != nil || len(round.Checks) != len(p.Checks) {
		t.Error("checks do not round-trip")
	}
}
