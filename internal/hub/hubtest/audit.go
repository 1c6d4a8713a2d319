package hubtest

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/iotplan/iotplan/internal/hub"
	"github.com/iotplan/iotplan/internal/hubclient"
)

// StartAudited is Start with an Audit of every query text the hub receives: when the test
// ends (after the hub has stopped) it fails the test for each text the hub rejected or that
// fails Lint. Tests print what iotplan sent with Audit.Texts.
func StartAudited(t testing.TB, fleet string) (*hub.Hub, *hubclient.Client, *Audit) {
	t.Helper()
	return StartAuditedWith(t, hub.Options{}, fleet)
}

// StartAuditedWith is StartAudited with other hub options (StartWith); an OnQuery in opts is
// still called. With QueryDialect query.Extended the hub lets undocumented texts through and
// only Lint is left to catch them, which it does for some: calls of undocumented functions,
// numbers with an exponent or 0x, TOP(n) and TOP with GROUP BY. It misses the rest of what
// the Extended dialect adds (.5, the empty array [], a minus before an expression, JSON's
// extra string escapes and doubled quotes, aggregates and GROUP BY on devices.modules), which
// only the default dialect rejects.
func StartAuditedWith(t testing.TB, opts hub.Options, fleet string) (*hub.Hub, *hubclient.Client, *Audit) {
	t.Helper()
	a := &Audit{}
	// Registered before the hub's own cleanups, so it runs after them: jobs still running
	// at the end of the test report their conditions before the audit reads them.
	t.Cleanup(func() { a.Verify(t) })
	next := opts.OnQuery
	opts.OnQuery = func(ev hub.QueryEvent) {
		a.record(ev)
		if next != nil {
			next(ev)
		}
	}
	h, c := StartWith(t, opts, fleet)
	return h, c, a
}

// Audit records the query texts a hub receives (hub.Options.OnQuery). It is safe for
// concurrent use.
type Audit struct {
	mu     sync.Mutex
	events []hub.QueryEvent
}

func (a *Audit) record(ev hub.QueryEvent) {
	a.mu.Lock()
	a.events = append(a.events, ev)
	a.mu.Unlock()
}

// Events returns what was recorded so far, in order.
func (a *Audit) Events() []hub.QueryEvent {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]hub.QueryEvent(nil), a.events...)
}

// Texts returns the recorded texts from the given sources (all sources when none is given),
// in order, repeats included.
func (a *Audit) Texts(sources ...hub.QuerySource) []string {
	var out []string
	for _, ev := range a.Events() {
		if len(sources) == 0 || slices.Contains(sources, ev.Source) {
			out = append(out, ev.Text)
		}
	}
	return out
}

// Violations are the recorded texts the hub rejected or that fail Lint.
func (a *Audit) Violations() []Violation {
	var out []Violation
	for _, ev := range a.Events() {
		if ev.Err != nil {
			out = append(out, Violation{Kind: Rejected, Source: ev.Source, Text: ev.Text, Offset: -1, Detail: ev.Err.Error()})
		}
		for _, v := range Lint(ev.Text) {
			v.Source = ev.Source
			out = append(out, v)
		}
	}
	return out
}

// Verify fails t (Errorf) once per violation; StartAudited calls it when the test ends.
func (a *Audit) Verify(t testing.TB) {
	t.Helper()
	for _, v := range a.Violations() {
		t.Errorf("hubtest audit: %s", v)
	}
}

// ViolationKind classifies a Violation.
type ViolationKind string

// The kinds of violation.
const (
	// Rejected: the hub refused the text (Detail holds its error).
	Rejected ViolationKind = "rejected by the hub"
	// Function: a call of something other than IS_DEFINED, STARTSWITH, COUNT, AVG, SUM, MIN
	// or MAX.
	Function ViolationKind = "undocumented function"
	// Exponent: a number written with an exponent (1e3); iotplan writes plain decimal.
	Exponent ViolationKind = "number with an exponent"
	// Hex: a number written 0x…; iotplan writes plain decimal.
	Hex ViolationKind = "hexadecimal number"
	// TopGroupBy: TOP in a statement that has GROUP BY.
	TopGroupBy ViolationKind = "TOP with GROUP BY"
	// TopParens: TOP(n).
	TopParens ViolationKind = "TOP(n)"
)

// Violation is one problem with one recorded text.
type Violation struct {
	Kind   ViolationKind
	Source hub.QuerySource // "" from Lint alone
	Text   string
	Offset int    // byte offset in Text of the offending token; -1 for Rejected
	Detail string // what was found, or the hub's error
}

func (v Violation) String() string {
	at := ""
	if v.Offset >= 0 {
		at = fmt.Sprintf(" at offset %d", v.Offset)
	}
	return fmt.Sprintf("%s query %q: %s%s (%s)", v.Source, v.Text, v.Kind, at, v.Detail)
}

// lintFunctions are the names that may be called: the documented function IS_DEFINED,
// STARTSWITH (MicrosoftDocs/azure-docs#110329) and the aggregates of the documented SELECT
// grammar (https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-query-language).
var lintFunctions = []string{"IS_DEFINED", "STARTSWITH", "COUNT", "AVG", "SUM", "MIN", "MAX"}

