package render

// Progress bars on a terminal, drawn with github.com/vbauerster/mpb/v8
// (https://pkg.go.dev/github.com/vbauerster/mpb/v8). mpb was chosen over
// github.com/schollz/progressbar/v3 because an apply shows several things progressing at once —
// a rollout's waves, the job of the current wave, its convergence wait — and mpb draws any
// number of bars in one container, prints lines above them (Progress.Write) so the lines that
// stay in the scrollback are exactly the plain lines of a non-terminal run, takes its
// rendering target and width as options (WithOutput, ForceTTY, WithWidth: testable without a
// pseudo-terminal) and lets the caller drive redraws (WithManualRefresh). progressbar/v3
// draws one bar per writer.
//
// The bars show the data reconcile reports through its Hook and nothing else: counts of the
// hub's deviceJobStatistics and of the convergence queries, and a rate and ETA computed from
// the elapsed times reconcile measured, never from the wall clock, so what a bar says follows
// what the hub said.

import (
	"fmt"
	"io"
	"math"
	"sync"
	"time"

	"github.com/mattn/go-runewidth"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/reconcile"
)

// BarOptions control the progress bars.
type BarOptions struct {
	// Options color the lines written above the bars.
	Options
	// Width is the terminal's width, used when the writer is not a terminal the library can
	// measure itself (tests; a terminal behind a wrapper); zero = 80.
	Width int
	// Refresh is how often the bars are redrawn; zero = 150ms.
	Refresh time.Duration
	// MaxListed and Interval are those of the lines (ApplyOptions).
	MaxListed int
	Interval  time.Duration
}

// barWidth caps the bar itself, so that the counts beside it fit an 80-column terminal.
const barWidth = 30

// BarView shows apply's progress as live progress bars: one per running job (succeeded,
// failed and pending devices, rate, ETA), one per convergence wait (devices reporting the
// desired values), one per rollout (waves done). Lines that stay — a job created, a job done,
// a wave judged, a pause, a wait for a job slot — are written above the bars, worded as in
// the plain view, and a bar is removed when its line is written. It implements
// reconcile.Hook and reconcile.WaveHook; Close must be called when apply returns, before
// anything else is written to the terminal.
type BarView struct {
	w    io.Writer
	opts BarOptions

	mu     sync.Mutex
	p      *mpb.Progress // started on first use: nothing is drawn before apply begins
	tick   chan any      // the redraw requests (mpb.WithManualRefresh)
	stop   chan struct{}
	ticker sync.WaitGroup
	lines  *ApplyView // the plain view, writing above the bars
	err    error

	jobs     map[string]*liveBar // by job id
	converge map[string]*liveBar // by address and wave
	rollouts map[string]*rolloutBar
}

var (
	_ reconcile.Hook     = (*BarView)(nil)
	_ reconcile.WaveHook = (*BarView)(nil)
)

// NewBarView returns a progress-bar view drawing on w, which must be a terminal (or, in
// tests, stand for one).
func NewBarView(w io.Writer, opts BarOptions) *BarView {
	if opts.Width <= 0 {
		opts.Width = 80
	}
	if opts.Refresh <= 0 {
		opts.Refresh = 150 * time.Millisecond
	}
	v := &BarView{w: w, opts: opts, jobs: map[string]*liveBar{}, converge: map[string]*liveBar{}, rollouts: map[string]*rolloutBar{}}
	v.lines = NewApplyView(barLines{v}, ApplyOptions{Options: opts.Options, Interval: opts.Interval, MaxListed: opts.MaxListed})
	return v
}

// barLines writes the plain view's lines above the bars (mpb prints what is written to the
// container above them at the next redraw), or straight to the terminal when no bar runs.
// Its methods run with BarView.mu held.
type barLines struct{ v *BarView }

func (l barLines) Write(b []byte) (int, error) {
	if l.v.p != nil {
		return l.v.p.Write(b)
	}
	return l.v.w.Write(b)
}

// start starts the container on first use.
func (v *BarView) start() {
	if v.p != nil {
		return
	}
	v.tick, v.stop = make(chan any), make(chan struct{})
	v.p = mpb.New(mpb.WithOutput(v.w), mpb.ForceTTY(), mpb.WithWidth(v.opts.Width), mpb.WithManualRefresh(v.tick))
	v.ticker.Add(1)
	go func() {
		defer v.ticker.Done()
		t := time.NewTicker(v.opts.Refresh)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				select {
				case v.tick <- nil:
				case <-v.stop:
					return
				}
			case <-v.stop:
				return
			}
		}
	}()
}

