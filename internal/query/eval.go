package query

import (
	"encoding/json"
	"math"
	"slices"
	"strings"
)

// Evaluation follows the hub's DocumentDB-derived semantics:
//   - a missing property is undefined;
//   - a comparison involving undefined, or operands of different JSON types,
//     or objects/arrays, is undefined; NOT undefined is undefined;
//   - AND is false if any term is false, OR is true if any term is true,
//     otherwise undefined wins over the remaining truth value;
//   - a document is selected only when the condition is exactly true.
//
// Conditions compile once into a tree of closures. Comparisons of a property
// with a constant, and IN/NIN with constant arrays, get specialised closures
// that read the document without allocating.

type tri uint8

const (
	undef tri = iota
	isFalse
	isTrue
)

func triOf(b bool) tri {
	if b {
		return isTrue
	}
	return isFalse
}

func (t tri) not() tri {
	switch t {
	case isTrue:
		return isFalse
	case isFalse:
		return isTrue
	}
	return undef
}

type kind uint8

const (
	kUndef kind = iota
	kNull
	kBool
	kNum
	kStr
	kArr
	kObj
)

// value is an evaluated JSON value; numbers and strings are held unboxed so
// that arithmetic and comparisons do not allocate.
type value struct {
	k kind
	n float64 // kNum; kBool: 1 or 0
	s string  // kStr
	r any     // kArr, kObj: the document's []any / map[string]any / Object
}

func valueOf(v any) value {
	switch x := v.(type) {
	case nil:
		return value{k: kNull}
	case string:
		return value{k: kStr, s: x}
	case float64:
		return value{k: kNum, n: x}
	case bool:
		if x {
			return value{k: kBool, n: 1}
		}
		return value{k: kBool}
	case map[string]any:
		return value{k: kObj, r: x}
	case Object:
		return value{k: kObj, r: x}
	case []any:
		return value{k: kArr, r: x}
	case int:
		return value{k: kNum, n: float64(x)}
	case int64:
		return value{k: kNum, n: float64(x)}
	case int32:
		return value{k: kNum, n: float64(x)}
	case float32:
		return value{k: kNum, n: float64(x)}
	case json.Number:
		if f, err := x.Float64(); err == nil {
			return value{k: kNum, n: f}
		}
	}
	// Anything else is not a JSON-decoded value: treat it as absent.
	return value{}
}

func (v value) toAny() any {
	switch v.k {
	case kNull:
		return nil
	case kStr:
		return v.s
	case kNum:
		return v.n
	case kBool:
		return v.n != 0
	case kArr, kObj:
		return v.r
	}
	return nil
}

func litValue(l *LiteralExpr) value {
	switch l.Kind {
	case LitString:
		return value{k: kStr, s: l.Str}
	case LitNumber:
		return value{k: kNum, n: l.Num}
	case LitBool:
		if l.Bool {
			return value{k: kBool, n: 1}
		}
		return value{k: kBool}
	case LitNull:
		return value{k: kNull}
	}
	return value{}
}

func arrayValue(a *ArrayExpr) value {
	out := make([]any, len(a.Elems))
	for i, el := range a.Elems {
		switch x := el.(type) {
		case *LiteralExpr:
			out[i] = litValue(x).toAny()
		case *ArrayExpr:
			out[i] = arrayValue(x).r
		}
	}
	return value{k: kArr, r: out}
}

// compareOrder compares two values of the same primitive kind.
func compareOrder(a, b value) int {
	switch a.k {
	case kStr:
		return strings.Compare(a.s, b.s) // ordinal, case-sensitive
	case kNum, kBool:
		switch {
		case a.n < b.n:
			return -1
		case a.n > b.n:
			return 1
		}
	}
	return 0 // null = null
}

func opHolds(op Op, c int) bool {
	switch op {
	case OpEq:
		return c == 0
	case OpNe:
		return c != 0
	case OpLt:
		return c < 0
	case OpLe:
		return c <= 0
	case OpGt:
		return c > 0
	case OpGe:
		return c >= 0
	}
	return false
}

