// Package link is the local hub's table of connected device sessions and the router of
// direct methods and desired-property notifications to them.
//
// A session is anything that implements Device: today an in-process simulated device
// (internal/hub/sim), later an MQTT session. The package knows nothing of the registry:
// the caller checks that a device exists before Invoke, and wires Options.OnConnect to the
// registry's connection state.
//
// Error behaviour follows Azure IoT Hub (https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-direct-methods and
// https://learn.microsoft.com/azure/iot-hub/troubleshoot-error-codes): a device
// that is not connected when the connect timeout runs out, or that has not subscribed to the
// method (its Device returns ErrNotSubscribed), yields 404103 DeviceNotOnline; a device that
// does not answer within the response timeout yields 504101 GatewayTimeout. Both are
// *huberr.Error values in the JSON-in-Message envelope, with the hub's own messages.
//
// Imports: hubapi, huberr, stdlib.
package link

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/iotplan/iotplan/internal/hub/huberr"
	"github.com/iotplan/iotplan/internal/hubapi"
)

// Device is one connected device session.
type Device interface {
	// InvokeMethod delivers a direct method and waits for the device's answer. It must return
	// when ctx is done (the hub's response timeout is carried by ctx). A device that has not
	// registered a handler for name returns ErrNotSubscribed.
	InvokeMethod(ctx context.Context, name string, payload json.RawMessage) (status int, response json.RawMessage, err error)
	// DesiredChanged tells the device its desired properties changed (patch = what changed,
	// version = new desired $version). It is called on the changing goroutine (a REST handler
	// or a job worker) and must not block: queue the work.
	DesiredChanged(patch map[string]any, version int64)
}

// ErrNotSubscribed is what a Device returns from InvokeMethod when it has no handler for the
// method: on MQTT that is a device not subscribed to $iothub/methods/POST/#, which Azure
// reports as 404103, not as a timeout.
var ErrNotSubscribed = errors.New("device has not registered the direct method callback")

// Hub messages, as Azure sends them.
const (
	msgNotConnected  = "Timed out waiting for device to connect."
	msgNotSubscribed = "The operation failed because the requested device isn't online or hasn't registered the direct method callback."
	msgNoResponse    = "Timed out waiting for the response from device."
)

// DefaultResponseTimeout is used when a call carries responseTimeoutInSeconds 0 (the hub's
// default). Range validation (5..300) is the REST layer's job, not this package's.
const DefaultResponseTimeout = 30 * time.Second

// Options configures a Hub. The zero value is usable.
type Options struct {
	// OnConnect is called after a device's session state changes: connected=true when a
	// session connects (also when it replaces an older one), false when the current session
	// disconnects. Calls are serialised hub-wide, so the last call for a device always
	// reflects its current state; they happen outside the table's lock, so OnConnect may
	// call back into the Hub.
	OnConnect func(deviceID string, connected bool)
}

type session struct {
	dev Device
}

// Hub is the table of connected device sessions. It is safe for concurrent use.
type Hub struct {
	opts Options

	evMu sync.Mutex // serialises OnConnect calls and the table changes they report

	mu       sync.Mutex
	sessions map[string]*session
	waiters  map[string][]chan struct{} // closed when the device connects
}

// New returns an empty Hub.
func New(opts Options) *Hub {
	return &Hub{
		opts:     opts,
		sessions: make(map[string]*session),
		waiters:  make(map[string][]chan struct{}),
	}
}

// Connect registers d as deviceID's session, replacing (not disconnecting) an older one, as
// IoT Hub keeps one connection per device id. The returned func ends this session; it is
// idempotent and does nothing once a newer session has replaced this one.
// Reserve makes room for n more sessions at once, before a fleet of n devices connects: the
// session table is then sized once instead of being rehashed as it grows (a million devices
// connecting spent about a second in rehashing).
func (h *Hub) Reserve(n int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if n <= 0 {
		return
	}
	grown := make(map[string]*session, len(h.sessions)+n)
	for id, s := range h.sessions {
		grown[id] = s
	}
	h.sessions = grown
}

func (h *Hub) Connect(deviceID string, d Device) (disconnect func()) {
	s := &session{dev: d}
	h.evMu.Lock()
	h.mu.Lock()
	h.sessions[deviceID] = s
	ws := h.waiters[deviceID]
	delete(h.waiters, deviceID)
	h.mu.Unlock()
	for _, w := range ws {
		close(w)
	}
	if h.opts.OnConnect != nil {
		h.opts.OnConnect(deviceID, true)
	}
	h.evMu.Unlock()

	var once sync.Once
	return func() {
		once.Do(func() {
			h.evMu.Lock()
			defer h.evMu.Unlock()
			h.mu.Lock()
			current := h.sessions[deviceID] == s
			if current {
				delete(h.sessions, deviceID)
			}
			h.mu.Unlock()
			if current && h.opts.OnConnect != nil {
				h.opts.OnConnect(deviceID, false)
			}
		})
	}
}

