package dashboard_test

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/iotplan/iotplan/internal/hub"
)

// TestDashboardAtScale measures the dashboard's API on a large fleet; it runs only with
// IOTPLAN_DASHBOARD_SCALE=N (devices), e.g.
//
//	IOTPLAN_DASHBOARD_SCALE=100000 go test ./internal/hub/dashboard -run TestDashboardAtScale -v -timeout 20m
//
// Each call is timed as the browser makes it; the answers must stay small whatever N.
func TestDashboardAtScale(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("IOTPLAN_DASHBOARD_SCALE"))
	if n <= 0 {
		t.Skip("set IOTPLAN_DASHBOARD_SCALE=N to measure the dashboard on a fleet of N devices")
	}
	fleet := fmt.Sprintf(`
group "doors" {
  count = %d
  id    = "door-%%07d"
  tags = {
    kind     = "door-controller"
    building = element(["41", "42", "43", "44", "45"], index)
  }
  desired  = { floor = index %% 7 }
  reported = { floor = index %% 7, firmware = "1.4.2" }
}
`, n)
	start := time.Now()
	h, _ := startHub(t, hub.Options{}, fleet)
	t.Logf("hub with %d devices started in %v", n, time.Since(start).Round(time.Millisecond))
	b := newClient(t, h)
	b.login(h)

	timed := func(what string, f func() (int, string)) {
		t.Helper()
		s := time.Now()
		code, body := f()
		if code != 200 {
			t.Fatalf("%s: %d %s", what, code, body)
		}
		t.Logf("%-46s %8v  %7d bytes", what, time.Since(s).Round(100*time.Microsecond), len(body))
	}
	timed("GET /ui/ (page)", func() (int, string) { return b.call("GET", "/ui/", nil, nil) })
	timed("GET /ui/api/summary", func() (int, string) { return b.call("GET", "/ui/api/summary", nil, nil) })
	timed("GET /ui/api/groups?by=tags.building", func() (int, string) { return b.call("GET", "/ui/api/groups?by=tags.building", nil, nil) })
	timed("GET /ui/api/groups?by=tags.building (cached)", func() (int, string) { return b.call("GET", "/ui/api/groups?by=tags.building", nil, nil) })
	timed("GET /ui/api/groups?by=properties.reported.floor", func() (int, string) {
		return b.call("GET", "/ui/api/groups?by=properties.reported.floor", nil, nil)
	})
	var p struct{ Continuation string }
	timed("POST /ui/api/query SELECT * (page 1)", func() (int, string) {
		return b.call("POST", "/ui/api/query", map[string]string{"query": "SELECT * FROM devices"}, &p)
	})
	timed("POST /ui/api/query SELECT * (page 2)", func() (int, string) {
		return b.call("POST", "/ui/api/query", map[string]string{"query": "SELECT * FROM devices", "continuation": p.Continuation}, nil)
	})
	timed("POST /ui/api/query WHERE tags.building = '43'", func() (int, string) {
		return b.call("POST", "/ui/api/query", map[string]string{"query": "SELECT * FROM devices WHERE tags.building = '43'"}, nil)
	})
	timed("GET /ui/api/twin", func() (int, string) { return b.call("GET", "/ui/api/twin?id=door-0000042", nil, nil) })
	timed("GET /ui/api/jobs", func() (int, string) { return b.call("GET", "/ui/api/jobs", nil, nil) })
	timed("GET /ui/api/activity", func() (int, string) { return b.call("GET", "/ui/api/activity", nil, nil) })
}
