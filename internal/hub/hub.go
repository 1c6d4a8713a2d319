// Package hub assembles the local IoT Hub: one bbolt store (<data>/hub.db), the registry of
// devices and twins, the link table of connected device sessions, the jobs engine, the
// simulated devices, the TLS identity and the HTTPS service REST API. It owns no hub behaviour
// itself; it wires the packages under internal/hub together and manages their lifecycle.
//
// Store: each package owns its buckets inside hub.db (registry: devices, twins, volatile,
// modules, meta; jobs: jobs, devicejobs; sim: fleet); this package owns "policies" (the shared access policies and
// their keys, generated on first start). internal/hub/store opens it: every commit is fsynced,
// and the writers batch, so a commit is shared by many writes.
//
// Ports: the default HTTPS address is "localhost:443" — the hub's own port, because Azure's
// SDKs cannot use another, on the loopback addresses only, because its keys are printed and
// stored in the clear (docs/hub-api.md, "Listening addresses"). HostName() is then the bare host; on any other port it is "host:port", which
// iotplan and amenzhinsky/iothub accept in connection strings and Azure's SDKs do not.
//
// Dashboard: with Options.Dashboard the HTTPS port also serves the web dashboard under /ui/
// (internal/hub/dashboard), behind a token made at start (DashboardURL), and the hub records
// recent method calls and twin changes for it (activity.go).
//
// Queries: Options.QueryDialect sets the query language of every place the hub parses one
// (POST /devices/query, job queryConditions, ADM); Options.OnQuery observes each text it
// receives there, for audits (internal/hub/hubtest), and each is logged at debug level.
//
// Imports: internal/hub/..., hubapi, query, sas, safetext, tier, bbolt, hcl (fleet diagnostics), stdlib.
package hub

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"go.etcd.io/bbolt"

	"github.com/iotplan/iotplan/internal/hub/adm"
	"github.com/iotplan/iotplan/internal/hub/bind"
	"github.com/iotplan/iotplan/internal/hub/dashboard"
	"github.com/iotplan/iotplan/internal/hub/httpapi"
	"github.com/iotplan/iotplan/internal/hub/jobs"
	"github.com/iotplan/iotplan/internal/hub/link"
	"github.com/iotplan/iotplan/internal/hub/mqttapi"
	"github.com/iotplan/iotplan/internal/hub/registry"
	"github.com/iotplan/iotplan/internal/hub/sim"
	"github.com/iotplan/iotplan/internal/hub/store"
	"github.com/iotplan/iotplan/internal/hub/throttle"
	"github.com/iotplan/iotplan/internal/hub/tlscert"
	"github.com/iotplan/iotplan/internal/query"
	"github.com/iotplan/iotplan/internal/safetext"
	"github.com/iotplan/iotplan/internal/sas"
	"github.com/iotplan/iotplan/internal/tier"
)

// Options configure Start. Zero values take the documented defaults.
type Options struct {
	DataDir  string // default ".iotplan/dev"
	HostName string // default "localhost"
	// HTTPSAddr is the address of the REST API and MQTT over WebSockets: default
	// "localhost:443", which binds 127.0.0.1 and ::1 only (internal/hub/bind); ":443" is every
	// interface; tests use "127.0.0.1:0".
	HTTPSAddr string
	// MQTTAddr is the address of the device MQTT endpoint (MQTT 3.1.1 over TLS; Azure's port
	// is 8883; "localhost:8883" binds the loopback addresses only). "" = no MQTT endpoint: a
	// hub started in-process for one command has no devices of its own to wait for, and
	// tests choose "127.0.0.1:0" when they need one.
	MQTTAddr  string
	FleetFile string // "" = the default fleet for a new hub, or the remembered one
	// Logger receives the hub's log; nil = discard. Every value is escaped and bounded first
	// (safetext.Log): much of it is text devices and clients sent.
	Logger *slog.Logger
	// Tier and Units select Azure's per-tier operation throttles, job concurrency and job
	// device-operation rate (internal/tier's table, enforced by internal/hub/throttle): Tier
	// "F1", "S1", "S2" or "S3"; Units 0 = 1. Tier "" = unlimited, the default.
	Tier  string
	Units int
	// QueryDialect is the query language the hub accepts in POST /devices/query, job
	// queryConditions and ADM target conditions and metric queries: query.Documented (the
	// zero value) as strict as Azure's documentation, or query.Extended (IS_STRING, ENDSWITH,
	// TOP(n), 1e3, ...; see docs/query.md).
	QueryDialect query.Dialect
	// OnQuery, if set, is called for every query text the hub receives there, with the error
	// it was rejected with (see QueryEvent). It may be called from several goroutines at once.
	OnQuery func(QueryEvent)
	// Dashboard serves the web dashboard under /ui/ on the HTTPS address (internal/hub/
	// dashboard; its URL with a fresh access token is DashboardURL) and records recent
	// direct-method calls and twin changes for it. `iotplan dev` turns it on.
	Dashboard bool
}

