package schema

import (
	"strings"
	"testing"
	"time"
)

// TestHubTier: tier and units are read, checked against internal/tier's table, and located
// when wrong; the connection string is optional (IOTHUB_CONNECTION_STRING is the fallback).
func TestHubTier(t *testing.T) {
	cfg, diags := loadSrc(t, `
variable "units" { default = 3 }
hub {
  tier  = "s2"
  units = var.units
  state = "doors-prod"
}`, nil)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if h := cfg.Hub; h == nil || h.Tier != "S2" || h.Units != 3 || h.ConnectionString != "" || h.State != "doors-prod" {
		t.Fatalf("hub %#v", cfg.Hub)
	}
	// The name is stored as internal/tier canonicalises it.
	cfg, diags = loadSrc(t, `hub { tier = " s1 " }`, nil)
	if diags.HasErrors() || cfg.Hub == nil || cfg.Hub.Tier != "S1" || cfg.Hub.Units != 0 {
		t.Fatalf("hub %#v %v", cfg.Hub, diags)
	}
	for _, tc := range []struct{ src, summary, detail, at string }{
		{`hub { tier = "S4" }`, "Invalid hub tier", `Unknown IoT Hub tier "S4": use F1, S1, S2 or S3`, "main.hcl:1,14-18"},
		{"hub {\n  tier  = \"S3\"\n  units = 11\n}", "Invalid hub tier", "Units must be from 1 to 10 on S3, not 11", "main.hcl:3,11-13"},
		{"hub {\n  tier = \"F1\"\n  units = 2\n}", "Invalid hub tier", "The F1 (free) tier has exactly 1 unit, not 2", "main.hcl:3,11-12"},
		{`hub { units = 1.5 }`, "Incorrect attribute value type", "whole number", "main.hcl:1,15-18"},
		{`hub { tier = 1 }`, "Invalid hub tier", "Unknown IoT Hub tier", "main.hcl:1,14-15"},
		{`hub { state = "Prod_1" }`, "Invalid state name", `Invalid state name "Prod_1": use 1 to 48 lower-case letters`, "main.hcl:1,15-23"},
	} {
		_, diags := loadSrc(t, tc.src, nil)
		if !diags.HasErrors() {
			t.Errorf("%s: accepted", tc.src)
			continue
		}
		d := diags[0]
		if d.Summary != tc.summary || !strings.Contains(d.Detail, tc.detail) || d.Subject == nil || !strings.HasSuffix(d.Subject.String(), tc.at) {
			t.Errorf("%s:\n got %s / %s at %v\nwant %s / %s at %s", tc.src, d.Summary, d.Detail, d.Subject, tc.summary, tc.detail, tc.at)
		}
	}
}

// TestTwinJobTiming: twin blocks take max_execution and start_time like method blocks; absent,
// max_execution is zero (iotplan sizes the job from its devices and the tier).
func TestTwinJobTiming(t *testing.T) {
	cfg, diags := loadSrc(t, `
twin "a" {
  target        = "*"
  desired       = { floor = 3 }
  max_execution = "26h"
  start_time    = "2026-12-01T03:00:00+01:00"
}
twin "b" {
  target  = "*"
  desired = { floor = 3 }
}`, nil)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	a, b := cfg.Twins[0], cfg.Twins[1]
	if a.MaxExecution != 26*time.Hour || !a.StartTime.Equal(time.Date(2026, 12, 1, 2, 0, 0, 0, time.UTC)) {
		t.Errorf("a: %v %v", a.MaxExecution, a.StartTime)
	}
	if b.MaxExecution != 0 || !b.StartTime.IsZero() {
		t.Errorf("b: %v %v", b.MaxExecution, b.StartTime)
	}
	_, diags = loadSrc(t, `twin "c" {
  target        = "*"
  tags          = { a = 1 }
  max_execution = "0s"
}`, nil)
	if !diags.HasErrors() || diags[0].Summary != "Duration out of range" || diags[0].Subject.Start.Line != 4 {
		t.Errorf("max_execution 0s: %v", diags)
	}
	twinDetail := "(none)"
	if len(diags) > 0 {
		twinDetail = diags[0].Detail
	}
	// Method blocks decode both the same way (in their own phase).
	_, diags = loadSrc(t, `method "m" {
  target        = "*"
  method        = "reboot"
  max_execution = "0s"
  start_time    = "yesterday"
}`, nil)
	if len(diags) != 2 || diags[0].Summary != "Duration out of range" || diags[0].Subject.Start.Line != 4 ||
		diags[0].Detail != twinDetail || diags[1].Subject == nil || diags[1].Subject.Start.Line != 5 {
		t.Errorf("method max_execution 0s, bad start_time: %v", diags)
	}
}
