package hubapi

import (
	"encoding/json"
	"fmt"
	"math"
	"unicode"
	"unicode/utf8"
)

// The hub's rules for twin documents, in one place for the local hub (which refuses what breaks
// them), the configuration loader (which reports it at its source) and the state store (which
// must fit in a twin). From IoT Hub's device-twin guide
// (https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-device-twins, "Tags and
// properties format", "Device twin size"): "All keys in JSON objects are UTF-8 encoded,
// case-sensitive, and up to 1 KB in length. Allowed characters exclude UNICODE control
// characters (segments C0 and C1), and '.', '$', and SP"; "All string values can be at most
// 4 KB in length"; "Maximum depth of JSON objects in tags, desired properties, and reported
// properties is 10"; integers "are within -4503599627370496 and 4503599627370495"; "IoT Hub
// enforces an 8 KB size limit on the value of tags, and a 32 KB size limit each on the value of
// properties/desired and properties/reported".
const (
	MaxTwinKeyBytes    = 1024
	MaxTwinStringBytes = 4096
	// MaxTwinDepth counts nesting levels with the section (tags, desired) as the first.
	MaxTwinDepth       = 10
	MaxTagsBytes       = 8 * 1024
	MaxPropertiesBytes = 32 * 1024         // each of properties.desired and properties.reported
	MaxTwinInteger     = 4503599627370495  // 2^52-1
	MinTwinInteger     = -4503599627370496 // -2^52
)

// TwinSize is a value's size as the device-twin guide counts it against MaxTagsBytes and
// MaxPropertiesBytes: keys and strings by their UTF-8 length, numbers 8 bytes, booleans 4,
// objects and arrays the sum of their parts [inferred for arrays], null 0 [inferred];
// $metadata and $version do not count. (The guide leaves control characters out of string
// lengths; counting them only over-estimates.)
func TwinSize(v any) int {
	switch x := v.(type) {
	case map[string]any:
		n := 0
		for k, e := range x {
			if !IsTwinMetadataKey(k) {
				n += len(k) + TwinSize(e)
			}
		}
		return n
	case []any:
		n := 0
		for _, e := range x {
			n += TwinSize(e)
		}
		return n
	case string:
		return len(x)
	case float64, int, int64, json.Number:
		return 8
	case bool:
		return 4
	case interface{ EachMember(func(key string, v any)) }:
		// An object held in another form than a map (the local hub's compact twins).
		n := 0
		x.EachMember(func(k string, e any) {
			if !IsTwinMetadataKey(k) {
				n += len(k) + TwinSize(e)
			}
		})
		return n
	}
	return 0
}

// TwinIntegerOutOfRange reports whether f, a number as JSON decoding gives it, is an integer
// the hub refuses: integral, beyond MinTwinInteger..MaxTwinInteger and within the int64 range.
// A decoded number has lost its literal, so an integral value of a larger magnitude (1e300) is
// taken for a double, which the hub accepts [inferred].
func TwinIntegerOutOfRange(f float64) bool {
	return f == math.Trunc(f) && (f > MaxTwinInteger || f < MinTwinInteger) && math.Abs(f) < 9.2e18
}

// TwinKeyProblem says why the hub refuses k as a key of a twin document ("contains a space,
// which the hub does not allow in keys"), or returns "" for a key it accepts.
func TwinKeyProblem(k string) string {
	switch {
	case k == "":
		return "is empty; keys must have at least one character"
	case len(k) > MaxTwinKeyBytes:
		return fmt.Sprintf("is %d bytes long; the hub accepts keys of at most %d bytes (UTF-8)", len(k), MaxTwinKeyBytes)
	case !utf8.ValidString(k):
		return "is not valid UTF-8"
	}
	for _, r := range k {
		switch {
		case r == '$':
			return `contains "$", which the hub reserves for its own keys ($version, $metadata)`
		case r == '.':
			return `contains ".", which separates keys in query paths; nest an object instead`
		case r == ' ':
			return "contains a space, which the hub does not allow in keys"
		case unicode.IsControl(r):
			return "contains a control character, which the hub does not allow in keys"
		}
	}
	return ""
}

// IsTwinMetadataKey reports whether k is one of the keys the hub itself writes into a twin
// section ($metadata, $version): not the section's values, and not counted in its size.
func IsTwinMetadataKey(k string) bool { return k == "$metadata" || k == "$version" }

// TwinValues is a twin section (tags, desired, reported) without its $metadata and $version.
// The result is a new map; the values are shared.
func TwinValues(sec map[string]any) map[string]any {
	out := make(map[string]any, len(sec))
	for k, v := range sec {
		if !IsTwinMetadataKey(k) {
			out[k] = v
		}
	}
	return out
}

// TwinJSON is v in the JSON data model a twin holds (map[string]any, []any, string, float64,
// bool, nil), through encoding/json, so that a Go value (an int, a typed map) compares equal
// to the same value read back from a twin. A value that does not encode is returned as is.
func TwinJSON(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return v
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		return v
	}
	return out
}
