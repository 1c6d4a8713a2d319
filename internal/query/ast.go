package query

import "strings"

// Source is the collection a statement reads (the FROM clause).
type Source int

const (
	Devices Source = iota // FROM devices: device twins
	Modules               // FROM devices.modules: module twins
	Jobs                  // FROM devices.jobs: per-device job rows
)

func (s Source) String() string {
	switch s {
	case Devices:
		return "devices"
	case Modules:
		return "devices.modules"
	case Jobs:
		return "devices.jobs"
	}
	return "<invalid source>"
}

// Path is a property path, one element per segment, exactly as written
// (case preserved; [[ ]] brackets removed).
type Path []string

// P builds a path from raw segments: P("properties", "desired", "building").
// Segments may hold any characters; they are bracketed with [[ ]] when
// printed if they are not plain identifiers or are reserved words (group).
func P(segments ...string) Path { return append(Path(nil), segments...) }

// String returns the path as query text.
func (p Path) String() string {
	var b strings.Builder
	writePath(&b, p)
	return b.String()
}

// Op is an operator.
type Op uint8

const (
	OpInvalid Op = iota
	OpOr
	OpAnd
	OpNot
	OpEq
	OpNe
	OpLt
	OpLe
	OpGt
	OpGe
	OpIn
	OpNin
	OpAdd
	OpSub
	OpMul
	OpDiv
	OpMod
	OpNeg
)

var opText = [...]string{
	OpInvalid: "<invalid op>", OpOr: "OR", OpAnd: "AND", OpNot: "NOT",
	OpEq: "=", OpNe: "!=", OpLt: "<", OpLe: "<=", OpGt: ">", OpGe: ">=",
	OpIn: "IN", OpNin: "NIN",
	OpAdd: "+", OpSub: "-", OpMul: "*", OpDiv: "/", OpMod: "%", OpNeg: "-",
}

func (o Op) String() string {
	if int(o) < len(opText) {
		return opText[o]
	}
	return opText[OpInvalid]
}

func (o Op) isComparison() bool { return o >= OpEq && o <= OpGe }

// Expr is a node of a condition or expression. The concrete types are the
// *...Expr types of this package; the set is closed.
type Expr interface {
	Pos() Pos
	exprNode()
}

// LitKind is the kind of a literal constant.
type LitKind uint8

const (
	LitInvalid   LitKind = iota // a builder value of an unsupported Go type; never compiles
	LitString                   // 'text'
	LitNumber                   // 12, 1.5, 0x1F, -3
	LitBool                     // true, false
	LitNull                     // null
	LitUndefined                // undefined
)

type (
	// AllExpr is the "*" condition: every device. It only appears as a
	// whole condition, never inside another expression.
	AllExpr struct{ Start Pos }

	// LiteralExpr is a constant.
	LiteralExpr struct {
		Start   Pos
		Kind    LitKind
		Str     string  // LitString
		Num     float64 // LitNumber
		Bool    bool    // LitBool
		Invalid string  // LitInvalid: the Go type that was given to a builder
	}

	// ArrayExpr is an array constant: [1, 'a', null]. Elements are
	// *LiteralExpr or *ArrayExpr.
	ArrayExpr struct {
		Start Pos
		Elems []Expr
	}

	// RefExpr is a property reference: tags.location.region.
	RefExpr struct {
		Start Pos
		Path  Path
	}

	// UnaryExpr is NOT x or -x.
	UnaryExpr struct {
		Start Pos
		Op    Op // OpNot or OpNeg
		X     Expr
	}

	// BinaryExpr is a comparison, IN/NIN (R is an *ArrayExpr) or arithmetic.
	BinaryExpr struct {
		Start Pos // of the left operand
		Op    Op
		L, R  Expr
	}

	// LogicalExpr is a chain of two or more terms joined by the same AND or
	// OR. A parenthesised chain inside another stays a separate term.
	LogicalExpr struct {
		Start Pos
		Op    Op // OpAnd or OpOr
		Terms []Expr
	}

	// CallExpr is a function call; Func is the canonical upper-case name.
	CallExpr struct {
		Start Pos
		Func  string
		Args  []Expr
	}

	// AggregateExpr is COUNT() or AVG/SUM/MIN/MAX(path); only in a SELECT list.
	AggregateExpr struct {
		Start Pos
		Func  string   // COUNT, AVG, SUM, MIN, MAX
		Arg   *RefExpr // nil for COUNT
	}
)

