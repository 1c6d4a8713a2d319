package schema

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// Load is LoadWith(paths, Options{Args: ...}) with vars as -var name=value pairs (applied
// in name order).
func Load(paths []string, vars map[string]string) (*Config, hcl.Diagnostics) {
	names := make([]string, 0, len(vars))
	for n := range vars {
		names = append(names, n)
	}
	sort.Strings(names)
	var opts Options
	for _, n := range names {
		opts.Args = append(opts.Args, VarArg{Name: n, Value: vars[n]})
	}
	return LoadWith(paths, opts)
}

// Options are the inputs of LoadWith besides the configuration's paths.
type Options struct {
	// Args are the -var and -var-file arguments in command-line order.
	Args []VarArg
	// Validate checks the configuration without needing variable values, like terraform
	// validate: a variable with no value is unknown, and whatever depends on it is checked
	// as far as it can be, without an error.
	Validate bool
	// NoAutoVars skips the auto-loaded variable files (iotplan.vars, *.auto.vars).
	NoAutoVars bool
	// Saved are the root variables a saved plan recorded (SavedVariables), when the plan is
	// applied: their values win over every other source, and a sensitive one the plan was
	// given a value for must get one again (saved.go).
	Saved []SavedVariable
}

// VarArg is one -var name=value (File "") or -var-file FILE argument.
type VarArg struct {
	Name, Value string
	File        string
}

// LoadWith parses every *.hcl and *.hcl.json file named in paths (a directory contributes
// all such files directly inside it, sorted by name), loads the modules they call, resolves
// variables, evaluates and validates.
//
// A root variable's value comes from the last of these that sets it, as in Terraform: its
// default; IOTPLAN_VAR_<name>; the auto-loaded variable files next to the configuration
// (iotplan.vars, then *.auto.vars in name order); then -var and -var-file in the order
// given. Text from -var and the environment is taken literally for primitive types and
// parsed as an HCL expression for the others, like Terraform does.
//
// It reports all problems it finds rather than stopping at the first, and never panics on
// any input. The returned Config is never nil: its Files are always filled (for rendering
// diagnostics), but when diags.HasErrors() the rest is partial and must not be planned or
// applied.
func LoadWith(paths []string, opts Options) (*Config, hcl.Diagnostics) {
	l := newLoader(hclparse.NewParser(), &Config{})
	l.opts = opts
	l.dir = configDir(paths)
	l.parse(paths)
	if l.diags.HasErrors() {
		// Syntax errors (or unreadable files): HCL's recovered tree of a
		// broken file yields follow-on errors that only confuse, so stop
		// here having reported every file's syntax errors.
		l.cfg.Files = l.parser.Files()
		return l.cfg, scrub(l.diags)
	}
	// A broken variable file leaves its variables unset (reported); loading goes on so one
	// run shows every problem.
	l.readVarSources()
	l.evaluate()
	l.cfg.root = l
	l.cfg.Files = l.parser.Files()
	return l.cfg, scrub(l.diags)
}

// evaluate runs the phases of one module, each seeing only what earlier phases produced.
func (l *loader) evaluate() {
	l.collect()
	l.evalVariables()
	l.evalLocals()
	l.decodeModules()
	l.decodeHub()
	l.decodeTwins()
	l.decodeMethods()
	l.decodeOutputs()
}

// scrub removes the expression and evaluation context from diagnostics:
// hcl.NewDiagnosticTextWriter would print the values of variables an
// expression refers to, and one of them might be a secret that was not
// declared sensitive (a connection string, say).
//
// It also repairs ranges that end before they start (HCL builds a few of
// those while recovering from errors), so renderers can trust them.
func scrub(diags hcl.Diagnostics) hcl.Diagnostics {
	for _, d := range diags {
		d.Expression = nil
		d.EvalContext = nil
		for _, r := range []*hcl.Range{d.Subject, d.Context} {
			if r != nil && r.End.Byte < r.Start.Byte {
				r.End = r.Start
			}
		}
	}
	return diags
}

