package registry

import (
	"math"
	"unicode/utf8"

	"github.com/iotplan/iotplan/internal/hub/huberr"
)

// The hub's twin limits (iothub-api.md §2.5, from the device-twin guide and the quota table).
const (
	// maxDepth is the nesting limit of tags, desired and reported ("maximum depth of the object
	// is 10"): a property at the top of a section is at depth 1.
	maxDepth = 10
	// maxKeyBytes bounds a property name (UTF-8).
	maxKeyBytes = 1024
	// maxStringBytes bounds a string value (UTF-8).
	maxStringBytes = 4096
	// maxTagsBytes and maxPropertiesBytes bound the size of the tags and of each of desired
	// and reported, computed by jsonSize.
	maxTagsBytes       = 8 * 1024
	maxPropertiesBytes = 32 * 1024
	// Integers the hub accepts: -4503599627370496 … 4503599627370495 (±2^52).
	minInt = -4503599627370496
	maxInt = 4503599627370495
)

// checkKeys validates a patch or section body the way the hub does, before it is applied:
// property names (non-empty, ≤ 1 KB UTF-8, no '$', '.', space or C0/C1 control characters),
// depth ≤ 10, string values ≤ 4 KB, integers within ±2^52, recursively through objects and
// arrays. section names the part of the twin in messages ("tags", "properties.desired").
// Every violation is 400004 ArgumentInvalid (the hub's code for '$' keys in a reported
// patch [I-AMZ-70] and for over-long values ["Property or Tag value should be maximum 512
// bytes." with ErrorCode:ArgumentInvalid, azure-iot-cli-extension#62, from before the limit
// became 4 KB]); the other cases use the same code [inferred].
func checkKeys(section string, m map[string]any) error {
	return checkObject(section, m, 1)
}

func checkObject(path string, m map[string]any, depth int) error {
	if depth > maxDepth {
		return huberr.New(huberr.ArgumentInvalid, "%s: nesting is deeper than %d levels.", path, maxDepth)
	}
	for k, v := range m {
		if k == "" {
			return huberr.New(huberr.ArgumentInvalid, "%s: property names cannot be empty.", path)
		}
		if len(k) > maxKeyBytes || !utf8.ValidString(k) {
			return huberr.New(huberr.ArgumentInvalid, "%s: a property name is longer than 1 KB or not UTF-8.", path)
		}
		for _, r := range k {
			if r == '$' || r == '.' || r == ' ' || r < 0x20 || (r >= 0x7f && r <= 0x9f) {
				return huberr.New(huberr.ArgumentInvalid, "%s: property name %q contains a character that is not allowed ('$', '.', space or a control character).", path, k)
			}
		}
		if err := checkValue(path+"."+k, v, depth); err != nil {
			return err
		}
	}
	return nil
}

// checkValue checks the value of a property at the given depth (objects nested in it start
// one level deeper; array elements stay at the array's depth [inferred: the docs count
// object nesting only]).
func checkValue(path string, v any, depth int) error {
	switch x := v.(type) {
	case map[string]any:
		return checkObject(path, x, depth+1)
	case []any:
		for _, e := range x {
			if err := checkValue(path, e, depth); err != nil {
				return err
			}
		}
	case string:
		if len(x) > maxStringBytes {
			return huberr.New(huberr.ArgumentInvalid, "%s: Property or Tag value should be maximum %d bytes (this one is %d).", path, maxStringBytes, len(x))
		}
	case float64:
		// Decoded JSON numbers lost their literal: an integral value beyond ±2^52 but within
		// the int64 range is taken for an integer the hub rejects; larger magnitudes (1e300)
		// are doubles, which it accepts [inferred]. REST bodies are checked exactly instead
		// (json.Number literals, see normalize).
		if a := math.Abs(x); x == math.Trunc(x) && a > maxInt && a < 9.2e18 && (x < minInt || x > maxInt) {
			return huberr.New(huberr.ArgumentInvalid, "%s: integer values must be within %d and %d.", path, int64(minInt), int64(maxInt))
		}
	}
	return nil
}

// jsonSize is a section's size the way the device-twin guide counts it: the sum over all
// properties of the UTF-8 length of the key plus the size of the value, where a string counts
// its UTF-8 length, a number 8 bytes, a boolean 4 bytes, an object the sum of its properties,
// an array the sum of its elements [inferred] and null 0 [inferred]; $metadata and $version
// are not counted.
func jsonSize(v any) int {
	switch x := v.(type) {
	case map[string]any:
		n := 0
		for k, e := range x {
			if k == "$metadata" || k == "$version" {
				continue
			}
			n += len(k) + jsonSize(e)
		}
		return n
	case []any:
		n := 0
		for _, e := range x {
			n += jsonSize(e)
		}
		return n
	case string:
		return len(x)
	case float64:
		return 8
	case bool:
		return 4
	}
	return 0
}

// checkSize rejects a write that would grow a section beyond its limit with 403100
// DeviceModelMaxPropertiesExceeded and the hub's message ("'Properties.Desired' size should
// be less than 32768 bytes.", seen in azure/iotedge#1694 and #7035). A write that leaves an
// over-size section smaller is let through ("IoT Hub rejects … all operations that would
// increase the size … above the limit").
func checkSize(section string, limit int, before, after map[string]any) error {
	n := jsonSize(after)
	if n <= limit || n <= jsonSize(before) {
		return nil
	}
	return huberr.New(DeviceModelMaxPropertiesExceeded, "'%s' size should be less than %d bytes.", section, limit)
}

// Error codes the registry produces beyond the common ones.
const (
	DeviceModelMaxPropertiesExceeded = huberr.DeviceModelMaxPropertiesExceeded
	ModuleAlreadyExistsOnDevice      = huberr.ModuleAlreadyExistsOnDevice
	DeviceDefinedMultipleTimes       = huberr.DeviceDefinedMultipleTimes
	BulkRegistryOperationFailure     = huberr.BulkRegistryOperationFailure
)
