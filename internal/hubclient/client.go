// Package hubclient is iotplan's only way to talk to an IoT Hub (Azure's or the built-in local
// one) over its service REST API: queries with paging, jobs v2, twins, registry and direct
// methods. Twins, registry and methods go through amenzhinsky/iothub's iotservice client; queries
// and jobs are small typed calls of our own on internal/hubapi structs, because that library's
// JobV2 omits deviceJobStatistics and sends timeoutInSeconds instead of
// responseTimeoutInSeconds.
//
// Every HTTP request is counted by kind (Calls), retries included, because the hub's budgets
// are per request (20 queries/min on S1). Idempotent calls (GETs, queries, cancel) are retried
// on 429 and 5xx with bounded exponential backoff and jitter, honouring Retry-After; writes
// (twin updates, device PUTs, direct methods) are retried on 429 only, because the hub refused
// them before acting; a job PUT whose outcome is unknown is checked with a GET, never blindly
// sent again, and one refused because every job slot is held (429004) is returned at once for
// the caller to wait for a slot. The time spent waiting before retries is measured (Waited) and the 429 answers
// counted (Throttled), so plans and apply results can say what throttling cost.
//
// A client told its hub's tier (WithTier) paces itself to the tier's documented rates, one
// token bucket per operation class (pace.go; the rates, the bucket and the request costs are
// internal/tier's, the same the local hub enforces), so it is not throttled in the first
// place; how many requests waited for their turn, and how long in all, is measured apart from
// Waited (Paced). ActiveJobs lists the jobs that hold one of the tier's concurrent-job slots;
// ListJobsIn lists the jobs in any set of statuses. QueryRows reads only as many pages as a
// caller needs (the first page of a GROUP BY's groups) and says whether more remain.
//
// Failures the hub reports are *Error values; no error of this package contains the key or a
// token. Imports: internal/clock, internal/hubapi, internal/query, internal/sas,
// internal/tier, amenzhinsky/iothub/iotservice, amenzhinsky/iothub/common, stdlib.
package hubclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/amenzhinsky/iothub/common"
	"github.com/amenzhinsky/iothub/iotservice"

	"github.com/iotplan/iotplan/internal/clock"
	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/sas"
	"github.com/iotplan/iotplan/internal/tier"
)

// Client talks to one hub with a service connection string. It is safe for concurrent use.
type Client struct {
	cs    sas.ConnectionString // holds the key: never printed
	http  *http.Client
	svc   *iotservice.Client
	retry retryPolicy
	tier  tier.Tier // pace to it; the zero Tier: no pacing (pace.go)
	now   func() time.Time
	sleep func(context.Context, time.Duration) error

	mu      sync.Mutex
	calls   map[string]int
	waits   waitStats                   // guarded by mu; see waits.go
	buckets map[tier.Class]*tier.Bucket // guarded by mu; see pace.go
}

type config struct {
	rootCAs    *x509.CertPool
	httpClient *http.Client
	retry      retryPolicy
	tier       tier.Tier
	now        func() time.Time
	sleep      func(context.Context, time.Duration) error
}

// Option configures New.
type Option func(*config)

// WithRootCAs makes the client trust pool (e.g. the local hub's CA) instead of the system roots.
func WithRootCAs(pool *x509.CertPool) Option { return func(c *config) { c.rootCAs = pool } }

// WithHTTPClient uses hc for every request (its transport is wrapped for counting and retries).
// WithRootCAs is ignored when hc is given: configure hc's TLS yourself.
func WithHTTPClient(hc *http.Client) Option { return func(c *config) { c.httpClient = hc } }

// WithRetry sets the retry policy for idempotent calls and job creation: at most attempts tries
// in total (1 = no retries), backoff starting at base, doubling, capped at max, with full
// jitter. Retry-After from the hub is honoured up to maxRetryAfter. Defaults: 5, 500ms, 8s.
func WithRetry(attempts int, base, max time.Duration) Option {
	return func(c *config) {
		if attempts < 1 {
			attempts = 1
		}
		c.retry = retryPolicy{attempts: attempts, base: base, max: max}
	}
}

// tokenLifetime is how long each request's SAS token is valid (what the SDKs use).
const tokenLifetime = time.Hour

// New parses connectionString (a service connection string: HostName, SharedAccessKeyName,
// SharedAccessKey) and returns a client. Errors never echo the key.
func New(connectionString string, opts ...Option) (*Client, error) {
	cs, err := sas.ParseConnectionString(connectionString)
	if err != nil {
		return nil, err
	}
	if cs.SharedAccessKeyName == "" || cs.DeviceID != "" {
		return nil, errors.New("connection string: a service connection string (with SharedAccessKeyName) is needed, not a device connection string")
	}
	cfg := config{retry: defaultRetry, now: time.Now, sleep: clock.Sleep}
	for _, o := range opts {
		o(&cfg)
	}
	base := cfg.httpClient
	if base == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		if cfg.rootCAs != nil {
			tr.TLSClientConfig = &tls.Config{RootCAs: cfg.rootCAs, MinVersion: tls.VersionTLS12}
		}
		base = &http.Client{Transport: tr, Timeout: 5 * time.Minute}
	}
	c := &Client{cs: cs, retry: cfg.retry, tier: cfg.tier, now: cfg.now, sleep: cfg.sleep,
		calls: map[string]int{}, buckets: map[tier.Class]*tier.Bucket{}}
	inner := base.Transport
	if inner == nil {
		inner = http.DefaultTransport
	}
	hc := *base
	hc.Transport = &transport{c: c, next: inner}
	c.http = &hc

	svcOpts := []iotservice.ClientOption{iotservice.WithHTTPClient(c.http)}
	if cfg.rootCAs != nil {
		svcOpts = append(svcOpts, iotservice.WithTLSConfig(&tls.Config{RootCAs: cfg.rootCAs, MinVersion: tls.VersionTLS12}))
	}
	c.svc, err = iotservice.New(common.NewSharedAccessKey(cs.HostName, cs.SharedAccessKeyName, cs.SharedAccessKey), svcOpts...)
	if err != nil {
		return nil, fmt.Errorf("iot hub client: %w", err)
	}
	return c, nil
}

