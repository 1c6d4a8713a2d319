package schema

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"maps"
	"math"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/tryfunc"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	ctyyaml "github.com/zclconf/go-cty-yaml"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"

	"github.com/iotplan/iotplan/internal/query"
)

// Functions: Terraform's function library under Terraform's names
// (https://developer.hashicorp.com/terraform/language/functions), as far as
// go-cty's stdlib, go-cty-yaml and HCL's tryfunc provide it, plus small
// implementations here where Terraform has its own; quote is iotplan's.
//
// Left out on purpose: impure functions (timestamp, plantimestamp, uuid,
// bcrypt), because a plan must be reproducible: the same configuration and
// hub must give the same plan, and a value that changes on every run would
// show a change on every run. Functions whose result depends on the machine
// (abspath, pathexpand) are left out for the same reason.

// maxFileSize bounds what file, filebase64 and templatefile read, so that a
// path to a large file fails with a clear error instead of exhausting
// memory. Twin documents are far smaller: IoT Hub caps desired properties
// at 32 KB (https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-device-twins#device-twin-size).
const maxFileSize = 4 << 20

// functions is the table for a module in the current directory.
func functions() map[string]function.Function { return functionsAt(".") }

// functionsAt is the table every expression of a module in dir may call;
// file, fileexists, filebase64 and templatefile resolve relative paths
// against dir, as Terraform resolves them against the module's directory.
func functionsAt(dir string) map[string]function.Function {
	fs := maps.Clone(pureFunctions)
	for name, f := range fileFunctions(dir) {
		fs[name] = guarded(f)
	}
	// A template sees the same table, except that templatefile itself
	// fails: a template including itself would never end (Terraform's rule,
	// https://developer.hashicorp.com/terraform/language/functions/templatefile).
	inner := maps.Clone(fs)
	inner["templatefile"] = refuse("templatefile cannot be called from inside a template; pass the rendered text in vars instead")
	fs["templatefile"] = guarded(templateFileFunc(dir, inner))
	return fs
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

// pureFunctions are the functions whose result depends on their arguments
// only. Every one but quote, try and can is guarded (see guarded); quote
// writes its own errors, and try/can take unevaluated expressions.
var pureFunctions = guardAll(map[string]function.Function{
	// Strings.
	"chomp":       stdlib.ChompFunc,
	"endswith":    endsWithFunc,
	"format":      stdlib.FormatFunc,
	"formatlist":  stdlib.FormatListFunc,
	"indent":      stdlib.IndentFunc,
	"join":        stdlib.JoinFunc,
	"lower":       stdlib.LowerFunc,
	"regex":       stdlib.RegexFunc,
	"regexall":    stdlib.RegexAllFunc,
	"replace":     replaceFunc,
	"split":       stdlib.SplitFunc,
	"startswith":  startsWithFunc,
	"strcontains": strContainsFunc,
	"strrev":      stdlib.ReverseFunc,
	"substr":      stdlib.SubstrFunc,
	"title":       stdlib.TitleFunc,
	"trim":        stdlib.TrimFunc,
	"trimprefix":  stdlib.TrimPrefixFunc,
	"trimspace":   stdlib.TrimSpaceFunc,
	"trimsuffix":  stdlib.TrimSuffixFunc,
	"upper":       stdlib.UpperFunc,

	// Collections.
	"alltrue":         allTrueFunc,
	"anytrue":         anyTrueFunc,
	"chunklist":       stdlib.ChunklistFunc,
	"coalesce":        coalesceFunc,
	"coalescelist":    stdlib.CoalesceListFunc,
	"compact":         stdlib.CompactFunc,
	"concat":          stdlib.ConcatFunc,
	"contains":        stdlib.ContainsFunc,
	"distinct":        stdlib.DistinctFunc,
	"element":         stdlib.ElementFunc,
	"flatten":         stdlib.FlattenFunc,
	"index":           indexFunc,
	"keys":            stdlib.KeysFunc,
	"length":          lengthFunc,
	"lookup":          stdlib.LookupFunc,
	"merge":           stdlib.MergeFunc,
	"one":             oneFunc,
	"range":           stdlib.RangeFunc,
	"reverse":         stdlib.ReverseListFunc,
	"setintersection": stdlib.SetIntersectionFunc,
	"setproduct":      stdlib.SetProductFunc,
	"setsubtract":     stdlib.SetSubtractFunc,
	"setunion":        stdlib.SetUnionFunc,
	"slice":           stdlib.SliceFunc,
	"sort":            stdlib.SortFunc,
	"sum":             sumFunc,
	"transpose":       transposeFunc,
	"values":          stdlib.ValuesFunc,
	"zipmap":          stdlib.ZipmapFunc,

	// Encoding. go-cty-yaml is the YAML library Terraform itself uses.
	"base64decode": base64DecodeFunc,
	"base64encode": base64EncodeFunc,
	"csvdecode":    stdlib.CSVDecodeFunc,
	"jsondecode":   stdlib.JSONDecodeFunc,
	"jsonencode":   stdlib.JSONEncodeFunc,
	"urlencode":    urlEncodeFunc,
	"yamldecode":   ctyyaml.YAMLDecodeFunc,
	"yamlencode":   ctyyaml.YAMLEncodeFunc,

	// Numbers.
	"abs":      stdlib.AbsoluteFunc,
	"ceil":     stdlib.CeilFunc,
	"floor":    stdlib.FloorFunc,
	"log":      stdlib.LogFunc,
	"max":      stdlib.MaxFunc,
	"min":      stdlib.MinFunc,
	"parseint": stdlib.ParseIntFunc,
	"pow":      stdlib.PowFunc,
	"signum":   stdlib.SignumFunc,

	// Dates and times (RFC 3339 timestamps given as arguments, never "now").
	"formatdate": stdlib.FormatDateFunc,
	"timeadd":    stdlib.TimeAddFunc,
	"timecmp":    timeCmpFunc,

	// Hashes of a string's UTF-8 bytes.
	"base64sha256": hashFunc(sha256.New, base64.StdEncoding.EncodeToString),
	"base64sha512": hashFunc(sha512.New, base64.StdEncoding.EncodeToString),
	"md5":          hashFunc(md5.New, hex.EncodeToString),
	"sha1":         hashFunc(sha1.New, hex.EncodeToString),
	"sha256":       hashFunc(sha256.New, hex.EncodeToString),
	"sha512":       hashFunc(sha512.New, hex.EncodeToString),

	// Type conversions.
	"tobool":   stdlib.MakeToFunc(cty.Bool),
	"tolist":   stdlib.MakeToFunc(cty.List(cty.DynamicPseudoType)),
	"tomap":    stdlib.MakeToFunc(cty.Map(cty.DynamicPseudoType)),
	"tonumber": stdlib.MakeToFunc(cty.Number),
	"toset":    stdlib.MakeToFunc(cty.Set(cty.DynamicPseudoType)),
	"tostring": stdlib.MakeToFunc(cty.String),
}, map[string]function.Function{
	"quote": QuoteFunc,
	"try":   tryfunc.TryFunc,
	"can":   tryfunc.CanFunc,
})

// guardAll returns the guarded functions plus the others as they are.
func guardAll(guard, asIs map[string]function.Function) map[string]function.Function {
	out := maps.Clone(asIs)
	for name, f := range guard {
		out[name] = guarded(f)
	}
	return out
}

// guarded is f with two differences in its errors. If any argument carries
// a mark (in this package: a sensitive value), the message is replaced,
// because several go-cty functions quote their argument in errors
// (tonumber("abc") says `cannot convert "abc" to number`). And a panic that
// go-cty recovered comes back as one line instead of a stack trace. Results,
// marks and unknowns are f's own: the wrapper allows everything and lets
// f.Call apply f's rules.
func guarded(f function.Function) function.Function {
	return function.New(&function.Spec{
		Description: f.Description(),
		Params:      permissive(f.Params()),
		VarParam:    permissiveVar(f.VarParam()),
		Type: func(args []cty.Value) (cty.Type, error) {
			ty, err := f.ReturnTypeForValues(args)
			return ty, cleanError(err, args)
		},
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			v, err := f.Call(args)
			return v, cleanError(err, args)
		},
	})
}

