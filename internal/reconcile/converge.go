package reconcile

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/iotplan/iotplan/internal/query"
	"github.com/iotplan/iotplan/internal/tier"
	"github.com/iotplan/iotplan/schema"
)

// Convergence. A twin job only writes desired properties; a device shows it took them in its
// reported properties. With a converge block, apply waits after each wave until the share
// MinRatio of the targeted devices up to the wave's bound report the desired value of every
// managed desired key (properties.reported.k = properties.desired.k, typed), or Timeout passes.
// Each poll is two GROUP BY connectionState queries — over the targeted devices of the slice,
// and over those that converged — which give converged, pending and, among the pending, the
// disconnected devices ("not reporting"), within a share of the query quota (pollInterval).

// ErrNotConverged: too few devices reported the desired values in time; the rollout stops.
var ErrNotConverged = errors.New("devices did not report the desired values in time")

// ErrNoQueries: apply was given a runner that cannot query the hub, so convergence cannot be
// measured.
var ErrNoQueries = errors.New("convergence needs a runner that can query the hub")

// ConvergePlan is what apply waits for after each wave of a twin resource.
type ConvergePlan struct {
	TimeoutSeconds int64   `json:"timeout_seconds"`
	MinRatio       float64 `json:"min_ratio"`
	// Target is the resource's target; Converged the target AND every managed desired key
	// reported with its desired value; Pending the target AND some reported key missing or
	// different (typed terms; for samples). Apply scopes each to the wave's bound.
	Target    string `json:"target"`
	Converged string `json:"converged"`
	Pending   string `json:"pending"`
}

// convergePlan is a twin's ConvergePlan; ok is false (and why) when a managed desired value
// cannot be compared by the hub (an array).
func convergePlan(c *schema.Converge, target query.Expr, leaves []Leaf) (*ConvergePlan, string) {
	reported := ReportedLeaves(leaves)
	conv, ok := convergedCondition(target, reported)
	if !ok || len(reported) == 0 {
		return nil, "converge: a managed desired value is an array, which the hub cannot compare, so convergence cannot be measured"
	}
	var terms []query.Expr
	for _, l := range reported {
		terms = append(terms, typedTerm(l, nil, false, true).expr)
	}
	return &ConvergePlan{
		TimeoutSeconds: int64(c.Timeout.Seconds()), MinRatio: c.MinRatio,
		Target:    query.Format(normTarget(target)),
		Converged: query.Format(conv),
		Pending:   query.Format(query.And(normTarget(target), query.Or(terms...))),
	}, ""
}

// ConvergeProgress is one poll of a wave's convergence.
type ConvergeProgress struct {
	Wave int // 0 without a rollout
	// Targeted are the targeted devices up to the wave's bound; Converged those reporting
	// the desired values; NotReporting the disconnected ones among the others.
	Targeted, Converged, NotReporting int
	Elapsed                           time.Duration
	Done                              bool            // the last poll: met, or timed out
	Met                               bool            // Converged ≥ MinRatio × Targeted
	Samples                           []PendingDevice // a few devices that did not converge (Done && !Met)
}

// PendingDevice is a device that did not report the desired values in time.
type PendingDevice struct {
	DeviceID     string `json:"device_id"`
	Disconnected bool   `json:"disconnected"`
}

// Pending is how many targeted devices have not reported the desired values.
func (p ConvergeProgress) Pending() int { return p.Targeted - p.Converged }

// Needed is how many of targeted devices must report the desired values (MinRatio, rounded up).
func (c *ConvergePlan) Needed(targeted int) int {
	return int(math.Ceil(c.MinRatio * float64(targeted)))
}

// waitConverged polls the convergence of the devices below upper ("" = all) until enough
// converged or the timeout passed.
func waitConverged(ctx context.Context, rc *ResourceChange, wave int, upper string, q Querier, cfg applyConfig) (ConvergeProgress, error) {
	c := rc.Converge
	scoped := func(text string) query.Expr { return query.And(mustCondition(text), slice("", upper)) }
	start := cfg.now()
	timeout := time.Duration(c.TimeoutSeconds) * time.Second
	interval := convergeInterval(cfg)
	for {
		p := ConvergeProgress{Wave: wave, Elapsed: cfg.now().Sub(start)}
		var err error
		var disconnected, convDisconnected int
		if p.Targeted, disconnected, err = countByConnection(ctx, q, rc.Addr, scoped(c.Target)); err != nil {
			return p, err
		}
		if p.Converged, convDisconnected, err = countByConnection(ctx, q, rc.Addr, scoped(c.Converged)); err != nil {
			return p, err
		}
		p.NotReporting = disconnected - convDisconnected
		p.Met = p.Converged >= c.Needed(p.Targeted)
		p.Done = p.Met || p.Elapsed >= timeout
		if p.Done && !p.Met {
			p.Samples, _ = pendingSamples(ctx, q, scoped(c.Pending))
		}
		if wh, ok := cfg.hook.(WaveHook); ok {
			wh.ConvergeProgress(rc, p)
		}
		if p.Done {
			return p, nil
		}
		if err := cfg.sleep(ctx, min(interval, timeout-p.Elapsed)); err != nil {
			return p, err
		}
	}
}

// convergeInterval spends at most a quarter of the tier's query rate on convergence polls
// (two queries each), and polls at least every 5 seconds on an unlimited hub.
func convergeInterval(cfg applyConfig) time.Duration {
	perSecond := cfg.tier.Rate(tier.Queries)
	if perSecond <= 0 {
		return 5 * time.Second
	}
	return max(5*time.Second, time.Duration(float64(time.Second)*2*4/perSecond))
}

// countByConnection counts the devices of where, and the disconnected ones among them, with
// one GROUP BY connectionState.
func countByConnection(ctx context.Context, q Querier, addr string, where query.Expr) (total, disconnected int, err error) {
	state := query.P("connectionState")
	stmt := query.Select(query.Devices).Project(state, "s").Count(aliasCount).Where(where).GroupBy(state).String()
	rows, _, err := q.QueryRows(ctx, stmt, 0)
	if err != nil {
		return 0, 0, fmt.Errorf("%s: counting converged devices: %w", addr, err)
	}
	for _, r := range rows {
		n, err := intField(r, aliasCount)
		if err != nil {
			return 0, 0, fmt.Errorf("%s: counting converged devices: %w", addr, err)
		}
		total += n
		if r["s"] == "Disconnected" {
			disconnected += n
		}
	}
	return total, disconnected, nil
}

// pendingSamples reads a few devices that did not converge, and whether they are connected.
func pendingSamples(ctx context.Context, q Querier, where query.Expr) ([]PendingDevice, error) {
	const k = 5
	stmt := query.Select(query.Devices).Top(k).Project(query.P("deviceId"), aliasID).Project(query.P("connectionState"), "s").Where(where).String()
	rows, _, err := q.QueryRows(ctx, stmt, k)
	if err != nil {
		return nil, err
	}
	var out []PendingDevice
	for _, r := range rows {
		id, _ := r[aliasID].(string)
		out = append(out, PendingDevice{DeviceID: id, Disconnected: r["s"] == "Disconnected"})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].DeviceID < out[j].DeviceID })
	return out, nil
}
