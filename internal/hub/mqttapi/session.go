package mqttapi

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/iotplan/iotplan/internal/hub/huberr"
	"github.com/iotplan/iotplan/internal/hub/link"
)

// session is one connected device. It is kept small (thousands of devices connect at once):
// the pending-call map and the notification queue exist only while in use.
type session struct {
	s      *Server
	id     string
	cl     *mqtt.Client
	unlink func()
	expiry *time.Timer
	active atomic.Int64 // unix nanos of the last RecordActivity

	mu      sync.Mutex
	closed  bool
	pending map[string]chan methodAnswer // by $rid
	queue   [][2][]byte                  // desired notifications (topic, body) waiting for the writer
	writing bool
}

type methodAnswer struct {
	status int
	body   json.RawMessage
}

var _ link.Device = (*session)(nil)

// errSessionClosed ends calls waiting on a session that disconnected; link reports it as a
// gateway timeout (no answer came back).
var errSessionClosed = errors.New("device disconnected before answering")

func (ss *session) close() {
	if ss.expiry != nil {
		ss.expiry.Stop()
	}
	ss.mu.Lock()
	ss.closed = true
	for rid, ch := range ss.pending {
		close(ch)
		delete(ss.pending, rid)
	}
	ss.queue = nil
	ss.mu.Unlock()
	if ss.unlink != nil {
		ss.unlink()
	}
}

// publish writes a QoS 0 PUBLISH to this device only.
func (ss *session) publish(topic string, body []byte) error {
	return ss.cl.WritePacket(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish},
		TopicName:   topic,
		Payload:     body,
	})
}

// subscribed reports whether one of the device's subscriptions matches topic. IoT Hub sends
// per-connection topics only to a device that subscribed to them.
func (ss *session) subscribed(topic string) bool {
	for filter := range ss.cl.State.Subscriptions.GetAll() {
		if filterMatches(filter, topic) {
			return true
		}
	}
	return false
}

// InvokeMethod implements link.Device: it publishes the method request and waits for the
// device's answer or ctx.
func (ss *session) InvokeMethod(ctx context.Context, name string, payload json.RawMessage) (int, json.RawMessage, error) {
	rid := strconv.FormatUint(ss.s.rid.Add(1), 10)
	topic := methodTopic(name, rid)
	if !ss.subscribed(topic) {
		return 0, nil, link.ErrNotSubscribed
	}
	if len(payload) == 0 {
		// Node's SDK JSON.parses any body, even an empty one (Azure/azure-iot-sdk-node
		// device/transport/mqtt/src/mqtt.ts, onDeviceMethod).
		payload = json.RawMessage("null")
	}
	ch := make(chan methodAnswer, 1)
	ss.mu.Lock()
	if ss.closed {
		ss.mu.Unlock()
		return 0, nil, errSessionClosed
	}
	if ss.pending == nil {
		ss.pending = make(map[string]chan methodAnswer)
	}
	ss.pending[rid] = ch
	ss.mu.Unlock()
	defer func() {
		ss.mu.Lock()
		delete(ss.pending, rid)
		if len(ss.pending) == 0 {
			ss.pending = nil
		}
		ss.mu.Unlock()
	}()

	if err := ss.publish(topic, payload); err != nil {
		return 0, nil, err
	}
	ss.s.stats.methodCalls.Add(1)
	select {
	case a, ok := <-ch:
		if !ok {
			return 0, nil, errSessionClosed
		}
		return a.status, a.body, nil
	case <-ctx.Done():
		return 0, nil, ctx.Err()
	}
}

