package reconcile

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/iotplan/iotplan/internal/query"
)

// Querier runs an IoT Hub query and returns its rows (all pages). *hubclient.Client is one.
type Querier interface {
	Query(ctx context.Context, q string) ([]map[string]any, error)
}

// callCounter is implemented by queriers that count their hub calls (hubclient.Client).
type callCounter interface {
	Calls() map[string]int
}

// Aliases used in the aggregation queries.
const (
	aliasValue = "v"
	aliasCount = "n"
	aliasID    = "deviceId"
)

// Read observes the fleet for cfg with aggregation and projection queries, so the number of
// hub calls depends on the configuration, never on the number of devices:
//
//   - per twin resource: one SELECT COUNT() of the target; per managed key one
//     SELECT <key> AS v, COUNT() AS n … GROUP BY <key>; if anything differs, one COUNT() with
//     the job's own condition (the drifted total) and at most SampleQueriesPerResource
//     SELECT TOP k deviceId … queries for example ids of the largest transitions;
//   - per method resource: one COUNT() and one TOP k of the target.
func Read(ctx context.Context, q Querier, cfg *Config, opts PlanOptions) (*Observed, error) {
	opts = opts.withDefaults()
	if err := checkAddrs(cfg); err != nil {
		return nil, err
	}
	obs := &Observed{Twins: map[string]*TwinObserved{}, Methods: map[string]*MethodObserved{}}
	// Resources often share a target (the tutorial's method reuses the twin's): the same
	// statement is sent once per plan.
	q = &memo{q: q, rows: map[string][]map[string]any{}}
	for _, t := range cfg.Twins {
		o, err := readTwin(ctx, q, t, opts)
		if err != nil {
			return nil, err
		}
		obs.Twins[t.Addr] = o
	}
	for _, m := range cfg.Methods {
		o, err := readMethod(ctx, q, m, opts)
		if err != nil {
			return nil, err
		}
		obs.Methods[m.Addr] = o
	}
	return obs, nil
}

// MakePlan reads the fleet (Read) and diffs it (Diff). When q counts its calls, the plan
// records how many planning used.
func MakePlan(ctx context.Context, q Querier, cfg *Config, opts PlanOptions) (*Plan, error) {
	var before map[string]int
	cc, counting := q.(callCounter)
	if counting {
		before = cc.Calls()
	}
	wr, waits := q.(waitReporter)
	var waitedBefore HubWait
	if waits {
		waitedBefore = waitOf(wr)
	}
	obs, err := Read(ctx, q, cfg, opts)
	if err != nil {
		return nil, err
	}
	p, err := Diff(cfg, obs, opts)
	if err != nil {
		return nil, err
	}
	if counting {
		p.HubCalls = callsSince(cc, before)
	}
	if waits {
		p.HubWait = waitSince(wr, waitedBefore)
	}
	return p, nil
}

