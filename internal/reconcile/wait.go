package reconcile

import "time"

// HubWait is the time a command spent waiting on the hub before retrying calls it throttled
// (429) or failed, as the client measured it, and how many answers were 429. A hub's
// throttles (an S1 hub allows 20 queries a minute) make this part of what a run costs, so
// plans and apply results report it.
type HubWait struct {
	// Waited is the measured time spent waiting before retries.
	Waited time.Duration `json:"waited_ns"`
	// Throttled counts the 429 answers (each was retried, or reported as a failure).
	Throttled int `json:"throttled"`
}

// waitReporter is implemented by clients that measure their waits (hubclient.Client).
type waitReporter interface {
	Waited() time.Duration
	Throttled() int
}

func waitOf(w waitReporter) HubWait { return HubWait{Waited: w.Waited(), Throttled: w.Throttled()} }

// waitSince is the wait since before; nil when there was none.
func waitSince(w waitReporter, before HubWait) *HubWait {
	now := waitOf(w)
	d := HubWait{Waited: now.Waited - before.Waited, Throttled: now.Throttled - before.Throttled}
	if d.Waited <= 0 && d.Throttled <= 0 {
		return nil
	}
	return &d
}
