package corpus

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/iotplan/iotplan/internal/hub"
	"github.com/iotplan/iotplan/internal/hub/hubtest"
	"github.com/iotplan/iotplan/internal/hub/mqttapi"
	"github.com/iotplan/iotplan/internal/hub/registry"
	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/sas"
)

// corpusFleet: corpus-1 never connects (so nothing but a case writes its twin: the simulated
// devices echo desired properties into reported ones, which would move the twin's version
// under a case's feet); corpus-m is online and answers the direct method "ping".
const corpusFleet = `
device "corpus-1" {
  offline = true
  tags    = { site = "corpus" }
  desired = { mode = "auto" }
}
device "corpus-m" {
  offline = false
  method "ping" {
    status  = 200
    payload = { ok = true }
  }
}
`

// mqttDevices are registered for the MQTT cases (real connections, not simulated devices).
var mqttDevices = []string{"mq-1", "mq-2", "mq-check"}

// corpusHub is the one hub the REST, query and MQTT cases share.
type corpusHub struct {
	h    *hub.Hub
	hc   *http.Client
	keys map[string]string // device id → primary key
}

// corpusConnectTimeout is the MQTT endpoint's CONNECT deadline in the corpus hub, short so
// that raw-connect-truncated sees the connection closed within mqttWait.
const corpusConnectTimeout = 2 * time.Second

func startCorpusHub(t *testing.T) *corpusHub {
	t.Helper()
	// hub.Options has no field for it: the endpoint reads its default when the hub starts
	// (this package's tests start no other hub meanwhile).
	old := mqttapi.DefaultConnectTimeout
	mqttapi.DefaultConnectTimeout = corpusConnectTimeout
	t.Cleanup(func() { mqttapi.DefaultConnectTimeout = old })
	h, _ := hubtest.StartWith(t, hub.Options{MQTTAddr: "127.0.0.1:0"}, corpusFleet)
	ch := &corpusHub{h: h, keys: map[string]string{},
		hc: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: h.RootCAs(), MinVersion: tls.VersionTLS12}}}}
	t.Cleanup(ch.hc.CloseIdleConnections)
	for _, id := range append([]string{"corpus-1"}, mqttDevices...) {
		if id != "corpus-1" {
			if _, err := h.Registry().CreateOrUpdateDevice(registry.Device{DeviceID: id}, ""); err != nil {
				t.Fatal(err)
			}
		}
		cs, err := h.DeviceConnectionString(id)
		if err != nil {
			t.Fatal(err)
		}
		p, err := sas.ParseConnectionString(cs)
		if err != nil {
			t.Fatal(err)
		}
		ch.keys[id] = p.SharedAccessKey
	}
	return ch
}

// policyToken is a service token of policy for the whole hub.
func (ch *corpusHub) policyToken(t *testing.T, policy string, expiry time.Time) string {
	t.Helper()
	for _, p := range ch.h.Policies() {
		if p.Name == policy {
			tok, err := sas.NewToken(ch.h.HostName(), p.PrimaryKey, p.Name, expiry)
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}
	}
	t.Fatalf("no policy %q", policy)
	return ""
}

