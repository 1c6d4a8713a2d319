package schema

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// Variable files hold values for the root module's variables in HCL attribute syntax, like
// Terraform's .tfvars files (https://developer.hashicorp.com/terraform/language/values/variables#variable-definitions-tfvars-files):
//
//	site     = "hq"
//	floors   = { "41" = 1, "43" = 3 }
//
// Files named with -var-file may have any name; AutoVarsFile and files ending in
// AutoVarsSuffix in the configuration's directory are read without being named.
const (
	AutoVarsFile   = "iotplan.vars"
	AutoVarsSuffix = ".auto.vars"
)

// assignment is one value given for a root variable, before the variable's type is known.
type assignment struct {
	text    string    // from -var or the environment: parsed per the type (parseRaw)
	val     cty.Value // from a variable file: a constant, cty.NilVal for text
	from    string    // for messages: "-var", "-var-file prod.vars", "iotplan.vars", "IOTPLAN_VAR_x"
	rng     hcl.Range // the attribute in a variable file
	isFile  bool
	isEnv   bool
	isSaved bool // from a saved plan (saved.go): val is set, as for a file
}

// readVarSources collects the root's variable values from every source, later ones
// replacing earlier ones: the environment, the auto-loaded files, then -var and -var-file
// in command-line order, then a saved plan's values. Defaults come last in decodeVariable,
// when nothing was assigned.
func (l *loader) readVarSources() {
	l.assigned = map[string]assignment{}
	for _, kv := range os.Environ() {
		name, text, ok := strings.Cut(kv, "=")
		if ok && strings.HasPrefix(name, EnvVarPrefix) && len(name) > len(EnvVarPrefix) {
			l.assigned[name[len(EnvVarPrefix):]] = assignment{text: text, from: name, isEnv: true}
		}
	}
	if !l.opts.NoAutoVars {
		for _, f := range autoVarFiles(l.dir) {
			l.readVarFile(f, filepath.Base(f))
		}
	}
	for _, a := range l.opts.Args {
		if a.File != "" {
			l.readVarFile(a.File, "-var-file "+a.File)
			continue
		}
		l.assigned[a.Name] = assignment{text: a.Value, from: "-var"}
	}
	l.readSavedValues()
}

// autoVarFiles are the auto-loaded variable files of dir, in the order they apply.
func autoVarFiles(dir string) []string {
	var out []string
	for _, n := range []string{AutoVarsFile, AutoVarsFile + ".json"} {
		if st, err := os.Stat(filepath.Join(dir, n)); err == nil && !st.IsDir() {
			out = append(out, filepath.Join(dir, n))
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return out
	}
	var auto []string
	for _, e := range entries {
		n := e.Name()
		if !e.IsDir() && !ignoredFile(n) && (strings.HasSuffix(n, AutoVarsSuffix) || strings.HasSuffix(n, AutoVarsSuffix+".json")) {
			auto = append(auto, filepath.Join(dir, n))
		}
	}
	sort.Strings(auto)
	return append(out, auto...)
}

// readVarFile reads one variable file (HCL native syntax, or JSON when the name ends in
// .json). Its values must be constants: a variable file cannot refer to anything.
func (l *loader) readVarFile(name, from string) {
	before := len(l.diags)
	f := l.readHCL(name, "variable file")
	if f == nil || l.diags[before:].HasErrors() {
		return
	}
	attrs, diags := f.Body.JustAttributes()
	l.diags = append(l.diags, diags...)
	for _, a := range sortedAttrs(attrs) {
		val, vdiags := a.Expr.Value(nil)
		if vdiags.HasErrors() {
			for _, d := range vdiags {
				if d.Severity == hcl.DiagError && d.Summary == "Variables not allowed" {
					d.Detail = "A variable file holds constant values only: it cannot refer to variables, locals or blocks."
				}
			}
			l.diags = append(l.diags, vdiags...)
			continue
		}
		l.assigned[a.Name] = assignment{val: val, from: from, rng: a.Range, isFile: true}
	}
}

// checkUndeclared reports values given for variables nobody declared: an error for -var
// (almost always a typo), a warning for a variable file (files are often shared between
// configurations), nothing for the environment, as Terraform does.
func (l *loader) checkUndeclared() {
	names := make([]string, 0, len(l.assigned))
	for name := range l.assigned {
		if _, ok := l.varVals[name]; !ok {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	declared := slices.Collect(maps.Keys(l.varVals))
	for _, name := range names {
		a := l.assigned[name]
		switch {
		case a.isEnv, a.isSaved:
			// A variable removed since the plan was made no longer matters to it.
		case a.isFile:
			l.diags = append(l.diags, &hcl.Diagnostic{
				Severity: hcl.DiagWarning,
				Summary:  "Value for undeclared variable",
				Detail: fmt.Sprintf("The variable file sets %q, but no variable %q {} block declares it; the value is ignored.%s",
					name, name, didYouMean(name, declared)),
				Subject: a.rng.Ptr(),
			})
		default:
			l.diags = append(l.diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Value for undeclared variable",
				Detail: fmt.Sprintf("A value was given for a variable named %q (with -var), but no variable %q {} block declares it.%s",
					name, name, didYouMean(name, declared)),
			})
		}
	}
}