// Close stops the bars: those still running (apply stopped while they ran) are left drawn as
// they were last, and every line is written out. The view may be used again afterwards.
func (v *BarView) Close() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.p == nil {
		return v.Err()
	}
	close(v.stop)
	v.ticker.Wait()
	for _, b := range v.jobs {
		b.bar.Abort(false)
	}
	for _, b := range v.converge {
		b.bar.Abort(false)
	}
	for _, r := range v.rollouts {
		r.bar.Abort(false)
	}
	// A last redraw writes the lines written since the previous one: mpb flushes what was
	// written above the bars only when it draws.
	v.tick <- nil
	v.p.Wait()
	if v.err == nil {
		v.err = v.p.Error
	}
	v.p = nil
	v.jobs, v.converge, v.rollouts = map[string]*liveBar{}, map[string]*liveBar{}, map[string]*rolloutBar{}
	return v.Err()
}

// Err is the first write error, if any.
func (v *BarView) Err() error {
	if v.err != nil {
		return v.err
	}
	return v.lines.Err()
}

// liveBar is a bar and the text beside it: variants from the fullest to the shortest, the
// fullest that leaves the bar minBar columns drawn. The text has its own lock: mpb calls the
// decorators from its goroutines while a hook call may be waiting on the bar, so the hook
// never holds this lock while it calls mpb.
type liveBar struct {
	bar   *mpb.Bar
	meter *rateMeter // convergence bars: the rate since the wait began

	mu   sync.Mutex
	text []string
}

// minBar is the narrowest bar drawn (with its brackets and the spaces around it) before the
// text beside it is shortened.
const minBar = 12

func (b *liveBar) setText(variants ...string) {
	b.mu.Lock()
	b.text = variants
	b.mu.Unlock()
}

// fit is the fullest variant of the text that leaves room for the bar in width columns.
func (b *liveBar) fit(width int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.text) == 0 {
		return ""
	}
	for _, t := range b.text {
		if runewidth.StringWidth(t)+minBar <= width {
			return t
		}
	}
	return b.text[len(b.text)-1] // mpb cuts it with … when it is still too wide
}

// add adds a bar labelled label of total units.
func (v *BarView) add(label string, total int) *liveBar {
	lb := &liveBar{}
	lb.bar = v.p.New(int64(total), mpb.BarStyle(),
		mpb.BarWidth(barWidth),
		mpb.BarRemoveOnComplete(),
		mpb.PrependDecorators(decor.Name(label, decor.WCSyncSpaceR)),
		mpb.AppendDecorators(decor.Any(func(st decor.Statistics) string { return lb.fit(st.AvailableWidth) })),
	)
	return lb
}

// JobCreated implements reconcile.Hook: the line, and a bar for the job.
func (v *BarView) JobCreated(rc *reconcile.ResourceChange, job hubapi.JobResponse) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.start()
	v.lines.JobCreated(rc, job)
	devices, wave := rc.Devices, 0
	for _, pj := range rc.Jobs {
		if pj.Request.JobID == job.JobID {
			devices, wave = pj.Devices, pj.Wave
		}
	}
	if rc.Rollout != nil && wave > 0 {
		v.rolloutBar(rc).setWave(wave)
	}
	if old := v.jobs[job.JobID]; old != nil {
		old.bar.Abort(true)
	}
	b := v.add(rc.Addr, devices)
	b.setText(jobBarText(job.Status, hubapi.DeviceJobStatistics{DeviceCount: devices}, 0)...)
	v.jobs[job.JobID] = b
}

// JobProgress implements reconcile.Hook: the job's bar moves; no line is written.
func (v *BarView) JobProgress(rc *reconcile.ResourceChange, p reconcile.Progress) {
	v.mu.Lock()
	defer v.mu.Unlock()
	b := v.jobs[p.JobID]
	if b == nil {
		return
	}
	s := p.Stats
	b.setText(jobBarText(p.Status, s, p.Elapsed)...)
	if s.DeviceCount > 0 {
		// Not completing the bar: JobDone removes it, when the line that replaces it is written.
		b.bar.SetTotal(int64(s.DeviceCount), false)
	}
	b.bar.SetCurrent(int64(min(s.SucceededCount+s.FailedCount, max(s.DeviceCount, 0))))
}

