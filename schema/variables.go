package schema

import (
	"fmt"

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
		if l.parent == nil {
			l.cfg.Variables = append(l.cfg.Variables, v)
		}
		if v.Value != cty.NilVal {
			val := v.Value
			if v.Sensitive {
				val = val.Mark(sensitiveMark)
			}
			l.varVals[v.Name] = val
		}
	}
	if l.parent == nil {
		l.checkUndeclared()
	} else {
		l.checkInputs()
	}
}

// variableDecl is a variable block's declaration, before its value is resolved.
type variableDecl struct {
	v          *Variable
	block      *hcl.Block
	literal    bool // text values are taken literally (primitive or untyped), else parsed as HCL
	def        cty.Value
	hasDefault bool
	validation []*hcl.Block
}

func (l *loader) decodeVariable(b *hcl.Block) *Variable {
	d, ok := l.declareVariable(b)
	if !ok {
		return d.v
	}
	v := d.v
	val, source, given, good := l.assignedValue(d)
	switch {
	case !good:
		return v
	case !l.checkSavedSensitive(v, given):
		return v
	case given && val.IsNull() && !v.Nullable:
		if d.hasDefault && !d.def.IsNull() {
			val, source = d.def, "default"
			break
		}
		l.diags = append(l.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid value for variable",
			Detail:   fmt.Sprintf("The value given for var.%s with %s is null, but the variable is declared nullable = false.", v.Name, source),
			Subject:  b.DefRange.Ptr(),
		})
		return v
	case !given && d.hasDefault:
		val, source = d.def, "default"
	case !given && l.rootLoader().opts.Validate:
		// validate checks without values, like terraform validate.
		v.Value, v.Source = cty.UnknownVal(v.Type), "unknown"
		return v
	case !given:
		l.diags = append(l.diags, l.missingValue(v, b))
		return v
	}
	if l.checkValidations(d, val, source) {
		v.Value, v.Source = val, source
	}
	return v
}

// missingValue is the error of a required variable without a value.
func (l *loader) missingValue(v *Variable, b *hcl.Block) *hcl.Diagnostic {
	if l.call != nil {
		return &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Missing required argument",
			Detail:   fmt.Sprintf("The module %s needs a value for its variable %q, which has no default: add %s = ... to the module block.", l.addr, v.Name, v.Name),
			Subject:  l.call.block.DefRange.Ptr(),
		}
	}
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "No value for required variable",
		Detail: fmt.Sprintf("The variable %q has no default, so it needs a value: -var '%s=VALUE', a line %s = ... in %s or a -var-file, or the environment variable %s%s.",
			v.Name, v.Name, v.Name, AutoVarsFile, EnvVarPrefix, v.Name),
		Subject: b.DefRange.Ptr(),
	}
}

// declareVariable decodes a variable block's declaration: type, description, sensitive,
// nullable, default and validation blocks. ok is false when it is broken (reported).
func (l *loader) declareVariable(b *hcl.Block) (variableDecl, bool) {
	v := &Variable{Name: b.Labels[0], Type: cty.DynamicPseudoType, Nullable: true, DeclRange: b.DefRange}
	d := variableDecl{v: v, block: b, literal: true}
	content, diags := b.Body.Content(variableSchema)
	l.diags = append(l.diags, diags...)
	if content == nil {
		return d, false
	}
	d.validation = content.Blocks.OfType("validation")
	ok := true
	// Like Terraform: a value given as text is taken literally for an
	// untyped or primitive variable, and parsed as an HCL expression for
	// collection, structural and "any" types.
	if a, found := content.Attributes["type"]; found {
		ty, diags := typeexpr.TypeConstraint(a.Expr)
		l.diags = append(l.diags, diags...)
		if diags.HasErrors() {
			ok = false
		} else {
			v.Type = ty
			d.literal = ty.IsPrimitiveType()
		}
	}
	if a, found := content.Attributes["description"]; found {
		if s, good := l.constString(a); good {
			v.Description = s
		}
	}
	for name, dst := range map[string]*bool{"sensitive": &v.Sensitive, "nullable": &v.Nullable} {
		if a, found := content.Attributes[name]; found {
			bv, good := l.constBool(a)
			if good {
				*dst = bv
			}
			ok = ok && good
		}
	}
	if a, found := content.Attributes["default"]; found {
		def, good := l.variableDefault(v, b, a)
		d.def, d.hasDefault = def, good
		ok = ok && good
	}
	if d.hasDefault && d.def.IsNull() && !v.Nullable {
		l.diags = append(l.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid default value for variable",
			Detail:   "A variable declared nullable = false cannot default to null.",
			Subject:  content.Attributes["default"].Expr.Range().Ptr(),
		})
		ok = false
	}
	return d, ok
}

// constBool evaluates a constant bool attribute of a variable block.
func (l *loader) constBool(a *hcl.Attribute) (bool, bool) {
	val, good := l.eval(a.Expr, phaseVariables, l.evalContext(phaseVariables))
	if !good {
		return false, false
	}
	bv, err := convert.Convert(val, cty.Bool)
	if err != nil || bv.IsNull() {
		l.diags = append(l.diags, attrTypeDiag(a, "bool"))
		return false, false
	}
	return bv.True(), true
}

// variableDefault evaluates a variable's default and converts it to the variable's type.
func (l *loader) variableDefault(v *Variable, b *hcl.Block, a *hcl.Attribute) (cty.Value, bool) {
	val, good := l.eval(a.Expr, phaseVariables, l.evalContext(phaseVariables))
	if !good {
		return cty.NilVal, false
	}
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
		return cty.NilVal, false
	}
	return cv, true
}

// assignedValue is the value given for a variable, converted to its type: for the root,
// from its sources (readVarSources); for a module, from the module block. given is false
// when nothing sets it; good is false when the value given is invalid (reported).
func (l *loader) assignedValue(d variableDecl) (val cty.Value, source string, given, good bool) {
	v := d.v
	if l.call != nil {
		in, ok := l.call.inputs[v.Name]
		if !ok {
			return cty.NilVal, "", false, true
		}
		return l.convertInput(v, in)
	}
	a, ok := l.assigned[v.Name]
	if !ok {
		return cty.NilVal, "", false, true
	}
	if !a.isFile {
		val, good := l.parseRaw(v, a.text, d.literal, a.from)
		return val, a.from, true, good
	}
	if a.val == cty.NilVal {
		return cty.NilVal, a.from, true, false // a saved value that could not be read (reported)
	}
	cv, err := convert.Convert(a.val, v.Type)
	if err != nil {
		// The snippet of a sensitive value's line would print it: point at the declaration.
		subject, where := a.rng.Ptr(), ""
		if a.isSaved {
			// No file holds the value: point at the declaration, whose type changed since.
			subject, where = v.DeclRange.Ptr(), " (made before the variable's type changed: run plan again)"
		} else if v.Sensitive {
			subject, where = v.DeclRange.Ptr(), fmt.Sprintf(" (%s:%d)", a.rng.Filename, a.rng.Start.Line)
		}
		l.diags = append(l.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid value for variable",
			Detail: fmt.Sprintf("The value given for var.%s in %s%s does not match its type %s: %s.",
				v.Name, a.from, where, typeexpr.TypeString(v.Type), convertErrText(err)),
			Subject: subject,
		})
		return cty.NilVal, a.from, true, false
	}
	return cv, a.from, true, true
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
