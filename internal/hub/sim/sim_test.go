package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/iotplan/iotplan/internal/hub/huberr"
	"github.com/iotplan/iotplan/internal/hub/jobs"
	"github.com/iotplan/iotplan/internal/hub/link"
	"github.com/iotplan/iotplan/internal/hub/registry"
	"github.com/iotplan/iotplan/internal/hub/store"
	"github.com/iotplan/iotplan/internal/hubapi"
)

// testHub is the real registry, link and simulated devices over one bbolt file, wired the
// way the hub assembly wires them.
type testHub struct {
	db   *bbolt.DB
	reg  *registry.Registry
	link *link.Hub
	sim  *Sim
}

func startHub(t testing.TB, path string, f *Fleet) *testHub {
	t.Helper()
	db, err := store.Open(path) // as the hub opens it
	if err != nil {
		t.Fatal(err)
	}
	h := &testHub{db: db}
	h.link = link.New(link.Options{OnConnect: func(id string, on bool) {
		h.reg.SetConnectionState(id, on, time.Now())
	}})
	h.reg, err = registry.Open(db, registry.Options{OnDesired: h.link.NotifyDesired})
	if err != nil {
		t.Fatal(err)
	}
	h.sim, err = Start(context.Background(), f, db, h.reg, h.reg, h.link, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.close)
	return h
}

func (h *testHub) close() {
	h.sim.Close()
	h.db.Close()
}

func parse(t testing.TB, src string) *Fleet {
	t.Helper()
	f, diags := ParseFleet("fleet.hcl", []byte(src))
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	return f
}

const testFleet = `
device "solo" {
  method "lockDoor" { status = 200 }
  reported_echo_delay = "100ms"
}
device "away" {
  offline = true
  method "lockDoor" {}
}
group "doors" {
  count    = 20
  id       = "door-%02d"
  tags     = { kind = "door", building = "4${index % 2}" }
  desired  = { building = "4${index % 2}" }
  reported = { firmware = "1.0" }
  reported_echo_delay = "150ms"
  method "lockDoor" {
    status           = 200
    payload          = { locked = true }
    failure_fraction = 0.25
    failure_status   = 500
    failure_payload  = { error = "jammed" }
  }
  method "slow" {
    latency = "300ms"
  }
  method "hang" { respond = false }
}
`

func TestStartSeedsAndAnswersMethods(t *testing.T) {
	h := startHub(t, filepath.Join(t.TempDir(), "hub.db"), parse(t, testFleet))
	if h.reg.DeviceCount() != 22 || h.sim.DeviceCount() != 22 || h.sim.OnlineCount() != 21 || h.link.ConnectedCount() != 21 {
		t.Fatalf("registry %d, sim %d, online %d, connected %d", h.reg.DeviceCount(), h.sim.DeviceCount(), h.sim.OnlineCount(), h.link.ConnectedCount())
	}
	twin, err := h.reg.GetTwin("door-03")
	if err != nil {
		t.Fatal(err)
	}
	if twin["tags"].(map[string]any)["building"] != "41" || twin["connectionState"] != "Connected" {
		t.Fatalf("door-03 twin = %v", twin)
	}
	if tw, _ := h.reg.GetTwin("away"); tw["connectionState"] == "Connected" {
		t.Fatal("offline device is connected")
	}

	ctx := context.Background()
	call := func(id, method string, timeout int) (hubapi.CloudToDeviceMethodResult, error) {
		return h.link.Invoke(ctx, id, hubapi.CloudToDeviceMethod{MethodName: method, Payload: json.RawMessage("null"), ResponseTimeoutInSeconds: timeout})
	}
	res, err := call("solo", "lockDoor", 5)
	if err != nil || res.Status != 200 || string(res.Payload) != "null" {
		t.Fatalf("solo lockDoor = %+v %v", res, err)
	}
	ok, failed := 0, 0
	for i := range 20 {
		res, err := call(fmt.Sprintf("door-%02d", i), "lockDoor", 5)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case res.Status == 200 && string(res.Payload) == `{"locked":true}`:
			ok++
		case res.Status == 500 && string(res.Payload) == `{"error":"jammed"}`:
			failed++
		default:
			t.Fatalf("answer %+v", res)
		}
	}
	if ok != 15 || failed != 5 {
		t.Fatalf("ok=%d failed=%d, want 15 and 5", ok, failed)
	}
	if h.sim.Calls("door-00", "lockDoor") != 1 || h.sim.Calls("solo", "lockDoor") != 1 || h.sim.Calls("solo", "nope") != 0 {
		t.Fatal("call counts wrong")
	}
	start := time.Now()
	if res, err := call("door-00", "slow", 5); err != nil || res.Status != 200 || time.Since(start) < 300*time.Millisecond {
		t.Fatalf("slow = %+v %v after %v", res, err, time.Since(start))
	}
	if _, err := call("door-00", "undefined", 5); !huberr.Is(err, huberr.DeviceNotOnline) {
		t.Fatalf("undefined method: %v, want 404103", err)
	}
	if _, err := call("away", "lockDoor", 5); !huberr.Is(err, huberr.DeviceNotOnline) {
		t.Fatalf("offline device: %v, want 404103", err)
	}
	if _, err := h.link.Invoke(ctx, "door-01", hubapi.CloudToDeviceMethod{MethodName: "hang", ResponseTimeoutInSeconds: 1}); !huberr.Is(err, huberr.GatewayTimeout) {
		t.Fatalf("hang: %v, want 504101", err)
	}
	if h.sim.Calls("door-01", "hang") != 1 {
		t.Fatal("hang call not counted")
	}
}