// permissive lets every value through to the wrapped function: were the
// wrapper to refuse nulls or short-circuit unknowns itself, it would do so
// without f's marks and refinements.
func permissive(ps []function.Parameter) []function.Parameter {
	for i := range ps {
		ps[i].AllowNull, ps[i].AllowUnknown, ps[i].AllowDynamicType, ps[i].AllowMarked = true, true, true, true
	}
	return ps
}

func permissiveVar(p *function.Parameter) *function.Parameter {
	if p == nil {
		return nil
	}
	return &permissive([]function.Parameter{*p})[0]
}

// cleanError applies guarded's rules to err, keeping the argument index
// so that HCL still points at the offending argument. A NaN (big.ErrNaN,
// which go-cty's log and pow raise for a negative base) gets its own text.
func cleanError(err error, args []cty.Value) error {
	var pe function.PanicError
	isPanic := errors.As(err, &pe)
	marked := anyMarked(args)
	if err == nil || !isPanic && !marked {
		return err
	}
	msg := "the reason is not shown because an argument is sensitive"
	if _, nan := pe.Value.(big.ErrNaN); nan && !marked {
		msg = "the result is not a number (as for log or pow of a negative number)"
	} else if !marked {
		msg = fmt.Sprintf("the function cannot handle these arguments (%v)", pe.Value)
	}
	var ae function.ArgError
	if errors.As(err, &ae) {
		return function.NewArgErrorf(ae.Index, "%s", msg)
	}
	return errors.New(msg)
}

