package query

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
)

func TestBuilderFormat(t *testing.T) {
	tests := []struct {
		e    Expr
		want string
	}{
		{All(), "*"},
		{And(), "*"},
		{And(All(), Eq(P("tags", "a"), 1), All()), "tags.a = 1"},
		{Or(), "false"},
		{Or(Eq(P("a"), 1), All()), "*"},
		{Not(All()), "false"},
		{Eq(P("properties", "desired", "building"), "43"), "properties.desired.building = '43'"},
		{Eq(P("tags", "group", "name"), "it's a \\ test"), `tags.[[group]].name = 'it\'s a \\ test'`},
		{Ne(P("tags", "my key"), 43), "tags.[[my key]] != 43"},
		{Lt(P("tags", "select"), 1.5), "tags.[[select]] < 1.5"},
		{Le(P("tags", "9x"), int64(-2)), "tags.[[9x]] <= -2"},
		{Gt(P("tags", "a-b"), json.Number("1e3")), "tags.[[a-b]] > 1000"},
		{Ge(P("tags", "x"), true), "tags.x >= true"},
		{Eq(P("tags", "x"), nil), "tags.x = null"},
		{Eq(P("tags", "x"), "line\nbreak"), `tags.x = 'line\u000abreak'`},
		{In(P("deviceId"), "a", "b"), "deviceId IN ['a', 'b']"},
		{In(P("deviceId"), []string{"a", "b"}), "deviceId IN ['a', 'b']"},
		{Nin(P("tags", "n"), []int{1, 2}), "tags.n NIN [1, 2]"},
		{In(P("deviceId")), "deviceId IN []"},
		{IsDefined(P("tags", "x")), "IS_DEFINED(tags.x)"},
		{Not(IsDefined(P("tags", "x"))), "NOT IS_DEFINED(tags.x)"},
		{Not(Eq(P("a"), 1)), "NOT (a = 1)"},
		{And(call1("IS_STRING", P("a")), call1("IS_NUMBER", P("b")), call1("IS_BOOL", P("c")), call1("IS_NULL", P("d")), call1("IS_OBJECT", P("e")), call1("IS_ARRAY", P("f")), call1("IS_PRIMITIVE", P("g"))),
			"IS_STRING(a) AND IS_NUMBER(b) AND IS_BOOL(c) AND IS_NULL(d) AND IS_OBJECT(e) AND IS_ARRAY(f) AND IS_PRIMITIVE(g)"},
		{And(StartsWith(P("deviceId"), "door-"), &CallExpr{Func: "ENDSWITH", Args: []Expr{Prop(P("deviceId")), Value("-x")}}), "STARTSWITH(deviceId, 'door-') AND ENDSWITH(deviceId, '-x')"},
		// The job composition: (<target>) AND (<drifted>).
		{And(Or(Eq(P("tags", "a"), 1), Eq(P("tags", "b"), 2)), Not(Eq(P("properties", "desired", "x"), 3))),
			"(tags.a = 1 OR tags.b = 2) AND NOT (properties.desired.x = 3)"},
		{And(And(Eq(P("a"), 1), Eq(P("b"), 2)), Eq(P("c"), 3)), "a = 1 AND b = 2 AND c = 3"},
		{Compare(OpGt, Compare(OpMul, Prop(P("t")), Value(2)), Value(50)), "t * 2 > 50"},
	}
	for _, tc := range tests {
		got := Format(tc.e)
		if got != tc.want {
			t.Errorf("Format = %s\n        want %s", got, tc.want)
			continue
		}
		if _, err := CompileCondition(tc.e); err != nil {
			t.Errorf("CompileCondition(%s): %v", got, err)
		}
		back, err := ParseConditionDialect(got, Extended)
		if err != nil {
			t.Errorf("ParseConditionDialect(%s, Extended): %v", got, err)
			continue
		}
		if !Equal(back, tc.e) {
			t.Errorf("ParseCondition(Format(e)) != e for %s", got)
		}
		// The tree check and the text check agree on the Documented dialect.
		_, textErr := ParseCondition(got)
		treeErr := CheckCondition(tc.e)
		if (textErr == nil) != (treeErr == nil) || errors.Is(textErr, ErrUndocumented) != errors.Is(treeErr, ErrUndocumented) {
			t.Errorf("%s: ParseCondition = %v, CheckCondition = %v; want both nil or both ErrUndocumented", got, textErr, treeErr)
		}
	}
}

