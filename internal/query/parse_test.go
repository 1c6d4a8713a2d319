package query

import (
	"errors"
	"strings"
	"testing"
)

// TestParseCanonical: statements of the Documented dialect parse, print
// canonically, and the canonical text re-parses to an equal tree.
func TestParseCanonical(t *testing.T) {
	tests := []struct{ src, want string }{
		{"SELECT * FROM devices", "SELECT * FROM devices"},
		{"select * from devices.modules", "SELECT * FROM devices.modules"},
		{"SELECT * FROM Devices.Jobs WHERE devices.jobs.jobId = 'x'", "SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 'x'"},
		{"SELECT TOP 3 * FROM devices", "SELECT TOP 3 * FROM devices"},
		{"SELECT COUNT() as TotalNumber FROM devices", "SELECT COUNT() AS TotalNumber FROM devices"},
		{"SELECT DeviceID, LastActivityTime FROM devices", "SELECT DeviceID, LastActivityTime FROM devices"},
		{"SELECT avg(properties.reported.t) AS [[avg t]], max(tags.x) FROM devices", "SELECT AVG(properties.reported.t) AS [[avg t]], MAX(tags.x) FROM devices"},
		{"SELECT tags.[[group]] AS [[group]], count() AS n FROM devices GROUP BY tags.[[group]]", "SELECT tags.[[group]] AS [[group]], COUNT() AS n FROM devices GROUP BY tags.[[group]]"},
		{"SELECT deviceId FROM devices.modules WHERE moduleId = '$edgeAgent'", "SELECT deviceId FROM devices.modules WHERE moduleId = '$edgeAgent'"},
		{"SELECT * FROM devices WHERE a <> 1", "SELECT * FROM devices WHERE a != 1"},
		{"SELECT * FROM devices WHERE a=1 and b=2 or c=3", "SELECT * FROM devices WHERE (a = 1 AND b = 2) OR c = 3"},
		{"SELECT * FROM devices WHERE a=1 and (b=2 or c=3)", "SELECT * FROM devices WHERE a = 1 AND (b = 2 OR c = 3)"},
		{"SELECT * FROM devices WHERE (a=1 and b=2) and c=3", "SELECT * FROM devices WHERE (a = 1 AND b = 2) AND c = 3"},
		{"SELECT * FROM devices WHERE not not a", "SELECT * FROM devices WHERE NOT (NOT a)"},
		{"SELECT * FROM devices WHERE NOT a = 1", "SELECT * FROM devices WHERE NOT (a = 1)"},
		{"SELECT * FROM devices WHERE a - (b - c) = (a - b) - c", "SELECT * FROM devices WHERE a - (b - c) = a - b - c"},
		{"SELECT * FROM devices WHERE (a = b) = true", "SELECT * FROM devices WHERE (a = b) = true"},
		{"SELECT * FROM devices WHERE (a + 1) * -2 > a - -3", "SELECT * FROM devices WHERE (a + 1) * -2 > a - -3"},
		{"SELECT * FROM devices WHERE x = 0x1F OR x = 1.50 OR x = 0.5 OR x = -0 OR x = 12345678901234567890 OR x = 0.0000001",
			"SELECT * FROM devices WHERE x = 31 OR x = 1.5 OR x = 0.5 OR x = 0 OR x = 12345678901234567000 OR x = 0.0000001"},
		{`SELECT * FROM devices WHERE x = "it's" OR x = 'a\'b' OR x = "say \"hi\"" OR x = 'back\\slash' OR x = '\u00e9\ud83d\ude00\u0009'`,
			`SELECT * FROM devices WHERE x = 'it\'s' OR x = 'a\'b' OR x = 'say "hi"' OR x = 'back\\slash' OR x = 'é😀\u0009'`},
		{"SELECT * FROM devices WHERE x = 'raw\ttab'", `SELECT * FROM devices WHERE x = 'raw\u0009tab'`},
		{"SELECT * FROM devices WHERE x IN [1, 'a', null, true, false, undefined, -2, [3]]", "SELECT * FROM devices WHERE x IN [1, 'a', null, true, false, undefined, -2, [3]]"},
		{"SELECT * FROM devices WHERE x NIN [ [1], 2]", "SELECT * FROM devices WHERE x NIN [ [1], 2]"},
		{"SELECT * FROM devices WHERE [[odd key]].[[group]].ok.[[9lives]] = 1", "SELECT * FROM devices WHERE [[odd key]].[[group]].ok.[[9lives]] = 1"},
		{"SELECT * FROM devices WHERE tags.[[plain]] = 1", "SELECT * FROM devices WHERE tags.plain = 1"},
		{"SELECT * FROM devices WHERE properties.desired.$metadata.$lastUpdated > '2020'", "SELECT * FROM devices WHERE properties.desired.$metadata.$lastUpdated > '2020'"},
		{"SELECT * FROM devices WHERE is_defined(a) AND startswith(b, 'x')", "SELECT * FROM devices WHERE IS_DEFINED(a) AND STARTSWITH(b, 'x')"},
		{"SELECT * FROM devices WHERE tags.café = 'ü'", "SELECT * FROM devices WHERE tags.café = 'ü'"},
		{"SELECT\n*\nFROM\tdevices\r\nWHERE a=1", "SELECT * FROM devices WHERE a = 1"},
	}
	for _, tc := range tests {
		checkCanonical(t, Documented, tc.src, tc.want)
	}
}

