package jobs

import (
	"fmt"
	"testing"

	"github.com/iotplan/iotplan/internal/hub/link"
	"github.com/iotplan/iotplan/internal/hub/registry"
	"github.com/iotplan/iotplan/internal/hubapi"
)

// TestTwinJobOverRealRegistry runs a scheduleUpdateTwin job against the hub's registry: the
// job selects by the query language over real twin documents and patches through UpdateTwin,
// and desired-change notifications reach connected devices.
func TestTwinJobOverRealRegistry(t *testing.T) {
	db := openDB(t, "")
	l := link.New(link.Options{})
	reg, err := registry.Open(db, registry.Options{OnDesired: l.NotifyDesired})
	if err != nil {
		t.Fatal(err)
	}
	var seeds []registry.SeedDevice
	for i := range 30 {
		desired := map[string]any{"building": "42", "floor": 3}
		switch i % 3 {
		case 1:
			desired["floor"] = "3" // wrong type
		case 2:
			delete(desired, "floor") // missing
		}
		seeds = append(seeds, registry.SeedDevice{DeviceID: fmt.Sprintf("door-%02d", i),
			Tags: map[string]any{"kind": "door", "wing": []string{"east", "west"}[i%2]}, Desired: desired})
	}
	if err := reg.Import(seeds); err != nil {
		t.Fatal(err)
	}
	notified := &notifyCounter{}
	l.Connect("door-01", notified)

	m := newManager(t, db, reg, l, Options{})
	req := twinJob("east", "tags.wing = 'east'", map[string]any{"building": "43", "floor": 3})
	if _, err := m.Create(req); err != nil {
		t.Fatal(err)
	}
	r := waitStatus(t, m, "east", hubapi.JobStatusCompleted)
	if *r.DeviceJobStatistics != (hubapi.DeviceJobStatistics{DeviceCount: 15, SucceededCount: 15}) {
		t.Fatalf("stats = %+v", r.DeviceJobStatistics)
	}
	for i := range 30 {
		tw, err := reg.GetTwin(fmt.Sprintf("door-%02d", i))
		if err != nil {
			t.Fatal(err)
		}
		d := tw["properties"].(map[string]any)["desired"].(map[string]any)
		if i%2 == 0 {
			if d["building"] != "43" || d["floor"] != 3.0 || d["$version"] != 2.0 {
				t.Errorf("door-%02d desired = %v", i, d)
			}
		} else if d["building"] != "42" || d["$version"] != 1.0 {
			t.Errorf("door-%02d (west) changed: %v", i, d)
		}
	}
	if notified.n != 0 {
		t.Errorf("west device door-01 was notified %d times", notified.n)
	}
	l.Connect("door-02", notified)
	if _, err := m.Create(twinJob("one", "deviceId = 'door-02'", map[string]any{"floor": 4})); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, m, "one", hubapi.JobStatusCompleted)
	if notified.n != 1 || notified.version != 3 {
		t.Errorf("door-02 notified %d times, version %d", notified.n, notified.version)
	}
}

type notifyCounter struct {
	testDevice
	n       int
	version int64
}

func (c *notifyCounter) DesiredChanged(patch map[string]any, version int64) {
	c.n++
	c.version = version
}
