package registry

import (
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/iotplan/iotplan/internal/jsonappend"
)

// The compact twin: how the registry keeps a twin's sections in memory. A section (tags,
// desired, reported) is a slice of members sorted by key; a member that holds an object holds
// it as *object, which is again sorted members. Each member carries its own $metadata
// ($lastUpdated as Unix nanoseconds, $lastUpdatedVersion), so the $metadata tree is derived
// from the values instead of being a second tree of maps. Values are immutable once
// published: writes build new member slices that share every untouched value.
//
// Against the map documents this replaces, a twin of the default fleet's shape (2 tags, 2
// desired and 3 reported properties) costs about a third of the memory, and the query engine
// reads it through query.Object without a map being built (BENCHMARKS.md, "Lean twins").

// member is one key of a twin object.
type member struct {
	key string
	val any   // string, float64, bool, []any (elements in the JSON data model), *object
	at  int64 // $lastUpdated in Unix nanoseconds; 0 in tags, which have no $metadata
	ver int64 // $lastUpdatedVersion (desired only)
}

// object is a JSON object nested in a section.
type object struct{ ms []member }

// lookup finds key in sorted members: a linear scan for the few members twins usually hold
// (cheaper than a binary search's branches), a binary search beyond.
func lookup(ms []member, key string) (int, bool) {
	if len(ms) <= 8 {
		for i := range ms {
			switch c := strings.Compare(ms[i].key, key); {
			case c == 0:
				return i, true
			case c > 0:
				return i, false
			}
		}
		return len(ms), false
	}
	return slices.BinarySearchFunc(ms, key, func(m member, k string) int { return strings.Compare(m.key, k) })
}

func field(ms []member, key string) (any, bool) {
	if i, ok := lookup(ms, key); ok {
		return ms[i].val, true
	}
	return nil, false
}

// Field implements query.Object.
func (o *object) Field(name string) (any, bool) { return field(o.ms, name) }

// Map implements query.Object: the object in the JSON data model.
func (o *object) Map() map[string]any { return valuesMap(o.ms) }

// MarshalJSON writes the object's values (a query row may hold it).
func (o *object) MarshalJSON() ([]byte, error) { return appendValues(nil, o.ms), nil }

// EachMember lets hubapi.TwinSize measure the object as it measures a map.
func (o *object) EachMember(fn func(key string, v any)) { eachMember(o.ms, fn) }

func eachMember(ms []member, fn func(key string, v any)) {
	for i := range ms {
		fn(ms[i].key, ms[i].val)
	}
}

// members wraps a section's members for hubapi.TwinSize.
type members []member

func (ms members) EachMember(fn func(key string, v any)) { eachMember(ms, fn) }

// valuesMap converts members to a new map[string]any (objects recursively; arrays shared, as
// they are immutable).
func valuesMap(ms []member) map[string]any {
	m := make(map[string]any, len(ms))
	for i := range ms {
		m[ms[i].key] = plain(ms[i].val)
	}
	return m
}

func plain(v any) any {
	switch x := v.(type) {
	case *object:
		return valuesMap(x.ms)
	case []any:
		return CloneJSON(x) // the caller owns the map it gets
	}
	return v
}

// metaMap is the $metadata tree of a section: its own stamp and, under each key, the key's.
func metaMap(ms []member, at, ver int64, withVer bool) map[string]any {
	m := make(map[string]any, len(ms)+2)
	m[metaLastUpdated] = formatNanos(at)
	if withVer {
		m[metaLastUpdatedVersion] = float64(ver)
	}
	for i := range ms {
		mb := &ms[i]
		if o, ok := mb.val.(*object); ok {
			m[mb.key] = metaMap(o.ms, mb.at, mb.ver, withVer)
			continue
		}
		m[mb.key] = metaMap(nil, mb.at, mb.ver, withVer)
	}
	return m
}

// membersOf converts a normalised map without nulls (a seed, a replaced section) into members
// stamped at/ver; in, when not nil, interns keys and values (seeding).
func membersOf(m map[string]any, at, ver int64, in *interner) []member {
	if len(m) == 0 {
		return nil
	}
	ms := make([]member, 0, len(m))
	for k, v := range m {
		if v == nil {
			continue
		}
		if sub, ok := v.(map[string]any); ok {
			v = &object{ms: membersOf(sub, at, ver, in)}
		} else if in != nil {
			v = in.value(v)
		}
		if in != nil {
			k = internKey(in, k)
		}
		ms = append(ms, member{key: k, val: v, at: at, ver: ver})
	}
	slices.SortFunc(ms, func(a, b member) int { return strings.Compare(a.key, b.key) })
	return ms
}

