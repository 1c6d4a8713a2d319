package hub_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/amenzhinsky/iothub/iotservice"

	"github.com/iotplan/iotplan/internal/hub"
	"github.com/iotplan/iotplan/internal/hub/huberr"
	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/sas"
)

// Live error table (hub-throttle): each hub error code provoked against the assembled hub
// (an unlimited one, and one of tier S1 for throttling and job concurrency) the way a client meets it, checked on
// the wire (status, iothub-errorcode, envelope) and, where amenzhinsky's iotservice covers the
// call, through it. Every code the hub's sources emit must have a scenario here or a reason in
// notLive; httpapi's TestErrorTableAsClientsReadIt checks the envelope of every emission.

// notLive are codes the hub emits that no request can provoke on demand, with why.
var notLive = map[string]string{
	"ServerError":        "an internal failure (store write failed); its envelope is checked by TestErrorTableAsClientsReadIt",
	"ServiceUnavailable": "only while the hub shuts down or a throttled client goes away",
	"IotHubUnauthorized": "MQTT only (an expired device token disconnects the session)",
	"GenericBadRequest":  "also emitted for an unreadable request body, which net/http does not let a client send",
	// registry/limits.go aliases it; bulk failures answer 400 with the bulk result body
	// ({isSuccessful:false, errors:[…]}), not with an error envelope.
	"BulkRegistryOperationFailure": "declared but not sent as an error envelope",
}

type liveResp struct {
	status int
	header http.Header
	body   []byte
}

type liveHub struct {
	t     *testing.T
	h     *hub.Hub
	hc    *http.Client
	owner string
}

// newLiveHub talks HTTPS to h (trusting its CA) as iothubowner.
func newLiveHub(t *testing.T, h *hub.Hub) *liveHub {
	l := &liveHub{t: t, h: h, hc: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: h.RootCAs()}}, Timeout: time.Minute}}
	t.Cleanup(l.hc.CloseIdleConnections)
	l.owner = l.token("iothubowner")
	return l
}

func (l *liveHub) token(policy string) string {
	for _, p := range l.h.Policies() {
		if p.Name == policy {
			tok, err := sas.NewToken(l.h.HostName(), p.PrimaryKey, p.Name, time.Now().Add(time.Hour))
			if err != nil {
				l.t.Fatal(err)
			}
			return tok
		}
	}
	l.t.Fatalf("no policy %s", policy)
	return ""
}

