// Package sim runs the local hub's simulated devices and reads fleet files.
//
// A fleet file (HCL) declares single devices and generated groups:
//
//	device "myDeviceId" {
//	  method "lockDoor" { status = 200 }
//	}
//	group "doors" {
//	  count    = 300
//	  id       = "door-%05d"                  # printf over the index 0..count-1, or an expression using index
//	  mode     = "in_process"                 # default; or "mqtt"
//	  tags     = { kind = "door-controller", building = "4${index % 3 + 1}" }
//	  desired  = { building = "42" }           # tags, desired, reported may use `index` and `id`
//	  reported = { firmware = "1.4.2" }
//	  offline_fraction    = 0.05               # exactly round(0.05·count) devices never connect
//	  reported_echo_delay = "200ms"            # default 500ms; "off" = never echo
//	  method "lockDoor" {
//	    status           = 200
//	    payload          = { locked = true }   # default null
//	    latency          = "20ms..80ms"        # fixed or uniform range; default 0
//	    failure_fraction = 0.02                # exactly round(0.02·count) devices always fail it
//	    failure_status   = 500                 # default 500
//	    failure_payload  = { error = "jammed" } # default {"error":"simulated failure"}
//	    respond          = true                # false: receive the call, never answer (→ 504101)
//	  }
//	  churn {                                  # connect/disconnect churn; default none
//	    interval = "5m..15m"                   # time connected between disconnects (fixed or range, ≥100ms)
//	    downtime = "1s..5s"                    # time away before reconnecting; default 1s
//	    fraction = 0.1                         # exactly round(0.1·online devices) churn; default 1
//	  }
//	}
//
// A device block takes `offline = true|false` instead of offline_fraction. Functions: abs,
// ceil, concat, element, floor, format, join, length, lookup, lower, max, merge, min, upper.
//
// Modes. The same behaviour block means the same thing in both modes (a test runs one group
// definition both ways and compares every answer):
//   - in_process: no socket; the device is a link.Device inside the hub, a few hundred bytes
//     (about 4.4 KB per device with its registry twin — see BENCHMARKS.md). For fleets of up
//     to millions of devices.
//   - mqtt: each device is a real MQTT 3.1.1 client (paho) over TLS on loopback, connected
//     to the hub's MQTT endpoint (Options.MQTT) with its own SAS token (signed with its
//     primary key, user name "{host}/{id}/?api-version=2021-04-12"). It subscribes to
//     $iothub/methods/POST/{name}/# for each method it defines, and, when it echoes, to
//     desired-property notifications and twin responses; it answers methods and reports its
//     echoes by PUBLISH, so all its load goes through the real endpoint. For hundreds to a
//     few thousand devices (at most MaxMQTTDevices per fleet). Without an endpoint (a hub
//     started without MQTT) they stay offline. A connection the hub closes unasked
//     (takeover, token expiry, key change) is reopened with backoff 0.5 s…30 s.
//
// Choices:
//   - Reproducible: which devices are offline, failing or churning, and every latency,
//     interval and downtime, derive from a hash of the device id (and method name and call
//     or cycle number); fractions pick exact counts.
//   - A method the device does not define is "not subscribed": the hub answers 404103 (what
//     Azure answers when the device has not registered the method callback), not a 504101
//     timeout. In-process devices return link.ErrNotSubscribed; mqtt-mode devices subscribe
//     per method.
//   - Well-behaved devices echo each desired change (the changed keys, nulls included) into
//     reported properties after reported_echo_delay; changes during the delay are merged into
//     one report. Offline devices never echo. A device that is away (churn) misses desired
//     changes made meanwhile (it does not GET its twin on reconnect); an echo that falls due
//     while an mqtt-mode device is away is reported when it is back.
//   - Churn: a churning device's first disconnect falls at a random point of its first
//     interval (no synchronized waves); a disconnect ends its link session (in-process) or
//     its MQTT connection (DISCONNECT), which the registry's connectionState follows.
//   - Scale: no goroutine per in-process device. Method latency waits on the caller's
//     goroutine (the REST handler or job worker that invoked it); echoes share one timer
//     heap and four reporting workers; churn one more timer heap. An mqtt-mode device costs
//     paho's goroutines and a TLS connection, plus the endpoint's session.
//   - Start seeds the registry only when it is empty. A fleet given for a hub that already
//     has devices adds the devices the registry lacks (when the Seeder can tell, via
//     Has(id) bool) and gives every fleet device its behaviour. Without a fleet, the one
//     remembered in bbolt bucket "fleet" is used, else DefaultFleet for a new hub, else none.
//     It connects in-process devices at once and waits (bounded by its ctx) until every
//     mqtt-mode device has connected and subscribed; one that cannot fails Start.
//
// Tests and benchmarks. The default test run stays small (TestMQTTJob: 200 mqtt-mode devices
// in a few seconds); IOTPLAN_SIM_MQTT_JOB=N runs it with N. SIM_TEST_LOG=1 prints the
// devices' and endpoint's logs. Big runs are benchmarks, use -benchtime 1x (figures vary
// with machine load):
//
//	IOTPLAN_BENCH_DEVICES=1000000 go test -run X -bench FleetMemory -benchtime 1x -timeout 30m ./internal/hub/sim
//	IOTPLAN_BENCH_DEVICES=1000000 go test -run X -bench MethodJob -benchtime 1x -timeout 30m ./internal/hub/sim
//	go test -run X -bench MQTTMethodRoundTrip -benchtime 20000x ./internal/hub/sim  # IOTPLAN_BENCH_MQTT_DEVICES=1000, IOTPLAN_BENCH_CALLERS=64
//	IOTPLAN_BENCH_DEVICES=1000000 go test -run X -bench SimOnly -benchtime 1x ./internal/hub/sim
//
// FleetMemory reports the live heap per in-process device with its registry twin, and the
// process's RSS (IOTPLAN_BENCH_HEAPPROFILE=file writes a heap profile); MethodJob runs a
// lockDoor job through the real registry, link and job manager and reports devices/s;
// MQTTMethodRoundTrip reports direct-method round trips/s through the MQTT endpoint;
// SimOnly reports what the simulated devices alone cost.
//
// Imports: hub/link, hub/registry (SeedDevice, ValidateDeviceID), hub/huberr, internal/sas,
// examples (the default fleet), paho.mqtt.golang, hcl/v2, go-cty, bbolt.
package sim

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"

	"github.com/iotplan/iotplan/examples"
	"github.com/iotplan/iotplan/internal/hub/link"
	"github.com/iotplan/iotplan/internal/hub/registry"
)

