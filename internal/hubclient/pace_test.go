package hubclient

import (
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iotplan/iotplan/internal/hub/httpapi"
	"github.com/iotplan/iotplan/internal/hub/throttle"
	"github.com/iotplan/iotplan/internal/tier"
)

// fakeClock is the client's clock in unit tests: Sleep advances it instead of sleeping, and
// requests take no time on it, so the pacing arithmetic is exact.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	slept  []time.Duration
	giveUp bool // Sleep waits half and fails as if its context ended
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.giveUp {
		f.now = f.now.Add(d / 2)
		return context.Canceled
	}
	f.slept = append(f.slept, d)
	f.now = f.now.Add(d)
	return nil
}

// queryServer answers every query with one row; fail (when set) may answer instead.
func queryServer(fail func(n int, w http.ResponseWriter) bool) *faultServer {
	return &faultServer{reply: func(n int, _ *http.Request, w http.ResponseWriter) {
		if fail != nil && fail(n, w) {
			return
		}
		io.WriteString(w, `[{"n":1}]`)
	}}
}

func mustTier(t *testing.T, name string, units int) tier.Tier {
	t.Helper()
	tr, err := tier.Parse(name, units)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func near(a, b time.Duration) bool { return (a - b).Abs() < time.Microsecond }

// S1 allows 20 queries a minute: after the burst of 3, every query waits 3 s for its turn.
func TestPacingToS1Queries(t *testing.T) {
	clk := newFakeClock()
	c := queryServer(nil).start(t, WithTier(mustTier(t, "s1", 1)), withClock(clk.Now, clk.Sleep))
	if c.Tier().String() != "S1 × 1 unit" {
		t.Fatalf("Tier() = %v", c.Tier())
	}
	for range 10 {
		if _, err := c.Query(context.Background(), "SELECT COUNT() AS n FROM devices"); err != nil {
			t.Fatal(err)
		}
	}
	n, total := c.Paced()
	if n != 7 || !near(total, 21*time.Second) {
		t.Errorf("paced %d requests for %v, want 7 for 21s", n, total)
	}
	for i, d := range clk.slept {
		if !near(d, 3*time.Second) {
			t.Errorf("wait %d = %v, want 3s", i+1, d)
		}
	}
	// Each class has its own bucket: the queries' empty one does not hold up a twin read.
	twinGet, _ := http.NewRequest(http.MethodGet, "https://h/twins/d1", nil)
	if err := c.pace(context.Background(), "twin.get", twinGet); err != nil {
		t.Fatal(err)
	}
	if n, total := c.Paced(); n != 7 || !near(total, 21*time.Second) || len(clk.slept) != 7 {
		t.Errorf("a twin read after the queries: paced %d for %v, waits %v", n, total, clk.slept)
	}
	if c.Throttled() != 0 || c.Waited() != 0 || c.Calls()["query"] != 10 {
		t.Errorf("throttled %d, waited %v, calls %v", c.Throttled(), c.Waited(), c.Calls())
	}
	// Idle time refills the bucket up to the burst, not beyond.
	clk.Sleep(context.Background(), time.Hour)
	for range 4 {
		c.Query(context.Background(), "SELECT COUNT() AS n FROM devices")
	}
	if n, _ := c.Paced(); n != 8 {
		t.Errorf("after an hour idle, 4 queries paced %d more, want 1", n-7)
	}
}

// Without a tier nothing is paced.
func TestNoTierNoPacing(t *testing.T) {
	clk := newFakeClock()
	c := queryServer(nil).start(t, withClock(clk.Now, clk.Sleep))
	for range 50 {
		if _, err := c.Query(context.Background(), "SELECT COUNT() AS n FROM devices"); err != nil {
			t.Fatal(err)
		}
	}
	if n, total := c.Paced(); n != 0 || total != 0 || len(clk.slept) != 0 || c.Tier().Known() {
		t.Errorf("paced %d for %v, slept %v", n, total, clk.slept)
	}
}

// A retry after a 429 is one more request against the hub's budget: it takes a token too, and
// the 429 wait is counted in Waited, not in Paced.
func TestRetryAfter429TakesAToken(t *testing.T) {
	clk := newFakeClock()
	f := queryServer(func(n int, w http.ResponseWriter) bool {
		if n != 1 {
			return false
		}
		w.Header().Set("Retry-After", "1")
		hubError(w, 429, "ThrottlingException", "The request has been throttled.")
		return true
	})
	c := f.start(t, WithTier(mustTier(t, "S1", 1)), withClock(clk.Now, clk.Sleep))
	// Tokens: 3 → 2 (throttled) → +1/3 over the 1 s Retry-After → 1.33 (retry) → 0.33 → -0.67.
	for range 3 {
		if _, err := c.Query(context.Background(), "SELECT COUNT() AS n FROM devices"); err != nil {
			t.Fatal(err)
		}
	}
	if n, total := c.Paced(); n != 1 || !near(total, 2*time.Second) {
		t.Errorf("paced %d for %v, want 1 for 2s", n, total)
	}
	if c.Throttled() != 1 || c.Waited() != time.Second || c.Calls()["query"] != 4 {
		t.Errorf("throttled %d, waited %v, calls %v", c.Throttled(), c.Waited(), c.Calls())
	}
}

// A request whose context ends while it waits for its turn is not sent and gives its token
// back; one whose context has already ended takes none.
func TestPacingWaitEndsWithTheContext(t *testing.T) {
	clk := newFakeClock()
	f := queryServer(nil)
	c := f.start(t, WithTier(mustTier(t, "S1", 1)), withClock(clk.Now, clk.Sleep))
	for range 3 {
		c.Query(context.Background(), "SELECT COUNT() AS n FROM devices")
	}
	// The fake clock ends the wait at once when ctx is done, as clock.Sleep does.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for range 5 {
		if _, err := c.Query(ctx, "SELECT COUNT() AS n FROM devices"); !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled query: %v", err)
		}
	}
	f.mu.Lock()
	sent := len(f.log)
	f.mu.Unlock()
	if sent != 3 || c.Calls()["query"] != 3 {
		t.Fatalf("cancelled queries were sent: %d requests, calls %v", sent, c.Calls())
	}
	// The bucket is as the 3 sent queries left it: the next waits 3 s, not more.
	if _, err := c.Query(context.Background(), "SELECT COUNT() AS n FROM devices"); err != nil {
		t.Fatal(err)
	}
	if len(clk.slept) != 1 || !near(clk.slept[0], 3*time.Second) {
		t.Errorf("waits %v, want [3s]", clk.slept)
	}
}

