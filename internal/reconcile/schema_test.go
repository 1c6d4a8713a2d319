package reconcile

import (
	"context"
	"testing"

	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/schema"
)

// TestLockdoorExample plans the tutorial's configuration (examples/lockdoor.hcl, through the
// real loader) against a fleet where myDeviceId has no properties yet.
func TestLockdoorExample(t *testing.T) {
	cfg, diags := schema.Load([]string{"../../examples/lockdoor.hcl"}, nil)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	fleet := &memFleet{docs: []map[string]any{
		twinDoc("myDeviceId", nil, nil),
		twinDoc("door-00001", map[string]any{"building": "42"}, nil),
	}}
	p, err := MakePlan(context.Background(), fleet, FromSchema(cfg), PlanOptions{Hub: "localhost", Now: planTime})
	if err != nil {
		t.Fatal(err)
	}
	twin, method := p.Resources[0], p.Resources[1]
	if twin.Addr != "twin.door_location" || twin.Action != Update || twin.Devices != 1 || len(twin.Transitions) != 2 {
		t.Fatalf("twin %s", js(twin))
	}
	for _, tr := range twin.Transitions {
		if tr.Op != OpAdd || len(tr.SampleDeviceIDs) != 1 || tr.SampleDeviceIDs[0] != "myDeviceId" {
			t.Errorf("transition %s", js(tr))
		}
	}
	if c := twin.Jobs[0].Request.QueryCondition; c != "deviceId IN ['myDeviceId'] AND NOT IS_DEFINED(tags.iotplanState) AND (NOT IS_DEFINED(properties.desired.building) OR NOT IS_DEFINED(properties.desired.floor))" {
		t.Errorf("condition %s", c)
	}
	m := method.Jobs[0].Request
	if method.Action != Invoke || method.Devices != 1 || m.Type != hubapi.JobTypeDeviceMethod ||
		m.CloudToDeviceMethod.MethodName != "lockDoor" || m.CloudToDeviceMethod.ResponseTimeoutInSeconds != 15 ||
		m.MaxExecutionTimeInSeconds != 300 || m.QueryCondition != "deviceId IN ['myDeviceId'] AND NOT IS_DEFINED(tags.iotplanState)" {
		t.Errorf("method %s", js(method))
	}
}
