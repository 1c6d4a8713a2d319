package adm

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"

	"go.etcd.io/bbolt"

	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/query"
)

// Evaluate runs one evaluation pass now if the configurations or the registry changed since
// the last one (the loop calls it; tests may too). It reports whether a pass ran.
//
// A pass: snapshot the configurations (beginPass), scan every twin for what it should hold
// (scanTwins, evalTwin), write the differences (writeTwins), forget deleted devices
// (forgetDeleted), then recompute the metrics (updateMetrics).
func (m *Manager) Evaluate() bool {
	m.passMu.Lock()
	defer m.passMu.Unlock()
	cs, gen, ran, scan := m.beginPass()
	if !scan {
		return ran
	}
	m.mu.Lock()
	known := make([]string, 0, len(m.applied))
	for id := range m.applied {
		known = append(known, id)
	}
	m.mu.Unlock()
	p := m.scanTwins(cs)
	m.writeTwins(p.todo)
	m.forgetDeleted(known, p.seen)
	m.updateMetrics(p, gen)
	return true
}

// beginPass decides whether a pass runs (ran) and whether it must scan the twins (scan), and
// returns the configurations by precedence (priority desc, then newest first) and the
// registry generation the pass sees.
func (m *Manager) beginPass() (cs []*compiled, gen uint64, ran, scan bool) {
	m.mu.Lock()
	gen = m.twins.Generation()
	if !m.dirty && gen == m.lastGen {
		m.mu.Unlock()
		return nil, gen, false, false
	}
	m.dirty = false
	cs = make([]*compiled, 0, len(m.configs))
	for _, c := range m.configs {
		cs = append(cs, c)
	}
	if len(cs) == 0 && len(m.applied) == 0 && !m.statuses {
		// Nothing configured and nothing to clean up: a hub without configurations never
		// scans its twins (a million-device fleet changes its twins all the time).
		m.lastGen = gen
		m.mu.Unlock()
		return nil, gen, true, false
	}
	m.statuses = len(cs) > 0
	m.mu.Unlock()
	slices.SortFunc(cs, func(a, b *compiled) int {
		if a.cfg.Priority != b.cfg.Priority {
			return b.cfg.Priority - a.cfg.Priority
		}
		return int(b.seq - a.seq)
	})
	return cs, gen, true, true
}

// twinWork is what a pass writes to one twin.
type twinWork struct {
	id      string
	patch   map[string]any    // desired-properties merge patch; empty: none
	applied map[string]string // path → configuration id, after the write
	status  map[string]any    // the twin's configurations.{id}.status
}

// pass is what scanning the twins found.
type pass struct {
	todo     []twinWork
	targeted map[string]int64 // configuration id → twins it targets
	applied  map[string]int64 // configuration id → twins where it owns a path
	seen     map[string]bool  // devices of m.applied met in the scan
}

// scanTwins evaluates every twin against the configurations cs.
func (m *Manager) scanTwins(cs []*compiled) *pass {
	p := &pass{targeted: map[string]int64{}, applied: map[string]int64{}, seen: map[string]bool{}}
	m.twins.ForEachTwin(func(doc any) bool {
		m.evalTwin(cs, doc, p)
		return true
	})
	return p
}

// evalTwin works out one twin's owned paths, statuses and desired patch, and queues a write
// when any of them differs from what the twin holds.
func (m *Manager) evalTwin(cs []*compiled, doc any, p *pass) {
	v, _ := query.Field(doc, "deviceId")
	id, _ := v.(string)
	props, _ := query.Field(doc, "properties")
	v, _ = query.Field(props, "desired")
	desired := query.AsMap(v)
	owner, hits := ownPaths(cs, doc, p.targeted)
	status := twinStatuses(hits, owner, p.applied)
	patch, now := desiredPatch(owner, desired)
	m.mu.Lock()
	before, had := m.applied[id]
	m.mu.Unlock()
	if had {
		p.seen[id] = true
	}
	releasePaths(before, now, owner, desired, patch)
	v, _ = query.Field(doc, "configurations")
	cfg, _ := v.(map[string]any)
	ownersChanged := len(before) != len(now) || len(now) > 0 && !reflect.DeepEqual(before, now)
	if len(patch) > 0 || ownersChanged || !sameStatus(cfg, status) {
		p.todo = append(p.todo, twinWork{id: id, patch: patch, applied: now, status: status})
	}
}

// ownPaths returns the configurations that target doc (hits, counted in targeted) and, for
// each content path, the one that wins it: the first by precedence whose path does not
// overlap a path already won.
func ownPaths(cs []*compiled, doc any, targeted map[string]int64) (owner map[string]*compiled, hits []*compiled) {
	owner = map[string]*compiled{} // path → winning configuration
	for _, c := range cs {
		if !c.target.Match(doc) {
			continue
		}
		hits = append(hits, c)
		targeted[c.cfg.ID]++
		for _, p := range c.paths {
			if _, taken := owner[p.key]; !taken && !overlapsOwned(owner, p.key) {
				owner[p.key] = c
			}
		}
	}
	return owner, hits
}

// twinStatuses is the twin's configurations section: Applied for a configuration that owns a
// path (counted in applied), Targeted for one that targets the twin but owns nothing.
func twinStatuses(hits []*compiled, owner map[string]*compiled, applied map[string]int64) map[string]any {
	status := map[string]any{}
	for _, c := range hits {
		st := StatusTargeted
		for _, o := range owner {
			if o == c {
				st = StatusApplied
				break
			}
		}
		if st == StatusApplied {
			applied[c.cfg.ID]++
		}
		status[c.cfg.ID] = map[string]any{"status": st}
	}
	return status
}

