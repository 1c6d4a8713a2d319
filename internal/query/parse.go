package query

import (
	"strconv"
	"strings"
)

// functions maps each function of the Extended dialect (canonical upper-case
// name) to its number of arguments; documentedFunctions are those of the
// Documented dialect (IS_DEFINED documented, STARTSWITH reported working).
// Routing-only functions such as CONTAINS or LOWER are rejected in both.
var functions = map[string]int{
	"IS_DEFINED": 1, "IS_NULL": 1, "IS_BOOL": 1, "IS_NUMBER": 1, "IS_STRING": 1,
	"IS_OBJECT": 1, "IS_ARRAY": 1, "IS_PRIMITIVE": 1,
	"STARTSWITH": 2, "ENDSWITH": 2,
}

var aggregates = map[string]bool{"COUNT": true, "AVG": true, "SUM": true, "MIN": true, "MAX": true}

// routingOnly are functions the hub documents for message routing only;
// naming them gives a more helpful error than "unknown function".
var routingOnly = map[string]bool{
	"ABS": true, "EXP": true, "POWER": true, "SQUARE": true, "CEILING": true, "FLOOR": true,
	"SIGN": true, "SQRT": true, "AS_NUMBER": true, "CONCAT": true, "LENGTH": true, "LOWER": true,
	"UPPER": true, "SUBSTRING": true, "INDEX_OF": true, "CONTAINS": true,
}

// Parse parses a full statement in the Documented dialect:
//
//	SELECT [TOP n] (* | projection {, projection}) FROM devices[.modules|.jobs]
//	    [WHERE condition] [GROUP BY path]
func Parse(src string) (*Query, error) { return ParseDialect(src, Documented) }

// ParseDialect parses a full statement in dialect d.
func ParseDialect(src string, d Dialect) (q *Query, err error) {
	p, err := newParser(src, d)
	if err != nil {
		return nil, err
	}
	defer p.recover(&err)
	q = p.statement()
	if e := checkQuery(q); e != nil {
		return nil, e
	}
	if d != Extended {
		if e := checkQueryDocumented(q, p.topPos); e != nil {
			return nil, e
		}
	}
	return q, nil
}

// ParseCondition parses a WHERE condition on its own, in the Documented dialect: the
// queryCondition of a job or the target of an iotplan resource. "*" alone means every device
// (documented for jobs: "queryCondition": "*" in iot-hub-devguide-jobs).
func ParseCondition(src string) (Expr, error) { return ParseConditionDialect(src, Documented) }

// ParseConditionDialect parses a WHERE condition on its own in dialect d.
func ParseConditionDialect(src string, d Dialect) (e Expr, err error) {
	p, err := newParser(src, d)
	if err != nil {
		return nil, err
	}
	defer p.recover(&err)
	if t := p.peek(); t.kind == tStar && p.toks[p.i+1].kind == tEOF {
		return &AllExpr{Start: t.pos}, nil
	}
	e = p.condition()
	if t := p.peek(); t.kind != tEOF {
		p.failAt(t, "expected end of condition, found %s%s", describe(p.src, t), p.hint(t))
	}
	if e2 := checkLimits(e); e2 != nil {
		return nil, e2
	}
	return e, nil
}

// ParsePath parses a property path such as properties.desired.building or
// tags.[[group]].name.
func ParsePath(src string) (path Path, err error) {
	p, err := newParser(src, Documented)
	if err != nil {
		return nil, err
	}
	defer p.recover(&err)
	t := p.peek()
	if t.kind != tIdent && t.kind != tBracketName {
		p.failAt(t, "expected a property path, found %s", describe(p.src, t))
	}
	ref := p.path()
	if t := p.peek(); t.kind != tEOF {
		p.failAt(t, "expected end of path, found %s", describe(p.src, t))
	}
	return ref.Path, nil
}

type parser struct {
	src    string
	d      Dialect
	toks   []token
	i      int
	depth  int
	topPos Pos // where TOP was written, for checkQueryDocumented's TOP with GROUP BY error
}

// bailout carries a parse error up the recursive descent; recover converts
// it back to an error and lets anything else (a real bug) keep panicking.
type bailout struct{ err *Error }

func newParser(src string, d Dialect) (*parser, error) {
	if n := TextLength(src); n > MaxLength {
		return nil, errorf(Pos{Offset: 0, Line: 1, Col: 1}, "query is %d characters long; the limit is %d", n, MaxLength)
	}
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	return &parser{src: src, d: d, toks: toks}, nil
}

