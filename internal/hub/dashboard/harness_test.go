package dashboard_test

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iotplan/iotplan/internal/hub"
	"github.com/iotplan/iotplan/internal/hub/hubtest"
	"github.com/iotplan/iotplan/internal/hubclient"
)

// startHub starts a local hub with its dashboard (hubtest: in-process, a random loopback
// port, a fleet file; "" = the default fleet of 301 devices).
func startHub(t *testing.T, opts hub.Options, fleet string) (*hub.Hub, *hubclient.Client) {
	t.Helper()
	opts.Dashboard = true
	h, c := hubtest.StartWith(t, opts, fleet)
	if h.DashboardURL() == "" {
		t.Fatal("the hub has no dashboard URL")
	}
	return h, c
}

// browserless is an HTTP client of the dashboard that trusts the hub's CA and keeps
// cookies, as a browser does.
type browserless struct {
	t    *testing.T
	base string // https://127.0.0.1:PORT
	hc   *http.Client
}

func newClient(t *testing.T, h *hub.Hub) *browserless {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(h.DashboardURL())
	if err != nil {
		t.Fatal(err)
	}
	return &browserless{t: t, base: u.Scheme + "://" + u.Host, hc: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: h.RootCAs(), ServerName: "localhost"}}}}
}

// login opens the printed URL: the token becomes a cookie and the redirect lands on /ui/.
func (b *browserless) login(h *hub.Hub) {
	b.t.Helper()
	res, err := b.hc.Get(h.DashboardURL())
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Request.URL.RawQuery != "" || res.Request.URL.Path != "/ui/" {
		b.t.Fatalf("login: %d at %s", res.StatusCode, res.Request.URL)
	}
}

// call sends a request to the dashboard API and decodes a 200 answer into v; it returns the
// status and the raw body.
func (b *browserless) call(method, path string, body, v any) (int, string) {
	b.t.Helper()
	var rd io.Reader
	if body != nil {
		j, err := json.Marshal(body)
		if err != nil {
			b.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, b.base+path, rd)
	if err != nil {
		b.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := b.hc.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	if res.StatusCode == http.StatusOK && v != nil {
		if err := json.Unmarshal(raw, v); err != nil {
			b.t.Fatalf("%s %s: %v in %s", method, path, err, raw)
		}
	}
	return res.StatusCode, string(raw)
}

// eventually polls cond every 50 ms until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }

func tlsConfig(h *hub.Hub) *tls.Config {
	return &tls.Config{RootCAs: h.RootCAs(), ServerName: "localhost"}
}
