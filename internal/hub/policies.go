package hub

import (
	"encoding/json"
	"fmt"

	"go.etcd.io/bbolt"

	"github.com/iotplan/iotplan/internal/hub/adm"
	"github.com/iotplan/iotplan/internal/hub/httpapi"
	"github.com/iotplan/iotplan/internal/hub/registry"
)

// policyList is the current shared access policies (a slice that is replaced, never mutated).
func (h *Hub) policyList() []httpapi.Policy {
	h.polMu.RLock()
	defer h.polMu.RUnlock()
	return h.policies
}

// RegeneratePolicyKey gives a shared access policy a new random primary or secondary key
// (which = "primary" or "secondary"), persists it and puts it in force at once for the REST
// API and the MQTT endpoint: tokens signed with the old key are rejected from the next
// request or connection on (connections already open stay open [inferred]). On Azure this is
// a management-plane operation (az iot hub policy renew-key); the local hub offers it here.
func (h *Hub) RegeneratePolicyKey(policy, which string) (httpapi.Policy, error) {
	if which != "primary" && which != "secondary" {
		return httpapi.Policy{}, fmt.Errorf("regenerate key: which must be \"primary\" or \"secondary\", not %q", which)
	}
	h.polMu.Lock()
	defer h.polMu.Unlock()
	ps := append([]httpapi.Policy(nil), h.policies...)
	i := -1
	for j := range ps {
		if ps[j].Name == policy {
			i = j
		}
	}
	if i < 0 {
		return httpapi.Policy{}, fmt.Errorf("the local hub has no shared access policy %q", policy)
	}
	if which == "primary" {
		ps[i].PrimaryKey = registry.NewKey()
	} else {
		ps[i].SecondaryKey = registry.NewKey()
	}
	v, err := json.Marshal(ps)
	if err != nil {
		return httpapi.Policy{}, err
	}
	if err := h.db.Update(func(tx *bbolt.Tx) error { return tx.Bucket(bucketPolicies).Put([]byte("all"), v) }); err != nil {
		return httpapi.Policy{}, fmt.Errorf("hub policies: %w", err)
	}
	h.policies = ps
	if h.api != nil {
		h.api.SetPolicies(ps)
	}
	return ps[i], nil
}

// Configurations is the hub's automatic device management engine.
func (h *Hub) Configurations() *adm.Manager { return h.adm }
