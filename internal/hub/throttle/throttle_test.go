package throttle

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/iotplan/iotplan/internal/hub/huberr"
)

// fakeClock is the limiter's clock in tests: Sleep advances it instead of sleeping.
type fakeClock struct {
	now    time.Time
	slept  []time.Duration
	cancel bool // Sleep fails as if the client went away
}

func (c *fakeClock) Now() time.Time { return c.now }
func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if c.cancel {
		return context.Canceled
	}
	c.slept = append(c.slept, d)
	c.now = c.now.Add(d)
	return nil
}

func newTest(t *testing.T, tier string, units int) (*Limiter, *fakeClock) {
	t.Helper()
	clk := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	l, err := New(Options{Tier: tier, Units: units, Now: clk.Now, Sleep: clk.Sleep})
	if err != nil {
		t.Fatal(err)
	}
	return l, clk
}

func TestRatesPerTierAndUnits(t *testing.T) {
	// The figures of iothub-api.md §7.1, per second.
	cases := []struct {
		tier  string
		units int
		c     Class
		want  float64
	}{
		{"S1", 1, Queries, 20.0 / 60},
		{"S1", 3, Queries, 60.0 / 60},
		{"S3", 2, Queries, 2000.0 / 60},
		{"S1", 1, TwinReads, 100},
		{"S1", 50, TwinReads, 100}, // not per unit on S1
		{"S2", 5, TwinReads, 100},  // max(100, 10/unit)
		{"S2", 20, TwinReads, 200},
		{"S3", 2, TwinReads, 1000},
		{"F1", 1, TwinUpdates, 50},
		{"S2", 20, TwinUpdates, 100},
		{"S3", 1, TwinUpdates, 250},
		{"S1", 1, JobDeviceOps, 10},
		{"S1", 100, JobDeviceOps, 10},
		{"S2", 5, JobDeviceOps, 10},
		{"S2", 30, JobDeviceOps, 30},
		{"S3", 2, JobDeviceOps, 100},
		{"S1", 2, JobsOps, 200.0 / 60},
		{"S3", 1, JobsOps, 5000.0 / 60},
		{"S1", 1, RegistryOps, 100.0 / 60},
		{"S3", 1, RegistryOps, 5000.0 / 60},
		{"S1", 1, DeviceConnections, 100},
		{"S1", 10, DeviceConnections, 120},
		{"S2", 1, DeviceConnections, 120},
		{"S3", 1, DeviceConnections, 6000},
		{"S1", 1, DirectMethods, 40},  // 160 KB/s / 4 KB
		{"S2", 1, DirectMethods, 120}, // 480 KB/s
		{"S3", 1, DirectMethods, 6144},
		{"S1", 4, Configurations, 80.0 / 60},
		{"S1", 1, CloudToDevice, 100.0 / 60},
		{"XX", 1, Queries, 0},
	}
	for _, c := range cases {
		if got := RateOf(c.tier, c.units, c.c); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("RateOf(%s, %d, %s) = %v, want %v", c.tier, c.units, c.c, got, c.want)
		}
	}
	for _, tier := range Tiers {
		for _, c := range Classes() {
			if RateOf(tier, 1, c) <= 0 {
				t.Errorf("%s %s has no rate", tier, c)
			}
		}
	}
}

func TestNewValidatesTierAndUnits(t *testing.T) {
	bad := []struct {
		tier  string
		units int
		want  string
	}{
		{"S4", 1, "unknown IoT Hub tier"},
		{"B1", 1, "unknown IoT Hub tier"},
		{"F1", 2, "exactly 1 unit"},
		{"S1", 201, "from 1 to 200"},
		{"S3", 11, "from 1 to 10"},
		{"S2", -1, "from 1 to 200"},
		{"", 3, "need a tier"},
	}
	for _, b := range bad {
		_, err := New(Options{Tier: b.tier, Units: b.units})
		if err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("New(%q, %d) = %v, want error containing %q", b.tier, b.units, err, b.want)
		}
	}
	l, err := New(Options{Tier: "s2", Units: 0})
	if err != nil || l.Tier() != "S2" || l.Units() != 1 {
		t.Fatalf("New(s2, 0) = %v %v %v", l.Tier(), l.Units(), err)
	}
}

func TestJobConcurrencyPerTier(t *testing.T) {
	for tier, want := range map[string]int{"": 0, "F1": 1, "S1": 1, "S2": 5, "S3": 10} {
		l, err := New(Options{Tier: tier})
		if err != nil {
			t.Fatal(err)
		}
		if got := l.MaxConcurrentJobs(); got != want {
			t.Errorf("%q: MaxConcurrentJobs = %d, want %d", tier, got, want)
		}
	}
	var nilL *Limiter
	if nilL.MaxConcurrentJobs() != 0 || !nilL.Unlimited() || nilL.Rate(Queries) != 0 {
		t.Error("a nil limiter must be unlimited")
	}
}

func TestUnlimitedNeverWaits(t *testing.T) {
	l, clk := newTest(t, "", 0)
	for i := 0; i < 10000; i++ {
		if err := l.Wait(context.Background(), Queries, 1); err != nil {
			t.Fatal(err)
		}
	}
	if len(clk.slept) != 0 {
		t.Fatalf("unlimited limiter slept %v", clk.slept)
	}
}

