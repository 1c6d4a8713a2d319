package mqttapi

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/amenzhinsky/iothub/iotdevice"
	iotmqtt "github.com/amenzhinsky/iothub/iotdevice/transport/mqtt"
	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/iotplan/iotplan/internal/hubapi"
)

// MQTT over WebSockets, mounted on an HTTPS server as the hub mounts it on port 443, with the
// SDK's WebSocket transport: auth, methods and twins behave as on the MQTT port.
func TestWebSocket(t *testing.T) {
	e := newEnv(t)
	key, _ := e.addDevice("d1", "")
	mux := http.NewServeMux()
	mux.Handle("GET "+WebSocketPath, e.srv.WebSocketHandler())
	hs := httptest.NewUnstartedServer(mux)
	hs.TLS = e.srvTLS.Clone()
	hs.EnableHTTP2 = true // as the hub's http.Server.ServeTLS does; WebSocket clients still use HTTP/1.1
	hs.StartTLS()
	defer hs.Close()

	tr := iotmqtt.New(iotmqtt.WithWebSocket(true), iotmqtt.WithClientOptionsConfig(func(o *paho.ClientOptions) {
		o.Servers = nil
		o.AddBroker("wss://" + hs.Listener.Addr().String() + WebSocketPath)
		o.SetTLSConfig(e.clientTLS())
	}))
	c, err := iotdevice.NewFromConnectionString(tr, connString("d1", key), iotdevice.WithLogger(quietSDK))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.RegisterMethod(ctx, "lockDoor", func(map[string]any) (int, map[string]any, error) { return 200, nil, nil }); err != nil {
		t.Fatal(err)
	}
	res, err := e.link.Invoke(ctx, "d1", hubapi.CloudToDeviceMethod{MethodName: "lockDoor", ResponseTimeoutInSeconds: 5})
	if err != nil || res.Status != 200 {
		t.Fatalf("invoke over WebSocket = %+v, %v", res, err)
	}
	if v, err := c.UpdateTwinState(ctx, iotdevice.TwinState{"via": "ws"}); err != nil || v != 2 {
		t.Fatalf("reported over WebSocket = %d, %v", v, err)
	}
	// A bad token over WebSockets is refused like on the MQTT port.
	bad, err := iotdevice.NewFromConnectionString(iotmqtt.New(iotmqtt.WithWebSocket(true), iotmqtt.WithClientOptionsConfig(func(o *paho.ClientOptions) {
		o.Servers = nil
		o.AddBroker("wss://" + hs.Listener.Addr().String() + WebSocketPath)
		o.SetTLSConfig(e.clientTLS())
	})), connString("d1", "bm90LXRoZS1rZXktMDEyMzQ1Njc4OWFiY2RlZg=="), iotdevice.WithLogger(quietSDK))
	if err != nil {
		t.Fatal(err)
	}
	if err := bad.Connect(ctx); err == nil {
		bad.Close()
		t.Fatal("wrong key accepted over WebSockets")
	}
	// Close ends WebSocket sessions too.
	e.srv.Close()
	waitFor(t, "WebSocket session closed", func() bool { return !e.link.Connected("d1") })
}
