// Package reconcile is iotplan's engine: it plans and applies the declared twin and method
// resources against an IoT Hub fleet, Terraform-style.
//
// Data flows one way: Read → Diff → Apply. Read (read.go) observes the fleet through a Querier
// with aggregation and projection queries only, in IoT Hub's documented dialect (docs/query.md)
// — whether each resource has converged, per managed key one GROUP BY with COUNT(), one COUNT
// per update job with the job's own condition, and a budgeted number of TOP k samples — so the
// number of hub calls depends on the configuration, never on the number of devices. It records
// every count with the exact condition it counted (Observed). Diff (diff.go) is pure: it turns
// the configuration and those observations into an inert, JSON-serialisable Plan, whose jobs
// carry the very conditions Read counted, checks that the hub's answers agree (a resource whose
// counts disagree is marked refused), and sizes each job for the hub's tier (sizing.go). Apply
// (apply.go, poll.go) runs exactly the plan's jobs. MakePlan is Read followed by Diff.
//
// Semantics. Managed keys are the leaves of the declared desired/tags objects (nested objects
// merge; arrays and scalars are leaves; nil means "ensure absent"). Values are typed: 43 and
// "43" differ. A twin resource's update job selects the devices where a drifted key is missing
// or holds another value or type, written without type functions (conditions.go): from the
// key's complete groups, NOT IS_DEFINED(p) OR p IN [the drifted values seen, typed] OR
// IS_DEFINED(p.k) for an object; else a fixed-size typed form from comparisons alone. Values no
// documented condition can select (arrays, empty objects) make the job select the whole target
// (the plan says so); conditions over the hub's 8,192 characters are split over several jobs by
// key (jobs.go). A method resource runs on every targeted device on every apply, unless it
// declares triggers: then it runs once per device and triggers value (methods.go), in three
// jobs — mark the devices whose recorded run differs (a tag), invoke on the marked ones, unmark
// those that failed.
//
// State. With the state from the hub (PlanOptions.Prior, internal/state), a plan also removes
// the keys iotplan set that left the configuration, on the devices that still hold them
// (prior.go; everything with Destroy), refuses two resources that set a key to different
// values on shared devices (conflicts.go), notes keys an ADM configuration also manages, and
// records the queries it relied on with their answers, so that a saved plan is re-checked
// before it is applied (stale.go).
//
// Apply runs the plan's jobs one at a time, in order. Before each it waits for a free job slot
// (the tier's limit, counting scheduled jobs; a 429004 on create waits again); it polls each job
// within a share of the tier's jobs-operations quota, reporting through a Hook, then reads
// failed devices from devices.jobs, and for method jobs the devices that answered with a
// non-2xx status. Job ids derive from the plan's apply id and the job, and a Journal records
// the apply in the state before its first job: an interrupted apply is resumed (Resume), its
// jobs reattached on the hub's 409 instead of run again, or abandoned (Abandon).
//
// Imports: internal/query, internal/hubapi, internal/tier, internal/clock, internal/state (its
// record types), schema (FromSchema only), stdlib. Never the hub client, the renderer or the
// CLI: they meet at the Querier, JobRunner, Journal and Hook interfaces.
package reconcile
