package corpus

import (
	"crypto/tls"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	pahopackets "github.com/eclipse/paho.mqtt.golang/packets"
)

// mqttWait bounds every wait of an MQTT case; cases that expect nothing to happen wait
// quietWait.
const (
	mqttWait  = 5 * time.Second
	quietWait = 700 * time.Millisecond
)

func (ch *corpusHub) mqttTLS() *tls.Config {
	return &tls.Config{RootCAs: ch.h.RootCAs(), ServerName: "localhost", MinVersion: tls.VersionTLS12}
}

// pahoConnect makes a real paho MQTT 3.1.1 client connection; lost is closed when the hub
// drops it.
func (ch *corpusHub) pahoConnect(client, user, pass string) (paho.Client, <-chan struct{}, error) {
	lost := make(chan struct{})
	o := paho.NewClientOptions()
	o.AddBroker("tls://" + ch.h.MQTTAddr().String())
	o.SetTLSConfig(ch.mqttTLS())
	o.SetProtocolVersion(4)
	o.SetClientID(client)
	o.SetUsername(user)
	o.SetPassword(pass)
	o.SetCleanSession(true)
	o.SetAutoReconnect(false)
	o.SetConnectRetry(false)
	o.SetConnectTimeout(mqttWait)
	o.SetConnectionLostHandler(func(paho.Client, error) { close(lost) })
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(2 * mqttWait) {
		return nil, nil, errors.New("CONNECT timed out")
	}
	if err := tok.Error(); err != nil {
		return nil, nil, err
	}
	return c, lost, nil
}

// connackCode maps paho's CONNECT error to the CONNACK return code (MQTT 3.1.1 §3.2.2.3).
func connackCode(err error) int {
	if err == nil {
		return 0
	}
	for code, e := range pahopackets.ConnErrors {
		if code != 0 && e != nil && errors.Is(err, e) {
			return int(code)
		}
	}
	return -1
}

// twinGet publishes a twin GET and waits for its response's status.
func twinRequest(c paho.Client, res <-chan paho.Message, topic, payload string) (int, string, error) {
	tok := c.Publish(topic, 0, false, payload)
	if !tok.WaitTimeout(mqttWait) || tok.Error() != nil {
		return 0, "", errors.New("publish failed")
	}
	select {
	case m := <-res:
		rest := strings.TrimPrefix(m.Topic(), "$iothub/twin/res/")
		s, _, _ := strings.Cut(rest, "/")
		n, err := strconv.Atoi(s)
		return n, string(m.Payload()), err
	case <-time.After(mqttWait):
		return 0, "", errors.New("no twin response")
	}
}

func subscribeRes(c paho.Client) (<-chan paho.Message, error) {
	res := make(chan paho.Message, 16)
	tok := c.Subscribe("$iothub/twin/res/#", 0, func(_ paho.Client, m paho.Message) { res <- m })
	if !tok.WaitTimeout(mqttWait) || tok.Error() != nil {
		return nil, errors.New("subscribe to twin responses failed")
	}
	return res, nil
}

