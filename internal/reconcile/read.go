package reconcile

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"

	"github.com/iotplan/iotplan/internal/query"
)

// Querier runs an IoT Hub query. *hubclient.Client is one.
type Querier interface {
	// QueryRows returns the query's rows, at most max of them (max <= 0: every row, all
	// pages), and whether the hub has more rows than it returned.
	QueryRows(ctx context.Context, q string, max int) (rows []map[string]any, more bool, err error)
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

// Read observes the fleet for cfg with aggregation and projection queries in IoT Hub's
// documented dialect, so the number of hub calls depends on the configuration, never on the
// number of devices. It records every count together with the exact condition it counted;
// Diff builds the plan's jobs from those conditions and nothing else.
//
// Per twin resource, first whether it has converged: the first key's SELECT <key> AS v,
// COUNT() AS n … GROUP BY <key> (one page of groups; its rows add up to the targeted devices),
// which answers a one-key resource alone; for several keys also SELECT COUNT() of the target
// AND every key equal to its desired value. Only when it has not: the GROUP BY of every other
// key (and a COUNT of a key's converged devices when its groups span more than one page), then
// one COUNT per update job with the job's own condition. Per method resource: one COUNT of the
// target, answered without a query when a twin resource's groups already counted it; for a
// run-once method also the COUNT of its mark condition. Then, with a prior state, one COUNT
// per key leaving management (prior.go); one COUNT per pair of resources that set a key to
// different values (conflicts.go); the hub's ADM configurations (one call, when q lists
// them); one COUNT of every update job's condition ORed (the distinct devices a plan
// changes). Example device ids (SELECT TOP k deviceId) come last, largest transitions first,
// within PlanOptions' sample budget. Every query but the examples is recorded with its answer
// (Observed.Checks) for stale-plan checks.
func Read(ctx context.Context, q Querier, cfg *Config, opts PlanOptions) (*Observed, error) {
	opts = opts.withDefaults()
	if err := checkAddrs(cfg); err != nil {
		return nil, err
	}
	if err := checkTargets(cfg, opts); err != nil {
		return nil, err
	}
	live := live(cfg, opts)
	obs := &Observed{Twins: map[string]*TwinObserved{}, Methods: map[string]*MethodObserved{}, Removals: map[string][]RemovalObserved{}}
	// Resources often share a target (the tutorial's method reuses the twin's): the same
	// statement is sent once per plan.
	m := &memo{q: q, rows: map[string]memoRows{}, record: true}
	if err := readResources(ctx, m, live, obs, opts); err != nil {
		return nil, err
	}
	if err := readRollouts(ctx, m, live, obs, opts); err != nil {
		return nil, err
	}
	if err := readRemovals(ctx, m, cfg, obs, opts); err != nil {
		return nil, err
	}
	m.record = false
	var err error
	if obs.Conflicts, err = readConflicts(ctx, m, live); err != nil {
		return nil, err
	}
	obs.Notes = append(obs.Notes, readADM(ctx, q, live)...)
	if obs.Distinct, err = readDistinct(ctx, m, obs); err != nil {
		return nil, err
	}
	obs.Checks = m.checks
	readSamples(ctx, m, live, obs, opts)
	return obs, nil
}

func readResources(ctx context.Context, m *memo, cfg *Config, obs *Observed, opts PlanOptions) error {
	for _, t := range cfg.Twins {
		m.addr = t.Addr
		o, err := readTwin(ctx, m, t, opts)
		if err != nil {
			return err
		}
		obs.Twins[t.Addr] = o
	}
	for _, mt := range cfg.Methods {
		m.addr = mt.Addr
		o, err := readMethod(ctx, m, mt, opts)
		if err != nil {
			return err
		}
		obs.Methods[mt.Addr] = o
	}
	return nil
}

// readRemovals counts, per key leaving management, the devices that still hold the value
// iotplan set (prior.go).
func readRemovals(ctx context.Context, m *memo, cfg *Config, obs *Observed, opts PlanOptions) error {
	rms, err := removals(cfg, opts)
	if err != nil {
		return err
	}
	for _, rm := range rms {
		m.addr = rm.addr
		o := RemovalObserved{Key: rm.leaf.Name(), Value: rawJSON(rm.leaf.Value), Kept: rm.keep}
		if !rm.keep {
			cond, reason := removalCondition(rm)
			o.Reason = reason
			if cond != nil {
				o.Condition = query.Format(cond)
				if o.Devices, err = count(ctx, m, rm.addr, cond); err != nil {
					return err
				}
			}
		}
		obs.Removals[rm.addr] = append(obs.Removals[rm.addr], o)
	}
	return nil
}

// readADM lists the hub's ADM configurations when q can, and notes the keys they also manage;
// a failure costs the notes only.
func readADM(ctx context.Context, q Querier, cfg *Config) []string {
	cl, ok := q.(ConfigurationLister)
	if !ok || len(cfg.Twins) == 0 {
		return nil
	}
	configs, err := cl.ListConfigurations(ctx)
	if err != nil {
		return []string{"the hub's ADM configurations could not be read, so keys they also manage are not reported: " + err.Error()}
	}
	return admNotes(cfg, configs)
}

// readDistinct counts the devices the plan's twin updates and removals touch, when two or more
// conditions could count a device twice; -1 when not counted (the ORed condition would be
// longer than the hub takes).
func readDistinct(ctx context.Context, q Querier, obs *Observed) (int, error) {
	var texts []string
	add := func(cond string) {
		if cond != "" {
			texts = append(texts, cond)
		}
	}
	for _, o := range obs.Twins {
		for _, j := range o.Jobs {
			add(j.Condition)
		}
	}
	for _, rs := range obs.Removals {
		for _, r := range rs {
			add(r.Condition)
		}
	}
	if len(texts) < 2 {
		return -1, nil
	}
	sort.Strings(texts) // the same fleet gives the same statement, whatever the map order
	conds := make([]query.Expr, len(texts))
	for i, t := range texts {
		conds[i] = mustCondition(t)
	}
	or := query.Or(conds...)
	if query.CheckCondition(or) != nil {
		return -1, nil
	}
	return count(ctx, q, "plan", or)
}

// readMethod counts a method's targeted devices, and for a run-once method the devices its
// mark step selects (those that have not run it with these triggers).
func readMethod(ctx context.Context, q Querier, m Method, opts PlanOptions) (*MethodObserved, error) {
	o := &MethodObserved{}
	var err error
	if o.Targeted, err = count(ctx, q, m.Addr, scope(m.Target)); err != nil || !m.TriggersSet || o.Targeted == 0 {
		return o, err
	}
	hash, err := triggersHash(m.Triggers)
	if err != nil {
		return nil, fmt.Errorf("%s: triggers: %w", m.Addr, err)
	}
	cond := markCondition(scope(m.Target), runTag(opts.StateName, m.Addr), hash)
	o.MarkCondition = query.Format(cond)
	if o.Pending, err = count(ctx, q, m.Addr, cond); err != nil {
		return nil, err
	}
	return o, nil
}

func count(ctx context.Context, q Querier, addr string, where query.Expr) (int, error) {
	stmt := countStatement(where)
	rows, _, err := q.QueryRows(ctx, stmt, 0)
	if err != nil {
		return 0, fmt.Errorf("%s: counting devices: %w", addr, err)
	}
	n, err := countOf(rows, aliasCount)
	if err != nil {
		return 0, fmt.Errorf("%s: counting devices: %w", addr, err)
	}
	return n, nil
}

func readTwin(ctx context.Context, q Querier, t Twin, opts PlanOptions) (*TwinObserved, error) {
	pt, err := prepareTwin(t)
	if err != nil {
		return nil, err
	}
	target := scope(t.Target)
	o := &TwinObserved{Keys: map[string]*KeyObserved{}, Converged: -1}
	if len(pt.leaves) == 0 {
		return o, nil
	}
	if err := probeTwin(ctx, q, t.Addr, target, pt.leaves, o, opts); err != nil {
		return nil, err
	}
	if o.Targeted == 0 || o.Converged == o.Targeted {
		return o, nil
	}
	for _, l := range pt.leaves {
		if o.Keys[l.Name()] != nil {
			continue
		}
		k, err := readKey(ctx, q, t.Addr, target, l, o.Targeted, opts)
		if err != nil {
			return nil, err
		}
		o.Keys[l.Name()] = k
	}
	ts := twinTransitions(pt.leaves, o.Keys)
	if len(ts) == 0 {
		return o, nil
	}
	return o, countJobs(ctx, q, t.Addr, target, driftedLeaves(pt.leaves, ts), o)
}

// probeTwin finds out whether a twin resource has converged with as few queries as the
// documented dialect allows (see Read). The first key's GROUP BY comes first: when its groups
// fit one page they answer everything for a one-key resource, and give the targeted count for
// free otherwise; then, for several keys, one COUNT of the devices where all are equal.
func probeTwin(ctx context.Context, q Querier, addr string, target query.Expr, leaves []Leaf, o *TwinObserved, opts PlanOptions) error {
	conv, comparable := convergedCondition(target, leaves)
	k, rows, err := groupRows(ctx, q, addr, target, leaves[0], opts)
	if err != nil {
		return err
	}
	if k.Complete {
		o.Targeted = rows
		o.Keys[leaves[0].Name()] = k
	} else if o.Targeted, err = count(ctx, q, addr, target); err != nil {
		return err
	}
	switch {
	case o.Targeted == 0 || !comparable:
	case len(leaves) == 1 && k.Complete:
		o.Converged = groupDevices(leaves[0], k.Groups)
	default:
		o.Converged, err = count(ctx, q, addr, conv)
	}
	return err
}

// groupDevices is the number of devices in the key's group that holds its desired value (for
// a key declared null: the missing group).
func groupDevices(l Leaf, groups []Group) int {
	want := valueKey(l.Value)
	n := 0
	for _, g := range groups {
		switch {
		case g.Other:
		case l.Value == nil && !g.Defined:
			n += g.Devices
		case l.Value != nil && g.Defined && valueKey(g.Value) == want:
			n += g.Devices
		}
	}
	return n
}

// groupRows runs the GROUP BY of one managed key and reads at most opts.MaxGroups groups (one
// page of 100 by default: TOP with GROUP BY is not documented, so groups are paged instead).
// Devices missing the key form the undefined group: a row without the value column. It
// returns the groups, Complete when the hub had no more, and the devices the rows count.
func groupRows(ctx context.Context, q Querier, addr string, target query.Expr, l Leaf, opts PlanOptions) (*KeyObserved, int, error) {
	p := l.Path()
	stmt := query.Select(query.Devices).Project(p, aliasValue).Count(aliasCount).Where(target).GroupBy(p).String()
	rows, more, err := q.QueryRows(ctx, stmt, opts.MaxGroups)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: reading %s: %w", addr, l.Name(), err)
	}
	k := &KeyObserved{Complete: !more}
	sum, undefined := 0, -1
	for _, r := range rows {
		n, err := intField(r, aliasCount)
		if err != nil {
			return nil, 0, fmt.Errorf("%s: reading %s: %w", addr, l.Name(), err)
		}
		v, defined := r[aliasValue]
		sum += n
		if !defined && undefined >= 0 {
			k.Groups[undefined].Devices += n
			continue
		}
		if !defined {
			undefined = len(k.Groups)
		}
		k.Groups = append(k.Groups, Group{Defined: defined, Value: v, Devices: n})
	}
	if m, ok := q.(*memo); ok && k.Complete {
		m.counted(target, sum) // every device of the target is in exactly one group
	}
	return k, sum, nil
}

