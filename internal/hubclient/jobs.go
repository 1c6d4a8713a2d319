package hubclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/iotplan/iotplan/internal/hubapi"
)

func jobPath(jobID string, suffix ...string) string {
	p := "/jobs/v2/" + url.PathEscape(jobID)
	for _, s := range suffix {
		p += "/" + s
	}
	return p
}

// CreateJob schedules a v2 job (PUT /jobs/v2/{jobId}). A 429 ThrottlingException (the hub
// refused: throttled) is retried with backoff; a 429004 ThrottlingMaxActiveJobCountExceeded
// (every job slot is held, possibly for days by a scheduled job) is returned at once, for the
// caller to wait for a slot (reconcile.Apply does, and says which jobs hold them). When the
// outcome is unknown (a transport error or
// a 5xx after the request may have landed), the job is looked up with GET: if it exists with
// the same type it is returned as created, if it does not the PUT is sent again — never
// blindly. The returned response is the hub's (minimal: jobId, type, status "queued").
func (c *Client) CreateJob(ctx context.Context, req hubapi.JobRequest) (hubapi.JobResponse, error) {
	if req.JobID == "" {
		return hubapi.JobResponse{}, errors.New("iot hub job.create: the job has no id")
	}
	var lastErr error
	ambiguous := false // a previous attempt may have created the job
	for n := 1; n <= c.retry.attempts; n++ {
		if n > 1 {
			var ra time.Duration
			var he *Error
			if errors.As(lastErr, &he) {
				ra = he.retryAfter
			}
			if err := c.wait(ctx, c.retry.delay(n-1, ra)); err != nil {
				return hubapi.JobResponse{}, err
			}
		}
		var res hubapi.JobResponse
		_, err := c.do(ctx, request{kind: "job.create", method: http.MethodPut, path: jobPath(req.JobID), body: req}, &res)
		if err == nil {
			return res, nil
		}
		if ctx.Err() != nil {
			return hubapi.JobResponse{}, err
		}
		lastErr = err
		var he *Error
		switch {
		case errors.As(err, &he) && he.Code == hubapi.CodeTooManyActiveJobs:
			return hubapi.JobResponse{}, err
		case errors.As(err, &he) && he.Status == http.StatusTooManyRequests:
			continue // refused before it was accepted: safe to send again after a pause
		case errors.As(err, &he) && he.Status == http.StatusConflict && ambiguous:
			// Our earlier attempt landed after all; fall through to the GET check.
		case errors.As(err, &he) && he.Status < 500:
			return hubapi.JobResponse{}, err
		}
		ambiguous = true
		got, gerr := c.GetJob(ctx, req.JobID)
		switch {
		case gerr == nil && got.Type == req.Type:
			return got, nil
		case gerr == nil:
			return hubapi.JobResponse{}, fmt.Errorf("iot hub job.create: job id %q already belongs to a %s job", req.JobID, got.Type)
		case IsStatus(gerr, http.StatusNotFound):
			continue // it did not land: sending it again is safe
		default:
			return hubapi.JobResponse{}, err
		}
	}
	return hubapi.JobResponse{}, lastErr
}

// GetJob reads a job (GET /jobs/v2/{jobId}); a missing job is a 404 *Error (JobNotFound).
// Azure has been reported to answer a GET of an id it does not have with 200 and
// {"type":"unknown","status":"unknown"} (the swagger's JobResponse enums include "unknown";
// mwalser/terraform-provider-iothub CONCEPT.md, "verified against a real hub"): that answer is
// the same 404 here, so that callers deciding whether a job exists (resume, create retries)
// never take it for a job.
func (c *Client) GetJob(ctx context.Context, jobID string) (hubapi.JobResponse, error) {
	var res hubapi.JobResponse
	if _, err := c.do(ctx, request{kind: "job.get", method: http.MethodGet, path: jobPath(jobID)}, &res); err != nil {
		return res, err
	}
	if res.Type == jobUnknown || res.Status == jobUnknown {
		return hubapi.JobResponse{}, &Error{Status: http.StatusNotFound, Code: hubapi.CodeJobNotFound, Name: "JobNotFound", Op: "job.get",
			Message: fmt.Sprintf("the hub answered job %q with type %q and status %q: it has no such job", jobID, res.Type, res.Status)}
	}
	return res, nil
}

// jobUnknown is the "unknown" of the swagger's JobResponse type and status enums.
const jobUnknown = "unknown"

