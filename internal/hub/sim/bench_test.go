package sim

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/iotplan/iotplan/internal/hub/jobs"
	"github.com/iotplan/iotplan/internal/hub/link"
	"github.com/iotplan/iotplan/internal/hub/registry"
	"github.com/iotplan/iotplan/internal/hubapi"
)

func bigFleet(t testing.TB, n int) *Fleet {
	f, diags := ParseFleet("big.hcl", []byte(fmt.Sprintf(`group "g" {
  count = %d
  id    = "dev-%%07d"
  tags  = { kind = "door-controller", building = element(["41", "42", "43"], index) }
  desired = { building = "42" }
  method "lockDoor" { status = 200 }
}`, n)))
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	return f
}

// TestNoGoroutinePerDevice guards the scale design: a fleet's devices cost no goroutines.
func TestNoGoroutinePerDevice(t *testing.T) {
	before := runtime.NumGoroutine()
	h := startHub(t, filepath.Join(t.TempDir(), "hub.db"), bigFleet(t, 3000))
	if h.link.ConnectedCount() != 3000 {
		t.Fatalf("%d connected", h.link.ConnectedCount())
	}
	if d := runtime.NumGoroutine() - before; d > 20 {
		t.Fatalf("%d goroutines for 3000 simulated devices", d)
	}
	h.close()
	for deadline := time.Now().Add(2 * time.Second); runtime.NumGoroutine()-before > 2; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines left after Close", runtime.NumGoroutine()-before)
		}
	}
}

// BenchmarkMethodJob runs a scheduleDeviceMethod job over N in-process devices through the
// real registry, link and job manager (N from IOTPLAN_BENCH_DEVICES, default 10000), and
// reports devices/s and the heap per simulated device (registry twin included).
func BenchmarkMethodJob(b *testing.B) {
	n := 10000
	if s := os.Getenv("IOTPLAN_BENCH_DEVICES"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	var ms0, ms1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	start := time.Now()
	h := startHub(b, filepath.Join(b.TempDir(), "hub.db"), bigFleet(b, n))
	startSecs := time.Since(start).Seconds()
	runtime.GC()
	runtime.ReadMemStats(&ms1)
	heapPerDevice := float64(ms1.HeapAlloc-ms0.HeapAlloc) / float64(n)
	m, err := jobs.New(h.db, h.reg, h.link, jobs.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		id := fmt.Sprintf("bench-%d", i)
		if _, err := m.Create(hubapi.JobRequest{JobID: id, Type: hubapi.JobTypeDeviceMethod,
			CloudToDeviceMethod: &hubapi.CloudToDeviceMethod{MethodName: "lockDoor"}}); err != nil {
			b.Fatal(err)
		}
		for {
			r, _ := m.Get(id)
			if r.Status == hubapi.JobStatusCompleted {
				if r.DeviceJobStatistics.SucceededCount != n {
					b.Fatalf("stats %+v", r.DeviceJobStatistics)
				}
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "devices/s")
	b.ReportMetric(startSecs, "s-start")
	b.ReportMetric(heapPerDevice, "heapB/device")
}

type nopSeeder struct{ n int }

func (s *nopSeeder) Import(devs []registry.SeedDevice) error { s.n += len(devs); return nil }
func (s *nopSeeder) DeviceCount() int                        { return s.n }
func (s *nopSeeder) PatchReported(string, map[string]any) (int64, error) {
	return 0, nil
}

// BenchmarkSimOnly measures what the simulated devices themselves cost (sim + link session
// table, no registry): heap bytes per device and start time. Use -benchtime 1x.
func BenchmarkSimOnly(b *testing.B) {
	n := 100000
	if s := os.Getenv("IOTPLAN_BENCH_DEVICES"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	f := bigFleet(b, n)
	for i := 0; i < b.N; i++ {
		db, err := bbolt.Open(filepath.Join(b.TempDir(), "hub.db"), 0o600, &bbolt.Options{NoSync: true})
		if err != nil {
			b.Fatal(err)
		}
		var ms0, ms1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms0)
		l := link.New(link.Options{})
		seed := &nopSeeder{}
		s, err := Start(context.Background(), f, db, seed, seed, l)
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&ms1)
		b.ReportMetric(float64(int64(ms1.HeapAlloc)-int64(ms0.HeapAlloc))/float64(n), "heapB/device")
		s.Close()
		db.Close()
	}
}
