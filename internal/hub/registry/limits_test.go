package registry

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/iotplan/iotplan/internal/hub/huberr"
	"github.com/iotplan/iotplan/internal/hubapi"
)

func nest(levels int) map[string]any {
	root := map[string]any{}
	cur := root
	for i := 1; i < levels; i++ {
		n := map[string]any{}
		cur["k"] = n
		cur = n
	}
	cur["k"] = "leaf"
	return root
}

func desiredPatch(m map[string]any) hubapi.TwinPatch {
	return hubapi.TwinPatch{Properties: &hubapi.TwinProperties{Desired: m}}
}

// TestTwinLimitsValues covers the per-value limits on every write path: REST patch/replace
// (and jobs, which call UpdateTwin), the device's reported patch and Import.
func TestTwinLimitsValues(t *testing.T) {
	r, _, _ := newRegistry(t)
	create(t, r, "d1")
	ok := []map[string]any{
		nest(10),
		{"s": strings.Repeat("x", 4096)},
		{"n": float64(hubapi.MaxTwinInteger), "m": float64(hubapi.MinTwinInteger), "f": 1.5e300},
		{strings.Repeat("k", 1024): 1},
		{"arr": []any{1.0, "two", map[string]any{"three": 3.0}}},
		{"ünïcode": "ok"},
	}
	for i, m := range ok {
		if _, err := r.UpdateTwin("d1", desiredPatch(m), ""); err != nil {
			t.Errorf("ok #%d rejected: %v", i, err)
		}
		if _, err := r.PatchReported("d1", m); err != nil {
			t.Errorf("ok #%d rejected as reported: %v", i, err)
		}
		if _, err := r.UpdateTwin("d1", hubapi.TwinPatch{Tags: m}, ""); err != nil {
			t.Errorf("ok #%d rejected as tags: %v", i, err)
		}
	}
	bad := []map[string]any{
		nest(11),
		{"s": strings.Repeat("x", 4097)},
		{"n": float64(hubapi.MaxTwinInteger + 1)},
		{"n": float64(hubapi.MinTwinInteger - 1)},
		{strings.Repeat("k", 1025): 1},
		{"a.b": 1}, {"a b": 1}, {"$a": 1}, {"a\tb": 1}, {"a\u0085b": 1}, {"": 1},
		{"arr": []any{map[string]any{"$bad": 1}}},
		{"arr": []any{strings.Repeat("x", 4097)}},
	}
	for i, m := range bad {
		_, err := r.UpdateTwin("d1", desiredPatch(m), "")
		mustCode(t, err, huberr.ArgumentInvalid)
		_, err = r.ReplaceTwin("d1", hubapi.TwinPatch{Tags: m}, "")
		mustCode(t, err, huberr.ArgumentInvalid)
		_, err = r.PatchReported("d1", m)
		mustCode(t, err, huberr.ArgumentInvalid)
		err = r.Import([]SeedDevice{{DeviceID: "seed-" + string(rune('a'+i)), Desired: m}})
		mustCode(t, err, huberr.ArgumentInvalid)
	}
}

// TestTwinLimitsSize: tags 8 KB, desired and reported 32 KB each, counted as the twin guide
// counts (keys + values), checked on the merged result; 403100 with the hub's message.
func TestTwinLimitsSize(t *testing.T) {
	r, _, _ := newRegistry(t)
	create(t, r, "d1")
	val := strings.Repeat("v", 4000)
	// 8 tags of 1+4000 bytes = 32,008 > 8192 with three: 12,003.
	big := map[string]any{"a": val, "b": val}
	if _, err := r.UpdateTwin("d1", hubapi.TwinPatch{Tags: big}, ""); err != nil {
		t.Fatalf("8,002 bytes of tags: %v", err)
	}
	_, err := r.UpdateTwin("d1", hubapi.TwinPatch{Tags: map[string]any{"c": val}}, "")
	mustCode(t, err, DeviceModelMaxPropertiesExceeded)
	if !strings.Contains(err.Error(), "'Tags' size should be less than 8192 bytes.") {
		t.Errorf("message: %v", err)
	}
	// A write that shrinks is fine; the failed write changed nothing.
	doc, err := r.UpdateTwin("d1", hubapi.TwinPatch{Tags: map[string]any{"a": nil}}, "")
	if err != nil || len(doc["tags"].(map[string]any)) != 1 {
		t.Fatalf("shrink: %v %v", doc["tags"], err)
	}
	// Desired: 8 × 4001 = 32,008 fits; a ninth does not — by patch and by replace.
	des := map[string]any{}
	for i := range 8 {
		des[string(rune('a'+i))] = val
	}
	if _, err := r.UpdateTwin("d1", desiredPatch(des), ""); err != nil {
		t.Fatalf("32,008 bytes desired: %v", err)
	}
	_, err = r.UpdateTwin("d1", desiredPatch(map[string]any{"z": val}), "")
	mustCode(t, err, DeviceModelMaxPropertiesExceeded)
	des["z"] = val
	_, err = r.ReplaceTwin("d1", desiredPatch(des), "")
	mustCode(t, err, DeviceModelMaxPropertiesExceeded)
	// Reported, the same 32 KB.
	delete(des, "z")
	if _, err := r.PatchReported("d1", des); err != nil {
		t.Fatalf("32,008 bytes reported: %v", err)
	}
	_, err = r.PatchReported("d1", map[string]any{"z": val})
	mustCode(t, err, DeviceModelMaxPropertiesExceeded)
	if !strings.Contains(err.Error(), "'Properties.Reported' size should be less than 32768 bytes.") {
		t.Errorf("message: %v", err)
	}
	// Import applies the same limits.
	des["z"] = val
	mustCode(t, r.Import([]SeedDevice{{DeviceID: "big", Reported: des}}), DeviceModelMaxPropertiesExceeded)
}

func TestJSONSize(t *testing.T) {
	m := j(t, `{"ab":"xyz","n":1,"b":true,"o":{"k":null},"a":[1,"x"],"$metadata":{"x":1},"$version":3}`)
	// ab:2+3, n:1+8, b:1+4, o:1+(k:1+0), a:1+(8+1)
	if got, want := hubapi.TwinSize(m), 5+9+5+2+10; got != want {
		t.Fatalf("jsonSize = %d, want %d", got, want)
	}
}

// TestTwinLimitsIntegerLiterals: REST bodies keep number literals (json.Number), so the integer
// range is checked exactly and large doubles pass.
func TestTwinLimitsIntegerLiterals(t *testing.T) {
	r, _, _ := newRegistry(t)
	create(t, r, "d1")
	for _, lit := range []string{"4503599627370495", "-4503599627370496", "1e20", "-2.5"} {
		if _, err := r.UpdateTwin("d1", desiredPatch(map[string]any{"n": json.Number(lit)}), ""); err != nil {
			t.Errorf("%s rejected: %v", lit, err)
		}
	}
	for _, lit := range []string{"4503599627370496", "-4503599627370497", "100000000000000000000"} {
		_, err := r.UpdateTwin("d1", desiredPatch(map[string]any{"n": json.Number(lit)}), "")
		mustCode(t, err, huberr.ArgumentInvalid)
	}
}