// readKey reads one key's groups; when they span more than one page, the devices in groups
// not read that differ from the desired value become the Other group: targeted, minus the
// groups read, minus the converged devices not among them (one more COUNT).
func readKey(ctx context.Context, q Querier, addr string, target query.Expr, l Leaf, targeted int, opts PlanOptions) (*KeyObserved, error) {
	k, sum, err := groupRows(ctx, q, addr, target, l, opts)
	if err != nil || k.Complete {
		return k, err
	}
	rest := targeted - sum
	if groupDevices(l, k.Groups) == 0 {
		if term, ok := convergedTerm(l); ok {
			conv, err := count(ctx, q, addr, query.And(target, term))
			if err != nil {
				return nil, err
			}
			rest -= conv
		}
	}
	if rest > 0 {
		k.Groups = append(k.Groups, Group{Other: true, Devices: rest})
	}
	return k, nil
}

// countJobs chooses the update jobs' conditions for the drifted keys (see planJobs) and
// counts the devices each selects, recording condition and count together.
func countJobs(ctx context.Context, q Querier, addr string, target query.Expr, drifted []Leaf, o *TwinObserved) error {
	specs := planJobs(target, drifted, o.Keys)
	for _, s := range specs {
		j := JobObserved{Condition: query.Format(s.cond), WholeTarget: s.whole, Uncertain: s.uncertain, Forms: s.forms, Reason: s.reason}
		for _, l := range s.leaves {
			j.Keys = append(j.Keys, l.Name())
		}
		if s.whole {
			j.Devices = o.Targeted // the target's own COUNT, already observed
		} else {
			n, err := count(ctx, q, addr, s.cond)
			if err != nil {
				return err
			}
			j.Devices = n
		}
		o.Jobs = append(o.Jobs, j)
	}
	return nil
}