// Connected reports whether deviceID has a session now.
func (h *Hub) Connected(deviceID string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.sessions[deviceID] != nil
}

// ConnectedCount is the number of connected devices.
func (h *Hub) ConnectedCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.sessions)
}

func (h *Hub) device(deviceID string) Device {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s := h.sessions[deviceID]; s != nil {
		return s.dev
	}
	return nil
}

// waitDevice returns deviceID's session, waiting up to wait for one to connect. It returns
// nil when none connected in time, and ctx's error when ctx ended first.
func (h *Hub) waitDevice(ctx context.Context, deviceID string, wait time.Duration) (Device, error) {
	if d := h.device(deviceID); d != nil || wait <= 0 {
		return d, nil
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		h.mu.Lock()
		if s := h.sessions[deviceID]; s != nil {
			h.mu.Unlock()
			return s.dev, nil
		}
		ch := make(chan struct{})
		h.waiters[deviceID] = append(h.waiters[deviceID], ch)
		h.mu.Unlock()
		select {
		case <-ch:
			// Connected; loop to pick the session up (it may already be gone again).
		case <-timer.C:
			h.dropWaiter(deviceID, ch)
			return h.device(deviceID), nil
		case <-ctx.Done():
			h.dropWaiter(deviceID, ch)
			return nil, ctx.Err()
		}
	}
}

func (h *Hub) dropWaiter(deviceID string, ch chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ws := h.waiters[deviceID]
	for i, w := range ws {
		if w == ch {
			ws = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(ws) == 0 {
		delete(h.waiters, deviceID)
	} else {
		h.waiters[deviceID] = ws
	}
}

// Invoke routes a direct method to deviceID. It waits up to ConnectTimeoutInSeconds for the
// device to connect (0 = it must be connected now), then up to ResponseTimeoutInSeconds
// (0 → 30 s) for the answer. It does not check that the device exists. When ctx ends first,
// ctx's error is returned (nobody is waiting for a hub error then).
func (h *Hub) Invoke(ctx context.Context, deviceID string, m hubapi.CloudToDeviceMethod) (hubapi.CloudToDeviceMethodResult, error) {
	connectWait := time.Duration(m.ConnectTimeoutInSeconds) * time.Second
	d, err := h.waitDevice(ctx, deviceID, connectWait)
	if err != nil {
		return hubapi.CloudToDeviceMethodResult{}, err
	}
	if d == nil {
		return hubapi.CloudToDeviceMethodResult{}, huberr.NewJSON(huberr.DeviceNotOnline,
			map[string]any{"timeout": hms(connectWait)}, "%s", msgNotConnected)
	}
	respWait := time.Duration(m.ResponseTimeoutInSeconds) * time.Second
	if respWait <= 0 {
		respWait = DefaultResponseTimeout
	}
	callCtx, cancel := context.WithTimeout(ctx, respWait)
	defer cancel()
	payload := m.Payload
	if len(payload) == 0 {
		payload = json.RawMessage("null")
	}
	status, resp, err := d.InvokeMethod(callCtx, m.MethodName, payload)
	switch {
	case err == nil:
		if len(resp) == 0 {
			resp = json.RawMessage("null")
		}
		return hubapi.CloudToDeviceMethodResult{Status: status, Payload: resp}, nil
	case ctx.Err() != nil:
		return hubapi.CloudToDeviceMethodResult{}, ctx.Err()
	case errors.Is(err, ErrNotSubscribed):
		return hubapi.CloudToDeviceMethodResult{}, huberr.NewJSON(huberr.DeviceNotOnline,
			map[string]any{}, "%s", msgNotSubscribed)
	default:
		// The response timeout, or the session failing mid-call (e.g. it dropped): either way
		// no answer came back, which the hub reports as a gateway timeout.
		return hubapi.CloudToDeviceMethodResult{}, huberr.NewJSON(huberr.GatewayTimeout,
			map[string]any{}, "%s", msgNoResponse)
	}
}

// NotifyDesired forwards a desired-property change to deviceID's session, if connected.
// It never blocks on the device (Device.DesiredChanged must not block); it is meant for
// registry.Options.OnDesired.
func (h *Hub) NotifyDesired(deviceID string, patch map[string]any, version int64) {
	if d := h.device(deviceID); d != nil {
		d.DesiredChanged(patch, version)
	}
}

// hms formats d as the hub's "hh:mm:ss" timeout info.
func hms(d time.Duration) string {
	s := int64(d / time.Second)
	return fmt.Sprintf("%02d:%02d:%02d", s/3600, s/60%60, s%60)
}
