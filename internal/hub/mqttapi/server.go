package mqttapi

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/iotplan/iotplan/internal/hub/bind"
	"github.com/iotplan/iotplan/internal/hub/link"
	"github.com/iotplan/iotplan/internal/safetext"
)

// Registry is what the endpoint needs from the identity registry and twin store;
// *registry.Registry satisfies it. Errors are *huberr.Error (404001 for an unknown device).
type Registry interface {
	// DeviceKeys returns the device's base64 SAS keys.
	DeviceKeys(deviceID string) (primary, secondary string, err error)
	// GetTwin returns the full twin document (status, properties.desired/reported with
	// $version, ...) as GET /twins/{id} returns it.
	GetTwin(deviceID string) (map[string]any, error)
	// PatchReported merge-patches reported properties and returns the new reported $version.
	PatchReported(deviceID string, patch map[string]any) (int64, error)
}

// twinSections is the optional cheaper read the registry offers for device twin GETs (only
// the desired and reported sections, not the whole document).
type twinSections interface {
	DesiredAndReported(deviceID string) (desired, reported map[string]any, err error)
}

// activityRecorder is optional: a registry that implements it gets lastActivityTime updates
// for device traffic (telemetry, twin requests, method answers), at most once per
// activityInterval per device. Connecting and disconnecting already update it through link.
type activityRecorder interface {
	RecordActivity(deviceID string, at time.Time) error
}

// activityInterval bounds registry writes for chatty devices; IoT Hub's own lastActivityTime
// is not exact either ("might be updated lazily" [inferred from its docs' caveats]).
const activityInterval = time.Minute

// Options configure the endpoint.
type Options struct {
	// HostName is the hub's host name as device connection strings carry it ("localhost",
	// or "localhost:PORT"); user names and token scopes are checked against it (ports ignored).
	HostName string
	// TLSConfig is the server's TLS configuration (the hub certificate). Required: IoT Hub's
	// MQTT endpoint is TLS only.
	TLSConfig *tls.Config
	// Addr is the TCP address to listen on: "localhost:8883" for the hub (every loopback
	// address, internal/hub/bind), ":8883" for every interface, "127.0.0.1:0" in tests.
	Addr string
	// Registry holds device identities and twins. Required.
	Registry Registry
	// Link is the hub's table of connected devices; every authenticated session joins it.
	// Required.
	Link *link.Hub
	// Policies looks up a shared access policy by name, for tokens signed with a policy key
	// (skn). nil: only device-key tokens are accepted.
	Policies func(name string) (Policy, bool)
	// Logger receives connection and protocol events; nil discards them. Every value is
	// escaped and bounded first (safetext.Log): much of it is what devices sent.
	Logger *slog.Logger
	// Now is the clock for token expiry and error timestamps; nil = time.Now.
	Now func() time.Time
	// SessionExpiry is how long a disconnected clean=false session keeps its subscriptions;
	// 0 = one hour. (IoT Hub's own retention is not documented.)
	SessionExpiry time.Duration
	// AdmitConnect, when set, is asked before an authenticated CONNECT is accepted: the hub's
	// new-device-connections throttle (internal/hub/throttle). It may hold the attempt for a
	// while; an error refuses it like a failed authentication (CONNACK 5: mochi maps refusals
	// to that code; what Azure answers a throttled CONNECT with is not documented).
	AdmitConnect func(ctx context.Context) error
	// ConnectTimeout bounds the time from a connection's arrival (TCP or WebSocket) to its
	// complete CONNECT packet, TLS handshake included; a connection that has not sent one
	// by then is closed. 0 = DefaultConnectTimeout.
	ConnectTimeout time.Duration
}

// DefaultConnectTimeout is Options.ConnectTimeout's default. MQTT 3.1.1 §3.1.4 says "If the
// Server does not receive a CONNECT Packet within a reasonable amount of time after the
// Network Connection is established, the Server SHOULD close the connection"; IoT Hub
// documents no figure. 30 s is the time Azure's C device SDK waits for a CONNACK
// (DEFAULT_CONNACK_TIMEOUT in azure-iot-sdk-c iothub_client/src/iothubtransport_mqtt_common.c),
// so no client that gets an answer in time needs longer. mochi-mqtt reads the CONNECT with no
// deadline of its own (server/v2 Server.attachClient); it sets the keep-alive deadline once
// the CONNECT is read, replacing this one. A variable so that tests of hubs built without
// Options (test/corpus) can shorten it before starting one.
var DefaultConnectTimeout = 30 * time.Second

