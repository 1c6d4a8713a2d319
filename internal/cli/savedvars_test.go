package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iotplan/iotplan/internal/reconcile"
)

// siteConfig takes every value from variables: the site and the floor (primitive types), the
// labels (a map, from a variable file) and the state's name (in the hub block, which applying
// a saved plan reads again).
const siteConfig = `variable "site" {
  type = string
}
variable "floor" {
  type = number
}
variable "labels" {
  type = map(string)
}
variable "state_name" {
  type = string
}
hub {
  state = var.state_name
}
twin "floors" {
  target  = "tags.site = ${quote(var.site)}"
  desired = { floor = var.floor, label = var.labels[var.site] }
}
`

// TestSavedPlanKeepsVariables: a plan made with -var-file and -var is applied without them,
// from another directory, after the variable file is gone: the plan holds the values, and they
// win over the environment at apply, as in Terraform
// (https://developer.hashicorp.com/terraform/cli/commands/apply, "Saved plan mode").
func TestSavedPlanKeepsVariables(t *testing.T) {
	_, c, dir := safeHub(t)
	cfg := writeFile(t, "site.hcl", siteConfig)
	varFile := writeFile(t, "prod.vars", `site   = "hq"
labels = { hq = "main", lab = "annex" }
`)
	planFile := filepath.Join(t.TempDir(), "site.plan")
	r := mustRun(t, "plan", "-dev", "-data", dir, "-var-file", varFile, "-var", "floor=4", "-var", "state_name=doors", "-out", planFile, cfg)
	if !strings.Contains(r.out, "desired.floor: 1 → 4") || strings.Contains(r.out, "needs the sensitive") {
		t.Fatalf("plan:\n%s", r.out)
	}
	p, err := reconcile.LoadPlan(planFile)
	if err != nil {
		t.Fatal(err)
	}
	if p.FormatVersion != reconcile.FormatVersion || len(p.Variables) != 4 || p.Variables[0].Name != "site" || p.Variables[0].Source != "-var-file "+varFile {
		t.Fatalf("the plan's variables: %+v", p.Variables)
	}
	if err := os.Remove(varFile); err != nil {
		t.Fatal(err)
	}
	// Another value in the environment: the plan's wins (another state name would refuse it).
	t.Setenv("IOTPLAN_VAR_state_name", "other")
	t.Setenv("IOTPLAN_VAR_floor", "9")
	t.Chdir(t.TempDir())
	r = mustRun(t, "apply", "-dev", "-data", dir, planFile)
	if !strings.Contains(r.out, "Apply complete!") {
		t.Fatalf("apply of the saved plan:\n%s%s", r.out, r.err)
	}
	if d := desired(t, c, "door-0"); d["floor"] != 4.0 || d["label"] != "main" {
		t.Errorf("door-0 desired = %v, want floor 4, label main", d)
	}
	if d := desired(t, c, "lab-1"); d["floor"] != nil {
		t.Errorf("lab-1 desired = %v, want untouched", d)
	}
	// The state the plan named (var.state_name = "doors") holds the resource.
	if r := mustRun(t, "state", "list", "-dev", "-data", dir, "-state", "doors"); strings.TrimSpace(r.out) != "twin.floors" {
		t.Errorf("state doors: %q", r.out)
	}

	// A saved plan is applied with the values it holds: -var and -var-file are refused, as
	// Terraform refuses them, before anything is read.
	mustRun(t, "plan", "-dev", "-data", dir, "-var-file", writeFile(t, "p.vars", "site = \"hq\"\nlabels = { hq = \"x\" }\n"), "-var", "floor=5", "-var", "state_name=doors", "-out", planFile, cfg)
	for _, args := range [][]string{{"-var", "floor=6"}, {"-var-file", writeFile(t, "x.vars", "floor = 6\n")}} {
		r := iotplan(t, append(append([]string{"apply", "-dev", "-data", dir}, args...), planFile)...)
		if r.code != exitError || !strings.Contains(r.err, "Error: Can't set variables when applying a saved plan") || !strings.Contains(r.err, "IOTPLAN_VAR_") {
			t.Errorf("apply %v PLANFILE: exit %d\n%s", args, r.code, r.err)
		}
	}
	if d := desired(t, c, "door-0"); d["floor"] != 4.0 {
		t.Errorf("door-0 floor = %v after refused applies, want 4", d["floor"])
	}
}

