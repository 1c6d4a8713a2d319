// Package jsonappend writes JSON values into a byte slice without reflection, for the local
// hub's hot paths (store records of twins and devices.jobs rows, written once or twice per
// device of a job over a million devices). It writes what encoding/json writes for the same
// values (its tests hold it to that), falling back to encoding/json for anything uncommon.
package jsonappend

import (
	"encoding/json"
	"math"
	"strconv"
)

// String appends s as a JSON string: plain printable ASCII directly (ids, names and most
// values are), anything else through encoding/json, which escapes HTML characters and control
// bytes and replaces invalid UTF-8 as a decoder expects.
func String(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return Value(b, s)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// Number appends a finite number: integers within ±2^53 as integers, others as encoding/json
// formats them (JSON has no NaN or infinity; those become 0, which callers never pass: the
// hub's decoders refuse them).
func Number(b []byte, f float64) []byte {
	if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return strconv.AppendInt(b, int64(f), 10)
	}
	j, err := json.Marshal(f)
	if err != nil {
		return append(b, '0')
	}
	return append(b, j...)
}

// Value appends v through encoding/json ("null" when it does not encode).
func Value(b []byte, v any) []byte {
	j, err := json.Marshal(v)
	if err != nil {
		return append(b, "null"...)
	}
	return append(b, j...)
}
