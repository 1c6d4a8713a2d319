package cli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/hubclient"
	"github.com/iotplan/iotplan/internal/state"
)

const driftConfigText = `twin "site" {
  target  = "tags.site = 'hq'"
  desired = { floor = 5, mode = "eco" }
  tags    = { owner = "ops" }
}`

// driftDoc is the part of 'drift -json' the tests read.
type driftDoc struct {
	Drift          bool   `json:"drift"`
	RecordedSerial *int64 `json:"recorded_serial"`
	Resources      []struct {
		Address  string `json:"address"`
		Targeted int    `json:"targeted"`
		Keys     []struct {
			Key             string     `json:"key"`
			Devices         int        `json:"devices"`
			Unselectable    int        `json:"unselectable_devices"`
			LastUpdated     *time.Time `json:"last_updated"`
			LastUpdatedNote string     `json:"last_updated_note"`
			SampleDeviceIDs []string   `json:"sample_device_ids"`
		} `json:"keys"`
	} `json:"resources"`
	HubCalls map[string]int `json:"hub_calls"`
}

func patchDevice(t *testing.T, c *hubclient.Client, id string, p hubapi.TwinPatch) {
	t.Helper()
	if _, err := c.UpdateTwin(context.Background(), id, p, "*"); err != nil {
		t.Fatal(err)
	}
}

// twinVersion is a device twin's version, which every write moves.
func twinVersion(t *testing.T, c *hubclient.Client, id string) any {
	t.Helper()
	tw, err := c.GetTwin(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return tw["version"]
}

// TestDriftFindsAndRecordsChanges: after someone else changes keys iotplan set (another
// value, another type, an object, a tag), drift counts each key's devices exactly, names
// one, says when the desired property changed, exits 2, records it in the state and
// changes no device.
func TestDriftFindsAndRecordsChanges(t *testing.T) {
	_, c, dir := safeHub(t)
	cfg := writeFile(t, "site.hcl", driftConfigText)
	mustRun(t, "apply", "-dev", "-data", dir, "-auto-approve", cfg)
	if r := mustRun(t, "drift", "-dev", "-data", dir, cfg); !strings.Contains(r.out, "No drift: every targeted device holds the values iotplan set.") {
		t.Errorf("drift right after apply:\n%s", r.out)
	}

	before := time.Now().Add(-time.Second)
	patchDevice(t, c, "door-2", hubapi.TwinPatch{Properties: &hubapi.TwinProperties{Desired: map[string]any{"floor": 6}}})
	after := time.Now().Add(time.Second)
	patchDevice(t, c, "door-4", hubapi.TwinPatch{Properties: &hubapi.TwinProperties{Desired: map[string]any{"mode": 7}}})
	patchDevice(t, c, "door-5", hubapi.TwinPatch{Properties: &hubapi.TwinProperties{Desired: map[string]any{"mode": map[string]any{"x": 1}}}})
	patchDevice(t, c, "door-1", hubapi.TwinPatch{Tags: map[string]any{"owner": nil}})
	versions := map[string]any{}
	for _, id := range []string{"door-0", "door-1", "door-2", "door-4", "door-5", "lab-1"} {
		versions[id] = twinVersion(t, c, id)
	}
	jobs, err := c.ListJobs(context.Background(), "", "")
	if err != nil {
		t.Fatal(err)
	}

	r := iotplan(t, "drift", "-json", "-dev", "-data", dir, cfg)
	if r.code != exitChanges {
		t.Fatalf("drift: exit %d, want 2\n%s%s", r.code, r.out, r.err)
	}
	var doc driftDoc
	if err := json.Unmarshal([]byte(r.out), &doc); err != nil {
		t.Fatalf("drift -json: %v\n%s", err, r.out)
	}
	checkDriftDoc(t, doc, before, after)
	checkDriftRecord(t, c, doc)

	for id, v := range versions {
		if got := twinVersion(t, c, id); got != v {
			t.Errorf("%s: twin version %v after drift, was %v: drift wrote to a device", id, got, v)
		}
	}
	if now, err := c.ListJobs(context.Background(), "", ""); err != nil || len(now) != len(jobs) {
		t.Errorf("jobs after drift: %d (%v), before: %d", len(now), err, len(jobs))
	}

	text := iotplan(t, "drift", "-dev", "-data", dir, cfg)
	for _, want := range []string{
		"desired.floor = 5: 1 of 6 no longer holds it (door-2), last changed ",
		`desired.mode = "eco": 2 of 6 no longer hold it (door-4, …)`,
		"# 1 holds an object or an array, which no query condition selects",
		`tags.owner = "ops": 1 of 6 no longer holds it (door-1)`,
		"# tags carry no $metadata",
		"Drift found: 3 keys of 1 resource",
	} {
		if !strings.Contains(text.out, want) {
			t.Errorf("drift text lacks %q:\n%s", want, text.out)
		}
	}
}

func checkDriftDoc(t *testing.T, doc driftDoc, before, after time.Time) {
	t.Helper()
	if !doc.Drift || len(doc.Resources) != 1 || doc.Resources[0].Targeted != 6 || len(doc.Resources[0].Keys) != 3 {
		t.Fatalf("drift document: %+v", doc)
	}
	for _, k := range doc.Resources[0].Keys {
		switch k.Key {
		case "desired.floor":
			if k.Devices != 1 || strings.Join(k.SampleDeviceIDs, ",") != "door-2" || k.LastUpdated == nil ||
				k.LastUpdated.Before(before) || k.LastUpdated.After(after) {
				t.Errorf("desired.floor: %+v, want 1 device, door-2, changed between %s and %s", k, before, after)
			}
		case "desired.mode":
			if k.Devices != 2 || k.Unselectable != 1 || strings.Join(k.SampleDeviceIDs, ",") != "door-4" || k.LastUpdated == nil {
				t.Errorf("desired.mode: %+v, want 2 devices, 1 unselectable (an object), door-4", k)
			}
		case "tags.owner":
			if k.Devices != 1 || strings.Join(k.SampleDeviceIDs, ",") != "door-1" || k.LastUpdated != nil || !strings.Contains(k.LastUpdatedNote, "$metadata") {
				t.Errorf("tags.owner: %+v, want 1 device, door-1, no time", k)
			}
		default:
			t.Errorf("unexpected key %s", k.Key)
		}
	}
	// One COUNT of the target, one per key holding, then per drifted key a COUNT/MAX and the
	// examples: 1 + 3 + 3×2.
	if doc.HubCalls["query"] != 10 || len(doc.HubCalls) != 1 {
		t.Errorf("hub calls = %v, want query: 10", doc.HubCalls)
	}
}

// checkDriftRecord: the state holds the findings, at the serial the document names.
func checkDriftRecord(t *testing.T, c *hubclient.Client, doc driftDoc) {
	t.Helper()
	store, err := state.Open(c, state.DefaultName)
	if err != nil {
		t.Fatal(err)
	}
	st, lock, err := store.ReadWithLock(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if lock != nil {
		t.Errorf("drift left the state locked: %v", lock)
	}
	if doc.RecordedSerial == nil || *doc.RecordedSerial != st.Serial {
		t.Errorf("recorded_serial = %v, state serial %d", doc.RecordedSerial, st.Serial)
	}
	rec := st.Drift
	if rec == nil || time.Since(rec.Observed) > time.Minute || len(rec.Keys) != 3 {
		t.Fatalf("state drift record: %+v", rec)
	}
	got := map[string]int{}
	for _, k := range rec.Keys {
		got[k.Addr+" "+k.Key] = k.Devices
		if (k.LastUpdated == nil) != (k.Key == "tags.owner") {
			t.Errorf("recorded %s last updated = %v", k.Key, k.LastUpdated)
		}
	}
	want := map[string]int{"twin.site desired.floor": 1, "twin.site desired.mode": 2, "twin.site tags.owner": 1}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("recorded drift %s = %d, want %d (all: %v)", k, got[k], n, got)
		}
	}
}