// loader holds the state of loading one module instance (the root module, or one instance
// of a module block): the raw blocks collected from its files, then the values of each
// evaluation phase. Modules share the parser and the Config; a module's diagnostics join
// its caller's when it is loaded.
type loader struct {
	parser *hclparse.Parser
	cfg    *Config
	files  []*hcl.File // in load order
	diags  hcl.Diagnostics

	opts     Options               // the root's
	assigned map[string]assignment // root: values for variables, by name (varfiles.go)
	dir      string                // the module's directory: file() and path.module start here
	addr     string                // the module instance's address; "" for the root
	parent   *loader               // nil for the root
	call     *moduleCall           // how the parent called this instance (nil for the root)

	hubBlocks    []*hcl.Block
	varBlocks    []*hcl.Block
	localAttrs   []*hcl.Attribute // in declaration order, duplicates removed
	twinBlocks   []*hcl.Block
	methodBlocks []*hcl.Block
	moduleBlocks []*hcl.Block
	outputBlocks []*hcl.Block

	varVals    map[string]cty.Value // cty.DynamicVal when unresolved
	localVals  map[string]cty.Value
	moduleVals map[string]cty.Value // module.<name>: its outputs, per instance when repeated
	twinVals   map[string]cty.Value // twin.<name>: see resourceValue
	methodVals map[string]cty.Value

	resources map[string]*repeated // "twin.<name>", "method.<name>": the instances decoded
	modules   map[string]*repeated // module name: the instances loaded
	outputs   []*outputDecl
	facts     map[string]Facts // plan facts by address (EvalOutputs); nil at load
	// repeat is "for_each" or "count" while a repeated block's instance is decoded, so that
	// references to each and count are checked.
	repeat string
}

func newLoader(parser *hclparse.Parser, cfg *Config) *loader {
	return &loader{
		parser:     parser,
		cfg:        cfg,
		varVals:    map[string]cty.Value{},
		localVals:  map[string]cty.Value{},
		moduleVals: map[string]cty.Value{},
		twinVals:   map[string]cty.Value{},
		methodVals: map[string]cty.Value{},
		resources:  map[string]*repeated{},
		modules:    map[string]*repeated{},
	}
}

// rootLoader is the loader of the root module.
func (l *loader) rootLoader() *loader {
	for l.parent != nil {
		l = l.parent
	}
	return l
}

// hadErrors reports whether this module or a caller reported an error: an unknown value
// then needs no diagnostic of its own.
func (l *loader) hadErrors() bool {
	for m := l; m != nil; m = m.parent {
		if m.diags.HasErrors() {
			return true
		}
	}
	return false
}

// configDir is the directory of the root module: the first path when it is a directory,
// else the directory of the first file.
func configDir(paths []string) string {
	if len(paths) == 0 {
		return "."
	}
	if st, err := os.Stat(paths[0]); err == nil && st.IsDir() {
		return paths[0]
	}
	return filepath.Dir(paths[0])
}

// parse reads and parses every file, in order, each file once.
func (l *loader) parse(paths []string) {
	if len(paths) == 0 {
		l.diags = append(l.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "No configuration files",
			Detail:   "Name at least one .hcl file or a directory holding .hcl files.",
		})
		return
	}
	seen := map[string]bool{}
	for _, p := range paths {
		for _, name := range l.expand(p) {
			clean := filepath.Clean(name)
			if seen[clean] {
				continue
			}
			seen[clean] = true
			l.parseFile(name)
		}
	}
}

