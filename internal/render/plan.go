package render

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/reconcile"
)

// Plan writes p the way Terraform shows a plan: a legend, one block per resource that will act
// (transitions with device counts and example ids), notes, and a summary line — or
// "No changes. The fleet matches the configuration." Unchanged twin resources are not listed.
func Plan(w io.Writer, p *reconcile.Plan, opts Options) error {
	out := &writer{w: w}
	st := styler{opts.Color}
	if !p.HasChanges() {
		for _, r := range p.Resources {
			for _, n := range r.Notes {
				out.printf("%s\n", st.style(dim, "# "+r.Addr+": "+n))
			}
		}
		writeWarnings(out, p, st)
		writePlanNotes(out, p, st)
		out.printf("%s\n", st.style(bold+green, "No changes.")+st.style(bold, " The fleet matches the configuration."))
		writeCalls(out, p, st)
		return out.err
	}
	out.printf("iotplan will act on the IoT hub %s. Actions are shown with these symbols:\n", p.Hub)
	legend := map[reconcile.Action]bool{}
	for _, r := range p.Resources {
		legend[r.Action] = true
	}
	if legend[reconcile.Update] {
		out.printf("  %s update twins (desired properties, tags)\n", st.style(yellow, "~"))
	}
	if legend[reconcile.Invoke] {
		out.printf("  %s invoke a direct method\n", st.style(cyan, "!"))
	}
	if legend[reconcile.Remove] {
		out.printf("  %s remove keys iotplan set that are no longer in the configuration\n", st.style(red, "-"))
	}
	out.printf("\niotplan will perform the following actions:\n")
	for _, r := range p.Resources {
		switch r.Action {
		case reconcile.Update, reconcile.Remove:
			writeTwin(out, p, r, st)
		case reconcile.Invoke:
			writeMethod(out, p, r, st)
		default:
			for _, n := range r.Notes {
				out.printf("\n%s\n", st.style(dim, "  # "+r.Addr+": "+n))
			}
		}
	}
	out.printf("\n")
	writeWarnings(out, p, st)
	writePlanNotes(out, p, st)
	writeOutputs(out, p, st)
	out.printf("%s\n", st.style(bold, SummaryLine(p)))
	writeCalls(out, p, st)
	return out.err
}

// TargetingWarning is Terraform's warning for -target
// (https://developer.hashicorp.com/terraform/cli/commands/plan#resource-targeting), adapted.
const TargetingWarning = "Resource targeting is in effect: this plan covers only the resources the -target addresses select, so it may not show the whole effect of the configuration (other resources' drift, conflicts with them, removals). -target is for exceptional use, such as recovering from mistakes; run a plan without it before relying on the fleet's state."

// writeWarnings writes the resources' warnings, as Terraform does, after the actions.
func writeWarnings(out *writer, p *reconcile.Plan, st styler) {
	if len(p.Targets) > 0 {
		out.printf("%s %s\n  -target %s\n\n", st.style(bold+yellow, "Warning:"), TargetingWarning, strings.Join(p.Targets, "\n  -target "))
	}
	for _, r := range p.Resources {
		for _, w := range r.Warnings {
			out.printf("%s %s\n", st.style(bold+yellow, "Warning:"), r.Addr+": "+w)
		}
	}
}

// writePlanNotes writes what concerns the whole plan: an assumed tier, skipped samples.
func writePlanNotes(out *writer, p *reconcile.Plan, st styler) {
	if p.TierAssumed {
		out.printf("%s\n", st.style(yellow, fmt.Sprintf("Note: the hub's tier is not declared; jobs are sized and hub calls paced for %s. Set tier and units in the hub block (or -hub-tier and -hub-units).", p.HubTier())))
	}
	for _, n := range p.Notes {
		out.printf("%s\n", st.style(dim, "# "+n))
	}
}

// SummaryLine is the plan's last line, e.g. "Plan: 2 resources to change (9,815 devices),
// 1 method to invoke on 301 devices."
func SummaryLine(p *reconcile.Plan) string {
	s := p.Summary()
	if !p.HasChanges() {
		return "No changes. The fleet matches the configuration."
	}
	var parts []string
	if s.TwinChanges > 0 {
		devices := plural(s.TwinDevices, "device", "devices")
		if s.TwinDevicesSummed {
			devices = "at most " + devices // a device in several resources counts once per resource
		}
		parts = append(parts, fmt.Sprintf("%s to change (%s)", plural(s.TwinChanges, "resource", "resources"), devices))
	}
	if s.MethodInvokes > 0 {
		parts = append(parts, fmt.Sprintf("%s to invoke on %s", plural(s.MethodInvokes, "method", "methods"), plural(s.MethodDevices, "device", "devices")))
	}
	line := "Plan: " + strings.Join(parts, ", ") + "."
	if s.Refused > 0 {
		line += fmt.Sprintf(" %s refused (the hub's answers disagreed).", plural(s.Refused, "resource", "resources"))
	}
	return line
}

