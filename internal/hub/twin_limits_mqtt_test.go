package hub_test

import (
	"context"
	"crypto/tls"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/amenzhinsky/iothub/iotdevice"
	iotmqtt "github.com/amenzhinsky/iothub/iotdevice/transport/mqtt"
	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/iotplan/iotplan/internal/hub"
	"github.com/iotplan/iotplan/internal/hub/registry"
)

// TestTwinLimitsOverMQTT: the twin limits hold on the device side too — amenzhinsky's device
// client gets the hub's error status for a reported patch over 32 KB (403) and for a '$' key
// (400), and the twin is unchanged.
func TestTwinLimitsOverMQTT(t *testing.T) {
	h, err := hub.Start(context.Background(), hub.Options{DataDir: filepath.Join(t.TempDir(), "dev"), HTTPSAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if _, err := h.Registry().CreateOrUpdateDevice(registry.Device{DeviceID: "limits-1"}, ""); err != nil {
		t.Fatal(err)
	}
	cs, err := h.DeviceConnectionString("limits-1")
	if err != nil {
		t.Fatal(err)
	}
	tr := iotmqtt.New(iotmqtt.WithClientOptionsConfig(func(o *paho.ClientOptions) {
		o.Servers = nil
		o.AddBroker("tls://" + h.MQTTAddr().String())
		o.SetTLSConfig(&tls.Config{RootCAs: h.RootCAs(), ServerName: "localhost", MinVersion: tls.VersionTLS12})
		o.SetConnectTimeout(5 * time.Second)
	}))
	dev, err := iotdevice.NewFromConnectionString(tr, cs)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := dev.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer dev.Close()

	big := iotdevice.TwinState{}
	for i := range 9 {
		big[string(rune('a'+i))] = strings.Repeat("v", 4000)
	}
	if _, err := dev.UpdateTwinState(ctx, big); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("36 KB reported patch: %v, want a 403 response", err)
	}
	if _, err := dev.UpdateTwinState(ctx, iotdevice.TwinState{"$bad": 1}); err == nil || !strings.Contains(err.Error(), "400") {
		t.Fatalf("'$' key: %v, want a 400 response", err)
	}
	v, err := dev.UpdateTwinState(ctx, iotdevice.TwinState{"ok": 1})
	if err != nil || v != 2 {
		t.Fatalf("valid patch: version %d, %v (the rejected ones must not count)", v, err)
	}
}
