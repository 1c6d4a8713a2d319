package adm

import (
	"bytes"
	"log/slog"
	"maps"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/iotplan/iotplan/internal/hub/huberr"
	"github.com/iotplan/iotplan/internal/hub/registry"
	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/query"
)

func setup(t *testing.T) (*Manager, *registry.Registry, *bbolt.DB) {
	t.Helper()
	db, err := bbolt.Open(filepath.Join(t.TempDir(), "hub.db"), 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	reg, err := registry.Open(db, registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(db, reg, Options{Manual: true}) // passes run when the test calls Evaluate
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m, reg, db
}

func desired(t *testing.T, reg *registry.Registry, id string) map[string]any {
	t.Helper()
	tw, err := reg.GetTwin(id)
	if err != nil {
		t.Fatal(err)
	}
	return tw["properties"].(map[string]any)["desired"].(map[string]any)
}

func status(t *testing.T, reg *registry.Registry, id, cfg string) any {
	t.Helper()
	tw, _ := reg.GetTwin(id)
	cs, _ := tw["configurations"].(map[string]any)
	c, _ := cs[cfg].(map[string]any)
	return c["status"]
}

func mustCode(t *testing.T, err error, code huberr.Code) {
	t.Helper()
	if !huberr.Is(err, code) {
		t.Fatalf("error = %v, want %d", err, code)
	}
}

func cfg(id, target string, prio int, content map[string]any) Configuration {
	return Configuration{ID: id, TargetCondition: target, Priority: prio, Content: &Content{DeviceContent: content}}
}

func TestPriorityTargetingAndRemoval(t *testing.T) {
	m, reg, _ := setup(t)
	if err := reg.Import([]registry.SeedDevice{
		{DeviceID: "a", Tags: map[string]any{"env": "test", "site": "x"}},
		{DeviceID: "b", Tags: map[string]any{"env": "test"}},
		{DeviceID: "c", Tags: map[string]any{"env": "prod"}},
	}); err != nil {
		t.Fatal(err)
	}
	low := cfg("low", "tags.env='test'", 1, map[string]any{
		"properties.desired.chiller": map[string]any{"temp": 38, "pressure": 78},
		"properties.desired.mode":    "eco",
	})
	low.Metrics = &Metrics{Queries: map[string]string{"compliant": "select deviceId from devices where configurations.[[low]].status = 'Applied'"}}
	if _, err := m.Put(low, ""); err != nil {
		t.Fatal(err)
	}
	high := cfg("high", "tags.site='x'", 5, map[string]any{"properties.desired.mode": "turbo"})
	if _, err := m.Put(high, ""); err != nil {
		t.Fatal(err)
	}
	if !m.Evaluate() {
		t.Fatal("no pass after changes")
	}
	if d := desired(t, reg, "a"); d["mode"] != "turbo" || d["chiller"].(map[string]any)["temp"] != 38.0 {
		t.Fatalf("a desired %v", d)
	}
	if d := desired(t, reg, "b"); d["mode"] != "eco" {
		t.Fatalf("b desired %v", d)
	}
	if d := desired(t, reg, "c"); d["mode"] != nil {
		t.Fatalf("c (not targeted) desired %v", d)
	}
	if status(t, reg, "a", "high") != StatusApplied || status(t, reg, "a", "low") != StatusApplied || status(t, reg, "c", "low") != nil {
		t.Fatal("statuses")
	}
	got, _ := m.Get("low")
	if got.SystemMetrics.Results["targetedCount"] != 2 || got.SystemMetrics.Results["appliedCount"] != 2 || got.Metrics.Results["compliant"] != 2 {
		t.Fatalf("low metrics %+v %+v", got.SystemMetrics, got.Metrics)
	}
	// A stable state: the next pass writes nothing (versions stay).
	v := desired(t, reg, "a")["$version"]
	m.Evaluate()
	if m.Evaluate() || desired(t, reg, "a")["$version"] != v {
		t.Fatal("a stable state keeps being rewritten")
	}
	// Drift: a REST write to a managed path is put back on the next pass.
	if _, err := reg.UpdateTwin("b", hubapi.TwinPatch{Properties: &hubapi.TwinProperties{Desired: map[string]any{"mode": "manual"}}}, "*"); err != nil {
		t.Fatal(err)
	}
	m.Evaluate()
	if desired(t, reg, "b")["mode"] != "eco" {
		t.Fatal("drift not corrected")
	}
	// a stops matching "high": "low" takes the path over.
	if _, err := reg.UpdateTwin("a", hubapi.TwinPatch{Tags: map[string]any{"site": "y"}}, "*"); err != nil {
		t.Fatal(err)
	}
	m.Evaluate()
	if desired(t, reg, "a")["mode"] != "eco" || status(t, reg, "a", "high") != nil {
		t.Fatalf("after unmatch: %v", desired(t, reg, "a"))
	}
	// b leaves "low": its settings are removed.
	if _, err := reg.UpdateTwin("b", hubapi.TwinPatch{Tags: map[string]any{"env": "prod"}}, "*"); err != nil {
		t.Fatal(err)
	}
	m.Evaluate()
	if d := desired(t, reg, "b"); d["mode"] != nil || d["chiller"] != nil {
		t.Fatalf("b keeps settings of a configuration that no longer targets it: %v", d)
	}
	// Deleting "low" removes its settings from a.
	if err := m.Delete("low", "*"); err != nil {
		t.Fatal(err)
	}
	m.Evaluate()
	if d := desired(t, reg, "a"); d["mode"] != nil || d["chiller"] != nil || status(t, reg, "a", "low") != nil {
		t.Fatalf("a after delete: %v", d)
	}
}

func TestTiesAndTargeted(t *testing.T) {
	m, reg, _ := setup(t)
	if err := reg.Import([]registry.SeedDevice{{DeviceID: "a"}}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []Configuration{
		cfg("first", "*", 3, map[string]any{"properties.desired.x": 1}),
		cfg("second", "*", 3, map[string]any{"properties.desired.x": 2}),
		cfg("top", "*", 9, map[string]any{"properties.desired.y": "t"}),
	} {
		if _, err := m.Put(c, ""); err != nil {
			t.Fatal(err)
		}
	}
	m.Evaluate()
	if d := desired(t, reg, "a"); d["x"] != 2.0 || d["y"] != "t" {
		t.Fatalf("tie → newest: %v", d)
	}
	if status(t, reg, "a", "first") != StatusTargeted || status(t, reg, "a", "second") != StatusApplied {
		t.Fatal("statuses of a tie")
	}
	c, _ := m.Get("first")
	if c.SystemMetrics.Results["targetedCount"] != 1 || c.SystemMetrics.Results["appliedCount"] != 0 {
		t.Fatalf("first metrics %+v", c.SystemMetrics)
	}
}

func TestPutRules(t *testing.T) {
	m, _, _ := setup(t)
	c := cfg("cfg1", "tags.env='test'", 1, map[string]any{"properties.desired.x": 1})
	created, err := m.Put(c, "")
	if err != nil || created.ETag == "" || created.CreatedTimeUTC == "" || created.SchemaVersion != "1.0" {
		t.Fatalf("created %+v %v", created, err)
	}
	_, err = m.Put(c, "")
	mustCode(t, err, ConfigurationAlreadyExists)
	c.Priority = 7
	_, err = m.Put(c, `"bogus"`)
	mustCode(t, err, huberr.PreconditionFailed)
	upd, err := m.Put(c, `"`+created.ETag+`"`)
	if err != nil || upd.Priority != 7 || upd.ETag == created.ETag || upd.CreatedTimeUTC != created.CreatedTimeUTC {
		t.Fatalf("update %+v %v", upd, err)
	}
	c.Content = &Content{DeviceContent: map[string]any{"properties.desired.x": 2}}
	_, err = m.Put(c, "*")
	mustCode(t, err, CannotModifyImmutableConfigurationContent)
	_, err = m.Put(cfg("nope", "*", 1, map[string]any{"properties.desired.x": 1}), "*")
	mustCode(t, err, ConfigurationNotFound)
	for _, bad := range []struct {
		c    Configuration
		code huberr.Code
	}{
		{cfg("UPPER", "*", 1, map[string]any{"properties.desired.x": 1}), huberr.ArgumentInvalid},
		{cfg("bad-target", "tags.x = = 1", 1, map[string]any{"properties.desired.x": 1}), InvalidConfigurationTargetCondition},
		{cfg("bad-path", "*", 1, map[string]any{"properties.reported.x": 1}), InvalidConfigurationContent},
		{cfg("overlap", "*", 1, map[string]any{"properties.desired.a": 1, "properties.desired.a.b": 2}), InvalidConfigurationContent},
		{Configuration{ID: "edge", TargetCondition: "*", Content: &Content{ModulesContent: map[string]any{"$edgeAgent": map[string]any{}}}}, InvalidConfigurationContent},
		{Configuration{ID: "metric", TargetCondition: "*", Content: &Content{DeviceContent: map[string]any{"properties.desired.x": 1}},
			Metrics: &Metrics{Queries: map[string]string{"m": "select from"}}}, InvalidConfigurationCustomMetricsQuery},
	} {
		_, err := m.Put(bad.c, "")
		mustCode(t, err, bad.code)
	}
	res := m.TestQueries(TestQueriesInput{TargetCondition: "tags.x = ", CustomMetricQueries: map[string]string{"ok": "select deviceId from devices", "bad": "select"}})
	if res.TargetConditionError == "" || res.CustomMetricQueryErrors["bad"] == "" || res.CustomMetricQueryErrors["ok"] != "" {
		t.Fatalf("testQueries %+v", res)
	}
	if l := m.List(0); len(l) != 1 || l[0].ID != "cfg1" {
		t.Fatalf("list %+v", l)
	}
	mustCode(t, m.Delete("cfg1", `"bogus"`), huberr.PreconditionFailed)
	if err := m.Delete("cfg1", ""); err != nil {
		t.Fatal(err)
	}
	mustCode(t, m.Delete("cfg1", ""), ConfigurationNotFound)
}

// TestRestartKeepsConfigurationsAndOwnership: configurations and the record of which paths
// they set survive a restart, so deleting a configuration afterwards still removes its settings.
func TestRestartKeepsConfigurationsAndOwnership(t *testing.T) {
	m, reg, db := setup(t)
	if err := reg.Import([]registry.SeedDevice{{DeviceID: "a"}}); err != nil {
		t.Fatal(err)
	}
	created, err := m.Put(cfg("keep", "*", 1, map[string]any{"properties.desired.x": "on"}), "")
	if err != nil {
		t.Fatal(err)
	}
	m.Evaluate()
	m.Close()
	m2, err := New(db, reg, Options{Manual: true})
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	got, err := m2.Get("keep")
	if err != nil || got.ETag != created.ETag || got.CreatedTimeUTC != created.CreatedTimeUTC {
		t.Fatalf("after restart %+v %v", got, err)
	}
	if err := m2.Delete("keep", ""); err != nil {
		t.Fatal(err)
	}
	m2.Evaluate()
	if d := desired(t, reg, "a"); d["x"] != nil {
		t.Fatalf("setting of a deleted configuration kept after restart: %v", d)
	}
	// With no configurations left, a pass no longer scans twins (and writes nothing).
	v := desired(t, reg, "a")["$version"]
	if _, err := reg.UpdateTwin("a", hubapi.TwinPatch{Tags: map[string]any{"t": 1}}, "*"); err != nil {
		t.Fatal(err)
	}
	m2.Evaluate()
	if desired(t, reg, "a")["$version"] != v {
		t.Fatal("a pass without configurations wrote the twin")
	}
}

func TestConfigurationCountLimit(t *testing.T) {
	m, _, _ := setup(t)
	for i := range MaxConfigurations {
		if _, err := m.Put(cfg("c"+strconv.Itoa(i), "*", 1, map[string]any{"properties.desired.x": i}), ""); err != nil {
			t.Fatal(err)
		}
	}
	_, err := m.Put(cfg("one-too-many", "*", 1, map[string]any{"properties.desired.x": 1}), "")
	mustCode(t, err, ConfigurationCountLimitExceeded)
	if n := len(m.List(0)); n != MaxConfigurations {
		t.Fatalf("%d configurations", n)
	}
	if n := len(m.List(7)); n != 7 {
		t.Fatalf("top 7 gave %d", n)
	}
}

// TestDeletedDeviceIsForgotten: a device deleted and created again under the same id does not
// inherit the record of what a configuration had set on its predecessor.
func TestDeletedDeviceIsForgotten(t *testing.T) {
	m, reg, _ := setup(t)
	if err := reg.Import([]registry.SeedDevice{{DeviceID: "a", Tags: map[string]any{"t": "1"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Put(cfg("c", "tags.t='1'", 1, map[string]any{"properties.desired.x": "cfg"}), ""); err != nil {
		t.Fatal(err)
	}
	m.Evaluate()
	if desired(t, reg, "a")["x"] != "cfg" {
		t.Fatal("not applied")
	}
	if err := reg.DeleteDevice("a", "*"); err != nil {
		t.Fatal(err)
	}
	m.Evaluate()
	if err := reg.Import([]registry.SeedDevice{{DeviceID: "a", Desired: map[string]any{"x": "mine"}}}); err != nil {
		t.Fatal(err)
	}
	m.Evaluate()
	if d := desired(t, reg, "a"); d["x"] != "mine" {
		t.Fatalf("the new device lost its own property: %v", d)
	}
}

// TestTargetAllAndEmpty: "*" (blanks allowed) targets every twin and its targetedCount query has
// no WHERE clause; an empty target (or blanks) targets none, counted by WHERE false; both are
// reported as accepted.
func TestTargetAllAndEmpty(t *testing.T) {
	m, reg, _ := setup(t)
	var reported []string
	m.opts.OnQuery = func(text string, err error) {
		if err != nil {
			t.Errorf("OnQuery(%q, %v)", text, err)
		}
		reported = append(reported, text)
	}
	if err := reg.Import([]registry.SeedDevice{{DeviceID: "a"}, {DeviceID: "b"}}); err != nil {
		t.Fatal(err)
	}
	targets := map[string]string{"all": "*", "all-blank": " * ", "none": "", "none-blank": "  "}
	for id, target := range targets {
		if _, err := m.Put(cfg(id, target, 1, map[string]any{"properties.desired." + strings.ReplaceAll(id, "-", "_"): 1}), ""); err != nil {
			t.Fatalf("%s (%q): %v", id, target, err)
		}
	}
	if len(reported) != len(targets) {
		t.Errorf("reported %q", reported)
	}
	m.Evaluate()
	for id, want := range map[string]struct {
		count int64
		query string
	}{
		"all":        {2, "SELECT deviceId FROM devices"},
		"all-blank":  {2, "SELECT deviceId FROM devices"},
		"none":       {0, "SELECT deviceId FROM devices WHERE false"},
		"none-blank": {0, "SELECT deviceId FROM devices WHERE false"},
	} {
		c, err := m.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		if c.SystemMetrics.Results["targetedCount"] != want.count || c.SystemMetrics.Queries["targetedCount"] != want.query {
			t.Errorf("%s: targetedCount %d by %q, want %d by %q", id, c.SystemMetrics.Results["targetedCount"], c.SystemMetrics.Queries["targetedCount"], want.count, want.query)
		}
		if c.TargetCondition != targets[id] {
			t.Errorf("%s: target %q stored as %q", id, targets[id], c.TargetCondition)
		}
	}
	for _, dev := range []string{"a", "b"} {
		d := desired(t, reg, dev)
		if d["all"] != 1.0 || d["all_blank"] != 1.0 || d["none"] != nil || d["none_blank"] != nil {
			t.Errorf("%s: desired %v", dev, d)
		}
		if status(t, reg, dev, "all") != StatusApplied || status(t, reg, dev, "none") != nil {
			t.Errorf("%s: statuses all=%v none=%v", dev, status(t, reg, dev, "all"), status(t, reg, dev, "none"))
		}
	}
}

// TestStoredConfigurationOutsideDialect: a configuration stored by a hub running the Extended
// dialect loads under any dialect; a Documented hub logs one warning for it, an Extended one
// none.
func TestStoredConfigurationOutsideDialect(t *testing.T) {
	db, err := bbolt.Open(filepath.Join(t.TempDir(), "hub.db"), 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	reg, err := registry.Open(db, registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Import([]registry.SeedDevice{{DeviceID: "a", Tags: map[string]any{"x": "s"}}}); err != nil {
		t.Fatal(err)
	}
	m, err := New(db, reg, Options{Manual: true, QueryDialect: query.Extended})
	if err != nil {
		t.Fatal(err)
	}
	ext := cfg("ext", "IS_STRING(tags.x)", 1, map[string]any{"properties.desired.e": 1})
	ext.Metrics = &Metrics{Queries: map[string]string{"m": "SELECT deviceId FROM devices WHERE ENDSWITH(deviceId, 'a')"}}
	doc := cfg("doc", "tags.x = 's'", 1, map[string]any{"properties.desired.d": 1})
	metric := cfg("metric", "*", 1, map[string]any{"properties.desired.m": 1})
	metric.Metrics = &Metrics{Queries: map[string]string{"ok": "SELECT deviceId FROM devices", "top": "SELECT TOP(1) deviceId FROM devices"}}
	for _, c := range []Configuration{ext, doc, metric} {
		if _, err := m.Put(c, ""); err != nil {
			t.Fatal(err)
		}
	}
	m.Close()
	for _, d := range []query.Dialect{query.Documented, query.Extended} {
		var buf bytes.Buffer
		m, err := New(db, reg, Options{Manual: true, QueryDialect: d, Logger: slog.New(slog.NewTextHandler(&buf, nil))})
		if err != nil {
			t.Fatalf("%v: %v", d, err)
		}
		if n := len(m.List(0)); n != 3 {
			t.Errorf("%v: %d configurations loaded", d, n)
		}
		m.Evaluate()
		if dd := desired(t, reg, "a"); dd["e"] != 1.0 || dd["d"] != 1.0 || dd["m"] != 1.0 {
			t.Errorf("%v: desired %v", d, dd)
		}
		m.Close()
		warned := map[string]bool{}
		for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			if strings.Contains(line, "not in the hub's query dialect") {
				for _, id := range []string{"ext", "doc", "metric"} {
					if strings.Contains(line, "configuration="+id+" ") {
						warned[id] = true
					}
				}
			}
		}
		want := map[string]bool{}
		if d == query.Documented {
			want = map[string]bool{"ext": true, "metric": true}
		}
		if !maps.Equal(warned, want) {
			t.Errorf("%v: warnings for %v, want %v\n%s", d, warned, want, buf.String())
		}
	}
}