func writeCalls(out *writer, p *reconcile.Plan, st styler) {
	if line := callsLine("Planning", p.HubCalls); line != "" {
		out.printf("%s\n", st.style(dim, line))
	}
	for _, line := range []string{pacedLine("Planning", p.HubWait), waitLine("Planning", p.HubWait)} {
		if line != "" {
			out.printf("%s\n", st.style(dim, line))
		}
	}
}

// waitLine is e.g. "Planning waited 9.0s on hub throttling (3 calls answered 429)."; "" when
// nothing was throttled.
func waitLine(what string, w *reconcile.HubWait) string {
	if w == nil || (w.Waited <= 0 && w.Throttled <= 0) {
		return ""
	}
	return fmt.Sprintf("%s waited %s on hub throttling (%s answered 429).",
		what, waited(w.Waited), plural(w.Throttled, "call", "calls"))
}

// pacedLine is e.g. "Planning held 17 calls back for 51.0s to stay within the hub tier's
// rates."; "" when the client paced nothing.
func pacedLine(what string, w *reconcile.HubWait) string {
	if w == nil || w.PacedCalls <= 0 {
		return ""
	}
	return fmt.Sprintf("%s held %s back for %s to stay within the hub tier's rates.",
		what, plural(w.PacedCalls, "call", "calls"), waited(w.Paced))
}

