package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/iotplan/iotplan/internal/render"
	"github.com/iotplan/iotplan/internal/state"
	"github.com/iotplan/iotplan/schema"
)

// Version is iotplan's version, recorded in the state locks it takes (set it at build time
// with -ldflags "-X github.com/iotplan/iotplan/internal/cli.Version=v1.2.3").
var Version = "dev"

// stateFlags select the hub and the named state of the state commands. Configuration is
// optional for them: it is read from -config, else from the current directory when it holds
// .hcl files (for the hub block's connection string, tier and state name).
type stateFlags struct {
	config configFlags
	hub    hubFlags
	path   string
}

func (f *stateFlags) register(fs *pflag.FlagSet) {
	f.config.register(fs)
	f.hub.register(fs)
	fs.StringVar(&f.path, "config", "", "read the hub block from this .hcl file or directory (default: the current directory, if it holds .hcl files)")
}

// stateSession is a hub and the store of the named state on it.
type stateSession struct {
	hub   *hubSession
	store *state.Store
}

func openState(ctx context.Context, s Streams, f *stateFlags) (*stateSession, error) {
	cfg, err := loadOptionalConfig(s, f)
	if err != nil {
		return nil, err
	}
	name, err := stateName(f.hub, cfg)
	if err != nil {
		return nil, err
	}
	hs, err := openHub(ctx, f.hub, cfg, s.Err)
	if err != nil {
		return nil, err
	}
	st, err := state.Open(hs.client, name)
	if err != nil {
		hs.Close()
		return nil, err
	}
	return &stateSession{hub: hs, store: st}, nil
}

func loadOptionalConfig(s Streams, f *stateFlags) (*schema.Config, error) {
	if f.path != "" {
		return loadConfig(s, []string{f.path}, &f.config)
	}
	if m, _ := filepath.Glob("*.hcl"); len(m) > 0 {
		return loadConfig(s, nil, &f.config)
	}
	return nil, nil
}

func newStateCmd(s Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "state",
		Short: "Inspect and edit the state iotplan keeps on the hub",
		Long: `iotplan keeps its state on the hub, in the twin of the device iotplan-state-<name>
(docs/state.md): the resources it manages, the values it set, and an apply that
has not finished. These commands read it and remove records from it.`,
	}
	cmd.AddCommand(newStateListCmd(s), newStateShowCmd(s), newStateRmCmd(s))
	return cmd
}

func newStateListCmd(s Streams) *cobra.Command {
	f := &stateFlags{}
	cmd := &cobra.Command{
		Use:   "list [-dev] [-state NAME]",
		Short: "List the addresses of the resources in the state",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ss, err := openState(cmd.Context(), s, f)
			if err != nil {
				return err
			}
			defer ss.hub.Close()
			st, err := ss.store.Read(cmd.Context())
			if err != nil {
				return err
			}
			for _, a := range addresses(st.Resources) {
				fmt.Fprintln(s.Out, a)
			}
			return nil
		},
	}
	f.register(cmd.Flags())
	return cmd
}

func addresses(rs []state.Resource) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Addr
	}
	slices.Sort(out)
	return out
}