// TestSavedPlanSensitiveVariables: a saved plan does not hold the values of sensitive
// variables (the hub's connection string is usually one, and a plan never holds a key). Plan,
// show and apply say so, naming the variables; applying needs them again from the environment
// and says which are missing; no output ever shows a value.
func TestSavedPlanSensitiveVariables(t *testing.T) {
	h, dir := testHub(t, "")
	cfg := writeFile(t, "secret.hcl", secretTwinConfig+`
variable "note" {
  type    = string
  default = "n"
}
`)
	planFile := filepath.Join(t.TempDir(), "secret.plan")
	r := mustRun(t, "plan", "-dev", "-data", dir, "-var", "token="+secretValue, "-var", "device=myDeviceId", "-var", "note=kept", "-out", planFile, cfg)
	const need = "Applying it needs the sensitive var.token, var.device given again (IOTPLAN_VAR_token, IOTPLAN_VAR_device"
	// (Example device ids are shown, as in every plan; the sensitive target is not: myDeviceId'.)
	if !strings.Contains(r.out, need) || strings.Contains(r.out+r.err, secretValue) || strings.Contains(r.out, "myDeviceId'") {
		t.Errorf("plan -out:\n%s%s", r.out, r.err)
	}

	// The file holds the value the plan sends to the devices (documented), but no variable's.
	raw, err := os.ReadFile(planFile)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Variables []map[string]any `json:"variables"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	vars, _ := json.Marshal(doc.Variables)
	if len(doc.Variables) != 3 || strings.Contains(string(vars), secretValue) || strings.Contains(string(vars), "myDeviceId") ||
		!strings.Contains(string(vars), `"value":{"type":"string","value":"kept"}`) {
		t.Errorf("the plan's variables: %s", vars)
	}
	for _, v := range doc.Variables {
		if v["name"] != "note" && (v["sensitive"] != true || v["value"] != nil || v["source"] != "-var") {
			t.Errorf("sensitive variable recorded as %v", v)
		}
	}

	for _, args := range [][]string{{"show", planFile}, {"show", "-format", "markdown", planFile}, {"show", "-json", planFile}} {
		r := mustRun(t, args...)
		if strings.Contains(r.out, secretValue) || strings.Contains(r.out, "myDeviceId'") {
			t.Errorf("%v shows a sensitive value:\n%s", args, r.out)
		}
		if args[1] != "-json" && !strings.Contains(strings.ReplaceAll(r.out, `\_`, "_"), "IOTPLAN_VAR_token") {
			t.Errorf("%v does not say which variables applying needs:\n%s", args, r.out)
		}
	}

	// Without them, apply is refused before it touches anything, naming each variable.
	for _, name := range []string{"IOTPLAN_VAR_token", "IOTPLAN_VAR_device"} {
		t.Setenv(name, "") // restored after the test
		os.Unsetenv(name)
	}
	r = iotplan(t, "apply", "-dev", "-data", dir, planFile)
	if r.code != exitError || strings.Count(r.err, "No value for sensitive variable") != 2 ||
		!strings.Contains(r.err, `sensitive variable "token" from -var`) || !strings.Contains(r.err, "IOTPLAN_VAR_device") ||
		strings.Contains(r.out+r.err, secretValue) || strings.Contains(r.out, "Apply complete") {
		t.Fatalf("apply without the sensitive variables: exit %d\n%s%s", r.code, r.out, r.err)
	}
	if _, ok := desired(t, testClient(t, h), "myDeviceId")["token"]; ok {
		t.Fatal("a refused apply wrote the token")
	}

	// From the environment, it applies what was planned.
	t.Setenv("IOTPLAN_VAR_token", secretValue)
	t.Setenv("IOTPLAN_VAR_device", "myDeviceId")
	r = mustRun(t, "apply", "-dev", "-data", dir, planFile)
	if !strings.Contains(r.out, "Apply complete!") || strings.Contains(r.out+r.err, secretValue) {
		t.Fatalf("apply with the sensitive variables from the environment:\n%s%s", r.out, r.err)
	}
	if got := desired(t, testClient(t, h), "myDeviceId")["token"]; got != secretValue {
		t.Errorf("desired.token = %v, want the planned value", got)
	}
}
