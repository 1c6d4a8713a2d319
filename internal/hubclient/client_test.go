package hubclient

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/reconcile"
)

var (
	_ reconcile.Querier   = (*Client)(nil)
	_ reconcile.JobRunner = (*Client)(nil)
)

var testKey = base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))

func TestParseError(t *testing.T) {
	cases := []struct {
		name   string
		status int
		header string
		body   string
		want   Error
	}{
		{"legacy envelope with header", 404, "DeviceNotFound",
			`{"Message":"ErrorCode:DeviceNotFound;Device myDeviceId not found.","ExceptionMessage":"Tracking ID:abc-G:0-TimeStamp:11/10/2016 08:37:23"}`,
			Error{Status: 404, Code: 404001, Name: "DeviceNotFound", Message: "Device myDeviceId not found."}},
		{"JSON in Message (direct methods)", 404, "",
			`{"Message":"{\"errorCode\":404103,\"trackingId\":\"x\",\"message\":\"Timed out waiting for device to connect.\",\"info\":{\"timeout\":\"00:00:00\"},\"timestampUtc\":\"2019-11-12T22:27:46.5615872Z\"}","ExceptionMessage":""}`,
			Error{Status: 404, Code: 404103, Name: "DeviceNotOnline", Message: "Timed out waiting for device to connect."}},
		{"legacy without header", 400, "",
			`{"Message":"ErrorCode:ArgumentNull;BadRequest","ExceptionMessage":""}`,
			Error{Status: 400, Code: 400005, Name: "ArgumentNull", Message: "BadRequest"}},
		{"bare MQTT-style object", 400, "",
			`{"errorCode":400004,"trackingId":"t","message":"bad thing"}`,
			Error{Status: 400, Code: 400004, Name: "ArgumentInvalid", Message: "bad thing"}},
		{"header only", 429, "ThrottlingException", ``,
			Error{Status: 429, Code: 429001, Name: "ThrottlingException", Message: "Too Many Requests"}},
		{"unknown name keeps the name", 409, "SomethingNew", `{"Message":"ErrorCode:SomethingNew;odd"}`,
			Error{Status: 409, Name: "SomethingNew", Message: "odd"}},
		{"not JSON", 502, "", "<html><body>Bad   gateway</body></html>",
			Error{Status: 502, Message: "<html><body>Bad gateway</body></html>"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := http.Header{}
			if c.header != "" {
				h.Set(hubapi.HeaderErrorCode, c.header)
			}
			got := parseError(c.status, h, []byte(c.body))
			got.retryAfter = 0
			if *got != c.want {
				t.Fatalf("got  %+v\nwant %+v", *got, c.want)
			}
		})
	}
	long := parseError(500, nil, []byte(strings.Repeat("x", 5000)))
	if len(long.Message) > maxMessage+len("…") {
		t.Errorf("message not bounded: %d bytes", len(long.Message))
	}
	e := &Error{Status: 404, Code: 404002, Name: "JobNotFound", Message: "Job x not found", Op: "job.get"}
	if e.Error() != "iot hub job.get: JobNotFound (404002): Job x not found" {
		t.Errorf("Error() = %q", e.Error())
	}
	if !IsCode(fmt.Errorf("wrapped: %w", e), 404002) || !IsStatus(e, 404) || IsCode(e, 404001) {
		t.Error("IsCode/IsStatus")
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if d := parseRetryAfter("7", now); d != 7*time.Second {
		t.Errorf("seconds: %v", d)
	}
	if d := parseRetryAfter(now.Add(3*time.Second).Format(http.TimeFormat), now); d != 3*time.Second {
		t.Errorf("date: %v", d)
	}
	if d := parseRetryAfter("soon", now); d != 0 {
		t.Errorf("garbage: %v", d)
	}
	p := retryPolicy{attempts: 5, base: 100 * time.Millisecond, max: 400 * time.Millisecond}
	for n := 1; n <= 6; n++ {
		step := min(p.base<<(n-1), p.max)
		for range 50 {
			if d := p.delay(n, 0); d < step/2 || d > step {
				t.Fatalf("delay(%d) = %v outside [%v, %v]", n, d, step/2, step)
			}
		}
	}
	if d := p.delay(1, 2*time.Second); d != 2*time.Second {
		t.Errorf("Retry-After ignored: %v", d)
	}
	if d := p.delay(1, time.Hour); d != maxRetryAfter {
		t.Errorf("Retry-After not capped: %v", d)
	}
}

func TestCallKind(t *testing.T) {
	for _, c := range []struct{ method, path, want string }{
		{"POST", "/devices/query", "query"},
		{"PUT", "/jobs/v2/iotplan-x-1", "job.create"},
		{"GET", "/jobs/v2/iotplan-x-1", "job.get"},
		{"GET", "/jobs/v2/query", "job.list"},
		{"POST", "/jobs/v2/j/cancel", "job.cancel"},
		{"GET", "/twins/d1", "twin.get"},
		{"PATCH", "/twins/d1", "twin.update"},
		{"PUT", "/twins/d1", "twin.replace"},
		{"POST", "/twins/d1/methods", "method.invoke"},
		{"GET", "/devices/d1", "device.get"},
		{"PUT", "/devices/d1", "device.put"},
		{"DELETE", "/devices/d1", "device.delete"},
		{"GET", "/devices", "device.list"},
		{"GET", "/statistics/devices", "other"},
	} {
		if got := callKind(c.method, c.path); got != c.want {
			t.Errorf("%s %s = %q, want %q", c.method, c.path, got, c.want)
		}
	}
}

func TestNewValidatesWithoutEchoingTheKey(t *testing.T) {
	for _, cs := range []string{
		"",
		"HostName=h;SharedAccessKey=" + testKey,
		"HostName=h;DeviceId=d;SharedAccessKey=" + testKey,
		"HostName=h;SharedAccessKeyName=iothubowner;SharedAccessKey=not*base64",
		"garbage " + testKey,
	} {
		_, err := New(cs)
		if err == nil {
			t.Errorf("New(%q) accepted", cs)
			continue
		}
		if strings.Contains(err.Error(), testKey) || strings.Contains(err.Error(), "not*base64") {
			t.Errorf("error echoes the key: %v", err)
		}
	}
	c, err := New("HostName=myhub.azure-devices.net;SharedAccessKeyName=iothubowner;SharedAccessKey=" + testKey)
	if err != nil {
		t.Fatal(err)
	}
	if c.HostName() != "myhub.azure-devices.net" {
		t.Errorf("host %q", c.HostName())
	}
}

// faultServer is a TLS server that answers from a script, to exercise the client's retry and
// ambiguity handling with failures a healthy hub does not produce on demand (5xx, dropped
// connections). The client's behaviour against the real local hub is tested in hub_test.go.
type faultServer struct {
	mu    sync.Mutex
	log   []string
	reply func(n int, r *http.Request, w http.ResponseWriter) // n counts requests from 1
}

func (f *faultServer) start(t *testing.T, opts ...Option) *Client {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.log = append(f.log, r.Method+" "+r.URL.Path)
		n := len(f.log)
		f.mu.Unlock()
		if r.URL.Query().Get("api-version") == "" || !strings.HasPrefix(r.Header.Get("Authorization"), "SharedAccessSignature ") {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		f.reply(n, r, w)
	}))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "https://")
	c, err := New("HostName="+host+";SharedAccessKeyName=iothubowner;SharedAccessKey="+testKey,
		append([]Option{WithHTTPClient(srv.Client()), WithRetry(4, time.Millisecond, 4*time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func hubError(w http.ResponseWriter, status int, name, msg string) {
	w.Header().Set(hubapi.HeaderErrorCode, name)
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"Message":"ErrorCode:%s;%s","ExceptionMessage":""}`, name, msg)
}

func TestIdempotentCallsAreRetried(t *testing.T) {
	f := &faultServer{reply: func(n int, r *http.Request, w http.ResponseWriter) {
		switch n {
		case 1:
			hubError(w, 503, "ServiceUnavailable", "busy")
		case 2:
			w.Header().Set("Retry-After", "0")
			hubError(w, 429, "ThrottlingException", "slow down")
		default:
			io.WriteString(w, `{"jobId":"j","type":"scheduleUpdateTwin","status":"running","deviceJobStatistics":{"deviceCount":2,"succeededCount":1,"failedCount":0,"runningCount":1,"pendingCount":0}}`)
		}
	}}
	c := f.start(t)
	j, err := c.GetJob(context.Background(), "j")
	if err != nil {
		t.Fatal(err)
	}
	if j.Status != "running" || j.DeviceJobStatistics == nil || j.DeviceJobStatistics.SucceededCount != 1 {
		t.Errorf("job %+v", j)
	}
	if got := c.Calls()["job.get"]; got != 3 {
		t.Errorf("job.get calls = %d, want 3 (every attempt counts)", got)
	}

	// Bounded: a hub that keeps failing gives up after the policy's attempts with its error.
	f2 := &faultServer{reply: func(_ int, _ *http.Request, w http.ResponseWriter) { hubError(w, 500, "ServerError", "boom") }}
	c2 := f2.start(t)
	_, err = c2.Query(context.Background(), "SELECT * FROM devices")
	if !IsCode(err, 500001) || c2.Calls()["query"] != 4 {
		t.Errorf("err %v, calls %v", err, c2.Calls())
	}
}

func TestCreateJobChecksBeforeResending(t *testing.T) {
	req := hubapi.JobRequest{JobID: "iotplan-t-1", Type: hubapi.JobTypeUpdateTwin, QueryCondition: "*",
		UpdateTwin: &hubapi.TwinPatch{ETag: "*", Tags: map[string]any{"a": "b"}}}

	// 1. The PUT fails with a 500 after landing: the GET finds the job, no second PUT.
	f := &faultServer{reply: func(n int, r *http.Request, w http.ResponseWriter) {
		switch r.Method {
		case http.MethodPut:
			hubError(w, 500, "ServerError", "lost the answer")
		case http.MethodGet:
			io.WriteString(w, `{"jobId":"iotplan-t-1","type":"scheduleUpdateTwin","status":"queued"}`)
		}
	}}
	c := f.start(t)
	j, err := c.CreateJob(context.Background(), req)
	if err != nil || j.Status != "queued" {
		t.Fatalf("landed job: %+v %v", j, err)
	}
	if strings.Join(f.log, ",") != "PUT /jobs/v2/iotplan-t-1,GET /jobs/v2/iotplan-t-1" {
		t.Errorf("requests %v", f.log)
	}

	// 2. The PUT fails and the job is not there: it is sent again.
	f = &faultServer{reply: func(n int, r *http.Request, w http.ResponseWriter) {
		switch {
		case r.Method == http.MethodPut && n == 1:
			hubError(w, 503, "ServiceUnavailable", "busy")
		case r.Method == http.MethodGet:
			hubError(w, 404, "JobNotFound", "no such job")
		default:
			io.WriteString(w, `{"jobId":"iotplan-t-1","type":"scheduleUpdateTwin","status":"queued"}`)
		}
	}}
	c = f.start(t)
	if _, err := c.CreateJob(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if strings.Join(f.log, ",") != "PUT /jobs/v2/iotplan-t-1,GET /jobs/v2/iotplan-t-1,PUT /jobs/v2/iotplan-t-1" {
		t.Errorf("requests %v", f.log)
	}

	// 3. 429 (throttled): refused, so re-sent without a GET. (A 429004, every job slot held,
	// is returned at once: TestCreateJobReturnsSlotRefusals.)
	f = &faultServer{reply: func(n int, r *http.Request, w http.ResponseWriter) {
		if n == 1 {
			hubError(w, 429, "ThrottlingException", "throttled")
			return
		}
		io.WriteString(w, `{"jobId":"iotplan-t-1","type":"scheduleUpdateTwin","status":"queued"}`)
	}}
	c = f.start(t)
	if _, err := c.CreateJob(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if strings.Join(f.log, ",") != "PUT /jobs/v2/iotplan-t-1,PUT /jobs/v2/iotplan-t-1" || c.Calls()["job.create"] != 2 {
		t.Errorf("requests %v calls %v", f.log, c.Calls())
	}

	// 4. A 400 is final.
	f = &faultServer{reply: func(_ int, _ *http.Request, w http.ResponseWriter) { hubError(w, 400, "ArgumentInvalid", "bad etag") }}
	c = f.start(t)
	if _, err := c.CreateJob(context.Background(), req); !IsCode(err, 400004) || len(f.log) != 1 {
		t.Errorf("400: %v, requests %v", err, f.log)
	}
}

func TestQueryFollowsContinuation(t *testing.T) {
	f := &faultServer{reply: func(n int, r *http.Request, w http.ResponseWriter) {
		if r.Header.Get(hubapi.HeaderMaxItemCount) != "100" {
			hubError(w, 400, "ArgumentInvalid", "no page size")
			return
		}
		body, _ := io.ReadAll(r.Body)
		if !strings.Contains(string(body), `"query":"SELECT deviceId FROM devices"`) {
			hubError(w, 400, "ArgumentInvalid", "body "+string(body))
			return
		}
		switch r.Header.Get(hubapi.HeaderContinuation) {
		case "":
			w.Header().Set(hubapi.HeaderContinuation, "page2")
			io.WriteString(w, `[{"deviceId":"a"},{"deviceId":"b"}]`)
		case "page2":
			w.Header().Set(hubapi.HeaderContinuation, "page3")
			io.WriteString(w, `[{"deviceId":"c"}]`)
		default:
			io.WriteString(w, `[]`)
		}
	}}
	c := f.start(t)
	rows, err := c.Query(context.Background(), "SELECT deviceId FROM devices")
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 || rows[2]["deviceId"] != "c" || c.Calls()["query"] != 3 {
		t.Errorf("rows %v calls %v", rows, c.Calls())
	}
	// A hub repeating a token cannot make the client loop.
	loop := &faultServer{reply: func(_ int, _ *http.Request, w http.ResponseWriter) {
		w.Header().Set(hubapi.HeaderContinuation, "same")
		io.WriteString(w, `[]`)
	}}
	if _, err := loop.start(t).Query(context.Background(), "SELECT * FROM devices"); err == nil {
		t.Error("a repeated continuation token was followed")
	}
}

// TestUnknownJobIsNotFound: Azure's reported answer for a job id it does not have (200 with
// type and status "unknown") is a 404 to callers, and a create whose first attempt failed
// ambiguously sends the job again instead of taking "unknown" for another job.
func TestUnknownJobIsNotFound(t *testing.T) {
	unknown := `{"type":"unknown","status":"unknown"}`
	f := &faultServer{reply: func(n int, r *http.Request, w http.ResponseWriter) {
		switch {
		case r.Method == http.MethodGet:
			io.WriteString(w, unknown)
		case n == 1: // the first PUT (the log is cleared after the first GET)
			hubError(w, 503, "ServiceUnavailable", "busy")
		default:
			io.WriteString(w, `{"jobId":"iotplan-j","type":"scheduleUpdateTwin","status":"queued"}`)
		}
	}}
	c := f.start(t)
	_, err := c.GetJob(context.Background(), "nope")
	if !IsStatus(err, http.StatusNotFound) || !IsCode(err, 404002) {
		t.Fatalf("GET of an unknown job: %v", err)
	}
	f.mu.Lock()
	f.log = nil
	f.mu.Unlock()
	req := hubapi.JobRequest{JobID: "iotplan-j", Type: hubapi.JobTypeUpdateTwin, QueryCondition: "deviceId = 'a'",
		UpdateTwin: &hubapi.TwinPatch{ETag: "*", Tags: map[string]any{"k": 1}}, MaxExecutionTimeInSeconds: 3600}
	got, err := c.CreateJob(context.Background(), req)
	if err != nil || got.Status != "queued" {
		t.Fatalf("create after an ambiguous failure: %+v, %v", got, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if want := []string{"PUT /jobs/v2/iotplan-j", "GET /jobs/v2/iotplan-j", "PUT /jobs/v2/iotplan-j"}; !slices.Equal(f.log, want) {
		t.Errorf("calls %v, want %v", f.log, want)
	}
}
