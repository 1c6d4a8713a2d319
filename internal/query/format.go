package query

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Format returns the canonical text of an expression: keywords and function
// names in upper case, strings single-quoted with only the documented
// escapes (\' \\ \uXXXX), numbers in plain decimal (never an exponent, never
// -0), parentheses only where needed (and around AND chains inside OR, and
// around comparisons under NOT, for readability). For any expression that
// ParseConditionDialect(src, d) returned, ParseConditionDialect(Format(e), d)
// yields an Equal tree and the same text; the text of a tree that
// CheckCondition accepts is in the Documented dialect.
func Format(e Expr) string {
	if e == nil {
		return ""
	}
	var b strings.Builder
	writeExpr(&b, e)
	return b.String()
}

// precedence levels, loosest first.
const (
	precOr = iota + 1
	precAnd
	precNot
	precCmp
	precAdd
	precMul
	precNeg
	precPrimary
)

func precOf(e Expr) int {
	switch x := e.(type) {
	case *LogicalExpr:
		if x.Op == OpAnd {
			return precAnd
		}
		return precOr
	case *UnaryExpr:
		if x.Op == OpNot {
			return precNot
		}
		return precNeg
	case *BinaryExpr:
		switch x.Op {
		case OpAdd, OpSub:
			return precAdd
		case OpMul, OpDiv, OpMod:
			return precMul
		}
		return precCmp
	case *LiteralExpr:
		if x.Kind == LitNumber && (x.Num < 0 || x.Num == 0 && 1/x.Num < 0) {
			// -5 re-parses as a folded unary minus: it binds like one.
			return precNeg
		}
	}
	return precPrimary
}

func writeSub(b *strings.Builder, e Expr, paren bool) {
	if paren {
		b.WriteByte('(')
	}
	writeExpr(b, e)
	if paren {
		b.WriteByte(')')
	}
}

func writeExpr(b *strings.Builder, e Expr) {
	switch x := e.(type) {
	case nil:
		b.WriteString("<nil>")
	case *AllExpr:
		b.WriteByte('*')
	case *LiteralExpr:
		writeLiteral(b, x)
	case *ArrayExpr:
		b.WriteByte('[')
		for i, el := range x.Elems {
			if i > 0 {
				b.WriteString(", ")
			} else if _, nested := el.(*ArrayExpr); nested {
				b.WriteByte(' ') // "[[" would start a [[name]]
			}
			writeExpr(b, el)
		}
		b.WriteByte(']')
	case *RefExpr:
		writePath(b, x.Path)
	case *UnaryExpr:
		if x.Op == OpNot {
			b.WriteString("NOT ")
			writeSub(b, x.X, precOf(x.X) <= precCmp)
		} else {
			b.WriteString(x.Op.String())
			writeSub(b, x.X, precOf(x.X) < precNeg)
		}
	case *BinaryExpr:
		p := precOf(x)
		if p == precCmp {
			writeSub(b, x.L, precOf(x.L) <= precCmp)
		} else {
			writeSub(b, x.L, precOf(x.L) < p)
		}
		b.WriteByte(' ')
		b.WriteString(x.Op.String())
		b.WriteByte(' ')
		writeSub(b, x.R, precOf(x.R) <= p)
	case *LogicalExpr:
		for i, t := range x.Terms {
			if i > 0 {
				b.WriteByte(' ')
				b.WriteString(x.Op.String())
				b.WriteByte(' ')
			}
			_, nested := t.(*LogicalExpr)
			writeSub(b, t, nested || precOf(t) < precOf(x))
		}
	case *CallExpr:
		b.WriteString(x.Func)
		b.WriteByte('(')
		for i, a := range x.Args {
			if i > 0 {
				b.WriteString(", ")
			}
			writeExpr(b, a)
		}
		b.WriteByte(')')
	case *AggregateExpr:
		b.WriteString(x.Func)
		b.WriteByte('(')
		if x.Arg != nil {
			writePath(b, x.Arg.Path)
		}
		b.WriteByte(')')
	default:
		b.WriteString("<unknown expression>")
	}
}

func writeLiteral(b *strings.Builder, x *LiteralExpr) {
	switch x.Kind {
	case LitString:
		writeString(b, x.Str)
	case LitNumber:
		b.WriteString(formatNumber(x.Num))
	case LitBool:
		if x.Bool {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case LitNull:
		b.WriteString("null")
	case LitUndefined:
		b.WriteString("undefined")
	default:
		b.WriteString("<invalid value of type ")
		b.WriteString(x.Invalid)
		b.WriteByte('>')
	}
}

const hexDigits = "0123456789abcdef"

// writeString writes s single-quoted; control characters become \u00XX so
// the text stays on one line, and invalid UTF-8 becomes U+FFFD.
func writeString(b *strings.Builder, s string) {
	b.WriteByte('\'')
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		i += n
		switch {
		case r == '\'' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			b.WriteString(`\u00`)
			b.WriteByte(hexDigits[r>>4])
			b.WriteByte(hexDigits[r&0xf])
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('\'')
}

// isBareName reports whether a path segment or alias can be printed as is.
func isBareName(s string) bool {
	if s == "" || isKeyword(s) {
		return false
	}
	for i, r := range s {
		if i == 0 && !isIdentStart(r) || !isIdentRune(r) {
			return false
		}
	}
	return true
}

// canBracket reports whether s can be written as [[s]].
func canBracket(s string) bool {
	return s != "" && !strings.Contains(s, "]]") && !strings.HasSuffix(s, "]") && utf8.ValidString(s)
}

func writeName(b *strings.Builder, s string) {
	if isBareName(s) {
		b.WriteString(s)
		return
	}
	b.WriteString("[[")
	b.WriteString(s)
	b.WriteString("]]")
}

func writePath(b *strings.Builder, p Path) {
	for i, s := range p {
		if i > 0 {
			b.WriteByte('.')
		}
		writeName(b, s)
	}
}

func formatQuery(q *Query) string {
	if q == nil {
		return ""
	}
	var b strings.Builder
	b.WriteString("SELECT ")
	if q.HasTop {
		b.WriteString("TOP ")
		b.WriteString(strconv.Itoa(q.Top))
		b.WriteByte(' ')
	}
	if len(q.Select) == 0 {
		b.WriteByte('*')
	}
	for i, pr := range q.Select {
		if i > 0 {
			b.WriteString(", ")
		}
		writeExpr(&b, pr.Expr)
		if pr.Alias != "" {
			b.WriteString(" AS ")
			writeName(&b, pr.Alias)
		}
	}
	b.WriteString(" FROM ")
	b.WriteString(q.From.String())
	if q.Where != nil {
		if _, all := q.Where.(*AllExpr); !all {
			b.WriteString(" WHERE ")
			writeExpr(&b, q.Where)
		}
	}
	if q.GroupBy != nil {
		b.WriteString(" GROUP BY ")
		writePath(&b, q.GroupBy.Path)
	}
	return b.String()
}
