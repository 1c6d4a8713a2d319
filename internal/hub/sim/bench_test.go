package sim

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/iotplan/iotplan/internal/hub/jobs"
	"github.com/iotplan/iotplan/internal/hub/link"
	"github.com/iotplan/iotplan/internal/hub/registry"
	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/query"
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
// IOTPLAN_BENCH_CPUPROFILE=file profiles the job phase only.
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
	defer profileJob(b)()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		runJob(b, m, n, hubapi.JobRequest{JobID: fmt.Sprintf("bench-%d", i), Type: hubapi.JobTypeDeviceMethod,
			CloudToDeviceMethod: &hubapi.CloudToDeviceMethod{MethodName: "lockDoor"}})
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "devices/s")
	b.ReportMetric(startSecs, "s-start")
	b.ReportMetric(heapPerDevice, "heapB/device")
}

// BenchmarkTwinJob runs a scheduleUpdateTwin job over N in-process devices (N from
// IOTPLAN_BENCH_DEVICES, default 10000) through the real registry and job manager, every
// write durable, and reports devices/s:
//
//	IOTPLAN_BENCH_DEVICES=100000 go test -run X -bench TwinJob -benchtime 1x ./internal/hub/sim
//
// IOTPLAN_BENCH_CPUPROFILE=file profiles the job phase only.
func BenchmarkTwinJob(b *testing.B) {
	n := 10000
	if s := os.Getenv("IOTPLAN_BENCH_DEVICES"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	h := startHub(b, filepath.Join(b.TempDir(), "hub.db"), bigFleet(b, n))
	m, err := jobs.New(h.db, h.reg, h.link, jobs.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	idle := queryLatency(b, h.reg, 3, nil)
	stop := make(chan struct{})
	busy := make(chan time.Duration)
	go func() { busy <- queryLatency(b, h.reg, 1<<30, stop) }() // one query every 200 ms
	defer profileJob(b)()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		patch := &hubapi.TwinPatch{ETag: "*", Properties: &hubapi.TwinProperties{Desired: map[string]any{"floor": float64(i + 1)}}}
		runJob(b, m, n, hubapi.JobRequest{JobID: fmt.Sprintf("twin-%d", i), Type: hubapi.JobTypeUpdateTwin, UpdateTwin: patch})
	}
	b.StopTimer()
	close(stop)
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "devices/s")
	b.ReportMetric(float64(idle.Milliseconds()), "ms/query-idle")
	b.ReportMetric(float64((<-busy).Milliseconds()), "ms/query-during-job")
}

func stopped(stop chan struct{}) bool {
	select {
	case <-stop:
		return true
	default:
		return false
	}
}

// queryLatency runs a plan's typical aggregate (a GROUP BY over every twin) up to n times, or
// until stop is closed (then one every 200 ms), and returns the mean time of one: "queries
// stay fast while a job runs".
func queryLatency(b *testing.B, reg *registry.Registry, n int, stop chan struct{}) time.Duration {
	q, err := query.Parse("SELECT properties.desired.floor AS floor, COUNT() AS n FROM devices GROUP BY properties.desired.floor")
	if err != nil {
		b.Fatal(err)
	}
	p, err := query.Compile(q)
	if err != nil {
		b.Fatal(err)
	}
	var total time.Duration
	runs := 0
	for ; runs < n; runs++ {
		if stopped(stop) {
			break
		}
		start := time.Now()
		if _, err := p.Run(reg.ForEachTwin); err != nil {
			b.Error(err)
			return 0
		}
		total += time.Since(start)
		if stop != nil {
			time.Sleep(200 * time.Millisecond) // a busy client's pace, not a query storm
		}
	}
	if runs == 0 {
		return 0
	}
	return total / time.Duration(runs)
}

// profileJob starts a CPU profile of the job phase (without the fleet's start) when
// IOTPLAN_BENCH_CPUPROFILE names a file; the returned function stops it.
func profileJob(b *testing.B) func() {
	p := os.Getenv("IOTPLAN_BENCH_CPUPROFILE")
	if p == "" {
		return func() {}
	}
	out, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(out); err != nil {
		b.Fatal(err)
	}
	return func() { pprof.StopCPUProfile(); out.Close() }
}

