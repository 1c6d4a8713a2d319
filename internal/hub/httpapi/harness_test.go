package httpapi_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/amenzhinsky/iothub/iotservice"
	"go.etcd.io/bbolt"

	"github.com/iotplan/iotplan/internal/hub/adm"
	"github.com/iotplan/iotplan/internal/hub/httpapi"
	"github.com/iotplan/iotplan/internal/hub/jobs"
	"github.com/iotplan/iotplan/internal/hub/link"
	"github.com/iotplan/iotplan/internal/hub/registry"
	"github.com/iotplan/iotplan/internal/hub/tlscert"
	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/sas"
)

// testHub is the REST API wired to the real registry, link and jobs packages, served over
// real HTTPS on a loopback port with the hub's own CA.
type testHub struct {
	t        testing.TB
	host     string // "localhost:port"
	url      string
	reg      *registry.Registry
	link     *link.Hub
	srv      *httpapi.Server
	policies []httpapi.Policy
	http     *http.Client
}

func newTestHub(t testing.TB) *testHub {
	t.Helper()
	dir := t.TempDir()
	db, err := bbolt.Open(filepath.Join(dir, "hub.db"), 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	db.NoSync = true
	var lh *link.Hub
	reg, err := registry.Open(db, registry.Options{OnDesired: func(id string, p map[string]any, v int64) { lh.NotifyDesired(id, p, v) }})
	if err != nil {
		t.Fatal(err)
	}
	lh = link.New(link.Options{OnConnect: func(id string, c bool) { _ = reg.SetConnectionState(id, c, time.Now()) }})
	jm, err := jobs.New(db, reg, lh, jobs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfgs, err := adm.New(db, reg, adm.Options{Period: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	bundle, err := tlscert.Ensure(dir, "localhost", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := "localhost:" + strings.TrimPrefix(ln.Addr().String(), "127.0.0.1:")
	policies := httpapi.DefaultPolicies()
	for i := range policies {
		policies[i].PrimaryKey, policies[i].SecondaryKey = registry.NewKey(), registry.NewKey()
	}
	srv := httpapi.New(httpapi.Options{HostName: host, Registry: reg, Methods: lh, Jobs: jm, Configurations: cfgs, Policies: policies})
	hs := &http.Server{Handler: srv.Handler(), TLSConfig: &tls.Config{Certificates: []tls.Certificate{bundle.Cert}}}
	go hs.ServeTLS(ln, "", "")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = hs.Shutdown(ctx)
		_ = cfgs.Close()
		_ = jm.Close()
		_ = db.Close()
	})
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: bundle.Pool}}, Timeout: 30 * time.Second}
	return &testHub{t: t, host: host, url: "https://" + host, reg: reg, link: lh, srv: srv, policies: policies, http: client}
}

func (h *testHub) policy(name string) httpapi.Policy {
	for _, p := range h.policies {
		if p.Name == name {
			return p
		}
	}
	h.t.Fatalf("no policy %s", name)
	return httpapi.Policy{}
}

func (h *testHub) connString(policy string) string {
	p := h.policy(policy)
	return sas.ConnectionString{HostName: h.host, SharedAccessKeyName: p.Name, SharedAccessKey: p.PrimaryKey}.String()
}

// sdk is the amenzhinsky service client for a policy. Note: iotservice v0.9.1's
// WithTLSConfig only reaches its AMQP connection; its REST client needs WithHTTPClient.
func (h *testHub) sdk(policy string) *iotservice.Client {
	h.t.Helper()
	c, err := iotservice.NewFromConnectionString(h.connString(policy), iotservice.WithHTTPClient(h.http))
	if err != nil {
		h.t.Fatal(err)
	}
	return c
}

func (h *testHub) token(policy string) string {
	p := h.policy(policy)
	tok, err := sas.NewToken(h.host, p.PrimaryKey, p.Name, time.Now().Add(time.Hour))
	if err != nil {
		h.t.Fatal(err)
	}
	return tok
}

type rawResp struct {
	status int
	header http.Header
	body   []byte
}

func (r rawResp) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("body %s: %v", r.body, err)
	}
}

