package cli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/iotplan/iotplan/internal/reconcile"
	"github.com/iotplan/iotplan/internal/render"
	"github.com/iotplan/iotplan/schema"
)

type applyOptions struct {
	config      configFlags
	hub         hubFlags
	lock        lockFlags
	output      outputFlags
	autoApprove bool
	slotTimeout time.Duration
	destroy     bool
	targets     []string
}

func newApplyCmd(s Streams) *cobra.Command {
	o := &applyOptions{}
	cmd := &cobra.Command{
		Use:   "apply [-auto-approve] [-destroy] [-json] [-input=false] [-compact-warnings] [-no-color] [-var name=value] [-var-file FILE] [-target ADDR] [-dev] [-state NAME] [-lock=false] [-lock-timeout D] [-job-slot-timeout D] [PLANFILE | PATH...]",
		Short: "Change the fleet as planned, with IoT Hub jobs",
		Long: `Plans (or loads a plan saved with 'plan -out'), shows it, asks for 'yes', then
schedules the IoT Hub jobs — scheduleUpdateTwin on exactly the drifted devices,
scheduleDeviceMethod on the targeted devices — waits for each with live progress,
lists every device that failed, and records what it applied in the state on the
hub (docs/state.md), holding the state's lock throughout.

An apply interrupted (Ctrl-C, a crash, kill -9) is recorded in the state: the
next 'iotplan apply' resumes it, reattaching to its jobs, so nothing runs twice.
The first Ctrl-C stops waiting and releases the lock; a second one within 3s
cancels the apply's jobs.

A saved plan is applied without asking, and refused, changing nothing, when the
state or the fleet moved since it was made. It is applied with the values of
the variables it was made with, so -var and -var-file are refused with it; a
saved plan does not hold the values of sensitive variables (the hub's connection
string is usually one): give those again in IOTPLAN_VAR_name (or iotplan.vars).

-json writes JSON Lines events on stdout instead of text, for scripts
(docs/json.md): the plan, each job's progress, every failed device, the outcome.
With -json or -input=false nothing is asked: -auto-approve or a saved plan is
required.

Exit codes: 0 every targeted device succeeded (or nothing to do), 1 otherwise.`,
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd, s, args) },
	}
	o.register(cmd)
	return cmd
}

// newDestroyCmd is 'apply -destroy': remove everything the state manages.
func newDestroyCmd(s Streams) *cobra.Command {
	o := &applyOptions{destroy: true}
	cmd := &cobra.Command{
		Use:   "destroy [-auto-approve] [-json] [-input=false] [-compact-warnings] [-no-color] [-var name=value] [-var-file FILE] [-target ADDR] [-dev] [-state NAME] [-lock=false] [-lock-timeout D] [PATH...]",
		Short: "Remove from the fleet everything the state manages",
		Long: `Plans the removal of every key iotplan set (from the devices that still hold the
value it set; resources with lifecycle { keep_on_removal = true } are only
forgotten), shows it, asks for 'yes', and applies it: the same as 'apply -destroy'.`,
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd, s, args) },
	}
	o.register(cmd)
	return cmd
}

// run is apply and destroy, with the JSON stream of -json.
func (o *applyOptions) run(cmd *cobra.Command, s Streams, args []string) error {
	ui := o.output.stream(s)
	return endJSON(ui, runApply(cmd, s, o, args, ui))
}

func (o *applyOptions) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	o.config.register(fs)
	o.output.register(fs, true)
	o.hub.register(fs)
	o.lock.register(fs)
	fs.BoolVar(&o.autoApprove, "auto-approve", false, "apply without asking for confirmation")
	fs.DurationVar(&o.slotTimeout, "job-slot-timeout", 0, "give up when the hub's job slots stay held this long (0 = wait as long as they are held)")
	if !o.destroy {
		fs.BoolVar(&o.destroy, "destroy", false, "remove everything the state manages")
	}
	registerTargets(fs, &o.targets)
}

// runApply applies; ui is the JSON stream with -json (nil otherwise).
func runApply(cmd *cobra.Command, s Streams, o *applyOptions, args []string, ui *render.JSONUI) error {
	saved := len(args) >= 1 && isPlanFile(args[0])
	if err := o.checkApproval(saved); err != nil {
		return err
	}
	if err := checkTargets(o.targets); err != nil {
		return err
	}
	if saved {
		return runApplySaved(cmd.Context(), s, o, args, ui)
	}
	ctx := cmd.Context()
	cfg, err := loadConfigReporting(args, &o.config, o.output.reporter(s, ui, &o.config))
	if err != nil {
		return err
	}
	ps, err := openPlanSession(ctx, s, o.hub, o.lock, cfg, operation(o.destroy))
	if err != nil {
		return err
	}
	defer ps.Close(ctx)
	if ps.state.Apply != nil {
		return resumeApply(ctx, s, o, ps, ui)
	}
	p, err := reconcile.MakePlan(ctx, ps.hub.client, reconcile.FromSchema(cfg), ps.planOptions(o.destroy, o.targets))
	if err != nil {
		return fmt.Errorf("reading the fleet from %s: %w", ps.hub.name, err)
	}
	if diags := planOutputs(cfg, p); len(diags) > 0 {
		o.output.reporter(s, ui, &o.config)(cfg.Files, diags)
		if diags.HasErrors() {
			return &silentError{exitError}
		}
	}
	if err := showPlan(s, ui, p, operation(o.destroy), &o.config); err != nil {
		return err
	}
	if !p.HasChanges() {
		return recordOnly(ctx, s, ps, p, ui, operation(o.destroy))
	}
	if !o.autoApprove {
		ok, err := confirm(s, ps.hub.name)
		if err != nil {
			return err
		}
		if !ok {
			fmt.Fprintln(s.Err, "\nApply cancelled.")
			return &silentError{exitError}
		}
	}
	return executeApply(ctx, s, o, ps, p, ui)
}