func compareValues(op Op, a, b value) tri {
	if a.k != b.k || a.k == kUndef || a.k == kArr || a.k == kObj {
		return undef
	}
	return triOf(opHolds(op, compareOrder(a, b)))
}

func flip(op Op) Op {
	switch op {
	case OpLt:
		return OpGt
	case OpLe:
		return OpGe
	case OpGt:
		return OpLt
	case OpGe:
		return OpLe
	}
	return op
}

// Object is a JSON object the evaluator reads member by member without it being a
// map[string]any: the local hub keeps its twins in a compact form and hands them to queries as
// Objects, so that a query over a million twins needs no map built per twin. Field returns a
// member's value (string, float64, bool, []any, map[string]any, another Object) and whether
// it is present; Map returns the whole object as a new map[string]any (deep: nested Objects
// become maps too). MarshalJSON writes the object as the hub returns it, which is what rows of
// SELECT * hold.
type Object interface {
	Field(name string) (any, bool)
	Map() map[string]any
	MarshalJSON() ([]byte, error)
}

// AsMap returns a JSON object held as map[string]any or as an Object as a map (an Object's
// Map, a copy; a map itself), and nil for anything else.
func AsMap(v any) map[string]any {
	switch o := v.(type) {
	case map[string]any:
		return o
	case Object:
		return o.Map()
	}
	return nil
}

// Field reads member name of a JSON object held either as map[string]any or as an Object; any
// other value has no members.
func Field(v any, name string) (any, bool) {
	switch o := v.(type) {
	case map[string]any:
		x, ok := o[name]
		return x, ok
	case Object:
		return o.Field(name)
	}
	return nil, false
}

// A document is a twin or a devices.jobs row: map[string]any or Object.
type doc = any
type condFn func(doc) tri
type valFn func(doc) value
type getter func(doc) (any, bool)

// makeGetter reads a resolved path; short paths get unrolled closures.
func makeGetter(segs []string) getter {
	switch len(segs) {
	case 1:
		s0 := segs[0]
		return func(d doc) (any, bool) { return Field(d, s0) }
	case 2:
		s0, s1 := segs[0], segs[1]
		return func(d doc) (any, bool) {
			m, ok := Field(d, s0)
			if !ok {
				return nil, false
			}
			return Field(m, s1)
		}
	case 3:
		s0, s1, s2 := segs[0], segs[1], segs[2]
		return func(d doc) (any, bool) {
			m, ok := Field(d, s0)
			if !ok {
				return nil, false
			}
			if m, ok = Field(m, s1); !ok {
				return nil, false
			}
			return Field(m, s2)
		}
	}
	return func(d doc) (any, bool) {
		v := d
		for _, s := range segs {
			var ok bool
			if v, ok = Field(v, s); !ok {
				return nil, false
			}
		}
		return v, true
	}
}

type compiler struct{ src Source }

func (c *compiler) getter(r *RefExpr) (getter, *Error) {
	segs, err := resolve(c.src, r)
	if err != nil {
		return nil, err
	}
	return makeGetter(segs), nil
}

// cond compiles e in condition position.
func (c *compiler) cond(e Expr) (condFn, *Error) {
	switch x := e.(type) {
	case *AllExpr:
		return func(doc) tri { return isTrue }, nil
	case *LogicalExpr:
		// Three-valued AND and OR are commutative and terms have no side
		// effects, so evaluate the cheapest terms first: a false (AND) or
		// true (OR) there saves the deeper document lookups.
		ordered := slices.Clone(x.Terms)
		slices.SortStableFunc(ordered, func(a, b Expr) int { return cost(a) - cost(b) })
		terms := make([]condFn, len(ordered))
		for i, t := range ordered {
			f, err := c.cond(t)
			if err != nil {
				return nil, err
			}
			terms[i] = f
		}
		if x.Op == OpAnd {
			return andFn(terms), nil
		}
		return orFn(terms), nil
	case *UnaryExpr:
		if x.Op == OpNot {
			f, err := c.cond(x.X)
			if err != nil {
				return nil, err
			}
			return func(d doc) tri { return f(d).not() }, nil
		}
	case *BinaryExpr:
		switch {
		case x.Op.isComparison():
			return c.comparison(x)
		case x.Op == OpIn || x.Op == OpNin:
			return c.in(x)
		}
	case *CallExpr:
		return c.call(x)
	}
	v, err := c.val(e)
	if err != nil {
		return nil, err
	}
	return func(d doc) tri {
		r := v(d)
		if r.k != kBool {
			return undef
		}
		return triOf(r.n != 0)
	}, nil
}

