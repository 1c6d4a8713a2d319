package httpapi_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/amenzhinsky/iothub/iotservice"

	"github.com/iotplan/iotplan/internal/hub/httpapi"
	"github.com/iotplan/iotplan/internal/hub/registry"
	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/sas"
)

const apiV = "?api-version=2021-04-12"

func TestDevicesAndTwinsViaSDK(t *testing.T) {
	h := newTestHub(t)
	c := h.sdk("iothubowner")
	ctx := context.Background()

	d, err := c.CreateDevice(ctx, &iotservice.Device{DeviceID: "door-1"})
	if err != nil {
		t.Fatal(err)
	}
	if d.DeviceID != "door-1" || d.Status != iotservice.Enabled || d.Authentication == nil || d.Authentication.SymmetricKey.PrimaryKey == "" || d.ETag == "" {
		t.Fatalf("created %+v", d)
	}
	if _, err := c.CreateDevice(ctx, &iotservice.Device{DeviceID: "door-1"}); err == nil {
		t.Fatal("duplicate create succeeded")
	} else if st, body := sdkStatus(t, err); st != 409 || !strings.Contains(body, "DeviceAlreadyExists") {
		t.Fatalf("duplicate: %d %s", st, body)
	}
	// The device connection string the SDK builds from what we returned parses with our sas.
	dcs, err := c.DeviceConnectionString(d, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sas.ParseConnectionString(dcs); err != nil {
		t.Fatalf("device connection string: %v", err)
	}

	d.Status = iotservice.Disabled
	u, err := c.UpdateDevice(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	if u.Status != iotservice.Disabled || u.ETag == d.ETag {
		t.Fatalf("updated %+v", u)
	}
	d.ETag = "c3RhbGU=" // stale
	if _, err := c.UpdateDevice(ctx, d); err == nil {
		t.Fatal("stale etag accepted")
	} else if st, _ := sdkStatus(t, err); st != 412 {
		t.Fatalf("stale etag: %d", st)
	}

	tw, err := c.GetDeviceTwin(ctx, "door-1")
	if err != nil {
		t.Fatal(err)
	}
	if tw.ETag != "AAAAAAAAAAE=" || tw.Version != 2 || tw.Properties == nil || tw.Properties.Desired["$version"] != 1.0 {
		t.Fatalf("twin %+v", tw)
	}
	// amenzhinsky PATCHes its whole Twin struct with If-Match "<etag>".
	tw.Tags = map[string]interface{}{"building": "43"}
	tw.Properties = &iotservice.Properties{Desired: map[string]interface{}{"floor": 3.0, "lock": map[string]interface{}{"mode": "auto"}}}
	tw2, err := c.UpdateDeviceTwin(ctx, tw)
	if err != nil {
		t.Fatal(err)
	}
	if tw2.Tags["building"] != "43" || tw2.Properties.Desired["floor"] != 3.0 || tw2.Properties.Desired["$version"] != 2.0 || tw2.ETag != "AAAAAAAAAAI=" {
		t.Fatalf("patched twin %+v", tw2)
	}
	if _, err := c.UpdateDeviceTwin(ctx, tw); err == nil { // tw still carries etag 1
		t.Fatal("stale twin etag accepted")
	} else if st, body := sdkStatus(t, err); st != 412 || !strings.Contains(body, "PreconditionFailed") {
		t.Fatalf("stale twin: %d %s", st, body)
	}

	list, err := c.ListDevices(ctx)
	if err != nil || len(list) != 1 {
		t.Fatalf("list %v %v", list, err)
	}
	if err := c.DeleteDevice(ctx, &iotservice.Device{DeviceID: "door-1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetDevice(ctx, "door-1"); err == nil {
		t.Fatal("deleted device still there")
	} else if st, body := sdkStatus(t, err); st != 404 || !strings.Contains(body, "DeviceNotFound") {
		t.Fatalf("get deleted: %d %s", st, body)
	}

	got := h.srv.Requests()
	if got["PUT /devices/{id}"] != 4 || got["PATCH /twins/{id}"] != 2 || got["GET /twins/{id}"] != 1 {
		t.Fatalf("request counts %v", got)
	}
}

func TestTwinRawPutPatchIfMatch(t *testing.T) {
	h := newTestHub(t)
	if err := h.reg.Import([]registry.SeedDevice{{DeviceID: "d1", Desired: map[string]any{"a": 1, "b": map[string]any{"c": 2}}}}); err != nil {
		t.Fatal(err)
	}
	r := h.do("PATCH", "/twins/d1"+apiV, "", `{"properties":{"desired":{"b":{"c":null,"d":4},"a":null}}}`, map[string]string{"If-Match": `"AAAAAAAAAAE="`})
	if r.status != 200 || r.header.Get("Content-Type") != "application/json; charset=utf-8" {
		t.Fatalf("PATCH %d %s %v", r.status, r.body, r.header)
	}
	var tw map[string]any
	r.json(t, &tw)
	desired := tw["properties"].(map[string]any)["desired"].(map[string]any)
	if _, ok := desired["a"]; ok || fmt.Sprint(desired["b"]) != "map[d:4]" {
		t.Fatalf("desired after merge patch: %v", desired)
	}
	wantError(t, h.do("PATCH", "/twins/d1"+apiV, "", `{"tags":{"x":1}}`, map[string]string{"If-Match": `"AAAAAAAAAAE="`}), 412, "PreconditionFailed", 412001)
	r = h.do("PUT", "/twins/d1"+apiV, "", `{"tags":{"t":1},"properties":{"desired":{"only":true}}}`, map[string]string{"If-Match": `*`})
	r.json(t, &tw)
	desired = tw["properties"].(map[string]any)["desired"].(map[string]any)
	if r.status != 200 || desired["only"] != true || desired["b"] != nil || fmt.Sprint(tw["tags"]) != "map[t:1]" {
		t.Fatalf("PUT %d %s", r.status, r.body)
	}
	wantError(t, h.do("PATCH", "/twins/d1"+apiV, "", `{"tags":`, nil), 400, "IotHubFormatError", 400006)
	wantError(t, h.do("PATCH", "/twins/d1"+apiV, "", `{"tags":{"a.b":1}}`, nil), 400, "ArgumentInvalid", 400004)
	wantError(t, h.do("GET", "/twins/nope"+apiV, "", nil, nil), 404, "DeviceNotFound", 404001)
}

func seed(t *testing.T, h *testHub, n int) {
	t.Helper()
	var s []registry.SeedDevice
	for i := range n {
		s = append(s, registry.SeedDevice{
			DeviceID: fmt.Sprintf("door-%04d", i),
			Tags:     map[string]any{"building": fmt.Sprintf("b%d", i%3)},
			Desired:  map[string]any{"floor": i % 2},
		})
	}
	if err := h.reg.Import(s); err != nil {
		t.Fatal(err)
	}
}

func TestQueryPagingViaSDK(t *testing.T) {
	h := newTestHub(t)
	seed(t, h, 250)
	c := h.sdk("service")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a paging bug must not hang the test
	defer cancel()

	var ids []string
	if err := c.QueryDevices(ctx, "SELECT * FROM devices", func(v map[string]interface{}) error {
		ids = append(ids, v["deviceId"].(string))
		if len(ids) > 250 {
			return fmt.Errorf("more rows than devices: paging does not end")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(ids) != 250 || !slices.IsSorted(ids) || slices.Compact(slices.Clone(ids))[249] != "door-0249" {
		t.Fatalf("got %d ids", len(ids))
	}
	if n := h.srv.Requests()["POST /devices/query"]; n != 3 {
		t.Fatalf("250 twins took %d query calls, want 3 pages", n)
	}

	var rows []map[string]interface{}
	if err := c.QueryDevices(ctx, "SELECT tags.building AS b, COUNT() AS n FROM devices WHERE properties.desired.floor = 1 GROUP BY tags.building", func(v map[string]interface{}) error {
		rows = append(rows, v)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, r := range rows {
		total += r["n"].(float64)
	}
	if len(rows) != 3 || total != 125 {
		t.Fatalf("group by rows %v", rows)
	}

	rows = nil
	if err := c.QueryDevices(ctx, "SELECT TOP 2 deviceId, tags.building FROM devices WHERE tags.building = 'b1'", func(v map[string]interface{}) error {
		rows = append(rows, v)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0]["deviceId"] != "door-0001" || rows[1]["building"] != "b1" {
		t.Fatalf("projection rows %v", rows)
	}
}

func TestQueryPagingRaw(t *testing.T) {
	h := newTestHub(t)
	seed(t, h, 230)
	body := `{"query":"SELECT * FROM devices WHERE tags.building != 'b2'"}` // 154 matches
	var all []string
	token := ""
	pages := 0
	for {
		hdr := map[string]string{"x-ms-max-item-count": "60"}
		if token != "" {
			hdr["x-ms-continuation"] = token
		}
		r := h.do("POST", "/devices/query"+apiV, "", body, hdr)
		if r.status != 200 || r.header.Get("x-ms-item-type") != "twin" || r.header.Get("Content-Type") != "application/json; charset=utf-8" {
			t.Fatalf("page %d: %d %v %s", pages, r.status, r.header, r.body)
		}
		var docs []map[string]any
		r.json(t, &docs)
		pages++
		for _, d := range docs {
			all = append(all, d["deviceId"].(string))
		}
		vals, present := r.header["X-Ms-Continuation"]
		if !present {
			if len(docs) != 154-120 {
				t.Fatalf("last page has %d rows", len(docs))
			}
			break
		}
		if len(docs) != 60 || len(vals) != 1 || vals[0] == "" {
			t.Fatalf("page %d: %d rows, continuation %q", pages, len(docs), vals)
		}
		// A retried page with the same token gives the same rows.
		again := h.do("POST", "/devices/query"+apiV, "", body, hdr)
		var docs2 []map[string]any
		again.json(t, &docs2)
		if token != "" && (len(docs2) != len(docs) || docs2[0]["deviceId"] != docs[0]["deviceId"]) {
			t.Fatal("retried page differs")
		}
		token = vals[0]
		if pages > 10 {
			t.Fatal("paging does not end")
		}
	}
	if pages != 3 || len(all) != 154 || !slices.IsSorted(all) || len(slices.Compact(slices.Clone(all))) != 154 {
		t.Fatalf("pages %d, rows %d", pages, len(all))
	}

	// Page sizes: >100 is served 100 at a time; 0, negative and junk are refused (400).
	for hv, want := range map[string]int{"500": 100, "99999999999999999999999": 100, "0": -1, "-3": -1, "x": -1, "1.5": -1} {
		r := h.do("POST", "/devices/query"+apiV, "", `{"Query":"SELECT * FROM devices"}`, map[string]string{"x-ms-max-item-count": hv})
		if want < 0 {
			if r.status != 400 || r.header.Get("iothub-errorcode") != "ArgumentInvalid" {
				t.Errorf("x-ms-max-item-count %s: %d %s, want 400 ArgumentInvalid", hv, r.status, r.header.Get("iothub-errorcode"))
			}
			continue
		}
		var docs []any
		r.json(t, &docs)
		if len(docs) != want {
			t.Errorf("x-ms-max-item-count %s: %d rows, want %d", hv, len(docs), want)
		}
	}
	// A continuation whose cursor was evicted (or a restarted hub) is rebuilt by re-running.
	first := h.do("POST", "/devices/query"+apiV, "", body, map[string]string{"x-ms-max-item-count": "100"})
	tok := first.header.Get("x-ms-continuation")
	r := h.do("POST", "/devices/query"+apiV, "", `{"query":"SELECT deviceId FROM devices WHERE tags.building != 'b2'"}`, map[string]string{"x-ms-continuation": tok})
	var rows []map[string]any
	r.json(t, &rows)
	if r.status != 200 || len(rows) != 54 || r.header.Get("x-ms-item-type") != "raw" || rows[0]["deviceId"] == nil {
		t.Fatalf("different query with old token: %d rows %s", len(rows), r.header.Get("x-ms-item-type"))
	}
	wantError(t, h.do("POST", "/devices/query"+apiV, "", body, map[string]string{"x-ms-continuation": "garbage!"}), 400, "ArgumentInvalid", 400004)
}

func TestQueryErrors(t *testing.T) {
	h := newTestHub(t)
	eb := wantError(t, h.do("POST", "/devices/query"+apiV, "", `{"query":"SELECT * FROM devices WHERE"}`, nil), 400, "ArgumentInvalid", 400004)
	if !strings.Contains(eb.Message, "line 1, column") {
		t.Fatalf("no position: %s", eb.Message)
	}
	wantError(t, h.do("POST", "/devices/query"+apiV, "", `{"query":""}`, nil), 400, "ArgumentNull", 400005)
	wantError(t, h.do("POST", "/devices/query"+apiV, "", `{}`, nil), 400, "ArgumentNull", 400005)
	long := `{"query":"SELECT * FROM devices WHERE deviceId = '` + strings.Repeat("x", 8200) + `'"}`
	wantError(t, h.do("POST", "/devices/query"+apiV, "", long, nil), 400, "ArgumentInvalid", 400004)
	r := h.do("POST", "/devices/query"+apiV, "", `{"query":"SELECT * FROM devices"}`, nil)
	if r.status != 200 || string(r.body) != "[]" || r.header.Get("x-ms-continuation") != "" {
		t.Fatalf("empty fleet: %d %s", r.status, r.body)
	}
}

func TestDirectMethods(t *testing.T) {
	h := newTestHub(t)
	seed(t, h, 2)
	dev := &testDevice{}
	disconnect := h.link.Connect("door-0000", dev)
	defer disconnect()
	c := h.sdk("service")
	ctx := context.Background()

	res, err := c.CallDeviceMethod(ctx, "door-0000", &iotservice.MethodCall{MethodName: "lockDoor", ResponseTimeout: 10, Payload: map[string]interface{}{"force": true}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != 200 || res.Payload["locked"] != true || fmt.Sprint(res.Payload["got"]) != "map[force:true]" {
		t.Fatalf("result %+v", res)
	}
	// A device status other than 200 is still HTTP 200 with that status.
	r := h.do("POST", "/twins/door-0000/methods"+apiV, "", `{"methodName":"fail","payload":null}`, nil)
	if r.status != 200 || !strings.Contains(string(r.body), `"status":500`) {
		t.Fatalf("fail: %d %s", r.status, r.body)
	}
	// Not connected → 404103 in the JSON-in-Message envelope, info.timeout.
	r = h.do("POST", "/twins/door-0001/methods"+apiV, "", `{"methodName":"lockDoor"}`, nil)
	eb := wantError(t, r, 404, "DeviceNotOnline", 404103)
	if !strings.Contains(eb.Message, `\"timeout\":\"00:00:00\"`) && !strings.Contains(eb.Message, `"timeout":"00:00:00"`) {
		t.Fatalf("404103 body %s", eb.Message)
	}
	if _, err := c.CallDeviceMethod(ctx, "door-0001", &iotservice.MethodCall{MethodName: "lockDoor"}); err == nil {
		t.Fatal("method on offline device succeeded")
	} else if st, _ := sdkStatus(t, err); st != 404 {
		t.Fatalf("offline via SDK: %d", st)
	}
	// Not subscribed → 404103 too.
	wantError(t, h.do("POST", "/twins/door-0000/methods"+apiV, "", `{"methodName":"unknownMethod"}`, nil), 404, "DeviceNotOnline", 404103)
	// Unknown device → 404001.
	wantError(t, h.do("POST", "/twins/ghost/methods"+apiV, "", `{"methodName":"lockDoor"}`, nil), 404, "DeviceNotFound", 404001)
	// Timeout limits.
	for _, b := range []string{`{"methodName":"x","responseTimeoutInSeconds":0}`, `{"methodName":"x","responseTimeoutInSeconds":4}`, `{"methodName":"x","responseTimeoutInSeconds":301}`} {
		eb := wantError(t, h.do("POST", "/twins/door-0000/methods"+apiV, "", b, nil), 400, "ArgumentInvalid", 400004)
		if !strings.Contains(eb.Message, "responseTimeoutInSeconds must be within [5; 300].") {
			t.Fatalf("message %s", eb.Message)
		}
	}
	wantError(t, h.do("POST", "/twins/door-0000/methods"+apiV, "", `{"methodName":"x","connectTimeoutInSeconds":301}`, nil), 400, "ArgumentInvalid", 400004)
	wantError(t, h.do("POST", "/twins/door-0000/methods"+apiV, "", `{"payload":1}`, nil), 400, "ArgumentInvalid", 400004)
	if n := dev.calls.Load(); n != 3 {
		t.Fatalf("device saw %d calls, want 3", n)
	}
}

// The device never answers: 504101 after the minimum response timeout (5 s).
func TestDirectMethodTimeout(t *testing.T) {
	t.Parallel()
	h := newTestHub(t)
	seed(t, h, 1)
	defer h.link.Connect("door-0000", &testDevice{})()
	start := time.Now()
	r := h.do("POST", "/twins/door-0000/methods"+apiV, "", `{"methodName":"hang","responseTimeoutInSeconds":5}`, nil)
	eb := wantError(t, r, 504, "GatewayTimeout", 504101)
	if !strings.Contains(eb.Message, "Timed out waiting for the response from device.") {
		t.Fatalf("message %s", eb.Message)
	}
	if el := time.Since(start); el < 5*time.Second {
		t.Fatalf("answered after %v, before the response timeout", el)
	}
}

// A device connecting within connectTimeoutInSeconds gets the call.
func TestDirectMethodConnectTimeout(t *testing.T) {
	t.Parallel()
	h := newTestHub(t)
	seed(t, h, 1)
	dev := &testDevice{}
	go func() {
		time.Sleep(300 * time.Millisecond)
		h.link.Connect("door-0000", dev)
	}()
	r := h.do("POST", "/twins/door-0000/methods"+apiV, "", `{"methodName":"lockDoor","connectTimeoutInSeconds":5}`, nil)
	if r.status != 200 || dev.calls.Load() != 1 {
		t.Fatalf("%d %s", r.status, r.body)
	}
}

func TestAPIVersionAuthAndErrors(t *testing.T) {
	h := newTestHub(t)
	seed(t, h, 1)
	wantError(t, h.do("GET", "/twins/door-0000", "", nil, nil), 400, "InvalidProtocolVersion", 400001)
	wantError(t, h.do("GET", "/twins/door-0000?api-version=2016-11-14", "", nil, nil), 400, "InvalidProtocolVersion", 400001)
	for _, v := range []string{"2018-06-30", "2020-09-30", "2021-04-12"} {
		if r := h.do("GET", "/twins/door-0000?api-version="+v, "", nil, nil); r.status != 200 {
			t.Errorf("api-version %s: %d", v, r.status)
		}
	}
	wantError(t, h.do("GET", "/nothing/here"+apiV, "", nil, nil), 404, "GenericNotFound", 404000)

	owner := h.policy("iothubowner")
	expired, _ := sas.NewToken(h.host, owner.PrimaryKey, "iothubowner", time.Now().Add(-time.Minute))
	wrongKey, _ := sas.NewToken(h.host, registry.NewKey(), "iothubowner", time.Now().Add(time.Hour))
	secondary, _ := sas.NewToken(h.host, owner.SecondaryKey, "iothubowner", time.Now().Add(time.Hour))
	otherHost, _ := sas.NewToken("otherhub.example", owner.PrimaryKey, "iothubowner", time.Now().Add(time.Hour))
	scoped, _ := sas.NewToken(h.host+"/twins/door-0000", owner.PrimaryKey, "iothubowner", time.Now().Add(time.Hour))
	unknownPolicy, _ := sas.NewToken(h.host, owner.PrimaryKey, "nobody", time.Now().Add(time.Hour))
	pk, _, _ := h.reg.DeviceKeys("door-0000")
	deviceTok, _ := sas.NewToken(h.host+"/devices/door-0000", pk, "", time.Now().Add(time.Hour))

	for name, auth := range map[string]string{
		"none": "-", "garbage": "Bearer xyz", "expired": expired, "wrong key": wrongKey,
		"other host": otherHost, "unknown policy": unknownPolicy, "device key": deviceTok,
		"registryRead on twins": h.token("registryRead"), "device policy": h.token("device"),
	} {
		r := h.do("GET", "/twins/door-0000"+apiV, auth, nil, nil)
		eb := wantError(t, r, 401, "IotHubUnauthorizedAccess", 401002)
		if strings.Contains(eb.Message, owner.PrimaryKey) || (auth != "-" && strings.Contains(eb.Message, auth)) {
			t.Errorf("%s: error echoes a secret: %s", name, eb.Message)
		}
	}
	if r := h.do("GET", "/twins/door-0000"+apiV, secondary, nil, nil); r.status != 200 {
		t.Errorf("secondary key: %d", r.status)
	}
	if r := h.do("GET", "/twins/door-0000"+apiV, scoped, nil, nil); r.status != 200 {
		t.Errorf("token scoped to the twin: %d", r.status)
	}
	if r := h.do("GET", "/twins/door-0001"+apiV, scoped, nil, nil); r.status != 401 {
		t.Errorf("token scoped to another twin: %d", r.status)
	}
	// Rights: registryRead may list and read identities and query, not write.
	rr := h.token("registryRead")
	for _, p := range []string{"/devices" + apiV, "/devices/door-0000" + apiV} {
		if r := h.do("GET", p, rr, nil, nil); r.status != 200 {
			t.Errorf("registryRead GET %s: %d", p, r.status)
		}
	}
	if r := h.do("POST", "/devices/query"+apiV, rr, `{"query":"SELECT * FROM devices"}`, nil); r.status != 200 {
		t.Errorf("registryRead query: %d", r.status)
	}
	wantError(t, h.do("PUT", "/devices/new"+apiV, rr, `{"deviceId":"new"}`, nil), 401, "IotHubUnauthorizedAccess", 401002)
	if r := h.do("PUT", "/devices/new"+apiV, h.token("registryReadWrite"), `{"deviceId":"new"}`, nil); r.status != 200 {
		t.Errorf("registryReadWrite PUT: %d %s", r.status, r.body)
	}
	wantError(t, h.do("POST", "/twins/door-0000/methods"+apiV, rr, `{"methodName":"x"}`, nil), 401, "IotHubUnauthorizedAccess", 401002)
	// The "service" policy cannot touch the identity registry.
	wantError(t, h.do("GET", "/devices"+apiV, h.token("service"), nil, nil), 401, "IotHubUnauthorizedAccess", 401002)
	// Through the SDK a bad key surfaces as a 401 RequestError.
	bad := sas.ConnectionString{HostName: h.host, SharedAccessKeyName: "iothubowner", SharedAccessKey: registry.NewKey()}
	c, err := iotservice.NewFromConnectionString(bad.String(), iotservice.WithHTTPClient(h.http))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetDeviceTwin(context.Background(), "door-0000"); err == nil {
		t.Fatal("bad key accepted")
	} else if st, _ := sdkStatus(t, err); st != 401 {
		t.Fatalf("bad key via SDK: %d", st)
	}
	if h.srv.Requests()["unknown"] != 1 {
		t.Fatalf("requests %v", h.srv.Requests())
	}
}

func TestRouteTableRights(t *testing.T) {
	routes := httpapi.Routes()
	keys := slices.Sorted(maps.Keys(routes))
	if len(keys) != 29 {
		t.Fatalf("routes: %v", keys)
	}
	for _, k := range keys {
		if len(routes[k]) == 0 {
			t.Errorf("%s has no rights", k)
		}
	}
}

func TestJobsRoutes(t *testing.T) {
	h := newTestHub(t)
	seed(t, h, 5)
	start := time.Now().UTC()
	req := hubapi.JobRequest{
		JobID: "job-1", Type: hubapi.JobTypeUpdateTwin, QueryCondition: "tags.building = 'b1'",
		UpdateTwin: &hubapi.TwinPatch{ETag: "*", Properties: &hubapi.TwinProperties{Desired: map[string]any{"floor": 9}}},
		StartTime:  &start, MaxExecutionTimeInSeconds: 60,
	}
	r := h.do("PUT", "/jobs/v2/job-1"+apiV, "", req, nil)
	var jr hubapi.JobResponse
	r.json(t, &jr)
	if r.status != 200 || jr.Status != "queued" || jr.JobID != "job-1" {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	wantError(t, h.do("PUT", "/jobs/v2/job-2"+apiV, "", req, nil), 400, "ArgumentInvalid", 400004) // body/path id mismatch
	deadline := time.Now().Add(10 * time.Second)
	for jr.Status != "completed" {
		if time.Now().After(deadline) {
			t.Fatalf("job did not complete: %+v", jr)
		}
		time.Sleep(50 * time.Millisecond)
		h.do("GET", "/jobs/v2/job-1"+apiV, "", nil, nil).json(t, &jr)
	}
	if jr.DeviceJobStatistics == nil || jr.DeviceJobStatistics.SucceededCount != 2 {
		t.Fatalf("stats %+v", jr.DeviceJobStatistics)
	}
	tw, _ := h.reg.GetTwin("door-0001")
	if tw["properties"].(map[string]any)["desired"].(map[string]any)["floor"] != 9.0 {
		t.Fatalf("job did not update the twin: %v", tw["properties"])
	}
	// devices.jobs rows through the query endpoint.
	r = h.do("POST", "/devices/query"+apiV, "", `{"query":"SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 'job-1'"}`, nil)
	var rows []map[string]any
	r.json(t, &rows)
	if r.header.Get("x-ms-item-type") != "deviceJob" || len(rows) != 2 || rows[0]["status"] != "completed" {
		t.Fatalf("devices.jobs: %s %s", r.header.Get("x-ms-item-type"), r.body)
	}
	// Job query via the SDK (array body, paging headers).
	c := h.sdk("iothubowner")
	var listed []string
	if err := c.QueryJobsV2(context.Background(), &iotservice.JobV2Query{Type: iotservice.JobTypeUpdateTwin}, func(j *iotservice.JobV2) error {
		listed = append(listed, j.JobID)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(listed) != 1 || listed[0] != "job-1" {
		t.Fatalf("listed %v", listed)
	}
	r = h.do("GET", "/jobs/v2/query"+apiV+"&jobStatus=failed", "", nil, nil)
	if r.status != 200 || string(r.body) != "[]" || r.header.Get("x-ms-item-type") != "jobResponse" {
		t.Fatalf("empty job query: %d %s", r.status, r.body)
	}
	wantError(t, h.do("GET", "/jobs/v2/nope"+apiV, "", nil, nil), 404, "JobNotFound", 404002)
	wantError(t, h.do("POST", "/jobs/v2/nope/cancel"+apiV, "", nil, nil), 404, "JobNotFound", 404002)
	r = h.do("POST", "/jobs/v2/job-1/cancel"+apiV, "", nil, nil)
	if r.status != 200 || !strings.Contains(string(r.body), `"status":"completed"`) {
		t.Fatalf("cancel finished job: %d %s", r.status, r.body)
	}
}

func TestDesiredReachesConnectedDevice(t *testing.T) {
	h := newTestHub(t)
	seed(t, h, 1)
	dev := &testDevice{desired: make(chan int64, 1)}
	defer h.link.Connect("door-0000", dev)()
	r := h.do("PATCH", "/twins/door-0000"+apiV, "", `{"properties":{"desired":{"x":1}}}`, nil)
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	select {
	case v := <-dev.desired:
		if v != 2 {
			t.Fatalf("desired version %d", v)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("device was not notified")
	}
	var tw map[string]any
	h.do("GET", "/twins/door-0000"+apiV, "", nil, nil).json(t, &tw)
	if tw["connectionState"] != "Connected" {
		t.Fatalf("connectionState %v", tw["connectionState"])
	}
}

// The 401 message names the check sas.Token.Verify failed, whichever policy key (primary or
// secondary) the token was signed with: a genuine expired token is "expired", not "forged".
func TestAuthMessageNamesTheFailedCheck(t *testing.T) {
	h := newTestHub(t)
	seed(t, h, 1)
	owner := h.policy("iothubowner")
	past, future := time.Now().Add(-time.Minute), time.Now().Add(time.Hour)
	tok := func(key string, exp time.Time) string {
		s, err := sas.NewToken(h.host, key, "iothubowner", exp)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	for _, c := range []struct{ name, auth, want string }{
		{"expired, primary key", tok(owner.PrimaryKey, past), "Unauthorized: token has expired."},
		{"expired, secondary key", tok(owner.SecondaryKey, past), "Unauthorized: token has expired."},
		{"wrong key", tok(registry.NewKey(), future), "Unauthorized: signature does not match."},
		{"wrong key, expired", tok(registry.NewKey(), past), "Unauthorized: signature does not match."},
		{"not a token", "Bearer xyz", "Unauthorized: not a SharedAccessSignature token."},
	} {
		eb := wantError(t, h.do("GET", "/twins/door-0000"+apiV, c.auth, nil, nil), 401, "IotHubUnauthorizedAccess", 401002)
		if want := "ErrorCode:IotHubUnauthorizedAccess;" + c.want; eb.Message != want {
			t.Errorf("%s: message %q, want %q", c.name, eb.Message, want)
		}
	}
}
