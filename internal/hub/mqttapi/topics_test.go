package mqttapi

import (
	"context"
	"crypto/tls"
	"net"
	"testing"
	"time"
)

func TestFilterMatches(t *testing.T) {
	for _, c := range []struct {
		filter, topic string
		want          bool
	}{
		{"$iothub/methods/POST/#", "$iothub/methods/POST/lockDoor/?$rid=1", true},
		{"$iothub/methods/POST/#", "$iothub/methods/POST", true}, // "a/#" matches "a"
		{"$iothub/methods/POST/lockDoor/#", "$iothub/methods/POST/reboot/?$rid=1", false},
		{"$iothub/twin/res/#", "$iothub/twin/res/204/?$rid=1&$version=2", true},
		{"$iothub/twin/PATCH/properties/desired/#", "$iothub/twin/PATCH/properties/desired/?$version=3", true},
		{"$iothub/twin/res/#", "$iothub/twin/PATCH/properties/desired/?$version=3", false},
		{"a/+/c", "a/b/c", true},
		{"a/+/c", "a/b/d", false},
		{"a/b", "a/b/c", false},
		{"a/b/c", "a/b", false},
		{"#", "anything/at/all", true},
	} {
		if got := filterMatches(c.filter, c.topic); got != c.want {
			t.Errorf("filterMatches(%q, %q) = %v", c.filter, c.topic, got)
		}
	}
}

func TestClassifyPublish(t *testing.T) {
	for _, c := range []struct {
		topic string
		want  topicKind
	}{
		{"devices/d1/messages/events/", topicTelemetry},
		{"devices/d1/messages/events", topicTelemetry},
		{"devices/d1/messages/events/%24.mid=m1&alert=no", topicTelemetry},
		{"devices/d2/messages/events/", topicDenied},
		{"devices/d1/messages/devicebound/x", topicDenied},
		{"$iothub/methods/res/200/?$rid=1", topicMethodResponse},
		{"$iothub/twin/GET/?$rid=1", topicTwinGet},
		{"$iothub/twin/PATCH/properties/reported/?$rid=1", topicTwinReported},
		{"$iothub/twin/PATCH/properties/desired/?$version=1", topicDenied},
		{"$iothub/twin/res/200/?$rid=1", topicDenied},
		{"$iothub/methods/POST/x/?$rid=1", topicDenied},
	} {
		if got := classifyPublish("d1", c.topic); got != c.want {
			t.Errorf("classifyPublish(%q) = %v, want %v", c.topic, got, c.want)
		}
	}
}

func TestParseRequest(t *testing.T) {
	r, ok := parseRequest("$iothub/methods/res/404/?$rid=a%2Fb", methodsRes, true)
	if !ok || r.status != 404 || r.rid != "a%2Fb" || !r.hasRID {
		t.Errorf("method response: %+v %v", r, ok)
	}
	r, ok = parseRequest("$iothub/methods/res/200?$rid=7", methodsRes, true)
	if !ok || r.status != 200 || r.rid != "7" {
		t.Errorf("method response without slash: %+v %v", r, ok)
	}
	if _, ok := parseRequest("$iothub/methods/res/abc/?$rid=7", methodsRes, true); ok {
		t.Error("non-integer status accepted")
	}
	r, ok = parseRequest("$iothub/twin/PATCH/properties/reported/?$rid=1f&$version=12", twinReported, false)
	if !ok || r.rid != "1f" || !r.hasVersion || r.version != 12 {
		t.Errorf("reported patch: %+v %v", r, ok)
	}
	if _, ok := parseRequest("$iothub/twin/PATCH/properties/reported/?$rid=1&$version=x", twinReported, false); ok {
		t.Error("non-integer $version accepted")
	}
	r, ok = parseRequest("$iothub/twin/GET/", twinGET, false)
	if !ok || r.hasRID {
		t.Errorf("GET without rid: %+v %v", r, ok)
	}
}

type activityRegistry struct {
	Registry // nil: only RecordActivity is used
	calls    []time.Time
}

func (r *activityRegistry) RecordActivity(_ string, at time.Time) error {
	r.calls = append(r.calls, at)
	return nil
}

// Device traffic reaches lastActivityTime at most once a minute (connecting already set it).
func TestRecordActivityRateLimit(t *testing.T) {
	reg := &activityRegistry{}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := t0
	ss := &session{s: &Server{opts: Options{Registry: reg, Now: func() time.Time { return now }}}, id: "d1"}
	for _, d := range []time.Duration{0, 30 * time.Second, 61 * time.Second, 62 * time.Second, 200 * time.Second} {
		now = t0.Add(d)
		ss.recordActivity()
	}
	if len(reg.calls) != 2 || !reg.calls[0].Equal(t0.Add(61*time.Second)) || !reg.calls[1].Equal(t0.Add(200*time.Second)) {
		t.Errorf("RecordActivity calls = %v", reg.calls)
	}
}

func TestStartValidatesOptions(t *testing.T) {
	for _, o := range []Options{
		{},
		{HostName: "localhost"},
		{HostName: "localhost", TLSConfig: &tls.Config{}},
		{HostName: "localhost", TLSConfig: &tls.Config{}, Registry: &activityRegistry{}},
	} {
		if s, err := Start(context.Background(), o); err == nil {
			s.Close()
			t.Errorf("Start(%+v) succeeded", o)
		}
	}
}

// Cancelling Start's context closes the endpoint (and Close stays safe to call).
func TestStartContextCloses(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	tlsCfg, _ := testTLS(t)
	s, err := Start(ctx, Options{HostName: testHost, TLSConfig: tlsCfg, Addr: "127.0.0.1:0", Registry: e.reg, Link: e.link})
	if err != nil {
		t.Fatal(err)
	}
	addr := s.Addr().String()
	cancel()
	waitFor(t, "Close started", s.closed.Load)
	// Close is idempotent and returns once the first Close (run by the context) has finished.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatal("endpoint still accepting connections after its context ended")
	}
}
