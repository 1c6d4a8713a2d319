package httpapi_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/amenzhinsky/iothub/iotservice"

	"github.com/iotplan/iotplan/internal/hub/registry"
)

// TestConfigurationsViaSDK: ADM configurations over REST with amenzhinsky's client — create,
// evaluation onto matching twins (queryable status), metrics, update rules, delete.
func TestConfigurationsViaSDK(t *testing.T) {
	h := newTestHub(t)
	c := h.sdk("iothubowner")
	ctx := context.Background()
	if err := h.reg.Import([]registry.SeedDevice{
		{DeviceID: "w1", Tags: map[string]any{"environment": "test"}},
		{DeviceID: "w2", Tags: map[string]any{"environment": "test"}, Reported: map[string]any{"chiller": map[string]any{"status": "current"}}},
		{DeviceID: "w3", Tags: map[string]any{"environment": "prod"}},
	}); err != nil {
		t.Fatal(err)
	}
	in := &iotservice.Configuration{
		ID:              "chillersettings",
		Labels:          map[string]string{"HostPlatform": "Linux"},
		Content:         &iotservice.ConfigurationContent{DeviceContent: map[string]interface{}{"properties.desired.chiller": map[string]interface{}{"temperature": 38, "pressure": 78}}},
		TargetCondition: "tags.environment='test'",
		Priority:        10,
		Metrics: &iotservice.ConfigurationMetrics{Queries: map[string]string{
			"compliant": "select deviceId from devices where configurations.[[chillersettings]].status = 'Applied' AND properties.reported.chiller.status='current'",
		}},
	}
	created, err := c.CreateConfiguration(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if created.ETag == "" || created.CreatedTimeUTC == nil || created.SchemaVersion != "1.0" || created.Priority != 10 {
		t.Fatalf("created %+v", created)
	}
	if _, err := c.CreateConfiguration(ctx, in); err == nil {
		t.Fatal("duplicate configuration created")
	} else if st, body := sdkStatus(t, err); st != 409 || !strings.Contains(body, "ConfigurationAlreadyExists") {
		t.Fatalf("duplicate: %d %s", st, body)
	}

	// The evaluator applies it (period 20 ms in the harness) and metrics follow.
	deadline := time.Now().Add(10 * time.Second)
	var got *iotservice.Configuration
	for {
		got, err = c.GetConfiguration(ctx, "chillersettings")
		if err != nil {
			t.Fatal(err)
		}
		if got.SystemMetrics != nil && got.SystemMetrics.Results["appliedCount"] == 2 && got.Metrics.Results["compliant"] == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics never settled: %+v %+v", got.SystemMetrics, got.Metrics)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got.SystemMetrics.Results["targetedCount"] != 2 {
		t.Fatalf("targetedCount %+v", got.SystemMetrics)
	}
	tw, err := c.GetDeviceTwin(ctx, "w1")
	if err != nil || tw.Properties.Desired["chiller"].(map[string]interface{})["temperature"] != 38.0 {
		t.Fatalf("w1 twin %+v %v", tw, err)
	}
	var rows []map[string]interface{}
	if err := c.QueryDevices(ctx, "SELECT deviceId FROM devices WHERE configurations.[[chillersettings]].status = 'Applied'", func(v map[string]interface{}) error {
		rows = append(rows, v)
		return nil
	}); err != nil || len(rows) != 2 {
		t.Fatalf("status query %v %v", rows, err)
	}

	// Update: priority and target may change, content may not.
	got.Priority = 20
	got.TargetCondition = "tags.environment='prod'"
	upd, err := c.UpdateConfiguration(ctx, got)
	if err != nil || upd.Priority != 20 || upd.ETag == got.ETag {
		t.Fatalf("update %+v %v", upd, err)
	}
	got.Content = &iotservice.ConfigurationContent{DeviceContent: map[string]interface{}{"properties.desired.chiller": 1}}
	got.ETag = upd.ETag
	if _, err := c.UpdateConfiguration(ctx, got); err == nil {
		t.Fatal("content change accepted")
	} else if st, body := sdkStatus(t, err); st != 400 || !strings.Contains(body, "CannotModifyImmutableConfigurationContent") {
		t.Fatalf("content change: %d %s", st, body)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		t1, _ := c.GetDeviceTwin(ctx, "w1")
		t3, _ := c.GetDeviceTwin(ctx, "w3")
		if t1.Properties.Desired["chiller"] == nil && t3.Properties.Desired["chiller"] != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("retargeting not applied: %v / %v", t1.Properties.Desired, t3.Properties.Desired)
		}
		time.Sleep(20 * time.Millisecond)
	}

	list, err := c.ListConfigurations(ctx)
	if err != nil || len(list) != 1 {
		t.Fatalf("list %v %v", list, err)
	}
	r := h.do("POST", "/configurations/testQueries"+apiV, "", `{"targetCondition":"tags.x = ","customMetricQueries":{"ok":"select deviceId from devices"}}`, nil)
	if r.status != 200 || !strings.Contains(string(r.body), `"targetConditionError":"`) || !strings.Contains(string(r.body), `"customMetricQueryErrors":{}`) {
		t.Fatalf("testQueries %d %s", r.status, r.body)
	}
	wantError(t, h.do("PUT", "/configurations/bad"+apiV, "", `{"id":"bad","targetCondition":"tags.x = = 1","content":{"deviceContent":{"properties.desired.x":1}}}`, nil), 400, "InvalidConfigurationTargetCondition", 400401)
	wantError(t, h.do("PUT", "/configurations/bad"+apiV, "", `{"id":"bad","targetCondition":"*","content":{"deviceContent":{"tags.x":1}}}`, nil), 400, "InvalidConfigurationContent", 400402)
	wantError(t, h.do("PUT", "/configurations/bad"+apiV, h.token("registryRead"), `{"id":"bad","targetCondition":"*","content":{"deviceContent":{"properties.desired.x":1}}}`, nil), 401, "IotHubUnauthorizedAccess", 401002)
	if err := c.DeleteConfiguration(ctx, &iotservice.Configuration{ID: "chillersettings"}); err != nil {
		t.Fatal(err)
	}
	wantError(t, h.do("GET", "/configurations/chillersettings"+apiV, "", nil, nil), 404, "ConfigurationNotFound", 404301)
}
