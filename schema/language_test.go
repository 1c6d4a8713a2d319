package schema

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/iotplan/iotplan/internal/filetest"
)

func mustLoad(t *testing.T, paths []string, opts Options) *Config {
	t.Helper()
	cfg, diags := LoadWith(paths, opts)
	if diags.HasErrors() {
		t.Fatalf("unexpected errors: %s", diagText(diags))
	}
	return cfg
}

func diagText(diags hcl.Diagnostics) string {
	var b strings.Builder
	for _, d := range diags {
		b.WriteString(d.Error())
		b.WriteString("\n")
	}
	return b.String()
}

// wantDiag requires a diagnostic whose summary and detail contain the given texts.
func wantDiag(t *testing.T, diags hcl.Diagnostics, summary, detail string) *hcl.Diagnostic {
	t.Helper()
	for _, d := range diags {
		if strings.Contains(d.Summary, summary) && strings.Contains(d.Detail, detail) {
			return d
		}
	}
	t.Fatalf("no diagnostic %q with %q in:\n%s", summary, detail, diagText(diags))
	return nil
}

func varValue(t *testing.T, cfg *Config, name string) (string, string) {
	t.Helper()
	for _, v := range cfg.Variables {
		if v.Name == name {
			return v.Value.AsString(), v.Source
		}
	}
	t.Fatalf("no variable %s", name)
	return "", ""
}

const sevenVars = `
variable "a" { default = "default" }
variable "b" { default = "default" }
variable "c" { default = "default" }
variable "d" { default = "default" }
variable "e" { default = "default" }
variable "f" { default = "default" }
variable "g" { default = "default" }
`

// TestVariablePrecedence: default < IOTPLAN_VAR_ < iotplan.vars < *.auto.vars (name order)
// < -var and -var-file in the order given, as Terraform orders its sources.
func TestVariablePrecedence(t *testing.T) {
	dir := filetest.WriteTree(t, map[string]string{
		"main.hcl":     sevenVars,
		"iotplan.vars": "b = \"iotplan.vars\"\nc = \"iotplan.vars\"\nd = \"iotplan.vars\"\ne = \"iotplan.vars\"\nf = \"iotplan.vars\"\n",
		"1.auto.vars":  "c = \"1.auto\"\nd = \"1.auto\"\n",
		"2.auto.vars":  "d = \"2.auto\"\n",
		"x.vars":       "e = \"x.vars\"\nf = \"x.vars\"\ng = \"x.vars\"\n",
	})
	t.Setenv(EnvVarPrefix+"a", "env")
	t.Setenv(EnvVarPrefix+"b", "env")
	cfg := mustLoad(t, []string{dir}, Options{Args: []VarArg{
		{Name: "f", Value: "-var before the file"},
		{File: filepath.Join(dir, "x.vars")},
		{Name: "g", Value: "-var after the file"},
	}})
	want := map[string][2]string{
		"a": {"env", "IOTPLAN_VAR_a"},
		"b": {"iotplan.vars", "iotplan.vars"},
		"c": {"1.auto", "1.auto.vars"},
		"d": {"2.auto", "2.auto.vars"},
		"e": {"x.vars", "-var-file " + filepath.Join(dir, "x.vars")},
		"f": {"x.vars", "-var-file " + filepath.Join(dir, "x.vars")},
		"g": {"-var after the file", "-var"},
	}
	for name, w := range want {
		if v, src := varValue(t, cfg, name); v != w[0] || src != w[1] {
			t.Errorf("var.%s = %q from %q, want %q from %q", name, v, src, w[0], w[1])
		}
	}
	// -var-file values are typed like the configuration's, not text.
	dir2 := filetest.WriteTree(t, map[string]string{
		"main.hcl": `variable "floors" { type = map(number) }`,
		"v.vars":   `floors = { "41" = 1, "43" = 3 }`,
	})
	cfg = mustLoad(t, []string{dir2}, Options{Args: []VarArg{{File: filepath.Join(dir2, "v.vars")}}})
	if got := cfg.Variables[0].Value; !got.Equals(cty.MapVal(map[string]cty.Value{"41": cty.NumberIntVal(1), "43": cty.NumberIntVal(3)})).True() {
		t.Errorf("floors = %#v", got)
	}
	// NoAutoVars skips the auto-loaded files.
	cfg = mustLoad(t, []string{dir}, Options{NoAutoVars: true})
	if v, _ := varValue(t, cfg, "d"); v != "default" {
		t.Errorf("with NoAutoVars var.d = %q", v)
	}
}

