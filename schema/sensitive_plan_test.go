package schema

import (
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"testing"
)

// Values from sensitive variables are named in Twin.Sensitive and flagged on methods, so that
// plans can hide them; the values themselves are still decoded (apply must send them).
func TestSensitiveValuesAreFlagged(t *testing.T) {
	src := `
variable "token" {
  type      = string
  sensitive = true
}
variable "site" {
  type      = string
  sensitive = true
}
twin "t" {
  target  = "deviceId = 'a'"
  desired = { token = var.token, plain = 1, nested = { key = var.token, open = "x" }, list = ["a", var.token] }
  tags    = { owner = "ops" }
}
twin "hidden_target" {
  target  = "tags.site = ${quote(var.site)}"
  desired = { floor = 3 }
}
method "m" {
  target  = twin.hidden_target.target
  method  = "unlock"
  payload = { code = var.token }
}
method "open" {
  target  = twin.t.target
  method  = "ping"
  payload = { n = 1 }
}
`
	path := filepath.Join(t.TempDir(), "s.hcl")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, diags := Load([]string{path}, map[string]string{"token": "s3cr3t", "site": "hq"})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	tw := cfg.Twin("twin.t")
	want := []string{"desired.list", "desired.nested.key", "desired.token"}
	got := append([]string(nil), tw.Sensitive...)
	sort.Strings(got)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Sensitive = %v, want %v", got, want)
	}
	if tw.Desired["token"] != "s3cr3t" || tw.TargetSensitive {
		t.Errorf("token %v, target sensitive %v", tw.Desired["token"], tw.TargetSensitive)
	}
	if h := cfg.Twin("twin.hidden_target"); !h.TargetSensitive || len(h.Sensitive) != 0 {
		t.Errorf("hidden_target: TargetSensitive %v, Sensitive %v", h.TargetSensitive, h.Sensitive)
	}
	if m := cfg.Method("method.m"); !m.PayloadSensitive || !m.TargetSensitive {
		t.Errorf("method m: payload sensitive %v, target sensitive %v", m.PayloadSensitive, m.TargetSensitive)
	}
	if m := cfg.Method("method.open"); m.PayloadSensitive || m.TargetSensitive {
		t.Errorf("method open flagged sensitive: %+v", m)
	}
}
