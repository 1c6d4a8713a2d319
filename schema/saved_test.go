package schema

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"
)

const savedSrc = `variable "site" {}
variable "floors" {
  type = map(number)
}
variable "owner" {
  type    = string
  default = null
}
variable "token" {
  type      = string
  sensitive = true
}
variable "quiet" {
  type      = string
  sensitive = true
  default   = "q"
}
`

// TestSavedVariables: the values a saved plan records load back with their types and win over
// every other source; a sensitive variable's value is never recorded, and one the plan was
// given must be given again (not replaced by its default).
func TestSavedVariables(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "main.hcl")
	if err := os.WriteFile(path, []byte(savedSrc), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvVarPrefix+"token", "s3cr3t")
	cfg, diags := LoadWith([]string{path}, Options{Args: []VarArg{{Name: "site", Value: "43"}, {Name: "floors", Value: `{ a = 1, b = 2.5 }`}}})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	saved, err := cfg.SavedVariables()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(saved)
	if strings.Contains(string(b), "s3cr3t") || len(saved) != 5 {
		t.Fatalf("saved: %s", b)
	}

	// Applying: other values in the environment and on the command line lose to the plan's.
	t.Setenv(EnvVarPrefix+"site", "other")
	cfg, diags = LoadWith([]string{path}, Options{Saved: saved, Args: []VarArg{{Name: "owner", Value: "x"}}})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	want := map[string]cty.Value{
		"site":   cty.StringVal("43"),
		"floors": cty.MapVal(map[string]cty.Value{"a": cty.NumberIntVal(1), "b": cty.NumberFloatVal(2.5)}),
		"owner":  cty.NullVal(cty.String),
		"token":  cty.StringVal("s3cr3t"), // from the environment again
		"quiet":  cty.StringVal("q"),
	}
	for _, v := range cfg.Variables {
		if !v.Value.RawEquals(want[v.Name]) {
			t.Errorf("var.%s = %#v, want %#v", v.Name, v.Value, want[v.Name])
		}
		if v.Name == "site" && v.Source != SavedPlanSource {
			t.Errorf("var.site source %q", v.Source)
		}
	}

	// Without the sensitive value it was given, the load fails at the declaration, naming the
	// variable and where to set it; a sensitive variable that had its default needs nothing.
	os.Unsetenv(EnvVarPrefix + "token")
	_, diags = LoadWith([]string{path}, Options{Saved: saved})
	if len(diags) != 1 || diags[0].Summary != "No value for sensitive variable" || diags[0].Subject == nil || diags[0].Subject.Start.Line != 9 ||
		!strings.Contains(diags[0].Detail, `"token" from IOTPLAN_VAR_token`) || !strings.Contains(diags[0].Detail, "set the environment variable IOTPLAN_VAR_token") {
		t.Errorf("diags: %v", diags)
	}

	// A value that no longer fits the variable's type, or cannot be read, is a located error.
	for i := range saved {
		if saved[i].Name == "floors" {
			saved[i].Value = json.RawMessage(`{"value": "flat", "type": "string"}`)
		}
		if saved[i].Name == "site" {
			saved[i].Value = json.RawMessage(`{"value": 1}`)
		}
	}
	t.Setenv(EnvVarPrefix+"token", "s3cr3t")
	_, diags = LoadWith([]string{path}, Options{Saved: saved})
	var text string
	for _, d := range diags {
		text += d.Summary + ": " + d.Detail + "\n"
	}
	if len(diags) != 2 || !strings.Contains(text, "var.floors in the saved plan (made before the variable's type changed: run plan again)") ||
		!strings.Contains(text, "The saved plan's value for var.site cannot be read") || strings.Contains(text, "flat") {
		t.Errorf("diags:\n%s", text)
	}
}
