package httpapi_test

import (
	"net/http"
	"testing"

	"github.com/iotplan/iotplan/internal/hub/registry"
)

// Azure's Node SDK (azure-iothub 1.16.6 Registry.list) lists devices with a trailing slash,
// GET /devices/?api-version=…; IoT Hub answers it as GET /devices.
func TestListDevicesTrailingSlash(t *testing.T) {
	h := newTestHub(t)
	if _, err := h.reg.CreateOrUpdateDevice(registry.Device{DeviceID: "d1"}, ""); err != nil {
		t.Fatal(err)
	}
	r := h.do(http.MethodGet, "/devices/?api-version=2021-04-12", "", nil, nil)
	if r.status != http.StatusOK {
		t.Fatalf("GET /devices/ = %d %s", r.status, r.body)
	}
	var devs []map[string]any
	r.json(t, &devs)
	if len(devs) != 1 || devs[0]["deviceId"] != "d1" {
		t.Errorf("GET /devices/ = %s, want the one device d1", r.body)
	}
	if n := h.srv.Requests()["GET /devices"]; n != 1 {
		t.Errorf(`Requests()["GET /devices"] = %d, want 1`, n)
	}
	// Without api-version it is refused like every route.
	if r := h.do(http.MethodGet, "/devices/", "", nil, nil); r.status != http.StatusBadRequest {
		t.Errorf("GET /devices/ without api-version = %d %s, want 400", r.status, r.body)
	}
}