func (p *parser) recover(errp *error) {
	if r := recover(); r != nil {
		b, ok := r.(bailout)
		if !ok {
			panic(r)
		}
		*errp = b.err
	}
}

func (p *parser) peek() token { return p.toks[p.i] }

// next takes the next token; in the Documented dialect a token written in an Extended-only
// form (see token.undoc) is an error.
func (p *parser) next() token {
	t := p.toks[p.i]
	if t.undoc != nil && p.d != Extended {
		panic(bailout{t.undoc})
	}
	if t.kind != tEOF {
		p.i++
	}
	return t
}

func (p *parser) failAt(t token, format string, args ...any) {
	panic(bailout{errorf(t.pos, format, args...)})
}

// undocumented fails with err unless parsing the Extended dialect (a Dialect value that is
// neither constant parses strictly).
func (p *parser) undocumented(err *Error) {
	if p.d != Extended {
		panic(bailout{err})
	}
}

func (p *parser) enter(t token) {
	p.depth++
	if p.depth > MaxDepth {
		p.failAt(t, "expression nested too deeply (more than %d levels)", MaxDepth)
	}
}

func (p *parser) leave() { p.depth-- }

// isKw reports whether t is the keyword kw (given in upper case).
func isKw(t token, kw string) bool { return t.kind == tIdent && strings.EqualFold(t.text, kw) }

func (p *parser) acceptKw(kw string) bool {
	if isKw(p.peek(), kw) {
		p.next()
		return true
	}
	return false
}

func (p *parser) expectKw(kw, context string) token {
	t := p.next()
	if !isKw(t, kw) {
		p.failAt(t, "expected %s%s, found %s", kw, context, describe(p.src, t))
	}
	return t
}

func (p *parser) expect(k tokKind, what string) token {
	t := p.next()
	if t.kind != k {
		p.failAt(t, "expected %s, found %s", what, describe(p.src, t))
	}
	return t
}

// describe renders a token for an error message.
func describe(src string, t token) string {
	if t.kind == tEOF {
		return "end of query"
	}
	text := src[t.pos.Offset:t.end]
	if len(text) > 32 {
		cut := 32
		for cut > 0 && text[cut]&0xC0 == 0x80 {
			cut--
		}
		text = text[:cut] + "…"
	}
	switch t.kind {
	case tString:
		return "string " + text
	case tNumber:
		return "number " + text
	case tIdent:
		if isKeyword(t.text) {
			return "keyword " + strings.ToUpper(t.text)
		}
	}
	return "'" + text + "'"
}

// hint adds advice for common mistakes at token t.
func (p *parser) hint(t token) string {
	switch {
	case isKw(t, "ORDER"):
		return " (ORDER BY is not supported by IoT Hub queries)"
	case t.kind == tEq || t.kind == tNe || t.kind == tLt || t.kind == tLe || t.kind == tGt || t.kind == tGe:
		return " (comparisons cannot be chained; use parentheses and AND)"
	case t.kind == tLBrack:
		return " (array indexing is not supported; write odd property names as .[[name]])"
	case t.kind == tBracketName:
		return " (write a '.' before [[name]])"
	}
	return ""
}

// statement:
//
//	SELECT [TOP n] selectList FROM source [WHERE condition] [GROUP BY path] EOF
func (p *parser) statement() *Query {
	start := p.expectKw("SELECT", " at the start of the query")
	q := &Query{Start: start.pos}
	if t := p.peek(); isKw(t, "TOP") {
		p.next()
		p.topPos = t.pos
		q.HasTop, q.Top = true, p.top()
	}
	if p.peek().kind == tStar {
		p.next()
	} else {
		for {
			q.Select = append(q.Select, p.projection())
			if p.peek().kind != tComma {
				break
			}
			p.next()
		}
	}
	p.expectKw("FROM", " after the SELECT list")
	q.From = p.source()
	if p.acceptKw("WHERE") {
		q.Where = p.condition()
	}
	if t := p.peek(); isKw(t, "GROUP") {
		p.next()
		p.expectKw("BY", " after GROUP")
		t := p.peek()
		if t.kind != tIdent && t.kind != tBracketName || isKeyword(t.text) && t.kind == tIdent {
			p.failAt(t, "expected a property path after GROUP BY, found %s", describe(p.src, t))
		}
		q.GroupBy = p.path()
		if t := p.peek(); t.kind == tComma {
			p.failAt(t, "GROUP BY takes a single property path")
		}
	}
	if t := p.peek(); t.kind != tEOF {
		what := "WHERE, GROUP BY or end of query"
		switch {
		case q.GroupBy != nil:
			what = "end of query"
		case q.Where != nil:
			what = "GROUP BY or end of query"
		}
		p.failAt(t, "expected %s, found %s%s", what, describe(p.src, t), p.hint(t))
	}
	return q
}

