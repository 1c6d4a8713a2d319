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
//	}
//
// A device block takes `offline = true|false` instead of offline_fraction. Functions: abs,
// ceil, concat, element, floor, format, join, length, lookup, lower, max, merge, min, upper.
// `mode = "in_process"` is the only mode so far; "mqtt" is reserved for devices that will run
// as real MQTT clients with the same behaviour definitions.
//
// Choices:
//   - Reproducible: which devices are offline or failing, and every latency, derive from a
//     hash of the device id (and method name and call number); fractions pick exact counts.
//   - A method the device does not define is "not subscribed": InvokeMethod returns
//     link.ErrNotSubscribed, which the hub reports as 404103 (what Azure answers when the
//     device has not registered the method callback), not a 504101 timeout.
//   - Well-behaved devices echo each desired change (the changed keys, nulls included) into
//     reported properties after reported_echo_delay; changes during the delay are merged into
//     one report. Offline devices never echo.
//   - Scale: no goroutine per device. Method latency waits on the caller's goroutine (the
//     REST handler or job worker that invoked it); echoes share one timer heap and four
//     reporting workers.
//   - Start seeds the registry only when it is empty. A fleet given for a hub that already
//     has devices adds the devices the registry lacks (when the Seeder can tell, via
//     Has(id) bool) and gives every fleet device its behaviour. Without a fleet, the one
//     remembered in bbolt bucket "fleet" is used, else DefaultFleet for a new hub, else none.
//
// Benchmarks (figures vary with machine load; use -benchtime 1x):
//
//	IOTPLAN_BENCH_DEVICES=100000 go test -run X -bench MethodJob -benchtime 1x ./internal/hub/sim
//	IOTPLAN_BENCH_DEVICES=1000000 go test -run X -bench SimOnly -benchtime 1x ./internal/hub/sim
//
// MethodJob runs a lockDoor job through the real registry, link and job manager and reports
// devices/s, start time and heap per device (twins included); SimOnly reports what the
// simulated devices alone cost.
//
// Imports: hub/link, hub/registry (SeedDevice, ValidateDeviceID), hcl/v2, go-cty, bbolt.
package sim

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"

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

//go:embed fleet.hcl
var defaultFleetSource []byte

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
	fleet       *Fleet
	devices     map[string]*device
	online      int
	disconnects []func()
	echo        *echoer
	done        chan struct{}
	closeOnce   sync.Once
}

type groupRT struct {
	g       *Group
	methods map[string]int
}

type device struct {
	id      string
	rt      *groupRT
	sim     *Sim
	failing uint64 // bit i: always fails method i
	calls   []atomic.Int64
	pending map[string]any // echo waiting to be reported; guarded by echoer.mu
}

var _ link.Device = (*device)(nil)

