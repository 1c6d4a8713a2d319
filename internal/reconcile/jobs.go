package reconcile

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/query"
)

// jobSpec is one update job Read will count: the keys its patch sets and the condition that
// selects the devices where any of them differs.
type jobSpec struct {
	leaves []Leaf
	cond   query.Expr
	// whole: the condition is the target itself, because a differing value cannot be
	// selected by any documented condition (reason says which).
	whole  bool
	reason string
	// uncertain: a typed term over groups not all read may miss values no condition can
	// select; Diff compares the count with the key groups to find out.
	uncertain bool
	forms     map[string]string // term form per key name
}

// planJobs chooses the update jobs of a twin resource's drifted keys. Normally one job: the
// target AND the OR of the keys' drift terms, each in the list form when its groups were all
// read. A condition over the hub's 8,192-character limit is rewritten with the fixed-size
// typed form; if it is still too long the keys are split over several jobs (each job's patch
// sets only its keys, so a device drifted in two keys gets two patches, each correct). A key
// whose value no condition can select (an array, observed or declared; an empty object) makes
// the job select the whole target.
func planJobs(target query.Expr, drifted []Leaf, keys map[string]*KeyObserved) []jobSpec {
	target = normTarget(target)
	terms, reason := driftTerms(drifted, keys, false)
	if reason != "" {
		return []jobSpec{wholeTarget(target, drifted, reason)}
	}
	if s, ok := oneJob(target, drifted, terms); ok {
		return []jobSpec{s}
	}
	typed, _ := driftTerms(drifted, keys, true)
	if s, ok := oneJob(target, drifted, typed); ok {
		return []jobSpec{s}
	}
	return splitJobs(target, drifted, typed)
}

// driftTerms returns the keys' drift terms, or why one cannot be written exactly.
func driftTerms(drifted []Leaf, keys map[string]*KeyObserved, preferTyped bool) ([]keyTerm, string) {
	terms := make([]keyTerm, len(drifted))
	for i, l := range drifted {
		k := keys[l.Name()]
		if k == nil {
			k = &KeyObserved{}
		}
		t, ok := keyTermFor(l, k, preferTyped)
		switch {
		case !ok:
			return nil, "the desired value of " + l.Name() + " is an array, which the hub cannot compare"
		case t.unselectable:
			return nil, l.Name() + " holds an array or an empty object on some devices, which no documented query condition can select"
		}
		terms[i] = t
	}
	return terms, ""
}

func wholeTarget(target query.Expr, leaves []Leaf, reason string) jobSpec {
	return jobSpec{leaves: leaves, cond: target, whole: true, reason: reason}
}

// oneJob joins terms into one condition; ok is false when it is over the hub's limit.
func oneJob(target query.Expr, leaves []Leaf, terms []keyTerm) (jobSpec, bool) {
	s := jobSpec{leaves: leaves, forms: map[string]string{}}
	ors := make([]query.Expr, len(terms))
	for i, t := range terms {
		ors[i] = t.expr
		s.forms[leaves[i].Name()] = t.form
		if !t.exact && !t.unselectable {
			s.uncertain = true
		}
	}
	s.cond = query.And(target, query.Or(ors...))
	return s, query.CheckCondition(s.cond) == nil
}

// splitJobs packs keys into as few jobs as fit the length limit, in key order; a key whose
// term does not fit even alone joins a job over the whole target.
func splitJobs(target query.Expr, leaves []Leaf, terms []keyTerm) []jobSpec {
	var out []jobSpec
	var curLeaves []Leaf
	var curTerms []keyTerm
	var tooLong []Leaf
	flush := func() {
		if len(curLeaves) > 0 {
			s, _ := oneJob(target, curLeaves, curTerms)
			out = append(out, s)
		}
		curLeaves, curTerms = nil, nil
	}
	for i, l := range leaves {
		if _, ok := oneJob(target, append(curLeaves[:len(curLeaves):len(curLeaves)], l), append(curTerms[:len(curTerms):len(curTerms)], terms[i])); ok {
			curLeaves, curTerms = append(curLeaves, l), append(curTerms, terms[i])
			continue
		}
		flush()
		if _, ok := oneJob(target, []Leaf{l}, []keyTerm{terms[i]}); !ok {
			tooLong = append(tooLong, l)
			continue
		}
		curLeaves, curTerms = []Leaf{l}, []keyTerm{terms[i]}
	}
	flush()
	if len(tooLong) > 0 {
		out = append(out, wholeTarget(target, tooLong, "the target and the drift condition together are longer than the hub's 8,192 characters"))
	}
	return out
}

// JobIDPrefix starts the id of every job iotplan makes; 'iotplan jobs' tells its jobs from
// other tools' by it.
const JobIDPrefix = "iotplan-"

// jobID derives a job id from the resource address and the plan: "iotplan-<name>-<8 hex>", at
// most 64 characters of [A-Za-z0-9-]. The hex is a hash of the address, the plan's apply id
// (its creation time, hub and state serial) and the job itself, so an interrupted apply
// resumed, or a saved plan applied a second time, meets its own jobs (the hub answers
// JobAlreadyExists) instead of running them again, and the jobs of one resource (different
// conditions or patches) get different ids.
func jobID(addr string, p *Plan, j *hubapi.JobRequest) string {
	return namedJobID(addr, p.ApplyID, j)
}

// stepJobID is the id of the i-th job of a step apply adds as it goes (unmark), derived from
// the apply id and the job, so a resumed apply gives it the same id.
func stepJobID(addr, applyID string, i int, j *hubapi.JobRequest) string {
	return namedJobID(addr, fmt.Sprintf("%s\x00%d", applyID, i), j)
}

func namedJobID(addr, salt string, j *hubapi.JobRequest) string {
	h := sha256.New()
	body, _ := json.Marshal(j)
	fmt.Fprintf(h, "%s\x00%s\x00%s", addr, salt, body)
	sum := hex.EncodeToString(h.Sum(nil))[:8]

	name := addr
	if _, rest, ok := strings.Cut(addr, "."); ok {
		name = rest
	}
	var b strings.Builder
	dash := false
	for _, r := range name {
		ok := r < 128 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
		if ok {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	clean := strings.TrimRight(b.String(), "-")
	const maxName = hubapi.MaxJobIDLength - len(JobIDPrefix) - 1 - 8
	if len(clean) > maxName {
		clean = strings.TrimRight(clean[:maxName], "-")
	}
	if clean == "" {
		return JobIDPrefix + sum
	}
	return JobIDPrefix + clean + "-" + sum
}