func anyMarked(args []cty.Value) bool {
	for _, a := range args {
		if a.ContainsMarked() {
			return true
		}
	}
	return false
}

// refuse is a function that takes anything and always fails with msg.
func refuse(msg string) function.Function {
	return function.New(&function.Spec{
		Description: msg,
		VarParam:    &function.Parameter{Name: "args", Type: cty.DynamicPseudoType, AllowNull: true, AllowUnknown: true, AllowDynamicType: true, AllowMarked: true},
		Type:        func([]cty.Value) (cty.Type, error) { return cty.NilType, errors.New(msg) },
		Impl:        func([]cty.Value, cty.Type) (cty.Value, error) { return cty.NilVal, errors.New(msg) },
	})
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
		if !args[0].IsWhollyKnown() { // e.g. a list holding a value that failed earlier
			return cty.UnknownVal(cty.String), nil
		}
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

// The functions below are Terraform's where go-cty has none or behaves
// differently; each follows the page of that name under
// https://developer.hashicorp.com/terraform/language/functions/.

func strParams(names ...string) []function.Parameter {
	ps := make([]function.Parameter, len(names))
	for i, n := range names {
		ps[i] = function.Parameter{Name: n, Type: cty.String}
	}
	return ps
}

// stringTest is a function of two strings returning a bool.
func stringTest(desc, second string, test func(s, t string) bool) function.Function {
	return function.New(&function.Spec{
		Description: desc,
		Params:      strParams("string", second),
		Type:        function.StaticReturnType(cty.Bool),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			return cty.BoolVal(test(args[0].AsString(), args[1].AsString())), nil
		},
	})
}

var (
	startsWithFunc  = stringTest("Returns whether the string begins with the prefix.", "prefix", strings.HasPrefix)
	endsWithFunc    = stringTest("Returns whether the string ends with the suffix.", "suffix", strings.HasSuffix)
	strContainsFunc = stringTest("Returns whether the string contains the substring.", "substr", strings.Contains)
)

// replaceFunc is Terraform's replace: a substring wrapped in slashes is a
// regular expression (RE2, as in regex), and $1 in the replacement refers to
// its groups; otherwise every occurrence of the plain substring is replaced.
var replaceFunc = function.New(&function.Spec{
	Description: "Replaces every occurrence of substr in string; a substr wrapped in slashes (/…/) is a regular expression.",
	Params:      strParams("string", "substr", "replace"),
	Type:        function.StaticReturnType(cty.String),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		sub := args[1].AsString()
		if len(sub) > 1 && sub[0] == '/' && sub[len(sub)-1] == '/' {
			return stdlib.RegexReplace(args[0], cty.StringVal(sub[1:len(sub)-1]), args[2])
		}
		return stdlib.Replace(args[0], args[1], args[2])
	},
})

