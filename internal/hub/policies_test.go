package hub_test

import (
	"context"
	"path/filepath"
	"testing"
)

// TestRegeneratePolicyKey: a regenerated key is in force at once (the old connection string
// is refused with 401, the new one works, the other key is untouched) and survives a restart.
func TestRegeneratePolicyKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dev")
	h := start(t, dir)
	ctx := context.Background()
	oldCS, err := h.PolicyConnectionString("registryRead")
	if err != nil {
		t.Fatal(err)
	}
	before := h.Policies()
	if _, err := client(t, h, oldCS).DeviceStats(ctx); err != nil {
		t.Fatalf("before: %v", err)
	}
	p, err := h.RegeneratePolicyKey("registryRead", "primary")
	if err != nil {
		t.Fatal(err)
	}
	var prev string
	for _, q := range before {
		if q.Name == "registryRead" {
			prev = q.PrimaryKey
			if p.SecondaryKey != q.SecondaryKey {
				t.Fatal("the secondary key changed too")
			}
		}
	}
	if p.PrimaryKey == prev || p.PrimaryKey == "" {
		t.Fatal("primary key not regenerated")
	}
	if _, err := client(t, h, oldCS).DeviceStats(ctx); err == nil {
		t.Fatal("the old key still works")
	}
	newCS, _ := h.PolicyConnectionString("registryRead")
	if _, err := client(t, h, newCS).DeviceStats(ctx); err != nil {
		t.Fatalf("new key: %v", err)
	}
	if _, err := h.RegeneratePolicyKey("nope", "primary"); err == nil {
		t.Fatal("unknown policy accepted")
	}
	if _, err := h.RegeneratePolicyKey("service", "tertiary"); err == nil {
		t.Fatal("bad key name accepted")
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	h2 := start(t, dir)
	defer h2.Close()
	cs2, _ := h2.PolicyConnectionString("registryRead")
	if _, err := client(t, h2, cs2).DeviceStats(ctx); err != nil || cs2 == oldCS {
		t.Fatalf("after restart: %v (same as old: %v)", err, cs2 == oldCS)
	}
}
