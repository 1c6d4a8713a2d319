package reconcile

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/query"
)

// Observed is what reading the fleet found, per resource address. Read fills it; Diff turns it
// into a Plan without I/O.
type Observed struct {
	Twins   map[string]*TwinObserved   `json:"twins"`
	Methods map[string]*MethodObserved `json:"methods"`
	// Removals are the keys leaving management, by the address of the recorded resource.
	Removals map[string][]RemovalObserved `json:"removals,omitempty"`
	// Conflicts are pairs of resources setting a key to different values on shared devices.
	Conflicts []Conflict `json:"conflicts,omitempty"`
	// Distinct counts the devices any update touches (-1: not counted).
	Distinct int `json:"distinct"`
	// Checks are the queries Read sent, per resource, with their answers (stale.go).
	Checks []Check `json:"checks,omitempty"`
	// Notes concern the whole plan (e.g. example devices skipped to stay within the quota).
	Notes []string `json:"notes,omitempty"`
}

// TwinObserved is what the hub reported for one twin resource.
type TwinObserved struct {
	Targeted int `json:"targeted"`
	// Converged counts the targeted devices where every managed key holds its desired value;
	// -1 when not counted (a key the hub cannot compare, or read from the groups instead).
	Converged int `json:"converged"`
	// Keys are the managed keys' groups, by Leaf.Name(); a key is absent when Read did not
	// need its groups (the resource had converged).
	Keys map[string]*KeyObserved `json:"keys,omitempty"`
	// Jobs are the update jobs' conditions, each with the devices it selected when counted.
	Jobs []JobObserved `json:"jobs,omitempty"`
	// Samples holds example device ids by transition identity (see transitionID).
	Samples map[string][]string `json:"samples,omitempty"`
	// Rollout is the resource's waves, when it declares a rollout and differs.
	Rollout *RolloutObserved `json:"rollout,omitempty"`
}

// KeyObserved is one managed key's GROUP BY.
type KeyObserved struct {
	Groups []Group `json:"groups"`
	// Complete: every group was read. Otherwise Groups are the first page, plus Other.
	Complete bool `json:"complete"`
}

// JobObserved is one update job's condition, exactly as counted and as apply will send it.
type JobObserved struct {
	Keys      []string `json:"keys"` // managed keys its patch sets
	Condition string   `json:"condition"`
	Devices   int      `json:"devices"`
	// WholeTarget: Condition is the target itself (Reason says why); Devices is Targeted.
	WholeTarget bool   `json:"whole_target,omitempty"`
	Reason      string `json:"reason,omitempty"`
	// Uncertain: a typed term over groups not all read (see jobSpec).
	Uncertain bool              `json:"uncertain,omitempty"`
	Forms     map[string]string `json:"forms,omitempty"`
}

// MethodObserved is what the hub reported for one method resource.
type MethodObserved struct {
	Targeted int      `json:"targeted"`
	Samples  []string `json:"samples,omitempty"`
	// Pending counts, for a run-once method, the targeted devices that have not run it with
	// its triggers, selected by MarkCondition (methods.go).
	Pending       int    `json:"pending,omitempty"`
	MarkCondition string `json:"mark_condition,omitempty"`
	// Rollout is the resource's waves, when it declares a rollout and has devices to run on.
	Rollout *RolloutObserved `json:"rollout,omitempty"`
}

// Diff turns what Read observed into a plan. It does no I/O: the same inputs give the same
// plan. Every job's condition is one Read counted.
func Diff(cfg *Config, obs *Observed, opts PlanOptions) (*Plan, error) {
	opts = opts.withDefaults()
	if err := checkAddrs(cfg); err != nil {
		return nil, err
	}
	if len(obs.Conflicts) > 0 {
		return nil, conflictError(obs.Conflicts)
	}
	if err := checkTargets(cfg, opts); err != nil {
		return nil, err
	}
	p := newPlan(opts)
	p.Notes = append(p.Notes, obs.Notes...)
	live := live(cfg, opts)
	if err := diffResources(live, obs, p, opts); err != nil {
		return nil, err
	}
	if err := diffRemovals(obs, p, opts); err != nil {
		return nil, err
	}
	p.Records = records(live, p, opts)
	p.Kept = kept(p, opts)
	p.Checks = planChecks(cfg, obs, p)
	p.DistinctDevices = distinct(obs, p)
	if n := slotNote(p, opts); n != "" {
		p.Notes = append(p.Notes, n)
	}
	return p, nil
}