// Seeder creates devices in bulk; *registry.Registry satisfies it.
type Seeder interface {
	Import(devs []registry.SeedDevice) error
	DeviceCount() int
}

// Reporter patches a device's reported properties; *registry.Registry satisfies it.
type Reporter interface {
	PatchReported(deviceID string, patch map[string]any) (int64, error)
}

// existence is optionally implemented by a Seeder (*registry.Registry has it).
type existence interface{ Has(deviceID string) bool }

// defaultFleetSource is examples/fleet.hcl, embedded by the examples package so the file
// users copy is the one the hub runs.
var defaultFleetSource = examples.Fleet

// DefaultFleetFilename names the default fleet in diagnostics.
const DefaultFleetFilename = "examples/fleet.hcl"

// DefaultFleet is the fleet of a new hub started without one: examples/fleet.hcl.
func DefaultFleet() *Fleet {
	f, diags := ParseFleet(DefaultFleetFilename, defaultFleetSource)
	if diags.HasErrors() {
		panic("sim: the embedded default fleet is invalid: " + diags.Error()) // a test guards it
	}
	return f
}

const (
	bucketFleet = "fleet"
	seedBatch   = 1000
)

// Sim is the set of running simulated devices.
type Sim struct {
	fleet   *Fleet
	devices map[string]*device
	log     *slog.Logger
	echo    *echoer
	churn   *churner
	done    chan struct{}

	// mqtt mode
	mqtt     MQTTOptions
	mqttAddr string
	mqttTLS  *tls.Config
	mqttDevs []*mqttDevice
	connSem  chan struct{} // bounds concurrent MQTT connects
	ctx      context.Context
	cancel   context.CancelFunc

	connected atomic.Int64 // devices connected now (in-process and MQTT)
	stats     struct{ lost, reconnects, connectErrors, reports, reportErrors, disconnects atomic.Int64 }

	mu        sync.Mutex // guards closed and background goroutines' wg.Add
	closed    bool
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// Options configure Start beyond the fleet. The zero value runs in-process devices only.
type Options struct {
	// MQTT is the hub's MQTT endpoint for mqtt-mode devices.
	MQTT MQTTOptions
	// Logger receives device-side events (connection failures, churn); nil discards them.
	Logger *slog.Logger
}

type groupRT struct {
	g       *Group
	sim     *Sim
	methods map[string]int
}

// device is one simulated device. In-process devices are a link.Device themselves; an
// mqtt-mode device has mq set and reaches the hub through its MQTT session instead. It is
// kept small: a million of them live in the hub's process.
type device struct {
	id      string
	rt      *groupRT
	failing uint64 // bit i: always fails method i
	calls   []atomic.Int64
	pending map[string]any // echo waiting to be reported; guarded by echoer.mu
	mq      *mqttDevice    // nil: in-process
	disc    func()         // in-process: ends the link session; nil while disconnected
}

var _ link.Device = (*device)(nil)

// Start seeds a new hub with f's devices, remembers f in db so that a restart without a fleet
// keeps its behaviours, and connects every online device: in-process devices to l directly,
// mqtt-mode devices through opts.MQTT (Start waits until each has connected and subscribed).
// f == nil means the remembered fleet, or DefaultFleet for a new hub. ctx bounds the start
// only; Close stops the devices.
func Start(ctx context.Context, f *Fleet, db *bbolt.DB, seed Seeder, rep Reporter, l *link.Hub, opts Options) (*Sim, error) {
	remembered, err := loadRemembered(db)
	if err != nil {
		return nil, err
	}
	// A seed a crash interrupted is finished with the same fleet, never mixed with another.
	if remembered != nil && remembered.Seeding && f != nil && !bytes.Equal(remembered.Source, f.Source) {
		return nil, fmt.Errorf("%w: the hub's data holds the fleet of %s, half seeded; start it again with that fleet (or none) to finish seeding, or remove the data directory",
			ErrInterruptedSeed, remembered.Filename)
	}
	newHub := seed.DeviceCount() == 0
	switch {
	case f != nil:
	case remembered != nil:
		// Parsed only when no fleet was given: the same fleet's file was parsed already.
		parsed, diags := ParseFleet(remembered.Filename, remembered.Source)
		if diags.HasErrors() {
			return nil, fmt.Errorf("the fleet remembered in the hub's data (from %s) no longer parses: %s", remembered.Filename, diags.Error())
		}
		f = parsed
	case newHub:
		f = DefaultFleet()
	default:
		f = &Fleet{}
	}
	same := remembered != nil && !remembered.Seeding && bytes.Equal(remembered.Source, f.Source)

	s := &Sim{fleet: f, devices: make(map[string]*device, f.Size()), done: make(chan struct{}), mqtt: opts.MQTT, log: opts.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.mqtt.Keys == nil {
		s.mqtt.Keys, _ = seed.(KeyStore)
	}
	if s.mqtt.ConnectTimeout <= 0 {
		s.mqtt.ConnectTimeout = 10 * time.Second
	}
	if s.mqtt.Concurrency <= 0 {
		s.mqtt.Concurrency = 16
	}
	s.connSem = make(chan struct{}, s.mqtt.Concurrency)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.echo = newEchoer(rep)
	s.churn = newChurner(s, l)
	var inProcess, viaMQTT, churning []*device
	for _, g := range f.Groups {
		rt := &groupRT{g: g, sim: s, methods: make(map[string]int, len(g.Methods))}
		failing := make([][]bool, len(g.Methods))
		for i, m := range g.Methods {
			rt.methods[m.Name] = i
			failing[i] = g.FailingDevices(m)
		}
		offline := g.OfflineDevices()
		churns := g.ChurningDevices()
		for i := range g.Count {
			d := &device{id: g.ids[i], rt: rt, calls: make([]atomic.Int64, len(g.Methods))}
			for mi, fl := range failing {
				if fl != nil && fl[i] {
					d.failing |= 1 << mi
				}
			}
			s.devices[d.id] = d
			if offline != nil && offline[i] {
				continue
			}
			if g.Mode == ModeMQTT {
				viaMQTT = append(viaMQTT, d)
			} else {
				inProcess = append(inProcess, d)
			}
			if churns != nil && churns[i] {
				churning = append(churning, d)
			}
		}
	}
	if seedErr := s.seed(ctx, f, db, seed, newHub, same); seedErr != nil {
		s.Close()
		return nil, seedErr
	}
	l.Reserve(len(inProcess))
	for i, d := range inProcess {
		if i%1024 == 0 && ctx.Err() != nil {
			s.Close()
			return nil, ctx.Err()
		}
		d.disc = l.Connect(d.id, d)
	}
	s.connected.Add(int64(len(inProcess)))
	if err := s.startMQTT(ctx, viaMQTT); err != nil {
		s.Close()
		return nil, err
	}
	for _, d := range churning {
		if d.mq == nil && d.disc == nil {
			continue // an mqtt-mode device that is not simulated (no endpoint, or deleted)
		}
		s.churn.schedule(d)
	}
	s.churn.start()
	return s, nil
}

// seedDevices imports f's devices in batches; with has != nil, only those the registry lacks.
func seedDevices(ctx context.Context, f *Fleet, seed Seeder, has existence) error {
	batch := make([]registry.SeedDevice, 0, seedBatch)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := seed.Import(batch); err != nil {
			return fmt.Errorf("seeding the simulated fleet: %w", err)
		}
		batch = batch[:0]
		return ctx.Err()
	}
	for _, g := range f.Groups {
		for i := range g.Count {
			if has != nil && has.Has(g.ids[i]) {
				continue
			}
			sd, err := g.Seed(i)
			if err != nil {
				return fmt.Errorf("fleet %s: device %s: %w", f.Filename, g.ids[i], err)
			}
			batch = append(batch, sd)
			if len(batch) == seedBatch {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	return flush()
}

// ErrInterruptedSeed: the hub's data holds a fleet whose seeding a crash interrupted, and the
// hub was started with another fleet.
var ErrInterruptedSeed = errors.New("seeding of the simulated fleet was interrupted")

// seed imports the fleet's devices the registry lacks. Seeding takes many transactions, so it
// is bracketed by the remembered fleet: written with Seeding set before the first device, and
// again without it after the last. A hub that restarts in between finishes the same fleet
// (Start), so no crash leaves a partial or mixed fleet.
func (s *Sim) seed(ctx context.Context, f *Fleet, db *bbolt.DB, seed Seeder, newHub, same bool) error {
	has, canSkip := seed.(existence)
	if same || (!newHub && !canSkip) {
		return nil
	}
	if f.Source != nil {
		if err := remember(db, f, true); err != nil {
			return err
		}
	}
	if newHub {
		has = nil
	}
	if err := seedDevices(ctx, f, seed, has); err != nil {
		return err
	}
	if f.Source != nil {
		return remember(db, f, false)
	}
	return nil
}

type rememberedFleet struct {
	Filename string `json:"filename"`
	Source   []byte `json:"source"`
	Seeding  bool   `json:"seeding,omitempty"` // its devices are being imported
}

func loadRemembered(db *bbolt.DB) (*rememberedFleet, error) {
	var rf *rememberedFleet
	err := db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(bucketFleet))
		if b == nil {
			return nil
		}
		v := b.Get([]byte("current"))
		if v == nil {
			return nil
		}
		rf = new(rememberedFleet)
		return json.Unmarshal(v, rf)
	})
	if err != nil || rf == nil {
		return nil, err
	}
	return rf, nil
}

func remember(db *bbolt.DB, f *Fleet, seeding bool) error {
	v, err := json.Marshal(rememberedFleet{Filename: f.Filename, Source: f.Source, Seeding: seeding})
	if err != nil {
		return err
	}
	return db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte(bucketFleet))
		if err != nil {
			return err
		}
		return b.Put([]byte("current"), v)
	})
}