func newStateShowCmd(s Streams) *cobra.Command {
	f := &stateFlags{}
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show [ADDR] [-json] [-dev] [-state NAME]",
		Short: "Show the state, or one resource in it",
		Long: `Shows the state's serial, lineage, lock holder and unfinished apply, and each
resource with its target and the keys iotplan manages; with ADDR, that resource only.
-json writes the state (or the resource) as JSON. Values from sensitive variables are
shown as "(sensitive value)" in both.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ss, err := openState(cmd.Context(), s, f)
			if err != nil {
				return err
			}
			defer ss.hub.Close()
			st, lock, err := ss.store.ReadWithLock(cmd.Context())
			if err != nil {
				return err
			}
			if len(args) == 1 {
				rs := selected(st, args)
				if len(rs) == 0 {
					return fmt.Errorf("no resource %s in the state %q%s", args[0], st.Name, addrHint(st, args[0]))
				}
				for i := range rs {
					if asJSON {
						if err := writeJSON(s.Out, masked(rs[i])); err != nil {
							return err
						}
						continue
					}
					showResource(s.Out, &rs[i])
				}
				return nil
			}
			if asJSON {
				out := *st
				out.Resources = make([]state.Resource, len(st.Resources))
				for i := range st.Resources {
					out.Resources[i] = masked(st.Resources[i])
				}
				return writeJSON(s.Out, &out)
			}
			showState(s.Out, ss, st, lock)
			return nil
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "write JSON")
	return cmd
}

// masked is r as 'state show -json' writes it: values from sensitive variables replaced by
// render.SensitiveValue, so that no secret is echoed (the state on the hub holds them).
func masked(r state.Resource) state.Resource {
	if r.SensitiveTarget {
		r.Target = render.SensitiveValue
	}
	if len(r.Sensitive) == 0 {
		return r
	}
	keys := make(map[string]json.RawMessage, len(r.Keys))
	for k, v := range r.Keys {
		if render.IsSensitive(r.Sensitive, k) {
			v, _ = json.Marshal(render.SensitiveValue)
		}
		keys[k] = v
	}
	r.Keys = keys
	return r
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func showState(w io.Writer, ss *stateSession, st *state.State, lock *state.LockInfo) {
	fmt.Fprintf(w, "State %q in the twin of %s, on %s\n", st.Name, ss.store.DeviceID(), ss.hub.name)
	if st.Serial == 0 && len(st.Resources) == 0 {
		fmt.Fprintln(w, "  empty: nothing has been applied with it")
	} else {
		fmt.Fprintf(w, "  serial:  %d\n  lineage: %s\n", st.Serial, st.Lineage)
	}
	if lock != nil {
		fmt.Fprintf(w, "  locked by %s\n", lock)
	}
	if a := st.Apply; a != nil {
		fmt.Fprintf(w, "  unfinished %s %s, started %s from the plan at serial %d (%d jobs recorded): the next apply resumes it\n",
			a.Operation, a.ID, a.Started.UTC().Format(time.RFC3339), a.PlanSerial, len(a.Jobs))
	}
	rs := slices.Clone(st.Resources)
	slices.SortFunc(rs, func(a, b state.Resource) int { return strings.Compare(a.Addr, b.Addr) })
	for i := range rs {
		fmt.Fprintln(w)
		showResource(w, &rs[i])
	}
}

func showResource(w io.Writer, r *state.Resource) {
	target := quoteString(r.Target)
	if r.SensitiveTarget {
		target = render.SensitiveValue
	}
	fmt.Fprintf(w, "%s\n  target = %s\n", r.Addr, target)
	if r.Method != "" {
		fmt.Fprintf(w, "  method = %s\n", quoteString(r.Method))
	}
	keys := make([]string, 0, len(r.Keys))
	for k := range r.Keys {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := string(r.Keys[k])
		if render.IsSensitive(r.Sensitive, k) {
			v = render.SensitiveValue
		}
		fmt.Fprintf(w, "  %s = %s\n", k, v)
	}
	if r.KeepOnRemoval {
		fmt.Fprintln(w, "  # kept on the devices when the resource is removed")
	}
	fmt.Fprintf(w, "  # applied at serial %d\n", r.Serial)
}

func quoteString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func newStateRmCmd(s Streams) *cobra.Command {
	f := &stateFlags{}
	var lf lockFlags
	cmd := &cobra.Command{
		Use:   "rm ADDR... [-lock=false] [-lock-timeout D] [-dev] [-state NAME]",
		Short: "Remove resources from the state, leaving the devices alone",
		Long: `Removes the records of the resources ADDR from the state: iotplan forgets them and
no longer manages them. The devices are not touched: their twins keep the values
iotplan set. An unknown address removes nothing.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runStateRm(cmd.Context(), s, f, args, lf)
		},
	}
	f.register(cmd.Flags())
	lf.register(cmd.Flags())
	return cmd
}

func runStateRm(ctx context.Context, s Streams, f *stateFlags, addrs []string, lf lockFlags) error {
	ss, err := openState(ctx, s, f)
	if err != nil {
		return err
	}
	defer ss.hub.Close()
	// Check the addresses before locking too: a mistyped address on a hub without a state
	// then creates no state device.
	if err := checkAddresses(ctx, ss.store, addrs); err != nil {
		return err
	}
	write := ss.store.WriteUnlocked
	if lf.lock {
		l, err := lockState(ctx, s, ss.store, state.LockRequest{Operation: "state rm", Version: iotplanVersion(), Info: strings.Join(addrs, " ")}, lf.timeout)
		if err != nil {
			return err
		}
		defer unlockState(ctx, s, l)
		write = l.Write
	}
	st, err := ss.store.Read(ctx)
	if err != nil {
		return err
	}
	if err := missingAddresses(st, addrs); err != nil {
		return err
	}
	removed := selected(st, addrs)
	drop := func(r state.Resource) bool { return schema.SelectsAny(addrs, r.Addr) }
	st.Resources = slices.DeleteFunc(st.Resources, drop)
	if st.Apply != nil {
		st.Apply.Resources = slices.DeleteFunc(st.Apply.Resources, drop)
	}
	out, err := write(ctx, st)
	if err != nil {
		return err
	}
	for _, r := range removed {
		fmt.Fprintf(s.Out, "Removed %s\n", r.Addr)
	}
	fmt.Fprintf(s.Out, "Removed %d resource(s) from the state %q (now at serial %d). The devices were not changed: their twins keep the values iotplan set, which it no longer manages.\n",
		len(removed), out.Name, out.Serial)
	return nil
}