// newPlan is an empty plan for opts: its hub, tier, prior state and apply id.
func newPlan(opts PlanOptions) *Plan {
	p := &Plan{FormatVersion: FormatVersion, CreatedAt: opts.Now, Hub: opts.Hub, Resources: []ResourceChange{},
		StateName: opts.StateName, Destroy: opts.Destroy, Targets: opts.Targets}
	p.TierName, p.TierUnits, p.TierAssumed = opts.Tier.Name, opts.Tier.Units, opts.TierAssumed
	if opts.Prior != nil {
		p.StateSerial, p.StateLineage = opts.Prior.Serial, opts.Prior.Lineage
	}
	p.ApplyID = applyID(p)
	return p
}

func diffResources(cfg *Config, obs *Observed, p *Plan, opts PlanOptions) error {
	for _, t := range cfg.Twins {
		o := obs.Twins[t.Addr]
		if o == nil {
			return fmt.Errorf("%s: nothing was observed for it", t.Addr)
		}
		rc, err := diffTwin(t, o, p, opts)
		if err != nil {
			return err
		}
		p.Resources = append(p.Resources, rc)
	}
	for _, m := range cfg.Methods {
		o := obs.Methods[m.Addr]
		if o == nil {
			return fmt.Errorf("%s: nothing was observed for it", m.Addr)
		}
		rc, err := diffMethod(m, o, p, opts)
		if err != nil {
			return err
		}
		p.Resources = append(p.Resources, rc)
	}
	return nil
}

// slotNote warns when jobs scheduled for later fill the tier's job slots before other jobs of
// the plan: those wait until the scheduled ones have run (a scheduled job holds its slot), so
// apply would sit waiting that long.
func slotNote(p *Plan, opts PlanOptions) string {
	limit := opts.Tier.MaxConcurrentJobs()
	if limit <= 0 {
		return ""
	}
	var scheduled []string
	var first time.Time
	for _, r := range p.Resources {
		for _, j := range r.Jobs {
			st := j.Request.StartTime
			if st != nil && st.After(opts.Now.Add(waitScheduled)) {
				if len(scheduled) == 0 || st.Before(first) {
					first = *st
				}
				scheduled = append(scheduled, r.Addr)
				continue
			}
			if len(scheduled) >= limit {
				return fmt.Sprintf("%s runs %d job(s) at a time and jobs scheduled for later hold their slots: %s waits until %s has run (from %s); -job-slot-timeout bounds the wait",
					opts.Tier, limit, r.Addr, strings.Join(scheduled, ", "), TimeText(first))
			}
		}
	}
	return ""
}

func checkAddrs(cfg *Config) error {
	seen := map[string]bool{}
	check := func(a string) error {
		if a == "" {
			return errors.New("a resource has no address")
		}
		if seen[a] {
			return fmt.Errorf("%s is declared twice", a)
		}
		seen[a] = true
		return nil
	}
	for _, t := range cfg.Twins {
		if err := check(t.Addr); err != nil {
			return err
		}
	}
	for _, m := range cfg.Methods {
		if err := check(m.Addr); err != nil {
			return err
		}
	}
	return nil
}

