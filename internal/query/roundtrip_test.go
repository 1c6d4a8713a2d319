package query

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// gen generates random valid expression trees in the shape the parser
// produces (no minus folded into a literal twice, AND/OR with 2+ terms).
type gen struct {
	r          *rand.Rand
	paths      []Path         // if set, paths are drawn from here
	lits       []*LiteralExpr // if set, literals are drawn from here
	documented bool           // only the Documented dialect's constructs
}

var genNames = []string{"tags", "properties", "desired", "reported", "deviceId", "Status", "x", "$metadata",
	"_a1", "café", "group", "GROUP", "select", "in", "Not", "my key", "9lives", "a-b", "a.b", "it's", "[x", "x]y", "ü ü", "tab\tkey", "null"}

var genStrings = []string{"", "a", "US", "it's", `back\slash`, `"dq"`, "line\nbreak", "\x00\x1f\x7f", "é😀", "[[x]]", "a''b", " ", "\u2028"}

func (g gen) path() Path {
	if len(g.paths) > 0 {
		return g.paths[g.r.IntN(len(g.paths))]
	}
	p := make(Path, 1+g.r.IntN(4))
	for i := range p {
		p[i] = genNames[g.r.IntN(len(genNames))]
	}
	return p
}

func (g gen) number() float64 {
	switch g.r.IntN(6) {
	case 0:
		return float64(g.r.IntN(100))
	case 1:
		return -float64(g.r.IntN(1 << 20))
	case 2:
		return g.r.NormFloat64() * 1e6
	case 3:
		return math.Float64frombits(g.r.Uint64()&^(0x7ff<<52) | uint64(g.r.IntN(0x7fe)+1)<<52) // any finite
	case 4:
		return 0x1F
	}
	return g.r.Float64()
}

func (g gen) literal() Expr {
	if len(g.lits) > 0 {
		return g.lits[g.r.IntN(len(g.lits))]
	}
	switch g.r.IntN(6) {
	case 0:
		return &LiteralExpr{Kind: LitString, Str: genStrings[g.r.IntN(len(genStrings))]}
	case 1, 2:
		return &LiteralExpr{Kind: LitNumber, Num: g.number()}
	case 3:
		return &LiteralExpr{Kind: LitBool, Bool: g.r.IntN(2) == 0}
	case 4:
		return &LiteralExpr{Kind: LitNull}
	}
	return &LiteralExpr{Kind: LitUndefined}
}

func (g gen) array(depth int) Expr {
	a := &ArrayExpr{Elems: []Expr{}}
	n := g.r.IntN(4)
	if g.documented {
		n++ // no empty arrays
	}
	for i := n; i > 0; i-- {
		if depth > 0 && g.r.IntN(5) == 0 {
			a.Elems = append(a.Elems, g.array(depth-1))
		} else {
			a.Elems = append(a.Elems, g.literal())
		}
	}
	return a
}

func (g gen) expr(depth int) Expr {
	if depth <= 0 {
		if g.r.IntN(2) == 0 {
			return &RefExpr{Path: g.path()}
		}
		return g.literal()
	}
	switch g.r.IntN(9) {
	case 0, 1:
		op := []Op{OpAnd, OpOr}[g.r.IntN(2)]
		l := &LogicalExpr{Op: op}
		for i := 2 + g.r.IntN(3); i > 0; i-- {
			l.Terms = append(l.Terms, g.expr(depth-1))
		}
		return l
	case 2:
		return &UnaryExpr{Op: OpNot, X: g.expr(depth - 1)}
	case 3:
		x := g.expr(depth - 1)
		if lit, ok := x.(*LiteralExpr); ok && lit.Kind == LitNumber || g.documented {
			return x // the parser folds -<number> into the literal; no unary minus in Documented
		}
		return &UnaryExpr{Op: OpNeg, X: x}
	case 4, 5:
		ops := []Op{OpEq, OpNe, OpLt, OpLe, OpGt, OpGe, OpAdd, OpSub, OpMul, OpDiv, OpMod}
		return &BinaryExpr{Op: ops[g.r.IntN(len(ops))], L: g.expr(depth - 1), R: g.expr(depth - 1)}
	case 6:
		return &BinaryExpr{Op: []Op{OpIn, OpNin}[g.r.IntN(2)], L: g.expr(depth - 1), R: g.array(2)}
	case 7:
		names := []string{"IS_DEFINED", "IS_NULL", "IS_BOOL", "IS_NUMBER", "IS_STRING", "IS_OBJECT", "IS_ARRAY", "IS_PRIMITIVE", "STARTSWITH", "ENDSWITH"}
		if g.documented {
			names = []string{"IS_DEFINED", "STARTSWITH"}
		}
		c := &CallExpr{Func: names[g.r.IntN(len(names))]}
		for i := functions[c.Func]; i > 0; i-- {
			c.Args = append(c.Args, g.expr(depth-1))
		}
		return c
	}
	return g.expr(0)
}