func checkAddresses(ctx context.Context, store *state.Store, addrs []string) error {
	st, err := store.Read(ctx)
	if err != nil {
		return err
	}
	return missingAddresses(st, addrs)
}

// missingAddresses refuses addresses that select no resource of the state (an address
// selects itself, its instances and what a module holds: schema.Selects).
func missingAddresses(st *state.State, addrs []string) error {
	missing := slices.DeleteFunc(slices.Clone(addrs), func(a string) bool { return len(selected(st, []string{a})) > 0 })
	if len(missing) > 0 {
		return fmt.Errorf("no resource %s in the state %q: nothing was removed%s", strings.Join(missing, ", "), st.Name, addrHint(st, missing[0]))
	}
	return nil
}

// selected are the state's resources the addresses select, in state order.
func selected(st *state.State, addrs []string) []state.Resource {
	var out []state.Resource
	for _, r := range st.Resources {
		if schema.SelectsAny(addrs, r.Addr) {
			out = append(out, r)
		}
	}
	return out
}

// addrHint suggests the state's closest address to a mistyped one ("" when none is close).
func addrHint(st *state.State, addr string) string {
	var have []string
	for _, r := range st.Resources {
		have = append(have, schema.Selectors(r.Addr)...)
	}
	if s := schema.Suggestion(addr, have); s != "" {
		return fmt.Sprintf(" (did you mean %s?)", s)
	}
	return ""
}

// lockState takes the state's lock, saying so when it takes over one left by a process of
// this machine that no longer runs; a held lock is one line saying who holds it and how to
// remove it.
func lockState(ctx context.Context, s Streams, st *state.Store, req state.LockRequest, timeout time.Duration) (*state.Lock, error) {
	if timeout > 0 {
		fmt.Fprintf(s.Err, "Acquiring the state lock (waiting up to %s)...\n", timeout)
	}
	l, err := st.Lock(ctx, req, timeout)
	var le *state.LockedError
	if errors.As(err, &le) {
		return nil, fmt.Errorf("the state %q is locked by %s: wait for that run to end (-lock-timeout waits for it), or, if it no longer runs, remove the lock with 'iotplan force-unlock %s' and the same hub and state options", le.State, le.Holder, le.Holder.ID)
	}
	if err != nil {
		return nil, err
	}
	if p := l.TookOverFrom; p != nil {
		fmt.Fprintf(s.Err, "Took over the state lock of %s: that process no longer runs on this machine.\n", p)
	}
	return l, nil
}

// unlockState releases the lock even when the command was interrupted.
func unlockState(ctx context.Context, s Streams, l *state.Lock) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if err := l.Unlock(ctx); err != nil {
		fmt.Fprintf(s.Err, "Warning: releasing the state lock: %s\n", oneLine(err.Error()))
	}
}

func newForceUnlockCmd(s Streams) *cobra.Command {
	f := &stateFlags{}
	var force bool
	cmd := &cobra.Command{
		Use:   "force-unlock [-force] LOCK_ID [-dev] [-state NAME]",
		Short: "Remove the lock of a state that no run holds any more",
		Long: `Removes the state's lock, if its id is LOCK_ID, after asking for confirmation on the
terminal (-force skips it; without a terminal -force is required). Use it only when
the run that took the lock no longer runs: a lock left by a killed run on this
machine is taken over by the next run without it.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runForceUnlock(cmd.Context(), s, f, args[0], force)
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().BoolVar(&force, "force", false, "do not ask for confirmation")
	return cmd
}

func runForceUnlock(ctx context.Context, s Streams, f *stateFlags, id string, force bool) error {
	ss, err := openState(ctx, s, f)
	if err != nil {
		return err
	}
	defer ss.hub.Close()
	_, lock, err := ss.store.ReadWithLock(ctx)
	if err != nil {
		return err
	}
	name := ss.store.Name()
	switch {
	case lock == nil:
		return fmt.Errorf("the state %q is not locked", name)
	case lock.ID != id:
		return fmt.Errorf("the state %q is locked by %s, not with the id %s: nothing was unlocked", name, lock, id)
	case !force && !s.InTTY:
		return errors.New("force-unlock needs confirmation and there is no terminal to ask on: re-run with -force once you are sure no run holds the lock")
	case !force && !confirmForceUnlock(s, name, ss.hub.name, lock):
		fmt.Fprintln(s.Err, "\nForce-unlock cancelled.")
		return &silentError{exitError}
	}
	if err := ss.store.ForceUnlock(ctx, id); err != nil {
		return err
	}
	fmt.Fprintf(s.Out, "The state %q has been unlocked. Runs can lock it again.\n", name)
	return nil
}

func confirmForceUnlock(s Streams, name, hubName string, lock *state.LockInfo) bool {
	return askYes(s, fmt.Sprintf(`Do you really want to force-unlock the state %q on %s?
  It is locked by %s.
  Remove the lock only if that run no longer runs: if it does, it and the next run
  would both change the fleet and the state.`, name, hubName, lock))
}
