package schema

import (
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// phase is a step of evaluation; each sees only what earlier phases made.
type phase int

const (
	phaseVariables phase = iota // variable defaults: constants only
	phaseLocals                 // var.*, local.*
	phaseTwins                  // var.*, local.*
	phaseMethods                // var.*, local.*, twin.<name>.target
	phaseHub                    // var.*, local.*
)

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

func (l *loader) checkRef(tr hcl.Traversal, ph phase) *hcl.Diagnostic {
	root := tr.RootName()
	rng := tr.SourceRange()
	bad := func(summary, detail string) *hcl.Diagnostic {
		return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: &rng}
	}
	if ph == phaseVariables {
		return bad("Variables not allowed", "A variable's default must be a constant: it cannot refer to variables, locals or blocks.")
	}
	var name string
	if len(tr) > 1 {
		if a, ok := tr[1].(hcl.TraverseAttr); ok {
			name = a.Name
		}
	}
	switch root {
	case "var":
		if name == "" {
			return bad("Invalid reference", "A reference to a variable is written var.<name>.")
		}
		if _, ok := l.varVals[name]; !ok {
			return bad("Reference to undeclared variable",
				fmt.Sprintf("No variable named %q is declared. Declare it with a variable %q {} block.", name, name))
		}
		return nil
	case "local":
		if name == "" {
			return bad("Invalid reference", "A reference to a local value is written local.<name>.")
		}
		if !l.localDeclared(name) {
			return bad("Reference to undeclared local value",
				fmt.Sprintf("No local value named %q is defined in a locals block.", name))
		}
		return nil
	case "twin":
		if ph != phaseMethods {
			return bad("Invalid reference",
				"twin.<name>.target can be used in method blocks only: twins are evaluated after variables and locals, and before methods.")
		}
		if name == "" {
			return bad("Invalid reference", "A reference to a twin is written twin.<name>.target.")
		}
		if _, ok := l.twinVals[name]; !ok {
			return bad("Reference to undeclared twin", fmt.Sprintf("No twin block named %q is declared.", name))
		}
		if len(tr) > 2 {
			if a, ok := tr[2].(hcl.TraverseAttr); !ok || a.Name != "target" {
				return bad("Unsupported twin attribute", "A twin block can be referred to for its target only: twin.<name>.target.")
			}
		}
		return nil
	}
	allowed := "var.<name> or local.<name>"
	if ph == phaseMethods {
		allowed = "var.<name>, local.<name> or twin.<name>.target"
	}
	return bad("Invalid reference", fmt.Sprintf("%q is not something that can be referred to here. References are %s.", root, allowed))
}

func (l *loader) localDeclared(name string) bool {
	_, ok := l.localVals[name]
	return ok
}

// evalContext is the context of a phase. Values of every earlier phase are
// included; a value that failed is unknown (cty.DynamicVal), so anything
// computed from it is unknown too and is skipped without a second report.
func (l *loader) evalContext(ph phase) *hcl.EvalContext {
	ctx := &hcl.EvalContext{Functions: functions()}
	if ph == phaseVariables {
		return ctx
	}
	ctx.Variables = map[string]cty.Value{
		"var":   cty.ObjectVal(l.varVals),
		"local": cty.ObjectVal(l.localVals),
	}
	if ph == phaseMethods {
		ctx.Variables["twin"] = cty.ObjectVal(l.twinVals)
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
		l.requireEarlierError(expr.Range())
		return v, false
	}
	return v, true
}

// requireEarlierError guards the "unknown means an error was reported"
// invariant: if none was, say so rather than silently drop a value.
func (l *loader) requireEarlierError(rng hcl.Range) {
	if l.diags.HasErrors() {
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