// TestCheckConditionDialect: CheckCondition rejects what a builder can make
// outside the Documented dialect, with the parser's message.
func TestCheckConditionDialect(t *testing.T) {
	tests := []struct {
		e    Expr
		want string
	}{
		{call1("IS_STRING", P("a")), "query: 0:0: IS_STRING is not in IoT Hub's documented query language for twins and jobs (only IS_DEFINED, and STARTSWITH as reported working); iotplan dev --query-dialect extended accepts it"},
		{Or(Not(call1("IS_NUMBER", P("a"))), Ne(P("a"), 3)), "query: 0:0: IS_NUMBER is not in IoT Hub's documented query language for twins and jobs (only IS_DEFINED, and STARTSWITH as reported working); iotplan dev --query-dialect extended accepts it"},
		{&CallExpr{Func: "ENDSWITH", Args: []Expr{Prop(P("deviceId")), Value("x")}}, "query: 0:0: ENDSWITH is not in IoT Hub's documented query language for twins and jobs (only IS_DEFINED, and STARTSWITH as reported working); iotplan dev --query-dialect extended accepts it"},
		{In(P("deviceId"), []string{}), "query: 0:0: an empty array [] is not in IoT Hub's documented query language (an array constant holds at least one constant); iotplan dev --query-dialect extended accepts it"},
		{&UnaryExpr{Op: OpNeg, X: Prop(P("a"))}, "query: 0:0: a minus sign before an expression is not in IoT Hub's documented query language (only a number constant may be negative); iotplan dev --query-dialect extended accepts it"},
	}
	for _, tc := range tests {
		err := CheckCondition(tc.e)
		if err == nil || err.Error() != tc.want || !errors.Is(err, ErrUndocumented) {
			t.Errorf("CheckCondition(%s) = %v\nwant %s", Format(tc.e), err, tc.want)
		}
		if _, err := CompileCondition(tc.e); err != nil {
			t.Errorf("CompileCondition(%s) = %v; the evaluator runs the Extended dialect", Format(tc.e), err)
		}
	}
	for _, e := range []Expr{All(), IsDefined(P("a")), StartsWith(P("deviceId"), "x"), Eq(P("a"), -2.5e6), In(P("a"), "x")} {
		if err := CheckCondition(e); err != nil {
			t.Errorf("CheckCondition(%s) = %v", Format(e), err)
		}
	}
}