func reported(t *testing.T, reg *registry.Registry, id string) map[string]any {
	t.Helper()
	tw, err := reg.GetTwin(id)
	if err != nil {
		t.Fatal(err)
	}
	return tw["properties"].(map[string]any)["reported"].(map[string]any)
}

func TestEchoDesiredIntoReported(t *testing.T) {
	h := startHub(t, filepath.Join(t.TempDir(), "hub.db"), parse(t, testFleet))
	before := reported(t, h.reg, "door-04")["$version"].(float64)
	// A burst of changes inside the echo delay becomes one reported patch.
	for _, p := range []map[string]any{{"building": "43"}, {"floor": 3.0}, {"building": "44", "x": map[string]any{"a": 1.0}}} {
		if _, err := h.reg.UpdateTwin("door-04", hubapi.TwinPatch{Properties: &hubapi.TwinProperties{Desired: p}}, "*"); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := reported(t, h.reg, "door-04")
		if r["building"] == "44" && r["floor"] == 3.0 {
			if r["firmware"] != "1.0" || r["x"].(map[string]any)["a"] != 1.0 {
				t.Fatalf("reported = %v", r)
			}
			if v := r["$version"].(float64); v != before+1 {
				t.Fatalf("reported $version %v → %v: the burst was not coalesced", before, v)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("desired never echoed: %v", r)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A null in desired deletes the reported key.
	h.reg.UpdateTwin("door-04", hubapi.TwinPatch{Properties: &hubapi.TwinProperties{Desired: map[string]any{"floor": nil}}}, "*")
	for {
		if _, ok := reported(t, h.reg, "door-04")["floor"]; !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("null not echoed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The offline device never echoes.
	h.reg.UpdateTwin("away", hubapi.TwinPatch{Properties: &hubapi.TwinProperties{Desired: map[string]any{"k": 1.0}}}, "*")
	time.Sleep(300 * time.Millisecond)
	if _, ok := reported(t, h.reg, "away")["k"]; ok {
		t.Fatal("offline device echoed")
	}
}

func TestRestartKeepsRememberedFleet(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hub.db")
	h := startHub(t, path, parse(t, testFleet))
	h.close()
	// Restart without a fleet: no re-seeding (that would fail with 409001), same behaviours.
	h2 := startHub(t, path, nil)
	if h2.reg.DeviceCount() != 22 || h2.sim.DeviceCount() != 22 || h2.sim.Fleet().Filename != "fleet.hcl" {
		t.Fatalf("after restart: registry %d sim %d fleet %s", h2.reg.DeviceCount(), h2.sim.DeviceCount(), h2.sim.Fleet().Filename)
	}
	res, err := h2.link.Invoke(context.Background(), "door-00", hubapi.CloudToDeviceMethod{MethodName: "lockDoor"})
	if err != nil || (res.Status != 200 && res.Status != 500) {
		t.Fatalf("after restart: %+v %v", res, err)
	}
	h2.close()
	// A different fleet on an existing hub adds what is missing and brings its behaviours.
	h3 := startHub(t, path, parse(t, `device "newcomer" {
  method "ping" { status = 204 }
}
device "solo" {
  method "ping" { status = 201 }
}`))
	if h3.reg.DeviceCount() != 23 || h3.sim.DeviceCount() != 2 {
		t.Fatalf("registry %d sim %d", h3.reg.DeviceCount(), h3.sim.DeviceCount())
	}
	if res, err := h3.link.Invoke(context.Background(), "solo", hubapi.CloudToDeviceMethod{MethodName: "ping"}); err != nil || res.Status != 201 {
		t.Fatalf("solo ping: %+v %v", res, err)
	}
}

func TestNewHubGetsDefaultFleet(t *testing.T) {
	h := startHub(t, filepath.Join(t.TempDir(), "hub.db"), nil)
	if h.reg.DeviceCount() != 301 || h.sim.OnlineCount() != 295 {
		t.Fatalf("registry %d online %d", h.reg.DeviceCount(), h.sim.OnlineCount())
	}
}

// TestLockDoorJobOverDefaultFleet runs the tutorial's method job and a twin job through the
// real registry, link and job manager over the default fleet.
func TestLockDoorJobOverDefaultFleet(t *testing.T) {
	h := startHub(t, filepath.Join(t.TempDir(), "hub.db"), nil)
	m, err := jobs.New(h.db, h.reg, h.link, jobs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	wait := func(id string) hubapi.JobResponse {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			r, err := m.Get(id)
			if err != nil {
				t.Fatal(err)
			}
			if r.Status == hubapi.JobStatusCompleted || r.Status == hubapi.JobStatusFailed {
				return r
			}
			if time.Now().After(deadline) {
				t.Fatalf("job %s stuck: %+v", id, r.DeviceJobStatistics)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if _, err := m.Create(hubapi.JobRequest{JobID: "lock", Type: hubapi.JobTypeDeviceMethod,
		QueryCondition:            "deviceId IN ['myDeviceId']",
		CloudToDeviceMethod:       &hubapi.CloudToDeviceMethod{MethodName: "lockDoor", Payload: json.RawMessage("null"), ResponseTimeoutInSeconds: 15},
		MaxExecutionTimeInSeconds: 300}); err != nil {
		t.Fatal(err)
	}
	r := wait("lock")
	if r.Status != hubapi.JobStatusCompleted || *r.DeviceJobStatistics != (hubapi.DeviceJobStatistics{DeviceCount: 1, SucceededCount: 1}) {
		t.Fatalf("lock job = %+v %+v", r, r.DeviceJobStatistics)
	}
	if h.sim.Calls("myDeviceId", "lockDoor") != 1 {
		t.Fatal("lockDoor did not reach myDeviceId")
	}

	if _, err := m.Create(hubapi.JobRequest{JobID: "all-doors", Type: hubapi.JobTypeDeviceMethod,
		QueryCondition:      "tags.kind = 'door-controller'",
		CloudToDeviceMethod: &hubapi.CloudToDeviceMethod{MethodName: "lockDoor", ResponseTimeoutInSeconds: 5}}); err != nil {
		t.Fatal(err)
	}
	r = wait("all-doors")
	// 300 doors: 6 offline fail with DeviceNotOnline; the 6 that answer 500 still count as
	// succeeded (they answered), with status 500 in their outcome.
	if *r.DeviceJobStatistics != (hubapi.DeviceJobStatistics{DeviceCount: 300, SucceededCount: 294, FailedCount: 6}) {
		t.Fatalf("all-doors stats = %+v", r.DeviceJobStatistics)
	}
	status500 := 0
	m.ForEachDeviceJob(func(row map[string]any) bool {
		if row["jobId"] == "all-doors" {
			if o, _ := row["outcome"].(map[string]any); o != nil {
				if dmr, _ := o["deviceMethodResponse"].(map[string]any); dmr != nil && dmr["status"] == 500.0 {
					status500++
				}
			}
		}
		return true
	})
	if status500 != 6 {
		t.Fatalf("%d rows with status 500, want 6", status500)
	}

	// The tutorial's twin job, then the device echoes it into reported.
	if _, err := m.Create(hubapi.JobRequest{JobID: "door-location", Type: hubapi.JobTypeUpdateTwin,
		QueryCondition: "deviceId IN ['myDeviceId']",
		UpdateTwin:     &hubapi.TwinPatch{ETag: "*", Properties: &hubapi.TwinProperties{Desired: map[string]any{"building": "43", "floor": 3}}}}); err != nil {
		t.Fatal(err)
	}
	if r := wait("door-location"); r.Status != hubapi.JobStatusCompleted || r.DeviceJobStatistics.SucceededCount != 1 {
		t.Fatalf("twin job = %+v", r)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		rp := reported(t, h.reg, "myDeviceId")
		if rp["building"] == "43" && rp["floor"] == 3.0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("myDeviceId never reported the job's desired properties: %v", rp)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestInterruptedSeedIsFinished: a hub whose seeding stopped half-way (as kill -9 leaves it:
// the fleet remembered as seeding, some devices imported) finishes the same fleet when started
// without one, and refuses another fleet with ErrInterruptedSeed instead of mixing them.
func TestInterruptedSeedIsFinished(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hub.db")
	f := parse(t, `group "g" {
  count = 2500
  id    = "seed-%05d"
}`)
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.Open(db, registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := remember(db, f, true); err != nil {
		t.Fatal(err)
	}
	var first []registry.SeedDevice
	for i := range 1000 {
		sd, err := f.Groups[0].Seed(i)
		if err != nil {
			t.Fatal(err)
		}
		first = append(first, sd)
	}
	if err := reg.Import(first); err != nil {
		t.Fatal(err)
	}
	db.Close()

	other := parse(t, `device "other" {}`)
	db, _ = bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second, NoSync: true})
	reg, _ = registry.Open(db, registry.Options{})
	if _, err := Start(context.Background(), other, db, reg, reg, link.New(link.Options{}), Options{}); !errors.Is(err, ErrInterruptedSeed) {
		t.Fatalf("another fleet after an interrupted seed: %v", err)
	}
	db.Close()

	h := startHub(t, path, nil)
	if n := h.reg.DeviceCount(); n != 2500 {
		t.Fatalf("%d devices after finishing the seed, want 2500", n)
	}
	if rf, err := loadRemembered(h.db); err != nil || rf == nil || rf.Seeding {
		t.Fatalf("still seeding after Start: %+v %v", rf, err)
	}
}
