package sim

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/iotplan/iotplan/internal/hub/huberr"
	"github.com/iotplan/iotplan/internal/hub/jobs"
	"github.com/iotplan/iotplan/internal/hub/link"
	"github.com/iotplan/iotplan/internal/hub/mqttapi"
	"github.com/iotplan/iotplan/internal/hub/registry"
	"github.com/iotplan/iotplan/internal/hub/tlscert"
	"github.com/iotplan/iotplan/internal/hubapi"
)

// mqttHub is the real registry, link, MQTT endpoint (TLS on 127.0.0.1:0 with a CA made by
// tlscert) and simulated devices, wired as internal/hub wires them.
type mqttHub struct {
	db   *bbolt.DB
	reg  *registry.Registry
	link *link.Hub
	mqtt *mqttapi.Server
	sim  *Sim
	jobs *jobs.Manager
}

const mqttTestHost = "localhost"

func testLog() *slog.Logger {
	if os.Getenv("SIM_TEST_LOG") == "1" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func startMQTTHub(t testing.TB, f *Fleet, withEndpoint bool) *mqttHub {
	t.Helper()
	dir := t.TempDir()
	db, err := bbolt.Open(filepath.Join(dir, "hub.db"), 0o600, &bbolt.Options{Timeout: time.Second, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	h := &mqttHub{db: db}
	h.link = link.New(link.Options{OnConnect: func(id string, on bool) {
		h.reg.SetConnectionState(id, on, time.Now())
	}})
	if h.reg, err = registry.Open(db, registry.Options{OnDesired: h.link.NotifyDesired}); err != nil {
		t.Fatal(err)
	}
	bundle, err := tlscert.Ensure(dir, mqttTestHost, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{Logger: testLog()}
	if withEndpoint {
		h.mqtt, err = mqttapi.Start(context.Background(), mqttapi.Options{
			HostName:  mqttTestHost + ":8443",
			Addr:      "127.0.0.1:0",
			TLSConfig: &tls.Config{Certificates: []tls.Certificate{bundle.Cert}, MinVersion: tls.VersionTLS12},
			Registry:  h.reg,
			Link:      h.link,
			Logger:    testLog(),
		})
		if err != nil {
			t.Fatal(err)
		}
		opts.MQTT = MQTTOptions{Addr: h.mqtt.Addr().String(), HostName: mqttTestHost + ":8443",
			TLSConfig: &tls.Config{RootCAs: bundle.Pool, ServerName: mqttTestHost, MinVersion: tls.VersionTLS12}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if h.sim, err = Start(ctx, f, db, h.reg, h.reg, h.link, opts); err != nil {
		t.Fatal(err)
	}
	if h.jobs, err = jobs.New(db, h.reg, h.link, jobs.Options{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.close)
	return h
}

func (h *mqttHub) close() {
	h.sim.Close()
	if h.mqtt != nil {
		h.mqtt.Close()
	}
	h.jobs.Close()
	h.db.Close()
}

// eventually polls cond for up to 10 s.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// behaviourGroup is one behaviour written once and run in either mode.
func behaviourGroup(mode string, n int) string {
	return fmt.Sprintf(`group "doors" {
  count    = %d
  id       = "door-%%03d"
  mode     = %q
  tags     = { kind = "door" }
  desired  = { building = "42" }
  reported = { firmware = "1.0" }
  offline_fraction    = 0.1
  reported_echo_delay = "100ms"
  method "lockDoor" {
    status           = 200
    payload          = { locked = true }
    latency          = "0ms..20ms"
    failure_fraction = 0.2
    failure_status   = 503
    failure_payload  = { error = "jammed" }
  }
  method "slow" { latency = "300ms" }
  method "hang" { respond = false }
}
`, n, mode)
}

// TestMQTTModeDevices: mqtt-mode devices are real sessions of the MQTT endpoint and answer
// methods, fail, stay silent, and echo desired properties exactly as the group says.
func TestMQTTModeDevices(t *testing.T) {
	h := startMQTTHub(t, parse(t, behaviourGroup(ModeMQTT, 20)), true)
	if st := h.mqtt.Stats(); st.Connected != 18 || h.sim.OnlineCount() != 18 || h.sim.Stats().MQTTDevices != 18 {
		t.Fatalf("endpoint sessions %d, sim online %d, stats %+v", st.Connected, h.sim.OnlineCount(), h.sim.Stats())
	}
	if tw, _ := h.reg.GetTwin("door-000"); tw["connectionState"] != "Connected" && !h.sim.Fleet().Groups[0].OfflineDevices()[0] {
		t.Fatalf("door-000 = %v", tw["connectionState"])
	}
	ctx := context.Background()
	call := func(id, method string, timeout int) (hubapi.CloudToDeviceMethodResult, error) {
		return h.link.Invoke(ctx, id, hubapi.CloudToDeviceMethod{MethodName: method, Payload: json.RawMessage(`{"x":1}`), ResponseTimeoutInSeconds: timeout})
	}
	offline := h.sim.Fleet().Groups[0].OfflineDevices()
	ok, failed, notOnline := 0, 0, 0
	for i := range 20 {
		id := fmt.Sprintf("door-%03d", i)
		res, err := call(id, "lockDoor", 5)
		switch {
		case huberr.Is(err, huberr.DeviceNotOnline) && offline[i]:
			notOnline++
		case err != nil:
			t.Fatalf("%s: %v", id, err)
		case res.Status == 200 && string(res.Payload) == `{"locked":true}`:
			ok++
		case res.Status == 503 && string(res.Payload) == `{"error":"jammed"}`:
			failed++
		default:
			t.Fatalf("%s answered %+v", id, res)
		}
	}
	if notOnline != 2 || ok+failed != 18 || failed < 1 {
		t.Fatalf("ok=%d failed=%d notOnline=%d", ok, failed, notOnline)
	}
	first := onlineDevice(t, h.sim, offline)
	if h.sim.Calls(first, "lockDoor") != 1 {
		t.Fatalf("Calls(%s) = %d", first, h.sim.Calls(first, "lockDoor"))
	}
	start := time.Now()
	if res, err := call(first, "slow", 5); err != nil || res.Status != 200 || time.Since(start) < 300*time.Millisecond {
		t.Fatalf("slow = %+v %v after %v", res, err, time.Since(start))
	}
	// Not defined → not subscribed → 404103; defined but never answered → 504101.
	if _, err := call(first, "undefined", 5); !huberr.Is(err, huberr.DeviceNotOnline) {
		t.Fatalf("undefined method: %v, want 404103", err)
	}
	if _, err := call(first, "hang", 1); !huberr.Is(err, huberr.GatewayTimeout) {
		t.Fatalf("hang: %v, want 504101", err)
	}
	if h.sim.Calls(first, "hang") != 1 {
		t.Fatal("hang call not received")
	}

	// Desired → notification over MQTT → echo as a reported patch over MQTT, coalesced.
	before := reported(t, h.reg, first)["$version"].(float64)
	for _, p := range []map[string]any{{"building": "43"}, {"floor": 3.0}} {
		if _, err := h.reg.UpdateTwin(first, hubapi.TwinPatch{Properties: &hubapi.TwinProperties{Desired: p}}, "*"); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the echo", func() bool {
		r := reported(t, h.reg, first)
		return r["building"] == "43" && r["floor"] == 3.0
	})
	if r := reported(t, h.reg, first); r["$version"].(float64) != before+1 || r["firmware"] != "1.0" {
		t.Fatalf("reported %v (was $version %v): not one coalesced echo", r, before)
	}
	if st := h.mqtt.Stats(); st.ReportedPatches < 1 || st.DesiredNotifications < 2 {
		t.Fatalf("the echo did not travel over MQTT: %+v", st)
	}
}

func onlineDevice(t testing.TB, s *Sim, offline []bool) string {
	for i, o := range offline {
		if !o {
			return s.Fleet().Groups[0].ID(i)
		}
	}
	t.Fatal("no online device")
	return ""
}

// TestSameBehaviourBothModes runs one group definition in_process and over MQTT: every device
// answers every call the same way (status, payload, failing devices, offline devices).
func TestSameBehaviourBothModes(t *testing.T) {
	const n = 30
	inProc := startHub(t, filepath.Join(t.TempDir(), "hub.db"), parse(t, behaviourGroup(ModeInProcess, n)))
	viaMQTT := startMQTTHub(t, parse(t, behaviourGroup(ModeMQTT, n)), true)
	type answer struct {
		status  int
		payload string
		err     string
	}
	ask := func(l *link.Hub, id string) answer {
		r, err := l.Invoke(context.Background(), id, hubapi.CloudToDeviceMethod{MethodName: "lockDoor", ResponseTimeoutInSeconds: 5})
		if err != nil {
			return answer{err: huberr.As(err).Code.Name()}
		}
		return answer{status: r.Status, payload: string(r.Payload)}
	}
	var wg sync.WaitGroup
	diffs := make(chan string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("door-%03d", i)
			a, b := ask(inProc.link, id), ask(viaMQTT.link, id)
			if a != b {
				diffs <- fmt.Sprintf("%s: in_process %+v, mqtt %+v", id, a, b)
			}
		}()
	}
	wg.Wait()
	close(diffs)
	for d := range diffs {
		t.Error(d)
	}
}

// TestMQTTJob runs a scheduleDeviceMethod job over mqtt-mode devices (200 by default;
// IOTPLAN_SIM_MQTT_JOB=N for more): every device's row has its own answer, including the
// injected failures and the offline devices.
func TestMQTTJob(t *testing.T) {
	n := 200
	if v, err := strconv.Atoi(os.Getenv("IOTPLAN_SIM_MQTT_JOB")); err == nil && v > 0 {
		n = v
	}
	t0 := time.Now()
	f := parse(t, fmt.Sprintf(`group "fleet" {
  count = %d
  id    = "m-%%05d"
  mode  = "mqtt"
  tags  = { kind = "sensor" }
  offline_fraction = 0.05
  method "reboot" {
    status           = 202
    payload          = { rebooting = true }
    latency          = "5ms..50ms"
    failure_fraction = 0.1
    failure_status   = 500
    failure_payload  = { error = "busy" }
  }
}
device "quiet" {
  mode = "mqtt"
  tags = { kind = "sensor" }
  method "reboot" { respond = false }
}`, n))
	h := startMQTTHub(t, f, true)
	connected := time.Since(t0)
	g := f.Groups[0]
	offline := g.OfflineDevices()
	failing := g.FailingDevices(g.Methods[0])
	wantOffline, wantFailing := 0, 0
	for i := range n {
		if offline[i] {
			wantOffline++
		} else if failing[i] {
			wantFailing++
		}
	}
	if h.mqtt.Stats().Connected != int64(n-wantOffline+1) {
		t.Fatalf("%d sessions, want %d", h.mqtt.Stats().Connected, n-wantOffline+1)
	}
	t1 := time.Now()
	if _, err := h.jobs.Create(hubapi.JobRequest{JobID: "reboot-all", Type: hubapi.JobTypeDeviceMethod,
		QueryCondition:      "tags.kind = 'sensor'",
		CloudToDeviceMethod: &hubapi.CloudToDeviceMethod{MethodName: "reboot", Payload: json.RawMessage(`{"delay":0}`), ResponseTimeoutInSeconds: 5},
	}); err != nil {
		t.Fatal(err)
	}
	var r hubapi.JobResponse
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var err error
		if r, err = h.jobs.Get("reboot-all"); err != nil {
			t.Fatal(err)
		}
		if r.Status == hubapi.JobStatusCompleted || r.Status == hubapi.JobStatusFailed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job stuck: %+v", r.DeviceJobStatistics)
		}
	}
	// Answered (200s and 500s alike) = succeeded; offline (404103) and quiet (504101) = failed.
	want := hubapi.DeviceJobStatistics{DeviceCount: n + 1, SucceededCount: n - wantOffline, FailedCount: wantOffline + 1}
	if r.Status != hubapi.JobStatusCompleted || *r.DeviceJobStatistics != want {
		t.Fatalf("job %s %+v, want %+v", r.Status, r.DeviceJobStatistics, want)
	}
	rows := 0
	h.jobs.ForEachDeviceJob(func(row map[string]any) bool {
		if row["jobId"] != "reboot-all" {
			return true
		}
		rows++
		id := row["deviceId"].(string)
		if id == "quiet" {
			if e, _ := row["error"].(map[string]any); e == nil || e["code"] != "GatewayTimeout" {
				t.Errorf("quiet row %v", row)
			}
			return true
		}
		i, _ := strconv.Atoi(id[2:])
		out, _ := row["outcome"].(map[string]any)
		dmr, _ := out["deviceMethodResponse"].(map[string]any)
		e, _ := row["error"].(map[string]any)
		payload, _ := json.Marshal(dmr["payload"])
		switch {
		case offline[i]:
			if e == nil || e["code"] != "DeviceNotOnline" {
				t.Errorf("%s (offline) row %v", id, row)
			}
		case failing[i]:
			if dmr == nil || dmr["status"] != 500.0 || string(payload) != `{"error":"busy"}` {
				t.Errorf("%s (failing) row %v", id, row)
			}
		default:
			if dmr == nil || dmr["status"] != 202.0 || string(payload) != `{"rebooting":true}` {
				t.Errorf("%s row %v", id, row)
			}
		}
		return true
	})
	if rows != n+1 {
		t.Fatalf("%d device rows, want %d", rows, n+1)
	}
	if st := h.mqtt.Stats(); st.MethodCalls != int64(n-wantOffline+1) || st.MethodResponses != int64(n-wantOffline) {
		t.Fatalf("endpoint saw %d calls, %d answers", st.MethodCalls, st.MethodResponses)
	}
	t.Logf("%d mqtt devices (%d offline, %d failing): connected in %v, job done in %v", n+1, wantOffline, wantFailing, connected, time.Since(t1))
}

// TestMQTTModeWithoutEndpoint: a hub without an MQTT endpoint keeps mqtt-mode devices
// offline (seeded, not connected) and starts its in-process ones.
func TestMQTTModeWithoutEndpoint(t *testing.T) {
	h := startMQTTHub(t, parse(t, `group "mq" {
  count = 3
  id    = "mq-%d"
  mode  = "mqtt"
  method "m" {}
}
device "local" {
  method "m" {}
}`), false)
	if h.reg.DeviceCount() != 4 || h.sim.DeviceCount() != 4 || h.sim.OnlineCount() != 1 || !h.link.Connected("local") || h.link.Connected("mq-0") {
		t.Fatalf("registry %d sim %d online %d", h.reg.DeviceCount(), h.sim.DeviceCount(), h.sim.OnlineCount())
	}
	if _, err := h.link.Invoke(context.Background(), "mq-0", hubapi.CloudToDeviceMethod{MethodName: "m"}); !huberr.Is(err, huberr.DeviceNotOnline) {
		t.Fatalf("mq-0: %v", err)
	}
}

// TestMQTTDeviceComesBack: a device whose session the hub closes (as after a key change)
// reconnects by itself, with backoff, and answers again.
func TestMQTTDeviceComesBack(t *testing.T) {
	h := startMQTTHub(t, parse(t, `device "d1" {
  mode = "mqtt"
  method "ping" { status = 201 }
}`), true)
	if !h.mqtt.Disconnect("d1") {
		t.Fatal("d1 had no session")
	}
	eventually(t, "d1 reconnecting", func() bool { return h.sim.Stats().Reconnects == 1 && h.link.Connected("d1") })
	if st := h.sim.Stats(); st.Lost != 1 || st.Connected != 1 {
		t.Fatalf("stats %+v", st)
	}
	res, err := h.link.Invoke(context.Background(), "d1", hubapi.CloudToDeviceMethod{MethodName: "ping", ConnectTimeoutInSeconds: 5})
	if err != nil || res.Status != 201 {
		t.Fatalf("after reconnect: %+v %v", res, err)
	}

	// New keys: the hub closes the session (as the assembled hub does after a key change);
	// the device signs its next token with the new key.
	dev, err := h.reg.GetDevice("d1")
	if err != nil {
		t.Fatal(err)
	}
	dev.Authentication.SymmetricKey.PrimaryKey = registry.NewKey()
	if _, err := h.reg.CreateOrUpdateDevice(dev, "*"); err != nil {
		t.Fatal(err)
	}
	h.mqtt.Disconnect("d1")
	eventually(t, "d1 back with its new key", func() bool { return h.sim.Stats().Reconnects == 2 && h.link.Connected("d1") })
	if st := h.sim.Stats(); st.ConnectErrors != 0 {
		t.Fatalf("stats %+v", st)
	}

	// Deleted: the device gives up instead of retrying forever.
	if err := h.reg.DeleteDevice("d1", "*"); err != nil {
		t.Fatal(err)
	}
	h.mqtt.Disconnect("d1")
	eventually(t, "d1 gone", func() bool { return h.sim.Stats().Lost == 3 && h.sim.OnlineCount() == 0 })
	time.Sleep(700 * time.Millisecond) // past the first backoff
	if st := h.sim.Stats(); st.ConnectErrors != 0 || st.Reconnects != 2 || h.link.Connected("d1") {
		t.Fatalf("deleted device kept trying: %+v", st)
	}
}

// TestChurn: churning devices leave and come back at the configured rate in both modes;
// the registry's connectionState follows, and the non-churning devices stay connected.
func TestChurn(t *testing.T) {
	for _, mode := range []string{ModeInProcess, ModeMQTT} {
		t.Run(mode, func(t *testing.T) {
			h := startMQTTHub(t, parse(t, fmt.Sprintf(`group "c" {
  count = 10
  id    = "c-%%02d"
  mode  = %q
  churn {
    interval = "150ms..250ms"
    downtime = "100ms"
    fraction = 0.5
  }
  method "ping" {}
}`, mode)), true)
			churns := h.sim.Fleet().Groups[0].ChurningDevices()
			var churner, steady string
			for i, c := range churns {
				if c {
					churner = fmt.Sprintf("c-%02d", i)
				} else {
					steady = fmt.Sprintf("c-%02d", i)
				}
			}
			sawOff := false
			eventually(t, "churn cycles", func() bool {
				if tw, _ := h.reg.GetTwin(churner); tw["connectionState"] == "Disconnected" {
					sawOff = true
				}
				st := h.sim.Stats()
				return sawOff && st.Disconnects >= 10 && st.Reconnects >= 10
			})
			if !h.link.Connected(steady) {
				t.Fatalf("steady device %s disconnected", steady)
			}
			if tw, _ := h.reg.GetTwin(steady); tw["connectionState"] != "Connected" {
				t.Fatalf("steady device twin %v", tw["connectionState"])
			}
			// Every churning device comes back: a call with a connect timeout reaches it.
			res, err := h.link.Invoke(context.Background(), churner, hubapi.CloudToDeviceMethod{MethodName: "ping", ConnectTimeoutInSeconds: 5, ResponseTimeoutInSeconds: 5})
			if err != nil && !huberr.Is(err, huberr.GatewayTimeout) { // may leave mid-call
				t.Fatalf("churning device: %v", err)
			}
			if err == nil && res.Status != 200 {
				t.Fatalf("churning device answered %+v", res)
			}
			if mode == ModeMQTT && h.mqtt.Stats().Connects < 15 {
				t.Fatalf("endpoint saw %d CONNECTs", h.mqtt.Stats().Connects)
			}
		})
	}
}

// TestMQTTCloseLeavesNothing: Close ends every MQTT client (paho's goroutines included) and
// says DISCONNECT, so the endpoint's sessions end as well.
func TestMQTTCloseLeavesNothing(t *testing.T) {
	before := runtime.NumGoroutine()
	h := startMQTTHub(t, parse(t, `group "g" {
  count = 30
  id    = "g-%02d"
  mode  = "mqtt"
  churn { interval = "200ms" }
  method "m" {}
}`), true)
	if runtime.NumGoroutine()-before < 30 {
		t.Fatalf("30 MQTT clients run only %d goroutines", runtime.NumGoroutine()-before)
	}
	time.Sleep(300 * time.Millisecond) // churn under way
	h.sim.Close()
	eventually(t, "the endpoint's sessions to end", func() bool { return h.mqtt.Stats().Connected == 0 && h.link.ConnectedCount() == 0 })
	h.close()
	eventually(t, "the clients' goroutines to end", func() bool { return runtime.NumGoroutine()-before <= 2 })
}

// TestMQTTDeviceWithNothingToHear: a device with no methods and no echo subscribes to
// nothing and still connects; a call finds it not subscribed (404103).
func TestMQTTDeviceWithNothingToHear(t *testing.T) {
	h := startMQTTHub(t, parse(t, `device "mute" {
  mode = "mqtt"
  reported_echo_delay = "off"
}`), true)
	// With nothing to subscribe to, Start's readiness is the CONNACK, which the client can
	// see just before the endpoint has put the session in link.
	eventually(t, "mute to be connected", func() bool { return h.link.Connected("mute") && h.mqtt.Stats().Connected == 1 })
	if _, err := h.link.Invoke(context.Background(), "mute", hubapi.CloudToDeviceMethod{MethodName: "x"}); !huberr.Is(err, huberr.DeviceNotOnline) {
		t.Fatalf("call: %v, want 404103", err)
	}
}
