package reconcile

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/tier"
)

// sizedPlan diffs an observation of n drifted devices (one key, every device missing it).
func sizedPlan(t *testing.T, n int, tw Twin, opts PlanOptions) (*Plan, error) {
	t.Helper()
	obs := &Observed{Twins: map[string]*TwinObserved{tw.Addr: {
		Targeted: n, Converged: 0,
		Keys: map[string]*KeyObserved{"desired.floor": {Complete: true, Groups: []Group{{Devices: n}}}},
		Jobs: []JobObserved{{Keys: []string{"desired.floor"}, Condition: "NOT IS_DEFINED(properties.desired.floor)", Devices: n}},
	}}}
	opts.Now = planTime
	return Diff(&Config{Twins: []Twin{tw}}, obs, opts)
}

// TestJobSizing: a job's maxExecutionTimeInSeconds follows its devices and the tier's rate of
// job device operations, and a declared max_execution that is too short is refused at plan
// time, naming the numbers.
func TestJobSizing(t *testing.T) {
	tw := Twin{Addr: "twin.floor", Desired: map[string]any{"floor": 3}}
	s1 := tier.Tier{Name: "S1", Units: 1}
	for _, tc := range []struct {
		devices  int
		tier     tier.Tier
		expected int64 // seconds
		max      int64
	}{
		{940000, s1, 94000, 94000*3/2 + 600},                            // ~26h at 10/s
		{1000, s1, 100, 3600},                                           // the 1h floor
		{1000000, tier.Tier{Name: "S3", Units: 2}, 10000, 15000 + 600},  // 100/s
		{1000000, tier.Tier{Name: "S2", Units: 20}, 50000, 75000 + 600}, // max(10, 20)/s
		{1000000, tier.Tier{}, 0, 3600},                                 // unlimited local hub
	} {
		p, err := sizedPlan(t, tc.devices, tw, PlanOptions{Tier: tc.tier})
		if err != nil {
			t.Fatal(err)
		}
		j := p.Resources[0].Jobs[0]
		if j.ExpectedSeconds != tc.expected || j.Request.MaxExecutionTimeInSeconds != tc.max {
			t.Errorf("%d devices on %s: expected %ds max %ds, want %ds %ds", tc.devices, tc.tier, j.ExpectedSeconds, j.Request.MaxExecutionTimeInSeconds, tc.expected, tc.max)
		}
	}
	// Declared and long enough: kept as declared.
	tw.MaxExecution = 27 * time.Hour
	p, err := sizedPlan(t, 940000, tw, PlanOptions{Tier: s1})
	if err != nil || p.Resources[0].Jobs[0].Request.MaxExecutionTimeInSeconds != 27*3600 {
		t.Fatalf("declared 27h: %v %v", err, p)
	}
	// Declared too short: refused, saying why, with the assumed tier when it was assumed.
	tw.MaxExecution = time.Hour
	_, err = sizedPlan(t, 940000, tw, PlanOptions{Tier: s1, TierAssumed: true})
	if !errors.Is(err, ErrJobTooLong) {
		t.Fatalf("1h for 940,000 devices at S1: %v", err)
	}
	for _, want := range []string{"twin.floor", "940,000 devices", "about 26h7m at S1 × 1 unit", "10 job device operations/s", "assumed S1 × 1 unit", "max_execution = 1h"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	// Method jobs add the last devices' connect and response timeouts.
	m := Method{Addr: "method.m", Method: "reboot", ResponseTimeout: 30 * time.Second, ConnectTimeout: 60 * time.Second}
	p, err = Diff(&Config{Methods: []Method{m}}, &Observed{Methods: map[string]*MethodObserved{"method.m": {Targeted: 36000}}}, PlanOptions{Tier: s1, Now: planTime})
	if err != nil || p.Resources[0].Jobs[0].ExpectedSeconds != 3600+90 {
		t.Fatalf("method sizing: %v %+v", err, p.Resources[0].Jobs)
	}
}

func TestDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		45 * time.Second: "45s", 200 * time.Second: "3m20s", time.Hour: "1h", 94000 * time.Second: "26h7m", 59*time.Minute + 59*time.Second + 600*time.Millisecond: "1h",
		26*time.Hour + 7*time.Minute: "26h7m", 75 * time.Hour: "3d3h", 48 * time.Hour: "2d",
	} {
		if got := Duration(d); got != want {
			t.Errorf("Duration(%s) = %s, want %s", d, got, want)
		}
	}
}

// TestStartTimeWithinAWeek: a start_time more than 168 hours after the plan is refused at plan
// time (the hub refuses to schedule it).
func TestStartTimeWithinAWeek(t *testing.T) {
	tw := Twin{Addr: "twin.floor", Desired: map[string]any{"floor": 3}, StartTime: planTime.Add(hubapi.MaxJobStartAhead)}
	if _, err := sizedPlan(t, 10, tw, PlanOptions{}); err != nil {
		t.Fatalf("exactly 168h ahead: %v", err)
	}
	tw.StartTime = planTime.Add(hubapi.MaxJobStartAhead + time.Second)
	_, err := sizedPlan(t, 10, tw, PlanOptions{})
	if !errors.Is(err, ErrStartTooLate) || !strings.Contains(err.Error(), "twin.floor") || !strings.Contains(err.Error(), "7 days") {
		t.Fatalf("168h1s ahead: %v", err)
	}
}

// TestScheduledJobsBlockingSlotsAreNoted: on S1 (one job slot) a twin job scheduled for
// tomorrow holds the slot, so the method job after it would wait a day: the plan says so.
func TestScheduledJobsBlockingSlotsAreNoted(t *testing.T) {
	cfg := doorConfig(t)
	cfg.Twins[0].StartTime = planTime.Add(24 * time.Hour)
	for _, tc := range []struct {
		tier tier.Tier
		note bool
	}{{tier.Tier{Name: "S1", Units: 1}, true}, {tier.Tier{Name: "S2", Units: 1}, false}, {tier.Tier{}, false}} {
		p, err := MakePlan(t.Context(), &memFleet{docs: doorFleet(20)}, cfg, PlanOptions{Now: planTime, Tier: tc.tier})
		if err != nil {
			t.Fatal(err)
		}
		got := strings.Join(p.Notes, "\n")
		if strings.Contains(got, "method.lock_door waits until twin.door_location has run (from 2026-11-26 17:00:00 UTC)") != tc.note {
			t.Errorf("%s: notes %q", tc.tier, p.Notes)
		}
	}
}
