package schema

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// phase is a step of evaluation; each sees only what earlier phases made.
type phase int

const (
	phaseVariables phase = iota // variable defaults: constants only
	phaseLocals                 // var.*, local.*
	phaseModules                // var.*, local.*: module block arguments
	phaseTwins                  // var.*, local.*, module.*
	phaseMethods                // var.*, local.*, module.*, twin.*
	phaseHub                    // var.*, local.*
	phaseOutputs                // var.*, local.*, module.*, twin.*, method.*
)

// rootsOf are the names a reference can start with in each phase (each and count come with
// the block being decoded). The hub block, evaluated last, still sees only variables and
// locals: it must not depend on resources.
var rootsOf = map[phase][]string{
	phaseLocals:  {"var", "local", "path"},
	phaseModules: {"var", "local", "path"},
	phaseTwins:   {"var", "local", "path", "module"},
	phaseMethods: {"var", "local", "path", "module", "twin"},
	phaseHub:     {"var", "local", "path"},
	phaseOutputs: {"var", "local", "path", "module", "twin", "method"},
}

// checkRefs reports every reference in expr that the phase cannot resolve,
// with a specific message, and returns false if there was any. Expressions
// with bad references are not evaluated: HCL's generic "Unsupported
// attribute" would only repeat the problem less clearly.
func (l *loader) checkRefs(expr hcl.Expression, ph phase) bool {
	ok := true
	for _, tr := range expr.Variables() {
		if d := l.checkRef(tr, ph); d != nil {
			l.diags = append(l.diags, d)
			ok = false
		}
	}
	return ok
}

// refError is a diagnostic about a reference, located at it.
func refError(tr hcl.Traversal, summary, detail string) *hcl.Diagnostic {
	rng := tr.SourceRange()
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: &rng}
}

// attrAt is the attribute name of step i of a traversal, "" when it is not an attribute.
func attrAt(tr hcl.Traversal, i int) string {
	if len(tr) > i {
		if a, ok := tr[i].(hcl.TraverseAttr); ok {
			return a.Name
		}
	}
	return ""
}

func (l *loader) checkRef(tr hcl.Traversal, ph phase) *hcl.Diagnostic {
	root := tr.RootName()
	if ph == phaseVariables {
		return refError(tr, "Variables not allowed", "A variable's default must be a constant: it cannot refer to variables, locals or blocks.")
	}
	name := attrAt(tr, 1)
	switch root {
	case "var":
		return l.checkNamed(tr, name, "variable", "var", l.varVals, fmt.Sprintf("Declare it with a variable %q {} block.", name))
	case "local":
		return l.checkNamed(tr, name, "local value", "local", l.localVals, "Define it in a locals block.")
	case "each", "count":
		return l.checkRepeatRef(tr, root, name)
	case "path":
		if name != "module" && name != "root" && name != "cwd" {
			return refError(tr, "Invalid reference", "path has the attributes module (this module's directory), root (the root module's directory) and cwd."+didYouMean(name, []string{"module", "root", "cwd"}))
		}
		return nil
	}
	if !l.rootAvailable(root, ph) {
		return l.unavailableRoot(tr, root, ph)
	}
	switch root {
	case "module":
		return l.checkNamed(tr, name, "module", "module", l.moduleVals, "Declare it with a module block.")
	case "twin", "method":
		return l.checkResourceRef(tr, root, name, ph)
	}
	return nil
}

// rootAvailable reports whether references starting with root can be used in phase ph.
func (l *loader) rootAvailable(root string, ph phase) bool {
	return slices.Contains(rootsOf[ph], root)
}

// unavailableRoot explains why a reference cannot be used here, suggesting a name for typos.
func (l *loader) unavailableRoot(tr hcl.Traversal, root string, ph phase) *hcl.Diagnostic {
	switch root {
	case "twin":
		return refError(tr, "Invalid reference", "twin.<name> can be used in method and output blocks only: twins are evaluated after variables, locals and modules, and before methods.")
	case "method":
		return refError(tr, "Invalid reference", "method.<name> can be used in output blocks only.")
	case "module":
		return refError(tr, "Invalid reference", "module.<name> can be used in twin, method and output blocks only: modules are evaluated after variables and locals.")
	}
	allowed := slices.Clone(rootsOf[ph])
	if l.repeat != "" {
		allowed = append(allowed, map[string]string{"for_each": "each", "count": "count"}[l.repeat])
	}
	return refError(tr, "Invalid reference", fmt.Sprintf("%q is not something that can be referred to here. References here start with %s.%s",
		root, strings.Join(allowed, ", "), didYouMean(root, allowed)))
}