// lengthFunc is Terraform's length: go-cty's counts collections only;
// Terraform's also counts a string's characters (grapheme clusters, as
// go-cty's strlen does) and an object's attributes.
var lengthFunc = function.New(&function.Spec{
	Description: "Returns the number of characters in a string, elements in a list, set, map or tuple, or attributes in an object.",
	Params:      []function.Parameter{{Name: "value", Type: cty.DynamicPseudoType}},
	Type: func(args []cty.Value) (cty.Type, error) {
		ty := args[0].Type()
		if ty == cty.String || ty.IsCollectionType() || ty.IsTupleType() || ty.IsObjectType() {
			return cty.Number, nil
		}
		return cty.NilType, function.NewArgErrorf(0, "length takes a string, list, set, map, tuple or object, not %s", ty.FriendlyName())
	},
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		v := args[0]
		switch {
		case v.Type() == cty.String:
			return stdlib.Strlen(v)
		case v.Type().IsObjectType():
			return cty.NumberIntVal(int64(len(v.Type().AttributeTypes()))), nil
		}
		return v.Length(), nil
	},
})

// coalesceFunc is Terraform's coalesce, which skips empty strings as well
// as nulls (go-cty's skips nulls only).
var coalesceFunc = function.New(&function.Spec{
	Description: "Returns the first argument that is neither null nor an empty string.",
	VarParam:    &function.Parameter{Name: "vals", Type: cty.DynamicPseudoType, AllowNull: true, AllowUnknown: true, AllowDynamicType: true},
	Type: func(args []cty.Value) (cty.Type, error) {
		tys := make([]cty.Type, len(args))
		for i, a := range args {
			tys[i] = a.Type()
		}
		if ty, _ := convert.UnifyUnsafe(tys); ty != cty.NilType {
			return ty, nil
		}
		return cty.NilType, errors.New("all arguments must have the same type")
	},
	Impl: func(args []cty.Value, ty cty.Type) (cty.Value, error) {
		for _, a := range args {
			v, err := convert.Convert(a, ty)
			switch {
			case err != nil:
				return cty.NilVal, err
			case !v.IsKnown():
				return cty.UnknownVal(ty), nil
			case v.IsNull() || v.RawEquals(cty.StringVal("")):
				continue
			}
			return v, nil
		}
		return cty.NilVal, errors.New("every argument is null or an empty string")
	},
})

// isSequence reports whether ty is a list, set or tuple.
func isSequence(ty cty.Type) bool {
	return ty.IsListType() || ty.IsSetType() || ty.IsTupleType()
}

// indexFunc is Terraform's index(list, value), the position of value in
// the list. (go-cty's IndexFunc is HCL's list[i] operator instead.)
var indexFunc = function.New(&function.Spec{
	Description: "Returns the position of the first element of list equal to value.",
	Params: []function.Parameter{
		{Name: "list", Type: cty.DynamicPseudoType},
		{Name: "value", Type: cty.DynamicPseudoType},
	},
	Type: func(args []cty.Value) (cty.Type, error) {
		if ty := args[0].Type(); !ty.IsListType() && !ty.IsTupleType() {
			return cty.NilType, function.NewArgErrorf(0, "index takes a list or tuple, not %s", ty.FriendlyName())
		}
		return cty.Number, nil
	},
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		for it := args[0].ElementIterator(); it.Next(); {
			i, e := it.Element()
			eq := e.Equals(args[1])
			if !eq.IsKnown() {
				return cty.UnknownVal(cty.Number), nil
			}
			if eq.True() {
				return i, nil
			}
		}
		return cty.NilVal, function.NewArgErrorf(1, "the list has no element equal to this value")
	},
})

// oneFunc is Terraform's one: null for an empty list, the element of a
// one-element list, an error otherwise.
var oneFunc = function.New(&function.Spec{
	Description: "Returns the only element of a list, set or tuple, or null if it is empty; more elements are an error.",
	Params:      []function.Parameter{{Name: "list", Type: cty.DynamicPseudoType}},
	Type: func(args []cty.Value) (cty.Type, error) {
		ty := args[0].Type()
		switch {
		case ty.IsListType() || ty.IsSetType():
			return ty.ElementType(), nil
		case ty.IsTupleType() && ty.Length() == 0:
			return cty.DynamicPseudoType, nil
		case ty.IsTupleType() && ty.Length() == 1:
			return ty.TupleElementType(0), nil
		case ty.IsTupleType():
			return cty.NilType, function.NewArgErrorf(0, "one takes a list with at most one element; this one has %d", ty.Length())
		}
		return cty.NilType, function.NewArgErrorf(0, "one takes a list, set or tuple, not %s", ty.FriendlyName())
	},
	Impl: func(args []cty.Value, ty cty.Type) (cty.Value, error) {
		v := args[0]
		if v.Type().IsSetType() && !v.IsWhollyKnown() {
			return cty.UnknownVal(ty), nil // unknown elements may yet be equal
		}
		switch n := v.LengthInt(); n {
		case 0:
			return cty.NullVal(ty), nil
		case 1:
			it := v.ElementIterator()
			it.Next()
			_, e := it.Element()
			return e, nil
		default:
			return cty.NilVal, function.NewArgErrorf(0, "one takes a list with at most one element; this one has %d", n)
		}
	},
})

