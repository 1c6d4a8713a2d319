package reconcile_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/iotplan/iotplan/internal/hub/hubtest"
	"github.com/iotplan/iotplan/internal/query"
	"github.com/iotplan/iotplan/internal/reconcile"
	"github.com/iotplan/iotplan/schema"
)

// callsOf is what a counting querier (hubclient.Client) has sent so far, in all.
func callsOf(c interface{ Calls() map[string]int }) int {
	n := 0
	for _, v := range c.Calls() {
		n += v
	}
	return n
}

// waveMeter records the hub calls and the time at the end of each wave.
type waveMeter struct {
	reconcile.NopHook
	calls func() int
	at    []int
	times []time.Time
	polls int
}

func (w *waveMeter) ConvergeProgress(*reconcile.ResourceChange, reconcile.ConvergeProgress) {
	w.polls++
}
func (w *waveMeter) WaveDone(*reconcile.ResourceChange, reconcile.WaveResult) {
	w.at, w.times = append(w.at, w.calls()), append(w.times, time.Now())
}
func (w *waveMeter) Pausing(*reconcile.ResourceChange, int, time.Duration) {}

// BenchmarkRolloutConverge plans and applies a twin change in three waves (1%, 10%, 100%)
// with convergence over IOTPLAN_BENCH_DEVICES in-process simulated devices (default 10,000;
// BENCHMARKS.md records 100,000) that echo desired properties into reported ones:
//
//	IOTPLAN_BENCH_DEVICES=100000 go test -run X -bench RolloutConverge -benchtime 1x -timeout 60m ./internal/reconcile
//
// It reports the plan's hub calls (slicing included) and time, each wave's hub calls, and the
// apply's wall time.
func BenchmarkRolloutConverge(b *testing.B) {
	n := 10000
	if s := os.Getenv("IOTPLAN_BENCH_DEVICES"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			b.Fatal(err)
		}
	}
	fleet := fmt.Sprintf(`
group "doors" {
  count               = %d
  id                  = format("door-%%07d", index)
  tags                = { site = "hq" }
  desired             = { floor = 1 }
  reported            = { floor = 1 }
  reported_echo_delay = "1s"
}`, n)
	for i := 0; i < b.N; i++ {
		_, c, _ := hubtest.StartAudited(b, fleet)
		ctx := context.Background()
		target, err := query.ParseCondition("tags.site = 'hq'")
		if err != nil {
			b.Fatal(err)
		}
		cfg := &reconcile.Config{Twins: []reconcile.Twin{{Addr: "twin.floor", Target: target, Desired: map[string]any{"floor": 2 + i},
			Rollout:  &schema.Rollout{Waves: []schema.Wave{{Text: "1%", Percent: 1}, {Text: "10%", Percent: 10}, {Text: "100%", Percent: 100}}, MaxFailureRatio: 0.01, MaxFailures: -1},
			Converge: &schema.Converge{Timeout: 30 * time.Minute, MinRatio: 0.99}}}}
		before := callsOf(c)
		start := time.Now()
		p, err := reconcile.MakePlan(ctx, c, cfg, reconcile.PlanOptions{Hub: c.HostName()})
		if err != nil {
			b.Fatal(err)
		}
		planSecs, planCalls := time.Since(start).Seconds(), callsOf(c)-before
		m := &waveMeter{calls: func() int { return callsOf(c) }}
		start = time.Now()
		base := callsOf(c)
		res, err := reconcile.Apply(ctx, p, c, m)
		if err != nil || res.Aborted != nil || len(m.at) != 3 {
			b.Fatalf("apply: %v, aborted %+v, waves %d", err, res.Aborted, len(m.at))
		}
		b.ReportMetric(float64(planCalls), "plan-calls")
		b.ReportMetric(float64(p.Resources[0].Rollout.Queries), "slicing-queries")
		b.ReportMetric(planSecs, "plan-s")
		prev, prevT := base, start
		for w, at := range m.at {
			b.ReportMetric(float64(at-prev), fmt.Sprintf("wave%d-calls", w+1))
			b.ReportMetric(m.times[w].Sub(prevT).Seconds(), fmt.Sprintf("wave%d-s", w+1))
			prev, prevT = at, m.times[w]
		}
		b.ReportMetric(float64(m.polls), "converge-polls")
		b.ReportMetric(time.Since(start).Seconds(), "apply-s")
		b.ReportMetric(float64(n)/time.Since(start).Seconds(), "devices/s")
	}
}
