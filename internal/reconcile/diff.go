package reconcile

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/query"
)

// Group is one row of a key's GROUP BY: the devices whose key has Value (Defined) or is missing
// (!Defined: the "undefined" group). When a key has more distinct values than Read lists
// (MaxGroups), Other groups the remaining devices that differ from the desired value.
type Group struct {
	Defined bool `json:"defined"`
	Value   any  `json:"value,omitempty"`
	Devices int  `json:"devices"`
	Other   bool `json:"other,omitempty"`
}

// Observed is what reading the fleet found, per resource address. Read fills it; Diff turns it
// into a Plan without I/O.
type Observed struct {
	Twins   map[string]*TwinObserved   `json:"twins"`
	Methods map[string]*MethodObserved `json:"methods"`
}

// TwinObserved is what the hub reported for one twin resource.
type TwinObserved struct {
	Targeted int                `json:"targeted"`
	Groups   map[string][]Group `json:"groups"`  // by Leaf.Name()
	Drifted  int                `json:"drifted"` // devices the job condition selects
	// Samples holds example device ids by transition identity (see transitionID).
	Samples map[string][]string `json:"samples,omitempty"`
}

// MethodObserved is what the hub reported for one method resource.
type MethodObserved struct {
	Targeted int      `json:"targeted"`
	Samples  []string `json:"samples,omitempty"`
}

// preparedTwin is a Twin with canonical values and its managed leaves.
type preparedTwin struct {
	Twin
	desired, tags map[string]any
	leaves        []Leaf
}

func prepareTwin(t Twin) (*preparedTwin, error) {
	p := &preparedTwin{Twin: t}
	var err error
	if p.desired, err = canonicalObject(t.Desired); err != nil {
		return nil, fmt.Errorf("%s: desired: %w", t.Addr, err)
	}
	if p.tags, err = canonicalObject(t.Tags); err != nil {
		return nil, fmt.Errorf("%s: tags: %w", t.Addr, err)
	}
	p.leaves = Leaves(p.desired, p.tags)
	return p, nil
}

