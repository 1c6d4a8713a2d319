package dashboard

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iotplan/iotplan/internal/hub/httpapi"
	"github.com/iotplan/iotplan/internal/hub/huberr"
	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/query"
)

// fakeQuerier records the statements it is asked to run and answers from pages.
type fakeQuerier struct {
	mu    sync.Mutex
	texts []string
	// pages answers a statement: page i is served for continuation "p<i>".
	pages func(text string) [][]any
}

func (f *fakeQuerier) Query(text, continuation string, size int) (httpapi.QueryPage, error) {
	f.mu.Lock()
	f.texts = append(f.texts, text)
	f.mu.Unlock()
	if size != pageSize {
		return httpapi.QueryPage{}, fmt.Errorf("page size %d, want %d", size, pageSize)
	}
	if _, err := query.Parse(text); err != nil {
		return httpapi.QueryPage{}, err
	}
	pages := f.pages(text)
	i := 0
	if continuation != "" {
		if _, err := fmt.Sscanf(continuation, "p%d", &i); err != nil || i >= len(pages) {
			return httpapi.QueryPage{}, huberr.New(huberr.ArgumentInvalid, "The continuation token is not valid.")
		}
	}
	p := httpapi.QueryPage{Items: pages[i], ItemType: "raw"}
	if i+1 < len(pages) {
		p.Continuation = fmt.Sprintf("p%d", i+1)
	}
	return p, nil
}

func (f *fakeQuerier) ran() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.texts...)
}

type fakeJobs struct{ list []hubapi.JobResponse }

func (f *fakeJobs) Get(id string) (hubapi.JobResponse, error) {
	for _, j := range f.list {
		if j.JobID == id {
			return j, nil
		}
	}
	return hubapi.JobResponse{}, huberr.New(huberr.JobNotFound, "Job with id '%s' was not found.", id)
}

func (f *fakeJobs) Cancel(id string) (hubapi.JobResponse, error) {
	for i, j := range f.list {
		if j.JobID == id {
			f.list[i].Status = hubapi.JobStatusCancelled
			return f.list[i], nil
		}
	}
	return hubapi.JobResponse{}, huberr.New(huberr.JobNotFound, "Job with id '%s' was not found.", id)
}

func (f *fakeJobs) List(string, string) []hubapi.JobResponse {
	return append([]hubapi.JobResponse(nil), f.list...)
}

const testToken = "0123456789abcdef-the-test-token"

