package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iotplan/iotplan/internal/hub"
	"github.com/iotplan/iotplan/internal/hub/hubtest"
	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/hubclient"
	"github.com/iotplan/iotplan/internal/reconcile"
)

// testHub starts a strict local hub on a random loopback port with the given fleet file ("" =
// the default fleet) and registers it as the running 'iotplan dev' of a data directory DIR, so
// commands run with -dev -data DIR talk to it over HTTPS like they would to a separate process.
// Every query and job condition the commands send is audited (hubtest.StartAudited): one the
// hub rejects, or that uses anything but IoT Hub's documented query language, fails the test.
func testHub(t *testing.T, fleetFile string) (*hub.Hub, string) {
	t.Helper()
	h, _ := auditedHub(t, fleetFile)
	return h, registerHub(t, h)
}

// auditedHub starts the strict local hub of testHub and returns its audit.
func auditedHub(t *testing.T, fleetFile string) (*hub.Hub, *hubtest.Audit) {
	t.Helper()
	fleet := ""
	if fleetFile != "" {
		b, err := os.ReadFile(fleetFile)
		if err != nil {
			t.Fatal(err)
		}
		fleet = string(b)
	}
	h, _, audit := hubtest.StartAudited(t, fleet)
	return h, audit
}

// registerHub makes h the running 'iotplan dev' of a new data directory, which it returns.
func registerHub(t *testing.T, h *hub.Hub) string {
	t.Helper()
	dir := t.TempDir()
	if err := writeEndpointFile(dir, endpointFile{ConnectionString: h.ServiceConnectionString(), CAFile: h.CAFile(), PID: os.Getpid()}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func testClient(t *testing.T, h *hub.Hub) *hubclient.Client {
	t.Helper()
	return hubtest.Client(t, h)
}

type result struct {
	code     int
	out, err string
}

// iotplan runs the CLI in-process, as the binary would, with non-terminal streams.
func iotplan(t *testing.T, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code := run(ctx, args, Streams{In: strings.NewReader(""), Out: &out, Err: &errb, Width: 100})
	return result{code, out.String(), errb.String()}
}

func TestApplyLockdoorEndToEnd(t *testing.T) {
	h, audit := auditedHub(t, "")
	dir := registerHub(t, h)
	c := testClient(t, h)
	defer func() {
		// What iotplan sent for the tutorial, for review (go test -v): the audit checks it.
		for _, ev := range audit.Events() {
			t.Logf("%-5s %s", ev.Source, ev.Text)
		}
	}()
	ctx := context.Background()

	r := iotplan(t, "apply", "-dev", "-data", dir, "-auto-approve", "../../examples/lockdoor.hcl")
	if r.code != 0 {
		t.Fatalf("apply exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.out, r.err)
	}
	for _, want := range []string{
		`+ desired.building = "43"`, `+ desired.floor = 3`, "(myDeviceId)",
		"Plan: 1 resource to change (1 device), 1 method to invoke on 1 device.",
		"Apply complete!",
	} {
		if !strings.Contains(r.out, want) {
			t.Errorf("apply output lacks %q:\n%s", want, r.out)
		}
	}

	twin, err := c.GetTwin(ctx, "myDeviceId")
	if err != nil {
		t.Fatal(err)
	}
	desired := twin["properties"].(map[string]any)["desired"].(map[string]any)
	if desired["building"] != "43" || desired["floor"] != float64(3) {
		t.Errorf("desired after apply = building %#v, floor %#v; want \"43\", 3", desired["building"], desired["floor"])
	}

	jobs, err := c.ListJobs(ctx, "", "")
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]bool{}
	for _, j := range jobs {
		types[j.Type] = true
		if j.Status != hubapi.JobStatusCompleted {
			t.Errorf("job %s (%s) status %q, want completed", j.JobID, j.Type, j.Status)
		}
		if j.QueryCondition == "" || !strings.Contains(j.QueryCondition, "myDeviceId") {
			t.Errorf("job %s condition %q does not select myDeviceId", j.JobID, j.QueryCondition)
		}
		rows, err := c.DeviceJobs(ctx, j.JobID, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1 || rows[0].DeviceID != "myDeviceId" || rows[0].Status != hubapi.DeviceJobCompleted {
			t.Errorf("job %s device rows = %+v, want myDeviceId completed", j.JobID, rows)
		}
		if j.Type == hubapi.JobTypeDeviceMethod && (len(rows) != 1 || rows[0].Outcome == nil ||
			rows[0].Outcome.DeviceMethodResponse == nil || rows[0].Outcome.DeviceMethodResponse.Status != 200) {
			t.Errorf("method job row outcome = %+v, want status 200", rows)
		}
	}
	if len(jobs) != 2 || !types[hubapi.JobTypeUpdateTwin] || !types[hubapi.JobTypeDeviceMethod] {
		t.Errorf("jobs = %+v, want one scheduleUpdateTwin and one scheduleDeviceMethod", jobs)
	}
	if n := h.Sim().Calls("myDeviceId", "lockDoor"); n != 1 {
		t.Errorf("lockDoor reached myDeviceId %d times, want 1", n)
	}

	// Right after apply, the twin resource has converged: a saved plan shows no twin change.
	planFile := filepath.Join(t.TempDir(), "plan.json")
	r = iotplan(t, "plan", "-dev", "-data", dir, "-detailed-exitcode", "-out", planFile, "../../examples/lockdoor.hcl")
	if r.code != exitChanges { // the method still runs on every apply (v0), so changes remain
		t.Fatalf("second plan exit %d, want 2\n%s%s", r.code, r.out, r.err)
	}
	p, err := reconcile.LoadPlan(planFile)
	if err != nil {
		t.Fatal(err)
	}
	if p.HasTwinChanges() {
		t.Errorf("second plan still changes twins:\n%s", r.out)
	}
	if strings.Contains(r.out, "twin.door_location") {
		t.Errorf("second plan lists the converged twin resource:\n%s", r.out)
	}
}

func TestApplyUpdatesMissingAndMistypedKeysOnly(t *testing.T) {
	fleet := filepath.Join(t.TempDir(), "fleet.hcl")
	os.WriteFile(fleet, []byte(`
group "ok" {
  count   = 5
  id      = "ok-%02d"
  tags    = { site = "hq" }
  desired = { floor = 3 }
}
group "string" {
  count   = 4
  id      = "str-%02d"
  tags    = { site = "hq" }
  desired = { floor = "3" }
}
group "missing" {
  count = 3
  id    = "miss-%02d"
  tags  = { site = "hq" }
}
group "elsewhere" {
  count   = 2
  id      = "other-%02d"
  tags    = { site = "lab" }
  desired = { floor = "3" }
}
`), 0o644)
	h, dir := testHub(t, fleet)
	c := testClient(t, h)
	cfg := filepath.Join(t.TempDir(), "floors.hcl")
	os.WriteFile(cfg, []byte(`
twin "floors" {
  target  = "tags.site = 'hq'"
  desired = { floor = 3 }
}
`), 0o644)

	r := iotplan(t, "apply", "-dev", "-data", dir, "-auto-approve", cfg)
	if r.code != 0 {
		t.Fatalf("apply exit %d\n%s\n%s", r.code, r.out, r.err)
	}
	for _, want := range []string{`~ desired.floor: "3" → 3`, "on 4 devices", "+ desired.floor = 3", "on 3 devices", "updated on 7 devices of 12 targeted"} {
		if !strings.Contains(r.out, want) {
			t.Errorf("plan lacks %q:\n%s", want, r.out)
		}
	}
	// Every device but the one whose twin holds iotplan's state.
	rows, err := c.Query(context.Background(), "SELECT deviceId, properties.desired.floor AS floor FROM devices WHERE NOT IS_DEFINED(tags.iotplanState)")
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range rows {
		id := row["deviceId"].(string)
		want := any(float64(3))
		if strings.HasPrefix(id, "other-") {
			want = "3" // outside the target: untouched
		}
		if row["floor"] != want {
			t.Errorf("%s floor = %#v, want %#v", id, row["floor"], want)
		}
	}
	jobs, err := c.ListJobs(context.Background(), hubapi.JobTypeUpdateTwin, "")
	if err != nil || len(jobs) != 1 {
		t.Fatalf("jobs = %v, %v", jobs, err)
	}
	// The job selected exactly the drifted devices: not the 5 already at 3, not the 2 elsewhere.
	if st := jobs[0].DeviceJobStatistics; st == nil || st.DeviceCount != 7 || st.SucceededCount != 7 {
		t.Errorf("job statistics = %+v, want 7 devices, 7 succeeded", st)
	}
}

func TestApplyWithoutTerminalRefuses(t *testing.T) {
	h, dir := testHub(t, "")
	r := iotplan(t, "apply", "-dev", "-data", dir, "../../examples/lockdoor.hcl")
	if r.code != exitError || !strings.Contains(r.err, "-auto-approve") {
		t.Fatalf("apply without a terminal: exit %d, stderr %q; want 1 and a hint at -auto-approve", r.code, r.err)
	}
	jobs, err := testClient(t, h).ListJobs(context.Background(), "", "")
	if err != nil || len(jobs) != 0 {
		t.Errorf("jobs after refused apply = %v, %v; want none", jobs, err)
	}
}

func TestApplySavedPlan(t *testing.T) {
	h, dir := testHub(t, "")
	planFile := filepath.Join(t.TempDir(), "tutorial.plan")
	if r := iotplan(t, "plan", "-dev", "-data", dir, "-out", planFile, "../../examples/lockdoor.hcl"); r.code != 0 {
		t.Fatalf("plan exit %d\n%s%s", r.code, r.out, r.err)
	}
	b, _ := os.ReadFile(planFile)
	if strings.Contains(string(b), "SharedAccessKey") || strings.Contains(string(b), h.ServiceConnectionString()) {
		t.Fatalf("saved plan holds a key:\n%s", b)
	}
	r := iotplan(t, "apply", "-dev", "-data", dir, planFile) // a saved plan needs no -auto-approve
	if r.code != 0 || !strings.Contains(r.out, "Apply complete!") {
		t.Fatalf("apply plan exit %d\n%s%s", r.code, r.out, r.err)
	}
	if n := h.Sim().Calls("myDeviceId", "lockDoor"); n != 1 {
		t.Errorf("lockDoor calls = %d, want 1", n)
	}
}

func TestApplyReportsFailedDevices(t *testing.T) {
	fleet := filepath.Join(t.TempDir(), "fleet.hcl")
	os.WriteFile(fleet, []byte(`
group "good" {
  count = 3
  id    = "good-%d"
  method "reboot" {
    status = 200
  }
}
device "jammed" {
  method "reboot" {
    status = 500
    payload = { error = "stuck" }
  }
}
device "nomethod" {}
`), 0o644)
	_, dir := testHub(t, fleet)
	cfg := filepath.Join(t.TempDir(), "reboot.hcl")
	os.WriteFile(cfg, []byte(`
method "reboot" {
  target           = "*"
  method           = "reboot"
  response_timeout = "5s"
}
`), 0o644)
	r := iotplan(t, "apply", "-dev", "-data", dir, "-auto-approve", cfg)
	if r.code != exitError {
		t.Fatalf("apply with failing devices: exit %d, want 1\n%s%s", r.code, r.out, r.err)
	}
	_, failures, ok := strings.Cut(r.out, "(job iotplan-reboot-")
	if !ok {
		t.Fatalf("apply output has no failure listing:\n%s", r.out)
	}
	for _, want := range []string{"jammed", "500", "nomethod", "DeviceNotOnline", "2 of 5 devices failed"} {
		if !strings.Contains(failures, want) {
			t.Errorf("failure listing does not report %q:\n%s", want, failures)
		}
	}
	if strings.Contains(failures, "good-") {
		t.Errorf("failure listing names a device that succeeded:\n%s", failures)
	}
}

func TestHubErrorsAreOneLineAndNeverEchoTheKey(t *testing.T) {
	cfg := "../../examples/lockdoor.hcl"
	t.Setenv(envConnectionString, "")
	r := iotplan(t, "plan", cfg)
	if r.code != exitError || !strings.Contains(r.err, envConnectionString) || !strings.Contains(r.err, "-dev") {
		t.Errorf("no hub: exit %d, stderr %q", r.code, r.err)
	}
	const key = "c2VjcmV0LWtleS10aGF0LW11c3Qtbm90LWxlYWs="
	for _, cs := range []string{
		"HostName=hub.example.net;SharedAccessKey=" + key,                             // no policy name
		"HostName=hub.example.net;SharedAccessKeyName=owner;SharedAccessKey=%%" + key, // key not base64
		"SharedAccessKeyName=owner;SharedAccessKey=" + key,                            // no host
		"garbage " + key,
	} {
		t.Setenv(envConnectionString, cs)
		r := iotplan(t, "plan", cfg)
		if r.code != exitError {
			t.Errorf("%q: exit %d, want 1", cs, r.code)
		}
		if strings.Contains(r.err+r.out, key) || strings.Contains(r.err+r.out, "c2VjcmV0") {
			t.Errorf("error output echoes the key: %q", r.err)
		}
		if n := strings.Count(strings.TrimSpace(r.err), "\n"); n != 0 {
			t.Errorf("error is %d lines, want one: %q", n+1, r.err)
		}
	}
}

func TestConfigErrorsAreLocatedDiagnostics(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "bad.hcl")
	os.WriteFile(cfg, []byte("twin \"x\" {\n  target  = \"deviceId IN ['a' 'b']\"\n  desired = { a = 1 }\n}\n"), 0o644)
	r := iotplan(t, "plan", "-dev", "-data", t.TempDir(), cfg)
	if r.code != exitError {
		t.Fatalf("exit %d, want 1", r.code)
	}
	if !strings.Contains(r.err, "bad.hcl:2:") || !strings.Contains(r.err, "deviceId IN") {
		t.Errorf("diagnostic lacks file:line:col or snippet:\n%s", r.err)
	}
	if strings.Contains(r.err, "goroutine") || strings.Contains(r.err, "panic") {
		t.Errorf("diagnostic looks like a crash:\n%s", r.err)
	}
}

func TestUsageErrors(t *testing.T) {
	r := iotplan(t, "plan", "-nosuchflag")
	if r.code != exitError || !strings.Contains(r.err, "--help") {
		t.Errorf("unknown flag: exit %d, stderr %q", r.code, r.err)
	}
	r = iotplan(t, "plan", "-var", "novalue", "../../examples/lockdoor.hcl")
	if r.code != exitError || !strings.Contains(r.err, "name=value") {
		t.Errorf("bad -var: exit %d, stderr %q", r.code, r.err)
	}
}

func TestNormalizeArgs(t *testing.T) {
	got := strings.Join(normalizeArgs([]string{"plan", "-out=p", "-detailed-exitcode", "-no-color", "--dev", "-x", "-var", "a=b", "--", "-out"}), " ")
	want := "plan --out=p --detailed-exitcode --no-color --dev -x --var a=b -- -out"
	if got != want {
		t.Errorf("normalizeArgs = %q, want %q", got, want)
	}
}

func TestDevPrintsDeviceConnectionString(t *testing.T) {
	dir := t.TempDir()
	r := iotplan(t, "dev", "--data", dir, "--device-connection-string", "myDeviceId")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.err)
	}
	line := strings.TrimSpace(r.out)
	if !strings.HasPrefix(line, "HostName=") || !strings.Contains(line, ";DeviceId=myDeviceId;SharedAccessKey=") {
		t.Errorf("device connection string = %q", line)
	}
}

