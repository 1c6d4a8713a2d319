// Package hubtest starts the local hub for tests of the packages that talk to it: in-process,
// on a random loopback port, over real HTTPS, with a fleet file the test writes, and with
// iotplan's own hub client trusting the hub's CA. Everything stops when the test ends.
//
// The hub is as strict as Azure's query documentation (hub.Options.QueryDialect's default).
// StartAudited also records every query text the hub receives (Audit) and, when the test
// ends, fails it for any text the hub rejected or that fails Lint, an independent lexical
// check of what iotplan may send.
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
	return StartWith(t, hub.Options{}, fleet)
}

// StartWith is Start with other hub options (e.g. Tier and Units); its data directory,
// address and fleet file are the harness's.
func StartWith(t testing.TB, opts hub.Options, fleet string) (*hub.Hub, *hubclient.Client) {
	t.Helper()
	dir := t.TempDir()
	opts.DataDir, opts.HTTPSAddr, opts.FleetFile = filepath.Join(dir, "hub"), "127.0.0.1:0", ""
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

// Client is a hub client for h (iothubowner) with opts (e.g. hubclient.WithTier), closed
// when the test ends.
func Client(t testing.TB, h *hub.Hub, opts ...hubclient.Option) *hubclient.Client {
	t.Helper()
	c, err := hubclient.New(h.ServiceConnectionString(), append([]hubclient.Option{hubclient.WithRootCAs(h.RootCAs())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