// top: n | '(' n ')' with n a non-negative integer.
func (p *parser) top() int {
	paren := p.peek().kind == tLParen
	if paren {
		p.undocumented(errTopParen(p.peek().pos))
		p.next()
	}
	t := p.next()
	if t.kind != tNumber || t.num != float64(int64(t.num)) || t.num < 0 || t.num > 1<<31-1 {
		p.failAt(t, "expected a whole number after TOP, found %s", describe(p.src, t))
	}
	if paren {
		p.expect(tRParen, "')' after the TOP count")
	}
	return int(t.num)
}

// projection: (path | aggregate) [AS alias]
//
//	aggregate: COUNT '(' ')' | (AVG | SUM | MIN | MAX) '(' path ')'
func (p *parser) projection() Projection {
	t := p.peek()
	pr := Projection{Start: t.pos}
	switch {
	case t.kind == tIdent && p.toks[p.i+1].kind == tLParen:
		name := strings.ToUpper(t.text)
		if !aggregates[name] {
			if _, ok := functions[name]; ok {
				p.failAt(t, "function %s cannot be used in a SELECT list; only property paths and COUNT, AVG, SUM, MIN, MAX can", name)
			}
			p.failAt(t, "unknown aggregate %s; the SELECT list allows COUNT(), AVG, SUM, MIN and MAX", describe(p.src, t))
		}
		p.next()
		p.next()
		agg := &AggregateExpr{Start: t.pos, Func: name}
		if name == "COUNT" {
			if a := p.peek(); a.kind != tRParen {
				p.failAt(a, "COUNT takes no argument: write COUNT()")
			}
		} else {
			a := p.peek()
			if a.kind != tIdent && a.kind != tBracketName || a.kind == tIdent && isKeyword(a.text) {
				p.failAt(a, "%s takes a property path, found %s", name, describe(p.src, a))
			}
			agg.Arg = p.path()
		}
		p.expect(tRParen, "')' to close "+name+"(")
		pr.Expr = agg
	case t.kind == tIdent && !isKeyword(t.text) || t.kind == tBracketName:
		pr.Expr = p.path()
	default:
		p.failAt(t, "expected a property path or an aggregate in the SELECT list, found %s", describe(p.src, t))
	}
	if p.acceptKw("AS") {
		a := p.next()
		switch {
		case a.kind == tBracketName:
			pr.Alias = a.text
		case a.kind == tIdent && !isKeyword(a.text):
			pr.Alias = a.text
		case a.kind == tIdent:
			p.failAt(a, "%s is a reserved word; write [[%s]] to use it as an alias", strings.ToUpper(a.text), a.text)
		default:
			p.failAt(a, "expected an alias after AS, found %s", describe(p.src, a))
		}
	}
	return pr
}

// source: devices | devices.modules | devices.jobs (case-insensitive)
func (p *parser) source() Source {
	t := p.next()
	if t.kind != tIdent || !strings.EqualFold(t.text, "devices") {
		p.failAt(t, "expected devices, devices.modules or devices.jobs after FROM, found %s", describe(p.src, t))
	}
	if p.peek().kind != tDot {
		return Devices
	}
	p.next()
	s := p.next()
	switch {
	case isKw(s, "modules"):
		return Modules
	case isKw(s, "jobs"):
		return Jobs
	}
	p.failAt(s, "expected modules or jobs after devices., found %s", describe(p.src, s))
	return Devices
}

// path: name {'.' name}, where name is an identifier or [[anything]].
func (p *parser) path() *RefExpr {
	t := p.next()
	ref := &RefExpr{Start: t.pos}
	for {
		switch {
		case t.kind == tBracketName:
			ref.Path = append(ref.Path, t.text)
		case t.kind == tIdent && isKeyword(t.text):
			p.failAt(t, "%s is a reserved word; write [[%s]] to use it as a property name", strings.ToUpper(t.text), t.text)
		case t.kind == tIdent:
			ref.Path = append(ref.Path, t.text)
		default:
			p.failAt(t, "expected a property name after '.', found %s", describe(p.src, t))
		}
		if p.peek().kind != tDot {
			break
		}
		p.next()
		t = p.next()
	}
	switch n := p.peek(); n.kind {
	case tLBrack:
		p.failAt(n, "array indexing is not supported; write odd property names as .[[name]]")
	case tBracketName:
		p.failAt(n, "expected '.' before [[%s]]", n.text)
	}
	return ref
}

