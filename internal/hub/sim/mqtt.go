package sim

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/iotplan/iotplan/internal/hub/huberr"
	"github.com/iotplan/iotplan/internal/sas"
)

// MQTTOptions tell mqtt-mode devices where the hub's MQTT endpoint is and how to log in.
type MQTTOptions struct {
	// Addr is the endpoint's TCP address. An unspecified host (":8883", "[::]:8883",
	// "0.0.0.0:8883") is dialled on 127.0.0.1. "" = the hub has no MQTT endpoint: mqtt-mode
	// devices stay offline (Start logs a warning).
	Addr string
	// HostName is the hub's host name as device connection strings carry it (user name and
	// token scope; the endpoint ignores a port in it).
	HostName string
	// TLSConfig is the devices' client TLS configuration: RootCAs holding the hub's CA and
	// the ServerName of the hub's certificate. Required with Addr.
	TLSConfig *tls.Config
	// Keys looks up each device's SAS keys (it signs its own token with its primary key).
	// nil: the Seeder, if it has DeviceKeys (*registry.Registry has).
	Keys KeyStore
	// ConnectTimeout bounds one connection attempt (TCP, TLS, CONNECT, SUBSCRIBE);
	// 0 = 10 s.
	ConnectTimeout time.Duration
	// Concurrency is how many devices connect at once at start and after churn; 0 = 16.
	// (The TLS handshakes run on the same cores as the hub.)
	Concurrency int
}

// KeyStore returns a device's base64 SAS keys; *registry.Registry satisfies it.
type KeyStore interface {
	DeviceKeys(deviceID string) (primary, secondary string, err error)
}

// Device-side protocol constants (https://learn.microsoft.com/azure/iot/iot-mqtt-connect-to-iot-hub).
const (
	mqttAPIVersion   = "2021-04-12"
	topicMethodsPOST = "$iothub/methods/POST/"
	topicTwinRes     = "$iothub/twin/res/"
	topicDesired     = "$iothub/twin/PATCH/properties/desired/"
	tokenLifetime    = 24 * time.Hour
	reconnectMin     = 500 * time.Millisecond
	reconnectMax     = 30 * time.Second
	disconnectQuiet  = 20 // ms paho waits for the DISCONNECT packet to leave
)

// mqttDevice is the MQTT side of an mqtt-mode device: one paho client over TLS whose
// behaviour (method answers, echoes) is its device's group, exactly as for in-process
// devices. A device is connected only after its subscriptions are acknowledged, so a method
// call never reaches a device that would not hear it.
type mqttDevice struct {
	d   *device
	s   *Sim
	key string

	mu       sync.Mutex
	client   paho.Client
	up       bool           // connected and subscribed
	down     bool           // churned away on purpose: do not reconnect until told
	retrying bool           // a reconnect after an unexpected loss is scheduled
	dialing  bool           // a connection attempt is under way
	backoff  time.Duration  // next reconnect delay after an unexpected loss
	unsent   map[string]any // echo to report once reconnected
	rid      uint64
}

// errDeleted ends an mqtt-mode device whose identity was deleted from the registry.
var errDeleted = errors.New("device deleted from the registry")