func canonicalObject(m map[string]any) (map[string]any, error) {
	if m == nil {
		return nil, nil
	}
	c, err := Canonical(m)
	if err != nil {
		return nil, err
	}
	return c.(map[string]any), nil
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
func twinTransitions(leaves []Leaf, groups map[string][]Group) []observedTransition {
	var all []observedTransition
	for _, l := range leaves {
		all = append(all, keyTransitions(l, groups[l.Name()])...)
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

// DriftTerm is the condition selecting the devices where leaf l differs from its desired value,
// under the hub's semantics: a comparison with a missing key, or between different types, is
// undefined and excluded even under NOT — so the type test comes first and is ORed:
//
//	string "43"  NOT IS_STRING(p) OR p != '43'
//	number 3     NOT IS_NUMBER(p) OR p != 3
//	bool true    NOT IS_BOOL(p) OR p != true
//	null         IS_DEFINED(p)   (declared absent, present)
//
// A missing key makes IS_STRING(p) false, so NOT IS_STRING(p) is true and the device is
// selected; 43 where "43" is wanted likewise. For an array the hub has no comparison
// (comparisons are between primitives only), so DriftTerm returns exact=false and nil: the
// caller must select the whole target.
func DriftTerm(l Leaf) (cond query.Expr, exact bool) {
	p := l.Path()
	switch v := l.Value.(type) {
	case nil:
		return query.IsDefined(p), true
	case string:
		return query.Or(query.Not(query.IsString(p)), query.Ne(p, v)), true
	case float64:
		return query.Or(query.Not(query.IsNumber(p)), query.Ne(p, v)), true
	case bool:
		return query.Or(query.Not(query.IsBool(p)), query.Ne(p, v)), true
	}
	return nil, false
}

// JobCondition is the queryCondition of a twin resource's update job: its target AND any
// drifted key differing. Only keys that showed drift are included (the job does exactly what
// the plan showed); when one of them is an array, the hub cannot compare it and the job
// selects the whole target (wholeTarget reports it).
func JobCondition(target query.Expr, drifted []Leaf) (cond query.Expr, wholeTarget bool) {
	terms := make([]query.Expr, 0, len(drifted))
	for _, l := range drifted {
		t, exact := DriftTerm(l)
		if !exact {
			return normTarget(target), true
		}
		terms = append(terms, t)
	}
	return query.And(normTarget(target), query.Or(terms...)), false
}

func normTarget(t query.Expr) query.Expr {
	if t == nil {
		return query.All()
	}
	return t
}

// valueCondition selects devices whose key has the group's observed value; for objects and
// arrays (not comparable by the hub) it selects any value of that type.
func valueCondition(l Leaf, g Group) query.Expr {
	p := l.Path()
	if !g.Defined {
		return query.Not(query.IsDefined(p))
	}
	switch v := g.Value.(type) {
	case nil:
		return query.IsNull(p)
	case string, float64, bool:
		return query.Eq(p, v)
	case []any:
		return query.IsArray(p)
	}
	return query.IsObject(p)
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

// Diff turns what Read observed into a plan. It does no I/O: the same inputs give the same plan.
func Diff(cfg *Config, obs *Observed, opts PlanOptions) (*Plan, error) {
	opts = opts.withDefaults()
	p := &Plan{FormatVersion: FormatVersion, CreatedAt: opts.Now, Hub: opts.Hub, Resources: []ResourceChange{}}
	if err := checkAddrs(cfg); err != nil {
		return nil, err
	}
	for _, t := range cfg.Twins {
		o := obs.Twins[t.Addr]
		if o == nil {
			return nil, fmt.Errorf("%s: nothing was observed for it", t.Addr)
		}
		rc, err := diffTwin(t, o, p, opts)
		if err != nil {
			return nil, err
		}
		p.Resources = append(p.Resources, rc)
	}
	for _, m := range cfg.Methods {
		o := obs.Methods[m.Addr]
		if o == nil {
			return nil, fmt.Errorf("%s: nothing was observed for it", m.Addr)
		}
		rc, err := diffMethod(m, o, p, opts)
		if err != nil {
			return nil, err
		}
		p.Resources = append(p.Resources, rc)
	}
	return p, nil
}

func checkAddrs(cfg *Config) error {
	seen := map[string]bool{}
	check := func(a string) error {
		if a == "" {
			return errors.New("a resource has no address")
		}
		if seen[a] {
			return fmt.Errorf("%s is declared twice", a)
		}
		seen[a] = true
		return nil
	}
	for _, t := range cfg.Twins {
		if err := check(t.Addr); err != nil {
			return err
		}
	}
	for _, m := range cfg.Methods {
		if err := check(m.Addr); err != nil {
			return err
		}
	}
	return nil
}

func diffTwin(t Twin, o *TwinObserved, p *Plan, opts PlanOptions) (ResourceChange, error) {
	pt, err := prepareTwin(t)
	if err != nil {
		return ResourceChange{}, err
	}
	rc := ResourceChange{
		Addr: t.Addr, Kind: KindTwin, Action: NoOp,
		Target: query.Format(normTarget(t.Target)), TargetedDevices: o.Targeted,
		SensitiveKeys: t.Sensitive, SensitiveTarget: t.TargetSensitive,
	}
	if len(pt.leaves) == 0 {
		rc.Notes = append(rc.Notes, "declares no desired properties or tags: nothing to manage")
		return rc, nil
	}
	ts := twinTransitions(pt.leaves, o.Groups)
	if len(ts) == 0 {
		return rc, nil
	}
	for _, tr := range ts {
		tr.Transition.SampleDeviceIDs = o.Samples[tr.id]
		rc.Transitions = append(rc.Transitions, tr.Transition)
	}
	cond, whole := JobCondition(t.Target, driftedLeaves(pt.leaves, ts))
	if err := query.CheckCondition(cond); err != nil {
		return ResourceChange{}, fmt.Errorf("%s: the job's query condition is not one the hub accepts: %w", t.Addr, err)
	}
	rc.Devices = o.Drifted
	if whole {
		rc.Notes = append(rc.Notes, "an array-valued key differs: the hub cannot compare arrays, so the job rewrites every targeted device")
	}
	if rc.Devices == 0 {
		// The groups showed drift but the condition selected nothing: the fleet changed
		// between the reads (Azure's queries are eventually consistent). Nothing to schedule.
		rc.Notes = append(rc.Notes, "drift was seen but no device matched the update condition when counted; run plan again")
		return rc, nil
	}
	patch := &hubapi.TwinPatch{ETag: "*"}
	if len(pt.tags) > 0 {
		patch.Tags = pt.tags
	}
	if len(pt.desired) > 0 {
		patch.Properties = &hubapi.TwinProperties{Desired: pt.desired}
	}
	rc.Action = Update
	rc.Job = &hubapi.JobRequest{
		Type:                      hubapi.JobTypeUpdateTwin,
		UpdateTwin:                patch,
		QueryCondition:            query.Format(cond),
		MaxExecutionTimeInSeconds: seconds(t.MaxExecution, opts.DefaultMaxExecution),
	}
	if !t.StartTime.IsZero() {
		st := t.StartTime.UTC()
		rc.Job.StartTime = &st
	}
	rc.Job.JobID = jobID(t.Addr, p, rc.Job)
	return rc, nil
}

func diffMethod(m Method, o *MethodObserved, p *Plan, opts PlanOptions) (ResourceChange, error) {
	target := normTarget(m.Target)
	rc := ResourceChange{
		Addr: m.Addr, Kind: KindMethod, Action: NoOp,
		Target: query.Format(target), TargetedDevices: o.Targeted, SampleDeviceIDs: o.Samples,
		SensitiveTarget: m.TargetSensitive, SensitivePayload: m.PayloadSensitive,
	}
	if m.Method == "" {
		return rc, fmt.Errorf("%s: no method name", m.Addr)
	}
	if o.Targeted == 0 {
		rc.Notes = append(rc.Notes, "the target selects no device: nothing to invoke")
		return rc, nil
	}
	payload, err := Canonical(m.Payload)
	if err != nil {
		return rc, fmt.Errorf("%s: payload: %w", m.Addr, err)
	}
	rt := m.ResponseTimeout
	if rt <= 0 {
		rt = defaultResponseTimeout
	}
	rc.Action, rc.Devices = Invoke, o.Targeted
	rc.Notes = append(rc.Notes, "methods run on every apply: iotplan does not record earlier invocations")
	rc.Job = &hubapi.JobRequest{
		Type: hubapi.JobTypeDeviceMethod,
		CloudToDeviceMethod: &hubapi.CloudToDeviceMethod{
			MethodName:               m.Method,
			Payload:                  rawJSON(payload),
			ResponseTimeoutInSeconds: int(seconds(rt, rt)),
			ConnectTimeoutInSeconds:  int(seconds(m.ConnectTimeout, 0)),
		},
		QueryCondition:            rc.Target,
		MaxExecutionTimeInSeconds: seconds(m.MaxExecution, opts.DefaultMaxExecution),
	}
	if !m.StartTime.IsZero() {
		st := m.StartTime.UTC()
		rc.Job.StartTime = &st
	}
	rc.Job.JobID = jobID(m.Addr, p, rc.Job)
	return rc, nil
}

// seconds rounds d up to whole seconds; def when d is zero or negative.
func seconds(d, def time.Duration) int64 {
	if d <= 0 {
		d = def
	}
	return int64((d + time.Second - 1) / time.Second)
}

// jobID derives a job id from the resource address and the plan: "iotplan-<name>-<8 hex>", at
// most 64 characters of [A-Za-z0-9-]. The hex is a hash of the address, the plan's creation
// time and hub, and the job itself, so a saved plan applied a second time collides with its
// first run (the hub answers JobAlreadyExists) instead of silently running again.
func jobID(addr string, p *Plan, j *hubapi.JobRequest) string {
	h := sha256.New()
	body, _ := json.Marshal(j)
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s", addr, p.CreatedAt.Format(time.RFC3339Nano), p.Hub, body)
	sum := hex.EncodeToString(h.Sum(nil))[:8]

	name := addr
	if _, rest, ok := strings.Cut(addr, "."); ok {
		name = rest
	}
	var b strings.Builder
	dash := false
	for _, r := range name {
		ok := r < 128 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
		if ok {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	clean := strings.TrimRight(b.String(), "-")
	const maxName = 64 - len("iotplan-") - 1 - 8
	if len(clean) > maxName {
		clean = strings.TrimRight(clean[:maxName], "-")
	}
	if clean == "" {
		return "iotplan-" + sum
	}
	return "iotplan-" + clean + "-" + sum
}

// countOf reads the single COUNT() row of an aggregate query.
func countOf(rows []map[string]any, alias string) (int, error) {
	if len(rows) == 0 {
		return 0, nil
	}
	return intField(rows[0], alias)
}

func intField(row map[string]any, alias string) (int, error) {
	switch n := row[alias].(type) {
	case float64:
		if n < 0 || n != float64(int(n)) {
			return 0, fmt.Errorf("count %v is not a whole number", n)
		}
		return int(n), nil
	case json.Number:
		return strconv.Atoi(string(n))
	}
	return 0, fmt.Errorf("the hub's answer has no numeric %q", alias)
}
