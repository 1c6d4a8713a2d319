package mqttapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/iotplan/iotplan/internal/hub/huberr"
	"github.com/iotplan/iotplan/internal/sas"
)

// hook carries the IoT Hub semantics into mochi.
type hook struct {
	mqtt.HookBase
	s *Server
}

func (h *hook) ID() string { return "iothub" }

func (h *hook) Provides(b byte) bool {
	return bytes.Contains([]byte{
		mqtt.OnConnectAuthenticate,
		mqtt.OnACLCheck,
		mqtt.OnSessionEstablished,
		mqtt.OnDisconnect,
		mqtt.OnPublish,
		mqtt.OnPacketRead,
	}, []byte{b})
}

// OnConnectAuthenticate accepts a CONNECT only for an enabled device presenting a valid token.
// A refusal becomes CONNACK return code 5 "not authorized" (mochi maps its v5 code for 3.1.1).
func (h *hook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	s := h.s
	if _, err := s.authenticate(pk); err != nil {
		s.stats.rejected.Add(1)
		s.log.Info("MQTT CONNECT refused", "clientId", pk.Connect.ClientIdentifier, "remote", cl.Net.Remote, "reason", err.Error())
		return false
	}
	if s.opts.AdmitConnect != nil {
		if err := s.opts.AdmitConnect(context.Background()); err != nil {
			s.stats.rejected.Add(1)
			s.log.Info("MQTT CONNECT throttled", "clientId", pk.Connect.ClientIdentifier, "remote", cl.Net.Remote, "reason", err.Error())
			return false
		}
	}
	return true
}

// authenticate checks a CONNECT and returns the token's expiry.
func (s *Server) authenticate(pk packets.Packet) (time.Time, error) {
	if pk.ProtocolVersion != 4 {
		return time.Time{}, denyf("MQTT protocol level %d; IoT Hub speaks MQTT 3.1.1 (level 4)", pk.ProtocolVersion)
	}
	id := pk.Connect.ClientIdentifier
	if id == "" {
		return time.Time{}, denyf("empty client id; it must be the device id")
	}
	if strings.Contains(id, "/") {
		return time.Time{}, denyf("client id %q is a module identity ({deviceId}/{moduleId}); the local hub has device identities only", id)
	}
	u, err := parseUsername(string(pk.Connect.Username), id)
	if err != nil {
		return time.Time{}, err
	}
	if !sameHost(u.host, s.opts.HostName) {
		return time.Time{}, denyf("user name names host %q, not this hub", u.host)
	}
	if len(pk.Connect.Password) == 0 {
		return time.Time{}, denyf("no password: X.509 authentication is not supported by the local hub; use a SAS token")
	}
	tok, err := sas.ParseToken(string(pk.Connect.Password))
	if err != nil {
		return time.Time{}, denyf("password: %v", err)
	}
	if err := checkScope(tok, s.opts.HostName, id); err != nil {
		return time.Time{}, err
	}
	primary, secondary, err := s.opts.Registry.DeviceKeys(id)
	if err != nil {
		if huberr.Is(err, huberr.DeviceNotFound) {
			return time.Time{}, denyf("device %q is not registered", id)
		}
		return time.Time{}, denyf("device %q: %v", id, err)
	}
	now := s.opts.Now()
	if tok.KeyName == "" {
		if err := verifyKeys(tok, now, primary, secondary); err != nil {
			return time.Time{}, denyf("device token: %v", err)
		}
	} else {
		pol, ok := Policy{}, false
		if s.opts.Policies != nil {
			pol, ok = s.opts.Policies(tok.KeyName)
		}
		switch {
		case !ok:
			return time.Time{}, denyf("token names unknown policy %q", tok.KeyName)
		case !pol.DeviceConnect:
			return time.Time{}, denyf("policy %q does not grant DeviceConnect", tok.KeyName)
		}
		if err := verifyKeys(tok, now, pol.PrimaryKey, pol.SecondaryKey); err != nil {
			return time.Time{}, denyf("policy token: %v", err)
		}
	}
	twin, err := s.opts.Registry.GetTwin(id)
	if err != nil {
		return time.Time{}, denyf("device %q: %v", id, err)
	}
	if st, _ := twin["status"].(string); st == "disabled" {
		return time.Time{}, denyf("device %q is disabled", id)
	}
	return tok.Expiry, nil
}

