package reconcile

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/state"
	"github.com/iotplan/iotplan/internal/tier"
	"github.com/iotplan/iotplan/schema"
)

// FormatVersion is the version of the saved plan format (Plan as JSON) that SavePlan writes.
// LoadPlan refuses versions it does not know rather than guessing what another iotplan meant.
//
// Version 3 added Variables. A version 2 file is the same without them and still loads: it
// is applied as before, with the variables' values read from the environment and the
// auto-loaded variable files. An iotplan that reads only version 2 refuses a version 3 file
// by its version ("run plan again") rather than by the unknown field.
const FormatVersion = "3"

// readableVersions are the format versions LoadPlan accepts.
var readableVersions = []string{"2", FormatVersion}

// versionError is the error of a plan file of a format version this iotplan does not read.
func versionError(v string) error {
	return fmt.Errorf("plan format version %q is not supported by this iotplan (it reads versions %s); run plan again", v, strings.Join(quoted(readableVersions), " and "))
}

func quoted(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strconv.Quote(s)
	}
	return out
}

// Action is what apply will do for a resource.
type Action string

const (
	NoOp   Action = "no-op"  // the fleet matches: nothing to do
	Update Action = "update" // '~' a scheduleUpdateTwin job on the drifted devices
	Invoke Action = "invoke" // '!' a scheduleDeviceMethod job on the targeted devices
	Remove Action = "remove" // '-' keys that left the configuration, removed from the devices
)

// Symbol is the one-character marker plans print for the action.
func (a Action) Symbol() string {
	switch a {
	case Update:
		return "~"
	case Invoke:
		return "!"
	case Remove:
		return "-"
	}
	return " "
}

// Op is the kind of a key transition.
type Op string

const (
	OpAdd    Op = "add"    // '+' the key is missing and will be set
	OpChange Op = "change" // '~' the key has another value (or type) and will be set
	OpRemove Op = "remove" // '-' the key is declared null and present: it will be removed
)

// Symbol is the one-character marker plans print for the transition.
func (o Op) Symbol() string {
	switch o {
	case OpAdd:
		return "+"
	case OpRemove:
		return "-"
	}
	return "~"
}

// Plan is the inert result of planning: what apply will do, and what the planner saw. It is
// plain JSON-serialisable data; apply executes exactly its jobs and never re-plans. A plan never
// holds a connection string or key, only the hub's host name.
type Plan struct {
	FormatVersion string    `json:"format_version"`
	CreatedAt     time.Time `json:"created_at"`
	// Hub is the host name of the hub the plan was made against.
	Hub string `json:"hub"`
	// ApplyID identifies the apply of this plan: in its jobs' ids and in run-once methods'
	// records on devices, so an interrupted apply resumes the same jobs.
	ApplyID string `json:"apply_id"`
	// StateName, StateSerial and StateLineage are the state on the hub the plan was made
	// from; applying a saved plan is refused when the state has moved since.
	StateName    string `json:"state"`
	StateSerial  int64  `json:"state_serial"`
	StateLineage string `json:"state_lineage,omitempty"`
	// Destroy: the plan removes everything the state manages.
	Destroy bool `json:"destroy,omitempty"`
	// Config is where the configuration was read from (absolute paths): applying a saved
	// plan reads the hub block there.
	Config []string `json:"config,omitempty"`
	// Variables are the root variables the plan was made with (values of sensitive ones
	// excepted: schema.SavedVariable): applying a saved plan loads Config with them, as
	// Terraform applies a saved plan with the variable values recorded in it
	// (https://developer.hashicorp.com/terraform/cli/commands/apply, "Saved plan mode").
	// Nil in a version 2 plan.
	Variables []schema.SavedVariable `json:"variables,omitempty"`
	// Records are what the state will hold once the plan is applied; Kept are the prior
	// records of refused resources, which the state keeps instead.
	Records []state.Resource `json:"records"`
	Kept    []state.Resource `json:"kept,omitempty"`
	// Checks are the queries the plan's changes depend on, with the answers it saw: applying
	// a saved plan sends them again and refuses it if the fleet moved (stale.go).
	Checks []Check `json:"checks,omitempty"`
	// DistinctDevices counts the devices the plan's twin updates and removals touch, each
	// once (nil: not counted; Summary then adds the resources' counts).
	DistinctDevices *int `json:"distinct_devices,omitempty"`
	// TierName and TierUnits are the hub's tier and units the jobs were sized for ("S1", 1;
	// "" for an unlimited local hub). TierAssumed: the tier was not declared, and S1 × 1 unit
	// was assumed.
	TierName    string `json:"tier,omitempty"`
	TierUnits   int    `json:"units,omitempty"`
	TierAssumed bool   `json:"tier_assumed,omitempty"`
	// Targets are the -target addresses the plan was limited to (none = everything).
	Targets []string `json:"targets,omitempty"`
	// Outputs are the root module\'s output values, evaluated with the plan\'s device counts.
	Outputs   []Output         `json:"outputs,omitempty"`
	Resources []ResourceChange `json:"resources"`
	// Notes concern the whole plan.
	Notes []string `json:"notes,omitempty"`
	// HubCalls counts the hub requests planning used, by kind (see hubclient.Client.Calls).
	HubCalls map[string]int `json:"hub_calls,omitempty"`
	// HubWait is what planning spent waiting on a throttling hub; nil when nothing was
	// throttled or the client does not measure it.
	HubWait *HubWait `json:"hub_wait,omitempty"`
}

// MethodName is the direct method the resource's jobs invoke; "" for a twin resource.
func (r *ResourceChange) MethodName() string {
	for _, pj := range r.Jobs {
		if m := pj.Request.CloudToDeviceMethod; m != nil {
			return m.MethodName
		}
	}
	return ""
}

// Output is an output block's value in a plan. A sensitive output's value is never kept.
type Output struct {
	Name      string          `json:"name"`
	Sensitive bool            `json:"sensitive,omitempty"`
	Known     bool            `json:"known"`           // false: it depends on something not planned
	Value     json.RawMessage `json:"value,omitempty"` // JSON; absent when sensitive or not known
}

// ResourceChange is the plan for one twin or method resource.
type ResourceChange struct {
	Addr   string `json:"address"` // "twin.door_location", "method.lock_door"
	Kind   string `json:"kind"`    // "twin" or "method"
	Action Action `json:"action"`
	// Target is the resource's target condition as query text ("*" = every device).
	Target string `json:"target"`
	// TargetedDevices is how many devices the target selects.
	TargetedDevices int `json:"targeted_devices"`
	// Devices is how many devices the jobs will act on: for a twin, the devices where any
	// managed key differs (counted with the jobs' own conditions), or every targeted device
	// when a job must select the whole target; for a method, the targeted devices.
	Devices int `json:"devices"`
	// Transitions are the distinct observed→desired changes per key, largest first (twins).
	Transitions []Transition `json:"transitions,omitempty"`
	// SampleDeviceIDs are a few of the devices a method will be invoked on.
	SampleDeviceIDs []string `json:"sample_device_ids,omitempty"`
	// Jobs are the jobs apply will schedule, in order; none for NoOp. Usually one; a twin
	// resource whose drift condition would exceed the hub's 8,192 characters gets one job per
	// group of keys.
	Jobs []PlannedJob `json:"jobs,omitempty"`
	// Refused says why apply must not run this resource: the hub's answers disagreed while
	// planning (e.g. the drift count and the key groups), so its jobs could touch devices the
	// plan does not show.
	Refused string `json:"refused,omitempty"`
	// RunTag is a run-once method's record tag on devices (methods.go); AlreadyRan counts the
	// targeted devices whose record holds the method's current triggers (not invoked again).
	RunTag     string `json:"run_tag,omitempty"`
	AlreadyRan int    `json:"already_ran,omitempty"`
	// Notes are things the reader of the plan must know (shown under the resource); Warnings
	// are what is probably a mistake (a target that selects no device), shown as warnings.
	Notes    []string `json:"notes,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
	// SensitiveKeys, SensitiveTarget and SensitivePayload say which values come from
	// sensitive variables: renderers show "(sensitive value)" instead. The values themselves
	// stay in the plan (in Job), because apply must send them: a saved plan is as secret as
	// the variables it was made with.
	SensitiveKeys    []string `json:"sensitive_keys,omitempty"`
	SensitiveTarget  bool     `json:"sensitive_target,omitempty"`
	SensitivePayload bool     `json:"sensitive_payload,omitempty"`
	// Rollout is the resource's waves (waves.go); Converge what apply waits for after each
	// wave (or after the resource's jobs without a rollout). nil = none.
	Rollout  *RolloutPlan  `json:"rollout,omitempty"`
	Converge *ConvergePlan `json:"converge,omitempty"`
}

// PlannedJob is one job of a resource: the request apply sends (StartTime nil means "when
// applied"), and what planning counted and expects of it.
type PlannedJob struct {
	// Step is the job's part of its resource's work (StepMark, StepInvoke, StepRemove; "" for
	// a plain update or invocation).
	Step    string            `json:"step,omitempty"`
	Request hubapi.JobRequest `json:"request"`
	// Devices is how many devices Request's condition selected when planning counted it.
	Devices int `json:"devices"`
	// Keys are the managed keys a twin job's patch sets.
	Keys []string `json:"keys,omitempty"`
	// ExpectedSeconds is how long the hub needs to reach Devices at the plan's tier; 0 when
	// the hub is unlimited.
	ExpectedSeconds int64 `json:"expected_seconds,omitempty"`
	// Wave is the rollout wave the job belongs to (1, 2, …); 0 without a rollout.
	Wave int `json:"wave,omitempty"`
}

// Transition is one distinct change of one key: From (absent for OpAdd) becomes To (absent for
// OpRemove) on Devices devices, e.g. desired.building "42" → "43" on 9,812 devices.
type Transition struct {
	Key     string          `json:"key"` // "desired.building", "tags.owner"
	Op      Op              `json:"op"`
	From    json.RawMessage `json:"from,omitempty"`
	To      json.RawMessage `json:"to,omitempty"`
	Devices int             `json:"devices"`
	// OtherValues marks the devices whose value is none of those listed for the key (a key
	// with more distinct values than a plan reads); From is then absent.
	OtherValues bool `json:"other_values,omitempty"`
	// SampleDeviceIDs are a few devices with this transition (only for the largest
	// transitions: sample queries are capped per resource and per plan). For an observed
	// object the sample is of devices whose value is an object with the same first key.
	SampleDeviceIDs []string `json:"sample_device_ids,omitempty"`
}

// Summary counts what a plan will do.
type Summary struct {
	TwinChanges int // twin resources to update
	TwinDevices int // devices those updates touch: distinct when the plan counted them, else summed per resource
	// TwinDevicesSummed: TwinDevices is a sum over two or more resources, so a device that
	// several of them change counts more than once (the plan could not count the union).
	TwinDevicesSummed bool
	MethodInvokes     int // method resources to invoke
	MethodDevices     int // devices those invocations reach (summed per resource)
	UnchangedTwins    int
	EmptyMethodRuns   int // method resources whose target selects no device
	Refused           int // resources apply will refuse (see ResourceChange.Refused)
}

// Summary counts the plan's actions.
func (p *Plan) Summary() Summary {
	var s Summary
	for _, r := range p.Resources {
		if r.Refused != "" {
			s.Refused++
		}
		switch {
		case r.Action == Update || r.Action == Remove:
			s.TwinChanges++
			s.TwinDevices += r.Devices
		case r.Action == Invoke:
			s.MethodInvokes++
			s.MethodDevices += r.Devices
		case r.Kind == KindTwin:
			s.UnchangedTwins++
		default:
			s.EmptyMethodRuns++
		}
	}
	if p.DistinctDevices != nil {
		s.TwinDevices = *p.DistinctDevices
	} else {
		s.TwinDevicesSummed = s.TwinChanges > 1
	}
	return s
}

// HasChanges reports whether applying the plan would schedule any job.
func (p *Plan) HasChanges() bool {
	for _, r := range p.Resources {
		if r.Action != NoOp {
			return true
		}
	}
	return false
}

// HasTwinChanges reports whether any twin resource needs an update.
func (p *Plan) HasTwinChanges() bool {
	for _, r := range p.Resources {
		if r.Action == Update {
			return true
		}
	}
	return false
}

// MakePlan reads the fleet (Read) and diffs it (Diff). When q counts its calls, the plan
// records how many planning used.
func MakePlan(ctx context.Context, q Querier, cfg *Config, opts PlanOptions) (*Plan, error) {
	since := meter(q)
	obs, err := Read(ctx, q, cfg, opts)
	if err != nil {
		return nil, err
	}
	p, err := Diff(cfg, obs, opts)
	if err != nil {
		return nil, err
	}
	p.HubCalls, p.HubWait = since()
	return p, nil
}

// Resource kinds.
const (
	KindTwin   = "twin"
	KindMethod = "method"
)

// WritePlan writes p as indented JSON.
func WritePlan(w io.Writer, p *Plan) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(p)
}

// SavePlan writes p to path (the -out file), readable by its owner only (0600): a plan holds
// the values it will set, sensitive ones included (though not the values of sensitive
// variables themselves: Variables). Only what apply needs is kept: the target of
// a resource with nothing to do is dropped when it is sensitive.
func SavePlan(path string, p *Plan) error {
	saved := *p
	saved.Resources = append([]ResourceChange(nil), p.Resources...)
	for i := range saved.Resources {
		if r := &saved.Resources[i]; r.Action == NoOp && r.SensitiveTarget {
			r.Target = ""
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("saving the plan: %w", err)
	}
	if err := f.Chmod(0o600); err != nil { // an existing file keeps its mode otherwise
		f.Close()
		return fmt.Errorf("saving the plan to %s: %w", path, err)
	}
	if err := WritePlan(f, &saved); err != nil {
		f.Close()
		return fmt.Errorf("saving the plan to %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("saving the plan to %s: %w", path, err)
	}
	return nil
}

// ReadPlan reads and validates a plan written by WritePlan.
func ReadPlan(r io.Reader) (*Plan, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxPlanSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxPlanSize {
		return nil, errors.New("not an iotplan plan file (larger than 64 MiB)")
	}
	// The version first, so a plan from another iotplan version gets that message rather than
	// a complaint about a field this version does not know.
	var probe struct {
		FormatVersion *string `json:"format_version"`
	}
	if err := json.Unmarshal(data, &probe); err != nil || probe.FormatVersion == nil {
		return nil, errors.New("not an iotplan plan file (expected JSON with a format_version)")
	}
	if !slices.Contains(readableVersions, *probe.FormatVersion) {
		return nil, versionError(*probe.FormatVersion)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var p Plan
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("malformed plan file: %w", err)
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	compactRecords(p.Records)
	compactRecords(p.Kept)
	return &p, nil
}

// compactRecords undoes the indentation WritePlan gave the records' JSON values.
func compactRecords(rs []state.Resource) {
	for _, r := range rs {
		for k, v := range r.Keys {
			var b bytes.Buffer
			if json.Compact(&b, v) == nil {
				r.Keys[k] = b.Bytes()
			}
		}
	}
}

const maxPlanSize = 64 << 20

// LoadPlan reads a saved plan from path, checking its format version and its jobs.
func LoadPlan(path string) (*Plan, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading the plan: %w", err)
	}
	defer f.Close()
	p, err := ReadPlan(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

var jobIDPattern = regexp.MustCompile(fmt.Sprintf(`^[A-Za-z0-9-]{1,%d}$`, hubapi.MaxJobIDLength))

// Validate checks what apply relies on: the format version, and that every change carries a
// well-formed job of the right type and every no-op none.
func (p *Plan) Validate() error {
	if !slices.Contains(readableVersions, p.FormatVersion) {
		if p.FormatVersion == "" {
			return errors.New("not an iotplan plan file (no format_version)")
		}
		return versionError(p.FormatVersion)
	}
	if p.FormatVersion != FormatVersion && len(p.Variables) > 0 {
		return fmt.Errorf("a plan of format version %q holds no variables, but this one does: run plan again", p.FormatVersion)
	}
	names := map[string]bool{}
	for i, v := range p.Variables {
		switch {
		case v.Name == "" || names[v.Name]:
			return fmt.Errorf("variable %d (%s): missing or duplicate name", i+1, v.Name)
		case v.Sensitive && len(v.Value) > 0:
			// Never written so (schema.SavedVariables): refuse rather than use a secret
			// from a file that should not hold it.
			return fmt.Errorf("variable %d (%s): a sensitive variable with a value", i+1, v.Name)
		}
		names[v.Name] = true
	}
	seen := map[string]bool{}
	for i, r := range p.Resources {
		where := fmt.Sprintf("resource %d (%s)", i+1, r.Addr)
		if r.Addr == "" || seen[r.Addr] {
			return fmt.Errorf("%s: missing or duplicate address", where)
		}
		seen[r.Addr] = true
		if r.Kind != KindTwin && r.Kind != KindMethod {
			return fmt.Errorf("%s: unknown kind %q", where, r.Kind)
		}
		switch r.Action {
		case NoOp:
			if len(r.Jobs) > 0 {
				return fmt.Errorf("%s: a no-op carries a job", where)
			}
			continue
		case Update, Invoke, Remove:
		default:
			return fmt.Errorf("%s: unknown action %q", where, r.Action)
		}
		if len(r.Jobs) == 0 && r.Refused == "" {
			return fmt.Errorf("%s: action %s without a job", where, r.Action)
		}
		for _, pj := range r.Jobs {
			if err := validateJob(where, r, &pj.Request); err != nil {
				return err
			}
		}
	}
	return nil
}

func validateJob(where string, r ResourceChange, j *hubapi.JobRequest) error {
	if !jobIDPattern.MatchString(j.JobID) {
		return fmt.Errorf("%s: job id %q is not 1-%d letters, digits and dashes", where, j.JobID, hubapi.MaxJobIDLength)
	}
	if j.QueryCondition == "" {
		return fmt.Errorf("%s: job %s has no query condition", where, j.JobID)
	}
	switch {
	case j.Type == hubapi.JobTypeUpdateTwin && j.UpdateTwin == nil, j.Type == hubapi.JobTypeDeviceMethod && j.CloudToDeviceMethod == nil:
		return fmt.Errorf("%s: job %s has no %s body", where, j.JobID, j.Type)
	case (r.Action == Update || r.Action == Remove) && (r.Kind != KindTwin || j.Type != hubapi.JobTypeUpdateTwin):
		return fmt.Errorf("%s: an update needs %s jobs", where, hubapi.JobTypeUpdateTwin)
	case r.Action == Invoke && (r.Kind != KindMethod || (j.Type != hubapi.JobTypeDeviceMethod && j.Type != hubapi.JobTypeUpdateTwin)):
		return fmt.Errorf("%s: an invocation needs a %s job", where, hubapi.JobTypeDeviceMethod)
	}
	return nil
}

// applyID derives the apply's id from the plan: its creation, hub and state.
func applyID(p *Plan) string {
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s\x00%s\x00%s\x00%d", p.CreatedAt.Format(time.RFC3339Nano), p.Hub, p.StateName, p.StateSerial)))
	return hex.EncodeToString(sum[:])[:10]
}

// HubTier is the tier the plan was sized for (the zero Tier for an unlimited hub, or when the
// recorded name no longer parses).
func (p *Plan) HubTier() tier.Tier {
	t, err := tier.Parse(p.TierName, p.TierUnits)
	if err != nil {
		return tier.Tier{}
	}
	return t
}
