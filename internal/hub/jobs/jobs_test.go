package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/iotplan/iotplan/internal/hub/huberr"
	"github.com/iotplan/iotplan/internal/hub/link"
	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/query"
)

// memTwins is a small in-memory Twins: documents shaped like the registry's twin JSON
// (deviceId, tags, properties.desired), merge-patch updates, ids iterated in sorted order.
type memTwins struct {
	mu      sync.Mutex
	docs    map[string]map[string]any
	updates map[string]int
}

func newMemTwins() *memTwins {
	return &memTwins{docs: map[string]map[string]any{}, updates: map[string]int{}}
}

func (t *memTwins) add(id string, tags, desired map[string]any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if tags == nil {
		tags = map[string]any{}
	}
	if desired == nil {
		desired = map[string]any{}
	}
	t.docs[id] = map[string]any{"deviceId": id, "tags": tags,
		"properties": map[string]any{"desired": desired, "reported": map[string]any{}}}
}

func (t *memTwins) ForEachTwin(fn func(doc any) bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ids := make([]string, 0, len(t.docs))
	for id := range t.docs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if !fn(t.docs[id]) {
			return
		}
	}
}

func merge(dst, patch map[string]any) {
	for k, v := range patch {
		if v == nil {
			delete(dst, k)
			continue
		}
		if pm, ok := v.(map[string]any); ok {
			dm, ok := dst[k].(map[string]any)
			if !ok {
				dm = map[string]any{}
				dst[k] = dm
			}
			merge(dm, pm)
			continue
		}
		dst[k] = v
	}
}

func (t *memTwins) UpdateTwin(id string, p hubapi.TwinPatch, ifMatch string) (map[string]any, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	doc := t.docs[id]
	if doc == nil {
		return nil, huberr.New(huberr.DeviceNotFound, "Device %s not found.", id)
	}
	if ifMatch != "*" {
		return nil, fmt.Errorf("jobs must update with If-Match *, got %q", ifMatch)
	}
	merge(doc["tags"].(map[string]any), p.Tags)
	if p.Properties != nil {
		merge(doc["properties"].(map[string]any)["desired"].(map[string]any), p.Properties.Desired)
	}
	t.updates[id]++
	return doc, nil
}

func (t *memTwins) desired(id, key string) any {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.docs[id]["properties"].(map[string]any)["desired"].(map[string]any)[key]
}

// testDevice answers methods with a fixed status after delay; block=true waits for ctx.
type testDevice struct {
	status int
	delay  time.Duration
	block  bool
	noSub  bool
	calls  int
	mu     sync.Mutex
}

func (d *testDevice) InvokeMethod(ctx context.Context, name string, payload json.RawMessage) (int, json.RawMessage, error) {
	d.mu.Lock()
	d.calls++
	d.mu.Unlock()
	if d.noSub {
		return 0, nil, link.ErrNotSubscribed
	}
	if d.block {
		<-ctx.Done()
		return 0, nil, ctx.Err()
	}
	if d.delay > 0 {
		select {
		case <-time.After(d.delay):
		case <-ctx.Done():
			return 0, nil, ctx.Err()
		}
	}
	return d.status, json.RawMessage(fmt.Sprintf(`{"from":%q}`, name)), nil
}

func (d *testDevice) DesiredChanged(map[string]any, int64) {}

