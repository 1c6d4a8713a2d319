package render

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/iotplan/iotplan/internal/reconcile"
)

// 'iotplan status': a table of each resource's metrics for people, or one JSON document
// (docs/json.md). A metric that does not apply to a resource is "-" (null in JSON); one the
// hub cannot count is "n/a" (null, with the reason in "not_available"), and the reason is
// printed under the table.

// StatusFormatVersion is the format_version of 'iotplan status -json' and 'iotplan drift
// -json', versioned as show's (ShowFormatVersion).
const StatusFormatVersion = "1.0"

// Metric names, as JSON fields and in the notes under the table.
const (
	metricDesired  = "desired_in_sync"
	metricReported = "reported_in_sync"
	metricRan      = "ran_with_current_triggers"
	metricFailed   = "failed_last_apply"
)

var statusHeader = []string{"RESOURCE", "TARGETED", "DESIRED IN SYNC", "REPORTED IN SYNC", "RAN", "DISCONNECTED", "FAILED"}

// Status writes the report for people: one row per resource, then the notes, the last apply's
// jobs and the hub calls.
func Status(w io.Writer, r *reconcile.StatusReport, opts Options) error {
	out := &writer{w: w}
	st := styler{opts.Color}
	out.printf("Status of the fleet on %s, state %q, at %s\n\n", r.Hub, r.StateName, reconcile.TimeText(r.Observed))
	if len(r.Resources) == 0 {
		out.printf("The configuration has no resources.\n")
	} else {
		rows := make([][]string, 0, len(r.Resources))
		for _, rs := range r.Resources {
			rows = append(rows, []string{rs.Addr, Count(rs.Targeted), metricCell(rs.DesiredInSync), metricCell(rs.ReportedInSync),
				metricCell(rs.Ran), Count(rs.Disconnected), metricCell(rs.Failed)})
		}
		writeTable(out, st, statusHeader, rows)
	}
	writeStatusNotes(out, r)
	writeLastApply(out, r)
	for _, line := range []string{callsLine("Status", r.HubCalls), pacedLine("Status", r.HubWait), waitLine("Status", r.HubWait)} {
		if line != "" {
			out.printf("\n%s", line)
		}
	}
	out.printf("\n")
	return out.err
}

// metricCell is "-" for a metric that does not apply, "n/a" for one not counted.
func metricCell(m *reconcile.Metric) string {
	switch {
	case m == nil:
		return "-"
	case !m.Known():
		return "n/a"
	}
	return Count(m.Devices)
}

// writeTable aligns rows under header: the first column left, the others right.
func writeTable(out *writer, st styler, header []string, rows [][]string) {
	widths := make([]int, len(header))
	for _, row := range append([][]string{header}, rows...) {
		for i, c := range row {
			widths[i] = max(widths[i], runeLen(c))
		}
	}
	line := func(row []string, style string) {
		text := ""
		for i, c := range row {
			if i > 0 {
				text += "  "
			}
			text += pad(c, widths[i], i > 0)
		}
		out.printf("  %s\n", st.style(style, text))
	}
	line(header, bold)
	for _, row := range rows {
		line(row, "")
	}
}

func writeStatusNotes(out *writer, r *reconcile.StatusReport) {
	var notes []string
	for _, rs := range r.Resources {
		for _, m := range []struct {
			name string
			m    *reconcile.Metric
		}{{"desired in sync", rs.DesiredInSync}, {"reported in sync", rs.ReportedInSync}, {"ran", rs.Ran}, {"failed", rs.Failed}} {
			if m.m != nil && !m.m.Known() {
				notes = append(notes, fmt.Sprintf("%s: %s is n/a: %s", rs.Addr, m.name, m.m.NA))
			}
		}
	}
	notes = append(notes, r.Notes...)
	if len(notes) > 0 {
		out.printf("\n")
	}
	for _, n := range notes {
		out.printf("  # %s\n", n)
	}
}

// writeLastApply lists the jobs of the last apply that belong to the report's resources, with
// their failed devices.
func writeLastApply(out *writer, r *reconcile.StatusReport) {
	la := r.LastApply
	if la == nil {
		out.printf("\nNo apply has finished with this state yet: FAILED is \"-\".\n")
		return
	}
	out.printf("\nLast apply: %s %s, finished %s, %s.\n", la.Operation, la.ID, reconcile.TimeText(la.Finished), plural(len(la.Jobs), "job", "jobs"))
	for _, rs := range r.Resources {
		for _, j := range rs.Jobs {
			if j.Gone {
				out.printf("  %s: job %s (%s) is no longer on the hub\n", rs.Addr, j.JobID, j.Type)
				continue
			}
			out.printf("  %s: job %s (%s) %s: %s of %s failed\n", rs.Addr, j.JobID, j.Type, j.Status, Count(j.Failed), plural(j.Devices, "device", "devices"))
		}
	}
}

