package mqttapi

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/iotplan/iotplan/internal/hub/huberr"
	"github.com/iotplan/iotplan/internal/hubapi"
)

type msg struct {
	topic string
	body  []byte
}

// collect subscribes and returns a channel of received messages.
func collect(t *testing.T, c paho.Client, filter string) <-chan msg {
	t.Helper()
	ch := make(chan msg, 16)
	tok := c.Subscribe(filter, 0, func(_ paho.Client, m paho.Message) { ch <- msg{m.Topic(), m.Payload()} })
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", filter, tok.Error())
	}
	if code := tok.(*paho.SubscribeToken).Result()[filter]; code > 1 {
		t.Fatalf("subscribe %s refused: %#x", filter, code)
	}
	return ch
}

func next(t *testing.T, ch <-chan msg) msg {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no message")
		return msg{}
	}
}

func publish(t *testing.T, c paho.Client, topic string, qos byte, body string) {
	t.Helper()
	tok := c.Publish(topic, qos, false, body)
	if !tok.WaitTimeout(5 * time.Second) {
		t.Fatalf("publish %s: timeout", topic)
	}
}

// A device may subscribe and publish only its own topics.
func TestACL(t *testing.T) {
	e := newEnv(t)
	keyA, _ := e.addDevice("devA", "")
	keyB, _ := e.addDevice("devB", "")
	a := e.rawDevice("devA", keyA, true)
	b := e.rawDevice("devB", keyB, true)

	filters := map[string]byte{
		"devices/devB/messages/devicebound/#":     0x80,
		"devices/+/messages/devicebound/#":        0x80,
		"devices/devA/messages/events/#":          0x80,
		"#":                                       0x80,
		"$iothub/#":                               0x80,
		"$iothub/+/POST/#":                        0x80,
		"$SYS/#":                                  0x80,
		"devices/devA/messages/devicebound/#":     1,
		"$iothub/methods/POST/#":                  1,
		"$iothub/twin/res/#":                      1,
		"$iothub/twin/PATCH/properties/desired/#": 1,
	}
	req := map[string]byte{}
	for f := range filters {
		req[f] = 1
	}
	tok := a.SubscribeMultiple(req, func(paho.Client, paho.Message) {})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	for f, code := range tok.(*paho.SubscribeToken).Result() {
		if code != filters[f] {
			t.Errorf("SUBACK for %q = %#x, want %#x", f, code, filters[f])
		}
	}

	// Device B listens for twin responses; device A tries to inject one: the publish closes
	// A's connection, and B's next twin response is the answer to its own GET.
	bRes := collect(t, b, "$iothub/twin/res/#")
	publish(t, a, "$iothub/twin/res/200/?$rid=1", 0, `{"desired":{"spoofed":true}}`)
	waitFor(t, "devA disconnected", func() bool { return !a.IsConnectionOpen() })
	publish(t, b, "$iothub/twin/GET/?$rid=b1", 0, "")
	if m := next(t, bRes); m.topic != "$iothub/twin/res/200/?$rid=b1" || strings.Contains(string(m.body), "spoofed") {
		t.Fatalf("B received %s %s", m.topic, m.body)
	}
	if st := e.srv.Stats(); st.Denied < 7+1 {
		t.Errorf("stats = %+v", st)
	}
}

