package hub_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/iotplan/iotplan/internal/hub"
)

// TestShutdownLargeFleet measures how long Close — what `iotplan dev` does on SIGTERM after
// its context is cancelled — takes for a hub of IOTPLAN_BENCH_DEVICES in-process simulated
// devices (skipped when unset; BENCHMARKS.md has the figure for 1,000,000):
//
//	IOTPLAN_BENCH_DEVICES=1000000 go test -run TestShutdownLargeFleet -v -timeout 30m ./internal/hub
func TestShutdownLargeFleet(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("IOTPLAN_BENCH_DEVICES"))
	if n <= 0 {
		t.Skip("set IOTPLAN_BENCH_DEVICES=N to measure the shutdown of an N-device hub")
	}
	dir := t.TempDir()
	fleet := filepath.Join(dir, "fleet.hcl")
	src := fmt.Sprintf("group \"doors\" {\n  count = %d\n  id = \"door-%%07d\"\n  tags = { building = element([\"41\", \"42\", \"43\"], index) }\n  desired = { floor = index %% 5 + 1 }\n  reported = { firmware = \"1.4.2\" }\n  method \"lockDoor\" { status = 200 }\n}\n", n)
	if err := os.WriteFile(fleet, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	h, err := hub.Start(context.Background(), hub.Options{DataDir: filepath.Join(dir, "dev"), HTTPSAddr: "127.0.0.1:0",
		MQTTAddr: "127.0.0.1:0", FleetFile: fleet})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("start (seed + connect) of %d devices: %v; %d connected", n, time.Since(start).Round(time.Millisecond), h.Link().ConnectedCount())
	stop := time.Now()
	if err := h.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	d := time.Since(stop)
	t.Logf("Close (graceful shutdown) of %d devices: %v", n, d.Round(time.Millisecond))
	if limit := 10 * time.Second; d > limit {
		t.Errorf("shutdown took %v, over %v", d.Round(time.Millisecond), limit)
	}
}
