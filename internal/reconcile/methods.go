package reconcile

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/query"
)

// Methods that run once. A method resource with triggers runs on a device only when the
// triggers differ from those of the device's last successful run. The record of runs lives on
// the devices, so that it scales to a million of them without a per-device call: a tag
//
//	tags.iotplanRuns.<run tag> = { "t": <triggers hash>, "a": <apply id> }
//
// written by twin jobs, and selected by query. An apply of a run-once method is three steps:
//
//  1. mark: a twin job sets the tag on the targeted devices whose "t" differs from the
//     triggers hash (the devices to run on), with this apply's id in "a";
//  2. invoke: the method job runs on the devices whose "a" is this apply's id — exactly the
//     marked ones, even if the target's membership changes meanwhile;
//  3. unmark: the devices that failed (devices.jobs: failed rows and answers outside 200–299)
//     lose the tag, so the next apply runs them again. When more failed than unmarkBound,
//     every device of this apply loses it (one job instead of thousands of id lists): they
//     all run again next time, and apply says so.
//
// Marking first is what makes a crash safe: a resumed apply (apply.go) re-runs the steps with
// the same job ids, and a device never runs the method twice for one apply.

// RunsTag is the tag under which devices record their method runs.
const RunsTag = "iotplanRuns"

// unmarkBound is the most failed devices apply reads and unmarks one by one.
const unmarkBound = 1000

// Steps of a resource's jobs (PlannedJob.Step).
const (
	StepMark   = "mark"
	StepInvoke = "invoke"
	StepUnmark = "unmark"
	StepRemove = "remove"
)

// runTag is the key of a run-once method's record on devices: derived from the state and the
// address, so two states (or two methods) never share one.
func runTag(stateName, addr string) string {
	sum := sha256.Sum256([]byte(stateName + "\x00" + addr))
	return "r" + hex.EncodeToString(sum[:])[:12]
}

// triggersHash identifies a triggers value: the SHA-256 of its canonical JSON.
func triggersHash(v any) (string, error) {
	c, err := Canonical(v)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(valueKey(c)))
	return hex.EncodeToString(sum[:])[:16], nil
}

func runPath(tag, field string) query.Path { return query.P("tags", RunsTag, tag, field) }

// markCondition selects the targeted devices whose recorded triggers differ from hash (or that
// have no record): the fixed-size typed drift term of the record's "t" (conditions.go).
func markCondition(target query.Expr, tag, hash string) query.Expr {
	l := Leaf{Section: SectionTags, Keys: []string{RunsTag, tag, "t"}, Value: hash}
	t := typedTerm(l, nil, false, true)
	return query.And(target, t.expr)
}

// invokeCondition selects the devices marked by apply id.
func invokeCondition(tag, applyID string) query.Expr {
	return query.Eq(runPath(tag, "a"), applyID)
}

// markPatch records a run of hash by apply id on a device.
func markPatch(tag, hash, applyID string) *hubapi.TwinPatch {
	return &hubapi.TwinPatch{ETag: "*", Tags: map[string]any{RunsTag: map[string]any{tag: map[string]any{"t": hash, "a": applyID}}}}
}

// unmarkPatch removes a device's record.
func unmarkPatch(tag string) *hubapi.TwinPatch {
	return &hubapi.TwinPatch{ETag: "*", Tags: map[string]any{RunsTag: map[string]any{tag: nil}}}
}

// unmarkConditions are the conditions of the unmark step's jobs: the failed devices of this
// apply, as id lists short enough for the hub's 8,192 characters; or, with more than
// unmarkBound of them (all == true), every device this apply marked.
func unmarkConditions(tag, applyID string, failed []string, all bool) []query.Expr {
	marked := invokeCondition(tag, applyID)
	if all {
		return []query.Expr{marked}
	}
	var out []query.Expr
	for len(failed) > 0 {
		n := len(failed)
		for n > 1 && query.CheckCondition(query.And(query.In(query.P("deviceId"), failed[:n]), marked)) != nil {
			n /= 2
		}
		out = append(out, query.And(query.In(query.P("deviceId"), failed[:n]), marked))
		failed = failed[n:]
	}
	return out
}

// runOnceNote says what a run-once method's plan means and where its records are.
func runOnceNote(tag string, done, targeted int) string {
	return fmt.Sprintf("runs once per device for these triggers (recorded in tags.%s.%s): %s of %s targeted devices already ran with them",
		RunsTag, tag, countText(done), countText(targeted))
}
