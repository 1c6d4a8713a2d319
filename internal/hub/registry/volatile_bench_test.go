package registry

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"
)

// BenchmarkConnectFleet connects and disconnects every device of a fleet (default 100,000;
// IOTPLAN_BENCH_DEVICES overrides), as a hub start with a large simulated fleet does. Connection
// state is in memory, so this measures map and document copies, not store transactions.
func BenchmarkConnectFleet(b *testing.B) {
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("IOTPLAN_BENCH_DEVICES")); err == nil && v > 0 {
		n = v
	}
	r, _, _ := newRegistry(b)
	seeds := make([]SeedDevice, n)
	for i := range seeds {
		seeds[i] = SeedDevice{DeviceID: fmt.Sprintf("dev-%07d", i), Tags: map[string]any{"site": "s"}}
	}
	if err := r.Import(seeds); err != nil {
		b.Fatal(err)
	}
	at := time.Now()
	b.ResetTimer()
	for range b.N {
		for i := range seeds {
			if err := r.SetConnectionState(seeds[i].DeviceID, true, at); err != nil {
				b.Fatal(err)
			}
		}
		for i := range seeds {
			_ = r.RecordActivity(seeds[i].DeviceID, at)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*2*n), "ns/device-op")
}
