package schema

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/iotplan/iotplan/internal/query"
)

// loadSrc writes src to a temp file and loads it.
func loadSrc(t *testing.T, src string, vars map[string]string) (*Config, hcl.Diagnostics) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "main.hcl")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return Load([]string{path}, vars)
}

// TestQuoteCannotBeInjected: whatever a variable holds, quote() makes it
// one literal, so the target means "tags.site equals that text" and nothing
// else. The check parses the result and compares it with the tree the query
// builder makes.
func TestQuoteCannotBeInjected(t *testing.T) {
	for _, site := range []string{
		"berlin",
		"x' OR tags.site != 'y",
		`x\' OR true OR '`,
		`back\slash`,
		"new\nline",
		"ünï'cödé",
		"",
		"' AND 1=1 --",
	} {
		cfg, diags := loadSrc(t, `
variable "site" { type = string }
twin "t" {
  target = "tags.kind = 'door' AND tags.site = ${quote(var.site)}"
  tags   = { a = 1 }
}`, map[string]string{"site": site})
		if diags.HasErrors() {
			t.Fatalf("site %q: %v", site, diags)
		}
		want := query.And(query.Eq(query.P("tags", "kind"), "door"), query.Eq(query.P("tags", "site"), site))
		if got := cfg.Twins[0].Target; !query.Equal(got, want) {
			t.Errorf("site %q: target %q parses to %s, want %s", site, cfg.Twins[0].TargetSrc, query.Format(got), query.Format(want))
		}
	}
}

func TestQuoteValues(t *testing.T) {
	for _, tc := range []struct{ expr, want string }{
		{`quote("a'b")`, `'a\'b'`},
		{`quote(43)`, `43`},
		{`quote(-1.5)`, `-1.5`},
		{`quote(true)`, `true`},
		{`quote(null)`, `null`},
		{`quote(["a", "b"])`, `['a', 'b']`},
		{`quote(["a", 1, false])`, `['a', 1, false]`},
	} {
		cfg, diags := loadSrc(t, `locals { q = `+tc.expr+` }
twin "t" {
  target = "deviceId = ${local.q} OR deviceId IN ['x']"
  tags   = { a = 1 }
}`, nil)
		if diags.HasErrors() {
			t.Errorf("%s: %v", tc.expr, diags)
			continue
		}
		if got := strings.TrimSuffix(strings.TrimPrefix(cfg.Twins[0].TargetSrc, "deviceId = "), " OR deviceId IN ['x']"); got != tc.want {
			t.Errorf("%s = %s, want %s", tc.expr, got, tc.want)
		}
	}
	// An empty array is not in the documented dialect (an array constant holds at least one
	// constant): the target is refused where it is written.
	_, diags := loadSrc(t, `twin "t" {
  target = "deviceId IN ${quote([])}"
  tags   = { a = 1 }
}`, nil)
	if !diags.HasErrors() || diags[0].Summary != "Invalid target query" || !strings.Contains(diags[0].Detail, "empty array") || diags[0].Subject.Start.Line != 2 {
		t.Errorf("empty list: %v", diags)
	}
	for _, bad := range []string{`quote({a = 1})`, `quote([[1]])`, `quote(1e400)`} {
		_, diags := loadSrc(t, `locals { q = `+bad+` }`, nil)
		if !diags.HasErrors() || !strings.Contains(diags[0].Summary, "function") {
			t.Errorf("%s: want a function error, got %v", bad, diags)
		}
	}
}

// TestVariableSources: -var wins over IOTPLAN_VAR_<name>, which wins over
// the default; text is parsed per the type like Terraform (literal for
// primitive and untyped variables, HCL for the others).
func TestVariableSources(t *testing.T) {
	src := `
variable "a" { default = "default-a" }
variable "b" {
  type    = number
  default = 1
}
variable "c" {
  type    = list(string)
  default = []
}
variable "d" { type = bool }
variable "e" { type = any }
variable "f" {}
twin "t" {
  target = "*"
  tags   = { a = var.a, b = var.b, c = var.c, d = var.d, e = var.e, f = var.f }
}`
	t.Setenv("IOTPLAN_VAR_a", "env-a")
	t.Setenv("IOTPLAN_VAR_b", "2")
	t.Setenv("IOTPLAN_VAR_c", `["x", "y"]`)
	t.Setenv("IOTPLAN_VAR_d", "true")
	t.Setenv("IOTPLAN_VAR_e", `{ k = 1 }`)
	t.Setenv("IOTPLAN_VAR_f", `{ k = 1 }`)
	cfg, diags := loadSrc(t, src, map[string]string{"a": "flag-a", "b": "3.5"})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	tags := cfg.Twins[0].Tags
	want := map[string]any{
		"a": "flag-a", // -var beats the environment
		"b": 3.5,      // parsed as a number
		"c": []any{"x", "y"},
		"d": true,
		"e": map[string]any{"k": float64(1)}, // any: an HCL expression
		"f": "{ k = 1 }",                     // untyped: literal text
	}
	for k, w := range want {
		if !equalJSON(tags[k], w) {
			t.Errorf("var.%s = %#v, want %#v", k, tags[k], w)
		}
	}
	// Without -var or environment: the default.
	os.Unsetenv("IOTPLAN_VAR_a")
	cfg, diags = loadSrc(t, src, nil)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if got := cfg.Twins[0].Tags["a"]; got != "default-a" {
		t.Errorf("default: %v", got)
	}
	if v := cfg.Variables[0]; v.Name != "a" || v.Value != cty.StringVal("default-a") {
		t.Errorf("Variables[0] = %s %#v", v.Name, v.Value)
	}
}

