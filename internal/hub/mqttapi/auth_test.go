package mqttapi

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	pahopackets "github.com/eclipse/paho.mqtt.golang/packets"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/iotplan/iotplan/internal/sas"
)

func mustToken(t *testing.T, resource, key, policy string, expiry time.Time) string {
	t.Helper()
	tok, err := sas.NewToken(resource, key, policy, expiry)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Every CONNECT form the SDKs send is accepted, and every bad credential gets CONNACK 5
// "not authorized" from a real TLS connection.
func TestConnectAuth(t *testing.T) {
	e := newEnv(t)
	keyA, secA := e.addDevice("devA", "")
	keyB, _ := e.addDevice("devB", "")
	keyOff, _ := e.addDevice("devOff", "disabled")
	policyKey := base64.StdEncoding.EncodeToString([]byte("device-policy-key-0123456789abcdef"))
	serviceKey := base64.StdEncoding.EncodeToString([]byte("service-policy-key-0123456789abcdef"))
	e.policies["device"] = Policy{Name: "device", PrimaryKey: policyKey, DeviceConnect: true}
	e.policies["service"] = Policy{Name: "service", PrimaryKey: serviceKey}
	otherKey := base64.StdEncoding.EncodeToString([]byte("not-the-device-key-0123456789abcdef"))
	hour := time.Now().Add(time.Hour)
	amzUser := func(host, id string) string { return host + "/" + id + "/api-version=2020-09-30" }

	accept := []struct {
		name, client, user, pass string
		clean                    bool
	}{
		{"node username, device-scope token, clean=false", "devA", nodeUsername(testHost, "devA"), deviceToken(t, testHost, "devA", keyA, hour), false},
		{"amenzhinsky username, whole-host token", "devA", amzUser(testHost, "devA"), mustToken(t, testHost, keyA, "", hour), true},
		{"amenzhinsky username with model-id", "devA", amzUser(testHost, "devA") + "&model-id=dtmi%3Acom%3Aexample%3Bthermostat%3B1", mustToken(t, testHost, keyA, "", hour), true},
		{"docs username with model-id", "devA", testHost + "/devA/?api-version=2021-04-12&model-id=dtmi%3Acom%3Aexample%3B1", deviceToken(t, testHost, "devA", keyA, hour), true},
		{"old username without api-version", "devA", testHost + "/devA", deviceToken(t, testHost, "devA", keyA, hour), true},
		{"host without port", "devA", nodeUsername("localhost", "devA"), deviceToken(t, "localhost", "devA", keyA, hour), true},
		{"host in other case", "devA", nodeUsername("LOCALHOST:8443", "devA"), deviceToken(t, "LocalHost:8443", "devA", keyA, hour), true},
		{"secondary key", "devA", nodeUsername(testHost, "devA"), deviceToken(t, testHost, "devA", secA, hour), true},
		{"lower-cased resource", "devA", nodeUsername(testHost, "devA"), mustToken(t, testHost+"/devices/deva", keyA, "", hour), true},
		{"policy with DeviceConnect", "devA", nodeUsername(testHost, "devA"), mustToken(t, testHost, policyKey, "device", hour), true},
	}
	for _, c := range accept {
		t.Run("accept/"+c.name, func(t *testing.T) {
			cl, err := e.raw(c.client, c.user, c.pass, c.clean)
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			cl.Disconnect(0)
		})
	}

	// is: the sas check that refused it, when one did (matched with errors.Is).
	reject := []struct {
		name, client, user, pass, why string
		is                            error
	}{
		{"wrong key", "devA", nodeUsername(testHost, "devA"), deviceToken(t, testHost, "devA", otherKey, hour), "device token: signature does not match", sas.ErrSignature},
		{"expired token", "devA", nodeUsername(testHost, "devA"), deviceToken(t, testHost, "devA", keyA, time.Now().Add(-time.Minute)), "device token: token has expired", sas.ErrExpired},
		{"expired token, secondary key", "devA", nodeUsername(testHost, "devA"), deviceToken(t, testHost, "devA", secA, time.Now().Add(-time.Minute)), "device token: token has expired", sas.ErrExpired},
		{"unknown device", "ghost", nodeUsername(testHost, "ghost"), deviceToken(t, testHost, "ghost", keyA, hour), "not registered", nil},
		{"disabled device", "devOff", nodeUsername(testHost, "devOff"), deviceToken(t, testHost, "devOff", keyOff, hour), "is disabled", nil},
		{"another device's token", "devA", nodeUsername(testHost, "devA"), deviceToken(t, testHost, "devB", keyB, hour), "does not cover device", nil},
		{"another device's whole-host token", "devA", amzUser(testHost, "devA"), mustToken(t, testHost, keyB, "", hour), "signature does not match", sas.ErrSignature},
		{"another device's resource, right key", "devA", nodeUsername(testHost, "devA"), deviceToken(t, testHost, "devB", keyA, hour), "does not cover device", nil},
		{"client id is not the user-name device", "devA", nodeUsername(testHost, "devB"), deviceToken(t, testHost, "devA", keyA, hour), "does not name the device", nil},
		{"user name for another hub", "devA", nodeUsername("other.azure-devices.net", "devA"), deviceToken(t, testHost, "devA", keyA, hour), "names host", nil},
		{"token for another hub", "devA", nodeUsername(testHost, "devA"), deviceToken(t, "other.azure-devices.net", "devA", keyA, hour), "token resource is for host", nil},
		{"module identity", "devA/mod1", testHost + "/devA/mod1/?api-version=2021-04-12", mustToken(t, testHost+"/devices/devA/modules/mod1", keyA, "", hour), "module identity", nil},
		{"module-scoped token for the device", "devA", nodeUsername(testHost, "devA"), mustToken(t, testHost+"/devices/devA/modules/mod1", keyA, "", hour), "does not cover device", nil},
		{"policy without DeviceConnect", "devA", nodeUsername(testHost, "devA"), mustToken(t, testHost, serviceKey, "service", hour), "does not grant DeviceConnect", nil},
		{"unknown policy", "devA", nodeUsername(testHost, "devA"), mustToken(t, testHost, policyKey, "nosuch", hour), "unknown policy", nil},
		{"policy token signed with a device key", "devA", nodeUsername(testHost, "devA"), mustToken(t, testHost, keyA, "device", hour), "policy token: signature does not match", sas.ErrSignature},
		{"empty password (X.509)", "devA", nodeUsername(testHost, "devA"), "", "X.509", nil},
		{"not a SAS token", "devA", nodeUsername(testHost, "devA"), "hello", "not a SharedAccessSignature token", sas.ErrMalformed},
		{"user name without device", "devA", testHost, deviceToken(t, testHost, "devA", keyA, hour), "is not of the form", nil},
	}
	for _, c := range reject {
		t.Run("reject/"+c.name, func(t *testing.T) {
			cl, err := e.raw(c.client, c.user, c.pass, true)
			if err == nil {
				cl.Disconnect(0)
				t.Fatal("accepted")
			}
			if !errors.Is(err, pahopackets.ErrorRefusedNotAuthorised) {
				t.Fatalf("err = %v, want CONNACK 5 not authorized", err)
			}
			// And it was refused for the intended reason (the client only sees the code).
			_, why := e.srv.authenticate(packets.Packet{ProtocolVersion: 4, Connect: packets.ConnectParams{
				ClientIdentifier: c.client, Username: []byte(c.user), Password: []byte(c.pass), UsernameFlag: true, PasswordFlag: c.pass != "",
			}})
			if why == nil || !strings.Contains(why.Error(), c.why) {
				t.Errorf("reason = %v, want one mentioning %q", why, c.why)
			}
			if c.is != nil && !errors.Is(why, c.is) {
				t.Errorf("reason = %v, want one that is %v", why, c.is)
			}
		})
	}
	// Accepted sessions are counted just after CONNACK, on the server's side.
	waitFor(t, "accepted sessions counted", func() bool { return e.srv.Stats().Connects == int64(len(accept)) })
	if st := e.srv.Stats(); st.Rejected != int64(len(reject)) {
		t.Errorf("stats = %+v, want %d rejected, %d accepted", st, len(reject), len(accept))
	}
}

// IoT Hub speaks MQTT 3.1.1 only.
func TestConnectMQTT31Refused(t *testing.T) {
	e := newEnv(t)
	key, _ := e.addDevice("d1", "")
	_, err := e.raw("d1", nodeUsername(testHost, "d1"), deviceToken(t, testHost, "d1", key, time.Now().Add(time.Hour)), true,
		func(o *paho.ClientOptions) { o.SetProtocolVersion(3) })
	if !errors.Is(err, pahopackets.ErrorRefusedBadProtocolVersion) {
		t.Fatalf("MQTT 3.1 CONNECT: err = %v, want unacceptable protocol version", err)
	}
}

// IoT Hub closes a session when its token expires.
func TestTokenExpiryDisconnects(t *testing.T) {
	e := newEnv(t)
	key, _ := e.addDevice("d1", "")
	// se has one-second resolution: a token that expires 2 s from now.
	tok := deviceToken(t, testHost, "d1", key, time.Now().Add(2*time.Second))
	cl, err := e.raw("d1", nodeUsername(testHost, "d1"), tok, true)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "disconnect at token expiry", func() bool { return !cl.IsConnectionOpen() && !e.link.Connected("d1") })
}

