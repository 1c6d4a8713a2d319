package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/iotplan/iotplan/internal/reconcile"
	"github.com/iotplan/iotplan/internal/state"
	"github.com/iotplan/iotplan/schema"
)

// lockFlags are Terraform's -lock and -lock-timeout.
type lockFlags struct {
	lock    bool
	timeout time.Duration
}

func (f *lockFlags) register(fs *pflag.FlagSet) {
	fs.BoolVar(&f.lock, "lock", true, "hold the state's lock while the command runs (-lock=false: do not; two runs may then write at once)")
	fs.DurationVar(&f.timeout, "lock-timeout", 0, "wait this long for a state lock another run holds (0s: fail at once)")
}

// planSession is what plan, apply and destroy share: the hub, the named state on it, the lock
// they hold while they run, and the state as last read or written. It is the apply's
// reconcile.Journal.
type planSession struct {
	s     Streams
	hub   *hubSession
	store *state.Store
	lock  *state.Lock // nil with -lock=false
	state *state.State
}

var _ reconcile.Journal = (*planSession)(nil)

// openPlanSession opens the hub and its named state, takes the lock for op (unless -lock=false)
// and reads the state.
func openPlanSession(ctx context.Context, s Streams, hf hubFlags, lf lockFlags, cfg *schema.Config, op string) (*planSession, error) {
	name, err := stateName(hf, cfg)
	if err != nil {
		return nil, err
	}
	hs, err := openHub(ctx, hf, cfg, s.Err)
	if err != nil {
		return nil, err
	}
	ps := &planSession{s: s, hub: hs}
	if ps.store, err = state.Open(hs.client, name); err != nil {
		hs.Close()
		return nil, err
	}
	if lf.lock {
		if ps.lock, err = lockState(ctx, s, ps.store, state.LockRequest{Operation: op, Version: iotplanVersion()}, lf.timeout); err != nil {
			hs.Close()
			return nil, err
		}
	}
	if ps.state, err = ps.store.Read(ctx); err != nil {
		ps.Close(ctx)
		return nil, fmt.Errorf("reading the state %q from %s: %w", name, hs.name, err)
	}
	return ps, nil
}

// Close releases the lock (also after an interrupt) and the hub.
func (ps *planSession) Close(ctx context.Context) {
	if ps.lock != nil {
		unlockState(ctx, ps.s, ps.lock)
		ps.lock = nil
	}
	ps.hub.Close()
}

// planOptions are the hub's plan options with the state to plan from.
func (ps *planSession) planOptions(destroy bool, targets []string) reconcile.PlanOptions {
	o := ps.hub.planOptions()
	o.Prior, o.StateName, o.Destroy, o.Targets = ps.state, ps.store.Name(), destroy, targets
	return o
}

// registerTargets adds -target to a plan, apply or destroy command.
func registerTargets(fs *pflag.FlagSet, targets *[]string) {
	fs.StringArrayVar(targets, "target", nil, "plan only the resources this address selects: twin.NAME, twin.NAME[\"KEY\"], module.NAME... (repeatable; for exceptional use)")
}

// checkTargets checks -target addresses before anything is read.
func checkTargets(targets []string) error {
	for _, t := range targets {
		if err := schema.ParseTarget(t); err != nil {
			return &flagError{err}
		}
	}
	return nil
}

// Begin records an apply in the state before its first job.
func (ps *planSession) Begin(ctx context.Context, rec *state.ApplyRecord) error {
	st := *ps.state
	st.Apply = rec
	return ps.write(ctx, &st)
}

// Finish records a finished apply: the state holds records from now on, and remembers the
// apply's jobs as the last apply (read by 'iotplan status'). Without an apply record (records
// written when the fleet needed no job) the last apply stays the one it was.
func (ps *planSession) Finish(ctx context.Context, records []state.Resource) error {
	st := *ps.state
	if rec := ps.state.Apply; rec != nil {
		st.LastApply = state.LastApplyOf(rec, time.Now())
	}
	st.Resources, st.Apply = stamp(records, ps.state), nil
	return ps.write(ctx, &st)
}

// abandon forgets an unfinished apply (its jobs were cancelled): the state keeps the records
// it had before.
func (ps *planSession) abandon(ctx context.Context) error {
	st := *ps.state
	st.Apply = nil
	return ps.write(ctx, &st)
}

func (ps *planSession) write(ctx context.Context, st *state.State) error {
	var out *state.State
	var err error
	if ps.lock != nil {
		out, err = ps.lock.Write(ctx, st)
	} else {
		out, err = ps.store.WriteUnlocked(ctx, st)
	}
	if err != nil {
		return err
	}
	ps.state = out
	return nil
}

// stamp gives each record the serial it was last applied at: the next serial when it changed
// (or is new), else the one it had.
func stamp(records []state.Resource, prior *state.State) []state.Resource {
	out := make([]state.Resource, len(records))
	for i, r := range records {
		if prev := prior.Resource(r.Addr); prev != nil && prev.ConfigHash == r.ConfigHash && prev.Serial > 0 {
			r.Serial = prev.Serial
		} else {
			r.Serial = prior.Serial + 1
		}
		out[i] = r
	}
	return out
}

// recordsChanged reports whether applying records would change what the state holds.
func recordsChanged(records []state.Resource, prior *state.State) bool {
	if len(records) != len(prior.Resources) {
		return true
	}
	for _, r := range records {
		prev := prior.Resource(r.Addr)
		if prev == nil || prev.ConfigHash != r.ConfigHash {
			return true
		}
	}
	return false
}
