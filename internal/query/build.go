package query

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strconv"
)

// The builder composes conditions without string concatenation: values are
// quoted and escaped, odd property names bracketed, by the printer. A value
// of an unsupported Go type does not panic: it yields a literal that Format
// renders as <invalid value of type T> and that Compile rejects.

// All is the "*" condition: every device.
func All() Expr { return &AllExpr{} }

// And joins conditions with AND. All() terms and nil are dropped; And() of
// nothing is All(); one term is returned as is; AND chains are flattened.
func And(es ...Expr) Expr { return logical(OpAnd, es) }

// Or joins conditions with OR. Any All() term makes the result All(); Or()
// of nothing is the constant false (matches no device).
func Or(es ...Expr) Expr { return logical(OpOr, es) }

func logical(op Op, es []Expr) Expr {
	var terms []Expr
	for _, e := range es {
		switch x := e.(type) {
		case nil:
		case *AllExpr:
			if op == OpOr {
				return All()
			}
		case *LogicalExpr:
			if x.Op == op {
				terms = append(terms, x.Terms...)
			} else {
				terms = append(terms, x)
			}
		default:
			terms = append(terms, e)
		}
	}
	switch len(terms) {
	case 0:
		if op == OpAnd {
			return All()
		}
		return &LiteralExpr{Kind: LitBool}
	case 1:
		return terms[0]
	}
	return &LogicalExpr{Op: op, Terms: terms}
}

// Not negates a condition. Not(All()) is the constant false. Remember that
// NOT of an undefined comparison is still undefined: Not(Eq(p, v)) does not
// select devices where p is missing.
func Not(e Expr) Expr {
	switch e.(type) {
	case nil, *AllExpr:
		return &LiteralExpr{Kind: LitBool}
	}
	return &UnaryExpr{Op: OpNot, X: e}
}

// Prop is a property reference, for use with Compare.
func Prop(p Path) Expr { return &RefExpr{Path: p} }

// Value is a constant: string, bool, nil, any Go number, json.Number.
func Value(v any) Expr { return literal(v) }

// Undefined is the undefined constant.
func Undefined() Expr { return &LiteralExpr{Kind: LitUndefined} }

// Compare builds l op r for a comparison or arithmetic operator.
func Compare(op Op, l, r Expr) Expr { return &BinaryExpr{Op: op, L: l, R: r} }

func Eq(p Path, v any) Expr { return cmp(OpEq, p, v) }
func Ne(p Path, v any) Expr { return cmp(OpNe, p, v) }
func Lt(p Path, v any) Expr { return cmp(OpLt, p, v) }
func Le(p Path, v any) Expr { return cmp(OpLe, p, v) }
func Gt(p Path, v any) Expr { return cmp(OpGt, p, v) }
func Ge(p Path, v any) Expr { return cmp(OpGe, p, v) }

func cmp(op Op, p Path, v any) Expr {
	return &BinaryExpr{Op: op, L: &RefExpr{Path: p}, R: literal(v)}
}

// In is p IN [vs...]. A single slice argument ([]string, []any, []int,
// []float64, ...) is spread: In(p, ids) is In(p, ids...).
func In(p Path, vs ...any) Expr { return inList(OpIn, p, vs) }

// Nin is p NIN [vs...], with the same spreading as In.
func Nin(p Path, vs ...any) Expr { return inList(OpNin, p, vs) }

func inList(op Op, p Path, vs []any) Expr {
	if len(vs) == 1 {
		if rv := reflect.ValueOf(vs[0]); rv.Kind() == reflect.Slice && rv.Type() != reflect.TypeOf(json.RawMessage(nil)) {
			spread := make([]any, rv.Len())
			for i := range spread {
				spread[i] = rv.Index(i).Interface()
			}
			vs = spread
		}
	}
	a := &ArrayExpr{Elems: make([]Expr, len(vs))}
	for i, v := range vs {
		a.Elems[i] = literal(v)
	}
	return &BinaryExpr{Op: op, L: &RefExpr{Path: p}, R: a}
}

// IsDefined is IS_DEFINED(p), the documented function: true when p has a value, null included.
// The builders make the documented dialect only: the IS_* type checks and ENDSWITH, which Azure
// documents for message routing alone, have none (a tree holding them still parses and compiles
// in the Extended dialect, and CheckCondition rejects it).
func IsDefined(p Path) Expr { return call1("IS_DEFINED", p) }

// StartsWith is STARTSWITH(p, prefix): case-sensitive.
func StartsWith(p Path, prefix string) Expr {
	return &CallExpr{Func: "STARTSWITH", Args: []Expr{&RefExpr{Path: p}, literal(prefix)}}
}

func call1(name string, p Path) Expr {
	return &CallExpr{Func: name, Args: []Expr{&RefExpr{Path: p}}}
}

func literal(v any) *LiteralExpr {
	num := func(f float64) *LiteralExpr { return &LiteralExpr{Kind: LitNumber, Num: f} }
	switch x := v.(type) {
	case nil:
		return &LiteralExpr{Kind: LitNull}
	case string:
		return &LiteralExpr{Kind: LitString, Str: x}
	case bool:
		return &LiteralExpr{Kind: LitBool, Bool: x}
	case float64:
		return num(x)
	case float32:
		return num(float64(x))
	case int:
		return num(float64(x))
	case int8:
		return num(float64(x))
	case int16:
		return num(float64(x))
	case int32:
		return num(float64(x))
	case int64:
		return num(float64(x))
	case uint:
		return num(float64(x))
	case uint8:
		return num(float64(x))
	case uint16:
		return num(float64(x))
	case uint32:
		return num(float64(x))
	case uint64:
		return num(float64(x))
	case json.Number:
		if f, err := strconv.ParseFloat(string(x), 64); err == nil {
			return num(f)
		}
		return &LiteralExpr{Kind: LitNumber, Num: math.NaN()} // rejected by Compile
	}
	return &LiteralExpr{Kind: LitInvalid, Invalid: fmt.Sprintf("%T", v)}
}