func TestVariableFileErrors(t *testing.T) {
	dir := filetest.WriteTree(t, map[string]string{
		"main.hcl": `
variable "floor" { type = number }
variable "token" {
  type      = number
  sensitive = true
}
variable "site" {}
`,
		"bad.vars": "floor = \"three\"\ntoken = \"s3cr3t-token\"\nsite = var.other\nsit = \"hq\"\n",
	})
	_, diags := LoadWith([]string{dir}, Options{Args: []VarArg{{File: filepath.Join(dir, "bad.vars")}}})
	d := wantDiag(t, diags, "Invalid value for variable", "var.floor in -var-file")
	if d.Subject == nil || d.Subject.Start.Line != 1 || !strings.HasSuffix(d.Subject.Filename, "bad.vars") {
		t.Errorf("floor's error is not located at bad.vars:1: %v", d.Subject)
	}
	// A sensitive variable's error points at its declaration, never at the line holding it.
	d = wantDiag(t, diags, "Invalid value for variable", "var.token")
	if d.Subject == nil || strings.HasSuffix(d.Subject.Filename, "bad.vars") {
		t.Errorf("a sensitive value's error points into the variable file: %v", d.Subject)
	}
	wantDiag(t, diags, "Variables not allowed", "constant values only")
	w := wantDiag(t, diags, "Value for undeclared variable", `Did you mean "site"?`)
	if w.Severity != hcl.DiagWarning {
		t.Error("an undeclared variable in a file is a warning, as in Terraform")
	}
	if strings.Contains(diagText(diags), "s3cr3t-token") {
		t.Error("a diagnostic shows the sensitive value")
	}
	// -var for an undeclared variable is an error with a suggestion.
	_, diags = LoadWith([]string{dir}, Options{Args: []VarArg{{Name: "flor", Value: "3"}, {Name: "floor", Value: "3"}, {Name: "token", Value: "1"}, {Name: "site", Value: "x"}}})
	if d := wantDiag(t, diags, "Value for undeclared variable", `Did you mean "floor"?`); d.Severity != hcl.DiagError {
		t.Error("an undeclared -var must be an error")
	}
	// A -var-file that does not exist.
	_, diags = LoadWith([]string{dir}, Options{Args: []VarArg{{File: filepath.Join(dir, "missing.vars")}}})
	wantDiag(t, diags, "Failed to read variable file", "missing.vars")
}

func TestVariableValidationAndNullable(t *testing.T) {
	src := `
variable "site" {
  type = string
  validation {
    condition     = length(var.site) > 1 && lower(var.site) == var.site
    error_message = "The site must be a lower-case name of two letters or more."
  }
}
variable "floor" {
  type     = number
  nullable = false
  default  = 3
}
`
	dir := filetest.WriteTree(t, map[string]string{"main.hcl": src, "null.vars": "floor = null\n"})
	cfg := mustLoad(t, []string{dir}, Options{Args: []VarArg{{Name: "site", Value: "hq"}, {File: filepath.Join(dir, "null.vars")}}})
	if v := cfg.Variables[1].Value; !v.Equals(cty.NumberIntVal(3)).True() {
		t.Errorf("a null for a non-nullable variable takes its default, got %#v", v)
	}
	_, diags := LoadWith([]string{dir}, Options{Args: []VarArg{{Name: "site", Value: "HQ"}}})
	d := wantDiag(t, diags, "Invalid value for variable", "The site must be a lower-case name")
	if d.Subject == nil || d.Subject.Start.Line != 5 {
		t.Errorf("the validation error is not at the condition: %v", d.Subject)
	}
	if !strings.Contains(d.Detail, "from -var") {
		t.Errorf("the error does not say where the value came from: %s", d.Detail)
	}
	// Validation rules refer to their own variable only.
	dir = filetest.WriteTree(t, map[string]string{"main.hcl": `
variable "a" { default = 1 }
variable "b" {
  default = 2
  validation {
    condition     = var.b > var.a
    error_message = "b must be larger."
  }
}
variable "c" {
  type     = string
  nullable = false
  default  = null
}`})
	_, diags = LoadWith([]string{dir}, Options{})
	wantDiag(t, diags, "Invalid reference in variable validation", "var.b")
	wantDiag(t, diags, "Invalid default value for variable", "nullable = false")
}