// condition: and {OR and}
func (p *parser) condition() Expr {
	first := p.and()
	if !isKw(p.peek(), "OR") {
		return first
	}
	l := &LogicalExpr{Start: first.Pos(), Op: OpOr, Terms: []Expr{first}}
	for p.acceptKw("OR") {
		l.Terms = append(l.Terms, p.and())
	}
	return l
}

// and: not {AND not}
func (p *parser) and() Expr {
	first := p.not()
	if !isKw(p.peek(), "AND") {
		return first
	}
	l := &LogicalExpr{Start: first.Pos(), Op: OpAnd, Terms: []Expr{first}}
	for p.acceptKw("AND") {
		l.Terms = append(l.Terms, p.not())
	}
	return l
}

// not: NOT not | comparison
func (p *parser) not() Expr {
	t := p.peek()
	if !isKw(t, "NOT") {
		return p.comparison()
	}
	p.next()
	p.enter(t)
	x := p.not()
	p.leave()
	return &UnaryExpr{Start: t.pos, Op: OpNot, X: x}
}

var cmpOps = map[tokKind]Op{tEq: OpEq, tNe: OpNe, tLt: OpLt, tLe: OpLe, tGt: OpGt, tGe: OpGe}

// comparison: additive [(= | != | <> | < | <= | > | >=) additive | (IN | NIN) array]
func (p *parser) comparison() Expr {
	l := p.additive()
	t := p.peek()
	if op, ok := cmpOps[t.kind]; ok {
		p.next()
		return &BinaryExpr{Start: l.Pos(), Op: op, L: l, R: p.additive()}
	}
	if isKw(t, "IN") || isKw(t, "NIN") {
		p.next()
		op := OpIn
		if isKw(t, "NIN") {
			op = OpNin
		}
		a := p.peek()
		if a.kind != tLBrack {
			p.failAt(a, "expected '[' after %s (IoT Hub writes lists in square brackets: %s ['a', 'b']), found %s",
				op, op, describe(p.src, a))
		}
		return &BinaryExpr{Start: l.Pos(), Op: op, L: l, R: p.array()}
	}
	return l
}

// additive: multiplicative {(+ | -) multiplicative}
func (p *parser) additive() Expr {
	x := p.multiplicative()
	for {
		var op Op
		switch p.peek().kind {
		case tPlus:
			op = OpAdd
		case tMinus:
			op = OpSub
		default:
			return x
		}
		p.next()
		x = &BinaryExpr{Start: x.Pos(), Op: op, L: x, R: p.multiplicative()}
	}
}

// multiplicative: unary {(* | / | %) unary}
func (p *parser) multiplicative() Expr {
	x := p.unary()
	for {
		var op Op
		switch p.peek().kind {
		case tStar:
			op = OpMul
		case tSlash:
			op = OpDiv
		case tPercent:
			op = OpMod
		default:
			return x
		}
		p.next()
		x = &BinaryExpr{Start: x.Pos(), Op: op, L: x, R: p.unary()}
	}
}

// unary: '-' unary | primary. A minus before a number literal folds into it; the Documented
// dialect has only that (a negative decimal_literal), no unary minus on an expression.
func (p *parser) unary() Expr {
	t := p.peek()
	if t.kind != tMinus {
		return p.primary()
	}
	if p.toks[p.i+1].kind != tNumber {
		p.undocumented(errUnaryMinus(t.pos))
	}
	p.next()
	p.enter(t)
	x := p.unary()
	p.leave()
	if lit, ok := x.(*LiteralExpr); ok && lit.Kind == LitNumber {
		return &LiteralExpr{Start: t.pos, Kind: LitNumber, Num: -lit.Num}
	}
	return &UnaryExpr{Start: t.pos, Op: OpNeg, X: x}
}

// primary: literal | array | '(' condition ')' | function '(' args ')' | path
func (p *parser) primary() Expr {
	t := p.peek()
	switch t.kind {
	case tNumber:
		p.next()
		return &LiteralExpr{Start: t.pos, Kind: LitNumber, Num: t.num}
	case tString:
		p.next()
		return &LiteralExpr{Start: t.pos, Kind: LitString, Str: t.text}
	case tLBrack:
		return p.array()
	case tLParen:
		p.next()
		p.enter(t)
		x := p.condition()
		p.leave()
		if c := p.next(); c.kind != tRParen {
			p.failAt(c, "expected ')' to close '(' opened at %s, found %s%s", t.pos, describe(p.src, c), p.hint(c))
		}
		return x
	case tBracketName:
		return p.path()
	case tIdent:
		if lit := keywordLiteral(t); lit != nil {
			p.next()
			return lit
		}
		if p.toks[p.i+1].kind == tLParen {
			return p.call()
		}
		if isKeyword(t.text) {
			p.failAt(t, "expected an operand, found %s", describe(p.src, t))
		}
		return p.path()
	case tStar:
		p.failAt(t, "'*' (every device) can only be used as the whole condition")
	case tPlus:
		p.failAt(t, "unexpected '+' (unary plus is not supported)")
	}
	p.failAt(t, "expected an operand, found %s", describe(p.src, t))
	return nil
}

