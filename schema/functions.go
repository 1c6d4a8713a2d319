package schema

import (
	"fmt"
	"math"
	"math/big"
	"sort"

	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"

	"github.com/iotplan/iotplan/internal/query"
)

// functions are the functions every expression may call. quote is ours;
// the rest are go-cty's standard implementations under Terraform's names.
func functions() map[string]function.Function {
	return map[string]function.Function{
		"quote":    QuoteFunc,
		"format":   stdlib.FormatFunc,
		"join":     stdlib.JoinFunc,
		"lower":    stdlib.LowerFunc,
		"upper":    stdlib.UpperFunc,
		"concat":   stdlib.ConcatFunc,
		"merge":    stdlib.MergeFunc,
		"coalesce": stdlib.CoalesceFunc,
	}
}

// FunctionNames lists the functions available in configurations.
func FunctionNames() []string {
	var names []string
	for n := range functions() {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// QuoteFunc is quote(value): the query-language literal for a value, so that
// user data can be placed in a target without changing its meaning:
//
//	target = "tags.site = ${quote(var.site)}"
//
// A string becomes a single-quoted query string with quotes and backslashes
// escaped ('O\'Brien'); a number or bool its literal (typed: 43 and "43"
// differ on the hub); null becomes null; a list or tuple of those an array
// literal for IN / NIN. The text is written by the query package's
// formatter, never assembled here.
var QuoteFunc = function.New(&function.Spec{
	Description: "Returns the IoT Hub query literal for a string, number, bool, null, or list of them.",
	Params: []function.Parameter{{
		Name:             "value",
		Type:             cty.DynamicPseudoType,
		AllowNull:        true,
		AllowDynamicType: true,
	}},
	Type: function.StaticReturnType(cty.String),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		e, err := queryLiteral(args[0], true)
		if err != nil {
			return cty.UnknownVal(cty.String), function.NewArgError(0, err)
		}
		return cty.StringVal(query.Format(e)), nil
	},
})

func queryLiteral(v cty.Value, top bool) (query.Expr, error) {
	if v.IsNull() {
		return query.Value(nil), nil
	}
	ty := v.Type()
	switch {
	case ty == cty.String:
		return query.Value(v.AsString()), nil
	case ty == cty.Bool:
		return query.Value(v.True()), nil
	case ty == cty.Number:
		f, err := exactFloat(v.AsBigFloat())
		if err != nil {
			return nil, err
		}
		return query.Value(f), nil
	case top && (ty.IsListType() || ty.IsTupleType() || ty.IsSetType()):
		arr := &query.ArrayExpr{}
		for it := v.ElementIterator(); it.Next(); {
			_, ev := it.Element()
			e, err := queryLiteral(ev, false)
			if err != nil {
				return nil, err
			}
			arr.Elems = append(arr.Elems, e)
		}
		return arr, nil
	case !top && (ty.IsListType() || ty.IsTupleType() || ty.IsSetType()):
		return nil, fmt.Errorf("a list inside a list has no query literal")
	}
	return nil, fmt.Errorf("a %s has no query literal; quote takes a string, number, bool, null or a list of them", ty.FriendlyName())
}

// exactFloat converts a number the query language can hold (a double)
// without changing it.
func exactFloat(bf *big.Float) (float64, error) {
	f, acc := bf.Float64()
	if math.IsInf(f, 0) || math.IsNaN(f) || acc != big.Exact && bf.IsInt() {
		return 0, fmt.Errorf("this number cannot be written exactly in a query")
	}
	return f, nil
}
