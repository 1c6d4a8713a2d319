package render

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/iotplan/iotplan/internal/reconcile"
)

// 'iotplan drift': per recorded twin resource and managed key, the devices that no longer hold
// the value iotplan set, for people or as one JSON document (docs/json.md). The values of
// sensitive keys, and sensitive targets, are shown as SensitiveValue.

// Drift writes the report for people; serial is the state serial that records it (0: it was
// not recorded).
func Drift(w io.Writer, r *reconcile.DriftReport, serial int64, opts Options) error {
	out := &writer{w: w}
	st := styler{opts.Color}
	out.printf("Drift on %s, state %q, at %s: the values iotplan set, checked on the devices of each recorded target.\n",
		r.Hub, r.StateName, reconcile.TimeText(r.Observed))
	for _, rd := range r.Resources {
		out.printf("\n%s\n", st.style(bold, fmt.Sprintf("%s (%s targeted)", rd.Addr, plural(rd.Targeted, "device", "devices"))))
		for _, k := range rd.Keys {
			writeKeyDrift(out, st, rd, k)
		}
	}
	if len(r.Notes) > 0 {
		out.printf("\n")
	}
	for _, n := range r.Notes {
		out.printf("  # %s\n", n)
	}
	keys, resources := driftCounts(r)
	if keys > 0 {
		out.printf("\n%s\n", st.style(yellow, fmt.Sprintf("Drift found: %s of %s no longer hold the value iotplan set on some devices.",
			plural(keys, "key", "keys"), plural(resources, "resource", "resources"))))
	} else {
		out.printf("\n%s\n", st.style(green, "No drift: every targeted device holds the values iotplan set."))
	}
	if serial > 0 {
		out.printf("Recorded in the state %q (serial %d); no device was changed.\n", r.StateName, serial)
	}
	for _, line := range []string{callsLine("Drift", r.HubCalls), pacedLine("Drift", r.HubWait), waitLine("Drift", r.HubWait)} {
		if line != "" {
			out.printf("%s\n", line)
		}
	}
	return out.err
}

func writeKeyDrift(out *writer, st styler, rd reconcile.ResourceDrift, k reconcile.KeyDrift) {
	v := value(k.Value)
	if IsSensitive(rd.Sensitive, k.Key) {
		v = SensitiveValue
	}
	head := fmt.Sprintf("%s = %s", k.Key, v)
	switch {
	case k.NotChecked != "":
		out.printf("    %s: not checked: %s\n", head, k.NotChecked)
		return
	case k.Devices == 0:
		out.printf("    %s: no drift\n", head)
		return
	}
	line := fmt.Sprintf("%s: %s of %s no longer %s it", head, Count(k.Devices), Count(rd.Targeted), verb(k.Devices, "holds", "hold"))
	if ex := examples(k.Samples, k.Devices); ex != "" {
		line += " " + ex
	}
	if k.LastUpdated != nil {
		line += ", last changed " + reconcile.TimeText(*k.LastUpdated)
	}
	out.printf("  %s %s\n", st.style(yellow, "~"), line)
	if k.Unselectable > 0 {
		out.printf("      # %s %s an object or an array, which no query condition selects: not among the examples and the time\n",
			Count(k.Unselectable), verb(k.Unselectable, "holds", "hold"))
	}
	if k.NoTime != "" {
		out.printf("      # %s\n", k.NoTime)
	}
}

func verb(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// driftCounts counts the drifted keys and the resources that have one.
func driftCounts(r *reconcile.DriftReport) (keys, resources int) {
	for _, rd := range r.Resources {
		n := 0
		for _, k := range rd.Keys {
			if k.Devices > 0 {
				n++
			}
		}
		keys += n
		if n > 0 {
			resources++
		}
	}
	return keys, resources
}

// jsonDrift is the document of 'iotplan drift -json'.
type jsonDrift struct {
	FormatVersion  string              `json:"format_version"`
	IotplanVersion string              `json:"iotplan_version"`
	Hub            string              `json:"hub"`
	State          string              `json:"state"`
	ObservedAt     time.Time           `json:"observed_at"`
	Drift          bool                `json:"drift"`
	Resources      []jsonResourceDrift `json:"resources"`
	RecordedSerial *int64              `json:"recorded_serial"`
	Notes          []string            `json:"notes"`
	HubCalls       map[string]int      `json:"hub_calls"`
	HubWait        *jsonWait           `json:"hub_wait,omitempty"`
}

type jsonResourceDrift struct {
	Address         string         `json:"address"`
	Target          string         `json:"target"`
	SensitiveTarget bool           `json:"sensitive_target"`
	Targeted        int            `json:"targeted"`
	Keys            []jsonKeyDrift `json:"keys"`
}

type jsonKeyDrift struct {
	Key             string          `json:"key"`
	Value           json.RawMessage `json:"value"`
	Sensitive       bool            `json:"sensitive"`
	Checked         bool            `json:"checked"`
	NotChecked      string          `json:"not_checked,omitempty"`
	Devices         int             `json:"devices"`
	Unselectable    int             `json:"unselectable_devices"`
	LastUpdated     *time.Time      `json:"last_updated"`
	LastUpdatedNote string          `json:"last_updated_note,omitempty"`
	SampleDeviceIDs []string        `json:"sample_device_ids"`
}

// DriftJSON writes the report as one JSON document; serial is the state serial that records it
// (0: not recorded, null in the document); version is iotplan's.
func DriftJSON(w io.Writer, r *reconcile.DriftReport, serial int64, version string) error {
	doc := jsonDrift{FormatVersion: StatusFormatVersion, IotplanVersion: version, Hub: r.Hub, State: r.StateName,
		ObservedAt: r.Observed, Drift: r.Drifted(), Resources: []jsonResourceDrift{}, Notes: nonNilStrings(r.Notes),
		HubCalls: nonNilMap(r.HubCalls), HubWait: waitJSON(r.HubWait)}
	if serial > 0 {
		doc.RecordedSerial = &serial
	}
	for _, rd := range r.Resources {
		jr := jsonResourceDrift{Address: rd.Addr, Target: rd.Target, SensitiveTarget: rd.SensitiveTarget, Targeted: rd.Targeted, Keys: []jsonKeyDrift{}}
		if rd.SensitiveTarget {
			jr.Target = SensitiveValue
		}
		for _, k := range rd.Keys {
			jk := jsonKeyDrift{Key: k.Key, Value: k.Value, Checked: k.NotChecked == "", NotChecked: k.NotChecked, Devices: k.Devices,
				Unselectable: k.Unselectable, LastUpdated: k.LastUpdated, LastUpdatedNote: k.NoTime, SampleDeviceIDs: nonNilStrings(k.Samples)}
			if IsSensitive(rd.Sensitive, k.Key) {
				jk.Value, jk.Sensitive = sensitiveJSON, true
			}
			jr.Keys = append(jr.Keys, jk)
		}
		doc.Resources = append(doc.Resources, jr)
	}
	return writeIndented(w, doc)
}
