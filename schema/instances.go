package schema

import (
	"fmt"
	"maps"
	"math/big"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// factMark marks the unknown values that stand for plan facts (device counts) until
// EvalOutputs: an expression outside an output that ends up unknown because of one gets its
// own message instead of "Value cannot be determined".
type factMarkType struct{}

var factMark = factMarkType{}

// MaxInstances bounds for_each and count: every instance is one resource with its own hub
// queries and jobs, so a runaway count is a mistake, not a fleet.
const MaxInstances = 1000

// instance is one instance of a block with for_each or count (or the only one without).
type instance struct {
	key     cty.Value // a string (for_each), a number (count), or cty.NilVal
	keyText string    // as in addresses: `["41"]`, "[0]", ""
	ctx     *hcl.EvalContext
}

// repeated is a block's instances as decoded, for building its reference value.
type repeated struct {
	repeat string // "for_each", "count" or ""
	items  []repeatedItem
}

type repeatedItem struct {
	key   cty.Value
	val   cty.Value // the instance's object; cty.DynamicVal when it failed
	child *loader   // a module instance's loader
}

// value is the reference value of the whole block: the one instance's object, an object by
// key (for_each) or a tuple by index (count).
func (r *repeated) value() cty.Value {
	switch r.repeat {
	case "":
		if len(r.items) == 0 {
			return cty.DynamicVal
		}
		return r.items[0].val
	case "count":
		vals := make([]cty.Value, len(r.items))
		for i, it := range r.items {
			vals[i] = it.val
		}
		return cty.TupleVal(vals)
	}
	m := make(map[string]cty.Value, len(r.items))
	for _, it := range r.items {
		if !it.key.IsKnown() {
			return cty.DynamicVal // validate without values: the keys are unknown
		}
		m[it.key.AsString()] = it.val
	}
	return cty.ObjectVal(m)
}

// instances evaluates a block's for_each or count (in ctx) and returns its instances, each
// with a child context holding each.key/each.value or count.index. ok is false when the
// meta-argument is invalid (reported).
func (l *loader) instances(forEach, count *hcl.Attribute, ph phase, ctx *hcl.EvalContext) (insts []instance, repeat string, ok bool) {
	switch {
	case forEach != nil && count != nil:
		l.diags = append(l.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid combination of \"count\" and \"for_each\"",
			Detail:   "A block can repeat with count or with for_each, not both.",
			Subject:  count.NameRange.Ptr(),
		})
		return nil, "", false
	case forEach != nil:
		insts, ok = l.forEachInstances(forEach, ph, ctx)
		return insts, "for_each", ok
	case count != nil:
		insts, ok = l.countInstances(count, ph, ctx)
		return insts, "count", ok
	}
	return []instance{{ctx: ctx}}, "", true
}