func newTestServer(t *testing.T, q *fakeQuerier, j *fakeJobs) *Server {
	t.Helper()
	if q == nil {
		q = &fakeQuerier{pages: func(string) [][]any { return [][]any{{}} }}
	}
	if j == nil {
		j = &fakeJobs{}
	}
	s, err := New(Options{Token: testToken, Queries: q, Jobs: j,
		Twin: func(id string) (any, error) {
			if id != "d1" {
				return nil, huberr.New(huberr.DeviceNotFound, "Device %s not registered.", id)
			}
			return map[string]any{"deviceId": "d1"}, nil
		},
		DeviceCount: func() int { return 7 }, ConnectedCount: func() int { return 5 }, Activity: NewActivity(nil)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// do sends a request to the dashboard, with the token's cookie when auth is set.
func do(t *testing.T, s *Server, method, target, body string, auth bool, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	var r *http.Request
	if body != "" {
		r = httptest.NewRequest(method, "https://127.0.0.1:8443"+target, strings.NewReader(body))
	} else {
		r = httptest.NewRequest(method, "https://127.0.0.1:8443"+target, nil)
	}
	if auth {
		r.AddCookie(&http.Cookie{Name: CookieName, Value: testToken})
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, r)
	return w
}

// Every path under /ui/ but the token exchange answers 403 without the token's cookie, and
// with a wrong one; the exchange sets a cookie scripts cannot read and other sites cannot
// send, and cleans the URL.
func TestTokenGuardsEverything(t *testing.T) {
	s := newTestServer(t, nil, nil)
	for _, target := range []string{"/ui/", "/ui/assets/app.js", "/ui/api/summary", "/ui/api/events", "/ui/api/twin?id=d1", "/ui/nothing"} {
		if w := do(t, s, "GET", target, "", false); w.Code != http.StatusForbidden {
			t.Errorf("GET %s without the cookie: %d", target, w.Code)
		}
		r := httptest.NewRequest("GET", "https://127.0.0.1:8443"+target, nil)
		r.AddCookie(&http.Cookie{Name: CookieName, Value: testToken + "x"})
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, r)
		if w.Code != http.StatusForbidden {
			t.Errorf("GET %s with a wrong cookie: %d", target, w.Code)
		}
	}
	if w := do(t, s, "POST", "/ui/api/job/cancel", `{"id":"j"}`, false); w.Code != http.StatusForbidden {
		t.Errorf("POST without the cookie: %d", w.Code)
	}
	// The API's 403 is JSON; a page's is text that says what to open.
	if w := do(t, s, "GET", "/ui/api/summary", "", false); !strings.Contains(w.Header().Get("Content-Type"), "json") || !strings.Contains(w.Body.String(), "iotplan dev") {
		t.Errorf("API 403: %s %s", w.Header().Get("Content-Type"), w.Body)
	}
	if w := do(t, s, "GET", "/ui/", "", false); !strings.HasPrefix(w.Body.String(), "403 Forbidden") {
		t.Errorf("page 403: %s", w.Body)
	}

	if w := do(t, s, "GET", "/ui/?token=wrong", "", false); w.Code != http.StatusForbidden || len(w.Result().Cookies()) != 0 {
		t.Errorf("wrong token: %d, cookies %v", w.Code, w.Result().Cookies())
	}
	w := do(t, s, "GET", "/ui/?token="+url.QueryEscape(testToken), "", false)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/ui/" {
		t.Fatalf("token exchange: %d, Location %q", w.Code, w.Header().Get("Location"))
	}
	cs := w.Result().Cookies()
	if len(cs) != 1 {
		t.Fatalf("cookies %v", cs)
	}
	c := cs[0]
	if c.Name != CookieName || c.Value != testToken || !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode || c.Path != "/ui/" {
		t.Errorf("cookie %+v", c)
	}

	for _, target := range []string{"/ui/", "/ui/assets/app.js", "/ui/assets/app.css", "/ui/api/summary"} {
		w := do(t, s, "GET", target, "", true)
		if w.Code != http.StatusOK {
			t.Errorf("GET %s with the cookie: %d %s", target, w.Code, w.Body)
		}
		if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("GET %s: CSP %q", target, csp)
		}
	}
	if ct := do(t, s, "GET", "/ui/", "", true).Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("index Content-Type %q", ct)
	}
	// A POST from another origin is refused even with the cookie.
	if w := do(t, s, "POST", "/ui/api/job/cancel", `{"id":"j"}`, true, "Origin", "https://evil.example"); w.Code != http.StatusForbidden {
		t.Errorf("cross-origin POST: %d", w.Code)
	}
	if w := do(t, s, "POST", "/ui/api/job/cancel", `{"id":"j"}`, true, "Sec-Fetch-Site", "cross-site"); w.Code != http.StatusForbidden {
		t.Errorf("cross-site POST: %d", w.Code)
	}
	if w := do(t, s, "POST", "/ui/api/job/cancel", `{"id":"j"}`, true, "Sec-Fetch-Site", "same-origin"); w.Code != http.StatusNotFound {
		t.Errorf("same-origin POST of an unknown job: %d %s", w.Code, w.Body)
	}
}

func TestNewRefusesAShortToken(t *testing.T) {
	if _, err := New(Options{Token: "short"}); err == nil {
		t.Error("a 5-character token was accepted")
	}
	tok, err := NewToken()
	if err != nil || len(tok) != 43 {
		t.Errorf("NewToken = %q, %v", tok, err)
	}
	if tok2, _ := NewToken(); tok2 == tok {
		t.Error("two tokens are equal")
	}
}

