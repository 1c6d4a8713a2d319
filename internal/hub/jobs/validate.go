package jobs

import (
	"github.com/iotplan/iotplan/internal/hub/huberr"
	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/query"
)

// validate checks what the hub rejects synchronously at PUT /jobs/v2/{id}. The query condition
// is only length-checked here: Azure parses it when the job runs and fails the job then.
func validate(req *hubapi.JobRequest) error {
	if !validJobID(req.JobID) {
		return huberr.New(huberr.ArgumentInvalid,
			"JobId '%s' is invalid: it must be 1 to %d characters long and contain only US-ASCII letters, digits and '-'.",
			truncate(req.JobID, 80), MaxJobIDLength)
	}
	if req.MaxExecutionTimeInSeconds < 0 {
		// Azure documents no answer; a negative bound is refused rather than guessed at.
		return huberr.New(huberr.ArgumentInvalid, "maxExecutionTimeInSeconds must not be negative.")
	}
	if n := query.TextLength(req.QueryCondition); n > MaxQueryConditionLength {
		return huberr.New(huberr.ArgumentInvalid,
			"queryCondition is %d characters long; the maximum is %d.", n, MaxQueryConditionLength)
	}
	switch req.Type {
	case hubapi.JobTypeUpdateTwin:
		t := req.UpdateTwin
		if t == nil {
			return huberr.New(huberr.ArgumentNull, "updateTwin is required for a %s job.", req.Type)
		}
		if t.ETag != "*" {
			return huberr.New(huberr.ArgumentInvalid,
				"updateTwin.etag must be '*': a %s job is a forced update and accepts no other etag.", req.Type)
		}
		if len(t.Tags) == 0 && (t.Properties == nil || len(t.Properties.Desired) == 0) {
			return huberr.New(huberr.ArgumentInvalid, "updateTwin must change tags or properties.desired.")
		}
		if req.CloudToDeviceMethod != nil {
			return huberr.New(huberr.ArgumentInvalid, "cloudToDeviceMethod is not allowed in a %s job.", req.Type)
		}
	case hubapi.JobTypeDeviceMethod:
		c := req.CloudToDeviceMethod
		if c == nil || c.MethodName == "" {
			return huberr.New(huberr.ArgumentNull, "cloudToDeviceMethod.methodName is required for a %s job.", req.Type)
		}
		if t := c.ResponseTimeoutInSeconds; t != 0 && (t < 5 || t > 300) {
			return huberr.New(huberr.ArgumentInvalid, "responseTimeoutInSeconds must be within [5; 300].")
		}
		if t := c.ConnectTimeoutInSeconds; t < 0 || t > 300 {
			return huberr.New(huberr.ArgumentInvalid, "connectTimeoutInSeconds must be within [0; 300].")
		}
		if req.UpdateTwin != nil {
			return huberr.New(huberr.ArgumentInvalid, "updateTwin is not allowed in a %s job.", req.Type)
		}
	default:
		// What Azure answers for e.g. "scheduleDirectMethod" (MicrosoftDocs/azure-docs#29484: GenericBadRequest).
		return huberr.New(huberr.GenericBadRequest, "BadRequest")
	}
	return nil
}

func validJobID(id string) bool {
	if id == "" || len(id) > MaxJobIDLength {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
