package schema

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/iotplan/iotplan/internal/query"
)

// target evaluates and parses a target attribute. ok is false when the
// target is unusable (reported, or unknown because of an earlier error).
func (l *loader) target(a *hcl.Attribute, ph phase, ctx *hcl.EvalContext) (e query.Expr, src string, sensitive, ok bool) {
	v, good := l.eval(a.Expr, ph, ctx)
	if !good {
		return nil, "", false, false
	}
	v, marks := v.UnmarkDeep()
	sensitive = len(marks) > 0
	if v.IsNull() {
		l.diags = append(l.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Missing target",
			Detail:   `target is null. It must be a query condition such as "deviceId IN ['door-1']", or "*" for every device.`,
			Subject:  a.Expr.Range().Ptr(),
		})
		return nil, "", false, false
	}
	// Strictly a string: a number or bool would convert, and then parse as
	// a condition nobody meant.
	if v.Type() != cty.String {
		l.diags = append(l.diags, attrTypeDiag(a, "a query condition string"))
		return nil, "", false, false
	}
	src = v.AsString()
	if strings.TrimSpace(src) == "" {
		l.diags = append(l.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Empty target",
			Detail:   `target selects devices with a query condition, such as "deviceId IN ['door-1']". Use "*" to select every device.`,
			Subject:  a.Expr.Range().Ptr(),
		})
		return nil, "", false, false
	}
	// Parse, then check what parsing alone does not (property paths,
	// function arguments, the hub's length limit), so that every mistake in
	// a target is found at load time, located in the file.
	e, err := query.ParseCondition(src)
	if err == nil {
		_, err = query.CompileCondition(e)
	}
	if err == nil {
		err = query.CheckCondition(e)
	}
	if err != nil {
		l.diags = append(l.diags, l.queryDiag(a.Expr, src, err, sensitive))
		return nil, "", false, false
	}
	return e, src, sensitive, true
}

// queryDiag turns a query parse error into a diagnostic pointing into the
// .hcl file. When the attribute is a plain quoted string, the query text is
// the source text between the quotes, so the error's byte offset maps to a
// file position directly; otherwise (escapes, interpolation, references)
// the whole expression is the subject and the detail gives the position.
//
// A target built from a sensitive value gets neither the query text nor the
// parser's message (which may quote a token of it) in its detail.
func (l *loader) queryDiag(expr hcl.Expression, src string, err error, sensitive bool) *hcl.Diagnostic {
	var qe *query.Error
	if sensitive {
		detail := "The target query is invalid. It is not shown because it uses a sensitive value."
		if errors.As(err, &qe) {
			detail = fmt.Sprintf("The target query is invalid at line %d, column %d. It is not shown because it uses a sensitive value.", qe.Pos.Line, qe.Pos.Col)
		}
		return &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid target query",
			Detail:   detail,
			Subject:  expr.Range().Ptr(),
		}
	}
	if !errors.As(err, &qe) {
		return &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid target query",
			Detail:   err.Error(),
			Subject:  expr.Range().Ptr(),
		}
	}
	rng := expr.Range()
	if sub, ok := l.literalSubrange(rng, src, qe.Pos.Offset); ok {
		return &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid target query",
			Detail:   upperFirst(qe.Msg) + ".",
			Subject:  &sub,
			Context:  rng.Ptr(),
		}
	}
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Invalid target query",
		Detail:   queryDetail(qe, src),
		Subject:  rng.Ptr(),
	}
}

// literalSubrange maps a byte offset in src to a one-character range in the
// file, when the expression's source holds src verbatim: a quoted string
// without escapes or interpolation ("..."), or a plain heredoc (<<EOT).
func (l *loader) literalSubrange(rng hcl.Range, src string, off int) (hcl.Range, bool) {
	f := l.parser.Files()[rng.Filename]
	if f == nil || off < 0 || off > len(src) {
		return hcl.Range{}, false
	}
	text := f.Bytes
	if rng.Start.Byte < 0 || rng.End.Byte > len(text) || rng.Start.Byte >= rng.End.Byte {
		return hcl.Range{}, false
	}
	exprSrc := string(text[rng.Start.Byte:rng.End.Byte])
	// The position where src begins in the file.
	var at hcl.Pos
	switch {
	case exprSrc == `"`+src+`"` && !strings.Contains(src, "\n"):
		at = hcl.Pos{Line: rng.Start.Line, Column: rng.Start.Column + 1, Byte: rng.Start.Byte + 1}
	case strings.HasPrefix(exprSrc, "<<") && !strings.HasPrefix(exprSrc, "<<-"):
		nl := strings.IndexByte(exprSrc, '\n')
		if nl < 0 {
			return hcl.Range{}, false
		}
		marker := strings.TrimSpace(exprSrc[2:nl])
		body := exprSrc[nl+1:]
		if !strings.HasPrefix(body, src) || strings.TrimSpace(body[len(src):]) != marker {
			return hcl.Range{}, false
		}
		at = hcl.Pos{Line: rng.Start.Line + 1, Column: 1, Byte: rng.Start.Byte + nl + 1}
	default:
		return hcl.Range{}, false
	}
	before := src[:off]
	start := hcl.Pos{Byte: at.Byte + off}
	if i := strings.LastIndexByte(before, '\n'); i >= 0 {
		start.Line = at.Line + strings.Count(before, "\n")
		start.Column = 1 + utf8.RuneCountInString(before[i+1:])
	} else {
		start.Line = at.Line
		start.Column = at.Column + utf8.RuneCountInString(before)
	}
	// One character at the error, or what follows the text at its end.
	size := 1
	if off < len(src) {
		_, size = utf8.DecodeRuneInString(src[off:])
	}
	end := hcl.Pos{Line: start.Line, Column: start.Column + 1, Byte: start.Byte + size}
	return hcl.Range{Filename: rng.Filename, Start: start, End: end}, true
}

// queryLine is the query line holding pos, for details that cannot point
// into the file. Long lines are cut around the position.
func queryLine(src string, pos query.Pos) string {
	lines := strings.Split(src, "\n")
	if pos.Line < 1 || pos.Line > len(lines) {
		return src
	}
	line := lines[pos.Line-1]
	runes := []rune(line)
	col := pos.Col - 1
	if col < 0 {
		col = 0
	}
	if col > len(runes) {
		col = len(runes)
	}
	from, to := 0, len(runes)
	if to-from > 100 {
		from = max(0, col-50)
		to = min(len(runes), from+100)
	}
	s := string(runes[from:to])
	if from > 0 {
		s = "…" + s
	}
	if to < len(runes) {
		s += "…"
	}
	return s
}

// queryDetail is a query error's message with its position in the query
// text, for when the subject cannot point at the exact spot.
func queryDetail(qe *query.Error, src string) string {
	d := fmt.Sprintf("%s, at line %d, column %d of the query text", upperFirst(qe.Msg), qe.Pos.Line, qe.Pos.Col)
	if line := queryLine(src, qe.Pos); strings.TrimSpace(line) != "" {
		return d + ":\n  " + line
	}
	return d + "."
}