// deviceToken is a device-key token for resource, signed with device's key.
func (ch *corpusHub) deviceToken(t *testing.T, resource, device string, expiry time.Time) string {
	t.Helper()
	tok, err := sas.NewToken(resource, ch.keys[device], "", expiry)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// funcs are the template functions of hub cases.
func (ch *corpusHub) funcs(t *testing.T) template.FuncMap {
	hour := time.Now().Add(time.Hour)
	return template.FuncMap{
		"host": ch.h.HostName,
		// sas: a valid device token for device (scope host/devices/{device}).
		"sas": func(device string) string { return ch.deviceToken(t, ch.h.HostName()+"/devices/"+device, device, hour) },
		// sasScope: a token for resource signed with device's key, valid for seconds.
		"sasScope": func(resource, device string, seconds int) string {
			return ch.deviceToken(t, resource, device, time.Now().Add(time.Duration(seconds)*time.Second))
		},
		"policy": func(name string) string { return ch.policyToken(t, name, hour) },
		"key":    func(device string) string { return ch.keys[device] },
	}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends one request to the hub's REST API; rawQuery is used as it is.
func (ch *corpusHub) do(t *testing.T, method, path, rawQuery string, hdr http.Header, body []byte) (response, error) {
	t.Helper()
	u := "https://" + ch.h.HostName() + path
	if rawQuery != "" {
		u += "?" + rawQuery
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		return response{}, err
	}
	req.Header = hdr
	res, err := ch.hc.Do(req)
	if err != nil {
		return response{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return response{res.StatusCode, res.Header, b}, err
}

// get is an authorized GET (iothubowner) with the current api-version.
func (ch *corpusHub) get(t *testing.T, path string) response {
	t.Helper()
	r, err := ch.do(t, "GET", path, "api-version="+hubapi.APIVersion, http.Header{"Authorization": {ch.policyToken(t, "iothubowner", time.Now().Add(time.Hour))}}, nil)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return r
}

// stillServes: after a case, a valid read and a valid query succeed.
func (ch *corpusHub) stillServes(t *testing.T) {
	t.Helper()
	if r := ch.get(t, "/twins/corpus-1"); r.status != 200 {
		t.Fatalf("follow-up GET /twins/corpus-1: %d %s", r.status, r.body)
	}
	hdr := http.Header{"Authorization": {ch.policyToken(t, "iothubowner", time.Now().Add(time.Hour))}, "Content-Type": {"application/json"}}
	r, err := ch.do(t, "POST", "/devices/query", "api-version="+hubapi.APIVersion, hdr, []byte(`{"query":"SELECT COUNT() AS n FROM devices"}`))
	if err != nil || r.status != 200 {
		t.Fatalf("follow-up query: %v %d %s", err, r.status, r.body)
	}
}

// snapshot reads what @unchanged and @absent name: "twin:ID", "device:ID", "module:ID/MID",
// "job:ID", "config:ID", "jobs" (the job list). Volatile members (times a read moves) are
// dropped, so equal snapshots mean nothing was written.
func (ch *corpusHub) snapshot(t *testing.T, what string) (int, any) {
	t.Helper()
	kind, id, _ := strings.Cut(what, ":")
	var path string
	switch kind {
	case "twin":
		path = "/twins/" + url.PathEscape(id)
	case "device":
		path = "/devices/" + url.PathEscape(id)
	case "module":
		d, m, _ := strings.Cut(id, "/")
		path = "/devices/" + url.PathEscape(d) + "/modules/" + url.PathEscape(m)
	case "job":
		path = "/jobs/v2/" + url.PathEscape(id)
	case "config":
		path = "/configurations/" + url.PathEscape(id)
	case "jobs":
		path = "/jobs/v2/query"
	case "devices":
		path = "/devices"
	default:
		t.Fatalf("unknown snapshot %q", what)
	}
	r := ch.get(t, path)
	var v any
	if r.status == 200 {
		if err := json.Unmarshal(r.body, &v); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		dropVolatile(v)
	}
	return r.status, v
}

func dropVolatile(v any) {
	switch x := v.(type) {
	case map[string]any:
		for _, k := range []string{"lastActivityTime", "connectionStateUpdatedTime", "connectionState"} {
			delete(x, k)
		}
		for _, e := range x {
			dropVolatile(e)
		}
	case []any:
		for _, e := range x {
			dropVolatile(e)
		}
	}
}

// stateChecks takes the @unchanged snapshots before a case and returns the check to run after.
func (ch *corpusHub) stateChecks(t *testing.T, c *testCase) func() {
	t.Helper()
	type snap struct {
		what   string
		status int
		v      any
	}
	var before []snap
	for _, w := range c.dirs["unchanged"] {
		s, v := ch.snapshot(t, w)
		if s != 200 {
			t.Fatalf("%s: @unchanged %s: GET answered %d before the case", c.path, w, s)
		}
		before = append(before, snap{w, s, v})
	}
	return func() {
		t.Helper()
		for _, b := range before {
			s, v := ch.snapshot(t, b.what)
			if s != b.status || !reflect.DeepEqual(v, b.v) {
				bj, _ := json.Marshal(b.v)
				aj, _ := json.Marshal(v)
				t.Errorf("%s: %s changed:\nbefore %s\nafter  %s", c.path, b.what, bj, aj)
			}
		}
		for _, w := range c.dirs["absent"] {
			if s, v := ch.snapshot(t, w); s != 404 {
				t.Errorf("%s: %s exists after a rejected request (GET %d): %v", c.path, w, s, v)
			}
		}
	}
}

// checkExpect compares a response with "@expect STATUS [ErrorName]": the status, the
// iothub-errorcode header, and for errors a JSON envelope with a Message.
func checkExpect(t *testing.T, c *testCase, r response) {
	t.Helper()
	want := strings.Fields(c.dir("expect"))
	if len(want) == 0 {
		t.Fatalf("%s: no @expect", c.path)
	}
	status, err := strconv.Atoi(want[0])
	if err != nil {
		t.Fatalf("%s: @expect %q: want a status", c.path, c.dir("expect"))
	}
	name := ""
	if len(want) > 1 {
		name = want[1]
	}
	got := r.header.Get(hubapi.HeaderErrorCode)
	if r.status != status || got != name {
		t.Errorf("%s: got %d %q, want %d %q; body %.300s", c.path, r.status, got, status, name, r.body)
		return
	}
	if status >= 400 && name != "" {
		var env hubapi.ErrorBody
		if err := json.Unmarshal(r.body, &env); err != nil || env.Message == "" {
			t.Errorf("%s: error body is not the hub's envelope: %.300s", c.path, r.body)
		}
	}
	for _, m := range c.dirs["message"] {
		if !strings.Contains(string(r.body), m) {
			t.Errorf("%s: body does not mention %q: %.300s", c.path, m, r.body)
		}
	}
}

// TestHubCorpus runs the REST, query and MQTT cases against one hub.
func TestHubCorpus(t *testing.T) {
	ch := startCorpusHub(t)
	t.Run("rest", func(t *testing.T) {
		for _, c := range loadCases(t, "rest") {
			t.Run(c.name, func(t *testing.T) { safely(t, c, func() { ch.runREST(t, c) }) })
		}
	})
	t.Run("query", func(t *testing.T) {
		for _, c := range loadCases(t, "query") {
			t.Run(c.name, func(t *testing.T) { safely(t, c, func() { ch.runQuery(t, c) }) })
		}
	})
	t.Run("mqtt", func(t *testing.T) {
		for _, c := range loadCases(t, "mqtt") {
			t.Run(c.name, func(t *testing.T) { safely(t, c, func() { ch.runMQTT(t, c) }) })
		}
	})
}

// runREST: "@request METHOD PATH[?QUERY]" (api-version added unless the query has one or
// "@api-version none"), "@header Name: value", "@auth owner|none|policy:NAME|device:ID|
// expired|raw:TEXT", the body is the input (none if empty).
func (ch *corpusHub) runREST(t *testing.T, c *testCase) {
	funcs := ch.funcs(t)
	method, target, ok := strings.Cut(renderString(t, c.dir("request"), funcs, nil), " ")
	if !ok {
		t.Fatalf("%s: @request METHOD PATH", c.path)
	}
	path, rawQuery, _ := strings.Cut(target, "?")
	switch v := c.dir("api-version"); {
	case v == "none":
	case v != "":
		rawQuery = joinQuery(rawQuery, "api-version="+v)
	case !strings.Contains(rawQuery, "api-version="):
		rawQuery = joinQuery(rawQuery, "api-version="+hubapi.APIVersion)
	}
	hdr := http.Header{"Content-Type": {"application/json; charset=utf-8"}}
	hour := time.Now().Add(time.Hour)
	switch a := c.dir("auth"); {
	case a == "" || a == "owner":
		hdr.Set("Authorization", ch.policyToken(t, "iothubowner", hour))
	case a == "none":
	case a == "expired":
		hdr.Set("Authorization", ch.policyToken(t, "iothubowner", time.Now().Add(-time.Minute)))
	case strings.HasPrefix(a, "policy:"):
		hdr.Set("Authorization", ch.policyToken(t, strings.TrimPrefix(a, "policy:"), hour))
	case strings.HasPrefix(a, "device:"):
		id := strings.TrimPrefix(a, "device:")
		hdr.Set("Authorization", ch.deviceToken(t, ch.h.HostName()+"/devices/"+id, id, hour))
	case strings.HasPrefix(a, "raw:"):
		hdr.Set("Authorization", renderString(t, strings.TrimPrefix(a, "raw:"), funcs, nil))
	default:
		t.Fatalf("%s: @auth %q", c.path, a)
	}
	for _, h := range c.dirs["header"] {
		k, v, _ := strings.Cut(h, ":")
		if strings.TrimSpace(v) == "" {
			hdr.Del(strings.TrimSpace(k))
			continue
		}
		hdr.Set(strings.TrimSpace(k), renderString(t, strings.TrimSpace(v), funcs, nil))
	}
	var body []byte
	if in := c.render(t, funcs, nil); len(bytes.TrimSpace(in)) > 0 {
		body = bytes.TrimSuffix(in, []byte("\n"))
	}
	check := ch.stateChecks(t, c)
	r, err := ch.do(t, method, path, rawQuery, hdr, body)
	if err != nil {
		t.Fatalf("%s: %s %s: %v", c.path, method, path, err)
	}
	checkExpect(t, c, r)
	check()
	ch.stillServes(t)
}

func joinQuery(q, kv string) string {
	if q == "" {
		return kv
	}
	return q + "&" + kv
}

// runQuery: the input is the query text (sent as {"query": text}) or, with @raw-body, the
// whole body; "@page-size N" and "@continuation TOKEN" set the paging headers.
func (ch *corpusHub) runQuery(t *testing.T, c *testCase) {
	funcs := ch.funcs(t)
	in := strings.TrimSuffix(string(c.render(t, funcs, nil)), "\n")
	body := []byte(in)
	if _, raw := c.dirs["raw-body"]; !raw {
		body, _ = json.Marshal(map[string]string{"query": in})
	}
	hdr := http.Header{"Content-Type": {"application/json; charset=utf-8"},
		"Authorization": {ch.policyToken(t, "iothubowner", time.Now().Add(time.Hour))}}
	if v := c.dirs["page-size"]; len(v) > 0 {
		hdr.Set(hubapi.HeaderMaxItemCount, v[0])
	}
	if v := c.dirs["continuation"]; len(v) > 0 {
		hdr.Set(hubapi.HeaderContinuation, renderString(t, v[0], funcs, nil))
	}
	for _, h := range c.dirs["header"] {
		k, v, _ := strings.Cut(h, ":")
		hdr.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	r, err := ch.do(t, "POST", "/devices/query", "api-version="+hubapi.APIVersion, hdr, body)
	if err != nil {
		t.Fatalf("%s: %v", c.path, err)
	}
	checkExpect(t, c, r)
	ch.stillServes(t)
}
