package hub_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/iotplan/iotplan/internal/hub"
	"github.com/iotplan/iotplan/internal/hub/httpapi"
	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/sas"
)

// Permission matrix (hub-throttle): every default shared access policy × every REST route of
// httpapi.Routes(), over real HTTPS against the assembled hub. Expected rights come from
// https://learn.microsoft.com/azure/iot-hub/iot-hub-dev-guide-sas, written here independently of the server's own table; a route the
// server serves that has no row here fails the test, so routes added later must be given
// their expected rights.

// R, W, S: RegistryRead, RegistryWrite, ServiceConnect. A route is allowed for a policy that
// has any one of its rights.
const (
	rR = httpapi.RegistryRead
	rW = httpapi.RegistryWrite
	rS = httpapi.ServiceConnect
)

// expectedRights is keyed by route pattern with wildcard names removed ("GET /devices/{}").
var expectedRights = map[string][]httpapi.Rights{
	// Identity registry (SAS guide): read = RegistryRead, write (incl. bulk) = RegistryWrite.
	"GET /devices":                               {rR},
	"GET /devices/{}":                            {rR},
	"PUT /devices/{}":                            {rW},
	"DELETE /devices/{}":                         {rW},
	"POST /devices":                              {rW},
	"GET /devices/{}/modules":                    {rR},
	"GET /devices/{}/modules/{}":                 {rR},
	"PUT /devices/{}/modules/{}":                 {rW},
	"DELETE /devices/{}/modules/{}":              {rW},
	"GET /statistics/devices":                    {rR},
	"GET /statistics/service":                    {rR, rS}, // [inferred] C#'s ServiceClient reads it with ServiceConnect
	"GET /twins/{}":                              {rS},     // twins (device-twin guide)
	"PATCH /twins/{}":                            {rS},
	"PUT /twins/{}":                              {rS},
	"GET /twins/{}/modules/{}":                   {rS},
	"PATCH /twins/{}/modules/{}":                 {rS},
	"PUT /twins/{}/modules/{}":                   {rS},
	"POST /twins/{}/methods":                     {rS}, // direct methods (direct-methods guide)
	"POST /twins/{}/modules/{}/methods":          {rS},
	"POST /devices/query":                        {rR, rS}, // both documented
	"PUT /jobs/v2/{}":                            {rW, rS}, // current and older docs
	"POST /jobs/v2/{}/cancel":                    {rW, rS},
	"GET /jobs/v2/{}":                            {rR, rS}, // [inferred]
	"GET /jobs/v2/query":                         {rR, rS},
	"GET /configurations":                        {rR}, // configurations [unverified]
	"GET /configurations/{}":                     {rR},
	"PUT /configurations/{}":                     {rW},
	"DELETE /configurations/{}":                  {rW},
	"POST /configurations/testQueries":           {rR},
	"POST /devices/{}/applyConfigurationContent": {rW},
}

var wildcard = regexp.MustCompile(`\{[^}]*\}`)

func normPattern(p string) string {
	return strings.Replace(wildcard.ReplaceAllString(p, "{}"), "{$}", "", 1)
}

// concrete turns a route pattern into a request path: wildcards become ids that do not exist
// (so allowed writes change nothing that matters), "{$}" disappears.
func concrete(pattern string) (method, path string) {
	method, path, _ = strings.Cut(pattern, " ")
	path = strings.ReplaceAll(path, "{$}", "")
	path = regexp.MustCompile(`\{[^}]*\.\.\.\}`).ReplaceAllString(path, "perm-x/perm-y")
	path = wildcard.ReplaceAllString(path, "perm-nonexistent")
	return method, path
}

