package schema

import (
	"reflect"
	"testing"
)

func TestParseTarget(t *testing.T) {
	for _, ok := range []string{"twin.doors", `twin.building["41"]`, "method.reboot[0]", "module.site",
		`module.sites["east"]`, "module.site.twin.doors", `module.a.module.b["x"].method.m[2]`} {
		if err := ParseTarget(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "doors", "twin", "twin.", "twin.doors.target", "var.x", "module",
		`twin.doors["a"]["b"]`, "twin.doors extra", "resource.x.y"} {
		if err := ParseTarget(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestSelects(t *testing.T) {
	cases := []struct {
		target, addr string
		want         bool
	}{
		{"twin.b", "twin.b", true},
		{"twin.b", `twin.b["41"]`, true},
		{"twin.b", "twin.building", false},
		{`twin.b["41"]`, `twin.b["41"]`, true},
		{`twin.b["41"]`, `twin.b["42"]`, false},
		{"module.site", "module.site.twin.doors", true},
		{"module.site", `module.site["a"].twin.doors`, true},
		{"module.site", "module.sites.twin.doors", false},
		{"twin.doors", "module.site.twin.doors", false},
		{"method.m", "twin.m", false},
	}
	for _, c := range cases {
		if got := Selects(c.target, c.addr); got != c.want {
			t.Errorf("Selects(%s, %s) = %v", c.target, c.addr, got)
		}
	}
	if !SelectsAny(nil, "twin.x") || SelectsAny([]string{"twin.y"}, "twin.x") {
		t.Error("SelectsAny")
	}
}

func TestKindOf(t *testing.T) {
	for addr, want := range map[string]string{
		"twin.doors": "twin", `method.m["a.method.b"]`: "method", "module.twin.method.x": "method",
		`module.s["twin"].twin.t[0]`: "twin", "module.s": "", "nonsense": "", "": "",
	} {
		if got := KindOf(addr); got != want {
			t.Errorf("KindOf(%s) = %q, want %q", addr, got, want)
		}
	}
}

func TestSelectors(t *testing.T) {
	got := Selectors(`module.a["x"].twin.b["k"]`)
	want := []string{"module.a", `module.a["x"]`, `module.a["x"].twin.b`, `module.a["x"].twin.b["k"]`}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Selectors = %q, want %q", got, want)
	}
	if got := Selectors("twin.b"); !reflect.DeepEqual(got, []string{"twin.b"}) {
		t.Errorf("Selectors(twin.b) = %q", got)
	}
	for _, g := range got {
		if ParseTarget(g) != nil {
			t.Errorf("Selectors gives %q, which is no address", g)
		}
	}
}
