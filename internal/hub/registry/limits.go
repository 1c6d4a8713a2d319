package registry

import (
	"github.com/iotplan/iotplan/internal/hub/huberr"
	"github.com/iotplan/iotplan/internal/hubapi"
)

// checkKeys validates a patch or section body the way the hub does, before it is applied:
// property names (non-empty, ≤ 1 KB UTF-8, no '$', '.', space or C0/C1 control characters),
// depth ≤ 10, string values ≤ 4 KB, integers within ±2^52, recursively through objects and
// arrays. section names the part of the twin in messages ("tags", "properties.desired").
// Every violation is 400004 ArgumentInvalid (the hub's code for '$' keys in a reported
// patch [amenzhinsky/iothub#70] and for over-long values ["Property or Tag value should be maximum 512
// bytes." with ErrorCode:ArgumentInvalid, azure-iot-cli-extension#62, from before the limit
// became 4 KB]); the other cases use the same code [inferred].
func checkKeys(section string, m map[string]any) error {
	return checkObject(section, m, 1)
}

func checkObject(path string, m map[string]any, depth int) error {
	if depth > hubapi.MaxTwinDepth {
		return huberr.New(huberr.ArgumentInvalid, "%s: nesting is deeper than %d levels.", path, hubapi.MaxTwinDepth)
	}
	for k, v := range m {
		if msg := hubapi.TwinKeyProblem(k); msg != "" {
			return huberr.New(huberr.ArgumentInvalid, "%s: the property name %q %s.", path, k, msg)
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
		if len(x) > hubapi.MaxTwinStringBytes {
			return huberr.New(huberr.ArgumentInvalid, "%s: Property or Tag value should be maximum %d bytes (this one is %d).", path, hubapi.MaxTwinStringBytes, len(x))
		}
	case float64:
		// REST bodies are checked exactly instead (json.Number literals, see normalize).
		if hubapi.TwinIntegerOutOfRange(x) {
			return huberr.New(huberr.ArgumentInvalid, "%s: integer values must be within %d and %d.", path, int64(hubapi.MinTwinInteger), int64(hubapi.MaxTwinInteger))
		}
	}
	return nil
}

// checkSize rejects a write that would grow a section beyond its limit with 403100
// DeviceModelMaxPropertiesExceeded and the hub's message ("'Properties.Desired' size should
// be less than 32768 bytes.", seen in azure/iotedge#1694 and #7035). A write that leaves an
// over-size section smaller is let through ("IoT Hub rejects … all operations that would
// increase the size … above the limit").
func checkSize(section string, limit int, before, after []member) error {
	n := hubapi.TwinSize(members(after))
	if n <= limit || n <= hubapi.TwinSize(members(before)) {
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