// checkNamed checks a reference root.<name> against the declared names.
func (l *loader) checkNamed(tr hcl.Traversal, name, what, root string, declared map[string]cty.Value, hint string) *hcl.Diagnostic {
	if name == "" {
		return refError(tr, "Invalid reference", fmt.Sprintf("A reference to a %s is written %s.<name>.", what, root))
	}
	if _, ok := declared[name]; ok {
		return nil
	}
	if s := suggestion(name, slices.Collect(maps.Keys(declared))); s != "" {
		return refError(tr, "Reference to undeclared "+what, fmt.Sprintf("No %s named %q is declared. Did you mean %s.%s?", what, name, root, s))
	}
	return refError(tr, "Reference to undeclared "+what, fmt.Sprintf("No %s named %q is declared. %s", what, name, hint))
}

// checkRepeatRef checks each.key/each.value (for_each) and count.index (count).
func (l *loader) checkRepeatRef(tr hcl.Traversal, root, name string) *hcl.Diagnostic {
	want, attrs := "for_each", []string{"key", "value"}
	if root == "count" {
		want, attrs = "count", []string{"index"}
	}
	if l.repeat != want {
		return refError(tr, fmt.Sprintf("Reference to %q in a block without %s", root, want),
			fmt.Sprintf("%s.%s can be used only in a twin, method or module block that sets %s.", root, attrs[0], want))
	}
	for _, a := range attrs {
		if a == name {
			return nil
		}
	}
	return refError(tr, "Invalid reference", fmt.Sprintf("%s has the attributes %s.%s", root, strings.Join(attrs, " and "), didYouMean(name, attrs)))
}

// resourceAttrs are the attributes a twin or method reference can read; the plan facts
// (device counts) only in output blocks.
var resourceAttrs = []string{"target", "address", "targeted_devices", "devices"}

// checkResourceRef checks twin.<name>[key].<attr> and method.<name>[key].<attr>.
func (l *loader) checkResourceRef(tr hcl.Traversal, kind, name string, ph phase) *hcl.Diagnostic {
	vals := l.twinVals
	if kind == "method" {
		vals = l.methodVals
	}
	if d := l.checkNamed(tr, name, kind, kind, vals, fmt.Sprintf("Declare it with a %s %q {} block.", kind, name)); d != nil {
		return d
	}
	r := l.resources[kind+"."+name]
	next := 2
	if r != nil && r.repeat != "" && len(tr) > 2 {
		if _, isIndex := tr[2].(hcl.TraverseIndex); isIndex {
			next = 3
		}
	}
	attr := attrAt(tr, next)
	if len(tr) <= next || attr == "" {
		return nil // the whole object (or its instances); HCL checks what follows
	}
	for _, a := range resourceAttrs {
		if a != attr {
			continue
		}
		if (a == "devices" || a == "targeted_devices") && ph != phaseOutputs {
			return refError(tr, "Plan facts outside an output",
				fmt.Sprintf("%s.%s.%s is known only once the fleet has been read: it can be used in output blocks only.", kind, name, a))
		}
		return nil
	}
	return refError(tr, "Unsupported attribute", fmt.Sprintf("A %s reference has the attributes %s.%s", kind, strings.Join(resourceAttrs, ", "), didYouMean(attr, resourceAttrs)))
}

// evalContext is the context of a phase. Values of every earlier phase are
// included; a value that failed is unknown (cty.DynamicVal), so anything
// computed from it is unknown too and is skipped without a second report.
func (l *loader) evalContext(ph phase) *hcl.EvalContext {
	ctx := &hcl.EvalContext{Functions: functionsAt(l.dir)}
	if ph == phaseVariables {
		return ctx
	}
	ctx.Variables = map[string]cty.Value{
		"var":   cty.ObjectVal(l.varVals),
		"local": cty.ObjectVal(l.localVals),
		"path": cty.ObjectVal(map[string]cty.Value{
			"module": cty.StringVal(l.dir),
			"root":   cty.StringVal(l.rootLoader().dir),
			"cwd":    cty.StringVal("."),
		}),
	}
	if l.rootAvailable("module", ph) {
		ctx.Variables["module"] = cty.ObjectVal(l.moduleVals)
	}
	if l.rootAvailable("twin", ph) {
		ctx.Variables["twin"] = cty.ObjectVal(l.twinVals)
	}
	if l.rootAvailable("method", ph) {
		ctx.Variables["method"] = cty.ObjectVal(l.methodVals)
	}
	return ctx
}