// HostName is the hub's host name (host[:port]) as the connection string gives it.
func (c *Client) HostName() string { return c.cs.HostName }

// Close releases the client's idle connections.
func (c *Client) Close() error {
	c.http.CloseIdleConnections()
	return c.svc.Close()
}

// Calls returns how many HTTP requests the client sent, by kind: "query", "job.create",
// "job.get", "job.cancel", "job.list", "twin.get", "twin.update", "twin.replace",
// "method.invoke", "device.get", "device.put", "device.delete", "device.list", "other".
// Retries count: each request is one call against the hub's budgets.
func (c *Client) Calls() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.calls)
}

func (c *Client) count(kind string) {
	c.mu.Lock()
	c.calls[kind]++
	c.mu.Unlock()
}

// callKind classifies a request by method and path for Calls.
func callKind(method, path string) string {
	seg := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case len(seg) == 2 && seg[0] == "devices" && seg[1] == "query" && method == http.MethodPost:
		return "query"
	case len(seg) >= 2 && seg[0] == "jobs" && seg[1] == "v2":
		switch {
		case len(seg) == 3 && seg[2] == "query" && method == http.MethodGet:
			return "job.list"
		case len(seg) == 3 && method == http.MethodPut:
			return "job.create"
		case len(seg) == 3 && method == http.MethodGet:
			return "job.get"
		case len(seg) == 4 && seg[3] == "cancel" && method == http.MethodPost:
			return "job.cancel"
		}
	case len(seg) >= 2 && seg[0] == "twins":
		switch {
		case seg[len(seg)-1] == "methods" && method == http.MethodPost:
			return "method.invoke"
		case method == http.MethodGet:
			return "twin.get"
		case method == http.MethodPatch:
			return "twin.update"
		case method == http.MethodPut:
			return "twin.replace"
		}
	case len(seg) == 1 && seg[0] == "configurations" && method == http.MethodGet:
		return "configuration.list"
	case len(seg) == 1 && seg[0] == "devices" && method == http.MethodGet:
		return "device.list"
	case len(seg) >= 2 && seg[0] == "devices":
		switch method {
		case http.MethodGet:
			return "device.get"
		case http.MethodPut:
			return "device.put"
		case http.MethodDelete:
			return "device.delete"
		}
	}
	return "other"
}

// request is one call of our own: method, path (unescaped segments already escaped by the
// caller), JSON body, extra headers.
type request struct {
	kind    string
	method  string
	path    string
	body    any
	headers http.Header
	params  url.Values // query-string parameters besides api-version
}

// do sends r and decodes a 200 body into out (when out is not nil). It returns the response
// headers. Hub failures are *Error.
func (c *Client) do(ctx context.Context, r request, out any) (http.Header, error) {
	var body []byte
	if r.body != nil {
		var err error
		if body, err = json.Marshal(r.body); err != nil {
			return nil, fmt.Errorf("iot hub %s: encoding the request: %w", r.kind, err)
		}
	}
	params := url.Values{}
	for k, vs := range r.params {
		params[k] = vs
	}
	params.Set("api-version", hubapi.APIVersion)
	// r.path is already escaped segment by segment.
	u := "https://" + c.cs.HostName + r.path + "?" + params.Encode()
	req, err := http.NewRequestWithContext(ctx, r.method, u, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("iot hub %s: %w", r.kind, err)
	}
	if body == nil {
		req.Body, req.GetBody, req.ContentLength = http.NoBody, nil, 0
	}
	token, err := c.cs.Token(time.Now().Add(tokenLifetime))
	if err != nil {
		return nil, fmt.Errorf("iot hub %s: %w", r.kind, err)
	}
	req.Header.Set("Authorization", token)
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "iotplan")
	for k, vs := range r.headers {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	res, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("iot hub %s: %w", r.kind, stripURL(err))
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, maxBody))
	if err != nil {
		return nil, fmt.Errorf("iot hub %s: reading the response: %w", r.kind, err)
	}
	if res.StatusCode != http.StatusOK && res.StatusCode != http.StatusNoContent {
		e := parseError(res.StatusCode, res.Header, data)
		e.Op = r.kind
		return res.Header, e
	}
	if out != nil && res.StatusCode == http.StatusOK {
		if err := json.Unmarshal(data, out); err != nil {
			return res.Header, fmt.Errorf("iot hub %s: the hub answered with JSON iotplan cannot read: %w", r.kind, err)
		}
	}
	return res.Header, nil
}

// maxBody bounds a response body (a query page of 100 twins is well below it).
const maxBody = 64 << 20

// stripURL keeps transport errors readable; the URL carries no secret but is long.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