// TestParseCanonicalExtended: statements with the Extended dialect's
// additions; each is rejected by the Documented dialect, and its canonical
// text is plain decimal with documented escapes.
func TestParseCanonicalExtended(t *testing.T) {
	tests := []struct{ src, want string }{
		{"SELECT TOP(3) deviceId FROM devices", "SELECT TOP 3 deviceId FROM devices"},
		{"SELECT * FROM devices WHERE -(a + 1) * -2 > - -3", "SELECT * FROM devices WHERE -(a + 1) * -2 > 3"},
		{"SELECT * FROM devices WHERE x = 0X1F OR x = .5 OR x = 1e3 OR x = 1E-7 OR x = 2.5e+06", "SELECT * FROM devices WHERE x = 31 OR x = 0.5 OR x = 1000 OR x = 0.0000001 OR x = 2500000"},
		{`SELECT * FROM devices WHERE x = 'a''b' OR x = 'tab\tnl\n\/'`, `SELECT * FROM devices WHERE x = 'a\'b' OR x = 'tab\u0009nl\u000a/'`},
		{"SELECT * FROM devices WHERE is_defined(a) AND startswith(b, 'x') AND EndsWith(c, 'y')", "SELECT * FROM devices WHERE IS_DEFINED(a) AND STARTSWITH(b, 'x') AND ENDSWITH(c, 'y')"},
		{"SELECT * FROM devices WHERE is_string(a) OR IS_NUMBER(b) OR Is_Bool(c) OR IS_NULL(d) OR IS_OBJECT(e) OR IS_ARRAY(f) OR IS_PRIMITIVE(g)",
			"SELECT * FROM devices WHERE IS_STRING(a) OR IS_NUMBER(b) OR IS_BOOL(c) OR IS_NULL(d) OR IS_OBJECT(e) OR IS_ARRAY(f) OR IS_PRIMITIVE(g)"},
		{"SELECT TOP 2 tags.x AS x, COUNT() AS n FROM devices GROUP BY tags.x", "SELECT TOP 2 tags.x AS x, COUNT() AS n FROM devices GROUP BY tags.x"},
		{"SELECT * FROM devices WHERE deviceId IN []", "SELECT * FROM devices WHERE deviceId IN []"},
		{"SELECT moduleId, COUNT() AS n FROM devices.modules GROUP BY moduleId", "SELECT moduleId, COUNT() AS n FROM devices.modules GROUP BY moduleId"},
	}
	for _, tc := range tests {
		checkCanonical(t, Extended, tc.src, tc.want)
		if _, err := Parse(tc.src); !errors.Is(err, ErrUndocumented) {
			t.Errorf("Parse(%q) = %v, want an ErrUndocumented error", tc.src, err)
		}
	}
}