// mergeMembers applies an RFC 7386 merge patch (normalised: null deletes, objects merge, arrays
// and scalars replace) copy-on-write, stamping every member on the path of a patched key with
// at/ver: the $metadata rule of the device-twin guide, where "every node on the path of a
// patched key is touched". old is never modified; the result shares untouched members' values.
func mergeMembers(old []member, patch map[string]any, at, ver int64) []member {
	out := make([]member, len(old), len(old)+len(patch))
	copy(out, old)
	for k, pv := range patch {
		i, found := lookup(out, k)
		if pv == nil {
			if found {
				out = slices.Delete(out, i, i+1)
			}
			continue
		}
		if pm, ok := pv.(map[string]any); ok {
			var base []member
			if found {
				if o, isObj := out[i].val.(*object); isObj {
					base = o.ms
				}
			}
			pv = &object{ms: mergeMembers(base, pm, at, ver)}
		}
		mb := member{key: k, val: pv, at: at, ver: ver}
		if found {
			out[i] = mb
		} else {
			out = slices.Insert(out, i, mb)
		}
	}
	return out
}

// formatNanos formats a $metadata or volatile time; 0 is "never".
func formatNanos(n int64) string {
	if n == 0 {
		return zeroTime
	}
	return FormatTime(time.Unix(0, n))
}

// timeCache parses the hub's timestamps read from the store, once per distinct text: a fleet
// seeded or patched in one operation shares its stamps.
type timeCache map[string]int64

func (c timeCache) nanos(s any) int64 {
	str, _ := s.(string)
	if str == "" || str == zeroTime {
		return 0
	}
	if n, ok := c[str]; ok {
		return n
	}
	t, err := time.Parse(time.RFC3339Nano, str)
	if err != nil {
		return 0
	}
	c[str] = t.UnixNano()
	return c[str]
}

// membersFromStore converts a section and its $metadata tree as the store holds them.
func membersFromStore(vals, meta map[string]any, times timeCache) []member {
	if len(vals) == 0 {
		return nil
	}
	ms := make([]member, 0, len(vals))
	for k, v := range vals {
		if v == nil {
			continue
		}
		node, _ := meta[k].(map[string]any)
		if sub, ok := v.(map[string]any); ok {
			v = &object{ms: membersFromStore(sub, node, times)}
		}
		ver, _ := node[metaLastUpdatedVersion].(float64)
		ms = append(ms, member{key: k, val: v, at: times.nanos(node[metaLastUpdated]), ver: int64(ver)})
	}
	slices.SortFunc(ms, func(a, b member) int { return strings.Compare(a.key, b.key) })
	return ms
}

// --- JSON written without maps (the store's records, query rows) --------------------------------

func appendValues(b []byte, ms []member) []byte {
	b = append(b, '{')
	for i := range ms {
		if i > 0 {
			b = append(b, ',')
		}
		b = jsonappend.String(b, ms[i].key)
		b = append(b, ':')
		b = appendValue(b, ms[i].val)
	}
	return append(b, '}')
}

func appendValue(b []byte, v any) []byte {
	switch x := v.(type) {
	case *object:
		return appendValues(b, x.ms)
	case string:
		return jsonappend.String(b, x)
	case float64:
		return jsonappend.Number(b, x)
	case bool:
		if x {
			return append(b, "true"...)
		}
		return append(b, "false"...)
	case nil:
		return append(b, "null"...)
	}
	j, err := json.Marshal(v) // arrays: rare, and in the JSON data model, so they encode
	if err != nil {
		return append(b, "null"...)
	}
	return append(b, j...)
}

// appendMeta writes the $metadata tree of a section (see metaMap).
func appendMeta(b []byte, ms []member, at, ver int64, withVer bool) []byte {
	b = append(b, `{"$lastUpdated":`...)
	b = jsonappend.String(b, formatNanos(at))
	if withVer {
		b = append(b, `,"$lastUpdatedVersion":`...)
		b = jsonappend.Number(b, float64(ver))
	}
	for i := range ms {
		mb := &ms[i]
		b = append(b, ',')
		b = jsonappend.String(b, mb.key)
		b = append(b, ':')
		var sub []member
		if o, ok := mb.val.(*object); ok {
			sub = o.ms
		}
		b = appendMeta(b, sub, mb.at, mb.ver, withVer)
	}
	return append(b, '}')
}
