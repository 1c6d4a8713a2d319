package registry

import (
	"encoding/json"
	"fmt"
	"maps"
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

// mergePatch applies an RFC 7386 merge patch copy-on-write: old is never modified; the result
// shares every subtree the patch does not touch. A nil old is an empty object.
func mergePatch(old, patch map[string]any) map[string]any {
	out := make(map[string]any, len(old)+len(patch))
	maps.Copy(out, old)
	for k, pv := range patch {
		if pv == nil {
			delete(out, k)
			continue
		}
		if pm, ok := pv.(map[string]any); ok {
			om, _ := out[k].(map[string]any) // a non-object old value is replaced by an object
			out[k] = mergePatch(om, pm)
			continue
		}
		out[k] = pv
	}
	return out
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

// Metadata nodes mirror the value tree: {"$lastUpdated": ts[, "$lastUpdatedVersion": v], child: node...}.
const (
	metaLastUpdated        = "$lastUpdated"
	metaLastUpdatedVersion = "$lastUpdatedVersion"
)

// stamp is the metadata of one write: its time and (desired only) version. Leaf metadata nodes
// of a write are all equal, so they share one immutable map: a fleet seeded in one batch holds
// one leaf node instead of one per property per twin, which is most of a twin's metadata
// memory. Metadata maps are copy-on-write like values, so sharing is safe.
type stamp struct {
	ts      string
	version int64
	withVer bool
	leaf    map[string]any
}

func newStamp(ts string, version int64, withVersion bool) *stamp {
	return &stamp{ts: ts, version: version, withVer: withVersion}
}

// node returns a new metadata node carrying the stamp (for objects, which get children).
func (s *stamp) node() map[string]any {
	m := map[string]any{metaLastUpdated: s.ts}
	if s.withVer {
		m[metaLastUpdatedVersion] = float64(s.version)
	}
	return m
}

// leafNode returns the shared node for leaves (and empty objects).
func (s *stamp) leafNode() map[string]any {
	if s.leaf == nil {
		s.leaf = s.node()
	}
	return s.leaf
}

// freshMeta builds the metadata tree for a newly written value.
func freshMeta(v any, s *stamp) map[string]any {
	obj, ok := v.(map[string]any)
	if !ok || len(obj) == 0 {
		return s.leafNode()
	}
	m := s.node()
	for k, e := range obj {
		m[k] = freshMeta(e, s)
	}
	return m
}

// mergeMeta updates the metadata tree for a merge patch applied to oldVal, copy-on-write. Every
// node on the path of a patched key gets the new stamp; deleted keys lose their metadata.
func mergeMeta(oldMeta map[string]any, oldVal, patch map[string]any, s *stamp) map[string]any {
	out := make(map[string]any, len(oldMeta)+len(patch)+2)
	maps.Copy(out, oldMeta)
	delete(out, metaLastUpdatedVersion)
	maps.Copy(out, s.node())
	for k, pv := range patch {
		if pv == nil {
			delete(out, k)
			continue
		}
		pm, isMap := pv.(map[string]any)
		om, oldIsMap := oldVal[k].(map[string]any)
		if isMap && oldIsMap {
			oldChild, _ := out[k].(map[string]any)
			out[k] = mergeMeta(oldChild, om, pm, s)
			continue
		}
		if isMap {
			out[k] = freshMeta(mergePatch(nil, pm), s)
			continue
		}
		out[k] = freshMeta(pv, s)
	}
	return out
}

// internMeta replaces equal leaf nodes of a metadata tree decoded from the store by one shared
// map (see stamp). tree is freshly decoded and not yet shared, so it is modified in place.
func internMeta(tree map[string]any, tbl map[string]map[string]any) map[string]any {
	leaf := true
	for k, v := range tree {
		if !strings.HasPrefix(k, "$") {
			leaf = false
			if child, ok := v.(map[string]any); ok {
				tree[k] = internMeta(child, tbl)
			}
		}
	}
	if !leaf {
		return tree
	}
	key := fmt.Sprint(tree[metaLastUpdated], "|", tree[metaLastUpdatedVersion])
	if m, ok := tbl[key]; ok {
		return m
	}
	tbl[key] = tree
	return tree
}

// patchError wraps a JSON-shape problem as the hub's 400.
func patchError(section string, err error) error {
	return huberr.New(huberr.ArgumentInvalid, "%s: %s", section, strings.TrimPrefix(fmt.Sprint(err), "json: "))
}
