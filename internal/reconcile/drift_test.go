package reconcile

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/iotplan/iotplan/internal/query"
)

// mixedConfig manages keys of every kind: a string, a number, a boolean, a key declared
// absent, a number of a million and more, a string with a quote, and a nested key.
func mixedConfig(t *testing.T) *Config {
	t.Helper()
	target, err := query.ParseCondition("tags.site = 'hq'")
	if err != nil {
		t.Fatal(err)
	}
	return &Config{Twins: []Twin{{
		Addr: "twin.mixed", Target: target,
		Desired: map[string]any{
			"building": "43", "floor": 3, "secure": true, "legacy": nil, "limit": 2500000,
			"location": map[string]any{"room": "a1"},
		},
		Tags: map[string]any{"owner": "O'Brien"},
	}}}
}

// mixedKey is one managed key of mixedConfig: where it lives and its desired value.
type mixedKey struct {
	tags bool
	path []string
	want any // nil: absent
}

var mixedKeys = []mixedKey{
	{path: []string{"building"}, want: "43"},
	{path: []string{"floor"}, want: 3.0},
	{path: []string{"secure"}, want: true},
	{path: []string{"legacy"}},
	{path: []string{"limit"}, want: 2500000.0},
	{path: []string{"location", "room"}, want: "a1"},
	{tags: true, path: []string{"owner"}, want: "O'Brien"},
}

// mixedValues are the values a drifted key can hold besides its desired one: every other
// JSON type, the same digits as another type, objects. Arrays and the empty object are kept
// apart (unselectable), see TestDriftUnselectableValues.
var mixedValues = []any{
	"missing", "43", "3", "true", "", "O'Brien", "a1", 43.0, 3.0, 1000000.0, 2500000.0, -1.5, 0.0, true, false, nil,
	map[string]any{"a": 1.0}, map[string]any{"zz": map[string]any{"c": "d"}},
}