// A publish outside the device's own topics closes its connection whatever the QoS, as IoT Hub
// does; the device may reconnect, and other devices are not affected.
func TestForbiddenPublishDisconnects(t *testing.T) {
	e := newEnv(t)
	keyA, _ := e.addDevice("devA", "")
	keyB, _ := e.addDevice("devB", "")
	b := e.rawDevice("devB", keyB, true)
	for _, c := range []struct {
		topic string
		qos   byte
	}{
		{"devices/devB/messages/events/", 0},           // another device's telemetry
		{"devices/devB/messages/events/", 1},           // the same at QoS 1
		{"devices/devA/messages/devicebound/x", 0},     // cloud-to-device is the hub's to send
		{"$iothub/twin/res/200/?$rid=1", 0},            // a response only the hub sends
		{"$iothub/methods/POST/reboot/?$rid=1", 0},     // a request only the hub sends
		{"no/such/topic", 0},                           // not an IoT Hub topic
		{"devices/devA/messages/events/+", 0},          // wildcards are not topic names
		{"$SYS/broker/clients", 0},                     // the broker's topics
		{"devices/devA/messages/eventsX", 0},           // a prefix is not the topic
		{"devices/devA/messages/events/\x00hidden", 0}, // mochi refuses NUL; the connection ends either way
	} {
		lost := make(chan error, 1)
		a := e.rawDevice("devA", keyA, true, func(o *paho.ClientOptions) {
			o.SetConnectionLostHandler(func(_ paho.Client, err error) { lost <- err })
		})
		a.Publish(c.topic, c.qos, false, `{}`)
		select {
		case <-lost:
		case <-time.After(5 * time.Second):
			t.Fatalf("publish to %q (QoS %d) did not close the connection", c.topic, c.qos)
		}
		waitFor(t, "devA's session ended", func() bool { return !e.link.Connected("devA") })
	}
	// The device's own topics still work on a new connection, and devB never lost its own.
	a := e.rawDevice("devA", keyA, true)
	publish(t, a, "devices/devA/messages/events/", 1, `{}`)
	publish(t, a, "devices/devA/messages/events/?$.ct=application%2Fjson", 0, `{}`)
	waitFor(t, "own telemetry counted", func() bool { return e.srv.Stats().Telemetry == 2 })
	if !a.IsConnectionOpen() || !b.IsConnectionOpen() {
		t.Errorf("connections closed: devA %v, devB %v", !a.IsConnectionOpen(), !b.IsConnectionOpen())
	}
}

// Twin requests over raw MQTT: $rid echoed byte for byte, $version on 204, error bodies.
func TestTwinRequestsRaw(t *testing.T) {
	e := newEnv(t)
	key, _ := e.addDevice("d1", "")
	c := e.rawDevice("d1", key, true)
	res := collect(t, c, "$iothub/twin/res/#")

	publish(t, c, "$iothub/twin/GET/?$rid=6e1b3a2c-0f4d-4b9e-9d53-0c8f7a1b2c3d", 0, " ")
	m := next(t, res)
	if m.topic != "$iothub/twin/res/200/?$rid=6e1b3a2c-0f4d-4b9e-9d53-0c8f7a1b2c3d" {
		t.Errorf("GET response topic %q", m.topic)
	}
	var got map[string]map[string]any
	if err := json.Unmarshal(m.body, &got); err != nil || len(got) != 2 || got["desired"]["$version"] != float64(1) || len(got["reported"]) != 1 {
		t.Errorf("GET body %s (%v)", m.body, err)
	}

	type errBody struct {
		ErrorCode    int    `json:"errorCode"`
		TrackingID   string `json:"trackingId"`
		Message      string `json:"message"`
		TimestampUTC string `json:"timestampUtc"`
	}
	cases := []struct {
		rid, query, body string
		wantTopic        string
		wantCode         int
	}{
		{"a%2Fb", "", `{"$bad":1}`, "$iothub/twin/res/400/?$rid=a%2Fb", 400004},
		{"2", "", `{"a":{"b.c":1}}`, "$iothub/twin/res/400/?$rid=2", 400004},
		{"3", "", `{not json`, "$iothub/twin/res/400/?$rid=3", 400006},
		{"4", "", `[1,2]`, "$iothub/twin/res/400/?$rid=4", 400004},
		{"5", "&$version=99", `{"x":1}`, "$iothub/twin/res/412/?$rid=5", 412001},
		{"6", "&$version=1", `{"x":1}`, "$iothub/twin/res/204/?$rid=6&$version=2", 0},
		{"7", "", `{"x":null,"y":{"z":true}}`, "$iothub/twin/res/204/?$rid=7&$version=3", 0},
	}
	for _, cs := range cases {
		publish(t, c, "$iothub/twin/PATCH/properties/reported/?$rid="+cs.rid+cs.query, 1, cs.body)
		m := next(t, res)
		if m.topic != cs.wantTopic {
			t.Errorf("rid %s: topic %q, want %q", cs.rid, m.topic, cs.wantTopic)
		}
		if cs.wantCode == 0 {
			if len(m.body) != 0 {
				t.Errorf("rid %s: 204 with body %s", cs.rid, m.body)
			}
			continue
		}
		var eb errBody
		if err := json.Unmarshal(m.body, &eb); err != nil || eb.ErrorCode != cs.wantCode || eb.Message == "" || len(eb.TrackingID) != 32 || !strings.HasSuffix(eb.TimestampUTC, "Z") {
			t.Errorf("rid %s: error body %s, want errorCode %d", cs.rid, m.body, cs.wantCode)
		}
	}
	twin, _ := e.reg.GetTwin("d1")
	rep := twin["properties"].(map[string]any)["reported"].(map[string]any)
	if _, has := rep["x"]; has || rep["y"].(map[string]any)["z"] != true || rep["$version"] != float64(3) {
		t.Errorf("reported = %v", rep)
	}
}