// do sends a request; query "" adds the api-version; auth "" = iothubowner, "-" = none.
func (l *liveHub) do(method, path, query, auth string, body io.Reader, hdr ...string) liveResp {
	l.t.Helper()
	if query == "" {
		query = "api-version=" + hubapi.APIVersion
	}
	req, err := http.NewRequest(method, "https://"+l.h.HostName()+path+"?"+strings.TrimPrefix(query, "-"), body)
	if err != nil {
		l.t.Fatal(err)
	}
	switch auth {
	case "":
		req.Header.Set("Authorization", l.owner)
	case "-":
	default:
		req.Header.Set("Authorization", l.token(auth))
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := l.hc.Do(req)
	if err != nil {
		l.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return liveResp{res.StatusCode, res.Header, b}
}

func jsonBody(v any) io.Reader {
	b, _ := json.Marshal(v)
	return strings.NewReader(string(b))
}

// checkWire checks status, header and envelope of a hub error for code/name.
func checkWire(t *testing.T, r liveResp, code huberr.Code, name string, jsonEnvelope bool) {
	t.Helper()
	if r.status != code.Status() || r.header.Get(hubapi.HeaderErrorCode) != name {
		t.Fatalf("got %d %q, want %d %s; body %s", r.status, r.header.Get(hubapi.HeaderErrorCode), code.Status(), name, r.body)
	}
	env := errorBody(t, r.body)
	if jsonEnvelope {
		var d hubapi.ErrorDetail
		if err := json.Unmarshal([]byte(env.Message), &d); err != nil || d.ErrorCode != int(code) {
			t.Fatalf("want the JSON-in-Message envelope with %d, got %s", int(code), r.body)
		}
		return
	}
	if !strings.HasPrefix(env.Message, "ErrorCode:"+name+";") || !strings.HasPrefix(env.ExceptionMessage, "Tracking ID:") {
		t.Fatalf("want the legacy envelope of %s, got %s", name, r.body)
	}
}

// errorBody decodes a hub error's envelope.
func errorBody(t *testing.T, body []byte) hubapi.ErrorBody {
	t.Helper()
	var env hubapi.ErrorBody
	if err := json.Unmarshal(body, &env); err != nil {
		t.Fatalf("error body %s: %v", body, err)
	}
	return env
}

// amzStatus is the status amenzhinsky's iotservice reports for a hub error.
func amzStatus(err error) int {
	var re *iotservice.RequestError
	var bre *iotservice.BadRequestError
	switch {
	case errors.As(err, &re):
		return re.Code
	case errors.As(err, &bre):
		return 400
	}
	return 0
}

func TestErrorCodesLive(t *testing.T) {
	dir := t.TempDir()
	fleet := filepath.Join(dir, "fleet.hcl")
	if err := os.WriteFile(fleet, []byte(`
device "online-1" {
  method "slow" {
    status  = 200
    latency = "6s"
  }
}
device "offline-1" {
  offline = true
}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	startLive := func(name, tier string) (*liveHub, *iotservice.Client) {
		h, err := hub.Start(context.Background(), hub.Options{DataDir: filepath.Join(dir, name), HTTPSAddr: "127.0.0.1:0", FleetFile: fleet, Tier: tier})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		l := newLiveHub(t, h)
		amz, err := iotservice.NewFromConnectionString(h.ServiceConnectionString(), iotservice.WithHTTPClient(l.hc))
		if err != nil {
			t.Fatal(err)
		}
		return l, amz
	}
	l, amz := startLive("hub", "")
	s1, s1amz := startLive("hub-s1", "S1")
	ctx := context.Background()
	future := time.Now().Add(time.Hour).UTC()
	twinJob := func(id string) hubapi.JobRequest {
		return hubapi.JobRequest{JobID: id, Type: hubapi.JobTypeUpdateTwin, QueryCondition: "deviceId = 'online-1'",
			StartTime: &future, UpdateTwin: &hubapi.TwinPatch{ETag: "*", Tags: map[string]any{"a": "b"}}}
	}

	type scenario struct {
		name string
		json bool
		run  func(t *testing.T) liveResp
	}
	scenarios := []scenario{
		{"InvalidProtocolVersion", false, func(t *testing.T) liveResp { return l.do("GET", "/devices/online-1", "-x=1", "", nil) }},
		{"ArgumentInvalid", false, func(t *testing.T) liveResp {
			return l.do("GET", "/devices", "api-version="+hubapi.APIVersion+"&top=0", "", nil)
		}},
		{"ArgumentInvalid", true, func(t *testing.T) liveResp {
			return l.do("POST", "/twins/online-1/methods", "", "", jsonBody(map[string]any{"methodName": "m", "responseTimeoutInSeconds": 1}))
		}},
		{"ArgumentNull", false, func(t *testing.T) liveResp { return l.do("PUT", "/devices/new-1", "", "", strings.NewReader("")) }},
		{"IotHubFormatError", false, func(t *testing.T) liveResp { return l.do("PUT", "/devices/new-1", "", "", strings.NewReader("{")) }},
		{"GenericBadRequest", false, func(t *testing.T) liveResp {
			j := twinJob("bad-type")
			j.Type = "scheduleDirectMethod"
			return l.do("PUT", "/jobs/v2/bad-type", "", "", jsonBody(j))
		}},
		{"IotHubUnauthorizedAccess", false, func(t *testing.T) liveResp { return l.do("GET", "/twins/online-1", "", "registryRead", nil) }},
		{"GenericNotFound", false, func(t *testing.T) liveResp { return l.do("GET", "/no/such/resource", "", "", nil) }},
		{"DeviceNotFound", false, func(t *testing.T) liveResp {
			if _, err := amz.GetDevice(ctx, "nope"); amzStatus(err) != 404 {
				t.Errorf("amenzhinsky GetDevice: %v", err)
			}
			return l.do("GET", "/devices/nope", "", "", nil)
		}},
		{"DeviceNotFound", true, func(t *testing.T) liveResp {
			return l.do("POST", "/twins/nope/methods", "", "", jsonBody(map[string]any{"methodName": "m", "responseTimeoutInSeconds": 5}))
		}},
		{"JobNotFound", false, func(t *testing.T) liveResp { return l.do("GET", "/jobs/v2/nope", "", "", nil) }},
		{"ModuleNotFound", false, func(t *testing.T) liveResp { return l.do("GET", "/devices/online-1/modules/nope", "", "", nil) }},
		{"DeviceNotOnline", true, func(t *testing.T) liveResp {
			if _, err := amz.CallDeviceMethod(ctx, "offline-1", &iotservice.MethodCall{MethodName: "m", ResponseTimeout: 5}); amzStatus(err) != 404 {
				t.Errorf("amenzhinsky CallDeviceMethod: %v", err)
			}
			return l.do("POST", "/twins/offline-1/methods", "", "", jsonBody(map[string]any{"methodName": "m", "responseTimeoutInSeconds": 5}))
		}},
		{"DeviceAlreadyExists", false, func(t *testing.T) liveResp {
			if _, err := amz.CreateDevice(ctx, &iotservice.Device{DeviceID: "online-1"}); amzStatus(err) != 409 {
				t.Errorf("amenzhinsky CreateDevice: %v", err)
			}
			return l.do("PUT", "/devices/online-1", "", "", jsonBody(map[string]any{"deviceId": "online-1"}))
		}},
		{"JobAlreadyExists", false, func(t *testing.T) liveResp {
			if r := l.do("PUT", "/jobs/v2/job-1", "", "", jsonBody(twinJob("job-1"))); r.status != 200 {
				t.Fatalf("first job: %d %s", r.status, r.body)
			}
			return l.do("PUT", "/jobs/v2/job-1", "", "", jsonBody(twinJob("job-1")))
		}},
		// S1 runs one job at a time; a job scheduled an hour ahead counts.
		{"ThrottlingMaxActiveJobCountExceeded", false, func(t *testing.T) liveResp {
			if r := s1.do("PUT", "/jobs/v2/job-1", "", "", jsonBody(twinJob("job-1"))); r.status != 200 {
				t.Fatalf("first job: %d %s", r.status, r.body)
			}
			return s1.do("PUT", "/jobs/v2/job-2", "", "", jsonBody(twinJob("job-2")))
		}},
		{"PreconditionFailed", false, func(t *testing.T) liveResp {
			if _, err := amz.UpdateDeviceTwin(ctx, &iotservice.Twin{DeviceID: "online-1", ETag: "AAAAAAAAAAk=", Tags: map[string]any{"x": 1}}); amzStatus(err) != 412 {
				t.Errorf("amenzhinsky UpdateDeviceTwin: %v", err)
			}
			return l.do("PATCH", "/twins/online-1", "", "", jsonBody(map[string]any{"tags": map[string]any{"x": 1}}), "If-Match", `"AAAAAAAAAAk="`)
		}},
		{"MessageTooLarge", false, func(t *testing.T) liveResp {
			return l.do("PUT", "/devices/big", "", "", strings.NewReader(`{"deviceId":"big","x":"`+strings.Repeat("a", 4<<20)+`"}`))
		}},
		{"MessageTooLarge", true, func(t *testing.T) liveResp {
			return l.do("POST", "/twins/online-1/methods", "", "", jsonBody(map[string]any{"methodName": "slow", "responseTimeoutInSeconds": 5,
				"payload": map[string]any{"x": strings.Repeat("a", 130<<10)}}))
		}},
		// S1: 20 queries/min with a burst of 3; the fourth in a row is refused with Retry-After.
		{"ThrottlingException", false, func(t *testing.T) liveResp {
			q := jsonBody(map[string]any{"query": "SELECT * FROM devices"})
			var r liveResp
			for i := 0; i < 4; i++ {
				r = s1.do("POST", "/devices/query", "", "", q)
				q = jsonBody(map[string]any{"query": "SELECT * FROM devices"})
			}
			ra, err := strconv.Atoi(r.header.Get("Retry-After"))
			if err != nil || ra < 1 || ra > 3 {
				t.Errorf("Retry-After %q, want 1..3 s", r.header.Get("Retry-After"))
			}
			if !strings.Contains(string(r.body), "Operation type: Queries") {
				t.Errorf("message %s", r.body)
			}
			// amenzhinsky meets the same refusal.
			err = s1amz.QueryDevices(ctx, "SELECT * FROM devices", func(map[string]any) error { return nil })
			if amzStatus(err) != 429 {
				t.Errorf("amenzhinsky QueryDevices: %v", err)
			}
			return r
		}},
		{"DeviceDefinedMultipleTimes", false, func(t *testing.T) liveResp {
			return l.do("POST", "/devices", "", "", jsonBody([]map[string]any{{"id": "dup-1", "importMode": "create"}, {"id": "dup-1", "importMode": "create"}}))
		}},
		{"DeviceModelMaxPropertiesExceeded", false, func(t *testing.T) liveResp {
			desired := map[string]any{}
			for i := 0; i < 12; i++ {
				desired[fmt.Sprintf("k%02d", i)] = strings.Repeat("a", 3000) // 36 KB > 32 KB
			}
			return l.do("PATCH", "/twins/online-1", "", "", jsonBody(map[string]any{"properties": map[string]any{"desired": desired}}))
		}},
		{"ModuleAlreadyExistsOnDevice", false, func(t *testing.T) liveResp {
			m := map[string]any{"deviceId": "online-1", "moduleId": "m1"}
			if r := l.do("PUT", "/devices/online-1/modules/m1", "", "", jsonBody(m)); r.status != 200 {
				t.Fatalf("first module: %d %s", r.status, r.body)
			}
			return l.do("PUT", "/devices/online-1/modules/m1", "", "", jsonBody(m))
		}},
		{"ConfigurationNotFound", false, func(t *testing.T) liveResp { return l.do("GET", "/configurations/nope", "", "", nil) }},
		{"ConfigurationAlreadyExists", false, func(t *testing.T) liveResp {
			if r := l.do("PUT", "/configurations/c1", "", "", jsonBody(config("c1", "*"))); r.status != 200 {
				t.Fatalf("first configuration: %d %s", r.status, r.body)
			}
			return l.do("PUT", "/configurations/c1", "", "", jsonBody(config("c1", "*")))
		}},
		{"CannotModifyImmutableConfigurationContent", false, func(t *testing.T) liveResp {
			c := config("c1", "*")
			c["content"] = map[string]any{"deviceContent": map[string]any{"properties.desired.other": 2}}
			return l.do("PUT", "/configurations/c1", "", "", jsonBody(c), "If-Match", "*")
		}},
		{"InvalidConfigurationTargetCondition", false, func(t *testing.T) liveResp {
			return l.do("PUT", "/configurations/c2", "", "", jsonBody(config("c2", "tags.x = = 1")))
		}},
		{"InvalidConfigurationContent", false, func(t *testing.T) liveResp {
			c := config("c3", "*")
			c["content"] = map[string]any{}
			return l.do("PUT", "/configurations/c3", "", "", jsonBody(c))
		}},
		{"InvalidConfigurationCustomMetricsQuery", false, func(t *testing.T) liveResp {
			c := config("c4", "*")
			c["metrics"] = map[string]any{"queries": map[string]any{"m": "SELECT FROM nowhere"}}
			return l.do("PUT", "/configurations/c4", "", "", jsonBody(c))
		}},
		{"ConfigurationCountLimitExceeded", false, func(t *testing.T) liveResp {
			var r liveResp
			for i := 0; i < 101; i++ { // c1 exists: the 100th new one is the 101st
				id := fmt.Sprintf("n%03d", i)
				if r = l.do("PUT", "/configurations/"+id, "", "", jsonBody(config(id, "*"))); r.status != 200 {
					break
				}
			}
			return r
		}},
		{"GatewayTimeout", true, func(t *testing.T) liveResp {
			return l.do("POST", "/twins/online-1/methods", "", "", jsonBody(map[string]any{"methodName": "slow", "responseTimeoutInSeconds": 5}))
		}},
	}

	covered := map[string]bool{}
	codes := sourceCodes(t)
	for _, s := range scenarios {
		code, ok := codes[s.name]
		if !ok {
			t.Errorf("scenario %s: not a code the hub emits", s.name)
			continue
		}
		covered[fmt.Sprintf("%s/%v", s.name, s.json)] = true
		t.Run(fmt.Sprintf("%s_%d_json=%v", s.name, int(code.code), s.json), func(t *testing.T) {
			checkWire(t, s.run(t), code.code, s.name, s.json)
		})
	}
	var missing []string
	for name, c := range codes {
		if _, ok := notLive[name]; ok {
			continue
		}
		for _, j := range []bool{false, true} {
			if (j && c.json || !j && c.legacy) && !covered[fmt.Sprintf("%s/%v", name, j)] {
				missing = append(missing, fmt.Sprintf("%s (%d, json=%v)", name, int(c.code), j))
			}
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("hub error codes without a live scenario (add one, or a reason in notLive): %s", strings.Join(missing, ", "))
	}
}

// config is a valid configuration body setting one desired property.
func config(id, target string) map[string]any {
	return map[string]any{"id": id, "targetCondition": target, "priority": 1,
		"content": map[string]any{"deviceContent": map[string]any{"properties.desired.floor": 3}}}
}

type srcCode struct {
	code         huberr.Code
	legacy, json bool
}

// sourceCodes finds the huberr codes the hub's non-test sources use and in which envelope
// (huberr.NewJSON(huberr.X …) = JSON-in-Message; any other use = legacy).
func sourceCodes(t *testing.T) map[string]srcCode {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("huberr", "huberr.go"))
	if err != nil {
		t.Fatal(err)
	}
	consts := map[string]huberr.Code{}
	for _, m := range regexp.MustCompile(`(?m)^\s*(\w+)\s+Code\s*=\s*(\d+)`).FindAllStringSubmatch(string(src), -1) {
		v, _ := strconv.Atoi(m[2])
		consts[m[1]] = huberr.Code(v)
	}
	use := regexp.MustCompile(`huberr\.(\w+)`)
	jsonUse := regexp.MustCompile(`huberr\.NewJSON\(\s*huberr\.(\w+)`)
	out := map[string]srcCode{}
	err = filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") || strings.HasPrefix(path, "huberr") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		text := string(b)
		jsonCount := map[string]int{}
		for _, m := range jsonUse.FindAllStringSubmatch(text, -1) {
			jsonCount[m[1]]++
		}
		all := map[string]int{}
		for _, m := range use.FindAllStringSubmatch(text, -1) {
			if _, ok := consts[m[1]]; ok {
				all[m[1]]++
			}
		}
		for name, n := range all {
			c := out[name]
			c.code = consts[name]
			if jsonCount[name] > 0 {
				c.json = true
			}
			if n > jsonCount[name] {
				c.legacy = true
			}
			out[name] = c
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