// readSamples fetches example device ids, largest transitions first across the plan, at most
// opts.SampleQueriesPerResource per resource and opts.SampleBudget in all. A query that fails
// costs its examples only: the plan says so and goes on.
func readSamples(ctx context.Context, q *memo, cfg *Config, obs *Observed, opts PlanOptions) {
	type want struct {
		addr, id string
		devices  int
		where    query.Expr
		method   *MethodObserved
		twin     *TwinObserved
	}
	var wants []want
	perResource := map[string]int{}
	add := func(w want) {
		if perResource[w.addr] < opts.SampleQueriesPerResource {
			perResource[w.addr]++
			wants = append(wants, w)
		}
	}
	for _, t := range cfg.Twins {
		o := obs.Twins[t.Addr]
		pt, err := prepareTwin(t)
		if err != nil || len(o.Jobs) == 0 {
			continue
		}
		for _, tr := range twinTransitions(pt.leaves, o.Keys) {
			if cond, ok := valueCondition(tr.leaf, tr.group); ok {
				add(want{addr: t.Addr, id: tr.id, devices: tr.Devices, where: query.And(scope(t.Target), cond), twin: o})
			}
		}
	}
	for _, m := range cfg.Methods {
		o := obs.Methods[m.Addr]
		where, n := scope(m.Target), o.Targeted
		if o.MarkCondition != "" { // run-once: examples of the devices that will run it
			where, n = mustCondition(o.MarkCondition), o.Pending
		}
		if n > 0 {
			add(want{addr: m.Addr, devices: n, where: where, method: o})
		}
	}
	sort.SliceStable(wants, func(i, j int) bool { return wants[i].devices > wants[j].devices })
	budget := opts.sampleBudget(q.sent)
	for i, w := range wants {
		if i >= budget {
			obs.Notes = append(obs.Notes, fmt.Sprintf("example devices were read for %d of %d changes, to stay within %s", budget, len(wants), opts.budgetReason()))
			return
		}
		ids, err := sampleIDs(ctx, q, w.where, opts.SamplesPerTransition)
		if err != nil {
			obs.Notes = append(obs.Notes, fmt.Sprintf("%s: example devices could not be read: %v", w.addr, err))
			continue
		}
		if w.method != nil {
			w.method.Samples = ids
			continue
		}
		if w.twin.Samples == nil {
			w.twin.Samples = map[string][]string{}
		}
		w.twin.Samples[w.id] = ids
	}
}