// Close disconnects every simulated device and stops the echoes and churn. Idempotent. Close
// it before the registry and the MQTT endpoint: disconnecting updates connection states
// through link's OnConnect, and mqtt-mode devices say DISCONNECT to the endpoint.
func (s *Sim) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		close(s.done)
		s.cancel()
		s.churn.close()
		s.echo.close()
		s.wg.Wait() // reconnects, delayed answers and churn work in flight
		for _, d := range s.devices {
			if d.disc != nil {
				d.disc()
				d.disc = nil
			}
		}
		var wg sync.WaitGroup
		sem := make(chan struct{}, 64)
		for _, md := range s.mqttDevs {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				if c := md.disconnect(false); c != nil {
					c.Disconnect(disconnectQuiet)
				}
			}()
		}
		wg.Wait()
		s.connected.Store(0)
	})
	return nil
}

func (s *Sim) isClosed() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// goBackground runs f on a goroutine that Close waits for; it does nothing once closed.
func (s *Sim) goBackground(f func()) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		f()
	}()
}

// afterFunc runs f after delay unless the sim has closed by then; Close waits for it once it
// has started.
func (s *Sim) afterFunc(delay time.Duration, f func()) {
	time.AfterFunc(delay, func() { s.goBackground(f) })
}

// Stats are counters of the simulated devices since Start.
type Stats struct {
	Connected     int   // devices connected now, in-process and MQTT
	MQTTDevices   int   // mqtt-mode devices being simulated (online ones)
	Disconnects   int64 // churn disconnects
	Reconnects    int64 // MQTT reconnects (after churn or a lost connection); in-process churn reconnects are counted too
	Lost          int64 // MQTT connections the hub closed unasked
	ConnectErrors int64 // failed MQTT reconnect attempts (retried with backoff)
	Reports       int64 // reported patches published over MQTT
	ReportErrors  int64 // reported patches the hub refused
}

