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
	output           outputFlags
	out              string
	detailedExitCode bool
	destroy          bool
	targets          []string
}

func newPlanCmd(s Streams) *cobra.Command {
	o := &planOptions{}
	cmd := &cobra.Command{
		Use:   "plan [-out FILE] [-detailed-exitcode] [-destroy] [-json] [-compact-warnings] [-no-color] [-var name=value] [-var-file FILE] [-target ADDR] [-dev] [-state NAME] [-lock=false] [-lock-timeout D] [PATH...]",
		Short: "Show what apply would change on the fleet",
		Long: `Reads the fleet's current twins with aggregation queries (GROUP BY the managed
keys, COUNT, TOP samples: the number of hub calls does not grow with the fleet)
and shows each distinct change with its device count and example devices. It
reads the state iotplan keeps on the hub (docs/state.md), holding its lock while
it plans, so keys that left the configuration show as removals; -destroy plans
the removal of everything the state manages.

PATH is a .hcl file or a directory of them (default: the current directory).
Variables: -var name=value and -var-file FILE (HCL attribute syntax, like
.tfvars), in the order given, over iotplan.vars and *.auto.vars next to the
configuration, over IOTPLAN_VAR_name, over defaults.

-out FILE saves the plan for 'iotplan apply FILE' (docs/state.md), with the
values of the variables, except sensitive ones, which it never holds: applying
it needs those again, from IOTPLAN_VAR_name or iotplan.vars.

-target ADDR (repeatable) plans only the resources ADDR selects: twin.NAME,
twin.NAME["KEY"], method.NAME[0], module.NAME... Removals of other resources are
not planned and their state records are kept. It is for exceptional use.

-json writes JSON Lines events on stdout instead of text, for scripts
(docs/json.md); -input=false is accepted for scripts written for Terraform (plan
never prompts).

Exit codes: 0 success, 1 error; with -detailed-exitcode, 0 no changes,
1 error, 2 changes present.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ui := o.output.stream(s)
			return endJSON(ui, runPlan(cmd, s, o, args, ui))
		},
	}
	fs := cmd.Flags()
	o.config.register(fs)
	o.output.register(fs, true)
	o.hub.register(fs)
	o.lock.register(fs)
	fs.StringVar(&o.out, "out", "", "save the plan to FILE, for 'iotplan apply FILE'")
	fs.BoolVar(&o.detailedExitCode, "detailed-exitcode", false, "exit 2 when the plan has changes")
	fs.BoolVar(&o.destroy, "destroy", false, "plan the removal of everything the state manages")
	registerTargets(fs, &o.targets)
	return cmd
}

// runPlan plans; ui is the JSON stream with -json (nil otherwise).
func runPlan(cmd *cobra.Command, s Streams, o *planOptions, args []string, ui *render.JSONUI) error {
	ctx := cmd.Context()
	if err := checkTargets(o.targets); err != nil {
		return err
	}
	cfg, err := loadConfigReporting(args, &o.config, o.output.reporter(s, ui, &o.config))
	if err != nil {
		return err
	}
	ps, err := openPlanSession(ctx, s, o.hub, o.lock, cfg, "plan")
	if err != nil {
		return err
	}
	defer ps.Close(ctx)
	if rec := ps.state.Apply; rec != nil {
		say(s, ui, render.LevelWarn, unfinishedText(rec)+"\n\n")
	}
	p, err := reconcile.MakePlan(ctx, ps.hub.client, reconcile.FromSchema(cfg), ps.planOptions(o.destroy, o.targets))
	if err != nil {
		return fmt.Errorf("reading the fleet from %s: %w", ps.hub.name, err)
	}
	p.Config = configPaths(args)
	if p.Variables, err = cfg.SavedVariables(); err != nil {
		return err
	}
	if diags := planOutputs(cfg, p); len(diags) > 0 {
		o.output.reporter(s, ui, &o.config)(cfg.Files, diags)
		if diags.HasErrors() {
			return &silentError{exitError}
		}
	}
	if err := showPlan(s, ui, p, "plan", &o.config); err != nil {
		return err
	}
	if o.out != "" {
		if err := reconcile.SavePlan(o.out, p); err != nil {
			return fmt.Errorf("saving the plan: %w", err)
		}
		msg := fmt.Sprintf("\nSaved the plan to %s. To perform exactly these actions, run:\n  iotplan apply %s\n", o.out, o.out)
		if need := applyTimeText(p); need != "" {
			msg += need + "\n"
		}
		say(s, ui, render.LevelInfo, msg)
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
