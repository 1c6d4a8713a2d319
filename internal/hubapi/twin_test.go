package hubapi

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestTwinKeyProblem(t *testing.T) {
	for key, want := range map[string]string{
		"floor":                                "",
		"étage":                                "",
		strings.Repeat("k", MaxTwinKeyBytes):   "",
		"":                                     "is empty",
		strings.Repeat("k", MaxTwinKeyBytes+1): "1025 bytes long",
		"a.b":                                  `contains "."`,
		"$version":                             `contains "$"`,
		"a b":                                  "contains a space",
		"a\tb":                                 "control character",
		"a\u0085b":                             "control character", // C1
		"a\x7fb":                               "control character",
		"\xff":                                 "not valid UTF-8",
	} {
		got := TwinKeyProblem(key)
		if (want == "") != (got == "") || !strings.Contains(got, want) {
			t.Errorf("TwinKeyProblem(%q) = %q, want %q", key, got, want)
		}
	}
}

func TestTwinSize(t *testing.T) {
	var doc map[string]any
	json.Unmarshal([]byte(`{"floor":3,"name":"door","ok":true,"none":null,"list":[1,"ab"],"sub":{"k":false},"$version":4,"$metadata":{"x":1}}`), &doc)
	// floor 5+8, name 4+4, ok 2+4, none 4+0, list 4+8+2, sub 3+(1+4)
	if got, want := TwinSize(doc), 13+8+6+4+14+8; got != want {
		t.Errorf("TwinSize = %d, want %d", got, want)
	}
	if got := TwinSize(map[string]any{"n": json.Number("12"), "i": 7}); got != 2+16 {
		t.Errorf("TwinSize of json.Number and int = %d, want 18", got)
	}
}

// The hub's own keys are not a section's values: TwinValues drops them, TwinSize skips them.
func TestTwinValuesDropsMetadata(t *testing.T) {
	sec := map[string]any{"a": 1.0, "$version": 4.0, "$metadata": map[string]any{"a": "x"}}
	got := TwinValues(sec)
	if len(got) != 1 || got["a"] != 1.0 {
		t.Errorf("TwinValues = %v, want only a", got)
	}
	if len(sec) != 3 {
		t.Errorf("TwinValues changed its argument: %v", sec)
	}
	if n := TwinSize(sec); n != TwinSize(got) {
		t.Errorf("TwinSize counts metadata: %d, want %d", n, TwinSize(got))
	}
}

// Go values become what a twin holds, so they compare equal to values read from twins.
func TestTwinJSON(t *testing.T) {
	in := map[string]any{"n": 3, "l": []string{"x"}, "m": map[string]int{"k": 1}}
	want := map[string]any{"n": 3.0, "l": []any{"x"}, "m": map[string]any{"k": 1.0}}
	if got := TwinJSON(in); !reflect.DeepEqual(got, want) {
		t.Errorf("TwinJSON = %#v, want %#v", got, want)
	}
	ch := make(chan int)
	if got := TwinJSON(ch); got != any(ch) {
		t.Errorf("TwinJSON of a value JSON cannot encode = %v, want it unchanged", got)
	}
}

// TestTwinIntegerOutOfRange: ±2^52 is the hub's range; larger integral magnitudes within
// int64 are refused, and beyond it a number is a double.
func TestTwinIntegerOutOfRange(t *testing.T) {
	for f, want := range map[float64]bool{
		0: false, 1.5: false, MaxTwinInteger: false, MinTwinInteger: false,
		MaxTwinInteger + 1: true, MinTwinInteger - 1: true, 1e18: true, -1e18: true,
		1e300: false, -1e300: false, 1e15 + 0.5: false,
	} {
		if got := TwinIntegerOutOfRange(f); got != want {
			t.Errorf("TwinIntegerOutOfRange(%v) = %v, want %v", f, got, want)
		}
	}
}
