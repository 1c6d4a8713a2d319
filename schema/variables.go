package schema

import (
	"fmt"
	"os"
	"sort"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// EnvVarPrefix prefixes the environment variables that set variables:
// IOTPLAN_VAR_site=43 sets var.site (after -var, before the default).
const EnvVarPrefix = "IOTPLAN_VAR_"

// sensitiveMark is the cty mark carried by values of sensitive variables and
// everything computed from them.
type sensitiveMarkType struct{}

var sensitiveMark = sensitiveMarkType{}

// evalVariables decodes every variable block and resolves its value.
func (l *loader) evalVariables() {
	// Declare every variable first so a reference to a broken one is not
	// also reported as undeclared.
	for _, b := range l.varBlocks {
		l.varVals[b.Labels[0]] = cty.DynamicVal
	}
	for _, b := range l.varBlocks {
		v := l.decodeVariable(b)
		l.cfg.Variables = append(l.cfg.Variables, v)
		if v.Value != cty.NilVal {
			val := v.Value
			if v.Sensitive {
				val = val.Mark(sensitiveMark)
			}
			l.varVals[v.Name] = val
		}
	}
	// A -var for a variable nobody declared is almost always a typo.
	names := make([]string, 0, len(l.vars))
	for name := range l.vars {
		if _, ok := l.varVals[name]; !ok {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		l.diags = append(l.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Value for undeclared variable",
			Detail:   fmt.Sprintf("A value was given for a variable named %q (with -var), but no variable %q {} block declares it.", name, name),
		})
	}
}

func (l *loader) decodeVariable(b *hcl.Block) *Variable {
	v := &Variable{Name: b.Labels[0], Type: cty.DynamicPseudoType, DeclRange: b.DefRange}
	content, diags := b.Body.Content(variableSchema)
	l.diags = append(l.diags, diags...)
	if content == nil {
		return v
	}
	ok := true
	// Like Terraform: a value given as text is taken literally for an
	// untyped or primitive variable, and parsed as an HCL expression for
	// collection, structural and "any" types.
	literal := true
	if a, found := content.Attributes["type"]; found {
		ty, diags := typeexpr.TypeConstraint(a.Expr)
		l.diags = append(l.diags, diags...)
		if diags.HasErrors() {
			ok = false
		} else {
			v.Type = ty
			literal = ty.IsPrimitiveType()
		}
	}
	if a, found := content.Attributes["description"]; found {
		if s, good := l.constString(a); good {
			v.Description = s
		}
	}
	if a, found := content.Attributes["sensitive"]; found {
		val, good := l.eval(a.Expr, phaseVariables, l.evalContext(phaseVariables))
		if good {
			bv, err := convert.Convert(val, cty.Bool)
			if err != nil || bv.IsNull() {
				l.diags = append(l.diags, attrTypeDiag(a, "bool"))
			} else {
				v.Sensitive = bv.True()
			}
		}
	}
	var def cty.Value
	hasDefault := false
	if a, found := content.Attributes["default"]; found {
		val, good := l.eval(a.Expr, phaseVariables, l.evalContext(phaseVariables))
		if good && ok {
			cv, err := convert.Convert(val, v.Type)
			if err != nil {
				// A sensitive default is reported at the block header: the snippet of
				// the default's line would print the secret.
				subject := a.Expr.Range().Ptr()
				if v.Sensitive {
					subject = b.DefRange.Ptr()
				}
				l.diags = append(l.diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Invalid default value for variable",
					Detail:   fmt.Sprintf("This default value does not match the variable's type %s: %s.", typeexpr.TypeString(v.Type), convertErrText(err)),
					Subject:  subject,
				})
				ok = false
			} else {
				def, hasDefault = cv, true
			}
		} else {
			ok = false
		}
	}
	if !ok {
		return v
	}

	raw, given := l.vars[v.Name]
	from := "-var"
	if !given {
		raw, given = os.LookupEnv(EnvVarPrefix + v.Name)
		from = "the environment variable " + EnvVarPrefix + v.Name
	}
	switch {
	case given:
		val, good := l.parseRaw(v, raw, literal, from)
		if good {
			v.Value = val
		}
	case hasDefault:
		v.Value = def
	default:
		l.diags = append(l.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "No value for required variable",
			Detail: fmt.Sprintf("The variable %q has no default, so it needs a value: -var '%s=VALUE' or the environment variable %s%s.",
				v.Name, v.Name, EnvVarPrefix, v.Name),
			Subject: b.DefRange.Ptr(),
		})
	}
	return v
}

// parseRaw turns a -var or environment string into a value of the
// variable's type. Diagnostics never quote the text: it may be a secret.
func (l *loader) parseRaw(v *Variable, raw string, literal bool, from string) (cty.Value, bool) {
	invalid := func(detail string) {
		l.diags = append(l.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid value for variable",
			Detail:   fmt.Sprintf("The value given for var.%s with %s %s.", v.Name, from, detail),
			Subject:  v.DeclRange.Ptr(),
		})
	}
	var val cty.Value
	if literal {
		val = cty.StringVal(raw)
	} else {
		expr, diags := hclsyntax.ParseExpression([]byte(raw), "<value for var."+v.Name+">", hcl.InitialPos)
		if diags.HasErrors() {
			invalid(fmt.Sprintf("is not a valid HCL expression (%s)", diags[0].Summary))
			return cty.NilVal, false
		}
		var vdiags hcl.Diagnostics
		val, vdiags = expr.Value(nil)
		if vdiags.HasErrors() {
			invalid(fmt.Sprintf("must be a constant (%s)", vdiags[0].Summary))
			return cty.NilVal, false
		}
	}
	cv, err := convert.Convert(val, v.Type)
	if err != nil {
		invalid(fmt.Sprintf("does not match its type %s: %s", typeexpr.TypeString(v.Type), convertErrText(err)))
		return cty.NilVal, false
	}
	return cv, true
}

// convertErrText is a cty conversion error without any value in it.
func convertErrText(err error) string {
	if pe, ok := err.(cty.PathError); ok {
		if len(pe.Path) > 0 {
			return fmt.Sprintf("at %s: %s", formatCtyPath(pe.Path), pe.Error())
		}
	}
	return err.Error()
}

func formatCtyPath(p cty.Path) string {
	s := ""
	for _, step := range p {
		switch st := step.(type) {
		case cty.GetAttrStep:
			s += "." + st.Name
		case cty.IndexStep:
			if st.Key.Type() == cty.String {
				s += fmt.Sprintf("[%q]", st.Key.AsString())
			} else if st.Key.Type() == cty.Number {
				s += "[" + st.Key.AsBigFloat().Text('f', -1) + "]"
			}
		}
	}
	if len(s) > 0 && s[0] == '.' {
		s = s[1:]
	}
	return s
}

// constString evaluates a constant string attribute.
func (l *loader) constString(a *hcl.Attribute) (string, bool) {
	val, ok := l.eval(a.Expr, phaseVariables, l.evalContext(phaseVariables))
	if !ok {
		return "", false
	}
	sv, err := convert.Convert(val, cty.String)
	if err != nil || sv.IsNull() {
		l.diags = append(l.diags, attrTypeDiag(a, "string"))
		return "", false
	}
	return sv.AsString(), true
}

func attrTypeDiag(a *hcl.Attribute, want string) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Incorrect attribute value type",
		Detail:   fmt.Sprintf("Inappropriate value for attribute %q: %s required.", a.Name, want),
		Subject:  a.Expr.Range().Ptr(),
	}
}
