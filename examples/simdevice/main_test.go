package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"github.com/iotplan/iotplan/internal/lockedbuf"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/iotplan/iotplan/internal/hub/link"
	"github.com/iotplan/iotplan/internal/hub/mqttapi"
	"github.com/iotplan/iotplan/internal/hub/registry"
	"github.com/iotplan/iotplan/internal/hubapi"
)

// The example against the local hub's real MQTT endpoint: a lockDoor call gets 200 and prints
// "Locking Door!"; desired properties (set before and after it connects) come back reported.
func TestSimDeviceAgainstLocalHub(t *testing.T) {
	dir := t.TempDir()
	db, err := bbolt.Open(filepath.Join(dir, "hub.db"), 0o600, &bbolt.Options{Timeout: time.Second, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var reg *registry.Registry
	lh := link.New(link.Options{OnConnect: func(id string, c bool) { _ = reg.SetConnectionState(id, c, time.Now()) }})
	reg, err = registry.Open(db, registry.Options{OnDesired: lh.NotifyDesired})
	if err != nil {
		t.Fatal(err)
	}
	dev, err := reg.CreateOrUpdateDevice(registry.Device{DeviceID: "myDeviceId"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.UpdateTwin("myDeviceId", hubapi.TwinPatch{Properties: &hubapi.TwinProperties{Desired: map[string]any{"building": "43"}}}, ""); err != nil {
		t.Fatal(err)
	}
	serverTLS, caFile := testCA(t, dir)
	srv, err := mqttapi.Start(context.Background(), mqttapi.Options{
		HostName: "localhost:8443", TLSConfig: serverTLS, Addr: "127.0.0.1:0", Registry: reg, Link: lh,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	// Flags from the environment, as the README shows.
	env := map[string]string{
		"IOTHUB_DEVICE_CONNECTION_STRING": "HostName=localhost:8443;DeviceId=myDeviceId;SharedAccessKey=" + dev.Authentication.SymmetricKey.PrimaryKey,
		"IOTHUB_CA_FILE":                  caFile,
		"IOTHUB_MQTT_ADDR":                srv.Addr().String(),
	}
	cfg, err := parseFlags(nil, func(k string) string { return env[k] }, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	out := &lockedbuf.Buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, out, slog.New(slog.DiscardHandler), func() { close(ready) }) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("run ended: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatal("device not ready")
	}

	res, err := lh.Invoke(context.Background(), "myDeviceId", hubapi.CloudToDeviceMethod{MethodName: "lockDoor", ResponseTimeoutInSeconds: 15})
	if err != nil || res.Status != 200 {
		t.Fatalf("lockDoor = %+v, %v", res, err)
	}
	if !strings.Contains(out.String(), "Locking Door!\n") {
		t.Errorf("stdout = %q", out.String())
	}
	if _, err := reg.UpdateTwin("myDeviceId", hubapi.TwinPatch{Properties: &hubapi.TwinProperties{Desired: map[string]any{"floor": 3}}}, "*"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		twin, _ := reg.GetTwin("myDeviceId")
		rep := twin["properties"].(map[string]any)["reported"].(map[string]any)
		if rep["building"] == "43" && rep["floor"] == float64(3) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("reported = %v, want building 43 and floor 3 echoed", rep)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestParseFlags(t *testing.T) {
	none := func(string) string { return "" }
	if _, err := parseFlags(nil, none, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "IOTHUB_DEVICE_CONNECTION_STRING") {
		t.Errorf("missing connection string: %v", err)
	}
	cfg, err := parseFlags([]string{"-connection-string", "HostName=h;DeviceId=d;SharedAccessKey=k", "-ca", "ca.pem"}, none, &bytes.Buffer{})
	if err != nil || cfg.caFile != "ca.pem" || cfg.mqttAddr != "" {
		t.Errorf("flags: %+v %v", cfg, err)
	}
	if _, err := parseFlags([]string{"-connection-string", "x", "extra"}, none, &bytes.Buffer{}); err == nil {
		t.Error("extra argument accepted")
	}
	for _, c := range []struct{ flag, host, want string }{
		{"", "localhost", "localhost:8883"},
		{"", "localhost:8443", "localhost:8883"},
		{"", "myhub.azure-devices.net", "myhub.azure-devices.net:8883"},
		{"127.0.0.1:1883", "localhost:8443", "127.0.0.1:1883"},
	} {
		if got := brokerAddr(c.flag, c.host); got != c.want {
			t.Errorf("brokerAddr(%q, %q) = %q, want %q", c.flag, c.host, got, c.want)
		}
	}
}

func TestRunBadInput(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	key := "SharedAccessKey=c2VjcmV0LWtleS1tYXRlcmlhbA=="
	for _, c := range []struct{ cs, ca, want string }{
		{"garbage", "", "connection string"},
		{"HostName=h;DeviceId=d;" + key, filepath.Join(t.TempDir(), "missing.pem"), "CA file"},
	} {
		err := run(context.Background(), config{connectionString: c.cs, caFile: c.ca}, &bytes.Buffer{}, log, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "c2VjcmV0") {
			t.Errorf("run(%q) = %v, want an error about %s without the key", c.cs, err, c.want)
		}
	}
}

// testCA makes a CA (written to dir/ca.pem, as `iotplan dev` writes its own) and a server
// certificate for localhost.
func testCA(t *testing.T, dir string) (*tls.Config, string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "simdevice test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{leafDER, caDER}, PrivateKey: key}}}, caFile
}
