package reconcile

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/iotplan/iotplan/internal/query"
	"github.com/iotplan/iotplan/internal/state"
)

// Drift checks, for every twin resource the state records, every managed key: how many devices
// of the recorded target no longer hold the value iotplan set, since when, and which. It reads
// the state's records, not the configuration, so it answers "did someone change what iotplan
// applied?" whatever the configuration says now. Per resource one COUNT() of the target, then
// per key:
//
//   - COUNT() of the target AND the key holding iotplan's value (key = v, typed; for a key
//     declared absent NOT IS_DEFINED(key)): drifted = targeted − holding, exactly, whatever
//     the other devices hold;
//   - when some drifted: SELECT COUNT(), MAX(properties.desired.$metadata.<key>.$lastUpdated)
//     over the target AND the key's typed drift term (conditions.go: missing, another value
//     of the same type, any value of another primitive type) — when the key last changed on
//     a drifted device; the hub stamps every desired property with $lastUpdated
//     (https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-device-twins#metadata),
//     tags have no $metadata. Devices the term cannot select (they hold an object or an
//     array: no documented condition compares those, docs/query.md) are the difference of
//     the two counts, reported as such;
//   - SELECT TOP 3 deviceId over the same condition: example devices.
//
// Every query is built with internal/query and checked against the documented dialect; the
// number of hub calls depends on the keys, never on the number of devices. Drift writes
// nothing: the caller records the findings in the state (DriftReport.Record).

// DriftOptions tune Drift. The zero value is usable.
type DriftOptions struct {
	// Hub is the hub's host name, for the report (never a connection string).
	Hub string
	// Now is when the check is made; zero = time.Now().
	Now time.Time
	// SamplesPerKey is how many example device ids to read per drifted key; zero = 3,
	// negative = none.
	SamplesPerKey int
}

// DriftReport is what Drift found.
type DriftReport struct {
	Hub       string
	StateName string
	Observed  time.Time
	Resources []ResourceDrift
	Notes     []string
	HubCalls  map[string]int
	HubWait   *HubWait
}

// ResourceDrift is one recorded twin resource: its recorded target and each managed key.
type ResourceDrift struct {
	Addr            string
	Target          string
	SensitiveTarget bool
	// Sensitive names the keys whose values come from sensitive variables (state.Resource).
	Sensitive []string
	Targeted  int
	Keys      []KeyDrift
}

// KeyDrift is one managed key of a recorded resource.
type KeyDrift struct {
	Key   string          // "desired.floor", "tags.owner"
	Value json.RawMessage // the value iotplan set (null: declared absent)
	// NotChecked says why the key was not checked (a value the hub cannot compare).
	NotChecked string
	// Devices counts the targeted devices that no longer hold Value; Unselectable of them
	// hold an object or an array, which no condition selects: they are not among Samples and
	// LastUpdated.
	Devices      int
	Unselectable int
	// LastUpdated is the latest $lastUpdated of the key among the drifted devices; NoTime
	// says why there is none.
	LastUpdated *time.Time
	NoTime      string
	Samples     []string
}

// Drifted reports whether any key of any resource drifted.
func (r *DriftReport) Drifted() bool {
	for _, rd := range r.Resources {
		for _, k := range rd.Keys {
			if k.Devices > 0 {
				return true
			}
		}
	}
	return false
}

// Record is what the state keeps of the report: the drifted keys (state.NewDriftRecord).
func (r *DriftReport) Record() *state.DriftRecord {
	var keys []state.DriftKey
	for _, rd := range r.Resources {
		for _, k := range rd.Keys {
			if k.Devices > 0 {
				keys = append(keys, state.DriftKey{Addr: rd.Addr, Key: k.Key, Devices: k.Devices, LastUpdated: k.LastUpdated})
			}
		}
	}
	return state.NewDriftRecord(r.Observed, keys)
}

// Aliases of the drift query.
const aliasTime = "t"

// Drift checks every twin resource of prior (see above); a nil prior records none.
func Drift(ctx context.Context, q Querier, prior *state.State, opts DriftOptions) (*DriftReport, error) {
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	if opts.SamplesPerKey == 0 {
		opts.SamplesPerKey = 3
	}
	if prior == nil {
		prior = &state.State{Name: state.DefaultName}
	}
	rep := &DriftReport{Hub: opts.Hub, StateName: prior.Name, Observed: opts.Now.UTC()}
	since := meter(q)
	defer func() { rep.HubCalls, rep.HubWait = since() }()
	if a := prior.Apply; a != nil {
		rep.Notes = append(rep.Notes, fmt.Sprintf("an apply has not finished (id %s, %s since %s): keys are checked against the records of the last apply that finished",
			a.ID, a.Operation, TimeText(a.Started)))
	}
	sr := &statusReader{q: q, rows: map[string][]map[string]any{}}
	for _, r := range prior.Resources {
		if r.Kind != KindTwin {
			continue
		}
		rd, err := driftResource(ctx, sr, r, opts)
		if err != nil {
			return nil, err
		}
		rep.Resources = append(rep.Resources, *rd)
	}
	if len(rep.Resources) == 0 {
		rep.Notes = append(rep.Notes, "the state records no twin resource: there is nothing to check")
	}
	return rep, nil
}

