package reconcile

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/tier"
)

// Polling budget. Every job status poll (GET /jobs/v2/{id}) and every job-slot check is a jobs
// operation, a class Azure throttles at 100/min per unit on F1, S1 and S2 (5,000 on S3,
// internal/tier), shared with every other client of the hub. Apply keeps to pollShare of it:
// it polls a new job quickly (1s, 2s, 4s: small jobs finish in seconds and progress should
// show at once), then no more often than the budget allows, and for long jobs about a hundred
// times over the expected run, at most once a minute. Without a tier (unlimited local hub)
// the steady interval is minPoll.
const (
	pollShare = 0.1
	minPoll   = 5 * time.Second
	maxPoll   = time.Minute
)

// pollInterval is the wait before poll n+1 of a job whose device operations are expected to
// take expected (0 = unknown), on hub tier t.
func pollInterval(n int, expected time.Duration, t tier.Tier) time.Duration {
	if n <= 3 {
		return time.Second << (n - 1) // 1s, 2s, 4s
	}
	return steadyPoll(expected, t)
}

// steadyPoll is the interval once a job has run for a while: the budget's interval, or a
// hundredth of the expected run when that is longer, but at most maxPoll.
func steadyPoll(expected time.Duration, t tier.Tier) time.Duration {
	d := max(minPoll, budgetInterval(t, 1))
	if long := expected / 100; long > d {
		d = min(long, maxPoll)
	}
	return d
}

// budgetInterval is how often an operation costing calls jobs operations may run within
// pollShare of the tier's jobs-operations quota, in whole seconds (rounded up); 0 without a
// tier.
func budgetInterval(t tier.Tier, calls int) time.Duration {
	rate := t.Rate(tier.JobsOps)
	if rate <= 0 {
		return 0
	}
	return time.Duration(math.Ceil(float64(calls)/(rate*pollShare)-1e-9)) * time.Second
}

// ErrNoJobSlot: the hub's job slots stayed held longer than WithSlotTimeout allows.
var ErrNoJobSlot = errors.New("no free job slot on the hub")

// waitForSlot returns once the hub has a free job slot: fewer active jobs (queued, scheduled
// or running, whoever started them; not the job own itself, which a resumed apply reattaches
// to) than the tier allows. It checks within the polling budget, reporting the jobs that hold
// the slots through hook, until ctx ends or cfg.slotTimeout. Without a tier it does not
// check: an unlimited hub has no slots to wait for.
func waitForSlot(ctx context.Context, rc *ResourceChange, own string, runner JobRunner, hook Hook, cfg applyConfig) error {
	limit := cfg.tier.MaxConcurrentJobs()
	if limit <= 0 {
		return nil
	}
	begin := cfg.now()
	every := max(minPoll, budgetInterval(cfg.tier, len(hubapi.ActiveJobStatuses))) // one listing per status
	for {
		all, err := runner.ActiveJobs(ctx)
		if err != nil {
			return fmt.Errorf("checking the hub's job slots: %w", err)
		}
		active := all[:0:0]
		for _, j := range all {
			if j.JobID == own {
				return nil // the job exists: reattach to it
			}
			active = append(active, j)
		}
		if len(active) < limit {
			return nil
		}
		waited := cfg.now().Sub(begin)
		hook.SlotWait(rc, active, limit, waited)
		if cfg.slotTimeout > 0 && waited >= cfg.slotTimeout {
			return fmt.Errorf("%w: %s held the %s of %s for %s", ErrNoJobSlot, holdersText(active), slotsText(limit), cfg.tier, Duration(waited))
		}
		if err := cfg.sleep(ctx, every); err != nil {
			return err
		}
	}
}

// createJob schedules the job; when the hub refuses it for want of a job slot (another client
// took the last one since waitForSlot looked: 429004), it waits for a slot again and retries.
func createJob(ctx context.Context, rc *ResourceChange, req hubapi.JobRequest, runner JobRunner, hook Hook, cfg applyConfig) (hubapi.JobResponse, error) {
	for {
		created, err := runner.CreateJob(ctx, req)
		if hubapi.CodeOf(err) != hubapi.CodeTooManyActiveJobs || cfg.tier.MaxConcurrentJobs() <= 0 {
			return created, err
		}
		if err := waitForSlot(ctx, rc, req.JobID, runner, hook, cfg); err != nil {
			return created, err
		}
		if err := cfg.sleep(ctx, minPoll); err != nil {
			return created, err
		}
	}
}

func holdersText(jobs []hubapi.JobResponse) string {
	if len(jobs) == 1 {
		return "job " + jobs[0].JobID
	}
	return fmt.Sprintf("%d jobs (%s, …)", len(jobs), jobs[0].JobID)
}

func slotsText(n int) string {
	if n == 1 {
		return "only job slot"
	}
	return fmt.Sprintf("%d job slots", n)
}
