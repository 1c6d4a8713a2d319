package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/iotplan/iotplan/internal/reconcile"
	"github.com/iotplan/iotplan/internal/render"
)

type planOptions struct {
	config           configFlags
	hub              hubFlags
	out              string
	detailedExitCode bool
}

func newPlanCmd(s Streams) *cobra.Command {
	o := &planOptions{}
	cmd := &cobra.Command{
		Use:   "plan [-out FILE] [-detailed-exitcode] [-no-color] [-var name=value] [-dev] [PATH...]",
		Short: "Show what apply would change on the fleet",
		Long: `Reads the fleet's current twins with aggregation queries (GROUP BY the managed
keys, COUNT, TOP samples: the number of hub calls does not grow with the fleet)
and shows each distinct change with its device count and example devices.

PATH is a .hcl file or a directory of them (default: the current directory).

Exit codes: 0 success, 1 error; with -detailed-exitcode, 0 no changes,
1 error, 2 changes present.`,
		RunE: func(cmd *cobra.Command, args []string) error { return runPlan(cmd, s, o, args) },
	}
	fs := cmd.Flags()
	o.config.register(fs)
	o.hub.register(fs)
	fs.StringVar(&o.out, "out", "", "save the plan to FILE, for 'iotplan apply FILE'")
	fs.BoolVar(&o.detailedExitCode, "detailed-exitcode", false, "exit 2 when the plan has changes")
	return cmd
}

func runPlan(cmd *cobra.Command, s Streams, o *planOptions, args []string) error {
	cfg, err := loadConfig(s, args, &o.config)
	if err != nil {
		return err
	}
	hs, err := openHub(cmd.Context(), o.hub, cfg, s.Err)
	if err != nil {
		return err
	}
	defer hs.Close()

	p, err := reconcile.MakePlan(cmd.Context(), hs.client, reconcile.FromSchema(cfg), hs.planOptions())
	if err != nil {
		return fmt.Errorf("reading the fleet from %s: %w", hs.name, err)
	}
	if err := render.Plan(s.Out, p, render.Options{Color: colorOn(s.OutTTY, &o.config)}); err != nil {
		return err
	}
	if o.out != "" {
		if err := reconcile.SavePlan(o.out, p); err != nil {
			return fmt.Errorf("saving the plan: %w", err)
		}
		fmt.Fprintf(s.Out, "\nSaved the plan to %s. To perform exactly these actions, run:\n  iotplan apply %s\n", o.out, o.out)
	}
	if o.detailedExitCode && p.HasChanges() {
		return &silentError{exitChanges}
	}
	return nil
}

// colorOn: color only on a terminal, never with -no-color or the NO_COLOR convention.
func colorOn(tty bool, f *configFlags) bool {
	return tty && !f.noColor && os.Getenv("NO_COLOR") == ""
}
