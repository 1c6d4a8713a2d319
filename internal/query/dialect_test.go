package query

import (
	"errors"
	"testing"
)

// Sources of the Documented dialect (docs/query.md, "The documented dialect").
const (
	srcQL       = "learn.microsoft.com/azure/iot-hub/iot-hub-devguide-query-language"
	srcTwins    = "learn.microsoft.com/azure/iot-hub/query-twins"
	srcJobsQ    = "learn.microsoft.com/azure/iot-hub/query-jobs"
	srcJobs     = "learn.microsoft.com/azure/iot-hub/iot-hub-devguide-jobs"
	srcADM      = "learn.microsoft.com/azure/iot-hub/iot-hub-automatic-device-management"
	srcCLI      = "learn.microsoft.com/cli/azure/iot/hub/device-twin"
	srcStarts   = "github.com/MicrosoftDocs/azure-docs/issues/110329"
	srcExplorer = "Azure/azure-iot-explorer src/app/api/shared/utils.ts"
)

// TestDialectAccepts: every construct the documentation has for twin and job
// queries parses in the Documented dialect, each with its source.
func TestDialectAccepts(t *testing.T) {
	stmts := []struct{ source, src string }{
		{srcQL, "SELECT * FROM devices"},
		{srcQL, "SELECT TOP 10 * FROM devices"},
		{srcQL, "SELECT DeviceID, LastActivityTime FROM devices"},
		{srcQL, "SELECT COUNT() as TotalNumber FROM devices"},
		{srcQL, "SELECT AVG(properties.reported.t) AS a, SUM(properties.reported.t) AS s, MIN(properties.reported.t) AS lo, MAX(properties.reported.t) AS hi FROM devices"},
		{srcQL, "SELECT properties.reported.telemetryConfig.status AS status,\n    COUNT() AS numberOfDevices\n  FROM devices\n  GROUP BY properties.reported.telemetryConfig.status"},
		{srcQL, "SELECT * FROM devices WHERE tags.[[group]].name = 'some_value'"},
		{srcQL, "SELECT * FROM devices.jobs\n    WHERE devices.jobs.deviceId = 'myDeviceId'"},
		{srcTwins, "SELECT * FROM devices\n  WHERE tags.location.region = 'US'\n    AND properties.reported.telemetryConfig.sendFrequencyInSecs >= 60"},
		{srcTwins, "SELECT * FROM devices\n  WHERE properties.reported.connectivity IN ['wired', 'wifi']"},
		{srcTwins, "SELECT * FROM devices WHERE properties.reported.connectivity NIN ['wired', 'wifi']"},
		{srcTwins, "SELECT * FROM devices\n  WHERE is_defined(properties.reported.connectivity)"},
		{srcTwins, "SELECT DeviceId, LastActivityTime FROM devices WHERE status = 'enabled' AND connectionState = 'Disconnected'"},
		{srcTwins, "SELECT * FROM devices.modules\n  WHERE properties.reported.status = 'scanning'\n  AND deviceId IN ['device1', 'device2']"},
		{srcJobsQ, "SELECT * FROM devices.jobs\n  WHERE devices.jobs.deviceId = 'myDeviceId'\n    AND devices.jobs.jobType = 'scheduleUpdateTwin'\n    AND devices.jobs.status = 'completed'\n    AND devices.jobs.createdTimeUtc > '2016-09-01'"},
		{srcCLI, "select * from devices where capabilities.iotEdge = true"},
		{srcADM, "SELECT deviceId, moduleId FROM devices.modules\n  WHERE properties.reported.lastDesiredStatus.code = 200"},
		{srcADM, "SELECT deviceId FROM devices \n  WHERE configurations.[[yourconfigname]].status='Applied'"},
		{srcStarts, "SELECT * FROM devices WHERE STARTSWITH(deviceId, 'test')"},
		{srcExplorer, "SELECT * FROM devices WHERE STARTSWITH(devices.deviceId, 'test')"},
		// The grammar's operators, constants and escapes.
		{srcQL, "SELECT * FROM devices WHERE a = 1 OR a != 1 OR a <> 1 OR a < 1 OR a > 1 OR a <= 1 OR a >= 1"},
		{srcQL, "SELECT * FROM devices WHERE NOT (a + 1 - 2 * 3 / 4 % 5 = 0) AND (b = 1 OR c = 2)"},
		{srcQL, "SELECT * FROM devices WHERE a = 0x1F OR a = 1.5 OR a = -2 OR a = 12 OR a = undefined OR a = null OR a = false"},
		{srcQL, `SELECT * FROM devices WHERE a = 'single' OR a = "double" OR a = 'it\'s' OR a = "\"q\"" OR a = 'back\\slash' OR a = '\u00e9'`},
		{srcQL, "SELECT * FROM devices WHERE a IN [ [1]] OR a = [1, [2, 3]]"},
	}
	for _, tc := range stmts {
		if _, err := Parse(tc.src); err != nil {
			t.Errorf("%s: Parse(%q): %v", tc.source, tc.src, err)
		}
	}
	conds := []struct{ source, src string }{
		{srcJobs, "*"},
		{srcJobs, "deviceId = 'MyDevice1'"},
		{srcJobs, "deviceId IN ['MyDevice1','MyDevice2']"},
		{srcJobs, "deviceId IN ['MyDevice1']"},
		{srcADM, "tags.environment='test' and properties.reported.chillerProperties.model='4000x'"},
		{srcADM, "configurations.[[myconfig]].status = 'Applied'"},
	}
	for _, tc := range conds {
		if _, err := ParseCondition(tc.src); err != nil {
			t.Errorf("%s: ParseCondition(%q): %v", tc.source, tc.src, err)
		}
	}
}