// TestValidateWithoutValues: like terraform validate, checking needs no variable values,
// and still finds what is wrong regardless of them.
func TestValidateWithoutValues(t *testing.T) {
	dir := filetest.WriteTree(t, map[string]string{"main.hcl": `
variable "site" { type = string }
variable "floors" { type = map(number) }
twin "doors" {
  target  = "tags.site = ${quote(var.site)}"
  desired = { floor = 3 }
}
twin "floor" {
  for_each = var.floors
  target   = "tags.building = ${quote(each.key)}"
  desired  = { floor = each.value }
}
method "reboot" {
  target = twin.doors.target
  method = "reboot now"
}
`})
	_, diags := LoadWith([]string{dir}, Options{})
	wantDiag(t, diags, "No value for required variable", `"site"`)
	_, diags = LoadWith([]string{dir}, Options{Validate: true})
	if n := len(diags.Errs()); n != 1 {
		t.Fatalf("validate without values: want exactly the bad method name, got:\n%s", diagText(diags))
	}
	wantDiag(t, diags, "Invalid method name", "space")
}

func TestForEachAndCount(t *testing.T) {
	dir := filetest.WriteTree(t, map[string]string{"main.hcl": `
variable "floors" {
  default = { "41" = 1, "43" = 3 }
}
twin "building" {
  for_each = var.floors
  target   = "tags.building = ${quote(each.key)}"
  desired  = { floor = each.value }
}
twin "ring" {
  count   = 2
  target  = "tags.ring = ${count.index}"
  tags    = { ring = "r${count.index}" }
}
twin "sites" {
  for_each = toset(["hq", "lab"])
  target   = "tags.site = ${quote(each.value)}"
  tags     = { site_ok = true }
}
method "reboot" {
  for_each = twin.building
  target   = each.value.target
  method   = "reboot"
}
method "one" {
  target = twin.building["43"].target
  method = "lockDoor"
}
`})
	cfg := mustLoad(t, []string{dir}, Options{})
	want := []string{`twin.building["41"]`, `twin.building["43"]`, "twin.ring[0]", "twin.ring[1]",
		`twin.sites["hq"]`, `twin.sites["lab"]`, `method.reboot["41"]`, `method.reboot["43"]`, "method.one"}
	if got := cfg.Addresses(); !reflect.DeepEqual(got, want) {
		t.Fatalf("addresses %q, want %q", got, want)
	}
	b43 := cfg.Twin(`twin.building["43"]`)
	if b43.TargetSrc != "tags.building = '43'" || b43.Desired["floor"] != 3.0 || b43.Name != "building" || b43.Key != `["43"]` {
		t.Errorf("building[43] = %+v", b43)
	}
	if r := cfg.Twin("twin.ring[1]"); r.TargetSrc != "tags.ring = 1" || r.Tags["ring"] != "r1" {
		t.Errorf("ring[1] = %+v", r)
	}
	if m := cfg.Method("method.one"); m.TargetSrc != "tags.building = '43'" {
		t.Errorf("method.one target %q", m.TargetSrc)
	}
	if m := cfg.Method(`method.reboot["41"]`); m.TargetSrc != "tags.building = '41'" {
		t.Errorf(`method.reboot["41"] target %q`, m.TargetSrc)
	}
}