// runMQTT: "@connect CLIENT | USER | PASS" (default: mq-1 with a valid token), then
// "@subscribe FILTER" and "@publish QOS TOPIC" (payload = the input) in that order, or "@raw"
// (the input is hex bytes written on a bare TLS connection). "@expect connack N | suback N |
// closed | twin STATUS | open".
func (ch *corpusHub) runMQTT(t *testing.T, c *testCase) {
	funcs := ch.funcs(t)
	expect := strings.Fields(c.dir("expect"))
	if len(expect) == 0 {
		t.Fatalf("%s: no @expect", c.path)
	}
	check := ch.stateChecks(t, c)
	defer func() {
		check()
		ch.mqttStillServes(t)
		ch.stillServes(t)
	}()
	if _, raw := c.dirs["raw"]; raw {
		ch.runRaw(t, c, expect, strings.Join(strings.Fields(string(c.render(t, funcs, nil))), ""))
		return
	}
	client, user, pass := "mq-1", "{{host}}/mq-1/?api-version=2021-04-12", `{{sas "mq-1"}}`
	if v := c.dir("connect"); v != "" {
		parts := strings.Split(v, "|")
		if len(parts) != 3 {
			t.Fatalf("%s: @connect CLIENT | USER | PASS", c.path)
		}
		client, user, pass = strings.TrimSpace(parts[0]), strings.TrimSpace(parts[1]), strings.TrimSpace(parts[2])
	}
	client, user, pass = renderString(t, client, funcs, nil), renderString(t, user, funcs, nil), renderString(t, pass, funcs, nil)
	cl, lost, err := ch.pahoConnect(client, user, pass)
	if expect[0] == "connack" {
		if want, _ := strconv.Atoi(expect[1]); connackCode(err) != want {
			t.Errorf("%s: CONNECT: %v (CONNACK %d), want CONNACK %d", c.path, err, connackCode(err), want)
		}
		if cl != nil {
			cl.Disconnect(0)
		}
		return
	}
	if err != nil {
		t.Fatalf("%s: CONNECT: %v", c.path, err)
	}
	defer cl.Disconnect(0)
	var res <-chan paho.Message
	if expect[0] == "twin" || expect[0] == "open" {
		if res, err = subscribeRes(cl); err != nil {
			t.Fatal(err)
		}
	}
	var subResult byte
	for _, f := range c.dirs["subscribe"] {
		f = renderString(t, f, funcs, nil)
		tok := cl.Subscribe(f, 1, func(paho.Client, paho.Message) {})
		if !tok.WaitTimeout(mqttWait) {
			if expect[0] == "closed" {
				break
			}
			t.Fatalf("%s: SUBSCRIBE %q timed out", c.path, f)
		}
		subResult = tok.(*paho.SubscribeToken).Result()[f]
	}
	payload := strings.TrimSuffix(string(c.render(t, funcs, nil)), "\n")
	for _, p := range c.dirs["publish"] {
		qs, topic, _ := strings.Cut(p, " ")
		qos, _ := strconv.Atoi(qs)
		topic = renderString(t, topic, funcs, nil)
		if expect[0] == "twin" {
			status, body, err := twinRequest(cl, res, topic, payload)
			if want, _ := strconv.Atoi(expect[1]); err != nil || status != want {
				t.Errorf("%s: twin request: status %d %v, want %d; body %.200s", c.path, status, err, want, body)
			}
			continue
		}
		tok := cl.Publish(topic, byte(qos), false, payload)
		tok.WaitTimeout(mqttWait)
	}
	switch expect[0] {
	case "suback":
		if want, _ := strconv.ParseUint(expect[1], 0, 8); subResult != byte(want) {
			t.Errorf("%s: SUBACK %#x, want %#x", c.path, subResult, want)
		}
	case "closed":
		select {
		case <-lost:
		case <-time.After(mqttWait):
			t.Errorf("%s: the hub kept the connection open", c.path)
		}
	case "open":
		select {
		case <-lost:
			t.Errorf("%s: the hub closed the connection", c.path)
		case <-time.After(quietWait):
		}
		if status, body, err := twinRequest(cl, res, "$iothub/twin/GET/?$rid=open-check", ""); err != nil || status != 200 {
			t.Errorf("%s: twin GET on the same connection: %d %v %s", c.path, status, err, body)
		}
	case "twin":
	default:
		t.Fatalf("%s: @expect %q", c.path, c.dir("expect"))
	}
}

// runRaw writes bytes on a bare TLS connection to the MQTT endpoint: "@expect closed" (the
// hub closes it within mqttWait, whatever it answered first; a half-sent CONNECT is closed
// after corpusConnectTimeout), "@expect held" (no answer and still open after quietWait) or
// "@expect connack N".
func (ch *corpusHub) runRaw(t *testing.T, c *testCase, expect []string, hexBytes string) {
	b, err := hex.DecodeString(hexBytes)
	if err != nil {
		t.Fatalf("%s: @raw input is not hex: %v", c.path, err)
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: mqttWait}, "tcp", ch.h.MQTTAddr().String(), ch.mqttTLS())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	wait := mqttWait
	if expect[0] == "held" {
		wait = quietWait
	}
	conn.SetDeadline(time.Now().Add(wait))
	if _, err := conn.Write(b); err != nil && expect[0] != "closed" {
		t.Fatalf("%s: write: %v", c.path, err)
	}
	got, err := io.ReadAll(conn)
	var ne net.Error
	timedOut := errors.As(err, &ne) && ne.Timeout()
	switch expect[0] {
	case "closed":
		if timedOut {
			t.Errorf("%s: the hub kept the connection open (read % x)", c.path, got)
		}
	case "held":
		if !timedOut || len(got) > 0 {
			t.Errorf("%s: want the connection held open and unanswered, read % x, %v", c.path, got, err)
		}
	case "connack":
		want, _ := strconv.Atoi(expect[1])
		if len(got) < 4 || got[0] != 0x20 || int(got[3]) != want {
			t.Errorf("%s: read % x, want CONNACK %d", c.path, got, want)
		}
	default:
		t.Fatalf("%s: @expect %q with @raw", c.path, c.dir("expect"))
	}
}

// mqttStillServes: a valid device connects and reads its twin.
func (ch *corpusHub) mqttStillServes(t *testing.T) {
	t.Helper()
	cl, _, err := ch.pahoConnect("mq-check", ch.h.HostName()+"/mq-check/?api-version=2021-04-12",
		ch.deviceToken(t, ch.h.HostName()+"/devices/mq-check", "mq-check", time.Now().Add(time.Hour)))
	if err != nil {
		t.Fatalf("follow-up MQTT CONNECT: %v", err)
	}
	defer cl.Disconnect(0)
	res, err := subscribeRes(cl)
	if err != nil {
		t.Fatal(err)
	}
	if status, body, err := twinRequest(cl, res, "$iothub/twin/GET/?$rid=check", ""); err != nil || status != 200 {
		t.Fatalf("follow-up twin GET: %d %v %s", status, err, body)
	}
}
