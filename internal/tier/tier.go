// Package tier holds Azure IoT Hub's tiers and units and what each allows: the operation
// classes the hub throttles, the rate of each class on a tier with a number of units, how
// many jobs may be active at once, and which unit counts a tier accepts. It is the one table
// both sides read: the local hub's throttles (internal/hub/throttle) enforce it, and iotplan's
// hub client (internal/hubclient) paces itself to it, so the two cannot disagree.
//
// Sources. Every rate and the job concurrency are Azure's documented figures:
//
//	https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-quotas-throttling
//
// ("Operation throttles" and "Other limits"; "/unit" figures are multiplied by the unit
// count, "higher of" figures take the larger). The unit ranges are Azure's:
//
//	https://learn.microsoft.com/azure/iot-hub/iot-hub-scaling ("up to 200 units for … S1,
//	or S2 …, or up to 10 units for … S3"; the free tier has one unit)
//
// The basic tiers (B1–B3) have no jobs, twins or direct methods, which iotplan needs, so they
// are not tiers here.
//
// Metering (bucket.go). Both sides meter a class with the same token bucket (Bucket) and the
// same request cost (Cost: one token a request, direct methods one per MethodChunk of
// payload). How a hub shapes bursts around these rates — the bucket's capacity, how long a
// request may wait — is not documented and is not in this package: the local hub's choices
// are internal/hub/throttle's, the client's internal/hubclient's.
//
// Imports: stdlib only.
package tier

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
)

// Class is an operation class with its own throttle. Its value is the "Operation type" the
// hub names in a 429 ThrottlingException message.
type Class string

// The operation classes of the quotas page's "Operation throttles" table.
const (
	RegistryOps       Class = "IdentityRegistryOperations" // device/module identity create/get/list/update/delete
	DeviceConnections Class = "NewDeviceConnections"       // device CONNECTs (rate, not total)
	DeviceToCloud     Class = "DeviceToCloudSends"
	CloudToDevice     Class = "CloudToDeviceSends"
	Queries           Class = "Queries"
	DirectMethods     Class = "DirectMethods" // metered in MethodChunk of request payload
	TwinReads         Class = "TwinReads"     // device and module twins
	TwinUpdates       Class = "TwinUpdates"   // device and module twins
	JobsOps           Class = "JobsOperations"
	JobDeviceOps      Class = "JobsDeviceOperations" // a job's per-device twin updates and method calls
	Configurations    Class = "Configurations"       // ADM configurations and edge deployments CRUD
)

// Classes lists every class, for tables and tests.
func Classes() []Class {
	return []Class{RegistryOps, DeviceConnections, DeviceToCloud, CloudToDevice, Queries, DirectMethods,
		TwinReads, TwinUpdates, JobsOps, JobDeviceOps, Configurations}
}

// Names are the tiers with throttles, in order (those of maxUnits). The empty name is no
// tier: unknown to a client, unlimited on the local hub.
var Names = slices.Sorted(maps.Keys(maxUnits))

// MethodChunk is the direct-methods meter: the throttle counts request payload in 4 KB
// chunks (quotas page, "Direct methods" footnote), so DirectMethods rates are chunks/s.
const MethodChunk = 4096

// maxUnits is how many units a tier can have (iot-hub-scaling: 200 on S1/S2, 10 on S3; the
// free tier is one unit).
var maxUnits = map[string]int{"F1": 1, "S1": 200, "S2": 200, "S3": 10}

// Sentinel errors of Parse; the errors it returns wrap one of them and say which values are
// allowed.
var (
	ErrUnknownTier = errors.New("unknown IoT Hub tier")
	ErrUnits       = errors.New("IoT Hub units out of range")
)

// Tier is an IoT Hub tier with its unit count. The zero Tier is no tier: Known is false,
// every rate is 0 (unlimited) and MaxConcurrentJobs is 0.
type Tier struct {
	Name  string // "F1", "S1", "S2", "S3"; "" = none
	Units int    // 1 … the tier's maximum; 0 only with no tier
}

// Parse checks a tier name (case-insensitive, "" = none) and unit count (0 = 1). Errors wrap
// ErrUnknownTier or ErrUnits and name the allowed values.
func Parse(name string, units int) (Tier, error) {
	n := strings.ToUpper(strings.TrimSpace(name))
	if units == 0 {
		units = 1
	}
	if n == "" {
		if units != 1 {
			return Tier{}, wrapf(ErrUnits, "units (%d) need a tier (%s); without one the local hub is unlimited", units, namesText())
		}
		return Tier{}, nil
	}
	if !slices.Contains(Names, n) {
		return Tier{}, wrapf(ErrUnknownTier, "unknown IoT Hub tier %q: use %s (or none for an unlimited hub)", name, namesText())
	}
	if limit := maxUnits[n]; units < 1 || units > limit {
		if n == "F1" {
			return Tier{}, wrapf(ErrUnits, "the F1 (free) tier has exactly 1 unit, not %d", units)
		}
		return Tier{}, wrapf(ErrUnits, "units must be from 1 to %d on %s, not %d", limit, n, units)
	}
	return Tier{Name: n, Units: units}, nil
}

