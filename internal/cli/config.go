package cli

import (
	"strings"

	"github.com/spf13/pflag"

	"github.com/iotplan/iotplan/schema"
)

// configFlags are the flags of every command that reads configuration files.
type configFlags struct {
	// vars are the -var and -var-file arguments in command-line order: a later one wins,
	// as in Terraform, so one list keeps their relative order.
	vars    []rawVar
	noColor bool
	// validate loads without needing variable values (the validate command; not a flag).
	validate bool
	// saved are the variables a saved plan recorded, when it is applied (not a flag).
	saved []schema.SavedVariable
}

// rawVar is one -var or -var-file argument as given; variables() checks it. (Checking in
// pflag's Set would make pflag quote the argument, value and all, in its error.)
type rawVar struct {
	text string
	file bool
}

func (f *configFlags) register(fs *pflag.FlagSet) {
	fs.Var(&varFlag{args: &f.vars}, "var", "set a variable: -var 'name=value' (repeatable)")
	fs.Var(&varFlag{args: &f.vars, file: true}, "var-file", "read variable values from FILE, HCL attribute syntax like .tfvars (repeatable)")
	fs.BoolVar(&f.noColor, "no-color", false, "disable color in the output")
}

// varFlag is -var or -var-file: each occurrence appends to the shared list.
type varFlag struct {
	args *[]rawVar
	file bool
}

func (v *varFlag) Set(s string) error {
	*v.args = append(*v.args, rawVar{text: s, file: v.file})
	return nil
}

// String never shows values: pflag prints it in usage and errors.
func (v *varFlag) String() string { return "" }

func (v *varFlag) Type() string {
	if v.file {
		return "FILE"
	}
	return "name=value"
}

// variables checks the -var and -var-file arguments and returns them in order.
func (f *configFlags) variables() ([]schema.VarArg, error) {
	out := make([]schema.VarArg, 0, len(f.vars))
	for _, r := range f.vars {
		if r.file {
			if strings.TrimSpace(r.text) == "" {
				return nil, flagErrorf("-var-file: expected a file name")
			}
			out = append(out, schema.VarArg{File: r.text})
			continue
		}
		name, value, ok := strings.Cut(r.text, "=")
		name = strings.TrimSpace(name)
		if !ok {
			// No "=": there is no value to hide, and the name helps find the mistake.
			return nil, flagErrorf("-var %q: expected name=value", r.text)
		}
		if name == "" {
			// What follows "=" is the value, maybe a secret: never echo it.
			return nil, flagErrorf("-var: expected name=value, but the name before \"=\" is empty (the value is not shown)")
		}
		out = append(out, schema.VarArg{Name: name, Value: value})
	}
	return out, nil
}

// loadConfig loads the configuration files (the current directory when none are named),
// prints every diagnostic to the error stream, and fails after doing so on errors.
func loadConfig(s Streams, paths []string, f *configFlags) (*schema.Config, error) {
	return loadConfigReporting(paths, f, humanDiagnostics(s, f, false))
}

// loadConfigReporting is loadConfig with the diagnostics given to report (JSON events with
// -json, compact warnings: json.go).
func loadConfigReporting(paths []string, f *configFlags, report diagReporter) (*schema.Config, error) {
	vars, err := f.variables()
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		paths = []string{"."}
	}
	cfg, diags := schema.LoadWith(paths, schema.Options{Args: vars, Validate: f.validate, Saved: f.saved})
	if len(diags) > 0 {
		report(cfg.Files, diags)
	}
	if diags.HasErrors() {
		return nil, &silentError{exitError}
	}
	return cfg, nil
}
