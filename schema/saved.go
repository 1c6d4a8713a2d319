package schema

import (
	"encoding/json"
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"
)

// SavedPlanSource is the Source of a variable whose value came from a saved plan.
const SavedPlanSource = "the saved plan"

// SavedVariable is a root variable as a saved plan records it ('plan -out'), so that applying
// the plan loads the configuration (for its hub block) with the values the plan was made with,
// as Terraform records the input variables' values in a saved plan
// (https://developer.hashicorp.com/terraform/cli/commands/apply, "Saved plan mode").
//
// The value of a sensitive variable is not recorded, only where it came from: the hub's
// connection string is usually one (docs/language.md, "The hub block"), and a saved plan never
// holds the key. Applying the plan takes such a value again from the environment or the
// auto-loaded variable files, as Terraform does for ephemeral input variables, which it keeps
// out of plan files (https://github.com/hashicorp/terraform/releases/tag/v1.10.0).
type SavedVariable struct {
	Name string `json:"name"`
	// Source is where the value came from when the plan was made (Variable.Source).
	Source    string `json:"source"`
	Sensitive bool   `json:"sensitive,omitempty"`
	// Value is the value in cty's JSON encoding with its type ({"value": …, "type": …}), so
	// that a map stays a map and a number a number; absent when Sensitive.
	Value json.RawMessage `json:"value,omitempty"`
}

// SavedVariables returns the root variables for a saved plan, in declaration order: every
// variable with a value, with its value unless it is sensitive.
func (c *Config) SavedVariables() ([]SavedVariable, error) {
	out := []SavedVariable{}
	for _, v := range c.Variables {
		if v.Value == cty.NilVal || !v.Value.IsWhollyKnown() {
			continue // a load with errors or for validate: nothing to record
		}
		sv := SavedVariable{Name: v.Name, Source: v.Source, Sensitive: v.Sensitive}
		if !v.Sensitive {
			b, err := ctyjson.Marshal(v.Value, cty.DynamicPseudoType)
			if err != nil {
				return nil, fmt.Errorf("recording the value of var.%s: %w", v.Name, err)
			}
			sv.Value = b
		}
		out = append(out, sv)
	}
	return out, nil
}

// savedValue decodes a value SavedVariables encoded.
func savedValue(sv SavedVariable) (cty.Value, error) {
	return ctyjson.Unmarshal(sv.Value, cty.DynamicPseudoType)
}

// readSavedValues gives the values a saved plan recorded precedence over every other source,
// as applying a Terraform plan uses the plan's values. Sensitive variables have none: they
// resolve from the environment and the auto-loaded files (checkSavedSensitive).
func (l *loader) readSavedValues() {
	for _, sv := range l.opts.Saved {
		if sv.Sensitive || len(sv.Value) == 0 {
			continue
		}
		val, err := savedValue(sv)
		if err != nil {
			// The value is not quoted: a variable may hold a secret without being declared sensitive.
			l.diags = append(l.diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid saved plan",
				Detail:   fmt.Sprintf("The saved plan's value for var.%s cannot be read (%s): run plan again.", sv.Name, ctyErrText(err)),
			})
			// Assigned all the same (cty.NilVal: reported), so that no "No value for
			// required variable" follows this error.
			val = cty.NilVal
		}
		l.assigned[sv.Name] = assignment{val: val, from: SavedPlanSource, isFile: true, isSaved: true}
	}
}

// ctyErrText is err's message without the value: cty's JSON errors name paths and types.
func ctyErrText(err error) string {
	if pe, ok := err.(cty.PathError); ok {
		return pe.Error()
	}
	return "malformed value"
}

// checkSavedSensitive reports a sensitive variable that the saved plan was given a value for
// (by -var, -var-file, the environment or a variable file) and that has none now, or only its
// default: the plan could not hold the value, and a default in its place might name another
// hub.
func (l *loader) checkSavedSensitive(v *Variable, given bool) bool {
	if l.parent != nil || given {
		return true
	}
	for _, sv := range l.opts.Saved {
		if sv.Name != v.Name || !sv.Sensitive || sv.Source == "default" {
			continue
		}
		l.diags = append(l.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "No value for sensitive variable",
			Detail: fmt.Sprintf("The saved plan was made with a value for the sensitive variable %q from %s, but a saved plan does not hold the values of sensitive variables (the hub's connection string is usually one): set the environment variable %s%s when applying it, or a line %s = ... in %s next to the configuration.",
				v.Name, sv.Source, EnvVarPrefix, v.Name, v.Name, AutoVarsFile),
			Subject: v.DeclRange.Ptr(),
		})
		return false
	}
	return true
}
