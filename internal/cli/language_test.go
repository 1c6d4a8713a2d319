package cli

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/iotplan/iotplan/internal/filetest"
)

// languageTree is a configuration with for_each, a module, an output of plan facts and a
// variable file, as a Terraform user writes them.
var languageTree = map[string]string{
	"main.hcl": `
variable "floors" { type = map(number) }

twin "site" {
  for_each = var.floors
  target   = "tags.site = ${quote(each.key)}"
  desired  = { floor = each.value }
}

module "owner" {
  source = "./modules/owner"
  sites  = keys(var.floors)
}

output "hq_changing" { value = twin.site["hq"].devices }
output "owner_target" { value = module.owner.target }
`,
	"modules/owner/main.hcl": `
variable "sites" { type = list(string) }

twin "owner" {
  target = "tags.site IN ${quote(var.sites)}"
  tags   = { owner = "ops" }
}

output "target" { value = twin.owner.target }
`,
	"prod.vars": "floors = { hq = 7, lab = 2 }\n",
}

func TestLanguageEndToEnd(t *testing.T) {
	_, c, data := safeHub(t)
	cfg := filetest.WriteTree(t, languageTree)
	vars := filepath.Join(cfg, "prod.vars")

	// validate needs no values.
	if r := mustRun(t, "validate", cfg); !strings.Contains(r.out, "valid, checked without values for var.floors") {
		t.Errorf("validate: %s", r.out)
	}
	// plan without values fails, naming the ways to give one.
	if r := iotplan(t, "plan", "-dev", "-data", data, cfg); r.code != 1 || !strings.Contains(r.err, "-var-file") {
		t.Errorf("plan without values: exit %d\n%s", r.code, r.err)
	}

	r := mustRun(t, "plan", "-dev", "-data", data, "-var-file", vars, cfg)
	for _, want := range []string{`twin.site["hq"]`, `twin.site["lab"]`, "module.owner.twin.owner",
		"Outputs:", "hq_changing  = 6", `owner_target = "tags.site IN ['hq', 'lab']"`} {
		if !strings.Contains(r.out, want) {
			t.Errorf("plan lacks %q:\n%s", want, r.out)
		}
	}

	// -target: only the selected instance is planned and applied, with Terraform's warning;
	// the state records it alone.
	r = mustRun(t, "apply", "-dev", "-data", data, "-auto-approve", "-var-file", vars, "-target", `twin.site["hq"]`, cfg)
	if !strings.Contains(r.out, "Resource targeting is in effect") || strings.Contains(r.out, `twin.site["lab"]`) || strings.Contains(r.out, "module.owner") {
		t.Errorf("targeted apply:\n%s", r.out)
	}
	if got := desired(t, c, "door-3")["floor"]; got != 7.0 {
		t.Errorf("door-3 floor = %v, want 7", got)
	}
	if got := desired(t, c, "lab-1")["floor"]; got != nil {
		t.Errorf("lab-1 floor = %v: an untargeted resource was applied", got)
	}
	if r := mustRun(t, "state", "list", "-dev", "-data", data); strings.TrimSpace(r.out) != `twin.site["hq"]` {
		t.Errorf("state after a targeted apply: %q", r.out)
	}

	// -var after -var-file wins, as on Terraform's command line.
	mustRun(t, "apply", "-dev", "-data", data, "-auto-approve", "-var-file", vars, "-var", "floors={ hq = 7, lab = 4 }", cfg)
	if got := desired(t, c, "lab-1")["floor"]; got != 4.0 {
		t.Errorf("lab-1 floor = %v, want 4 (the later -var)", got)
	}
	state := mustRun(t, "state", "list", "-dev", "-data", data).out
	for _, want := range []string{`twin.site["hq"]`, `twin.site["lab"]`, "module.owner.twin.owner"} {
		if !strings.Contains(state, want) {
			t.Errorf("state lacks %s:\n%s", want, state)
		}
	}

	// state show and rm take addresses that select instances, like -target.
	if r := mustRun(t, "state", "show", "-dev", "-data", data, "twin.site"); !strings.Contains(r.out, `twin.site["hq"]`) || !strings.Contains(r.out, `twin.site["lab"]`) {
		t.Errorf("state show twin.site:\n%s", r.out)
	}
	if r := iotplan(t, "state", "rm", "-dev", "-data", data, "twin.sit"); r.code != 1 || !strings.Contains(r.err, "did you mean twin.site") {
		t.Errorf("state rm twin.sit: exit %d\n%s", r.code, r.err)
	}
	if r := mustRun(t, "state", "rm", "-dev", "-data", data, "module.owner"); !strings.Contains(r.out, "Removed module.owner.twin.owner") || !strings.Contains(r.out, "Removed 1 resource") {
		t.Errorf("state rm module.owner:\n%s", r.out)
	}
	if r := mustRun(t, "state", "list", "-dev", "-data", data); strings.Contains(r.out, "module.owner") || !strings.Contains(r.out, `twin.site["lab"]`) {
		t.Errorf("state after rm module.owner:\n%s", r.out)
	}

	// A target that selects nothing, or is no address, is refused before anything runs.
	if r := iotplan(t, "plan", "-dev", "-data", data, "-var-file", vars, "-target", "twin.sit", cfg); r.code != 1 || !strings.Contains(r.err, "selects no resource") || !strings.Contains(r.err, "did you mean twin.site?") {
		t.Errorf("-target twin.sit: exit %d\n%s", r.code, r.err)
	}
	if r := iotplan(t, "plan", "-dev", "-data", data, "-target", "var.floors", cfg); r.code != 1 || !strings.Contains(r.err, "expected module, twin or method") {
		t.Errorf("-target var.floors: exit %d\n%s", r.code, r.err)
	}
}