func callsSince(cc callCounter, before map[string]int) map[string]int {
	out := map[string]int{}
	for k, n := range cc.Calls() {
		if d := n - before[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}

func count(ctx context.Context, q Querier, addr string, where query.Expr) (int, error) {
	stmt := query.Select(query.Devices).Count(aliasCount).Where(where).String()
	rows, err := q.Query(ctx, stmt)
	if err != nil {
		return 0, fmt.Errorf("%s: counting devices: %w", addr, err)
	}
	n, err := countOf(rows, aliasCount)
	if err != nil {
		return 0, fmt.Errorf("%s: counting devices: %w", addr, err)
	}
	return n, nil
}

func sampleIDs(ctx context.Context, q Querier, addr string, where query.Expr, k int) ([]string, error) {
	stmt := query.Select(query.Devices).Top(k).Project(query.P("deviceId"), aliasID).Where(where).String()
	rows, err := q.Query(ctx, stmt)
	if err != nil {
		return nil, fmt.Errorf("%s: reading example devices: %w", addr, err)
	}
	ids := make([]string, 0, len(rows))
	for _, r := range rows {
		if id, ok := r[aliasID].(string); ok {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	if len(ids) > k {
		ids = ids[:k]
	}
	return ids, nil
}

func readTwin(ctx context.Context, q Querier, t Twin, opts PlanOptions) (*TwinObserved, error) {
	pt, err := prepareTwin(t)
	if err != nil {
		return nil, err
	}
	target := normTarget(t.Target)
	o := &TwinObserved{Groups: map[string][]Group{}, Samples: map[string][]string{}}
	if o.Targeted, err = count(ctx, q, t.Addr, target); err != nil {
		return nil, err
	}
	for _, l := range pt.leaves {
		if o.Targeted == 0 {
			o.Groups[l.Name()] = nil
			continue
		}
		gs, err := groupKey(ctx, q, t.Addr, target, l, o.Targeted, opts)
		if err != nil {
			return nil, err
		}
		o.Groups[l.Name()] = gs
	}
	ts := twinTransitions(pt.leaves, o.Groups)
	if len(ts) == 0 {
		return o, nil
	}
	cond, _ := JobCondition(t.Target, driftedLeaves(pt.leaves, ts))
	if err := query.CheckCondition(cond); err != nil {
		return nil, fmt.Errorf("%s: the job's query condition is not one the hub accepts: %w", t.Addr, err)
	}
	if o.Drifted, err = count(ctx, q, t.Addr, cond); err != nil {
		return nil, err
	}
	sampled := 0
	for _, tr := range ts {
		if sampled >= opts.SampleQueriesPerResource {
			break
		}
		if tr.group.Other {
			continue // no single value to select by
		}
		sampled++
		ids, err := sampleIDs(ctx, q, t.Addr, query.And(target, valueCondition(tr.leaf, tr.group)), opts.SamplesPerTransition)
		if err != nil {
			return nil, err
		}
		o.Samples[tr.id] = ids
	}
	return o, nil
}

// groupKey runs the GROUP BY of one managed key, listing at most opts.MaxGroups values. Devices
// missing the key form the undefined group: a row without the value column; if the hub leaves
// that group out, the devices unaccounted for (targeted minus the rows' sum) are that group.
// When the key has more distinct values than listed, one more COUNT() with the key's drift
// term counts the differing devices, and those not in a listed group become the Other group —
// so a key with a distinct value on every device still costs two calls, not a page per 100.
func groupKey(ctx context.Context, q Querier, addr string, target query.Expr, l Leaf, targeted int, opts PlanOptions) ([]Group, error) {
	p := l.Path()
	sel := query.Select(query.Devices).Project(p, aliasValue).Count(aliasCount).Where(target).GroupBy(p)
	m, _ := q.(*memo)
	var rows []map[string]any
	var err error
	if m == nil || !m.noGroupTop {
		rows, err = q.Query(ctx, query.Select(query.Devices).Top(opts.MaxGroups+1).Project(p, aliasValue).Count(aliasCount).Where(target).GroupBy(p).String())
		if isBadRequest(err) && m != nil {
			// TOP with GROUP BY is not in the hub's documented grammar; a hub that refuses it
			// is asked without TOP (all groups, paged) for the rest of this plan.
			m.noGroupTop = true
		}
	}
	if m != nil && m.noGroupTop {
		rows, err = q.Query(ctx, sel.String())
	}
	if err != nil {
		return nil, fmt.Errorf("%s: reading %s: %w", addr, l.Name(), err)
	}
	truncated := len(rows) > opts.MaxGroups
	if truncated {
		rows = rows[:opts.MaxGroups]
	}
	var groups []Group
	sum, undefined := 0, -1
	for _, r := range rows {
		n, err := intField(r, aliasCount)
		if err != nil {
			return nil, fmt.Errorf("%s: reading %s: %w", addr, l.Name(), err)
		}
		v, defined := r[aliasValue]
		if !defined {
			if undefined >= 0 {
				groups[undefined].Devices += n
				sum += n
				continue
			}
			undefined = len(groups)
		}
		groups = append(groups, Group{Defined: defined, Value: v, Devices: n})
		sum += n
	}
	if !truncated {
		if rest := targeted - sum; rest > 0 {
			if undefined >= 0 {
				groups[undefined].Devices += rest
			} else {
				groups = append(groups, Group{Devices: rest})
			}
		}
		return groups, nil
	}
	// Truncated: the devices that differ, minus those in listed groups that differ.
	other := targeted - sum
	if term, exact := DriftTerm(l); exact {
		differing, err := count(ctx, q, addr, query.And(target, term))
		if err != nil {
			return nil, err
		}
		listed := 0
		for _, t := range keyTransitions(l, groups) {
			listed += t.Devices
		}
		other = differing - listed
	}
	if other > 0 {
		groups = append(groups, Group{Other: true, Devices: other})
	}
	return groups, nil
}

func readMethod(ctx context.Context, q Querier, m Method, opts PlanOptions) (*MethodObserved, error) {
	target := normTarget(m.Target)
	o := &MethodObserved{}
	var err error
	if o.Targeted, err = count(ctx, q, m.Addr, target); err != nil {
		return nil, err
	}
	if o.Targeted > 0 {
		if o.Samples, err = sampleIDs(ctx, q, m.Addr, target, opts.SamplesPerTransition); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// memo answers a repeated statement from the first answer, within one Read, and remembers
// what the hub refused.
type memo struct {
	q    Querier
	rows map[string][]map[string]any
	// noGroupTop: the hub rejected SELECT TOP n … GROUP BY.
	noGroupTop bool
}

// isBadRequest recognises a 400 from the hub without importing hubclient.
func isBadRequest(err error) bool {
	var s interface{ HTTPStatus() int }
	return errors.As(err, &s) && s.HTTPStatus() == 400
}

func (m *memo) Query(ctx context.Context, stmt string) ([]map[string]any, error) {
	if r, ok := m.rows[stmt]; ok {
		return r, nil
	}
	r, err := m.q.Query(ctx, stmt)
	if err == nil {
		m.rows[stmt] = r
	}
	return r, err
}
