package cli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/state"
)

// statusFleet: nine devices on site hq with floor 1 — four that echo desired properties into
// reported ones, three that never echo, two that never connect — one of the echoing ones
// answers lockDoor with 500; and one device on site lab.
const statusFleet = `
group "echo" {
  count               = 3
  id                  = "echo-%d"
  tags                = { site = "hq" }
  desired             = { floor = 1 }
  reported            = { floor = 1 }
  reported_echo_delay = "10ms"
  method "lockDoor" {
    status = 200
  }
}
device "jammed" {
  tags                = { site = "hq" }
  desired             = { floor = 1 }
  reported            = { floor = 1 }
  reported_echo_delay = "10ms"
  method "lockDoor" {
    status = 500
  }
}
group "mute" {
  count               = 3
  id                  = "mute-%d"
  tags                = { site = "hq" }
  desired             = { floor = 1 }
  reported            = { floor = 1 }
  reported_echo_delay = "off"
  method "lockDoor" {
    status = 200
  }
}
group "away" {
  count            = 2
  id               = "away-%d"
  tags             = { site = "hq" }
  desired          = { floor = 1 }
  offline_fraction = 1
  method "lockDoor" {
    status = 200
  }
}
device "lab-1" {
  tags = { site = "lab" }
}
`

const statusConfig = `
twin "floors" {
  target  = "tags.site = 'hq'"
  desired = { floor = 5 }
  tags    = { owner = "ops" }
}
twin "owner" {
  target = "tags.site = 'hq'"
  tags   = { owner = "ops" }
}
method "lock" {
  target           = "tags.site = 'hq'"
  method           = "lockDoor"
  response_timeout = "5s"
  triggers         = { rev = 1 }
}
`

// statusDoc is the part of 'status -json' the tests read.
type statusDoc struct {
	FormatVersion string          `json:"format_version"`
	LastApply     *map[string]any `json:"last_apply"`
	Resources     []struct {
		Address        string            `json:"address"`
		Targeted       int               `json:"targeted"`
		Disconnected   int               `json:"disconnected"`
		DesiredInSync  *int              `json:"desired_in_sync"`
		ReportedInSync *int              `json:"reported_in_sync"`
		Ran            *int              `json:"ran_with_current_triggers"`
		Failed         *int              `json:"failed_last_apply"`
		NotAvailable   map[string]string `json:"not_available"`
		Jobs           []struct {
			JobID  string `json:"job_id"`
			Type   string `json:"type"`
			Status string `json:"status"`
			Failed int    `json:"failed"`
		} `json:"last_apply_jobs"`
	} `json:"resources"`
	HubCalls map[string]int `json:"hub_calls"`
}

func statusJSON(t *testing.T, dir, cfg string) statusDoc {
	t.Helper()
	r := mustRun(t, "status", "-json", "-dev", "-data", dir, cfg)
	var doc statusDoc
	if err := json.Unmarshal([]byte(r.out), &doc); err != nil {
		t.Fatalf("status -json is not one JSON document: %v\n%s", err, r.out)
	}
	return doc
}

// metrics is a resource's row: targeted, desired, reported, ran, disconnected, failed (-1:
// null).
func metrics(t *testing.T, doc statusDoc, addr string) [6]int {
	t.Helper()
	n := func(p *int) int {
		if p == nil {
			return -1
		}
		return *p
	}
	for _, r := range doc.Resources {
		if r.Address == addr {
			return [6]int{r.Targeted, n(r.DesiredInSync), n(r.ReportedInSync), n(r.Ran), r.Disconnected, n(r.Failed)}
		}
	}
	t.Fatalf("status has no %s: %+v", addr, doc.Resources)
	return [6]int{}
}