// do sends a raw request; auth "" = iothubowner token, "-" = no Authorization header.
func (h *testHub) do(method, pathAndQuery, auth string, body any, hdr map[string]string) rawResp {
	h.t.Helper()
	var rd io.Reader
	if body != nil {
		switch b := body.(type) {
		case string:
			rd = strings.NewReader(b)
		default:
			buf, err := json.Marshal(b)
			if err != nil {
				h.t.Fatal(err)
			}
			rd = strings.NewReader(string(buf))
		}
	}
	req, err := http.NewRequest(method, h.url+pathAndQuery, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	switch auth {
	case "":
		req.Header.Set("Authorization", h.token("iothubowner"))
	case "-":
	default:
		req.Header.Set("Authorization", auth)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := h.http.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return rawResp{res.StatusCode, res.Header, b}
}

// wantError checks status, iothub-errorcode header and the legacy or JSON envelope.
func wantError(t *testing.T, r rawResp, status int, name string, code int) hubapi.ErrorBody {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d; body %s", r.status, status, r.body)
	}
	if got := r.header.Get("iothub-errorcode"); got != name {
		t.Fatalf("iothub-errorcode = %q, want %q", got, name)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Fatalf("error Content-Type = %q", ct)
	}
	var eb hubapi.ErrorBody
	r.json(t, &eb)
	if strings.HasPrefix(eb.Message, "{") {
		var d hubapi.ErrorDetail
		if err := json.Unmarshal([]byte(eb.Message), &d); err != nil {
			t.Fatalf("JSON-in-Message body %q: %v", eb.Message, err)
		}
		if d.ErrorCode != code || d.TrackingID == "" || d.TimestampUTC == "" {
			t.Fatalf("error detail = %+v, want code %d", d, code)
		}
	} else {
		if !strings.HasPrefix(eb.Message, "ErrorCode:"+name+";") || !strings.HasPrefix(eb.ExceptionMessage, "Tracking ID:") {
			t.Fatalf("legacy envelope = %+v", eb)
		}
	}
	return eb
}

// sdkStatus extracts the HTTP status of an iotservice error.
func sdkStatus(t *testing.T, err error) (int, string) {
	t.Helper()
	var re *iotservice.RequestError
	if errors.As(err, &re) {
		return re.Code, string(re.Body)
	}
	var bre *iotservice.BadRequestError
	if errors.As(err, &bre) {
		return 400, bre.Message
	}
	t.Fatalf("error %v (%T) is not an iotservice request error", err, err)
	return 0, ""
}

// testDevice is an in-process device session for link.
type testDevice struct {
	calls   atomic.Int64
	desired chan int64
}

func (d *testDevice) InvokeMethod(ctx context.Context, name string, payload json.RawMessage) (int, json.RawMessage, error) {
	d.calls.Add(1)
	switch name {
	case "lockDoor":
		return 200, json.RawMessage(`{"locked":true,"got":` + string(payload) + `}`), nil
	case "fail":
		return 500, json.RawMessage(`{"error":"jammed"}`), nil
	case "hang":
		<-ctx.Done()
		return 0, nil, ctx.Err()
	}
	return 0, nil, link.ErrNotSubscribed
}

func (d *testDevice) DesiredChanged(_ map[string]any, version int64) {
	if d.desired != nil {
		select {
		case d.desired <- version:
		default:
		}
	}
}

// BenchmarkQueryPageScan pages through SELECT * over 10,000 twins (100 pages per scan) over
// real HTTPS. IOTPLAN_BENCH_DEVICES overrides the fleet size.
func BenchmarkQueryPageScan(b *testing.B) {
	n := 10_000
	if v := os.Getenv("IOTPLAN_BENCH_DEVICES"); v != "" {
		fmt.Sscan(v, &n)
	}
	h := newTestHub(b)
	var seeds []registry.SeedDevice
	for i := range n {
		seeds = append(seeds, registry.SeedDevice{DeviceID: fmt.Sprintf("door-%07d", i), Tags: map[string]any{"building": "42"}})
	}
	if err := h.reg.Import(seeds); err != nil {
		b.Fatal(err)
	}
	body := `{"query":"SELECT * FROM devices WHERE tags.building = '42'"}`
	b.ResetTimer()
	for range b.N {
		tok, rows := "", 0
		for {
			hdr := map[string]string{}
			if tok != "" {
				hdr["x-ms-continuation"] = tok
			}
			r := h.do("POST", "/devices/query?api-version=2021-04-12", "", body, hdr)
			var page []json.RawMessage
			if err := json.Unmarshal(r.body, &page); err != nil {
				b.Fatal(err)
			}
			rows += len(page)
			if tok = r.header.Get("x-ms-continuation"); tok == "" {
				break
			}
		}
		if rows != n {
			b.Fatalf("scan saw %d rows", rows)
		}
	}
}
