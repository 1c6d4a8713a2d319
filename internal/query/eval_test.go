package query

import (
	"slices"
	"testing"
)

// TestDocExamplesSelect runs the SELECT * examples of the IoT Hub query
// documentation (query-twins, query-jobs, devguide-query-language, plus the
// STARTSWITH form Azure IoT Explorer sends) and further conditions that pin
// down undefined, mixed-type, case and operator semantics over the fixture
// fleet.
func TestDocExamplesSelect(t *testing.T) {
	fleet := decodeDocs(t, fleetJSON)
	modules := decodeDocs(t, modulesJSON)
	jobs := decodeDocs(t, jobsJSON)
	all := []string{"dev-01", "dev-02", "dev-03", "dev-04", "dev-05", "test-06", "test-07"}
	none := []string{}
	tests := []struct {
		name, src string
		docs      []map[string]any
		key       string // row property listed; default deviceId
		want      []string
		itemType  string // default twin
	}{
		// Documentation examples.
		{"docs all twins", "SELECT * FROM devices", fleet, "", all, ""},
		{"docs region", "SELECT * FROM devices\nWHERE tags.location.region = 'US'", fleet, "", []string{"dev-01", "dev-02", "test-06"}, ""},
		{"docs region and frequency", "SELECT * FROM devices\n  WHERE tags.location.region = 'US'\n    AND properties.reported.telemetryConfig.sendFrequencyInSecs >= 60", fleet, "", []string{"dev-01", "test-06"}, ""},
		{"docs IN", "SELECT * FROM devices\n  WHERE properties.reported.connectivity IN ['wired', 'wifi']", fleet, "", []string{"dev-02", "dev-03"}, ""},
		{"docs is_defined lower case", "SELECT * FROM devices\n  WHERE is_defined(properties.reported.connectivity)", fleet, "", []string{"dev-01", "dev-02", "dev-03", "dev-04", "dev-05"}, ""},
		{"docs group keyword", "SELECT * FROM devices WHERE tags.[[group]].name = 'north'", fleet, "", []string{"dev-01"}, ""},
		{"explorer startswith", "SELECT * FROM devices WHERE STARTSWITH(devices.deviceId, 'test')", fleet, "", []string{"test-06", "test-07"}, ""},
		{"docs modules all", "SELECT * FROM devices.modules", modules, "moduleId", []string{"scanner", "scanner", "scanner", "$edgeAgent"}, ""},
		{"docs modules scanning", "SELECT * FROM devices.modules WHERE properties.reported.status = 'scanning'", modules, "", []string{"device1", "device2", "device3"}, ""},
		{"docs modules subset", "SELECT * FROM devices.modules\n  WHERE properties.reported.status = 'scanning'\n  AND deviceId IN ['device1', 'device2']", modules, "", []string{"device1", "device2"}, ""},
		{"cli edgeAgent", "SELECT * FROM devices.modules WHERE moduleId = '$edgeAgent'", modules, "", []string{"device1"}, ""},
		{"docs jobs by device", "SELECT * FROM devices.jobs\n  WHERE devices.jobs.deviceId = 'myDeviceId'", jobs, "jobId", []string{"myJobId", "otherJob"}, "deviceJob"},
		{"docs jobs by id", "SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 'myJobId'", jobs, "", []string{"myDeviceId", "dev2"}, "deviceJob"},
		{"docs jobs combined", "SELECT * FROM devices.jobs\n  WHERE devices.jobs.deviceId = 'myDeviceId'\n    AND devices.jobs.jobType = 'scheduleUpdateTwin'\n    AND devices.jobs.status = 'completed'\n    AND devices.jobs.createdTimeUtc > '2016-09-01'", jobs, "jobId", []string{"myJobId"}, "deviceJob"},
		{"jobs by id and status", "SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 'myJobId' AND devices.jobs.status = 'completed'", jobs, "", []string{"myDeviceId", "dev2"}, "deviceJob"},
		{"jobs outcome", "SELECT * FROM devices.jobs WHERE devices.jobs.outcome.deviceMethodResponse.status = 404", jobs, "jobId", []string{"otherJob"}, "deviceJob"},

		// Undefined and mixed types: excluded even under NOT.
		{"not eq excludes undefined and mixed", "SELECT * FROM devices WHERE NOT (tags.floor = 3)", fleet, "", []string{"dev-02", "dev-03"}, ""},
		{"ne excludes undefined and mixed", "SELECT * FROM devices WHERE tags.floor != 3", fleet, "", []string{"dev-02", "dev-03"}, ""},
		{"diamond ne", "SELECT * FROM devices WHERE tags.floor <> 3", fleet, "", []string{"dev-02", "dev-03"}, ""},
		{"string vs number 43", "SELECT * FROM devices WHERE tags.building = '43'", fleet, "", []string{"dev-01", "dev-02"}, ""},
		{"number vs string 43", "SELECT * FROM devices WHERE tags.building = 43", fleet, "", []string{"dev-04"}, ""},
		{"nin single type", "SELECT * FROM devices WHERE tags.building NIN ['43']", fleet, "", []string{"dev-03"}, ""},
		{"in mixed array", "SELECT * FROM devices WHERE tags.building IN ['43', 43]", fleet, "", []string{"dev-01", "dev-02", "dev-04"}, ""},
		{"nin mixed array is undefined for misses", "SELECT * FROM devices WHERE tags.building NIN ['43', 43]", fleet, "", none, ""},
		{"in empty array", "SELECT * FROM devices WHERE deviceId IN []", fleet, "", none, ""},
		{"nin empty array", "SELECT * FROM devices WHERE deviceId NIN []", fleet, "", all, ""},
		{"gt number skips null and string", "SELECT * FROM devices WHERE properties.reported.temp > 20", fleet, "", []string{"dev-02", "test-06"}, ""},
		{"eq null", "SELECT * FROM devices WHERE properties.reported.temp = null", fleet, "", []string{"dev-04"}, ""},
		{"null vs string is undefined", "SELECT * FROM devices WHERE properties.reported.connectivity != null", fleet, "", none, ""},
		{"objects do not compare, primitives do", "SELECT * FROM devices WHERE tags.location = tags.location", fleet, "", []string{"test-07"}, ""},
		{"or with undefined", "SELECT * FROM devices WHERE tags.ring = 'canary' OR tags.floor = 3", fleet, "", []string{"dev-01", "dev-02", "test-06"}, ""},
		{"not of or with undefined", "SELECT * FROM devices WHERE NOT (tags.ring = 'canary' OR tags.floor = 3)", fleet, "", none, ""},
		{"and", "SELECT * FROM devices WHERE tags.ring = 'canary' AND tags.floor = 3", fleet, "", []string{"dev-01"}, ""},
		{"property < property", "SELECT * FROM devices WHERE tags.floor < properties.reported.temp", fleet, "", []string{"dev-01", "dev-02", "dev-03", "test-06"}, ""},
		{"property > property", "SELECT * FROM devices WHERE tags.floor > properties.reported.temp", fleet, "", none, ""},
		{"constant on the left", "SELECT * FROM devices WHERE 20 < properties.reported.temp", fleet, "", []string{"dev-02", "test-06"}, ""},
		{"constant on the left ge", "SELECT * FROM devices WHERE 'dev-02' >= deviceId", fleet, "", []string{"dev-01", "dev-02"}, ""},
		{"compare two properties", "SELECT * FROM devices WHERE properties.desired.telemetryConfig.sendFrequencyInSecs = properties.reported.telemetryConfig.sendFrequencyInSecs", fleet, "", []string{"dev-01"}, ""},
		{"undefined constant", "SELECT * FROM devices WHERE tags.floor = undefined", fleet, "", none, ""},
		{"not undefined constant", "SELECT * FROM devices WHERE NOT (tags.floor = undefined)", fleet, "", none, ""},
		{"not is_defined", "SELECT * FROM devices WHERE NOT IS_DEFINED(tags.location)", fleet, "", []string{"dev-05"}, ""},

		// Case: values ordinal and case-sensitive; root names case-insensitive.
		{"value case-sensitive", "SELECT * FROM devices WHERE status = 'Enabled'", fleet, "", none, ""},
		{"root name case-insensitive", "SELECT * FROM devices WHERE Status = 'enabled'", fleet, "", []string{"dev-01", "dev-02", "dev-04", "dev-05", "test-06", "test-07"}, ""},
		{"tag keys case-sensitive", "SELECT * FROM devices WHERE tags.Location.region = 'US'", fleet, "", none, ""},
		{"Properties.Reported canonical", "SELECT * FROM devices WHERE Properties.Reported.fw = '2.0.0'", fleet, "", []string{"test-06"}, ""},
		{"ordinal string order", "SELECT * FROM devices WHERE tags.location.region > 'T'", fleet, "", []string{"dev-01", "dev-02", "dev-04", "test-06"}, ""},
		{"string time order", "SELECT * FROM devices WHERE lastActivityTime > '2026-01-01'", fleet, "", []string{"dev-01", "dev-02"}, ""},
		{"keywords any case", "select * from DEVICES where Tags.ring = 'canary' and NOT tags.floor = 1", fleet, "", []string{"dev-01"}, ""},

		// Operators, constants, functions.
		{"arithmetic", "SELECT * FROM devices WHERE properties.reported.temp * 2 >= 50", fleet, "", []string{"dev-02", "test-06"}, ""},
		{"modulo", "SELECT * FROM devices WHERE properties.reported.temp % 2 = 0", fleet, "", []string{"dev-01", "dev-03", "test-06"}, ""},
		{"add sub", "SELECT * FROM devices WHERE tags.floor + 1 - 2 = 2", fleet, "", []string{"dev-01", "test-06"}, ""},
		{"division by zero undefined", "SELECT * FROM devices WHERE NOT (properties.reported.temp / 0 = 1)", fleet, "", none, ""},
		{"hex", "SELECT * FROM devices WHERE tags.floor = 0x3", fleet, "", []string{"dev-01", "test-06"}, ""},
		{"negative", "SELECT * FROM devices WHERE -tags.floor = -3", fleet, "", []string{"dev-01", "test-06"}, ""},
		{"double quotes", `SELECT * FROM devices WHERE tags.location.plant = "Redmond43"`, fleet, "", []string{"dev-01"}, ""},
		{"unicode escape", `SELECT * FROM devices WHERE tags.location.plant = 'Red\u006dond43'`, fleet, "", []string{"dev-01"}, ""},
		{"devices prefix", "SELECT * FROM devices WHERE devices.deviceId = 'dev-03'", fleet, "", []string{"dev-03"}, ""},
		{"bracketed odd key", "SELECT * FROM devices WHERE tags.[[my key]] = 'odd'", fleet, "", []string{"test-06"}, ""},
		{"in ids", "SELECT * FROM devices WHERE deviceId IN ['dev-01', 'test-07']", fleet, "", []string{"dev-01", "test-07"}, ""},
		{"where true", "SELECT * FROM devices WHERE true", fleet, "", all, ""},
		{"string is not true", "SELECT * FROM devices WHERE 'true'", fleet, "", none, ""},
		{"number is not true", "SELECT * FROM devices WHERE tags.floor", fleet, "", none, ""},
		{"bool property", "SELECT * FROM devices WHERE properties.reported.fw", fleet, "", []string{"test-07"}, ""},
		{"endswith", "SELECT * FROM devices WHERE ENDSWITH(deviceId, '01')", fleet, "", []string{"dev-01"}, ""},
		{"startswith case-sensitive", "SELECT * FROM devices WHERE STARTSWITH(deviceId, 'TEST')", fleet, "", none, ""},
		{"not startswith of number undefined", "SELECT * FROM devices WHERE NOT STARTSWITH(tags.floor, '3')", fleet, "", []string{"dev-04"}, ""},
		{"is_null", "SELECT * FROM devices WHERE IS_NULL(properties.reported.temp)", fleet, "", []string{"dev-04"}, ""},
		{"is_string", "SELECT * FROM devices WHERE IS_STRING(properties.reported.temp)", fleet, "", []string{"test-07"}, ""},
		{"is_number", "SELECT * FROM devices WHERE IS_NUMBER(tags.floor)", fleet, "", []string{"dev-01", "dev-02", "dev-03", "test-06"}, ""},
		{"is_bool", "SELECT * FROM devices WHERE IS_BOOL(properties.reported.fw)", fleet, "", []string{"test-07"}, ""},
		{"is_object", "SELECT * FROM devices WHERE IS_OBJECT(tags.location)", fleet, "", []string{"dev-01", "dev-02", "dev-03", "dev-04", "test-06"}, ""},
		{"is_array", "SELECT * FROM devices WHERE IS_ARRAY(properties.reported.ips)", fleet, "", []string{"dev-05"}, ""},
		{"is_primitive", "SELECT * FROM devices WHERE IS_PRIMITIVE(tags.location)", fleet, "", []string{"test-07"}, ""},
		{"top", "SELECT TOP 2 * FROM devices WHERE status = 'enabled'", fleet, "", []string{"dev-01", "dev-02"}, ""},
		{"top zero", "SELECT TOP 0 * FROM devices", fleet, "", none, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rows, p := run(t, tc.src, tc.docs)
			key := tc.key
			if key == "" {
				key = "deviceId"
			}
			if got := ids(rows, key); !slices.Equal(got, tc.want) {
				t.Errorf("%s\n got %q\nwant %q", tc.src, got, tc.want)
			}
			want := tc.itemType
			if want == "" {
				want = "twin"
			}
			if p.ItemType() != want {
				t.Errorf("ItemType = %q, want %q", p.ItemType(), want)
			}
			// Program.Match and a compiled condition agree with Run.
			if p.q.Where != nil {
				c, err := CompileConditionFor(p.Source(), p.q.Where)
				if err != nil {
					t.Fatal(err)
				}
				n := 0
				for _, d := range tc.docs {
					if c.Match(d) != p.Match(d) {
						t.Fatalf("Condition.Match and Program.Match disagree on %v", d["deviceId"])
					}
					if c.Match(d) {
						n++
					}
				}
				if !p.q.HasTop && n != len(rows) {
					t.Errorf("Condition matched %d documents, Run returned %d", n, len(rows))
				}
			}
		})
	}
}

