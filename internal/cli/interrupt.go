package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/iotplan/iotplan/internal/reconcile"
	"github.com/iotplan/iotplan/internal/render"
	"github.com/iotplan/iotplan/internal/state"
)

// Interrupts. The first Ctrl-C (or SIGTERM) cancels the command's context: apply stops waiting
// for its jobs, which keep running on the hub, releases the lock and says how to resume. A
// second one within cancelWindow cancels the apply's jobs instead (Main delivers it on the
// channel secondInterrupt returns).

// cancelWindow is how long an interrupted apply waits for a second Ctrl-C.
const cancelWindow = 3 * time.Second

type secondKey struct{}

// withSecondInterrupt makes ch the run's channel of interrupts after the first.
func withSecondInterrupt(ctx context.Context, ch <-chan os.Signal) context.Context {
	return context.WithValue(ctx, secondKey{}, ch)
}

// secondInterrupt is the run's channel of interrupts after the first; nil when the command was
// not started by Main (tests).
func secondInterrupt(ctx context.Context) <-chan os.Signal {
	ch, _ := ctx.Value(secondKey{}).(<-chan os.Signal)
	return ch
}

// errInterrupted ends a run stopped by an interrupt (exit 1).
var errInterrupted = errors.New("interrupted")

// interrupted tells what an interrupt left running, and cancels the apply's jobs on a second
// interrupt within cancelWindow.
func interrupted(ctx context.Context, s Streams, ps *planSession) error {
	rec := ps.state.Apply
	if rec == nil {
		return fmt.Errorf("%w: nothing was left running", errInterrupted)
	}
	fmt.Fprintf(s.Err, "\nInterrupted: iotplan stopped waiting. The jobs it created keep running on the hub (apply %s: %s).\nRun 'iotplan apply' to resume: it reattaches to them and runs the rest, so nothing runs twice.\n",
		rec.ID, strings.Join(recordedIDs(rec), ", "))
	second := secondInterrupt(ctx)
	if second == nil {
		return fmt.Errorf("%w: run 'iotplan apply' to resume", errInterrupted)
	}
	fmt.Fprintf(s.Err, "Press Ctrl-C again within %s to cancel them instead.\n", cancelWindow)
	select {
	case <-second:
	case <-time.After(cancelWindow):
		return fmt.Errorf("%w: run 'iotplan apply' to resume", errInterrupted)
	}
	return cancelApply(ctx, s, ps)
}

// cancelApply cancels an interrupted apply's jobs, clears run-once records it made, and
// forgets the apply, with a fresh deadline (the run's context is cancelled already).
func cancelApply(ctx context.Context, s Streams, ps *planSession) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
	defer cancel()
	fmt.Fprintln(s.Err, "Cancelling the apply's jobs...")
	view := render.NewApplyView(s.Err, render.ApplyOptions{TTY: s.ErrTTY})
	ids, err := reconcile.Abandon(ctx, ps.state.Apply, ps.hub.client, view, reconcile.WithTier(ps.hub.tier))
	for _, id := range ids {
		fmt.Fprintf(s.Err, "Cancelled job %s.\n", id)
	}
	if err != nil {
		return fmt.Errorf("%w: %v; the apply stays recorded: 'iotplan apply' resumes it", errInterrupted, err)
	}
	if err := ps.abandon(ctx); err != nil {
		return fmt.Errorf("%w: the jobs were cancelled, but the state still records the apply: %v", errInterrupted, err)
	}
	return fmt.Errorf("%w: the apply was cancelled (%d jobs); the state keeps what it held before", errInterrupted, len(ids))
}

func recordedIDs(rec *state.ApplyRecord) []string {
	ids := make([]string, len(rec.Jobs))
	for i, j := range rec.Jobs {
		ids[i] = j.Request.JobID
	}
	return ids
}
