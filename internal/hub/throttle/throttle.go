// Package throttle enforces Azure IoT Hub's per-tier operation throttles for the local hub
// (shared/reference/iothub-api.md §7.1 and §1.5): one token bucket per operation class, with
// the hub's traffic shaping — a short burst above the rate is served at once, further
// requests are queued (held) and served at the limit rate, and when the queue is full the
// request is refused with 429 ThrottlingException (429001) in the legacy envelope.
//
// Rates. A Limiter is built for a tier ("F1", "S1", "S2", "S3") and a unit count; the rate of
// each class is the documented per-tier figure, multiplied by units where the documentation
// says "/unit" and with its "higher of" floors (e.g. twin updates on S2: max(50/s, 5/s/unit)).
// Tier "" is unlimited: every request passes at once, which is the local hub's default.
// Units: F1 takes 1, S1 and S2 1–200, S3 1–10 (as Azure allows).
//
// Where the classes are enforced: the REST API admits every authorized request through the
// class of its route (httpapi/throttle.go); the MQTT endpoint admits every authenticated
// CONNECT through DeviceConnections (mqttapi.Options.AdmitConnect); the jobs engine paces job
// device operations (below). Twin reads/updates made by devices over MQTT, device-to-cloud and
// cloud-to-device sends are not throttled yet.
//
// Direct methods are metered in 4 KB chunks of request payload (160 KB/s/unit on S1 = 40
// chunks/s/unit); every other class costs one token per request.
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
//     third-party fixture of the real hub, §5.3).
//   - A queued request whose client goes away gives its token back.
//   - Job device operations are not a REST class: the jobs engine paces them
//     (jobs.Options.DeviceOpsPerSecond = Rate(JobDeviceOps)), and MaxConcurrentJobs is the
//     tier's job concurrency (1 on F1/S1, 5 on S2, 10 on S3; over it the jobs engine answers
//     429004). Jobs operations (create/get/cancel/list over REST) are a class of their own.
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
// faster than S1's 10 job device operations per second. The permission matrix and the error
// table are internal/hub's TestPermissionMatrix and TestErrorCodesLive and httpapi's
// TestErrorTableAsClientsReadIt.
//
// Imports: huberr, stdlib.
package throttle

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/iotplan/iotplan/internal/clock"
	"github.com/iotplan/iotplan/internal/hub/huberr"
)

// Class is an operation class with its own throttle (iothub-api.md §7.1).
type Class string

// The operation classes. The names are the "Operation type" of refusal messages.
const (
	RegistryOps       Class = "IdentityRegistryOperations" // device/module identity create/get/list/update/delete
	DeviceConnections Class = "NewDeviceConnections"       // device CONNECTs (rate, not total)
	DeviceToCloud     Class = "DeviceToCloudSends"
	CloudToDevice     Class = "CloudToDeviceSends"
	Queries           Class = "Queries"
	DirectMethods     Class = "DirectMethods" // cost: 4 KB chunks of request payload
	TwinReads         Class = "TwinReads"     // device and module twins
	TwinUpdates       Class = "TwinUpdates"   // device and module twins
	JobsOps           Class = "JobsOperations"
	JobDeviceOps      Class = "JobsDeviceOperations" // paced by the jobs engine, not over REST
	Configurations    Class = "Configurations"       // ADM configurations and edge deployments CRUD
)

// Classes lists every class, for tables and tests.
func Classes() []Class {
	return []Class{RegistryOps, DeviceConnections, DeviceToCloud, CloudToDevice, Queries, DirectMethods,
		TwinReads, TwinUpdates, JobsOps, JobDeviceOps, Configurations}
}

// Tiers are the tiers with throttles ("" = unlimited).
var Tiers = []string{"F1", "S1", "S2", "S3"}

// MethodChunk is the direct-method meter: payload bytes per token.
const MethodChunk = 4096

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
	tier  string
	units int
	opts  Options
	mu    sync.Mutex
	b     map[Class]*bucket
}

