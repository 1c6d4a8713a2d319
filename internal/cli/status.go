package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/iotplan/iotplan/internal/reconcile"
	"github.com/iotplan/iotplan/internal/render"
)

type statusOptions struct {
	config configFlags
	hub    hubFlags
	json   bool
}

func newStatusCmd(s Streams) *cobra.Command {
	o := &statusOptions{}
	cmd := &cobra.Command{
		Use:   "status [-json] [-no-color] [-var name=value] [-var-file FILE] [-dev] [-state NAME] [PATH...]",
		Short: "Show how far the fleet has taken each resource: targeted, in sync, reported, disconnected, failed",
		Long: `Measures each resource of the configuration the way IoT Hub's automatic device
management reports a configuration (docs/status.md), with a few aggregate queries
per resource (the number of hub calls does not grow with the fleet):

  TARGETED          devices the target selects
  DESIRED IN SYNC   devices whose managed desired properties and tags hold the
                    configuration's values
  REPORTED IN SYNC  devices that report the configuration's desired values in
                    properties.reported (n/a when the resource manages no desired
                    property, or a value the hub cannot compare)
  RAN               run-once methods: devices that ran it with the current triggers
  DISCONNECTED      targeted devices whose connectionState is Disconnected
  FAILED            failed devices of the resource's jobs in the last apply that
                    finished, as the hub counts them (one job read per job)

It reads the state on the hub (for the last apply) without locking it, and writes
nothing. -json writes one JSON document instead (docs/json.md).`,
		RunE: func(cmd *cobra.Command, args []string) error { return runStatus(cmd.Context(), s, o, args) },
	}
	fs := cmd.Flags()
	o.config.register(fs)
	o.hub.register(fs)
	fs.BoolVar(&o.json, "json", false, "write one JSON document on stdout instead of the table (docs/json.md)")
	return cmd
}

func runStatus(ctx context.Context, s Streams, o *statusOptions, args []string) error {
	cfg, err := loadConfig(s, args, &o.config)
	if err != nil {
		return err
	}
	// Status only reads: the zero lockFlags take no lock, so it runs beside a plan or apply.
	ps, err := openPlanSession(ctx, s, o.hub, lockFlags{}, cfg, "status")
	if err != nil {
		return err
	}
	defer ps.Close(ctx)
	rep, err := reconcile.Status(ctx, ps.hub.client, reconcile.FromSchema(cfg), reconcile.StatusOptions{
		Hub: ps.hub.client.HostName(), Prior: ps.state, StateName: ps.store.Name()})
	if err != nil {
		return fmt.Errorf("reading the fleet from %s: %w", ps.hub.name, err)
	}
	if o.json {
		return render.StatusJSON(s.Out, rep, iotplanVersion())
	}
	return render.Status(s.Out, rep, render.Options{Color: colorOn(s.OutTTY, &o.config)})
}
