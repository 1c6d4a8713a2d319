package schema

import (
	"maps"
	"slices"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// outputDecl is an output block of a module and its current value.
type outputDecl struct {
	block       *hcl.Block
	value       *hcl.Attribute
	description string
	sensitive   bool
	val         cty.Value // marked; cty.DynamicVal when it failed
}

// decodeOutputs decodes and evaluates every output block of this module. Outputs may read
// everything (variables, locals, modules, twins, methods); the plan facts
// (twin.<name>.devices, .targeted_devices) stay unknown until EvalOutputs.
func (l *loader) decodeOutputs() {
	ctx := l.evalContext(phaseOutputs)
	for _, b := range l.outputBlocks {
		content, diags := b.Body.Content(outputSchema)
		l.diags = append(l.diags, diags...)
		if content == nil || content.Attributes["value"] == nil {
			continue
		}
		od := &outputDecl{block: b, value: content.Attributes["value"], val: cty.DynamicVal}
		if a, found := content.Attributes["description"]; found {
			od.description, _ = l.constString(a)
		}
		if a, found := content.Attributes["sensitive"]; found {
			od.sensitive, _ = l.constBool(a)
		}
		l.outputs = append(l.outputs, od)
		l.evalOutput(od, ctx)
	}
	if l.parent == nil {
		l.cfg.Outputs = l.rootOutputs()
	}
}

// evalOutput evaluates one output. A value built from a sensitive one must be declared
// sensitive, as Terraform requires
// (https://developer.hashicorp.com/terraform/language/values/outputs#sensitive-suppressing-values-in-cli-output).
func (l *loader) evalOutput(od *outputDecl, ctx *hcl.EvalContext) {
	od.val = cty.DynamicVal
	if !l.checkRefs(od.value.Expr, phaseOutputs) {
		return
	}
	v, diags := od.value.Expr.Value(ctx)
	l.diags = append(l.diags, diags...)
	if diags.HasErrors() {
		return
	}
	if hasMark(v, sensitiveMark) && !od.sensitive {
		l.diags = append(l.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Output refers to sensitive values",
			Detail:   "This output's value uses a sensitive value, so it must be declared sensitive = true: then plans and apply print (sensitive value) in its place.",
			Subject:  od.value.Expr.Range().Ptr(),
		})
		return
	}
	if od.sensitive {
		v = v.Mark(sensitiveMark)
	}
	od.val = v
}

// outputObject is module.<name> for a caller: the module's outputs by name.
func (l *loader) outputObject() cty.Value {
	m := make(map[string]cty.Value, len(l.outputs))
	for _, od := range l.outputs {
		m[od.block.Labels[0]] = od.val
	}
	return cty.ObjectVal(m)
}

// rootOutputs are the root module's outputs, values unmarked.
func (l *loader) rootOutputs() []*Output {
	out := make([]*Output, 0, len(l.outputs))
	for _, od := range l.outputs {
		v, _ := od.val.UnmarkDeep()
		out = append(out, &Output{Name: od.block.Labels[0], Description: od.description, Sensitive: od.sensitive, Value: v, DeclRange: od.block.DefRange})
	}
	return out
}

// EvalOutputs evaluates the outputs again with the plan facts of each resource instance by
// address (its device counts), so that outputs such as
//
//	output "doors_changing" { value = twin.doors.devices }
//
// are known. An instance without facts (not planned) keeps them unknown. It returns the
// diagnostics of that evaluation.
func (c *Config) EvalOutputs(facts map[string]Facts) hcl.Diagnostics {
	if c.root == nil {
		return nil
	}
	diags := c.root.refreshOutputs(facts)
	c.Outputs = c.root.rootOutputs()
	return scrub(diags)
}

func (l *loader) refreshOutputs(facts map[string]Facts) hcl.Diagnostics {
	l.facts = facts
	var diags hcl.Diagnostics
	names := slices.Sorted(maps.Keys(l.modules))
	for _, name := range names {
		r := l.modules[name]
		for i, it := range r.items {
			if it.child != nil {
				diags = append(diags, it.child.refreshOutputs(facts)...)
				r.items[i].val = it.child.outputObject()
			}
		}
		l.moduleVals[name] = r.value()
	}
	l.refreshResources()
	before := len(l.diags)
	ctx := l.evalContext(phaseOutputs)
	for _, od := range l.outputs {
		l.evalOutput(od, ctx)
	}
	return append(diags, l.diags[before:]...)
}