// jsonStatus is the document of 'iotplan status -json'.
type jsonStatus struct {
	FormatVersion  string               `json:"format_version"`
	IotplanVersion string               `json:"iotplan_version"`
	Hub            string               `json:"hub"`
	State          string               `json:"state"`
	ObservedAt     time.Time            `json:"observed_at"`
	LastApply      *jsonLastApply       `json:"last_apply"`
	Resources      []jsonResourceStatus `json:"resources"`
	Notes          []string             `json:"notes"`
	HubCalls       map[string]int       `json:"hub_calls"`
	HubWait        *jsonWait            `json:"hub_wait,omitempty"`
}

type jsonLastApply struct {
	ID         string    `json:"id"`
	Operation  string    `json:"operation"`
	FinishedAt time.Time `json:"finished_at"`
	Jobs       int       `json:"jobs"`
}

type jsonResourceStatus struct {
	Address         string            `json:"address"`
	Kind            string            `json:"kind"`
	Target          string            `json:"target"`
	SensitiveTarget bool              `json:"sensitive_target"`
	Method          string            `json:"method,omitempty"`
	Targeted        int               `json:"targeted"`
	Disconnected    int               `json:"disconnected"`
	DesiredInSync   *int              `json:"desired_in_sync"`
	ReportedInSync  *int              `json:"reported_in_sync"`
	Ran             *int              `json:"ran_with_current_triggers"`
	RunTag          string            `json:"run_tag,omitempty"`
	Failed          *int              `json:"failed_last_apply"`
	Jobs            []jsonStatusJob   `json:"last_apply_jobs"`
	NotAvailable    map[string]string `json:"not_available"`
}

type jsonStatusJob struct {
	JobID   string `json:"job_id"`
	Type    string `json:"type"`
	Status  string `json:"status"`
	Devices int    `json:"devices"`
	Failed  int    `json:"failed"`
	Gone    bool   `json:"gone"`
}

// StatusJSON writes the report as one JSON document; version is iotplan's.
func StatusJSON(w io.Writer, r *reconcile.StatusReport, version string) error {
	doc := jsonStatus{FormatVersion: StatusFormatVersion, IotplanVersion: version, Hub: r.Hub, State: r.StateName,
		ObservedAt: r.Observed, Resources: []jsonResourceStatus{}, Notes: nonNilStrings(r.Notes),
		HubCalls: nonNilMap(r.HubCalls), HubWait: waitJSON(r.HubWait)}
	if la := r.LastApply; la != nil {
		doc.LastApply = &jsonLastApply{ID: la.ID, Operation: la.Operation, FinishedAt: la.Finished, Jobs: len(la.Jobs)}
	}
	for _, rs := range r.Resources {
		doc.Resources = append(doc.Resources, resourceStatusJSON(rs))
	}
	return writeIndented(w, doc)
}

func resourceStatusJSON(rs reconcile.ResourceStatus) jsonResourceStatus {
	j := jsonResourceStatus{Address: rs.Addr, Kind: rs.Kind, Target: rs.Target, SensitiveTarget: rs.SensitiveTarget,
		Method: rs.Method, Targeted: rs.Targeted, Disconnected: rs.Disconnected, RunTag: rs.RunTag,
		Jobs: []jsonStatusJob{}, NotAvailable: map[string]string{}}
	if rs.SensitiveTarget {
		j.Target = SensitiveValue
	}
	metric := func(name string, m *reconcile.Metric) *int {
		switch {
		case m == nil:
			return nil
		case !m.Known():
			j.NotAvailable[name] = m.NA
			return nil
		}
		n := m.Devices
		return &n
	}
	j.DesiredInSync = metric(metricDesired, rs.DesiredInSync)
	j.ReportedInSync = metric(metricReported, rs.ReportedInSync)
	j.Ran = metric(metricRan, rs.Ran)
	j.Failed = metric(metricFailed, rs.Failed)
	for _, job := range rs.Jobs {
		j.Jobs = append(j.Jobs, jsonStatusJob{JobID: job.JobID, Type: job.Type, Status: job.Status, Devices: job.Devices, Failed: job.Failed, Gone: job.Gone})
	}
	return j
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func writeIndented(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
