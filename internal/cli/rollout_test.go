package cli

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iotplan/iotplan/internal/hub/hubtest"
)

// TestRolloutExampleEndToEnd applies examples/rollout.hcl to the default fleet of the local
// hub: the twin's three waves each wait for the devices to report the new channel, the
// method's two waves run, and the plan after it has nothing left for the twin.
func TestRolloutExampleEndToEnd(t *testing.T) {
	_, data := testHub(t, "")
	example := filepath.Join("..", "..", "examples", "rollout.hcl")
	r := iotplan(t, "apply", "-dev", "-data", data, "-auto-approve", example)
	for _, want := range []string{
		"# rollout in 3 waves, stopping when more than 5% of a wave's devices fail, 2s between waves",
		"#   wave 1  5%    15 devices", "#   wave 3  100%  225 devices",
		"after each wave, waits up to 2m until 95% of the targeted devices report the desired values",
		"twin.firmware_channel: wave 1 of 3 done (0 failed of 15 attempted)",
		"twin.firmware_channel: pausing 2s before wave 2",
		"report the desired values", "— converged",
		"twin.firmware_channel: wave 3 of 3 done",
		"method.lock_doors: wave 2 of 2 done",
	} {
		if !strings.Contains(r.out+r.err, want) { // the plan on stdout, progress on stderr
			t.Errorf("apply output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("stdout:\n%s\nstderr:\n%s", r.out, r.err)
	}
	// Offline doors and jammed ones fail lockDoor (the default fleet's realistic failures).
	if r.code != 1 || !strings.Contains(r.out, "Apply finished with failures") {
		t.Errorf("exit %d", r.code)
	}
	p := mustRun(t, "plan", "-dev", "-data", data, example)
	if strings.Contains(p.out, "twin.firmware_channel will be updated") {
		t.Errorf("the twin's rollout left drift:\n%s", p.out)
	}
}

// TestRolloutAbortAndResumeCLI: wave 2 fails above max_failure_ratio, so apply stops (exit 1)
// without starting wave 3 and says how the next apply goes on; the state records it, and the
// next plan resumes at wave 2 with wave 1 shown done.
func TestRolloutAbortAndResumeCLI(t *testing.T) {
	h, data := testHub(t, writeFile(t, "fleet.hcl", hubtest.RolloutFleet))
	cfg := writeFile(t, "lock.hcl", `
method "lock" {
  target   = "tags.site = 'hq'"
  method   = "lockDoor"
  triggers = { rev = 1 }
  rollout {
    waves             = ["10%", "50%", "100%"]
    max_failure_ratio = 0.1
  }
}`)
	r := iotplan(t, "apply", "-dev", "-data", data, "-auto-approve", cfg)
	if r.code != 1 || !strings.Contains(r.out, "method.lock: stopped at wave 2: 30 of 80 devices failed in wave 2 (37.5%), more than max_failure_ratio 0.1") ||
		!strings.Contains(r.out, "the rollout of method.lock stopped at wave 2") {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.out, r.err)
	}
	calls := 0
	for i := 50; i < 150; i++ {
		calls += h.Sim().Calls(fmt.Sprintf("c-%03d", i), "lockDoor")
	}
	if calls != 0 {
		t.Errorf("wave 3 ran on %d devices", calls)
	}
	if s := mustRun(t, "state", "show", "-dev", "-data", data, "-json", "method.lock"); !strings.Contains(s.out, `"completed": 1`) {
		t.Errorf("state:\n%s", s.out)
	}
	p := mustRun(t, "plan", "-dev", "-data", data, cfg)
	if !strings.Contains(p.out, "resumes at wave 2") || !strings.Contains(p.out, "wave 1  10%   done in an earlier apply") {
		t.Errorf("plan after the abort:\n%s", p.out)
	}
}
