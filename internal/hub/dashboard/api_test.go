package dashboard_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/iotplan/iotplan/internal/hub"
	"github.com/iotplan/iotplan/internal/hub/hubtest"
	"github.com/iotplan/iotplan/internal/hubapi"
)

type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Query   *struct {
			Line   int    `json:"line"`
			Col    int    `json:"col"`
			Reason string `json:"reason"`
			Before string `json:"before"`
			After  string `json:"after"`
		} `json:"query"`
	} `json:"error"`
}

// The dashboard's API on a live hub with the default fleet: counts, grouping, paged queries
// through the hub's own query path, positioned errors, twins, jobs and the activity record
// fed by REST calls, jobs and the simulated devices.
func TestAPIOnALiveHub(t *testing.T) {
	h, svc := startHub(t, hub.Options{}, "")
	b := newClient(t, h)

	// Nothing without the token.
	if code, body := b.call("GET", "/ui/api/summary", nil, nil); code != http.StatusForbidden {
		t.Fatalf("summary before login: %d %s", code, body)
	}
	b.login(h)

	var sm struct {
		Devices, Connected, Disconnected int
		Tier                             string
	}
	if code, body := b.call("GET", "/ui/api/summary", nil, &sm); code != 200 || sm.Devices != 301 || sm.Connected+sm.Disconnected != 301 || sm.Connected < 290 {
		t.Fatalf("summary: %d %s", code, body)
	}

	var g struct {
		By     string
		Total  int
		Groups []struct {
			Value string
			Count int
		}
	}
	if code, body := b.call("GET", "/ui/api/groups?by=tags.building", nil, &g); code != 200 || g.Total != 301 || g.By != "tags.building" {
		t.Fatalf("groups: %d %s", code, body)
	}
	byValue := map[string]int{}
	for _, x := range g.Groups {
		byValue[x.Value] = x.Count
	}
	if byValue[""] != 1 || byValue[`"43"`] < 100 || len(byValue) != 4 {
		t.Errorf("groups by building: %v", byValue)
	}

	// SELECT * of 301 twins: pages of 100 joined by continuation tokens.
	type page struct {
		Items        []map[string]any
		ItemType     string
		Continuation string
	}
	seen := map[string]bool{}
	cont := ""
	for i := range 10 {
		var p page
		if code, body := b.call("POST", "/ui/api/query", map[string]string{"query": "SELECT * FROM devices", "continuation": cont}, &p); code != 200 {
			t.Fatalf("page %d: %d %s", i, code, body)
		}
		if p.ItemType != "twin" || len(p.Items) > 100 {
			t.Fatalf("page %d: %s, %d items", i, p.ItemType, len(p.Items))
		}
		for _, tw := range p.Items {
			seen[tw["deviceId"].(string)] = true
		}
		if cont = p.Continuation; cont == "" {
			break
		}
	}
	if len(seen) != 301 || !seen["myDeviceId"] {
		t.Errorf("paged SELECT * saw %d devices", len(seen))
	}

	var one page
	b.call("POST", "/ui/api/query", map[string]string{"query": "SELECT * FROM devices WHERE deviceId = 'myDeviceId'"}, &one)
	if len(one.Items) != 1 || one.Items[0]["deviceId"] != "myDeviceId" || one.Continuation != "" {
		t.Errorf("myDeviceId query: %+v", one)
	}

	// A bad query: the hub's 400 with the position, the text split there.
	bad := "SELECT * FROM devices WHERE tags.building = "
	code, body := b.call("POST", "/ui/api/query", map[string]string{"query": bad}, nil)
	var e apiError
	_ = json.Unmarshal([]byte(body), &e)
	if code != 400 || e.Error.Code != "ArgumentInvalid" || e.Error.Query == nil || e.Error.Query.Line != 1 || e.Error.Query.Col != len(bad)+1 ||
		e.Error.Query.Before != bad || !contains(e.Error.Message, "line 1, column") {
		t.Errorf("bad query: %d %s", code, body)
	}
	// The documented dialect is the hub's: an extension is refused with its position.
	code, body = b.call("POST", "/ui/api/query", map[string]string{"query": "SELECT * FROM devices WHERE IS_STRING(tags.building)"}, nil)
	e = apiError{}
	_ = json.Unmarshal([]byte(body), &e)
	if code != 400 || e.Error.Query == nil || e.Error.Query.Col != 29 {
		t.Errorf("undocumented construct: %d %s", code, body)
	}

	var twin map[string]any
	if code, body := b.call("GET", "/ui/api/twin?id=myDeviceId", nil, &twin); code != 200 || twin["deviceId"] != "myDeviceId" || twin["properties"] == nil {
		t.Fatalf("twin: %d %s", code, body)
	}
	if code, _ := b.call("GET", "/ui/api/twin?id=nobody", nil, nil); code != 404 {
		t.Errorf("unknown twin: %d", code)
	}

	// Activity: a REST method call, a REST desired patch, the device's reported echo and a
	// tags-only patch.
	ctx := context.Background()
	var act struct {
		Events []struct {
			Seq                            uint64
			Kind, Source, DeviceID, Method string
			Status                         int
			Keys                           []string
		}
		Last uint64
	}
	b.call("GET", "/ui/api/activity", nil, &act)
	after := act.Last
	if _, err := svc.CallMethod(ctx, "myDeviceId", hubapi.CloudToDeviceMethod{MethodName: "lockDoor", ResponseTimeoutInSeconds: 10}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.UpdateTwin(ctx, "myDeviceId", hubapi.TwinPatch{Properties: &hubapi.TwinProperties{Desired: map[string]any{"floor": 7}}}, "*"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.UpdateTwin(ctx, "myDeviceId", hubapi.TwinPatch{Tags: map[string]any{"wing": "east"}}, "*"); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	eventually(t, 10*time.Second, "a method call, a desired, a reported and a tags update of myDeviceId in the activity", func() bool {
		b.call("GET", "/ui/api/activity?after="+url.QueryEscape(itoa(after)), nil, &act)
		for _, ev := range act.Events {
			if ev.DeviceID != "myDeviceId" {
				continue
			}
			switch {
			case ev.Kind == "method" && ev.Source == "rest" && ev.Method == "lockDoor" && ev.Status == 200:
				kinds["method"] = true
			case ev.Kind == "desired" && len(ev.Keys) == 1 && ev.Keys[0] == "floor":
				kinds["desired"] = true
			case ev.Kind == "reported" && ev.Source == "device":
				kinds["reported"] = true
			case ev.Kind == "tags" && len(ev.Keys) == 1 && ev.Keys[0] == "wing":
				kinds["tags"] = true
			}
		}
		return len(kinds) == 4
	})

	// Jobs: a method job over the doors, listed with its statistics; outcomes failed first;
	// cancel of a finished job leaves it as it is.
	id := "dash-api-job"
	if _, err := svc.CreateJob(ctx, hubapi.JobRequest{JobID: id, Type: hubapi.JobTypeDeviceMethod, QueryCondition: "tags.kind = 'door-controller'",
		CloudToDeviceMethod: &hubapi.CloudToDeviceMethod{MethodName: "lockDoor", ResponseTimeoutInSeconds: 5}, MaxExecutionTimeInSeconds: 60}); err != nil {
		t.Fatal(err)
	}
	var jobs struct {
		Jobs []struct {
			JobID, Type, Status, Method string
			Stats                       *hubapi.DeviceJobStatistics
		}
	}
	eventually(t, 60*time.Second, "the job completes", func() bool {
		b.call("GET", "/ui/api/jobs", nil, &jobs)
		return len(jobs.Jobs) > 0 && jobs.Jobs[0].JobID == id && jobs.Jobs[0].Status == hubapi.JobStatusCompleted
	})
	st := jobs.Jobs[0].Stats
	if jobs.Jobs[0].Method != "lockDoor" || st == nil || st.DeviceCount != 300 || st.FailedCount == 0 || st.SucceededCount+st.FailedCount != 300 {
		t.Errorf("job %+v %+v", jobs.Jobs[0], st)
	}
	var failed, others struct {
		Items []struct {
			DeviceID, Status string
			Error            *hubapi.DeviceJobError
		}
		Continuation string
	}
	b.call("GET", "/ui/api/job/devices?failed=1&id="+id, nil, &failed)
	b.call("GET", "/ui/api/job/devices?failed=0&id="+id, nil, &others)
	if len(failed.Items) != st.FailedCount || failed.Items[0].Status != "failed" || failed.Items[0].Error == nil {
		t.Errorf("failed rows: %+v", failed.Items)
	}
	if len(others.Items) != 100 || others.Continuation == "" || others.Items[0].Status != "completed" {
		t.Errorf("other rows: %d, continuation %q", len(others.Items), others.Continuation)
	}
	var jobActs int
	b.call("GET", "/ui/api/activity", nil, &act)
	for _, ev := range act.Events {
		if ev.Source == "job" && ev.Method == "lockDoor" {
			jobActs++
		}
	}
	if jobActs == 0 {
		t.Error("no job method call in the activity")
	}
	if code, body := b.call("POST", "/ui/api/job/cancel", map[string]string{"id": id}, nil); code != 200 || !contains(body, `"status":"completed"`) {
		t.Errorf("cancel of a finished job: %d %s", code, body)
	}
}

// Cancel through the dashboard uses the job manager's cancel: a scheduled job becomes
// cancelled.
func TestCancelAJob(t *testing.T) {
	h, svc := startHub(t, hub.Options{}, "")
	b := newClient(t, h)
	b.login(h)
	start := time.Now().Add(time.Hour)
	if _, err := svc.CreateJob(context.Background(), hubapi.JobRequest{JobID: "later", Type: hubapi.JobTypeDeviceMethod, QueryCondition: "*", StartTime: &start,
		CloudToDeviceMethod: &hubapi.CloudToDeviceMethod{MethodName: "lockDoor", ResponseTimeoutInSeconds: 5}}); err != nil {
		t.Fatal(err)
	}
	if code, body := b.call("POST", "/ui/api/job/cancel", map[string]string{"id": "later"}, nil); code != 200 || !contains(body, `"status":"cancelled"`) {
		t.Fatalf("cancel: %d %s", code, body)
	}
	if j, err := h.Jobs().Get("later"); err != nil || j.Status != hubapi.JobStatusCancelled {
		t.Errorf("job after cancel: %+v %v", j, err)
	}
	if code, _ := b.call("POST", "/ui/api/job/cancel", map[string]string{"id": "nope"}, nil); code != 404 {
		t.Errorf("cancel of an unknown job: %d", code)
	}
}

// A hub started without Options.Dashboard serves nothing under /ui/ (the REST API's 404) and
// has no URL.
func TestNoDashboardUnlessAsked(t *testing.T) {
	h, _ := hubtest.Start(t, "")
	if u := h.DashboardURL(); u != "" {
		t.Fatalf("DashboardURL = %q", u)
	}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsConfig(h)}}
	res, err := c.Get("https://" + h.ListenAddrs()[0].String() + "/ui/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound || res.Header.Get("iothub-errorcode") != "GenericNotFound" {
		t.Errorf("GET /ui/ without a dashboard: %d %s", res.StatusCode, res.Header.Get("iothub-errorcode"))
	}
}
