package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iotplan/iotplan/internal/render"
)

// jsonEvent is an event of the -json stream as a reader decodes it.
type jsonEvent struct {
	Type      string `json:"type"`
	Level     string `json:"@level"`
	Message   string `json:"@message"`
	Timestamp string `json:"@timestamp"`
	UI        string `json:"ui"`
	Change    *struct {
		Address         string `json:"address"`
		Action          string `json:"action"`
		TargetedDevices int    `json:"targeted_devices"`
		Devices         int    `json:"devices"`
		Transitions     []struct {
			Key             string          `json:"key"`
			Op              string          `json:"op"`
			To              json.RawMessage `json:"to"`
			Devices         int             `json:"devices"`
			SampleDeviceIDs []string        `json:"sample_device_ids"`
		} `json:"transitions"`
	} `json:"change"`
	Changes *struct {
		Update, Invoke int
		HasChanges     bool `json:"has_changes"`
	} `json:"changes"`
	Job *struct {
		JobID      string `json:"job_id"`
		Address    string `json:"address"`
		Type       string `json:"type"`
		Status     string `json:"status"`
		Success    bool   `json:"success"`
		Statistics struct {
			DeviceCount int `json:"device_count"`
			Succeeded   int `json:"succeeded"`
		} `json:"statistics"`
	} `json:"job"`
	Failure *struct {
		DeviceID  string `json:"device_id"`
		ErrorCode string `json:"error_code"`
	} `json:"failure"`
	Outcome *struct {
		Result        string `json:"result"`
		Success       bool   `json:"success"`
		FailedDevices int    `json:"failed_devices"`
	} `json:"outcome"`
	Diagnostic *struct {
		Severity, Summary string
		Range             *struct{ Filename string } `json:"range"`
	} `json:"diagnostic"`
}

// decodeEvents reads a -json stdout: every line must be one event with the fields every
// event has, the first the version.
func decodeEvents(t *testing.T, out string) []jsonEvent {
	t.Helper()
	var evs []jsonEvent
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var ev jsonEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("stdout line is not JSON: %v\n%s", err, sc.Text())
		}
		if _, err := time.Parse(time.RFC3339, ev.Timestamp); err != nil || ev.Type == "" || ev.Level == "" || ev.Message == "" {
			t.Errorf("event lacks a common field: %s", sc.Text())
		}
		evs = append(evs, ev)
	}
	if len(evs) == 0 || evs[0].Type != render.EventVersion || evs[0].UI != render.UIVersion {
		t.Fatalf("the stream does not start with the version event:\n%s", out)
	}
	return evs
}

func eventsOf(evs []jsonEvent, typ string) []jsonEvent {
	var out []jsonEvent
	for _, ev := range evs {
		if ev.Type == typ {
			out = append(out, ev)
		}
	}
	return out
}