// SelectBuilder composes a statement. Start with NewSelect or Select; it
// defaults to SELECT * FROM devices.
//
//	q := query.Select(query.Devices).
//		Project(query.P("properties", "reported", "fw"), "fw").Count("n").
//		Where(cond).GroupBy(query.P("properties", "reported", "fw")).Query()
type SelectBuilder struct{ q Query }

// NewSelect starts SELECT * FROM devices.
func NewSelect() *SelectBuilder { return &SelectBuilder{} }

// Select starts SELECT * FROM from.
func Select(from Source) *SelectBuilder { return &SelectBuilder{q: Query{From: from}} }

func (b *SelectBuilder) From(s Source) *SelectBuilder { b.q.From = s; return b }
func (b *SelectBuilder) Top(n int) *SelectBuilder     { b.q.HasTop, b.q.Top = true, n; return b }

// Project adds a property to the SELECT list; alias "" means none.
func (b *SelectBuilder) Project(p Path, alias string) *SelectBuilder {
	b.q.Select = append(b.q.Select, Projection{Expr: &RefExpr{Path: p}, Alias: alias})
	return b
}

// Count adds COUNT() AS alias.
func (b *SelectBuilder) Count(alias string) *SelectBuilder {
	b.q.Select = append(b.q.Select, Projection{Expr: &AggregateExpr{Func: "COUNT"}, Alias: alias})
	return b
}

// Aggregate adds fn(p) AS alias; fn is AVG, SUM, MIN or MAX.
func (b *SelectBuilder) Aggregate(fn string, p Path, alias string) *SelectBuilder {
	b.q.Select = append(b.q.Select, Projection{Expr: &AggregateExpr{Func: fn, Arg: &RefExpr{Path: p}}, Alias: alias})
	return b
}

func (b *SelectBuilder) Avg(p Path, alias string) *SelectBuilder { return b.Aggregate("AVG", p, alias) }
func (b *SelectBuilder) Sum(p Path, alias string) *SelectBuilder { return b.Aggregate("SUM", p, alias) }
func (b *SelectBuilder) Min(p Path, alias string) *SelectBuilder { return b.Aggregate("MIN", p, alias) }
func (b *SelectBuilder) Max(p Path, alias string) *SelectBuilder { return b.Aggregate("MAX", p, alias) }

// Where sets the condition; All() or nil means no WHERE clause.
func (b *SelectBuilder) Where(e Expr) *SelectBuilder {
	if _, all := e.(*AllExpr); all {
		e = nil
	}
	b.q.Where = e
	return b
}

func (b *SelectBuilder) GroupBy(p Path) *SelectBuilder { b.q.GroupBy = &RefExpr{Path: p}; return b }

// Query returns the statement (a copy; the builder can go on).
func (b *SelectBuilder) Query() *Query {
	q := b.q
	q.Select = append([]Projection(nil), b.q.Select...)
	return &q
}

// String is the canonical statement text.
func (b *SelectBuilder) String() string { return formatQuery(&b.q) }

// Check is CheckQuery of the statement: call it before sending String() to a hub.
func (b *SelectBuilder) Check() error { return CheckQuery(&b.q) }

// CheckCondition reports whether e is a condition on devices the hub would
// accept as written by Format: everything CompileCondition checks (limits,
// property paths), the Documented dialect (no IS_STRING, ENDSWITH, unary
// minus or empty array; errors wrap ErrUndocumented) and the MaxLength limit
// on the text. Use it before sending a composed condition to a hub.
func CheckCondition(e Expr) error {
	if e == nil {
		return errorf(Pos{}, "missing condition (nil)")
	}
	if err := checkLimits(e); err != nil {
		return err
	}
	if err := checkPaths(Devices, e); err != nil {
		return err
	}
	if err := checkDocumented(e); err != nil {
		return err
	}
	if n := TextLength(Format(e)); n > MaxLength {
		return errorf(e.Pos(), "condition is %d characters long; the limit is %d", n, MaxLength)
	}
	return nil
}

// CheckQuery reports whether q is a statement the hub would accept as its
// String() writes it: everything Compile checks, the Documented dialect in
// its condition and structure (no TOP with GROUP BY, no aggregates or GROUP
// BY on devices.modules; errors wrap ErrUndocumented) and the MaxLength
// limit on the text. Use it before sending a composed statement to a hub.
func CheckQuery(q *Query) error {
	if err := checkQuery(q); err != nil {
		return err
	}
	if q.Where != nil {
		if err := checkDocumented(q.Where); err != nil {
			return err
		}
	}
	if err := checkQueryDocumented(q, q.Start); err != nil {
		return err
	}
	if n := TextLength(q.String()); n > MaxLength {
		return errorf(q.Start, "query is %d characters long; the limit is %d", n, MaxLength)
	}
	return nil
}
