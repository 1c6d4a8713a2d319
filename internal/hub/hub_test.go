package hub_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/amenzhinsky/iothub/iotservice"

	"github.com/iotplan/iotplan/internal/hub"
	"github.com/iotplan/iotplan/internal/sas"
)

func start(t *testing.T, dir string) *hub.Hub {
	t.Helper()
	h, err := hub.Start(context.Background(), hub.Options{DataDir: dir, HTTPSAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func client(t *testing.T, h *hub.Hub, cs string) *iotservice.Client {
	t.Helper()
	// iotservice v0.9.1 uses WithTLSConfig for AMQP only; its REST calls need WithHTTPClient.
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: h.RootCAs()}}, Timeout: 30 * time.Second}
	c, err := iotservice.NewFromConnectionString(cs, iotservice.WithHTTPClient(hc))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestStartServeRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dev")
	h := start(t, dir)
	ctx := context.Background()

	if !strings.HasPrefix(h.HostName(), "localhost:") {
		t.Fatalf("HostName = %q", h.HostName())
	}
	cs, err := sas.ParseConnectionString(h.ServiceConnectionString())
	if err != nil || cs.SharedAccessKeyName != "iothubowner" || cs.HostName != h.HostName() {
		t.Fatalf("service connection string %v %v", cs.Redacted(), err)
	}
	if _, err := os.Stat(h.CAFile()); err != nil || !filepath.IsAbs(h.CAFile()) {
		t.Fatalf("CA file %s: %v", h.CAFile(), err)
	}
	n := h.Sim().DeviceCount()
	if n < 2 || h.Registry().DeviceCount() != n {
		t.Fatalf("fleet %d devices, registry %d", n, h.Registry().DeviceCount())
	}

	c := client(t, h, h.ServiceConnectionString())
	tw, err := c.GetDeviceTwin(ctx, "myDeviceId")
	if err != nil {
		t.Fatal(err)
	}
	if tw.DeviceID != "myDeviceId" || tw.ConnectionState != iotservice.Connected {
		t.Fatalf("twin %+v", tw)
	}
	res, err := c.CallDeviceMethod(ctx, "myDeviceId", &iotservice.MethodCall{MethodName: "lockDoor", ResponseTimeout: 15})
	if err != nil || res.Status != 200 {
		t.Fatalf("lockDoor: %+v %v", res, err)
	}
	if h.Sim().Calls("myDeviceId", "lockDoor") != 1 {
		t.Fatalf("sim calls %d", h.Sim().Calls("myDeviceId", "lockDoor"))
	}
	var count int
	if err := c.QueryDevices(ctx, "SELECT COUNT() AS n FROM devices", func(v map[string]interface{}) error {
		count = int(v["n"].(float64))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if count != n || h.Requests()["POST /devices/query"] != 1 || h.Requests()["POST /twins/{id}/methods"] != 1 {
		t.Fatalf("count %d, requests %v", count, h.Requests())
	}
	// Each default policy has a connection string; the registryRead one cannot read twins.
	rcs, err := h.PolicyConnectionString("registryRead")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client(t, h, rcs).GetDeviceTwin(ctx, "myDeviceId"); err == nil {
		t.Fatal("registryRead read a twin")
	}
	dcs, err := h.DeviceConnectionString("myDeviceId")
	if err != nil {
		t.Fatal(err)
	}
	if d, err := sas.ParseConnectionString(dcs); err != nil || d.DeviceID != "myDeviceId" {
		t.Fatalf("device connection string: %v", err)
	}
	if _, err := h.DeviceConnectionString("nope"); err == nil {
		t.Fatal("connection string for an unknown device")
	}

	// A desired change made now survives the restart.
	tw.Properties = &iotservice.Properties{Desired: map[string]interface{}{"building": "43"}}
	if _, err := c.UpdateDeviceTwin(ctx, tw); err != nil {
		t.Fatal(err)
	}
	ca1, _ := os.ReadFile(h.CAFile())
	svc1 := h.ServiceConnectionString()
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil { // idempotent
		t.Fatal(err)
	}

	h2 := start(t, dir)
	defer h2.Close()
	ca2, _ := os.ReadFile(h2.CAFile())
	if !bytes.Equal(ca1, ca2) {
		t.Fatal("CA changed across restart")
	}
	svc2 := h2.ServiceConnectionString()
	k1, _ := sas.ParseConnectionString(svc1)
	k2, _ := sas.ParseConnectionString(svc2)
	if k1.SharedAccessKey != k2.SharedAccessKey {
		t.Fatal("policy keys changed across restart")
	}
	if h2.Registry().DeviceCount() != n || h2.Sim().DeviceCount() != n {
		t.Fatalf("after restart: registry %d sim %d, want %d", h2.Registry().DeviceCount(), h2.Sim().DeviceCount(), n)
	}
	tw2, err := client(t, h2, svc2).GetDeviceTwin(ctx, "myDeviceId")
	if err != nil {
		t.Fatal(err)
	}
	if tw2.Properties.Desired["building"] != "43" {
		t.Fatalf("desired lost across restart: %v", tw2.Properties.Desired)
	}
}

func TestStartErrors(t *testing.T) {
	dir := t.TempDir()
	// The port is taken: the error names --https-port and the trade-off.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = hub.Start(context.Background(), hub.Options{DataDir: filepath.Join(dir, "a"), HTTPSAddr: ln.Addr().String()})
	if err == nil || !strings.Contains(err.Error(), "--https-port") || !strings.Contains(err.Error(), "Azure's SDKs") {
		t.Fatalf("busy port: %v", err)
	}
	// The failed start released the store: a second start on the same directory works.
	h := start(t, filepath.Join(dir, "a"))
	// The same data directory cannot be opened twice.
	_, err = hub.Start(context.Background(), hub.Options{DataDir: filepath.Join(dir, "a"), HTTPSAddr: "127.0.0.1:0"})
	if err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second hub on one dir: %v", err)
	}
	h.Close()
	// A broken fleet file fails before anything is created.
	bad := filepath.Join(dir, "bad.hcl")
	if err := os.WriteFile(bad, []byte("group \"x\" {\n  count = \n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = hub.Start(context.Background(), hub.Options{DataDir: filepath.Join(dir, "b"), HTTPSAddr: "127.0.0.1:0", FleetFile: bad})
	if err == nil || !strings.Contains(err.Error(), "bad.hcl") {
		t.Fatalf("bad fleet: %v", err)
	}
	if _, statErr := os.Stat(filepath.Join(dir, "b")); !os.IsNotExist(statErr) {
		t.Fatalf("a bad fleet file left a data directory: %v", statErr)
	}
	_, err = hub.Start(context.Background(), hub.Options{DataDir: filepath.Join(dir, "c"), HostName: "localhost:8443", HTTPSAddr: "127.0.0.1:0"})
	if err == nil {
		t.Fatal("host name with a port accepted")
	}
}