// TestStatusAndDriftHideSecrets: values and targets from sensitive variables never show in
// status or drift, as text or JSON; a state with no twin resource has no drift to record.
func TestStatusAndDriftHideSecrets(t *testing.T) {
	h, _, dir := safeHub(t)
	if r := mustRun(t, "drift", "-dev", "-data", dir); !strings.Contains(r.out, "the state records no twin resource") || strings.Contains(r.out, "Recorded") {
		t.Errorf("drift of an empty state:\n%s", r.out)
	}
	cfg := writeFile(t, "secret.hcl", secretTwinConfig)
	const secret = secretValue
	vars := []string{"-dev", "-data", dir, "-var", "token=" + secret, "-var", "device=door-3"}
	mustRun(t, append(append([]string{"apply", "-auto-approve"}, vars...), cfg)...)
	patchDevice(t, testClient(t, h), "door-3", hubapi.TwinPatch{Properties: &hubapi.TwinProperties{Desired: map[string]any{"token": "other"}}})
	for _, args := range [][]string{{"status"}, {"status", "-json"}, {"drift"}, {"drift", "-json"}} {
		r := iotplan(t, append(append(args, vars...), cfg)...)
		if strings.Contains(r.out+r.err, secret) || strings.Contains(r.out+r.err, "door-3'") {
			t.Errorf("%v shows a secret:\n%s%s", args, r.out, r.err)
		}
		if wantCode := map[string]int{"status": 0, "drift": exitChanges}[args[0]]; r.code != wantCode || !strings.Contains(r.out, "twin.creds") {
			t.Errorf("%v: exit %d, want %d\n%s%s", args, r.code, wantCode, r.out, r.err)
		}
	}
}
