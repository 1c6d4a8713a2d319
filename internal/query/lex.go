package query

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

type tokKind uint8

const (
	tEOF         tokKind = iota
	tIdent               // name or keyword; text holds it as written
	tBracketName         // [[name]]; text holds name
	tString              // text holds the decoded value
	tNumber              // num holds the value
	tLParen
	tRParen
	tLBrack
	tRBrack
	tComma
	tDot
	tStar
	tPlus
	tMinus
	tSlash
	tPercent
	tEq
	tNe // != or <>
	tLt
	tLe
	tGt
	tGe
)

type token struct {
	kind tokKind
	pos  Pos
	end  int // byte offset just past the token
	text string
	num  float64
	// undoc is set when the token is written in a form only the Extended dialect has (an
	// exponent, a JSON escape, ...): the lexer reads both dialects alike and the parser of
	// the Documented dialect reports undoc when it takes the token, so errors come in
	// source order.
	undoc *Error
}

// keywords are reserved: they cannot be used as bare property names (write
// [[name]] instead). Matched case-insensitively.
var keywords = map[string]bool{
	"SELECT": true, "TOP": true, "FROM": true, "WHERE": true, "GROUP": true, "BY": true,
	"AS": true, "AND": true, "OR": true, "NOT": true, "IN": true, "NIN": true,
	"TRUE": true, "FALSE": true, "NULL": true, "UNDEFINED": true,
}

func isKeyword(s string) bool {
	var buf [9]byte
	up, ok := upperASCII(s, &buf)
	return ok && keywords[string(up)] // no allocation: map lookup on a []byte conversion
}

// upperASCII upper-cases a short ASCII s into buf without allocating; ok is
// false when s is too long or not ASCII (then it is no keyword).
func upperASCII(s string, buf *[9]byte) ([]byte, bool) {
	if len(s) < 2 || len(s) > len(buf) {
		return nil, false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 {
			return nil, false
		}
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		buf[i] = c
	}
	return buf[:len(s)], true
}

func isIdentStart(r rune) bool { return r == '_' || r == '$' || unicode.IsLetter(r) }
func isIdentRune(r rune) bool  { return isIdentStart(r) || unicode.IsDigit(r) }

// lexer turns the whole source into tokens up front; queries are short
// (MaxLength) so a slice is simpler than a streaming state machine.
type lexer struct {
	src       string
	off       int // byte offset of the next rune
	line, col int // of the next rune
	toks      []token
}

func (l *lexer) pos() Pos { return Pos{Offset: l.off, Line: l.line, Col: l.col} }

func (l *lexer) peekRune(ahead int) rune {
	off := l.off
	for i := 0; ; i++ {
		if off >= len(l.src) {
			return -1
		}
		r, n := utf8.DecodeRuneInString(l.src[off:])
		if i == ahead {
			return r
		}
		off += n
	}
}

func (l *lexer) advance() rune {
	r, n := utf8.DecodeRuneInString(l.src[l.off:])
	l.off += n
	if r == '\n' {
		l.line++
		l.col = 1
	} else {
		l.col++
	}
	return r
}

