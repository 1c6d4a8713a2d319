package process

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/iotplan/iotplan/internal/sas"
)

// meterFleet: n devices that the hub registers but never simulates (offline), so that the
// test's own MQTT clients are their only connections.
func meterFleet(n int) string {
	return fmt.Sprintf(`
group "meters" {
  count   = %d
  id      = "meter-%%02d"
  offline_fraction = 1
}
`, n)
}

// mqttBanner finds the device MQTT port in the banner 'iotplan dev' prints.
var mqttBanner = regexp.MustCompile(`MQTT:\s+\S+:(\d+) `)

func (p *hubProc) mqttAddr(t *testing.T) string {
	t.Helper()
	m := mqttBanner.FindStringSubmatch(p.out.String())
	if m == nil {
		t.Fatalf("no MQTT port in the banner:\n%s", p.out)
	}
	return "127.0.0.1:" + m[1]
}

// meter is one device's MQTT client writing reported counters. Its hub acknowledges a
// reported patch with $iothub/twin/res/204/?$rid=N&$version=V once it is stored
// (https://learn.microsoft.com/azure/iot/iot-mqtt-connect-to-iot-hub, "Update device twin's
// reported properties"), so acked counts what the hub promised to keep.
type meter struct {
	id                string
	acked, attempted  int
	ackedThisRound    int
	client            paho.Client
	res               chan paho.Message
	lost              chan struct{}
	connectErr, ended error
}

// connect opens the meter's MQTT 3.1.1 session with a device-key SAS token (user name
// "{host}/{id}/?api-version=…", as the MQTT page above describes) and subscribes to twin
// responses.
func (m *meter) connect(p *hubProc, addr, key string, roots *x509.CertPool) error {
	host := p.c.HostName()
	tok, err := sas.NewToken(host+"/devices/"+m.id, key, "", time.Now().Add(time.Hour))
	if err != nil {
		return err
	}
	m.res, m.lost = make(chan paho.Message, 16), make(chan struct{})
	o := paho.NewClientOptions()
	o.AddBroker("tls://" + addr)
	o.SetTLSConfig(&tls.Config{RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS12})
	o.SetProtocolVersion(4)
	o.SetClientID(m.id)
	o.SetUsername(host + "/" + m.id + "/?api-version=2021-04-12")
	o.SetPassword(tok)
	o.SetCleanSession(true)
	o.SetAutoReconnect(false)
	o.SetConnectRetry(false)
	o.SetConnectTimeout(10 * time.Second)
	lost := m.lost
	o.SetConnectionLostHandler(func(paho.Client, error) { close(lost) })
	m.client = paho.NewClient(o)
	if ct := m.client.Connect(); !ct.WaitTimeout(15*time.Second) || ct.Error() != nil {
		return fmt.Errorf("%s: CONNECT: %v", m.id, ct.Error())
	}
	res := m.res
	st := m.client.Subscribe("$iothub/twin/res/#", 0, func(_ paho.Client, msg paho.Message) {
		select {
		case res <- msg:
		default: // a response nobody waits for any more
		}
	})
	if !st.WaitTimeout(10*time.Second) || st.Error() != nil {
		return fmt.Errorf("%s: SUBSCRIBE: %v", m.id, st.Error())
	}
	return nil
}

// write first sends a patch the hub must refuse (a "$" key: 400, docs/hub-api.md §3), whose
// counter of -1 must never appear, then reported {"counter": n} patches, n rising from
// attempted+1, each after the last was acknowledged, until stop or until the hub stops
// answering (it was killed).
func (m *meter) write(stop <-chan struct{}) {
	if status, ok := m.request("refused", `{"counter":-1,"$bad":1}`); ok && status != "400" {
		m.ended = fmt.Errorf("a patch with a $ key answered %s, want 400", status)
		return
	}
	for n := m.attempted + 1; ; n++ {
		select {
		case <-stop:
			return
		case <-m.lost:
			return
		default:
		}
		m.attempted = n
		status, ok := m.request(strconv.Itoa(n), fmt.Sprintf(`{"counter":%d}`, n))
		if !ok {
			return
		}
		if status != "204" {
			m.ended = fmt.Errorf("patch %d answered %s", n, status)
			return
		}
		m.acked = n
		m.ackedThisRound++
	}
}