// A second connection for the same device id takes the session over: the first is closed,
// and with clean=false the new one keeps the method subscription.
func TestSessionTakeover(t *testing.T) {
	e := newEnv(t)
	key, _ := e.addDevice("d1", "")
	lost := make(chan error, 1)
	first := e.rawDevice("d1", key, false, func(o *paho.ClientOptions) {
		o.SetConnectionLostHandler(func(_ paho.Client, err error) { lost <- err })
	})
	if tok := first.Subscribe("$iothub/methods/POST/#", 0, nil); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	requests := make(chan msg, 4)
	second := e.rawDevice("d1", key, false, func(o *paho.ClientOptions) {
		// No SUBSCRIBE from this client: the inherited session delivers to the default handler.
		o.SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { requests <- msg{m.Topic(), m.Payload()} })
	})
	select {
	case <-lost:
	case <-time.After(5 * time.Second):
		t.Fatal("first connection was not closed")
	}
	// The new session joins link just after its CONNACK.
	waitFor(t, "second session established", func() bool { return e.srv.Stats().Connects == 2 })
	go func() {
		select {
		case m := <-requests:
			_, rid, _ := strings.Cut(m.topic, "?$rid=")
			second.Publish("$iothub/methods/res/201/?$rid="+rid, 0, false, `{"from":"second"}`)
		case <-time.After(10 * time.Second):
		}
	}()
	res, err := e.link.Invoke(ctxT(t), "d1", hubapi.CloudToDeviceMethod{MethodName: "reboot", ResponseTimeoutInSeconds: 5})
	if err != nil || res.Status != 201 || string(res.Payload) != `{"from":"second"}` {
		t.Fatalf("invoke after takeover = %+v, %v", res, err)
	}
	// The old session's server side ends asynchronously after its client saw the close.
	waitFor(t, "one session", func() bool { return e.srv.Stats().Connected == 1 })
	twin, _ := e.reg.GetTwin("d1")
	if twin["connectionState"] != "Connected" || !e.link.Connected("d1") {
		t.Errorf("after takeover: connectionState %v, link connected %v", twin["connectionState"], e.link.Connected("d1"))
	}
}

// Method requests carry a JSON body ("null" for no payload) and a fresh $rid; answers with an
// empty body become null; answers for unknown ids are ignored.
func TestMethodWireRaw(t *testing.T) {
	e := newEnv(t)
	key, _ := e.addDevice("d1", "")
	c := e.rawDevice("d1", key, true)
	reqs := collect(t, c, "$iothub/methods/POST/#")
	publish(t, c, "$iothub/methods/res/200/?$rid=nosuch", 0, `{}`) // ignored
	type result struct {
		res hubapi.CloudToDeviceMethodResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := e.link.Invoke(ctxT(t), "d1", hubapi.CloudToDeviceMethod{MethodName: "lockDoor", ResponseTimeoutInSeconds: 5})
		done <- result{r, err}
	}()
	m := next(t, reqs)
	if !strings.HasPrefix(m.topic, "$iothub/methods/POST/lockDoor/?$rid=") || string(m.body) != "null" {
		t.Fatalf("request %q %q", m.topic, m.body)
	}
	rid := strings.TrimPrefix(m.topic, "$iothub/methods/POST/lockDoor/?$rid=")
	publish(t, c, "$iothub/methods/res/200/?$rid="+rid, 1, "")
	r := <-done
	if r.err != nil || r.res.Status != 200 || string(r.res.Payload) != "null" {
		t.Fatalf("result %+v %v", r.res, r.err)
	}
	// A device that disconnects while a call waits: the call ends at once as a gateway timeout.
	go func() {
		r, err := e.link.Invoke(ctxT(t), "d1", hubapi.CloudToDeviceMethod{MethodName: "slow", ResponseTimeoutInSeconds: 30})
		done <- result{r, err}
	}()
	next(t, reqs)
	start := time.Now()
	c.Disconnect(0)
	r = <-done
	if !huberr.Is(r.err, huberr.GatewayTimeout) || time.Since(start) > 5*time.Second {
		t.Fatalf("call to a device that left: %+v %v", r.res, r.err)
	}
}
