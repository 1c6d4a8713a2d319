// Package hubapi holds the JSON wire model of the Azure IoT Hub service REST API, shared by the
// local hub (which serves it) and iotplan's hub client (which sends it), with the hub's
// documented limits on it that both sides enforce (job requests here, twin documents in twin.go,
// with the size measure and key rules they are checked by). The field names and shapes follow
// the hub's swagger (api-version 2021-04-12, https://learn.microsoft.com/rest/api/iothub/service/jobs)
// and captured traffic. Keeping one copy means a shape mistake shows up in both directions;
// golden tests guard it against the documented JSON.
package hubapi

import (
	"encoding/json"
	"strings"
	"time"
)

// APIVersionDate reports whether v is an api-version the way IoT Hub names them: a real
// calendar date, "2021-04-12", optionally followed by "-preview"
// (https://learn.microsoft.com/rest/api/iothub/). It returns the date part.
func APIVersionDate(v string) (string, bool) {
	base := strings.TrimSuffix(v, "-preview")
	_, err := time.Parse("2006-01-02", base)
	return base, err == nil
}

// APIVersion is the api-version iotplan sends; the local hub accepts MinAPIVersion..APIVersion.
const (
	APIVersion    = "2021-04-12"
	MinAPIVersion = "2018-06-30"
)

// Limits of a job request that both sides enforce: the local hub refuses, iotplan never sends.
const (
	// MaxJobIDLength: a job id is 1 to 64 US-ASCII letters, digits and dashes
	// (https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-jobs).
	MaxJobIDLength = 64
	// MaxJobStartAhead: a job's startTime may be at most 168 hours after it is created. Azure
	// documents no limit; a run against a live hub saw a later one refused ("Must be within
	// 168 hours"), so the local hub refuses it too and plans refuse such a start_time.
	MaxJobStartAhead = 168 * time.Hour
)

// Job types (JobRequest.Type, JobResponse.Type, DeviceJob.JobType).
const (
	JobTypeUpdateTwin   = "scheduleUpdateTwin"
	JobTypeDeviceMethod = "scheduleDeviceMethod"
)

// Job-level statuses (JobResponse.Status). Note the two L's in "cancelled". "enqueued" is
// "in the queue for execution" and "queued" its synonym (Azure's C# SDK,
// https://github.com/Azure/azure-iot-sdk-csharp/blob/main/iothub/service/src/Jobs/JobStatus.cs);
// hubs answer "queued", which is what the local hub reports.
const (
	JobStatusQueued    = "queued"
	JobStatusEnqueued  = "enqueued"
	JobStatusScheduled = "scheduled"
	JobStatusRunning   = "running"
	JobStatusCompleted = "completed"
	JobStatusFailed    = "failed"
	JobStatusCancelled = "cancelled"
)

// JobEnded reports whether a job status is final: completed, failed and cancelled are
// (https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-jobs); every other status holds one
// of the hub's job slots.
func JobEnded(status string) bool {
	return status == JobStatusCompleted || status == JobStatusFailed || status == JobStatusCancelled
}

// ActiveJobStatuses are the job statuses that hold one of the tier's concurrent-job slots, in
// lifecycle order ("enqueued" is the C# SDK's synonym of "queued"; both are asked for, since
// the docs do not say which one hubs report).
var ActiveJobStatuses = []string{JobStatusEnqueued, JobStatusQueued, JobStatusScheduled, JobStatusRunning}

// Device-job statuses (DeviceJob.Status). Note the single L in "canceled": the hub spells
// the two enums differently and SDKs depend on it.
const (
	DeviceJobPending   = "pending"
	DeviceJobScheduled = "scheduled"
	DeviceJobRunning   = "running"
	DeviceJobCompleted = "completed"
	DeviceJobFailed    = "failed"
	DeviceJobCanceled  = "canceled"
)

// CloudToDeviceMethod is the body of POST /twins/{id}/methods and the method part of a job.
type CloudToDeviceMethod struct {
	MethodName               string          `json:"methodName"`
	Payload                  json.RawMessage `json:"payload"`
	ResponseTimeoutInSeconds int             `json:"responseTimeoutInSeconds,omitempty"`
	ConnectTimeoutInSeconds  int             `json:"connectTimeoutInSeconds,omitempty"`
}

// CloudToDeviceMethodResult is what a device answered.
type CloudToDeviceMethodResult struct {
	Status  int             `json:"status"`
	Payload json.RawMessage `json:"payload"`
}

// TwinProperties holds the desired and reported sections of a twin.
type TwinProperties struct {
	Desired  map[string]any `json:"desired,omitempty"`
	Reported map[string]any `json:"reported,omitempty"`
}

