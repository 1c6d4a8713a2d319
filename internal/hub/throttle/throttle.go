// Package throttle enforces Azure IoT Hub's per-tier operation throttles for the local hub
// (https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-quotas-throttling): one token
// bucket per operation class, with the hub's traffic shaping — a short burst above the rate
// is served at once, further requests are queued (held) and served at the limit rate, and
// when the queue is full the request is refused with 429 ThrottlingException (429001) in the
// legacy envelope.
//
// Rates. A Limiter is built for a tier ("F1", "S1", "S2", "S3") and a unit count, checked by
// tier.Parse; the classes, the rate of each class and the job concurrency are internal/tier's
// table (Azure's documented figures), which iotplan's hub client paces itself to as well. So
// is the metering: each class's bucket is a tier.Bucket and a request's cost is tier.Cost,
// the arithmetic the hub client paces itself with. This package holds no figure of Azure's,
// only the shaping around them (below) and the counters. Tier "" is unlimited: every request
// passes at once, which is the local hub's default.
//
// Where the classes are enforced: the REST API admits every authorized request through the
// class of its route (httpapi/throttle.go); the MQTT endpoint admits every authenticated
// CONNECT through DeviceConnections (mqttapi.Options.AdmitConnect); the jobs engine paces job
// device operations (below). Twin reads/updates made by devices over MQTT, device-to-cloud and
// cloud-to-device sends are not throttled yet.
//
// Direct methods cost one token per started tier.MethodChunk (4 KB) of request payload, as
// Azure meters them; every other class costs one token per request (tier.Cost).
//
// Choices where Azure's behaviour is not documented (all [inferred] or [unverified]):
//   - Burst: a bucket holds Options.Burst (default 10 s) worth of its rate, at least one
//     request. Azure says only that bursts are "accepted briefly".
//   - Queue: a request that would have to wait for its token at most Options.MaxQueueWait
//     (default 2 s) is held server-side and then served; one that would wait longer is refused
//     at once without consuming a token. Azure says the queue is bounded, not how. The bound
//     is a wait time rather than a count so that slow classes (queries: 20/min) refuse a
//     second concurrent caller instead of holding it for minutes.
//   - Refusals carry Retry-After: the whole seconds until the refused request's token would be
//     available (rounded up, at least 1). Azure's 429 responses are not documented to carry it;
//     clients that ignore it (amenzhinsky) lose nothing.
//   - The refusal code is 429001 ThrottlingException with the message "The request has been
//     throttled. Wait N seconds and try again. Operation type: <class>." (the message shape of a
//     third-party test fixture captured from the real hub).
//   - A queued request whose client goes away gives its token back.
//   - Job device operations are not a REST class: the jobs engine paces them
//     (jobs.Options.DeviceOpsPerSecond = Rate(tier.JobDeviceOps)), and MaxConcurrentJobs is
//     the tier's job concurrency (over it the jobs engine answers 429004). Jobs operations
//     (create/get/cancel/list over REST) are a class of their own.
//
// Tests. This package's unit tests use Options.Now and Options.Sleep and never sleep. The
// throttled end-to-end runs of `iotplan apply` against a hub started with Tier "S1" live in
// internal/cli (throttle_test.go):
//
//	go test ./internal/cli -run 'TestApplyThrottledS1$'      # default run: 60 devices, ≈ 22 s
//	IOTPLAN_LONG_TESTS=1 go test ./internal/cli -run TestApplyThrottledS1Long -timeout 30m -v
//	                                                        # 5,000 devices: ≈ 500 s of job at 10/s
//
// Both must finish with zero failed calls and devices, every 429 the hub sent retried and
// reported ("Planning waited …s on hub throttling (N calls answered 429)."), and the job no
// faster than S1's 10 job device operations per second. A hub client paced to the hub's own
// tier (hubclient.WithTier) is never refused: internal/hubclient's TestPacedClientIsNeverThrottled. The permission matrix and the error
// table are internal/hub's TestPermissionMatrix and TestErrorCodesLive and httpapi's
// TestErrorTableAsClientsReadIt.
//
// Imports: clock, huberr, tier, stdlib.
package throttle