// TestPlanApplyShowJSONEndToEnd runs the tutorial with -json against the local hub: plan
// (a planned_change per resource with its device counts, the summary last), show -json of the
// saved plan, then apply -json -auto-approve (the jobs' events, the apply_summary last).
func TestPlanApplyShowJSONEndToEnd(t *testing.T) {
	h, dir := testHub(t, "")
	const cfg = "../../examples/lockdoor.hcl"
	r := iotplan(t, "plan", "-json", "-detailed-exitcode", "-dev", "-data", dir, cfg)
	if r.code != exitChanges {
		t.Fatalf("plan -json -detailed-exitcode: exit %d, want 2\n%s%s", r.code, r.out, r.err)
	}
	evs := decodeEvents(t, r.out)
	if last := evs[len(evs)-1]; last.Type != render.EventChangeSummary || last.Changes.Update != 1 || last.Changes.Invoke != 1 || !last.Changes.HasChanges {
		t.Errorf("last plan event = %+v, want the change_summary", last)
	}
	changes := eventsOf(evs, render.EventPlannedChange)
	if len(changes) != 2 {
		t.Fatalf("%d planned_change events, want 2:\n%s", len(changes), r.out)
	}
	twin := changes[0].Change
	if twin.Address != "twin.door_location" || twin.Action != "update" || twin.Devices != 1 || twin.TargetedDevices != 1 || len(twin.Transitions) != 2 {
		t.Fatalf("twin change = %+v", twin)
	}
	if tr := twin.Transitions[0]; tr.Key != "desired.building" || tr.Op != "add" || string(tr.To) != `"43"` || tr.Devices != 1 ||
		len(tr.SampleDeviceIDs) != 1 || tr.SampleDeviceIDs[0] != "myDeviceId" {
		t.Errorf("transition = %+v", tr)
	}

	planFile := filepath.Join(t.TempDir(), "tutorial.plan")
	if r := iotplan(t, "plan", "-json", "-out", planFile, "-dev", "-data", dir, cfg); r.code != 0 {
		t.Fatalf("plan -json -out: exit %d\n%s%s", r.code, r.out, r.err)
	}
	r = iotplan(t, "show", "-json", planFile)
	var doc struct {
		FormatVersion   string `json:"format_version"`
		ResourceChanges []struct {
			Address string
			Devices int
		} `json:"resource_changes"`
	}
	if err := json.Unmarshal([]byte(r.out), &doc); err != nil || r.code != 0 || doc.FormatVersion != render.ShowFormatVersion ||
		len(doc.ResourceChanges) != 2 || doc.ResourceChanges[0].Address != "twin.door_location" || doc.ResourceChanges[0].Devices != 1 {
		t.Fatalf("show -json: exit %d, %v: %+v\n%s", r.code, err, doc, r.out)
	}

	r = iotplan(t, "apply", "-json", "-auto-approve", "-dev", "-data", dir, cfg)
	if r.code != 0 {
		t.Fatalf("apply -json: exit %d\n%s%s", r.code, r.out, r.err)
	}
	evs = decodeEvents(t, r.out)
	created, completed := eventsOf(evs, render.EventJobCreated), eventsOf(evs, render.EventJobCompleted)
	if len(created) != 2 || len(completed) != 2 || len(eventsOf(evs, render.EventJobProgress)) < 2 {
		t.Fatalf("apply events: %d job_created, %d job_completed; want 2 each and progress\n%s", len(created), len(completed), r.out)
	}
	for i, c := range completed {
		if j := c.Job; j.JobID != created[i].Job.JobID || !j.Success || j.Status != "completed" || j.Statistics.DeviceCount != 1 || j.Statistics.Succeeded != 1 {
			t.Errorf("job_completed = %+v, want job %s completed on 1 device", j, created[i].Job.JobID)
		}
	}
	if last := evs[len(evs)-1]; last.Type != render.EventApplySummary || last.Outcome.Result != render.OutcomeComplete || !last.Outcome.Success {
		t.Errorf("last apply event = %+v, want a successful apply_summary", last)
	}
	if n := h.Sim().Calls("myDeviceId", "lockDoor"); n != 1 {
		t.Errorf("lockDoor reached myDeviceId %d times, want 1", n)
	}

	// The twin converged: an apply of it alone has nothing to do, and still ends with its
	// apply_summary.
	twinOnly := filepath.Join(t.TempDir(), "twin.hcl")
	os.WriteFile(twinOnly, []byte("twin \"door_location\" {\n  target = \"deviceId IN ['myDeviceId']\"\n  desired = { building = \"43\", floor = 3 }\n}\n"), 0o644)
	r = iotplan(t, "apply", "-json", "-auto-approve", "-dev", "-data", dir, twinOnly)
	evs = decodeEvents(t, r.out)
	if last := evs[len(evs)-1]; r.code != 0 || last.Type != render.EventApplySummary || last.Outcome.Result != render.OutcomeNothing || !last.Outcome.Success {
		t.Errorf("apply with nothing to do: exit %d, last event %+v\n%s", r.code, last, r.out)
	}
}

// TestApplyJSONReportsFailedDevices: every failed device is a device_failed event, and the
// apply_summary says the apply failed (exit 1).
func TestApplyJSONReportsFailedDevices(t *testing.T) {
	fleet := filepath.Join(t.TempDir(), "fleet.hcl")
	os.WriteFile(fleet, []byte("group \"good\" {\n  count = 2\n  id = \"good-%d\"\n  method \"reboot\" {\n    status = 200\n  }\n}\ndevice \"nomethod\" {}\n"), 0o644)
	_, dir := testHub(t, fleet)
	cfg := filepath.Join(t.TempDir(), "reboot.hcl")
	os.WriteFile(cfg, []byte("method \"reboot\" {\n  target = \"*\"\n  method = \"reboot\"\n  response_timeout = \"5s\"\n}\n"), 0o644)
	r := iotplan(t, "apply", "-json", "-auto-approve", "-dev", "-data", dir, cfg)
	if r.code != exitError {
		t.Fatalf("exit %d, want 1\n%s%s", r.code, r.out, r.err)
	}
	evs := decodeEvents(t, r.out)
	failed := eventsOf(evs, render.EventDeviceFailed)
	if len(failed) != 1 || failed[0].Failure.DeviceID != "nomethod" || failed[0].Failure.ErrorCode == "" || failed[0].Level != render.LevelError {
		t.Errorf("device_failed events = %+v, want nomethod with the hub's error code", failed)
	}
	if last := evs[len(evs)-1]; last.Type != render.EventApplySummary || last.Outcome.Success || last.Outcome.Result != render.OutcomeFailures || last.Outcome.FailedDevices != 1 {
		t.Errorf("last event = %+v, want a failed apply_summary", last)
	}
}

