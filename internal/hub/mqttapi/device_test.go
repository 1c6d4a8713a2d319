package mqttapi

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/amenzhinsky/iothub/iotdevice"

	"github.com/iotplan/iotplan/internal/hub/huberr"
	"github.com/iotplan/iotplan/internal/hubapi"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// The tutorial's round trip: a method routed by link.Hub reaches the real SDK client over
// MQTT/TLS, and its status and payload come back.
func TestMethodRoundTrip(t *testing.T) {
	e := newEnv(t)
	key, _ := e.addDevice("myDeviceId", "")
	dev := e.device("myDeviceId", key)
	got := make(chan map[string]any, 1)
	if err := dev.RegisterMethod(ctxT(t), "lockDoor", func(p map[string]any) (int, map[string]any, error) {
		got <- p
		return 200, map[string]any{"locked": true}, nil
	}); err != nil {
		t.Fatal(err)
	}
	// null payload, as the tutorial's job sends it: the handler gets nil (SDK decodes "null").
	res, err := e.link.Invoke(ctxT(t), "myDeviceId", hubapi.CloudToDeviceMethod{MethodName: "lockDoor", ResponseTimeoutInSeconds: 10})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != 200 || string(res.Payload) != `{"locked":true}` {
		t.Fatalf("result = %d %s, want 200 {\"locked\":true}", res.Status, res.Payload)
	}
	if p := <-got; p != nil {
		t.Errorf("handler payload = %v, want nil for a null payload", p)
	}
	// An object payload arrives as JSON.
	res, err = e.link.Invoke(ctxT(t), "myDeviceId", hubapi.CloudToDeviceMethod{MethodName: "lockDoor", Payload: json.RawMessage(`{"door":"front"}`), ResponseTimeoutInSeconds: 10})
	if err != nil || res.Status != 200 {
		t.Fatalf("second call: %v %v", res, err)
	}
	if p := <-got; p["door"] != "front" {
		t.Errorf("handler payload = %v, want door=front", p)
	}
	st := e.srv.Stats()
	if st.MethodCalls != 2 || st.MethodResponses != 2 || st.Connected != 1 {
		t.Errorf("stats = %+v", st)
	}
}

// A connected device that has not subscribed to $iothub/methods/POST/# → 404103.
func TestMethodNotSubscribed(t *testing.T) {
	e := newEnv(t)
	key, _ := e.addDevice("d1", "")
	e.device("d1", key)
	waitFor(t, "link session", func() bool { return e.link.Connected("d1") })
	_, err := e.link.Invoke(ctxT(t), "d1", hubapi.CloudToDeviceMethod{MethodName: "lockDoor", ResponseTimeoutInSeconds: 5})
	if !huberr.Is(err, huberr.DeviceNotOnline) {
		t.Fatalf("err = %v, want 404103", err)
	}
	// A device that is not connected at all: also 404103 (link's own check).
	e.addDevice("offline", "")
	if _, err := e.link.Invoke(ctxT(t), "offline", hubapi.CloudToDeviceMethod{MethodName: "lockDoor"}); !huberr.Is(err, huberr.DeviceNotOnline) {
		t.Fatalf("offline device: err = %v, want 404103", err)
	}
}

// A device subscribed to methods but with no handler for this one: amenzhinsky sends no
// answer, so the call times out → 504101.
func TestMethodTimeout(t *testing.T) {
	e := newEnv(t)
	key, _ := e.addDevice("d1", "")
	dev := e.device("d1", key)
	if err := dev.RegisterMethod(ctxT(t), "other", func(map[string]any) (int, map[string]any, error) { return 200, nil, nil }); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := e.link.Invoke(ctxT(t), "d1", hubapi.CloudToDeviceMethod{MethodName: "lockDoor", ResponseTimeoutInSeconds: 1})
	if !huberr.Is(err, huberr.GatewayTimeout) {
		t.Fatalf("err = %v, want 504101", err)
	}
	if time.Since(start) < 900*time.Millisecond {
		t.Errorf("returned after %v, before the 1 s response timeout", time.Since(start))
	}
}