// desiredPatch is the merge patch that gives each owned path its configuration's value (a
// nil value removes the property), and now the owner of each path.
func desiredPatch(owner map[string]*compiled, desired map[string]any) (patch map[string]any, now map[string]string) {
	patch, now = map[string]any{}, map[string]string{}
	for key, c := range owner {
		now[key] = c.cfg.ID
		var want any
		for _, p := range c.paths {
			if p.key == key {
				want = p.value
			}
		}
		parts := strings.Split(key, ".")
		cur, ok := lookup(desired, parts)
		if want == nil {
			if ok {
				setPath(patch, parts, nil)
			}
			continue
		}
		if !ok || !reflect.DeepEqual(hubapi.TwinJSON(cur), hubapi.TwinJSON(want)) {
			setPath(patch, parts, replacement(cur, hubapi.TwinJSON(want)))
		}
	}
	return patch, now
}

// releasePaths adds to patch the removal of every path a configuration had set (before) that
// nobody owns any more.
func releasePaths(before, now map[string]string, owner map[string]*compiled, desired, patch map[string]any) {
	for key := range before {
		if _, still := now[key]; still || overlapsOwned(owner, key) {
			continue
		}
		parts := strings.Split(key, ".")
		if _, ok := lookup(desired, parts); ok {
			setPath(patch, parts, nil)
		}
	}
}

// writeTwins applies each twin's patch and statuses and records what it now holds.
func (m *Manager) writeTwins(todo []twinWork) {
	for _, w := range todo {
		if len(w.patch) > 0 {
			if _, err := m.twins.UpdateTwin(w.id, hubapi.TwinPatch{Properties: &hubapi.TwinProperties{Desired: w.patch}}, "*"); err != nil {
				m.log.Warn("adm: applying a configuration failed", "device", w.id, "err", err)
				continue
			}
		}
		if err := m.twins.SetTwinConfigurations(w.id, w.status); err != nil {
			continue // the device was deleted meanwhile
		}
		m.setApplied(w.id, w.applied)
	}
}

// forgetDeleted drops what was set on devices deleted since they were configured (a device
// created again under the same id starts clean).
func (m *Manager) forgetDeleted(known []string, seen map[string]bool) {
	for _, id := range known {
		if !seen[id] {
			m.setApplied(id, nil)
		}
	}
}

// updateMetrics sets the system counts from this pass and each custom metric to the number of
// rows its query returns (run without the lock), then records gen as evaluated.
func (m *Manager) updateMetrics(p *pass, gen uint64) {
	m.mu.Lock()
	for _, c := range m.configs {
		c.cfg.SystemMetrics = systemMetrics(c, &Metrics{Results: map[string]int64{"targetedCount": p.targeted[c.cfg.ID], "appliedCount": p.applied[c.cfg.ID]}})
	}
	progs := map[string]map[string]*compiledMetric{}
	for id, c := range m.configs {
		for name, prog := range c.metrics {
			if progs[id] == nil {
				progs[id] = map[string]*compiledMetric{}
			}
			progs[id][name] = &compiledMetric{p: prog}
		}
	}
	m.mu.Unlock()
	for _, ms := range progs {
		for _, cm := range ms {
			rows, err := cm.p.Run(m.twins.ForEachTwin)
			if err == nil {
				cm.n = int64(len(rows))
			}
		}
	}
	m.mu.Lock()
	for id, ms := range progs {
		c := m.configs[id]
		if c == nil || c.cfg.Metrics == nil {
			continue
		}
		for name, cm := range ms {
			if _, ok := c.cfg.Metrics.Queries[name]; ok {
				c.cfg.Metrics.Results[name] = cm.n
			}
		}
	}
	// Our own twin writes moved the generation; the next tick sees a stable state and skips.
	m.lastGen = gen
	m.mu.Unlock()
}

type compiledMetric struct {
	p interface {
		Run(each func(yield func(doc any) bool)) ([]any, error)
	}
	n int64
}

func sameStatus(cur map[string]any, want map[string]any) bool {
	if len(cur) == 0 && len(want) == 0 {
		return true
	}
	return reflect.DeepEqual(cur, want)
}

// overlapsOwned reports whether key is inside or contains a path already owned.
func overlapsOwned(owner map[string]*compiled, key string) bool {
	for k := range owner {
		if k != key && (strings.HasPrefix(key, k+".") || strings.HasPrefix(k, key+".")) {
			return true
		}
	}
	return false
}

func (m *Manager) setApplied(id string, a map[string]string) {
	m.mu.Lock()
	if len(a) == 0 {
		delete(m.applied, id)
	} else {
		m.applied[id] = a
	}
	m.mu.Unlock()
	_ = m.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketApplied)
		if len(a) == 0 {
			return b.Delete([]byte(id))
		}
		v, err := json.Marshal(a)
		if err != nil {
			return err
		}
		return b.Put([]byte(id), v)
	})
}

func lookup(m map[string]any, parts []string) (any, bool) {
	var cur any = m
	for _, p := range parts {
		o, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = o[p]; !ok {
			return nil, false
		}
	}
	return cur, true
}

func setPath(m map[string]any, parts []string, v any) {
	for _, p := range parts[:len(parts)-1] {
		next, ok := m[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[p] = next
		}
		m = next
	}
	m[parts[len(parts)-1]] = v
}

// replacement is the merge patch that turns cur into want: objects are patched key by key
// (removing keys want lacks), anything else replaced.
func replacement(cur, want any) any {
	wo, wok := want.(map[string]any)
	co, cok := cur.(map[string]any)
	if !wok || !cok {
		return want
	}
	p := map[string]any{}
	for k := range co {
		if _, ok := wo[k]; !ok {
			p[k] = nil
		}
	}
	for k, v := range wo {
		p[k] = replacement(co[k], v)
	}
	return p
}