// TestBuilderRejects: bad values never panic; Format shows them and Compile
// rejects them with a clear error.
func TestBuilderRejects(t *testing.T) {
	tests := []struct {
		e        Expr
		text, is string
	}{
		{Eq(P("a"), struct{}{}), "a = <invalid value of type struct {}>", "unsupported constant of Go type struct {}"},
		{Eq(P("a"), []string{"x"}), "a = <invalid value of type []string>", "unsupported constant of Go type []string"},
		{Eq(P("a"), math.NaN()), "a = NaN", "number constant NaN cannot be written"},
		{Eq(P("a"), math.Inf(1)), "a = +Inf", "number constant +Inf cannot be written"},
		{Eq(P("a"), json.Number("x1")), "a = NaN", "cannot be written"},
		{Eq(P("a"), "\xff"), "a = '\uFFFD'", "not valid UTF-8"},
		{Eq(P("a", "x]]y"), 1), "a.[[x]]y]] = 1", "cannot be written in a query"},
		{Eq(P("a", ""), 1), "a.[[]] = 1", "cannot be written in a query"},
		{Eq(P(), 1), " = 1", "empty property path"},
		{And(Eq(P("a"), 1), &AllExpr{}, nil), "a = 1", ""},
		{&LogicalExpr{Op: OpAnd, Terms: []Expr{Eq(P("a"), 1), &AllExpr{}}}, "a = 1 AND *", "'*' (every device) can only be used"},
		{&CallExpr{Func: "LOWER", Args: []Expr{Prop(P("a"))}}, "LOWER(a)", "unknown function LOWER"},
		{&BinaryExpr{Op: OpIn, L: Prop(P("a")), R: Value(1)}, "a IN 1", "IN needs an array constant"},
		// Property paths a condition on devices cannot read (CheckCondition checks them too).
		{Eq(P("devices", "jobs", "status"), "x"), "devices.jobs.status = 'x'", "refers to devices.jobs; query job properties FROM devices.jobs"},
		{And(Eq(P("tags", "a"), 1), Eq(P("devices", "modules", "m", "tags", "b"), 2)), "tags.a = 1 AND devices.modules.m.tags.b = 2", "refers to devices.modules; query module properties FROM devices.modules"},
	}
	for _, tc := range tests {
		if got := Format(tc.e); got != tc.text {
			t.Errorf("Format = %q, want %q", got, tc.text)
		}
		_, err := CompileCondition(tc.e)
		if tc.is == "" {
			if err != nil {
				t.Errorf("CompileCondition(%s): %v", tc.text, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.is) {
			t.Errorf("CompileCondition(%s) = %v, want error containing %q", tc.text, err, tc.is)
		}
		if err := CheckCondition(tc.e); err == nil || !strings.Contains(err.Error(), tc.is) {
			t.Errorf("CheckCondition(%s) = %v, want error containing %q (as CompileCondition)", tc.text, err, tc.is)
		}
	}
	if _, err := CompileCondition(nil); err == nil {
		t.Error("CompileCondition(nil) succeeded")
	}
}

func TestCheckConditionLength(t *testing.T) {
	ids := make([]string, 600)
	for i := range ids {
		ids[i] = strings.Repeat("d", 12)
	}
	e := In(P("deviceId"), ids)
	if _, err := CompileCondition(e); err != nil {
		t.Fatalf("CompileCondition: %v", err)
	}
	err := CheckCondition(e)
	if err == nil || !strings.Contains(err.Error(), "the limit is 8192") {
		t.Fatalf("CheckCondition = %v, want the length limit", err)
	}
	if err := CheckCondition(In(P("deviceId"), ids[:100])); err != nil {
		t.Fatalf("CheckCondition(100 ids) = %v", err)
	}
}

func TestSelectBuilder(t *testing.T) {
	status := P("properties", "reported", "telemetryConfig", "status")
	tests := []struct {
		b    *SelectBuilder
		want string
	}{
		{NewSelect(), "SELECT * FROM devices"},
		{Select(Modules).Where(Eq(P("moduleId"), "$edgeAgent")), "SELECT * FROM devices.modules WHERE moduleId = '$edgeAgent'"},
		{Select(Jobs).Where(Eq(P("devices", "jobs", "jobId"), "j1")), "SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 'j1'"},
		{NewSelect().Top(3).Project(P("deviceId"), "").Where(Eq(P("status"), "enabled")), "SELECT TOP 3 deviceId FROM devices WHERE status = 'enabled'"},
		{NewSelect().Project(status, "status").Count("numberOfDevices").GroupBy(status),
			"SELECT properties.reported.telemetryConfig.status AS status, COUNT() AS numberOfDevices FROM devices GROUP BY properties.reported.telemetryConfig.status"},
		{NewSelect().Count("n").Avg(P("t"), "a").Sum(P("t"), "s").Min(P("t"), "lo").Max(P("t"), "hi").Where(All()),
			"SELECT COUNT() AS n, AVG(t) AS a, SUM(t) AS s, MIN(t) AS lo, MAX(t) AS hi FROM devices"},
		{NewSelect().From(Devices).Project(P("tags", "group"), "group").Count("n").GroupBy(P("tags", "group")),
			"SELECT tags.[[group]] AS [[group]], COUNT() AS n FROM devices GROUP BY tags.[[group]]"},
	}
	for _, tc := range tests {
		q := tc.b.Query()
		if q.String() != tc.want || tc.b.String() != tc.want {
			t.Errorf("got  %s\nwant %s", q, tc.want)
			continue
		}
		if err := tc.b.Check(); err != nil {
			t.Errorf("Check(%s): %v", q, err)
		}
		if _, err := Compile(q); err != nil {
			t.Errorf("Compile(%s): %v", q, err)
		}
		back, err := Parse(q.String())
		if err != nil || !EqualQuery(back, q) {
			t.Errorf("Parse(%s) = %v; equal=%v", q, err, err == nil && EqualQuery(back, q))
		}
	}
	// Compile rejects a bad builder statement instead of panicking.
	bad := NewSelect().Aggregate("MEDIAN", P("t"), "m").Query()
	if _, err := Compile(bad); err == nil || !strings.Contains(err.Error(), "unknown aggregate MEDIAN") {
		t.Errorf("Compile(MEDIAN) = %v", err)
	}
	if _, err := Compile(Select(Jobs).Project(P("deviceId"), "").Query()); err == nil {
		t.Error("Compile accepted a projection on devices.jobs")
	}
}

// TestCheckQuery: statements a builder can make outside the Documented
// dialect, or too long, are rejected before they are sent.
func TestCheckQuery(t *testing.T) {
	x := P("tags", "x")
	ids := make([]string, 700)
	for i := range ids {
		ids[i] = strings.Repeat("d", 12)
	}
	tests := []struct {
		b    *SelectBuilder
		want string
		is   error
	}{
		{NewSelect().Top(3).Project(x, "x").Count("n").GroupBy(x),
			"query: 0:0: TOP with GROUP BY is not in IoT Hub's documented query language (the docs do not say whether TOP limits the groups or the twins); iotplan dev --query-dialect extended accepts it", ErrUndocumented},
		{NewSelect().Where(call1("IS_STRING", x)),
			"query: 0:0: IS_STRING is not in IoT Hub's documented query language for twins and jobs (only IS_DEFINED, and STARTSWITH as reported working); iotplan dev --query-dialect extended accepts it", ErrUndocumented},
		{Select(Modules).Count("n"),
			"query: 0:0: aggregates on devices.modules are not in IoT Hub's documented query language (aggregates are documented for device twins only); iotplan dev --query-dialect extended accepts it", ErrUndocumented},
		{NewSelect().Count("n").Where(In(P("deviceId"), ids)), "query: 0:0: query is 11251 characters long; the limit is 8192", nil},
		{NewSelect().Project(x, "").Count("n"), "query: 0:0: a SELECT list that mixes aggregates and properties needs GROUP BY", nil},
	}
	for _, tc := range tests {
		err := tc.b.Check()
		if err == nil || err.Error() != tc.want || (tc.is != nil) != errors.Is(err, ErrUndocumented) {
			t.Errorf("Check(%.80s) = %.200v\nwant %s", tc.b, err, tc.want)
		}
	}
	if err := CheckQuery(nil); err == nil {
		t.Error("CheckQuery(nil) succeeded")
	}
}

func TestPathString(t *testing.T) {
	if got := P("tags", "group", "a b", "x", "$meta", "AND").String(); got != "tags.[[group]].[[a b]].x.$meta.[[AND]]" {
		t.Errorf("Path.String = %s", got)
	}
}