// TestJSONAndNoInputNeverPrompt: apply and destroy with -json or -input=false and neither
// -auto-approve nor a saved plan fail at once, before any job, with a clear error (a
// diagnostic event on stdout with -json).
func TestJSONAndNoInputNeverPrompt(t *testing.T) {
	h, dir := testHub(t, "")
	const cfg = "../../examples/lockdoor.hcl"
	for _, args := range [][]string{{"apply", "-json"}, {"destroy", "-json"}, {"apply", "-json", "-input=false"}} {
		r := iotplan(t, append(args, "-dev", "-data", dir, cfg)...)
		evs := decodeEvents(t, r.out)
		last := evs[len(evs)-1]
		if r.code != exitError || len(evs) != 2 || last.Type != render.EventDiagnostic || last.Diagnostic.Severity != "error" ||
			!strings.Contains(last.Diagnostic.Summary, "-auto-approve is required with -json") {
			t.Errorf("%v: exit %d, events %+v; want 1 and the -auto-approve error", args, r.code, evs)
		}
		if strings.Contains(r.err, "Error") {
			t.Errorf("%v: the error went to stderr as text too: %q", args, r.err)
		}
	}
	r := iotplan(t, "apply", "-input=false", "-dev", "-data", dir, cfg)
	if r.code != exitError || !strings.Contains(r.err, "-auto-approve is required with -input=false") || r.out != "" {
		t.Errorf("apply -input=false: exit %d, stdout %q, stderr %q", r.code, r.out, r.err)
	}
	jobs, err := testClient(t, h).ListJobs(context.Background(), "", "")
	if err != nil || len(jobs) != 0 {
		t.Errorf("jobs after refused applies = %v, %v; want none", jobs, err)
	}
	if r := iotplan(t, "plan", "-input=false", "-dev", "-data", dir, cfg); r.code != 0 {
		t.Errorf("plan -input=false: exit %d\n%s", r.code, r.err)
	}
}

// TestPlanJSONConfigErrors: configuration errors are diagnostic events with their range on
// stdout, not text on stderr; the exit code stays 1.
func TestPlanJSONConfigErrors(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "bad.hcl")
	os.WriteFile(cfg, []byte("twin \"x\" {\n  target  = \"deviceId IN ['a' 'b']\"\n  desired = { a = 1 }\n}\n"), 0o644)
	r := iotplan(t, "plan", "-json", "-dev", "-data", t.TempDir(), cfg)
	if r.code != exitError {
		t.Fatalf("exit %d, want 1", r.code)
	}
	diags := eventsOf(decodeEvents(t, r.out), render.EventDiagnostic)
	if len(diags) != 1 || diags[0].Diagnostic.Severity != "error" || diags[0].Diagnostic.Range == nil || diags[0].Diagnostic.Range.Filename != cfg {
		t.Errorf("diagnostics = %+v\n%s", diags, r.out)
	}
	if r.err != "" {
		t.Errorf("stderr = %q, want nothing", r.err)
	}
}

