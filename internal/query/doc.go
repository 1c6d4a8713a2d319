// Package query implements the Azure IoT Hub query language used by
// POST /devices/query and by job queryConditions: a lexer and parser to a
// typed AST, positioned errors, a canonical printer, builders that compose
// conditions without string concatenation, and an evaluator over
// JSON-decoded twin documents and devices.jobs rows with the hub's
// three-valued (true / false / undefined) semantics.
//
// Typical use:
//
//	e, err := query.ParseCondition(target)      // "*" means every device
//	c, err := query.CompileCondition(e)          // once
//	if c.Match(twin) { ... }                     // per twin, no allocation for simple comparisons
//
//	q, err := query.Parse("SELECT properties.reported.fw AS fw, COUNT() AS n FROM devices GROUP BY properties.reported.fw")
//	p, err := query.Compile(q)
//	rows, err := p.Run(func(yield func(any) bool) { for _, t := range twins { if !yield(t) { return } } })
//
//	cond := query.And(target, query.Not(query.Eq(query.P("properties", "desired", "floor"), 3)))
//	text := query.Format(cond) // canonical, quoted, [[bracketed]] where needed
//
// A compiled Condition or Program is immutable and safe for concurrent use;
// each Run keeps its own state.
//
// Dialects: Parse and ParseCondition accept the Documented dialect, what
// Microsoft documents for twin and job queries; ParseDialect and
// ParseConditionDialect take Extended for the larger language the local hub
// accepted before (IS_STRING, ENDSWITH, TOP(n), 1e3, ...). An Extended-only
// construct is a positioned *Error wrapping ErrUndocumented. Compile and
// CompileCondition compile trees of either dialect; CheckCondition and
// CheckQuery (SelectBuilder.Check) hold composed trees to the Documented
// dialect, and Format writes Documented text (plain decimal numbers,
// documented escapes) for them.
//
// All parse and compile errors are *Error, with a Pos (byte offset, 1-based
// line and rune column) into the source text; errors about nodes made by
// the builder have the zero position (0:0). docs/query.md lists what each
// dialect supports, with sources, and every choice made where the hub's
// documentation is silent.
//
// Tests: the default `go test ./internal/query` replays the fuzz corpus in
// testdata/fuzz/FuzzParse. Longer runs:
//
//	go test -run='^$' -fuzz=FuzzParse -fuzztime=5m ./internal/query
//	go test -run='^$' -bench=. ./internal/query   # builds a 1,000,000-twin fleet (~2 GB)
package query