func TestRepetitionErrors(t *testing.T) {
	dir := filetest.WriteTree(t, map[string]string{"main.hcl": `
variable "secret" {
  default   = { a = 1 }
  sensitive = true
}
twin "list" {
  for_each = ["a", "b"]
  target   = "*"
  tags     = { x = 1 }
}
twin "both" {
  for_each = { a = 1 }
  count    = 1
  target   = "*"
  tags     = { x = 1 }
}
twin "secret" {
  for_each = var.secret
  target   = "*"
  tags     = { x = 1 }
}
twin "nokey" {
  target = "tags.x = ${quote(each.key)}"
  tags   = { x = 1 }
}
twin "typo" {
  for_each = { a = 1 }
  target   = "tags.x = ${quote(each.val)}"
  tags     = { x = count.index }
}
twin "none" {
  count  = 0
  target = "*"
  tags   = { x = 1 }
  depends_on = []
}
twin "negative" {
  count  = -1
  target = "*"
  tags   = { x = 1 }
}
`})
	_, diags := LoadWith([]string{dir}, Options{})
	wantDiag(t, diags, "Invalid for_each argument", "toset")
	wantDiag(t, diags, `Invalid combination of "count" and "for_each"`, "")
	wantDiag(t, diags, "Invalid for_each argument", "sensitive")
	wantDiag(t, diags, `Reference to "each" in a block without for_each`, "")
	wantDiag(t, diags, "Invalid reference", `Did you mean "value"?`)
	wantDiag(t, diags, `Reference to "count" in a block without count`, "")
	wantDiag(t, diags, "Invalid count argument", "whole number")
	wantDiag(t, diags, "Unsupported argument", "depends_on")
}

func TestDynamicBlocks(t *testing.T) {
	dir := filetest.WriteTree(t, map[string]string{"main.hcl": `
variable "keep" { default = true }
twin "t" {
  target = "*"
  tags   = { x = 1 }
  dynamic "lifecycle" {
    for_each = var.keep ? [1] : []
    content {
      keep_on_removal = true
    }
  }
}
`})
	cfg := mustLoad(t, []string{dir}, Options{})
	if !cfg.Twins[0].KeepOnRemoval {
		t.Error("the dynamic lifecycle block was not expanded")
	}
	cfg = mustLoad(t, []string{dir}, Options{Args: []VarArg{{Name: "keep", Value: "false"}}})
	if cfg.Twins[0].KeepOnRemoval {
		t.Error("the dynamic lifecycle block was expanded for an empty for_each")
	}
}

func TestModules(t *testing.T) {
	dir := filetest.WriteTree(t, map[string]string{
		"main.hcl": `
module "hq" {
  source = "./modules/door-site"
  site   = "hq"
}
module "sites" {
  source   = "./modules/door-site"
  for_each = toset(["east", "west"])
  site     = each.key
  floor    = 2
}
method "lock_hq" {
  target = module.hq.doors_target
  method = "lockDoor"
}
output "east_target" {
  value = module.sites["east"].doors_target
}
`,
		"modules/door-site/main.hcl": `
variable "site" { type = string }
variable "floor" {
  type    = number
  default = 3
}
module "panel" {
  source = "../panel"
  site   = var.site
}
twin "doors" {
  target  = "tags.kind = 'door' AND tags.site = ${quote(var.site)}"
  desired = { floor = var.floor }
}
output "doors_target" { value = twin.doors.target }
`,
		"modules/panel/main.hcl": `
variable "site" {}
twin "panel" {
  target = "tags.kind = 'panel' AND tags.site = ${quote(var.site)}"
  tags   = { managed = true }
}
`,
	})
	cfg := mustLoad(t, []string{dir}, Options{})
	want := []string{
		"module.hq.module.panel.twin.panel", "module.hq.twin.doors",
		`module.sites["east"].module.panel.twin.panel`, `module.sites["east"].twin.doors`,
		`module.sites["west"].module.panel.twin.panel`, `module.sites["west"].twin.doors`,
		"method.lock_hq",
	}
	if got := cfg.Addresses(); !reflect.DeepEqual(got, want) {
		t.Fatalf("addresses\n%q\nwant\n%q", got, want)
	}
	if d := cfg.Twin(`module.sites["west"].twin.doors`); d.Desired["floor"] != 2.0 || d.Module != `module.sites["west"]` {
		t.Errorf("west doors %+v", d)
	}
	if m := cfg.Method("method.lock_hq"); m.TargetSrc != "tags.kind = 'door' AND tags.site = 'hq'" {
		t.Errorf("lock_hq target %q", m.TargetSrc)
	}
	if o := cfg.Outputs[0]; o.Name != "east_target" || o.Value.AsString() != "tags.kind = 'door' AND tags.site = 'east'" {
		t.Errorf("output %+v", o)
	}
	if len(cfg.Modules) != 6 {
		t.Errorf("%d module instances, want 6", len(cfg.Modules))
	}
}