func TestPermissionMatrix(t *testing.T) {
	h, err := hub.Start(context.Background(), hub.Options{DataDir: t.TempDir(), HTTPSAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: h.RootCAs()}}, Timeout: 60 * time.Second}

	routes := httpapi.Routes()
	patterns := make([]string, 0, len(routes))
	for p := range routes {
		patterns = append(patterns, p)
	}
	sort.Strings(patterns)

	policies := h.Policies()
	if names := policyNames(policies); names != "device,iothubowner,registryRead,registryReadWrite,service" {
		t.Fatalf("default policies = %s", names)
	}
	// A device-key token (no skn) of a real device: only DeviceConnect, which no service
	// route accepts.
	devCS, err := h.DeviceConnectionString("myDeviceId")
	if err != nil {
		t.Fatal(err)
	}
	dcs, err := sas.ParseConnectionString(devCS)
	if err != nil {
		t.Fatal(err)
	}
	devTok, err := sas.NewToken(h.HostName(), dcs.SharedAccessKey, "", time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}

	allowedCount := 0
	for _, pattern := range patterns {
		want, ok := expectedRights[normPattern(pattern)]
		if !ok {
			t.Errorf("route %q has no row in the permission matrix (expectedRights): add the rights IoT Hub requires for it", pattern)
			continue
		}
		if got := routes[pattern]; !sameRights(got, want) {
			t.Errorf("%s: the server requires %v, the matrix expects %v", pattern, got, want)
		}
		method, path := concrete(pattern)
		for _, p := range policies {
			tok, err := sas.NewToken(h.HostName(), p.PrimaryKey, p.Name, time.Now().Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			allowed := false
			for _, r := range want {
				if p.Rights&r != 0 {
					allowed = true
				}
			}
			status, code := permRequest(t, hc, h.HostName(), method, path, tok)
			denied := status == http.StatusUnauthorized
			if denied && code != "IotHubUnauthorizedAccess" {
				t.Errorf("%s as %s: 401 with iothub-errorcode %q, want IotHubUnauthorizedAccess", pattern, p.Name, code)
			}
			if allowed && denied {
				t.Errorf("%s as %s (%s): 401, want allowed", pattern, p.Name, p.Rights)
			}
			if !allowed && !denied {
				t.Errorf("%s as %s (%s): status %d, want 401 IotHubUnauthorizedAccess", pattern, p.Name, p.Rights, status)
			}
			if allowed {
				allowedCount++
			}
		}
		if status, code := permRequest(t, hc, h.HostName(), method, path, devTok); status != 401 || code != "IotHubUnauthorizedAccess" {
			t.Errorf("%s with a device token: %d %s, want 401 IotHubUnauthorizedAccess", pattern, status, code)
		}
	}
	for p := range expectedRights {
		found := false
		for _, q := range patterns {
			found = found || normPattern(q) == p
		}
		if !found {
			t.Logf("matrix row %q: the server has no such route (yet)", p)
		}
	}
	t.Logf("%d routes × %d policies: %d allowed, %d denied", len(patterns), len(policies), allowedCount, len(patterns)*len(policies)-allowedCount)
}

// permRequest sends a request with an empty JSON object body where one is expected and
// returns the status and iothub-errorcode.
func permRequest(t *testing.T, hc *http.Client, host, method, path, token string) (int, string) {
	t.Helper()
	var body io.Reader
	if method == http.MethodPut || method == http.MethodPost || method == http.MethodPatch {
		body = strings.NewReader("{}")
	}
	req, err := http.NewRequest(method, "https://"+host+path+"?api-version="+hubapi.APIVersion, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", token)
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	if method == http.MethodPost && strings.HasSuffix(path, "/methods") {
		// A method call that is allowed must not wait 30 s for an absent device.
		req.Body = io.NopCloser(strings.NewReader(`{"methodName":"m","responseTimeoutInSeconds":5,"connectTimeoutInSeconds":0}`))
	}
	res, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode == 401 {
		var eb hubapi.ErrorBody
		if json.Unmarshal(b, &eb) != nil || !strings.HasPrefix(eb.Message, "ErrorCode:IotHubUnauthorizedAccess;") {
			t.Errorf("%s %s: 401 body %s is not the legacy envelope", method, path, b)
		}
	}
	return res.StatusCode, res.Header.Get(hubapi.HeaderErrorCode)
}

func sameRights(a, b []httpapi.Rights) bool {
	var x, y httpapi.Rights
	for _, r := range a {
		x |= r
	}
	for _, r := range b {
		y |= r
	}
	return x == y
}

func policyNames(ps []httpapi.Policy) string {
	var n []string
	for _, p := range ps {
		n = append(n, p.Name)
	}
	sort.Strings(n)
	return strings.Join(n, ",")
}