// The grouping is one GROUP BY statement built by the query builder from the parsed path:
// what the user typed is never pasted into query text, so text that is not a path is a
// positioned error, not a different query.
func TestGroupsAreComposedByTheBuilder(t *testing.T) {
	q := &fakeQuerier{pages: func(text string) [][]any {
		return [][]any{
			{map[string]any{"value": "41", "n": 3.0}, map[string]any{"n": 2.0}},
			{map[string]any{"value": 41.0, "n": 9.0}},
		}
	}}
	s := newTestServer(t, q, nil)
	w := do(t, s, "GET", "/ui/api/groups?by="+url.QueryEscape("tags.building"), "", true)
	if w.Code != http.StatusOK {
		t.Fatalf("groups: %d %s", w.Code, w.Body)
	}
	var g groupsAnswer
	if err := json.Unmarshal(w.Body.Bytes(), &g); err != nil {
		t.Fatal(err)
	}
	want := "SELECT tags.building AS value, COUNT() AS n FROM devices GROUP BY tags.building"
	if g.Query != want || q.ran()[0] != want {
		t.Errorf("query %q, ran %q; want %q", g.Query, q.ran(), want)
	}
	// Both pages were read; the largest group first; "41" and 41 are different groups.
	if g.Total != 14 || g.Distinct != 3 || len(g.Groups) != 3 || g.Groups[0] != (group{`41`, 9}) || g.Groups[1] != (group{`"41"`, 3}) || g.Groups[2] != (group{"", 2}) {
		t.Errorf("groups %+v", g)
	}

	// A second request within groupsTTL is served from the cache.
	do(t, s, "GET", "/ui/api/groups?by=tags.building", "", true)
	if n := len(q.ran()); n != 2 {
		t.Errorf("%d queries ran, want 2 (one grouping of two pages)", n)
	}

	// A name that needs brackets is bracketed by the printer; injection attempts are not paths.
	q.texts = nil
	if w := do(t, s, "GET", "/ui/api/groups?by="+url.QueryEscape("tags.[[my key]]"), "", true); w.Code != http.StatusOK {
		t.Fatalf("bracketed: %d %s", w.Code, w.Body)
	}
	if got := q.ran()[0]; got != "SELECT tags.[[my key]] AS value, COUNT() AS n FROM devices GROUP BY tags.[[my key]]" {
		t.Errorf("bracketed path ran %q", got)
	}
	for _, by := range []string{"tags.a FROM devices WHERE true", "tags.a = 'x'", "tags.'a'", "COUNT()"} {
		q.texts = nil
		w := do(t, s, "GET", "/ui/api/groups?by="+url.QueryEscape(by), "", true)
		var e struct {
			Error apiError `json:"error"`
		}
		_ = json.Unmarshal(w.Body.Bytes(), &e)
		if w.Code != http.StatusBadRequest || e.Error.Query == nil || e.Error.Query.Line != 1 || len(q.ran()) != 0 {
			t.Errorf("by=%q: %d %s (ran %q)", by, w.Code, w.Body, q.ran())
		}
	}
}

// A grouping with more distinct values than maxGroupPages pages reads no more, shows the
// largest maxGroupBars and sums the rest.
func TestGroupsAreBounded(t *testing.T) {
	q := &fakeQuerier{pages: func(string) [][]any {
		pages := make([][]any, maxGroupPages+5)
		for p := range pages {
			for i := range pageSize {
				pages[p] = append(pages[p], map[string]any{"value": float64(p*pageSize + i), "n": 1.0})
			}
		}
		return pages
	}}
	s := newTestServer(t, q, nil)
	w := do(t, s, "GET", "/ui/api/groups?by=deviceId", "", true)
	var g groupsAnswer
	if err := json.Unmarshal(w.Body.Bytes(), &g); err != nil {
		t.Fatal(err)
	}
	if !g.Truncated || g.Distinct != maxGroupPages*pageSize || len(g.Groups) != maxGroupBars || g.OtherN != g.Distinct-maxGroupBars || g.Other != g.OtherN || len(q.ran()) != maxGroupPages {
		t.Errorf("truncated %v, distinct %d, shown %d, other %d in %d groups, %d queries", g.Truncated, g.Distinct, len(g.Groups), g.Other, g.OtherN, len(q.ran()))
	}
}