// DesiredChanged implements link.Device. It must not block the caller (a REST handler or a
// job worker), so notifications are queued and written, in order, by one goroutine that
// exists only while the queue is non-empty.
func (ss *session) DesiredChanged(patch map[string]any, version int64) {
	topic := desiredTopic(version)
	if !ss.subscribed(topic) {
		return
	}
	doc := make(map[string]any, len(patch)+1)
	maps.Copy(doc, patch)
	doc["$version"] = version
	body, err := json.Marshal(doc)
	if err != nil {
		ss.s.log.Error("desired notification not encodable", "device", ss.id, "err", err)
		return
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.closed {
		return
	}
	ss.queue = append(ss.queue, [2][]byte{[]byte(topic), body})
	if !ss.writing {
		ss.writing = true
		go ss.drain()
	}
}

func (ss *session) drain() {
	for {
		ss.mu.Lock()
		if len(ss.queue) == 0 || ss.closed {
			ss.queue, ss.writing = nil, false
			ss.mu.Unlock()
			return
		}
		m := ss.queue[0]
		ss.queue = ss.queue[1:]
		ss.mu.Unlock()
		if err := ss.publish(string(m[0]), m[1]); err != nil {
			ss.s.log.Info("desired notification not delivered", "device", ss.id, "err", err)
			continue
		}
		ss.s.stats.desiredNotifications.Add(1)
	}
}

// handle serves one PUBLISH from the device (already allowed by the ACL). It runs on the
// connection's read goroutine, so a device's requests are answered in order.
func (ss *session) handle(topic string, body []byte) {
	ss.recordActivity()
	switch classifyPublish(ss.id, topic) {
	case topicTelemetry:
		ss.s.stats.telemetry.Add(1)
		ss.s.stats.telemetryBytes.Add(int64(len(body)))
	case topicMethodResponse:
		ss.methodResponse(topic, body)
	case topicTwinGet:
		ss.twinGet(topic)
	case topicTwinReported:
		ss.twinReported(topic, body)
	}
}

// recordActivity passes device traffic on to the registry's lastActivityTime, if the registry
// supports it, rate-limited per device.
func (ss *session) recordActivity() {
	r, ok := ss.s.opts.Registry.(activityRecorder)
	if !ok {
		return
	}
	now := ss.s.opts.Now()
	last := ss.active.Load()
	if last == 0 {
		// Connecting has just set lastActivityTime (link → SetConnectionState).
		ss.active.Store(now.UnixNano())
		return
	}
	if now.UnixNano()-last < int64(activityInterval) || !ss.active.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	if err := r.RecordActivity(ss.id, now); err != nil {
		ss.s.log.Debug("lastActivityTime not recorded", "device", ss.id, "err", err)
	}
}

func (ss *session) methodResponse(topic string, body []byte) {
	req, ok := parseRequest(topic, methodsRes, true)
	if !ok || !req.hasRID {
		ss.s.log.Info("malformed method response topic ignored", "device", ss.id, "topic", topic)
		return
	}
	var payload json.RawMessage
	switch {
	case len(body) == 0:
		payload = json.RawMessage("null")
	case json.Valid(body):
		payload = json.RawMessage(body)
	default:
		// The hub's caller gets JSON; a device that answered with non-JSON bytes is passed on
		// as a JSON string rather than failing the call [choice: Azure's handling is undocumented].
		b, _ := json.Marshal(string(body))
		payload = b
	}
	ss.mu.Lock()
	ch := ss.pending[req.rid]
	delete(ss.pending, req.rid)
	ss.mu.Unlock()
	if ch == nil {
		ss.s.log.Debug("method response for no waiting call ignored (late or unknown $rid)", "device", ss.id, "rid", req.rid)
		return
	}
	ss.s.stats.methodResponses.Add(1)
	ch <- methodAnswer{status: req.status, body: payload}
}

// twinRespond answers a twin request if the device listens for twin responses.
func (ss *session) twinRespond(status int, rid string, version *int64, body []byte) {
	topic := twinResTopic(status, rid)
	if version != nil {
		topic += "&$version=" + strconv.FormatInt(*version, 10)
	}
	if !ss.subscribed(topic) {
		ss.s.log.Info("twin response dropped: device has not subscribed to $iothub/twin/res/#", "device", ss.id)
		return
	}
	if err := ss.publish(topic, body); err != nil {
		ss.s.log.Info("twin response not delivered", "device", ss.id, "err", err)
	}
}

// twinError answers a twin request with the hub's MQTT error body ({"errorCode","trackingId","message",
// "timestampUtc"}, as quoted in amenzhinsky/iothub#70 and Azure/azure-iot-sdk-c#210).
func (ss *session) twinError(rid string, err error) {
	he := huberr.As(err)
	body, _ := json.Marshal(struct {
		ErrorCode    int    `json:"errorCode"`
		TrackingID   string `json:"trackingId"`
		Message      string `json:"message"`
		TimestampUTC string `json:"timestampUtc"`
	}{int(he.Code), trackingID(), he.Msg, ss.s.opts.Now().UTC().Format("2006-01-02T15:04:05.0000000Z")})
	ss.twinRespond(he.Code.Status(), rid, nil, body)
}

func trackingID() string {
	u := uuid.New()
	const hex = "0123456789abcdef"
	b := make([]byte, 32)
	for i, c := range u {
		b[2*i], b[2*i+1] = hex[c>>4], hex[c&15]
	}
	return string(b)
}

func (ss *session) twinGet(topic string) {
	req, ok := parseRequest(topic, twinGET, false)
	if !ok || !req.hasRID {
		ss.twinError(req.rid, huberr.New(huberr.ArgumentInvalid, "The twin request topic needs a $rid."))
		return
	}
	desired, reported, err := ss.sections()
	if err != nil {
		ss.twinError(req.rid, err)
		return
	}
	// The device view has $version but no $metadata (https://learn.microsoft.com/azure/iot/iot-mqtt-connect-to-iot-hub; the SDK samples'
	// output shows {"desired":{"$version":1},"reported":{"$version":1}} for a new twin).
	body, err := json.Marshal(map[string]any{
		"desired":  withoutMetadata(desired),
		"reported": withoutMetadata(reported),
	})
	if err != nil {
		ss.twinError(req.rid, err)
		return
	}
	ss.s.stats.twinGets.Add(1)
	ss.twinRespond(200, req.rid, nil, body)
}

// sections reads the desired and reported properties of the device's twin.
func (ss *session) sections() (desired, reported map[string]any, err error) {
	if r, ok := ss.s.opts.Registry.(twinSections); ok {
		return r.DesiredAndReported(ss.id)
	}
	doc, err := ss.s.opts.Registry.GetTwin(ss.id)
	if err != nil {
		return nil, nil, err
	}
	props, _ := doc["properties"].(map[string]any)
	desired, _ = props["desired"].(map[string]any)
	reported, _ = props["reported"].(map[string]any)
	return desired, reported, nil
}

func withoutMetadata(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if k != "$metadata" {
			out[k] = v
		}
	}
	return out
}

