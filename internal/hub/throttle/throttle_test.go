package throttle

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/iotplan/iotplan/internal/hub/huberr"
	"github.com/iotplan/iotplan/internal/tier"
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

func newTest(t *testing.T, name string, units int) (*Limiter, *fakeClock) {
	t.Helper()
	clk := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	l, err := New(Options{Tier: name, Units: units, Now: clk.Now, Sleep: clk.Sleep})
	if err != nil {
		t.Fatal(err)
	}
	return l, clk
}

// New refuses what tier.Parse refuses, with its errors.
func TestNewValidatesTierAndUnits(t *testing.T) {
	bad := []struct {
		name  string
		units int
		want  error
	}{
		{"S4", 1, tier.ErrUnknownTier},
		{"B1", 1, tier.ErrUnknownTier},
		{"F1", 2, tier.ErrUnits},
		{"S1", 201, tier.ErrUnits},
		{"S3", 11, tier.ErrUnits},
		{"S2", -1, tier.ErrUnits},
		{"", 3, tier.ErrUnits},
	}
	for _, b := range bad {
		if _, err := New(Options{Tier: b.name, Units: b.units}); !errors.Is(err, b.want) {
			t.Errorf("New(%q, %d) = %v, want %v", b.name, b.units, err, b.want)
		}
	}
	l, err := New(Options{Tier: "s2", Units: 0})
	if err != nil || l.Tier() != "S2" || l.Units() != 1 {
		t.Fatalf("New(s2, 0) = %v %v %v", l.Tier(), l.Units(), err)
	}
}

// The limiter's rates and job concurrency are internal/tier's table, not a copy of it.
func TestLimiterFollowsTheTierTable(t *testing.T) {
	for _, name := range append([]string{""}, tier.Names...) {
		units := 1
		if name == "S2" {
			units = 30 // above the "higher of" floors
		}
		want, err := tier.Parse(name, units)
		if err != nil {
			t.Fatal(err)
		}
		l, _ := newTest(t, name, units)
		if l.Tier() != want.Name || l.Units() != max(want.Units, 1) || l.Unlimited() == want.Known() {
			t.Errorf("%v: limiter of %q × %d (unlimited %v)", want, l.Tier(), l.Units(), l.Unlimited())
		}
		if got := l.MaxConcurrentJobs(); got != want.MaxConcurrentJobs() {
			t.Errorf("%v: MaxConcurrentJobs = %d, want %d", want, got, want.MaxConcurrentJobs())
		}
		for _, c := range tier.Classes() {
			st, ok := l.Stats()[c]
			if ok != want.Known() || st.Rate != want.Rate(c) {
				t.Errorf("%v %s: bucket %+v (present %v), want rate %v", want, c, st, ok, want.Rate(c))
			}
		}
	}
	var nilL *Limiter
	if nilL.MaxConcurrentJobs() != 0 || !nilL.Unlimited() || nilL.Rate(tier.Queries) != 0 || nilL.Units() != 1 {
		t.Error("a nil limiter must be unlimited")
	}
}