// boolFold is alltrue or anytrue: decisive is the element value that
// settles the answer (false for alltrue, true for anytrue); an unknown
// element makes the answer unknown unless a decisive one follows. A null
// element counts as false, as in Terraform.
func boolFold(desc string, decisive bool) function.Function {
	return function.New(&function.Spec{
		Description: desc,
		Params:      []function.Parameter{{Name: "list", Type: cty.List(cty.Bool)}},
		Type:        function.StaticReturnType(cty.Bool),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			unknown := false
			for it := args[0].ElementIterator(); it.Next(); {
				_, e := it.Element()
				switch {
				case !e.IsKnown():
					unknown = true
				case (!e.IsNull() && e.True()) == decisive:
					return cty.BoolVal(decisive), nil
				}
			}
			if unknown {
				return cty.UnknownVal(cty.Bool), nil
			}
			return cty.BoolVal(!decisive), nil
		},
	})
}

var (
	allTrueFunc = boolFold("Returns true if every element of the list is true (or the list is empty).", false)
	anyTrueFunc = boolFold("Returns true if at least one element of the list is true.", true)
)

// sumFunc is Terraform's sum of a list, set or tuple of numbers.
var sumFunc = function.New(&function.Spec{
	Description: "Returns the sum of a non-empty list or set of numbers.",
	Params:      []function.Parameter{{Name: "list", Type: cty.DynamicPseudoType}},
	Type: func(args []cty.Value) (cty.Type, error) {
		if ty := args[0].Type(); !isSequence(ty) {
			return cty.NilType, function.NewArgErrorf(0, "sum takes a list, set or tuple of numbers, not %s", ty.FriendlyName())
		}
		return cty.Number, nil
	},
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		if !args[0].IsWhollyKnown() {
			return cty.UnknownVal(cty.Number), nil
		}
		if args[0].LengthInt() == 0 {
			return cty.NilVal, function.NewArgErrorf(0, "sum of an empty list; it has no elements to add")
		}
		total := new(big.Float)
		for it := args[0].ElementIterator(); it.Next(); {
			_, e := it.Element()
			n, err := convert.Convert(e, cty.Number)
			if err != nil || n.IsNull() {
				return cty.NilVal, function.NewArgErrorf(0, "sum takes numbers only; an element is null or not a number")
			}
			f := n.AsBigFloat()
			if total.IsInf() && f.IsInf() && total.Signbit() != f.Signbit() {
				return cty.NilVal, function.NewArgErrorf(0, "the sum of infinities of opposite signs is undefined")
			}
			total.Add(total, f)
		}
		return cty.NumberVal(total), nil
	},
})

// transposeFunc is Terraform's transpose: each string in the lists becomes
// a key, mapped to the keys whose lists held it, in key order.
var transposeFunc = function.New(&function.Spec{
	Description: "Swaps the keys and the values of a map of lists of strings.",
	Params:      []function.Parameter{{Name: "values", Type: cty.Map(cty.List(cty.String))}},
	Type:        function.StaticReturnType(cty.Map(cty.List(cty.String))),
	Impl: func(args []cty.Value, ty cty.Type) (cty.Value, error) {
		if !args[0].IsWhollyKnown() {
			return cty.UnknownVal(ty), nil
		}
		out := map[string][]cty.Value{}
		for it := args[0].ElementIterator(); it.Next(); {
			k, list := it.Element()
			if list.IsNull() {
				return cty.NilVal, function.NewArgErrorf(0, "transpose: the list of a key is null")
			}
			for lit := list.ElementIterator(); lit.Next(); {
				_, s := lit.Element()
				if s.IsNull() {
					return cty.NilVal, function.NewArgErrorf(0, "transpose: a list holds a null string")
				}
				out[s.AsString()] = append(out[s.AsString()], k)
			}
		}
		if len(out) == 0 {
			return cty.MapValEmpty(cty.List(cty.String)), nil
		}
		vals := make(map[string]cty.Value, len(out))
		for k, ks := range out {
			vals[k] = cty.ListVal(ks)
		}
		return cty.MapVal(vals), nil
	},
})