// Stats are the endpoint's counters since Start.
type Stats struct {
	Connected            int64 // device sessions open now
	Connects             int64 // CONNECTs accepted
	Rejected             int64 // CONNECTs refused (authentication)
	Telemetry            int64 // device-to-cloud messages accepted
	TelemetryBytes       int64 // their payload bytes
	MethodCalls          int64 // direct-method requests sent to devices
	MethodResponses      int64 // device answers matched to a waiting call
	TwinGets             int64 // twin GETs answered
	ReportedPatches      int64 // reported-property patches accepted
	DesiredNotifications int64 // desired-property notifications sent
	Denied               int64 // publishes and subscriptions refused by the ACL
}

type counters struct {
	connected, connects, rejected, telemetry, telemetryBytes, methodCalls, methodResponses,
	twinGets, reportedPatches, desiredNotifications, denied atomic.Int64
}

// Server is a running MQTT endpoint.
type Server struct {
	opts   Options
	log    *slog.Logger
	broker *mqtt.Server
	lns    []net.Listener // opts.Addr: 127.0.0.1 and ::1 for "localhost" (internal/hub/bind)
	stats  counters
	rid    atomic.Uint64 // method request ids, unique across sessions

	mu       sync.Mutex
	sessions map[*mqtt.Client]*session

	closeOnce sync.Once
	closed    atomic.Bool
	stopCtx   func() bool
}

const listenerID = "mqtts"

// MaxPacketSize bounds one MQTT packet from a device: IoT Hub's device-to-cloud message
// limit is 256 KB, plus room for the topic and its property bag [inferred: the hub's exact
// packet bound is not documented]. A larger packet closes the connection, as the broker
// does for any oversize packet; without a bound one client could make the hub buffer
// any amount.
const MaxPacketSize = 256*1024 + 8*1024

// Start listens on opts.Addr and serves until Close or until ctx is done.
func Start(ctx context.Context, opts Options) (*Server, error) {
	switch {
	case opts.HostName == "":
		return nil, errors.New("mqttapi: HostName is required")
	case opts.TLSConfig == nil:
		return nil, errors.New("mqttapi: TLSConfig is required (IoT Hub's MQTT endpoint is TLS only)")
	case opts.Registry == nil:
		return nil, errors.New("mqttapi: Registry is required")
	case opts.Link == nil:
		return nil, errors.New("mqttapi: Link is required")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	// User names, client ids, topics and $rids are the device's text: escaped and bounded.
	opts.Logger = slog.New(safetext.NewLogHandler(opts.Logger.Handler()))
	if opts.SessionExpiry <= 0 {
		opts.SessionExpiry = time.Hour
	}
	if opts.Addr == "" {
		opts.Addr = "localhost:8883"
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = DefaultConnectTimeout
	}

	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumQos = 1             // IoT Hub grants QoS 1 at most (https://learn.microsoft.com/azure/iot/iot-mqtt-connect-to-iot-hub)
	caps.RetainAvailable = 0        // IoT Hub keeps no retained messages (the MQTT page: RETAIN only adds x-opt-retain)
	caps.SharedSubAvailable = 0     // no $share subscriptions on IoT Hub
	caps.MinimumProtocolVersion = 4 // MQTT 3.1.1
	caps.MaximumSessionExpiryInterval = uint32(opts.SessionExpiry / time.Second)
	caps.MaximumPacketSize = MaxPacketSize
	broker := mqtt.New(&mqtt.Options{
		Capabilities: caps,
		// mochi logs every listener and, as warnings, every connection that ends; keep its
		// errors only and log IoT Hub events from the hook instead.
		Logger:                 slog.New(minLevel{opts.Logger.Handler(), slog.LevelError}).With("component", "mochi"),
		SysTopicResendInterval: 3600, // nobody may subscribe to $SYS; publish it rarely
	})

	s := &Server{
		opts:     opts,
		log:      opts.Logger,
		broker:   broker,
		sessions: make(map[*mqtt.Client]*session),
	}
	if err := broker.AddHook(&hook{s: s}, nil); err != nil {
		return nil, fmt.Errorf("mqttapi: %w", err)
	}
	lns, err := bind.TCP(opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("mqttapi: listen on %s: %w", opts.Addr, err)
	}
	s.lns = lns
	if err := s.serve(); err != nil {
		bind.CloseAll(lns)
		return nil, fmt.Errorf("mqttapi: %w", err)
	}
	s.stopCtx = context.AfterFunc(ctx, func() { s.Close() })
	for _, ln := range lns {
		s.log.Info("MQTT endpoint listening", "addr", ln.Addr().String(), "host", opts.HostName)
	}
	return s, nil
}

// serve gives the broker a TLS listener per address, and the WebSocket one, and starts it.
func (s *Server) serve() error {
	for i, ln := range s.lns {
		id := listenerID
		if i > 0 {
			id += "-" + strconv.Itoa(i)
		}
		ln := connectDeadline{tls.NewListener(ln, s.opts.TLSConfig), s.opts.ConnectTimeout}
		if err := s.broker.AddListener(listeners.NewNet(id, ln)); err != nil {
			return err
		}
	}
	if err := s.broker.AddListener(wsListener{}); err != nil {
		return err
	}
	return s.broker.Serve()
}

// Addr is the address the endpoint listens on (the first, 127.0.0.1, for "localhost").
func (s *Server) Addr() net.Addr { return s.lns[0].Addr() }

// Addrs are all the addresses the endpoint listens on.
func (s *Server) Addrs() []net.Addr {
	addrs := make([]net.Addr, len(s.lns))
	for i, ln := range s.lns {
		addrs[i] = ln.Addr()
	}
	return addrs
}

// Close stops listening, disconnects every device (each leaves the link.Hub) and waits for
// their sessions to end (bounded).
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		if s.stopCtx != nil {
			s.stopCtx()
		}
		// mochi's Close closes the listeners, disconnects every client and waits for their
		// goroutines (each session leaves link on the way); bound that wait.
		done := make(chan struct{})
		go func() {
			s.broker.Close()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			s.log.Warn("MQTT endpoint: some device sessions did not end within 5s of Close")
		}
	})
	return nil
}