func (g gen) query() *Query {
	q := &Query{From: Source(g.r.IntN(2))}
	if g.r.IntN(3) == 0 {
		q.HasTop, q.Top = true, g.r.IntN(1000)
	}
	if g.r.IntN(4) != 0 {
		q.Where = g.expr(4)
	}
	switch g.r.IntN(3) {
	case 1:
		for i := 1 + g.r.IntN(3); i > 0; i-- {
			q.Select = append(q.Select, Projection{Expr: &RefExpr{Path: g.path()}, Alias: fmt.Sprintf("c%d", i)})
		}
	case 2:
		key := g.path()
		if g.documented {
			q.HasTop, q.From = false, Devices // no TOP with GROUP BY, no GROUP BY on devices.modules
		}
		q.GroupBy = &RefExpr{Path: key}
		q.Select = append(q.Select, Projection{Expr: &RefExpr{Path: key}, Alias: genNames[g.r.IntN(len(genNames))]},
			Projection{Expr: &AggregateExpr{Func: "COUNT"}, Alias: "n"},
			Projection{Expr: &AggregateExpr{Func: "MAX", Arg: &RefExpr{Path: g.path()}}})
	}
	return q
}

// TestRoundTripGenerated: for generated trees of each dialect, Format
// re-parses in that dialect to an equal tree and the same text, and the tree
// compiles and evaluates without panic. Documented trees pass CheckCondition
// and CheckQuery.
func TestRoundTripGenerated(t *testing.T) {
	for _, d := range []Dialect{Documented, Extended} {
		t.Run(d.String(), func(t *testing.T) {
			g := gen{r: rand.New(rand.NewPCG(1, 2)), documented: d == Documented}
			roundTripConditions(t, g, d)
			roundTripQueries(t, g, d)
		})
	}
}

func roundTripConditions(t *testing.T, g gen, d Dialect) {
	fleet := decodeDocs(t, fleetJSON)
	for i := 0; i < 5000; i++ {
		e := g.expr(1 + g.r.IntN(5))
		text := Format(e)
		if TextLength(text) > MaxLength {
			continue // plain decimal of a tiny or huge number is long
		}
		back, err := ParseConditionDialect(text, d)
		if err != nil {
			t.Fatalf("ParseConditionDialect(Format(e), %s) failed: %v\n%s", d, err, text)
		}
		if d == Documented {
			if err := CheckCondition(e); err != nil {
				t.Fatalf("CheckCondition(%s): %v", text, err)
			}
		}
		if !Equal(back, e) {
			t.Fatalf("round trip changed the tree:\n%s\n%s", text, Format(back))
		}
		if again := Format(back); again != text {
			t.Fatalf("Format not stable:\n%s\n%s", text, again)
		}
		c, err := CompileCondition(e)
		if err != nil {
			t.Fatalf("CompileCondition(%s): %v", text, err)
		}
		for _, doc := range fleet {
			c.Match(doc)
		}
	}
}

func roundTripQueries(t *testing.T, g gen, d Dialect) {
	fleet := decodeDocs(t, fleetJSON)
	for i := 0; i < 2000; i++ {
		q := g.query()
		if checkQuery(q) != nil || TextLength(q.String()) > MaxLength {
			continue // e.g. a generated duplicate alias
		}
		text := q.String()
		back, err := ParseDialect(text, d)
		if err != nil {
			t.Fatalf("ParseDialect(q.String(), %s) failed: %v\n%s", d, err, text)
		}
		if d == Documented {
			if err := CheckQuery(q); err != nil {
				t.Fatalf("CheckQuery(%s): %v", text, err)
			}
		}
		if !EqualQuery(back, q) || back.String() != text {
			t.Fatalf("statement round trip changed it:\n%s\n%s", text, back)
		}
		p, err := Compile(back)
		if err != nil {
			t.Fatalf("Compile(%s): %v", text, err)
		}
		if _, err := p.Run(source(fleet)); err != nil {
			t.Fatalf("Run(%s): %v", text, err)
		}
	}
}