func keywordLiteral(t token) *LiteralExpr {
	var buf [9]byte
	up, ok := upperASCII(t.text, &buf)
	if !ok {
		return nil
	}
	switch string(up) {
	case "TRUE":
		return &LiteralExpr{Start: t.pos, Kind: LitBool, Bool: true}
	case "FALSE":
		return &LiteralExpr{Start: t.pos, Kind: LitBool}
	case "NULL":
		return &LiteralExpr{Start: t.pos, Kind: LitNull}
	case "UNDEFINED":
		return &LiteralExpr{Start: t.pos, Kind: LitUndefined}
	}
	return nil
}

// call: name '(' [condition {',' condition}] ')'
func (p *parser) call() Expr {
	t := p.next()
	name := strings.ToUpper(t.text)
	arity, ok := functions[name]
	switch {
	case ok:
	case aggregates[name]:
		p.failAt(t, "aggregate %s() can only be used in the SELECT list", name)
	case routingOnly[name]:
		p.failAt(t, "function %s is only available in message routing queries, not in twin or job queries", name)
	case name == "STARTS_WITH" || name == "ENDS_WITH":
		p.failAt(t, "unknown function %s (did you mean %s?)", name, strings.ReplaceAll(name, "_", ""))
	case p.d != Extended:
		p.failAt(t, "unknown function %s; twin and job queries support IS_DEFINED and STARTSWITH", describe(p.src, t))
	default:
		p.failAt(t, "unknown function %s; twin and job queries support IS_DEFINED, IS_NULL, IS_BOOL, IS_NUMBER, IS_STRING, IS_OBJECT, IS_ARRAY, IS_PRIMITIVE, STARTSWITH and ENDSWITH", describe(p.src, t))
	}
	if !documentedFunctions[name] {
		p.undocumented(errFunction(t.pos, name))
	}
	open := p.next()
	p.enter(open)
	c := &CallExpr{Start: t.pos, Func: name}
	if p.peek().kind != tRParen {
		for {
			c.Args = append(c.Args, p.condition())
			if p.peek().kind != tComma {
				break
			}
			p.next()
		}
	}
	if e := p.next(); e.kind != tRParen {
		p.failAt(e, "expected ')' to close %s(, found %s%s", name, describe(p.src, e), p.hint(e))
	}
	p.leave()
	if len(c.Args) != arity {
		p.failAt(t, "%s takes %d argument%s, got %d", name, arity, plural(arity), len(c.Args))
	}
	return c
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// array: '[' [constant {',' constant}] ']'
//
//	constant: ['-'] number | string | true | false | null | undefined | array
func (p *parser) array() Expr {
	open := p.next()
	p.enter(open)
	a := &ArrayExpr{Start: open.pos, Elems: []Expr{}}
	if p.peek().kind == tRBrack {
		p.undocumented(errEmptyArray(open.pos))
		p.next()
		p.leave()
		return a
	}
	for {
		a.Elems = append(a.Elems, p.constant())
		t := p.next()
		if t.kind == tRBrack {
			break
		}
		if t.kind != tComma {
			p.failAt(t, "expected ']' to close the array, found %s", describe(p.src, t))
		}
	}
	p.leave()
	return a
}

func (p *parser) constant() Expr {
	t := p.peek()
	switch t.kind {
	case tNumber, tString, tLBrack:
		return p.primary()
	case tMinus:
		if p.toks[p.i+1].kind == tNumber {
			return p.unary()
		}
	case tIdent:
		if lit := keywordLiteral(t); lit != nil {
			p.next()
			return lit
		}
	}
	p.failAt(t, "array elements must be constants, found %s", describe(p.src, t))
	return nil
}

// formatNumber is the canonical text of a number literal: plain decimal, the only
// documented decimal_literal form, shortest to round-trip; -0 is written 0.
func formatNumber(f float64) string {
	if f == 0 {
		return "0"
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}
