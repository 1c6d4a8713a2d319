package render

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/reconcile"
)

// JobsFormatVersion is the format_version of 'iotplan jobs list -json' and of the first line of
// 'iotplan jobs show -json'.
const JobsFormatVersion = "1"

// isIotplanJob reports whether iotplan made the job with this id.
func isIotplanJob(jobID string) bool { return strings.HasPrefix(jobID, reconcile.JobIDPrefix) }

// jobTime is how job listings show a time: UTC to the second, the zone left to the column
// heading ("-" when the hub gave none).
func jobTime(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return strings.TrimSuffix(reconcile.TimeText(*t), " UTC")
}

// newestFirst returns a copy of jobs sorted by createdTime, newest first (jobs without one
// last), then by id: Azure does not document the order of GET /jobs/v2/query.
func newestFirst(jobs []hubapi.JobResponse) []hubapi.JobResponse {
	out := slices.Clone(jobs)
	slices.SortStableFunc(out, func(a, b hubapi.JobResponse) int {
		switch {
		case a.CreatedTime == nil && b.CreatedTime == nil:
		case a.CreatedTime == nil:
			return 1
		case b.CreatedTime == nil:
			return -1
		default:
			if c := b.CreatedTime.Compare(*a.CreatedTime); c != 0 {
				return c
			}
		}
		return strings.Compare(a.JobID, b.JobID)
	})
	return out
}

// JobList writes 'iotplan jobs list': one row per job, newest first, with its device
// statistics and whether iotplan made it. filter describes the -type/-status filters for the
// empty case ("" when none).
func JobList(w io.Writer, jobs []hubapi.JobResponse, filter string, opts Options) error {
	out := &writer{w: w}
	if len(jobs) == 0 {
		if filter != "" {
			filter = " (" + filter + ")"
		}
		out.printf("No jobs on the hub%s.\n", filter)
		return out.err
	}
	st := styler{opts.Color}
	rows := [][]string{{"ID", "TYPE", "STATUS", "CREATED", "START", "END", "SUCCEEDED", "FAILED", "DEVICES", "MADE BY"}}
	ours := 0
	for _, j := range newestFirst(jobs) {
		rows = append(rows, jobRow(j))
		if isIotplanJob(j.JobID) {
			ours++
		}
	}
	widths := columnWidths(rows)
	for i, r := range rows {
		line := ""
		for c, cell := range r {
			text := pad(cell, widths[c], c >= 6 && c <= 8)
			switch {
			case i == 0:
				text = st.style(bold, text)
			case c == 2:
				text = st.style(statusColor(cell), text)
			}
			line += text
			if c < len(r)-1 {
				line += "  "
			}
		}
		out.printf("%s\n", strings.TrimRight(line, " "))
	}
	out.printf("\n%s, %s by iotplan. Times are UTC.\n", plural(len(jobs), "job", "jobs"), Count(ours))
	return out.err
}

func jobRow(j hubapi.JobResponse) []string {
	succeeded, failed, devices := "-", "-", "-"
	if s := j.DeviceJobStatistics; s != nil {
		succeeded, failed, devices = Count(s.SucceededCount), Count(s.FailedCount), Count(s.DeviceCount)
	}
	by := "other"
	if isIotplanJob(j.JobID) {
		by = "iotplan"
	}
	return []string{j.JobID, j.Type, j.Status, jobTime(j.CreatedTime), jobTime(j.StartTime), jobTime(j.EndTime),
		succeeded, failed, devices, by}
}

func columnWidths(rows [][]string) []int {
	widths := make([]int, len(rows[0]))
	for _, r := range rows {
		for c, cell := range r {
			widths[c] = max(widths[c], runeLen(cell))
		}
	}
	return widths
}

// pad fills s to width runes, on the left for numbers (right-aligned) and on the right
// otherwise.
func pad(s string, width int, right bool) string {
	fill := strings.Repeat(" ", max(0, width-runeLen(s)))
	if right {
		return fill + s
	}
	return s + fill
}

func statusColor(status string) string {
	switch status {
	case hubapi.JobStatusCompleted:
		return green
	case hubapi.JobStatusFailed:
		return red
	case hubapi.JobStatusCancelled:
		return yellow
	}
	return cyan
}