// stringFunc is a function of one string returning a string.
func stringFunc(desc string, impl func(string) (string, error)) function.Function {
	return function.New(&function.Spec{
		Description: desc,
		Params:      strParams("string"),
		Type:        function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			s, err := impl(args[0].AsString())
			if err != nil {
				return cty.NilVal, function.NewArgError(0, err)
			}
			return cty.StringVal(s), nil
		},
	})
}

var (
	base64EncodeFunc = stringFunc("Returns the Base64 encoding (RFC 4648, with padding) of the string's UTF-8 bytes.",
		func(s string) (string, error) { return base64.StdEncoding.EncodeToString([]byte(s)), nil })
	base64DecodeFunc = stringFunc("Decodes Base64 (RFC 4648, with padding) into a string; the bytes must be UTF-8.", base64Decode)
	// urlencode escapes as Terraform does, with Go's url.QueryEscape
	// (a space becomes "+").
	urlEncodeFunc = stringFunc("Escapes the string for use in a URL query.",
		func(s string) (string, error) { return url.QueryEscape(s), nil })
)

func base64Decode(s string) (string, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return "", fmt.Errorf("not valid Base64: %w", err) // says where, never what
	}
	if !utf8.Valid(b) {
		return "", errors.New("the decoded bytes are not UTF-8 text; strings hold text only")
	}
	return string(b), nil
}

// hashFunc is a function hashing a string's UTF-8 bytes with h, written
// out with enc (hexadecimal or Base64, as in Terraform's md5 and
// base64sha256).
func hashFunc(h func() hash.Hash, enc func([]byte) string) function.Function {
	return stringFunc("Returns a hash of the string's UTF-8 bytes.", func(s string) (string, error) {
		d := h()
		d.Write([]byte(s))
		return enc(d.Sum(nil)), nil
	})
}

// timeCmpFunc is Terraform's timecmp: -1, 0 or 1 as the first timestamp is
// before, at or after the second, whatever their time zones.
var timeCmpFunc = function.New(&function.Spec{
	Description: "Compares two RFC 3339 timestamps: -1 if the first is earlier, 0 if equal, 1 if later.",
	Params:      strParams("timestamp_a", "timestamp_b"),
	Type:        function.StaticReturnType(cty.Number),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		var ts [2]time.Time
		for i := range ts {
			t, err := time.Parse(time.RFC3339, args[i].AsString())
			if err != nil {
				return cty.NilVal, function.NewArgErrorf(i, "not an RFC 3339 timestamp such as 2024-05-01T12:00:00Z")
			}
			ts[i] = t
		}
		return cty.NumberIntVal(int64(ts[0].Compare(ts[1]))), nil
	},
})

// fileFunctions are the functions reading files, relative paths resolved
// against dir (https://developer.hashicorp.com/terraform/language/functions/file).
// Terraform also expands a leading ~; iotplan does not, because the result
// would depend on who runs the plan.
func fileFunctions(dir string) map[string]function.Function {
	return map[string]function.Function{
		"file": stringFunc("Returns the contents of a UTF-8 text file, relative to the module's directory.", func(p string) (string, error) {
			b, err := readFile(dir, p)
			if err == nil && !utf8.Valid(b) {
				err = fmt.Errorf("%s is not UTF-8 text; use filebase64 to read binary files", resolve(dir, p))
			}
			return string(b), err
		}),
		"filebase64": stringFunc("Returns the contents of a file, relative to the module's directory, in Base64.", func(p string) (string, error) {
			b, err := readFile(dir, p)
			return base64.StdEncoding.EncodeToString(b), err
		}),
		"fileexists": function.New(&function.Spec{
			Description: "Returns whether a file exists, relative to the module's directory.",
			Params:      strParams("path"),
			Type:        function.StaticReturnType(cty.Bool),
			Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
				ok, err := fileExists(resolve(dir, args[0].AsString()))
				if err != nil {
					return cty.NilVal, function.NewArgError(0, err)
				}
				return cty.BoolVal(ok), nil
			},
		}),
	}
}

