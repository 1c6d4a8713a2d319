package reconcile

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/query"
	"github.com/iotplan/iotplan/internal/tier"
)

var planTime = time.Date(2026, 11, 25, 17, 0, 0, 0, time.UTC)

// doorFleet is the tutorial's situation at a small scale: n door controllers under tags.site
// 'hq', most on building "42", some converged, some with floor missing, a few with the
// number 43, an owner tag to remove on some; plus devices outside the target.
func doorFleet(n int) []map[string]any {
	var docs []map[string]any
	for i := range n {
		id := fmt.Sprintf("door-%05d", i)
		desired := map[string]any{"building": "42", "floor": 3.0}
		tags := map[string]any{"site": "hq"}
		switch {
		case i%10 == 0:
			desired["building"] = "43" // converged
		case i%10 == 1:
			delete(desired, "floor")
		case i%10 == 2:
			desired["building"] = 43.0
		}
		if i%4 == 0 {
			tags["owner"] = "ann"
		}
		docs = append(docs, twinDoc(id, desired, tags))
	}
	for i := range n / 10 {
		docs = append(docs, twinDoc(fmt.Sprintf("lamp-%04d", i), map[string]any{"building": "1"}, map[string]any{"site": "elsewhere"}))
	}
	return docs
}

func doorConfig(t *testing.T) *Config {
	t.Helper()
	target, err := query.ParseCondition("tags.site = 'hq'")
	if err != nil {
		t.Fatal(err)
	}
	return &Config{
		Twins: []Twin{{
			Addr: "twin.door_location", Target: target,
			Desired: map[string]any{"building": "43", "floor": 3},
			Tags:    map[string]any{"owner": nil},
		}},
		Methods: []Method{{
			Addr: "method.lock_door", Target: target, Method: "lockDoor",
			ResponseTimeout: 15 * time.Second, MaxExecution: 5 * time.Minute,
		}},
	}
}

// bruteDrift counts, document by document, the targeted devices where any managed key
// differs: the independent oracle for the plan's device count.
func bruteDrift(docs []map[string]any) (drifted int, ids map[string]bool) {
	ids = map[string]bool{}
	for _, d := range docs {
		tags, _ := d["tags"].(map[string]any)
		if tags["site"] != "hq" {
			continue
		}
		des := d["properties"].(map[string]any)["desired"].(map[string]any)
		_, hasOwner := tags["owner"]
		if des["building"] != "43" || des["floor"] != 3.0 || hasOwner {
			drifted++
			ids[d["deviceId"].(string)] = true
		}
	}
	return drifted, ids
}

