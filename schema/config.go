package schema

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/query"
)

// Config is a loaded, evaluated and validated configuration. Every object in
// it carries the source range it came from, so later stages (plan, apply)
// can report problems against the file.
type Config struct {
	// Files holds every parsed file by name, for rendering diagnostics
	// (WriteDiagnostics or hcl.NewDiagnosticTextWriter).
	Files map[string]*hcl.File

	Hub       *Hub        // nil when there is no hub block
	Variables []*Variable // the root module's, in declaration order
	// Twins and Methods are every resource instance of the root module and of the modules it
	// calls: one per block, or one per for_each key or count index, in declaration order
	// (files in load order; a module's resources where the module block is).
	Twins   []*Twin
	Methods []*Method
	// Outputs are the root module's output blocks, evaluated at load; those that use plan
	// facts (device counts) are unknown until EvalOutputs.
	Outputs []*Output
	// Modules are the module instances loaded, by address ("module.site"), in load order.
	Modules []*ModuleInstance

	root *loader // the root module's loader, for EvalOutputs
}

// Twin returns the twin instance with the given address ("twin.doors",
// `module.site.twin.doors["41"]`), or nil.
func (c *Config) Twin(addr string) *Twin {
	for _, t := range c.Twins {
		if t.Addr == addr {
			return t
		}
	}
	return nil
}

// Method returns the method instance with the given address, or nil.
func (c *Config) Method(addr string) *Method {
	for _, m := range c.Methods {
		if m.Addr == addr {
			return m
		}
	}
	return nil
}

// Addresses lists the address of every resource instance, twins then methods.
func (c *Config) Addresses() []string {
	out := make([]string, 0, len(c.Twins)+len(c.Methods))
	for _, t := range c.Twins {
		out = append(out, t.Addr)
	}
	for _, m := range c.Methods {
		out = append(out, m.Addr)
	}
	return out
}

// ModuleInstance is one instance of a module block.
type ModuleInstance struct {
	Addr      string // "module.site", `module.site["east"]`, "module.site.module.doors"
	Source    string // as written: "./modules/door-site"
	Dir       string // the directory it was loaded from
	DeclRange hcl.Range
}

// Output is an output block of the root module.
type Output struct {
	Name        string
	Description string
	Sensitive   bool
	// Value is the value at load, unmarked; unknown (not wholly known) when it depends on
	// plan facts, until EvalOutputs.
	Value     cty.Value
	DeclRange hcl.Range
}

// Facts are what a plan knows about one resource instance, for outputs:
// twin.<name>.targeted_devices and twin.<name>.devices.
type Facts struct {
	TargetedDevices int // the devices its target selects
	Devices         int // the devices its jobs change
}

// Hub is the hub block. The CLI falls back to IOTHUB_CONNECTION_STRING when
// a configuration has none.
type Hub struct {
	// ConnectionString is a service connection string, "" when the block has
	// none (the CLI then uses IOTHUB_CONNECTION_STRING). It is a secret: it is
	// never part of a diagnostic, String, GoString or MarshalJSON.
	ConnectionString string
	// Tier and Units are the hub's tier ("F1", "S1", "S2", "S3") and unit
	// count, validated with internal/tier; Tier "" = not declared.
	Tier  string
	Units int
	// State names the state this configuration keeps on the hub (internal/state);
	// "" = not declared (the CLI's -state flag, else "default").
	State     string
	DeclRange hcl.Range
}

const redacted = "(sensitive value)"

// String never reveals the connection string.
func (h *Hub) String() string {
	return fmt.Sprintf("hub { connection_string = %s, tier = %q, units = %d, state = %q }", redacted, h.Tier, h.Units, h.State)
}

// GoString makes %#v as safe as %v.
func (h *Hub) GoString() string {
	return fmt.Sprintf("&schema.Hub{ConnectionString:%q, Tier:%q, Units:%d, State:%q}", redacted, h.Tier, h.Units, h.State)
}

// MarshalJSON keeps the connection string out of saved plans and logs.
func (h *Hub) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]any{"connection_string": redacted, "tier": h.Tier, "units": h.Units, "state": h.State})
}

// Variable is a variable block with its resolved value.
type Variable struct {
	Name        string
	Description string
	Type        cty.Type // cty.DynamicPseudoType when the block has no type or type = any
	Sensitive   bool
	Nullable    bool // nullable = false refuses null (the default, if any, is used instead)
	// Value is the resolved value (see Load for the order of sources), unmarked, converted
	// to Type. cty.NilVal when it could not be resolved (a diagnostic says why); unknown
	// when Options.Validate found no value for it.
	Value cty.Value
	// Source says where Value came from: "default", "-var", "-var-file FILE", "FILE" (an
	// auto-loaded variable file), "IOTPLAN_VAR_<name>", "module.<name>" (an input), or
	// SavedPlanSource (applying a saved plan).
	Source    string
	DeclRange hcl.Range
}

