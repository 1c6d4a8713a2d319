package hubclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/iotplan/iotplan/internal/hubapi"
)

// maxPages bounds a paged read (10M rows at 100 per page): a hub that keeps sending
// continuation tokens cannot keep iotplan looping forever.
const maxPages = 100_000

// Query runs an IoT Hub query (build q with internal/query, never by concatenation) and returns
// every row, following x-ms-continuation across pages of at most 100 rows; each page is one
// "query" call. Rows are JSON objects decoded with float64 numbers.
func (c *Client) Query(ctx context.Context, q string) ([]map[string]any, error) {
	rows, _, err := c.QueryRows(ctx, q, 0)
	return rows, err
}

// QueryRows runs q and returns at most max rows (max <= 0: every row), reading pages only until
// it has them, and whether the hub has more rows than it returned (a further row in the last
// page read, or a continuation token). It is how a plan reads "the first page of groups" of a
// GROUP BY without TOP, whose meaning with GROUP BY Azure does not document.
func (c *Client) QueryRows(ctx context.Context, q string, max int) ([]map[string]any, bool, error) {
	raw, more, err := c.queryPages(ctx, q, max)
	if err != nil {
		return nil, false, err
	}
	rows := make([]map[string]any, 0, len(raw))
	for i, r := range raw {
		var m map[string]any
		if err := json.Unmarshal(r, &m); err != nil {
			return nil, false, fmt.Errorf("iot hub query: row %d is not a JSON object: %w", i+1, err)
		}
		rows = append(rows, m)
	}
	return rows, more, nil
}

// queryPages reads pages of q until limit rows (limit <= 0: all pages) and reports whether
// rows remain.
func (c *Client) queryPages(ctx context.Context, q string, limit int) ([]json.RawMessage, bool, error) {
	var all []json.RawMessage
	more := false
	err := c.eachPage(ctx, q, func(rows []json.RawMessage, next bool) (bool, error) {
		all = append(all, rows...)
		if limit > 0 && len(all) >= limit {
			more = len(all) > limit || next
			all = all[:limit]
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return nil, false, err
	}
	return all, more, nil
}

// eachPage runs q and calls fn with each page's rows as it arrives (at most 100 rows, the
// hub's null rows dropped) and whether the hub announced another page (x-ms-continuation);
// fn returns false to stop reading. Only one page is held at a time, so callers that stream
// rows (EachDeviceJob) read a job over a million devices in constant memory.
func (c *Client) eachPage(ctx context.Context, q string, fn func(rows []json.RawMessage, next bool) (bool, error)) error {
	token := ""
	seen := map[string]bool{}
	for page := 0; ; page++ {
		if page >= maxPages {
			return fmt.Errorf("iot hub query: more than %d pages; stopping", maxPages)
		}
		h := http.Header{}
		h.Set(hubapi.HeaderMaxItemCount, strconv.Itoa(hubapi.MaxPageSize))
		if token != "" {
			h.Set(hubapi.HeaderContinuation, token)
		}
		var rows []json.RawMessage
		hdr, err := c.do(ctx, request{
			kind: "query", method: http.MethodPost, path: "/devices/query",
			body: hubapi.QuerySpecification{Query: q}, headers: h,
		}, &rows)
		if err != nil {
			return err
		}
		kept := rows[:0]
		for _, r := range rows {
			if !bytes.Equal(bytes.TrimSpace(r), []byte("null")) {
				kept = append(kept, r)
			}
		}
		token = hdr.Get(hubapi.HeaderContinuation)
		if goOn, err := fn(kept, token != ""); err != nil || !goOn || token == "" {
			return err
		}
		if seen[token] {
			return fmt.Errorf("iot hub query: the hub repeated a continuation token; stopping")
		}
		seen[token] = true
	}
}

// DeviceJobs returns the per-device rows of a job from devices.jobs; statusFilter "" means
// every row, otherwise only rows with that device-job status (e.g. hubapi.DeviceJobFailed).
// limit > 0 stops after that many rows (a job over a million devices has a million rows: to
// read them all, stream them with EachDeviceJob).
func (c *Client) DeviceJobs(ctx context.Context, jobID, statusFilter string, limit int) ([]hubapi.DeviceJob, error) {
	return c.deviceJobRows(ctx, DeviceJobsQuery(jobID, statusFilter), limit)
}

func (c *Client) deviceJobRows(ctx context.Context, q string, limit int) ([]hubapi.DeviceJob, error) {
	out := []hubapi.DeviceJob{}
	err := c.EachDeviceJob(ctx, q, limit, func(dj hubapi.DeviceJob) error {
		out = append(out, dj)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// MethodErrors returns rows of a method job whose device was reached but answered with a
// status outside 200–299: the hub counts those devices as completed, iotplan does not.
// limit > 0 stops after that many rows.
func (c *Client) MethodErrors(ctx context.Context, jobID string, limit int) ([]hubapi.DeviceJob, error) {
	return c.deviceJobRows(ctx, MethodErrorsQuery(jobID), limit)
}
