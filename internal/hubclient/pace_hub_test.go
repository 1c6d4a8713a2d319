package hubclient_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/iotplan/iotplan/internal/hub"
	"github.com/iotplan/iotplan/internal/hub/hubtest"
	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/hubclient"
	"github.com/iotplan/iotplan/internal/tier"
)

// Pacing against the real local hub over HTTPS, run with the same tier: a client paced to S1
// is never refused, and its pacing is what S1's 20 queries/min imply; the same burst from a
// client without a tier is refused, so the test can fail.
//
//	go test ./internal/hubclient -run TestPacedClientIsNeverThrottled          # 4 queries, ≈ 3 s
//	IOTPLAN_LONG_TESTS=1 go test ./internal/hubclient -run TestPacedClientIsNeverThrottledLong -v
//	                                                                           # 25 queries, ≈ 66 s
func TestPacedClientIsNeverThrottled(t *testing.T) {
	t.Parallel()
	pacedQueries(t, 4)
}

func TestPacedClientIsNeverThrottledLong(t *testing.T) {
	if os.Getenv("IOTPLAN_LONG_TESTS") != "1" {
		t.Skip("25 queries at S1's 20/min take ≈ 66 s: set IOTPLAN_LONG_TESTS=1")
	}
	t.Parallel()
	pacedQueries(t, 25)
}

// paceSlack bounds how far the measured pacing may be from the bucket's arithmetic: less by
// the time the queries of the burst took (the last waiting query's token comes that much
// sooner after it asks), more by timers firing late.
const paceSlack = time.Second

func pacedQueries(t *testing.T, n int) {
	s1, err := tier.Parse("S1", 1)
	if err != nil {
		t.Fatal(err)
	}
	// The paced client's burst of queries on S1 × 1 unit (pace.go): 3.
	clientBurst := int(hubclient.PaceBurst(s1.Rate(tier.Queries)))
	if clientBurst < 1 || clientBurst >= n {
		t.Fatalf("a burst of %d queries leaves none of %d to pace", clientBurst, n)
	}
	t.Run("paced", func(t *testing.T) {
		t.Parallel()
		h, _ := hubtest.StartWith(t, hub.Options{Tier: "S1"}, testFleet)
		c := hubtest.Client(t, h, hubclient.WithTier(s1))
		start := time.Now()
		if errs := sendQueries(c, n); len(errs) != 0 {
			t.Fatalf("paced client: %v", errs)
		}
		elapsed := time.Since(start)
		if refused := h.Throttle().Stats()[tier.Queries].Refused; refused != 0 || c.Throttled() != 0 {
			t.Errorf("the hub refused %d queries, the client saw %d 429s; want none", refused, c.Throttled())
		}
		paced, total := c.Paced()
		// The bucket's arithmetic: the last of n queries cannot start before (n − burst)/rate
		// after the first, and the queries after the burst spend that waiting, less the time
		// the burst's own queries took.
		minimum := time.Duration(float64(n-clientBurst) / s1.Rate(tier.Queries) * float64(time.Second))
		if elapsed < minimum {
			t.Errorf("%d queries took %v, want ≥ %v", n, elapsed, minimum)
		}
		if paced != n-clientBurst || total < minimum-paceSlack || total > minimum+paceSlack {
			t.Errorf("paced %d queries for %v (in %v), want %d for %v ± %v", paced, total, elapsed, n-clientBurst, minimum, paceSlack)
		}
		t.Logf("paced %d queries to %v's %.0f/min (%v)", paced, s1, s1.Rate(tier.Queries)*60, total.Round(time.Millisecond))
	})
	t.Run("unpaced", func(t *testing.T) {
		t.Parallel()
		h, _ := hubtest.StartWith(t, hub.Options{Tier: "S1"}, testFleet)
		c := hubtest.Client(t, h, hubclient.WithRetry(1, 0, 0)) // no tier, no retries
		errs := sendQueries(c, n)
		refused := h.Throttle().Stats()[tier.Queries].Refused
		if len(errs) == 0 || refused != int64(len(errs)) || c.Throttled() != len(errs) {
			t.Errorf("unpaced burst of %d: %d errors %v, hub refused %d, client saw %d 429s", n, len(errs), errs, refused, c.Throttled())
		}
		for _, err := range errs {
			if !hubclient.IsStatus(err, 429) {
				t.Errorf("want 429, got %v", err)
			}
		}
	})
}