// Defaults.
const (
	DefaultDataDir  = ".iotplan/dev"
	DefaultHostName = "localhost"
	DefaultAddr     = "localhost:443" // loopback only: a development hub is not a server for the network
	// DBFile is the store inside the data directory.
	DBFile = "hub.db"
	// closeTimeout bounds how long Close waits for in-flight requests.
	closeTimeout = 5 * time.Second
)

var bucketPolicies = []byte("policies")

// Hub is a running local IoT Hub.
type Hub struct {
	opts     Options
	log      *slog.Logger
	host     string // HostName(): "localhost" on 443, else "localhost:port"
	db       *bbolt.DB
	reg      *registry.Registry
	link     *link.Hub
	jobs     *jobs.Manager
	adm      *adm.Manager
	sim      *sim.Sim
	api      *httpapi.Server
	mqtt     *mqttapi.Server
	http     *http.Server
	lns      []net.Listener // the HTTPS address: 127.0.0.1 and ::1 for "localhost" (internal/hub/bind)
	tls      *tlscert.Bundle
	policies []httpapi.Policy // replaced (never mutated) by RegeneratePolicyKey, under polMu
	polMu    sync.RWMutex
	throttle *throttle.Limiter
	served   chan struct{}
	dash     *dashboard.Server   // nil without Options.Dashboard
	activity *dashboard.Activity // nil without Options.Dashboard: nothing is recorded

	closeOnce sync.Once
	closeErr  error
}