// Stats returns the endpoint's counters.
func (s *Server) Stats() Stats {
	c := &s.stats
	return Stats{
		Connected:            c.connected.Load(),
		Connects:             c.connects.Load(),
		Rejected:             c.rejected.Load(),
		Telemetry:            c.telemetry.Load(),
		TelemetryBytes:       c.telemetryBytes.Load(),
		MethodCalls:          c.methodCalls.Load(),
		MethodResponses:      c.methodResponses.Load(),
		TwinGets:             c.twinGets.Load(),
		ReportedPatches:      c.reportedPatches.Load(),
		DesiredNotifications: c.desiredNotifications.Load(),
		Denied:               c.denied.Load(),
	}
}

// Disconnect closes deviceID's MQTT connection, if it has one, as IoT Hub does when a device is
// disabled or deleted or its keys are regenerated (the hub calls it after such registry
// changes; the device may reconnect and is then authenticated afresh). It reports whether a
// connection was closed.
func (s *Server) Disconnect(deviceID string) bool {
	s.mu.Lock()
	var found []*mqtt.Client
	for cl, ss := range s.sessions {
		if ss.id == deviceID {
			found = append(found, cl)
		}
	}
	s.mu.Unlock()
	for _, cl := range found {
		cl.Stop(errDisconnectedByHub)
	}
	return len(found) > 0
}

var errDisconnectedByHub = errors.New("disconnected by the hub (device identity changed)")

func (s *Server) session(cl *mqtt.Client) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions[cl]
}

// connectDeadline gives each accepted connection a deadline for its TLS handshake and CONNECT
// (Options.ConnectTimeout); mochi replaces it with the keep-alive deadline after the CONNECT.
type connectDeadline struct {
	net.Listener
	timeout time.Duration
}

func (l connectDeadline) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		_ = c.SetDeadline(time.Now().Add(l.timeout))
	}
	return c, err
}

// minLevel drops records below a level (used to quieten the broker library).
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}
func (h minLevel) WithAttrs(a []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(a), h.min}
}
func (h minLevel) WithGroup(n string) slog.Handler { return minLevel{h.Handler.WithGroup(n), h.min} }