func operation(destroy bool) string {
	if destroy {
		return "destroy"
	}
	return "apply"
}

// recordOnly writes the plan's records when the fleet needs no change but the state does
// (resources new to the state that already match, or records of removed ones to forget).
// With -json it ends with the apply_summary of an apply with nothing to do.
func recordOnly(ctx context.Context, s Streams, ps *planSession, p *reconcile.Plan, ui *render.JSONUI, op string) (err error) {
	if ui != nil {
		defer func() {
			if err == nil {
				ui.ApplyResult(&reconcile.ApplyResult{}, false, false, op)
			}
		}()
	}
	if !recordsChanged(p.Records, ps.state) {
		return nil
	}
	if err := ps.Finish(ctx, p.Records); err != nil {
		return fmt.Errorf("recording the resources in the state: %w", err)
	}
	say(s, ui, render.LevelInfo, fmt.Sprintf("\nThe state %q now records %d resources (serial %d).\n", ps.store.Name(), len(p.Records), ps.state.Serial))
	return nil
}

// runApplySaved applies a plan saved with 'plan -out': the hub block comes from the
// configuration the plan was made from, and the plan is refused, changing nothing, when the
// state or the fleet moved since.
func runApplySaved(ctx context.Context, s Streams, o *applyOptions, args []string, ui *render.JSONUI) error {
	if len(o.config.vars) > 0 {
		// Terraform's refusal (https://developer.hashicorp.com/terraform/cli/commands/apply,
		// "Saved plan mode"): the plan holds the values it was made with.
		return flagErrorf("Can't set variables when applying a saved plan: the -var and -var-file options cannot be used when applying a saved plan file, because a saved plan includes the variable values that were set when it was created (sensitive ones excepted: give those in %sNAME)", schema.EnvVarPrefix)
	}
	if len(args) > 1 || o.destroy || len(o.targets) > 0 {
		return flagErrorf("a saved plan is applied as it is: give it alone, without configuration paths, -destroy or -target (they were fixed when it was made)")
	}
	p, err := reconcile.LoadPlan(args[0])
	if err != nil {
		return fmt.Errorf("loading the plan %s: %w", args[0], err)
	}
	cfg, err := planConfig(p, o.output.reporter(s, ui, &o.config))
	if err != nil {
		return err
	}
	ps, err := openPlanSession(ctx, s, o.hub, o.lock, cfg, "apply")
	if err != nil {
		return err
	}
	defer ps.Close(ctx)
	if err := checkSaved(ctx, ps, p, o.hub.dev); err != nil {
		return err
	}
	if err := showPlan(s, ui, p, "apply", &o.config); err != nil {
		return err
	}
	if !p.HasChanges() {
		return recordOnly(ctx, s, ps, p, ui, "apply")
	}
	return executeApply(ctx, s, o, ps, p, ui)
}

// planConfig reads the hub block of the configuration a saved plan was made from, with the
// variables' values the plan recorded; no configuration (a plan from elsewhere) is fine: the
// environment then names the hub.
func planConfig(p *reconcile.Plan, report diagReporter) (*schema.Config, error) {
	if len(p.Config) == 0 {
		return nil, nil
	}
	for _, path := range p.Config {
		if _, err := os.Stat(path); err != nil {
			return nil, nil
		}
	}
	cfg, err := loadConfigReporting(p.Config, &configFlags{saved: p.Variables}, report)
	if err != nil {
		return nil, fmt.Errorf("reading the hub block from %s, where the plan was made: %w", strings.Join(p.Config, ", "), err)
	}
	return cfg, nil
}

// checkSaved refuses a saved plan made for another hub or state, or one the state or the
// fleet moved away from.
func checkSaved(ctx context.Context, ps *planSession, p *reconcile.Plan, dev bool) error {
	host := ps.hub.client.HostName()
	switch st := ps.state; {
	case !sameHub(p.Hub, host, ps.hub.local != nil || dev):
		return fmt.Errorf("the plan was made for the hub %s, but this run talks to %s: plan again against this hub", p.Hub, host)
	case p.StateName != ps.store.Name():
		return fmt.Errorf("the plan was made for the state %q, not %q: plan again, or give -state %s", p.StateName, ps.store.Name(), p.StateName)
	case st.Apply != nil:
		return fmt.Errorf("%w: an apply of the state %q has not finished: run 'iotplan apply' without a plan to resume it, then plan again", reconcile.ErrStale, st.Name)
	case st.Serial != p.StateSerial || (p.StateLineage != "" && st.Lineage != p.StateLineage):
		return fmt.Errorf("%w: the state %q moved since it was made (serial %d, now %d): another apply ran; nothing was changed: run plan again", reconcile.ErrStale, st.Name, p.StateSerial, st.Serial)
	}
	return reconcile.Recheck(ctx, ps.hub.client, p)
}

