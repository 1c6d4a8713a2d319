package jobs

import (
	"time"

	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/jsonappend"
)

// appendRow writes a devices.jobs row as encoding/json writes hubapi.DeviceJob (the same bytes;
// TestAppendRowMatchesEncodingJSON holds it to that), without reflection: a job over a million
// devices writes each device's row twice, and reflection-based encoding was a sixth of a twin
// job's CPU (BENCHMARKS.md). Rare parts (an error, a method response) go through
// encoding/json.
func appendRow(b []byte, r *hubapi.DeviceJob) []byte {
	b = append(b, `{"deviceId":`...)
	b = jsonappend.String(b, r.DeviceID)
	if r.ModuleID != "" {
		b = append(b, `,"moduleId":`...)
		b = jsonappend.String(b, r.ModuleID)
	}
	b = append(b, `,"jobId":`...)
	b = jsonappend.String(b, r.JobID)
	b = append(b, `,"jobType":`...)
	b = jsonappend.String(b, r.JobType)
	b = append(b, `,"status":`...)
	b = jsonappend.String(b, r.Status)
	b = appendTime(b, `,"startTimeUtc":`, r.StartTimeUTC)
	b = appendTime(b, `,"endTimeUtc":`, r.EndTimeUTC)
	b = appendTime(b, `,"createdDateTimeUtc":`, r.CreatedDateTimeUTC)
	b = appendTime(b, `,"lastUpdatedDateTimeUtc":`, r.LastUpdatedDateTimeUTC)
	if r.Outcome != nil {
		b = append(b, `,"outcome":`...)
		if r.Outcome.DeviceMethodResponse == nil {
			b = append(b, `{"deviceMethodResponse":null}`...)
		} else {
			b = jsonappend.Value(b, r.Outcome)
		}
	}
	if r.Error != nil {
		b = append(b, `,"error":`...)
		b = jsonappend.Value(b, r.Error)
	}
	return append(b, '}')
}

// appendTime writes a timestamp member as time.Time's MarshalJSON does (RFC 3339 with
// nanoseconds, quoted); nil is left out (omitempty).
func appendTime(b []byte, member string, t *time.Time) []byte {
	if t == nil {
		return b
	}
	if y := t.Year(); y < 0 || y > 9999 {
		return jsonappend.Value(append(b, member...), t) // MarshalJSON's own error path
	}
	b = append(append(b, member...), '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}
