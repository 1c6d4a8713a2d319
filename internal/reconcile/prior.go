package reconcile

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/query"
	"github.com/iotplan/iotplan/internal/state"
	"github.com/iotplan/iotplan/schema"
)

// Removals. The state on the hub records, per twin resource, the target and the managed keys
// with the values iotplan set. When a resource or one of its keys leaves the configuration
// (or everything does: destroy), the plan removes the key from the devices that still hold
// the value iotplan set — selected by the recorded target AND key = value, so a value someone
// else wrote since is left alone — with one job per key, patching the key to null. A value no
// condition can compare (an array or object) is not removed: the plan says so. A resource
// declared lifecycle { keep_on_removal = true } is forgotten without touching the devices.

// removal is one key leaving management.
type removal struct {
	addr   string
	target query.Expr // the recorded target, scoped
	leaf   Leaf       // the key and the value iotplan had set
	keep   bool       // keep_on_removal: forget only
}

// RemovalObserved is what Read counted for one key leaving management.
type RemovalObserved struct {
	Key       string          `json:"key"`
	Value     json.RawMessage `json:"value"`
	Condition string          `json:"condition,omitempty"` // "" when not removable
	Devices   int             `json:"devices"`
	Kept      bool            `json:"kept,omitempty"`
	Reason    string          `json:"reason,omitempty"` // why it is not removed
}

// removals lists the keys the prior state manages that cfg no longer does (all of them for a
// destroy), in state order.
func removals(cfg *Config, opts PlanOptions) ([]removal, error) {
	if opts.Prior == nil {
		return nil, nil
	}
	declared := map[string]map[string]bool{}
	if !opts.Destroy {
		for _, t := range cfg.Twins {
			pt, err := prepareTwin(t)
			if err != nil {
				return nil, err
			}
			keys := map[string]bool{}
			for _, l := range pt.leaves {
				keys[l.Name()] = true
			}
			declared[t.Addr] = keys
		}
	}
	var out []removal
	for _, r := range opts.Prior.Resources {
		if r.Kind != KindTwin || !schema.SelectsAny(opts.Targets, r.Addr) {
			continue
		}
		rs, err := resourceRemovals(r, declared[r.Addr])
		if err != nil {
			return nil, err
		}
		out = append(out, rs...)
	}
	return out, nil
}

// resourceRemovals lists a recorded resource's keys that are not in keep.
func resourceRemovals(r state.Resource, keep map[string]bool) ([]removal, error) {
	target, err := query.ParseCondition(r.Target)
	if err != nil {
		return nil, fmt.Errorf("the state's record of %s has a target the hub would not accept: %w", r.Addr, err)
	}
	names := make([]string, 0, len(r.Keys))
	for k := range r.Keys {
		names = append(names, k)
	}
	sort.Strings(names)
	var out []removal
	for _, name := range names {
		if keep[name] {
			continue
		}
		l, err := leafOf(name, r.Keys[name])
		if err != nil {
			return nil, fmt.Errorf("the state's record of %s: %w", r.Addr, err)
		}
		out = append(out, removal{addr: r.Addr, target: scope(target), leaf: l, keep: r.KeepOnRemoval})
	}
	return out, nil
}

// leafOf turns a recorded key ("desired.location.room") and value back into a Leaf. Twin keys
// never contain '.', so the split is exact.
func leafOf(name string, raw json.RawMessage) (Leaf, error) {
	sec, rest, ok := strings.Cut(name, ".")
	if !ok || rest == "" || (sec != string(SectionDesired) && sec != string(SectionTags)) {
		return Leaf{}, fmt.Errorf("key %q is not desired.<key> or tags.<key>", name)
	}
	v, err := Canonical(raw)
	if err != nil {
		return Leaf{}, fmt.Errorf("key %q: %w", name, err)
	}
	return Leaf{Section: Section(sec), Keys: strings.Split(rest, "."), Value: v}, nil
}

// removalCondition selects the devices that still hold the value iotplan set; ok is false for
// values no condition compares, and for keys declared absent (nothing to remove).
func removalCondition(rm removal) (query.Expr, string) {
	switch v := rm.leaf.Value.(type) {
	case nil:
		return nil, "it was declared absent: nothing to remove"
	case string, float64, bool:
		return query.And(rm.target, query.Eq(rm.leaf.Path(), v)), ""
	}
	return nil, "the hub cannot compare the array or object iotplan set: remove it yourself, or keep it with lifecycle { keep_on_removal = true }"
}

// removalJob removes one key from the devices a counted removal selects.
func removalJob(o RemovalObserved) hubapi.JobRequest {
	l, _ := leafOf(o.Key, o.Value)
	l.Value = nil
	desired, tags := patchOf([]Leaf{l}, []string{l.Name()})
	patch := &hubapi.TwinPatch{ETag: "*"}
	if len(tags) > 0 {
		patch.Tags = tags
	}
	if len(desired) > 0 {
		patch.Properties = &hubapi.TwinProperties{Desired: desired}
	}
	return hubapi.JobRequest{Type: hubapi.JobTypeUpdateTwin, UpdateTwin: patch, QueryCondition: o.Condition}
}