func diffTwin(t Twin, o *TwinObserved, p *Plan, opts PlanOptions) (ResourceChange, error) {
	pt, err := prepareTwin(t)
	if err != nil {
		return ResourceChange{}, err
	}
	rc := ResourceChange{
		Addr: t.Addr, Kind: KindTwin, Action: NoOp,
		Target: query.Format(normTarget(t.Target)), TargetedDevices: o.Targeted,
		SensitiveKeys: t.Sensitive, SensitiveTarget: t.TargetSensitive,
	}
	switch {
	case len(pt.leaves) == 0:
		rc.Notes = append(rc.Notes, "declares no desired properties or tags: nothing to manage")
		return rc, nil
	case o.Targeted == 0:
		rc.Warnings = append(rc.Warnings, "the target selects no device")
		return rc, nil
	}
	ts := twinTransitions(pt.leaves, o.Keys)
	if len(ts) == 0 {
		return rc, nil
	}
	for _, tr := range ts {
		tr.Transition.SampleDeviceIDs = o.Samples[tr.id]
		rc.Transitions = append(rc.Transitions, tr.Transition)
	}
	if len(o.Jobs) == 0 {
		return rc, fmt.Errorf("%s: the fleet differs but no update condition was counted", t.Addr)
	}
	rc.Action = Update
	jobs, refused, notes := checkTwinJobs(pt.leaves, o, ts)
	rc.Refused, rc.Notes = refused, append(rc.Notes, notes...)
	for _, j := range jobs {
		if j.Devices == 0 {
			continue
		}
		if err := addJob(&rc, twinJob(pt, j, t), t.Addr, t.MaxExecution, 0, p, opts); err != nil {
			return rc, err
		}
	}
	rc.Devices = changedDevices(o, jobs)
	if err := twinWaves(&rc, t, pt, o, p, opts); err != nil {
		return rc, err
	}
	if len(rc.Jobs) == 0 && rc.Refused == "" {
		// The groups showed drift but the conditions selected nothing: the fleet changed
		// between the reads (Azure's queries are eventually consistent).
		rc.Action = NoOp
		rc.Notes = append(rc.Notes, "drift was seen but no device matched the update condition when counted; run plan again")
	}
	return rc, nil
}

// changedDevices is how many distinct devices the resource's jobs write: the devices that
// differ when that was counted, else the jobs' sum, at most the target.
func changedDevices(o *TwinObserved, jobs []JobObserved) int {
	if len(jobs) == 1 {
		return jobs[0].Devices
	}
	for _, j := range jobs {
		if j.WholeTarget {
			return o.Targeted
		}
	}
	if o.Converged >= 0 {
		return o.Targeted - o.Converged
	}
	n := 0
	for _, j := range jobs {
		n += j.Devices
	}
	return min(n, o.Targeted)
}

// checkTwinJobs compares what the hub answered: each key's groups must add up to the targeted
// devices, and each job's count must agree with the devices its keys' groups show differing
// (exactly, when the converged devices were counted). A typed condition that selects fewer
// devices than differ missed values no condition can select, so its job becomes one over the
// whole target. Any other disagreement refuses the resource: apply must not touch devices the
// plan did not show.
func checkTwinJobs(leaves []Leaf, o *TwinObserved, ts []observedTransition) (jobs []JobObserved, refused string, notes []string) {
	differ := map[string]int{}
	for _, t := range ts {
		differ[t.Key] += t.Devices
	}
	for _, l := range leaves {
		k := o.Keys[l.Name()]
		if k == nil || !k.Complete {
			continue
		}
		if sum := groupsTotal(k.Groups); sum != o.Targeted {
			return o.Jobs, fmt.Sprintf("the hub's answers disagree: %s targeted devices, but the groups of %s add up to %s; run plan again when the fleet is quiet (queries are eventually consistent)",
				countText(o.Targeted), l.Name(), countText(sum)), nil
		}
	}
	for _, j := range o.Jobs {
		if j.WholeTarget {
			jobs = append(jobs, j)
			notes = append(notes, j.Reason+": the job rewrites every targeted device")
			continue
		}
		lo, hi := 0, 0
		for _, k := range j.Keys {
			lo, hi = max(lo, differ[k]), hi+differ[k]
		}
		hi = min(hi, o.Targeted)
		if len(o.Jobs) == 1 && o.Converged >= 0 {
			lo, hi = o.Targeted-o.Converged, o.Targeted-o.Converged
		}
		switch {
		case j.Devices < lo && j.Uncertain:
			notes = append(notes, fmt.Sprintf("%s devices differ but the typed update condition selects %s: some hold values no documented query condition can select (arrays or objects among the groups not read), so the job rewrites every targeted device",
				countText(lo), countText(j.Devices)))
			j = JobObserved{Keys: j.Keys, Devices: o.Targeted, WholeTarget: true}
		case j.Devices < lo || j.Devices > hi:
			want := countText(lo)
			if hi != lo {
				want = countText(lo) + " to " + countText(hi)
			}
			return o.Jobs, fmt.Sprintf("the hub's answers disagree: the key groups show %s devices differing, but the update condition selects %s; run plan again when the fleet is quiet (queries are eventually consistent)",
				want, countText(j.Devices)), notes
		}
		jobs = append(jobs, j)
	}
	return jobs, "", notes
}

