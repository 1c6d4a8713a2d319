package cli

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/iotplan/iotplan/internal/reconcile"
	"github.com/iotplan/iotplan/internal/render"
)

type applyOptions struct {
	config      configFlags
	hub         hubFlags
	autoApprove bool
	slotTimeout time.Duration
}

func newApplyCmd(s Streams) *cobra.Command {
	o := &applyOptions{}
	cmd := &cobra.Command{
		Use:   "apply [-auto-approve] [-no-color] [-var name=value] [-dev] [PLANFILE | PATH...]",
		Short: "Change the fleet as planned, with IoT Hub jobs",
		Long: `Plans (or loads a plan saved with 'plan -out'), shows it, asks for 'yes', then
schedules one IoT Hub job per resource — scheduleUpdateTwin on exactly the drifted
devices, scheduleDeviceMethod on the targeted devices — waits for each with live
progress, and lists every device that failed.

Without a terminal to ask on, apply refuses unless -auto-approve is given. A saved
plan is applied as it is, without asking: it was reviewed when it was made.

Exit codes: 0 every targeted device succeeded (or nothing to do), 1 otherwise.`,
		RunE: func(cmd *cobra.Command, args []string) error { return runApply(cmd, s, o, args) },
	}
	fs := cmd.Flags()
	o.config.register(fs)
	o.hub.register(fs)
	fs.BoolVar(&o.autoApprove, "auto-approve", false, "apply without asking for confirmation")
	fs.DurationVar(&o.slotTimeout, "job-slot-timeout", 0, "give up when the hub's job slots stay held this long (0 = wait as long as they are held)")
	return cmd
}

func runApply(cmd *cobra.Command, s Streams, o *applyOptions, args []string) error {
	ctx := cmd.Context()
	var (
		p     *reconcile.Plan
		saved bool
		err   error
	)
	if len(args) == 1 && isPlanFile(args[0]) {
		if p, err = reconcile.LoadPlan(args[0]); err != nil {
			return fmt.Errorf("loading the plan %s: %w", args[0], err)
		}
		saved = true
	}

	var hs *hubSession
	if saved {
		if hs, err = openHub(ctx, o.hub, nil, s.Err); err != nil {
			return err
		}
		defer hs.Close()
		if !sameHub(p.Hub, hs.client.HostName(), hs.local != nil || o.hub.dev) {
			return fmt.Errorf("the plan was made for the hub %s, but this run talks to %s: plan again against this hub", p.Hub, hs.client.HostName())
		}
	} else {
		cfg, err := loadConfig(s, args, &o.config)
		if err != nil {
			return err
		}
		if hs, err = openHub(ctx, o.hub, cfg, s.Err); err != nil {
			return err
		}
		defer hs.Close()
		p, err = reconcile.MakePlan(ctx, hs.client, reconcile.FromSchema(cfg), hs.planOptions())
		if err != nil {
			return fmt.Errorf("reading the fleet from %s: %w", hs.name, err)
		}
	}

	color := colorOn(s.OutTTY, &o.config)
	if err := render.Plan(s.Out, p, render.Options{Color: color}); err != nil {
		return err
	}
	if !p.HasChanges() {
		return nil
	}
	if !saved && !o.autoApprove {
		ok, err := confirm(s, hs.name)
		if err != nil {
			return err
		}
		if !ok {
			fmt.Fprintln(s.Err, "\nApply cancelled.")
			return &silentError{exitError}
		}
	}

	fmt.Fprintln(s.Out)
	view := render.NewApplyView(s.Err, render.ApplyOptions{Options: render.Options{Color: colorOn(s.ErrTTY, &o.config)}, TTY: s.ErrTTY})
	tierOpt := reconcile.WithTier(hs.tier)
	if saved && hs.tierAssumed {
		tierOpt = reconcile.WithTier(p.HubTier()) // the tier the saved plan was sized for
	}
	res, applyErr := reconcile.Apply(ctx, p, hs.client, view, tierOpt, reconcile.WithSlotTimeout(o.slotTimeout))
	if res != nil {
		if err := render.ApplyResult(s.Out, res, applyErr != nil, render.ApplyOptions{Options: render.Options{Color: color}}); err != nil {
			return err
		}
	}
	if applyErr != nil {
		if errors.Is(applyErr, ctx.Err()) && ctx.Err() != nil {
			return errors.New("interrupted: jobs already scheduled keep running on the hub (see their ids above)")
		}
		return applyErr
	}
	if !res.Success() {
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
	fmt.Fprintf(s.Err, "\nDo you want to perform these actions on %s?\n  Only 'yes' will be accepted to approve.\n\n  Enter a value: ", hubName)
	line, err := bufio.NewReader(s.In).ReadString('\n')
	if err != nil && line == "" {
		return false, nil
	}
	return strings.TrimSpace(line) == "yes", nil
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