func (d *testDevice) callCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.calls
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func openDB(t *testing.T, path string) *bbolt.DB {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "hub.db")
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func newManager(t *testing.T, db *bbolt.DB, tw Twins, inv Invoker, opts Options) *Manager {
	t.Helper()
	if db == nil {
		db = openDB(t, "")
	}
	m, err := New(db, tw, inv, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// waitStatus polls Get until the job reaches status (bounded).
func waitStatus(t *testing.T, m *Manager, jobID, status string) hubapi.JobResponse {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := m.Get(jobID)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status == status {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s: status %q (%s), want %q", jobID, r.Status, r.FailureReason, status)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func rowsOf(m *Manager, jobID string) map[string]hubapi.DeviceJob {
	out := map[string]hubapi.DeviceJob{}
	m.ForEachDeviceJob(func(row map[string]any) bool {
		if row["jobId"] != jobID {
			return true
		}
		b, _ := json.Marshal(row)
		var r hubapi.DeviceJob
		if err := json.Unmarshal(b, &r); err != nil {
			panic(err)
		}
		out[r.DeviceID] = r
		return true
	})
	return out
}

func twinJob(id, cond string, desired map[string]any) hubapi.JobRequest {
	return hubapi.JobRequest{JobID: id, Type: hubapi.JobTypeUpdateTwin, QueryCondition: cond,
		UpdateTwin: &hubapi.TwinPatch{ETag: "*", Properties: &hubapi.TwinProperties{Desired: desired}}}
}

func methodJob(id, cond string) hubapi.JobRequest {
	return hubapi.JobRequest{JobID: id, Type: hubapi.JobTypeDeviceMethod, QueryCondition: cond,
		CloudToDeviceMethod: &hubapi.CloudToDeviceMethod{MethodName: "lockDoor", Payload: json.RawMessage("null"), ResponseTimeoutInSeconds: 15}}
}

func TestTwinJobUpdatesExactlyMatchingDevices(t *testing.T) {
	tw := newMemTwins()
	for i := range 40 {
		kind := "door"
		if i%4 == 0 {
			kind = "window"
		}
		tw.add(fmt.Sprintf("dev-%02d", i), map[string]any{"kind": kind}, map[string]any{"building": "42"})
	}
	m := newManager(t, nil, tw, link.New(link.Options{}), Options{Workers: 4})
	resp, err := m.Create(twinJob("job-1", "tags.kind = 'door'", map[string]any{"building": "43", "floor": 3.0}))
	if err != nil {
		t.Fatal(err)
	}
	if resp.JobID != "job-1" || resp.Status != "queued" || resp.Type != hubapi.JobTypeUpdateTwin || resp.CreatedTime != nil {
		t.Fatalf("create response = %+v, want minimal queued", resp)
	}
	r := waitStatus(t, m, "job-1", hubapi.JobStatusCompleted)
	want := hubapi.DeviceJobStatistics{DeviceCount: 30, SucceededCount: 30}
	if *r.DeviceJobStatistics != want {
		t.Fatalf("stats = %+v, want %+v", *r.DeviceJobStatistics, want)
	}
	if r.EndTime == nil || r.StartTime == nil || r.CreatedTime == nil || r.MaxExecutionTimeInSeconds != DefaultMaxExecution {
		t.Fatalf("times/defaults missing: %+v", r)
	}
	rows := rowsOf(m, "job-1")
	if len(rows) != 30 {
		t.Fatalf("%d rows, want 30", len(rows))
	}
	for i := range 40 {
		id := fmt.Sprintf("dev-%02d", i)
		b, f := tw.desired(id, "building"), tw.desired(id, "floor")
		if i%4 == 0 {
			if b != "42" || f != nil || tw.updates[id] != 0 {
				t.Errorf("%s (not matching) was updated: building=%v floor=%v", id, b, f)
			}
			if _, ok := rows[id]; ok {
				t.Errorf("%s has a row", id)
			}
			continue
		}
		if b != "43" || f != 3.0 || tw.updates[id] != 1 {
			t.Errorf("%s: building=%v floor=%v updates=%d", id, b, f, tw.updates[id])
		}
		row := rows[id]
		if row.Status != hubapi.DeviceJobCompleted || row.JobType != hubapi.JobTypeUpdateTwin || row.EndTimeUTC == nil || row.Error != nil {
			t.Errorf("%s row = %+v", id, row)
		}
	}
}

func TestMethodJobRowsAndStatistics(t *testing.T) {
	tw := newMemTwins()
	l := link.New(link.Options{})
	devs := map[string]*testDevice{
		"ok-1":  {status: 200},
		"ok-2":  {status: 200},
		"err-1": {status: 500},
		"nosub": {noSub: true},
	}
	for id, d := range devs {
		tw.add(id, map[string]any{"kind": "door"}, nil)
		l.Connect(id, d)
	}
	tw.add("offline", map[string]any{"kind": "door"}, nil)
	tw.add("other", map[string]any{"kind": "lamp"}, nil)
	l.Connect("other", &testDevice{status: 200})

	m := newManager(t, nil, tw, l, Options{})
	if _, err := m.Create(methodJob("m1", "tags.kind = 'door'")); err != nil {
		t.Fatal(err)
	}
	r := waitStatus(t, m, "m1", hubapi.JobStatusCompleted)
	// A device that answered counts as succeeded whatever its status; offline and
	// unsubscribed devices fail.
	want := hubapi.DeviceJobStatistics{DeviceCount: 5, SucceededCount: 3, FailedCount: 2}
	if *r.DeviceJobStatistics != want {
		t.Fatalf("stats = %+v, want %+v", *r.DeviceJobStatistics, want)
	}
	rows := rowsOf(m, "m1")
	for id, st := range map[string]int{"ok-1": 200, "ok-2": 200, "err-1": 500} {
		row := rows[id]
		if row.Status != hubapi.DeviceJobCompleted || row.Outcome == nil || row.Outcome.DeviceMethodResponse == nil ||
			row.Outcome.DeviceMethodResponse.Status != st || string(row.Outcome.DeviceMethodResponse.Payload) != `{"from":"lockDoor"}` {
			t.Errorf("%s row = %+v", id, row)
		}
	}
	for _, id := range []string{"offline", "nosub"} {
		row := rows[id]
		if row.Status != hubapi.DeviceJobFailed || row.Error == nil || row.Error.Code != "DeviceNotOnline" || row.Error.Description == "" {
			t.Errorf("%s row = %+v (error %+v)", id, row, row.Error)
		}
		if row.Outcome == nil || row.Outcome.DeviceMethodResponse != nil {
			t.Errorf("%s outcome = %+v", id, row.Outcome)
		}
	}
	if _, ok := rows["other"]; ok || devs["ok-1"].callCount() != 1 {
		t.Errorf("wrong devices called")
	}
	// The row JSON uses the hub's field names.
	m.ForEachDeviceJob(func(row map[string]any) bool {
		for _, k := range []string{"deviceId", "jobId", "jobType", "status", "startTimeUtc", "createdDateTimeUtc", "lastUpdatedDateTimeUtc", "outcome"} {
			if _, ok := row[k]; !ok {
				t.Errorf("row %v lacks %s", row["deviceId"], k)
			}
		}
		return false
	})
}

func TestScheduledJobStartsAtStartTime(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	tw := newMemTwins()
	tw.add("d1", nil, nil)
	m := newManager(t, nil, tw, link.New(link.Options{}), Options{Now: clk.Now})
	req := twinJob("later", "", map[string]any{"x": 1.0})
	start := clk.Now().Add(time.Hour)
	req.StartTime = &start
	resp, err := m.Create(req)
	if err != nil || resp.Status != hubapi.JobStatusQueued {
		t.Fatalf("create: %+v %v", resp, err)
	}
	r := waitStatus(t, m, "later", hubapi.JobStatusScheduled)
	if !r.StartTime.Equal(start) {
		t.Fatalf("startTime = %v, want %v", r.StartTime, start)
	}
	time.Sleep(3 * tick)
	if r, _ := m.Get("later"); r.Status != hubapi.JobStatusScheduled || tw.desired("d1", "x") != nil {
		t.Fatalf("job ran before its start time: %s", r.Status)
	}
	clk.Advance(time.Hour)
	waitStatus(t, m, "later", hubapi.JobStatusCompleted)
	if tw.desired("d1", "x") != 1.0 {
		t.Fatal("twin not updated")
	}
	if got := m.List(hubapi.JobTypeUpdateTwin, hubapi.JobStatusCompleted); len(got) != 1 || got[0].JobID != "later" {
		t.Fatalf("List = %+v", got)
	}
}

func TestMaxExecutionExpires(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	tw := newMemTwins()
	l := link.New(link.Options{})
	for i := range 6 {
		id := fmt.Sprintf("slow-%d", i)
		tw.add(id, nil, nil)
		l.Connect(id, &testDevice{block: true})
	}
	m := newManager(t, nil, tw, l, Options{Now: clk.Now, Workers: 2})
	req := methodJob("exp", "*")
	req.MaxExecutionTimeInSeconds = 60
	if _, err := m.Create(req); err != nil {
		t.Fatal(err)
	}
	// Pollers see progress: two devices running, four pending.
	deadline := time.Now().Add(5 * time.Second)
	for {
		r, _ := m.Get("exp")
		if s := r.DeviceJobStatistics; r.Status == hubapi.JobStatusRunning && s.RunningCount == 2 && s.PendingCount == 4 && s.DeviceCount == 6 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no live progress: %+v %+v", r, r.DeviceJobStatistics)
		}
		time.Sleep(5 * time.Millisecond)
	}
	clk.Advance(61 * time.Second)
	r := waitStatus(t, m, "exp", hubapi.JobStatusFailed)
	if !strings.Contains(r.FailureReason, "maxExecutionTimeInSeconds (60 s)") {
		t.Fatalf("failureReason = %q", r.FailureReason)
	}
	if want := (hubapi.DeviceJobStatistics{DeviceCount: 6, FailedCount: 6}); *r.DeviceJobStatistics != want {
		t.Fatalf("stats = %+v", *r.DeviceJobStatistics)
	}
	for id, row := range rowsOf(m, "exp") {
		if row.Status != hubapi.DeviceJobFailed || row.Error == nil || row.Error.Code != CodeJobExpired {
			t.Errorf("%s row = %+v", id, row)
		}
	}
}

func TestCancel(t *testing.T) {
	tw := newMemTwins()
	l := link.New(link.Options{})
	for i := range 5 {
		id := fmt.Sprintf("slow-%d", i)
		tw.add(id, nil, nil)
		l.Connect(id, &testDevice{block: true})
	}
	m := newManager(t, nil, tw, l, Options{Workers: 2})
	if _, err := m.Create(methodJob("c1", "")); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, m, "c1", hubapi.JobStatusRunning)
	resp, err := m.Cancel("c1")
	if err != nil || resp.Status != hubapi.JobStatusCancelled || resp.EndTime == nil {
		t.Fatalf("cancel = %+v, %v", resp, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		rows := rowsOf(m, "c1")
		n := 0
		for _, r := range rows {
			if r.Status == hubapi.DeviceJobCanceled {
				n++
			}
		}
		if len(rows) == 5 && n == 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rows not canceled: %+v", rows)
		}
		time.Sleep(5 * time.Millisecond)
	}
	r, _ := m.Get("c1")
	if r.Status != hubapi.JobStatusCancelled {
		t.Fatalf("status = %s after cancel", r.Status)
	}
	// Cancelling an ended job returns it unchanged; an unknown one is 404002.
	if r2, err := m.Cancel("c1"); err != nil || r2.Status != hubapi.JobStatusCancelled {
		t.Fatalf("second cancel = %+v %v", r2, err)
	}
	if _, err := m.Cancel("nope"); !huberr.Is(err, huberr.JobNotFound) {
		t.Fatalf("cancel unknown: %v", err)
	}
	// A job cancelled before its start never runs.
	start := time.Now().Add(time.Hour)
	req := twinJob("c2", "", map[string]any{"x": 1.0})
	req.StartTime = &start
	if _, err := m.Create(req); err != nil {
		t.Fatal(err)
	}
	if r, _ := m.Cancel("c2"); r.Status != hubapi.JobStatusCancelled {
		t.Fatalf("cancel scheduled: %s", r.Status)
	}
}

func TestCreateValidation(t *testing.T) {
	tw := newMemTwins()
	m := newManager(t, nil, tw, link.New(link.Options{}), Options{MaxConcurrentJobs: 1})
	far := time.Now().Add(24 * time.Hour)
	ok := twinJob("first", "", map[string]any{"x": 1.0})
	ok.StartTime = &far
	if _, err := m.Create(ok); err != nil {
		t.Fatal(err)
	}
	badEtag := twinJob("e", "", map[string]any{"x": 1.0})
	badEtag.UpdateTwin.ETag = "AAAA"
	badType := twinJob("t", "", map[string]any{"x": 1.0})
	badType.Type = "scheduleTwinUpdate"
	longCond := twinJob("l", strings.Repeat("a", MaxQueryConditionLength+1), map[string]any{"x": 1.0})
	badTimeout := methodJob("rt", "")
	badTimeout.CloudToDeviceMethod.ResponseTimeoutInSeconds = 301
	noMethod := methodJob("nm", "")
	noMethod.CloudToDeviceMethod.MethodName = ""
	tooFar := twinJob("far", "", map[string]any{"x": 1.0})
	beyond := time.Now().Add(hubapi.MaxJobStartAhead + time.Minute)
	tooFar.StartTime = &beyond
	cases := []struct {
		name string
		req  hubapi.JobRequest
		code huberr.Code
	}{
		{"duplicate", ok, huberr.JobAlreadyExists},
		{"empty id", twinJob("", "", map[string]any{"x": 1.0}), huberr.ArgumentInvalid},
		{"bad id char", twinJob("a_b", "", map[string]any{"x": 1.0}), huberr.ArgumentInvalid},
		{"long id", twinJob(strings.Repeat("a", 65), "", map[string]any{"x": 1.0}), huberr.ArgumentInvalid},
		{"etag", badEtag, huberr.ArgumentInvalid},
		{"type", badType, huberr.GenericBadRequest},
		{"long condition", longCond, huberr.ArgumentInvalid},
		{"response timeout", badTimeout, huberr.ArgumentInvalid},
		{"no method name", noMethod, huberr.ArgumentNull},
		{"start more than 168h ahead", tooFar, huberr.ArgumentInvalid},
		{"too many jobs", twinJob("second", "", map[string]any{"x": 1.0}), huberr.ThrottlingMaxActiveJobCountExceeded},
	}
	for _, c := range cases {
		_, err := m.Create(c.req)
		if !huberr.Is(err, c.code) {
			t.Errorf("%s: err = %v, want %d", c.name, err, c.code)
		}
	}
	if _, err := m.Create(twinJob(strings.Repeat("a", 64), "", map[string]any{"x": 1.0})); !huberr.Is(err, huberr.ThrottlingMaxActiveJobCountExceeded) {
		t.Errorf("64-char id should pass validation: %v", err)
	}
	if _, err := m.Get("missing"); !huberr.Is(err, huberr.JobNotFound) {
		t.Errorf("get missing: %v", err)
	}
	// After cancelling, the slot is free again.
	m.Cancel("first")
	if _, err := m.Create(twinJob("second", "", map[string]any{"x": 1.0})); err != nil {
		t.Errorf("create after cancel: %v", err)
	}
}

// TestConditionLengthCountsAsTheQueryPackage: the queryCondition limit counts UTF-16 code units,
// as the query package (and the hub's .NET front end) does, not bytes or runes.
func TestConditionLengthCountsAsTheQueryPackage(t *testing.T) {
	cases := []struct {
		name string
		cond string
		ok   bool
	}{
		{"ascii at the limit", strings.Repeat("a", MaxQueryConditionLength), true},
		{"ascii over the limit", strings.Repeat("a", MaxQueryConditionLength+1), false},
		{"two-byte characters at the limit", strings.Repeat("é", MaxQueryConditionLength), true},
		{"two-byte characters over the limit", strings.Repeat("é", MaxQueryConditionLength+1), false},
		{"surrogate pairs at the limit", strings.Repeat("😀", MaxQueryConditionLength/2), true},
		{"surrogate pairs over the limit", strings.Repeat("😀", MaxQueryConditionLength/2) + "a", false},
	}
	for _, c := range cases {
		req := twinJob("len", c.cond, map[string]any{"x": 1.0})
		err := validate(&req)
		if c.ok && err != nil || !c.ok && !huberr.Is(err, huberr.ArgumentInvalid) {
			t.Errorf("%s (%d UTF-16 units): err = %v", c.name, query.TextLength(c.cond), err)
		}
	}
}

func TestBadConditionFailsJob(t *testing.T) {
	tw := newMemTwins()
	tw.add("d1", nil, nil)
	m := newManager(t, nil, tw, link.New(link.Options{}), Options{})
	resp, err := m.Create(twinJob("bad", "SELECT * FROM devices", map[string]any{"x": 1.0}))
	if err != nil || resp.Status != hubapi.JobStatusQueued {
		t.Fatalf("a bad condition must fail the job, not the PUT: %+v %v", resp, err)
	}
	r := waitStatus(t, m, "bad", hubapi.JobStatusFailed)
	if !strings.Contains(r.FailureReason, "queryCondition") || r.EndTime == nil {
		t.Fatalf("failureReason = %q", r.FailureReason)
	}
	if tw.desired("d1", "x") != nil {
		t.Fatal("device updated by a failed job")
	}
}

func TestDeviceOpsRate(t *testing.T) {
	tw := newMemTwins()
	for i := range 6 {
		tw.add(fmt.Sprintf("d%d", i), nil, nil)
	}
	m := newManager(t, nil, tw, link.New(link.Options{}), Options{DeviceOpsPerSecond: 20})
	start := time.Now()
	if _, err := m.Create(twinJob("rate", "", map[string]any{"x": 1.0})); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, m, "rate", hubapi.JobStatusCompleted)
	// 6 operations at 20/s are spaced 50 ms apart: the last starts ≥ 250 ms after the first.
	if el := time.Since(start); el < 250*time.Millisecond {
		t.Fatalf("6 ops at 20/s took %v", el)
	}
}

