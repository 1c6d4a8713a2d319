package tier

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
)

// The quotas page's "Operation throttles" table, per second
// (https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-quotas-throttling).
func TestRatesPerTierAndUnits(t *testing.T) {
	cases := []struct {
		name  string
		units int
		c     Class
		want  float64
	}{
		{"S1", 1, Queries, 20.0 / 60},
		{"S1", 3, Queries, 60.0 / 60},
		{"F1", 1, Queries, 20.0 / 60},
		{"S2", 1, Queries, 20.0 / 60},
		{"S3", 1, Queries, 1000.0 / 60},
		{"S3", 2, Queries, 2000.0 / 60},
		{"S1", 1, TwinReads, 100},
		{"S1", 50, TwinReads, 100}, // not per unit on S1
		{"S2", 5, TwinReads, 100},  // max(100, 10/unit)
		{"S2", 20, TwinReads, 200},
		{"S3", 2, TwinReads, 1000},
		{"F1", 1, TwinUpdates, 50},
		{"S2", 20, TwinUpdates, 100},
		{"S3", 1, TwinUpdates, 250},
		{"F1", 1, JobDeviceOps, 10},
		{"S1", 1, JobDeviceOps, 10},
		{"S1", 100, JobDeviceOps, 10},
		{"S2", 5, JobDeviceOps, 10},
		{"S2", 30, JobDeviceOps, 30},
		{"S3", 2, JobDeviceOps, 100},
		{"S1", 1, JobsOps, 100.0 / 60},
		{"S1", 2, JobsOps, 200.0 / 60},
		{"S2", 1, JobsOps, 100.0 / 60},
		{"S3", 1, JobsOps, 5000.0 / 60},
		{"S1", 1, RegistryOps, 100.0 / 60},
		{"S3", 1, RegistryOps, 5000.0 / 60},
		{"S1", 1, DeviceConnections, 100},
		{"S1", 10, DeviceConnections, 120},
		{"S2", 1, DeviceConnections, 120},
		{"S3", 1, DeviceConnections, 6000},
		{"S1", 1, DirectMethods, 40},  // 160 KB/s / 4 KB
		{"S2", 1, DirectMethods, 120}, // 480 KB/s
		{"S3", 1, DirectMethods, 6144},
		{"S1", 4, Configurations, 80.0 / 60},
		{"S1", 1, CloudToDevice, 100.0 / 60},
		{"XX", 1, Queries, 0},
		{"", 1, Queries, 0},
		{"S1", 1, Class("Nope"), 0},
	}
	for _, c := range cases {
		tr := Tier{Name: c.name, Units: c.units}
		if got := tr.Rate(c.c); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("%v.Rate(%s) = %v, want %v", tr, c.c, got, c.want)
		}
	}
	for _, name := range Names {
		for _, c := range Classes() {
			if (Tier{Name: name, Units: 1}).Rate(c) <= 0 {
				t.Errorf("%s %s has no rate", name, c)
			}
		}
	}
}

func TestJobLimitsPerTier(t *testing.T) {
	cases := []struct {
		name      string
		units     int
		jobs      int
		devicesPS float64
	}{
		{"", 0, 0, 0},
		{"F1", 1, 1, 10},
		{"S1", 1, 1, 10},
		{"S1", 200, 1, 10},
		{"S2", 1, 5, 10},
		{"S2", 40, 5, 40},
		{"S3", 1, 10, 50},
		{"S3", 10, 10, 500},
	}
	for _, c := range cases {
		tr, err := Parse(c.name, c.units)
		if err != nil {
			t.Fatal(err)
		}
		if tr.MaxConcurrentJobs() != c.jobs || tr.JobDeviceOpsPerSecond() != c.devicesPS {
			t.Errorf("%v: %d jobs at %v devices/s, want %d at %v", tr, tr.MaxConcurrentJobs(),
				tr.JobDeviceOpsPerSecond(), c.jobs, c.devicesPS)
		}
	}
}

func TestParse(t *testing.T) {
	good := []struct {
		name  string
		units int
		want  Tier
		str   string
	}{
		{"", 0, Tier{}, "no tier"},
		{"", 1, Tier{}, "no tier"},
		{"s1", 0, Tier{"S1", 1}, "S1 × 1 unit"},
		{" S2 ", 3, Tier{"S2", 3}, "S2 × 3 units"},
		{"f1", 1, Tier{"F1", 1}, "F1 × 1 unit"},
		{"S1", 200, Tier{"S1", 200}, "S1 × 200 units"},
		{"S3", 10, Tier{"S3", 10}, "S3 × 10 units"},
	}
	for _, g := range good {
		got, err := Parse(g.name, g.units)
		if err != nil || got != g.want || got.String() != g.str || got.Known() != (g.want.Name != "") {
			t.Errorf("Parse(%q, %d) = %+v %q %v, want %+v %q", g.name, g.units, got, got.String(), err, g.want, g.str)
		}
	}
	bad := []struct {
		name     string
		units    int
		sentinel error
		want     string
	}{
		{"S4", 1, ErrUnknownTier, `unknown IoT Hub tier "S4": use F1, S1, S2 or S3`},
		{"B1", 1, ErrUnknownTier, "unknown IoT Hub tier"},
		{"F1", 2, ErrUnits, "the F1 (free) tier has exactly 1 unit, not 2"},
		{"S1", 201, ErrUnits, "units must be from 1 to 200 on S1, not 201"},
		{"S3", 11, ErrUnits, "units must be from 1 to 10 on S3, not 11"},
		{"S2", -1, ErrUnits, "from 1 to 200"},
		{"", 3, ErrUnits, "units (3) need a tier (F1, S1, S2 or S3)"},
	}
	for _, b := range bad {
		_, err := Parse(b.name, b.units)
		if !errors.Is(err, b.sentinel) || !strings.Contains(err.Error(), b.want) {
			t.Errorf("Parse(%q, %d) = %v, want %v containing %q", b.name, b.units, err, b.sentinel, b.want)
		}
	}
}

// A Tier built without Parse and no units is one unit, never a rate of 0 (which would mean
// unlimited).
func TestZeroUnitsIsOneUnit(t *testing.T) {
	if got := (Tier{Name: "S1"}).Rate(Queries); got != 20.0/60 {
		t.Errorf("S1 with units 0: %v queries/s", got)
	}
	if (Tier{}).Rate(Queries) != 0 || (Tier{}).Known() {
		t.Error("the zero Tier must be unknown and unlimited")
	}
}

// Names are the tiers of the units table, in order.
func TestNames(t *testing.T) {
	if want := []string{"F1", "S1", "S2", "S3"}; !slices.Equal(Names, want) {
		t.Errorf("Names = %v, want %v", Names, want)
	}
	for _, n := range Names {
		if _, err := Parse(n, 1); err != nil {
			t.Errorf("Parse(%q, 1): %v", n, err)
		}
	}
}
