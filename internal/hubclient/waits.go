package hubclient

import (
	"context"
	"time"
)

// waitStats is what the client spent waiting on the hub: measured sleeps before retries, how
// many answers were 429 (throttled), and pacing to the client's tier (pace.go): how many
// requests waited for their turn and for how long in all (measured).
type waitStats struct {
	waited    time.Duration
	throttled int
	paced     int
	pacedFor  time.Duration
}

// Waited is the total time the client spent waiting before retrying calls, since New: after
// a 429 (throttled; the hub's Retry-After when it sent one, else backoff) or, for idempotent
// calls, after a 5xx or a transport error. It is measured (wall-clock time of each wait), not
// the sum of the delays asked for. Time a throttled request spent held in the hub's own queue
// is not included: to the client it is only a slower answer. Nor is pacing to the client's
// tier before a request is sent: that is Paced.
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
	start := c.now()
	err := c.sleep(ctx, d)
	c.mu.Lock()
	c.waits.waited += c.now().Sub(start)
	c.mu.Unlock()
	return err
}
