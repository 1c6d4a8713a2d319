package query

import (
	"encoding/json"
	"testing"
)

// fleetJSON is the fixture fleet: twins shaped like the hub's (the first is
// the sample twin of the query-twins docs page), with deliberate gaps and
// type mixes so that undefined and mixed-type comparisons are exercised.
const fleetJSON = `[
{"deviceId":"dev-01","status":"enabled","connectionState":"Connected","lastActivityTime":"2026-01-01T00:00:00Z","version":3,
 "tags":{"location":{"region":"US","plant":"Redmond43"},"building":"43","floor":3,"group":{"name":"north"},"ring":"canary"},
 "properties":{"desired":{"telemetryConfig":{"configId":"db00ebf5","sendFrequencyInSecs":300},"$version":4},
  "reported":{"connectivity":{"type":"cellular"},"telemetryConfig":{"configId":"db00ebf5","sendFrequencyInSecs":300,"status":"Success"},"fw":"1.2.0","temp":20,"$version":7}}},
{"deviceId":"dev-02","status":"enabled","connectionState":"Disconnected","lastActivityTime":"2026-01-02T00:00:00Z","version":5,
 "tags":{"location":{"region":"US","plant":"Austin"},"building":"43","floor":1,"ring":"canary"},
 "properties":{"desired":{},"reported":{"connectivity":"wifi","telemetryConfig":{"sendFrequencyInSecs":30,"status":"Pending"},"fw":"1.1.0","temp":25.5}}},
{"deviceId":"dev-03","status":"disabled","connectionState":"Disconnected","lastActivityTime":"2025-12-01T00:00:00Z","version":2,
 "tags":{"location":{"region":"EU"},"building":"44","floor":2},
 "properties":{"desired":{},"reported":{"connectivity":"wired","telemetryConfig":{"sendFrequencyInSecs":60,"status":"Success"},"fw":"1.2.0","temp":18}}},
{"deviceId":"dev-04","status":"enabled","connectionState":"Disconnected","version":1,
 "tags":{"location":{"region":"us"},"building":43,"floor":"2"},
 "properties":{"desired":{},"reported":{"connectivity":"WIFI","telemetryConfig":{"sendFrequencyInSecs":"60","status":"Error"},"temp":null}}},
{"deviceId":"dev-05","status":"enabled","connectionState":"Connected","version":1,
 "tags":{},
 "properties":{"desired":{},"reported":{"connectivity":null,"ips":["10.0.0.1"]}}},
{"deviceId":"test-06","status":"enabled","connectionState":"Disconnected","lastActivityTime":"2021-05-07T00:50:38.0543092Z","version":4,
 "tags":{"location":{"region":"US"},"floor":3,"group":{"name":"south"},"my key":"odd"},
 "properties":{"desired":{},"reported":{"telemetryConfig":{"sendFrequencyInSecs":120,"status":"Success"},"fw":"2.0.0","temp":30}}},
{"deviceId":"test-07","status":"enabled","connectionState":"Connected","version":1,
 "tags":{"location":"US","ring":"broad"},
 "properties":{"desired":{},"reported":{"telemetryConfig":{"status":"Pending"},"fw":true,"temp":"hot"}}}
]`

const modulesJSON = `[
{"deviceId":"device1","moduleId":"scanner","properties":{"desired":{},"reported":{"status":"scanning"}}},
{"deviceId":"device2","moduleId":"scanner","properties":{"desired":{},"reported":{"status":"scanning"}}},
{"deviceId":"device3","moduleId":"scanner","properties":{"desired":{},"reported":{"status":"scanning"}}},
{"deviceId":"device1","moduleId":"$edgeAgent","properties":{"desired":{},"reported":{"status":"idle"}}}
]`

// jobsJSON are devices.jobs rows (shape from the query-jobs docs page).
const jobsJSON = `[
{"deviceId":"myDeviceId","jobId":"myJobId","jobType":"scheduleUpdateTwin","status":"completed",
 "startTimeUtc":"2016-09-29T18:18:52.7418462","endTimeUtc":"2016-09-29T18:20:52.7418462",
 "createdDateTimeUtc":"2016-09-29T18:18:56.7787107Z","lastUpdatedDateTimeUtc":"2016-09-29T18:18:56.8894408Z",
 "outcome":{"deviceMethodResponse":null}},
{"deviceId":"myDeviceId","jobId":"otherJob","jobType":"scheduleDeviceMethod","status":"failed",
 "createdDateTimeUtc":"2016-08-01T10:00:00Z","outcome":{"deviceMethodResponse":{"status":404,"payload":null}}},
{"deviceId":"dev2","jobId":"myJobId","jobType":"scheduleUpdateTwin","status":"completed",
 "createdDateTimeUtc":"2016-09-30T09:00:00Z","outcome":{"deviceMethodResponse":null}}
]`

func decodeDocs(t testing.TB, s string) []map[string]any {
	t.Helper()
	var docs []map[string]any
	if err := json.Unmarshal([]byte(s), &docs); err != nil {
		t.Fatal(err)
	}
	return docs
}

func source(docs []map[string]any) func(func(any) bool) {
	return func(yield func(any) bool) {
		for _, d := range docs {
			if !yield(d) {
				return
			}
		}
	}
}

// run parses (in the Extended dialect: these tests pin the evaluator, which runs both
// dialects), compiles and runs src over docs, failing the test on error.
func run(t *testing.T, src string, docs []map[string]any) ([]any, *Program) {
	t.Helper()
	q, err := ParseDialect(src, Extended)
	if err != nil {
		t.Fatalf("ParseDialect(%q, Extended): %v", src, err)
	}
	p, err := Compile(q)
	if err != nil {
		t.Fatalf("Compile(%q): %v", src, err)
	}
	rows, err := p.Run(source(docs))
	if err != nil {
		t.Fatalf("Run(%q): %v", src, err)
	}
	return rows, p
}

// ids lists the value of key in each row (rows are documents or maps).
func ids(rows []any, key string) []string {
	out := []string{}
	for _, r := range rows {
		s, _ := r.(map[string]any)[key].(string)
		out = append(out, s)
	}
	return out
}

func jsonText(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
