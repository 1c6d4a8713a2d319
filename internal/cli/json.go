package cli

import (
	"errors"
	"fmt"
	"io"

	"github.com/hashicorp/hcl/v2"
	"github.com/spf13/pflag"

	"github.com/iotplan/iotplan/internal/reconcile"
	"github.com/iotplan/iotplan/internal/render"
	"github.com/iotplan/iotplan/schema"
)

// outputFlags are Terraform's output and input flags of plan, apply, destroy and validate:
// -json (machine-readable output, docs/json.md), -input=false (never prompt) and
// -compact-warnings.
type outputFlags struct {
	json            bool
	input           bool
	compactWarnings bool
}

// register adds the flags; prompts: the command may prompt (-input applies to it).
func (f *outputFlags) register(fs *pflag.FlagSet, prompts bool) {
	fs.BoolVar(&f.json, "json", false, "write machine-readable JSON on stdout instead of text (docs/json.md)")
	fs.BoolVar(&f.compactWarnings, "compact-warnings", false, "show configuration warnings as one line each (errors in full)")
	if prompts {
		fs.BoolVar(&f.input, "input", true, "ask for input on the terminal (-input=false: never; apply then needs -auto-approve or a saved plan)")
	}
}

// stream starts the JSON stream of a -json run, with its version event; nil otherwise.
func (f *outputFlags) stream(s Streams) *render.JSONUI {
	if !f.json {
		return nil
	}
	return render.NewJSONUI(s.Out, render.JSONOptions{Version: iotplanVersion()})
}

// endJSON ends a -json run: an error becomes an error diagnostic on the stream, as with
// Terraform's -json, so that a reader of stdout learns why the run failed; the exit code is
// the one the error maps to. Errors already reported (silentError) pass through.
func endJSON(ui *render.JSONUI, err error) error {
	var se *silentError
	if ui == nil || err == nil || errors.As(err, &se) {
		return err
	}
	ui.Error(oneLine(err.Error()))
	return &silentError{exitCode(err)}
}

// diagReporter reports the diagnostics of loading a configuration.
type diagReporter func(files map[string]*hcl.File, diags hcl.Diagnostics)

// reporter reports diagnostics as diagnostic events on ui (-json), else as text on the error
// stream, with warnings in one line each under -compact-warnings.
func (f *outputFlags) reporter(s Streams, ui *render.JSONUI, cf *configFlags) diagReporter {
	if ui != nil {
		return func(files map[string]*hcl.File, diags hcl.Diagnostics) {
			ui.Diagnostics(schema.DiagnosticsJSON(files, diags))
		}
	}
	return humanDiagnostics(s, cf, f.compactWarnings)
}

// humanDiagnostics writes diagnostics Terraform-style on the error stream; compact writes
// the warnings in one line each, after the errors in full.
func humanDiagnostics(s Streams, cf *configFlags, compact bool) diagReporter {
	return func(files map[string]*hcl.File, diags hcl.Diagnostics) {
		color := colorOn(s.ErrTTY, cf)
		if !compact {
			schema.WriteDiagnostics(s.Err, files, diags, s.Width, color)
			return
		}
		var errs, warns hcl.Diagnostics
		for _, d := range diags {
			if d.Severity == hcl.DiagWarning {
				warns = append(warns, d)
			} else {
				errs = append(errs, d)
			}
		}
		schema.WriteDiagnostics(s.Err, files, errs, s.Width, color)
		writeCompactWarnings(s.Err, warns, color)
	}
}

// writeCompactWarnings writes each warning as its summary and location, the way Terraform's
// -compact-warnings lists them.
func writeCompactWarnings(w io.Writer, warns hcl.Diagnostics, color bool) {
	label := "Warning:"
	if color {
		label = "\x1b[1;33mWarning:\x1b[0m"
	}
	for _, d := range warns {
		line := fmt.Sprintf("%s %s", label, d.Summary)
		if d.Subject != nil {
			line += fmt.Sprintf(" (on %s line %d)", d.Subject.Filename, d.Subject.Start.Line)
		}
		fmt.Fprintln(w, oneLine(line))
	}
	if len(warns) > 0 {
		fmt.Fprintln(w)
	}
}