// Cancelling during the wait: the time waited counts, the token comes back.
func TestPacingCancelledWhileWaiting(t *testing.T) {
	clk := newFakeClock()
	c := queryServer(nil).start(t, WithTier(mustTier(t, "S1", 1)), withClock(clk.Now, clk.Sleep))
	for range 3 {
		c.Query(context.Background(), "SELECT COUNT() AS n FROM devices")
	}
	clk.giveUp = true // the next wait is cut short half-way, as by a cancelled context
	if _, err := c.Query(context.Background(), "SELECT COUNT() AS n FROM devices"); !errors.Is(err, context.Canceled) {
		t.Fatalf("query = %v", err)
	}
	if n, total := c.Paced(); n != 1 || !near(total, 1500*time.Millisecond) {
		t.Errorf("paced %d for %v, want 1 for the 1.5s waited", n, total)
	}
	// 1.5 s passed and the token came back: half a token, so the next query waits 1.5 s.
	clk.giveUp = false
	if _, err := c.Query(context.Background(), "SELECT COUNT() AS n FROM devices"); err != nil {
		t.Fatal(err)
	}
	if last := clk.slept[len(clk.slept)-1]; !near(last, 1500*time.Millisecond) {
		t.Errorf("next wait %v, want 1.5s", last)
	}
}

func TestPaceBurst(t *testing.T) {
	for _, c := range []struct{ rate, want float64 }{
		{20.0 / 60, 3}, {0.25, 2}, {0.05, 1}, {0.01, 1}, {50, 3}, {6144, 3},
	} {
		if got := paceBurst(c.rate); got != c.want {
			t.Errorf("paceBurst(%v) = %v, want %v", c.rate, got, c.want)
		}
	}
}

