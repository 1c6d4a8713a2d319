package state

import (
	"time"
)

// What the state remembers of past runs, for 'iotplan status' and 'iotplan drift': small
// records, because the whole state lives in one twin's desired properties (32 KB, see
// docs/state.md). LastApply names the jobs of the last apply that finished — ids and types
// only, not their requests: the hub keeps each job's results for 30 days
// (https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-jobs), and status reads them
// there. Written by the apply's Finish, it replaces the ApplyRecord, which already held every
// job with its whole request, so the state never grows by finishing an apply. DriftRecord
// keeps at most MaxDriftKeys keys.

// LastApply is the last apply that finished: its id, operation, when, and the jobs it ran.
type LastApply struct {
	ID        string    `json:"id"`
	Operation string    `json:"operation"` // "apply", "destroy"
	Finished  time.Time `json:"finished"`
	Jobs      []LastJob `json:"jobs,omitempty"`
}

// LastJob is one job of the last apply: the resource it belongs to, its id and its type
// (scheduleUpdateTwin, scheduleDeviceMethod).
type LastJob struct {
	Addr  string `json:"address"`
	JobID string `json:"job_id"`
	Type  string `json:"type"`
}

// LastApplyOf is what the state keeps of rec once it finished at finished.
func LastApplyOf(rec *ApplyRecord, finished time.Time) *LastApply {
	if rec == nil {
		return nil
	}
	la := &LastApply{ID: rec.ID, Operation: rec.Operation, Finished: finished.UTC()}
	for _, j := range rec.Jobs {
		la.Jobs = append(la.Jobs, LastJob{Addr: j.Addr, JobID: j.Request.JobID, Type: j.Request.Type})
	}
	return la
}

// JobsOf are the jobs of the resource at addr, in the order the apply ran them.
func (la *LastApply) JobsOf(addr string) []LastJob {
	if la == nil {
		return nil
	}
	var out []LastJob
	for _, j := range la.Jobs {
		if j.Addr == addr {
			out = append(out, j)
		}
	}
	return out
}

// MaxDriftKeys bounds the keys a DriftRecord holds; the rest are only counted (More).
const MaxDriftKeys = 100

// DriftRecord is what 'iotplan drift' found when it last ran: the managed keys that targeted
// devices no longer hold with the value iotplan set. Keys without drift are not listed: a
// record with no keys says that none had drifted at Observed.
type DriftRecord struct {
	Observed time.Time  `json:"observed"`
	Keys     []DriftKey `json:"keys,omitempty"`
	// More counts the drifted keys beyond MaxDriftKeys, not listed.
	More int `json:"more,omitempty"`
}

// DriftKey is one drifted key of one resource: how many targeted devices no longer hold the
// value iotplan set, and the latest change of the key among them (desired properties only:
// tags carry no $metadata; nil when unknown).
type DriftKey struct {
	Addr        string     `json:"address"`
	Key         string     `json:"key"`
	Devices     int        `json:"devices"`
	LastUpdated *time.Time `json:"last_updated,omitempty"`
}

// NewDriftRecord keeps the first MaxDriftKeys of keys and counts the others.
func NewDriftRecord(observed time.Time, keys []DriftKey) *DriftRecord {
	rec := &DriftRecord{Observed: observed.UTC()}
	if len(keys) > MaxDriftKeys {
		rec.More = len(keys) - MaxDriftKeys
		keys = keys[:MaxDriftKeys]
	}
	rec.Keys = append([]DriftKey(nil), keys...)
	return rec
}