func driftResource(ctx context.Context, sr *statusReader, r state.Resource, opts DriftOptions) (*ResourceDrift, error) {
	parsed, err := query.ParseCondition(r.Target)
	if err != nil {
		return nil, fmt.Errorf("the state's record of %s has a target the hub would not accept: %w", r.Addr, err)
	}
	target := scope(parsed)
	rd := &ResourceDrift{Addr: r.Addr, Target: r.Target, SensitiveTarget: r.SensitiveTarget, Sensitive: r.Sensitive}
	n, err := sr.count(ctx, r.Addr, target)
	if err != nil {
		return nil, err
	}
	if !n.Known() {
		return nil, fmt.Errorf("%s: the recorded target cannot be counted: %s", r.Addr, n.NA)
	}
	rd.Targeted = n.Devices
	names := make([]string, 0, len(r.Keys))
	for k := range r.Keys {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, name := range names {
		l, err := leafOf(name, r.Keys[name])
		if err != nil {
			return nil, fmt.Errorf("the state's record of %s: %w", r.Addr, err)
		}
		kd, err := driftKey(ctx, sr, r.Addr, target, rd.Targeted, l, opts)
		if err != nil {
			return nil, err
		}
		rd.Keys = append(rd.Keys, *kd)
	}
	return rd, nil
}

// keyHoldingTerms are the conditions of a key holding iotplan's value and of not holding it (as
// far as documented conditions can tell: see Drift); ok is false for an array value.
func keyHoldingTerms(l Leaf) (holding, drifted query.Expr, ok bool) {
	holding, ok = convergedTerm(l)
	switch {
	case !ok:
		return nil, nil, false
	case l.Value == nil:
		return holding, query.IsDefined(l.Path()), true
	}
	return holding, typedTerm(l, nil, false, true).expr, true
}

// metaPath is where the hub stamps when a desired property last changed; ok is false for
// tags, which have no $metadata.
func metaPath(l Leaf) (query.Path, bool) {
	if l.Section != SectionDesired {
		return nil, false
	}
	p := append(query.P("properties", "desired", "$metadata"), l.Keys...)
	return append(p, "$lastUpdated"), true
}

// driftKey checks one key: the devices not holding iotplan's value, then, when there are
// some, when it changed and example devices (see Drift).
func driftKey(ctx context.Context, sr *statusReader, addr string, target query.Expr, targeted int, l Leaf, opts DriftOptions) (*KeyDrift, error) {
	kd := &KeyDrift{Key: l.Name(), Value: rawJSON(l.Value)}
	holding, drifted, ok := keyHoldingTerms(l)
	if !ok {
		kd.NotChecked = "the hub cannot compare an array value"
		return kd, nil
	}
	if targeted == 0 {
		return kd, nil
	}
	held, err := sr.count(ctx, addr, query.And(target, holding))
	switch {
	case err != nil:
		return nil, err
	case !held.Known():
		kd.NotChecked = held.NA
		return kd, nil
	}
	if kd.Devices = max(0, targeted-held.Devices); kd.Devices == 0 {
		return kd, nil
	}
	where := query.And(target, drifted)
	selectable, err := driftTime(ctx, sr, addr, where, l, kd)
	if err != nil || selectable == 0 || opts.SamplesPerKey < 0 {
		return kd, err
	}
	if kd.Samples, err = sampleIDs(ctx, sr.q, where, opts.SamplesPerKey); err != nil {
		return nil, fmt.Errorf("%s: reading example devices of %s: %w", addr, kd.Key, err)
	}
	return kd, nil
}

// driftTime counts the devices the drift term selects and reads the key's latest $lastUpdated
// among them, in one query; it returns that count.
func driftTime(ctx context.Context, sr *statusReader, addr string, where query.Expr, l Leaf, kd *KeyDrift) (int, error) {
	b := query.Select(query.Devices).Count(aliasCount)
	meta, hasMeta := metaPath(l)
	if hasMeta {
		b = b.Max(meta, aliasTime)
	} else {
		kd.NoTime = "tags carry no $metadata, so the hub does not say when they changed"
	}
	b = b.Where(where)
	if b.Check() != nil {
		kd.NoTime = "the condition is longer than the hub accepts"
		return 0, nil
	}
	rows, err := sr.query(ctx, addr, b.String())
	if err != nil {
		return 0, err
	}
	n, err := countOf(rows, aliasCount)
	if err != nil {
		return 0, fmt.Errorf("%s: reading %s: %w", addr, kd.Key, err)
	}
	kd.Unselectable = max(0, kd.Devices-n)
	if hasMeta && len(rows) > 0 {
		kd.LastUpdated, kd.NoTime = lastUpdated(rows[0][aliasTime])
	}
	return n, nil
}

// lastUpdated reads a MAX of $lastUpdated: an RFC 3339 time, or undefined when no drifted
// device has the key (a removed key loses its $metadata).
func lastUpdated(v any) (*time.Time, string) {
	s, ok := v.(string)
	if !ok {
		return nil, "no drifted device has the key: a removed key keeps no $lastUpdated"
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return nil, fmt.Sprintf("the hub's $lastUpdated %q is not an RFC 3339 time", s)
	}
	t = t.UTC()
	return &t, ""
}
