package reconcile_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/iotplan/iotplan/internal/hub"
	"github.com/iotplan/iotplan/internal/hub/hubtest"
	"github.com/iotplan/iotplan/internal/hubclient"
	"github.com/iotplan/iotplan/internal/query"
	"github.com/iotplan/iotplan/internal/reconcile"
)

// fleetFile is a fleet of n door controllers: three quarters with a floor, one in ten of those
// already converged on building "43" and the rest on "42"; a quarter on "42" without a floor;
// plus the tutorial's device (outside the target).
func fleetFile(n int) string {
	return fmt.Sprintf(`
device "myDeviceId" {
  method "lockDoor" {
    status = 200
  }
}

group "doors" {
  count = %d
  id    = "door-%%05d"
  tags = {
    site = "hq"
  }
  desired = {
    building = index %% 10 == 0 ? "43" : "42"
    floor    = 3
  }
  method "lockDoor" {
    status = 200
  }
}

group "doors-no-floor" {
  count = %d
  id    = "nofloor-%%05d"
  tags = {
    site = "hq"
  }
  desired = {
    building = "42"
  }
  method "lockDoor" {
    status = 200
  }
}
`, n-n/4, n/4)
}

// convergedDoors is how many devices of fleetFile(n) already match doorsConfig.
func convergedDoors(n int) int { return (n - n/4 + 9) / 10 }

func startHub(t *testing.T, devices int) (*hub.Hub, *hubclient.Client) {
	t.Helper()
	return hubtest.Start(t, fleetFile(devices))
}

func doorsConfig(t *testing.T) *reconcile.Config {
	t.Helper()
	target, err := query.ParseCondition("tags.site = 'hq'")
	if err != nil {
		t.Fatal(err)
	}
	return &reconcile.Config{
		Twins: []reconcile.Twin{{Addr: "twin.doors", Target: target,
			Desired: map[string]any{"building": "43", "floor": 3}, Tags: map[string]any{"owner": nil}}},
		Methods: []reconcile.Method{{Addr: "method.lock", Target: target, Method: "lockDoor", ResponseTimeout: 10 * time.Second}},
	}
}

// TestPlanHubCallsDoNotGrowWithFleet plans the same configuration against hubs of 1,000 and
// 10,000 devices and checks that the number of hub calls — as the client and as the hub count
// them — is the same.
func TestPlanHubCallsDoNotGrowWithFleet(t *testing.T) {
	t.Parallel()
	type run struct {
		clientCalls map[string]int
		hubQueries  int64
		plan        *reconcile.Plan
	}
	var runs []run
	for _, n := range []int{1000, 10000} {
		h, c := startHub(t, n)
		before := h.Requests()
		start := time.Now()
		p, err := reconcile.MakePlan(context.Background(), c, doorsConfig(t), reconcile.PlanOptions{Hub: c.HostName()})
		if err != nil {
			t.Fatal(err)
		}
		after := h.Requests()
		var total int64
		for k, v := range after {
			total += v - before[k]
		}
		r := run{clientCalls: c.Calls(), hubQueries: after["POST /devices/query"] - before["POST /devices/query"], plan: p}
		t.Logf("%6d devices: client calls %v, hub requests %d (queries %d), plan took %s", n, r.clientCalls, total, r.hubQueries, time.Since(start).Round(time.Millisecond))
		if int64(r.clientCalls["query"]) != r.hubQueries || total != r.hubQueries {
			t.Errorf("client counted %v, hub counted %d requests of which %d queries", r.clientCalls, total, r.hubQueries)
		}
		twin := p.Resources[0]
		wantDrifted := n - convergedDoors(n)
		if twin.TargetedDevices != n || twin.Devices != wantDrifted {
			t.Errorf("%d devices: targeted %d drifted %d, want %d %d", n, twin.TargetedDevices, twin.Devices, n, wantDrifted)
		}
		runs = append(runs, r)
	}
	if fmt.Sprint(runs[0].clientCalls) != fmt.Sprint(runs[1].clientCalls) || runs[0].hubQueries != runs[1].hubQueries {
		t.Fatalf("hub calls grew with the fleet: 1,000 devices %v (%d), 10,000 devices %v (%d)",
			runs[0].clientCalls, runs[0].hubQueries, runs[1].clientCalls, runs[1].hubQueries)
	}
}

// TestApplyOverLocalHub plans, applies with the real client, and plans again: the second plan
// has no twin changes, and the method reached every targeted device.
func TestApplyOverLocalHub(t *testing.T) {
	t.Parallel()
	h, c := startHub(t, 200)
	ctx := context.Background()
	cfg := doorsConfig(t)
	p, err := reconcile.MakePlan(ctx, c, cfg, reconcile.PlanOptions{Hub: c.HostName()})
	if err != nil {
		t.Fatal(err)
	}
	if p.Resources[0].Action != reconcile.Update || p.Resources[1].Action != reconcile.Invoke {
		t.Fatalf("plan %+v", p.Resources)
	}
	res, err := reconcile.Apply(ctx, p, c, nil, reconcile.WithPollInterval(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Success() || len(res.Jobs) != 2 {
		t.Fatalf("apply: %+v", res)
	}
	if s := res.Jobs[0].Stats; s.DeviceCount != p.Resources[0].Devices || s.SucceededCount != s.DeviceCount {
		t.Errorf("twin job stats %+v, plan said %d devices", s, p.Resources[0].Devices)
	}
	if s := res.Jobs[1].Stats; s.DeviceCount != 200 || s.SucceededCount != 200 {
		t.Errorf("method job stats %+v", s)
	}
	// Two job PUTs; polling GETs; one devices.jobs query (the method's non-2xx answers): no
	// failed-device reads when nothing failed.
	if c := res.HubCalls; c["job.create"] != 2 || c["job.get"] < 2 || c["query"] != 1 {
		t.Errorf("apply hub calls %v", c)
	}
	if n := h.Sim().Calls("nofloor-00007", "lockDoor"); n != 1 {
		t.Errorf("lockDoor reached nofloor-00007 %d times", n)
	}
	again, err := reconcile.MakePlan(ctx, c, cfg, reconcile.PlanOptions{Hub: c.HostName()})
	if err != nil {
		t.Fatal(err)
	}
	if again.HasTwinChanges() {
		t.Errorf("second plan still has twin changes: %+v", again.Resources[0])
	}
	// The saved-plan guard: applying the first plan again collides with its own job ids.
	if _, err := reconcile.Apply(ctx, p, c, nil); err == nil || !hubclient.IsCode(err, 409104) {
		t.Errorf("re-applying a plan: %v", err)
	}
}
