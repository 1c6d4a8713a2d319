package hub_test

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iotplan/iotplan/internal/hub"
	"github.com/iotplan/iotplan/internal/hub/hubtest"
	"github.com/iotplan/iotplan/internal/query"
	"github.com/iotplan/iotplan/internal/sas"
)

// These tests talk to the real local hub over HTTPS with plain net/http, so they pin the wire
// answers of the hub's query dialects: the strict default and --query-dialect extended.

const dialectFleet = `
group "doors" {
  count = 4
  id    = "door-%02d"
  tags = {
    x    = "a"
    site = "hq"
  }
}
`

// rawHub sends REST requests to a hub with its iothubowner key.
type rawHub struct {
	t      *testing.T
	h      *hub.Hub
	client *http.Client
	auth   string

	mu     sync.Mutex
	events []hub.QueryEvent
}

// startDialectHub starts a hub in dialect d that records its query events.
func startDialectHub(t *testing.T, d query.Dialect) *rawHub {
	t.Helper()
	r := &rawHub{t: t}
	r.h, _ = hubtest.StartWith(t, hub.Options{QueryDialect: d, OnQuery: func(ev hub.QueryEvent) {
		r.mu.Lock()
		r.events = append(r.events, ev)
		r.mu.Unlock()
	}}, dialectFleet)
	cs, err := sas.ParseConnectionString(r.h.ServiceConnectionString())
	if err != nil {
		t.Fatal(err)
	}
	if r.auth, err = cs.Token(time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	r.client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: r.h.RootCAs(), MinVersion: tls.VersionTLS12}}}
	t.Cleanup(r.client.CloseIdleConnections)
	return r
}

// call sends body as JSON and returns the status, the iothub-errorcode header and the body.
func (r *rawHub) call(method, path string, body any) (int, string, []byte) {
	r.t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		r.t.Fatal(err)
	}
	req, err := http.NewRequest(method, "https://"+r.h.HostName()+path+"?api-version=2021-04-12", strings.NewReader(string(b)))
	if err != nil {
		r.t.Fatal(err)
	}
	req.Header.Set("Authorization", r.auth)
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	res, err := r.client.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer res.Body.Close()
	out, err := io.ReadAll(res.Body)
	if err != nil {
		r.t.Fatal(err)
	}
	return res.StatusCode, res.Header.Get("iothub-errorcode"), out
}

func (r *rawHub) query(q string) (int, string, []byte) {
	r.t.Helper()
	return r.call(http.MethodPost, "/devices/query", map[string]string{"query": q})
}

// lastEvent is the last query event the hub reported.
func (r *rawHub) lastEvent() hub.QueryEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.events) == 0 {
		r.t.Fatal("no query event recorded")
	}
	return r.events[len(r.events)-1]
}

// envelope is the Message the hub's legacy envelope carries for code and text: the text's
// semicolons become commas, as ';' separates the code from the text.
func envelope(code, text string) string {
	return "ErrorCode:" + code + ";" + strings.ReplaceAll(text, ";", ",")
}

// legacyMessage is the Message of the hub's legacy error envelope.
func legacyMessage(t *testing.T, body []byte) string {
	t.Helper()
	var env struct{ Message string }
	if err := json.Unmarshal(body, &env); err != nil {
		t.Fatalf("error body %s: %v", body, err)
	}
	return env.Message
}

// rejected: one statement per undocumented construct, with the hub's answer.
var rejected = []struct{ q, msg string }{
	{"SELECT * FROM devices WHERE IS_STRING(tags.x)",
		"IS_STRING is not in IoT Hub's documented query language for twins and jobs (only IS_DEFINED, and STARTSWITH as reported working); iotplan dev --query-dialect extended accepts it (line 1, column 29)."},
	{"SELECT * FROM devices WHERE ENDSWITH(deviceId, '01')",
		"ENDSWITH is not in IoT Hub's documented query language for twins and jobs (only IS_DEFINED, and STARTSWITH as reported working); iotplan dev --query-dialect extended accepts it (line 1, column 29)."},
	{"SELECT TOP 1 tags.x AS x, COUNT() AS n FROM devices GROUP BY tags.x",
		"TOP with GROUP BY is not in IoT Hub's documented query language (the docs do not say whether TOP limits the groups or the twins); iotplan dev --query-dialect extended accepts it (line 1, column 8)."},
	{"SELECT TOP(2) * FROM devices",
		"TOP(n) with parentheses is not in IoT Hub's documented query language (write TOP n); iotplan dev --query-dialect extended accepts it (line 1, column 11)."},
	{"SELECT * FROM devices WHERE tags.n = 2.5e+06",
		"number 2.5e+06 with an exponent is not in IoT Hub's documented query language (write it in plain decimal: 2500000); iotplan dev --query-dialect extended accepts it (line 1, column 38)."},
	{`SELECT * FROM devices WHERE tags.x = 'a\nb'`,
		`string escape \n is not in IoT Hub's documented query language (strings allow only \' \" \\ and \uXXXX; write \u000a); iotplan dev --query-dialect extended accepts it (line 1, column 40).`},
	{"SELECT * FROM devices WHERE tags.x = 'it''s'",
		`a doubled quote '' inside a string is not in IoT Hub's documented query language (write \'); iotplan dev --query-dialect extended accepts it (line 1, column 41).`},
}