// TestJSONNeverShowsSecrets: no sensitive value, quoted sensitive target, connection string or
// key reaches the JSON of plan, apply, show or validate, which still flag what they hide.
func TestJSONNeverShowsSecrets(t *testing.T) {
	h, dir := testHub(t, "")
	cfg := filepath.Join(t.TempDir(), "secret.hcl")
	os.WriteFile(cfg, []byte(secretConfig), 0o644)
	const secret = secretValue
	vars := []string{"-var", "token=" + secret, "-var", "device=myDeviceId"}
	planFile := filepath.Join(t.TempDir(), "secret.plan")
	_, key, _ := strings.Cut(h.ServiceConnectionString(), "SharedAccessKey=")
	runs := map[string]result{
		"plan":     iotplan(t, append([]string{"plan", "-json", "-out", planFile, "-dev", "-data", dir, cfg}, vars...)...),
		"show":     {},
		"apply":    iotplan(t, append([]string{"apply", "-json", "-auto-approve", "-dev", "-data", dir, cfg}, vars...)...),
		"validate": iotplan(t, append([]string{"validate", "-json", cfg}, vars...)...),
	}
	runs["show"] = iotplan(t, "show", "-json", planFile)
	for name, r := range runs {
		if r.code != 0 {
			t.Errorf("%s: exit %d\n%s%s", name, r.code, r.out, r.err)
		}
		all := r.out + r.err
		for _, leak := range []string{secret, "myDeviceId'", key, "SharedAccessKey"} {
			if strings.Contains(all, leak) {
				t.Errorf("%s output holds %q:\n%s", name, leak, all)
			}
		}
	}
	var show bytes.Buffer // show's document is indented: compact it like the events
	if err := json.Compact(&show, []byte(runs["show"].out)); err != nil {
		t.Fatalf("show -json: %v", err)
	}
	for name, out := range map[string]string{"plan": runs["plan"].out, "show": show.String(), "apply": runs["apply"].out} {
		for _, want := range []string{render.SensitiveValue, `"sensitive":true`, `"desired.floor"`} {
			if !strings.Contains(out, want) {
				t.Errorf("%s -json lacks %s:\n%s", name, want, out)
			}
		}
	}
}

// TestValidateJSON: one document in the shape of Terraform's validate -json, for a valid
// configuration, an invalid one (exit 1) and one with a warning (whose key it never shows);
// -compact-warnings puts a warning on one line.
func TestValidateJSON(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.hcl")
	os.WriteFile(bad, []byte("twin \"x\" {\n  target  = \"deviceId IN ['a' 'b']\"\n  desired = { a = 1 }\n}\n"), 0o644)
	const key = "U0VDUkVULUtFWS0xMjM0NQ=="
	warn := filepath.Join(dir, "warn.hcl")
	os.WriteFile(warn, []byte("hub {\n  connection_string = \"HostName=h.azure-devices.net;SharedAccessKeyName=p;SharedAccessKey="+key+"\"\n}\n"), 0o644)
	type doc struct {
		FormatVersion string `json:"format_version"`
		Valid         bool   `json:"valid"`
		ErrorCount    int    `json:"error_count"`
		WarningCount  int    `json:"warning_count"`
		Diagnostics   []struct {
			Severity, Summary string
			Range             *struct{ Start struct{ Line int } } `json:"range"`
		} `json:"diagnostics"`
	}
	for _, tc := range []struct {
		path          string
		code          int
		valid         bool
		errors, warns int
		line          int
	}{
		{"../../examples/lockdoor.hcl", 0, true, 0, 0, 0},
		{bad, exitError, false, 1, 0, 2},
		{warn, 0, true, 0, 1, 1},
	} {
		r := iotplan(t, "validate", "-json", tc.path)
		var d doc
		if err := json.Unmarshal([]byte(r.out), &d); err != nil || r.code != tc.code || r.err != "" {
			t.Fatalf("validate -json %s: exit %d, %v\n%s%s", tc.path, r.code, err, r.out, r.err)
		}
		if d.FormatVersion != "1.0" || d.Valid != tc.valid || d.ErrorCount != tc.errors || d.WarningCount != tc.warns || len(d.Diagnostics) != tc.errors+tc.warns {
			t.Errorf("validate -json %s = %+v", tc.path, d)
		}
		if tc.line > 0 && (d.Diagnostics[0].Range == nil || d.Diagnostics[0].Range.Start.Line != tc.line) {
			t.Errorf("validate -json %s: diagnostic %+v, want a range on line %d", tc.path, d.Diagnostics[0], tc.line)
		}
		if strings.Contains(r.out, key) {
			t.Errorf("validate -json shows the key:\n%s", r.out)
		}
	}
	r := iotplan(t, "validate", "-compact-warnings", warn)
	if r.code != 0 || strings.Count(r.err, "Warning:") != 1 || strings.Count(strings.TrimSpace(r.err), "\n") != 0 ||
		!strings.Contains(r.err, "warn.hcl line 1") || strings.Contains(r.err, key) {
		t.Errorf("validate -compact-warnings: exit %d, stderr %q; want one warning line", r.code, r.err)
	}
	if r := iotplan(t, "validate", warn); strings.Count(strings.TrimSpace(r.err), "\n") < 2 {
		t.Errorf("validate without -compact-warnings: stderr %q, want the warning in full", r.err)
	}
}
