package mqttapi

import (
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/iotplan/iotplan/internal/hubapi"
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
// (which only sees CONNACK "not authorized"), and never contains a key or a signature. The
// errors it was made from stay in its chain, so a refusal by sas.Token.Verify still matches
// sas.ErrSignature or sas.ErrExpired with errors.Is.
type authError struct {
	msg    string
	causes []error
}

func (e *authError) Error() string   { return e.msg }
func (e *authError) Unwrap() []error { return e.causes }

// denyf formats a refusal; the error arguments (printed with %v) become its causes.
func denyf(format string, args ...any) error {
	e := &authError{msg: fmt.Sprintf(format, args...)}
	for _, a := range args {
		if err, ok := a.(error); ok {
			e.causes = append(e.causes, err)
		}
	}
	return e
}

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
			if _, ok := hubapi.APIVersionDate(v); !ok {
				return u, denyf("user name %q has api-version %q, which is not a version of the hub (a date such as 2021-04-12)", s, v)
			}
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

// verifyKeys checks the token's signature and expiry against the device's or the policy's
// keys with sas.Token.Verify, the same check the REST API makes: sas.ErrSignature when no key
// signed it, sas.ErrExpired when one did but the token has expired.
func verifyKeys(tok sas.Token, now time.Time, keys ...string) error {
	return tok.Verify(now, keys...)
}