// Twin is a twin block: desired properties and tags for every device its
// target selects.
type Twin struct {
	Name      string // the block's label
	Addr      string // "twin.<name>", `twin.<name>["key"]`, "module.<m>.twin.<name>[0]"
	Module    string // the module instance's address; "" for the root module
	Key       string // the instance key as written in Addr (`["key"]`, "[0]"); "" without for_each/count
	DeclRange hcl.Range

	Target      query.Expr // parsed target condition
	TargetSrc   string     // the evaluated target text, as written to the hub
	TargetRange hcl.Range  // the target expression

	// Desired and Tags are the managed keys, nil when the attribute is absent
	// (= not managed). Values are JSON-like: string, float64, bool, nil
	// (= ensure the key is absent), map[string]any (nested objects: only the
	// declared keys are managed, others are left alone), []any (arrays are
	// managed as a whole).
	Desired      map[string]any
	DesiredRange hcl.Range // zero when absent
	Tags         map[string]any
	TagsRange    hcl.Range // zero when absent

	// Sensitive names the managed keys whose values come from sensitive variables, as plans
	// show keys ("desired.token", "tags.owner"; "desired" when the whole section does), so
	// that plans print "(sensitive value)" in their place. TargetSensitive: the target uses
	// a sensitive value.
	Sensitive       []string
	TargetSensitive bool

	// MaxExecution bounds each update job (whole seconds, ≥ 1s); zero = iotplan sizes it
	// from the devices and the hub's tier. StartTime schedules the jobs; zero = now.
	MaxExecution time.Duration
	StartTime    time.Time

	// Rollout (a rollout block) applies the change in waves; nil = to every device at once.
	// Converge (a converge block) makes apply wait, after each wave, until devices report
	// the desired values; nil = no waiting.
	Rollout  *Rollout
	Converge *Converge

	// KeepOnRemoval (lifecycle { keep_on_removal = true }): when the block or one of its keys
	// leaves the configuration, iotplan forgets the keys instead of removing them from the
	// devices.
	KeepOnRemoval bool
}

// Method is a method block: a direct method invoked, as one scheduled hub
// job, on every device its target selects.
type Method struct {
	Name      string // the block's label
	Addr      string // "method.<name>", with module path and instance key as Twin.Addr
	Module    string
	Key       string
	DeclRange hcl.Range

	Target      query.Expr
	TargetSrc   string
	TargetRange hcl.Range

	Method  string // the direct method's name on the device
	Payload any    // JSON-like (see Twin.Desired); nil = JSON null

	// PayloadSensitive and TargetSensitive: they use sensitive values (plans hide them).
	PayloadSensitive bool
	TargetSensitive  bool

	ResponseTimeout time.Duration // default 30s; the hub accepts 5s..300s; whole seconds
	ConnectTimeout  time.Duration // default 0 (devices must be online); 0..300s; whole seconds
	// MaxExecution bounds the job (whole seconds, ≥ 1s); zero = iotplan sizes it from the
	// devices and the hub's tier.
	MaxExecution time.Duration
	StartTime    time.Time // zero = start now; a time in the past also means now

	// Triggers, when TriggersSet (any JSON value), makes the method run once per device for
	// each value: a device runs it only when the triggers differ from those of its last
	// successful run. Unset = run on every apply. TriggersSensitive: it uses sensitive values.
	Triggers          any
	TriggersSet       bool
	TriggersSensitive bool

	// Rollout (a rollout block) invokes the method in waves; nil = on every device at once.
	Rollout *Rollout
}

// Rollout is a rollout block: the change reaches the devices in waves, each one job over the
// next slice of the devices the resource changes, stopping when a wave fails too much.
type Rollout struct {
	// Waves are cumulative shares of the devices the resource changes, in order: a percentage
	// (Percent > 0, "10%") or a device count (Count > 0, "50"). The last is "100%".
	Waves []Wave
	// MaxFailureRatio aborts the rollout when a wave's failed devices ÷ attempted devices
	// exceed it (0..1); negative = not set. MaxFailures aborts it when a wave has more failed
	// devices than that; negative = not set.
	MaxFailureRatio float64
	MaxFailures     int
	Pause           time.Duration // between waves
	DeclRange       hcl.Range
}

// Wave is one cumulative step of a rollout.
type Wave struct {
	Text    string  // as written: "10%", "50"
	Percent float64 // 0 < Percent ≤ 100, or 0 for a count
	Count   int     // > 0 for a count, else 0
}

// Converge is a converge block: after each wave, apply waits until the share MinRatio of the
// targeted devices report the desired values (properties.reported equals properties.desired
// for the managed keys), or Timeout passes.
type Converge struct {
	Timeout   time.Duration
	MinRatio  float64
	DeclRange hcl.Range
}

// Defaults of rollout and converge blocks.
const (
	DefaultConvergeTimeout  = 30 * time.Minute
	DefaultConvergeMinRatio = 0.95
	// MaxWaves bounds a rollout: each wave is one job, and jobs run one at a time on S1.
	MaxWaves = 20
)

// Defaults and hub limits for method blocks.
const (
	DefaultResponseTimeout = 30 * time.Second
	MinResponseTimeout     = 5 * time.Second
	MaxResponseTimeout     = 300 * time.Second
	DefaultConnectTimeout  = 0
	MaxConnectTimeout      = 300 * time.Second
	// MaxPayloadBytes is the hub's limit on a direct method's JSON payload.
	MaxPayloadBytes = 128 * 1024
)

// Hub limits for twin documents, as internal/hubapi holds them for the local hub and the
// client alike (the device-twin guide's "Tags and properties format" and "Device twin size").
const (
	MaxStringBytes  = hubapi.MaxTwinStringBytes
	MaxDepth        = hubapi.MaxTwinDepth // nesting levels including the section itself (tags, desired)
	MaxTagsBytes    = hubapi.MaxTagsBytes
	MaxDesiredBytes = hubapi.MaxPropertiesBytes
	MaxSafeInteger  = hubapi.MaxTwinInteger // 2^52-1
	MinSafeInteger  = hubapi.MinTwinInteger // -2^52
)