// sendQueries sends n queries one after the other and returns the errors.
func sendQueries(c *hubclient.Client, n int) []error {
	var errs []error
	for i := range n {
		if _, err := c.Query(context.Background(), "SELECT COUNT() AS n FROM devices"); err != nil {
			errs = append(errs, fmt.Errorf("query %d: %w", i+1, err))
		}
	}
	return errs
}

// ActiveJobs lists the queued, scheduled and running jobs, oldest first, and no ended job.
// S2 × 10 units: 5 concurrent jobs, job device operations at 10/s (250 devices: 25 s running),
// and jobs operations fast enough for the test's calls.
func TestActiveJobs(t *testing.T) {
	t.Parallel()
	_, c := hubtest.StartWith(t, hub.Options{Tier: "S2", Units: 10}, testFleet)
	ctx := context.Background()
	done := createJob(t, c, "iotplan-done", "deviceId = 'pinger'", nil)
	waitJob(t, c, done)
	running := createJob(t, c, "iotplan-running", "tags.site = 'hq'", nil)
	waitStatus(t, c, running, hubapi.JobStatusRunning)
	later := time.Now().Add(time.Hour).UTC()
	scheduled := createJob(t, c, "iotplan-later", "deviceId = 'door-00001'", &later)

	if got := activeIDs(t, c); !slices.Equal(got, []string{running, scheduled}) {
		t.Errorf("active jobs %v, want [%s %s]", got, running, scheduled)
	}
	for _, id := range []string{running, scheduled} {
		if _, err := c.CancelJob(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if got := activeIDs(t, c); len(got) != 0 {
		t.Errorf("active jobs after cancelling: %v", got)
	}
}

// ActiveJobs lists exactly the jobs the hub counts against its job concurrency: on S1 (one
// job at a time) a scheduled job is listed and refuses a second job with 429004, and once it is
// cancelled nothing is listed and a new job is accepted.
func TestActiveJobsAreWhatTheHubCounts(t *testing.T) {
	t.Parallel()
	h, _ := hubtest.StartWith(t, hub.Options{Tier: "S1"}, testFleet)
	c := hubtest.Client(t, h, hubclient.WithRetry(1, 0, 0))
	later := time.Now().Add(time.Hour).UTC()
	scheduled := createJob(t, c, "iotplan-later", "deviceId = 'door-00001'", &later)
	if got := activeIDs(t, c); !slices.Equal(got, []string{scheduled}) || h.Throttle().MaxConcurrentJobs() != 1 {
		t.Fatalf("active jobs %v, want [%s]", got, scheduled)
	}
	_, err := c.CreateJob(context.Background(), twinJob("iotplan-second", "deviceId = 'pinger'", nil))
	if !hubclient.IsCode(err, 429004) {
		t.Fatalf("a second job with one slot taken: %v, want 429004", err)
	}
	if _, err := c.CancelJob(context.Background(), scheduled); err != nil {
		t.Fatal(err)
	}
	if got := activeIDs(t, c); len(got) != 0 {
		t.Fatalf("active jobs after cancelling: %v", got)
	}
	createJob(t, c, "iotplan-second", "deviceId = 'pinger'", nil)
}

func twinJob(id, condition string, start *time.Time) hubapi.JobRequest {
	return hubapi.JobRequest{JobID: id, Type: hubapi.JobTypeUpdateTwin, QueryCondition: condition, StartTime: start,
		UpdateTwin: &hubapi.TwinPatch{ETag: "*", Tags: map[string]any{"test": id}}, MaxExecutionTimeInSeconds: 600}
}

func createJob(t *testing.T, c *hubclient.Client, id, condition string, start *time.Time) string {
	t.Helper()
	if _, err := c.CreateJob(context.Background(), twinJob(id, condition, start)); err != nil {
		t.Fatal(err)
	}
	return id
}

func activeIDs(t *testing.T, c *hubclient.Client) []string {
	t.Helper()
	jobs, err := c.ActiveJobs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{}
	for _, j := range jobs {
		ids = append(ids, j.JobID)
	}
	return ids
}

func waitStatus(t *testing.T, c *hubclient.Client, id, status string) {
	t.Helper()
	for range 300 {
		j, err := c.GetJob(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if j.Status == status {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("job %s not %s in 15s", id, status)
}