// eval checks the references of expr and evaluates it. ok is false if it
// could not be evaluated to a known value; the reason has been reported
// (or is an earlier error that made an input unknown).
func (l *loader) eval(expr hcl.Expression, ph phase, ctx *hcl.EvalContext) (cty.Value, bool) {
	if !l.checkRefs(expr, ph) {
		return cty.DynamicVal, false
	}
	v, diags := expr.Value(ctx)
	l.diags = append(l.diags, diags...)
	if diags.HasErrors() {
		return cty.DynamicVal, false
	}
	if !v.IsWhollyKnown() {
		if hasMark(v, factMark) {
			l.diags = append(l.diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Value known only after planning",
				Detail:   "This value depends on plan facts (device counts, through a module output): they are known once the fleet has been read, so they can be used in output blocks only.",
				Subject:  expr.Range().Ptr(),
			})
			return v, false
		}
		l.requireEarlierError(expr.Range())
		return v, false
	}
	return v, true
}

// requireEarlierError guards the "unknown means an error was reported"
// invariant: if none was, say so rather than silently drop a value. In validate mode
// unknown values are expected (variables without values).
func (l *loader) requireEarlierError(rng hcl.Range) {
	if l.hadErrors() || l.rootLoader().opts.Validate {
		return
	}
	l.diags = append(l.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Value cannot be determined",
		Detail:   "This value depends on something that could not be evaluated.",
		Subject:  rng.Ptr(),
	})
}

// evalLocals evaluates local values in dependency order and reports cycles.
func (l *loader) evalLocals() {
	if len(l.localAttrs) == 0 {
		return
	}
	// Every declared local exists in the context (unknown until evaluated),
	// so that references resolve and a failed local stays unknown.
	byName := map[string]*hcl.Attribute{}
	for _, a := range l.localAttrs {
		byName[a.Name] = a
		l.localVals[a.Name] = cty.DynamicVal
	}
	refsOK := map[string]bool{}
	deps := map[string][]string{}
	for _, a := range l.localAttrs {
		refsOK[a.Name] = l.checkRefs(a.Expr, phaseLocals)
		seen := map[string]bool{}
		for _, tr := range a.Expr.Variables() {
			if tr.RootName() != "local" || len(tr) < 2 {
				continue
			}
			if s, ok := tr[1].(hcl.TraverseAttr); ok && byName[s.Name] != nil && !seen[s.Name] {
				seen[s.Name] = true
				deps[a.Name] = append(deps[a.Name], s.Name)
			}
		}
	}

	const (
		unvisited = iota
		visiting
		done
	)
	state := map[string]int{}
	failed := map[string]bool{}
	var stack []string
	var visit func(name string)
	visit = func(name string) {
		switch state[name] {
		case done:
			return
		case visiting:
			// A cycle: the part of the stack from name's first visit.
			i := len(stack) - 1
			for i > 0 && stack[i] != name {
				i--
			}
			cycle := append(append([]string(nil), stack[i:]...), name)
			for _, n := range cycle {
				failed[n] = true
			}
			path := make([]string, len(cycle))
			for j, n := range cycle {
				path[j] = "local." + n
			}
			l.diags = append(l.diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Cycle in local values",
				Detail:   fmt.Sprintf("These local values refer to each other in a loop, so none can be evaluated: %s.", strings.Join(path, " → ")),
				Subject:  byName[name].NameRange.Ptr(),
			})
			return
		}
		state[name] = visiting
		stack = append(stack, name)
		for _, d := range deps[name] {
			visit(d)
		}
		stack = stack[:len(stack)-1]
		state[name] = done

		a := byName[name]
		if failed[name] || !refsOK[name] {
			l.localVals[name] = cty.DynamicVal
			return
		}
		v, diags := a.Expr.Value(l.evalContext(phaseLocals))
		l.diags = append(l.diags, diags...)
		if diags.HasErrors() {
			v = cty.DynamicVal
		}
		l.localVals[name] = v
	}
	names := make([]string, 0, len(l.localAttrs))
	for _, a := range l.localAttrs {
		names = append(names, a.Name)
	}
	for _, n := range names {
		visit(n)
	}
}