// expand turns one path into the files to load.
func (l *loader) expand(p string) []string {
	st, err := os.Stat(p)
	if err != nil {
		l.diags = append(l.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Failed to read configuration",
			Detail:   fmt.Sprintf("Cannot read %s: %s.", p, errText(err)),
		})
		return nil
	}
	if !st.IsDir() {
		return []string{p}
	}
	entries, err := os.ReadDir(p)
	if err != nil {
		l.diags = append(l.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Failed to read configuration directory",
			Detail:   fmt.Sprintf("Cannot list %s: %s.", p, errText(err)),
		})
		return nil
	}
	var names []string
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || ignoredFile(n) || !(strings.HasSuffix(n, ".hcl") || strings.HasSuffix(n, ".hcl.json")) {
			continue
		}
		names = append(names, filepath.Join(p, n))
	}
	sort.Strings(names)
	if len(names) == 0 {
		l.diags = append(l.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "No configuration files",
			Detail:   fmt.Sprintf("The directory %s holds no .hcl or .hcl.json files.", p),
		})
	}
	return names
}

// ignoredFile matches editor leftovers and hidden files, as Terraform does.
func ignoredFile(name string) bool {
	return strings.HasPrefix(name, ".") || strings.HasPrefix(name, "#") || strings.HasSuffix(name, "~")
}

// errText is an OS error without the path (the caller names it once).
func errText(err error) string {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err.Error()
	}
	return err.Error()
}

func (l *loader) parseFile(name string) {
	if f := l.readHCL(name, "configuration"); f != nil && f.Body != nil {
		l.files = append(l.files, f)
	}
}

// readHCL reads and parses one file, in HCL's JSON syntax when its name ends in .json,
// reporting what cannot be read or parsed ("Failed to read <what>"). The file, nil when it
// could not be read, may hold a partial body after syntax errors.
func (l *loader) readHCL(name, what string) *hcl.File {
	src, err := os.ReadFile(name)
	if err != nil {
		l.diags = append(l.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Failed to read " + what,
			Detail:   fmt.Sprintf("Cannot read %s: %s.", name, errText(err)),
		})
		return nil
	}
	var f *hcl.File
	var diags hcl.Diagnostics
	if strings.HasSuffix(name, ".json") {
		f, diags = l.parser.ParseJSON(src, name)
	} else {
		f, diags = l.parser.ParseHCL(src, name)
	}
	l.diags = append(l.diags, diags...)
	return f
}

// collect sorts the top-level blocks of every file by type and rejects
// duplicate names, naming the first declaration.
func (l *loader) collect() {
	var hubSeen *hcl.Block
	varSeen := map[string]*hcl.Block{}
	twinSeen := map[string]*hcl.Block{}
	methodSeen := map[string]*hcl.Block{}
	moduleSeen := map[string]*hcl.Block{}
	outputSeen := map[string]*hcl.Block{}
	localSeen := map[string]*hcl.Attribute{}

	for _, f := range l.files {
		if l.isFleetFile(f) {
			continue
		}
		content, diags := f.Body.Content(fileSchema)
		l.diags = append(l.diags, diags...)
		if content == nil {
			continue
		}
		for _, b := range content.Blocks {
			switch b.Type {
			case "hub":
				if l.parent != nil {
					l.diags = append(l.diags, &hcl.Diagnostic{
						Severity: hcl.DiagError,
						Summary:  "Hub block in a module",
						Detail:   fmt.Sprintf("The module %s declares a hub block. A configuration talks to one hub, declared in its root module; remove this block.", l.addr),
						Subject:  b.DefRange.Ptr(),
					})
					continue
				}
				if hubSeen != nil {
					l.diags = append(l.diags, &hcl.Diagnostic{
						Severity: hcl.DiagError,
						Summary:  "Duplicate hub block",
						Detail:   fmt.Sprintf("A hub block was already declared at %s. A configuration talks to one hub.", hubSeen.DefRange),
						Subject:  b.DefRange.Ptr(),
					})
					continue
				}
				hubSeen = b
				l.hubBlocks = append(l.hubBlocks, b)
			case "variable":
				if l.checkLabel(b, "variable", varSeen) {
					l.varBlocks = append(l.varBlocks, b)
				}
			case "twin":
				if l.checkLabel(b, "twin", twinSeen) {
					l.twinBlocks = append(l.twinBlocks, b)
				}
			case "method":
				if l.checkLabel(b, "method", methodSeen) {
					l.methodBlocks = append(l.methodBlocks, b)
				}
			case "module":
				if l.checkLabel(b, "module", moduleSeen) {
					l.moduleBlocks = append(l.moduleBlocks, b)
				}
			case "output":
				if l.checkLabel(b, "output", outputSeen) {
					l.outputBlocks = append(l.outputBlocks, b)
				}
			case "locals":
				attrs, diags := b.Body.JustAttributes()
				l.diags = append(l.diags, diags...)
				for _, a := range sortedAttrs(attrs) {
					if !validName(a.Name) {
						l.diags = append(l.diags, &hcl.Diagnostic{
							Severity: hcl.DiagError,
							Summary:  "Invalid local value name",
							Detail:   nameRule,
							Subject:  a.NameRange.Ptr(),
						})
						continue
					}
					if first, ok := localSeen[a.Name]; ok {
						l.diags = append(l.diags, &hcl.Diagnostic{
							Severity: hcl.DiagError,
							Summary:  "Duplicate local value definition",
							Detail:   fmt.Sprintf("A local value named %q was already defined at %s. Local value names must be unique.", a.Name, first.NameRange),
							Subject:  a.NameRange.Ptr(),
						})
						continue
					}
					localSeen[a.Name] = a
					l.localAttrs = append(l.localAttrs, a)
				}
			}
		}
	}
}