func TestMakePlanOnFleet(t *testing.T) {
	docs := doorFleet(200)
	fleet := &memFleet{docs: docs}
	p, err := MakePlan(context.Background(), fleet, doorConfig(t), PlanOptions{Hub: "myhub.azure-devices.net", Now: planTime})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Resources) != 2 {
		t.Fatalf("resources: %d", len(p.Resources))
	}
	twin := p.Resources[0]
	drifted, driftedIDs := bruteDrift(docs)
	if twin.Action != Update || twin.TargetedDevices != 200 || twin.Devices != drifted || twin.Refused != "" || len(twin.Jobs) != 1 {
		t.Fatalf("twin: %s (want update, 200 targeted, %d devices, one job)", js(twin), drifted)
	}
	var got []string
	for _, tr := range twin.Transitions {
		got = append(got, fmt.Sprintf("%s %s %s→%s %d", tr.Op.Symbol(), tr.Key, tr.From, tr.To, tr.Devices))
		for _, id := range tr.SampleDeviceIDs {
			if !driftedIDs[id] {
				t.Errorf("sample %s of %s is not drifted", id, tr.Key)
			}
		}
	}
	want := []string{
		`~ desired.building "42"→"43" 160`, // every i%10 != 0, 2
		`- tags.owner "ann"→ 50`,           // every i%4 == 0
		`~ desired.building 43→"43" 20`,    // the number 43: wrong type
		`+ desired.floor →3 20`,            // i%10 == 1
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("transitions:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for i, tr := range twin.Transitions {
		if len(tr.SampleDeviceIDs) != 3 {
			t.Errorf("transition %d has samples %v", i, tr.SampleDeviceIDs)
		}
	}
	if s := twin.Transitions[3].SampleDeviceIDs; !reflect.DeepEqual(s, []string{"door-00001", "door-00011", "door-00021"}) {
		t.Errorf("floor samples %v", s)
	}
	j := twin.Jobs[0].Request
	if j.Type != hubapi.JobTypeUpdateTwin || j.UpdateTwin.ETag != "*" || j.StartTime != nil || j.MaxExecutionTimeInSeconds != 3600 {
		t.Errorf("job %s", js(j))
	}
	if js(j.UpdateTwin) != `{"etag":"*","tags":{"owner":null},"properties":{"desired":{"building":"43","floor":3}}}` {
		t.Errorf("patch %s", js(j.UpdateTwin))
	}
	// The list form: the values the groups showed differing, typed (43 and '42'), the missing
	// floor, the owner tag present. Only documented constructs.
	wantCond := "tags.site = 'hq' AND NOT IS_DEFINED(tags.iotplanState) AND (properties.desired.building IN [43, '42'] OR NOT IS_DEFINED(properties.desired.floor) OR IS_DEFINED(tags.owner))"
	if j.QueryCondition != wantCond {
		t.Errorf("condition\n%s\nwant\n%s", j.QueryCondition, wantCond)
	}
	// The condition text, parsed back, selects exactly the drifted devices.
	sel := selects(t, j.QueryCondition, docs)
	if len(sel) != drifted || twin.Jobs[0].Devices != drifted {
		t.Errorf("job condition selects %d devices (counted %d), brute force says %d", len(sel), twin.Jobs[0].Devices, drifted)
	}
	for _, id := range sel {
		if !driftedIDs[id] {
			t.Errorf("job condition selects converged %s", id)
		}
	}

	m := p.Resources[1]
	mj := m.Jobs[0].Request
	if m.Action != Invoke || m.Devices != 200 || mj.CloudToDeviceMethod.MethodName != "lockDoor" ||
		mj.CloudToDeviceMethod.ResponseTimeoutInSeconds != 15 || string(mj.CloudToDeviceMethod.Payload) != "null" ||
		mj.MaxExecutionTimeInSeconds != 300 || mj.QueryCondition != "tags.site = 'hq' AND NOT IS_DEFINED(tags.iotplanState)" || len(m.SampleDeviceIDs) != 3 || len(m.Notes) == 0 {
		t.Errorf("method %s", js(m))
	}
	if p.HubCalls["query"] != len(fleet.queries) {
		t.Errorf("hub calls %v, queries %d", p.HubCalls, len(fleet.queries))
	}
	// twin: 3 GROUP BY (the first also counts the target), COUNT of the converged, 1 drift
	// COUNT, 4 samples; method: its COUNT is the first GROUP BY's total + 1 sample.
	if len(fleet.queries) != 10 {
		t.Errorf("%d queries:\n%s", len(fleet.queries), strings.Join(fleet.queries, "\n"))
	}
	s := p.Summary()
	if s.TwinChanges != 1 || s.TwinDevices != drifted || s.MethodInvokes != 1 || s.MethodDevices != 200 {
		t.Errorf("summary %+v", s)
	}
}

