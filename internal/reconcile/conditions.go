package reconcile

import (
	"encoding/json"
	"sort"

	"github.com/iotplan/iotplan/internal/query"
	"github.com/iotplan/iotplan/internal/state"
)

// The conditions iotplan sends are written in IoT Hub's documented dialect only (docs/query.md,
// "The documented dialect"): comparisons, IN lists, AND/OR/NOT and IS_DEFINED. The semantics
// relied on (docs/azure.md) are the hub's: a comparison with a missing property, or between
// values of different JSON types, is undefined, and a device is selected only when the whole
// condition is true — also under NOT, which leaves undefined undefined. So `p != '43'` selects
// only devices whose p is a string other than '43', and `NOT (p = '43')` does not select devices
// missing p.
//
// Consequently no documented condition can tell an object or array value of p from "p is some
// value iotplan does not know": with IS_DEFINED(p) true and every comparison undefined, any
// condition that is true for such a device is also true for a device holding the desired value
// (the three-valued connectives are monotone). An object is selected by IS_DEFINED(p.k) of one
// of its keys, which is false for every scalar; empty objects and arrays cannot be selected at
// all, and a job that must reach them selects the whole target.

// convergedTerm is true exactly on devices where l holds its desired value (same type and
// value), or, for a key declared null, where it is absent. ok is false for an array value:
// the hub does not compare arrays.
func convergedTerm(l Leaf) (term query.Expr, ok bool) {
	p := l.Path()
	switch v := l.Value.(type) {
	case nil:
		return query.Not(query.IsDefined(p)), true
	case string, float64, bool:
		return query.Eq(p, v), true
	}
	return nil, false
}

// convergedCondition is the target AND every leaf's convergedTerm; ok is false when a leaf
// cannot be compared by the hub.
func convergedCondition(target query.Expr, leaves []Leaf) (query.Expr, bool) {
	terms := []query.Expr{normTarget(target)}
	for _, l := range leaves {
		t, ok := convergedTerm(l)
		if !ok {
			return nil, false
		}
		terms = append(terms, t)
	}
	return query.And(terms...), true
}

// Term forms: how a key's drift term was written.
const (
	// FormList lists the drifted values the plan saw: NOT IS_DEFINED(p) OR p IN [values…]
	// OR IS_DEFINED(p.k)… — possible only when every group of the key was read.
	FormList = "list"
	// FormTyped is fixed-size: p != v for values of v's own type, and a comparison that holds
	// for every value of each other primitive type (p >= '' for strings, p < 0 OR p >= 0 for
	// numbers, p IN [true, false, null] for booleans and null), plus the object keys seen.
	FormTyped = "typed"
	// FormAbsent is IS_DEFINED(p), for a key declared null.
	FormAbsent = "absent"
)

// keyTerm is the drift term of one managed key.
type keyTerm struct {
	expr query.Expr
	form string
	// exact: the term is known to select every targeted device where the key differs.
	exact bool
	// unselectable: the groups read hold a value no documented condition can select (an
	// array, an empty object). When neither is set, the term is FormTyped over groups not all
	// read, and such values may hide among the groups not read.
	unselectable bool
}

// listTerm builds the FormList term from a key's complete groups: the missing group, the
// scalar values that differ (typed: 43 and "43" are different list entries), and one key of
// each object value. exact is false if a group holds an array or an empty object.
func listTerm(l Leaf, groups []Group) keyTerm {
	p := l.Path()
	want := valueKey(l.Value)
	var terms []query.Expr
	var values []any
	objectKeys := map[string]bool{}
	unselectable := false
	for _, g := range groups {
		if g.Devices <= 0 || g.Other {
			continue
		}
		if !g.Defined {
			terms = append(terms, query.Not(query.IsDefined(p)))
			continue
		}
		if valueKey(g.Value) == want {
			continue
		}
		switch v := g.Value.(type) {
		case nil, string, float64, bool:
			values = append(values, v)
		case map[string]any:
			if k, ok := firstKey(v); ok {
				objectKeys[k] = true
			} else {
				unselectable = true
			}
		default:
			unselectable = true
		}
	}
	sortValues(values)
	switch len(values) {
	case 0:
	case 1:
		terms = append(terms, query.Eq(p, values[0]))
	default:
		terms = append(terms, query.In(p, values))
	}
	terms = append(terms, objectTerms(p, objectKeys)...)
	return keyTerm{expr: query.Or(terms...), form: FormList, exact: !unselectable, unselectable: unselectable}
}