// TestStatusMetrics: before and after an apply, the exact targeted, in-sync, reported,
// ran, disconnected and failed counts of each resource, as the fleet's behaviours make them.
func TestStatusMetrics(t *testing.T) {
	_, dir := testHub(t, writeFile(t, "fleet.hcl", statusFleet))
	cfg := writeFile(t, "status.hcl", statusConfig)

	doc := statusJSON(t, dir, cfg)
	want := map[string][6]int{
		"twin.floors": {9, 0, 0, -1, 2, -1},
		"twin.owner":  {9, 0, -1, -1, 2, -1},
		"method.lock": {9, -1, -1, 0, 2, -1},
	}
	for addr, w := range want {
		if got := metrics(t, doc, addr); got != w {
			t.Errorf("before apply, %s = %v, want %v", addr, got, w)
		}
	}
	if doc.LastApply != nil {
		t.Errorf("last_apply before any apply = %v", *doc.LastApply)
	}
	for _, r := range doc.Resources {
		if r.Address == "twin.owner" && !strings.Contains(r.NotAvailable["reported_in_sync"], "tags are not reported") {
			t.Errorf("twin.owner not_available = %v", r.NotAvailable)
		}
	}

	// The two offline devices fail lockDoor (the hub's failedCount), jammed answers 500 (a
	// success for the hub, unmarked by apply): apply exits 1.
	if r := iotplan(t, "apply", "-dev", "-data", dir, "-auto-approve", cfg); r.code != exitError {
		t.Fatalf("apply: exit %d, want 1\n%s%s", r.code, r.out, r.err)
	}
	// The four echoing devices report floor 5 within moments; the others never do.
	want = map[string][6]int{
		"twin.floors": {9, 9, 4, -1, 2, 0},
		"twin.owner":  {9, 9, -1, -1, 2, 0},
		"method.lock": {9, -1, -1, 6, 2, 2},
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		doc = statusJSON(t, dir, cfg)
		if metrics(t, doc, "twin.floors")[2] == 4 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for addr, w := range want {
		if got := metrics(t, doc, addr); got != w {
			t.Errorf("after apply, %s = %v, want %v", addr, got, w)
		}
	}
	checkLastApplyJobs(t, doc)

	// The table says the same.
	r := mustRun(t, "status", "-dev", "-data", dir, cfg)
	for _, line := range []string{
		"twin.floors         9                9                 4    -             2       0",
		"method.lock         9                -                 -    6             2       2",
		"twin.owner: reported in sync is n/a: manages no desired property",
		"Status used 9 hub calls (job.get: 4, query: 5).",
	} {
		if !strings.Contains(r.out, line) {
			t.Errorf("status table lacks %q:\n%s", line, r.out)
		}
	}
}

// checkLastApplyJobs: the state records the apply's jobs (twin.owner has one too: planned on
// nine devices, it found them done by twin.floors' job), and status read each once; the
// three resources share their target's GROUP BY, so five queries in all.
func checkLastApplyJobs(t *testing.T, doc statusDoc) {
	t.Helper()
	if doc.LastApply == nil || (*doc.LastApply)["jobs"] != 4.0 {
		t.Errorf("last_apply = %v, want 4 jobs (two updates, mark, invoke)", doc.LastApply)
	}
	for _, r := range doc.Resources {
		if r.Address != "method.lock" {
			continue
		}
		if len(r.Jobs) != 2 || r.Jobs[0].Type != hubapi.JobTypeUpdateTwin || r.Jobs[1].Type != hubapi.JobTypeDeviceMethod ||
			r.Jobs[1].Failed != 2 || r.Jobs[1].Status != hubapi.JobStatusCompleted {
			t.Errorf("method.lock jobs = %+v, want mark then invoke with 2 failed", r.Jobs)
		}
	}
	if doc.HubCalls["job.get"] != 4 || doc.HubCalls["query"] != 5 {
		t.Errorf("hub calls = %v, want job.get 4 (one per job), query 5", doc.HubCalls)
	}
}

// TestStatusLastApplyInState: a finished apply leaves its jobs in the state (small: ids and
// types), and a later apply with nothing to run keeps them.
func TestStatusLastApplyInState(t *testing.T) {
	h, c, dir := safeHub(t)
	cfg := writeFile(t, "floors.hcl", `twin "floors" {
  target  = "tags.site = 'hq'"
  desired = { floor = 5 }
}`)
	mustRun(t, "apply", "-dev", "-data", dir, "-auto-approve", cfg)
	store, err := state.Open(testClient(t, h), state.DefaultName)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	la := st.LastApply
	if la == nil || la.Operation != "apply" || len(la.Jobs) != 1 || la.Jobs[0].Addr != "twin.floors" ||
		la.Jobs[0].Type != hubapi.JobTypeUpdateTwin || !strings.HasPrefix(la.Jobs[0].JobID, "iotplan-floors-") || st.Apply != nil {
		t.Fatalf("state after apply: last apply %+v, apply %+v", la, st.Apply)
	}
	if _, err := c.GetJob(context.Background(), la.Jobs[0].JobID); err != nil {
		t.Errorf("the recorded job is not on the hub: %v", err)
	}
	mustRun(t, "apply", "-dev", "-data", dir, "-auto-approve", cfg)
	again, err := store.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if again.LastApply == nil || again.LastApply.ID != la.ID {
		t.Errorf("an apply with nothing to do replaced the last apply: %+v", again.LastApply)
	}
}