// sortedAttrs orders JustAttributes' map by position, so that diagnostics
// and evaluation follow the file.
func sortedAttrs(attrs hcl.Attributes) []*hcl.Attribute {
	out := make([]*hcl.Attribute, 0, len(attrs))
	for _, a := range attrs {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].Range, out[j].Range
		if a.Filename != b.Filename {
			return a.Filename < b.Filename
		}
		return a.Start.Byte < b.Start.Byte
	})
	return out
}

const nameRule = "A name must start with a letter or underscore and may contain only ASCII letters, digits, underscores and dashes."

// validName accepts ASCII identifiers. Names end up in addresses and hub job
// ids, which allow only US-ASCII, so non-ASCII letters are refused here
// although HCL identifiers would accept them.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_':
		case (c >= '0' && c <= '9') || c == '-':
			if i == 0 {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// checkLabel validates a block's name label and records it; false means
// the block is a duplicate and must be skipped.
func (l *loader) checkLabel(b *hcl.Block, kind string, seen map[string]*hcl.Block) bool {
	name := b.Labels[0]
	if !validName(name) {
		l.diags = append(l.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  fmt.Sprintf("Invalid %s name", kind),
			Detail:   nameRule,
			Subject:  b.LabelRanges[0].Ptr(),
		})
	}
	if first, ok := seen[name]; ok {
		l.diags = append(l.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  fmt.Sprintf("Duplicate %s block", kind),
			Detail:   fmt.Sprintf("A %s block named %q was already declared at %s. %s names must be unique.", kind, name, first.DefRange, upperFirst(kind)),
			Subject:  b.LabelRanges[0].Ptr(),
		})
		return false
	}
	seen[name] = b
	return true
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// isFleetFile recognises a simulated-fleet file of the local hub (device and
// group blocks, like examples/fleet.hcl), which sits next to configurations
// and is easily passed by mistake: one clear error instead of one
// "Unsupported block type" per block.
func (l *loader) isFleetFile(f *hcl.File) bool {
	body, ok := f.Body.(*hclsyntax.Body)
	if !ok {
		return false
	}
	for _, b := range body.Blocks {
		if b.Type == "device" || b.Type == "group" {
			l.diags = append(l.diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Fleet file given as configuration",
				Detail: fmt.Sprintf("%s declares simulated devices (%s blocks): it is a fleet file for the local hub (iotplan dev --fleet), not an iotplan configuration. Name the configuration files instead, e.g. examples/lockdoor.hcl.",
					b.TypeRange.Filename, b.Type),
				Subject: b.TypeRange.Ptr(),
			})
			return true
		}
	}
	return false
}