// Start opens (or creates) the hub in opts.DataDir and serves it. The hub runs until Close;
// ctx bounds the start only.
func Start(ctx context.Context, opts Options) (_ *Hub, err error) {
	if opts.DataDir == "" {
		opts.DataDir = DefaultDataDir
	}
	if opts.HostName == "" {
		opts.HostName = DefaultHostName
	}
	if opts.HTTPSAddr == "" {
		opts.HTTPSAddr = DefaultAddr
	}
	if strings.ContainsAny(opts.HostName, ":/ ") && net.ParseIP(opts.HostName) == nil {
		return nil, fmt.Errorf("host name %q must be a bare host name or IP address, without port or scheme", opts.HostName)
	}
	h := &Hub{opts: opts, log: opts.Logger, served: make(chan struct{})}
	// The tier is checked before anything is created, so a typo leaves no half-made hub.
	if h.throttle, err = throttle.New(throttle.Options{Tier: opts.Tier, Units: opts.Units}); err != nil {
		return nil, err
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	// Devices and clients put their own text in the log (user names, topics, paths, queries):
	// every value is escaped and bounded on its way there.
	h.log = slog.New(safetext.NewLogHandler(h.log.Handler()))
	defer func() {
		if err != nil {
			h.teardown()
		}
	}()

	// A fleet file is read before anything is created, so a typo leaves no half-made hub.
	var fleet *sim.Fleet
	if opts.FleetFile != "" {
		if fleet, err = loadFleet(opts.FleetFile); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(opts.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("local hub data directory: %w", err)
	}
	dbPath := filepath.Join(opts.DataDir, DBFile)
	h.db, err = store.Open(dbPath)
	if errors.Is(err, bbolt.ErrTimeout) {
		return nil, fmt.Errorf("%s is in use by another process (is `iotplan dev` already running on %s?)", dbPath, opts.DataDir)
	}
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", dbPath, err)
	}
	if h.policies, err = loadPolicies(h.db); err != nil {
		return nil, err
	}

	if opts.Dashboard {
		h.activity = dashboard.NewActivity(nil)
	}
	h.reg, err = registry.Open(h.db, registry.Options{OnDesired: func(id string, patch map[string]any, v int64) {
		h.link.NotifyDesired(id, patch, v)
		h.activity.Twin(dashboard.KindDesired, dashboard.SourceService, id, patch, v) // no-op when nil
	}, OnTags: func(id string, patch map[string]any, v int64) {
		h.activity.Twin(dashboard.KindTags, dashboard.SourceService, id, patch, v)
	}})
	if err != nil {
		return nil, err
	}
	h.link = link.New(link.Options{OnConnect: func(id string, connected bool) {
		if err := h.reg.SetConnectionState(id, connected, time.Now()); err != nil {
			h.log.Warn("hub: connection state", "device", id, "err", err)
		}
	}})
	// Method jobs resumed after a restart wait until the simulated devices reconnected.
	devicesReady := make(chan struct{})
	// Direct methods and reported patches pass through the activity record when there is one
	// (activity.go).
	var restMethods httpapi.Methods = h.link
	var jobMethods jobs.Invoker = h.link
	var reporter interface {
		mqttapi.Registry
		sim.Reporter
	} = h.reg
	if h.activity != nil {
		restMethods = recordedInvoker{next: h.link, act: h.activity, source: dashboard.SourceREST}
		jobMethods = recordedInvoker{next: h.link, act: h.activity, source: dashboard.SourceJob}
		reporter = recordedReporter{Registry: h.reg, act: h.activity}
	}
	if h.jobs, err = jobs.New(h.db, h.reg, jobMethods, jobs.Options{Logger: h.log, Ready: devicesReady,
		QueryDialect: opts.QueryDialect, OnQuery: h.queryHook(QueryFromJob),
		MaxConcurrentJobs: h.throttle.MaxConcurrentJobs(), DeviceOpsPerSecond: h.throttle.Rate(tier.JobDeviceOps)}); err != nil {
		return nil, err
	}
	if h.adm, err = adm.New(h.db, h.reg, adm.Options{Logger: h.log,
		QueryDialect: opts.QueryDialect, OnQuery: h.queryHook(QueryFromADM)}); err != nil {
		return nil, err
	}

	if h.lns, err = listen(opts.HTTPSAddr); err != nil {
		return nil, err
	}
	port := h.lns[0].Addr().(*net.TCPAddr).Port
	h.host = opts.HostName
	if port != 443 {
		h.host = net.JoinHostPort(opts.HostName, strconv.Itoa(port))
	}
	if h.tls, err = tlscert.Ensure(opts.DataDir, opts.HostName, time.Now()); err != nil {
		return nil, err
	}

	h.api = httpapi.New(httpapi.Options{
		HostName: h.host, Registry: h.reg, Methods: restMethods, Jobs: h.jobs, Policies: h.policies, Logger: h.log,
		Throttle: h.throttle, Configurations: h.adm,
		QueryDialect: opts.QueryDialect, OnQuery: h.queryHook(QueryFromQuery),
	})
	// The REST API answers everything the routes below do not take.
	mux := http.NewServeMux()
	mux.Handle("/", h.api.Handler())
	if opts.Dashboard {
		if err := h.startDashboard(mux); err != nil {
			return nil, err
		}
	}
	if opts.MQTTAddr != "" {
		h.mqtt, err = mqttapi.Start(context.Background(), mqttapi.Options{
			HostName:  h.host,
			Addr:      opts.MQTTAddr,
			TLSConfig: &tls.Config{Certificates: []tls.Certificate{h.tls.Cert}, MinVersion: tls.VersionTLS12},
			Registry:  reporter,
			Link:      h.link,
			Policies:  h.devicePolicy,
			Logger:    h.log,
			AdmitConnect: func(ctx context.Context) error {
				return h.throttle.Wait(ctx, tier.DeviceConnections, 1)
			},
		})
		if err != nil {
			return nil, explainListen(opts.MQTTAddr, "--mqtt-port 18883", "8883", err)
		}
		// MQTT over WebSockets shares the HTTPS port, as on Azure.
		mux.Handle("GET "+mqttapi.WebSocketPath, h.mqtt.WebSocketHandler())
	}
	// The simulated devices start after the MQTT endpoint: mqtt-mode devices connect to it.
	simOpts := sim.Options{Logger: h.log}
	if h.mqtt != nil {
		simOpts.MQTT = sim.MQTTOptions{Addr: h.mqtt.Addr().String(), HostName: h.host, Keys: h.reg,
			TLSConfig: &tls.Config{RootCAs: h.tls.Pool, ServerName: opts.HostName, MinVersion: tls.VersionTLS12}}
	}
	if h.sim, err = sim.Start(ctx, fleet, h.db, h.reg, reporter, h.link, simOpts); err != nil {
		return nil, err
	}
	close(devicesReady)
	h.http = &http.Server{
		Handler:           mux,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{h.tls.Cert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute, // SDKs keep connections alive; idle ones are closed
		ErrorLog:          log.New(slogWriter{h.log}, "", 0),
	}
	var serving sync.WaitGroup
	for _, ln := range h.lns {
		serving.Go(func() {
			if err := h.http.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
				h.log.Error("hub: HTTPS server stopped", "addr", ln.Addr().String(), "err", err)
			}
		})
	}
	go func() {
		serving.Wait()
		close(h.served)
	}()
	h.log.Info("local IoT Hub started", "host", h.host, "data", opts.DataDir, "devices", h.reg.DeviceCount(),
		"queryDialect", opts.QueryDialect.String())
	return h, nil
}

// devicePolicy tells the MQTT endpoint which shared access policies may connect devices.
func (h *Hub) devicePolicy(name string) (mqttapi.Policy, bool) {
	for _, p := range h.policyList() {
		if p.Name == name {
			return mqttapi.Policy{Name: p.Name, PrimaryKey: p.PrimaryKey, SecondaryKey: p.SecondaryKey,
				DeviceConnect: p.Rights&httpapi.DeviceConnect != 0}, true
		}
	}
	return mqttapi.Policy{}, false
}

// MQTTAddr is the address the device MQTT endpoint listens on; nil without one.
func (h *Hub) MQTTAddr() net.Addr {
	if h.mqtt == nil {
		return nil
	}
	return h.mqtt.Addr()
}

// listen binds addr (every loopback address for "localhost"), explaining the usual failure on
// the hub's own port.
func listen(addr string) ([]net.Listener, error) {
	lns, err := bind.TCP(addr)
	if err == nil {
		return lns, nil
	}
	return nil, explainListenError(addr, err)
}

// ListenAddrs are the addresses the HTTPS endpoint (REST API, MQTT over WebSockets) listens
// on: 127.0.0.1 and ::1 for host "localhost".
func (h *Hub) ListenAddrs() []net.Addr {
	addrs := make([]net.Addr, len(h.lns))
	for i, ln := range h.lns {
		addrs[i] = ln.Addr()
	}
	return addrs
}

// explainListenError says what to do when the HTTPS address cannot be bound.
func explainListenError(addr string, err error) error {
	return explainListen(addr, "--https-port 8443", "443", err)
}

// explainListen turns a failure to bind one of the hub's ports into advice: which flag picks
// another port, and what that costs (Azure's SDKs only use the hub's own ports).
func explainListen(addr, flag, own string, err error) error {
	switch {
	case errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM):
		return fmt.Errorf("cannot listen on %s: permission denied. Port %s is the IoT Hub's own port, which Azure's SDKs (Node, C#, Python, Java) require; "+
			"grant the right to bind it (e.g. `sudo setcap cap_net_bind_service=+ep <iotplan binary>`) or choose another port with %s — "+
			"iotplan itself and amenzhinsky/iothub accept HostName=host:port connection strings, Azure's SDKs cannot use them", addr, own, flag)
	case errors.Is(err, syscall.EADDRINUSE):
		return fmt.Errorf("cannot listen on %s: the port is already in use (another `iotplan dev`?). Stop it, or choose another port with %s — "+
			"iotplan itself and amenzhinsky/iothub can use other ports, Azure's SDKs only use %s", addr, flag, own)
	}
	return fmt.Errorf("cannot listen on %s: %w (choose another address with %s)", addr, err, flag)
}

