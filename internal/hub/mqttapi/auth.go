package mqttapi

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/iotplan/iotplan/internal/sas"
)

// Policy is a shared access policy of the hub (iothubowner, device, ...). A token signed with
// a policy key (skn=<policy>) may connect as any device only if the policy grants DeviceConnect
// (https://learn.microsoft.com/azure/iot-hub/iot-hub-dev-guide-sas).
type Policy struct {
	Name          string
	PrimaryKey    string
	SecondaryKey  string
	DeviceConnect bool
}

// authError is why a CONNECT was refused. Its text goes to the hub's log, never to the client
// (which only sees CONNACK "not authorized"), and never contains a key or a signature.
type authError struct{ msg string }

func (e *authError) Error() string { return e.msg }

func denyf(format string, args ...any) error { return &authError{fmt.Sprintf(format, args...)} }

// username is a parsed CONNECT user name.
type username struct {
	host       string
	deviceID   string
	apiVersion string // "" when the client sent none
}

// parseUsername parses the CONNECT user name against the CONNECT client id, accepting every
// form devices send (https://learn.microsoft.com/azure/iot/iot-mqtt-connect-to-iot-hub, and the SDKs below):
//
//	{host}/{deviceId}/?api-version=2021-04-12[&DeviceClientType=...][&model-id=...]   (docs, Node, C#)
//	{host}/{deviceId}/api-version=2020-09-30[&model-id=...]                            (amenzhinsky)
//	{host}/{deviceId}[/]                                                               (old docs)
//
// Device ids may contain characters such as '?', '=' and '$', so the id is not cut out of the
// user name; instead the user name must continue with exactly the client id.
func parseUsername(s, clientID string) (username, error) {
	var u username
	host, rest, ok := strings.Cut(s, "/")
	if !ok || host == "" {
		return u, denyf("user name %q is not of the form {hostname}/{deviceId}/?api-version=...", s)
	}
	if !strings.HasPrefix(rest, clientID) {
		return u, denyf("user name %q does not name the device of client id %q", s, clientID)
	}
	rest = rest[len(clientID):]
	if rest != "" && rest[0] != '/' {
		return u, denyf("user name %q does not name the device of client id %q", s, clientID)
	}
	rest = strings.TrimPrefix(rest, "/")
	rest = strings.TrimPrefix(rest, "?")
	if rest != "" && strings.Contains(strings.SplitN(rest, "&", 2)[0], "/") {
		// {host}/{device}/{module}/?api-version=...: a module identity.
		return u, denyf("user name %q is a module identity; the local hub has device identities only", s)
	}
	for part := range strings.SplitSeq(rest, "&") {
		if k, v, _ := strings.Cut(part, "="); k == "api-version" {
			u.apiVersion = v
		}
	}
	u.host, u.deviceID = host, clientID
	return u, nil
}

// sameHost compares two host names the way the hub must when its HostName carries a port
// ("localhost:8443" in tests): case-insensitively, ignoring a port on either side, since a
// device dials the MQTT port while its connection string names the REST one.
func sameHost(a, b string) bool {
	return strings.EqualFold(stripPort(a), stripPort(b))
}

func stripPort(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		return host
	}
	return strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
}

// tokenHost is the host segment of a token's resource URI.
func tokenHost(resource string) string {
	r := resource
	if i := strings.Index(r, "://"); i >= 0 {
		r = r[i+3:]
	}
	h, _, _ := strings.Cut(strings.TrimLeft(r, "/"), "/")
	return h
}

// checkScope reports whether the token's resource covers the device: "{host}/devices/{id}"
// (Node, C#, docs) or the whole hub "{host}" (amenzhinsky), by the segment-prefix rule. The
// token's host may differ from the hub's only by a port. The docs ask for a lower-cased
// resource URI while SDKs keep the id's case, so both are accepted.
func checkScope(tok sas.Token, hubHost, deviceID string) error {
	th := tokenHost(tok.Resource)
	if !sameHost(th, hubHost) {
		return denyf("token resource is for host %q, not this hub", th)
	}
	want := th + "/devices/" + deviceID
	if sas.ScopeCovers(tok.Resource, want) || sas.ScopeCovers(strings.ToLower(tok.Resource), strings.ToLower(want)) {
		return nil
	}
	return denyf("token resource %q does not cover device %q", tok.Resource, deviceID)
}

// verifyKeys checks the token's signature against the primary and then the secondary key,
// then its expiry (so that an expired but genuine token is reported as expired).
func verifyKeys(tok sas.Token, now time.Time, keys ...string) error {
	err := errors.New("no key to verify against")
	for _, k := range keys {
		if k == "" {
			continue
		}
		// The zero time is before any expiry: this checks the signature only.
		if err = tok.Verify(k, time.Time{}); err == nil {
			if !now.Before(tok.Expiry) {
				return fmt.Errorf("token expired at %s", tok.Expiry.UTC().Format(time.RFC3339))
			}
			return nil
		}
	}
	return err
}
