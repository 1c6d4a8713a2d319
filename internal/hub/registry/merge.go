package registry

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"github.com/iotplan/iotplan/internal/hub/huberr"
	"github.com/iotplan/iotplan/internal/hubapi"
)

// normalize deep-copies v into the JSON data model (map[string]any, []any, string, float64,
// bool, nil), so that callers' maps are never aliased by the store and Go integers from seeds
// compare like decoded JSON numbers.
func normalize(v any) (any, error) {
	switch x := v.(type) {
	case nil, string, bool, float64:
		return x, nil
	case int:
		return float64(x), nil
	case int64:
		return float64(x), nil
	case int32:
		return float64(x), nil
	case float32:
		return float64(x), nil
	case uint:
		return float64(x), nil
	case uint64:
		return float64(x), nil
	case json.Number:
		// A literal without fraction or exponent is an integer to the hub, which accepts
		// only ±2^52 (the exact check; decoded float64 values get checkValue's).
		if !strings.ContainsAny(string(x), ".eE") {
			n, err := strconv.ParseInt(string(x), 10, 64)
			if err != nil || n < hubapi.MinTwinInteger || n > hubapi.MaxTwinInteger {
				return nil, fmt.Errorf("the integer %s is out of range: integer values must be within %d and %d", x, int64(hubapi.MinTwinInteger), int64(hubapi.MaxTwinInteger))
			}
			return float64(n), nil
		}
		f, err := x.Float64()
		if err != nil {
			return nil, err
		}
		return f, nil
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			n, err := normalize(e)
			if err != nil {
				return nil, err
			}
			m[k] = n
		}
		return m, nil
	case []any:
		a := make([]any, len(x))
		for i, e := range x {
			n, err := normalize(e)
			if err != nil {
				return nil, err
			}
			a[i] = n
		}
		return a, nil
	default:
		// Anything else (typed maps/slices/structs) goes through JSON once.
		b, err := json.Marshal(x)
		if err != nil {
			return nil, err
		}
		var out any
		if err := json.Unmarshal(b, &out); err != nil {
			return nil, err
		}
		return out, nil
	}
}

func normalizeMap(m map[string]any) (map[string]any, error) {
	if m == nil {
		return nil, nil
	}
	v, err := normalize(m)
	if err != nil {
		return nil, err
	}
	return v.(map[string]any), nil
}

// CloneJSON copies a JSON value (maps and slices; scalars are immutable), for callers that
// must change a document they got from the registry.
func CloneJSON(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = CloneJSON(e)
		}
		return m
	case []any:
		a := make([]any, len(x))
		for i, e := range x {
			a[i] = CloneJSON(e)
		}
		return a
	default:
		return x
	}
}

func deepCopyMap(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	return CloneJSON(m).(map[string]any)
}

// diffPatch returns the merge patch that turns old into new (nil values delete keys).
func diffPatch(old, new map[string]any) map[string]any {
	p := map[string]any{}
	for k, ov := range old {
		nv, ok := new[k]
		if !ok {
			p[k] = nil
			continue
		}
		om, oIsMap := ov.(map[string]any)
		nm, nIsMap := nv.(map[string]any)
		switch {
		case oIsMap && nIsMap:
			if d := diffPatch(om, nm); len(d) > 0 {
				p[k] = d
			}
		case !reflect.DeepEqual(ov, nv):
			p[k] = nv
		}
	}
	for k, nv := range new {
		if _, ok := old[k]; !ok {
			p[k] = nv
		}
	}
	return p
}

// stripNulls removes null members recursively (a PUT body's nulls mean "absent").
func stripNulls(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		switch x := v.(type) {
		case nil:
		case map[string]any:
			out[k] = stripNulls(x)
		default:
			out[k] = v
		}
	}
	return out
}

// The $metadata keys of every node.
const (
	metaLastUpdated        = "$lastUpdated"
	metaLastUpdatedVersion = "$lastUpdatedVersion"
)

// patchError wraps a JSON-shape problem as the hub's 400.
func patchError(section string, err error) error {
	return huberr.New(huberr.ArgumentInvalid, "%s: %s", section, strings.TrimPrefix(fmt.Sprint(err), "json: "))
}