// JobListJSON writes 'iotplan jobs list -json': {"format_version":"1","jobs":[…]}, the jobs
// as the hub returned them (its JobResponse fields), newest first.
func JobListJSON(w io.Writer, jobs []hubapi.JobResponse) error {
	doc := struct {
		FormatVersion string               `json:"format_version"`
		Jobs          []hubapi.JobResponse `json:"jobs"`
	}{JobsFormatVersion, newestFirst(jobs)}
	if doc.Jobs == nil {
		doc.Jobs = []hubapi.JobResponse{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

// JobDetail writes a job as 'iotplan jobs show' and 'iotplan jobs cancel' describe it: type,
// status, times, condition, what it does and its device statistics. A method's payload and a
// patch's values are not shown: they may come from sensitive variables (the -json output of
// 'jobs show' has them, as the hub returns them).
func JobDetail(w io.Writer, j hubapi.JobResponse, opts Options) error {
	out := &writer{w: w}
	st := styler{opts.Color}
	by := "made by another tool"
	if isIotplanJob(j.JobID) {
		by = "made by iotplan"
	}
	out.printf("%s (%s)\n", st.style(bold, "Job "+j.JobID), by)
	field := func(name, value string) {
		if value != "" {
			out.printf("  %-10s %s\n", name, value)
		}
	}
	field("type", j.Type)
	field("status", st.style(statusColor(j.Status), j.Status))
	field("created", utcTime(j.CreatedTime))
	field("start", utcTime(j.StartTime))
	field("end", endText(j))
	field("max time", maxTimeText(j.MaxExecutionTimeInSeconds))
	field("condition", oneLineText(j.QueryCondition))
	field("method", methodText(j.CloudToDeviceMethod))
	field("patch", patchText(j.UpdateTwin))
	field("devices", statsText(j.DeviceJobStatistics))
	field("failure", oneLineText(j.FailureReason))
	field("message", oneLineText(j.StatusMessage))
	return out.err
}

// utcTime is a time of the job's detail, "" (not shown) when the hub gave none.
func utcTime(t *time.Time) string {
	if t == nil || t.IsZero() {
		return ""
	}
	return reconcile.TimeText(*t)
}

func endText(j hubapi.JobResponse) string {
	s := utcTime(j.EndTime)
	if s == "" {
		return ""
	}
	if j.StartTime != nil && !j.StartTime.IsZero() && !j.EndTime.Before(*j.StartTime) {
		s += " (after " + elapsed(j.EndTime.Sub(*j.StartTime)) + ")"
	}
	return s
}

func maxTimeText(seconds int64) string {
	if seconds <= 0 {
		return ""
	}
	return reconcile.Duration(time.Duration(seconds) * time.Second)
}

func methodText(m *hubapi.CloudToDeviceMethod) string {
	if m == nil {
		return ""
	}
	s := oneLineText(m.MethodName)
	if m.ResponseTimeoutInSeconds > 0 {
		s += fmt.Sprintf(", response timeout %ds", m.ResponseTimeoutInSeconds)
	}
	if m.ConnectTimeoutInSeconds > 0 {
		s += fmt.Sprintf(", connect timeout %ds", m.ConnectTimeoutInSeconds)
	}
	return s + " (payload not shown)"
}

// patchText lists the keys a twin job writes, as plans name them (desired.x, tags.y).
func patchText(p *hubapi.TwinPatch) string {
	if p == nil {
		return ""
	}
	var keys []string
	for k := range p.Tags {
		keys = append(keys, "tags."+k)
	}
	if p.Properties != nil {
		for k := range p.Properties.Desired {
			keys = append(keys, "desired."+k)
		}
	}
	if len(keys) == 0 {
		return "(no keys)"
	}
	slices.Sort(keys)
	return oneLineText(strings.Join(keys, ", ")) + " (values not shown)"
}

func statsText(s *hubapi.DeviceJobStatistics) string {
	if s == nil {
		return ""
	}
	return Count(s.DeviceCount) + " — " + countsText(Count(s.SucceededCount), *s)
}

// oneLineText collapses runs of white space (newlines included) in text from the hub or a
// device, so every listed item stays on one line.
func oneLineText(s string) string { return strings.Join(strings.Fields(s), " ") }

// compactJSON renders a device's payload on one line, shortened like plan values.
func compactJSON(raw json.RawMessage) string {
	var b bytes.Buffer
	if json.Compact(&b, raw) == nil {
		raw = b.Bytes()
	}
	return value(json.RawMessage(oneLineText(string(raw))))
}

// JobListing names what 'iotplan jobs show' lists after the job.
type JobListing int

const (
	// ListAll is every device row of the job.
	ListAll JobListing = iota
	// ListFailed is the rows the hub marked failed (the device was not reached or errored).
	ListFailed
	// ListMethodErrors is the rows of a method job whose device answered outside 200–299:
	// the hub counts them completed.
	ListMethodErrors
)

// JobShow receives what 'iotplan jobs show' reads, as it arrives: the job, then for each
// listing its device rows, then the end. Rows are streamed page by page, so a listing of a
// million rows is never held in memory.
type JobShow interface {
	Job(j hubapi.JobResponse) error
	Listing(l JobListing) error
	Device(dj hubapi.DeviceJob) error
	// End closes the output: listed rows were shown; more says -limit stopped the listing
	// while rows remained.
	End(listed int, more bool) error
}

// NewJobShow returns the human view of 'iotplan jobs show', writing to w.
func NewJobShow(w io.Writer, opts Options) JobShow {
	return &jobShow{out: &writer{w: w}, opts: opts, st: styler{opts.Color}}
}

type jobShow struct {
	out     *writer
	opts    Options
	st      styler
	listing JobListing
	header  bool // the current listing's heading is written
	failed  bool // a failure listing was asked for (-failed-only)
}

func (v *jobShow) Job(j hubapi.JobResponse) error {
	if err := JobDetail(v.out.w, j, v.opts); err != nil {
		v.out.err = err
	}
	return v.out.err
}

// Listing starts a listing; its heading is written with its first row, so an empty listing
// leaves no heading behind.
func (v *jobShow) Listing(l JobListing) error {
	v.listing, v.header = l, false
	v.failed = v.failed || l != ListAll
	return v.out.err
}

var listingHeadings = map[JobListing]string{
	ListAll:          "Devices:",
	ListFailed:       "Failed devices:",
	ListMethodErrors: "Devices that answered with an error status (the hub counts them completed):",
}

func (v *jobShow) Device(dj hubapi.DeviceJob) error {
	if !v.header {
		v.out.printf("\n%s\n", v.st.style(bold, listingHeadings[v.listing]))
		v.header = true
	}
	mark := v.st.style(dim, "·")
	switch {
	case deviceJobFailed(dj):
		mark = v.st.style(red, "✗")
	case dj.Status == hubapi.DeviceJobCompleted:
		mark = v.st.style(green, "✓")
	}
	line := fmt.Sprintf("  %s %s  %s", mark, oneLineText(dj.DeviceID), oneLineText(dj.Status))
	if d := deviceJobDetail(dj); d != "" {
		line += "  " + d
	}
	v.out.printf("%s\n", line)
	return v.out.err
}

func (v *jobShow) End(listed int, more bool) error {
	what := plural(listed, "device", "devices")
	if v.failed {
		what = plural(listed, "failed device", "failed devices")
	}
	switch {
	case more:
		v.out.printf("\nListed the first %s: more remain (raise -limit, or drop it, to see them).\n", what)
	case listed == 0 && v.failed:
		v.out.printf("\nNo failed devices.\n")
	case listed == 0:
		v.out.printf("\nNo device rows: the job has not selected its devices (yet).\n")
	default:
		v.out.printf("\nListed %s.\n", what)
	}
	return v.out.err
}

// deviceJobFailed: the hub marked the row failed, or the device answered outside 200–299.
func deviceJobFailed(dj hubapi.DeviceJob) bool {
	if dj.Status == hubapi.DeviceJobFailed {
		return true
	}
	r := methodResponse(dj)
	return r != nil && (r.Status < 200 || r.Status > 299)
}

func methodResponse(dj hubapi.DeviceJob) *hubapi.CloudToDeviceMethodResult {
	if dj.Outcome == nil {
		return nil
	}
	return dj.Outcome.DeviceMethodResponse
}

// deviceJobDetail is the row's error (code: description) or the device's answer
// (status: payload), as apply lists failed devices; "" for a row with neither that did not fail.
func deviceJobDetail(dj hubapi.DeviceJob) string {
	f := reconcile.FailureOf(dj)
	if f.Code == "" && f.Description == "" && f.MethodStatus == nil && dj.Status != hubapi.DeviceJobFailed {
		return ""
	}
	return failureText(f)
}

// NewJobShowJSON returns the JSON Lines view of 'iotplan jobs show -json': one object per
// line, first {"format_version":"1","job":{…}} (the hub's JobResponse), then one
// {"device_job":{…}} per device row (a devices.jobs row), written as each row arrives.
func NewJobShowJSON(w io.Writer) JobShow { return &jobShowJSON{enc: json.NewEncoder(w)} }

type jobShowJSON struct{ enc *json.Encoder }

func (v *jobShowJSON) Job(j hubapi.JobResponse) error {
	return v.enc.Encode(struct {
		FormatVersion string             `json:"format_version"`
		Job           hubapi.JobResponse `json:"job"`
	}{JobsFormatVersion, j})
}

func (v *jobShowJSON) Listing(JobListing) error { return nil }

func (v *jobShowJSON) Device(dj hubapi.DeviceJob) error {
	return v.enc.Encode(struct {
		DeviceJob hubapi.DeviceJob `json:"device_job"`
	}{dj})
}

func (v *jobShowJSON) End(int, bool) error { return nil }

// JobCancelled writes the job's status after 'iotplan jobs cancel'.
func JobCancelled(w io.Writer, j hubapi.JobResponse, opts Options) error {
	out := &writer{w: w}
	st := styler{opts.Color}
	out.printf("\nJob %s: %s", j.JobID, st.style(bold+statusColor(j.Status), j.Status))
	if end := utcTime(j.EndTime); end != "" {
		out.printf(" at %s", end)
	}
	out.printf(".\n")
	if s := j.DeviceJobStatistics; s != nil && s.DeviceCount > 0 {
		out.printf("  devices    %s\n", statsText(s))
	}
	return out.err
}