// TestDocExamplesRaw covers projections, aggregates and GROUP BY.
func TestDocExamplesRaw(t *testing.T) {
	fleet := decodeDocs(t, fleetJSON)
	tests := []struct{ name, src, want string }{
		{"docs group by status", "SELECT properties.reported.telemetryConfig.status AS status,\n    COUNT() AS numberOfDevices\n  FROM devices\n  GROUP BY properties.reported.telemetryConfig.status",
			`[{"numberOfDevices":3,"status":"Success"},{"numberOfDevices":2,"status":"Pending"},{"numberOfDevices":1,"status":"Error"},{"numberOfDevices":1}]`},
		{"docs count", "SELECT COUNT() as totalNumberOfDevices FROM devices", `[{"totalNumberOfDevices":7}]`},
		{"docs count lower case", "select count() AS numberOfDevices from devices", `[{"numberOfDevices":7}]`},
		{"count without alias", "SELECT COUNT() FROM devices", `[{"$1":7}]`},
		{"docs projection", "SELECT DeviceId, LastActivityTime FROM devices WHERE status = 'enabled' AND connectionState = 'Disconnected'",
			`[{"deviceId":"dev-02","lastActivityTime":"2026-01-02T00:00:00Z"},{"deviceId":"dev-04"},{"deviceId":"test-06","lastActivityTime":"2021-05-07T00:50:38.0543092Z"}]`},
		{"docs projection DeviceID", "SELECT DeviceID, LastActivityTime FROM devices WHERE deviceId = 'dev-03'", `[{"deviceId":"dev-03","lastActivityTime":"2025-12-01T00:00:00Z"}]`},
		{"projection alias and nested", "SELECT devices.deviceId, properties.reported.telemetryConfig AS cfg, tags.location.region FROM devices WHERE deviceId = 'dev-01'",
			`[{"cfg":{"configId":"db00ebf5","sendFrequencyInSecs":300,"status":"Success"},"deviceId":"dev-01","region":"US"}]`},
		{"projection of missing is empty row", "SELECT tags.nothing FROM devices WHERE deviceId = 'dev-05'", `[{}]`},
		{"top projection", "SELECT TOP 1 deviceId FROM devices WHERE tags.floor = 3", `[{"deviceId":"dev-01"}]`},
		{"all aggregates by region", "SELECT tags.location.region AS region, COUNT() AS n, AVG(properties.reported.temp) AS avgTemp, SUM(properties.reported.temp) AS sumTemp, MIN(properties.reported.fw) AS minFw, MAX(properties.reported.temp) AS maxTemp FROM devices GROUP BY tags.location.region",
			`[{"avgTemp":25.166666666666668,"maxTemp":30,"minFw":"1.1.0","n":3,"region":"US","sumTemp":75.5},` +
				`{"avgTemp":18,"maxTemp":18,"minFw":"1.2.0","n":1,"region":"EU","sumTemp":18},` +
				`{"maxTemp":null,"n":1,"region":"us"},` +
				`{"maxTemp":"hot","minFw":true,"n":2}]`},
		{"group by where top", "SELECT TOP 2 properties.reported.telemetryConfig.status AS status, COUNT() AS n FROM devices WHERE status = 'enabled' GROUP BY properties.reported.telemetryConfig.status",
			`[{"n":2,"status":"Success"},{"n":2,"status":"Pending"}]`},
		{"group by number key keeps types apart", "SELECT tags.floor, COUNT() AS n FROM devices GROUP BY tags.floor",
			`[{"floor":3,"n":2},{"floor":1,"n":1},{"floor":2,"n":1},{"floor":"2","n":1},{"n":2}]`},
		{"group by without projecting the key", "SELECT COUNT() AS n FROM devices GROUP BY connectionState", `[{"n":3},{"n":4}]`},
		{"group by root name any case", "SELECT ConnectionState, COUNT() AS n FROM devices GROUP BY connectionstate",
			`[{"connectionState":"Connected","n":3},{"connectionState":"Disconnected","n":4}]`},
		{"aggregates over nothing", "SELECT COUNT() AS n, SUM(properties.reported.temp) AS s, AVG(properties.reported.temp) AS a, MIN(tags.floor) AS lo FROM devices WHERE deviceId = 'nope'",
			`[{"n":0,"s":0}]`},
		{"group by over nothing", "SELECT tags.floor, COUNT() AS n FROM devices WHERE deviceId = 'nope' GROUP BY tags.floor", `[]`},
		{"min max across types", "SELECT MIN(tags.floor) AS lo, MAX(tags.floor) AS hi FROM devices", `[{"hi":"2","lo":1}]`},
		{"sum with a string is undefined", "SELECT SUM(tags.floor) AS s, COUNT() AS n FROM devices", `[{"n":7}]`},
		{"group by object key", "SELECT COUNT() AS n FROM devices GROUP BY tags.[[group]]", `[{"n":1},{"n":5},{"n":1}]`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rows, p := run(t, tc.src, fleet)
			if got := jsonText(t, rows); got != tc.want {
				t.Errorf("%s\n got %s\nwant %s", tc.src, got, tc.want)
			}
			if p.ItemType() != "raw" {
				t.Errorf("ItemType = %q, want raw", p.ItemType())
			}
		})
	}
}

