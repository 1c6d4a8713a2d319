// Package state keeps iotplan's state on the hub itself, so that every machine that talks to
// a hub (a laptop, a CI runner) sees the same: which resources iotplan manages there, the
// values it set, and an apply that has not finished.
//
// A named state lives in the twin of a device identity of its own, "iotplan-state-<name>"
// (DeviceID). tags.iotplanState (MarkerTag) holds a small header: format, name, lineage,
// serial and the lock. properties.desired.iotplanState holds the body: the State as JSON,
// gzip-compressed, base64-encoded and split into string values of at most ChunkSize
// characters, with the SHA-256 of the JSON. Both are written in one PATCH with If-Match, so the
// header and the body change together, and a writer that read a stale twin fails (412) instead
// of overwriting someone else's change. The marker tag also keeps state devices out of every
// target (ExcludeStateDevices). docs/state.md describes the format, the lock and its rules.
//
// Store reads a state (Read) and takes its lock (Lock); only the holder of the lock writes
// (Lock.Write) and releases it (Lock.Unlock); ForceUnlock removes a lock by its id. Records this
// package cannot trust are refused with sentinel errors (ErrForeign, ErrCorrupt,
// ErrUnsupportedFormat), never reset. Imports: internal/hubapi, internal/query,
// internal/clock, google/uuid, stdlib.
package state

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/query"
)

// Format is the version of the state's header and body this package writes and reads.
const Format = 1

// MarkerTag is the twin tag that holds a state's header. Its presence marks a device as a
// state device: ExcludeStateDevices keeps such devices out of every target.
const MarkerTag = "iotplanState"

// ExcludeStateDevices is the condition NOT IS_DEFINED(tags.iotplanState), which iotplan ANDs
// with every target so that no query or job selects a state device, not even target "*".
func ExcludeStateDevices() query.Expr {
	return query.Not(query.IsDefined(query.P("tags", MarkerTag)))
}

// State is what iotplan knows about the resources it manages on a hub, under one name.
type State struct {
	Format    int          `json:"format"`  // Format
	Name      string       `json:"name"`    // the state's name (CheckName)
	Lineage   string       `json:"lineage"` // a UUID made when the state is created
	Serial    int64        `json:"serial"`  // bumped by every write
	Resources []Resource   `json:"resources"`
	Apply     *ApplyRecord `json:"apply,omitempty"` // an apply that has not finished: resume it
	// LastApply is the last apply that finished, and Drift what 'iotplan drift' last found
	// (history.go).
	LastApply *LastApply   `json:"last_apply,omitempty"`
	Drift     *DriftRecord `json:"drift,omitempty"`
}

// Resource is one managed resource as last applied.
type Resource struct {
	Addr          string                     `json:"address"`        // "twin.doors", "method.lock"
	Kind          string                     `json:"kind"`           // "twin" or "method"
	Target        string                     `json:"target"`         // query text as sent
	Keys          map[string]json.RawMessage `json:"keys,omitempty"` // twin: managed key ("desired.floor", "tags.owner") → value iotplan set
	KeepOnRemoval bool                       `json:"keep_on_removal,omitempty"`
	// Sensitive names the keys (or sections: "desired") whose values come from sensitive
	// variables; `iotplan state show` does not print them. The target is hidden when
	// SensitiveTarget.
	Sensitive       []string `json:"sensitive,omitempty"`
	SensitiveTarget bool     `json:"sensitive_target,omitempty"`
	ConfigHash      string   `json:"config_hash,omitempty"`
	Method          string   `json:"method,omitempty"`
	Triggers        string   `json:"triggers,omitempty"` // hash of a method's triggers
	RunTag          string   `json:"run_tag,omitempty"`  // tag key recording a method's runs on devices
	Serial          int64    `json:"serial"`             // state serial when last applied
	// Rollout records how far the resource's rollout got when an apply stopped it; nil when
	// it has none or it completed.
	Rollout *RolloutRecord `json:"rollout,omitempty"`
}

// RolloutRecord is a rollout stopped by its abort rule (or an interrupted apply): the next
// plan of the same change resumes it at wave Completed+1, with the same deviceId bounds, and
// never runs the completed waves again.
type RolloutRecord struct {
	Key       string   `json:"key"`       // what the resource sets (reconcile's rollout key)
	Bounds    []string `json:"bounds"`    // the waves' exclusive upper deviceId bounds, but the last
	Completed int      `json:"completed"` // waves that completed
	Aborted   string   `json:"aborted,omitempty"`
}

// ApplyRecord is an apply in progress: the jobs it sends and what the state holds once it
// completes, so that a run interrupted half-way can be resumed.
type ApplyRecord struct {
	ID         string        `json:"id"`
	Started    time.Time     `json:"started"`
	PlanSerial int64         `json:"plan_serial"`
	Operation  string        `json:"operation"` // "apply", "destroy"
	Jobs       []RecordedJob `json:"jobs"`
	Resources  []Resource    `json:"resources"` // what the state holds once the apply completes
}

// RecordedJob is one job an apply sends (or sent), as sent.
type RecordedJob struct {
	Addr    string            `json:"address"`
	Step    string            `json:"step,omitempty"` // e.g. "mark", "invoke", "unmark"
	Request hubapi.JobRequest `json:"request"`
	Wave    int               `json:"wave,omitempty"` // the rollout wave (0: none)
}

// Resource returns the resource with address addr, or nil.
func (st *State) Resource(addr string) *Resource {
	for i := range st.Resources {
		if st.Resources[i].Addr == addr {
			return &st.Resources[i]
		}
	}
	return nil
}

// Sentinel errors; the errors returned wrap them with the device and what was wrong.
var (
	// ErrUnsupportedFormat: the state was written by a newer iotplan (a format this one does
	// not know).
	ErrUnsupportedFormat = errors.New("unsupported state format")
	// ErrForeign: the device iotplan-state-<name> does not hold this state: its tags lack the
	// marker, or the marker names another state.
	ErrForeign = errors.New("not an iotplan state device")
	// ErrCorrupt: the header or the body cannot be read (broken encoding, checksum mismatch,
	// header and body disagreeing).
	ErrCorrupt = errors.New("corrupt state")
	// ErrTooLarge: the state does not fit in a twin.
	ErrTooLarge = errors.New("state too large for a device twin")
	// ErrLocked: the state is locked by someone else (the error is a *LockedError).
	ErrLocked = errors.New("state locked")
	// ErrLockLost: the lock this process held is gone (force-unlocked, or taken over).
	ErrLockLost = errors.New("state lock lost")
	// ErrLockID: ForceUnlock was given an id that is not the lock's (or the state is not
	// locked).
	ErrLockID = errors.New("wrong lock id")
	// ErrLineage: a write of a State read from another lineage of the named state (deleted and
	// created again since it was read).
	ErrLineage = errors.New("state lineage mismatch")
)
