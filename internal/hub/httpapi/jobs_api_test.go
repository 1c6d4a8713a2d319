package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/amenzhinsky/iothub/iotservice"

	"github.com/iotplan/iotplan/internal/hubapi"
)

// TestJobsQueryFiltersAndPaging: GET /jobs/v2/query filters by jobType and jobStatus and pages
// with x-ms-max-item-count / x-ms-continuation (header absent on the last page), newest
// first; plus the create-time rules (duplicate id, id syntax, query length) and a twin job whose
// patch breaks the twin limits failing per device.
func TestJobsQueryFiltersAndPaging(t *testing.T) {
	h := newTestHub(t)
	seed(t, h, 3)
	future := time.Now().UTC().Add(24 * time.Hour)
	put := func(req hubapi.JobRequest) {
		t.Helper()
		if r := h.do("PUT", "/jobs/v2/"+req.JobID+apiV, "", req, nil); r.status != 200 {
			t.Fatalf("create %s: %d %s", req.JobID, r.status, r.body)
		}
	}
	twin := func(id string, start *time.Time, desired map[string]any) hubapi.JobRequest {
		return hubapi.JobRequest{JobID: id, Type: hubapi.JobTypeUpdateTwin, QueryCondition: "*", StartTime: start,
			UpdateTwin: &hubapi.TwinPatch{ETag: "*", Properties: &hubapi.TwinProperties{Desired: desired}}}
	}
	method := func(id string, start *time.Time) hubapi.JobRequest {
		return hubapi.JobRequest{JobID: id, Type: hubapi.JobTypeDeviceMethod, QueryCondition: "deviceId = 'none'", StartTime: start,
			CloudToDeviceMethod: &hubapi.CloudToDeviceMethod{MethodName: "m", ResponseTimeoutInSeconds: 5}}
	}
	for i := range 3 {
		put(twin(fmt.Sprintf("t-done-%d", i), nil, map[string]any{"v": i}))
	}
	put(twin("t-later", &future, map[string]any{"v": 9}))
	put(method("m-done", nil))
	put(method("m-later", &future))
	put(twin("t-toolarge", nil, map[string]any{"s": strings.Repeat("x", 4097)}))

	// Wait until the immediate jobs finished and the future ones are scheduled.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var all []hubapi.JobResponse
		h.do("GET", "/jobs/v2/query"+apiV, "", nil, nil).json(t, &all)
		done := 0
		for _, j := range all {
			if j.Status == "completed" || j.Status == "scheduled" {
				done++
			}
		}
		if done == 7 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("jobs did not settle: %+v", all)
		}
		time.Sleep(20 * time.Millisecond)
	}

	ids := func(query string, pageSize int) ([]string, int) {
		t.Helper()
		var out []string
		pages, tok := 0, ""
		for pages < 20 {
			hdr := map[string]string{"x-ms-max-item-count": fmt.Sprint(pageSize)}
			if tok != "" {
				hdr["x-ms-continuation"] = tok
			}
			r := h.do("GET", "/jobs/v2/query"+apiV+query, "", nil, hdr)
			if r.status != 200 || r.header.Get("x-ms-item-type") != "jobResponse" {
				t.Fatalf("query %s: %d %v %s", query, r.status, r.header, r.body)
			}
			var page []hubapi.JobResponse
			r.json(t, &page)
			if len(page) > pageSize {
				t.Fatalf("page of %d > %d", len(page), pageSize)
			}
			for _, j := range page {
				out = append(out, j.JobID)
			}
			pages++
			if tok = r.header.Get("x-ms-continuation"); tok == "" {
				break
			}
		}
		return out, pages
	}
	got, pages := ids("", 2)
	if len(got) != 7 || pages != 4 || got[0] != "t-toolarge" || got[6] != "t-done-0" {
		t.Fatalf("all jobs in %d pages: %v", pages, got)
	}
	got, _ = ids("&jobType=scheduleUpdateTwin&jobStatus=completed", 2)
	if strings.Join(got, ",") != "t-toolarge,t-done-2,t-done-1,t-done-0" {
		t.Fatalf("completed twin jobs: %v", got)
	}
	got, _ = ids("&jobStatus=scheduled", 100)
	if strings.Join(got, ",") != "m-later,t-later" {
		t.Fatalf("scheduled jobs: %v", got)
	}
	got, _ = ids("&jobType=scheduleDeviceMethod", 1)
	if strings.Join(got, ",") != "m-later,m-done" {
		t.Fatalf("method jobs: %v", got)
	}
	// The SDK pages through the same with its own loop.
	var sdk []string
	if err := h.sdk("iothubowner").QueryJobsV2(context.Background(), &iotservice.JobV2Query{Status: iotservice.JobStatusScheduled}, func(j *iotservice.JobV2) error {
		sdk = append(sdk, j.JobID)
		return nil
	}); err != nil || strings.Join(sdk, ",") != "m-later,t-later" {
		t.Fatalf("SDK scheduled jobs: %v %v", sdk, err)
	}

	// The over-long string failed per device with the registry's error, not the job.
	var jr hubapi.JobResponse
	h.do("GET", "/jobs/v2/t-toolarge"+apiV, "", nil, nil).json(t, &jr)
	if jr.DeviceJobStatistics == nil || jr.DeviceJobStatistics.FailedCount != 3 {
		t.Fatalf("t-toolarge: %+v", jr.DeviceJobStatistics)
	}
	r := h.do("POST", "/devices/query"+apiV, "", `{"query":"SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 't-toolarge'"}`, nil)
	var rows []hubapi.DeviceJob
	r.json(t, &rows)
	if len(rows) != 3 || rows[0].Status != "failed" || rows[0].Error == nil || rows[0].Error.Code != "ArgumentInvalid" {
		b, _ := json.Marshal(rows)
		t.Fatalf("device rows %s", b)
	}

	// Create-time rules.
	wantError(t, h.do("PUT", "/jobs/v2/t-later"+apiV, "", twin("t-later", &future, map[string]any{"v": 1}), nil), 409, "JobAlreadyExists", 409104)
	bad := twin("bad_id", nil, map[string]any{"v": 1})
	wantError(t, h.do("PUT", "/jobs/v2/bad_id"+apiV, "", bad, nil), 400, "ArgumentInvalid", 400004)
	long := twin("long", nil, map[string]any{"v": 1})
	long.QueryCondition = "deviceId IN [" + strings.Repeat("'x',", 2100) + "'y']"
	r = h.do("PUT", "/jobs/v2/long"+apiV, "", long, nil)
	if r.status != 400 && r.status != 412 {
		t.Fatalf("8,192-char queryCondition limit: %d %s", r.status, r.body)
	}
}

// TestTwinJobOverSizeLimit: a twin job whose patch would push desired over 32 KB fails each
// device with the registry's 403100 name in devices.jobs.
func TestTwinJobOverSizeLimit(t *testing.T) {
	h := newTestHub(t)
	seed(t, h, 2)
	desired := map[string]any{}
	for i := range 9 {
		desired[fmt.Sprint("k", i)] = strings.Repeat("v", 4000)
	}
	req := hubapi.JobRequest{JobID: "big", Type: hubapi.JobTypeUpdateTwin, QueryCondition: "*",
		UpdateTwin: &hubapi.TwinPatch{ETag: "*", Properties: &hubapi.TwinProperties{Desired: desired}}}
	if r := h.do("PUT", "/jobs/v2/big"+apiV, "", req, nil); r.status != 200 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var rows []hubapi.DeviceJob
		h.do("POST", "/devices/query"+apiV, "", `{"query":"SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 'big'"}`, nil).json(t, &rows)
		if len(rows) == 2 && rows[0].Status == "failed" && rows[1].Status == "failed" {
			if rows[0].Error == nil || rows[0].Error.Code != "DeviceModelMaxPropertiesExceeded" {
				t.Fatalf("row error %+v", rows[0].Error)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rows %+v", rows)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
