// Package cli is iotplan's command line: the cobra command tree, flag parsing, the choice of
// hub (local or Azure), prompts, and the mapping of outcomes to exit codes. It composes the
// packages that do the work (schema, reconcile, render, hubclient, hub) and owns no logic of
// its own beyond that wiring.
package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

// Main runs iotplan with args (without the program name) and returns the exit code. The
// first interrupt (Ctrl-C, SIGTERM) cancels the run's context; later ones reach the command
// through secondInterrupt (interrupt.go).
func Main(args []string, s Streams) int {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	second := make(chan os.Signal, 1)
	go func() {
		first := true
		for sig := range sigs {
			if first {
				first = false
				cancel()
				continue
			}
			select {
			case second <- sig:
			default:
			}
		}
	}()
	return run(withSecondInterrupt(ctx, second), args, s)
}

func run(ctx context.Context, args []string, s Streams) int {
	root := newRootCmd(s)
	root.SetArgs(normalizeArgs(args))
	root.SetIn(s.In)
	root.SetOut(s.Out)
	root.SetErr(s.Err)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	var se *silentError
	if errors.As(err, &se) {
		return se.code
	}
	fmt.Fprintf(s.Err, "Error: %s\n", oneLine(err.Error()))
	var fe *flagError
	if errors.As(err, &fe) || isCobraUsageError(err) {
		fmt.Fprintf(s.Err, "Run '%s --help' for usage.\n", cmd.CommandPath())
	}
	return exitCode(err)
}

func newRootCmd(s Streams) *cobra.Command {
	root := &cobra.Command{
		Use:   "iotplan",
		Short: "Declarative device twins and direct methods for Azure IoT Hub fleets",
		Long: `iotplan plans and applies desired twin state (desired properties, tags) and
direct-method runs on the devices an IoT Hub query selects, Terraform-style:
'plan' shows what would change, 'apply' does it with IoT Hub jobs.

It talks to Azure IoT Hub with a service connection string (IOTHUB_CONNECTION_STRING
or a hub block), or, with -dev, to the built-in local IoT Hub.`,
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &flagError{err} })
	root.AddCommand(newPlanCmd(s), newApplyCmd(s), newDestroyCmd(s), newValidateCmd(s), newDevCmd(s), newJobsCmd(s))
	root.AddCommand(newStateCmd(s))
	root.AddCommand(newForceUnlockCmd(s))
	root.AddCommand(newShowCmd(s))
	root.AddCommand(newStatusCmd(s), newDriftCmd(s))
	root.AddCommand(newFmtCmd(s), newQueryCmd(s), newVersionCmd(s))
	setupCompletion(root) // last: it completes the arguments of every command added above
	return root
}

// longFlags are the flags that may be written with one dash, Terraform-style (-out=FILE,
// -auto-approve). pflag would read "-out" as the shorthands -o -u -t, so Main rewrites
// these to their two-dash form before cobra parses them; both spellings work.
var longFlags = map[string]bool{
	"out": true, "detailed-exitcode": true, "no-color": true, "auto-approve": true,
	"var": true, "var-file": true, "dev": true, "data": true, "fleet": true, "host": true, "listen": true,
	"https-port": true, "mqtt-port": true, "help": true, "device-connection-string": true,
	"tier": true, "units": true, "policies": true, "regenerate-key": true,
	"hub-tier": true, "hub-units": true, "job-slot-timeout": true, "query-dialect": true,
	"state": true, "lock": true, "lock-timeout": true, "destroy": true, "json": true,
	"force": true, "config": true, "target": true,
	"check": true, "diff": true, "recursive": true, "list": true, "write": true, "top": true,
	"input": true, "compact-warnings": true, "format": true, "no-dashboard": true,
}

func normalizeArgs(args []string) []string {
	out := make([]string, 0, len(args))
	for i, a := range args {
		if a == "--" {
			return append(out, args[i:]...)
		}
		if len(a) > 2 && a[0] == '-' && a[1] != '-' {
			name, _, _ := strings.Cut(a[1:], "=")
			if longFlags[name] {
				a = "-" + a
			}
		}
		out = append(out, a)
	}
	return out
}

// isCobraUsageError recognises cobra's own argument errors, which are plain errors.
func isCobraUsageError(err error) bool {
	m := err.Error()
	return strings.HasPrefix(m, "unknown command") || strings.HasPrefix(m, "accepts ") ||
		strings.HasPrefix(m, "requires at least") || strings.HasPrefix(m, "unknown flag") ||
		strings.HasPrefix(m, "unknown shorthand flag")
}

// oneLine keeps error output to one line: hub and network errors can carry bodies.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}
