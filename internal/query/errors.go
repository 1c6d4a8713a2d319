package query

import "fmt"

// Limits. MaxLength is the hub's documented limit on query text; MaxDepth and
// MaxNodes bound the work a single query can ask of the parser and evaluator
// (the hub does not document its own values for these).
const (
	MaxLength = 8192 // characters (UTF-16 code units, as the hub's .NET front end counts them)
	MaxDepth  = 64   // nesting depth of the expression tree
	MaxNodes  = 2048 // expression nodes (operators, operands, array elements)
)

// TextLength is the length of query text as the hub counts it against MaxLength: UTF-16 code
// units, as its .NET front end sees them (a character outside the Basic Multilingual Plane
// counts two).
func TextLength(s string) int {
	n := 0
	for _, r := range s {
		if r >= 0x10000 {
			n += 2
		} else {
			n++
		}
	}
	return n
}

// Pos is a position in query text. Offset is a byte offset into the source;
// Line and Col are 1-based, Col counting runes. Expressions made with the
// builder have the zero Pos.
type Pos struct{ Offset, Line, Col int }

func (p Pos) String() string { return fmt.Sprintf("%d:%d", p.Line, p.Col) }

// Error is the only error type returned by parsing and compiling. A caller
// embedding a condition in another file (an HCL attribute, say) can add
// Pos.Line/Col to the attribute's start to point at the exact spot.
type Error struct {
	Pos Pos
	Msg string

	undocumented bool // the Documented dialect rejects it, the Extended one accepts it
}

func (e *Error) Error() string { return fmt.Sprintf("query: %d:%d: %s", e.Pos.Line, e.Pos.Col, e.Msg) }

// Unwrap returns ErrUndocumented for a construct only the Extended dialect accepts, else nil.
func (e *Error) Unwrap() error {
	if e.undocumented {
		return ErrUndocumented
	}
	return nil
}

func errorf(pos Pos, format string, args ...any) *Error {
	return &Error{Pos: pos, Msg: fmt.Sprintf(format, args...)}
}