// checkCanonical: src parses in d to the canonical text want, which re-parses
// in d to an equal tree and the same text, and compiles.
func checkCanonical(t *testing.T, d Dialect, src, want string) {
	t.Helper()
	q, err := ParseDialect(src, d)
	if err != nil {
		t.Errorf("ParseDialect(%q, %s): %v", src, d, err)
		return
	}
	got := q.String()
	if got != want {
		t.Errorf("ParseDialect(%q, %s).String()\n got %s\nwant %s", src, d, got, want)
	}
	q2, err := ParseDialect(got, d)
	if err != nil {
		t.Errorf("re-parse %q: %v", got, err)
		return
	}
	if !EqualQuery(q, q2) || q2.String() != got {
		t.Errorf("round trip of %q changed the statement: %s", src, q2)
	}
	if _, err := Compile(q); err != nil {
		t.Errorf("Compile(%q): %v", src, err)
	}
}

// TestParseErrors pins the message and position of every error class of the
// Extended dialect, unchanged since before dialects (the Documented dialect
// gives the same errors, but for its own: see TestDialectRejects).
func TestParseErrors(t *testing.T) {
	long := "SELECT * FROM devices WHERE x = '" + strings.Repeat("a", MaxLength) + "'"
	deep := "SELECT * FROM devices WHERE " + strings.Repeat("(", 70) + "a" + strings.Repeat(")", 70)
	chain := "SELECT * FROM devices WHERE a" + strings.Repeat(" + 1", 70) + " = 1"
	many := "SELECT * FROM devices WHERE x IN [" + strings.Repeat("1,", MaxNodes) + "1]"
	tests := []struct{ src, want string }{
		{"SELECT * FROM devices WHERE tags.x IN ['a' floor]", "query: 1:44: expected ']' to close the array, found 'floor'"},
		{"SELECT * FROM devices WHERE tags.x IN ['a', tags.y]", "query: 1:45: array elements must be constants, found 'tags'"},
		{"SELECT * FROM devices WHERE tags.x IN ('a', 'b')", "query: 1:39: expected '[' after IN (IoT Hub writes lists in square brackets: IN ['a', 'b']), found '('"},
		{"SELECT * FROM devices WHERE tags.group.name = 'x'", "query: 1:34: GROUP is a reserved word; write [[group]] to use it as a property name"},
		{"SELECT * FROM devices ORDER BY deviceId", "query: 1:23: expected WHERE, GROUP BY or end of query, found 'ORDER' (ORDER BY is not supported by IoT Hub queries)"},
		{"SELECT * FROM devices WHERE a = 1 ORDER BY a", "query: 1:35: expected GROUP BY or end of query, found 'ORDER' (ORDER BY is not supported by IoT Hub queries)"},
		{"SELECT * FROM devices WHERE CONTAINS(deviceId, 'a')", "query: 1:29: function CONTAINS is only available in message routing queries, not in twin or job queries"},
		{"SELECT * FROM devices WHERE STARTS_WITH(deviceId, 'a')", "query: 1:29: unknown function STARTS_WITH (did you mean STARTSWITH?)"},
		{"SELECT * FROM devices WHERE FOO(a)", "query: 1:29: unknown function 'FOO'; twin and job queries support IS_DEFINED, IS_NULL, IS_BOOL, IS_NUMBER, IS_STRING, IS_OBJECT, IS_ARRAY, IS_PRIMITIVE, STARTSWITH and ENDSWITH"},
		{"SELECT * FROM devices WHERE IS_DEFINED(a, b)", "query: 1:29: IS_DEFINED takes 1 argument, got 2"},
		{"SELECT * FROM devices WHERE COUNT() > 1", "query: 1:29: aggregate COUNT() can only be used in the SELECT list"},
		{"SELECT * FROM devices WHERE a = 1 = 2", "query: 1:35: expected GROUP BY or end of query, found '=' (comparisons cannot be chained; use parentheses and AND)"},
		{"SELECT * FROM devices WHERE", "query: 1:28: expected an operand, found end of query"},
		{"SELECT * FROM devices WHERE a = 'open", "query: 1:33: unterminated string: missing closing '"},
		{`SELECT * FROM devices WHERE a = 'bad \q'`, `query: 1:38: invalid escape \q in string`},
		{`SELECT * FROM devices WHERE a = '\ud800'`, `query: 1:34: invalid \u escape: unpaired surrogate`},
		{"SELECT * FROM devices WHERE a = 0x", "query: 1:33: invalid hexadecimal number: no digits after 0x"},
		{"SELECT * FROM devices WHERE a = 12ab", `query: 1:33: invalid number "12a"`},
		{"SELECT * FROM devices WHERE a = 1e999", "query: 1:33: number 1e999 is out of range"},
		{"SELECT * FROM devices WHERE a = 'x' AND *", "query: 1:41: '*' (every device) can only be used as the whole condition"},
		{"SELECT * FROM devices WHERE a == 1", "query: 1:32: expected an operand, found '='"},
		{"SELECT * FROM devices WHERE a ! 1", "query: 1:31: unexpected '!' (use != or NOT)"},
		{"SELECT * FROM devices WHERE a = #", "query: 1:33: unexpected character '#'"},
		{"SELECT * FROM devices WHERE tags.a[0] = 1", "query: 1:35: array indexing is not supported; write odd property names as .[[name]]"},
		{"SELECT * FROM devices WHERE tags.[[unterminated = 1", "query: 1:34: unterminated [[ name: missing ']]'"},
		{"SELECT * FROM devices WHERE tags.[[]] = 1", "query: 1:34: empty [[ ]] name"},
		{"SELECT * FROM devices WHERE (a = 1", "query: 1:35: expected ')' to close '(' opened at 1:29, found end of query"},
		{"SELECT * FROM devices WHERE +a = 1", "query: 1:29: unexpected '+' (unary plus is not supported)"},
		{"SELECT * FROM things", "query: 1:15: expected devices, devices.modules or devices.jobs after FROM, found 'things'"},
		{"SELECT * FROM devices.things", "query: 1:23: expected modules or jobs after devices., found 'things'"},
		{"SELECT * devices", "query: 1:10: expected FROM after the SELECT list, found 'devices'"},
		{"FROM devices", "query: 1:1: expected SELECT at the start of the query, found keyword FROM"},
		{"SELECT TOP -1 * FROM devices", "query: 1:12: expected a whole number after TOP, found '-'"},
		{"SELECT TOP 1.5 * FROM devices", "query: 1:12: expected a whole number after TOP, found number 1.5"},
		{"SELECT COUNT(*) FROM devices", "query: 1:14: COUNT takes no argument: write COUNT()"},
		{"SELECT SUM() FROM devices", "query: 1:12: SUM takes a property path, found ')'"},
		{"SELECT LOWER(deviceId) FROM devices", "query: 1:8: unknown aggregate 'LOWER'; the SELECT list allows COUNT(), AVG, SUM, MIN and MAX"},
		{"SELECT IS_DEFINED(a) FROM devices", "query: 1:8: function IS_DEFINED cannot be used in a SELECT list; only property paths and COUNT, AVG, SUM, MIN, MAX can"},
		{"SELECT a AS from FROM devices", "query: 1:13: FROM is a reserved word; write [[from]] to use it as an alias"},
		{"SELECT deviceId FROM devices.jobs", "query: 1:8: devices.jobs queries support only SELECT * (no projections or aggregates)"},
		{"SELECT COUNT() FROM devices.jobs", "query: 1:8: devices.jobs queries support only SELECT * (no projections or aggregates)"},
		{"SELECT * FROM devices.jobs WHERE deviceId = 'x'", "query: 1:34: devices.jobs queries can only refer to job properties written devices.jobs.<name>, not deviceId"},
		{"SELECT * FROM devices WHERE devices.jobs.jobId = 'x'", "query: 1:29: devices.jobs.jobId refers to devices.jobs; query job properties FROM devices.jobs"},
		{"SELECT * FROM devices WHERE devices.modules.moduleId = 'x'", "query: 1:29: devices.modules.moduleId refers to devices.modules; query module properties FROM devices.modules"},
		{"SELECT * FROM devices.jobs GROUP BY devices.jobs.status", "query: 1:37: GROUP BY is not supported on devices.jobs"},
		{"SELECT * FROM devices GROUP BY tags.x", "query: 1:32: GROUP BY needs a SELECT list of the grouped property and aggregates, not SELECT *"},
		{"SELECT tags.a, COUNT() AS n FROM devices", "query: 1:8: a SELECT list that mixes aggregates and properties needs GROUP BY"},
		{"SELECT tags.a, COUNT() AS n FROM devices GROUP BY tags.b", "query: 1:8: tags.a is neither the GROUP BY property nor an aggregate"},
		{"SELECT COUNT() AS n FROM devices GROUP BY a, b", "query: 1:44: GROUP BY takes a single property path"},
		{"SELECT tags.a, properties.desired.a FROM devices", `query: 1:16: duplicate result property "a"; give one of them an alias with AS`},
		{"SELECT * FROM devices WHERE x = 1\n  AND\n  y = ]", "query: 3:7: expected an operand, found ']'"},
		{"SELECT * FROM devices WHERE tags.é = 'ü' AND ]", "query: 1:46: expected an operand, found ']'"},
		{"SELECT * FROM devices WHERE a = 'x' 'y'", "query: 1:37: expected GROUP BY or end of query, found string 'y'"},
		{"SELECT * FROM devices WHERE a = '\xff'", "query: 1:34: invalid UTF-8 encoding"},
		{long, "query: 1:1: query is 8226 characters long; the limit is 8192"},
		{deep, "query: 1:93: expression nested too deeply (more than 64 levels)"},
		{chain, "query: 1:29: expression nested too deeply (more than 64 levels)"},
		{many, "query: 1:4125: condition too large (more than 2048 terms)"},
	}
	for _, tc := range tests {
		_, err := ParseDialect(tc.src, Extended)
		if err == nil {
			t.Errorf("Parse(%.60q) succeeded, want %s", tc.src, tc.want)
			continue
		}
		var qe *Error
		if !errors.As(err, &qe) {
			t.Errorf("Parse(%.60q) error %T is not *Error", tc.src, err)
		}
		if err.Error() != tc.want {
			t.Errorf("Parse(%.60q)\n got %s\nwant %s", tc.src, err, tc.want)
		}
	}
}

