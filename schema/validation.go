package schema

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// checkValidations runs a variable's validation blocks against val, as Terraform's custom
// validation rules (https://developer.hashicorp.com/terraform/language/values/variables#custom-validation-rules):
// each condition may refer to the variable itself and call functions; when one is false,
// its error_message is the error. false when val is refused (reported).
func (l *loader) checkValidations(d variableDecl, val cty.Value, source string) bool {
	v := d.v
	self := val
	if v.Sensitive {
		self = self.Mark(sensitiveMark)
	}
	ctx := l.evalContext(phaseVariables)
	ctx.Variables = map[string]cty.Value{"var": cty.ObjectVal(map[string]cty.Value{v.Name: self})}
	ok := true
	for _, b := range d.validation {
		content, diags := b.Body.Content(validationSchema)
		l.diags = append(l.diags, diags...)
		if diags.HasErrors() {
			ok = false
			continue
		}
		cond, msg := content.Attributes["condition"], content.Attributes["error_message"]
		if !l.validationRefs(v.Name, cond.Expr) || !l.validationRefs(v.Name, msg.Expr) {
			ok = false
			continue
		}
		holds, known, good := l.condition(cond, ctx)
		if !good {
			ok = false
			continue
		}
		if !known || holds {
			continue
		}
		ok = false
		l.diags = append(l.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid value for variable",
			Detail: fmt.Sprintf("%s\n\nThe value of var.%s (from %s) was refused by the validation rule at %s:%d.",
				l.errorMessage(msg, ctx), v.Name, source, cond.Range.Filename, cond.Range.Start.Line),
			Subject: cond.Expr.Range().Ptr(),
		})
	}
	return ok
}

// validationRefs allows a validation rule to refer to its own variable only.
func (l *loader) validationRefs(name string, expr hcl.Expression) bool {
	ok := true
	for _, tr := range expr.Variables() {
		if tr.RootName() == "var" && attrAt(tr, 1) == name {
			continue
		}
		rng := tr.SourceRange()
		l.diags = append(l.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid reference in variable validation",
			Detail:   fmt.Sprintf("The validation rules of variable %q can refer to the variable itself only, as var.%s.", name, name),
			Subject:  &rng,
		})
		ok = false
	}
	return ok
}

// condition evaluates a validation condition: known is false while the variable's value is
// unknown (validate without values).
func (l *loader) condition(a *hcl.Attribute, ctx *hcl.EvalContext) (holds, known, ok bool) {
	val, diags := a.Expr.Value(ctx)
	l.diags = append(l.diags, diags...)
	if diags.HasErrors() {
		return false, false, false
	}
	val, _ = val.UnmarkDeep()
	if !val.IsKnown() {
		return false, false, true
	}
	bv, err := convert.Convert(val, cty.Bool)
	if err != nil || bv.IsNull() {
		l.diags = append(l.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid validation condition",
			Detail:   "The condition must be true or false.",
			Subject:  a.Expr.Range().Ptr(),
		})
		return false, false, false
	}
	return bv.True(), true, true
}

// errorMessage is a validation rule's error_message; one computed from a sensitive value is
// not shown.
func (l *loader) errorMessage(a *hcl.Attribute, ctx *hcl.EvalContext) string {
	val, diags := a.Expr.Value(ctx)
	if diags.HasErrors() || !val.IsWhollyKnown() {
		return "The value is not valid (its error message could not be evaluated)."
	}
	if val.ContainsMarked() {
		return "The value is not valid (its error message is not shown because it uses a sensitive value)."
	}
	sv, err := convert.Convert(val, cty.String)
	if err != nil || sv.IsNull() || sv.AsString() == "" {
		return "The value is not valid."
	}
	return sv.AsString()
}