// diffRemovals turns the counted removals into jobs: on the resource of the same address when
// the configuration still has it (a key left it), else on a resource of their own (Action
// Remove), in the prior state's order.
func diffRemovals(obs *Observed, p *Plan, opts PlanOptions) error {
	if opts.Prior == nil {
		return nil
	}
	for _, r := range opts.Prior.Resources {
		rs := obs.Removals[r.Addr]
		if len(rs) == 0 {
			continue
		}
		i := resourceIndex(p, r.Addr)
		removing := i < 0 // the whole resource left the configuration
		if removing {
			p.Resources = append(p.Resources, ResourceChange{Addr: r.Addr, Kind: KindTwin, Action: NoOp, Target: r.Target})
			i = len(p.Resources) - 1
		}
		if err := addRemovals(&p.Resources[i], rs, removing, p, opts); err != nil {
			return err
		}
	}
	return nil
}

// addRemovals adds one key-removal job per counted key to rc; removing: rc is a resource that
// left the configuration (Action Remove), else one that lost keys (Action Update).
func addRemovals(rc *ResourceChange, rs []RemovalObserved, removing bool, p *Plan, opts PlanOptions) error {
	for _, o := range rs {
		switch {
		case o.Kept:
			rc.Notes = append(rc.Notes, o.Key+" is no longer managed and stays on the devices (lifecycle keep_on_removal)")
			continue
		case o.Reason != "":
			rc.Notes = append(rc.Notes, o.Key+" is no longer managed and is not removed: "+o.Reason)
			continue
		case o.Devices == 0:
			rc.Notes = append(rc.Notes, o.Key+" is no longer managed; no device holds the value iotplan set")
			continue
		}
		rc.Transitions = append(rc.Transitions, Transition{Key: o.Key, Op: OpRemove, From: o.Value, Devices: o.Devices})
		pj := PlannedJob{Step: StepRemove, Devices: o.Devices, Keys: []string{o.Key}, Request: removalJob(o)}
		if err := addJob(rc, pj, rc.Addr, 0, 0, p, opts); err != nil {
			return err
		}
		rc.Devices += o.Devices // at most: a device may also be in the resource's other jobs
	}
	switch {
	case len(rc.Jobs) == 0:
	case removing:
		rc.Action = Remove
	case rc.Action == NoOp:
		rc.Action = Update
	}
	return nil
}

func resourceIndex(p *Plan, addr string) int {
	for i := range p.Resources {
		if p.Resources[i].Addr == addr {
			return i
		}
	}
	return -1
}

// records are what the state holds once the plan is applied: one record per resource of the
// configuration (none after a destroy).
func records(cfg *Config, p *Plan, opts PlanOptions) []state.Resource {
	out := []state.Resource{}
	for _, t := range cfg.Twins {
		pt, err := prepareTwin(t)
		if err != nil {
			continue
		}
		r := state.Resource{Addr: t.Addr, Kind: KindTwin, Target: query.Format(normTarget(t.Target)),
			Keys: map[string]json.RawMessage{}, KeepOnRemoval: t.KeepOnRemoval,
			Sensitive: t.Sensitive, SensitiveTarget: t.TargetSensitive}
		for _, l := range pt.leaves {
			r.Keys[l.Name()] = rawJSON(l.Value)
		}
		r.ConfigHash = configHash(r)
		out = append(out, r)
	}
	for _, m := range cfg.Methods {
		r := state.Resource{Addr: m.Addr, Kind: KindMethod, Target: query.Format(normTarget(m.Target)), Method: m.Method,
			SensitiveTarget: m.TargetSensitive}
		if m.TriggersSet {
			r.Triggers, _ = triggersHash(m.Triggers)
			r.RunTag = runTag(opts.StateName, m.Addr)
		}
		r.ConfigHash = configHash(r)
		out = append(out, r)
	}
	// -target: the records of the resources it does not select stay as they are.
	if opts.Prior != nil && len(opts.Targets) > 0 {
		for _, r := range opts.Prior.Resources {
			if !schema.SelectsAny(opts.Targets, r.Addr) {
				out = append(out, r)
			}
		}
	}
	return out
}

// configHash identifies what a record manages (target, keys and values, triggers).
func configHash(r state.Resource) string {
	b, _ := json.Marshal(r)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:16]
}

// kept are the prior records of the resources the plan refuses: applying it leaves them as
// they were.
func kept(p *Plan, opts PlanOptions) []state.Resource {
	if opts.Prior == nil {
		return nil
	}
	var out []state.Resource
	for _, r := range p.Resources {
		if prev := opts.Prior.Resource(r.Addr); r.Refused != "" && prev != nil {
			out = append(out, *prev)
		}
	}
	return out
}
