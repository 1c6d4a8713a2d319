package reconcile

import (
	"time"

	"github.com/iotplan/iotplan/internal/query"
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
	// MaxExecution bounds the job; zero = PlanOptions.DefaultMaxExecution.
	MaxExecution time.Duration
	// Sensitive names managed keys ("desired.token") whose values plans must not show;
	// TargetSensitive hides the target. Both only change what is displayed.
	Sensitive       []string
	TargetSensitive bool
}

// Method is a method resource: the direct method is invoked on every device its target
// selects, on every apply (v0 does not remember earlier runs; the plan says so).
type Method struct {
	Addr            string // "method.lock_door"
	Target          query.Expr
	Method          string
	Payload         any           // any JSON value; nil = null
	ResponseTimeout time.Duration // zero = the hub's default, 30s
	ConnectTimeout  time.Duration // zero = the device must be connected already
	MaxExecution    time.Duration // zero = PlanOptions.DefaultMaxExecution
	StartTime       time.Time     // zero = when applied
	// PayloadSensitive and TargetSensitive hide the payload and the target in plans.
	PayloadSensitive bool
	TargetSensitive  bool
}

// PlanOptions tune planning. The zero value is usable.
type PlanOptions struct {
	// Hub is the hub's host name, recorded in the plan (never a connection string).
	Hub string
	// Now is the plan's creation time; zero = time.Now().
	Now time.Time
	// SamplesPerTransition is how many example device ids to fetch per transition (TOP n);
	// zero = 3.
	SamplesPerTransition int
	// SampleQueriesPerResource caps the sample queries per resource, so the number of hub
	// calls never grows with the fleet; zero = 5, negative = none.
	SampleQueriesPerResource int
	// MaxGroups is how many distinct values of a key a plan lists (GROUP BY … TOP); devices
	// with further values are counted together. Zero = 20.
	MaxGroups int
	// DefaultMaxExecution is a job's maxExecutionTimeInSeconds when the resource sets none;
	// zero = 1h (the SDKs' default).
	DefaultMaxExecution time.Duration
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
		o.MaxGroups = 20
	}
	if o.DefaultMaxExecution <= 0 {
		o.DefaultMaxExecution = time.Hour
	}
	return o
}

// defaultResponseTimeout is the hub's default for responseTimeoutInSeconds; plans state it
// explicitly so the job shows what will happen.
const defaultResponseTimeout = 30 * time.Second