// showPlan shows a plan to people on stdout, or as events on ui; operation is the command
// ("plan", "apply", "destroy").
func showPlan(s Streams, ui *render.JSONUI, p *reconcile.Plan, operation string, cf *configFlags) error {
	if ui != nil {
		ui.Plan(p, operation)
		return ui.Err()
	}
	return render.Plan(s.Out, p, render.Options{Color: colorOn(s.OutTTY, cf)})
}

// say writes a message of plan or apply: text for people on stdout, or a log event on ui.
func say(s Streams, ui *render.JSONUI, level, text string) {
	if ui != nil {
		ui.Log(level, text)
		return
	}
	fmt.Fprint(s.Out, text)
}

// applyHook is where apply reports its progress: events on ui (-json); progress bars on a
// terminal outside CI; else plain lines, a line when a job's status changes and at most
// every 5s while it runs, which read well in a CI log or a file. The data flows one way:
// reconcile calls the hook with what it observed, and the view draws it. done ends the
// drawing; call it when apply returns, before its result is written.
func applyHook(s Streams, ui *render.JSONUI, cf *configFlags) (hook reconcile.Hook, done func()) {
	if ui != nil {
		return ui, func() {}
	}
	opts := render.Options{Color: colorOn(s.ErrTTY, cf)}
	if s.progressBars() {
		v := render.NewBarView(s.Err, render.BarOptions{Options: opts, Width: s.Width})
		return v, func() { _ = v.Close() } // a failed write to the terminal is no reason to fail the apply
	}
	return render.NewApplyView(s.Err, render.ApplyOptions{Options: opts}), func() {}
}

// errApprovalNeeded: apply cannot ask for approval (-json, -input=false).
func errApprovalNeeded(why string) error {
	return flagErrorf("-auto-approve is required with %s: iotplan cannot ask for approval; review the plan and add -auto-approve, or apply a saved plan (plan -out FILE, then apply FILE)", why)
}

// checkApproval refuses, before anything is read or locked, an apply that would have to ask
// for approval where it may not: with -json or -input=false, approval is -auto-approve or a
// saved plan (applied as reviewed), as in Terraform.
func (o *applyOptions) checkApproval(saved bool) error {
	switch {
	case o.autoApprove || saved:
		return nil
	case o.output.json:
		return errApprovalNeeded("-json")
	case !o.output.input:
		return errApprovalNeeded("-input=false")
	}
	return nil
}

// validateFormatVersion is the format_version of 'validate -json', versioned like Terraform's.
const validateFormatVersion = "1.0"

// validateJSON is 'validate -json': one document in the shape of Terraform's
// (https://developer.hashicorp.com/terraform/cli/commands/validate#json), exit 1 when the
// configuration is invalid.
func validateJSON(s Streams, args []string, cf *configFlags) error {
	diags := []schema.JSONDiagnostic{}
	_, err := loadConfigReporting(args, cf, func(files map[string]*hcl.File, ds hcl.Diagnostics) {
		diags = schema.DiagnosticsJSON(files, ds)
	})
	var se *silentError
	if err != nil && !errors.As(err, &se) {
		return err // a usage mistake (a malformed -var), not a finding about the configuration
	}
	doc := struct {
		FormatVersion string                  `json:"format_version"`
		Valid         bool                    `json:"valid"`
		ErrorCount    int                     `json:"error_count"`
		WarningCount  int                     `json:"warning_count"`
		Diagnostics   []schema.JSONDiagnostic `json:"diagnostics"`
	}{FormatVersion: validateFormatVersion, Valid: err == nil, Diagnostics: diags}
	for _, d := range diags {
		if d.Severity == "warning" {
			doc.WarningCount++
		} else {
			doc.ErrorCount++
		}
	}
	if werr := writeJSON(s.Out, doc); werr != nil {
		return werr
	}
	return err
}