import (
	"context"
	"math"
	"sync"
	"time"

	"github.com/iotplan/iotplan/internal/clock"
	"github.com/iotplan/iotplan/internal/hub/huberr"
	"github.com/iotplan/iotplan/internal/tier"
)

// Defaults of Options.
const (
	DefaultBurst        = 10 * time.Second
	DefaultMaxQueueWait = 2 * time.Second
)

// Options configure a Limiter. Zero values take the defaults.
type Options struct {
	Tier  string // "F1", "S1", "S2", "S3"; "" = unlimited (case-insensitive)
	Units int    // 0 = 1
	// Burst is how much of its rate a bucket holds when idle (at least one request).
	Burst time.Duration
	// MaxQueueWait is the longest a request is held waiting for its token before it is
	// refused instead.
	MaxQueueWait time.Duration
	// Now and Sleep are the clock; nil = time.Now and a timer. Sleep returns ctx.Err() when
	// ctx ends first.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
}

// Limiter holds the buckets of one hub. A nil *Limiter is unlimited. Safe for concurrent use.
type Limiter struct {
	tier tier.Tier
	opts Options
	mu   sync.Mutex
	b    map[tier.Class]*bucket
	// recent holds the last RecentRefusals refusals (a ring; next is the slot to write,
	// total how many were ever written), guarded by mu: the dashboard of `iotplan dev`
	// shows them (internal/hub/dashboard).
	recent      [RecentRefusals]Refused
	next, total int
}

// RecentRefusals is how many refusals Recent remembers: a fixed ring, so a hub refusing
// thousands of requests a second holds no more.
const RecentRefusals = 64

// Refused is one refused request, as Recent reports it.
type Refused struct {
	At         time.Time
	Class      tier.Class
	RetryAfter time.Duration
}

// bucket is a class's token bucket (tier.Bucket: negative tokens are promised to queued
// requests) and its counters; both are guarded by Limiter.mu.
type bucket struct {
	tokens                  *tier.Bucket
	served, queued, refused int64
	queuedFor               time.Duration
}

// Stats are a class's counters since New.
type Stats struct {
	Rate    float64       // tokens per second
	Burst   float64       // bucket capacity
	Served  int64         // requests that passed (after queueing or not)
	Queued  int64         // of those, how many were held
	Refused int64         // 429s
	Held    time.Duration // total time requests were held
}