// resolve is path relative to dir unless it is absolute.
func resolve(dir, path string) string {
	if filepath.IsAbs(path) {
		return filepath.Clean(path)
	}
	return filepath.Join(dir, path)
}

// fileExists is false only for a path that does not exist; a directory or
// device is an error, as in Terraform's fileexists.
func fileExists(path string) (bool, error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, err
	case !fi.Mode().IsRegular():
		return false, fmt.Errorf("%s is not a regular file", path)
	}
	return true, nil
}

// readFile reads a regular file of at most maxFileSize bytes. Stat comes
// first so that a named pipe or device is refused rather than opened (an
// open FIFO would block the plan).
func readFile(dir, path string) ([]byte, error) {
	full := resolve(dir, path)
	if ok, err := fileExists(full); err != nil {
		return nil, err
	} else if !ok {
		return nil, fmt.Errorf("no file exists at %s", full)
	}
	f, err := os.Open(full)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxFileSize {
		return nil, fmt.Errorf("%s is larger than %d MiB, the most a configuration may read", full, maxFileSize>>20)
	}
	return b, nil
}

// templateFileFunc is Terraform's templatefile(path, vars): the file is an
// HCL template (https://developer.hashicorp.com/terraform/language/expressions/strings#string-templates)
// whose only variables are the attributes of vars, calling the functions
// in funcs. A template that is one interpolation ("${x}") yields x's own
// type, so the result type is only known after rendering.
func templateFileFunc(dir string, funcs map[string]function.Function) function.Function {
	return function.New(&function.Spec{
		Description: "Renders a template file, relative to the module's directory, with the given variables.",
		Params: []function.Parameter{
			{Name: "path", Type: cty.String},
			{Name: "vars", Type: cty.DynamicPseudoType},
		},
		Type: function.StaticReturnType(cty.DynamicPseudoType),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			ctx, err := templateContext(args[1], funcs)
			if err != nil {
				return cty.NilVal, err
			}
			src, err := readFile(dir, args[0].AsString())
			if err != nil {
				return cty.NilVal, function.NewArgError(0, err)
			}
			return renderTemplate(src, resolve(dir, args[0].AsString()), ctx)
		},
	})
}

// templateContext makes vars, a map or object, a template's variables.
func templateContext(vars cty.Value, funcs map[string]function.Function) (*hcl.EvalContext, error) {
	if ty := vars.Type(); !ty.IsMapType() && !ty.IsObjectType() {
		return nil, function.NewArgErrorf(1, "vars must be a map or object, not %s", ty.FriendlyName())
	}
	ctx := &hcl.EvalContext{Variables: vars.AsValueMap(), Functions: funcs}
	for name := range ctx.Variables {
		if !hclsyntax.ValidIdentifier(name) {
			return nil, function.NewArgErrorf(1, "%q cannot be a template variable: a name is a letter followed by letters, digits, underscores and dashes", name)
		}
	}
	return ctx, nil
}

// renderTemplate parses and evaluates a template. References to names
// vars lacks are reported before evaluation, naming the template line,
// which is clearer than HCL's "Unknown variable" from inside the call.
func renderTemplate(src []byte, filename string, ctx *hcl.EvalContext) (cty.Value, error) {
	expr, diags := hclsyntax.ParseTemplate(src, filename, hcl.InitialPos)
	if diags.HasErrors() {
		return cty.NilVal, function.NewArgError(0, diags)
	}
	for _, tr := range expr.Variables() {
		if _, ok := ctx.Variables[tr.RootName()]; !ok {
			return cty.NilVal, function.NewArgErrorf(1, "vars has no %q, which the template uses at %s", tr.RootName(), tr.SourceRange())
		}
	}
	v, diags := expr.Value(ctx)
	if diags.HasErrors() {
		return cty.NilVal, diags
	}
	if v.IsNull() {
		return cty.NilVal, fmt.Errorf("%s: the template's result is null", filename)
	}
	return v, nil
}
