package hub_test

import (
	"context"
	"crypto/tls"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/amenzhinsky/iothub/iotdevice"
	iotmqtt "github.com/amenzhinsky/iothub/iotdevice/transport/mqtt"
	"github.com/amenzhinsky/iothub/logger"
	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/iotplan/iotplan/internal/hub"
	"github.com/iotplan/iotplan/internal/tier"
)

// The tier's throttles apply to authorized requests only, and a hub without a tier is
// unlimited.
func TestThrottleAppliesAfterAuthorization(t *testing.T) {
	for _, name := range []string{"", "S1"} {
		h, err := hub.Start(context.Background(), hub.Options{DataDir: filepath.Join(t.TempDir(), "hub"), HTTPSAddr: "127.0.0.1:0", Tier: name})
		if err != nil {
			t.Fatal(err)
		}
		l := &liveHub{t: t, h: h, hc: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: h.RootCAs()}}, Timeout: time.Minute}}
		l.owner = l.token("iothubowner")
		query := func(auth string) liveResp {
			return l.do("POST", "/devices/query", "", auth, strings.NewReader(`{"query":"SELECT COUNT() AS n FROM devices"}`))
		}
		for i := 0; i < 10; i++ {
			if r := query("-"); r.status != 401 {
				t.Fatalf("%q: unauthenticated query: %d", name, r.status)
			}
			if r := query("device"); r.status != 401 {
				t.Fatalf("%q: query as device: %d", name, r.status)
			}
		}
		// S1: the 20 rejected requests cost nothing; the burst of 3 queries is intact.
		n := 3
		if name == "" {
			n = 50
		}
		for i := 0; i < n; i++ {
			if r := query(""); r.status != 200 {
				t.Fatalf("%q: query %d: %d %s", name, i+1, r.status, r.body)
			}
		}
		r := query("")
		switch name {
		case "":
			if r.status != 200 || h.Throttle().MaxConcurrentJobs() != 0 {
				t.Errorf("unlimited hub: %d", r.status)
			}
		case "S1":
			if r.status != 429 || r.header.Get("Retry-After") == "" {
				t.Errorf("S1: fourth query %d, Retry-After %q", r.status, r.header.Get("Retry-After"))
			}
			st := h.Throttle().Stats()[tier.Queries]
			if st.Served != 3 || st.Refused != 1 {
				t.Errorf("S1 query stats %+v", st)
			}
			if got := h.Requests()["POST /devices/query"]; got != 24 {
				t.Errorf("requests counted %d, want 24 (rejected and throttled included)", got)
			}
		}
		h.Close()
	}
}

func TestStartRejectsUnknownTierBeforeCreatingAnything(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "hub")
	_, err := hub.Start(context.Background(), hub.Options{DataDir: dir, HTTPSAddr: "127.0.0.1:0", Tier: "S4"})
	if err == nil || !strings.Contains(err.Error(), `unknown IoT Hub tier "S4"`) {
		t.Fatalf("Start(S4) = %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the data directory was created: %v", err)
	}
}

// MQTT CONNECTs of a tiered hub pass its new-device-connections throttle.
func TestDeviceConnectionsAreThrottled(t *testing.T) {
	h, err := hub.Start(context.Background(), hub.Options{DataDir: filepath.Join(t.TempDir(), "hub"), HTTPSAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0", Tier: "S1"})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	cs, err := h.DeviceConnectionString("myDeviceId")
	if err != nil {
		t.Fatal(err)
	}
	tr := iotmqtt.New(iotmqtt.WithClientOptionsConfig(func(o *paho.ClientOptions) {
		o.Servers = nil
		o.AddBroker("tls://" + h.MQTTAddr().String())
		o.SetTLSConfig(&tls.Config{RootCAs: h.RootCAs(), ServerName: "localhost", MinVersion: tls.VersionTLS12})
		o.SetConnectTimeout(5 * time.Second)
	}))
	c, err := iotdevice.NewFromConnectionString(tr, cs, iotdevice.WithLogger(logger.New(logger.LevelOff, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	st := h.Throttle().Stats()[tier.DeviceConnections]
	if st.Served != 1 || st.Rate != 100 || st.Burst != 1000 {
		t.Errorf("S1 device connections: %+v, want 1 served at 100/s, burst 1000", st)
	}
}
