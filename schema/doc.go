// Package schema is the iotplan configuration language: the HCL block and
// attribute schemas, phased loading and evaluation of modules, validation
// against the IoT Hub's own limits, resource addresses, and Terraform-style
// rendering of diagnostics.
//
// A module is one or more *.hcl files (native HCL syntax) or *.hcl.json files
// (HCL's JSON syntax) holding these top-level blocks:
//
//	hub { connection_string, tier, units, state }  root module only; else IOTHUB_CONNECTION_STRING
//	variable "name" { type, default, description, sensitive, nullable, validation { condition, error_message } }
//	locals { name = expr ... }
//	module "name" { source = "./dir", for_each | count, <input> = expr ... }
//	twin "name"   { for_each | count, target, desired, tags, max_execution, start_time,
//	                lifecycle { keep_on_removal }, dynamic "lifecycle" {...},
//	                rollout { waves, max_failure_ratio, max_failures, pause },
//	                converge { reported, timeout, min_ratio } }
//	method "name" { for_each | count, target, method, payload, response_timeout,
//	                connect_timeout, max_execution, start_time, triggers, rollout {...} }
//	output "name" { value, description, sensitive }
//
// LoadWith evaluates each module in phases, each seeing only what earlier
// phases produced: variables (root: default < IOTPLAN_VAR_<name> < iotplan.vars
// < *.auto.vars < -var/-var-file in order, varfiles.go; a module: the arguments
// of its module block), then locals (in dependency order), then module blocks
// (each instance loaded recursively, module.go), then twins, then methods
// (which may refer to twin.<name>), then outputs (which may also read the plan
// facts twin.<name>.devices, unknown until Config.EvalOutputs). for_each and
// count expand a block into instances with addresses such as
// module.site.twin.doors["41"] (instances.go, address.go). The hub block's tier
// and units are checked against internal/tier, the one table of tiers. Every
// problem is an hcl.Diagnostic whose Subject points into the file; loading
// keeps going after errors so that one run reports them all; references to
// undeclared names suggest the closest declared one. Options.Validate checks
// without variable values (unknown values are carried, not reported).
// docs/language.md is the user-facing reference.
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