// fuzzSeeds are committed to testdata/fuzz/FuzzParse (regenerate with
// IOTPLAN_WRITE_FUZZ_SEEDS=1 go test -run TestWriteFuzzSeeds ./internal/query).
var fuzzSeeds = []string{
	"*",
	"SELECT * FROM devices",
	"SELECT * FROM devices WHERE tags.location.region = 'US' AND properties.reported.telemetryConfig.sendFrequencyInSecs >= 60",
	"SELECT * FROM devices WHERE properties.reported.connectivity IN ['wired', 'wifi']",
	"select * from devices where is_defined(properties.reported.connectivity)",
	"SELECT properties.reported.telemetryConfig.status AS status, COUNT() AS numberOfDevices FROM devices GROUP BY properties.reported.telemetryConfig.status",
	"SELECT COUNT() as totalNumberOfDevices FROM devices",
	"SELECT DeviceId, LastActivityTime FROM devices WHERE status = 'enabled' AND connectionState = 'Disconnected'",
	"SELECT * FROM devices.modules WHERE properties.reported.status = 'scanning' AND deviceId IN ['device1', 'device2']",
	"SELECT * FROM devices.jobs WHERE devices.jobs.deviceId = 'myDeviceId' AND devices.jobs.jobType = 'scheduleUpdateTwin' AND devices.jobs.status = 'completed' AND devices.jobs.createdTimeUtc > '2016-09-01'",
	"SELECT * FROM devices WHERE tags.[[group]].name = 'some_value'",
	"SELECT * FROM devices WHERE STARTSWITH(devices.deviceId, 'test')",
	"SELECT TOP(5) tags.floor AS f, AVG(properties.reported.temp), MIN(x), MAX(y), SUM(z) FROM devices GROUP BY tags.floor",
	"tags.x IN ['a' floor]",
	"NOT (a = 1 OR b <> 2) AND -c * 3 % 2 >= 0x1F - .5e-3",
	`x = "it's" OR x = 'a\'b' OR x = 'a''b' OR x = '\u00e9\ud83d\ude00\n\t\\\/'`,
	"x NIN [ [1, [2]], -3, null, true, false, undefined, []]",
	"[[odd key]].[[group]].ok.$metadata.$lastUpdated > '2020'",
	"IS_NULL(a) OR IS_BOOL(a) OR IS_NUMBER(a) OR IS_STRING(a) OR IS_OBJECT(a) OR IS_ARRAY(a) OR IS_PRIMITIVE(a) OR ENDSWITH(a, 'z')",
	"((((a))))",
	"- - - 5 = a",
	"SELECT * FROM devices WHERE a = 1 ORDER BY a",
	"SELECT * FROM devices WHERE tags.a[0] = 1",
	"SELECT * FROM devices WHERE x = 'open",
	"SELECT tags.a, COUNT() FROM devices",
	"SELECT * FROM devices.jobs WHERE deviceId = 'x'",
	"SELECT\n*\r\nFROM devices\tWHERE tags.café = 'ü' AND ]",
	"a = 1e999 OR b = 0x OR c = 12ab",
	"CONTAINS(a, 'b') OR STARTS_WITH(a, 'b')",
	"tags.[[unterminated",
	"SELECT TOP(2) tags.x AS x, COUNT() AS n FROM devices GROUP BY tags.x",
	"x = 2.5e+06 OR x = .5 OR x = 0X1f OR x = -0 OR x = 0.0000001",
	`x = 'it''s' OR x = "tab\there\/" OR x = 'ok\u0009'`,
	"deviceId IN [] OR -tags.offset < 3 OR - -3 = a",
	"IS_STRING(tags.x) AND ENDSWITH(deviceId, 'x') OR tags.s = 'IS_STRING(' OR tags.[[IS_NULL(]] = 1",
	"SELECT moduleId, COUNT() AS n FROM devices.modules GROUP BY moduleId",
}