// TwinPatch is the updateTwin part of a scheduleUpdateTwin job (and the body of PATCH /twins/{id}).
type TwinPatch struct {
	DeviceID   *string         `json:"deviceId,omitempty"`
	ETag       string          `json:"etag,omitempty"`
	Tags       map[string]any  `json:"tags,omitempty"`
	Properties *TwinProperties `json:"properties,omitempty"`
}

// JobRequest is the body of PUT /jobs/v2/{jobId}.
type JobRequest struct {
	JobID                     string               `json:"jobId"`
	Type                      string               `json:"type"`
	CloudToDeviceMethod       *CloudToDeviceMethod `json:"cloudToDeviceMethod,omitempty"`
	UpdateTwin                *TwinPatch           `json:"updateTwin,omitempty"`
	QueryCondition            string               `json:"queryCondition,omitempty"`
	StartTime                 *time.Time           `json:"startTime,omitempty"`
	MaxExecutionTimeInSeconds int64                `json:"maxExecutionTimeInSeconds,omitempty"`
}

// DeviceJobStatistics counts the devices of a job by state.
type DeviceJobStatistics struct {
	DeviceCount    int `json:"deviceCount"`
	FailedCount    int `json:"failedCount"`
	SucceededCount int `json:"succeededCount"`
	RunningCount   int `json:"runningCount"`
	PendingCount   int `json:"pendingCount"`
}

// JobResponse is what GET /jobs/v2/{id}, cancel and the jobs query return.
type JobResponse struct {
	JobID                     string               `json:"jobId"`
	QueryCondition            string               `json:"queryCondition,omitempty"`
	CreatedTime               *time.Time           `json:"createdTime,omitempty"`
	StartTime                 *time.Time           `json:"startTime,omitempty"`
	EndTime                   *time.Time           `json:"endTime,omitempty"`
	MaxExecutionTimeInSeconds int64                `json:"maxExecutionTimeInSeconds,omitempty"`
	Type                      string               `json:"type"`
	CloudToDeviceMethod       *CloudToDeviceMethod `json:"cloudToDeviceMethod,omitempty"`
	UpdateTwin                *TwinPatch           `json:"updateTwin,omitempty"`
	Status                    string               `json:"status"`
	FailureReason             string               `json:"failureReason,omitempty"`
	StatusMessage             string               `json:"statusMessage,omitempty"`
	DeviceJobStatistics       *DeviceJobStatistics `json:"deviceJobStatistics,omitempty"`
}

// DeviceJobError is the error of one device in a job.
type DeviceJobError struct {
	Code        string `json:"code"`
	Description string `json:"description"`
}

// DeviceJobOutcome is the result of one device in a method job.
type DeviceJobOutcome struct {
	DeviceMethodResponse *CloudToDeviceMethodResult `json:"deviceMethodResponse"`
}

// DeviceJob is one row of `SELECT * FROM devices.jobs`.
type DeviceJob struct {
	DeviceID               string            `json:"deviceId"`
	ModuleID               string            `json:"moduleId,omitempty"`
	JobID                  string            `json:"jobId"`
	JobType                string            `json:"jobType"`
	Status                 string            `json:"status"`
	StartTimeUTC           *time.Time        `json:"startTimeUtc,omitempty"`
	EndTimeUTC             *time.Time        `json:"endTimeUtc,omitempty"`
	CreatedDateTimeUTC     *time.Time        `json:"createdDateTimeUtc,omitempty"`
	LastUpdatedDateTimeUTC *time.Time        `json:"lastUpdatedDateTimeUtc,omitempty"`
	Outcome                *DeviceJobOutcome `json:"outcome,omitempty"`
	Error                  *DeviceJobError   `json:"error,omitempty"`
}

// QuerySpecification is the body of POST /devices/query. The hub matches the "query" key
// case-insensitively (amenzhinsky sends "Query"); encoding/json does the same on decode.
type QuerySpecification struct {
	Query string `json:"query"`
}

// Paging and result-type headers of query endpoints.
const (
	HeaderMaxItemCount = "x-ms-max-item-count"
	HeaderContinuation = "x-ms-continuation"
	HeaderItemType     = "x-ms-item-type"
	HeaderErrorCode    = "iothub-errorcode"
	MaxPageSize        = 100
)

// ErrorBody is the hub's error envelope. Message is either "ErrorCode:<Name>;<text>" (legacy
// format: registry, twins, jobs, queries) or a JSON-encoded object with errorCode (direct methods).
type ErrorBody struct {
	Message          string `json:"Message"`
	ExceptionMessage string `json:"ExceptionMessage"`
}

// ErrorDetail is the JSON object carried inside ErrorBody.Message by the newer format.
type ErrorDetail struct {
	ErrorCode    int            `json:"errorCode"`
	TrackingID   string         `json:"trackingId"`
	Message      string         `json:"message"`
	Info         map[string]any `json:"info"`
	TimestampUTC string         `json:"timestampUtc"`
}