// cost estimates the evaluation cost of e: roughly the number of map
// lookups, plus a little per operator.
func cost(e Expr) int {
	n := 0
	walk(e, func(x Expr) bool {
		switch r := x.(type) {
		case *RefExpr:
			n += 2 * len(r.Path)
		case *CallExpr, *BinaryExpr, *UnaryExpr:
			n++
		}
		return true
	})
	return n
}

func andFn(terms []condFn) condFn {
	if len(terms) == 2 {
		a, b := terms[0], terms[1]
		return func(d doc) tri {
			ra := a(d)
			if ra == isFalse {
				return isFalse
			}
			rb := b(d)
			if rb == isFalse {
				return isFalse
			}
			if ra == isTrue && rb == isTrue {
				return isTrue
			}
			return undef
		}
	}
	return func(d doc) tri {
		res := isTrue
		for _, t := range terms {
			switch t(d) {
			case isFalse:
				return isFalse
			case undef:
				res = undef
			}
		}
		return res
	}
}

func orFn(terms []condFn) condFn {
	return func(d doc) tri {
		res := isFalse
		for _, t := range terms {
			switch t(d) {
			case isTrue:
				return isTrue
			case undef:
				res = undef
			}
		}
		return res
	}
}

// comparison compiles l op r; property-vs-constant gets a fast path.
func (c *compiler) comparison(x *BinaryExpr) (condFn, *Error) {
	op := x.Op
	if ref, ok := x.L.(*RefExpr); ok {
		if lit, ok := x.R.(*LiteralExpr); ok {
			return c.compareConst(ref, op, lit)
		}
	}
	if ref, ok := x.R.(*RefExpr); ok {
		if lit, ok := x.L.(*LiteralExpr); ok {
			return c.compareConst(ref, flip(op), lit) // 3 < x is x > 3
		}
	}
	l, err := c.val(x.L)
	if err != nil {
		return nil, err
	}
	r, err := c.val(x.R)
	if err != nil {
		return nil, err
	}
	return func(d doc) tri { return compareValues(op, l(d), r(d)) }, nil
}

func (c *compiler) compareConst(ref *RefExpr, op Op, lit *LiteralExpr) (condFn, *Error) {
	get, err := c.getter(ref)
	if err != nil {
		return nil, err
	}
	return compareConst(get, op, litValue(lit)), nil
}

func compareConst(get getter, op Op, k value) condFn {
	switch k.k {
	case kUndef:
		return func(doc) tri { return undef }
	case kStr:
		s := k.s
		if op == OpEq {
			return func(d doc) tri {
				v, ok := get(d)
				if !ok {
					return undef
				}
				if x, ok := v.(string); ok {
					return triOf(x == s)
				}
				return undef
			}
		}
		return func(d doc) tri {
			v, ok := get(d)
			if !ok {
				return undef
			}
			if x, ok := v.(string); ok {
				return triOf(opHolds(op, strings.Compare(x, s)))
			}
			return undef
		}
	case kNum:
		n := k.n
		return func(d doc) tri {
			v, ok := get(d)
			if !ok {
				return undef
			}
			x, ok := v.(float64)
			if !ok {
				w := valueOf(v)
				if w.k != kNum {
					return undef
				}
				x = w.n
			}
			switch op {
			case OpEq:
				return triOf(x == n)
			case OpNe:
				return triOf(x != n)
			case OpLt:
				return triOf(x < n)
			case OpLe:
				return triOf(x <= n)
			case OpGt:
				return triOf(x > n)
			}
			return triOf(x >= n)
		}
	}
	return func(d doc) tri {
		v, ok := get(d)
		if !ok {
			return undef
		}
		return compareValues(op, valueOf(v), k)
	}
}