type bucket struct {
	rate     float64 // tokens per second
	capacity float64
	tokens   float64 // negative: tokens promised to queued requests
	last     time.Time
	// counters
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

// New builds the limiter of a tier. Unknown tiers and out-of-range unit counts are errors that
// name the allowed values.
func New(opts Options) (*Limiter, error) {
	tier := strings.ToUpper(strings.TrimSpace(opts.Tier))
	if opts.Units == 0 {
		opts.Units = 1
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
	if tier == "" {
		if opts.Units != 1 {
			return nil, fmt.Errorf("units (%d) need a tier (F1, S1, S2 or S3); without one the local hub is unlimited", opts.Units)
		}
		return &Limiter{opts: opts, units: 1}, nil
	}
	if !slices.Contains(Tiers, tier) {
		return nil, fmt.Errorf("unknown IoT Hub tier %q: use F1, S1, S2 or S3 (or none for an unlimited hub)", opts.Tier)
	}
	maxUnits := map[string]int{"F1": 1, "S1": 200, "S2": 200, "S3": 10}[tier]
	if opts.Units < 1 || opts.Units > maxUnits {
		if tier == "F1" {
			return nil, fmt.Errorf("the F1 (free) tier has exactly 1 unit, not %d", opts.Units)
		}
		return nil, fmt.Errorf("units must be from 1 to %d on %s, not %d", maxUnits, tier, opts.Units)
	}
	l := &Limiter{tier: tier, units: opts.Units, opts: opts, b: map[Class]*bucket{}}
	now := opts.Now()
	for _, c := range Classes() {
		r := RateOf(tier, opts.Units, c)
		capacity := math.Max(1, math.Floor(r*opts.Burst.Seconds()))
		l.b[c] = &bucket{rate: r, capacity: capacity, tokens: capacity, last: now}
	}
	return l, nil
}

// RateOf is the documented rate of class c on tier with units, in tokens per second
// (iothub-api.md §7.1; direct methods in 4 KB chunks); 0 for an unknown tier or class.
func RateOf(tier string, units int, c Class) float64 {
	u := float64(units)
	perMin := func(n float64) float64 { return n / 60 }
	s3 := tier == "S3"
	s2 := tier == "S2"
	switch tier {
	case "F1", "S1", "S2", "S3":
	default:
		return 0
	}
	switch c {
	case RegistryOps, JobsOps, CloudToDevice:
		if s3 {
			return perMin(5000) * u
		}
		return perMin(100) * u
	case DeviceConnections, DeviceToCloud:
		switch {
		case s3:
			return 6000 * u
		case s2:
			return 120 * u
		}
		return math.Max(100, 12*u)
	case Queries:
		if s3 {
			return perMin(1000) * u
		}
		return perMin(20) * u
	case DirectMethods: // KB/s / 4 KB
		switch {
		case s3:
			return 24 * 1024 / 4 * u
		case s2:
			return 480 / 4 * u
		}
		return 160 / 4 * u
	case TwinReads:
		switch {
		case s3:
			return 500 * u
		case s2:
			return math.Max(100, 10*u)
		}
		return 100
	case TwinUpdates:
		switch {
		case s3:
			return 250 * u
		case s2:
			return math.Max(50, 5*u)
		}
		return 50
	case JobDeviceOps:
		switch {
		case s3:
			return 50 * u
		case s2:
			return math.Max(10, u)
		}
		return 10
	case Configurations:
		return perMin(20) * u
	}
	return 0
}

// Tier is the limiter's tier ("" = unlimited).
func (l *Limiter) Tier() string {
	if l == nil {
		return ""
	}
	return l.tier
}

// Units is the limiter's unit count.
func (l *Limiter) Units() int {
	if l == nil {
		return 1
	}
	return l.units
}

// Unlimited reports whether the limiter throttles nothing.
func (l *Limiter) Unlimited() bool { return l == nil || l.tier == "" }

// Rate is class c's rate in tokens per second; 0 = unlimited.
func (l *Limiter) Rate(c Class) float64 {
	if l.Unlimited() {
		return 0
	}
	if b := l.b[c]; b != nil {
		return b.rate
	}
	return 0
}

// MaxConcurrentJobs is the tier's limit on active jobs (iothub-api.md §1.5); 0 = unlimited.
func (l *Limiter) MaxConcurrentJobs() int {
	switch l.Tier() {
	case "F1", "S1":
		return 1
	case "S2":
		return 5
	case "S3":
		return 10
	}
	return 0
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
func (l *Limiter) Reserve(c Class, cost float64) Decision {
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
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = math.Min(b.capacity, b.tokens+dt*b.rate)
		b.last = now
	}
	after := b.tokens - cost
	if after >= 0 {
		b.tokens = after
		b.served++
		return Decision{}
	}
	wait := seconds(-after / b.rate)
	if wait > l.opts.MaxQueueWait {
		b.refused++
		return Decision{Refused: true, RetryAfter: wait}
	}
	b.tokens = after
	b.served++
	b.queued++
	b.queuedFor += wait
	return Decision{Wait: wait}
}

// refund gives back the tokens of a queued request whose client went away.
func (l *Limiter) refund(c Class, cost float64) {
	if cost <= 0 {
		cost = 1
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if b := l.b[c]; b != nil {
		b.tokens = math.Min(b.capacity, b.tokens+cost)
		b.served--
	}
}

// Wait admits one request of class c costing cost tokens: it returns at once, or after
// holding the request in the queue, or with a *huberr.Error 429001 when the queue is full.
// It returns ctx's error when ctx ends while the request is held (its tokens are returned).
func (l *Limiter) Wait(ctx context.Context, c Class, cost float64) error {
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
func Refusal(c Class, retryAfter time.Duration) *huberr.Error {
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
func (l *Limiter) Stats() map[Class]Stats {
	out := map[Class]Stats{}
	if l.Unlimited() {
		return out
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for c, b := range l.b {
		out[c] = Stats{Rate: b.rate, Burst: b.capacity, Served: b.served, Queued: b.queued, Refused: b.refused, Held: b.queuedFor}
	}
	return out
}

func seconds(s float64) time.Duration {
	return time.Duration(math.Ceil(s * float64(time.Second)))
}