// Start seeds a new hub with f's devices, remembers f in db so that a restart without a fleet
// keeps its behaviours, and connects every online device to l. f == nil means the remembered
// fleet, or DefaultFleet for a new hub. ctx bounds the start only; Close stops the devices.
func Start(ctx context.Context, f *Fleet, db *bbolt.DB, seed Seeder, rep Reporter, l *link.Hub) (*Sim, error) {
	remembered, err := loadRemembered(db)
	if err != nil {
		return nil, err
	}
	newHub := seed.DeviceCount() == 0
	switch {
	case f != nil:
	case remembered != nil:
		f = remembered
	case newHub:
		f = DefaultFleet()
	default:
		f = &Fleet{}
	}
	same := remembered != nil && bytes.Equal(remembered.Source, f.Source)
	if newHub {
		if err := seedDevices(ctx, f, seed, nil); err != nil {
			return nil, err
		}
	} else if has, ok := seed.(existence); ok && !same {
		if err := seedDevices(ctx, f, seed, has); err != nil {
			return nil, err
		}
	}
	if !same && f.Source != nil {
		if err := remember(db, f); err != nil {
			return nil, err
		}
	}

	s := &Sim{fleet: f, devices: make(map[string]*device, f.Size()), done: make(chan struct{})}
	s.echo = newEchoer(rep)
	type conn struct {
		id string
		d  *device
	}
	var toConnect []conn
	for _, g := range f.Groups {
		rt := &groupRT{g: g, methods: make(map[string]int, len(g.Methods))}
		failing := make([][]bool, len(g.Methods))
		for i, m := range g.Methods {
			rt.methods[m.Name] = i
			failing[i] = g.FailingDevices(m)
		}
		offline := g.OfflineDevices()
		for i := range g.Count {
			d := &device{id: g.ids[i], rt: rt, sim: s, calls: make([]atomic.Int64, len(g.Methods))}
			for mi, fl := range failing {
				if fl != nil && fl[i] {
					d.failing |= 1 << mi
				}
			}
			s.devices[d.id] = d
			if offline == nil || !offline[i] {
				toConnect = append(toConnect, conn{d.id, d})
			}
		}
	}
	s.disconnects = make([]func(), 0, len(toConnect))
	for i, c := range toConnect {
		if i%1024 == 0 && ctx.Err() != nil {
			s.Close()
			return nil, ctx.Err()
		}
		s.disconnects = append(s.disconnects, l.Connect(c.id, c.d))
	}
	s.online = len(toConnect)
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

type rememberedFleet struct {
	Filename string `json:"filename"`
	Source   []byte `json:"source"`
}

func loadRemembered(db *bbolt.DB) (*Fleet, error) {
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
	f, diags := ParseFleet(rf.Filename, rf.Source)
	if diags.HasErrors() {
		return nil, fmt.Errorf("the fleet remembered in the hub's data (from %s) no longer parses: %s", rf.Filename, diags.Error())
	}
	return f, nil
}

func remember(db *bbolt.DB, f *Fleet) error {
	v, err := json.Marshal(rememberedFleet{Filename: f.Filename, Source: f.Source})
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

// Close disconnects every simulated device and stops the echoes. Idempotent. Close it before
// the registry: disconnecting updates connection states through link's OnConnect.
func (s *Sim) Close() error {
	s.closeOnce.Do(func() {
		close(s.done)
		s.echo.close()
		for _, disc := range s.disconnects {
			disc()
		}
	})
	return nil
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

// OnlineCount is the number of simulated devices connected to the hub.
func (s *Sim) OnlineCount() int { return s.online }

// Fleet is the fleet the devices run.
func (s *Sim) Fleet() *Fleet { return s.fleet }

var errClosed = errors.New("simulated device stopped")

// InvokeMethod answers a direct method per the device's method block.
func (d *device) InvokeMethod(ctx context.Context, name string, payload json.RawMessage) (int, json.RawMessage, error) {
	mi, ok := d.rt.methods[name]
	if !ok {
		return 0, nil, link.ErrNotSubscribed
	}
	n := d.calls[mi].Add(1)
	m := d.rt.g.Methods[mi]
	if lat := m.Latency(d.id, n); lat > 0 {
		t := time.NewTimer(lat)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return 0, nil, ctx.Err()
		case <-d.sim.done:
			t.Stop()
			return 0, nil, errClosed
		}
	}
	if !m.Respond {
		select {
		case <-ctx.Done():
			return 0, nil, ctx.Err()
		case <-d.sim.done:
			return 0, nil, errClosed
		}
	}
	if d.failing&(1<<mi) != 0 {
		return m.FailureStatus, m.FailurePayload, nil
	}
	return m.Status, m.Payload, nil
}

// DesiredChanged queues the echo of a desired change into reported properties.
func (d *device) DesiredChanged(patch map[string]any, version int64) {
	g := d.rt.g
	if !g.Echo {
		return
	}
	select {
	case <-d.sim.done:
		return
	default:
	}
	d.sim.echo.add(d, patch, g.EchoDelay)
}