// TestStrictHubRejectsUndocumentedQueries: the default hub answers 400 ArgumentInvalid with
// the construct and its position, and reports the rejection to OnQuery.
func TestStrictHubRejectsUndocumentedQueries(t *testing.T) {
	t.Parallel()
	r := startDialectHub(t, query.Documented)
	for _, tc := range rejected {
		status, code, body := r.query(tc.q)
		want := envelope("ArgumentInvalid", "The query is invalid: "+tc.msg)
		if status != http.StatusBadRequest || code != "ArgumentInvalid" || legacyMessage(t, body) != want {
			t.Errorf("%s\n got %d %s %s\nwant 400 ArgumentInvalid %s", tc.q, status, code, body, want)
		}
		ev := r.lastEvent()
		if ev.Source != hub.QueryFromQuery || ev.Text != tc.q || !errors.Is(ev.Err, query.ErrUndocumented) {
			t.Errorf("%s: event %+v, want a rejected query event wrapping ErrUndocumented", tc.q, ev)
		}
	}
	status, _, body := r.query("SELECT COUNT() AS n FROM devices WHERE STARTSWITH(devices.deviceId, 'door-') AND tags.x IN ['a']")
	if status != http.StatusOK || string(body) != `[{"n":4}]` {
		t.Errorf("documented query: %d %s", status, body)
	}
	if ev := r.lastEvent(); ev.Err != nil {
		t.Errorf("documented query event: %+v", ev)
	}
}

// TestExtendedHubAcceptsThem: with QueryDialect Extended every one of them runs, as before
// dialects existed.
func TestExtendedHubAcceptsThem(t *testing.T) {
	t.Parallel()
	r := startDialectHub(t, query.Extended)
	for _, tc := range rejected {
		if status, _, body := r.query(tc.q); status != http.StatusOK {
			t.Errorf("%s: %d %s", tc.q, status, body)
		}
		if ev := r.lastEvent(); ev.Err != nil {
			t.Errorf("%s: event %+v", tc.q, ev)
		}
	}
	if status, _, body := r.query("SELECT * FROM devices WHERE IS_STRING(tags.x) AND ENDSWITH(deviceId, '01')"); status != http.StatusOK || !strings.Contains(string(body), `"door-01"`) || strings.Contains(string(body), `"door-02"`) {
		t.Errorf("extended query: %d %s", status, body)
	}
}

// job is the part of a JobResponse these tests read (as the wire spells it).
type job struct {
	Status              string `json:"status"`
	FailureReason       string `json:"failureReason"`
	DeviceJobStatistics *struct {
		SucceededCount int `json:"succeededCount"`
	} `json:"deviceJobStatistics"`
}