func TestDevRegeneratesPolicyKeys(t *testing.T) {
	dir := t.TempDir()
	h1, err := hub.Start(context.Background(), hub.Options{DataDir: dir, HTTPSAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	old := h1.ServiceConnectionString()
	h1.Close()

	r := iotplan(t, "dev", "--data", dir, "--https-port", "8443", "--regenerate-key", "iothubowner")
	if r.code != 0 {
		t.Fatalf("regenerate: exit %d: %s", r.code, r.err)
	}
	fresh := strings.TrimSpace(r.out)
	if !strings.HasPrefix(fresh, "HostName=localhost:8443;SharedAccessKeyName=iothubowner;SharedAccessKey=") {
		t.Fatalf("new connection string = %q", fresh)
	}

	// The hub now accepts the new key and refuses the old one.
	h2, err := hub.Start(context.Background(), hub.Options{DataDir: dir, HTTPSAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	withHost := func(cs string) string {
		return strings.Replace(cs, "HostName=localhost:8443", "HostName="+h2.HostName(), 1)
	}
	_, oldKey, _ := strings.Cut(old, "SharedAccessKey=")
	_, newKey, _ := strings.Cut(fresh, "SharedAccessKey=")
	if oldKey == newKey {
		t.Fatal("the key did not change")
	}
	for cs, wantOK := range map[string]bool{withHost(fresh): true, h2.ServiceConnectionString(): true, withHost(strings.Replace(fresh, newKey, oldKey, 1)): false} {
		c, err := hubclient.New(cs, hubclient.WithRootCAs(h2.RootCAs()), hubclient.WithRetry(1, time.Millisecond, time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Query(context.Background(), "SELECT COUNT() AS n FROM devices")
		c.Close()
		if (err == nil) != wantOK {
			t.Errorf("query with key ...%s: err %v, want ok=%v", cs[len(cs)-6:], err, wantOK)
		}
	}
	h2.Close()

	if r := iotplan(t, "dev", "--data", dir, "--regenerate-key", "iothubowner/tertiary"); r.code != exitError {
		t.Errorf("bad key name: exit %d", r.code)
	}
	if r := iotplan(t, "dev", "--data", dir, "--regenerate-key", "nosuchpolicy"); r.code != exitError || !strings.Contains(r.err, "nosuchpolicy") {
		t.Errorf("unknown policy: exit %d, %q", r.code, r.err)
	}
}

// secretTwinConfig manages a key from a sensitive variable on a device named by another;
// secretConfig adds a method whose payload uses it. Tests pass secretValue for token.
const (
	secretTwinConfig = `
variable "token" {
  type      = string
  sensitive = true
}
variable "device" {
  type      = string
  sensitive = true
}
twin "creds" {
  target  = "deviceId = ${quote(var.device)}"
  desired = { token = var.token, floor = 3 }
}`
	secretConfig = secretTwinConfig + `
method "rotate" {
  target  = twin.creds.target
  method  = "lockDoor"
  payload = { token = var.token }
}
`
	secretValue = "s3cr3t-t0ken-value"
)

// Values of sensitive variables never appear in plan or apply output, but apply still sends
// them to the devices.
func TestSensitiveValuesAreHiddenInPlans(t *testing.T) {
	h, dir := testHub(t, "")
	cfg := filepath.Join(t.TempDir(), "secret.hcl")
	os.WriteFile(cfg, []byte(secretConfig), 0o644)
	const secret = secretValue
	r := iotplan(t, "apply", "-dev", "-data", dir, "-auto-approve", "-var", "token="+secret, "-var", "device=myDeviceId", cfg)
	if r.code != 0 {
		t.Fatalf("apply exit %d\n%s%s", r.code, r.out, r.err)
	}
	if strings.Contains(r.out+r.err, secret) || strings.Contains(r.out+r.err, "myDeviceId'") {
		t.Errorf("output shows a sensitive value:\n%s%s", r.out, r.err)
	}
	for _, want := range []string{"+ desired.token = (sensitive value)", "+ desired.floor = 3", "target = (sensitive value)", "payload          = (sensitive value)"} {
		if !strings.Contains(r.out, want) {
			t.Errorf("plan lacks %q:\n%s", want, r.out)
		}
	}
	twin, err := testClient(t, h).GetTwin(context.Background(), "myDeviceId")
	if err != nil {
		t.Fatal(err)
	}
	if got := twin["properties"].(map[string]any)["desired"].(map[string]any)["token"]; got != secret {
		t.Errorf("desired.token on the device = %v, want the secret", got)
	}
	// The state on the hub holds the value (removals compare with it); 'state show' does not.
	for _, args := range [][]string{{"state", "show"}, {"state", "show", "-json"}, {"state", "show", "twin.creds", "-json"}} {
		r := iotplan(t, append(args, "-dev", "-data", dir)...)
		if r.code != 0 || strings.Contains(r.out+r.err, secret) || strings.Contains(r.out, "myDeviceId") ||
			!strings.Contains(r.out, "(sensitive value)") || !strings.Contains(r.out, "desired.floor") {
			t.Errorf("%v: exit %d\n%s%s", args, r.code, r.out, r.err)
		}
	}
}