// CancelJob cancels a job (POST /jobs/v2/{jobId}/cancel).
func (c *Client) CancelJob(ctx context.Context, jobID string) (hubapi.JobResponse, error) {
	var res hubapi.JobResponse
	_, err := c.do(ctx, request{kind: "job.cancel", method: http.MethodPost, path: jobPath(jobID, "cancel")}, &res)
	return res, err
}

// ListJobs lists v2 jobs (GET /jobs/v2/query), following continuation pages; jobType and
// status filter when not "".
func (c *Client) ListJobs(ctx context.Context, jobType, status string) ([]hubapi.JobResponse, error) {
	var all []hubapi.JobResponse
	token := ""
	for page := 0; page < maxPages; page++ {
		h := http.Header{}
		h.Set(hubapi.HeaderMaxItemCount, strconv.Itoa(hubapi.MaxPageSize))
		if token != "" {
			h.Set(hubapi.HeaderContinuation, token)
		}
		params := url.Values{}
		if jobType != "" {
			params.Set("jobType", jobType)
		}
		if status != "" {
			params.Set("jobStatus", status)
		}
		var rows []json.RawMessage
		hdr, err := c.do(ctx, request{kind: "job.list", method: http.MethodGet, path: "/jobs/v2/query", params: params, headers: h}, &rows)
		if err != nil {
			return nil, err
		}
		for i, r := range rows {
			var j hubapi.JobResponse
			if err := json.Unmarshal(r, &j); err != nil {
				return nil, fmt.Errorf("iot hub job.list: row %d: %w", i+1, err)
			}
			all = append(all, j)
		}
		next := hdr.Get(hubapi.HeaderContinuation)
		if next == "" || next == token {
			return all, nil
		}
		token = next
	}
	return nil, fmt.Errorf("iot hub job.list: more than %d pages; stopping", maxPages)
}

// ListJobsIn lists the v2 jobs of type jobType ("" = any) in any of statuses, one ListJobs
// per status, each job once: a job listed under two statuses (it changed status between the
// reads) keeps the record of the later read, in the place of its first. With no status it is
// ListJobs(ctx, jobType, ""): every job.
func (c *Client) ListJobsIn(ctx context.Context, jobType string, statuses ...string) ([]hubapi.JobResponse, error) {
	if len(statuses) == 0 {
		statuses = []string{""}
	}
	var all []hubapi.JobResponse
	at := map[string]int{} // job id → index in all
	for _, status := range statuses {
		jobs, err := c.ListJobs(ctx, jobType, status)
		if err != nil {
			return nil, err
		}
		for _, j := range jobs {
			if i, ok := at[j.JobID]; ok {
				all[i] = j
				continue
			}
			at[j.JobID] = len(all)
			all = append(all, j)
		}
	}
	return all, nil
}

// ActiveJobs returns the jobs that hold one of the hub's concurrent-job slots (as many as
// tier.Tier.MaxConcurrentJobs), oldest first (by createdTime, then jobId).
//
// Which statuses: every job that has not ended — "queued" (and its synonym "enqueued"),
// "scheduled" (a future startTime) and "running"; not "completed", "failed" or "cancelled".
// That is what the local hub counts before it answers 429004 ThrottlingMaxActiveJobCountExceeded
// (internal/hub/jobs: every job not in a final status). Azure does not document whether a
// scheduled job takes a slot; its own Go client's tests cancel their future-dated job because
// "free-tier accounts support only one running job"
// (https://github.com/amenzhinsky/iothub/blob/master/iotservice/client_test.go), so it is
// counted.
//
// It reads GET /jobs/v2/query once per status of hubapi.ActiveJobStatuses (ListJobsIn), so
// the result is a snapshot: a job that changes status between two reads is listed once, with
// its later record (the statuses are read in lifecycle order); one created meanwhile may be
// missing.
func (c *Client) ActiveJobs(ctx context.Context) ([]hubapi.JobResponse, error) {
	out, err := c.ListJobsIn(ctx, "", hubapi.ActiveJobStatuses...)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b hubapi.JobResponse) int {
		if c := compareTimes(a.CreatedTime, b.CreatedTime); c != 0 {
			return c
		}
		return strings.Compare(a.JobID, b.JobID)
	})
	return out, nil
}

// compareTimes orders times, a missing one last.
func compareTimes(a, b *time.Time) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return 1
	case b == nil:
		return -1
	}
	return a.Compare(*b)
}