// resumeApply finishes the apply the state records as unfinished, and only that: changes made
// since are for the next apply.
func resumeApply(ctx context.Context, s Streams, o *applyOptions, ps *planSession, ui *render.JSONUI) error {
	rec := ps.state.Apply
	say(s, ui, render.LevelWarn, fmt.Sprintf("Resuming the apply %s (%s since %s): reattaching to the jobs it created, creating the others.\n\n",
		rec.ID, rec.Operation, reconcile.TimeText(rec.Started)))
	view, viewDone := applyHook(s, ui, &o.config)
	res, err := reconcile.Resume(ctx, rec, ps.hub.client, view, reconcile.WithTier(ps.hub.tier),
		reconcile.WithSlotTimeout(o.slotTimeout), reconcile.WithJournal(ps))
	viewDone()
	if err := finishApply(ctx, s, o, ps, res, err, ui); err != nil {
		return err
	}
	say(s, ui, render.LevelInfo, "Run 'iotplan apply' again for changes made since that apply began.\n")
	return nil
}

func executeApply(ctx context.Context, s Streams, o *applyOptions, ps *planSession, p *reconcile.Plan, ui *render.JSONUI) error {
	if ui == nil {
		fmt.Fprintln(s.Out)
	}
	view, viewDone := applyHook(s, ui, &o.config)
	tierOpt := reconcile.WithTier(ps.hub.tier)
	if ps.hub.tierAssumed {
		tierOpt = reconcile.WithTier(p.HubTier()) // the tier the plan was sized for
	}
	res, err := reconcile.Apply(ctx, p, ps.hub.client, view, tierOpt, reconcile.WithSlotTimeout(o.slotTimeout), reconcile.WithJournal(ps))
	viewDone()
	return finishApply(ctx, s, o, ps, res, err, ui)
}

// finishApply reports an apply's result and maps it to the exit: an interrupt is handled as
// Terraform users expect (see interrupted).
func finishApply(ctx context.Context, s Streams, o *applyOptions, ps *planSession, res *reconcile.ApplyResult, applyErr error, ui *render.JSONUI) error {
	if res != nil && ui != nil {
		ui.ApplyResult(res, applyErr != nil, ctx.Err() != nil, operation(o.destroy))
	} else if res != nil {
		if err := render.ApplyResult(s.Out, res, applyErr != nil, render.ApplyOptions{
			Options: render.Options{Color: colorOn(s.OutTTY, &o.config)}, Interrupted: ctx.Err() != nil}); err != nil {
			return err
		}
	}
	switch {
	case applyErr != nil && ctx.Err() != nil:
		return interrupted(ctx, s, ps)
	case applyErr != nil:
		return applyErr
	case !res.Success():
		return &silentError{exitError}
	}
	return nil
}

// confirm asks for "yes" on the terminal; without one it refuses, so an unattended run never
// hangs on a prompt and never acts without an explicit -auto-approve.
func confirm(s Streams, hubName string) (bool, error) {
	if !s.InTTY {
		return false, errors.New("apply needs confirmation and there is no terminal to ask on: review the plan and re-run with -auto-approve, or apply a saved plan (plan -out FILE)")
	}
	return askYes(s, fmt.Sprintf("Do you want to perform these actions on %s?", hubName)), nil
}

// askYes asks question on the terminal, Terraform's way, and reports whether the answer was
// exactly "yes".
func askYes(s Streams, question string) bool {
	fmt.Fprintf(s.Err, "\n%s\n  Only 'yes' will be accepted to approve.\n\n  Enter a value: ", question)
	line, err := bufio.NewReader(s.In).ReadString('\n')
	if err != nil && line == "" {
		return false
	}
	return strings.TrimSpace(line) == "yes"
}

// isPlanFile tells a saved plan (JSON) from configuration: plans are what 'plan -out' wrote.
func isPlanFile(path string) bool {
	if strings.HasSuffix(path, ".hcl") || strings.HasSuffix(path, ".hcl.json") {
		return false
	}
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	head := make([]byte, 512)
	n, _ := f.Read(head)
	head = bytes.TrimSpace(head[:n])
	return bytes.HasPrefix(head, []byte("{")) && bytes.Contains(head, []byte(`"format_version"`))
}

// sameHub compares the hub a plan was made for with the one this run talks to. The local
// hub started in-process listens on a new port each run, so for it only the host counts.
func sameHub(planned, current string, local bool) bool {
	if strings.EqualFold(planned, current) {
		return true
	}
	if !local {
		return false
	}
	return strings.EqualFold(hostOnly(planned), hostOnly(current))
}

func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}