// selects parses a condition the way the strict hub does and returns the ids it selects.
func selects(t *testing.T, cond string, docs []map[string]any) []string {
	t.Helper()
	e, err := query.ParseCondition(cond)
	if err != nil {
		t.Fatalf("condition %s is not in the documented dialect: %v", cond, err)
	}
	ids, err := matching(e, docs)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func TestPlanQueriesDoNotGrowWithFleet(t *testing.T) {
	var counts []int
	for _, n := range []int{100, 2000} {
		fleet := &memFleet{docs: doorFleet(n)}
		if _, err := MakePlan(context.Background(), fleet, doorConfig(t), PlanOptions{Now: planTime}); err != nil {
			t.Fatal(err)
		}
		counts = append(counts, len(fleet.queries))
	}
	if counts[0] != counts[1] {
		t.Fatalf("queries for 100 vs 2000 devices: %v", counts)
	}
}

func TestSampleQueriesAreCapped(t *testing.T) {
	var docs []map[string]any
	for i := range 40 {
		docs = append(docs, twinDoc(fmt.Sprintf("d%02d", i), map[string]any{"mode": fmt.Sprintf("m%d", i%12)}, nil))
	}
	cfg := &Config{Twins: []Twin{{Addr: "twin.mode", Desired: map[string]any{"mode": "eco"}}}}
	fleet := &memFleet{docs: docs}
	p, err := MakePlan(context.Background(), fleet, cfg, PlanOptions{Now: planTime, SampleQueriesPerResource: 5})
	if err != nil {
		t.Fatal(err)
	}
	r := p.Resources[0]
	if len(r.Transitions) != 12 || r.Devices != 40 || r.Target != "*" {
		t.Fatalf("transitions %d devices %d target %q", len(r.Transitions), r.Devices, r.Target)
	}
	withSamples := 0
	for _, tr := range r.Transitions {
		if len(tr.SampleDeviceIDs) > 0 {
			withSamples++
		}
	}
	// One GROUP BY (it answers converged or not), one drift COUNT, 5 samples.
	if withSamples != 5 || len(fleet.queries) != 1+1+5 {
		t.Fatalf("%d transitions with samples, %d queries", withSamples, len(fleet.queries))
	}
	if c := r.Jobs[0].Request.QueryCondition; c != "NOT IS_DEFINED(tags.iotplanState) AND properties.desired.mode IN ['m0', 'm1', 'm10', 'm11', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7', 'm8', 'm9']" {
		t.Errorf("condition %s", c)
	}
}

func TestConvergedFleetIsNoOp(t *testing.T) {
	var docs []map[string]any
	for i := range 30 {
		docs = append(docs, twinDoc(fmt.Sprintf("d%02d", i), map[string]any{"building": "43", "floor": 3.0, "zones": []any{"a", "b"}}, map[string]any{"site": "hq"}))
	}
	target, _ := query.ParseCondition("tags.site = 'hq'")
	cfg := &Config{Twins: []Twin{{Addr: "twin.t", Target: target, Desired: map[string]any{"building": "43", "floor": 3, "zones": []any{"a", "b"}}, Tags: map[string]any{"owner": nil}}}}
	fleet := &memFleet{docs: docs}
	p, err := MakePlan(context.Background(), fleet, cfg, PlanOptions{Now: planTime})
	if err != nil {
		t.Fatal(err)
	}
	if p.HasChanges() || p.Resources[0].Action != NoOp || len(p.Resources[0].Jobs) != 0 || p.Resources[0].TargetedDevices != 30 {
		t.Fatalf("converged fleet: %s", js(p.Resources[0]))
	}
	// An array key cannot be compared by a condition: the GROUP BY of each of the 4 keys (the
	// first also counts the target); nothing else when nothing differs.
	if len(fleet.queries) != 4 {
		t.Errorf("%d queries", len(fleet.queries))
	}
	// An array that differs on one device: the job rewrites the whole target and says so.
	docs[7]["properties"].(map[string]any)["desired"].(map[string]any)["zones"] = []any{"b"}
	p, err = MakePlan(context.Background(), &memFleet{docs: docs}, cfg, PlanOptions{Now: planTime})
	if err != nil {
		t.Fatal(err)
	}
	r := p.Resources[0]
	if r.Action != Update || r.Devices != 30 || len(r.Transitions) != 1 || r.Jobs[0].Request.QueryCondition != "tags.site = 'hq' AND NOT IS_DEFINED(tags.iotplanState)" || len(r.Notes) != 1 {
		t.Fatalf("array drift: %s", js(r))
	}
	// The whole-target job sets only the key that differs.
	if js(r.Jobs[0].Request.UpdateTwin) != `{"etag":"*","properties":{"desired":{"zones":["a","b"]}}}` {
		t.Errorf("patch %s", js(r.Jobs[0].Request.UpdateTwin))
	}
}

// TestConvergedCostsOneQueryPerResource: a converged single-key resource is answered by its
// GROUP BY alone; a converged multi-key one by COUNT(target) and COUNT(target AND every key
// equal), the first shared by every resource of the same target. So a converged config of 20
// single-key resources plans in 20 queries: one minute of an S1 hub's query quota.
func TestConvergedCostsOneQueryPerResource(t *testing.T) {
	var docs []map[string]any
	for i := range 50 {
		docs = append(docs, twinDoc(fmt.Sprintf("d%02d", i), map[string]any{"k0": "v", "k1": 1.0, "k2": true}, map[string]any{"site": fmt.Sprintf("s%d", i%20)}))
	}
	cfg := &Config{}
	for i := range 20 {
		target, _ := query.ParseCondition(fmt.Sprintf("tags.site = 's%d'", i))
		cfg.Twins = append(cfg.Twins, Twin{Addr: fmt.Sprintf("twin.r%d", i), Target: target, Desired: map[string]any{"k0": "v"}})
	}
	fleet := &memFleet{docs: docs}
	p, err := MakePlan(context.Background(), fleet, cfg, PlanOptions{Now: planTime, Tier: tier.Tier{Name: "S1", Units: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if p.HasChanges() || len(fleet.queries) != 20 {
		t.Fatalf("20 converged single-key resources: changes %v, %d queries", p.HasChanges(), len(fleet.queries))
	}
	cfg.Twins = cfg.Twins[:1]
	cfg.Twins[0].Desired = map[string]any{"k0": "v", "k1": 1, "k2": true}
	cfg.Methods = []Method{{Addr: "method.m", Target: cfg.Twins[0].Target, Method: "reboot"}}
	fleet = &memFleet{docs: docs}
	if p, err = MakePlan(context.Background(), fleet, cfg, PlanOptions{Now: planTime, SampleQueriesPerResource: -1}); err != nil {
		t.Fatal(err)
	}
	if p.Resources[0].Action != NoOp || len(fleet.queries) != 2 {
		t.Fatalf("converged 3-key resource + method of the same target: %s, queries %q", js(p.Resources[0]), fleet.queries)
	}
	if fleet.queries[1] != "SELECT COUNT() AS n FROM devices WHERE tags.site = 's0' AND NOT IS_DEFINED(tags.iotplanState) AND properties.desired.k0 = 'v' AND properties.desired.k1 = 1 AND properties.desired.k2 = true" {
		t.Errorf("converged count %s", fleet.queries[1])
	}
}

func TestEmptyTargetMethodIsNoOp(t *testing.T) {
	target, _ := query.ParseCondition("deviceId = 'nobody'")
	cfg := &Config{Methods: []Method{{Addr: "method.m", Target: target, Method: "reboot", Payload: map[string]any{"delay": 5}}}}
	p, err := MakePlan(context.Background(), &memFleet{docs: doorFleet(10)}, cfg, PlanOptions{Now: planTime})
	if err != nil {
		t.Fatal(err)
	}
	if r := p.Resources[0]; r.Action != NoOp || len(r.Jobs) != 0 || r.TargetedDevices != 0 {
		t.Fatalf("%s", js(r))
	}
}

func TestPlanRoundTrip(t *testing.T) {
	cfg := doorConfig(t)
	cfg.Twins[0].StartTime = planTime.Add(time.Hour)
	p, err := MakePlan(context.Background(), &memFleet{docs: doorFleet(50)}, cfg, PlanOptions{Hub: "localhost:8443", Now: planTime})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "plan.json")
	if err := SavePlan(path, p); err != nil {
		t.Fatal(err)
	}
	back, err := LoadPlan(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p, back) {
		t.Fatalf("round trip differs:\n%s\n%s", js(p), js(back))
	}
	if st := back.Resources[0].Jobs[0].Request.StartTime; st == nil || !st.Equal(planTime.Add(time.Hour)) {
		t.Errorf("start time lost: %v", st)
	}

	raw, _ := os.ReadFile(path)
	for _, bad := range []struct{ name, edit, want string }{
		{"other version", `"format_version": "` + FormatVersion + `"`, "format version \"9\" is not supported"},
		{"version 2 with variables", `"format_version": "` + FormatVersion + `"`, "holds no variables"},
		{"sensitive value", `"hub":`, "a sensitive variable with a value"},
		{"not a plan", `{`, "not an iotplan plan file"},
		{"unknown field", `"hub":`, "malformed plan file"},
		{"bad job id", `"jobId": "iotplan-door-location-`, "job id"},
	} {
		var data []byte
		switch bad.name {
		case "other version":
			data = bytes.Replace(raw, []byte(`"format_version": "`+FormatVersion+`"`), []byte(`"format_version": "9"`), 1)
		case "version 2 with variables":
			data = bytes.Replace(raw, []byte(`"format_version": "`+FormatVersion+`"`), []byte(`"format_version": "2", "variables": [{"name": "site", "source": "-var", "value": {"value": "hq", "type": "string"}}]`), 1)
		case "sensitive value":
			data = bytes.Replace(raw, []byte(`"hub":`), []byte(`"variables": [{"name": "cs", "source": "-var", "sensitive": true, "value": {"value": "x", "type": "string"}}], "hub":`), 1)
		case "not a plan":
			data = []byte(`{"resources": []}`)
		case "unknown field":
			data = bytes.Replace(raw, []byte(`"hub":`), []byte(`"connection_string": "x", "hub":`), 1)
		case "bad job id":
			data = bytes.Replace(raw, []byte(`"jobId": "iotplan-door-location-`), []byte(`"jobId": "iotplan door/`), 1)
		}
		if _, err := ReadPlan(bytes.NewReader(data)); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s: err = %v, want it to mention %q", bad.name, err, bad.want)
		}
	}
	if bytes.Contains(raw, []byte("SharedAccessKey")) {
		t.Error("a plan file mentions SharedAccessKey")
	}
	// A plan of the previous format version, which had no variables, still loads.
	v2 := bytes.Replace(raw, []byte(`"format_version": "`+FormatVersion+`"`), []byte(`"format_version": "2"`), 1)
	if old, err := ReadPlan(bytes.NewReader(v2)); err != nil || old.FormatVersion != "2" || old.Variables != nil {
		t.Errorf("version 2 plan: %v", err)
	}
	var generic map[string]any
	if err := json.Unmarshal(raw, &generic); err != nil || generic["hub"] != "localhost:8443" {
		t.Errorf("hub field: %v %v", generic["hub"], err)
	}
}

func TestDiffIsPure(t *testing.T) {
	cfg := doorConfig(t)
	docs := doorFleet(60)
	obs, err := Read(context.Background(), &memFleet{docs: docs}, cfg, PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a, err := Diff(cfg, obs, PlanOptions{Hub: "h", Now: planTime})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Diff(cfg, obs, PlanOptions{Hub: "h", Now: planTime})
	if !reflect.DeepEqual(a, b) {
		t.Fatal("Diff is not deterministic")
	}
	if _, err := Diff(&Config{Twins: []Twin{{Addr: "twin.x", Desired: map[string]any{"a": 1}}}}, obs, PlanOptions{}); err == nil {
		t.Error("Diff accepted a resource nothing was observed for")
	}
	if _, err := Diff(&Config{Twins: []Twin{{Addr: "twin.x"}, {Addr: "twin.x"}}}, obs, PlanOptions{}); err == nil {
		t.Error("Diff accepted a duplicate address")
	}
}

// TestManyDistinctValuesAreBounded: a key with a different value on every device is listed up
// to MaxGroups values; the rest is one "other values" transition, and the query count does not
// grow with the fleet.
func TestManyDistinctValuesAreBounded(t *testing.T) {
	cfg := &Config{Twins: []Twin{{Addr: "twin.t", Desired: map[string]any{"serial": nil, "mode": "eco"}}}}
	var counts []int
	for _, n := range []int{40, 400} {
		var docs []map[string]any
		for i := range n {
			d := map[string]any{"serial": fmt.Sprintf("sn-%04d", i), "mode": fmt.Sprintf("m%d", i)}
			if i%5 == 0 {
				d["mode"] = "eco"
			}
			if i%7 == 0 {
				delete(d, "mode")
			}
			docs = append(docs, twinDoc(fmt.Sprintf("d%04d", i), d, nil))
		}
		fleet := &memFleet{docs: docs}
		p, err := MakePlan(context.Background(), fleet, cfg, PlanOptions{Now: planTime, MaxGroups: 5})
		if err != nil {
			t.Fatal(err)
		}
		counts = append(counts, len(fleet.queries))
		r := p.Resources[0]
		byKey := map[string]int{}
		others := 0
		for _, tr := range r.Transitions {
			byKey[tr.Key] += tr.Devices
			if tr.OtherValues {
				others++
				if tr.From != nil || len(tr.SampleDeviceIDs) != 0 {
					t.Errorf("other-values transition %s", js(tr))
				}
			}
		}
		wantMode := 0
		for i := range n {
			if i%5 != 0 || i%7 == 0 {
				wantMode++
			}
		}
		if byKey["desired.serial"] != n || byKey["desired.mode"] != wantMode || others != 2 || r.Devices != n {
			t.Errorf("%d devices: per key %v (want serial %d, mode %d), %d other-values transitions, %d devices", n, byKey, n, wantMode, others, r.Devices)
		}
	}
	if counts[0] != counts[1] {
		t.Errorf("queries for 40 vs 400 devices: %v", counts)
	}
}
