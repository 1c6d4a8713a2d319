package jobs

import (
	"encoding/json"
	"time"

	"github.com/iotplan/iotplan/internal/hubapi"
)

// appendRow writes a devices.jobs row as encoding/json writes hubapi.DeviceJob (the same bytes;
// TestAppendRowMatchesEncodingJSON holds it to that), without reflection: a job over a million
// devices writes each device's row twice, and reflection-based encoding was a sixth of a twin
// job's CPU (BENCHMARKS.md). Rare parts (an error, a method response) go through
// encoding/json.
func appendRow(b []byte, r *hubapi.DeviceJob) []byte {
	b = append(b, `{"deviceId":`...)
	b = appendString(b, r.DeviceID)
	if r.ModuleID != "" {
		b = append(b, `,"moduleId":`...)
		b = appendString(b, r.ModuleID)
	}
	b = append(b, `,"jobId":`...)
	b = appendString(b, r.JobID)
	b = append(b, `,"jobType":`...)
	b = appendString(b, r.JobType)
	b = append(b, `,"status":`...)
	b = appendString(b, r.Status)
	b = appendTime(b, `,"startTimeUtc":`, r.StartTimeUTC)
	b = appendTime(b, `,"endTimeUtc":`, r.EndTimeUTC)
	b = appendTime(b, `,"createdDateTimeUtc":`, r.CreatedDateTimeUTC)
	b = appendTime(b, `,"lastUpdatedDateTimeUtc":`, r.LastUpdatedDateTimeUTC)
	if r.Outcome != nil {
		b = append(b, `,"outcome":`...)
		if r.Outcome.DeviceMethodResponse == nil {
			b = append(b, `{"deviceMethodResponse":null}`...)
		} else {
			b = appendJSON(b, r.Outcome)
		}
	}
	if r.Error != nil {
		b = append(b, `,"error":`...)
		b = appendJSON(b, r.Error)
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
		return appendJSON(append(b, member...), t) // MarshalJSON's own error path
	}
	b = append(append(b, member...), '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// appendString writes s as a JSON string: plain printable ASCII directly (ids and names
// usually are), anything else through encoding/json.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return appendJSON(b, s)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

func appendJSON(b []byte, v any) []byte {
	j, err := json.Marshal(v)
	if err != nil {
		return append(b, "null"...)
	}
	return append(b, j...)
}