// in compiles x IN [..] / x NIN [..] as the OR of x = element: true if an
// element of x's type is equal; otherwise undefined if some element has
// another type (that comparison is undefined), else false.
func (c *compiler) in(x *BinaryExpr) (condFn, *Error) {
	arr := x.R.(*ArrayExpr)
	set := inSet{strs: map[string]bool{}, nums: map[float64]bool{}}
	kinds := map[kind]bool{}
	for _, el := range arr.Elems {
		lit, ok := el.(*LiteralExpr)
		if !ok {
			kinds[kArr] = true
			continue
		}
		v := litValue(lit)
		kinds[v.k] = true
		switch v.k {
		case kStr:
			set.strs[v.s] = true
		case kNum:
			set.nums[v.n] = true
		case kBool:
			set.bools[int(v.n)] = true
		case kNull:
			set.null = true
		}
	}
	for _, k := range []kind{kNull, kBool, kNum, kStr} {
		for other := range kinds {
			if other != k {
				set.others[k] = true
			}
		}
	}
	neg := x.Op == OpNin
	finish := func(t tri) tri {
		if neg {
			return t.not()
		}
		return t
	}
	if ref, ok := x.L.(*RefExpr); ok {
		get, err := c.getter(ref)
		if err != nil {
			return nil, err
		}
		return func(d doc) tri {
			v, ok := get(d)
			if !ok {
				return undef
			}
			if s, ok := v.(string); ok {
				return finish(set.test(kStr, s, 0))
			}
			w := valueOf(v)
			return finish(set.test(w.k, w.s, w.n))
		}, nil
	}
	l, err := c.val(x.L)
	if err != nil {
		return nil, err
	}
	return func(d doc) tri {
		w := l(d)
		return finish(set.test(w.k, w.s, w.n))
	}, nil
}

type inSet struct {
	strs   map[string]bool
	nums   map[float64]bool
	bools  [2]bool
	null   bool
	others [kObj + 1]bool // others[k]: the array holds an element not of kind k
}

func (s *inSet) test(k kind, str string, n float64) tri {
	var hit bool
	switch k {
	case kStr:
		hit = s.strs[str]
	case kNum:
		hit = s.nums[n]
	case kBool:
		hit = s.bools[int(n)]
	case kNull:
		hit = s.null
	default:
		return undef // undefined, objects and arrays do not compare
	}
	if hit {
		return isTrue
	}
	if s.others[k] {
		return undef
	}
	return isFalse
}

func (c *compiler) call(x *CallExpr) (condFn, *Error) {
	args := make([]valFn, len(x.Args))
	for i, a := range x.Args {
		f, err := c.val(a)
		if err != nil {
			return nil, err
		}
		args[i] = f
	}
	typeIs := func(want ...kind) condFn {
		a := args[0]
		return func(d doc) tri {
			k := a(d).k
			for _, w := range want {
				if k == w {
					return isTrue
				}
			}
			return isFalse
		}
	}
	switch x.Func {
	case "IS_DEFINED":
		a := args[0]
		return func(d doc) tri { return triOf(a(d).k != kUndef) }, nil
	case "IS_NULL":
		return typeIs(kNull), nil
	case "IS_BOOL":
		return typeIs(kBool), nil
	case "IS_NUMBER":
		return typeIs(kNum), nil
	case "IS_STRING":
		return typeIs(kStr), nil
	case "IS_OBJECT":
		return typeIs(kObj), nil
	case "IS_ARRAY":
		return typeIs(kArr), nil
	case "IS_PRIMITIVE":
		return typeIs(kNull, kBool, kNum, kStr), nil
	case "STARTSWITH", "ENDSWITH":
		a, b := args[0], args[1]
		has := strings.HasPrefix
		if x.Func == "ENDSWITH" {
			has = strings.HasSuffix
		}
		return func(d doc) tri {
			s, t := a(d), b(d)
			if s.k != kStr || t.k != kStr {
				return undef
			}
			return triOf(has(s.s, t.s))
		}, nil
	}
	return nil, errorf(x.Start, "unknown function %s", x.Func)
}

