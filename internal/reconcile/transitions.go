package reconcile

import "sort"

// Transitions are what both halves of planning derive from the key groups Read observed: Read,
// to know which keys differ (and fetch their examples); Diff, to show them. They are a pure
// function of the groups, so both see the same.

// Group is one row of a key's GROUP BY: the devices whose key has Value (Defined) or is missing
// (!Defined: the "undefined" group). When a key has more groups than Read lists (one page),
// Other counts the devices in groups not read that differ from the desired value.
type Group struct {
	Defined bool `json:"defined"`
	Value   any  `json:"value,omitempty"`
	Devices int  `json:"devices"`
	Other   bool `json:"other,omitempty"`
}

// transitionID identifies the observed side of a transition: the key and the observed value
// (or its absence).
func transitionID(l Leaf, g Group) string {
	if g.Other {
		return l.Name() + "\x00other"
	}
	if !g.Defined {
		return l.Name() + "\x00undefined"
	}
	return l.Name() + "\x00" + valueKey(g.Value)
}

// observedTransition is a Transition with what Read needs to fetch its samples.
type observedTransition struct {
	Transition
	id    string
	leaf  Leaf
	group Group
}

// KeyTransitions compares one managed key's observed groups with its desired value: every
// group that differs (by type and value; a missing key is its own group) is a transition.
func KeyTransitions(l Leaf, groups []Group) []Transition {
	ts := keyTransitions(l, groups)
	out := make([]Transition, len(ts))
	for i, t := range ts {
		out[i] = t.Transition
	}
	return out
}

func keyTransitions(l Leaf, groups []Group) []observedTransition {
	var out []observedTransition
	want := valueKey(l.Value)
	for _, g := range groups {
		if g.Devices <= 0 {
			continue
		}
		t := Transition{Key: l.Name(), Devices: g.Devices}
		switch {
		case g.Other && l.Value == nil:
			t.Op, t.OtherValues = OpRemove, true
		case g.Other:
			t.Op, t.OtherValues, t.To = OpChange, true, rawJSON(l.Value)
		case l.Value == nil && !g.Defined:
			continue // absent, as declared
		case l.Value == nil:
			t.Op, t.From = OpRemove, rawJSON(g.Value)
		case !g.Defined:
			t.Op, t.To = OpAdd, rawJSON(l.Value)
		case valueKey(g.Value) == want:
			continue
		default:
			t.Op, t.From, t.To = OpChange, rawJSON(g.Value), rawJSON(l.Value)
		}
		out = append(out, observedTransition{Transition: t, id: transitionID(l, g), leaf: l, group: g})
	}
	return out
}

// twinTransitions lists a resource's transitions, largest first (then by key and value, so
// plans are stable).
func twinTransitions(leaves []Leaf, keys map[string]*KeyObserved) []observedTransition {
	var all []observedTransition
	for _, l := range leaves {
		if k := keys[l.Name()]; k != nil {
			all = append(all, keyTransitions(l, k.Groups)...)
		}
	}
	sort.SliceStable(all, func(i, j int) bool {
		a, b := all[i], all[j]
		if a.Devices != b.Devices {
			return a.Devices > b.Devices
		}
		if a.Key != b.Key {
			return a.Key < b.Key
		}
		return string(a.From) < string(b.From)
	})
	return all
}

// driftedLeaves returns the leaves with at least one transition, in leaf order.
func driftedLeaves(leaves []Leaf, ts []observedTransition) []Leaf {
	has := map[string]bool{}
	for _, t := range ts {
		has[t.Key] = true
	}
	var out []Leaf
	for _, l := range leaves {
		if has[l.Name()] {
			out = append(out, l)
		}
	}
	return out
}