// FleetError is a fleet file that does not load. It carries every diagnostic and the file's
// source, so a caller can render them with locations and snippets (iotplan dev does, with
// schema.WriteDiagnostics); Error renders them too, with hcl's text writer.
type FleetError struct {
	Path        string
	Diagnostics hcl.Diagnostics
	// Files maps the file name the diagnostics' subjects carry to its parsed source.
	Files map[string]*hcl.File
}

func (e *FleetError) Error() string {
	var buf bytes.Buffer
	wr := hcl.NewDiagnosticTextWriter(&buf, e.Files, 100, false)
	_ = wr.WriteDiagnostics(e.Diagnostics)
	return fmt.Sprintf("fleet file %s:\n%s", e.Path, strings.TrimRight(buf.String(), "\n"))
}

func loadFleet(path string) (*sim.Fleet, error) {
	f, diags := sim.LoadFleet(path)
	if !diags.HasErrors() {
		return f, nil
	}
	files := map[string]*hcl.File{}
	if src, err := os.ReadFile(path); err == nil {
		// Parsed again only for its Nav, which names the block around each subject.
		file, _ := hclsyntax.ParseConfig(src, path, hcl.InitialPos)
		if file == nil {
			file = &hcl.File{}
		}
		file.Bytes = src
		files[path] = file
	}
	return nil, &FleetError{Path: path, Diagnostics: diags, Files: files}
}