// waited is a wait as people read it: "850ms", "9.2s", "8m20s".
func waited(d time.Duration) string {
	switch {
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	return elapsed(d)
}

// callsLine is e.g. "Planning used 8 hub calls (query: 8)."; "" without counts.
func callsLine(what string, calls map[string]int) string {
	if len(calls) == 0 {
		return ""
	}
	kinds := make([]string, 0, len(calls))
	total := 0
	for k, n := range calls {
		kinds = append(kinds, fmt.Sprintf("%s: %s", k, Count(n)))
		total += n
	}
	sort.Strings(kinds)
	return fmt.Sprintf("%s used %s (%s).", what, plural(total, "hub call", "hub calls"), strings.Join(kinds, ", "))
}

func writeTwin(out *writer, p *reconcile.Plan, r reconcile.ResourceChange, st styler) {
	if r.Action == reconcile.Remove {
		out.printf("\n%s\n", st.style(bold, fmt.Sprintf("  # %s is no longer in the configuration: its keys are removed from %s",
			r.Addr, plural(r.Devices, "device", "devices"))))
		out.printf("  %s %s {\n", st.style(red, "-"), r.Addr)
	} else {
		out.printf("\n%s\n", st.style(bold, fmt.Sprintf("  # %s will be updated on %s of %s targeted",
			r.Addr, plural(r.Devices, "device", "devices"), Count(r.TargetedDevices))))
		out.printf("  %s %s {\n", st.style(yellow, "~"), r.Addr)
	}
	out.printf("      target = %s\n", target(r))
	lefts := make([]string, len(r.Transitions))
	width := 0
	for i, t := range r.Transitions {
		value := value
		if IsSensitive(r.SensitiveKeys, t.Key) {
			value = func(json.RawMessage) string { return SensitiveValue }
		}
		switch {
		case t.Op == reconcile.OpAdd:
			lefts[i] = fmt.Sprintf("%s = %s", t.Key, value(t.To))
		case t.Op == reconcile.OpRemove && t.OtherValues:
			lefts[i] = fmt.Sprintf("%s (was: other values)", t.Key)
		case t.Op == reconcile.OpRemove:
			lefts[i] = fmt.Sprintf("%s (was %s)", t.Key, value(t.From))
		case t.OtherValues:
			lefts[i] = fmt.Sprintf("%s: (other values) → %s", t.Key, value(t.To))
		default:
			lefts[i] = fmt.Sprintf("%s: %s → %s", t.Key, value(t.From), value(t.To))
		}
		if n := runeLen(lefts[i]); n <= maxAlign {
			width = max(width, n)
		}
	}
	for i, t := range r.Transitions {
		sym := t.Op.Symbol()
		color := yellow
		switch t.Op {
		case reconcile.OpAdd:
			color = green
		case reconcile.OpRemove:
			color = red
		}
		line := fmt.Sprintf("%s%s  on %s", lefts[i], strings.Repeat(" ", max(0, width-runeLen(lefts[i]))), plural(t.Devices, "device", "devices"))
		if ex := examples(t.SampleDeviceIDs, t.Devices); ex != "" {
			line += " " + ex
		}
		out.printf("      %s %s\n", st.style(color, sym), line)
	}
	writeJobs(out, p, r, st)
	for _, n := range r.Notes {
		out.printf("      %s\n", st.style(dim, "# "+n))
	}
	if r.Refused != "" {
		out.printf("      %s\n", st.style(red, "# apply will refuse this resource: "+r.Refused))
	}
	out.printf("    }\n")
}

// writeJobs shows what the hub will spend on the resource's jobs: their start time, their
// expected duration at the plan's tier, and, when there are several, each with its keys.
func writeJobs(out *writer, p *reconcile.Plan, r reconcile.ResourceChange, st styler) {
	defer writeConverge(out, r, st)
	if r.Rollout != nil {
		writeRollout(out, p, r, st)
		return
	}
	if len(r.Jobs) == 0 {
		return
	}
	if s := r.Jobs[0].Request.StartTime; s != nil {
		out.printf("      %s\n", st.style(dim, "# starts at "+reconcile.TimeText(*s)))
	}
	if len(r.Jobs) > 1 && r.RunTag == "" {
		out.printf("      %s\n", st.style(dim, fmt.Sprintf("# %d jobs, each setting some of the keys:", len(r.Jobs))))
	}
	for _, j := range r.Jobs {
		line := jobTimeText(p, j)
		switch {
		case r.RunTag != "":
			line = fmt.Sprintf("%s on %s: %s", stepText[j.Step], plural(j.Devices, "device", "devices"), line)
		case len(r.Jobs) > 1:
			line = fmt.Sprintf("%s on %s: %s", strings.Join(j.Keys, ", "), plural(j.Devices, "device", "devices"), line)
		}
		out.printf("      %s\n", st.style(dim, "# "+line))
	}
}

// stepText names the steps of a run-once method's jobs.
var stepText = map[string]string{
	reconcile.StepMark:   "record the run (tag)",
	reconcile.StepInvoke: "invoke",
}

// jobTimeText says how long a job should take and may run: "~2h47m at S1 × 1 unit (10 job
// device operations/s); the hub stops it after 4h20m" — or only the latter without a tier.
func jobTimeText(p *reconcile.Plan, j reconcile.PlannedJob) string {
	limit := "the hub stops it after " + reconcile.Duration(time.Duration(j.Request.MaxExecutionTimeInSeconds)*time.Second)
	if j.ExpectedSeconds <= 0 {
		return limit
	}
	t := p.HubTier()
	return fmt.Sprintf("~%s at %s (%g job device operations/s); %s", reconcile.Duration(time.Duration(j.ExpectedSeconds)*time.Second), t, t.JobDeviceOpsPerSecond(), limit)
}

func writeMethod(out *writer, p *reconcile.Plan, r reconcile.ResourceChange, st styler) {
	var m *hubapi.CloudToDeviceMethod
	for _, j := range r.Jobs {
		if j.Request.CloudToDeviceMethod != nil {
			m = j.Request.CloudToDeviceMethod
		}
	}
	if m == nil {
		return
	}
	out.printf("\n%s\n", st.style(bold, fmt.Sprintf("  # %s will invoke %s on %s", r.Addr, m.MethodName, plural(r.Devices, "device", "devices"))))
	out.printf("  %s %s {\n", st.style(cyan, "!"), r.Addr)
	out.printf("      target           = %s\n", target(r))
	out.printf("      method           = %q\n", m.MethodName)
	payload := value(m.Payload)
	if r.SensitivePayload {
		payload = SensitiveValue
	}
	out.printf("      payload          = %s\n", payload)
	out.printf("      response_timeout = %ds\n", m.ResponseTimeoutInSeconds)
	if m.ConnectTimeoutInSeconds > 0 {
		out.printf("      connect_timeout  = %ds\n", m.ConnectTimeoutInSeconds)
	}
	line := "on " + plural(r.Devices, "device", "devices")
	if r.RunTag != "" {
		line += fmt.Sprintf(" (%s already ran with these triggers)", Count(r.AlreadyRan))
	}
	if ex := examples(r.SampleDeviceIDs, r.Devices); ex != "" {
		line += " " + ex
	}
	out.printf("      %s %s\n", st.style(cyan, "!"), line)
	writeJobs(out, p, r, st)
	for _, n := range r.Notes {
		out.printf("      %s\n", st.style(dim, "# "+n))
	}
	out.printf("    }\n")
}

// maxAlign is the longest transition text that the device counts are aligned after; longer
// ones are not padded, so one long value does not push every line to the right.
const maxAlign = 48

// quoteCond shows a condition as an HCL string literal would hold it.
func quoteCond(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

func runeLen(s string) int { return len([]rune(s)) }

// SensitiveValue stands in for values that come from sensitive variables, as in Terraform:
// in plans, and in 'state show'.
const SensitiveValue = "(sensitive value)"

// target is the resource's target as plans show it.
func target(r reconcile.ResourceChange) string {
	if r.SensitiveTarget {
		return SensitiveValue
	}
	return quoteCond(r.Target)
}

// IsSensitive reports whether key is one of the sensitive keys or lies below one
// ("desired.creds.user" below "desired.creds", everything below "desired").
func IsSensitive(sensitive []string, key string) bool {
	for _, s := range sensitive {
		if key == s || strings.HasPrefix(key, s+".") {
			return true
		}
	}
	return false
}

// writeOutputs writes the output values, as Terraform's "Changes to Outputs".
func writeOutputs(out *writer, p *reconcile.Plan, st styler) {
	if len(p.Outputs) == 0 {
		return
	}
	width := 0
	for _, o := range p.Outputs {
		width = max(width, utf8.RuneCountInString(o.Name))
	}
	out.printf("%s\n", st.style(bold, "Outputs:"))
	for _, o := range p.Outputs {
		out.printf("  %s = %s\n", pad(o.Name, width, false), OutputText(o))
	}
	out.printf("\n")
}

// OutputText is an output's value as plans show it.
func OutputText(o reconcile.Output) string {
	switch {
	case o.Sensitive:
		return "(sensitive value)"
	case !o.Known:
		return "(not known in this plan)"
	}
	return compactJSON(o.Value)
}

// writeRollout shows a resource's waves: each with its devices and its job's expected time.
func writeRollout(out *writer, p *reconcile.Plan, r reconcile.ResourceChange, st styler) {
	ro := r.Rollout
	out.printf("      %s\n", st.style(dim, "# "+RolloutText(ro)))
	width := 0
	for _, w := range ro.Waves {
		width = max(width, runeLen(w.Wave))
	}
	for _, w := range ro.Waves {
		line := fmt.Sprintf("wave %d  %s%s  ", w.Number, w.Wave, strings.Repeat(" ", width-runeLen(w.Wave)))
		switch {
		case w.Done:
			line += "done in an earlier apply"
		case w.Devices == 0:
			line += "no device (nothing to run)"
		default:
			line += plural(w.Devices, "device", "devices")
			if j := waveJob(r, w.Number); j != nil {
				line += ": " + jobTimeText(p, *j)
			}
		}
		out.printf("      %s\n", st.style(dim, "#   "+line))
	}
}

// RolloutText says how a rollout runs: its waves, what aborts it and the pause.
func RolloutText(ro *reconcile.RolloutPlan) string {
	s := fmt.Sprintf("rollout in %d waves", len(ro.Waves))
	var rules []string
	if ro.MaxFailureRatio != nil {
		rules = append(rules, fmt.Sprintf("more than %g%% of a wave's devices fail", 100**ro.MaxFailureRatio))
	}
	if ro.MaxFailures != nil {
		rules = append(rules, fmt.Sprintf("more than %s fail", plural(*ro.MaxFailures, "device", "devices")))
	}
	if len(rules) > 0 {
		s += ", stopping when " + strings.Join(rules, " or ")
	} else {
		s += " (no abort rule: failures are reported, later waves still run)"
	}
	if ro.PauseSeconds > 0 {
		s += fmt.Sprintf(", %s between waves", reconcile.Duration(time.Duration(ro.PauseSeconds)*time.Second))
	}
	if ro.Resumed > 0 {
		s += fmt.Sprintf("; resumes at wave %d", ro.Resumed+1)
	}
	return s + fmt.Sprintf(" (sliced with %s):", plural(ro.Queries, "query", "queries"))
}

// waveJob is the job of wave n that invokes or updates (a run-once method's mark job aside).
func waveJob(r reconcile.ResourceChange, n int) *reconcile.PlannedJob {
	var found *reconcile.PlannedJob
	for i := range r.Jobs {
		if r.Jobs[i].Wave == n {
			found = &r.Jobs[i]
		}
	}
	return found
}

// writeConverge says what apply waits for after each wave.
func writeConverge(out *writer, r reconcile.ResourceChange, st styler) {
	if c := r.Converge; c != nil {
		out.printf("      %s\n", st.style(dim, "# "+ConvergeText(r)))
	}
}

// ConvergeText is e.g. "after each wave, waits up to 30m until 95% of the targeted devices
// report the desired values".
func ConvergeText(r reconcile.ResourceChange) string {
	when := "after its job"
	if r.Rollout != nil {
		when = "after each wave"
	}
	c := r.Converge
	return fmt.Sprintf("%s, waits up to %s until %g%% of the targeted devices report the desired values",
		when, reconcile.Duration(time.Duration(c.TimeoutSeconds)*time.Second), 100*c.MinRatio)
}
