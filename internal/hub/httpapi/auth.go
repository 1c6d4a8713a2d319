package httpapi

import (
	"net/http"
	"strings"

	"github.com/iotplan/iotplan/internal/hub/huberr"
	"github.com/iotplan/iotplan/internal/sas"
)

// Rights are the permissions of a shared access policy (https://learn.microsoft.com/azure/iot-hub/iot-hub-dev-guide-sas).
type Rights uint8

const (
	RegistryRead Rights = 1 << iota
	RegistryWrite
	ServiceConnect
	DeviceConnect
)

func (r Rights) String() string {
	var names []string
	for _, x := range []struct {
		r Rights
		n string
	}{{RegistryRead, "RegistryRead"}, {RegistryWrite, "RegistryWrite"}, {ServiceConnect, "ServiceConnect"}, {DeviceConnect, "DeviceConnect"}} {
		if r&x.r != 0 {
			names = append(names, x.n)
		}
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// Policy is a shared access policy: a key name, two keys and rights.
type Policy struct {
	Name         string `json:"name"`
	PrimaryKey   string `json:"primaryKey"`
	SecondaryKey string `json:"secondaryKey"`
	Rights       Rights `json:"rights"`
}

// DefaultPolicies are the policies every new IoT hub has, with their rights and no keys (the
// caller generates and persists the keys).
func DefaultPolicies() []Policy {
	return []Policy{
		{Name: "iothubowner", Rights: RegistryRead | RegistryWrite | ServiceConnect | DeviceConnect},
		{Name: "service", Rights: ServiceConnect},
		{Name: "device", Rights: DeviceConnect},
		{Name: "registryRead", Rights: RegistryRead},
		{Name: "registryReadWrite", Rights: RegistryRead | RegistryWrite},
	}
}

func unauthorized(format string, args ...any) error {
	return huberr.New(huberr.IotHubUnauthorizedAccess, format, args...)
}

// authorize checks the request's SAS token: well-formed, scoped to the requested resource
// (segment prefix of host + path), signed by a key of the named policy (primary or
// secondary) and not expired (sas.Token.Verify, the check the MQTT endpoint makes too), and
// the policy has one of the rights the route needs. Device-key tokens (no skn) grant
// DeviceConnect for one device, which no service route accepts. Every failure is 401
// IotHubUnauthorizedAccess; messages say why but never echo the token.
func (s *Server) authorize(r *http.Request, pattern string, need []Rights) error {
	h := r.Header.Get("Authorization")
	if h == "" {
		return unauthorized("Unauthorized: the request has no Authorization header with a SharedAccessSignature token.")
	}
	tok, err := sas.ParseToken(h)
	if err != nil {
		return unauthorized("Unauthorized: %s.", err)
	}
	resource := s.opts.HostName + r.URL.Path
	if !sas.ScopeCovers(tok.Resource, resource) {
		return unauthorized("Unauthorized: the token's resource %q does not cover %q.", tok.Resource, resource)
	}
	if tok.KeyName == "" {
		return unauthorized("Unauthorized: a device token (no skn) grants only DeviceConnect, which %s does not accept.", pattern)
	}
	var pol *Policy
	policies := s.currentPolicies()
	for i := range policies {
		if policies[i].Name == tok.KeyName {
			pol = &policies[i]
		}
	}
	if pol == nil {
		return unauthorized("Unauthorized: no shared access policy is named %q.", tok.KeyName)
	}
	if err := tok.Verify(s.opts.Now(), pol.PrimaryKey, pol.SecondaryKey); err != nil {
		return unauthorized("Unauthorized: %s.", err)
	}
	for _, n := range need {
		if pol.Rights&n != 0 {
			return nil
		}
	}
	var want []string
	for _, n := range need {
		want = append(want, n.String())
	}
	return unauthorized("Authorization rule '%s' does not allow access for '%s' (needs %s).", pol.Name, pattern, strings.Join(want, " or "))
}
