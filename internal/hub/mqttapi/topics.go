package mqttapi

import (
	"net/url"
	"strconv"
	"strings"
)

// IoT Hub topic names (https://learn.microsoft.com/azure/iot/iot-mqtt-connect-to-iot-hub). They are per connection: every
// device subscribes to the same "$iothub/..." filters, so the hub never routes these through
// the broker's topic tree but writes them to the one connection they belong to.
const (
	methodsPOST   = "$iothub/methods/POST/"
	methodsRes    = "$iothub/methods/res/"
	twinRes       = "$iothub/twin/res/"
	twinGET       = "$iothub/twin/GET/"
	twinReported  = "$iothub/twin/PATCH/properties/reported/"
	twinDesired   = "$iothub/twin/PATCH/properties/desired/"
	devicesPrefix = "devices/"
)

// Subscription prefixes a device may use (each followed by "#" or a narrower filter).
var hubSubscriptionPrefixes = []string{methodsPOST, twinRes, twinDesired}

func eventsPrefix(deviceID string) string { return devicesPrefix + deviceID + "/messages/events/" }
func c2dPrefix(deviceID string) string    { return devicesPrefix + deviceID + "/messages/devicebound/" }
func methodTopic(name, rid string) string { return methodsPOST + name + "/?$rid=" + rid }
func desiredTopic(version int64) string {
	return twinDesired + "?$version=" + strconv.FormatInt(version, 10)
}
func twinResTopic(status int, rid string) string {
	return twinRes + strconv.Itoa(status) + "/?$rid=" + rid
}

// canSubscribe is the subscription ACL: a device may subscribe only to its own cloud-to-device
// topic and to the hub's per-connection "$iothub/..." topics, with the filters Azure documents
// (a "#" under one of those prefixes, or a narrower filter inside them). "+" wildcards are
// refused: Azure only documents "#".
func canSubscribe(deviceID, filter string) bool {
	if strings.Contains(filter, "+") {
		return false
	}
	if strings.HasPrefix(filter, c2dPrefix(deviceID)) {
		return true
	}
	for _, p := range hubSubscriptionPrefixes {
		if strings.HasPrefix(filter, p) {
			return true
		}
	}
	return false
}

// topicKind is what a device publishes.
type topicKind int

const (
	topicDenied topicKind = iota
	topicTelemetry
	topicMethodResponse
	topicTwinGet
	topicTwinReported
)

// classifyPublish is the publish ACL and router in one: a device may publish telemetry on its
// own events topic, method responses and twin requests; everything else is denied.
func classifyPublish(deviceID, topic string) topicKind {
	switch {
	case strings.HasPrefix(topic, eventsPrefix(deviceID)) || topic == strings.TrimSuffix(eventsPrefix(deviceID), "/"):
		return topicTelemetry
	case strings.HasPrefix(topic, methodsRes):
		return topicMethodResponse
	case strings.HasPrefix(topic, twinGET):
		return topicTwinGet
	case strings.HasPrefix(topic, twinReported):
		return topicTwinReported
	}
	return topicDenied
}

// hubRequest is a parsed device → hub request topic: "{prefix}{status}/?$rid={rid}&$version={v}"
// (status only for method responses).
type hubRequest struct {
	status     int    // method responses: the status the device answered
	rid        string // $rid exactly as sent, so it can be echoed byte for byte
	hasRID     bool
	version    int64 // twin reported PATCH: optional $version (optimistic concurrency)
	hasVersion bool
}

// parseRequest parses the part of topic after prefix. withStatus: a leading "{status}/"
// segment must be present (method responses).
func parseRequest(topic, prefix string, withStatus bool) (hubRequest, bool) {
	var r hubRequest
	rest := topic[len(prefix):]
	path, query, _ := strings.Cut(rest, "?")
	if withStatus {
		s := strings.TrimSuffix(path, "/")
		n, err := strconv.Atoi(s)
		if err != nil || strings.Contains(s, "/") {
			return r, false
		}
		r.status = n
	}
	// Properties are split by hand rather than with url.ParseQuery so that $rid comes back
	// exactly as the device sent it (Azure echoes it verbatim; amenzhinsky parses it as hex,
	// Node compares UUID strings).
	for part := range strings.SplitSeq(query, "&") {
		k, v, _ := strings.Cut(part, "=")
		if uk, err := url.QueryUnescape(k); err == nil {
			k = uk
		}
		switch k {
		case "$rid":
			r.rid, r.hasRID = v, true
		case "$version":
			uv, err := url.QueryUnescape(v)
			if err != nil {
				return r, false
			}
			n, err := strconv.ParseInt(uv, 10, 64)
			if err != nil {
				return r, false
			}
			r.version, r.hasVersion = n, true
		}
	}
	return r, true
}

// filterMatches reports whether the MQTT topic filter matches topic ("#" and "+" wildcards).
func filterMatches(filter, topic string) bool {
	for {
		if filter == "#" {
			return true
		}
		fseg, frest, fmore := strings.Cut(filter, "/")
		tseg, trest, tmore := strings.Cut(topic, "/")
		if fseg != "+" && fseg != tseg {
			return false
		}
		if !fmore && !tmore {
			return true
		}
		if !tmore {
			// "a/#" also matches "a" (MQTT 4.7.1.2).
			return fmore && frest == "#"
		}
		if !fmore {
			return false
		}
		filter, topic = frest, trest
	}
}
