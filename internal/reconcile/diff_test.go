package reconcile

import (
	"encoding/json"
	"math"
	"math/big"
	"reflect"
	"strings"
	"testing"

	"github.com/iotplan/iotplan/internal/query"
)

func TestCanonical(t *testing.T) {
	got, err := Canonical(map[string]any{
		"i": 3, "i64": int64(-7), "f": float32(1.5), "n": json.Number("42"), "b": big.NewFloat(2.5),
		"s": "43", "nested": map[string]int{"x": 1}, "list": []string{"a"}, "nil": nil,
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"i": 3.0, "i64": -7.0, "f": 1.5, "n": 42.0, "b": 2.5,
		"s": "43", "nested": map[string]any{"x": 1.0}, "list": []any{"a"}, "nil": nil,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Canonical = %#v\nwant %#v", got, want)
	}
	for _, bad := range []any{math.NaN(), math.Inf(1), map[int]any{1: 2}, struct{}{}, float64(1 << 60)} {
		if _, err := Canonical(bad); err == nil {
			t.Errorf("Canonical(%#v) accepted", bad)
		}
	}
}

func TestLeavesFlattenNestedObjects(t *testing.T) {
	leaves := Leaves(
		map[string]any{"location": map[string]any{"building": "43", "floor": 3.0}, "mode": nil, "empty": map[string]any{}, "list": []any{1.0}},
		map[string]any{"owner": nil, "site": "x"},
	)
	var names []string
	for _, l := range leaves {
		names = append(names, l.Name()+"="+valueKey(l.Value))
	}
	want := []string{
		`desired.list=[1]`, `desired.location.building="43"`, `desired.location.floor=3`, `desired.mode=null`,
		`tags.owner=null`, `tags.site="x"`,
	}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("leaves = %q\nwant %q", names, want)
	}
	if got := query.Format(query.IsDefined(leaves[1].Path())); got != "IS_DEFINED(properties.desired.location.building)" {
		t.Errorf("path = %s", got)
	}
	if got := leaves[4].Path().String(); got != "tags.owner" {
		t.Errorf("tags path = %s", got)
	}
}

func tr(key string, op Op, from, to string, n int) Transition {
	t := Transition{Key: key, Op: op, Devices: n}
	if from != "" {
		t.From = json.RawMessage(from)
	}
	if to != "" {
		t.To = json.RawMessage(to)
	}
	return t
}

func TestKeyTransitions(t *testing.T) {
	building := Leaf{Section: SectionDesired, Keys: []string{"building"}, Value: "43"}
	floor := Leaf{Section: SectionDesired, Keys: []string{"floor"}, Value: 3.0}
	owner := Leaf{Section: SectionTags, Keys: []string{"owner"}, Value: nil}
	list := Leaf{Section: SectionDesired, Keys: []string{"zones"}, Value: []any{"a", "b"}}
	obj := Leaf{Section: SectionDesired, Keys: []string{"cfg", "level"}, Value: true}
	cases := []struct {
		name   string
		leaf   Leaf
		groups []Group
		want   []Transition
	}{
		{"string: same value, other value, number of the same digits, missing", building,
			[]Group{grp(true, "43", 5), grp(true, "42", 7), grp(true, 43.0, 2), grp(false, nil, 1)},
			[]Transition{tr("desired.building", OpChange, `"42"`, `"43"`, 7), tr("desired.building", OpChange, `43`, `"43"`, 2), tr("desired.building", OpAdd, "", `"43"`, 1)}},
		{"number: string of the same digits differs, 3 == 3.0", floor,
			[]Group{grp(true, "3", 4), grp(true, 3.0, 9), grp(true, nil, 1)},
			[]Transition{tr("desired.floor", OpChange, `"3"`, `3`, 4), tr("desired.floor", OpChange, `null`, `3`, 1)}},
		{"null: present is removed, absent is fine", owner,
			[]Group{grp(true, "ann", 3), grp(false, nil, 8), grp(true, map[string]any{"x": 1.0}, 1)},
			[]Transition{tr("tags.owner", OpRemove, `"ann"`, "", 3), tr("tags.owner", OpRemove, `{"x":1}`, "", 1)}},
		{"arrays compare whole, in order", list,
			[]Group{grp(true, []any{"a", "b"}, 6), grp(true, []any{"b", "a"}, 2), grp(false, nil, 1)},
			[]Transition{tr("desired.zones", OpChange, `["b","a"]`, `["a","b"]`, 2), tr("desired.zones", OpAdd, "", `["a","b"]`, 1)}},
		{"bool under an object: observed object or string differs", obj,
			[]Group{grp(true, true, 1), grp(true, "true", 2), grp(true, map[string]any{"a": true}, 3)},
			[]Transition{tr("desired.cfg.level", OpChange, `"true"`, `true`, 2), tr("desired.cfg.level", OpChange, `{"a":true}`, `true`, 3)}},
		{"empty groups are ignored", building, []Group{grp(true, "42", 0)}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := KeyTransitions(c.leaf, c.groups)
			if len(got) == 0 && len(c.want) == 0 {
				return
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got  %s\nwant %s", js(got), js(c.want))
			}
		})
	}
}