func TestModuleErrors(t *testing.T) {
	dir := filetest.WriteTree(t, map[string]string{
		"main.hcl": `
module "a" {
  source = "./m"
  sit    = "hq"
}
module "remote" {
  source = "git::https://example.com/m.git"
}
module "missing" {
  source = "./nope"
}
module "self" {
  source = "./"
}
module "empty" {
  source = "./empty"
}
twin "t" {
  target = module.b.x
  tags   = { x = 1 }
}
`,
		"empty/README.md": "no configuration here",
		"m/main.hcl": `
variable "site" {}
hub { tier = "S1" }
twin "t" {
  target = "tags.site = ${quote(var.site)}"
  tags   = { x = 1 }
}
`,
	})
	_, diags := LoadWith([]string{dir}, Options{})
	wantDiag(t, diags, "Unsupported argument", `Did you mean "site"?`)
	wantDiag(t, diags, "Missing required argument", `"site"`)
	wantDiag(t, diags, "Hub block in a module", "module.a")
	wantDiag(t, diags, "Invalid module source", "local directories only")
	wantDiag(t, diags, "Module not found", "nope")
	wantDiag(t, diags, "Module calls itself", "root module")
	if d := wantDiag(t, diags, "No configuration files", "empty"); d.Subject == nil {
		t.Error("an empty module directory is reported without a location")
	}
	wantDiag(t, diags, "Reference to undeclared module", `Did you mean module.a?`)
}

func TestOutputsAndPlanFacts(t *testing.T) {
	dir := filetest.WriteTree(t, map[string]string{"main.hcl": `
variable "token" {
  default   = "s3cr3t"
  sensitive = true
}
twin "doors" {
  for_each = toset(["41", "43"])
  target   = "tags.building = ${quote(each.key)}"
  desired  = { floor = 3 }
}
output "changing" {
  value       = sum([for d in twin.doors : d.devices])
  description = "Devices the doors change."
}
output "targets" { value = [for d in twin.doors : d.target] }
output "token" {
  value     = var.token
  sensitive = true
}
`})
	cfg := mustLoad(t, []string{dir}, Options{})
	if cfg.Outputs[0].Value.IsKnown() {
		t.Error("an output of plan facts is known before the plan")
	}
	if got := cfg.Outputs[1].Value; !got.IsWhollyKnown() || got.LengthInt() != 2 {
		t.Errorf("targets = %#v", got)
	}
	if !cfg.Outputs[2].Sensitive {
		t.Error("the token output is not sensitive")
	}
	diags := cfg.EvalOutputs(map[string]Facts{
		`twin.doors["41"]`: {TargetedDevices: 10, Devices: 4},
		`twin.doors["43"]`: {TargetedDevices: 20, Devices: 5},
	})
	if diags.HasErrors() {
		t.Fatal(diagText(diags))
	}
	if got := cfg.Outputs[0].Value; !got.Equals(cty.NumberIntVal(9)).True() {
		t.Errorf("changing = %#v, want 9", got)
	}
	// Sensitive outputs must say so; plan facts are for outputs only.
	dir = filetest.WriteTree(t, map[string]string{"main.hcl": `
variable "token" {
  default   = "s3cr3t"
  sensitive = true
}
twin "t" {
  target = "*"
  tags   = { x = 1 }
}
method "m" {
  target = "*"
  method = "m"
  payload = { n = twin.t.devices }
}
output "token" { value = var.token }
`})
	_, diags = LoadWith([]string{dir}, Options{})
	wantDiag(t, diags, "Output refers to sensitive values", "sensitive = true")
	wantDiag(t, diags, "Plan facts outside an output", "twin.t.devices")
}

func TestDidYouMean(t *testing.T) {
	dir := filetest.WriteTree(t, map[string]string{"main.hcl": `
variable "site" { default = "hq" }
locals { doors = "tags.kind = 'door'" }
twin "doors" {
  target = "${local.dors} AND tags.site = ${quote(var.sit)}"
  tags   = { x = 1 }
}
method "m" {
  target = twin.dors.target
  method = "m"
}
method "n" {
  target = twin.doors.targt
  method = "${vra.site}"
}
`})
	_, diags := LoadWith([]string{dir}, Options{})
	wantDiag(t, diags, "Reference to undeclared variable", "Did you mean var.site?")
	wantDiag(t, diags, "Reference to undeclared local value", "Did you mean local.doors?")
	wantDiag(t, diags, "Reference to undeclared twin", "Did you mean twin.doors?")
	wantDiag(t, diags, "Unsupported attribute", `Did you mean "target"?`)
	wantDiag(t, diags, "Invalid reference", `Did you mean "var"?`)
}