// forEachInstances expands for_each: a map or object (each.key = the key, each.value =
// the element) or a set of strings (each.key = each.value = the element), as Terraform's
// (https://developer.hashicorp.com/terraform/language/meta-arguments/for_each).
func (l *loader) forEachInstances(a *hcl.Attribute, ph phase, ctx *hcl.EvalContext) ([]instance, bool) {
	bad := func(detail string) ([]instance, bool) {
		l.diags = append(l.diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid for_each argument", Detail: detail, Subject: a.Expr.Range().Ptr()})
		return nil, false
	}
	v, ok := l.evalMeta(a, ph, ctx)
	if !ok {
		return nil, false
	}
	if hasMark(v, sensitiveMark) {
		return bad("for_each uses a sensitive value: its keys would appear in resource addresses and plans. Use a value that is not sensitive.")
	}
	v, _ = v.UnmarkDeep()
	ty := v.Type()
	switch {
	case !v.IsKnown():
		if l.rootLoader().opts.Validate || l.hadErrors() {
			return l.unknownInstance(ctx, "for_each"), true
		}
		return bad("for_each must be known when the configuration is loaded.")
	case v.IsNull():
		return bad("for_each is null. Give it a map, an object or a set of strings.")
	case ty.IsSetType():
		if !ty.ElementType().Equals(cty.String) {
			return bad(fmt.Sprintf("for_each takes a set of strings, not a set of %s.", ty.ElementType().FriendlyName()))
		}
	case ty.IsMapType() || ty.IsObjectType():
	case ty.IsListType() || ty.IsTupleType():
		return bad("for_each takes a map or a set of strings, not a list: a list's order would decide the instances' keys. Convert it with toset(...).")
	default:
		return bad(fmt.Sprintf("for_each takes a map or a set of strings, not a %s.", ty.FriendlyName()))
	}
	if v.LengthInt() > MaxInstances {
		return bad(fmt.Sprintf("for_each has %d elements; iotplan allows at most %d instances of one block.", v.LengthInt(), MaxInstances))
	}
	var out []instance
	for it := v.ElementIterator(); it.Next(); {
		k, ev := it.Element()
		if ty.IsSetType() {
			k = ev
		}
		if k.IsNull() || !k.IsKnown() {
			return bad("for_each has a null or unknown key.")
		}
		child := ctx.NewChild()
		child.Variables = map[string]cty.Value{"each": cty.ObjectVal(map[string]cty.Value{"key": k, "value": ev})}
		out = append(out, instance{key: k, keyText: "[" + strconv.Quote(k.AsString()) + "]", ctx: child})
	}
	return out, true
}

// evalMeta evaluates for_each or count: unlike eval, an unknown value is returned for the
// caller to judge (validate without values expands one unknown instance).
func (l *loader) evalMeta(a *hcl.Attribute, ph phase, ctx *hcl.EvalContext) (cty.Value, bool) {
	if !l.checkRefs(a.Expr, ph) {
		return cty.DynamicVal, false
	}
	v, diags := a.Expr.Value(ctx)
	l.diags = append(l.diags, diags...)
	return v, !diags.HasErrors()
}

// countInstances expands count: a whole number from 0 to MaxInstances.
func (l *loader) countInstances(a *hcl.Attribute, ph phase, ctx *hcl.EvalContext) ([]instance, bool) {
	v, ok := l.evalMeta(a, ph, ctx)
	if !ok {
		return nil, false
	}
	v, _ = v.UnmarkDeep()
	if !v.IsKnown() {
		if l.rootLoader().opts.Validate || l.hadErrors() {
			return l.unknownInstance(ctx, "count"), true
		}
	}
	n, err := convert.Convert(v, cty.Number)
	var count int64 = -1
	if err == nil && !n.IsNull() && n.IsKnown() {
		if bf := n.AsBigFloat(); bf.IsInt() && bf.Cmp(big.NewFloat(MaxInstances)) <= 0 {
			count, _ = bf.Int64()
		}
	}
	if count < 0 {
		l.diags = append(l.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid count argument",
			Detail:   fmt.Sprintf("count must be a whole number from 0 to %d.", MaxInstances),
			Subject:  a.Expr.Range().Ptr(),
		})
		return nil, false
	}
	out := make([]instance, 0, count)
	for i := int64(0); i < count; i++ {
		child := ctx.NewChild()
		idx := cty.NumberIntVal(i)
		child.Variables = map[string]cty.Value{"count": cty.ObjectVal(map[string]cty.Value{"index": idx})}
		out = append(out, instance{key: idx, keyText: fmt.Sprintf("[%d]", i), ctx: child})
	}
	return out, true
}

// unknownInstance is the one instance checked when for_each or count is unknown (validate
// without values): its keys are unknown, so what depends on them is checked no further.
func (l *loader) unknownInstance(ctx *hcl.EvalContext, repeat string) []instance {
	child := ctx.NewChild()
	key := cty.UnknownVal(cty.String)
	child.Variables = map[string]cty.Value{"each": cty.ObjectVal(map[string]cty.Value{"key": key, "value": cty.DynamicVal})}
	if repeat == "count" {
		key = cty.UnknownVal(cty.Number)
		child.Variables = map[string]cty.Value{"count": cty.ObjectVal(map[string]cty.Value{"index": key})}
	}
	return []instance{{key: key, keyText: "[*]", ctx: child}}
}

// resourceObject is what twin.<name> and method.<name> read for one instance: its target
// and address, and the plan facts (unknown, marked, until EvalOutputs gives them).
func (l *loader) resourceObject(addr string, target cty.Value) cty.Value {
	targeted := cty.UnknownVal(cty.Number).Mark(factMark)
	devices := targeted
	if f, ok := l.facts[addr]; ok {
		targeted, devices = cty.NumberIntVal(int64(f.TargetedDevices)), cty.NumberIntVal(int64(f.Devices))
	}
	return cty.ObjectVal(map[string]cty.Value{
		"address":          cty.StringVal(addr),
		"target":           target,
		"targeted_devices": targeted,
		"devices":          devices,
	})
}

// refreshResources rebuilds twin.<name> and method.<name> from the decoded instances, with
// the plan facts known so far.
func (l *loader) refreshResources() {
	names := slices.Sorted(maps.Keys(l.resources))
	for _, key := range names {
		r := l.resources[key]
		for i, it := range r.items {
			if it.val.IsKnown() && it.val.Type().IsObjectType() {
				obj := it.val.AsValueMap()
				r.items[i].val = l.resourceObject(obj["address"].AsString(), obj["target"])
			}
		}
		kind, name, _ := strings.Cut(key, ".")
		if kind == "twin" {
			l.twinVals[name] = r.value()
		} else {
			l.methodVals[name] = r.value()
		}
	}
}

// address is the address of a resource instance of this module.
func (l *loader) address(kind, name, keyText string) string {
	a := kind + "." + name + keyText
	if l.addr != "" {
		a = l.addr + "." + a
	}
	return a
}

// hasMark reports whether v or anything inside it carries mark.
func hasMark(v cty.Value, mark any) bool {
	if !v.ContainsMarked() {
		return false
	}
	_, marks := v.UnmarkDeep()
	_, ok := marks[mark]
	return ok
}