// val compiles e in value position.
func (c *compiler) val(e Expr) (valFn, *Error) {
	switch x := e.(type) {
	case *LiteralExpr:
		v := litValue(x)
		return func(doc) value { return v }, nil
	case *ArrayExpr:
		v := arrayValue(x)
		return func(doc) value { return v }, nil
	case *RefExpr:
		get, err := c.getter(x)
		if err != nil {
			return nil, err
		}
		return func(d doc) value {
			v, ok := get(d)
			if !ok {
				return value{}
			}
			return valueOf(v)
		}, nil
	case *UnaryExpr:
		if x.Op == OpNeg {
			f, err := c.val(x.X)
			if err != nil {
				return nil, err
			}
			return func(d doc) value {
				v := f(d)
				if v.k != kNum {
					return value{}
				}
				return value{k: kNum, n: -v.n}
			}, nil
		}
	case *BinaryExpr:
		if x.Op >= OpAdd && x.Op <= OpMod {
			return c.arith(x)
		}
	case *AllExpr:
		return nil, errorf(x.Start, "'*' (every device) can only be used as the whole condition")
	case *AggregateExpr:
		return nil, errorf(x.Start, "aggregate %s() can only be used in the SELECT list", x.Func)
	}
	f, err := c.cond(e)
	if err != nil {
		return nil, err
	}
	return func(d doc) value {
		switch f(d) {
		case isTrue:
			return value{k: kBool, n: 1}
		case isFalse:
			return value{k: kBool}
		}
		return value{}
	}, nil
}

// arith: numbers only; anything else, division by zero or a non-finite
// result gives undefined.
func (c *compiler) arith(x *BinaryExpr) (valFn, *Error) {
	l, err := c.val(x.L)
	if err != nil {
		return nil, err
	}
	r, err := c.val(x.R)
	if err != nil {
		return nil, err
	}
	op := x.Op
	return func(d doc) value {
		a, b := l(d), r(d)
		if a.k != kNum || b.k != kNum {
			return value{}
		}
		var n float64
		switch op {
		case OpAdd:
			n = a.n + b.n
		case OpSub:
			n = a.n - b.n
		case OpMul:
			n = a.n * b.n
		case OpDiv:
			if b.n == 0 {
				return value{}
			}
			n = a.n / b.n
		case OpMod:
			if b.n == 0 {
				return value{}
			}
			n = math.Mod(a.n, b.n)
		}
		if math.IsInf(n, 0) || math.IsNaN(n) {
			return value{}
		}
		return value{k: kNum, n: n}
	}, nil
}

// Condition is a compiled WHERE condition.
type Condition struct {
	fn  condFn
	src Source
}

// CompileCondition compiles a condition (from ParseCondition or the builder)
// for twins (FROM devices). Errors are *Error.
func CompileCondition(e Expr) (*Condition, error) { return CompileConditionFor(Devices, e) }

// CompileConditionFor compiles a condition over the documents of src; for
// Jobs every property must be written devices.jobs.<name>.
func CompileConditionFor(src Source, e Expr) (*Condition, error) {
	if e == nil {
		return nil, errorf(Pos{}, "missing condition (nil)")
	}
	if err := checkLimits(e); err != nil {
		return nil, err
	}
	if err := checkPaths(src, e); err != nil {
		return nil, err
	}
	c := &compiler{src: src}
	fn, err := c.cond(e)
	if err != nil {
		return nil, err
	}
	return &Condition{fn: fn, src: src}, nil
}

// Match reports whether the condition is true for doc (a JSON-decoded twin
// or devices.jobs row). False and undefined both mean no.
func (c *Condition) Match(doc any) bool { return c.fn(doc) == isTrue }
