package tier

import (
	"math"
	"testing"
	"time"
)

func TestCostOfMethodsIsInChunks(t *testing.T) {
	for _, c := range []struct {
		class Class
		size  int64
		want  float64
	}{
		{DirectMethods, -1, 1}, {DirectMethods, 0, 1}, {DirectMethods, 100, 1}, {DirectMethods, MethodChunk, 1},
		{DirectMethods, MethodChunk + 1, 2}, {DirectMethods, 10 * 1024, 3}, {DirectMethods, 128 * 1024, 32},
		{Queries, 100 * 1024, 1}, {TwinUpdates, 100 * 1024, 1},
	} {
		if got := Cost(c.class, c.size); got != c.want {
			t.Errorf("Cost(%s, %d) = %v, want %v", c.class, c.size, got, c.want)
		}
	}
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// A full bucket serves its capacity at once; then each request waits for its tokens, the
// waits adding up as the bucket goes negative; idle time refills it up to capacity only.
func TestBucketReserve(t *testing.T) {
	b := NewBucket(0.5, 3, t0) // one token per 2 s
	if b.Rate() != 0.5 || b.Capacity() != 3 {
		t.Fatalf("rate %v, capacity %v", b.Rate(), b.Capacity())
	}
	for i := range 3 {
		if d := b.Reserve(1, t0); d != 0 {
			t.Fatalf("request %d of the burst waits %v", i+1, d)
		}
	}
	for i, want := range []time.Duration{2 * time.Second, 4 * time.Second, 6 * time.Second} {
		if d := b.Reserve(1, t0); d != want {
			t.Errorf("waiting request %d: %v, want %v", i+1, d, want)
		}
	}
	// 6 s later the three promised tokens are there and the bucket is empty.
	if d := b.Reserve(1, t0.Add(6*time.Second)); d != 2*time.Second {
		t.Errorf("after the waits: %v, want 2s", d)
	}
	// An hour idle: full again (3), not more.
	later := t0.Add(time.Hour)
	for range 3 {
		if d := b.Reserve(1, later); d != 0 {
			t.Fatalf("after an hour idle: waits %v", d)
		}
	}
	if d := b.Reserve(1, later); d != 2*time.Second {
		t.Errorf("4th after an hour idle: %v, want 2s", d)
	}
	// A clock that goes back refills nothing.
	if d := b.Reserve(1, t0); d != 4*time.Second {
		t.Errorf("earlier time: %v, want 4s", d)
	}
}

// Waits are rounded up, so the tokens are there when the wait ends.
func TestBucketWaitRoundsUp(t *testing.T) {
	b := NewBucket(3, 1, t0)
	b.Reserve(1, t0)
	d := b.Reserve(1, t0)
	want := time.Duration(math.Ceil(1.0 / 3 * float64(time.Second)))
	if d != want || d*3 < time.Second {
		t.Errorf("wait %v, want %v", d, want)
	}
}

// ReserveWithin refuses a request whose tokens are further than maxWait, taking nothing.
func TestBucketReserveWithin(t *testing.T) {
	b := NewBucket(1, 2, t0)
	for range 2 {
		if d, ok := b.ReserveWithin(1, t0, 0); d != 0 || !ok {
			t.Fatalf("burst: %v %v", d, ok)
		}
	}
	if d, ok := b.ReserveWithin(1, t0, 500*time.Millisecond); ok || d != time.Second {
		t.Fatalf("1 s away with 0.5 s allowed: %v %v, want refused with 1s", d, ok)
	}
	if d, ok := b.ReserveWithin(1, t0, 0); ok || d != time.Second {
		t.Fatalf("no wait allowed: %v %v, want refused with 1s", d, ok)
	}
	// The refusals took nothing: 1 s allowed, the same request waits 1 s.
	if d, ok := b.ReserveWithin(1, t0, time.Second); !ok || d != time.Second {
		t.Fatalf("1 s allowed: %v %v", d, ok)
	}
	if d, ok := b.ReserveWithin(1, t0, time.Second); ok || d != 2*time.Second {
		t.Fatalf("behind a waiting request: %v %v, want refused with 2s", d, ok)
	}
}

// Refund gives tokens back, never beyond capacity.
func TestBucketRefund(t *testing.T) {
	b := NewBucket(1, 2, t0)
	b.Reserve(2, t0)
	b.Reserve(3, t0) // -3
	b.Refund(3)
	if d := b.Reserve(1, t0); d != time.Second {
		t.Errorf("after a refund: %v, want 1s", d)
	}
	b.Refund(100)
	for range 2 {
		if d := b.Reserve(1, t0); d != 0 {
			t.Fatalf("refunded bucket: %v", d)
		}
	}
	if d := b.Reserve(1, t0); d != time.Second {
		t.Errorf("refund beyond capacity: %v, want 1s", d)
	}
}

// A rate of 0 (a class the tier does not throttle) never waits.
func TestBucketZeroRateIsUnlimited(t *testing.T) {
	b := NewBucket(0, 1, t0)
	for range 100 {
		if d, ok := b.ReserveWithin(5, t0, 0); d != 0 || !ok {
			t.Fatalf("zero rate: %v %v", d, ok)
		}
	}
}
