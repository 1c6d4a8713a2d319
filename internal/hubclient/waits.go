package hubclient

import (
	"context"
	"time"

	"github.com/iotplan/iotplan/internal/clock"
)

// waitStats is what the client spent waiting on the hub: measured sleeps before retries, and
// how many answers were 429 (throttled).
type waitStats struct {
	waited    time.Duration
	throttled int
}

// Waited is the total time the client spent waiting before retrying calls, since New: after
// a 429 (throttled; the hub's Retry-After when it sent one, else backoff) or, for idempotent
// calls, after a 5xx or a transport error. It is measured (wall-clock time of each wait), not
// the sum of the delays asked for. Time a throttled request spent held in the hub's own queue
// is not included: to the client it is only a slower answer.
func (c *Client) Waited() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.waits.waited
}

// Throttled counts the hub's 429 answers (retried or not) since New.
func (c *Client) Throttled() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.waits.throttled
}

func (c *Client) countThrottled() {
	c.mu.Lock()
	c.waits.throttled++
	c.mu.Unlock()
}

// wait sleeps d before a retry (or until ctx ends) and adds the time it really took to Waited.
func (c *Client) wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	start := time.Now()
	err := clock.Sleep(ctx, d)
	c.mu.Lock()
	c.waits.waited += time.Since(start)
	c.mu.Unlock()
	return err
}