// TestVarFlagNeverEchoesAValue: a malformed -var is reported without its value, through
// the whole command line (pflag would quote a value its Set refused).
func TestVarFlagNeverEchoesAValue(t *testing.T) {
	cfg := filetest.WriteTree(t, map[string]string{"main.hcl": `variable "k" {}`})
	const secret = "c2VjcmV0LWtleQ=="
	r := iotplan(t, "validate", "-var", "="+secret, cfg)
	if r.code != 1 || strings.Contains(r.out+r.err, secret) || !strings.Contains(r.err, "name=value") {
		t.Errorf("exit %d\nstdout %s\nstderr %s", r.code, r.out, r.err)
	}
}

// TestBuildingsExamplePlans: examples/buildings plans against the default fleet of the local
// hub with its variable file, and -target narrows it to one building.
func TestBuildingsExamplePlans(t *testing.T) {
	_, data := testHub(t, "")
	dir := filepath.Join("..", "..", "examples", "buildings")
	vars := filepath.Join(dir, "prod.vars")
	r := mustRun(t, "plan", "-dev", "-data", data, "-var-file", vars, dir)
	for _, want := range []string{`twin.floor["41"]`, `twin.floor["43"]`, "module.site.twin.owner", "doors_changing = "} {
		if !strings.Contains(r.out, want) {
			t.Errorf("plan lacks %q:\n%s", want, r.out)
		}
	}
	r = mustRun(t, "plan", "-dev", "-data", data, "-var-file", vars, "-target", `twin.floor["43"]`, dir)
	if strings.Contains(r.out, `twin.floor["41"]`) || !strings.Contains(r.out, `twin.floor["43"]`) || !strings.Contains(r.out, "(not known in this plan)") {
		t.Errorf("targeted plan:\n%s", r.out)
	}
}

func TestValidateCountsInstancesWithValues(t *testing.T) {
	cfg := filetest.WriteTree(t, languageTree)
	r := mustRun(t, "validate", "-var-file", filepath.Join(cfg, "prod.vars"), cfg)
	if strings.TrimSpace(r.out) != "Success! The configuration is valid: 3 twin resources and 0 method resources." {
		t.Errorf("validate with values: %q", r.out)
	}
}
