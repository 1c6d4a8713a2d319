package render

import (
	"fmt"
	"time"

	"github.com/iotplan/iotplan/internal/reconcile"
)

var _ reconcile.WaveHook = (*ApplyView)(nil)

// ConvergeProgress implements reconcile.WaveHook: a live line on a terminal, else a line when
// the wait ends and at most every Interval.
func (v *ApplyView) ConvergeProgress(rc *reconcile.ResourceChange, p reconcile.ConvergeProgress) {
	v.mu.Lock()
	defer v.mu.Unlock()
	line := fmt.Sprintf("%s: %s", rc.Addr, convergeText(rc, p))
	if v.opts.TTY && !p.Done {
		pad := ""
		if n := runeLen(line); n < v.liveWidth {
			pad = fmt.Sprintf("%*s", v.liveWidth-n, "")
		}
		v.liveWidth = runeLen(line)
		v.out.printf("\r%s%s", line, pad)
		return
	}
	key := fmt.Sprintf("converge\x00%s\x00%d", rc.Addr, p.Wave)
	last, printed := v.lastPrint[key]
	if !p.Done && printed && p.Elapsed-last < v.opts.Interval {
		return
	}
	v.lastPrint[key] = p.Elapsed
	v.endLive()
	v.out.printf("%s\n", line)
	if p.Done && !p.Met && len(p.Samples) > 0 {
		v.out.printf("  not converged: %s\n", examples(pendingText(p.Samples), p.Pending()))
	}
}

// pendingText lists pending devices, marking the disconnected ones.
func pendingText(ds []reconcile.PendingDevice) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.DeviceID
		if d.Disconnected {
			out[i] += " (disconnected)"
		}
	}
	return out
}

// convergeText is e.g. "wave 1: 95 of 100 devices report the desired values, 5 pending (2 not
// reporting) [12s]".
func convergeText(rc *reconcile.ResourceChange, p reconcile.ConvergeProgress) string {
	prefix := "converging"
	if p.Wave > 0 {
		prefix = fmt.Sprintf("wave %d converging", p.Wave)
	}
	s := fmt.Sprintf("%s — %s of %s report the desired values, %s pending (%s not reporting) [%s]",
		prefix, Count(p.Converged), plural(p.Targeted, "device", "devices"), Count(p.Pending()), Count(p.NotReporting), elapsed(p.Elapsed))
	switch {
	case p.Done && p.Met:
		s += " — converged"
	case p.Done:
		s += fmt.Sprintf(" — timed out; %s needed", Count(rc.Converge.Needed(p.Targeted)))
	}
	return s
}

// WaveDone implements reconcile.WaveHook.
func (v *ApplyView) WaveDone(rc *reconcile.ResourceChange, w reconcile.WaveResult) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.endLive()
	if w.Wave == 0 {
		if w.Aborted != "" {
			v.out.printf("%s: %s — %s\n", v.st.style(bold, rc.Addr), v.st.style(red, "stopped"), w.Aborted)
		}
		return
	}
	verdict := v.st.style(green, "done")
	if w.Aborted != "" {
		verdict = v.st.style(red, "rollout stopped") + " — " + w.Aborted
	}
	v.out.printf("%s: wave %d of %d %s (%s failed of %s attempted)\n", v.st.style(bold, rc.Addr), w.Wave, len(rc.Rollout.Waves),
		verdict, Count(w.Failed), Count(w.Attempted))
}

// Pausing implements reconcile.WaveHook.
func (v *ApplyView) Pausing(rc *reconcile.ResourceChange, next int, d time.Duration) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.endLive()
	v.out.printf("%s: pausing %s before wave %d\n", v.st.style(bold, rc.Addr), reconcile.Duration(d), next)
}

var _ reconcile.WaveHook = (*JSONUI)(nil)

// jsonConvergeProgress is one poll of a wave's convergence.
type jsonConvergeProgress struct {
	Address        string                    `json:"address"`
	Wave           int                       `json:"wave"`
	Targeted       int                       `json:"targeted"`
	Converged      int                       `json:"converged"`
	Pending        int                       `json:"pending"`
	NotReporting   int                       `json:"not_reporting"`
	ElapsedSeconds float64                   `json:"elapsed_seconds"`
	Done           bool                      `json:"done"`
	Met            bool                      `json:"met"`
	Samples        []reconcile.PendingDevice `json:"pending_devices"`
}

// ConvergeProgress implements reconcile.WaveHook: a converge_progress event per poll.
func (u *JSONUI) ConvergeProgress(rc *reconcile.ResourceChange, p reconcile.ConvergeProgress) {
	level := LevelInfo
	if p.Done && !p.Met {
		level = LevelError
	}
	u.write(struct {
		header
		Converge jsonConvergeProgress `json:"converge"`
	}{u.head(EventConvergeProgress, level, rc.Addr+": "+convergeText(rc, p)), jsonConvergeProgress{
		Address: rc.Addr, Wave: p.Wave, Targeted: p.Targeted, Converged: p.Converged, Pending: p.Pending(),
		NotReporting: p.NotReporting, ElapsedSeconds: p.Elapsed.Seconds(), Done: p.Done, Met: p.Met, Samples: nonNil(p.Samples)}})
}

// jsonWave is a wave's outcome.
type jsonWave struct {
	Address   string `json:"address"`
	Wave      int    `json:"wave"`
	Waves     int    `json:"waves"`
	Attempted int    `json:"attempted"`
	Failed    int    `json:"failed"`
	Aborted   string `json:"aborted,omitempty"`
}

// WaveDone implements reconcile.WaveHook: a wave_completed event.
func (u *JSONUI) WaveDone(rc *reconcile.ResourceChange, w reconcile.WaveResult) {
	n, level, msg := 0, LevelInfo, fmt.Sprintf("%s: wave %d done", rc.Addr, w.Wave)
	if rc.Rollout != nil {
		n = len(rc.Rollout.Waves)
	}
	if w.Aborted != "" {
		level, msg = LevelError, fmt.Sprintf("%s: wave %d stopped the rollout: %s", rc.Addr, w.Wave, w.Aborted)
	}
	u.write(struct {
		header
		Wave jsonWave `json:"wave"`
	}{u.head(EventWaveCompleted, level, msg), jsonWave{rc.Addr, w.Wave, n, w.Attempted, w.Failed, w.Aborted}})
}

// jsonPause is a pause between waves.
type jsonPause struct {
	Address      string  `json:"address"`
	NextWave     int     `json:"next_wave"`
	PauseSeconds float64 `json:"pause_seconds"`
}

// Pausing implements reconcile.WaveHook: a rollout_paused event.
func (u *JSONUI) Pausing(rc *reconcile.ResourceChange, next int, d time.Duration) {
	u.write(struct {
		header
		Pause jsonPause `json:"pause"`
	}{u.head(EventRolloutPaused, LevelInfo, fmt.Sprintf("%s: pausing %s before wave %d", rc.Addr, reconcile.Duration(d), next)),
		jsonPause{rc.Addr, next, d.Seconds()}})
}