// S1 queries: 20/min. Burst 10 s of rate = 3 queries, then one query per 3 s.
func TestShapingBurstThenQueueThenRefuse(t *testing.T) {
	l, clk := newTest(t, "S1", 1)
	st := l.Stats()[Queries]
	if st.Burst != 3 {
		t.Fatalf("burst = %v, want 3", st.Burst)
	}
	ctx := context.Background()
	// The burst passes at once.
	for i := 0; i < 3; i++ {
		if d := l.Reserve(Queries, 1); d.Wait != 0 || d.Refused {
			t.Fatalf("query %d of the burst: %+v", i+1, d)
		}
	}
	// The next needs 3 s: longer than the 2 s queue bound, so it is refused with Retry-After 3.
	d := l.Reserve(Queries, 1)
	if !d.Refused || RetryAfterSeconds(d.RetryAfter) != 3 {
		t.Fatalf("over the burst: %+v, want refused with 3 s", d)
	}
	// A refusal takes nothing: 1.5 s later the token is 1.5 s away and the request is queued.
	clk.now = clk.now.Add(1500 * time.Millisecond)
	if err := l.Wait(ctx, Queries, 1); err != nil {
		t.Fatalf("queued request: %v", err)
	}
	if len(clk.slept) != 1 || clk.slept[0] != 1500*time.Millisecond {
		t.Fatalf("held for %v, want [1.5s]", clk.slept)
	}
	// The refusal error is the hub's.
	err := l.Wait(ctx, Queries, 1)
	var he *huberr.Error
	if !errors.As(err, &he) || he.Code != huberr.ThrottlingException || he.Format != huberr.Legacy {
		t.Fatalf("refusal = %#v", err)
	}
	if !strings.Contains(he.Msg, "Wait 3 seconds") || !strings.Contains(he.Msg, "Operation type: Queries") {
		t.Errorf("refusal message %q", he.Msg)
	}
	if he.Info["retryAfterSeconds"] != 3 {
		t.Errorf("info = %v", he.Info)
	}
	s := l.Stats()[Queries]
	if s.Served != 4 || s.Queued != 1 || s.Refused != 2 || s.Held != 1500*time.Millisecond {
		t.Errorf("stats = %+v", s)
	}
}

// A sustained caller at exactly the rate is never refused: over 10 minutes of S1 twin updates
// (50/s) sent at 50/s, every one passes and none waits after the burst is spent.
func TestSustainedAtRateNeverRefused(t *testing.T) {
	l, clk := newTest(t, "S1", 1)
	for i := 0; i < 50*600; i++ {
		if err := l.Wait(context.Background(), TwinUpdates, 1); err != nil {
			t.Fatalf("update %d: %v", i, err)
		}
		clk.now = clk.now.Add(20 * time.Millisecond)
	}
	if s := l.Stats()[TwinUpdates]; s.Refused != 0 || s.Queued != 0 {
		t.Fatalf("stats = %+v", s)
	}
}

// Twice the rate: the burst (500 updates) goes at once, then requests queue and are served at
// the limit, and once the queue (2 s = 100 updates) is full the excess is refused; over a
// minute the served count is burst + rate × time + queue.
func TestDoubleRateIsShapedToTheLimit(t *testing.T) {
	l, clk := newTest(t, "S1", 1)
	served, refused := 0, 0
	start := clk.now
	for i := 0; i < 100*60; i++ {
		d := l.Reserve(TwinUpdates, 1)
		if d.Refused {
			refused++
		} else {
			served++
		}
		clk.now = clk.now.Add(10 * time.Millisecond)
	}
	elapsed := clk.now.Sub(start).Seconds()
	want := 500 + int(50*elapsed) + 100
	if served < want-2 || served > want+2 {
		t.Errorf("served %d, want ≈ %d (burst + rate × %vs + queue)", served, want, elapsed)
	}
	if refused == 0 {
		t.Error("nothing refused at twice the rate for a minute")
	}
}

func TestDirectMethodsCostPerChunk(t *testing.T) {
	l, _ := newTest(t, "S1", 1) // 40 chunks/s, burst 400 chunks
	for i := 0; i < 12; i++ {   // 12 × 32 chunks (128 KB payloads) = 384
		if d := l.Reserve(DirectMethods, 32); d.Wait != 0 || d.Refused {
			t.Fatalf("call %d: %+v", i, d)
		}
	}
	d := l.Reserve(DirectMethods, 32) // 16 left: 16 chunks short = 0.4 s
	if d.Refused || d.Wait != 400*time.Millisecond {
		t.Fatalf("13th call: %+v, want a 0.4 s wait", d)
	}
}

func TestCancelledWaitReturnsItsTokens(t *testing.T) {
	l, clk := newTest(t, "S1", 1)
	for i := 0; i < 3; i++ {
		l.Reserve(Queries, 1)
	}
	clk.now = clk.now.Add(2 * time.Second) // next token in 1 s: queued
	clk.cancel = true
	if err := l.Wait(context.Background(), Queries, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait = %v", err)
	}
	clk.cancel = false
	clk.now = clk.now.Add(time.Second)
	// The cancelled request's token came back: this one goes at once.
	if d := l.Reserve(Queries, 1); d.Wait != 0 || d.Refused {
		t.Fatalf("after the cancel: %+v", d)
	}
}

func TestUnitsScaleTheBurst(t *testing.T) {
	l, _ := newTest(t, "S1", 6) // queries 2/s: burst 20
	n := 0
	for d := l.Reserve(Queries, 1); d.Wait == 0 && !d.Refused; d = l.Reserve(Queries, 1) {
		n++
		if n > 1000 {
			t.Fatal("no limit")
		}
	}
	if n != 20 {
		t.Fatalf("burst of 6 S1 units = %d queries, want 20", n)
	}
}
