package reconcile

import (
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/query"
)

// Twin values are JSON: nil, bool, string, float64, []any, map[string]any. Configuration values
// arrive as whatever Go types the loader produced; Canonical turns them into that form so that
// comparing a desired value with an observed one (decoded from the hub's JSON) is comparing
// like with like: 43 and "43" differ, 3 and 3.0 do not.

// Canonical converts v to the JSON form above. Numbers become float64 (integers beyond the
// hub's ±2^52 range and non-finite numbers are errors), maps with string keys become
// map[string]any, slices []any.
func Canonical(v any) (any, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case bool, string:
		return x, nil
	case float64:
		return checkNum(x)
	case float32:
		return checkNum(float64(x))
	case int:
		return checkNum(float64(x))
	case int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return checkNum(reflect.ValueOf(x).Convert(reflect.TypeOf(float64(0))).Float())
	case json.Number:
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil {
			return nil, fmt.Errorf("%q is not a number", string(x))
		}
		return checkNum(f)
	case *big.Float:
		if x == nil {
			return nil, nil
		}
		f, _ := x.Float64()
		return checkNum(f)
	case *big.Int:
		if x == nil {
			return nil, nil
		}
		f, _ := new(big.Float).SetInt(x).Float64()
		return checkNum(f)
	case json.RawMessage:
		var out any
		if err := json.Unmarshal(x, &out); err != nil {
			return nil, err
		}
		return Canonical(out)
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			c, err := Canonical(e)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			m[k] = c
		}
		return m, nil
	case []any:
		s := make([]any, len(x))
		for i, e := range x {
			c, err := Canonical(e)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			s[i] = c
		}
		return s, nil
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			return nil, fmt.Errorf("a map with %s keys is not a JSON object", rv.Type().Key())
		}
		m := make(map[string]any, rv.Len())
		for it := rv.MapRange(); it.Next(); {
			c, err := Canonical(it.Value().Interface())
			if err != nil {
				return nil, fmt.Errorf("%s: %w", it.Key().String(), err)
			}
			m[it.Key().String()] = c
		}
		return m, nil
	case reflect.Slice, reflect.Array:
		s := make([]any, rv.Len())
		for i := range s {
			c, err := Canonical(rv.Index(i).Interface())
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			s[i] = c
		}
		return s, nil
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			return nil, nil
		}
		return Canonical(rv.Elem().Interface())
	}
	return nil, fmt.Errorf("a %T is not a JSON value", v)
}

func checkNum(f float64) (any, error) {
	switch {
	case math.IsNaN(f) || math.IsInf(f, 0):
		return nil, fmt.Errorf("%v is not a number a twin can hold", f)
	case hubapi.TwinIntegerOutOfRange(f):
		return nil, fmt.Errorf("%v is outside the hub's integer range (±2^52)", f)
	}
	return f, nil
}

// valueKey is a canonical text of a JSON value for equality: encoding/json sorts object keys, so
// deep-equal values have equal keys and values of different types never do.
func valueKey(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("<%T>", v)
	}
	return string(b)
}

// rawJSON encodes a canonical value for the plan file.
func rawJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		return json.RawMessage("null")
	}
	return b
}

// Section is where a managed key lives in a twin.
type Section string

const (
	SectionDesired Section = "desired"
	SectionTags    Section = "tags"
	// SectionReported is what devices report: iotplan never writes it, and reads it to see
	// whether devices took the desired properties (convergence, status).
	SectionReported Section = "reported"
)

// Leaf is one managed key: a leaf of the declared desired/tags objects (nested objects merge,
// so their leaves are what is managed; arrays and scalars are leaves; nil means "ensure absent").
type Leaf struct {
	Section Section
	Keys    []string // path below the section: ["location", "building"]
	Value   any      // canonical; nil = ensure absent
}

// Name is the key as plans show it: "desired.location.building", "tags.owner".
func (l Leaf) Name() string { return string(l.Section) + "." + strings.Join(l.Keys, ".") }

// Path is the key's path in a twin document (and in queries).
func (l Leaf) Path() query.Path {
	var p query.Path
	switch l.Section {
	case SectionDesired:
		p = query.P("properties", "desired")
	case SectionReported:
		p = query.P("properties", "reported")
	default:
		p = query.P("tags")
	}
	return append(p, l.Keys...)
}

// ReportedLeaves are the reported counterparts of the desired leaves among leaves: the
// properties a device reports once it has taken the desired ones (tags are not reported).
func ReportedLeaves(leaves []Leaf) []Leaf {
	var out []Leaf
	for _, l := range leaves {
		if l.Section == SectionDesired {
			out = append(out, Leaf{Section: SectionReported, Keys: l.Keys, Value: l.Value})
		}
	}
	return out
}

// Leaves flattens canonical desired and tags objects into their managed leaves, sorted by name
// (desired first). An empty object declares nothing (a merge patch with {} changes nothing).
func Leaves(desired, tags map[string]any) []Leaf {
	var out []Leaf
	var walk func(sec Section, prefix []string, m map[string]any)
	walk = func(sec Section, prefix []string, m map[string]any) {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			path := append(append([]string(nil), prefix...), k)
			if sub, ok := m[k].(map[string]any); ok {
				walk(sec, path, sub)
				continue
			}
			out = append(out, Leaf{Section: sec, Keys: path, Value: m[k]})
		}
	}
	walk(SectionDesired, nil, desired)
	walk(SectionTags, nil, tags)
	return out
}
