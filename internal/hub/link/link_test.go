package link

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/iotplan/iotplan/internal/hub/huberr"
	"github.com/iotplan/iotplan/internal/hubapi"
)

// testDevice answers every method after delay with status 200 and echoes the payload,
// except names in notSubscribed.
type testDevice struct {
	delay         time.Duration
	notSubscribed map[string]bool
	mu            sync.Mutex
	desired       []int64
}

func (d *testDevice) InvokeMethod(ctx context.Context, name string, payload json.RawMessage) (int, json.RawMessage, error) {
	if d.notSubscribed[name] {
		return 0, nil, ErrNotSubscribed
	}
	t := time.NewTimer(d.delay)
	defer t.Stop()
	select {
	case <-t.C:
		return 200, payload, nil
	case <-ctx.Done():
		return 0, nil, ctx.Err()
	}
}

func (d *testDevice) DesiredChanged(patch map[string]any, version int64) {
	d.mu.Lock()
	d.desired = append(d.desired, version)
	d.mu.Unlock()
}

func TestConnectReplaceDisconnect(t *testing.T) {
	type ev struct {
		id string
		on bool
	}
	var events []ev
	h := New(Options{OnConnect: func(id string, on bool) { events = append(events, ev{id, on}) }})
	d1, d2 := &testDevice{}, &testDevice{}
	disc1 := h.Connect("a", d1)
	if !h.Connected("a") || h.ConnectedCount() != 1 {
		t.Fatal("a should be connected")
	}
	disc2 := h.Connect("a", d2) // replaces d1
	disc1()                     // stale: must not disconnect d2
	if !h.Connected("a") {
		t.Fatal("stale disconnect removed the newer session")
	}
	h.NotifyDesired("a", map[string]any{"x": 1.0}, 7)
	if len(d1.desired) != 0 || len(d2.desired) != 1 || d2.desired[0] != 7 {
		t.Fatalf("desired routed wrongly: d1=%v d2=%v", d1.desired, d2.desired)
	}
	disc2()
	disc2() // idempotent
	if h.Connected("a") {
		t.Fatal("a still connected")
	}
	h.NotifyDesired("a", map[string]any{"x": 2.0}, 8) // no session: no-op
	want := []ev{{"a", true}, {"a", true}, {"a", false}}
	if len(events) != len(want) {
		t.Fatalf("events = %v, want %v", events, want)
	}
	for i := range want {
		if events[i] != want[i] {
			t.Fatalf("events = %v, want %v", events, want)
		}
	}
}