// A query error comes back with its position and the text split there.
func TestQueryErrorsArePositioned(t *testing.T) {
	s := newTestServer(t, nil, nil)
	text := "SELECT * FROM devices\nWHERE tags.x = = 1"
	b, _ := json.Marshal(queryRequest{Query: text})
	w := do(t, s, "POST", "/ui/api/query", string(b), true)
	var e struct {
		Error apiError `json:"error"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil {
		t.Fatal(err)
	}
	qp := e.Error.Query
	if w.Code != http.StatusInternalServerError && w.Code != http.StatusBadRequest || qp == nil {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if qp.Line != 2 || qp.Col != 16 || qp.Before+qp.After != text || !strings.HasPrefix(qp.After, "= 1") {
		t.Errorf("position %+v", qp)
	}
}

// Job outcomes are read with a statement the builder composes: the id is a quoted literal.
func TestJobDevicesQuery(t *testing.T) {
	q := &fakeQuerier{pages: func(string) [][]any { return [][]any{{map[string]any{"deviceId": "d1", "status": "failed"}}} }}
	s := newTestServer(t, q, nil)
	id := "x' OR devices.jobs.status = 'completed"
	for _, failed := range []string{"1", "0"} {
		w := do(t, s, "GET", "/ui/api/job/devices?failed="+failed+"&id="+url.QueryEscape(id), "", true)
		if w.Code != http.StatusOK {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
	}
	ran := q.ran()
	want := []string{
		`SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 'x\' OR devices.jobs.status = \'completed' AND devices.jobs.status = 'failed'`,
		`SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 'x\' OR devices.jobs.status = \'completed' AND devices.jobs.status != 'failed'`,
	}
	for i := range want {
		if i >= len(ran) || ran[i] != want[i] {
			t.Errorf("statement %d = %q\nwant          %q", i, ran, want[i])
		}
	}
}

func TestJobsPagesAndCancel(t *testing.T) {
	j := &fakeJobs{}
	for i := range 230 {
		j.list = append(j.list, hubapi.JobResponse{JobID: fmt.Sprintf("job-%03d", i), Type: hubapi.JobTypeUpdateTwin, Status: hubapi.JobStatusRunning,
			UpdateTwin: &hubapi.TwinPatch{}, DeviceJobStatistics: &hubapi.DeviceJobStatistics{DeviceCount: 10, SucceededCount: 4}})
	}
	s := newTestServer(t, nil, j)
	var pages []jobsAnswer
	next := 0
	for range 5 {
		w := do(t, s, "GET", fmt.Sprintf("/ui/api/jobs?offset=%d", next), "", true)
		var a jobsAnswer
		if err := json.Unmarshal(w.Body.Bytes(), &a); err != nil {
			t.Fatal(err)
		}
		pages = append(pages, a)
		if next = a.Next; next == 0 {
			break
		}
	}
	if len(pages) != 3 || len(pages[0].Jobs) != 100 || len(pages[2].Jobs) != 30 || pages[1].Jobs[0].JobID != "job-100" || pages[0].Total != 230 {
		t.Errorf("%d pages", len(pages))
	}
	if st := pages[0].Jobs[0].Stats; st == nil || st.SucceededCount != 4 {
		t.Errorf("stats %+v", st)
	}
	if strings.Contains(do(t, s, "GET", "/ui/api/jobs", "", true).Body.String(), "updateTwin") {
		t.Error("the jobs list carries update patches")
	}
	w := do(t, s, "POST", "/ui/api/job/cancel", `{"id":"job-007"}`, true, "Sec-Fetch-Site", "same-origin")
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"status":"cancelled"`) {
		t.Errorf("cancel: %d %s", w.Code, w.Body)
	}
}