// Stats returns the simulation's counters.
func (s *Sim) Stats() Stats {
	return Stats{
		Connected: int(s.connected.Load()), MQTTDevices: len(s.mqttDevs),
		Disconnects: s.stats.disconnects.Load(), Reconnects: s.stats.reconnects.Load(),
		Lost: s.stats.lost.Load(), ConnectErrors: s.stats.connectErrors.Load(),
		Reports: s.stats.reports.Load(), ReportErrors: s.stats.reportErrors.Load(),
	}
}

// Calls is how many calls of method deviceID received (calls of methods it does not define
// are not received: the hub answers 404103 for them).
func (s *Sim) Calls(deviceID, method string) int {
	d := s.devices[deviceID]
	if d == nil {
		return 0
	}
	i, ok := d.rt.methods[method]
	if !ok {
		return 0
	}
	return int(d.calls[i].Load())
}

// DeviceCount is the number of simulated devices, online or not.
func (s *Sim) DeviceCount() int { return len(s.devices) }

// OnlineCount is the number of simulated devices connected to the hub now (churn and lost
// MQTT connections lower it while they last).
func (s *Sim) OnlineCount() int { return int(s.connected.Load()) }

// Fleet is the fleet the devices run.
func (s *Sim) Fleet() *Fleet { return s.fleet }

