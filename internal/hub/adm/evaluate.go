package adm

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"

	"go.etcd.io/bbolt"

	"github.com/iotplan/iotplan/internal/hubapi"
)

// Evaluate runs one evaluation pass now if the configurations or the registry changed since
// the last one (the loop calls it; tests may too). It reports whether a pass ran.
func (m *Manager) Evaluate() bool {
	m.passMu.Lock()
	defer m.passMu.Unlock()
	m.mu.Lock()
	gen := m.twins.Generation()
	if !m.dirty && gen == m.lastGen {
		m.mu.Unlock()
		return false
	}
	m.dirty = false
	// Snapshot: configurations by precedence (priority desc, then newest first).
	cs := make([]*compiled, 0, len(m.configs))
	for _, c := range m.configs {
		cs = append(cs, c)
	}
	if len(cs) == 0 && len(m.applied) == 0 && !m.statuses {
		// Nothing configured and nothing to clean up: a hub without configurations never
		// scans its twins (a million-device fleet changes its twins all the time).
		m.lastGen = gen
		m.mu.Unlock()
		return true
	}
	m.statuses = len(cs) > 0
	m.mu.Unlock()
	slices.SortFunc(cs, func(a, b *compiled) int {
		if a.cfg.Priority != b.cfg.Priority {
			return b.cfg.Priority - a.cfg.Priority
		}
		return int(b.seq - a.seq)
	})

	type work struct {
		id      string
		patch   map[string]any
		applied map[string]string
		status  map[string]any
	}
	var todo []work
	targeted := map[string]int64{}
	applied := map[string]int64{}
	seen := map[string]bool{} // devices of m.applied met in the scan
	m.mu.Lock()
	known := make([]string, 0, len(m.applied))
	for id := range m.applied {
		known = append(known, id)
	}
	m.mu.Unlock()
	m.twins.ForEachTwin(func(doc map[string]any) bool {
		id, _ := doc["deviceId"].(string)
		desired, _ := doc["properties"].(map[string]any)["desired"].(map[string]any)
		owner := map[string]*compiled{} // path → winning configuration
		var hits []*compiled
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
		patch := map[string]any{}
		now := map[string]string{}
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
			if !ok || !reflect.DeepEqual(normalize(cur), normalize(want)) {
				setPath(patch, parts, replacement(cur, normalize(want)))
			}
		}
		m.mu.Lock()
		before, had := m.applied[id]
		m.mu.Unlock()
		if had {
			seen[id] = true
		}
		for key := range before {
			if _, still := now[key]; still || overlapsOwned(owner, key) {
				continue
			}
			// Nobody owns the path any more: remove what a configuration had set.
			parts := strings.Split(key, ".")
			if _, ok := lookup(desired, parts); ok {
				setPath(patch, parts, nil)
			}
		}
		cfg, _ := doc["configurations"].(map[string]any)
		ownersChanged := len(before) != len(now) || len(now) > 0 && !reflect.DeepEqual(before, now)
		if len(patch) > 0 || ownersChanged || !sameStatus(cfg, status) {
			todo = append(todo, work{id: id, patch: patch, applied: now, status: status})
		}
		return true
	})

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

	// Devices deleted since they were configured: forget what was set on them (a device
	// created again under the same id starts clean).
	for _, id := range known {
		if !seen[id] {
			m.setApplied(id, nil)
		}
	}

	// Metrics: system counts from this pass; custom metrics = rows their queries return.
	m.mu.Lock()
	for _, c := range m.configs {
		c.cfg.SystemMetrics = systemMetrics(c, &Metrics{Results: map[string]int64{"targetedCount": targeted[c.cfg.ID], "appliedCount": applied[c.cfg.ID]}})
	}
	progs := map[string]map[string]*compiledMetric{}
	for id, c := range m.configs {
		for name, p := range c.metrics {
			if progs[id] == nil {
				progs[id] = map[string]*compiledMetric{}
			}
			progs[id][name] = &compiledMetric{p: p}
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
	return true
}

type compiledMetric struct {
	p interface {
		Run(each func(yield func(doc map[string]any) bool)) ([]any, error)
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

// normalize turns a content value into the JSON data model the twins hold (float64 numbers).
func normalize(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return v
	}
	var out any
	_ = json.Unmarshal(b, &out)
	return out
}