func TestParseUsername(t *testing.T) {
	ok := []struct{ user, client, host, api string }{
		{"h.azure-devices.net/d1/?api-version=2021-04-12", "d1", "h.azure-devices.net", "2021-04-12"},
		{"h/d1/?api-version=2021-04-12&DeviceClientType=azure-iot-device%2F1.18.4%20(node)", "d1", "h", "2021-04-12"},
		{"h/d1/api-version=2020-09-30&model-id=dtmi%3Aa%3B1", "d1", "h", "2020-09-30"},
		{"localhost:8443/d1/?api-version=2018-06-30-preview", "d1", "localhost:8443", "2018-06-30-preview"},
		{"h/d1", "d1", "h", ""},
		{"h/d1/", "d1", "h", ""},
		{"h/a?b=c/?api-version=2021-04-12", "a?b=c", "h", "2021-04-12"}, // '?' and '=' are legal in device ids
	}
	for _, c := range ok {
		u, err := parseUsername(c.user, c.client)
		if err != nil || u.host != c.host || u.deviceID != c.client || u.apiVersion != c.api {
			t.Errorf("parseUsername(%q, %q) = %+v, %v", c.user, c.client, u, err)
		}
	}
	bad := []struct{ user, client string }{
		{"", "d1"}, {"h", "d1"}, {"/d1/?api-version=1", "d1"}, {"h/d2/?api-version=1", "d1"},
		{"h/d10/?api-version=1", "d1"}, {"h/d1/m1/?api-version=1", "d1"},
		{"h/d1/?api-version=x", "d1"}, {"h/d1/?api-version=2020-13-01", "d1"}, // not a version of the hub
	}
	for _, c := range bad {
		if u, err := parseUsername(c.user, c.client); err == nil {
			t.Errorf("parseUsername(%q, %q) = %+v, want error", c.user, c.client, u)
		} else if strings.Contains(err.Error(), "sig=") {
			t.Errorf("error mentions a signature: %v", err)
		}
	}
}

func TestSameHost(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"localhost", "localhost:8443", true},
		{"LOCALHOST:1", "localhost:2", true},
		{"h.azure-devices.net", "H.Azure-Devices.net", true},
		{"[::1]:8883", "::1", true},
		{"localhost", "localhost.example", false},
		{"a", "b:1", false},
	} {
		if got := sameHost(c.a, c.b); got != c.want {
			t.Errorf("sameHost(%q, %q) = %v", c.a, c.b, got)
		}
	}
}