// OnACLCheck: a device reaches only its own topics (see canSubscribe, classifyPublish). A
// refused publish has already closed the connection in OnPacketRead; the check stays for
// anything that reaches the broker another way.
func (h *hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	ok := false
	if write {
		ok = classifyPublish(cl.ID, topic) != topicDenied
	} else {
		ok = canSubscribe(cl.ID, topic)
	}
	if !ok {
		h.s.stats.denied.Add(1)
		h.s.log.Info("MQTT topic refused", "device", cl.ID, "topic", topic, "publish", write)
	}
	return ok
}

// ErrPublishNotAllowed ends the connection of a device that published outside its own topics
// (the disconnect reason the hook passes to mochi, and OnDisconnect logs).
var ErrPublishNotAllowed = errors.New("publish to a topic the device may not use")

// OnPacketRead closes the connection of a device that publishes outside its own topics, at any
// QoS: IoT Hub has a fixed set of device topics and closes the network connection on what it
// does not support rather than ignore it
// (https://learn.microsoft.com/azure/iot-hub/iot-hub-mqtt-support), and a device that keeps
// talking after its messages were silently dropped hides its bug. It runs before mochi's own
// checks, so topic names mochi drops without a word (wildcards, "$SYS/...", empty) close the
// connection too. Returning ErrRejectPacket makes mochi end the connection with this error.
func (h *hook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type != packets.Publish || classifyPublish(cl.ID, pk.TopicName) != topicDenied {
		return pk, nil
	}
	h.s.stats.denied.Add(1)
	h.s.log.Info("MQTT publish outside the device's topics; disconnecting", "device", cl.ID,
		"topic", pk.TopicName, "qos", pk.FixedHeader.Qos)
	return pk, fmt.Errorf("%w: %w", packets.ErrRejectPacket, ErrPublishNotAllowed)
}

// OnSessionEstablished runs after CONNACK: the device joins the link.Hub, which replaces an
// older session of the same device.
func (h *hook) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	s := h.s
	ss := &session{s: s, id: cl.ID, cl: cl}
	if tok, err := sas.ParseToken(string(pk.Connect.Password)); err == nil {
		// IoT Hub closes a connection whose token expires; SDKs reconnect with a new one.
		d := tok.Expiry.Sub(s.opts.Now())
		ss.expiry = time.AfterFunc(max(d, 0), func() {
			s.log.Info("MQTT session token expired; disconnecting", "device", cl.ID)
			cl.Stop(huberr.New(huberr.IotHubUnauthorized, "SAS token expired"))
		})
	}
	s.mu.Lock()
	s.sessions[cl] = ss
	s.mu.Unlock()
	ss.unlink = s.opts.Link.Connect(cl.ID, ss)
	s.stats.connects.Add(1)
	s.stats.connected.Add(1)
	s.log.Debug("device connected over MQTT", "device", cl.ID, "remote", cl.Net.Remote, "clean", pk.Connect.Clean)
}

// OnDisconnect ends the session: pending method calls fail, the device leaves the link.Hub
// (a no-op when a newer session already replaced it).
func (h *hook) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	s := h.s
	s.mu.Lock()
	ss := s.sessions[cl]
	delete(s.sessions, cl)
	s.mu.Unlock()
	if ss == nil {
		return
	}
	ss.close()
	s.stats.connected.Add(-1)
	s.log.Debug("device disconnected from MQTT", "device", cl.ID, "reason", errText(err))
}

func errText(err error) string {
	if err == nil {
		return "client disconnected"
	}
	return err.Error()
}

// OnPublish consumes every device message (they are requests to the hub, never routed to
// other clients): CodeSuccessIgnore makes mochi acknowledge a QoS 1 publish and drop it.
func (h *hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	ss := h.s.session(cl)
	if ss == nil {
		return pk, packets.ErrRejectPacket
	}
	ss.handle(pk.TopicName, pk.Payload)
	return pk, packets.CodeSuccessIgnore
}
