// Package reconcile is iotplan's engine: it plans and applies the declared twin and method
// resources against an IoT Hub fleet, Terraform-style.
//
// Planning is split in two. Read observes the fleet through a Querier with aggregation and
// projection queries only — per managed key one GROUP BY with COUNT(), a few COUNT()s, and a
// capped number of TOP k samples — so the number of hub calls depends on the configuration,
// never on the number of devices (an S1 hub allows 20 queries a minute; a page scan of a
// million devices would be 10,000 calls). Diff is pure: it turns those observations into an
// inert, JSON-serialisable Plan of per-resource changes, each with the exact job apply will
// schedule. MakePlan does both.
//
// Semantics. Managed keys are the leaves of the declared desired/tags objects (nested objects
// merge; arrays and scalars are leaves; nil means "ensure absent"). Values are typed: 43 and
// "43" differ. A twin resource's job condition is its target AND, for each key that showed
// drift, a term written for the hub's query semantics, where a comparison with a missing key or
// between different types is undefined and excluded even under NOT:
// "NOT IS_STRING(p) OR p != '43'" selects devices missing p or holding 43. The hub cannot
// compare arrays, so when an array-valued key differs the job selects the whole target (the
// plan says so). Method resources are invoked on every apply: v0 keeps no record of earlier
// runs, and the plan says that too.
//
// Apply runs the plan's jobs one at a time (an S1 hub runs one job at a time), polls each to
// a final status reporting through a Hook, then reads failed devices from devices.jobs, and for
// method jobs the devices that answered with a non-2xx status. Job ids derive from the address
// and the plan, so applying a saved plan twice collides with its first run instead of invoking
// methods again.
//
// Imports: internal/query, internal/hubapi, schema (FromSchema only), stdlib. Never the hub
// client, the renderer or the CLI: they meet at the Querier, JobRunner and Hook interfaces.
package reconcile
