package tier

import (
	"math"
	"time"
)

// Cost is the tokens a request of class c takes from its class's bucket: a direct method one
// per started MethodChunk of request payload (contentLength; at least one, and one when the
// length is unknown, -1), as Azure meters them; a request of any other class one.
func Cost(c Class, contentLength int64) float64 {
	if c == DirectMethods && contentLength > MethodChunk {
		return float64((contentLength + MethodChunk - 1) / MethodChunk)
	}
	return 1
}

// Bucket is the token bucket of one operation class, the one arithmetic both sides use: the
// local hub's throttle (internal/hub/throttle) admits requests with it, and the hub client
// (internal/hubclient) paces itself with it. It fills at its rate up to its capacity; a
// request takes its Cost before it goes. When there are too few tokens the request still
// takes them — the bucket goes negative, promising tokens to requests that wait — and is
// told how long to wait until they are there. How large the bucket is and how long a request
// may wait are the caller's choices (Azure documents neither).
//
// A Bucket is not safe for concurrent use: its owner guards it with its own lock.
type Bucket struct {
	rate     float64 // tokens per second; 0 = unlimited
	capacity float64
	tokens   float64 // negative: tokens promised to waiting requests
	last     time.Time
}

// NewBucket returns a full bucket filling at rate tokens per second (a rate of 0 or less is
// unlimited: nothing ever waits) up to capacity, as of now.
func NewBucket(rate, capacity float64, now time.Time) *Bucket {
	return &Bucket{rate: rate, capacity: capacity, tokens: capacity, last: now}
}

// Rate is the bucket's rate in tokens per second.
func (b *Bucket) Rate() float64 { return b.rate }

// Capacity is how many tokens the bucket holds when full (its burst).
func (b *Bucket) Capacity() float64 { return b.capacity }

// Reserve takes cost tokens at now and returns how long until they are there (0 = at once).
// The wait is rounded up to the nanosecond, so the tokens are there when it ends.
func (b *Bucket) Reserve(cost float64, now time.Time) time.Duration {
	wait, _ := b.ReserveWithin(cost, now, math.MaxInt64)
	return wait
}

// ReserveWithin is Reserve for a request that may wait at most maxWait: when its tokens are
// further away than that, it takes nothing and returns false with the wait it would have had.
func (b *Bucket) ReserveWithin(cost float64, now time.Time, maxWait time.Duration) (wait time.Duration, ok bool) {
	if b.rate <= 0 {
		return 0, true
	}
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = math.Min(b.capacity, b.tokens+dt*b.rate)
		b.last = now
	}
	after := b.tokens - cost
	if after < 0 {
		wait = time.Duration(math.Ceil(-after / b.rate * float64(time.Second)))
		if wait > maxWait {
			return wait, false
		}
	}
	b.tokens = after
	return wait, true
}

// Refund gives back the tokens of a reserved request that was not sent after all (its
// waiting ended early), up to the bucket's capacity.
func (b *Bucket) Refund(cost float64) {
	b.tokens = math.Min(b.capacity, b.tokens+cost)
}