func (e *AllExpr) Pos() Pos       { return e.Start }
func (e *LiteralExpr) Pos() Pos   { return e.Start }
func (e *ArrayExpr) Pos() Pos     { return e.Start }
func (e *RefExpr) Pos() Pos       { return e.Start }
func (e *UnaryExpr) Pos() Pos     { return e.Start }
func (e *BinaryExpr) Pos() Pos    { return e.Start }
func (e *LogicalExpr) Pos() Pos   { return e.Start }
func (e *CallExpr) Pos() Pos      { return e.Start }
func (e *AggregateExpr) Pos() Pos { return e.Start }

func (*AllExpr) exprNode()       {}
func (*LiteralExpr) exprNode()   {}
func (*ArrayExpr) exprNode()     {}
func (*RefExpr) exprNode()       {}
func (*UnaryExpr) exprNode()     {}
func (*BinaryExpr) exprNode()    {}
func (*LogicalExpr) exprNode()   {}
func (*CallExpr) exprNode()      {}
func (*AggregateExpr) exprNode() {}

// Projection is one element of a SELECT list.
type Projection struct {
	Start Pos
	Expr  Expr   // *RefExpr or *AggregateExpr
	Alias string // "" when no AS was written
}

// Query is a full statement.
type Query struct {
	Start   Pos
	HasTop  bool
	Top     int
	Select  []Projection // empty means SELECT *
	From    Source
	Where   Expr     // nil when there is no WHERE clause
	GroupBy *RefExpr // nil when there is no GROUP BY clause
}

// String returns the canonical statement text.
func (q *Query) String() string { return formatQuery(q) }

// Equal reports whether two expressions are the same tree, ignoring positions.
func Equal(a, b Expr) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	switch x := a.(type) {
	case *AllExpr:
		_, ok := b.(*AllExpr)
		return ok
	case *LiteralExpr:
		y, ok := b.(*LiteralExpr)
		if !ok || x.Kind != y.Kind {
			return false
		}
		switch x.Kind {
		case LitString:
			return x.Str == y.Str
		case LitNumber:
			return x.Num == y.Num || (x.Num != x.Num && y.Num != y.Num)
		case LitBool:
			return x.Bool == y.Bool
		case LitInvalid:
			return x.Invalid == y.Invalid
		}
		return true
	case *ArrayExpr:
		y, ok := b.(*ArrayExpr)
		return ok && equalList(x.Elems, y.Elems)
	case *RefExpr:
		y, ok := b.(*RefExpr)
		return ok && equalPath(x.Path, y.Path)
	case *UnaryExpr:
		y, ok := b.(*UnaryExpr)
		return ok && x.Op == y.Op && Equal(x.X, y.X)
	case *BinaryExpr:
		y, ok := b.(*BinaryExpr)
		return ok && x.Op == y.Op && Equal(x.L, y.L) && Equal(x.R, y.R)
	case *LogicalExpr:
		y, ok := b.(*LogicalExpr)
		return ok && x.Op == y.Op && equalList(x.Terms, y.Terms)
	case *CallExpr:
		y, ok := b.(*CallExpr)
		return ok && x.Func == y.Func && equalList(x.Args, y.Args)
	case *AggregateExpr:
		y, ok := b.(*AggregateExpr)
		if !ok || x.Func != y.Func || (x.Arg == nil) != (y.Arg == nil) {
			return false
		}
		return x.Arg == nil || equalPath(x.Arg.Path, y.Arg.Path)
	}
	return false
}

// EqualQuery reports whether two statements are the same, ignoring positions.
func EqualQuery(a, b *Query) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	if a.HasTop != b.HasTop || (a.HasTop && a.Top != b.Top) || a.From != b.From ||
		len(a.Select) != len(b.Select) || !Equal(a.Where, b.Where) ||
		(a.GroupBy == nil) != (b.GroupBy == nil) {
		return false
	}
	if a.GroupBy != nil && !equalPath(a.GroupBy.Path, b.GroupBy.Path) {
		return false
	}
	for i := range a.Select {
		if a.Select[i].Alias != b.Select[i].Alias || !Equal(a.Select[i].Expr, b.Select[i].Expr) {
			return false
		}
	}
	return true
}

func equalList(a, b []Expr) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

func equalPath(a, b Path) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
