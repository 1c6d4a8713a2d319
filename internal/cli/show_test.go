package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/reconcile"
)

// showSecret is the value of a sensitive variable in savedPlanFile's plan: the file holds
// it (apply must send it); no form of 'show' may print it.
const showSecret = "s3cr3t-sh0w-t0ken"

// savedPlanFile saves a plan like 'plan -out' does, made at a fixed time on a fixed hub, so
// that what 'show' prints can be pinned: a twin update with a sensitive key, a method with a
// sensitive payload, and a resource with nothing to do.
func savedPlanFile(t *testing.T) string {
	t.Helper()
	raw := func(s string) json.RawMessage { return json.RawMessage(s) }
	p := &reconcile.Plan{FormatVersion: reconcile.FormatVersion, CreatedAt: time.Date(2026, 11, 25, 17, 0, 0, 0, time.UTC),
		Hub: "contoso.azure-devices.net", ApplyID: "0a1b2c3d4e", StateName: "doors", StateSerial: 7, StateLineage: "lin-1",
		TierName: "S1", TierUnits: 1, HubCalls: map[string]int{"query": 9},
		Resources: []reconcile.ResourceChange{
			{Addr: "twin.door_location", Kind: reconcile.KindTwin, Action: reconcile.Update, Target: "tags.site = 'hq'",
				TargetedDevices: 300, Devices: 120, SensitiveKeys: []string{"desired.token"},
				Transitions: []reconcile.Transition{
					{Key: "desired.building", Op: reconcile.OpChange, From: raw(`"42"`), To: raw(`"43"`), Devices: 100, SampleDeviceIDs: []string{"door-001", "door-002"}},
					{Key: "desired.token", Op: reconcile.OpAdd, To: raw(`"` + showSecret + `"`), Devices: 20},
				},
				Jobs: []reconcile.PlannedJob{{Devices: 120, ExpectedSeconds: 12, Request: hubapi.JobRequest{JobID: "iotplan-door-location-0a1b", Type: hubapi.JobTypeUpdateTwin,
					QueryCondition: "tags.site = 'hq'", UpdateTwin: &hubapi.TwinPatch{ETag: "*"}, MaxExecutionTimeInSeconds: 3600}}}},
			{Addr: "method.rotate", Kind: reconcile.KindMethod, Action: reconcile.Invoke, Target: "tags.site = 'hq'",
				TargetedDevices: 300, Devices: 300, SensitivePayload: true, SampleDeviceIDs: []string{"door-001"},
				Jobs: []reconcile.PlannedJob{{Devices: 300, ExpectedSeconds: 30, Request: hubapi.JobRequest{JobID: "iotplan-rotate-0a1b", Type: hubapi.JobTypeDeviceMethod,
					QueryCondition: "tags.site = 'hq'", MaxExecutionTimeInSeconds: 600, CloudToDeviceMethod: &hubapi.CloudToDeviceMethod{
						MethodName: "rotate", Payload: raw(`{"token":"` + showSecret + `"}`), ResponseTimeoutInSeconds: 30}}}}},
			{Addr: "twin.lab", Kind: reconcile.KindTwin, Action: reconcile.NoOp, Target: "tags.site = 'lab'", TargetedDevices: 4},
		}}
	path := filepath.Join(t.TempDir(), "doors.plan")
	if err := reconcile.SavePlan(path, p); err != nil {
		t.Fatal(err)
	}
	return path
}

// compareShowGolden compares got with testdata/show/NAME, or rewrites it with -update.
func compareShowGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "show", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test ./internal/cli -run TestShow -update writes it)", err)
	}
	if got != string(want) {
		t.Errorf("show output differs from %s:\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// TestShowSavedPlan: 'show' reads a saved plan without a hub (none is configured), for people
// (pinned by golden files, text and Markdown) and for scripts (-json), and never prints the
// sensitive values the file holds.
func TestShowSavedPlan(t *testing.T) {
	t.Setenv(envConnectionString, "")
	plan := savedPlanFile(t)
	if b, _ := os.ReadFile(plan); !strings.Contains(string(b), showSecret) {
		t.Fatal("the fixture's plan file does not hold the sensitive value: the test would prove nothing")
	}
	for _, tc := range []struct{ golden string }{{"plan.txt.golden"}, {"plan.md.golden"}} {
		args := []string{"show", plan}
		if strings.HasSuffix(tc.golden, ".md.golden") {
			args = []string{"show", "-format", "markdown", plan}
		}
		r := iotplan(t, args...)
		if r.code != 0 || r.err != "" {
			t.Fatalf("%v: exit %d\n%s%s", args, r.code, r.out, r.err)
		}
		if strings.Contains(r.out, showSecret) {
			t.Errorf("%v prints a sensitive value:\n%s", args, r.out)
		}
		compareShowGolden(t, tc.golden, r.out)
	}

	r := iotplan(t, "show", "-json", plan)
	if r.code != 0 || strings.Contains(r.out, showSecret) {
		t.Fatalf("show -json: exit %d, or a sensitive value in\n%s%s", r.code, r.out, r.err)
	}
	var doc struct {
		FormatVersion   string `json:"format_version"`
		Hub             string `json:"hub"`
		State           struct{ Name string }
		ResourceChanges []struct {
			Address, Action, Target string
			Devices                 int
			Transitions             []struct {
				Key             string
				From, To        json.RawMessage
				Devices         int
				Sensitive       bool
				SampleDeviceIDs []string `json:"sample_device_ids"`
			}
		} `json:"resource_changes"`
		Summary struct{ Update, Invoke int }
	}
	if err := json.Unmarshal([]byte(r.out), &doc); err != nil {
		t.Fatalf("show -json is not one JSON document: %v\n%s", err, r.out)
	}
	rc := doc.ResourceChanges
	if doc.FormatVersion != "1.0" || doc.Hub != "contoso.azure-devices.net" || doc.State.Name != "doors" || len(rc) != 3 ||
		doc.Summary.Update != 1 || doc.Summary.Invoke != 1 {
		t.Fatalf("show -json = %+v", doc)
	}
	building, token := rc[0].Transitions[0], rc[0].Transitions[1]
	if string(building.From) != `"42"` || string(building.To) != `"43"` || building.Devices != 100 || len(building.SampleDeviceIDs) != 2 ||
		!token.Sensitive || string(token.To) != `"(sensitive value)"` || token.Devices != 20 {
		t.Errorf("transitions = %+v", rc[0].Transitions)
	}
}

func TestShowRefusesWhatIsNoPlan(t *testing.T) {
	notPlan := filepath.Join(t.TempDir(), "main.hcl")
	os.WriteFile(notPlan, []byte("twin \"t\" {}\n"), 0o644)
	for _, args := range [][]string{
		{"show", filepath.Join(t.TempDir(), "missing.plan")},
		{"show", "-json", notPlan},
		{"show", "-format", "yaml", notPlan},
		{"show", "-json", "-format", "markdown", notPlan},
	} {
		if r := iotplan(t, args...); r.code != exitError || r.out != "" || !strings.HasPrefix(r.err, "Error: ") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 1 and one error", args, r.code, r.out, r.err)
		}
	}
}