// TestRunStopsAtTop checks that Run stops pulling documents after TOP rows.
func TestRunStopsAtTop(t *testing.T) {
	fleet := decodeDocs(t, fleetJSON)
	p := MustCompile("SELECT TOP 2 * FROM devices")
	pulled := 0
	rows, err := p.Run(func(yield func(any) bool) {
		for _, d := range fleet {
			pulled++
			if !yield(d) {
				return
			}
		}
	})
	if err != nil || len(rows) != 2 || pulled != 2 {
		t.Fatalf("rows=%d pulled=%d err=%v; want 2 rows after pulling 2", len(rows), pulled, err)
	}
}

// TestConditionTargets covers ParseCondition + CompileCondition as iotplan
// uses them for targets and job queryConditions, including "*".
func TestConditionTargets(t *testing.T) {
	fleet := decodeDocs(t, fleetJSON)
	tests := []struct {
		src  string
		want int
	}{
		{"*", 7},
		{"  *  ", 7},
		{"tags.ring = 'canary'", 2},
		{"tags.location.region = 'US' AND properties.reported.fw = '1.2.0'", 1},
		{"NOT (tags.ring = 'canary')", 1},
		{"deviceId NIN ['dev-01']", 6},
	}
	for _, tc := range tests {
		e, err := ParseCondition(tc.src)
		if err != nil {
			t.Fatalf("ParseCondition(%q): %v", tc.src, err)
		}
		c, err := CompileCondition(e)
		if err != nil {
			t.Fatalf("CompileCondition(%q): %v", tc.src, err)
		}
		n := 0
		for _, d := range fleet {
			if c.Match(d) {
				n++
			}
		}
		if n != tc.want {
			t.Errorf("%q matched %d twins, want %d", tc.src, n, tc.want)
		}
	}
}

