package render

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/reconcile"
)

// cursorUpErase is what mpb writes before each redraw: up N lines, erase to the end.
var cursorUpErase = regexp.MustCompile(`\x1b\[([0-9]+)A\x1b\[J`)

// screen is what a terminal shows after out: each redraw erases the lines of the previous
// one.
func screen(out string) string {
	var lines []string
	for len(out) > 0 {
		loc := cursorUpErase.FindStringSubmatchIndex(out)
		text := out
		if loc != nil {
			text = out[:loc[0]]
		}
		if text != "" {
			parts := strings.SplitAfter(text, "\n")
			if len(lines) > 0 && !strings.HasSuffix(lines[len(lines)-1], "\n") {
				lines[len(lines)-1] += parts[0]
				parts = parts[1:]
			}
			for _, p := range parts {
				if p != "" {
					lines = append(lines, p)
				}
			}
		}
		if loc == nil {
			break
		}
		n, _ := strconv.Atoi(out[loc[2]:loc[3]])
		lines = lines[:max(0, len(lines)-n)]
		out = out[loc[1]:]
	}
	return strings.Join(lines, "")
}

// barsRun drives a BarView through hook calls and returns the screen it leaves. The refresh
// is an hour, so the only redraws are those Close and the bars' ends cause: the output does
// not depend on timing.
func barsRun(t *testing.T, width int, run func(v *BarView)) string {
	t.Helper()
	var b bytes.Buffer
	v := NewBarView(&b, BarOptions{Width: width, Refresh: time.Hour})
	run(v)
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "\r") {
		t.Errorf("carriage returns in bar output:\n%q", b.String())
	}
	return screen(b.String())
}