// TestParseConditionErrors covers the condition-only entry points.
func TestParseConditionErrors(t *testing.T) {
	tests := []struct{ src, want string }{
		{"", "query: 1:1: expected an operand, found end of query"},
		{"tags.x = 1 extra", "query: 1:12: expected end of condition, found 'extra'"},
		{"SELECT * FROM devices", "query: 1:1: expected an operand, found keyword SELECT"},
		{"* AND a = 1", "query: 1:1: '*' (every device) can only be used as the whole condition"},
		{"tags.x = 1 GROUP BY a", "query: 1:12: expected end of condition, found keyword GROUP"},
	}
	for _, tc := range tests {
		if _, err := ParseCondition(tc.src); err == nil || err.Error() != tc.want {
			t.Errorf("ParseCondition(%q) = %v, want %s", tc.src, err, tc.want)
		}
	}
	if _, err := ParsePath("tags.a b"); err == nil || err.Error() != "query: 1:8: expected end of path, found 'b'" {
		t.Errorf("ParsePath error = %v", err)
	}
	p, err := ParsePath("properties.desired.[[my key]].[[group]]")
	if err != nil || !equalPath(p, P("properties", "desired", "my key", "group")) {
		t.Errorf("ParsePath = %q, %v", p, err)
	}
}

// TestTextLength: the limit counts UTF-16 code units, so a character outside the Basic
// Multilingual Plane counts two and any other one (whatever its UTF-8 size) one; the parser
// enforces exactly that count.
func TestTextLength(t *testing.T) {
	for s, want := range map[string]int{"": 0, "abc": 3, "é": 1, "€": 1, "😀": 2, "a😀é": 4} {
		if got := TextLength(s); got != want {
			t.Errorf("TextLength(%q) = %d, want %d", s, got, want)
		}
	}
	prefix := "SELECT * FROM devices WHERE x = '"
	fill := MaxLength - TextLength(prefix) - 1 // room left for the closing quote
	atLimit := prefix + strings.Repeat("😀", fill/2) + strings.Repeat("é", fill%2) + "'"
	if n := TextLength(atLimit); n != MaxLength {
		t.Fatalf("test text is %d units long", n)
	}
	if _, err := Parse(atLimit); err != nil {
		t.Errorf("a text of exactly MaxLength UTF-16 units: %v", err)
	}
	over := prefix + strings.Repeat("😀", fill/2+1) + "'"
	if _, err := Parse(over); err == nil || !strings.Contains(err.Error(), "the limit is 8192") {
		t.Errorf("a text over MaxLength UTF-16 units (fewer runes): %v", err)
	}
}
