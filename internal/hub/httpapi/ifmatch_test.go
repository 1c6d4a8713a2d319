package httpapi_test

import "testing"

// TestEmptyETagIfMatch: If-Match "" (or W/"") is an entity tag no resource has (RFC 9110
// §8.8.3, §13.1.1), so every conditional route answers 412 PreconditionFailed and writes
// nothing, where "*" would have applied the request.
func TestEmptyETagIfMatch(t *testing.T) {
	h := newTestHub(t)
	if r := h.do("PUT", "/devices/e1"+apiV, "", `{"deviceId":"e1"}`, nil); r.status != 200 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	if r := h.do("PUT", "/devices/e1/modules/m1"+apiV, "", `{"deviceId":"e1","moduleId":"m1"}`, nil); r.status != 200 {
		t.Fatalf("create module: %d %s", r.status, r.body)
	}
	if r := h.do("PUT", "/configurations/c1"+apiV, "", `{"id":"c1","targetCondition":"*","content":{"deviceContent":{"properties.desired.x":1}}}`, nil); r.status != 200 {
		t.Fatalf("create configuration: %d %s", r.status, r.body)
	}
	for _, tag := range []string{`""`, `W/""`, ` "" `} {
		for _, c := range []struct{ method, path, body string }{
			{"PUT", "/devices/e1", `{"deviceId":"e1","status":"disabled"}`},
			{"DELETE", "/devices/e1", ""},
			{"PATCH", "/twins/e1", `{"tags":{"a":1}}`},
			{"PUT", "/twins/e1", `{"tags":{"a":1}}`},
			{"PUT", "/devices/e1/modules/m1", `{"deviceId":"e1","moduleId":"m1","managedBy":"x"}`},
			{"DELETE", "/devices/e1/modules/m1", ""},
			{"PATCH", "/twins/e1/modules/m1", `{"tags":{"a":1}}`},
			{"PUT", "/twins/e1/modules/m1", `{"tags":{"a":1}}`},
			{"PUT", "/configurations/c1", `{"id":"c1","targetCondition":"*","priority":5,"content":{"deviceContent":{"properties.desired.x":1}}}`},
			{"DELETE", "/configurations/c1", ""},
			{"PUT", "/devices/missing", `{"deviceId":"missing"}`}, // no resource: still false
		} {
			var body any
			if c.body != "" {
				body = c.body
			}
			r := h.do(c.method, c.path+apiV, "", body, map[string]string{"If-Match": tag})
			if r.status != 412 || r.header.Get("iothub-errorcode") != "PreconditionFailed" {
				t.Errorf("%s %s with If-Match %s: %d %s %s, want 412 PreconditionFailed", c.method, c.path, tag, r.status, r.header.Get("iothub-errorcode"), r.body)
			}
		}
	}
	// Nothing was written: the device, module, twin and configuration are as created.
	var dev struct{ Status string }
	h.do("GET", "/devices/e1"+apiV, "", nil, nil).json(t, &dev)
	var tw struct{ Tags map[string]any }
	h.do("GET", "/twins/e1"+apiV, "", nil, nil).json(t, &tw)
	var cfg struct{ Priority int }
	h.do("GET", "/configurations/c1"+apiV, "", nil, nil).json(t, &cfg)
	if dev.Status != "enabled" || len(tw.Tags) != 0 || cfg.Priority != 0 {
		t.Errorf("after refused writes: status %q, tags %v, priority %d", dev.Status, tw.Tags, cfg.Priority)
	}
	if r := h.do("GET", "/devices/e1/modules/m1"+apiV, "", nil, nil); r.status != 200 {
		t.Errorf("module after refused delete: %d", r.status)
	}
	if r := h.do("GET", "/devices/missing"+apiV, "", nil, nil); r.status != 404 {
		t.Errorf("device created by a refused PUT: %d", r.status)
	}
	// "*" still means no condition.
	if r := h.do("PATCH", "/twins/e1"+apiV, "", `{"tags":{"a":1}}`, map[string]string{"If-Match": "*"}); r.status != 200 {
		t.Errorf(`If-Match "*": %d %s`, r.status, r.body)
	}
}