// request publishes a reported patch with $rid=rid and waits for its twin response's status;
// ok is false if the connection was lost or nothing came within 5 s (the hub was killed).
func (m *meter) request(rid, body string) (status string, ok bool) {
	pt := m.client.Publish("$iothub/twin/PATCH/properties/reported/?$rid="+rid, 1, false, body)
	if !pt.WaitTimeout(5*time.Second) || pt.Error() != nil {
		return "", false
	}
	deadline := time.After(5 * time.Second)
	for {
		select {
		case msg := <-m.res:
			// $iothub/twin/res/{status}/?$rid={rid}&$version={v}
			rest := strings.TrimPrefix(msg.Topic(), "$iothub/twin/res/")
			status, query, _ := strings.Cut(rest, "/?")
			if strings.Contains("&"+query+"&", "&$rid="+rid+"&") {
				return status, true
			}
			// an older request's late answer
		case <-m.lost:
			return "", false
		case <-deadline:
			return "", false
		}
	}
}

// TestHubKilledDuringMQTTWrites kills the local hub with SIGKILL (IOTPLAN_CRASH_KILLS times,
// default 6) during a burst of reported-property patches from 16 real MQTT device clients,
// restarting it on the same data each time. After each restart every device's reported
// counter must be the last value the hub acknowledged (its 204 twin response) or the one in
// flight when it died — never an older one: an acknowledged MQTT write is on disk
// (docs/hub-api.md, "Durability").
func TestHubKilledDuringMQTTWrites(t *testing.T) {
	kills := crashKills(t, 6)
	const devices = 16
	data := t.TempDir()
	fleet := filepath.Join(t.TempDir(), "meters.hcl")
	if err := os.WriteFile(fleet, []byte(meterFleet(devices)), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startDev(t, data, fleet)
	ctx := context.Background()
	meters := make([]*meter, devices)
	keys := make([]string, devices)
	for i := range meters {
		meters[i] = &meter{id: fmt.Sprintf("meter-%02d", i)}
		k, err := p.c.DeviceKey(ctx, meters[i].id)
		if err != nil {
			t.Fatal(err)
		}
		keys[i] = k
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM(t, data))
	checked, began := 0, time.Now()
	for k := 0; k < kills; k++ {
		addr := p.mqttAddr(t)
		for i, m := range meters {
			if err := m.connect(p, addr, keys[i], roots); err != nil {
				t.Fatalf("kill %d: %v\n%s", k+1, err, p.out)
			}
			m.ackedThisRound = 0
		}
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for _, m := range meters {
			wg.Add(1)
			go func() { defer wg.Done(); m.write(stop) }()
		}
		time.Sleep(time.Duration(300+rand.IntN(1200)) * time.Millisecond)
		p.kill(t)
		close(stop)
		wg.Wait() // bounded: every wait in write times out within 5 s of the kill
		for _, m := range meters {
			m.client.Disconnect(0)
			if m.ended != nil {
				t.Fatalf("kill %d: %s: %v", k+1, m.id, m.ended)
			}
		}
		p = startDev(t, data, "")
		for _, m := range meters {
			tw, err := p.c.GetTwin(ctx, m.id)
			if err != nil {
				t.Fatal(err)
			}
			rep, _ := tw["properties"].(map[string]any)["reported"].(map[string]any)
			got, _ := rep["counter"].(float64)
			if int(got) != m.acked && int(got) != m.attempted {
				t.Errorf("kill %d: %s: reported counter %v after the crash; %d patches were acknowledged, %d sent", k+1, m.id, got, m.acked, m.attempted)
			}
			checked += m.ackedThisRound
			// The next round goes on from what the hub holds.
			m.acked, m.attempted = int(got), int(got)
		}
	}
	checkNoJobRunning(t, p.c)
	t.Logf("%d kills: %d acknowledged MQTT reported patches checked from %d devices in %v", kills, checked, devices, time.Since(began).Round(time.Second))
}

// caPEM reads the hub's CA certificate through the endpoint file of the running hub of data.
func caPEM(t *testing.T, data string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(data, "endpoint.json"))
	if err != nil {
		t.Fatal(err)
	}
	var e struct {
		CAFile string `json:"caFile"`
	}
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(e.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	return pem
}