// JobDone implements reconcile.Hook: the job's line replaces its bar.
func (v *BarView) JobDone(rc *reconcile.ResourceChange, r *reconcile.JobResult) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.start()
	if b := v.jobs[r.JobID]; b != nil {
		b.bar.Abort(true)
		delete(v.jobs, r.JobID)
	}
	v.lines.JobDone(rc, r)
}

// SlotWait implements reconcile.Hook: the plain view's line, which says which jobs hold the
// slots.
func (v *BarView) SlotWait(rc *reconcile.ResourceChange, holders []hubapi.JobResponse, limit int, waited time.Duration) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.start()
	v.lines.SlotWait(rc, holders, limit, waited)
}

// ConvergeProgress implements reconcile.WaveHook: a bar of the devices that report the
// desired values, replaced by the plain view's line when the wait ends.
func (v *BarView) ConvergeProgress(rc *reconcile.ResourceChange, p reconcile.ConvergeProgress) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.start()
	key := fmt.Sprintf("%s\x00%d", rc.Addr, p.Wave)
	b := v.converge[key]
	if p.Done {
		if b != nil {
			b.bar.Abort(true)
			delete(v.converge, key)
		}
		v.lines.ConvergeProgress(rc, p)
		return
	}
	if b == nil {
		label := rc.Addr + " converging"
		if p.Wave > 0 {
			label = fmt.Sprintf("%s wave %d converging", rc.Addr, p.Wave)
		}
		b = v.add(label, p.Targeted)
		b.meter = &rateMeter{}
		v.converge[key] = b
	}
	needed := p.Targeted
	if rc.Converge != nil {
		needed = rc.Converge.Needed(p.Targeted)
	}
	b.setText(convergeBarText(p, needed, b.meter.observe(p.Converged, p.Elapsed))...)
	if p.Targeted > 0 {
		b.bar.SetTotal(int64(p.Targeted), false)
	}
	b.bar.SetCurrent(int64(min(p.Converged, max(p.Targeted, 0))))
}

// WaveDone implements reconcile.WaveHook: the wave's line, and the rollout's bar moves on.
func (v *BarView) WaveDone(rc *reconcile.ResourceChange, w reconcile.WaveResult) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.start()
	v.lines.WaveDone(rc, w)
	if w.Wave == 0 || rc.Rollout == nil {
		return
	}
	r := v.rolloutBar(rc)
	r.waveDone(rc.Rollout, w)
	if w.Aborted != "" || w.Wave >= len(rc.Rollout.Waves) {
		r.bar.Abort(true) // the wave's line says how the rollout ended
		delete(v.rollouts, rc.Addr)
	}
}

// Pausing implements reconcile.WaveHook: the plain view's line.
func (v *BarView) Pausing(rc *reconcile.ResourceChange, next int, d time.Duration) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.start()
	v.lines.Pausing(rc, next, d)
	if r := v.rollouts[rc.Addr]; r != nil {
		r.setText(rolloutBarText(r.waves, next-1, r.done, r.total, r.failed, "pausing "+reconcile.Duration(d))...)
	}
}

// rolloutBar is a rollout's bar: devices of the waves done of all its waves' devices.
type rolloutBar struct {
	*liveBar
	waves, wave         int // the rollout's waves; the wave running
	done, total, failed int // devices of completed waves, of all waves; failed devices
}

func (v *BarView) rolloutBar(rc *reconcile.ResourceChange) *rolloutBar {
	if r := v.rollouts[rc.Addr]; r != nil {
		return r
	}
	r := &rolloutBar{waves: len(rc.Rollout.Waves)}
	for _, w := range rc.Rollout.Waves {
		r.total += w.Devices
		if w.Done {
			r.done += w.Devices
			r.wave = w.Number
		}
	}
	r.liveBar = v.add(rc.Addr+" rollout", r.total)
	r.bar.SetCurrent(int64(r.done))
	r.setText(rolloutBarText(r.waves, r.wave, r.done, r.total, r.failed, "")...)
	v.rollouts[rc.Addr] = r
	return r
}

func (r *rolloutBar) setWave(w int) {
	r.wave = w
	r.setText(rolloutBarText(r.waves, w, r.done, r.total, r.failed, "running")...)
}

func (r *rolloutBar) waveDone(rp *reconcile.RolloutPlan, w reconcile.WaveResult) {
	if pw := rp.Wave(w.Wave); pw != nil {
		r.done += pw.Devices
	}
	r.wave, r.failed = w.Wave, r.failed+w.Failed
	r.setText(rolloutBarText(r.waves, w.Wave, r.done, r.total, r.failed, "done")...)
	r.bar.SetCurrent(int64(min(r.done, r.total)))
}