// typedTerm builds the fixed-size FormTyped term of a scalar key from the object keys seen
// (objectKeysOf); complete says whether every group was read.
func typedTerm(l Leaf, objectKeys map[string]bool, unselectable, complete bool) keyTerm {
	p := l.Path()
	terms := []query.Expr{query.Not(query.IsDefined(p))}
	var same query.Expr
	others := map[string]bool{"string": true, "number": true, "bool": true, "null": true}
	switch v := l.Value.(type) {
	case string:
		same, others["string"] = query.Ne(p, v), false
	case float64:
		same, others["number"] = query.Ne(p, v), false
	case bool:
		// The other boolean and null in one list.
		terms = append(terms, query.In(p, !v, nil))
		others["bool"], others["null"] = false, false
	}
	if same != nil {
		terms = append(terms, same)
	}
	if others["string"] {
		terms = append(terms, query.Ge(p, ""))
	}
	if others["number"] {
		terms = append(terms, query.Or(query.Lt(p, 0), query.Ge(p, 0)))
	}
	if others["bool"] {
		terms = append(terms, query.In(p, true, false, nil))
	}
	terms = append(terms, objectTerms(p, objectKeys)...)
	return keyTerm{expr: query.Or(terms...), form: FormTyped, exact: complete && !unselectable, unselectable: unselectable}
}

// objectTerms selects object values by one of their keys: IS_DEFINED(p.k) is true only for an
// object that has k, never for a scalar.
func objectTerms(p query.Path, keys map[string]bool) []query.Expr {
	names := make([]string, 0, len(keys))
	for k := range keys {
		names = append(names, k)
	}
	sort.Strings(names)
	out := make([]query.Expr, 0, len(names))
	for _, k := range names {
		out = append(out, query.IsDefined(append(append(query.Path(nil), p...), k)))
	}
	return out
}

// objectKeysOf returns one key per object value among the groups (the first in sorted order),
// and whether an array or empty object was seen.
func objectKeysOf(groups []Group) (keys map[string]bool, unselectable bool) {
	keys = map[string]bool{}
	for _, g := range groups {
		if !g.Defined || g.Devices <= 0 {
			continue
		}
		switch v := g.Value.(type) {
		case map[string]any:
			if k, ok := firstKey(v); ok {
				keys[k] = true
			} else {
				unselectable = true
			}
		case []any:
			unselectable = true
		}
	}
	return keys, unselectable
}

func firstKey(m map[string]any) (string, bool) {
	if len(m) == 0 {
		return "", false
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys[0], true
}

// sortValues orders scalar values by type, then value, so conditions are stable.
func sortValues(vs []any) {
	rank := func(v any) int {
		switch v.(type) {
		case nil:
			return 0
		case bool:
			return 1
		case float64:
			return 2
		}
		return 3
	}
	sort.SliceStable(vs, func(i, j int) bool {
		ri, rj := rank(vs[i]), rank(vs[j])
		if ri != rj {
			return ri < rj
		}
		bi, _ := json.Marshal(vs[i])
		bj, _ := json.Marshal(vs[j])
		return string(bi) < string(bj)
	})
}

// keyTermFor chooses a key's drift term: IS_DEFINED(p) for a key declared null; the list form
// when every group was read (unless preferTyped); the typed form otherwise. ok is false for an
// array-valued key, which no condition can compare.
func keyTermFor(l Leaf, k *KeyObserved, preferTyped bool) (keyTerm, bool) {
	switch l.Value.(type) {
	case nil:
		return keyTerm{expr: query.IsDefined(l.Path()), form: FormAbsent, exact: true}, true
	case string, float64, bool:
	default:
		return keyTerm{}, false
	}
	if k.Complete && !preferTyped {
		return listTerm(l, k.Groups), true
	}
	keys, unselectable := objectKeysOf(k.Groups)
	return typedTerm(l, keys, unselectable, k.Complete), true
}

// valueCondition selects the devices of one observed group, for example ids: the missing
// group, a scalar value (typed), or objects having the first key of the observed object. ok is
// false when no documented condition selects the group (arrays, empty objects, Other).
func valueCondition(l Leaf, g Group) (query.Expr, bool) {
	p := l.Path()
	if g.Other {
		return nil, false
	}
	if !g.Defined {
		return query.Not(query.IsDefined(p)), true
	}
	switch v := g.Value.(type) {
	case nil, string, float64, bool:
		return query.Eq(p, v), true
	case map[string]any:
		if k, ok := firstKey(v); ok {
			return query.IsDefined(append(append(query.Path(nil), p...), k)), true
		}
	}
	return nil, false
}

func normTarget(t query.Expr) query.Expr {
	if t == nil {
		return query.All()
	}
	return t
}

// scope is the condition every query and job of a resource uses for its target: the target,
// minus the devices whose twins hold iotplan's states (state.ExcludeStateDevices), which a
// broad target such as "*" would otherwise select. Plans show the target as written.
func scope(t query.Expr) query.Expr {
	return query.And(normTarget(t), state.ExcludeStateDevices())
}
