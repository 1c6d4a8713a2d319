package main

import (
	"bytes"
	"context"
	"github.com/iotplan/iotplan/internal/lockedbuf"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/iotplan/iotplan/internal/cli"
	"github.com/iotplan/iotplan/internal/hub"
	"github.com/iotplan/iotplan/internal/hub/hubtest"
)

// The tutorial end to end through every real piece: the local hub with its MQTT endpoint, this
// example device connected over MQTT/TLS as myDeviceId, and `iotplan apply` scheduling the
// method and twin jobs of examples/lockdoor.hcl over HTTPS. The device must answer the job's
// lockDoor call and report the desired properties the twin job set.
func TestSimDeviceAnswersIotplanApply(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// A strict hub that audits every query and job condition iotplan sends (hubtest), where
	// myDeviceId exists but no simulated device answers for it: this example does.
	h, _, _ := hubtest.StartAuditedWith(t, hub.Options{MQTTAddr: "127.0.0.1:0"}, "device \"myDeviceId\" {\n  offline = true\n}\n")

	dcs, err := h.DeviceConnectionString("myDeviceId")
	if err != nil {
		t.Fatal(err)
	}
	out := &lockedbuf.Buffer{}
	ready := make(chan struct{})
	done := make(chan error, 1)
	devCtx, stopDevice := context.WithCancel(ctx)
	go func() {
		done <- run(devCtx, config{connectionString: dcs, caFile: h.CAFile(), mqttAddr: h.MQTTAddr().String()},
			out, slog.New(slog.DiscardHandler), func() { close(ready) })
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("device stopped before it was ready: %v\n%s", err, out.String())
	case <-ctx.Done():
		t.Fatal("device not ready in time")
	}
	defer func() {
		stopDevice()
		<-done
	}()

	// `iotplan apply -dev` finds the running hub through its endpoint file, as it finds a
	// running `iotplan dev`.
	if err := cli.WriteEndpoint(dir, h.ServiceConnectionString(), h.CAFile(), os.Getpid()); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := cli.Main([]string{"apply", "-dev", "-data", dir, "-auto-approve", "../lockdoor.hcl"},
		cli.Streams{In: strings.NewReader(""), Out: &stdout, Err: &stderr, Width: 100})
	if code != 0 {
		t.Fatalf("iotplan apply exit %d\n%s\n%s\ndevice:\n%s", code, stdout.String(), stderr.String(), out.String())
	}
	if !strings.Contains(out.String(), "Locking Door!") {
		t.Errorf("the device did not receive lockDoor; its output:\n%s", out.String())
	}

	// The device reports what it was told; wait (bounded) for the echo to land in the twin.
	deadline := time.Now().Add(20 * time.Second)
	for {
		twin, err := h.Registry().GetTwin("myDeviceId")
		if err != nil {
			t.Fatal(err)
		}
		reported := twin["properties"].(map[string]any)["reported"].(map[string]any)
		if reported["building"] == "43" && reported["floor"] == float64(3) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("reported properties after apply = %v, want building \"43\" and floor 3", reported)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