// dialAddr turns a listen address into one a client can dial on loopback.
func dialAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("MQTT address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

// filters are the device's subscriptions: one per method it defines (so a method it does not
// define is "not subscribed" → 404103, as for in-process devices), desired notifications and
// twin responses when it echoes.
func (md *mqttDevice) filters() map[string]byte {
	g := md.d.rt.g
	f := make(map[string]byte, len(g.Methods)+2)
	for _, m := range g.Methods {
		f[topicMethodsPOST+m.Name+"/#"] = 0
	}
	if g.Echo {
		f[topicDesired+"#"] = 0
		f[topicTwinRes+"#"] = 0
	}
	return f
}

// connect makes one connection attempt: CONNECT with a fresh SAS token, then SUBSCRIBE.
func (md *mqttDevice) connect(ctx context.Context) error {
	s := md.s
	id := md.d.id
	host := s.mqtt.HostName
	if md.key == "" {
		// Looked up on every reconnect: keys may have been regenerated meanwhile (the hub
		// then closes the session, as IoT Hub does).
		pk, _, err := s.mqtt.Keys.DeviceKeys(id)
		if huberr.Is(err, huberr.DeviceNotFound) {
			return errDeleted
		}
		if err != nil {
			return err
		}
		md.key = pk
	}
	key := md.key
	md.key = "" // the next connection looks it up again
	token, err := sas.NewToken(host+"/devices/"+id, key, "", time.Now().Add(tokenLifetime))
	if err != nil {
		return err
	}
	o := paho.NewClientOptions()
	o.AddBroker("tls://" + s.mqttAddr)
	o.SetTLSConfig(s.mqttTLS)
	o.SetProtocolVersion(4)
	o.SetClientID(id)
	o.SetUsername(host + "/" + id + "/?api-version=" + mqttAPIVersion)
	o.SetPassword(token)
	o.SetCleanSession(true)
	o.SetAutoReconnect(false) // reconnects are the simulation's (churn, backoff), not paho's
	o.SetConnectRetry(false)
	o.SetConnectTimeout(s.mqtt.ConnectTimeout)
	o.SetKeepAlive(60 * time.Second)
	o.SetDefaultPublishHandler(md.onMessage)
	o.SetConnectionLostHandler(md.onLost)
	c := paho.NewClient(o)

	wait := func(t paho.Token) error {
		timer := time.NewTimer(s.mqtt.ConnectTimeout)
		defer timer.Stop()
		select {
		case <-t.Done():
			return t.Error()
		case <-timer.C:
			return errors.New("timed out")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := wait(c.Connect()); err != nil {
		c.Disconnect(0)
		return fmt.Errorf("connect: %w", err)
	}
	// Installed before SUBSCRIBE so nothing the hub sends after the SUBACK is missed.
	md.mu.Lock()
	md.client = c
	md.mu.Unlock()
	if filters := md.filters(); len(filters) > 0 { // a SUBSCRIBE needs at least one filter
		st := c.SubscribeMultiple(filters, nil)
		if err := wait(st); err != nil {
			c.Disconnect(0)
			return fmt.Errorf("subscribe: %w", err)
		}
		for f, code := range st.(*paho.SubscribeToken).Result() {
			if code == 0x80 {
				c.Disconnect(0)
				return fmt.Errorf("subscribe: the hub refused %s", f)
			}
		}
	}
	md.mu.Lock()
	if s.isClosed() || md.down || md.client != c {
		md.mu.Unlock()
		c.Disconnect(0)
		return errClosed
	}
	md.up, md.backoff = true, 0
	unsent := md.unsent
	md.unsent = nil
	md.mu.Unlock()
	s.connected.Add(1)
	if unsent != nil {
		md.report(unsent)
	}
	return nil
}

// onLost runs when the connection drops without the simulation asking (the hub closed it:
// session takeover, token expiry, a disabled device, the hub stopping). The device comes
// back with exponential backoff, as the SDKs' retry policies do.
func (md *mqttDevice) onLost(c paho.Client, err error) {
	md.mu.Lock()
	if md.client != c {
		md.mu.Unlock()
		return
	}
	wasUp := md.up
	md.up = false
	md.client = nil
	md.mu.Unlock()
	if wasUp {
		md.s.connected.Add(-1)
	}
	md.s.stats.lost.Add(1)
	md.s.log.Debug("sim: MQTT connection lost", "device", md.d.id, "err", err)
	md.retryLater()
}

// retryLater schedules a reconnect after the current backoff.
func (md *mqttDevice) retryLater() {
	md.mu.Lock()
	if md.s.isClosed() || md.down || md.retrying || md.dialing || md.client != nil {
		md.mu.Unlock()
		return
	}
	md.retrying = true
	if md.backoff == 0 {
		md.backoff = reconnectMin
	}
	delay := md.backoff
	md.backoff = min(2*md.backoff, reconnectMax)
	md.mu.Unlock()
	md.s.afterFunc(delay, func() {
		md.mu.Lock()
		md.retrying = false
		md.mu.Unlock()
		md.reconnect()
	})
}

// reconnect connects the device unless it is connected or connecting, churned away, or the
// sim is closing; a failure retries with backoff.
func (md *mqttDevice) reconnect() {
	s := md.s
	if !md.claimDial() {
		return
	}
	select {
	case s.connSem <- struct{}{}:
	case <-s.done:
		md.endDial()
		return
	}
	err := md.connect(s.ctx)
	<-s.connSem
	md.endDial()
	switch {
	case err == nil:
		s.stats.reconnects.Add(1)
	case errors.Is(err, errClosed) || s.isClosed():
	case errors.Is(err, errDeleted):
		s.log.Info("sim: device deleted from the registry; it stops reconnecting", "device", md.d.id)
	default:
		s.stats.connectErrors.Add(1)
		s.log.Debug("sim: MQTT reconnect failed", "device", md.d.id, "err", err)
		md.retryLater()
	}
}

// claimDial marks a connection attempt as started, unless one is running, the device is
// connected or away on purpose, or the sim is closing.
func (md *mqttDevice) claimDial() bool {
	md.mu.Lock()
	defer md.mu.Unlock()
	if md.s.isClosed() || md.down || md.dialing || md.client != nil {
		return false
	}
	md.dialing = true
	return true
}

func (md *mqttDevice) endDial() {
	md.mu.Lock()
	md.dialing = false
	if !md.up {
		md.client = nil
	}
	md.mu.Unlock()
}

// disconnect ends the connection on purpose (churn or Close) and returns the client to
// close (nil if none): the state changes at once, in the caller's order; closing the socket
// may be left to another goroutine. churn = true keeps the device away until comeBack.
func (md *mqttDevice) disconnect(churn bool) paho.Client {
	md.mu.Lock()
	c, wasUp := md.client, md.up
	md.client, md.up = nil, false
	if churn {
		md.down = true
	}
	md.mu.Unlock()
	if wasUp {
		md.s.connected.Add(-1)
	}
	return c
}

// comeBack ends a churn downtime; the caller then runs reconnect (on another goroutine).
func (md *mqttDevice) comeBack() {
	md.mu.Lock()
	md.down = false
	md.mu.Unlock()
}

// onMessage serves what the hub sends. It must not block (paho delivers a client's messages
// in order on one goroutine): method latency waits on a timer.
func (md *mqttDevice) onMessage(c paho.Client, msg paho.Message) {
	topic := msg.Topic()
	switch {
	case strings.HasPrefix(topic, topicMethodsPOST):
		md.onMethod(c, topic[len(topicMethodsPOST):], msg.Payload())
	case strings.HasPrefix(topic, topicDesired):
		var patch map[string]any
		if err := json.Unmarshal(msg.Payload(), &patch); err != nil || patch == nil {
			md.s.log.Warn("sim: desired notification is not a JSON object", "device", md.d.id)
			return
		}
		delete(patch, "$version")
		md.d.DesiredChanged(patch, 0)
	case strings.HasPrefix(topic, topicTwinRes):
		// Answers to reported patches: 204 expected.
		status, _, _ := strings.Cut(topic[len(topicTwinRes):], "/")
		if status != "204" && status != "200" {
			md.s.stats.reportErrors.Add(1)
			md.s.log.Debug("sim: reported patch refused", "device", md.d.id, "status", status, "body", string(msg.Payload()))
		}
	}
}

// onMethod answers "$iothub/methods/POST/{name}/?$rid={rid}" per the group's method block.
func (md *mqttDevice) onMethod(c paho.Client, rest string, _ []byte) {
	name, query, ok := strings.Cut(rest, "/?")
	if !ok {
		return
	}
	q, err := url.ParseQuery(query)
	rid := q.Get("$rid")
	if err != nil || rid == "" {
		return
	}
	mi, ok := md.d.rt.methods[name]
	if !ok {
		return // not subscribed: the hub does not send it
	}
	status, payload, lat, respond := md.d.answer(mi)
	if !respond {
		return
	}
	topic := "$iothub/methods/res/" + strconv.Itoa(status) + "/?$rid=" + rid
	send := func() {
		if md.s.isClosed() {
			return
		}
		c.Publish(topic, 0, false, []byte(payload))
	}
	if lat <= 0 {
		send()
		return
	}
	md.s.afterFunc(lat, send)
}

// report publishes an echo as a reported-properties patch; while the device is away it is
// kept and reported on reconnect (merged with later echoes), as a device's outbox would.
func (md *mqttDevice) report(patch map[string]any) {
	md.mu.Lock()
	c := md.client
	if !md.up || c == nil {
		if md.unsent == nil {
			md.unsent = make(map[string]any, len(patch))
		}
		mergeInto(md.unsent, patch)
		md.mu.Unlock()
		return
	}
	md.rid++
	rid := md.rid
	md.mu.Unlock()
	body, err := json.Marshal(patch)
	if err != nil {
		return
	}
	c.Publish("$iothub/twin/PATCH/properties/reported/?$rid="+strconv.FormatUint(rid, 10), 0, false, body)
	md.s.stats.reports.Add(1)
}

// startMQTT connects the online mqtt-mode devices, at most Concurrency at a time, and waits
// for all of them (bounded by ctx). Devices the registry no longer has are skipped.
func (s *Sim) startMQTT(ctx context.Context, devs []*device) error {
	if len(devs) == 0 {
		return nil
	}
	if s.mqtt.Addr == "" {
		s.log.Warn("sim: the fleet has mqtt-mode devices but the hub has no MQTT endpoint; they stay offline", "devices", len(devs))
		return nil
	}
	keys := s.mqtt.Keys
	if keys == nil {
		return errors.New("sim: mqtt-mode devices need MQTTOptions.Keys (device SAS keys)")
	}
	if s.mqtt.TLSConfig == nil {
		return errors.New("sim: mqtt-mode devices need MQTTOptions.TLSConfig (the hub's CA)")
	}
	var err error
	if s.mqttAddr, err = dialAddr(s.mqtt.Addr); err != nil {
		return err
	}
	s.mqttTLS = s.mqtt.TLSConfig.Clone()
	if s.mqttTLS.ClientSessionCache == nil {
		// Reconnects (churn) resume TLS sessions instead of full handshakes.
		s.mqttTLS.ClientSessionCache = tls.NewLRUClientSessionCache(len(devs))
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		failed   int
		firstErr error
	)
	for _, d := range devs {
		pk, _, err := keys.DeviceKeys(d.id)
		if huberr.Is(err, huberr.DeviceNotFound) {
			s.log.Info("sim: device deleted from the registry; not simulated", "device", d.id)
			continue
		}
		if err != nil {
			return fmt.Errorf("sim: keys of %s: %w", d.id, err)
		}
		md := &mqttDevice{d: d, s: s, key: pk}
		d.mq = md
		s.mqttDevs = append(s.mqttDevs, md)
		select {
		case s.connSem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return ctx.Err()
		}
		md.dialing = true
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := md.connect(ctx)
			<-s.connSem
			md.endDial()
			if err != nil {
				mu.Lock()
				failed++
				if firstErr == nil {
					firstErr = fmt.Errorf("%s: %w", md.d.id, err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if failed > 0 {
		return fmt.Errorf("sim: %d of %d mqtt-mode devices could not connect to the hub's MQTT endpoint at %s (first: %v)", failed, len(s.mqttDevs), s.mqttAddr, firstErr)
	}
	return nil
}