// writeHeapProfile writes the live heap (after a GC) to file.
func writeHeapProfile(b *testing.B, file string) {
	runtime.GC()
	out, err := os.Create(file)
	if err != nil {
		b.Fatal(err)
	}
	defer out.Close()
	if err := pprof.WriteHeapProfile(out); err != nil {
		b.Fatal(err)
	}
}

// runJob creates a job and waits until it completed with every one of n devices succeeded.
// IOTPLAN_BENCH_JOBHEAP=file writes a heap profile when half of them are done.
func runJob(b *testing.B, m *jobs.Manager, n int, req hubapi.JobRequest) {
	if _, err := m.Create(req); err != nil {
		b.Fatal(err)
	}
	halfway := os.Getenv("IOTPLAN_BENCH_JOBHEAP") // a heap profile when half the devices are done
	for {
		r, _ := m.Get(req.JobID)
		if st := r.DeviceJobStatistics; halfway != "" && st != nil && st.SucceededCount >= n/2 {
			writeHeapProfile(b, halfway)
			halfway = ""
		}
		if r.Status == hubapi.JobStatusCompleted {
			if r.DeviceJobStatistics.SucceededCount != n {
				b.Fatalf("stats %+v", r.DeviceJobStatistics)
			}
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
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
		s, err := Start(context.Background(), f, db, seed, seed, l, Options{})
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

// benchDevices is IOTPLAN_BENCH_DEVICES, or def.
func benchDevices(b *testing.B, def int) int {
	if s := os.Getenv("IOTPLAN_BENCH_DEVICES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			b.Fatalf("IOTPLAN_BENCH_DEVICES=%q: want a positive integer", s)
		}
		return n
	}
	return def
}

// procStatus reads a "VmRSS"-style field of /proc/self/status in bytes (0 if unavailable).
func procStatus(field string) float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb * 1024
		}
	}
	return 0
}

// memoryFleet is the default fleet's door controller at scale: two tags, two desired and
// three reported properties per twin, one method, 2% offline, 2% failing.
func memoryFleet(b *testing.B, n int) *Fleet {
	f, diags := ParseFleet("memory.hcl", []byte(fmt.Sprintf(`group "doors" {
  count = %d
  id    = "door-%%07d"
  tags = {
    kind     = "door-controller"
    building = element(["41", "42", "43"], index)
  }
  desired = {
    building = element(["41", "42", "43"], index)
    floor    = index %% 5 + 1
  }
  reported = {
    firmware = "1.4.2"
    building = element(["41", "42", "43"], index)
    floor    = index %% 5 + 1
  }
  offline_fraction = 0.02
  method "lockDoor" {
    status           = 200
    payload          = { locked = true }
    failure_fraction = 0.02
  }
}`, n)))
	if diags.HasErrors() {
		b.Fatal(diags.Error())
	}
	return f
}