func js(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestJobConditionSemantics proves, with the query engine's own evaluation of the hub's
// semantics, that the update job's condition selects exactly the drifted devices: the ones
// missing a key, holding the right digits with the wrong type (43 vs "43"), or another
// value, or a key declared null — and none that already match.
func TestJobConditionSemantics(t *testing.T) {
	desired := map[string]any{"building": "43", "floor": 3.0, "secure": true, "location": map[string]any{"room": "a1"}, "legacy": nil}
	tags := map[string]any{"owner": nil, "team": "doors"}
	converged := func(id string) map[string]any {
		return twinDoc(id, map[string]any{"building": "43", "floor": 3.0, "secure": true, "location": map[string]any{"room": "a1", "extra": 1.0}},
			map[string]any{"team": "doors", "other": "kept"})
	}
	mutate := func(id string, f func(d, tg map[string]any)) map[string]any {
		doc := converged(id)
		f(doc["properties"].(map[string]any)["desired"].(map[string]any), doc["tags"].(map[string]any))
		return doc
	}
	docs := []map[string]any{
		converged("ok-1"),
		twinDoc("ok-2", map[string]any{"building": "43", "floor": 3.0, "secure": true, "location": map[string]any{"room": "a1"}}, map[string]any{"team": "doors"}),
		mutate("missing-building", func(d, _ map[string]any) { delete(d, "building") }),
		mutate("number-building", func(d, _ map[string]any) { d["building"] = 43.0 }),
		mutate("other-building", func(d, _ map[string]any) { d["building"] = "42" }),
		mutate("string-floor", func(d, _ map[string]any) { d["floor"] = "3" }),
		mutate("missing-floor", func(d, _ map[string]any) { delete(d, "floor") }),
		mutate("string-bool", func(d, _ map[string]any) { d["secure"] = "true" }),
		mutate("false-bool", func(d, _ map[string]any) { d["secure"] = false }),
		mutate("location-scalar", func(d, _ map[string]any) { d["location"] = "lobby" }),
		mutate("room-number", func(d, _ map[string]any) { d["location"].(map[string]any)["room"] = 1.0 }),
		mutate("legacy-present", func(d, _ map[string]any) { d["legacy"] = "x" }),
		mutate("legacy-object", func(d, _ map[string]any) { d["legacy"] = map[string]any{"a": 1.0} }),
		mutate("owner-present", func(_, tg map[string]any) { tg["owner"] = "ann" }),
		mutate("team-missing", func(_, tg map[string]any) { delete(tg, "team") }),
		twinDoc("no-tags-at-all", map[string]any{"building": "43", "floor": 3.0, "secure": true, "location": map[string]any{"room": "a1"}}, nil),
		func() map[string]any { // another target: never selected
			d := mutate("other-target", func(d, _ map[string]any) { d["building"] = "1" })
			d["deviceId"] = "zz-elsewhere"
			return d
		}(),
	}
	target, err := query.ParseCondition("STARTSWITH(deviceId, 'ok') OR NOT STARTSWITH(deviceId, 'zz')")
	if err != nil {
		t.Fatal(err)
	}
	cdesired, _ := Canonical(desired)
	ctags, _ := Canonical(tags)
	leaves := Leaves(cdesired.(map[string]any), ctags.(map[string]any))
	cond, whole := JobCondition(target, leaves)
	if whole {
		t.Fatal("no arrays declared, but the condition covers the whole target")
	}
	got, err := matching(cond, docs)
	if err != nil {
		t.Fatalf("condition %s: %v", query.Format(cond), err)
	}
	want := []string{"false-bool", "legacy-object", "legacy-present", "location-scalar", "missing-building", "missing-floor",
		"no-tags-at-all", "number-building", "other-building", "owner-present", "room-number", "string-bool", "string-floor", "team-missing"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("condition %s\nselects %q\nwant    %q", query.Format(cond), got, want)
	}

	// Each leaf's term alone, on the tutorial's key: missing and 43-as-number are selected,
	// "43" is not. And the naive "p != '43'" would miss both: that is why the type test exists.
	bld := Leaf{Section: SectionDesired, Keys: []string{"building"}, Value: "43"}
	term, _ := DriftTerm(bld)
	if txt := query.Format(term); txt != "NOT IS_STRING(properties.desired.building) OR properties.desired.building != '43'" {
		t.Errorf("string drift term = %s", txt)
	}
	small := []map[string]any{
		twinDoc("string-43", map[string]any{"building": "43"}, nil),
		twinDoc("number-43", map[string]any{"building": 43.0}, nil),
		twinDoc("missing", nil, nil),
	}
	if got, _ := matching(term, small); !reflect.DeepEqual(got, []string{"missing", "number-43"}) {
		t.Errorf("drift term selects %q", got)
	}
	naive := query.Ne(bld.Path(), "43")
	if got, _ := matching(naive, small); len(got) != 0 {
		t.Errorf("the naive condition selects %q; the hub's semantics say none (undefined is excluded)", got)
	}
	floor := Leaf{Section: SectionDesired, Keys: []string{"floor"}, Value: 3.0}
	if term, _ := DriftTerm(floor); query.Format(term) != "NOT IS_NUMBER(properties.desired.floor) OR properties.desired.floor != 3" {
		t.Errorf("number drift term = %s", query.Format(term))
	}
	owner := Leaf{Section: SectionTags, Keys: []string{"owner"}}
	if term, _ := DriftTerm(owner); query.Format(term) != "IS_DEFINED(tags.owner)" {
		t.Errorf("null drift term = %s", query.Format(term))
	}
}

func TestJobConditionArraysSelectWholeTarget(t *testing.T) {
	target := query.Eq(query.P("tags", "site"), "x")
	leaves := []Leaf{
		{Section: SectionDesired, Keys: []string{"zones"}, Value: []any{"a"}},
		{Section: SectionDesired, Keys: []string{"floor"}, Value: 3.0},
	}
	cond, whole := JobCondition(target, leaves)
	if !whole || !query.Equal(cond, target) {
		t.Fatalf("array leaf: cond %s whole %v; want the target alone", query.Format(cond), whole)
	}
	cond, whole = JobCondition(nil, leaves[1:])
	if whole || query.Format(cond) != "NOT IS_NUMBER(properties.desired.floor) OR properties.desired.floor != 3" {
		t.Fatalf("all-devices target: %s", query.Format(cond))
	}
	if err := query.CheckCondition(cond); err != nil {
		t.Fatal(err)
	}
}

func TestJobIDs(t *testing.T) {
	p1 := &Plan{Hub: "h"}
	p2 := &Plan{Hub: "h"}
	p2.CreatedAt = p2.CreatedAt.Add(1)
	id1 := jobID("twin.door_location", p1, nil)
	id2 := jobID("twin.door_location", p2, nil)
	if !jobIDPattern.MatchString(id1) || !strings.HasPrefix(id1, "iotplan-door-location-") || len(id1) != len("iotplan-door-location-")+8 {
		t.Errorf("id %q", id1)
	}
	if id1 == id2 {
		t.Errorf("plans made at different times share job id %s", id1)
	}
	if again := jobID("twin.door_location", p1, nil); again != id1 {
		t.Errorf("job id not deterministic: %s vs %s", id1, again)
	}
	long := jobID("method."+strings.Repeat("x_", 60)+"ünï", p1, nil)
	if len(long) > 64 || !jobIDPattern.MatchString(long) || strings.Contains(long, "--") {
		t.Errorf("long id %q (%d)", long, len(long))
	}
}

func grp(defined bool, v any, n int) Group { return Group{Defined: defined, Value: v, Devices: n} }