// lintKeywords are words a '(' may follow without being a call ("NOT (a = 1)").
var lintKeywords = []string{"SELECT", "FROM", "WHERE", "GROUP", "BY", "AS", "AND", "OR", "NOT",
	"IN", "NIN", "TRUE", "FALSE", "NULL", "UNDEFINED"}

// Lint checks a query text for the constructs iotplan must not send, independently of the
// query package's parser: a scanner that skips quoted strings ('…', "…", with backslash
// escapes) and [[bracketed names]], and looks at words, numbers and parentheses. It reports
// calls of anything but IS_DEFINED, STARTSWITH and the aggregates (a word followed by '(',
// any case, spaces allowed between), numbers with an exponent or a 0x prefix, TOP(, and TOP
// in a text that also has GROUP BY.
func Lint(text string) []Violation {
	l := linter{text: text, top: -1}
	l.scan()
	if l.top >= 0 && l.groupBy {
		l.report(TopGroupBy, l.top, "TOP and GROUP BY in one statement")
	}
	return l.out
}

type linter struct {
	text    string
	out     []Violation
	prev    string // the previous word, "" after any other token
	top     int    // offset of the first TOP, -1 if none
	groupBy bool
}

func (l *linter) report(kind ViolationKind, off int, detail string) {
	l.out = append(l.out, Violation{Kind: kind, Text: l.text, Offset: off, Detail: detail})
}

func (l *linter) scan() {
	for i := 0; i < len(l.text); {
		r, n := utf8.DecodeRuneInString(l.text[i:])
		switch {
		case r == '\'' || r == '"':
			i, l.prev = skipQuoted(l.text, i), ""
		case strings.HasPrefix(l.text[i:], "[["):
			i, l.prev = skipBracketed(l.text, i), ""
		case r == '_' || r == '$' || unicode.IsLetter(r):
			i = l.word(i)
		case r < utf8.RuneSelf && isDigit(byte(r)) || r == '.' && i+1 < len(l.text) && isDigit(l.text[i+1]):
			i, l.prev = l.number(i), ""
		case unicode.IsSpace(r):
			i += n
		default:
			i, l.prev = i+n, ""
		}
	}
}

// word looks at the identifier or keyword at i and returns the offset after it.
func (l *linter) word(i int) int {
	j := i
	for j < len(l.text) {
		r, n := utf8.DecodeRuneInString(l.text[j:])
		if r != '_' && r != '$' && !unicode.IsLetter(r) && !unicode.IsDigit(r) {
			break
		}
		j += n
	}
	w := l.text[i:j]
	k := j
	for k < len(l.text) && (l.text[k] == ' ' || l.text[k] == '\t' || l.text[k] == '\n' || l.text[k] == '\r') {
		k++
	}
	call := k < len(l.text) && l.text[k] == '('
	switch {
	case strings.EqualFold(w, "TOP"):
		if l.top < 0 {
			l.top = i
		}
		if call {
			l.report(TopParens, i, w+"(")
		}
	case call && !hasFold(lintFunctions, w) && !hasFold(lintKeywords, w):
		l.report(Function, i, w+"(")
	}
	if strings.EqualFold(w, "BY") && strings.EqualFold(l.prev, "GROUP") {
		l.groupBy = true
	}
	l.prev = w
	return j
}

// number looks at the number at i and returns the offset after it.
func (l *linter) number(i int) int {
	t := l.text
	if t[i] == '0' && i+1 < len(t) && (t[i+1] == 'x' || t[i+1] == 'X') {
		j := i + 2
		for j < len(t) && isHex(t[j]) {
			j++
		}
		l.report(Hex, i, t[i:j])
		return j
	}
	j := i
	for j < len(t) && (isDigit(t[j]) || t[j] == '.') {
		j++
	}
	if j < len(t) && (t[j] == 'e' || t[j] == 'E') {
		k := j + 1
		if k < len(t) && (t[k] == '+' || t[k] == '-') {
			k++
		}
		if k < len(t) && isDigit(t[k]) {
			for k < len(t) && isDigit(t[k]) {
				k++
			}
			l.report(Exponent, i, t[i:k])
			return k
		}
	}
	return j
}

// skipQuoted returns the offset after the string that starts at i; a backslash escapes the
// next character, and an unterminated string runs to the end.
func skipQuoted(t string, i int) int {
	q := t[i]
	for j := i + 1; j < len(t); j++ {
		switch t[j] {
		case '\\':
			j++
		case q:
			return j + 1
		}
	}
	return len(t)
}

// skipBracketed returns the offset after the [[name]] that starts at i.
func skipBracketed(t string, i int) int {
	if k := strings.Index(t[i+2:], "]]"); k >= 0 {
		return i + 2 + k + 2
	}
	return len(t)
}

func hasFold(list []string, w string) bool {
	for _, x := range list {
		if strings.EqualFold(x, w) {
			return true
		}
	}
	return false
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isHex(c byte) bool   { return isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }
