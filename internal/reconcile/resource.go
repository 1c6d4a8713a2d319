package reconcile

import (
	"fmt"
	"time"

	"github.com/iotplan/iotplan/internal/query"
	"github.com/iotplan/iotplan/internal/state"
	"github.com/iotplan/iotplan/internal/tier"
	"github.com/iotplan/iotplan/schema"
)

// Config is what the planner reconciles: the declared twin and method resources. It is
// independent of how they were written (schema.Config converts to it with FromSchema).
type Config struct {
	Twins   []Twin
	Methods []Method
}

// Twin is a twin resource: on every device its target selects, the declared desired
// properties and tags hold. Managed keys are exactly the declared leaves; nil = ensure absent.
type Twin struct {
	Addr    string     // "twin.door_location"
	Target  query.Expr // nil or query.All() = every device
	Desired map[string]any
	Tags    map[string]any
	// StartTime schedules the job; zero = when applied.
	StartTime time.Time
	// MaxExecution bounds each job (maxExecutionTimeInSeconds); zero = sized from the job's
	// devices and the tier (see sizeJob). A job that cannot finish within a declared
	// MaxExecution at the tier's rate is refused at plan time.
	MaxExecution time.Duration
	// Sensitive names managed keys ("desired.token") whose values plans must not show;
	// TargetSensitive hides the target. Both only change what is displayed.
	Sensitive       []string
	TargetSensitive bool
	// KeepOnRemoval: when the resource or one of its keys leaves the configuration, forget
	// the keys instead of removing them from the devices.
	KeepOnRemoval bool
	// Rollout applies the change in waves (rollout.go); Converge waits after each wave until
	// devices report the desired values (converge.go). nil = neither.
	Rollout  *schema.Rollout
	Converge *schema.Converge
}

// Method is a method resource: the direct method is invoked on every device its target
// selects — on every apply, or, with triggers, once per device for each triggers value.
type Method struct {
	Addr            string // "method.lock_door"
	Target          query.Expr
	Method          string
	Payload         any           // any JSON value; nil = null
	ResponseTimeout time.Duration // zero = the hub's default, 30s
	ConnectTimeout  time.Duration // zero = the device must be connected already
	MaxExecution    time.Duration // zero = sized from the devices and the tier (see Twin.MaxExecution)
	StartTime       time.Time     // zero = when applied
	// PayloadSensitive and TargetSensitive hide the payload and the target in plans.
	PayloadSensitive bool
	TargetSensitive  bool
	// Triggers (when TriggersSet; any JSON value) makes the method run once per device for
	// each value: a device runs it when the triggers differ from those of its last
	// successful run, recorded in a tag on the device (methods.go).
	Triggers    any
	TriggersSet bool
	// Rollout invokes the method in waves (rollout.go); nil = on every device at once.
	Rollout *schema.Rollout
}

// PlanOptions tune planning. The zero value is usable.
type PlanOptions struct {
	// Hub is the hub's host name, recorded in the plan (never a connection string).
	Hub string
	// Now is the plan's creation time; zero = time.Now().
	Now time.Time
	// Tier is the hub's tier and units: it sizes jobs (device operations per second) and the
	// sample budget (queries per minute). The zero Tier is an unlimited hub (the local hub's
	// default); TierAssumed says the tier was not declared and Tier is an assumption the plan
	// must mention.
	Tier        tier.Tier
	TierAssumed bool
	// SamplesPerTransition is how many example device ids to fetch per transition (TOP n);
	// zero = 3.
	SamplesPerTransition int
	// SampleQueriesPerResource caps the sample queries per resource, so the number of hub
	// calls never grows with the fleet; zero = 5, negative = none.
	SampleQueriesPerResource int
	// SampleBudget caps the sample queries of the whole plan; zero = what is left of one
	// minute of the tier's query quota after the queries planning needs (no cap without a
	// tier), negative = none.
	SampleBudget int
	// MaxGroups is how many groups of a key's GROUP BY a plan reads (one page holds 100);
	// devices in further groups that differ are counted together. Zero = 100.
	MaxGroups int
	// DefaultMaxExecution is the least maxExecutionTimeInSeconds of a job whose resource
	// declares none; zero = 1h (the SDKs' default).
	DefaultMaxExecution time.Duration
	// Prior is the state on the hub the plan starts from (nil = no state: no removals, no
	// records of method runs, no stale-plan checks). StateName names it (run tags derive from
	// it; "" = state.DefaultName).
	Prior     *state.State
	StateName string
	// Destroy plans the removal of everything Prior manages; the configuration is ignored.
	Destroy bool
	// Targets (-target) limit the plan to the resources these addresses select (schema.Selects),
	// in the configuration and in Prior; the state's other records are kept as they are.
	Targets []string
}

func (o PlanOptions) withDefaults() PlanOptions {
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	o.Now = o.Now.UTC()
	if o.SamplesPerTransition <= 0 {
		o.SamplesPerTransition = 3
	}
	if o.SampleQueriesPerResource == 0 {
		o.SampleQueriesPerResource = 5
	}
	if o.MaxGroups <= 0 {
		o.MaxGroups = 100
	}
	if o.DefaultMaxExecution <= 0 {
		o.DefaultMaxExecution = time.Hour
	}
	if o.StateName == "" {
		o.StateName = state.DefaultName
	}
	return o
}

// defaultResponseTimeout is the hub's default for responseTimeoutInSeconds; plans state it
// explicitly so the job shows what will happen.
const defaultResponseTimeout = 30 * time.Second

// sampleBudget is how many sample queries a plan that already sent essential queries may send.
func (o PlanOptions) sampleBudget(essential int) int {
	switch {
	case o.SampleBudget < 0 || o.SampleQueriesPerResource < 0:
		return 0
	case o.SampleBudget > 0:
		return o.SampleBudget
	}
	perMinute := int(o.Tier.Rate(tier.Queries) * 60)
	if perMinute <= 0 {
		return int(^uint(0) >> 1)
	}
	return max(0, perMinute-essential)
}

// budgetReason says what the sample budget protects, for the plan's note.
func (o PlanOptions) budgetReason() string {
	if o.SampleBudget > 0 {
		return fmt.Sprintf("the plan's budget of %d example queries", o.SampleBudget)
	}
	return fmt.Sprintf("one minute of %s's query quota (%d/min)", o.Tier, int(o.Tier.Rate(tier.Queries)*60))
}

// preparedTwin is a Twin with canonical values and its managed leaves.
type preparedTwin struct {
	Twin
	desired, tags map[string]any
	leaves        []Leaf
}

func prepareTwin(t Twin) (*preparedTwin, error) {
	p := &preparedTwin{Twin: t}
	var err error
	if p.desired, err = canonicalObject(t.Desired); err != nil {
		return nil, fmt.Errorf("%s: desired: %w", t.Addr, err)
	}
	if p.tags, err = canonicalObject(t.Tags); err != nil {
		return nil, fmt.Errorf("%s: tags: %w", t.Addr, err)
	}
	p.leaves = Leaves(p.desired, p.tags)
	return p, nil
}

func canonicalObject(m map[string]any) (map[string]any, error) {
	if m == nil {
		return nil, nil
	}
	c, err := Canonical(m)
	if err != nil {
		return nil, err
	}
	return c.(map[string]any), nil
}