// runJob creates a twin update job on cond (a JobRequest as https://learn.microsoft.com/rest/api/iothub/service/jobs
// shows it) and
// waits for it to end.
func (r *rawHub) runJob(id, cond string) job {
	r.t.Helper()
	req := map[string]any{"jobId": id, "type": "scheduleUpdateTwin", "queryCondition": cond,
		"updateTwin": map[string]any{"etag": "*", "tags": map[string]any{"touched": true}},
		"startTime":  time.Now().UTC().Format(time.RFC3339)}
	if status, _, body := r.call(http.MethodPut, "/jobs/v2/"+id, req); status != http.StatusOK {
		r.t.Fatalf("PUT job %s: %d %s", id, status, body)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		status, _, body := r.call(http.MethodGet, "/jobs/v2/"+id, nil)
		var j job
		if status != http.StatusOK || json.Unmarshal(body, &j) != nil {
			r.t.Fatalf("GET job %s: %d %s", id, status, body)
		}
		if j.Status == "completed" || j.Status == "failed" || j.Status == "cancelled" {
			return j
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("job %s still %s", id, j.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestJobConditionDialect: PUT accepts a job whatever its condition (Azure parses it when
// the job runs); a condition outside the dialect then fails the job with the parse error.
func TestJobConditionDialect(t *testing.T) {
	t.Parallel()
	const cond = "IS_STRING(tags.x)"
	strict := startDialectHub(t, query.Documented)
	j := strict.runJob("strict-job", cond)
	want := "The job's queryCondition could not be parsed: query: 1:1: IS_STRING is not in IoT Hub's documented query language for twins and jobs (only IS_DEFINED, and STARTSWITH as reported working); iotplan dev --query-dialect extended accepts it"
	if j.Status != "failed" || j.FailureReason != want {
		t.Errorf("strict hub: job %s, failureReason %q\nwant failed, %q", j.Status, j.FailureReason, want)
	}
	if ev := strict.lastEvent(); ev.Source != hub.QueryFromJob || ev.Text != cond || !errors.Is(ev.Err, query.ErrUndocumented) {
		t.Errorf("strict hub: event %+v", ev)
	}
	if j := strict.runJob("star-job", "*"); j.Status != "completed" || j.DeviceJobStatistics == nil || j.DeviceJobStatistics.SucceededCount != 4 {
		t.Errorf(`strict hub: job on "*": %+v`, j)
	}

	extended := startDialectHub(t, query.Extended)
	j = extended.runJob("extended-job", cond)
	if j.Status != "completed" || j.DeviceJobStatistics == nil || j.DeviceJobStatistics.SucceededCount != 4 {
		t.Errorf("extended hub: job %+v", j)
	}
	if ev := extended.lastEvent(); ev.Source != hub.QueryFromJob || ev.Err != nil {
		t.Errorf("extended hub: event %+v", ev)
	}
}

// configuration is a PUT /configurations body.
func configuration(id, target, metric string) map[string]any {
	return map[string]any{
		"id":              id,
		"content":         map[string]any{"deviceContent": map[string]any{"properties.desired.mode": "eco"}},
		"targetCondition": target,
		"priority":        1,
		"metrics":         map[string]any{"queries": map[string]string{"m": metric}},
	}
}

// TestADMDialect: target conditions and metric queries follow the hub's dialect, on PUT and
// on testQueries.
func TestADMDialect(t *testing.T) {
	t.Parallel()
	const fnMsg = " is not in IoT Hub's documented query language for twins and jobs (only IS_DEFINED, and STARTSWITH as reported working); iotplan dev --query-dialect extended accepts it"
	strict := startDialectHub(t, query.Documented)
	status, code, body := strict.call(http.MethodPut, "/configurations/c1", configuration("c1", "IS_STRING(tags.x)", "SELECT deviceId FROM devices"))
	if want := envelope("InvalidConfigurationTargetCondition", "The target condition is invalid: query: 1:1: IS_STRING"+fnMsg+"."); status != http.StatusBadRequest || code != "InvalidConfigurationTargetCondition" || legacyMessage(t, body) != want {
		t.Errorf("target: %d %s %s\nwant %s", status, code, body, want)
	}
	if ev := strict.lastEvent(); ev.Source != hub.QueryFromADM || ev.Text != "IS_STRING(tags.x)" || !errors.Is(ev.Err, query.ErrUndocumented) {
		t.Errorf("target event %+v", ev)
	}
	status, code, body = strict.call(http.MethodPut, "/configurations/c2", configuration("c2", "tags.site = 'hq'", "SELECT deviceId FROM devices WHERE ENDSWITH(deviceId, '1')"))
	if want := envelope("InvalidConfigurationCustomMetricsQuery", `The custom metric query "m" is invalid: query: 1:36: ENDSWITH`+fnMsg+"."); status != http.StatusBadRequest || code != "InvalidConfigurationCustomMetricsQuery" || legacyMessage(t, body) != want {
		t.Errorf("metric: %d %s %s\nwant %s", status, code, body, want)
	}
	status, _, body = strict.call(http.MethodPost, "/configurations/testQueries", map[string]any{
		"targetCondition": "tags.n = 1e3", "customMetricQueries": map[string]string{"m": "SELECT TOP(1) deviceId FROM devices"}})
	var res struct {
		TargetConditionError    string
		CustomMetricQueryErrors map[string]string
	}
	if status != http.StatusOK || json.Unmarshal(body, &res) != nil ||
		!strings.Contains(res.TargetConditionError, "number 1e3 with an exponent") || !strings.Contains(res.CustomMetricQueryErrors["m"], "TOP(n) with parentheses") {
		t.Errorf("testQueries: %d %s", status, body)
	}

	extended := startDialectHub(t, query.Extended)
	if status, _, body := extended.call(http.MethodPut, "/configurations/c1", configuration("c1", "IS_STRING(tags.x)", "SELECT deviceId FROM devices WHERE ENDSWITH(deviceId, '1')")); status != http.StatusOK {
		t.Errorf("extended hub: %d %s", status, body)
	}
	if ev := extended.lastEvent(); ev.Source != hub.QueryFromADM || ev.Err != nil {
		t.Errorf("extended hub: event %+v", ev)
	}
}