func TestTwinGetAndReportedPatch(t *testing.T) {
	e := newEnv(t)
	key, _ := e.addDevice("d1", "")
	if _, err := e.reg.UpdateTwin("d1", hubapi.TwinPatch{Properties: &hubapi.TwinProperties{Desired: map[string]any{"building": "43", "floor": 3}}}, ""); err != nil {
		t.Fatal(err)
	}
	dev := e.device("d1", key)
	desired, reported, err := dev.RetrieveTwinState(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	// A new twin has $version 1 in both sections; the desired patch made it 2.
	if desired["building"] != "43" || desired["floor"] != float64(3) || desired.Version() != 2 {
		t.Errorf("desired = %v", desired)
	}
	if reported.Version() != 1 || len(reported) != 1 {
		t.Errorf("reported = %v, want only $version 1", reported)
	}
	if _, ok := desired["$metadata"]; ok {
		t.Errorf("device twin GET carries $metadata: %v", desired)
	}

	v, err := dev.UpdateTwinState(ctxT(t), iotdevice.TwinState{"building": "43", "floor": 3, "nested": map[string]any{"a": 1}})
	if err != nil {
		t.Fatal(err)
	}
	v2, err := dev.UpdateTwinState(ctxT(t), iotdevice.TwinState{"nested": map[string]any{"b": 2}})
	if err != nil {
		t.Fatal(err)
	}
	if v != 2 || v2 != 3 {
		t.Errorf("versions = %d, %d; want 2, 3", v, v2)
	}
	twin, err := e.reg.GetTwin("d1")
	if err != nil {
		t.Fatal(err)
	}
	rep := twin["properties"].(map[string]any)["reported"].(map[string]any)
	if rep["building"] != "43" || rep["$version"] != float64(3) || rep["nested"].(map[string]any)["a"] != float64(1) || rep["nested"].(map[string]any)["b"] != float64(2) {
		t.Errorf("registry reported = %v", rep)
	}
	// And the device sees its own reported section.
	_, reported, err = dev.RetrieveTwinState(ctxT(t))
	if err != nil || reported.Version() != 3 || reported["building"] != "43" {
		t.Errorf("reported after patch = %v, %v", reported, err)
	}
	if st := e.srv.Stats(); st.TwinGets != 2 || st.ReportedPatches != 2 {
		t.Errorf("stats = %+v", st)
	}
}

// A desired change made through the registry (as REST PATCH or a twin job makes it) reaches
// the connected device as $iothub/twin/PATCH/properties/desired/?$version=.
func TestDesiredNotification(t *testing.T) {
	e := newEnv(t)
	key, _ := e.addDevice("d1", "")
	dev := e.device("d1", key)
	sub, err := dev.SubscribeTwinUpdates(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.reg.UpdateTwin("d1", hubapi.TwinPatch{Properties: &hubapi.TwinProperties{Desired: map[string]any{"building": "43", "floor": 3}}}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := e.reg.UpdateTwin("d1", hubapi.TwinPatch{Properties: &hubapi.TwinProperties{Desired: map[string]any{"floor": 4}}}, "*"); err != nil {
		t.Fatal(err)
	}
	// New twins start at desired $version 1, so the patches make 2 and 3. The SDK hands
	// notifications to subscribers on separate goroutines (unordered), so match by $version.
	want := map[float64]map[string]any{
		2: {"building": "43", "floor": float64(3), "$version": float64(2)},
		3: {"floor": float64(4), "$version": float64(3)},
	}
	for range 2 {
		select {
		case s := <-sub.C():
			w, ok := want[s["$version"].(float64)]
			if !ok || len(s) != len(w) {
				t.Fatalf("unexpected notification %v", s)
			}
			for k, v := range w {
				if s[k] != v {
					t.Errorf("notification = %v, want %v", s, w)
				}
			}
			delete(want, s["$version"].(float64))
		case <-time.After(5 * time.Second):
			t.Fatalf("notifications not delivered: %v", want)
		}
	}
	// Counted after the write returns, which may be after the device has the message.
	waitFor(t, "2 notifications counted", func() bool { return e.srv.Stats().DesiredNotifications == 2 })
}

// A device that did not subscribe to desired updates gets none (and nothing blocks).
func TestDesiredNotSubscribed(t *testing.T) {
	e := newEnv(t)
	key, _ := e.addDevice("d1", "")
	e.device("d1", key)
	waitFor(t, "link session", func() bool { return e.link.Connected("d1") })
	if _, err := e.reg.UpdateTwin("d1", hubapi.TwinPatch{Properties: &hubapi.TwinProperties{Desired: map[string]any{"x": 1}}}, ""); err != nil {
		t.Fatal(err)
	}
	if st := e.srv.Stats(); st.DesiredNotifications != 0 {
		t.Errorf("stats = %+v", st)
	}
}

func TestTelemetryAndConnectionState(t *testing.T) {
	e := newEnv(t)
	key, _ := e.addDevice("d1", "")
	dev := e.device("d1", key)
	// The session joins link (which records the state) just after CONNACK.
	waitFor(t, "Connected twin", func() bool {
		twin, _ := e.reg.GetTwin("d1")
		return twin["connectionState"] == "Connected" && twin["lastActivityTime"] != "0001-01-01T00:00:00Z"
	})
	if err := dev.SendEvent(ctxT(t), []byte(`{"temperature":21}`), iotdevice.WithSendProperty("alert", "no"), iotdevice.WithSendMessageID("m1")); err != nil {
		t.Fatal(err)
	}
	if err := dev.SendEvent(ctxT(t), []byte(`x`), iotdevice.WithSendQoS(0)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "telemetry counted", func() bool { return e.srv.Stats().Telemetry == 2 })
	if b := e.srv.Stats().TelemetryBytes; b != 19 {
		t.Errorf("TelemetryBytes = %d, want 19", b)
	}
	dev.Close()
	waitFor(t, "Disconnected twin", func() bool {
		twin, _ := e.reg.GetTwin("d1")
		return twin["connectionState"] == "Disconnected"
	})
	if e.link.Connected("d1") || e.srv.Stats().Connected != 0 {
		t.Errorf("session still registered after disconnect: %+v", e.srv.Stats())
	}
}

// The hub closes a device's connection when its identity changes (disabled here); the device
// cannot come back while disabled.
func TestDisconnectDevice(t *testing.T) {
	e := newEnv(t)
	key, _ := e.addDevice("d1", "")
	c := e.rawDevice("d1", key, true)
	waitFor(t, "session", func() bool { return e.link.Connected("d1") })
	if e.srv.Disconnect("nosuch") {
		t.Error("Disconnect of an unconnected device reported a connection")
	}
	d, err := e.reg.GetDevice("d1")
	if err != nil {
		t.Fatal(err)
	}
	d.Status = "disabled"
	if _, err := e.reg.CreateOrUpdateDevice(d, "*"); err != nil {
		t.Fatal(err)
	}
	if !e.srv.Disconnect("d1") {
		t.Fatal("Disconnect found no connection")
	}
	waitFor(t, "connection closed", func() bool { return !c.IsConnectionOpen() && !e.link.Connected("d1") })
	if _, err := e.raw("d1", nodeUsername(testHost, "d1"), deviceToken(t, testHost, "d1", key, time.Now().Add(time.Hour)), true); err == nil {
		t.Error("disabled device reconnected")
	}
}

// A device may send IoT Hub's largest message (256 KB); a larger packet ends its connection
// instead of being buffered.
func TestOversizePacketClosesTheConnection(t *testing.T) {
	e := newEnv(t)
	key, _ := e.addDevice("d1", "")
	c := e.rawDevice("d1", key, true)
	publish(t, c, "devices/d1/messages/events/", 1, strings.Repeat("a", 256*1024))
	waitFor(t, "256 KB telemetry counted", func() bool { return e.srv.Stats().Telemetry == 1 })
	if !c.IsConnectionOpen() {
		t.Fatal("a 256 KB message closed the connection")
	}
	c.Publish("devices/d1/messages/events/", 1, false, strings.Repeat("a", MaxPacketSize+1))
	waitFor(t, "connection closed", func() bool { return !e.link.Connected("d1") })
	if n := e.srv.Stats().Telemetry; n != 1 {
		t.Errorf("telemetry count = %d after the oversize packet, want 1", n)
	}
}