// loadPolicies reads the shared access policies, creating the hub's defaults with fresh keys
// on first start.
func loadPolicies(db *bbolt.DB) ([]httpapi.Policy, error) {
	var ps []httpapi.Policy
	err := db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketPolicies)
		if err != nil {
			return err
		}
		if v := b.Get([]byte("all")); v != nil {
			return json.Unmarshal(v, &ps)
		}
		ps = httpapi.DefaultPolicies()
		for i := range ps {
			ps[i].PrimaryKey, ps[i].SecondaryKey = registry.NewKey(), registry.NewKey()
		}
		v, err := json.Marshal(ps)
		if err != nil {
			return err
		}
		return b.Put([]byte("all"), v)
	})
	if err != nil {
		return nil, fmt.Errorf("hub policies: %w", err)
	}
	return ps, nil
}

// HostName is what connection strings carry: "localhost" on 443, else "localhost:port".
func (h *Hub) HostName() string { return h.host }

// ServiceConnectionString is the connection string of the iothubowner policy.
func (h *Hub) ServiceConnectionString() string {
	s, _ := h.PolicyConnectionString("iothubowner")
	return s
}

// PolicyConnectionString is the connection string of a shared access policy (iothubowner,
// service, device, registryRead, registryReadWrite).
func (h *Hub) PolicyConnectionString(policy string) (string, error) {
	for _, p := range h.policyList() {
		if p.Name == policy {
			return sas.ConnectionString{HostName: h.host, SharedAccessKeyName: p.Name, SharedAccessKey: p.PrimaryKey}.String(), nil
		}
	}
	return "", fmt.Errorf("the local hub has no shared access policy %q", policy)
}

// Policies returns the hub's shared access policies (with keys).
func (h *Hub) Policies() []httpapi.Policy { return append([]httpapi.Policy(nil), h.policyList()...) }

// DeviceConnectionString is a device's connection string (primary key); 404001 if unknown.
// Its HostName is the bare host: device SDKs dial HostName:8883 (MQTT) or HostName:443
// (MQTT over WebSockets) and cannot take a port in it; a device of a hub on other ports
// is told the MQTT address separately (iotplan dev prints it).
func (h *Hub) DeviceConnectionString(deviceID string) (string, error) {
	pk, _, err := h.reg.DeviceKeys(deviceID)
	if err != nil {
		return "", err
	}
	return sas.ConnectionString{HostName: h.opts.HostName, DeviceID: deviceID, SharedAccessKey: pk}.String(), nil
}

// CAFile is the absolute path of the hub's CA certificate (PEM).
func (h *Hub) CAFile() string { return h.tls.CAPath }

// RootCAs is a pool holding the hub's CA, for clients' tls.Config.
func (h *Hub) RootCAs() *x509.CertPool { return h.tls.Pool.Clone() }

// Sim is the hub's simulated devices.
func (h *Hub) Sim() *sim.Sim { return h.sim }