// The client's bucket never holds more than the local hub's for the same tier, class and
// units, so a client paced to its hub's tier is never ahead of the hub.
func TestPaceBurstWithinTheHubs(t *testing.T) {
	for _, name := range tier.Names {
		for _, units := range []int{1, 2, 10, 200} {
			tr, err := tier.Parse(name, units)
			if err != nil {
				continue // units beyond the tier's range
			}
			l, err := throttle.New(throttle.Options{Tier: tr.Name, Units: tr.Units})
			if err != nil {
				t.Fatal(err)
			}
			for c, st := range l.Stats() {
				if b := paceBurst(tr.Rate(c)); b > st.Burst || b < 1 || st.Rate != tr.Rate(c) {
					t.Errorf("%v %s: client burst %v, hub %+v", tr, c, b, st)
				}
			}
		}
	}
}

// A request's cost is tier.Cost of its Content-Length, as the request carries it.
func TestPaceCostOfMethodsIsInChunks(t *testing.T) {
	for _, c := range []struct {
		class tier.Class
		size  int
		want  float64
	}{
		{tier.DirectMethods, 0, 1}, {tier.DirectMethods, 100, 1}, {tier.DirectMethods, tier.MethodChunk, 1},
		{tier.DirectMethods, tier.MethodChunk + 1, 2}, {tier.DirectMethods, 10 * 1024, 3},
		{tier.Queries, 100 * 1024, 1},
	} {
		req, _ := http.NewRequest(http.MethodPost, "https://h/x", strings.NewReader(strings.Repeat("x", c.size)))
		if got := tier.Cost(c.class, req.ContentLength); got != c.want {
			t.Errorf("%s with %d bytes costs %v, want %v", c.class, c.size, got, c.want)
		}
	}
}

// Each kind of call is paced in the class the hub throttles its route in.
func TestKindClassesAreTheHubs(t *testing.T) {
	routes := map[string]struct{ pattern, path string }{
		"query":         {"POST /devices/query", "/devices/query"},
		"job.create":    {"PUT /jobs/v2/{id}", "/jobs/v2/j1"},
		"job.get":       {"GET /jobs/v2/{id}", "/jobs/v2/j1"},
		"job.list":      {"GET /jobs/v2/query", "/jobs/v2/query"},
		"job.cancel":    {"POST /jobs/v2/{id}/cancel", "/jobs/v2/j1/cancel"},
		"twin.get":      {"GET /twins/{id}", "/twins/d1"},
		"twin.update":   {"PATCH /twins/{id}", "/twins/d1"},
		"twin.replace":  {"PUT /twins/{id}", "/twins/d1"},
		"method.invoke": {"POST /twins/{id}/methods", "/twins/d1/methods"},
		"device.get":    {"GET /devices/{id}", "/devices/d1"},
		"device.put":    {"PUT /devices/{id}", "/devices/d1"},
		"device.delete": {"DELETE /devices/{id}", "/devices/d1"},
		"device.list":   {"GET /devices", "/devices"},

		"configuration.list": {"GET /configurations", "/configurations"},
	}
	if len(routes) != len(kindClass) {
		t.Fatalf("%d kinds paced, %d checked", len(kindClass), len(routes))
	}
	for kind, r := range routes {
		method, _, _ := strings.Cut(r.pattern, " ")
		if got := callKind(method, r.path); got != kind {
			t.Errorf("%s %s is %q, want %q", method, r.path, got, kind)
		}
		if hub := httpapi.ThrottleClass(r.pattern); kindClass[kind] != hub || hub == "" {
			t.Errorf("%s is paced as %q; the hub throttles %s as %q", kind, kindClass[kind], r.pattern, hub)
		}
	}
}

// A method call costs its payload's chunks: 40 chunks/s on S1, so after the 3-chunk burst a
// 10 KB call (3 chunks) goes at once and the next waits 3/40 s.
func TestMethodCallsArePacedByPayload(t *testing.T) {
	clk := newFakeClock()
	f := &faultServer{reply: func(_ int, _ *http.Request, w http.ResponseWriter) {
		io.WriteString(w, `{"status":200,"payload":null}`)
	}}
	c := f.start(t, WithTier(mustTier(t, "S1", 1)), withClock(clk.Now, clk.Sleep))
	req, _ := http.NewRequest(http.MethodPost, "https://h/twins/d1/methods", strings.NewReader(strings.Repeat("x", 10*1024)))
	for range 2 {
		if err := c.pace(context.Background(), "method.invoke", req); err != nil {
			t.Fatal(err)
		}
	}
	want := time.Duration(math.Ceil(3.0 / 40 * float64(time.Second)))
	if len(clk.slept) != 1 || !near(clk.slept[0], want) {
		t.Errorf("waits %v, want [%v]", clk.slept, want)
	}
}
