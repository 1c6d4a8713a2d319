package registry

import "reflect"

// Generation is a counter that moves on every write of an identity or a twin (not on
// connection-state changes or SetTwinConfigurations), so that a background evaluator (ADM
// configurations) can skip passes when nothing it reads has changed.
func (r *Registry) Generation() uint64 { return r.gen.Load() }

// SetTwinConfigurations sets the twin's "configurations" member — {configId: {"status":
// "Applied"|"Targeted"}} — which automatic device management maintains and queries read
// (configurations.[[id]].status). nil or empty removes it. Like connection state it lives in
// memory only: the evaluator recomputes it after a restart. It does not move Generation.
func (r *Registry) SetTwinConfigurations(deviceID string, cfg map[string]any) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.byID[deviceID]
	if old == nil {
		return notFound(deviceID)
	}
	if len(cfg) == 0 && len(old.cfg) == 0 || reflect.DeepEqual(cfg, old.cfg) {
		return nil
	}
	n := old.clone()
	n.cfg = nil
	if len(cfg) > 0 {
		n.cfg = deepCopyMap(cfg)
	}
	r.put(n)
	return nil
}