// Registry is the hub's device registry (for in-process tests and tools).
func (h *Hub) Registry() *registry.Registry { return h.reg }

// Link is the hub's table of connected device sessions.
func (h *Hub) Link() *link.Hub { return h.link }

// Jobs is the hub's jobs engine.
func (h *Hub) Jobs() *jobs.Manager { return h.jobs }

// Throttle is the hub's operation throttles (unlimited unless Options.Tier was set).
func (h *Hub) Throttle() *throttle.Limiter { return h.throttle }

// Requests counts REST requests per route pattern (e.g. "POST /devices/query").
func (h *Hub) Requests() map[string]int64 { return h.api.Requests() }

// Close stops serving (waiting up to 5 s for requests in flight), stops the simulated devices
// and the jobs engine, and closes the store. It is safe to call more than once.
func (h *Hub) Close() error {
	h.closeOnce.Do(func() { h.closeErr = h.teardown() })
	return h.closeErr
}

func (h *Hub) teardown() error {
	var errs []error
	if h.dash != nil {
		h.dash.Close() // ends its event streams, which Shutdown would wait for
	}
	if h.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		if err := h.http.Shutdown(ctx); err != nil {
			// Requests still running after the bound (e.g. a long direct method) are cut.
			_ = h.http.Close()
		}
		cancel()
		<-h.served
	} else {
		bind.CloseAll(h.lns)
	}
	// Device sessions end first: their disconnects write connection states to the registry.
	// Simulated devices go before the MQTT endpoint, so mqtt-mode ones leave on their own
	// instead of being cut off (and trying to reconnect).
	if h.sim != nil {
		errs = append(errs, h.sim.Close())
	}
	if h.mqtt != nil {
		errs = append(errs, h.mqtt.Close())
	}
	if h.adm != nil {
		errs = append(errs, h.adm.Close())
	}
	if h.jobs != nil {
		errs = append(errs, h.jobs.Close())
	}
	if h.reg != nil {
		errs = append(errs, h.reg.Flush()) // lastActivityTime survives a restart
	}
	if h.db != nil {
		errs = append(errs, h.db.Sync(), h.db.Close())
	}
	return errors.Join(errs...)
}

// slogWriter routes net/http's server log (TLS handshake errors and the like) to slog at
// debug level: a client that does not trust the CA is the client's problem, not the hub's.
type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.l.Debug("hub: http", "msg", strings.TrimSpace(string(p)))
	return len(p), nil
}

// startDashboard mounts the dashboard (Options.Dashboard) under /ui/ of the HTTPS mux. Its
// queries take the REST API's own query path (httpapi.Server.Query).
func (h *Hub) startDashboard(mux *http.ServeMux) error {
	token, err := dashboard.NewToken()
	if err != nil {
		return fmt.Errorf("dashboard token: %w", err)
	}
	h.dash, err = dashboard.New(dashboard.Options{
		Token:          token,
		Queries:        h.api,
		Jobs:           h.jobs,
		Twin:           func(id string) (any, error) { return h.reg.GetTwin(id) },
		DeviceCount:    h.reg.DeviceCount,
		ConnectedCount: h.link.ConnectedCount,
		Generation:     h.reg.Generation,
		Throttle:       h.throttle,
		Activity:       h.activity,
		QueryDialect:   h.opts.QueryDialect,
		Logger:         h.log,
	})
	if err != nil {
		return err
	}
	mux.Handle(dashboard.Prefix, h.dash.Handler())
	return nil
}

// DashboardURL is the dashboard's address with its access token
// (https://127.0.0.1:PORT/ui/?token=…), which `iotplan dev` prints; "" without
// Options.Dashboard. The token is made at every start and is the only key to the dashboard:
// the hub never logs it.
func (h *Hub) DashboardURL() string {
	if h.dash == nil || len(h.lns) == 0 {
		return ""
	}
	a := h.lns[0].Addr().(*net.TCPAddr)
	host := h.opts.HostName
	if a.IP.IsLoopback() {
		host = a.IP.String() // the address it listens on, whatever localhost resolves to
	}
	return h.dash.URL("https://" + net.JoinHostPort(host, strconv.Itoa(a.Port)))
}