// rolloutBarText is e.g. "wave 2 of 3 · 75 of 300 devices · 0 failed · running", and shorter.
func rolloutBarText(waves, wave, done, total, failed int, doing string) []string {
	full := fmt.Sprintf("wave %d of %d · %s of %s · %s failed", wave, waves, Count(done), plural(total, "device", "devices"), Count(failed))
	short := fmt.Sprintf("wave %d/%d · %s failed", wave, waves, Count(failed))
	if doing != "" {
		full += " · " + doing
	}
	return []string{full, short}
}

// jobBarText is what a job's bar says beside it, e.g. "126 succeeded · 3 failed · 171
// pending · 12/s · ETA 15s", and shorter; pending counts every device not yet succeeded or
// failed (the hub's running and pending ones). The rate is the job's own: devices finished
// per second since it was created.
func jobBarText(status string, s hubapi.DeviceJobStatistics, elapsed time.Duration) []string {
	finished := s.SucceededCount + s.FailedCount
	rate := math.NaN()
	if elapsed > 0 && finished > 0 {
		rate = float64(finished) / elapsed.Seconds()
	}
	eta := "ETA " + etaText(s.DeviceCount-finished, rate)
	full := fmt.Sprintf("%s succeeded · %s failed · %s pending · %s · %s", Count(s.SucceededCount), Count(s.FailedCount),
		Count(max(s.DeviceCount-finished, 0)), rateText(rate), eta)
	medium := fmt.Sprintf("%s ok · %s failed · %s pending · %s · %s", Count(s.SucceededCount), Count(s.FailedCount),
		Count(max(s.DeviceCount-finished, 0)), rateText(rate), eta)
	short := fmt.Sprintf("%s ok · %s failed · %s", Count(s.SucceededCount), Count(s.FailedCount), eta)
	if status != "" && status != hubapi.JobStatusRunning && status != hubapi.JobStatusCompleted {
		full, medium, short = status+" · "+full, status+" · "+medium, status+" · "+short
	}
	return []string{full, medium, short, eta}
}

// convergeBarText is e.g. "74 of 75 report · 1 pending (1 not reporting) · 3/s · ETA 1s",
// and shorter; the ETA is until needed devices report (the converge block's min_ratio), when
// the wait ends.
func convergeBarText(p reconcile.ConvergeProgress, needed int, rate float64) []string {
	eta := "ETA " + etaText(needed-p.Converged, rate)
	return []string{
		fmt.Sprintf("%s of %s report · %s pending (%s not reporting) · %s · %s", Count(p.Converged), Count(p.Targeted),
			Count(p.Pending()), Count(p.NotReporting), rateText(rate), eta),
		fmt.Sprintf("%s/%s · %s", Count(p.Converged), Count(p.Targeted), eta),
		eta,
	}
}

// rateMeter measures a rate from the first observation on: a convergence wait starts with
// the devices that converged before it.
type rateMeter struct {
	set bool
	v0  int
	t0  time.Duration
}

// observe returns the rate of v since the first observation, NaN when unknown.
func (m *rateMeter) observe(v int, at time.Duration) float64 {
	if !m.set {
		m.set, m.v0, m.t0 = true, v, at
		return math.NaN()
	}
	if at <= m.t0 || v <= m.v0 {
		return math.NaN()
	}
	return float64(v-m.v0) / (at - m.t0).Seconds()
}

// rateText is a rate of devices: "12/s", "1.5/s", "3.0/min", "–/s" when unknown.
func rateText(perSecond float64) string {
	switch {
	case math.IsNaN(perSecond) || perSecond <= 0:
		return "–/s"
	case perSecond >= 10:
		return fmt.Sprintf("%.0f/s", perSecond)
	case perSecond >= 1:
		return fmt.Sprintf("%.1f/s", perSecond)
	}
	return fmt.Sprintf("%.1f/min", perSecond*60)
}

// etaText is the time remaining devices take at a rate: "15s", "2m05s", "3h20m", "–" when
// unknown, "0s" when none remain.
func etaText(remaining int, perSecond float64) string {
	if remaining <= 0 {
		return "0s"
	}
	if math.IsNaN(perSecond) || perSecond <= 0 {
		return "–"
	}
	d := time.Duration(float64(remaining) / perSecond * float64(time.Second))
	if d >= time.Hour {
		d = d.Round(time.Minute)
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return elapsed(d)
}