func TestInvokeAnswers(t *testing.T) {
	h := New(Options{})
	h.Connect("d", &testDevice{})
	res, err := h.Invoke(context.Background(), "d", hubapi.CloudToDeviceMethod{MethodName: "lockDoor", Payload: json.RawMessage(`{"a":1}`)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != 200 || string(res.Payload) != `{"a":1}` {
		t.Fatalf("result = %d %s", res.Status, res.Payload)
	}
	// A missing payload travels as JSON null.
	res, err = h.Invoke(context.Background(), "d", hubapi.CloudToDeviceMethod{MethodName: "lockDoor"})
	if err != nil || string(res.Payload) != "null" {
		t.Fatalf("null payload: %s %v", res.Payload, err)
	}
}

func wantHubErr(t *testing.T, err error, code huberr.Code, msg string) *huberr.Error {
	t.Helper()
	he, ok := err.(*huberr.Error)
	if !ok {
		t.Fatalf("err = %v (%T), want *huberr.Error %d", err, err, code)
	}
	if he.Code != code || he.Format != huberr.JSONMessage || he.Msg != msg {
		t.Fatalf("err = %+v, want code %d JSON envelope %q", he, code, msg)
	}
	return he
}

func TestInvokeNotConnected(t *testing.T) {
	h := New(Options{})
	_, err := h.Invoke(context.Background(), "ghost", hubapi.CloudToDeviceMethod{MethodName: "m"})
	he := wantHubErr(t, err, huberr.DeviceNotOnline, msgNotConnected)
	if he.Info["timeout"] != "00:00:00" {
		t.Fatalf("info = %v", he.Info)
	}
	start := time.Now()
	_, err = h.Invoke(context.Background(), "ghost", hubapi.CloudToDeviceMethod{MethodName: "m", ConnectTimeoutInSeconds: 1})
	he = wantHubErr(t, err, huberr.DeviceNotOnline, msgNotConnected)
	if he.Info["timeout"] != "00:00:01" || time.Since(start) < time.Second {
		t.Fatalf("connect timeout not honoured: info=%v after %v", he.Info, time.Since(start))
	}
	if len(h.waiters) != 0 {
		t.Fatalf("waiters leaked: %v", h.waiters)
	}
}

func TestInvokeWaitsForConnect(t *testing.T) {
	h := New(Options{})
	go func() {
		time.Sleep(100 * time.Millisecond)
		h.Connect("late", &testDevice{})
	}()
	res, err := h.Invoke(context.Background(), "late", hubapi.CloudToDeviceMethod{MethodName: "m", ConnectTimeoutInSeconds: 5})
	if err != nil || res.Status != 200 {
		t.Fatalf("res=%v err=%v", res, err)
	}
}

func TestInvokeNotSubscribed(t *testing.T) {
	h := New(Options{})
	h.Connect("d", &testDevice{notSubscribed: map[string]bool{"reboot": true}})
	_, err := h.Invoke(context.Background(), "d", hubapi.CloudToDeviceMethod{MethodName: "reboot"})
	wantHubErr(t, err, huberr.DeviceNotOnline, msgNotSubscribed)
}

func TestInvokeResponseTimeout(t *testing.T) {
	h := New(Options{})
	h.Connect("slow", &testDevice{delay: time.Hour})
	start := time.Now()
	_, err := h.Invoke(context.Background(), "slow", hubapi.CloudToDeviceMethod{MethodName: "m", ResponseTimeoutInSeconds: 1})
	wantHubErr(t, err, huberr.GatewayTimeout, msgNoResponse)
	if el := time.Since(start); el < time.Second {
		t.Fatalf("returned after %v, before the response timeout", el)
	}
}

func TestInvokeCallerCancelled(t *testing.T) {
	h := New(Options{})
	h.Connect("slow", &testDevice{delay: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := h.Invoke(ctx, "slow", hubapi.CloudToDeviceMethod{MethodName: "m"})
	if err != context.DeadlineExceeded {
		t.Fatalf("err = %v, want the caller's context error", err)
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	cancel2()
	_, err = h.Invoke(ctx2, "nobody", hubapi.CloudToDeviceMethod{MethodName: "m", ConnectTimeoutInSeconds: 30})
	if err != context.Canceled {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestHMS(t *testing.T) {
	for d, want := range map[time.Duration]string{0: "00:00:00", 300 * time.Second: "00:05:00", 3725 * time.Second: "01:02:05"} {
		if got := hms(d); got != want {
			t.Errorf("hms(%v) = %s, want %s", d, got, want)
		}
	}
}

// TestReserveKeepsSessions: making room for more sessions keeps the connected ones, and a
// disconnect function taken before still ends its session.
func TestReserveKeepsSessions(t *testing.T) {
	h := New(Options{})
	disc := h.Connect("a", &testDevice{})
	h.Connect("b", &testDevice{})
	h.Reserve(1000)
	h.Reserve(0)
	if !h.Connected("a") || !h.Connected("b") || h.ConnectedCount() != 2 {
		t.Fatalf("after Reserve: %d connected", h.ConnectedCount())
	}
	disc()
	if h.Connected("a") || h.ConnectedCount() != 1 {
		t.Fatal("a disconnect taken before Reserve did not end its session")
	}
}
