package cli

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/iotplan/iotplan/internal/reconcile"
	"github.com/iotplan/iotplan/internal/render"
	"github.com/iotplan/iotplan/internal/state"
)

type planOptions struct {
	config           configFlags
	hub              hubFlags
	lock             lockFlags
	out              string
	detailedExitCode bool
	destroy          bool
}

func newPlanCmd(s Streams) *cobra.Command {
	o := &planOptions{}
	cmd := &cobra.Command{
		Use:   "plan [-out FILE] [-detailed-exitcode] [-destroy] [-no-color] [-var name=value] [-dev] [-state NAME] [-lock=false] [-lock-timeout D] [PATH...]",
		Short: "Show what apply would change on the fleet",
		Long: `Reads the fleet's current twins with aggregation queries (GROUP BY the managed
keys, COUNT, TOP samples: the number of hub calls does not grow with the fleet)
and shows each distinct change with its device count and example devices. It
reads the state iotplan keeps on the hub (docs/state.md), holding its lock while
it plans, so keys that left the configuration show as removals; -destroy plans
the removal of everything the state manages.

PATH is a .hcl file or a directory of them (default: the current directory).

Exit codes: 0 success, 1 error; with -detailed-exitcode, 0 no changes,
1 error, 2 changes present.`,
		RunE: func(cmd *cobra.Command, args []string) error { return runPlan(cmd, s, o, args) },
	}
	fs := cmd.Flags()
	o.config.register(fs)
	o.hub.register(fs)
	o.lock.register(fs)
	fs.StringVar(&o.out, "out", "", "save the plan to FILE, for 'iotplan apply FILE'")
	fs.BoolVar(&o.detailedExitCode, "detailed-exitcode", false, "exit 2 when the plan has changes")
	fs.BoolVar(&o.destroy, "destroy", false, "plan the removal of everything the state manages")
	return cmd
}

func runPlan(cmd *cobra.Command, s Streams, o *planOptions, args []string) error {
	ctx := cmd.Context()
	cfg, err := loadConfig(s, args, &o.config)
	if err != nil {
		return err
	}
	ps, err := openPlanSession(ctx, s, o.hub, o.lock, cfg, "plan")
	if err != nil {
		return err
	}
	defer ps.Close(ctx)
	if rec := ps.state.Apply; rec != nil {
		fmt.Fprintf(s.Out, "%s\n\n", unfinishedText(rec))
	}
	p, err := reconcile.MakePlan(ctx, ps.hub.client, reconcile.FromSchema(cfg), ps.planOptions(o.destroy))
	if err != nil {
		return fmt.Errorf("reading the fleet from %s: %w", ps.hub.name, err)
	}
	p.Config = configPaths(args)
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

// unfinishedText says that the state records an apply that has not finished.
func unfinishedText(rec *state.ApplyRecord) string {
	return fmt.Sprintf("An apply has not finished (id %s, %s since %s, %d jobs): 'iotplan apply' resumes it, reattaching to its jobs, before anything else is planned.",
		rec.ID, rec.Operation, reconcile.TimeText(rec.Started), len(rec.Jobs))
}

// configPaths records the configuration's paths in a saved plan, absolute, so that applying
// it elsewhere in the tree reads the same hub block.
func configPaths(args []string) []string {
	if len(args) == 0 {
		args = []string{"."}
	}
	out := make([]string, 0, len(args))
	for _, a := range args {
		if abs, err := filepath.Abs(a); err == nil {
			a = abs
		}
		out = append(out, a)
	}
	return out
}

// colorOn: color only on a terminal, never with -no-color or the NO_COLOR convention.
func colorOn(tty bool, f *configFlags) bool {
	return tty && !f.noColor && os.Getenv("NO_COLOR") == ""
}