func TestRestartResumesRunningJob(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hub.db")
	db := openDB(t, path)
	tw := newMemTwins()
	l := link.New(link.Options{})
	for i := range 10 {
		id := fmt.Sprintf("d%d", i)
		tw.add(id, nil, nil)
		l.Connect(id, &testDevice{status: 200, block: i == 3})
	}
	m, err := New(db, tw, l, Options{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Create(methodJob("resume", "")); err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(time.Hour)
	sched := twinJob("sched", "", map[string]any{"x": 1.0})
	sched.StartTime = &future
	if _, err := m.Create(sched); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		r, _ := m.Get("resume")
		if s := r.DeviceJobStatistics; s.SucceededCount == 3 && s.RunningCount == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job did not reach d3: %+v", r.DeviceJobStatistics)
		}
		time.Sleep(5 * time.Millisecond)
	}
	waitStatus(t, m, "sched", hubapi.JobStatusScheduled)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// "Restart": a new database handle and devices that all answer now.
	db2 := openDB(t, path)
	l2 := link.New(link.Options{})
	devs := map[string]*testDevice{}
	for i := range 10 {
		id := fmt.Sprintf("d%d", i)
		devs[id] = &testDevice{status: 200}
		l2.Connect(id, devs[id])
	}
	m2 := newManager(t, db2, tw, l2, Options{Workers: 1})
	r := waitStatus(t, m2, "resume", hubapi.JobStatusCompleted)
	if want := (hubapi.DeviceJobStatistics{DeviceCount: 10, SucceededCount: 9, FailedCount: 1}); *r.DeviceJobStatistics != want {
		t.Fatalf("stats after resume = %+v, want %+v", *r.DeviceJobStatistics, want)
	}
	rows := rowsOf(m2, "resume")
	if row := rows["d3"]; row.Status != hubapi.DeviceJobFailed || row.Error == nil || row.Error.Code != CodeJobInterrupted {
		t.Fatalf("d3 row = %+v", row)
	}
	for i := range 10 {
		id := fmt.Sprintf("d%d", i)
		want := 0
		if i > 3 {
			want = 1 // only the devices still pending are called after the restart
		}
		if got := devs[id].callCount(); got != want {
			t.Errorf("%s called %d times after restart, want %d", id, got, want)
		}
		if i != 3 && rows[id].Status != hubapi.DeviceJobCompleted {
			t.Errorf("%s row = %+v", id, rows[id])
		}
	}
	if r, _ := m2.Get("sched"); r.Status != hubapi.JobStatusScheduled {
		t.Fatalf("scheduled job after restart: %s", r.Status)
	}
	if got := m2.List("", ""); len(got) != 2 || got[0].JobID != "sched" {
		t.Fatalf("List newest first = %v", got)
	}
}

