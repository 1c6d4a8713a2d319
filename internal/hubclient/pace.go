package hubclient

import (
	"context"
	"math"
	"net/http"
	"time"

	"github.com/iotplan/iotplan/internal/tier"
)

// Pacing to a known tier. Azure throttles each operation class of a hub to its tier's rate
// (https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-quotas-throttling) and answers
// 429 when a caller stays above it "for too long"; a client that knows its hub's tier
// (WithTier) sends no faster than that rate, so planning and applying cost their arithmetic
// minimum instead of 429s, Retry-After waits and retries.
//
// Each class has a token bucket that fills at the tier's rate (internal/tier: one table, and
// one tier.Bucket and tier.Cost, for this client and the local hub). Every request of the
// class, retries included, takes its tokens before it is sent (tier.Cost: direct methods one
// per started tier.MethodChunk of request body, as Azure meters them; any other request one)
// and waits when there are too few; the wait is cut short by the request's context, which
// gives the tokens back.
//
// Burst. A bucket holds paceBurstRequests tokens, fewer when paceBurstWindow of the rate is
// less, and at least one. Azure documents neither its burst nor its queue; the local hub's
// bucket holds 10 s of rate and holds a request for up to 2 s (internal/hub/throttle). A client
// bucket no larger than the hub's and filling at the same rate never gets ahead of the hub:
// whatever the client has sent by any moment, the hub's bucket has had the tokens for it by
// the moment it arrives (a little network jitter is absorbed by the hub's queue). The burst is
// kept small rather than as large as the hub's, because a bucket starts full: a big one would
// spend, right after New, tokens an earlier client (the plan before an apply) already used.
// TestPaceBurstWithinTheHubs checks the client's burst against the hub's for every tier,
// class and unit count.
//
// Pacing is per Client: two clients of one hub each pace only themselves, so a program should
// share one client per hub. Requests of kind "other" (see Calls) are not paced.
const (
	paceBurstRequests = 3
	paceBurstWindow   = 10 * time.Second
)

// kindClass is the hub's operation class of each call kind (see Calls and the local hub's
// httpapi.ThrottleClass, which a test checks this against).
var kindClass = map[string]tier.Class{
	"query":         tier.Queries,
	"job.create":    tier.JobsOps,
	"job.get":       tier.JobsOps,
	"job.list":      tier.JobsOps,
	"job.cancel":    tier.JobsOps,
	"twin.get":      tier.TwinReads,
	"twin.update":   tier.TwinUpdates,
	"twin.replace":  tier.TwinUpdates,
	"method.invoke": tier.DirectMethods,
	"device.get":    tier.RegistryOps,
	"device.put":    tier.RegistryOps,
	"device.delete": tier.RegistryOps,
	"device.list":   tier.RegistryOps,

	"configuration.list": tier.Configurations,
}

// WithTier makes the client pace its requests to the rates of t (see Paced). The zero Tier,
// the default, paces nothing.
func WithTier(t tier.Tier) Option { return func(c *config) { c.tier = t } }

// withClock replaces the clock of pacing and retry waits (unit tests: no real sleeping).
func withClock(now func() time.Time, sleep func(context.Context, time.Duration) error) Option {
	return func(c *config) { c.now, c.sleep = now, sleep }
}

// Tier is the tier the client paces itself to (the zero Tier: none).
func (c *Client) Tier() tier.Tier { return c.tier }

// Paced is how many requests waited for their turn under the client's tier (those whose
// context ended while waiting included), and how long they waited in total (measured), since
// New. It is separate from Waited, which is the time spent after the hub refused (429) or
// failed.
func (c *Client) Paced() (n int, total time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.waits.paced, c.waits.pacedFor
}

// paceBurst is the capacity of a bucket of rate tokens/s (see the Burst note above).
func paceBurst(rate float64) float64 {
	return math.Max(1, math.Min(paceBurstRequests, math.Floor(rate*paceBurstWindow.Seconds())))
}

// pace waits until a request of this kind may be sent under the client's tier. It returns at
// once without a tier or for an unpaced kind, and ctx's error (giving the tokens back) when ctx
// ends first.
func (c *Client) pace(ctx context.Context, kind string, req *http.Request) error {
	if err := ctx.Err(); err != nil {
		return err // a request that will not be sent takes no token
	}
	class := kindClass[kind]
	if !c.tier.Known() || class == "" || c.tier.Rate(class) <= 0 {
		return nil
	}
	cost := tier.Cost(class, req.ContentLength)
	b, d := c.reserve(class, cost)
	if d <= 0 {
		return nil
	}
	start := c.now()
	err := c.sleep(ctx, d)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.waits.paced++
	c.waits.pacedFor += c.now().Sub(start)
	if err != nil {
		b.Refund(cost)
	}
	return err
}

// reserve takes cost tokens from class's bucket now and returns the bucket and how long until
// the tokens are there (0 = now).
func (c *Client) reserve(class tier.Class, cost float64) (*tier.Bucket, time.Duration) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.buckets[class]
	if b == nil { // a new bucket starts full
		r := c.tier.Rate(class)
		b = tier.NewBucket(r, paceBurst(r), now)
		c.buckets[class] = b
	}
	return b, b.Reserve(cost, now)
}