func groupsTotal(gs []Group) int {
	n := 0
	for _, g := range gs {
		n += g.Devices
	}
	return n
}

// twinJob builds one scheduleUpdateTwin job, not yet sized: its patch sets exactly the job's
// keys, its condition is the one Read counted (the target itself for a whole-target job).
func twinJob(pt *preparedTwin, j JobObserved, t Twin) PlannedJob {
	cond := j.Condition
	if j.WholeTarget {
		cond = query.Format(scope(t.Target))
	}
	patch := &hubapi.TwinPatch{ETag: "*"}
	desired, tags := patchOf(pt.leaves, j.Keys)
	if len(tags) > 0 {
		patch.Tags = tags
	}
	if len(desired) > 0 {
		patch.Properties = &hubapi.TwinProperties{Desired: desired}
	}
	req := hubapi.JobRequest{Type: hubapi.JobTypeUpdateTwin, UpdateTwin: patch, QueryCondition: cond}
	if !t.StartTime.IsZero() {
		st := t.StartTime.UTC()
		req.StartTime = &st
	}
	return PlannedJob{Request: req, Devices: j.Devices, Keys: j.Keys}
}

// patchOf builds the desired and tags objects of a merge patch that sets the named leaves
// (nested objects rebuilt; a nil value removes the key).
func patchOf(leaves []Leaf, names []string) (desired, tags map[string]any) {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	put := func(root map[string]any, keys []string, v any) map[string]any {
		if root == nil {
			root = map[string]any{}
		}
		m := root
		for _, k := range keys[:len(keys)-1] {
			sub, ok := m[k].(map[string]any)
			if !ok {
				sub = map[string]any{}
				m[k] = sub
			}
			m = sub
		}
		m[keys[len(keys)-1]] = v
		return root
	}
	for _, l := range leaves {
		if !want[l.Name()] {
			continue
		}
		if l.Section == SectionDesired {
			desired = put(desired, l.Keys, l.Value)
		} else {
			tags = put(tags, l.Keys, l.Value)
		}
	}
	return desired, tags
}

func diffMethod(m Method, o *MethodObserved, p *Plan, opts PlanOptions) (ResourceChange, error) {
	rc, err := diffMethodJobs(m, o, p, opts)
	if err != nil || o.Rollout == nil || rc.Action != Invoke || len(rc.Jobs) == 0 {
		return rc, err
	}
	return rc, waveJobs(&rc, rolloutPlan(m.Rollout, o.Rollout), func(pj PlannedJob) error {
		tail := methodTail(m)
		if pj.Step == StepMark {
			tail = 0
		}
		return addJob(&rc, pj, m.Addr, m.MaxExecution, tail, p, opts)
	})
}

