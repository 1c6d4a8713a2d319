package reconcile

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/iotplan/iotplan/internal/hubapi"
)

// ErrJobTooLong: a job cannot reach its devices within the max_execution its resource
// declares, at the hub's rate of job device operations. Plans refuse such a resource.
var ErrJobTooLong = errors.New("the job cannot finish within its max_execution")

// ErrStartTooLate: a job's start_time is further ahead than the hub schedules jobs.
var ErrStartTooLate = errors.New("start_time is too far ahead")

// checkStart refuses a start time more than hubapi.MaxJobStartAhead (168 hours) after the
// plan's creation: the hub would refuse the job (docs/azure.md §2), so the plan does first.
func checkStart(addr string, start, now time.Time) error {
	if start.IsZero() || !start.After(now.Add(hubapi.MaxJobStartAhead)) {
		return nil
	}
	return fmt.Errorf("%s: %w: %s is %s after this plan; IoT Hub schedules jobs at most %s (7 days) ahead",
		addr, ErrStartTooLate, start.UTC().Format(time.RFC3339), Duration(start.Sub(now)), Duration(hubapi.MaxJobStartAhead))
}

// Sizing. A hub's jobs reach devices at its tier's rate of job device operations (10/s on F1
// and S1, max(10, units)/s on S2, 50/s per unit on S3: internal/tier), all jobs together, so a
// job over n devices needs at least n/rate seconds; a method job's last devices may also take
// their connect and response timeouts. The hub stops a job at its maxExecutionTimeInSeconds,
// leaving the devices it did not reach undone, so:
//   - a declared max_execution shorter than that is an error at plan time (ErrJobTooLong);
//   - otherwise the job gets 1.5 × the expected time plus 10 minutes for the hub to start it
//     (Azure does not document how soon a queued job starts), and never less than
//     PlanOptions.DefaultMaxExecution (1h, the SDKs' default).
//
// Without a tier (the local hub's default, unlimited) nothing is expected and the default
// applies.
const (
	sizingFactor = 1.5
	sizingSlack  = 10 * time.Minute
)

// sizeJob sets the job's expected duration and its maxExecutionTimeInSeconds. tail is what the
// last device may add (a method's connect and response timeouts).
func sizeJob(pj *PlannedJob, addr string, declared, tail time.Duration, opts PlanOptions) error {
	if pj.Request.StartTime != nil {
		if err := checkStart(addr, *pj.Request.StartTime, opts.Now); err != nil {
			return err
		}
	}
	rate := opts.Tier.JobDeviceOpsPerSecond()
	var expected time.Duration
	if rate > 0 {
		expected = time.Duration(math.Ceil(float64(pj.Devices)/rate))*time.Second + tail
		pj.ExpectedSeconds = int64(expected / time.Second)
	}
	limit := declared
	switch {
	case declared > 0 && expected > declared:
		assumed := ""
		if opts.TierAssumed {
			assumed = " (the tier is not declared: assumed " + opts.Tier.String() + ")"
		}
		return fmt.Errorf("%s: %w: it would reach %s devices, about %s at %s (%g job device operations/s)%s, more than max_execution = %s; raise max_execution, or plan for more units or a higher tier",
			addr, ErrJobTooLong, countText(pj.Devices), Duration(expected), opts.Tier, rate, assumed, Duration(declared))
	case declared <= 0:
		limit = opts.DefaultMaxExecution
		if rate > 0 {
			limit = max(limit, time.Duration(float64(expected)*sizingFactor)+sizingSlack)
		}
	}
	pj.Request.MaxExecutionTimeInSeconds = seconds(limit, opts.DefaultMaxExecution)
	return nil
}

// seconds rounds d up to whole seconds; def when d is zero or negative.
func seconds(d, def time.Duration) int64 {
	if d <= 0 {
		d = def
	}
	return int64((d + time.Second - 1) / time.Second)
}

// TimeText is a time as iotplan prints it everywhere: UTC to the second, "2026-11-26 06:00:00 UTC".
func TimeText(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }

// Duration is a duration as plans print it, at most two units, rounded to the smaller:
// "45s", "3m20s", "26h", "2h5m", "3d4h".
func Duration(d time.Duration) string {
	if d = d.Round(time.Second); d < time.Minute {
		return fmt.Sprintf("%ds", int64(d/time.Second))
	}
	if d < time.Hour {
		s := int64(d / time.Second)
		return twoUnits(s/60, "m", s%60, "s")
	}
	if d = d.Round(time.Minute); d < 48*time.Hour {
		m := int64(d / time.Minute)
		return twoUnits(m/60, "h", m%60, "m")
	}
	h := int64(d.Round(time.Hour) / time.Hour)
	return twoUnits(h/24, "d", h%24, "h")
}

func twoUnits(a int64, ua string, b int64, ub string) string {
	if b == 0 {
		return fmt.Sprintf("%d%s", a, ua)
	}
	return fmt.Sprintf("%d%s%d%s", a, ua, b, ub)
}
