package hubclient_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/hubclient"
)

// EachDeviceJob hands rows over page by page (three pages for 250 rows), stops reading pages
// at limit, and stops at the first error of its callback.
func TestEachDeviceJobStreamsPages(t *testing.T) {
	t.Parallel()
	_, c := startHub(t)
	ctx := context.Background()
	now := time.Now().UTC()
	req := hubapi.JobRequest{
		JobID: "floors", Type: hubapi.JobTypeUpdateTwin,
		UpdateTwin:     &hubapi.TwinPatch{ETag: "*", Tags: map[string]any{"floor": 3}},
		QueryCondition: "tags.site = 'hq'", StartTime: &now, MaxExecutionTimeInSeconds: 60,
	}
	if _, err := c.CreateJob(ctx, req); err != nil {
		t.Fatal(err)
	}
	if j := waitJob(t, c, req.JobID); j.Status != hubapi.JobStatusCompleted {
		t.Fatalf("job %+v", j)
	}
	// The id is user text (iotplan jobs show ID): the builder quotes it.
	if q := hubclient.DeviceJobsQuery("o'brien", hubapi.DeviceJobFailed); !strings.Contains(q, `jobId = 'o\'brien' AND`) {
		t.Errorf("query %s does not quote the id", q)
	}
	q := hubclient.DeviceJobsQuery(req.JobID, "")

	read := func(limit int, stopAt int) (int, int, error) {
		before := c.Calls()["query"]
		n := 0
		err := c.EachDeviceJob(ctx, q, limit, func(dj hubapi.DeviceJob) error {
			if dj.JobID != req.JobID || dj.Status != hubapi.DeviceJobCompleted {
				t.Errorf("row %+v", dj)
			}
			n++
			if n == stopAt {
				return errStop
			}
			return nil
		})
		return n, c.Calls()["query"] - before, err
	}
	if n, pages, err := read(0, 0); err != nil || n != 250 || pages != 3 {
		t.Errorf("all rows: %d rows in %d pages, %v; want 250 in 3", n, pages, err)
	}
	if n, pages, err := read(120, 0); err != nil || n != 120 || pages != 2 {
		t.Errorf("limit 120: %d rows in %d pages, %v; want 120 in 2", n, pages, err)
	}
	if n, pages, err := read(0, 150); !errors.Is(err, errStop) || n != 150 || pages != 2 {
		t.Errorf("callback error at 150: %d rows in %d pages, %v; want 150 in 2 and the error", n, pages, err)
	}
	if n, _, err := read(0, 0); err != nil || n != 250 {
		t.Fatal(n, err)
	}
	// DeviceJobs, built on the same reader, keeps its answer.
	if rows, err := c.DeviceJobs(ctx, req.JobID, hubapi.DeviceJobFailed, 0); err != nil || rows == nil || len(rows) != 0 {
		t.Errorf("failed rows = %#v, %v; want an empty list", rows, err)
	}
}

var errStop = errors.New("stop")