// New builds the limiter of a tier. Unknown tiers and out-of-range unit counts are
// tier.Parse's errors, which name the allowed values.
func New(opts Options) (*Limiter, error) {
	t, err := tier.Parse(opts.Tier, opts.Units)
	if err != nil {
		return nil, err
	}
	if opts.Burst <= 0 {
		opts.Burst = DefaultBurst
	}
	if opts.MaxQueueWait < 0 {
		opts.MaxQueueWait = 0
	} else if opts.MaxQueueWait == 0 {
		opts.MaxQueueWait = DefaultMaxQueueWait
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Sleep == nil {
		opts.Sleep = clock.Sleep
	}
	l := &Limiter{tier: t, opts: opts}
	if !t.Known() {
		return l, nil
	}
	l.b = map[tier.Class]*bucket{}
	now := opts.Now()
	for _, c := range tier.Classes() {
		r := t.Rate(c)
		capacity := math.Max(1, math.Floor(r*opts.Burst.Seconds()))
		l.b[c] = &bucket{tokens: tier.NewBucket(r, capacity, now)}
	}
	return l, nil
}

// Tier is the limiter's tier name ("" = unlimited).
func (l *Limiter) Tier() string {
	if l == nil {
		return ""
	}
	return l.tier.Name
}

// Units is the limiter's unit count (1 when unlimited).
func (l *Limiter) Units() int {
	if l.Unlimited() {
		return 1
	}
	return l.tier.Units
}

// Unlimited reports whether the limiter throttles nothing.
func (l *Limiter) Unlimited() bool { return l == nil || !l.tier.Known() }

// Rate is class c's rate in tokens per second (tier.Tier.Rate); 0 = unlimited.
func (l *Limiter) Rate(c tier.Class) float64 {
	if l == nil {
		return 0
	}
	return l.tier.Rate(c)
}

// MaxConcurrentJobs is the tier's limit on active jobs (tier.Tier.MaxConcurrentJobs);
// 0 = unlimited.
func (l *Limiter) MaxConcurrentJobs() int {
	if l == nil {
		return 0
	}
	return l.tier.MaxConcurrentJobs()
}

// Decision is the outcome of Reserve.
type Decision struct {
	// Wait is how long the request must be held before it is served (0 = at once).
	Wait time.Duration
	// Refused: the queue is full; the request must be answered with Err.
	Refused bool
	// RetryAfter is when a refused request's token would be available.
	RetryAfter time.Duration
}

// Reserve takes cost tokens of class c at the limiter's current time and says whether the
// request goes at once, waits, or is refused. A refused request takes nothing. Unknown
// classes and an unlimited limiter always go at once. Reserve never sleeps.
func (l *Limiter) Reserve(c tier.Class, cost float64) Decision {
	if l.Unlimited() || c == "" {
		return Decision{}
	}
	b := l.b[c]
	if b == nil {
		return Decision{}
	}
	if cost <= 0 {
		cost = 1
	}
	now := l.opts.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	wait, ok := b.tokens.ReserveWithin(cost, now, l.opts.MaxQueueWait)
	if !ok {
		b.refused++
		l.recent[l.next] = Refused{At: now, Class: c, RetryAfter: wait}
		l.next = (l.next + 1) % RecentRefusals
		l.total++
		return Decision{Refused: true, RetryAfter: wait}
	}
	b.served++
	if wait <= 0 {
		return Decision{}
	}
	b.queued++
	b.queuedFor += wait
	return Decision{Wait: wait}
}

// refund gives back the tokens of a queued request whose client went away.
func (l *Limiter) refund(c tier.Class, cost float64) {
	if cost <= 0 {
		cost = 1
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if b := l.b[c]; b != nil {
		b.tokens.Refund(cost)
		b.served--
	}
}

// Wait admits one request of class c costing cost tokens: it returns at once, or after
// holding the request in the queue, or with a *huberr.Error 429001 when the queue is full.
// It returns ctx's error when ctx ends while the request is held (its tokens are returned).
func (l *Limiter) Wait(ctx context.Context, c tier.Class, cost float64) error {
	d := l.Reserve(c, cost)
	if d.Refused {
		return Refusal(c, d.RetryAfter)
	}
	if d.Wait <= 0 {
		return nil
	}
	if err := l.opts.Sleep(ctx, d.Wait); err != nil {
		l.refund(c, cost)
		return err
	}
	return nil
}

// Refusal is the hub's answer to a throttled request: 429001 ThrottlingException, legacy
// envelope, with the retry delay in whole seconds (rounded up, at least 1) in the message and
// in Info["retryAfterSeconds"], which the REST transport sends as Retry-After.
func Refusal(c tier.Class, retryAfter time.Duration) *huberr.Error {
	secs := RetryAfterSeconds(retryAfter)
	e := huberr.New(huberr.ThrottlingException,
		"The request has been throttled. Wait %d seconds and try again. Operation type: %s.", secs, c)
	e.Info = map[string]any{"retryAfterSeconds": secs}
	return e
}

// RetryAfterSeconds rounds a delay up to whole seconds, at least 1 (Retry-After's unit).
func RetryAfterSeconds(d time.Duration) int {
	s := int(math.Ceil(d.Seconds()))
	return max(s, 1)
}

// Stats returns the counters of every class (empty when unlimited).
func (l *Limiter) Stats() map[tier.Class]Stats {
	out := map[tier.Class]Stats{}
	if l.Unlimited() {
		return out
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for c, b := range l.b {
		out[c] = Stats{Rate: b.tokens.Rate(), Burst: b.tokens.Capacity(), Served: b.served, Queued: b.queued, Refused: b.refused, Held: b.queuedFor}
	}
	return out
}

// Recent returns the last refusals (at most RecentRefusals), newest first, and how many
// requests were refused since New (every class); none when unlimited.
func (l *Limiter) Recent() (recent []Refused, total int) {
	if l.Unlimited() {
		return nil, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	n := min(l.total, RecentRefusals)
	recent = make([]Refused, 0, n)
	for i := 1; i <= n; i++ {
		recent = append(recent, l.recent[(l.next-i+RecentRefusals)%RecentRefusals])
	}
	return recent, l.total
}