func lex(src string) ([]token, *Error) {
	l := &lexer{src: src, line: 1, col: 1, toks: make([]token, 0, len(src)/4+1)}
	for {
		for l.off < len(src) {
			r := l.peekRune(0)
			if !unicode.IsSpace(r) {
				break
			}
			l.advance()
		}
		start := l.pos()
		if l.off >= len(src) {
			l.toks = append(l.toks, token{kind: tEOF, pos: start, end: l.off})
			return l.toks, nil
		}
		r, n := utf8.DecodeRuneInString(src[l.off:])
		if r == utf8.RuneError && n == 1 {
			return nil, errorf(start, "invalid UTF-8 encoding")
		}
		tok := token{pos: start}
		switch {
		case isIdentStart(r):
			for l.off < len(src) && isIdentRune(l.peekRune(0)) {
				l.advance()
			}
			tok.kind, tok.text = tIdent, src[start.Offset:l.off]
		case r >= '0' && r <= '9' || r == '.' && isDigit(l.peekRune(1)):
			if err := l.number(&tok); err != nil {
				return nil, err
			}
		case r == '\'' || r == '"':
			if err := l.str(&tok, r); err != nil {
				return nil, err
			}
		case r == '[' && l.peekRune(1) == '[':
			rest := src[l.off+2:]
			i := strings.Index(rest, "]]")
			if i < 0 {
				return nil, errorf(start, "unterminated [[ name: missing ']]'")
			}
			name := rest[:i]
			if name == "" {
				return nil, errorf(start, "empty [[ ]] name")
			}
			if !utf8.ValidString(name) {
				return nil, errorf(start, "invalid UTF-8 encoding")
			}
			for l.off < start.Offset+2+i+2 {
				l.advance()
			}
			tok.kind, tok.text = tBracketName, name
		default:
			l.advance()
			next := l.peekRune(0)
			two := func(k tokKind) { l.advance(); tok.kind = k }
			switch r {
			case '(':
				tok.kind = tLParen
			case ')':
				tok.kind = tRParen
			case '[':
				tok.kind = tLBrack
			case ']':
				tok.kind = tRBrack
			case ',':
				tok.kind = tComma
			case '.':
				tok.kind = tDot
			case '*':
				tok.kind = tStar
			case '+':
				tok.kind = tPlus
			case '-':
				tok.kind = tMinus
			case '/':
				tok.kind = tSlash
			case '%':
				tok.kind = tPercent
			case '=':
				tok.kind = tEq
			case '!':
				if next != '=' {
					return nil, errorf(start, "unexpected '!' (use != or NOT)")
				}
				two(tNe)
			case '<':
				switch next {
				case '=':
					two(tLe)
				case '>':
					two(tNe)
				default:
					tok.kind = tLt
				}
			case '>':
				if next == '=' {
					two(tGe)
				} else {
					tok.kind = tGt
				}
			default:
				return nil, errorf(start, "unexpected character %s", quoteRune(r))
			}
		}
		tok.end = l.off
		l.toks = append(l.toks, tok)
	}
}

func isDigit(r rune) bool    { return r >= '0' && r <= '9' }
func isHexDigit(r rune) bool { return isDigit(r) || r >= 'a' && r <= 'f' || r >= 'A' && r <= 'F' }

func quoteRune(r rune) string {
	if r < 0x20 || r == 0x7f || !unicode.IsPrint(r) {
		return "U+" + strings.ToUpper(strconv.FormatInt(int64(r), 16))
	}
	return "'" + string(r) + "'"
}

// number lexes a decimal (12, 1.5, .5, 1e-3) or hexadecimal (0x1F) literal. The documented
// grammar has decimal_literal, "a float expressed in decimal notation", and
// hexadecimal_literal, "the string '0x' followed by a string of hexadecimal digits"
// (https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-query-language): an exponent,
// a leading '.' and a 0X prefix are marked undocumented.
func (l *lexer) number(tok *token) *Error {
	start := l.pos()
	tok.kind = tNumber
	if l.peekRune(0) == '0' && (l.peekRune(1) == 'x' || l.peekRune(1) == 'X') {
		if l.peekRune(1) == 'X' {
			tok.undoc = undocumentedf(start, "hexadecimal prefix 0X is not in IoT Hub's documented query language (write 0x)")
		}
		l.advance()
		l.advance()
		digits := l.off
		for isHexDigit(l.peekRune(0)) {
			l.advance()
		}
		if l.off == digits {
			return errorf(start, "invalid hexadecimal number: no digits after 0x")
		}
		if r := l.peekRune(0); isIdentRune(r) || r == '.' {
			return errorf(start, "invalid number %q", l.src[start.Offset:l.off+utf8.RuneLen(r)])
		}
		u, err := strconv.ParseUint(l.src[digits:l.off], 16, 64)
		if err != nil {
			return errorf(start, "number %s is out of range", l.src[start.Offset:l.off])
		}
		tok.num = float64(u)
		return nil
	}
	leadingDot := l.peekRune(0) == '.'
	for isDigit(l.peekRune(0)) {
		l.advance()
	}
	if l.peekRune(0) == '.' && isDigit(l.peekRune(1)) {
		l.advance()
		for isDigit(l.peekRune(0)) {
			l.advance()
		}
	}
	exponent := false
	if r := l.peekRune(0); r == 'e' || r == 'E' {
		s := l.peekRune(1)
		if isDigit(s) || (s == '+' || s == '-') && isDigit(l.peekRune(2)) {
			exponent = true
			l.advance()
			l.advance()
			for isDigit(l.peekRune(0)) {
				l.advance()
			}
		}
	}
	if r := l.peekRune(0); isIdentRune(r) {
		return errorf(start, "invalid number %q", l.src[start.Offset:l.off+utf8.RuneLen(r)])
	}
	text := l.src[start.Offset:l.off]
	f, err := strconv.ParseFloat(text, 64)
	if err != nil {
		return errorf(start, "number %s is out of range", text)
	}
	tok.num = f
	switch {
	case exponent:
		tok.undoc = undocumentedf(start, "number %s with an exponent is not in IoT Hub's documented query language (write it in plain decimal%s)", text, plainHint(f))
	case leadingDot:
		tok.undoc = undocumentedf(start, "number %s without a digit before the point is not in IoT Hub's documented query language (write %s)", text, formatNumber(f))
	}
	return nil
}

