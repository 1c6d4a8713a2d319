package registry

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/iotplan/iotplan/internal/hub/store"
	"github.com/iotplan/iotplan/internal/hubapi"
)

// benchRegistry opens a registry on a new store at path, as the hub opens its store.
func benchRegistry(b *testing.B, path string) (*Registry, *bbolt.DB) {
	db, err := store.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	r, err := Open(db, Options{})
	if err != nil {
		b.Fatal(err)
	}
	return r, db
}

// seedDoors imports n door controllers shaped like the default fleet's, 5,000 a batch.
func seedDoors(b *testing.B, r *Registry, n int) {
	const batch = 5_000
	for s := 0; s < n; s += batch {
		seeds := make([]SeedDevice, min(batch, n-s))
		for i := range seeds {
			seeds[i] = SeedDevice{
				DeviceID: fmt.Sprintf("door-%07d", s+i),
				Tags:     map[string]any{"building": fmt.Sprint(40 + (s+i)%4), "floor": (s + i) % 10},
				Desired:  map[string]any{"locked": true, "floor": 3},
				Reported: map[string]any{"locked": true, "floor": 3, "battery": 97},
			}
		}
		if err := r.Import(seeds); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpen measures a restart: Open of a store holding N devices (default 100,000;
// IOTPLAN_BENCH_DEVICES overrides) shaped like the default fleet's doors, every twin written
// twice after seeding (a desired patch and a reported patch), so that stamps differ by device.
//
//	IOTPLAN_BENCH_DEVICES=1000000 go test -run X -bench Open -benchtime 1x ./internal/hub/registry
func BenchmarkOpen(b *testing.B) {
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("IOTPLAN_BENCH_DEVICES")); err == nil && v > 0 {
		n = v
	}
	path := filepath.Join(b.TempDir(), "hub.db")
	r, db := benchRegistry(b, path)
	seedDoors(b, r, n)
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("door-%07d", i)
		_ = r.SetConnectionState(id, true, time.Now())
		if _, err := r.UpdateTwin(id, hubapi.TwinPatch{Properties: &hubapi.TwinProperties{Desired: map[string]any{"floor": 4}}}, ""); err != nil {
			b.Fatal(err)
		}
	}
	if err := r.Flush(); err != nil {
		b.Fatal(err)
	}
	db.Close()
	b.ResetTimer()
	for range b.N {
		r, db := benchRegistry(b, path) // the restart
		if r.DeviceCount() != n {
			b.Fatalf("%d devices after Open", r.DeviceCount())
		}
		b.StopTimer()
		db.Close()
		b.StartTimer()
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/open")
}
