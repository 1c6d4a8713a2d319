package mqttapi

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/amenzhinsky/iothub/iotdevice"
	iotmqtt "github.com/amenzhinsky/iothub/iotdevice/transport/mqtt"
	paho "github.com/eclipse/paho.mqtt.golang"
	"go.etcd.io/bbolt"

	"github.com/iotplan/iotplan/internal/hub/link"
	"github.com/iotplan/iotplan/internal/hub/registry"
)

// The hub's new-connection throttle (Options.AdmitConnect) is asked for every authenticated
// CONNECT and refuses the ones it rejects; unauthenticated ones never reach it.
func TestAdmitConnectThrottlesConnections(t *testing.T) {
	db, err := bbolt.Open(filepath.Join(t.TempDir(), "hub.db"), 0o600, &bbolt.Options{Timeout: time.Second, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var reg *registry.Registry
	lh := link.New(link.Options{OnConnect: func(id string, c bool) { _ = reg.SetConnectionState(id, c, time.Now()) }})
	if reg, err = registry.Open(db, registry.Options{OnDesired: lh.NotifyDesired}); err != nil {
		t.Fatal(err)
	}
	var asked atomic.Int64
	serverTLS, pool := testTLS(t)
	srv, err := Start(context.Background(), Options{
		HostName: testHost, TLSConfig: serverTLS, Addr: "127.0.0.1:0", Registry: reg, Link: lh, Logger: testLogger(t),
		AdmitConnect: func(context.Context) error {
			if asked.Add(1) > 2 {
				return errors.New("throttled: 2 connections allowed")
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	e := &env{t: t, reg: reg, link: lh, srv: srv, pool: pool, addr: srv.Addr().String()}

	keys := map[string]string{}
	for _, id := range []string{"d1", "d2", "d3"} {
		keys[id], _ = e.addDevice(id, "")
	}
	// A wrong key is refused by authentication; the throttle is not asked.
	if err := tryConnect(e, "d1", "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXk="); err == nil {
		t.Fatal("a wrong key connected")
	}
	if asked.Load() != 0 {
		t.Fatalf("the throttle was asked %d times for a refused CONNECT", asked.Load())
	}
	e.device("d1", keys["d1"])
	e.device("d2", keys["d2"])
	if err := tryConnect(e, "d3", keys["d3"]); err == nil {
		t.Fatal("the third connection was admitted past the throttle")
	}
	// The session joins the link table just after CONNACK: give it a moment (bounded).
	connected := func(id string) bool {
		for deadline := time.Now().Add(2 * time.Second); !lh.Connected(id) && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
		return lh.Connected(id)
	}
	if asked.Load() != 3 || !connected("d1") || !connected("d2") || lh.Connected("d3") {
		t.Errorf("asked %d; connected d1 %v d2 %v d3 %v", asked.Load(), lh.Connected("d1"), lh.Connected("d2"), lh.Connected("d3"))
	}
	if st := srv.Stats(); st.Rejected != 2 {
		t.Errorf("rejected = %d, want 2 (bad key, throttled)", st.Rejected)
	}
}

// tryConnect connects a device once and returns the error instead of failing the test.
func tryConnect(e *env, id, key string) error {
	tr := iotmqtt.New(iotmqtt.WithClientOptionsConfig(func(o *paho.ClientOptions) {
		o.Servers = nil
		o.AddBroker("tls://" + e.addr)
		o.SetTLSConfig(e.clientTLS())
		o.SetConnectTimeout(5 * time.Second)
		o.SetConnectRetry(false)
	}))
	c, err := iotdevice.NewFromConnectionString(tr, connString(id, key), iotdevice.WithLogger(quietSDK))
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return c.Connect(ctx)
}
