// Package schema is the iotplan configuration language: the HCL block and
// attribute schemas, phased loading and evaluation, validation against the
// IoT Hub's own limits, and Terraform-style rendering of diagnostics.
//
// A configuration is one or more *.hcl files (native HCL syntax) or
// *.hcl.json files (HCL's JSON syntax) holding these top-level blocks:
//
//	hub { connection_string, tier, units, state }  optional; else IOTHUB_CONNECTION_STRING
//	variable "name" { type, default, description, sensitive }
//	locals { name = expr ... }
//	twin "name"   { target, desired, tags, max_execution, start_time,
//	                lifecycle { keep_on_removal } }
//	method "name" { target, method, payload, response_timeout,
//	                connect_timeout, max_execution, start_time, triggers }
//
// Load evaluates in phases, each seeing only what earlier phases produced:
// variables (from -var values, IOTPLAN_VAR_<name> or the default), then
// locals (in dependency order), then twins, then methods (which may refer to
// twin.<name>.target). The hub block's tier and units are checked against
// internal/tier, the one table of tiers. Every problem is an hcl.Diagnostic whose Subject points
// into the file; Load keeps going after errors so that one run reports them
// all. docs/language.md is the user-facing reference.
//
// Secrets: values of variables declared sensitive carry a cty mark, and Load
// strips Expression/EvalContext from every diagnostic it returns, so neither
// WriteDiagnostics nor hcl.NewDiagnosticTextWriter can print variable values.
// Hub.ConnectionString is never placed in a diagnostic, String, GoString or
// JSON form.
//
// Tests: go test ./schema runs everything quickly. The fuzz target runs with
//
//	go test -run='^$' -fuzz=FuzzLoad -fuzztime=2m ./schema
//
// and `go test ./schema -update` rewrites the golden files under testdata/.
package schema
