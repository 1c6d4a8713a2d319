package hub_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/amenzhinsky/iothub/iotservice"

	"github.com/iotplan/iotplan/internal/hub"
)

// Simulated fleets through the assembled hub: mqtt-mode devices connect to the hub's own
// MQTT endpoint and answer the REST API's direct methods, next to in-process devices.

func startFleetHub(tb testing.TB, fleet string) *hub.Hub {
	tb.Helper()
	dir := tb.TempDir()
	path := filepath.Join(dir, "fleet.hcl")
	if err := os.WriteFile(path, []byte(fleet), 0o644); err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	h, err := hub.Start(ctx, hub.Options{DataDir: filepath.Join(dir, "dev"), HTTPSAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0", FleetFile: path})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { h.Close() })
	return h
}

func fleetServiceClient(tb testing.TB, h *hub.Hub) *iotservice.Client {
	tb.Helper()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: h.RootCAs()}, MaxIdleConnsPerHost: 512}, Timeout: 60 * time.Second}
	c, err := iotservice.NewFromConnectionString(h.ServiceConnectionString(), iotservice.WithHTTPClient(hc))
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func TestMQTTFleetThroughHub(t *testing.T) {
	h := startFleetHub(t, `group "mq" {
  count = 20
  id    = "mq-%02d"
  mode  = "mqtt"
  method "lockDoor" {
    status  = 200
    payload = { locked = true }
  }
}
device "local" {
  method "lockDoor" { status = 201 }
}`)
	if st := h.Sim().Stats(); st.MQTTDevices != 20 || st.Connected != 21 {
		t.Fatalf("sim stats %+v", st)
	}
	c := fleetServiceClient(t, h)
	ctx := context.Background()
	r, err := c.CallDeviceMethod(ctx, "mq-07", &iotservice.MethodCall{MethodName: "lockDoor", ResponseTimeout: 5})
	if err != nil || r.Status != 200 || r.Payload["locked"] != true {
		t.Fatalf("mq-07: %+v %v", r, err)
	}
	if r, err := c.CallDeviceMethod(ctx, "local", &iotservice.MethodCall{MethodName: "lockDoor", ResponseTimeout: 5}); err != nil || r.Status != 201 {
		t.Fatalf("local: %+v %v", r, err)
	}
	if h.Sim().Calls("mq-07", "lockDoor") != 1 {
		t.Fatal("the call did not reach mq-07's MQTT client")
	}
	tw, err := c.GetDeviceTwin(ctx, "mq-03")
	if err != nil || tw.ConnectionState != "Connected" {
		t.Fatalf("mq-03 twin: %+v %v", tw, err)
	}
}

// BenchmarkRESTMethodMQTTFleet measures direct methods end to end: HTTPS REST call (the
// amenzhinsky service client) → hub → MQTT endpoint → mqtt-mode device → back, with
// IOTPLAN_BENCH_MQTT_DEVICES (default 1000) devices connected and IOTPLAN_BENCH_CALLERS
// (default 64) concurrent REST callers.
//
//	go test -run X -bench RESTMethodMQTTFleet -benchtime 10000x ./internal/hub
func BenchmarkRESTMethodMQTTFleet(b *testing.B) {
	n, callers := 1000, 64
	if s := os.Getenv("IOTPLAN_BENCH_MQTT_DEVICES"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	if s := os.Getenv("IOTPLAN_BENCH_CALLERS"); s != "" {
		callers, _ = strconv.Atoi(s)
	}
	start := time.Now()
	h := startFleetHub(b, fmt.Sprintf(`group "m" {
  count = %d
  id    = "m-%%05d"
  mode  = "mqtt"
  reported_echo_delay = "off"
  method "ping" {
    status  = 200
    payload = { pong = true }
  }
}`, n))
	connect := time.Since(start).Seconds()
	if st := h.Sim().Stats(); st.Connected != n {
		b.Fatalf("%d of %d connected", st.Connected, n)
	}
	c := fleetServiceClient(b, h)
	callConcurrently(b, callers, func(i int) error {
		r, err := c.CallDeviceMethod(context.Background(), fmt.Sprintf("m-%05d", i%n), &iotservice.MethodCall{MethodName: "ping", ResponseTimeout: 30})
		if err == nil && r.Status != 200 {
			err = fmt.Errorf("status %d", r.Status)
		}
		return err
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
	b.ReportMetric(connect, "s-start")
}

// BenchmarkRESTTwinPatch measures durable twin writes over REST: IOTPLAN_BENCH_CALLERS
// (default 64) concurrent clients (the amenzhinsky service client over HTTPS) patching the
// desired properties of 10,000 in-process devices, each PATCH answered once committed:
//
//	go test -run X -bench RESTTwinPatch -benchtime 20000x ./internal/hub
func BenchmarkRESTTwinPatch(b *testing.B) {
	const n = 10000
	callers := 64
	if s := os.Getenv("IOTPLAN_BENCH_CALLERS"); s != "" {
		callers, _ = strconv.Atoi(s)
	}
	h := startFleetHub(b, fmt.Sprintf(`group "t" {
  count               = %d
  id                  = "t-%%05d"
  reported_echo_delay = "off"
}`, n))
	c := fleetServiceClient(b, h)
	callConcurrently(b, callers, func(i int) error {
		_, err := c.UpdateDeviceTwin(context.Background(), &iotservice.Twin{
			DeviceID:   fmt.Sprintf("t-%05d", i%n),
			ETag:       "*",
			Properties: &iotservice.Properties{Desired: map[string]interface{}{"n": i}},
		})
		return err
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "patches/s")
}

// callConcurrently times b.N calls of call (with i = 0 … b.N-1) made by callers goroutines,
// failing the benchmark on the first error.
func callConcurrently(b *testing.B, callers int, call func(i int) error) {
	var next atomic.Int64
	errs := make(chan error, callers)
	b.ResetTimer()
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				if err := call(int(i)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}
