package schema

import (
	"fmt"
	"math"
	"math/big"
	"strconv"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/iotplan/iotplan/internal/hubapi"
)

// converter turns an evaluated cty value into JSON-like Go values (string,
// float64, bool, nil, map[string]any, []any), checking the hub's rules as it
// goes and pointing each problem at the tightest source range it can find:
// it walks object and tuple constructors alongside the value, so a bad key
// or value written literally is reported exactly; a value that came from a
// variable or function is reported at the expression that produced it.
type converter struct {
	l    *loader
	ctx  *hcl.EvalContext
	twin bool // apply the twin document rules (keys, depth, integers, strings)
	ok   bool
}

func newConverter(l *loader, ctx *hcl.EvalContext, twin bool) *converter {
	return &converter{l: l, ctx: ctx, twin: twin, ok: true}
}

func (c *converter) fail(rng hcl.Range, summary, detail string) {
	c.ok = false
	c.l.diags = append(c.l.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail:   detail,
		Subject:  rng.Ptr(),
	})
}

// convert converts v. If exact, expr is the expression v was evaluated
// from; otherwise it is the nearest enclosing one (used only to locate
// problems). path names v for messages ("desired.location.floor"); depth is
// the nesting level of v, the section itself being level 1.
func (c *converter) convert(v cty.Value, expr hcl.Expression, exact bool, path string, depth int) any {
	if v.IsNull() {
		return nil
	}
	if !v.IsKnown() {
		c.ok = false
		c.l.requireEarlierError(expr.Range())
		return nil
	}
	ty := v.Type()
	switch {
	case ty == cty.String:
		s := v.AsString()
		if c.twin && len(s) > MaxStringBytes {
			c.fail(expr.Range(), "String value too long",
				fmt.Sprintf("The value of %s is %d bytes long; the hub accepts strings of at most %d bytes (UTF-8).", path, len(s), MaxStringBytes))
		}
		return s
	case ty == cty.Number:
		return c.number(v.AsBigFloat(), expr, path)
	case ty == cty.Bool:
		return v.True()
	case ty.IsObjectType() || ty.IsMapType():
		if c.twin && depth > MaxDepth {
			c.fail(expr.Range(), "Nesting too deep",
				fmt.Sprintf("%s is nested %d levels deep; the hub allows at most %d levels, counting the section (desired or tags) as the first.", path, depth, MaxDepth))
			return nil
		}
		var items map[string]hcl.KeyValuePair
		if exact {
			items = objectItems(expr, c.ctx)
		}
		out := make(map[string]any, v.LengthInt())
		if c.twin && v.LengthInt() == 0 && depth > 1 {
			c.fail(expr.Range(), "Empty object",
				fmt.Sprintf("%s is an empty object, which declares no key to manage. Declare the keys to manage inside it, or null to remove the key.", path))
			return out
		}
		for it := v.ElementIterator(); it.Next(); {
			k, ev := it.Element()
			key := k.AsString()
			keyRng, valExpr, found := expr.Range(), expr, false
			if item, ok := items[key]; ok {
				keyRng, valExpr, found = item.Key.Range(), item.Value, true
			}
			sub := path + "." + key
			if c.twin {
				if msg := hubapi.TwinKeyProblem(key); msg != "" {
					c.fail(keyRng, "Invalid key", fmt.Sprintf("The key %s in %s %s.", strconv.Quote(clip(key)), path, msg))
					continue
				}
			}
			out[key] = c.convert(ev, valExpr, found, sub, depth+1)
		}
		return out
	case ty.IsTupleType() || ty.IsListType() || ty.IsSetType():
		if c.twin && depth > MaxDepth {
			c.fail(expr.Range(), "Nesting too deep",
				fmt.Sprintf("%s is nested %d levels deep; the hub allows at most %d levels, counting the section (desired or tags) as the first.", path, depth, MaxDepth))
			return nil
		}
		var elems []hcl.Expression
		if exact && ty.IsTupleType() {
			elems, _ = hcl.ExprList(expr)
		}
		out := make([]any, 0, v.LengthInt())
		i := 0
		for it := v.ElementIterator(); it.Next(); i++ {
			_, ev := it.Element()
			var elemExpr hcl.Expression = expr
			if i < len(elems) {
				elemExpr = elems[i]
			}
			out = append(out, c.convert(ev, elemExpr, i < len(elems), fmt.Sprintf("%s[%d]", path, i), depth+1))
		}
		return out
	}
	c.fail(expr.Range(), "Unsupported value", fmt.Sprintf("%s has a value of type %s, which has no JSON form.", path, ty.FriendlyName()))
	return nil
}

