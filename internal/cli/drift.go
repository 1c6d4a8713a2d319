package cli

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/iotplan/iotplan/internal/reconcile"
	"github.com/iotplan/iotplan/internal/render"
	"github.com/iotplan/iotplan/schema"
)

type driftOptions struct {
	config configFlags
	hub    hubFlags
	lock   lockFlags
	json   bool
}

func newDriftCmd(s Streams) *cobra.Command {
	o := &driftOptions{}
	cmd := &cobra.Command{
		Use:   "drift [-json] [-no-color] [-var name=value] [-var-file FILE] [-dev] [-state NAME] [-lock=false] [-lock-timeout D] [PATH...]",
		Short: "Find the devices that no longer hold the values iotplan set, and record it in the state",
		Long: `Checks every twin resource the state records, key by key: how many devices of its
recorded target no longer hold the value iotplan set (missing, another value,
another type), when the key last changed on them (desired properties'
$metadata.$lastUpdated; tags have none) and three example devices. A few
aggregate queries per key: the number of hub calls does not grow with the fleet
(docs/status.md).

It compares the devices with the state, not with the configuration: PATH is read
only for the hub block (default: the current directory, when it holds .hcl files).
It records what it found in the state (its drift section, replacing the previous
one) under the state's lock, and writes nothing to the devices. -json writes one
JSON document instead of text (docs/json.md).

Exit codes, as plan -detailed-exitcode: 0 no drift, 1 error, 2 drift found.`,
		RunE: func(cmd *cobra.Command, args []string) error { return runDrift(cmd.Context(), s, o, args) },
	}
	fs := cmd.Flags()
	o.config.register(fs)
	o.hub.register(fs)
	o.lock.register(fs)
	fs.BoolVar(&o.json, "json", false, "write one JSON document on stdout instead of text (docs/json.md)")
	return cmd
}

func runDrift(ctx context.Context, s Streams, o *driftOptions, args []string) error {
	cfg, err := driftConfig(s, o, args)
	if err != nil {
		return err
	}
	ps, err := openPlanSession(ctx, s, o.hub, o.lock, cfg, "drift")
	if err != nil {
		return err
	}
	defer ps.Close(ctx)
	rep, err := reconcile.Drift(ctx, ps.hub.client, ps.state, reconcile.DriftOptions{Hub: ps.hub.client.HostName()})
	if err != nil {
		return fmt.Errorf("reading the fleet from %s: %w", ps.hub.name, err)
	}
	serial, recErr := recordDrift(ctx, ps, rep)
	if o.json {
		err = render.DriftJSON(s.Out, rep, serial, iotplanVersion())
	} else {
		err = render.Drift(s.Out, rep, serial, render.Options{Color: colorOn(s.OutTTY, &o.config)})
	}
	switch {
	case recErr != nil:
		return fmt.Errorf("recording the drift in the state: %w", recErr)
	case err != nil:
		return err
	case rep.Drifted():
		return &silentError{exitChanges}
	}
	return nil
}

// driftConfig reads the configuration for its hub block: PATH, else the current directory
// when it holds .hcl files, else none (the environment names the hub).
func driftConfig(s Streams, o *driftOptions, args []string) (*schema.Config, error) {
	if len(args) == 0 {
		if m, _ := filepath.Glob("*.hcl"); len(m) == 0 {
			return nil, nil
		}
	}
	return loadConfig(s, args, &o.config)
}

// recordDrift replaces the state's drift section with what rep found, and returns the serial
// that holds it; a state that records no twin resource has nothing to record (0).
func recordDrift(ctx context.Context, ps *planSession, rep *reconcile.DriftReport) (int64, error) {
	if len(rep.Resources) == 0 {
		return 0, nil
	}
	st := *ps.state
	st.Drift = rep.Record()
	if err := ps.write(ctx, &st); err != nil {
		return 0, err
	}
	return ps.state.Serial, nil
}
