package hubclient

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/query"
)

// DeviceJobsQuery is the query for the per-device rows of job jobID, of every status ("") or
// of one device-job status (e.g. hubapi.DeviceJobFailed):
//
//	SELECT * FROM devices.jobs WHERE devices.jobs.jobId = '…' [AND devices.jobs.status = '…']
//
// (https://learn.microsoft.com/azure/iot-hub/query-jobs).
// The id is user text: it is quoted by the query builder, never concatenated.
func DeviceJobsQuery(jobID, status string) string {
	where := query.Eq(query.P("devices", "jobs", "jobId"), jobID)
	if status != "" {
		where = query.And(where, query.Eq(query.P("devices", "jobs", "status"), status))
	}
	return query.Select(query.Jobs).Where(where).Query().String()
}

// MethodErrorsQuery is the query for the rows of method job jobID whose device answered with a
// status outside 200–299. The hub marks such a row "completed" (the device was reached) and
// carries the device's status in outcome.deviceMethodResponse
// (https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-direct-methods#response), so
// they are not among the failed rows.
func MethodErrorsQuery(jobID string) string {
	status := query.P("devices", "jobs", "outcome", "deviceMethodResponse", "status")
	where := query.And(
		query.Eq(query.P("devices", "jobs", "jobId"), jobID),
		query.Eq(query.P("devices", "jobs", "status"), hubapi.DeviceJobCompleted),
		query.Or(query.Lt(status, 200), query.Gt(status, 299)),
	)
	return query.Select(query.Jobs).Where(where).Query().String()
}

// EachDeviceJob runs q, a query over devices.jobs (DeviceJobsQuery, MethodErrorsQuery), and
// calls fn with each row as its page arrives: a job over a million devices is read in pages
// of 100, never held in memory at once. limit > 0 stops after that many rows. An error from
// fn stops the reading and is returned as it is.
func (c *Client) EachDeviceJob(ctx context.Context, q string, limit int, fn func(hubapi.DeviceJob) error) error {
	n := 0
	return c.eachPage(ctx, q, func(rows []json.RawMessage, _ bool) (bool, error) {
		for _, r := range rows {
			if limit > 0 && n >= limit {
				return false, nil
			}
			n++
			var dj hubapi.DeviceJob
			if err := json.Unmarshal(r, &dj); err != nil {
				return false, fmt.Errorf("iot hub query devices.jobs: row %d: %w", n, err)
			}
			if err := fn(dj); err != nil {
				return false, err
			}
		}
		return limit <= 0 || n < limit, nil
	})
}