func sampleIDs(ctx context.Context, q Querier, where query.Expr, k int) ([]string, error) {
	stmt := query.Select(query.Devices).Top(k).Project(query.P("deviceId"), aliasID).Where(where).String()
	rows, _, err := q.QueryRows(ctx, stmt, k)
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(rows))
	for _, r := range rows {
		if id, ok := r[aliasID].(string); ok {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids, nil
}

func countStatement(where query.Expr) string {
	return query.Select(query.Devices).Count(aliasCount).Where(where).String()
}

// memo answers a repeated statement from the first answer, within one Read, and counts the
// statements it sent. A complete GROUP BY also answers the COUNT of its condition (counted):
// every device it selects is in exactly one group.
type memo struct {
	q    Querier
	rows map[string]memoRows
	sent int
	// record: keep every statement answered, with its rows, as a Check of addr.
	record bool
	addr   string
	checks []Check
	seen   map[string]bool
}

// check records the answer to stmt as a Check of the current resource.
func (m *memo) check(stmt string, max int, rows []map[string]any) {
	if !m.record {
		return
	}
	if m.seen == nil {
		m.seen = map[string]bool{}
	}
	if k := m.addr + "\x00" + stmt; !m.seen[k] {
		m.seen[k] = true
		m.checks = append(m.checks, Check{Addr: m.addr, Statement: stmt, Max: max, Rows: canonicalRows(rows)})
	}
}

// counted records n as the answer to COUNT() of where.
func (m *memo) counted(where query.Expr, n int) {
	stmt := countStatement(where)
	if _, ok := m.rows[stmt]; !ok {
		m.rows[stmt] = memoRows{rows: []map[string]any{{aliasCount: float64(n)}}, derived: true}
	}
}

type memoRows struct {
	rows []map[string]any
	more bool
	max  int
	// derived: not a hub answer but a count derived from one (counted); not a Check.
	derived bool
}

func (m *memo) QueryRows(ctx context.Context, stmt string, max int) ([]map[string]any, bool, error) {
	if r, ok := m.rows[stmt]; ok && (r.max <= 0 || (max > 0 && max <= r.max)) {
		if !r.derived {
			m.check(stmt, r.max, r.rows)
		}
		if max > 0 && len(r.rows) > max {
			return r.rows[:max], true, nil
		}
		return r.rows, r.more, nil
	}
	m.sent++
	rows, more, err := m.q.QueryRows(ctx, stmt, max)
	if err == nil {
		m.rows[stmt] = memoRows{rows: rows, more: more, max: max}
		m.check(stmt, max, rows)
	}
	return rows, more, err
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

// mustCondition parses a condition iotplan printed itself (so it parses).
func mustCondition(text string) query.Expr {
	e, err := query.ParseCondition(text)
	if err != nil {
		return query.Value(false)
	}
	return e
}
