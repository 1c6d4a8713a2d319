// Package mqttapi is the local hub's device endpoint: MQTT 3.1.1 over TLS (port 8883) and over
// WebSockets (/$iothub/websocket on the HTTPS port) with Azure IoT Hub's conventions
// (https://learn.microsoft.com/azure/iot/iot-mqtt-connect-to-iot-hub; Azure/azure-iot-sdk-node
// device/transport/mqtt/src/mqtt.ts), so Azure's device SDKs (Go
// amenzhinsky/iothub iotdevice, Node, C, Python, C#) connect to `iotplan dev` unchanged.
//
// The MQTT protocol itself is github.com/mochi-mqtt/server/v2; this package is a mochi hook
// that adds IoT Hub semantics:
//
//   - CONNECT: clientId = device id; user name "{host}/{id}/?api-version=..." (with or without
//     &DeviceClientType=, &model-id=; also amenzhinsky's "{host}/{id}/api-version=..." and the
//     old "{host}/{id}"); password = a SAS token signed with the device's primary or secondary
//     key, scoped to "{host}/devices/{id}" or the whole "{host}", or signed with the key of a
//     policy (skn) that grants DeviceConnect (Options.Policies). An unknown or disabled
//     device, a wrong key, an expired token, another device's token, a client id that is not
//     the user name's device, a module identity or an empty (X.509) password gets CONNACK
//     return code 5 "not authorized". MQTT 3.1 gets return code 1 (unacceptable protocol
//     version); MQTT 5 is refused with reason 0x86.
//     The reason goes to the hub's log (Info), never a key or signature; like every value
//     in this package's log it is escaped and bounded (internal/safetext). Host names are
//     compared case-insensitively and without ports, because the hub's HostName may be
//     "localhost:PORT" (the REST port) while devices dial the MQTT port. A session is closed
//     when its token expires, as IoT Hub does. A connection that has not completed its TLS
//     handshake and CONNECT within Options.ConnectTimeout (30 s by default) is closed, as
//     MQTT 3.1.1 §3.1.4 advises; mochi has no such deadline of its own.
//   - One connection per device id: a new CONNECT takes the old session over (mochi's session
//     takeover); clean=false sessions are accepted and keep their subscriptions
//     (Options.SessionExpiry after a disconnect).
//   - ACL: a device subscribes only to devices/{id}/messages/devicebound/#,
//     $iothub/methods/POST/#, $iothub/twin/res/# and $iothub/twin/PATCH/properties/desired/#
//     (or narrower filters under those prefixes; "+" is refused), and publishes only telemetry
//     on devices/{id}/messages/events/..., method responses and twin requests. A refused
//     subscription gets SUBACK 0x80; a refused publish closes the connection, whatever its QoS
//     (ErrPublishNotAllowed; 3.1.1 has no negative PUBACK, and IoT Hub disconnects too), also
//     one whose topic name mochi would drop silently (wildcards, "$SYS/...", empty).
//   - "$iothub/..." topics are per connection (every device subscribes to the same filters), so
//     hub → device messages are written to the one client they belong to, never routed
//     through the broker's topic tree (mochi's server.Publish would fan them out to every
//     device); device → hub messages are consumed by the hook and never routed to other
//     clients.
//   - Direct methods: each session is a link.Device. InvokeMethod publishes
//     $iothub/methods/POST/{name}/?$rid={rid} (QoS 0, JSON body, "null" for no payload) and
//     waits for $iothub/methods/res/{status}/?$rid={rid}; a device not subscribed to that
//     topic yields link.ErrNotSubscribed (→ 404103); a device that disconnects mid-call ends
//     the call at once (→ 504101, as link reports every missing answer).
//   - Twins: GET → $iothub/twin/res/200/?$rid= with {"desired":…,"reported":…} (each with
//     $version, without $metadata, no tags); reported PATCH (merge patch; optional &$version=
//     for optimistic concurrency → 412) → res/204/?$rid=…&$version={new}; errors →
//     res/{status}/?$rid=… with {"errorCode":…,"trackingId":…,"message":…,"timestampUtc":…}
//     (400004 bad keys or a non-object, 400006 invalid JSON, 412001); desired changes →
//     $iothub/twin/PATCH/properties/desired/?$version={v} with the patch and "$version" in
//     the body, in order, only to sessions subscribed to it. $rid is echoed byte for byte.
//   - Telemetry on devices/{id}/messages/events/ is accepted (PUBACK for QoS 1) and counted
//     (Stats); it is not stored or routed.
//
// Connection state (connectionState, connectionStateUpdatedTime, lastActivityTime at
// connect/disconnect) is not written here: a session joins the link.Hub, whose
// Options.OnConnect the hub wires to registry.SetConnectionState, so takeovers and simulated
// devices follow one serialised path. Device traffic refreshes lastActivityTime only if the
// registry offers RecordActivity(deviceID, at) (at most once a minute per device).
//
// Hub → device messages are all sent at QoS 0 (legal whatever QoS the device subscribed with).
// Not implemented: cloud-to-device messages (devicebound), X.509 authentication, module
// identities, MQTT 5.
//
// Tests: MQTTAPI_TEST_LOG=1 prints the endpoint's log to stderr; MQTTAPI_SCALE=N runs
// TestManyDevices with N devices instead of 50 (1000 take about 1.5 s on 2 cores).
//
// Imports: mochi-mqtt, gorilla/websocket, internal/sas, internal/hubapi, internal/safetext, internal/hub/bind,
// internal/hub/link, internal/hub/huberr, google/uuid, stdlib.
package mqttapi
