package jsonappend

import (
	"encoding/json"
	"testing"
)

// TestStringMatchesEncodingJSON: String writes what encoding/json writes.
func TestStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain", `q"uote`, `back\slash`, "tab\there", "<html>&", "é ünïcode", "\x00\x1f", "bad \xff utf8", "\u2028", "\x7f"} {
		want, _ := json.Marshal(s)
		if got := String(nil, s); string(got) != string(want) {
			t.Errorf("String(%q) = %s, want %s", s, got, want)
		}
	}
}

// TestNumberRoundTrips: every number String writes decodes to itself.
func TestNumberRoundTrips(t *testing.T) {
	for _, f := range []float64{0, 1, -1, 0.5, 1e21, 1e-7, 4503599627370495, -4503599627370496, 1 << 53, 123.456, 2.5e300} {
		var back float64
		if err := json.Unmarshal(Number(nil, f), &back); err != nil || back != f {
			t.Errorf("Number(%v) = %s", f, Number(nil, f))
		}
	}
}
