package hubapi

import (
	"encoding/json"
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
