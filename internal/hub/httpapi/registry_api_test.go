package httpapi_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/amenzhinsky/iothub/iotservice"

	"github.com/iotplan/iotplan/internal/hub/registry"
)

func TestModulesViaSDK(t *testing.T) {
	h := newTestHub(t)
	c := h.sdk("iothubowner")
	ctx := context.Background()
	if _, err := c.CreateDevice(ctx, &iotservice.Device{DeviceID: "gw"}); err != nil {
		t.Fatal(err)
	}
	m, err := c.CreateModule(ctx, &iotservice.Module{DeviceID: "gw", ModuleID: "filter", ManagedBy: "iotplan"})
	if err != nil {
		t.Fatal(err)
	}
	if m.ModuleID != "filter" || m.DeviceID != "gw" || m.ETag == "" || m.Authentication == nil || m.Authentication.SymmetricKey.PrimaryKey == "" || m.ManagedBy != "iotplan" {
		t.Fatalf("created %+v", m)
	}
	if _, err := c.ModuleConnectionString(m, false); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateModule(ctx, &iotservice.Module{DeviceID: "gw", ModuleID: "filter"}); err == nil {
		t.Fatal("duplicate module created")
	} else if st, body := sdkStatus(t, err); st != 409 || !strings.Contains(body, "ModuleAlreadyExistsOnDevice") {
		t.Fatalf("duplicate: %d %s", st, body)
	}
	if _, err := c.CreateModule(ctx, &iotservice.Module{DeviceID: "nodev", ModuleID: "x"}); err == nil {
		t.Fatal("module on a missing device")
	} else if st, body := sdkStatus(t, err); st != 404 || !strings.Contains(body, "DeviceNotFound") {
		t.Fatalf("missing device: %d %s", st, body)
	}
	if _, err := c.GetModule(ctx, "gw", "nope"); err == nil {
		t.Fatal("missing module found")
	} else if st, body := sdkStatus(t, err); st != 404 || !strings.Contains(body, "ModuleNotFound") {
		t.Fatalf("missing module: %d %s", st, body)
	}
	m.ManagedBy = "someone"
	u, err := c.UpdateModule(ctx, m)
	if err != nil || u.ManagedBy != "someone" || u.ETag == m.ETag {
		t.Fatalf("update %+v %v", u, err)
	}
	if _, err := c.UpdateModule(ctx, m); err == nil { // stale etag
		t.Fatal("stale module etag accepted")
	} else if st, _ := sdkStatus(t, err); st != 412 {
		t.Fatalf("stale: %d", st)
	}
	list, err := c.ListModules(ctx, "gw")
	if err != nil || len(list) != 1 || list[0].ModuleID != "filter" {
		t.Fatalf("list %v %v", list, err)
	}

	// Module twin.
	tw, err := c.GetModuleTwin(ctx, "gw", "filter")
	if err != nil || tw.ModuleID != "filter" || tw.DeviceID != "gw" || tw.ETag == "" {
		t.Fatalf("module twin %+v %v", tw, err)
	}
	tw.Tags = map[string]interface{}{"stage": "2"}
	tw.Properties = &iotservice.Properties{Desired: map[string]interface{}{"threshold": 7.0}}
	tw2, err := c.UpdateModuleTwin(ctx, tw)
	if err != nil || tw2.Tags["stage"] != "2" || tw2.Properties.Desired["threshold"] != 7.0 || tw2.ETag == tw.ETag {
		t.Fatalf("patched module twin %+v %v", tw2, err)
	}
	if _, err := c.UpdateModuleTwin(ctx, tw); err == nil {
		t.Fatal("stale module twin etag accepted")
	} else if st, _ := sdkStatus(t, err); st != 412 {
		t.Fatalf("stale module twin: %d", st)
	}
	r := h.do("PUT", "/twins/gw/modules/filter"+apiV, "", `{"tags":{"only":"this"}}`, nil)
	var put map[string]any
	r.json(t, &put)
	if r.status != 200 || len(put["tags"].(map[string]any)) != 1 || put["properties"].(map[string]any)["desired"].(map[string]any)["threshold"] != nil {
		t.Fatalf("PUT module twin %d %s", r.status, r.body)
	}

	// Module methods: validated, then 404103 (modules have no sessions on the local hub).
	if _, err := c.CallModuleMethod(ctx, "gw", "filter", &iotservice.MethodCall{MethodName: "reset"}); err == nil {
		t.Fatal("module method succeeded")
	} else if st, body := sdkStatus(t, err); st != 404 || !strings.Contains(body, `404103`) {
		t.Fatalf("module method: %d %s", st, body)
	}
	wantError(t, h.do("POST", "/twins/gw/modules/nope/methods"+apiV, "", `{"methodName":"x"}`, nil), 404, "ModuleNotFound", 404010)
	wantError(t, h.do("POST", "/twins/gw/modules/filter/methods"+apiV, "", `{"methodName":"x","responseTimeoutInSeconds":1}`, nil), 400, "ArgumentInvalid", 400004)

	// FROM devices.modules.
	if _, err := c.CreateModule(ctx, &iotservice.Module{DeviceID: "gw", ModuleID: "other"}); err != nil {
		t.Fatal(err)
	}
	var rows []map[string]interface{}
	if err := c.QueryDevices(ctx, "SELECT * FROM devices.modules WHERE tags.only = 'this'", func(v map[string]interface{}) error {
		rows = append(rows, v)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0]["moduleId"] != "filter" || rows[0]["deviceId"] != "gw" {
		t.Fatalf("module query rows %v", rows)
	}
	qr := h.do("POST", "/devices/query"+apiV, "", `{"query":"SELECT * FROM devices.modules"}`, nil)
	if qr.header.Get("x-ms-item-type") != "twin" || !strings.Contains(string(qr.body), `"other"`) {
		t.Fatalf("module query %d %v %s", qr.status, qr.header, qr.body)
	}

	if err := c.DeleteModule(ctx, &iotservice.Module{DeviceID: "gw", ModuleID: "filter"}); err != nil {
		t.Fatal(err)
	}
	wantError(t, h.do("GET", "/devices/gw/modules/filter"+apiV, "", nil, nil), 404, "ModuleNotFound", 404010)
	wantError(t, h.do("GET", "/twins/gw/modules/filter"+apiV, "", nil, nil), 404, "ModuleNotFound", 404010)
	wantError(t, h.do("GET", "/devices/nodev/modules"+apiV, "", nil, nil), 404, "DeviceNotFound", 404001)
	// Rights: module identities are registry operations, module twins service operations.
	wantError(t, h.do("GET", "/devices/gw/modules"+apiV, h.token("service"), nil, nil), 401, "IotHubUnauthorizedAccess", 401002)
	wantError(t, h.do("GET", "/twins/gw/modules/other"+apiV, h.token("registryRead"), nil, nil), 401, "IotHubUnauthorizedAccess", 401002)
}

func TestBulkRegistryViaSDK(t *testing.T) {
	h := newTestHub(t)
	c := h.sdk("iothubowner")
	ctx := context.Background()
	res, err := c.CreateDevices(ctx, []*iotservice.Device{
		{DeviceID: "b1"}, {DeviceID: "b2", Status: iotservice.Disabled}, {DeviceID: "b3", Tags: map[string]interface{}{"site": "x"}},
	})
	if err != nil || !res.IsSuccessful || len(res.Errors) != 0 {
		t.Fatalf("create: %+v %v", res, err)
	}
	if d, err := c.GetDevice(ctx, "b2"); err != nil || d.Status != iotservice.Disabled {
		t.Fatalf("b2 %+v %v", d, err)
	}
	if tw, err := c.GetDeviceTwin(ctx, "b3"); err != nil || tw.Tags["site"] != "x" {
		t.Fatalf("b3 twin %+v %v", tw, err)
	}
	// Partial failure: 400 with per-device errors, the others applied.
	res, err = c.CreateDevices(ctx, []*iotservice.Device{{DeviceID: "b1"}, {DeviceID: "b4"}, {DeviceID: "bad id"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.IsSuccessful || len(res.Errors) != 2 || res.Errors[0].DeviceID != "b1" || res.Errors[0].ErrorCode != 409001 ||
		res.Errors[1].DeviceID != "bad id" || res.Errors[1].ErrorCode != 400004 || res.Errors[0].ErrorStatus == "" {
		t.Fatalf("partial: %+v", res)
	}
	if _, err := c.GetDevice(ctx, "b4"); err != nil {
		t.Fatalf("b4 not created: %v", err)
	}
	// Update with stale etags (IfMatch) fails per device; forced update passes.
	res, err = c.UpdateDevices(ctx, []*iotservice.Device{{DeviceID: "b1", ETag: "c3RhbGU=", Status: iotservice.Disabled}}, false)
	if err != nil || res.IsSuccessful || res.Errors[0].ErrorCode != 412001 {
		t.Fatalf("stale update: %+v %v", res, err)
	}
	res, err = c.UpdateDevices(ctx, []*iotservice.Device{{DeviceID: "b1", Status: iotservice.Disabled}}, true)
	if err != nil || !res.IsSuccessful {
		t.Fatalf("forced update: %+v %v", res, err)
	}
	// Twin updates in bulk.
	res, err = c.UpdateDeviceTwins(ctx, []*iotservice.Device{{DeviceID: "b1", Tags: map[string]interface{}{"t": 1.0}, Properties: &iotservice.Properties{Desired: map[string]interface{}{"d": "v"}}}}, true)
	if err != nil || !res.IsSuccessful {
		t.Fatalf("twin update: %+v %v", res, err)
	}
	if tw, _ := c.GetDeviceTwin(ctx, "b1"); tw.Tags["t"] != 1.0 || tw.Properties.Desired["d"] != "v" {
		t.Fatalf("b1 twin %+v", tw)
	}
	st, err := c.DeviceStats(ctx)
	if err != nil || st.TotalDeviceCount != 4 || st.DisabledDeviceCount != 2 || st.EnabledDeviceCount != 2 {
		t.Fatalf("stats %+v %v", st, err)
	}
	// Delete: a missing device is a per-device 404001.
	res, err = c.DeleteDevices(ctx, []*iotservice.Device{{DeviceID: "b1"}, {DeviceID: "b2"}, {DeviceID: "ghost"}}, true)
	if err != nil || res.IsSuccessful || len(res.Errors) != 1 || res.Errors[0].DeviceID != "ghost" || res.Errors[0].ErrorCode != 404001 {
		t.Fatalf("delete: %+v %v", res, err)
	}
	if n := h.reg.DeviceCount(); n != 2 {
		t.Fatalf("%d devices left", n)
	}

	// Whole-request errors.
	wantError(t, h.do("POST", "/devices"+apiV, "", `[{"id":"x","importMode":"create"},{"id":"x","importMode":"delete"}]`, nil), 400, "DeviceDefinedMultipleTimes", 400011)
	wantError(t, h.do("POST", "/devices"+apiV, "", `[{"id":"x","importMode":"explode"}]`, nil), 400, "ArgumentInvalid", 400004)
	var many []map[string]string
	for i := range registry.MaxBulkDevices + 1 {
		many = append(many, map[string]string{"id": "m" + string(rune('a'+i%26)) + strings.Repeat("x", i/26), "importMode": "create"})
	}
	wantError(t, h.do("POST", "/devices"+apiV, "", many, nil), 400, "ArgumentInvalid", 400004)
	wantError(t, h.do("POST", "/devices"+apiV, "", `[]`, nil), 400, "ArgumentNull", 400005)
	wantError(t, h.do("POST", "/devices"+apiV, h.token("registryRead"), `[{"id":"x","importMode":"create"}]`, nil), 401, "IotHubUnauthorizedAccess", 401002)
	// Raw shape of a partial failure.
	r := h.do("POST", "/devices"+apiV, "", `[{"id":"b3","importMode":"create"}]`, nil)
	if r.status != http.StatusBadRequest || !strings.Contains(string(r.body), `"isSuccessful":false`) ||
		!strings.Contains(string(r.body), `"errors":[{"deviceId":"b3","errorCode":409001,"errorStatus":`) || !strings.Contains(string(r.body), `"warnings":[]`) {
		t.Fatalf("raw partial failure %d %s", r.status, r.body)
	}
}

func TestStatisticsViaSDK(t *testing.T) {
	h := newTestHub(t)
	c := h.sdk("iothubowner")
	ctx := context.Background()
	if err := h.reg.Import([]registry.SeedDevice{{DeviceID: "a"}, {DeviceID: "b"}, {DeviceID: "c", Status: "disabled"}}); err != nil {
		t.Fatal(err)
	}
	st, err := c.DeviceStats(ctx)
	if err != nil || st.TotalDeviceCount != 3 || st.EnabledDeviceCount != 2 || st.DisabledDeviceCount != 1 {
		t.Fatalf("device stats %+v %v", st, err)
	}
	ss, err := c.ServiceStats(ctx)
	if err != nil || ss.ConnectedDeviceCount != 0 {
		t.Fatalf("service stats %+v %v", ss, err)
	}
	disconnect := h.link.Connect("a", &testDevice{})
	ss, err = c.ServiceStats(ctx)
	if err != nil || ss.ConnectedDeviceCount != 1 {
		t.Fatalf("service stats connected %+v %v", ss, err)
	}
	disconnect()
	deadline := time.Now().Add(5 * time.Second)
	for h.reg.ConnectedDeviceCount() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	r := h.do("GET", "/statistics/service"+apiV, "", nil, nil)
	if r.status != 200 || string(r.body) != `{"connectedDeviceCount":0}` {
		t.Fatalf("raw service stats %d %s", r.status, r.body)
	}
	r = h.do("GET", "/statistics/devices"+apiV, "", nil, nil)
	if r.status != 200 || string(r.body) != `{"totalDeviceCount":3,"enabledDeviceCount":2,"disabledDeviceCount":1}` {
		t.Fatalf("raw device stats %d %s", r.status, r.body)
	}
	wantError(t, h.do("GET", "/statistics/devices"+apiV, h.token("service"), nil, nil), 401, "IotHubUnauthorizedAccess", 401002)
}

// TestTwinLimitsOverREST: the registry's limits with the hub's wire errors.
func TestTwinLimitsOverREST(t *testing.T) {
	h := newTestHub(t)
	if _, err := h.reg.CreateOrUpdateDevice(registry.Device{DeviceID: "d1"}, ""); err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("v", 4000)
	body := `{"properties":{"desired":{`
	for i := range 9 {
		if i > 0 {
			body += ","
		}
		body += `"k` + string(rune('0'+i)) + `":"` + big + `"`
	}
	body += `}}}`
	eb := wantError(t, h.do("PATCH", "/twins/d1"+apiV, "", body, nil), 403, "DeviceModelMaxPropertiesExceeded", 403100)
	if !strings.Contains(eb.Message, "'Properties.Desired' size should be less than 32768 bytes.") {
		t.Fatalf("message %q", eb.Message)
	}
	wantError(t, h.do("PUT", "/twins/d1"+apiV, "", `{"tags":{"a":"`+strings.Repeat("x", 8200)+`"}}`, nil), 400, "ArgumentInvalid", 400004)
	wantError(t, h.do("PATCH", "/twins/d1"+apiV, "", `{"tags":{"a.b":1}}`, nil), 400, "ArgumentInvalid", 400004)
	wantError(t, h.do("PATCH", "/twins/d1"+apiV, "", `{"properties":{"desired":{"n":4503599627370496}}}`, nil), 400, "ArgumentInvalid", 400004)
	if r := h.do("PATCH", "/twins/d1"+apiV, "", `{"properties":{"desired":{"n":4503599627370495,"f":1e300}}}`, nil); r.status != 200 {
		t.Fatalf("in-range numbers: %d %s", r.status, r.body)
	}
	deep := `{"tags":` + strings.Repeat(`{"k":`, 11) + `1` + strings.Repeat(`}`, 11) + `}`
	wantError(t, h.do("PATCH", "/twins/d1"+apiV, "", deep, nil), 400, "ArgumentInvalid", 400004)
	wantError(t, h.do("PATCH", "/twins/d1"+apiV, "", `{"tags":{"a":1}} x`, nil), 400, "IotHubFormatError", 400006)
}

// TestDeviceKeyRegenerationViaSDK: a device's keys are regenerated by updating the identity
// with new keys (as the SDKs' and the portal's "regenerate key" do); the registry serves the
// new keys at once (the MQTT endpoint reads them per connection).
func TestDeviceKeyRegenerationViaSDK(t *testing.T) {
	h := newTestHub(t)
	c := h.sdk("iothubowner")
	ctx := context.Background()
	d, err := c.CreateDevice(ctx, &iotservice.Device{DeviceID: "k1"})
	if err != nil {
		t.Fatal(err)
	}
	oldPrimary := d.Authentication.SymmetricKey.PrimaryKey
	d.Authentication.SymmetricKey.PrimaryKey = registry.NewKey()
	u, err := c.UpdateDevice(ctx, d)
	if err != nil || u.Authentication.SymmetricKey.PrimaryKey == oldPrimary || u.Authentication.SymmetricKey.SecondaryKey != d.Authentication.SymmetricKey.SecondaryKey {
		t.Fatalf("regenerate: %+v %v", u, err)
	}
	if pk, _, _ := h.reg.DeviceKeys("k1"); pk != d.Authentication.SymmetricKey.PrimaryKey {
		t.Fatal("registry still serves the old key")
	}
	d.ETag = u.ETag
	d.Authentication.SymmetricKey.PrimaryKey = "bm90IGEga2V5" // 9 bytes: too short
	if _, err := c.UpdateDevice(ctx, d); err == nil {
		t.Fatal("a short key was accepted")
	} else if st, _ := sdkStatus(t, err); st != 400 {
		t.Fatalf("short key: %d", st)
	}
}