func TestUnlimitedNeverWaits(t *testing.T) {
	l, clk := newTest(t, "", 0)
	for i := 0; i < 10000; i++ {
		if err := l.Wait(context.Background(), tier.Queries, 1); err != nil {
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
	st := l.Stats()[tier.Queries]
	if st.Burst != 3 {
		t.Fatalf("burst = %v, want 3", st.Burst)
	}
	ctx := context.Background()
	// The burst passes at once.
	for i := 0; i < 3; i++ {
		if d := l.Reserve(tier.Queries, 1); d.Wait != 0 || d.Refused {
			t.Fatalf("query %d of the burst: %+v", i+1, d)
		}
	}
	// The next needs 3 s: longer than the 2 s queue bound, so it is refused with Retry-After 3.
	d := l.Reserve(tier.Queries, 1)
	if !d.Refused || RetryAfterSeconds(d.RetryAfter) != 3 {
		t.Fatalf("over the burst: %+v, want refused with 3 s", d)
	}
	// A refusal takes nothing: 1.5 s later the token is 1.5 s away and the request is queued.
	clk.now = clk.now.Add(1500 * time.Millisecond)
	if err := l.Wait(ctx, tier.Queries, 1); err != nil {
		t.Fatalf("queued request: %v", err)
	}
	if len(clk.slept) != 1 || clk.slept[0] != 1500*time.Millisecond {
		t.Fatalf("held for %v, want [1.5s]", clk.slept)
	}
	// The refusal error is the hub's.
	err := l.Wait(ctx, tier.Queries, 1)
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
	s := l.Stats()[tier.Queries]
	if s.Served != 4 || s.Queued != 1 || s.Refused != 2 || s.Held != 1500*time.Millisecond {
		t.Errorf("stats = %+v", s)
	}
}

// A sustained caller at exactly the rate is never refused: over 10 minutes of S1 twin updates
// (50/s) sent at 50/s, every one passes and none waits after the burst is spent.
func TestSustainedAtRateNeverRefused(t *testing.T) {
	l, clk := newTest(t, "S1", 1)
	for i := 0; i < 50*600; i++ {
		if err := l.Wait(context.Background(), tier.TwinUpdates, 1); err != nil {
			t.Fatalf("update %d: %v", i, err)
		}
		clk.now = clk.now.Add(20 * time.Millisecond)
	}
	if s := l.Stats()[tier.TwinUpdates]; s.Refused != 0 || s.Queued != 0 {
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
		d := l.Reserve(tier.TwinUpdates, 1)
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
		if d := l.Reserve(tier.DirectMethods, 32); d.Wait != 0 || d.Refused {
			t.Fatalf("call %d: %+v", i, d)
		}
	}
	d := l.Reserve(tier.DirectMethods, 32) // 16 left: 16 chunks short = 0.4 s
	if d.Refused || d.Wait != 400*time.Millisecond {
		t.Fatalf("13th call: %+v, want a 0.4 s wait", d)
	}
}

func TestCancelledWaitReturnsItsTokens(t *testing.T) {
	l, clk := newTest(t, "S1", 1)
	for i := 0; i < 3; i++ {
		l.Reserve(tier.Queries, 1)
	}
	clk.now = clk.now.Add(2 * time.Second) // next token in 1 s: queued
	clk.cancel = true
	if err := l.Wait(context.Background(), tier.Queries, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait = %v", err)
	}
	clk.cancel = false
	clk.now = clk.now.Add(time.Second)
	// The cancelled request's token came back: this one goes at once.
	if d := l.Reserve(tier.Queries, 1); d.Wait != 0 || d.Refused {
		t.Fatalf("after the cancel: %+v", d)
	}
}

func TestUnitsScaleTheBurst(t *testing.T) {
	l, _ := newTest(t, "S1", 6) // queries 2/s: burst 20
	n := 0
	for d := l.Reserve(tier.Queries, 1); d.Wait == 0 && !d.Refused; d = l.Reserve(tier.Queries, 1) {
		n++
		if n > 1000 {
			t.Fatal("no limit")
		}
	}
	if n != 20 {
		t.Fatalf("burst of 6 S1 units = %d queries, want 20", n)
	}
}

// Recent keeps the last RecentRefusals refusals, newest first, and counts them all; the
// ring never grows, however many requests are refused.
func TestRecentRefusalsAreBounded(t *testing.T) {
	l, clk := newTest(t, "S1", 1)
	if r, n := l.Recent(); len(r) != 0 || n != 0 {
		t.Fatalf("fresh limiter: %v, %d", r, n)
	}
	for l.Stats()[tier.Queries].Refused == 0 {
		l.Reserve(tier.Queries, 1)
	}
	r, n := l.Recent()
	if n != 1 || len(r) != 1 || r[0].Class != tier.Queries || !r[0].At.Equal(clk.now) || RetryAfterSeconds(r[0].RetryAfter) != 3 {
		t.Fatalf("after one refusal: %+v, %d", r, n)
	}
	for i := range RecentRefusals + 10 {
		clk.now = clk.now.Add(time.Millisecond)
		if d := l.Reserve(tier.Queries, 1); !d.Refused {
			t.Fatalf("request %d passed: %+v", i, d)
		}
	}
	r, n = l.Recent()
	if n != RecentRefusals+11 || len(r) != RecentRefusals || !r[0].At.Equal(clk.now) || !r[0].At.After(r[1].At) {
		t.Fatalf("after %d refusals: %d kept, total %d, newest %v", RecentRefusals+11, len(r), n, r[0].At)
	}
	var unlimited *Limiter
	if r, n := unlimited.Recent(); r != nil || n != 0 {
		t.Errorf("nil limiter: %v, %d", r, n)
	}
}
