package hub_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iotplan/iotplan/internal/hub"
	"github.com/iotplan/iotplan/internal/hub/huberr"
	"github.com/iotplan/iotplan/internal/hub/hubtest"
	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/query"
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

// rawHub is a liveHub (iothubowner) on a hub that records its query events.
type rawHub struct {
	*liveHub

	mu     sync.Mutex
	events []hub.QueryEvent
}

// startDialectHub starts a hub in dialect d that records its query events.
func startDialectHub(t *testing.T, d query.Dialect) *rawHub {
	t.Helper()
	r := &rawHub{}
	h, _ := hubtest.StartWith(t, hub.Options{QueryDialect: d, OnQuery: func(ev hub.QueryEvent) {
		r.mu.Lock()
		r.events = append(r.events, ev)
		r.mu.Unlock()
	}}, dialectFleet)
	r.liveHub = newLiveHub(t, h)
	return r
}

// call sends body as JSON as iothubowner.
func (r *rawHub) call(method, path string, body any) liveResp {
	r.t.Helper()
	return r.do(method, path, "", "", jsonBody(body))
}

func (r *rawHub) query(q string) liveResp {
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

// checkLegacyError checks a hub error on the wire (checkWire) and its envelope's Message.
func checkLegacyError(t *testing.T, r liveResp, code huberr.Code, name, text string) {
	t.Helper()
	checkWire(t, r, code, name, false)
	if got, want := errorBody(t, r.body).Message, envelope(name, text); got != want {
		t.Errorf("Message\n got %s\nwant %s", got, want)
	}
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
		checkLegacyError(t, r.query(tc.q), huberr.ArgumentInvalid, "ArgumentInvalid", "The query is invalid: "+tc.msg)
		ev := r.lastEvent()
		if ev.Source != hub.QueryFromQuery || ev.Text != tc.q || !errors.Is(ev.Err, query.ErrUndocumented) {
			t.Errorf("%s: event %+v, want a rejected query event wrapping ErrUndocumented", tc.q, ev)
		}
	}
	if res := r.query("SELECT COUNT() AS n FROM devices WHERE STARTSWITH(devices.deviceId, 'door-') AND tags.x IN ['a']"); res.status != http.StatusOK || string(res.body) != `[{"n":4}]` {
		t.Errorf("documented query: %d %s", res.status, res.body)
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
		if res := r.query(tc.q); res.status != http.StatusOK {
			t.Errorf("%s: %d %s", tc.q, res.status, res.body)
		}
		if ev := r.lastEvent(); ev.Err != nil {
			t.Errorf("%s: event %+v", tc.q, ev)
		}
	}
	if res := r.query("SELECT * FROM devices WHERE IS_STRING(tags.x) AND ENDSWITH(deviceId, '01')"); res.status != http.StatusOK || !strings.Contains(string(res.body), `"door-01"`) || strings.Contains(string(res.body), `"door-02"`) {
		t.Errorf("extended query: %d %s", res.status, res.body)
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
	if res := r.call(http.MethodPut, "/jobs/v2/"+id, req); res.status != http.StatusOK {
		r.t.Fatalf("PUT job %s: %d %s", id, res.status, res.body)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		res := r.call(http.MethodGet, "/jobs/v2/"+id, nil)
		var j job
		if res.status != http.StatusOK || json.Unmarshal(res.body, &j) != nil {
			r.t.Fatalf("GET job %s: %d %s", id, res.status, res.body)
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

// configuration is config with the custom metric query "m".
func configuration(id, target, metric string) map[string]any {
	c := config(id, target)
	c["metrics"] = map[string]any{"queries": map[string]string{"m": metric}}
	return c
}

// TestADMDialect: target conditions and metric queries follow the hub's dialect, on PUT and
// on testQueries.
func TestADMDialect(t *testing.T) {
	t.Parallel()
	const fnMsg = " is not in IoT Hub's documented query language for twins and jobs (only IS_DEFINED, and STARTSWITH as reported working); iotplan dev --query-dialect extended accepts it"
	strict := startDialectHub(t, query.Documented)
	checkLegacyError(t, strict.call(http.MethodPut, "/configurations/c1", configuration("c1", "IS_STRING(tags.x)", "SELECT deviceId FROM devices")),
		huberr.InvalidConfigurationTargetCondition, "InvalidConfigurationTargetCondition", "The target condition is invalid: query: 1:1: IS_STRING"+fnMsg+".")
	if ev := strict.lastEvent(); ev.Source != hub.QueryFromADM || ev.Text != "IS_STRING(tags.x)" || !errors.Is(ev.Err, query.ErrUndocumented) {
		t.Errorf("target event %+v", ev)
	}
	checkLegacyError(t, strict.call(http.MethodPut, "/configurations/c2", configuration("c2", "tags.site = 'hq'", "SELECT deviceId FROM devices WHERE ENDSWITH(deviceId, '1')")),
		huberr.InvalidConfigurationCustomMetricsQuery, "InvalidConfigurationCustomMetricsQuery", `The custom metric query "m" is invalid: query: 1:36: ENDSWITH`+fnMsg+".")
	tq := strict.call(http.MethodPost, "/configurations/testQueries", map[string]any{
		"targetCondition": "tags.n = 1e3", "customMetricQueries": map[string]string{"m": "SELECT TOP(1) deviceId FROM devices"}})
	var res struct {
		TargetConditionError    string
		CustomMetricQueryErrors map[string]string
	}
	if tq.status != http.StatusOK || json.Unmarshal(tq.body, &res) != nil ||
		!strings.Contains(res.TargetConditionError, "number 1e3 with an exponent") || !strings.Contains(res.CustomMetricQueryErrors["m"], "TOP(n) with parentheses") {
		t.Errorf("testQueries: %d %s", tq.status, tq.body)
	}

	extended := startDialectHub(t, query.Extended)
	if res := extended.call(http.MethodPut, "/configurations/c1", configuration("c1", "IS_STRING(tags.x)", "SELECT deviceId FROM devices WHERE ENDSWITH(deviceId, '1')")); res.status != http.StatusOK {
		t.Errorf("extended hub: %d %s", res.status, res.body)
	}
	if ev := extended.lastEvent(); ev.Source != hub.QueryFromADM || ev.Err != nil {
		t.Errorf("extended hub: event %+v", ev)
	}
}

// TestQueryPagesAndLength: every page request of a statement is reported once (a page served
// from the cursor as accepted), and a statement over query.MaxLength UTF-16 code units (though
// fewer runes) is the parser's positioned 400 ArgumentInvalid, reported as rejected.
func TestQueryPagesAndLength(t *testing.T) {
	t.Parallel()
	r := startDialectHub(t, query.Documented)
	const q = "SELECT deviceId FROM devices"
	var ids []string
	token := ""
	for page := 1; ; page++ {
		hdr := []string{hubapi.HeaderMaxItemCount, "1"}
		if token != "" {
			hdr = append(hdr, hubapi.HeaderContinuation, token)
		}
		res := r.do(http.MethodPost, "/devices/query", "", "", jsonBody(map[string]string{"query": q}), hdr...)
		var rows []struct{ DeviceID string }
		if res.status != http.StatusOK || json.Unmarshal(res.body, &rows) != nil || len(rows) != 1 {
			t.Fatalf("page %d: %d %s", page, res.status, res.body)
		}
		ids = append(ids, rows[0].DeviceID)
		if token = res.header.Get(hubapi.HeaderContinuation); token == "" {
			break
		}
		if page > 4 {
			t.Fatalf("more than 4 pages: %v", ids)
		}
	}
	if len(ids) != 4 {
		t.Fatalf("pages gave %v", ids)
	}
	r.mu.Lock()
	events := append([]hub.QueryEvent(nil), r.events...)
	r.mu.Unlock()
	if len(events) != len(ids) {
		t.Errorf("%d page requests, %d query events: %+v", len(ids), len(events), events)
	}
	for _, ev := range events {
		if ev.Source != hub.QueryFromQuery || ev.Text != q || ev.Err != nil {
			t.Errorf("page event %+v", ev)
		}
	}

	for _, fill := range []string{strings.Repeat("a", query.MaxLength), strings.Repeat("😀", query.MaxLength/2)} {
		long := "SELECT * FROM devices WHERE deviceId = '" + fill + "'"
		n := query.TextLength(long)
		checkLegacyError(t, r.query(long), huberr.ArgumentInvalid, "ArgumentInvalid",
			fmt.Sprintf("The query is invalid: query is %d characters long; the limit is %d (line 1, column 1).", n, query.MaxLength))
		var qe *query.Error
		if ev := r.lastEvent(); ev.Source != hub.QueryFromQuery || ev.Text != long || !errors.As(ev.Err, &qe) || errors.Is(ev.Err, query.ErrUndocumented) {
			t.Errorf("query of %d runes, %d UTF-16 units: event source %s, err %v", len([]rune(long)), n, ev.Source, ev.Err)
		}
	}
}
