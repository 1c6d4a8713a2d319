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

func TestJobIDs(t *testing.T) {
	p1 := &Plan{Hub: "h"}
	p2 := &Plan{Hub: "h"}
	p2.CreatedAt = p2.CreatedAt.Add(1)
	p1.ApplyID, p2.ApplyID = applyID(p1), applyID(p2)
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