func diffMethodJobs(m Method, o *MethodObserved, p *Plan, opts PlanOptions) (ResourceChange, error) {
	rc := ResourceChange{
		Addr: m.Addr, Kind: KindMethod, Action: NoOp,
		Target: query.Format(normTarget(m.Target)), TargetedDevices: o.Targeted, SampleDeviceIDs: o.Samples,
		SensitiveTarget: m.TargetSensitive, SensitivePayload: m.PayloadSensitive,
	}
	if m.Method == "" {
		return rc, fmt.Errorf("%s: no method name", m.Addr)
	}
	if o.Targeted == 0 {
		rc.Warnings = append(rc.Warnings, "the target selects no device: nothing to invoke")
		return rc, nil
	}
	invoke, err := methodJob(m, opts)
	if err != nil {
		return rc, err
	}
	rc.Action, rc.Devices = Invoke, o.Targeted
	if !m.TriggersSet {
		rc.Notes = append(rc.Notes, "methods run on every apply: iotplan does not record earlier invocations (declare triggers to run once per device)")
		invoke.Request.QueryCondition = query.Format(scope(m.Target))
		return rc, addJob(&rc, invoke, m.Addr, m.MaxExecution, methodTail(m), p, opts)
	}
	rc.RunTag, rc.Devices, rc.AlreadyRan = runTag(opts.StateName, m.Addr), o.Pending, o.Targeted-o.Pending
	rc.Notes = append(rc.Notes, runOnceNote(rc.RunTag, rc.AlreadyRan, o.Targeted))
	if o.Pending == 0 {
		rc.Action = NoOp
		return rc, nil
	}
	hash, err := triggersHash(m.Triggers)
	if err != nil {
		return rc, fmt.Errorf("%s: triggers: %w", m.Addr, err)
	}
	mark := PlannedJob{Step: StepMark, Devices: o.Pending, Request: hubapi.JobRequest{Type: hubapi.JobTypeUpdateTwin,
		QueryCondition: o.MarkCondition, UpdateTwin: markPatch(rc.RunTag, hash, p.ApplyID), StartTime: invoke.Request.StartTime}}
	if err := addJob(&rc, mark, m.Addr, m.MaxExecution, 0, p, opts); err != nil {
		return rc, err
	}
	invoke.Step, invoke.Devices = StepInvoke, o.Pending
	invoke.Request.QueryCondition = query.Format(invokeCondition(rc.RunTag, p.ApplyID))
	return rc, addJob(&rc, invoke, m.Addr, m.MaxExecution, methodTail(m), p, opts)
}

// methodJob is a method resource's scheduleDeviceMethod job, without its condition.
func methodJob(m Method, opts PlanOptions) (PlannedJob, error) {
	payload, err := Canonical(m.Payload)
	if err != nil {
		return PlannedJob{}, fmt.Errorf("%s: payload: %w", m.Addr, err)
	}
	rt := m.ResponseTimeout
	if rt <= 0 {
		rt = defaultResponseTimeout
	}
	req := hubapi.JobRequest{
		Type: hubapi.JobTypeDeviceMethod,
		CloudToDeviceMethod: &hubapi.CloudToDeviceMethod{
			MethodName:               m.Method,
			Payload:                  rawJSON(payload),
			ResponseTimeoutInSeconds: int(seconds(rt, rt)),
			ConnectTimeoutInSeconds:  int(seconds(m.ConnectTimeout, 0)),
		},
	}
	if !m.StartTime.IsZero() {
		st := m.StartTime.UTC()
		req.StartTime = &st
	}
	return PlannedJob{Request: req}, nil
}

// methodTail is what a method job's last devices may add to its run: their connect and
// response timeouts.
func methodTail(m Method) time.Duration {
	rt := m.ResponseTimeout
	if rt <= 0 {
		rt = defaultResponseTimeout
	}
	return m.ConnectTimeout + rt
}

// addJob sizes a job, gives it its id and appends it to the resource.
func addJob(rc *ResourceChange, pj PlannedJob, addr string, declared, tail time.Duration, p *Plan, opts PlanOptions) error {
	if pj.Devices == 0 {
		pj.Devices = rc.Devices
	}
	if err := sizeJob(&pj, addr, declared, tail, opts); err != nil {
		return err
	}
	pj.Request.JobID = jobID(addr, p, &pj.Request)
	rc.Jobs = append(rc.Jobs, pj)
	return nil
}

// countText is a count as plans print it: 1,234,567.
func countText(n int) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + countText(-n)
	}
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}
