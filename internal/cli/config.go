package cli

import (
	"strings"

	"github.com/spf13/pflag"

	"github.com/iotplan/iotplan/schema"
)

// configFlags are the flags of every command that reads configuration files.
type configFlags struct {
	vars    []string
	noColor bool
}

func (f *configFlags) register(fs *pflag.FlagSet) {
	fs.StringArrayVar(&f.vars, "var", nil, "set a variable: -var 'name=value' (repeatable)")
	fs.BoolVar(&f.noColor, "no-color", false, "disable color in the output")
}

func (f *configFlags) variables() (map[string]string, error) {
	vars := make(map[string]string, len(f.vars))
	for _, kv := range f.vars {
		name, value, ok := strings.Cut(kv, "=")
		name = strings.TrimSpace(name)
		if !ok {
			return nil, flagErrorf("-var %q: expected name=value", kv)
		}
		if name == "" {
			// What follows "=" is the value, maybe a secret: never echo it.
			return nil, flagErrorf("-var: expected name=value, but the name before \"=\" is empty (the value is not shown)")
		}
		vars[name] = value
	}
	return vars, nil
}

// loadConfig loads the configuration files (the current directory when none are named),
// prints every diagnostic to the error stream, and fails after doing so on errors.
func loadConfig(s Streams, paths []string, f *configFlags) (*schema.Config, error) {
	vars, err := f.variables()
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		paths = []string{"."}
	}
	cfg, diags := schema.Load(paths, vars)
	if len(diags) > 0 {
		var files = cfg.Files
		schema.WriteDiagnostics(s.Err, files, diags, s.Width, colorOn(s.ErrTTY, f))
	}
	if diags.HasErrors() {
		return nil, &silentError{exitError}
	}
	return cfg, nil
}