// plainHint is ": <f in plain decimal>" when that is short enough to read, else "".
func plainHint(f float64) string {
	if s := formatNumber(f); len(s) <= 24 {
		return ": " + s
	}
	return ""
}

// str lexes a quoted string. Escapes: \' \" \\ \/ \b \f \n \r \t \uXXXX
// (surrogate pairs combine); a doubled quote stands for itself. The documented grammar
// allows only \' \" \\ and \uXXXX (string_literal, iot-hub-devguide-query-language): the
// first other escape or doubled quote marks the token undocumented.
func (l *lexer) str(tok *token, q rune) *Error {
	start := l.pos()
	l.advance()
	var b strings.Builder
	mark := func(e *Error) {
		if tok.undoc == nil {
			tok.undoc = e
		}
	}
	for {
		if l.off >= len(l.src) {
			return errorf(start, "unterminated string: missing closing %c", q)
		}
		escPos := l.pos()
		r, n := utf8.DecodeRuneInString(l.src[l.off:])
		if r == utf8.RuneError && n == 1 {
			return errorf(escPos, "invalid UTF-8 encoding")
		}
		l.advance()
		if r == q {
			if l.peekRune(0) == q {
				mark(undocumentedf(escPos, "a doubled quote %c%c inside a string is not in IoT Hub's documented query language (write \\%c)", q, q, q))
				l.advance()
				b.WriteRune(q)
				continue
			}
			break
		}
		if r != '\\' {
			b.WriteRune(r)
			continue
		}
		e := l.peekRune(0)
		if e < 0 {
			return errorf(start, "unterminated string: missing closing %c", q)
		}
		l.advance()
		if strings.ContainsRune(`/bfnrt`, e) {
			mark(undocumentedf(escPos, "string escape \\%c is not in IoT Hub's documented query language (strings allow only \\' \\\" \\\\ and \\uXXXX; write %s)", e, escapeAdvice(e)))
		}
		switch e {
		case '\'', '"', '\\', '/':
			b.WriteRune(e)
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'u':
			u, ok := l.hex4()
			if !ok {
				return errorf(escPos, `invalid \u escape: want four hexadecimal digits`)
			}
			if utf16.IsSurrogate(rune(u)) {
				lo, ok := rune(-1), false
				if l.peekRune(0) == '\\' && l.peekRune(1) == 'u' {
					l.advance()
					l.advance()
					var v uint64
					v, ok = l.hex4()
					lo = rune(v)
				}
				c := utf16.DecodeRune(rune(u), lo)
				if !ok || c == unicode.ReplacementChar {
					return errorf(escPos, `invalid \u escape: unpaired surrogate`)
				}
				b.WriteRune(c)
				continue
			}
			b.WriteRune(rune(u))
		default:
			return errorf(escPos, `invalid escape \%c in string`, e)
		}
	}
	tok.kind, tok.text = tString, b.String()
	return nil
}

// escapeAdvice is the documented way to write what the JSON escape \e stands for.
func escapeAdvice(e rune) string {
	codes := map[rune]string{'/': "/ as is", 'b': `\u0008`, 'f': `\u000c`, 'n': `\u000a`, 'r': `\u000d`, 't': `\u0009`}
	return codes[e]
}

func (l *lexer) hex4() (uint64, bool) {
	if l.off+4 > len(l.src) {
		return 0, false
	}
	for i := 0; i < 4; i++ {
		if !isHexDigit(rune(l.src[l.off+i])) {
			return 0, false
		}
	}
	v, _ := strconv.ParseUint(l.src[l.off:l.off+4], 16, 32)
	for i := 0; i < 4; i++ {
		l.advance()
	}
	return v, true
}
