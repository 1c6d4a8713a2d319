package query

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// refValue is the reference interpreter's value: def=false is undefined.
type refValue struct {
	def bool
	v   any // nil (null), bool, float64, string, map[string]any, []any
}

// refEval is a deliberately naive, independent tree-walking interpreter of
// the documented semantics. TestDifferential checks the compiled closures
// (fast paths, IN sets, term reordering) against it.
func refEval(e Expr, d map[string]any) refValue {
	switch x := e.(type) {
	case *AllExpr:
		return refValue{true, true}
	case *LiteralExpr:
		switch x.Kind {
		case LitString:
			return refValue{true, x.Str}
		case LitNumber:
			return refValue{true, x.Num}
		case LitBool:
			return refValue{true, x.Bool}
		case LitNull:
			return refValue{true, nil}
		}
		return refValue{}
	case *ArrayExpr:
		out := []any{}
		for _, el := range x.Elems {
			out = append(out, refEval(el, d).v)
		}
		return refValue{true, out}
	case *RefExpr:
		segs, err := resolve(Devices, x)
		if err != nil {
			return refValue{}
		}
		var cur any = d
		for _, s := range segs {
			m, ok := cur.(map[string]any)
			if !ok {
				return refValue{}
			}
			if cur, ok = m[s]; !ok {
				return refValue{}
			}
		}
		return refValue{true, cur}
	case *UnaryExpr:
		v := refEval(x.X, d)
		if x.Op == OpNot {
			b, ok := v.v.(bool)
			if !v.def || !ok {
				return refValue{}
			}
			return refValue{true, !b}
		}
		f, ok := v.v.(float64)
		if !v.def || !ok {
			return refValue{}
		}
		return refValue{true, -f}
	case *LogicalExpr:
		sawUndef := false
		for _, t := range x.Terms {
			v := refEval(t, d)
			b, ok := v.v.(bool)
			switch {
			case !v.def || !ok:
				sawUndef = true
			case x.Op == OpAnd && !b:
				return refValue{true, false}
			case x.Op == OpOr && b:
				return refValue{true, true}
			}
		}
		if sawUndef {
			return refValue{}
		}
		return refValue{true, x.Op == OpAnd}
	case *BinaryExpr:
		l, r := refEval(x.L, d), refEval(x.R, d)
		switch x.Op {
		case OpIn, OpNin:
			switch l.v.(type) {
			case map[string]any, []any:
				return refValue{} // objects and arrays do not compare
			}
			if !l.def {
				return refValue{} // undefined IN anything, even [], is undefined
			}
			res := refValue{true, false}
			for _, el := range x.R.(*ArrayExpr).Elems {
				c := refCompare(OpEq, l, refEval(el, d))
				if c.def && c.v == true {
					res = refValue{true, true}
					break
				}
				if !c.def {
					res = refValue{}
				}
			}
			if x.Op == OpNin && res.def {
				res.v = !res.v.(bool)
			}
			return res
		case OpAdd, OpSub, OpMul, OpDiv, OpMod:
			a, ok1 := l.v.(float64)
			b, ok2 := r.v.(float64)
			if !l.def || !r.def || !ok1 || !ok2 {
				return refValue{}
			}
			var n float64
			switch x.Op {
			case OpAdd:
				n = a + b
			case OpSub:
				n = a - b
			case OpMul:
				n = a * b
			case OpDiv:
				if b == 0 {
					return refValue{}
				}
				n = a / b
			case OpMod:
				if b == 0 {
					return refValue{}
				}
				n = math.Mod(a, b)
			}
			if math.IsInf(n, 0) || math.IsNaN(n) {
				return refValue{}
			}
			return refValue{true, n}
		}
		return refCompare(x.Op, l, r)
	case *CallExpr:
		a := refEval(x.Args[0], d)
		typ := func(ok bool) refValue { return refValue{true, a.def && ok} }
		switch x.Func {
		case "IS_DEFINED":
			return refValue{true, a.def}
		case "IS_NULL":
			return typ(a.v == nil)
		case "IS_BOOL":
			_, ok := a.v.(bool)
			return typ(ok)
		case "IS_NUMBER":
			_, ok := a.v.(float64)
			return typ(ok)
		case "IS_STRING":
			_, ok := a.v.(string)
			return typ(ok)
		case "IS_OBJECT":
			_, ok := a.v.(map[string]any)
			return typ(ok)
		case "IS_ARRAY":
			_, ok := a.v.([]any)
			return typ(ok)
		case "IS_PRIMITIVE":
			switch a.v.(type) {
			case map[string]any, []any:
				return typ(false)
			}
			return typ(true)
		case "STARTSWITH", "ENDSWITH":
			b := refEval(x.Args[1], d)
			s, ok1 := a.v.(string)
			p, ok2 := b.v.(string)
			if !a.def || !b.def || !ok1 || !ok2 {
				return refValue{}
			}
			if x.Func == "STARTSWITH" {
				return refValue{true, strings.HasPrefix(s, p)}
			}
			return refValue{true, strings.HasSuffix(s, p)}
		}
	}
	panic("refEval: unexpected node")
}

func refCompare(op Op, l, r refValue) refValue {
	if !l.def || !r.def {
		return refValue{}
	}
	var c int
	switch a := l.v.(type) {
	case nil:
		if r.v != nil {
			return refValue{}
		}
	case bool:
		b, ok := r.v.(bool)
		if !ok {
			return refValue{}
		}
		switch {
		case !a && b:
			c = -1
		case a && !b:
			c = 1
		}
	case float64:
		b, ok := r.v.(float64)
		if !ok {
			return refValue{}
		}
		switch {
		case a < b:
			c = -1
		case a > b:
			c = 1
		}
	case string:
		b, ok := r.v.(string)
		if !ok {
			return refValue{}
		}
		c = strings.Compare(a, b)
	default:
		return refValue{} // objects and arrays do not compare
	}
	return refValue{true, opHolds(op, c)}
}

func TestDifferential(t *testing.T) {
	fleet := decodeDocs(t, fleetJSON)
	var paths []Path
	for _, s := range []string{"tags.floor", "tags.building", "tags.ring", "tags.location.region", "tags.location",
		"properties.reported.temp", "properties.reported.fw", "deviceId", "Status", "properties.reported.ips",
		"properties.reported.connectivity", "properties.reported.telemetryConfig.sendFrequencyInSecs", "tags.nothing",
		"devices.connectionState", "tags.[[group]].name"} {
		p, err := ParsePath(s)
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	var lits []*LiteralExpr
	for _, v := range []any{3.0, 1.0, "3", "43", 43.0, "US", "us", "enabled", "Connected", "dev-0", "1.2.0", nil, true, false, 20.0, 25.5, 0.0, "wifi"} {
		lits = append(lits, literal(v))
	}
	lits = append(lits, &LiteralExpr{Kind: LitUndefined})
	g := gen{r: rand.New(rand.NewPCG(7, 11)), paths: paths, lits: lits}
	for i := 0; i < 20000; i++ {
		e := g.expr(1 + g.r.IntN(4))
		c, err := CompileCondition(e)
		if err != nil {
			t.Fatalf("CompileCondition(%s): %v", Format(e), err)
		}
		for _, d := range fleet {
			ref := refEval(e, d)
			want := ref.def && ref.v == true
			if got := c.Match(d); got != want {
				t.Fatalf("%s on %s: compiled %v, reference %v", Format(e), d["deviceId"], got, want)
			}
		}
	}
}
