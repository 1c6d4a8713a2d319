package reconcile

import "time"

// HubWait is the time a command spent waiting on the hub, as the client measured it: before
// retrying calls the hub throttled (429) or failed, with how many answers were 429; and, for a
// client that paces itself to the hub's tier, holding calls back so that the hub never has to
// refuse them. A hub's throttles (an S1 hub allows 20 queries a minute) make both part of what
// a run costs, so plans and apply results report them.
type HubWait struct {
	// Waited is the measured time spent waiting before retries.
	Waited time.Duration `json:"waited_ns"`
	// Throttled counts the 429 answers (each was retried, or reported as a failure).
	Throttled int `json:"throttled"`
	// Paced is the measured time calls were held back by the client's pacing; PacedCalls
	// counts them.
	Paced      time.Duration `json:"paced_ns,omitempty"`
	PacedCalls int           `json:"paced_calls,omitempty"`
}

// waitReporter is implemented by clients that measure their waits (hubclient.Client).
type waitReporter interface {
	Waited() time.Duration
	Throttled() int
}

// pacer is implemented by clients that pace themselves to the hub's tier (hubclient.Client).
type pacer interface {
	Paced() (n int, total time.Duration)
}

func waitOf(w waitReporter) HubWait {
	h := HubWait{Waited: w.Waited(), Throttled: w.Throttled()}
	if p, ok := w.(pacer); ok {
		h.PacedCalls, h.Paced = p.Paced()
	}
	return h
}

// meter starts measuring the hub calls and waits of client (a Querier or JobRunner) and
// returns the function that tells them since: the calls by kind (nil when the client does not
// count them) and the waits (nil when there were none, or the client does not measure them).
func meter(client any) func() (map[string]int, *HubWait) {
	cc, counting := client.(callCounter)
	wr, waits := client.(waitReporter)
	var calls map[string]int
	var before HubWait
	if counting {
		calls = cc.Calls()
	}
	if waits {
		before = waitOf(wr)
	}
	return func() (map[string]int, *HubWait) {
		var since map[string]int
		var wait *HubWait
		if counting {
			since = map[string]int{}
			for k, n := range cc.Calls() {
				if d := n - calls[k]; d > 0 {
					since[k] = d
				}
			}
		}
		if waits {
			now := waitOf(wr)
			d := HubWait{Waited: now.Waited - before.Waited, Throttled: now.Throttled - before.Throttled,
				Paced: now.Paced - before.Paced, PacedCalls: now.PacedCalls - before.PacedCalls}
			if d != (HubWait{}) {
				wait = &d
			}
		}
		return since, wait
	}
}
