// Package hubtest starts the local hub for tests of the packages that talk to it: in-process,
// on a random loopback port, over real HTTPS, with a fleet file the test writes, and with
// iotplan's own hub client trusting the hub's CA. Everything stops when the test ends.
package hubtest

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/iotplan/iotplan/internal/hub"
	"github.com/iotplan/iotplan/internal/hubclient"
)

// Start starts a hub seeded with fleet (fleet-file HCL; "" = the default fleet) and returns
// it with a client holding its iothubowner connection string.
func Start(t testing.TB, fleet string) (*hub.Hub, *hubclient.Client) {
	t.Helper()
	dir := t.TempDir()
	opts := hub.Options{DataDir: filepath.Join(dir, "hub"), HTTPSAddr: "127.0.0.1:0"}
	if fleet != "" {
		opts.FleetFile = filepath.Join(dir, "fleet.hcl")
		if err := os.WriteFile(opts.FleetFile, []byte(fleet), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	h, err := hub.Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h, Client(t, h)
}

// Client is a hub client for h (iothubowner), closed when the test ends.
func Client(t testing.TB, h *hub.Hub) *hubclient.Client {
	t.Helper()
	c, err := hubclient.New(h.ServiceConnectionString(), hubclient.WithRootCAs(h.RootCAs()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
