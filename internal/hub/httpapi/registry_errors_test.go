package httpapi_test

import (
	"strings"
	"testing"

	"github.com/iotplan/iotplan/internal/hub/registry"
)

// TestRegistryErrorTable provokes, over real HTTPS, each error the registry, module, bulk, twin
// limit and configuration routes add to the hub's table, and checks status, iothub-errorcode,
// envelope (legacy, or JSON-in-Message for methods) and numeric code.
func TestRegistryErrorTable(t *testing.T) {
	h := newTestHub(t)
	if _, err := h.reg.CreateOrUpdateDevice(registry.Device{DeviceID: "d1"}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := h.reg.CreateOrUpdateModule(registry.Module{DeviceID: "d1", ModuleID: "m1"}, ""); err != nil {
		t.Fatal(err)
	}
	cfgBody := `{"id":"c1","targetCondition":"*","priority":1,"content":{"deviceContent":{"properties.desired.x":1}}}`
	if r := h.do("PUT", "/configurations/c1"+apiV, "", cfgBody, nil); r.status != 200 {
		t.Fatalf("create configuration: %d %s", r.status, r.body)
	}
	big := `"` + strings.Repeat("v", 4000) + `"`
	tags := `{"tags":{"a":` + big + `,"b":` + big + `,"c":` + big + `}}`
	for _, tc := range []struct {
		name           string
		method, path   string
		body           string
		hdr            map[string]string
		status         int
		errName        string
		code           int
		jsonInEnvelope bool
	}{
		{"tags over 8 KB", "PATCH", "/twins/d1", tags, nil, 403, "DeviceModelMaxPropertiesExceeded", 403100, false},
		{"module twin tags over 8 KB", "PUT", "/twins/d1/modules/m1", tags, nil, 403, "DeviceModelMaxPropertiesExceeded", 403100, false},
		{"key with $", "PATCH", "/twins/d1", `{"properties":{"desired":{"$x":1}}}`, nil, 400, "ArgumentInvalid", 400004, false},
		{"string over 4 KB", "PATCH", "/twins/d1/modules/m1", `{"tags":{"s":"` + strings.Repeat("x", 4097) + `"}}`, nil, 400, "ArgumentInvalid", 400004, false},
		{"module exists", "PUT", "/devices/d1/modules/m1", `{}`, nil, 409, "ModuleAlreadyExistsOnDevice", 409301, false},
		{"module of unknown device", "PUT", "/devices/zz/modules/m1", `{}`, nil, 404, "DeviceNotFound", 404001, false},
		{"module not found", "GET", "/devices/d1/modules/zz", "", nil, 404, "ModuleNotFound", 404010, false},
		{"module twin not found", "PATCH", "/twins/d1/modules/zz", `{"tags":{"a":1}}`, nil, 404, "ModuleNotFound", 404010, false},
		{"module etag mismatch", "DELETE", "/devices/d1/modules/m1", "", map[string]string{"If-Match": `"nope"`}, 412, "PreconditionFailed", 412001, false},
		{"module twin etag mismatch", "PATCH", "/twins/d1/modules/m1", `{"tags":{"a":1}}`, map[string]string{"If-Match": `"nope"`}, 412, "PreconditionFailed", 412001, false},
		{"module method offline", "POST", "/twins/d1/modules/m1/methods", `{"methodName":"x"}`, nil, 404, "DeviceNotOnline", 404103, true},
		{"module method bad timeout", "POST", "/twins/d1/modules/m1/methods", `{"methodName":"x","connectTimeoutInSeconds":301}`, nil, 400, "ArgumentInvalid", 400004, true},
		{"bulk duplicate id", "POST", "/devices", `[{"id":"x","importMode":"create"},{"id":"x","importMode":"create"}]`, nil, 400, "DeviceDefinedMultipleTimes", 400011, false},
		{"bulk bad mode", "POST", "/devices", `[{"id":"x","importMode":"upsert"}]`, nil, 400, "ArgumentInvalid", 400004, false},
		{"bulk not an array", "POST", "/devices", `{"id":"x"}`, nil, 400, "IotHubFormatError", 400006, false},
		{"configuration exists", "PUT", "/configurations/c1", cfgBody, nil, 409, "ConfigurationAlreadyExists", 409401, false},
		{"configuration not found", "GET", "/configurations/zz", "", nil, 404, "ConfigurationNotFound", 404301, false},
		{"configuration update of missing", "PUT", "/configurations/zz", strings.Replace(cfgBody, `"c1"`, `"zz"`, 1), map[string]string{"If-Match": "*"}, 404, "ConfigurationNotFound", 404301, false},
		{"configuration etag mismatch", "DELETE", "/configurations/c1", "", map[string]string{"If-Match": `"nope"`}, 412, "PreconditionFailed", 412001, false},
		{"configuration content change", "PUT", "/configurations/c1", strings.Replace(cfgBody, `"properties.desired.x":1`, `"properties.desired.x":2`, 1), map[string]string{"If-Match": "*"}, 400, "CannotModifyImmutableConfigurationContent", 400403, false},
		{"configuration bad target", "PUT", "/configurations/c2", strings.NewReplacer(`"c1"`, `"c2"`, `"*"`, `"tags.a ="`).Replace(cfgBody), nil, 400, "InvalidConfigurationTargetCondition", 400401, false},
		{"configuration bad content", "PUT", "/configurations/c2", `{"id":"c2","targetCondition":"*","content":{"deviceContent":{"x":1}}}`, nil, 400, "InvalidConfigurationContent", 400402, false},
		{"configuration bad metric", "PUT", "/configurations/c2", `{"id":"c2","targetCondition":"*","content":{"deviceContent":{"properties.desired.x":1}},"metrics":{"queries":{"m":"select nothing"}}}`, nil, 400, "InvalidConfigurationCustomMetricsQuery", 400404, false},
		{"configuration bad id", "PUT", "/configurations/Upper", `{"id":"Upper","targetCondition":"*","content":{"deviceContent":{"properties.desired.x":1}}}`, nil, 400, "ArgumentInvalid", 400004, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body any
			if tc.body != "" {
				body = tc.body
			}
			r := h.do(tc.method, tc.path+apiV, "", body, tc.hdr)
			eb := wantError(t, r, tc.status, tc.errName, tc.code)
			if got := strings.HasPrefix(eb.Message, "{"); got != tc.jsonInEnvelope {
				t.Fatalf("JSON-in-Message envelope = %v, want %v: %s", got, tc.jsonInEnvelope, eb.Message)
			}
		})
	}
}
