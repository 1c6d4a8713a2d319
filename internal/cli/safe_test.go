package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iotplan/iotplan/internal/hub"
	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/hubclient"
	"github.com/iotplan/iotplan/internal/state"
)

// safeFleet: 6 doors on site hq that answer lockDoor; one on site lab.
const safeFleet = `
group "doors" {
  count   = 6
  id      = "door-%d"
  tags    = { site = "hq" }
  desired = { floor = 1 }
  method "lockDoor" {
    status = 200
  }
}
device "lab-1" {
  tags = { site = "lab" }
}
`

// writeFile writes a file in a new temporary directory and returns its path.
func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func safeHub(t *testing.T) (*hub.Hub, *hubclient.Client, string) {
	t.Helper()
	h, dir := testHub(t, writeFile(t, "fleet.hcl", safeFleet))
	return h, testClient(t, h), dir
}

func mustRun(t *testing.T, args ...string) result {
	t.Helper()
	r := iotplan(t, args...)
	if r.code != 0 {
		t.Fatalf("iotplan %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.out, r.err)
	}
	return r
}

func desired(t *testing.T, c *hubclient.Client, id string) map[string]any {
	t.Helper()
	tw, err := c.GetTwin(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return tw["properties"].(map[string]any)["desired"].(map[string]any)
}

// TestStaleSavedPlanIsRefused: a saved plan applied after someone else changed a device it
// would write is refused, naming what moved, and changes nothing; one applied after another
// apply ran is refused for the state's serial.
func TestStaleSavedPlanIsRefused(t *testing.T) {
	_, c, dir := safeHub(t)
	cfg := writeFile(t, "floors.hcl", `twin "floors" {
  target  = "tags.site = 'hq'"
  desired = { floor = 5 }
}`)
	planFile := filepath.Join(t.TempDir(), "floors.plan")
	mustRun(t, "plan", "-dev", "-data", dir, "-out", planFile, cfg)
	if fi, err := os.Stat(planFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("plan file mode: %v %v", fi.Mode(), err)
	}
	// Someone else writes floor 6 on door-2 meanwhile.
	if _, err := c.UpdateTwin(context.Background(), "door-2", hubapi.TwinPatch{Properties: &hubapi.TwinProperties{Desired: map[string]any{"floor": 6}}}, "*"); err != nil {
		t.Fatal(err)
	}
	r := iotplan(t, "apply", "-dev", "-data", dir, planFile)
	if r.code != exitError || !strings.Contains(r.err, "the saved plan is stale") || !strings.Contains(r.err, "twin.floors") || !strings.Contains(r.err, `"v":6`) {
		t.Fatalf("stale fleet: exit %d\n%s\n%s", r.code, r.out, r.err)
	}
	if got := desired(t, c, "door-2")["floor"]; got != 6.0 {
		t.Fatalf("door-2 floor = %v after a refused apply, want 6 (untouched)", got)
	}

	// A fresh plan, applied once by a config apply elsewhere, then the saved one: refused.
	mustRun(t, "plan", "-dev", "-data", dir, "-out", planFile, cfg)
	mustRun(t, "apply", "-dev", "-data", dir, "-auto-approve", cfg)
	r = iotplan(t, "apply", "-dev", "-data", dir, planFile)
	if r.code != exitError || !strings.Contains(r.err, "moved since it was made (serial 0, now 2)") {
		t.Fatalf("stale state: exit %d\n%s\n%s", r.code, r.out, r.err)
	}
	// A saved plan takes no configuration or variables.
	if r := iotplan(t, "apply", "-dev", "-data", dir, planFile, cfg); r.code != exitError || !strings.Contains(r.err, "applied as it is") {
		t.Errorf("plan with paths: %d %s", r.code, r.err)
	}
	if r := iotplan(t, "apply", "-dev", "-data", dir, "-var", "x=1", planFile); r.code != exitError || !strings.Contains(r.err, "Can't set variables when applying a saved plan") {
		t.Errorf("plan with -var: %d %s", r.code, r.err)
	}
}

// TestLockRefusesAConcurrentRun: while a run holds the state's lock, another is refused and
// told who holds it; force-unlock with the id frees it.
func TestLockRefusesAConcurrentRun(t *testing.T) {
	h, _, dir := safeHub(t)
	cfg := writeFile(t, "floors.hcl", `twin "floors" {
  target  = "tags.site = 'hq'"
  desired = { floor = 5 }
}`)
	store, err := state.Open(testClient(t, h), state.DefaultName)
	if err != nil {
		t.Fatal(err)
	}
	l, err := store.Lock(context.Background(), state.LockRequest{Operation: "apply", Version: "test"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	r := iotplan(t, "apply", "-dev", "-data", dir, "-auto-approve", cfg)
	if r.code != exitError || !strings.Contains(r.err, "is locked by") || !strings.Contains(r.err, "for apply, lock id "+l.Info().ID) || !strings.Contains(r.err, "force-unlock") {
		t.Fatalf("locked: exit %d\n%s", r.code, r.err)
	}
	if r := iotplan(t, "plan", "-dev", "-data", dir, "-lock=false", cfg); r.code != 0 {
		t.Errorf("plan -lock=false: %d %s", r.code, r.err)
	}
	mustRun(t, "force-unlock", "-dev", "-data", dir, "-force", l.Info().ID)
	mustRun(t, "apply", "-dev", "-data", dir, "-auto-approve", cfg)
}

// TestRemovalAndDestroy: a key that leaves the configuration is removed from the devices that
// still hold iotplan's value; destroy removes everything the state manages.
func TestRemovalAndDestroy(t *testing.T) {
	_, c, dir := safeHub(t)
	both := writeFile(t, "site.hcl", `twin "site" {
  target  = "tags.site = 'hq'"
  desired = { floor = 5, mode = "eco" }
  tags    = { owner = "ops" }
}`)
	mustRun(t, "apply", "-dev", "-data", dir, "-auto-approve", both)
	if _, err := c.UpdateTwin(context.Background(), "door-0", hubapi.TwinPatch{Properties: &hubapi.TwinProperties{Desired: map[string]any{"mode": "turbo"}}}, "*"); err != nil {
		t.Fatal(err)
	}
	fewer := writeFile(t, "site.hcl", `twin "site" {
  target  = "tags.site = 'hq'"
  desired = { floor = 5 }
  tags    = { owner = "ops" }
}`)
	r := mustRun(t, "apply", "-dev", "-data", dir, "-auto-approve", fewer)
	if !strings.Contains(r.out, `- desired.mode (was "eco")`) || !strings.Contains(r.out, "on 5 devices") {
		t.Errorf("removal plan:\n%s", r.out)
	}
	if _, ok := desired(t, c, "door-1")["mode"]; ok {
		t.Error("door-1 still has mode")
	}
	if got := desired(t, c, "door-0")["mode"]; got != "turbo" {
		t.Errorf("door-0 mode = %v, want turbo (someone else's value is left alone)", got)
	}
	r = mustRun(t, "destroy", "-dev", "-data", dir, "-auto-approve", fewer)
	if !strings.Contains(r.out, "- desired.floor (was 5)") || !strings.Contains(r.out, "- tags.owner") {
		t.Errorf("destroy plan:\n%s", r.out)
	}
	if d := desired(t, c, "door-3"); d["floor"] != nil {
		t.Errorf("door-3 desired after destroy: %v", d)
	}
	if r := mustRun(t, "state", "list", "-dev", "-data", dir); strings.TrimSpace(r.out) != "" {
		t.Errorf("state after destroy: %q", r.out)
	}
}

// TestRunOnceMethodsPlanNoChanges: with only run-once methods, a fleet where every device ran
// them plans "No changes" and -detailed-exitcode exits 0; a method without triggers exits 2.
func TestRunOnceMethodsPlanNoChanges(t *testing.T) {
	h, _, dir := safeHub(t)
	cfg := writeFile(t, "lock.hcl", `method "lock" {
  target   = "tags.site = 'hq'"
  method   = "lockDoor"
  triggers = { rev = 1 }
}`)
	mustRun(t, "apply", "-dev", "-data", dir, "-auto-approve", cfg)
	r := iotplan(t, "plan", "-dev", "-data", dir, "-detailed-exitcode", cfg)
	if r.code != 0 || !strings.Contains(r.out, "No changes.") {
		t.Fatalf("converged run-once: exit %d\n%s%s", r.code, r.out, r.err)
	}
	mustRun(t, "apply", "-dev", "-data", dir, "-auto-approve", cfg)
	if n := h.Sim().Calls("door-4", "lockDoor"); n != 1 {
		t.Errorf("door-4 ran lockDoor %d times over two applies of the same triggers", n)
	}
	every := writeFile(t, "lock.hcl", `method "lock" {
  target = "tags.site = 'hq'"
  method = "lockDoor"
}`)
	if r := iotplan(t, "plan", "-dev", "-data", dir, "-detailed-exitcode", every); r.code != exitChanges {
		t.Errorf("method without triggers: exit %d", r.code)
	}
}

// TestConflictAndEmptyTarget: two resources setting a key to different values on shared
// devices are a plan error naming both; a target that selects no device is a warning.
func TestConflictAndEmptyTarget(t *testing.T) {
	_, _, dir := safeHub(t)
	cfg := writeFile(t, "conflict.hcl", `twin "a" {
  target  = "tags.site = 'hq'"
  desired = { floor = 5 }
}
twin "b" {
  target  = "deviceId = 'door-1'"
  desired = { floor = 6 }
}`)
	r := iotplan(t, "plan", "-dev", "-data", dir, cfg)
	if r.code != exitError || !strings.Contains(r.err, "twin.a and twin.b both manage desired.floor") || !strings.Contains(r.err, "on 1 devices") {
		t.Fatalf("conflict: exit %d\n%s", r.code, r.err)
	}
	empty := writeFile(t, "empty.hcl", `twin "nobody" {
  target  = "tags.site = 'mars'"
  desired = { floor = 5 }
}`)
	r = mustRun(t, "plan", "-dev", "-data", dir, empty)
	if !strings.Contains(r.out, "Warning: twin.nobody: the target selects no device") {
		t.Errorf("empty target:\n%s", r.out)
	}
}

// TestSavedPlanWithHubBlock: a plan made with a hub block is applied from another directory:
// the hub block is read from where the plan was made.
func TestSavedPlanWithHubBlock(t *testing.T) {
	h, _, _ := safeHub(t)
	t.Setenv("IOTPLAN_VAR_cs", h.ServiceConnectionString())
	t.Setenv("SSL_CERT_FILE", h.CAFile())
	cfg := writeFile(t, "site.hcl", `variable "cs" {
  sensitive = true
}
hub {
  connection_string = var.cs
  state             = "site"
}
twin "floors" {
  target  = "tags.site = 'hq'"
  desired = { floor = 2 }
}`)
	planFile := filepath.Join(t.TempDir(), "site.plan")
	if r := iotplan(t, "plan", "-out", planFile, cfg); r.code != 0 {
		// Go reads SSL_CERT_FILE once per process: no test of this package may make a TLS
		// connection through the system roots before this one.
		t.Fatalf("plan with a hub block: exit %d: %s", r.code, oneLine(r.err))
	}
	r := mustRun(t, "apply", planFile)
	if !strings.Contains(r.out, "Apply complete!") {
		t.Errorf("apply of a saved plan with a hub block:\n%s", r.out)
	}
}