// TestRestartAfterCrash starts a Manager over state a crash left behind: a twin job with a
// device caught "running" (redone: the patch is idempotent), and a job whose device
// selection was cut short (selected again from scratch).
func TestRestartAfterCrash(t *testing.T) {
	db := openDB(t, "")
	tw := newMemTwins()
	for i := range 4 {
		tw.add(fmt.Sprintf("d%d", i), nil, nil)
	}
	now := time.Now().UTC()
	patch := &hubapi.TwinPatch{ETag: "*", Properties: &hubapi.TwinProperties{Desired: map[string]any{"x": 1.0}}}
	job := func(id string, selected bool) record {
		r := record{Seq: 1, RunningSince: &now, Job: hubapi.JobResponse{JobID: id, Type: hubapi.JobTypeUpdateTwin,
			CreatedTime: &now, StartTime: &now, MaxExecutionTimeInSeconds: 3600, UpdateTwin: patch,
			Status: hubapi.JobStatusRunning, DeviceJobStatistics: &hubapi.DeviceJobStatistics{}}}
		if selected {
			r.SelectedAt = &now
		}
		return r
	}
	row := func(jobID, dev, status string) *hubapi.DeviceJob {
		return &hubapi.DeviceJob{JobID: jobID, DeviceID: dev, JobType: hubapi.JobTypeUpdateTwin, Status: status}
	}
	err := db.Update(func(tx *bbolt.Tx) error {
		jb, _ := tx.CreateBucketIfNotExists([]byte(bucketJobs))
		rb, _ := tx.CreateBucketIfNotExists([]byte(bucketDeviceJobs))
		for _, r := range []record{job("crash", true), job("cut", false)} {
			b, _ := json.Marshal(r)
			jb.Put([]byte(r.Job.JobID), b)
		}
		for _, r := range []*hubapi.DeviceJob{row("crash", "d0", "completed"), row("crash", "d1", "running"),
			row("crash", "d2", "pending"), row("cut", "ghost", "pending")} {
			b, _ := json.Marshal(r)
			rb.Put([]byte(rowKey(r.JobID, r.DeviceID)), b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	m := newManager(t, db, tw, link.New(link.Options{}), Options{})
	r := waitStatus(t, m, "crash", hubapi.JobStatusCompleted)
	if *r.DeviceJobStatistics != (hubapi.DeviceJobStatistics{DeviceCount: 3, SucceededCount: 3}) {
		t.Fatalf("crash stats = %+v", r.DeviceJobStatistics)
	}
	r = waitStatus(t, m, "cut", hubapi.JobStatusCompleted)
	if *r.DeviceJobStatistics != (hubapi.DeviceJobStatistics{DeviceCount: 4, SucceededCount: 4}) {
		t.Fatalf("cut stats = %+v", r.DeviceJobStatistics)
	}
	// d0 was done before the crash; d1, d2 by "crash"; all four by "cut".
	for id, want := range map[string]int{"d0": 1, "d1": 2, "d2": 2, "d3": 1} {
		if got := tw.updates[id]; got != want {
			t.Errorf("%s updated %d times, want %d", id, got, want)
		}
	}
	if rows := rowsOf(m, "cut"); len(rows) != 4 || rows["ghost"].DeviceID != "" {
		t.Errorf("cut rows = %v", rows)
	}
}

// storeProbe is an Invoker that, when a device is called, reads the device's devices.jobs
// row straight from the store (not the rows waiting to be flushed).
type storeProbe struct {
	db     *bbolt.DB
	mu     sync.Mutex
	onDisk map[string]string // device → status stored when it was called
}

func (p *storeProbe) Invoke(_ context.Context, deviceID string, m hubapi.CloudToDeviceMethod) (hubapi.CloudToDeviceMethodResult, error) {
	status := ""
	p.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket([]byte(bucketDeviceJobs)).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if strings.HasSuffix(string(k), "/"+deviceID) {
				var r hubapi.DeviceJob
				json.Unmarshal(v, &r)
				status = r.Status
			}
		}
		return nil
	})
	p.mu.Lock()
	p.onDisk[deviceID] = status
	p.mu.Unlock()
	return hubapi.CloudToDeviceMethodResult{Status: 200, Payload: json.RawMessage(`{}`)}, nil
}

// TestMethodCallIsRecordedBeforeItIsMade: when a method job calls a device, the device's row
// is already stored as running, so a hub killed during the call finds it at restart and marks
// it JobInterrupted instead of calling the device a second time.
func TestMethodCallIsRecordedBeforeItIsMade(t *testing.T) {
	db := openDB(t, "")
	tw := newMemTwins()
	for i := range 50 {
		tw.add(fmt.Sprintf("d%02d", i), nil, nil)
	}
	probe := &storeProbe{db: db, onDisk: map[string]string{}}
	m := newManager(t, db, tw, probe, Options{})
	if _, err := m.Create(hubapi.JobRequest{JobID: "call", Type: hubapi.JobTypeDeviceMethod,
		CloudToDeviceMethod: &hubapi.CloudToDeviceMethod{MethodName: "lockDoor"}}); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, m, "call", hubapi.JobStatusCompleted)
	if len(probe.onDisk) != 50 {
		t.Fatalf("%d devices called", len(probe.onDisk))
	}
	for id, st := range probe.onDisk {
		if st != hubapi.DeviceJobRunning {
			t.Errorf("%s was called while its stored row said %q", id, st)
		}
	}
}