// Known reports whether t is a tier (not the zero Tier).
func (t Tier) Known() bool { return t.Name != "" }

// String is "S1 × 1 unit", "S2 × 3 units", or "no tier".
func (t Tier) String() string {
	if !t.Known() {
		return "no tier"
	}
	u := max(t.Units, 1)
	if u == 1 {
		return t.Name + " × 1 unit"
	}
	return fmt.Sprintf("%s × %d units", t.Name, u)
}

// Rate is class c's rate on t in operations per second (DirectMethods: MethodChunk chunks
// per second); 0 = unlimited (no tier, or a class the quotas page does not throttle).
func (t Tier) Rate(c Class) float64 { return rateOf(t.Name, max(t.Units, 1), c) }

// JobDeviceOpsPerSecond is how many devices the hub's jobs reach per second, all jobs
// together (0 = unlimited).
func (t Tier) JobDeviceOpsPerSecond() float64 { return t.Rate(JobDeviceOps) }

// MaxConcurrentJobs is how many jobs may be active at once (quotas page, "Other limits":
// 1 on F1 and S1, 5 on S2, 10 on S3); 0 = unlimited (no tier).
func (t Tier) MaxConcurrentJobs() int {
	switch t.Name {
	case "F1", "S1":
		return 1
	case "S2":
		return 5
	case "S3":
		return 10
	}
	return 0
}

// tierError is a Parse error: its own message, and the sentinel it wraps.
type tierError struct {
	sentinel error
	msg      string
}

func (e *tierError) Error() string { return e.msg }
func (e *tierError) Unwrap() error { return e.sentinel }

// namesText is Names for a message: "F1, S1, S2 or S3".
func namesText() string {
	n := len(Names)
	if n < 2 {
		return strings.Join(Names, "")
	}
	return strings.Join(Names[:n-1], ", ") + " or " + Names[n-1]
}

func wrapf(sentinel error, format string, args ...any) error {
	return &tierError{sentinel: sentinel, msg: fmt.Sprintf(format, args...)}
}

// quota is one cell of the quotas page's "Operation throttles" table, in operations per
// second: the higher of floor, or perUnit times the hub's units.
type quota struct{ floor, perUnit float64 }

// perMin is a per-minute figure of the table as a per-second rate.
func perMin(n float64) float64 { return n / 60 }

// quotas are the table's cells per class: for F1 and S1, for S2, and for S3. DirectMethods are
// in MethodChunk (4 KB) chunks.
var quotas = map[Class][3]quota{
	RegistryOps:       {{0, perMin(100)}, {0, perMin(100)}, {0, perMin(5000)}}, // 100/min/unit; S3 5,000/min/unit
	JobsOps:           {{0, perMin(100)}, {0, perMin(100)}, {0, perMin(5000)}},
	CloudToDevice:     {{0, perMin(100)}, {0, perMin(100)}, {0, perMin(5000)}},
	DeviceConnections: {{100, 12}, {0, 120}, {0, 6000}}, // higher of 100/s or 12/s/unit; S2 120/s/unit; S3 6,000/s/unit
	DeviceToCloud:     {{100, 12}, {0, 120}, {0, 6000}},
	Queries:           {{0, perMin(20)}, {0, perMin(20)}, {0, perMin(1000)}}, // 20/min/unit; S3 1,000/min/unit
	DirectMethods:     {{0, 160 / 4}, {0, 480 / 4}, {0, 24 * 1024 / 4}},      // 160 KB/s/unit; S2 480 KB/s/unit; S3 24 MB/s/unit
	TwinReads:         {{100, 0}, {100, 10}, {0, 500}},                       // 100/s; S2 higher of 100/s or 10/s/unit; S3 500/s/unit
	TwinUpdates:       {{50, 0}, {50, 5}, {0, 250}},                          // 50/s; S2 higher of 50/s or 5/s/unit; S3 250/s/unit
	JobDeviceOps:      {{10, 0}, {10, 1}, {0, 50}},                           // 10/s; S2 higher of 10/s or 1/s/unit; S3 50/s/unit
	Configurations:    {{0, perMin(20)}, {0, perMin(20)}, {0, perMin(20)}},   // 20/min/unit on every tier
}

// rateOf is Tier.Rate: the rate of class c on tier name (upper case, as Parse returns it) with
// units, in operations per second (DirectMethods in MethodChunk chunks); 0 for no or an
// unknown tier or class.
func rateOf(name string, units int, c Class) float64 {
	cells, ok := quotas[c]
	if _, known := maxUnits[name]; !known || !ok {
		return 0
	}
	col := 0
	switch name {
	case "S2":
		col = 1
	case "S3":
		col = 2
	}
	q := cells[col]
	return math.Max(q.floor, q.perUnit*float64(units))
}
