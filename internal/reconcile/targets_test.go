package reconcile

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/iotplan/iotplan/internal/query"
)

// TestTargets: -target plans the selected resources only; a removal of an unselected one is
// not planned and its record is kept; the selected one's removal is; a target that selects
// nothing is refused.
func TestTargets(t *testing.T) {
	target, _ := query.ParseCondition("tags.site = 'hq'")
	full := &Config{Twins: []Twin{
		{Addr: `twin.site["a"]`, Target: target, Desired: map[string]any{"floor": 3}},
		{Addr: `twin.site["b"]`, Target: target, Tags: map[string]any{"owner": "ops"}},
		{Addr: "module.m.twin.c", Target: target, Desired: map[string]any{"mode": "eco"}},
	}}
	var docs []map[string]any
	for i := range 4 {
		docs = append(docs, twinDoc(fmt.Sprintf("d%d", i), map[string]any{"floor": 3.0, "mode": "eco"}, map[string]any{"site": "hq", "owner": "ops"}))
	}
	prior := priorOf(t, full, docs)
	fleet := &memFleet{docs: docs}

	// Every resource left the configuration; only twin.site is targeted.
	p, err := MakePlan(context.Background(), fleet, &Config{}, PlanOptions{Now: planTime, Prior: prior, Targets: []string{"twin.site"}})
	if err != nil {
		t.Fatal(err)
	}
	planned := map[string]bool{}
	for _, r := range p.Resources {
		planned[r.Addr] = r.Action != NoOp
	}
	if !planned[`twin.site["a"]`] || !planned[`twin.site["b"]`] || planned["module.m.twin.c"] {
		t.Errorf("planned %v, want the removals of twin.site's instances only", planned)
	}
	if len(p.Records) != 1 || p.Records[0].Addr != "module.m.twin.c" {
		t.Errorf("records %v: the untargeted record must be kept as it was", p.Records)
	}
	if len(p.Targets) != 1 {
		t.Errorf("plan targets %v", p.Targets)
	}

	// The module's resource by its module address.
	p, err = MakePlan(context.Background(), fleet, full, PlanOptions{Now: planTime, Prior: prior, Targets: []string{"module.m"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Resources) != 1 || p.Resources[0].Addr != "module.m.twin.c" || len(p.Records) != 3 {
		t.Errorf("module.m: resources %v, records %d", p.Resources, len(p.Records))
	}

	// destroy -target module.m removes the module's keys only.
	p, err = MakePlan(context.Background(), fleet, full, PlanOptions{Now: planTime, Prior: prior, Destroy: true, Targets: []string{"module.m"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Resources) != 1 || p.Resources[0].Addr != "module.m.twin.c" || p.Resources[0].Action == NoOp || len(p.Records) != 2 {
		t.Errorf("destroy module.m: resources %v, records %d", p.Resources, len(p.Records))
	}

	_, err = MakePlan(context.Background(), fleet, full, PlanOptions{Now: planTime, Prior: prior, Targets: []string{"twin.sites"}})
	if !errors.Is(err, ErrTargetMatchesNothing) || !strings.Contains(err.Error(), "did you mean twin.site?") {
		t.Errorf("twin.sites: %v", err)
	}
}