// TestBuildingsExample: examples/buildings validates without values and loads with its
// variable file into one twin per building and the module's.
func TestBuildingsExample(t *testing.T) {
	dir := filepath.Join("..", "examples", "buildings")
	if _, diags := LoadWith([]string{dir}, Options{Validate: true}); len(diags) > 0 {
		t.Fatalf("validate: %s", diagText(diags))
	}
	cfg := mustLoad(t, []string{dir}, Options{Args: []VarArg{{File: filepath.Join(dir, "prod.vars")}}})
	want := []string{"module.site.twin.owner", `twin.floor["41"]`, `twin.floor["42"]`, `twin.floor["43"]`}
	if got := cfg.Addresses(); !reflect.DeepEqual(got, want) {
		t.Errorf("addresses %q", got)
	}
}

func TestRolloutAndConverge(t *testing.T) {
	dir := filetest.WriteTree(t, map[string]string{"main.hcl": `
twin "doors" {
  target  = "*"
  desired = { floor = 3 }
  rollout {
    waves             = ["1%", "50", "10%", "100%"]
    max_failure_ratio = 0.05
    max_failures      = 10
    pause             = "10m"
  }
  converge {
    reported  = true
    timeout   = "20m"
    min_ratio = 0.99
  }
}
method "reboot" {
  target = "*"
  method = "reboot"
  rollout { waves = ["100%"] }
}
`})
	cfg := mustLoad(t, []string{dir}, Options{})
	r := cfg.Twins[0].Rollout
	want := []Wave{{Text: "1%", Percent: 1}, {Text: "50", Count: 50}, {Text: "10%", Percent: 10}, {Text: "100%", Percent: 100}}
	if r == nil || !reflect.DeepEqual(r.Waves, want) || r.MaxFailureRatio != 0.05 || r.MaxFailures != 10 || r.Pause.Minutes() != 10 {
		t.Fatalf("rollout %+v", r)
	}
	if c := cfg.Twins[0].Converge; c == nil || c.Timeout.Minutes() != 20 || c.MinRatio != 0.99 {
		t.Errorf("converge %+v", c)
	}
	if m := cfg.Methods[0].Rollout; m == nil || m.MaxFailureRatio != -1 || m.MaxFailures != -1 || len(m.Waves) != 1 {
		t.Errorf("method rollout %+v", m)
	}

	dir = filetest.WriteTree(t, map[string]string{"main.hcl": `
twin "a" {
  target = "*"
  desired = { x = 1 }
  rollout { waves = ["10%", "5%", "100%"] }
}
twin "b" {
  target = "*"
  desired = { x = 1 }
  rollout { waves = ["10%", "50%"] }
}
twin "c" {
  target = "*"
  desired = { x = 1 }
  rollout {
    waves = ["ten", "100%"]
    max_failure_ratio = 1.5
  }
}
twin "d" {
  target = "*"
  tags   = { x = 1 }
  converge {}
}
twin "e" {
  target = "*"
  desired = { x = 1 }
  rollout { waves = ["100%"] }
  rollout { waves = ["100%"] }
  converge { reported = false }
}
method "m" {
  target = "*"
  method = "m"
  converge {}
}
`})
	_, diags := LoadWith([]string{dir}, Options{})
	wantDiag(t, diags, "Invalid waves", "cumulative")
	wantDiag(t, diags, "Invalid waves", `The last wave must be "100%"`)
	wantDiag(t, diags, "Invalid waves", `"ten" is neither`)
	wantDiag(t, diags, "Incorrect attribute value type", "number from 0 to 1")
	wantDiag(t, diags, "Nothing to converge", "tags only")
	wantDiag(t, diags, "Duplicate rollout block", "")
	wantDiag(t, diags, "Unsupported converge mode", "")
	wantDiag(t, diags, "Unsupported block type", "converge")
}