// number converts a cty number to float64, the type every JSON number
// decodes to, refusing what would change in the conversion.
func (c *converter) number(bf *big.Float, expr hcl.Expression, path string) any {
	f, _ := bf.Float64()
	if math.IsInf(f, 0) || math.IsNaN(f) {
		c.fail(expr.Range(), "Number out of range", fmt.Sprintf("The value of %s is too large to be a JSON number.", path))
		return nil
	}
	if bf.IsInt() {
		if c.twin {
			if bf.Cmp(big.NewFloat(MaxSafeInteger)) > 0 || bf.Cmp(big.NewFloat(MinSafeInteger)) < 0 {
				c.fail(expr.Range(), "Integer out of range",
					fmt.Sprintf("The value of %s is outside the integers the hub stores (%d to %d). Use a string for larger values.", path, int64(MinSafeInteger), int64(MaxSafeInteger)))
				return nil
			}
		} else if new(big.Float).SetFloat64(f).Cmp(bf) != 0 {
			c.fail(expr.Range(), "Integer out of range",
				fmt.Sprintf("The value of %s cannot be represented exactly as a JSON number (integers beyond ±2^53 lose precision). Use a string.", path))
			return nil
		}
	}
	return f
}

// clip shortens a key for a message.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// objectItems indexes the items of an object constructor (native or JSON
// syntax) by key, so that a problem with one key can point at it. It
// returns nil for any other expression.
func objectItems(expr hcl.Expression, ctx *hcl.EvalContext) map[string]hcl.KeyValuePair {
	pairs, diags := hcl.ExprMap(expr)
	if diags.HasErrors() {
		return nil
	}
	items := make(map[string]hcl.KeyValuePair, len(pairs))
	for _, item := range pairs {
		kv, diags := item.Key.Value(ctx)
		if diags.HasErrors() || !kv.IsKnown() || kv.IsNull() {
			continue
		}
		kv, _ = kv.Unmark()
		if kv.Type() != cty.String {
			continue
		}
		items[kv.AsString()] = item
	}
	return items
}

// checkDuplicateKeys reports keys written twice in one object constructor:
// HCL keeps the last silently, which hides typos in long desired blocks.
// (The JSON syntax has no object constructors to check.)
func (l *loader) checkDuplicateKeys(expr hcl.Expression, ctx *hcl.EvalContext) bool {
	root, isSyntax := expr.(hclsyntax.Expression)
	if !isSyntax {
		return true
	}
	ok := true
	hclsyntax.VisitAll(root, func(n hclsyntax.Node) hcl.Diagnostics {
		oc, isObj := n.(*hclsyntax.ObjectConsExpr)
		if !isObj {
			return nil
		}
		seen := map[string]hcl.Range{}
		for _, item := range oc.Items {
			if !onlyGlobals(item.KeyExpr) {
				continue // refers to a for-expression's variables
			}
			kv, diags := item.KeyExpr.Value(ctx)
			if diags.HasErrors() || !kv.IsKnown() || kv.IsNull() {
				continue
			}
			kv, _ = kv.Unmark()
			if kv.Type() != cty.String {
				continue
			}
			k := kv.AsString()
			if first, dup := seen[k]; dup {
				ok = false
				l.diags = append(l.diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Duplicate key",
					Detail:   fmt.Sprintf("The key %s was already set at %s; an object can set each key once.", strconv.Quote(clip(k)), first),
					Subject:  item.KeyExpr.Range().Ptr(),
				})
				continue
			}
			seen[k] = item.KeyExpr.Range()
		}
		return nil
	})
	return ok
}

// onlyGlobals reports whether expr refers to nothing but the names a block's context
// holds, i.e. can be evaluated outside any for-expression.
func onlyGlobals(expr hcl.Expression) bool {
	for _, tr := range expr.Variables() {
		switch tr.RootName() {
		case "var", "local", "twin", "method", "module", "path", "each", "count":
		default:
			return false
		}
	}
	return true
}