var errClosed = errors.New("simulated device stopped")

// answer is how the device answers its next call of method mi: the status and payload, the
// latency before answering, and whether it answers at all. It counts the call.
func (d *device) answer(mi int) (status int, payload json.RawMessage, latency time.Duration, respond bool) {
	n := d.calls[mi].Add(1)
	m := d.rt.g.Methods[mi]
	latency = m.Latency(d.id, n)
	if d.failing&(1<<mi) != 0 {
		return m.FailureStatus, m.FailurePayload, latency, m.Respond
	}
	return m.Status, m.Payload, latency, m.Respond
}

// InvokeMethod answers a direct method per the device's method block (in-process devices).
func (d *device) InvokeMethod(ctx context.Context, name string, payload json.RawMessage) (int, json.RawMessage, error) {
	mi, ok := d.rt.methods[name]
	if !ok {
		return 0, nil, link.ErrNotSubscribed
	}
	done := d.rt.sim.done
	status, body, lat, respond := d.answer(mi)
	if lat > 0 {
		t := time.NewTimer(lat)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return 0, nil, ctx.Err()
		case <-done:
			t.Stop()
			return 0, nil, errClosed
		}
	}
	if !respond {
		select {
		case <-ctx.Done():
			return 0, nil, ctx.Err()
		case <-done:
			return 0, nil, errClosed
		}
	}
	return status, body, nil
}

// DesiredChanged queues the echo of a desired change into reported properties (in-process
// devices get it from link; mqtt-mode devices from their desired-notification subscription).
func (d *device) DesiredChanged(patch map[string]any, version int64) {
	g := d.rt.g
	if !g.Echo {
		return
	}
	s := d.rt.sim
	if s.isClosed() {
		return
	}
	s.echo.add(d, patch, g.EchoDelay)
}