func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("IOTPLAN_WRITE_FUZZ_SEEDS") == "" {
		t.Skip("set IOTPLAN_WRITE_FUZZ_SEEDS=1 to regenerate testdata/fuzz/FuzzParse")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzParse")
	for i, s := range fuzzSeeds {
		body := fmt.Sprintf("go test fuzz v1\nstring(%q)\n", s)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed%02d", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

var fuzzFleet = func() []map[string]any {
	var docs []map[string]any
	if err := json.Unmarshal([]byte(fleetJSON), &docs); err != nil {
		panic(err)
	}
	return docs
}()

// FuzzParse: no input panics; every error is a positioned *Error; in each
// dialect every accepted statement or condition prints to canonical text that
// re-parses to an equal tree and the same text, compiles, and runs. Whatever
// the Documented dialect accepts the Extended one accepts as the same tree,
// and the canonical text of a Documented tree is Documented; where only the
// Extended dialect accepts, the Documented error wraps ErrUndocumented.
//
//	go test -run='^$' -fuzz=FuzzParse -fuzztime=5m ./internal/query
func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		var stmts [2]*Query
		var conds [2]Expr
		for _, d := range []Dialect{Documented, Extended} {
			stmts[d] = fuzzStatement(t, src, d)
			conds[d] = fuzzCondition(t, src, d)
		}
		if stmts[Documented] != nil && (stmts[Extended] == nil || !EqualQuery(stmts[Documented], stmts[Extended])) {
			t.Fatalf("Documented accepts %q, Extended does not accept the same statement", src)
		}
		if conds[Documented] != nil && (conds[Extended] == nil || !Equal(conds[Documented], conds[Extended])) {
			t.Fatalf("Documented accepts %q, Extended does not accept the same condition", src)
		}
		if _, err := Parse(src); err != nil && stmts[Extended] != nil && !errors.Is(err, ErrUndocumented) {
			t.Fatalf("Extended accepts %q; the Documented error does not wrap ErrUndocumented: %v", src, err)
		}
		if _, err := ParseCondition(src); err != nil && conds[Extended] != nil && !errors.Is(err, ErrUndocumented) {
			t.Fatalf("Extended accepts %q; the Documented error does not wrap ErrUndocumented: %v", src, err)
		}
	})
}

// fuzzErr checks that err is a *Error with a position inside src.
func fuzzErr(t *testing.T, src string, err error) {
	var qe *Error
	if !errors.As(err, &qe) {
		t.Fatalf("error %T is not *Error: %v", err, err)
	}
	if qe.Pos.Line < 1 || qe.Pos.Col < 1 || qe.Pos.Offset < 0 || qe.Pos.Offset > len(src) {
		t.Fatalf("error position %+v out of range for %q", qe.Pos, src)
	}
}

// fuzzStatement parses src as a statement in d and, if it is accepted, checks its round trip,
// compiles and runs it; it returns the statement or nil.
func fuzzStatement(t *testing.T, src string, d Dialect) *Query {
	q, err := ParseDialect(src, d)
	if err != nil {
		fuzzErr(t, src, err)
		return nil
	}
	text := q.String()
	if TextLength(text) <= MaxLength { // canonical text can be longer than the source
		back, err := ParseDialect(text, d)
		if err != nil {
			t.Fatalf("ParseDialect(%q, %s) ok but its canonical text fails: %v\n%s", src, d, err, text)
		}
		if !EqualQuery(q, back) || back.String() != text {
			t.Fatalf("round trip changed %q:\n%s\n%s", src, text, back)
		}
		if d == Documented {
			if err := CheckQuery(q); err != nil {
				t.Fatalf("CheckQuery(%s) of a Documented statement: %v", text, err)
			}
		}
	}
	p, err := Compile(q)
	if err != nil {
		t.Fatalf("ParseDialect(%q, %s) ok but Compile fails: %v", src, d, err)
	}
	if _, err := p.Run(source(fuzzFleet)); err != nil {
		t.Fatal(err)
	}
	return q
}

// fuzzCondition is fuzzStatement for a condition.
func fuzzCondition(t *testing.T, src string, d Dialect) Expr {
	e, err := ParseConditionDialect(src, d)
	if err != nil {
		fuzzErr(t, src, err)
		return nil
	}
	text := Format(e)
	if TextLength(text) <= MaxLength {
		back, err := ParseConditionDialect(text, d)
		if err != nil {
			t.Fatalf("ParseConditionDialect(%q, %s) ok but its canonical text fails: %v\n%s", src, d, err, text)
		}
		if !Equal(e, back) || Format(back) != text {
			t.Fatalf("round trip changed %q:\n%s\n%s", src, text, Format(back))
		}
		if d == Documented {
			// CheckCondition also checks property paths (devices.jobs.x is no twin
			// property), so it may refuse what parses, but only what CompileCondition
			// refuses too, and with the same error.
			if err := CheckCondition(e); err != nil {
				if _, cerr := CompileCondition(e); cerr == nil || cerr.Error() != err.Error() {
					t.Fatalf("CheckCondition(%s) of a Documented condition: %v (CompileCondition: %v)", text, err, cerr)
				}
			}
		}
	}
	c, err := CompileCondition(e)
	if err != nil {
		if strings.Contains(err.Error(), "devices.") {
			return e // devices.jobs / devices.modules paths are rejected for twins
		}
		t.Fatalf("ParseConditionDialect(%q, %s) ok but CompileCondition fails: %v", src, d, err)
	}
	for _, doc := range fuzzFleet {
		c.Match(doc)
	}
	return e
}
