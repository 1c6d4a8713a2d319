package mqttapi

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/amenzhinsky/iothub/iotdevice"
	iotmqtt "github.com/amenzhinsky/iothub/iotdevice/transport/mqtt"
	"github.com/amenzhinsky/iothub/logger"
	paho "github.com/eclipse/paho.mqtt.golang"
	"go.etcd.io/bbolt"

	"github.com/iotplan/iotplan/internal/hub/link"
	"github.com/iotplan/iotplan/internal/hub/registry"
	"github.com/iotplan/iotplan/internal/sas"
)

// testHost is the hub's HostName in tests: with a port, as `iotplan dev` on a non-443 port
// reports it, so every test also exercises port-tolerant host comparison (devices dial the
// MQTT listener's random port, not this one).
const testHost = "localhost:8443"

// env is a real hub slice: bbolt registry, link.Hub wired as internal/hub wires it, and the
// MQTT endpoint on 127.0.0.1:0 with TLS from a CA made for the test.
type env struct {
	t      *testing.T
	db     *bbolt.DB
	reg    *registry.Registry
	link   *link.Hub
	srv    *Server
	pool   *x509.CertPool
	srvTLS *tls.Config // the endpoint's TLS config (for an HTTPS server in WebSocket tests)
	addr   string

	mu       sync.Mutex
	policies map[string]Policy
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvLogging(t, testLogger(t))
}

// newEnvLogging is newEnv with the endpoint's log going to log.
func newEnvLogging(t *testing.T, log *slog.Logger) *env {
	t.Helper()
	e := &env{t: t, policies: map[string]Policy{}}
	db, err := bbolt.Open(filepath.Join(t.TempDir(), "hub.db"), 0o600, &bbolt.Options{Timeout: time.Second, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e.db = db
	var reg *registry.Registry
	// As internal/hub wires them: link's connection events update the registry, the
	// registry's desired changes go to link.
	e.link = link.New(link.Options{OnConnect: func(id string, connected bool) {
		if err := reg.SetConnectionState(id, connected, time.Now()); err != nil {
			t.Errorf("SetConnectionState(%s): %v", id, err)
		}
	}})
	reg, err = registry.Open(db, registry.Options{OnDesired: e.link.NotifyDesired})
	if err != nil {
		t.Fatal(err)
	}
	e.reg = reg

	serverTLS, pool := testTLS(t)
	e.pool, e.srvTLS = pool, serverTLS
	e.srv, err = Start(context.Background(), Options{
		HostName:  testHost,
		TLSConfig: serverTLS,
		Addr:      "127.0.0.1:0",
		Registry:  reg,
		Link:      e.link,
		Policies: func(name string) (Policy, bool) {
			e.mu.Lock()
			defer e.mu.Unlock()
			p, ok := e.policies[name]
			return p, ok
		},
		Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.srv.Close() })
	e.addr = e.srv.Addr().String()
	return e
}

// addDevice registers a device with generated keys.
func (e *env) addDevice(id, status string) (primary, secondary string) {
	e.t.Helper()
	d := registry.Device{DeviceID: id, Status: status}
	got, err := e.reg.CreateOrUpdateDevice(d, "")
	if err != nil {
		e.t.Fatal(err)
	}
	return got.Authentication.SymmetricKey.PrimaryKey, got.Authentication.SymmetricKey.SecondaryKey
}

func connString(id, key string) string {
	return "HostName=" + testHost + ";DeviceId=" + id + ";SharedAccessKey=" + key
}

// clientTLS trusts only the test CA; ServerName is set because the client dials 127.0.0.1.
func (e *env) clientTLS() *tls.Config {
	return &tls.Config{RootCAs: e.pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}
}

// device connects the real amenzhinsky iotdevice client over MQTT/TLS. Its transport dials
// HostName:8883 by design, so the broker address is redirected (as examples/simdevice does).
func (e *env) device(id, key string) *iotdevice.Client {
	e.t.Helper()
	tr := iotmqtt.New(iotmqtt.WithClientOptionsConfig(func(o *paho.ClientOptions) {
		o.Servers = nil
		o.AddBroker("tls://" + e.addr)
		o.SetTLSConfig(e.clientTLS())
		o.SetConnectTimeout(5 * time.Second)
	}))
	c, err := iotdevice.NewFromConnectionString(tr, connString(id, key), iotdevice.WithLogger(quietSDK))
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Connect(ctx); err != nil {
		e.t.Fatalf("device %s: connect: %v", id, err)
	}
	e.t.Cleanup(func() { c.Close() })
	return c
}

// raw connects a plain paho client with explicit CONNECT fields (no auto-reconnect), for
// tests that need tokens or topics the SDKs never produce.
func (e *env) raw(clientID, username, password string, clean bool, opts ...func(*paho.ClientOptions)) (paho.Client, error) {
	o := paho.NewClientOptions()
	o.AddBroker("tls://" + e.addr)
	o.SetTLSConfig(e.clientTLS())
	o.SetProtocolVersion(4)
	o.SetClientID(clientID)
	o.SetUsername(username)
	o.SetPassword(password)
	o.SetCleanSession(clean)
	o.SetAutoReconnect(false)
	o.SetConnectRetry(false)
	o.SetConnectTimeout(5 * time.Second)
	for _, f := range opts {
		f(o)
	}
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, errTimeout
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	e.t.Cleanup(func() { c.Disconnect(50) })
	return c, nil
}

// quietSDK silences the SDK's own log (it logs, e.g., calls to unregistered methods, which
// some tests make on purpose).
var quietSDK = logger.New(logger.LevelOff, nil)

type timeoutError struct{}

func (timeoutError) Error() string { return "timed out" }

var errTimeout error = timeoutError{}

// rawDevice connects devID with a valid Node-style CONNECT.
func (e *env) rawDevice(devID, key string, clean bool, opts ...func(*paho.ClientOptions)) paho.Client {
	e.t.Helper()
	c, err := e.raw(devID, nodeUsername(testHost, devID), deviceToken(e.t, testHost, devID, key, time.Now().Add(time.Hour)), clean, opts...)
	if err != nil {
		e.t.Fatalf("connect %s: %v", devID, err)
	}
	return c
}

// deviceToken is a device-key token as Node signs it (sr = host/devices/id).
func deviceToken(t *testing.T, host, id, key string, expiry time.Time) string {
	t.Helper()
	tok, err := sas.NewToken(host+"/devices/"+id, key, "", expiry)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func nodeUsername(host, id string) string {
	return host + "/" + id + "/?api-version=2021-04-12&DeviceClientType=azure-iot-device%2F1.18.4%20(node%20v20.20.2%3B%20Debian%2012%3B%20x64)"
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// testTLS makes a CA and a server certificate for localhost / 127.0.0.1.
func testTLS(t *testing.T) (*tls.Config, *x509.CertPool) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "mqttapi test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{leafDER, caDER}, PrivateKey: key}},
		MinVersion:   tls.VersionTLS12,
	}, pool
}

// testLogger discards the endpoint's log unless MQTTAPI_TEST_LOG=1 (then: stderr, debug level).
// (t.Log is not used: broker goroutines may log after a test has returned.)
func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("MQTTAPI_TEST_LOG") != "1" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
}