// TestDialectRejects pins the message and position of every construct the
// Documented dialect rejects; each is accepted by the Extended dialect.
func TestDialectRejects(t *testing.T) {
	const hint = "; iotplan dev --query-dialect extended accepts it"
	fn := " is not in IoT Hub's documented query language for twins and jobs (only IS_DEFINED, and STARTSWITH as reported working)" + hint
	tests := []struct{ src, want string }{
		{"SELECT * FROM devices WHERE IS_STRING(tags.x)", "query: 1:29: IS_STRING" + fn},
		{"SELECT * FROM devices WHERE is_number(tags.x)", "query: 1:29: IS_NUMBER" + fn},
		{"SELECT * FROM devices WHERE IS_BOOL(tags.x)", "query: 1:29: IS_BOOL" + fn},
		{"SELECT * FROM devices WHERE IS_NULL(tags.x)", "query: 1:29: IS_NULL" + fn},
		{"SELECT * FROM devices WHERE IS_OBJECT(tags.x)", "query: 1:29: IS_OBJECT" + fn},
		{"SELECT * FROM devices WHERE IS_ARRAY(tags.x)", "query: 1:29: IS_ARRAY" + fn},
		{"SELECT * FROM devices WHERE IS_PRIMITIVE(tags.x)", "query: 1:29: IS_PRIMITIVE" + fn},
		{"SELECT * FROM devices WHERE a = 1 AND\n  ENDSWITH(deviceId, '-eu')", "query: 2:3: ENDSWITH" + fn},
		{"SELECT TOP 3 tags.x AS x, COUNT() AS n FROM devices GROUP BY tags.x",
			"query: 1:8: TOP with GROUP BY is not in IoT Hub's documented query language (the docs do not say whether TOP limits the groups or the twins)" + hint},
		{"SELECT TOP(3) * FROM devices", "query: 1:11: TOP(n) with parentheses is not in IoT Hub's documented query language (write TOP n)" + hint},
		{"SELECT * FROM devices WHERE tags.x = 2.5e+06", "query: 1:38: number 2.5e+06 with an exponent is not in IoT Hub's documented query language (write it in plain decimal: 2500000)" + hint},
		{"SELECT * FROM devices WHERE tags.x = 1E-7", "query: 1:38: number 1E-7 with an exponent is not in IoT Hub's documented query language (write it in plain decimal: 0.0000001)" + hint},
		{"SELECT * FROM devices WHERE tags.x = 1e300", "query: 1:38: number 1e300 with an exponent is not in IoT Hub's documented query language (write it in plain decimal)" + hint},
		{"SELECT * FROM devices WHERE tags.x = .5", "query: 1:38: number .5 without a digit before the point is not in IoT Hub's documented query language (write 0.5)" + hint},
		{"SELECT * FROM devices WHERE tags.x = 0X1F", "query: 1:38: hexadecimal prefix 0X is not in IoT Hub's documented query language (write 0x)" + hint},
		{`SELECT * FROM devices WHERE tags.x = 'a\nb'`, `query: 1:40: string escape \n is not in IoT Hub's documented query language (strings allow only \' \" \\ and \uXXXX; write \u000a)` + hint},
		{`SELECT * FROM devices WHERE tags.x = "a\/b"`, `query: 1:40: string escape \/ is not in IoT Hub's documented query language (strings allow only \' \" \\ and \uXXXX; write / as is)` + hint},
		{`SELECT * FROM devices WHERE tags.x = 'tab\t'`, `query: 1:42: string escape \t is not in IoT Hub's documented query language (strings allow only \' \" \\ and \uXXXX; write \u0009)` + hint},
		{`SELECT * FROM devices WHERE tags.x = 'it''s'`, `query: 1:41: a doubled quote '' inside a string is not in IoT Hub's documented query language (write \')` + hint},
		{`SELECT * FROM devices WHERE tags.x = "say ""hi"""`, `query: 1:43: a doubled quote "" inside a string is not in IoT Hub's documented query language (write \")` + hint},
		{"SELECT * FROM devices WHERE -tags.offset < 3", "query: 1:29: a minus sign before an expression is not in IoT Hub's documented query language (only a number constant may be negative)" + hint},
		{"SELECT * FROM devices WHERE a = - -3", "query: 1:33: a minus sign before an expression is not in IoT Hub's documented query language (only a number constant may be negative)" + hint},
		{"SELECT * FROM devices WHERE deviceId IN []", "query: 1:41: an empty array [] is not in IoT Hub's documented query language (an array constant holds at least one constant)" + hint},
		{"SELECT moduleId, COUNT() AS n FROM devices.modules GROUP BY moduleId",
			"query: 1:18: aggregates on devices.modules are not in IoT Hub's documented query language (aggregates are documented for device twins only)" + hint},
		{"SELECT moduleId FROM devices.modules GROUP BY moduleId",
			"query: 1:47: GROUP BY on devices.modules is not in IoT Hub's documented query language (GROUP BY is documented for device twins only)" + hint},
	}
	for _, tc := range tests {
		_, err := Parse(tc.src)
		if err == nil || err.Error() != tc.want {
			t.Errorf("Parse(%q)\n got %v\nwant %s", tc.src, err, tc.want)
		}
		if !errors.Is(err, ErrUndocumented) {
			t.Errorf("Parse(%q) error does not wrap ErrUndocumented", tc.src)
		}
		if _, err := ParseDialect(tc.src, Extended); err != nil {
			t.Errorf("ParseDialect(%q, Extended): %v", tc.src, err)
		}
	}
}

