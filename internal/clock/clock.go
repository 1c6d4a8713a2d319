// Package clock holds the one time helper several packages need and the standard library
// lacks: a sleep that a context can cut short (retries, polling, throttled waits).
package clock

import (
	"context"
	"time"
)

// Sleep waits d, or until ctx is done (then it returns ctx.Err()). d <= 0 returns at once
// with ctx.Err(), so a cancelled caller stops even when it has nothing to wait for.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