func TestActivityRing(t *testing.T) {
	var nilAct *Activity
	nilAct.Method(SourceREST, "d", "m", 200, "", time.Second) // no panic, nothing recorded
	if ev, _, last := nilAct.Since(0, 10); ev != nil || last != 0 {
		t.Errorf("nil activity: %v %d", ev, last)
	}

	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a := NewActivity(func() time.Time { return now })
	if ev, skipped, last := a.Since(0, 10); len(ev) != 0 || skipped != 0 || last != 0 {
		t.Errorf("empty: %v %d %d", ev, skipped, last)
	}
	a.Method(SourceREST, "d1", "lockDoor", 200, "", 30*time.Millisecond)
	a.Twin(KindDesired, SourceService, "d1", map[string]any{"b": 1, "a": map[string]any{"x": 1}}, 4)
	ev, skipped, last := a.Since(0, 10)
	if len(ev) != 2 || skipped != 0 || last != 2 || ev[0].Seq != 1 || ev[0].Method != "lockDoor" || ev[0].DurationMs != 30 ||
		ev[1].Kind != KindDesired || strings.Join(ev[1].Keys, ",") != "a,b" || ev[1].Version != 4 {
		t.Errorf("events %+v, skipped %d, last %d", ev, skipped, last)
	}
	if ev, _, _ := a.Since(2, 10); len(ev) != 0 {
		t.Errorf("after the newest: %v", ev)
	}

	// More events than the ring holds: the oldest are gone and counted as skipped; a small
	// max returns the newest.
	long := strings.Repeat("é", 200)
	big := map[string]any{}
	for i := range 50 {
		big[fmt.Sprint("k", i)] = i
	}
	for i := range ActivityCapacity + 500 {
		a.Twin(KindReported, SourceDevice, long, big, int64(i))
	}
	ev, skipped, last = a.Since(0, ActivityCapacity*2)
	if len(ev) != ActivityCapacity || last != ActivityCapacity+502 || skipped != 502 || ev[0].Seq != 503 || ev[len(ev)-1].Seq != last {
		t.Errorf("ring: %d events, skipped %d, last %d, first seq %d", len(ev), skipped, last, ev[0].Seq)
	}
	if e := ev[0]; len(e.DeviceID) > maxEventText+len("…") || len(e.Keys) != maxEventKeys || e.KeyN != 50 {
		t.Errorf("bounds: id %d bytes, %d keys of %d", len(e.DeviceID), len(e.Keys), e.KeyN)
	}
	ev, skipped, _ = a.Since(last-10, 3)
	if len(ev) != 3 || skipped != 7 || ev[2].Seq != last {
		t.Errorf("newest 3 of 10: %d, skipped %d", len(ev), skipped)
	}
	if tot := a.Totals(); tot[KindMethod] != 1 || tot[KindDesired] != 1 || tot[KindReported] != ActivityCapacity+500 {
		t.Errorf("totals %v", tot)
	}
}

// The event stream sends a live message at once, then one a second, and ends when the
// dashboard closes.
func TestEventsStreamEndsOnClose(t *testing.T) {
	s := newTestServer(t, nil, nil)
	s.opts.Activity.Method(SourceREST, "d1", "m", 200, "", 0)
	srv := httptest.NewTLSServer(s.Handler())
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/ui/api/events?after=0", nil)
	req.AddCookie(&http.Cookie{Name: CookieName, Value: testToken})
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	buf := make([]byte, 64<<10)
	var got strings.Builder
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(got.String(), "\n\n"+"event: live") && time.Now().Before(deadline) {
		n, err := res.Body.Read(buf)
		got.Write(buf[:n])
		if err != nil {
			break
		}
	}
	msg := got.String()
	i := strings.Index(msg, "data: ")
	if i < 0 {
		t.Fatalf("no message in %q", msg)
	}
	var m liveMessage
	if err := json.Unmarshal([]byte(strings.SplitN(msg[i+len("data: "):], "\n", 2)[0]), &m); err != nil {
		t.Fatal(err)
	}
	if m.Summary.Devices != 7 || m.Summary.Connected != 5 || len(m.Activity) != 1 || m.Activity[0].DeviceID != "d1" {
		t.Errorf("message %+v", m)
	}
	s.Close()
	done := make(chan error, 1)
	go func() {
		for {
			if _, err := res.Body.Read(buf); err != nil {
				done <- err
				return
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the stream did not end after Close")
	}
}