func (ss *session) twinReported(topic string, body []byte) {
	req, ok := parseRequest(topic, twinReported, false)
	if !ok || !req.hasRID {
		ss.twinError(req.rid, huberr.New(huberr.ArgumentInvalid, "The twin request topic needs a $rid and an integer $version if any."))
		return
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		ss.twinError(req.rid, huberr.New(huberr.IotHubFormatError, "The reported properties patch is not valid JSON."))
		return
	}
	patch, ok := v.(map[string]any)
	if !ok {
		ss.twinError(req.rid, huberr.New(huberr.ArgumentInvalid, "The reported properties patch must be a JSON object."))
		return
	}
	if req.hasVersion {
		// Optional optimistic concurrency (Java SDK): the patch applies only to that reported
		// $version. Checked before the write, not atomically with it [choice: a local hub has
		// one writer per device — this connection].
		_, reported, err := ss.sections()
		if err != nil {
			ss.twinError(req.rid, err)
			return
		}
		if cur := asInt64(reported["$version"]); cur != req.version {
			ss.twinError(req.rid, huberr.New(huberr.PreconditionFailed, "The reported properties $version %d does not match the current version %d.", req.version, cur))
			return
		}
	}
	version, err := ss.s.opts.Registry.PatchReported(ss.id, patch)
	if err != nil {
		ss.twinError(req.rid, err)
		return
	}
	ss.s.stats.reportedPatches.Add(1)
	ss.twinRespond(204, req.rid, &version, nil)
}

// asInt64 reads a JSON number however the registry holds it.
func asInt64(v any) int64 {
	switch n := v.(type) {
	case float64:
		return int64(n)
	case int64:
		return n
	case int:
		return int64(n)
	case json.Number:
		i, _ := n.Int64()
		return i
	}
	return -1
}