// BenchmarkFleetMemory measures what a fleet of in-process devices costs the hub: the real
// registry (every twin in memory), link sessions and simulated devices, N from
// IOTPLAN_BENCH_DEVICES (default 10000). Reported after a forced GC: live heap per device,
// the Go runtime's total (Sys) and the process's RSS and peak RSS (VmHWM, which includes the
// start's garbage), plus the start time. IOTPLAN_BENCH_HEAPPROFILE=file writes a heap profile
// of the running fleet. Use -benchtime 1x.
//
//	IOTPLAN_BENCH_DEVICES=1000000 go test -run X -bench FleetMemory -benchtime 1x -timeout 30m ./internal/hub/sim
func BenchmarkFleetMemory(b *testing.B) {
	n := benchDevices(b, 10000)
	f := memoryFleet(b, n)
	for i := 0; i < b.N; i++ {
		var ms0, ms1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms0)
		start := time.Now()
		h := startHub(b, filepath.Join(b.TempDir(), "hub.db"), f)
		secs := time.Since(start).Seconds()
		runtime.GC()
		debug.FreeOSMemory()
		runtime.ReadMemStats(&ms1)
		if p := os.Getenv("IOTPLAN_BENCH_HEAPPROFILE"); p != "" {
			out, err := os.Create(p)
			if err != nil {
				b.Fatal(err)
			}
			if err := pprof.WriteHeapProfile(out); err != nil {
				b.Fatal(err)
			}
			out.Close()
		}
		if h.reg.DeviceCount() != n {
			b.Fatalf("%d devices in the registry", h.reg.DeviceCount())
		}
		b.ReportMetric(float64(int64(ms1.HeapAlloc)-int64(ms0.HeapAlloc))/float64(n), "heapB/device")
		b.ReportMetric(float64(ms1.HeapAlloc)/(1<<30), "heapGiB")
		b.ReportMetric(float64(ms1.HeapInuse)/(1<<30), "heapInuseGiB")
		b.ReportMetric(float64(ms1.Sys)/(1<<30), "sysGiB")
		b.ReportMetric(float64(ms1.GCSys+ms1.OtherSys+ms1.StackSys+ms1.MSpanSys+ms1.MCacheSys+ms1.BuckHashSys)/(1<<30), "runtimeGiB")
		b.ReportMetric(procStatus("VmRSS")/(1<<30), "rssGiB")
		b.ReportMetric(procStatus("RssAnon")/(1<<30), "rssAnonGiB")
		b.ReportMetric(procStatus("RssFile")/(1<<30), "rssFileGiB")
		b.ReportMetric(procStatus("VmHWM")/(1<<30), "peakRssGiB")
		b.ReportMetric(secs, "s-start")
		h.close()
	}
}

// BenchmarkMQTTMethodRoundTrip measures direct-method round trips through the MQTT endpoint:
// N mqtt-mode devices (IOTPLAN_BENCH_MQTT_DEVICES, default 1000) connected over TLS on
// loopback, and callers (IOTPLAN_BENCH_CALLERS, default 64) invoking "ping" on them round
// robin through link, as the REST handler and the job workers do: hub → PUBLISH →
// device → PUBLISH res → hub. Reports round trips/s, connect time, and the heap per
// connected MQTT device (client and server side together).
//
//	go test -run X -bench MQTTMethodRoundTrip -benchtime 20000x ./internal/hub/sim
func BenchmarkMQTTMethodRoundTrip(b *testing.B) {
	n := 1000
	if s := os.Getenv("IOTPLAN_BENCH_MQTT_DEVICES"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	callers := 64
	if s := os.Getenv("IOTPLAN_BENCH_CALLERS"); s != "" {
		callers, _ = strconv.Atoi(s)
	}
	f, diags := ParseFleet("mqtt.hcl", []byte(fmt.Sprintf(`group "m" {
  count = %d
  id    = "m-%%05d"
  mode  = "mqtt"
  reported_echo_delay = "off"
  method "ping" {
    status  = 200
    payload = { pong = true }
  }
}`, n)))
	if diags.HasErrors() {
		b.Fatal(diags.Error())
	}
	var ms0, ms1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	start := time.Now()
	h := startMQTTHub(b, f, true)
	connectSecs := time.Since(start).Seconds()
	runtime.GC()
	runtime.ReadMemStats(&ms1)
	if got := h.mqtt.Stats().Connected; got != int64(n) {
		b.Fatalf("%d of %d devices connected", got, n)
	}
	ids := make([]string, n)
	for i := range ids {
		ids[i] = f.Groups[0].ID(i)
	}
	var next atomic.Int64
	errs := make(chan error, callers)
	b.ResetTimer()
	var wg sync.WaitGroup
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				r, err := h.link.Invoke(context.Background(), ids[i%int64(n)], hubapi.CloudToDeviceMethod{MethodName: "ping", ResponseTimeoutInSeconds: 30})
				if err == nil && r.Status != 200 {
					err = fmt.Errorf("status %d", r.Status)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "roundtrips/s")
	b.ReportMetric(connectSecs, "s-connect")
	b.ReportMetric(float64(int64(ms1.HeapAlloc)-int64(ms0.HeapAlloc))/float64(n), "heapB/mqttdevice")
	b.ReportMetric(float64(runtime.NumGoroutine())/float64(n), "goroutines/device")
}