// mixedFleet builds devices that differ from mixedConfig in exactly one key, once for every
// value of mixedValues that is not the key's desired value, plus converged devices and devices
// outside the target. It returns the docs and the ids that differ.
func mixedFleet(values []any) ([]map[string]any, map[string]bool) {
	converged := func() (map[string]any, map[string]any) {
		return map[string]any{"building": "43", "floor": 3.0, "secure": true, "limit": 2500000.0, "location": map[string]any{"room": "a1", "door": "n"}},
			map[string]any{"site": "hq", "owner": "O'Brien"}
	}
	var docs []map[string]any
	drifted := map[string]bool{}
	for i := range 5 {
		d, tg := converged()
		docs = append(docs, twinDoc(fmt.Sprintf("ok-%d", i), d, tg))
	}
	for ki, k := range mixedKeys {
		for vi, v := range values {
			if valueKey(v) == valueKey(k.want) || (v == "missing" && k.want == nil) {
				continue
			}
			d, tg := converged()
			m := d
			if k.tags {
				m = tg
			}
			for _, p := range k.path[:len(k.path)-1] {
				m = m[p].(map[string]any)
			}
			leaf := k.path[len(k.path)-1]
			if v == "missing" {
				delete(m, leaf)
			} else {
				m[leaf] = v
			}
			id := fmt.Sprintf("k%d-v%02d", ki, vi)
			docs = append(docs, twinDoc(id, d, tg))
			drifted[id] = true
		}
	}
	d, _ := converged()
	docs = append(docs, twinDoc("elsewhere", map[string]any{"building": 1.0}, map[string]any{"site": "other"}), twinDoc("no-tags", d, nil))
	return docs, drifted
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestDriftSelectsExactlyTheDriftedDevices proves, with the strict query engine's own
// evaluation of the hub's semantics, that a twin job selects exactly the devices where a
// managed key is missing, holds another value, or a value of another type (43 vs "43", "3" vs
// 3, true vs "true", null, an object where a scalar is wanted) — and never a converged one —
// using only documented constructs: in the list form (every group read) and in the typed form
// (groups span more than one page; objects are then selected only if a group read shows them:
// TestDriftUnselectableValues covers the others).
func TestDriftSelectsExactlyTheDriftedDevices(t *testing.T) {
	scalars := mixedValues[:len(mixedValues)-2]
	for _, tc := range []struct {
		name      string
		values    []any
		maxGroups int
		form      string
	}{
		{"list form", mixedValues, 0, FormList},
		{"typed form", scalars, 3, FormTyped},
	} {
		t.Run(tc.name, func(t *testing.T) {
			docs, drifted := mixedFleet(tc.values)
			want := sortedKeys(drifted)
			fleet := &memFleet{docs: docs}
			p, err := MakePlan(context.Background(), fleet, mixedConfig(t), PlanOptions{Now: planTime, MaxGroups: tc.maxGroups})
			if err != nil {
				t.Fatal(err)
			}
			r := p.Resources[0]
			if r.Action != Update || r.Refused != "" || len(r.Jobs) != 1 || r.Devices != len(want) {
				t.Fatalf("plan %s", js(r))
			}
			cond := r.Jobs[0].Request.QueryCondition
			if got := selects(t, cond, docs); !reflect.DeepEqual(got, want) {
				t.Fatalf("condition %s\nselects %q\nwant    %q", cond, got, want)
			}
			if strings.Contains(cond, "e+") || !strings.Contains(cond, "2500000") || !strings.Contains(cond, `'O\'Brien'`) {
				t.Errorf("numbers in plain decimal, quotes escaped: %s", cond)
			}
			if tc.form == FormTyped && !strings.Contains(cond, ">= ''") {
				t.Errorf("typed form expected: %s", cond)
			}
			t.Logf("%s: %d queries; job condition (%d chars):\n%s", tc.name, len(fleet.queries), len(cond), cond)
		})
	}
}

// TestDriftUnselectableValues: an array or an empty object where a scalar is wanted cannot be
// selected by any documented condition, nor an object the groups read did not show; the job
// then selects the whole target, and the plan says why — whether the value was seen in the
// groups read or only shows as devices the typed condition missed.
func TestDriftUnselectableValues(t *testing.T) {
	for _, v := range []any{[]any{"43"}, map[string]any{}, map[string]any{"a": 1.0}} {
		docs, _ := mixedFleet([]any{"missing", "3", v})
		for _, maxGroups := range []int{0, 1} {
			if _, isObject := v.(map[string]any); isObject && len(v.(map[string]any)) > 0 && maxGroups == 0 {
				continue // an object with a key, seen in the groups, is selectable
			}
			fleet := &memFleet{docs: docs}
			p, err := MakePlan(context.Background(), fleet, mixedConfig(t), PlanOptions{Now: planTime, MaxGroups: maxGroups})
			if err != nil {
				t.Fatal(err)
			}
			r := p.Resources[0]
			if r.Refused != "" || len(r.Jobs) != 1 || r.Jobs[0].Request.QueryCondition != "tags.site = 'hq' AND NOT IS_DEFINED(tags.iotplanState)" || r.Devices != r.TargetedDevices {
				t.Fatalf("%s, max groups %d: %s", js(v), maxGroups, js(r))
			}
			if !strings.Contains(strings.Join(r.Notes, "\n"), "rewrites every targeted device") {
				t.Errorf("%s: notes %q", js(v), r.Notes)
			}
		}
	}
}

// TestDriftConditionWithinHubLimit: when the list of drifted values would make the condition
// longer than the hub's 8,192 characters, the fixed-size typed form is used; when even that is
// too long, the keys are split over several jobs, each setting only its keys and selecting
// exactly the devices drifted in them.
func TestDriftConditionWithinHubLimit(t *testing.T) {
	long := strings.Repeat("x", 300)
	name := func(k int) string { return fmt.Sprintf("key_%02d_%s", k, strings.Repeat("n", 100)) }
	build := func(keys int) ([]map[string]any, *Config, map[string]map[string]bool) {
		desired := map[string]any{}
		for k := range keys {
			desired[name(k)] = "ok"
		}
		var docs []map[string]any
		byKey := map[string]map[string]bool{}
		docs = append(docs, twinDoc("ok", desired, nil))
		for k := range keys {
			byKey["desired."+name(k)] = map[string]bool{}
			for v := range 8 {
				d := map[string]any{}
				for kk, vv := range desired {
					d[kk] = vv
				}
				d[name(k)] = fmt.Sprintf("%s-%d", long, v)
				id := fmt.Sprintf("d%02d-%d", k, v)
				docs = append(docs, twinDoc(id, d, nil))
				byKey["desired."+name(k)][id] = true
			}
		}
		return docs, &Config{Twins: []Twin{{Addr: "twin.long", Desired: desired}}}, byKey
	}

	// 4 keys × 8 values of 300 characters: the list is too long, the typed form fits.
	docs, cfg, byKey := build(4)
	p, err := MakePlan(context.Background(), &memFleet{docs: docs}, cfg, PlanOptions{Now: planTime})
	if err != nil {
		t.Fatal(err)
	}
	r := p.Resources[0]
	if len(r.Jobs) != 1 || !strings.Contains(r.Jobs[0].Request.QueryCondition, ">= 0") || len(r.Jobs[0].Request.QueryCondition) > query.MaxLength {
		t.Fatalf("typed fallback: %s", js(r.Jobs))
	}
	if got := selects(t, r.Jobs[0].Request.QueryCondition, docs); len(got) != 32 || r.Devices != 32 {
		t.Errorf("typed fallback selects %d, plan says %d", len(got), r.Devices)
	}

	// 30 keys: even the typed form is too long; one job per group of keys.
	docs, cfg, byKey = build(30)
	p, err = MakePlan(context.Background(), &memFleet{docs: docs}, cfg, PlanOptions{Now: planTime})
	if err != nil {
		t.Fatal(err)
	}
	r = p.Resources[0]
	if len(r.Jobs) < 2 || r.Refused != "" || r.Devices != 240 {
		t.Fatalf("split: %d jobs, refused %q, devices %d", len(r.Jobs), r.Refused, r.Devices)
	}
	union := map[string]bool{}
	seenKeys := 0
	for _, j := range r.Jobs {
		cond := j.Request.QueryCondition
		if n := len([]rune(cond)); n > query.MaxLength {
			t.Errorf("job condition of %d characters", n)
		}
		want := map[string]bool{}
		for _, k := range j.Keys {
			for id := range byKey[k] {
				want[id] = true
			}
		}
		got := selects(t, cond, docs)
		if !reflect.DeepEqual(got, sortedKeys(want)) || j.Devices != len(want) {
			t.Errorf("job for %d keys selects %d devices (counted %d), want %d", len(j.Keys), len(got), j.Devices, len(want))
		}
		for _, id := range got {
			union[id] = true
		}
		if n := len(j.Request.UpdateTwin.Properties.Desired); n != len(j.Keys) {
			t.Errorf("job patch sets %d keys, its own are %d", n, len(j.Keys))
		}
		seenKeys += len(j.Keys)
	}
	if len(union) != 240 || seenKeys != 30 {
		t.Errorf("jobs select %d devices over %d keys", len(union), seenKeys)
	}
	if !p.HasTwinChanges() || !strings.Contains(fmt.Sprint(p.Resources[0].Jobs[0].Keys), "key_00") {
		t.Errorf("keys %v", p.Resources[0].Jobs[0].Keys)
	}
}

// changingFleet is a memFleet whose devices change while it is read: after the last GROUP BY
// and before the drift COUNT, change runs — as an eventually consistent hub or a concurrent
// writer can make it look.
type changingFleet struct {
	memFleet
	change  func(docs []map[string]any)
	changed bool
}

func (f *changingFleet) QueryRows(ctx context.Context, q string, max int) ([]map[string]any, bool, error) {
	rows, more, err := f.memFleet.QueryRows(ctx, q, max)
	if !f.changed && strings.Contains(q, "GROUP BY tags.owner") {
		f.changed = true
		f.change(f.docs)
	}
	return rows, more, err
}

func setDesired(i int, key string, v any) func([]map[string]any) {
	return func(docs []map[string]any) {
		docs[i]["properties"].(map[string]any)["desired"].(map[string]any)[key] = v
	}
}

// TestInconsistentAnswersRefuseTheResource: when the drift COUNT disagrees with the groups,
// the plan marks the resource refused (apply will not run it) and says why: a device shown
// drifted converged meanwhile (list form: the count is short), or a converged one drifted to
// a value the typed form selects (the count is over).
func TestInconsistentAnswersRefuseTheResource(t *testing.T) {
	docs := doorFleet(40)
	for _, tc := range []struct {
		name      string
		maxGroups int
		change    func([]map[string]any)
	}{
		{"list form, a drifted device converged", 0, setDesired(3, "building", "43")},
		{"typed form, a converged device drifted", 1, setDesired(10, "floor", "three")},
	} {
		f := &changingFleet{memFleet: memFleet{docs: cloneDocs(docs)}, change: tc.change}
		p, err := MakePlan(context.Background(), f, doorConfig(t), PlanOptions{Now: planTime, MaxGroups: tc.maxGroups})
		if err != nil {
			t.Fatal(err)
		}
		r := p.Resources[0]
		if r.Action != Update || !strings.Contains(r.Refused, "the hub's answers disagree") || p.Summary().Refused != 1 || !f.changed {
			t.Fatalf("%s: %s", tc.name, js(r))
		}
	}
	// A device that drifts to a value the list form does not hold is simply not selected:
	// the job does what the plan showed, and the next plan shows the new drift.
	f := &changingFleet{memFleet: memFleet{docs: cloneDocs(docs)}, change: setDesired(10, "floor", "three")}
	p, err := MakePlan(context.Background(), f, doorConfig(t), PlanOptions{Now: planTime})
	if err != nil || p.Resources[0].Refused != "" || slices.Contains(selects(t, p.Resources[0].Jobs[0].Request.QueryCondition, f.docs), "door-00010") {
		t.Fatalf("list form, converged device drifted: %v %s", err, js(p.Resources[0]))
	}
	// The same fleet, read while it stands still: not refused.
	p, err = MakePlan(context.Background(), &memFleet{docs: cloneDocs(docs)}, doorConfig(t), PlanOptions{Now: planTime})
	if err != nil || p.Resources[0].Refused != "" {
		t.Fatalf("still fleet: %v %s", err, js(p.Resources[0]))
	}
}

func cloneDocs(docs []map[string]any) []map[string]any {
	out := make([]map[string]any, len(docs))
	for i, d := range docs {
		c, _ := Canonical(d)
		out[i] = c.(map[string]any)
	}
	return out
}