// TestMatchNonJSONNumbers: documents built by hand with Go ints still compare.
func TestMatchNonJSONNumbers(t *testing.T) {
	c, err := CompileCondition(And(Eq(P("tags", "floor"), 3), In(P("tags", "n"), 1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	d := map[string]any{"tags": map[string]any{"floor": 3, "n": int64(2)}}
	if !c.Match(d) {
		t.Error("int-valued document did not match")
	}
}

// TestConcurrentUse: compiled conditions and programs are shared by
// goroutines (the local hub serves queries concurrently); run with -race.
func TestConcurrentUse(t *testing.T) {
	fleet := decodeDocs(t, fleetJSON)
	c, err := CompileCondition(mustCond("tags.building IN ['43', 43] OR STARTSWITH(deviceId, 'test')"))
	if err != nil {
		t.Fatal(err)
	}
	p := MustCompile("SELECT tags.location.region AS r, COUNT() AS n, AVG(properties.reported.temp) AS t FROM devices GROUP BY tags.location.region")
	want, _ := p.Run(source(fleet))
	done := make(chan string, 4)
	for g := 0; g < 4; g++ {
		go func() {
			for i := 0; i < 50; i++ {
				n := 0
				for _, d := range fleet {
					if c.Match(d) {
						n++
					}
				}
				rows, _ := p.Run(source(fleet))
				if n != 5 || jsonText(t, rows) != jsonText(t, want) {
					done <- "concurrent evaluation disagreed"
					return
				}
			}
			done <- ""
		}()
	}
	for g := 0; g < 4; g++ {
		if msg := <-done; msg != "" {
			t.Fatal(msg)
		}
	}
	if rows, err := p.Run(nil); err != nil || len(rows) != 0 {
		t.Fatalf("Run(nil) = %v, %v", rows, err)
	}
}

// TestDocExamplesConditions: the targetCondition / queryCondition examples of
// the automatic device management and jobs documentation, which iotplan
// targets use as they are.
func TestDocExamplesConditions(t *testing.T) {
	twins := decodeDocs(t, `[
{"deviceId":"MyDevice1","tags":{"environment":"test"},"properties":{"desired":{},"reported":{"chillerProperties":{"model":"4000x"}}},
 "configurations":{"myconfig":{"status":"Applied"}}},
{"deviceId":"MyDevice2","tags":{"environment":"prod"},"properties":{"desired":{},"reported":{"chillerProperties":{"model":"4000x"}}},
 "configurations":{"myconfig":{"status":"Targeted"}}},
{"deviceId":"MyDevice3","tags":{"environment":"test"},"properties":{"desired":{},"reported":{"chillerProperties":{"model":"5000"}}}}
]`)
	tests := []struct {
		cond string
		want []string
	}{
		{"tags.environment='test'", []string{"MyDevice1", "MyDevice3"}},
		{"properties.reported.chillerProperties.model='4000x'", []string{"MyDevice1", "MyDevice2"}},
		{"tags.environment='test' and properties.reported.chillerProperties.model='4000x'", []string{"MyDevice1"}},
		{"configurations.[[myconfig]].status = 'Applied'", []string{"MyDevice1"}},
		{"NOT (configurations.[[myconfig]].status = 'Applied')", []string{"MyDevice2"}},
		{"deviceId IN ['MyDevice1','MyDevice2']", []string{"MyDevice1", "MyDevice2"}},
		{"*", []string{"MyDevice1", "MyDevice2", "MyDevice3"}},
	}
	for _, tc := range tests {
		c, err := CompileCondition(mustCond(tc.cond))
		if err != nil {
			t.Fatalf("%s: %v", tc.cond, err)
		}
		got := []string{}
		for _, d := range twins {
			if c.Match(d) {
				got = append(got, d["deviceId"].(string))
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %q, want %q", tc.cond, got, tc.want)
		}
	}
}