func equalJSON(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k := range x {
			if !equalJSON(x[k], y[k]) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equalJSON(x[i], y[i]) {
				return false
			}
		}
		return true
	}
	return a == b
}

// TestSensitiveVariable: a sensitive value reaches the config unmarked and
// is kept out of HCL's diagnostic value listing.
func TestSensitiveVariable(t *testing.T) {
	cfg, diags := loadSrc(t, `
variable "token" {
  type      = string
  sensitive = true
}
twin "t" {
  target = "*"
  tags   = { token = var.token, bad = var.token * 2 }
}`, map[string]string{"token": "hunter2"})
	if !diags.HasErrors() {
		t.Fatal("want an arithmetic error")
	}
	for _, d := range diags {
		if d.Expression != nil || d.EvalContext != nil {
			t.Errorf("diagnostic %q keeps its expression/context", d.Summary)
		}
		if strings.Contains(d.Detail, "hunter2") {
			t.Errorf("value echoed: %s", d.Detail)
		}
	}
	if v := cfg.Variables[0]; !v.Sensitive || v.Value.IsMarked() || v.Value.AsString() != "hunter2" {
		t.Errorf("variable: %+v", v)
	}
}

// TestMethodDefaults: an absent or null attribute takes the default.
func TestMethodDefaults(t *testing.T) {
	cfg, diags := loadSrc(t, `
method "m" {
  target          = "*"
  method          = "reboot"
  connect_timeout = null
}`, nil)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	m := cfg.Methods[0]
	if m.ResponseTimeout != 30*time.Second || m.ConnectTimeout != 0 || m.MaxExecution != 0 ||
		!m.StartTime.IsZero() || m.Payload != nil || cfg.Method("method.m") != m || cfg.Method("method.x") != nil {
		t.Errorf("%+v", *m)
	}
	if !query.Equal(m.Target, query.All()) {
		t.Errorf("target %s", query.Format(m.Target))
	}
}

// TestMethodBoundaries: the edges of each range are accepted.
func TestMethodBoundaries(t *testing.T) {
	cfg, diags := loadSrc(t, `
method "low" {
  target           = "*"
  method           = "m"
  response_timeout = "5s"
  connect_timeout  = "0s"
  max_execution    = "1s"
}
method "high" {
  target           = "*"
  method           = "~!#%^&*-_+|.'`+"`"+`"
  response_timeout = "5m"
  connect_timeout  = "300s"
  max_execution    = "720h"
  start_time       = "2026-12-01T02:00:00.5Z"
}`, nil)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	lo, hi := cfg.Methods[0], cfg.Methods[1]
	if lo.ResponseTimeout != 5*time.Second || lo.ConnectTimeout != 0 || lo.MaxExecution != time.Second {
		t.Errorf("low: %+v", *lo)
	}
	if hi.ResponseTimeout != 300*time.Second || hi.ConnectTimeout != 300*time.Second || hi.MaxExecution != 720*time.Hour ||
		!hi.StartTime.Equal(time.Date(2026, 12, 1, 2, 0, 0, 5e8, time.UTC)) {
		t.Errorf("high: %+v", *hi)
	}
}

// TestTwinKeyLimits: the largest accepted key and string, and the smallest
// rejected ones, measured in UTF-8 bytes.
func TestTwinKeyLimits(t *testing.T) {
	key := strings.Repeat("é", 512)   // 1024 bytes
	long := strings.Repeat("x", 4096) // 4096 bytes
	cfg, diags := loadSrc(t, `
variable "k" {}
variable "s" {}
twin "t" {
  target = "*"
  tags   = { (var.k) = var.s }
}`, map[string]string{"k": key, "s": long})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if cfg.Twins[0].Tags[key] != long {
		t.Error("value lost")
	}
	_, diags = loadSrc(t, `
variable "k" {}
twin "t" {
  target = "*"
  tags   = { (var.k) = 1 }
}`, map[string]string{"k": key + "x"})
	if !diags.HasErrors() || diags[0].Summary != "Invalid key" {
		t.Errorf("1025-byte key: %v", diags)
	}
}

// TestSensitiveNested: sensitive values nested in lists, objects, keys and
// function arguments load without a panic (cty panics when iterating
// marked collections) and arrive unmarked.
func TestSensitiveNested(t *testing.T) {
	cfg, diags := loadSrc(t, `
variable "s" { sensitive = true }
variable "o" {
  type      = any
  sensitive = true
}
twin "t" {
  target  = "deviceId IN ${quote([var.s, "b"])}"
  desired = var.o
  tags    = { list = [var.s], obj = { k = var.s }, (var.s) = 1 }
}
method "m" {
  target  = twin.t.target
  method  = var.s
  payload = var.o
}`, map[string]string{"s": "abc", "o": `{ x = { y = 1 } }`})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	tw, m := cfg.Twins[0], cfg.Methods[0]
	if tw.TargetSrc != "deviceId IN ['abc', 'b']" || m.Method != "abc" || tw.Tags["abc"] != float64(1) ||
		!equalJSON(tw.Desired, map[string]any{"x": map[string]any{"y": float64(1)}}) || !equalJSON(m.Payload, tw.Desired) {
		t.Errorf("twin %+v method %+v", *tw, *m)
	}
}
