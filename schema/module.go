package schema

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// MaxModuleDepth bounds how deep modules may call modules.
const MaxModuleDepth = 16

// moduleCall is how a module block called one module instance: the values of its
// arguments, which are the module's input variables.
type moduleCall struct {
	block  *hcl.Block
	inputs map[string]moduleInput
	first  bool // the block's first instance: argument problems are reported once
}

type moduleInput struct {
	val  cty.Value
	attr *hcl.Attribute
}

// decodeModules loads every module block's instances, as Terraform's local modules
// (https://developer.hashicorp.com/terraform/language/modules/sources#local-paths): source
// is a directory relative to this module's, the other arguments are its input variables,
// and module.<name>.<output> reads its outputs.
func (l *loader) decodeModules() {
	for _, b := range l.moduleBlocks {
		l.moduleVals[b.Labels[0]] = cty.DynamicVal
	}
	ctx := l.evalContext(phaseModules)
	for _, b := range l.moduleBlocks {
		name := b.Labels[0]
		r := &repeated{}
		l.modules[name] = r
		attrs, diags := b.Body.JustAttributes()
		l.diags = append(l.diags, diags...)
		source, dir, ok := l.moduleSource(b, attrs["source"])
		if !ok || diags.HasErrors() {
			continue
		}
		insts, repeat, ok := l.instances(attrs["for_each"], attrs["count"], phaseModules, ctx)
		if !ok {
			continue
		}
		r.repeat = repeat
		l.repeat = repeat
		for i, inst := range insts {
			child := l.loadModule(b, inst, attrs, source, dir, i == 0)
			val := cty.DynamicVal
			if child != nil {
				val = child.outputObject()
			}
			r.items = append(r.items, repeatedItem{key: inst.key, val: val, child: child})
		}
		l.repeat = ""
		l.moduleVals[name] = r.value()
	}
}

// loadModule loads one instance of a module block; nil when its files could not be read.
func (l *loader) loadModule(b *hcl.Block, inst instance, attrs hcl.Attributes, source, dir string, first bool) *loader {
	call := &moduleCall{block: b, inputs: map[string]moduleInput{}, first: first}
	for _, a := range sortedAttrs(attrs) {
		if moduleMeta[a.Name] {
			continue
		}
		val, _ := l.eval(a.Expr, phaseModules, inst.ctx)
		call.inputs[a.Name] = moduleInput{val: val, attr: a}
	}
	child := newLoader(l.parser, l.cfg)
	child.parent, child.call, child.dir = l, call, dir
	child.addr = strings.TrimPrefix(l.addr+".module."+b.Labels[0]+inst.keyText, ".")
	child.parse([]string{dir})
	if child.diags.HasErrors() {
		for _, d := range child.diags {
			if d.Subject == nil {
				d.Subject = attrs["source"].Expr.Range().Ptr() // "No configuration files" in the module's directory
			}
		}
		l.diags = append(l.diags, child.diags...)
		return nil
	}
	child.evaluate()
	l.diags = append(l.diags, child.diags...)
	l.cfg.Modules = append(l.cfg.Modules, &ModuleInstance{Addr: child.addr, Source: source, Dir: dir, DeclRange: b.DefRange})
	return child
}

// moduleSource checks a module's source: a constant local path ("./x", "../x"), a
// directory of configuration files, not already being loaded by a caller.
func (l *loader) moduleSource(b *hcl.Block, a *hcl.Attribute) (source, dir string, ok bool) {
	bad := func(summary, detail string, rng hcl.Range) (string, string, bool) {
		l.diags = append(l.diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: rng.Ptr()})
		return "", "", false
	}
	if a == nil {
		return bad("Missing required argument", `A module block needs source = "./path/to/module", the directory holding the module's files.`, b.DefRange)
	}
	v, diags := a.Expr.Value(nil)
	if diags.HasErrors() || v.Type() != cty.String || v.IsNull() {
		return bad("Invalid module source", "source must be a string constant: the module's files are read before anything is evaluated.", a.Expr.Range())
	}
	source = v.AsString()
	if !strings.HasPrefix(source, "./") && !strings.HasPrefix(source, "../") {
		return bad("Invalid module source", fmt.Sprintf("iotplan loads modules from local directories only: source must start with ./ or ../ (got %q).", clip(source)), a.Expr.Range())
	}
	dir = filepath.Join(l.dir, filepath.FromSlash(source))
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return bad("Module not found", fmt.Sprintf("The module directory %s does not exist or is not a directory.", dir), a.Expr.Range())
	}
	abs, _ := filepath.Abs(dir)
	depth := 0
	for m := l; m != nil; m = m.parent {
		if mabs, _ := filepath.Abs(m.dir); mabs == abs {
			return bad("Module calls itself", fmt.Sprintf("The module in %s is already being loaded by a caller (%s): modules cannot call themselves.", dir, orRoot(m.addr)), a.Expr.Range())
		}
		depth++
	}
	if depth > MaxModuleDepth {
		return bad("Modules nested too deep", fmt.Sprintf("Modules may call modules at most %d levels deep.", MaxModuleDepth), a.Expr.Range())
	}
	return source, dir, true
}

func orRoot(addr string) string {
	if addr == "" {
		return "the root module"
	}
	return addr
}

// convertInput converts a module argument to its variable's type. A sensitive argument
// makes the variable sensitive within the module.
func (l *loader) convertInput(v *Variable, in moduleInput) (val cty.Value, source string, given, good bool) {
	raw, marks := in.val.UnmarkDeep()
	if _, secret := marks[sensitiveMark]; secret {
		v.Sensitive = true
	}
	cv, err := convert.Convert(raw, v.Type)
	if err != nil {
		subject := in.attr.Expr.Range().Ptr()
		if v.Sensitive {
			subject = in.attr.NameRange.Ptr()
		}
		l.diags = append(l.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid value for module argument",
			Detail:   fmt.Sprintf("The argument %q does not match the type of the module's variable, %s: %s.", v.Name, typeexpr.TypeString(v.Type), convertErrText(err)),
			Subject:  subject,
		})
		return cty.NilVal, l.addr, true, false
	}
	return cv, l.addr, true, true
}

// checkInputs reports module arguments that name no variable of the module.
func (l *loader) checkInputs() {
	if !l.call.first {
		return
	}
	declared := slices.Collect(maps.Keys(l.varVals))
	for _, a := range sortedAttrs(inputAttrs(l.call)) {
		if _, ok := l.varVals[a.Name]; ok {
			continue
		}
		l.diags = append(l.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Unsupported argument",
			Detail:   fmt.Sprintf("The module %s has no variable named %q.%s", l.addr, a.Name, didYouMean(a.Name, declared)),
			Subject:  a.NameRange.Ptr(),
		})
	}
}

func inputAttrs(c *moduleCall) hcl.Attributes {
	out := hcl.Attributes{}
	for name, in := range c.inputs {
		out[name] = in.attr
	}
	return out
}