// TestDialectConditionRejects: the same through ParseCondition, as a job's
// queryCondition or an iotplan target is parsed; errors of no dialect do not
// wrap ErrUndocumented.
func TestDialectConditionRejects(t *testing.T) {
	tests := []struct{ src, want string }{
		{"IS_STRING(tags.x)", "query: 1:1: IS_STRING is not in IoT Hub's documented query language for twins and jobs (only IS_DEFINED, and STARTSWITH as reported working); iotplan dev --query-dialect extended accepts it"},
		{"tags.x = 1e3", "query: 1:10: number 1e3 with an exponent is not in IoT Hub's documented query language (write it in plain decimal: 1000); iotplan dev --query-dialect extended accepts it"},
	}
	for _, tc := range tests {
		if _, err := ParseCondition(tc.src); err == nil || err.Error() != tc.want || !errors.Is(err, ErrUndocumented) {
			t.Errorf("ParseCondition(%q) = %v\nwant %s", tc.src, err, tc.want)
		}
	}
	// Errors come in source order: an earlier syntax error wins over a later extension.
	_, err := ParseCondition("tags.x == 1 OR IS_STRING(tags.y)")
	if err == nil || err.Error() != "query: 1:9: expected an operand, found '='" || errors.Is(err, ErrUndocumented) {
		t.Errorf("syntax error first: %v", err)
	}
	_, err = ParseCondition("FOO(a)")
	if err == nil || err.Error() != "query: 1:1: unknown function 'FOO'; twin and job queries support IS_DEFINED and STARTSWITH" {
		t.Errorf("unknown function: %v", err)
	}
}

// TestDialectStatementStructure: the Documented dialect's statement checks (TOP with GROUP
// BY, devices.modules) are one function that parsing and CheckQuery share, run after the
// checks of every dialect, so a statement no dialect accepts is never reported as
// ErrUndocumented.
func TestDialectStatementStructure(t *testing.T) {
	tests := []struct{ src, want string }{
		{"SELECT TOP 2 * FROM devices GROUP BY tags.x", "query: 1:38: GROUP BY needs a SELECT list of the grouped property and aggregates, not SELECT *"},
		{"SELECT TOP 2 tags.x AS x, COUNT() AS n FROM devices GROUP BY tags.x x", "query: 1:69: expected end of query, found 'x'"},
		{"SELECT TOP 2 tags.y, COUNT() AS n FROM devices GROUP BY tags.x", "query: 1:14: tags.y is neither the GROUP BY property nor an aggregate"},
	}
	for _, tc := range tests {
		for _, d := range []Dialect{Documented, Extended} {
			_, err := ParseDialect(tc.src, d)
			if err == nil || err.Error() != tc.want || errors.Is(err, ErrUndocumented) {
				t.Errorf("ParseDialect(%q, %v)\n got %v\nwant %s (not ErrUndocumented)", tc.src, d, err, tc.want)
			}
		}
	}
	const src = "SELECT TOP 3 tags.x AS x, COUNT() AS n FROM devices GROUP BY tags.x"
	q, err := ParseDialect(src, Extended)
	if err != nil {
		t.Fatal(err)
	}
	_, textErr := Parse(src)
	treeErr := CheckQuery(q)
	var te, ce *Error
	if !errors.As(textErr, &te) || !errors.As(treeErr, &ce) || te.Msg != ce.Msg || !errors.Is(treeErr, ErrUndocumented) {
		t.Errorf("Parse = %v, CheckQuery = %v; want the same ErrUndocumented message", textErr, treeErr)
	}
}

func TestDialectNames(t *testing.T) {
	var d Dialect
	for _, name := range []string{"extended", "Documented", " EXTENDED "} {
		if err := d.Set(name); err != nil {
			t.Errorf("Set(%q): %v", name, err)
		}
	}
	if d != Extended || d.String() != "extended" || Documented.String() != "documented" {
		t.Errorf("d = %v", d)
	}
	if err := d.Set("strict"); err == nil || d != Extended {
		t.Errorf("Set(strict) = %v, d = %v", err, d)
	}
}