// A job still running when apply stops keeps its bar, showing the hub's counts, the job's
// rate and the ETA, within the terminal's width.
func TestBarViewJobBar(t *testing.T) {
	rc := &tutorialPlan().Resources[0]
	job := rc.Jobs[0].Request.JobID
	out := barsRun(t, 120, func(v *BarView) {
		v.JobCreated(rc, hubapi.JobResponse{JobID: job, Status: "queued"})
		v.JobProgress(rc, reconcile.Progress{JobID: job, Status: "running", Elapsed: 10 * time.Second,
			Stats: hubapi.DeviceJobStatistics{DeviceCount: 300, SucceededCount: 117, FailedCount: 3, RunningCount: 10, PendingCount: 170}})
	})
	for _, want := range []string{
		"twin.door_location: updating twins on 9,815 devices (job " + job + ")\n", // the plain line, above the bar
		"twin.door_location",
		"[", "]",
		"117 succeeded · 3 failed · 180 pending · 12/s · ETA 15s",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
	for line := range strings.SplitSeq(out, "\n") {
		if n := len([]rune(line)); n > 120 {
			t.Errorf("line of %d columns, wider than the terminal: %q", n, line)
		}
	}
}

// A job that ends is replaced by its line: what stays on the terminal is what a plain run
// writes, without the periodic progress lines.
func TestBarViewJobDoneLeavesTheLine(t *testing.T) {
	out := barsRun(t, 100, func(v *BarView) { applyRun(v, tutorialPlan()) })
	var plain bytes.Buffer
	pv := NewApplyView(&plain, ApplyOptions{})
	applyRun(pv, tutorialPlan())
	for line := range strings.SplitSeq(strings.TrimSpace(plain.String()), "\n") {
		if strings.Contains(line, " — ") && !strings.Contains(line, " after ") {
			continue // a progress line: the bar stood for it
		}
		if !strings.Contains(out, line+"\n") {
			t.Errorf("plain line %q missing from\n%s", line, out)
		}
	}
	if strings.Contains(out, "succeeded · ") {
		t.Errorf("a finished job's bar is still drawn:\n%s", out)
	}
}

// A narrow terminal cuts the text beside a bar rather than wrapping the line.
func TestBarViewNarrowTerminal(t *testing.T) {
	rc := &tutorialPlan().Resources[0]
	job := rc.Jobs[0].Request.JobID
	out := barsRun(t, 60, func(v *BarView) {
		v.JobCreated(rc, hubapi.JobResponse{JobID: job, Status: "queued"})
		v.JobProgress(rc, reconcile.Progress{JobID: job, Status: "running", Elapsed: 10 * time.Second,
			Stats: hubapi.DeviceJobStatistics{DeviceCount: 300, SucceededCount: 120}})
	})
	found := false
	for line := range strings.SplitSeq(out, "\n") {
		if strings.Contains(line, "[") {
			found = true
			if n := len([]rune(line)); n > 60 {
				t.Errorf("bar line of %d columns on a 60-column terminal: %q", n, line)
			}
		}
	}
	if !found {
		t.Errorf("no bar in\n%s", out)
	}
}

// A rollout has a bar of its waves; a convergence wait a bar of the devices reporting, with
// the rate since the wait began and the ETA until min_ratio is met.
func TestBarViewRolloutAndConvergence(t *testing.T) {
	ratio := 0.05
	rc := &reconcile.ResourceChange{Addr: "twin.firmware_channel", Kind: reconcile.KindTwin, Action: reconcile.Update, Devices: 300,
		Rollout: &reconcile.RolloutPlan{Waves: []reconcile.PlannedWave{{Number: 1, Wave: "5%", Devices: 15}, {Number: 2, Wave: "25%", Devices: 60}, {Number: 3, Wave: "100%", Devices: 225}},
			MaxFailureRatio: &ratio, PauseSeconds: 2},
		Converge: &reconcile.ConvergePlan{TimeoutSeconds: 120, MinRatio: 0.95},
		Jobs: []reconcile.PlannedJob{
			{Request: hubapi.JobRequest{JobID: "iotplan-fw-1", Type: hubapi.JobTypeUpdateTwin}, Devices: 15, Wave: 1},
			{Request: hubapi.JobRequest{JobID: "iotplan-fw-2", Type: hubapi.JobTypeUpdateTwin}, Devices: 60, Wave: 2},
		}}
	out := barsRun(t, 120, func(v *BarView) {
		v.JobCreated(rc, hubapi.JobResponse{JobID: "iotplan-fw-1"})
		stats := hubapi.DeviceJobStatistics{DeviceCount: 15, SucceededCount: 15}
		v.JobProgress(rc, reconcile.Progress{JobID: "iotplan-fw-1", Status: "completed", Stats: stats, Elapsed: time.Second})
		v.JobDone(rc, &reconcile.JobResult{Addr: rc.Addr, JobID: "iotplan-fw-1", Status: "completed", Stats: stats, Elapsed: time.Second, Wave: 1})
		v.ConvergeProgress(rc, reconcile.ConvergeProgress{Wave: 1, Targeted: 15, Converged: 15, Elapsed: 0, Done: true, Met: true})
		v.WaveDone(rc, reconcile.WaveResult{Wave: 1, Attempted: 15})
		v.Pausing(rc, 2, 2*time.Second)
		v.JobCreated(rc, hubapi.JobResponse{JobID: "iotplan-fw-2"})
		stats = hubapi.DeviceJobStatistics{DeviceCount: 60, SucceededCount: 60}
		v.JobProgress(rc, reconcile.Progress{JobID: "iotplan-fw-2", Status: "completed", Stats: stats, Elapsed: 2 * time.Second})
		v.JobDone(rc, &reconcile.JobResult{Addr: rc.Addr, JobID: "iotplan-fw-2", Status: "completed", Stats: stats, Elapsed: 2 * time.Second, Wave: 2})
		v.ConvergeProgress(rc, reconcile.ConvergeProgress{Wave: 2, Targeted: 75, Converged: 15, NotReporting: 1, Elapsed: 0})
		v.ConvergeProgress(rc, reconcile.ConvergeProgress{Wave: 2, Targeted: 75, Converged: 45, NotReporting: 1, Elapsed: 10 * time.Second})
	})
	for _, want := range []string{
		"twin.firmware_channel: wave 1 of 3 done (0 failed of 15 attempted)\n",
		"twin.firmware_channel: pausing 2s before wave 2\n",
		"twin.firmware_channel rollout",
		"wave 2 of 3 · 15 of 300 devices · 0 failed · running",
		"twin.firmware_channel wave 2 converging",
		// 30 more devices in 10s: 3/s; 0.95 × 75 = 72 needed, 27 to go: 9s.
		"45 of 75 report · 30 pending (1 not reporting) · 3.0/s · ETA 9s",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
}

// Close without any progress writes nothing, and a view may be closed twice.
func TestBarViewIdle(t *testing.T) {
	var b bytes.Buffer
	v := NewBarView(&b, BarOptions{})
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if b.Len() != 0 {
		t.Errorf("idle view wrote %q", b.String())
	}
}

func TestRateAndETAText(t *testing.T) {
	for _, c := range []struct {
		remaining int
		rate      float64
		rateText  string
		eta       string
	}{
		{180, 12, "12/s", "15s"},
		{100, 1.5, "1.5/s", "1m07s"},
		{60, 0.05, "3.0/min", "20m00s"},
		{36000, 2, "2.0/s", "5h00m"},
		{10, 0, "–/s", "–"},
		{0, 0, "–/s", "0s"},
	} {
		if got := rateText(c.rate); got != c.rateText {
			t.Errorf("rateText(%g) = %q, want %q", c.rate, got, c.rateText)
		}
		if got := etaText(c.remaining, c.rate); got != c.eta {
			t.Errorf("etaText(%d, %g) = %q, want %q", c.remaining, c.rate, got, c.eta)
		}
	}
}
