package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/iotplan/iotplan/internal/hub"
	"github.com/iotplan/iotplan/internal/hub/bind"
	"github.com/iotplan/iotplan/internal/hub/throttle"
	"github.com/iotplan/iotplan/internal/hubclient"
	"github.com/iotplan/iotplan/internal/query"
	"github.com/iotplan/iotplan/internal/render"
	"github.com/iotplan/iotplan/internal/sas"
	"github.com/iotplan/iotplan/internal/tier"
	"github.com/iotplan/iotplan/schema"
)

type devOptions struct {
	dataDir   string
	fleetFile string
	host      string
	listen    string // --listen; "" = derived from --host (listenHost)
	httpsPort int
	mqttPort  int
	deviceCS  string
	tier      string
	units     int
	policies  bool
	regenKey  string
	dialect   string // --query-dialect
	noDash    bool   // --no-dashboard
}

func newDevCmd(s Streams) *cobra.Command {
	o := &devOptions{}
	cmd := &cobra.Command{
		Use:   "dev [--data DIR] [--fleet FILE] [--host H] [--listen ADDR] [--https-port P] [--mqtt-port P] [--tier F1|S1|S2|S3 [--units N]] [--query-dialect documented|extended] [--policies]",
		Short: "Run the local IoT Hub in the foreground",
		Long: `Runs the built-in local IoT Hub (service REST API over HTTPS, device MQTT endpoint,
device registry, twins, queries, jobs, simulated devices) until interrupted, like
Azurite for Azure Storage. State lives in --data; a new hub is seeded from --fleet,
or from the default fleet (examples/fleet.hcl) when none is given.

It listens on the loopback addresses only (127.0.0.1 and ::1), so nothing on the
network reaches it: its keys are printed and stored in the clear. --listen ADDR binds
another address instead: an IP address of this machine, a host name, or 0.0.0.0 or ::
for every interface. --host is the name in connection strings and the certificate;
without --listen, a --host other than localhost is also the address listened on,
since devices are told to dial it.

The default ports are the hub's own, 443 (HTTPS, and MQTT over WebSockets) and 8883
(MQTT), because Azure's SDKs cannot use others. Without the right to bind them, pass
--https-port and --mqtt-port: iotplan and amenzhinsky/iothub accept
"HostName=<host>:<port>" service connection strings, Azure's SDKs do not.

--tier F1|S1|S2|S3 and --units N enforce that tier's documented throttles (queries
per minute, twin reads and updates per second, jobs operations, job device operations
per second, direct methods, registry operations) with IoT Hub's traffic shaping and
429 ThrottlingException answers, and its job concurrency (1 on F1/S1, 5 on S2, 10 on
S3). Without --tier the hub is unlimited.

--query-dialect documented (the default) accepts only the query language Azure
documents for twin and job queries in POST /devices/query, job queryConditions and
ADM configurations, and answers anything else as Azure may (400, a failed job), with
the construct and its position; --query-dialect extended also accepts IS_STRING and
the other IS_* checks, ENDSWITH, TOP(n), TOP with GROUP BY, numbers like 1e3 and JSON
string escapes, which Azure may reject (docs/query.md).

The HTTPS port also serves a web dashboard under /ui/ (fleet overview, devices and
twins, jobs with live progress, recent method calls and twin updates): open the URL
printed at start, which carries an access token made at every start (docs/dashboard.md).
--no-dashboard turns it off.

--policies prints the connection string of every shared access policy (iothubowner,
service, device, registryRead, registryReadWrite), to test what each may do.

--device-connection-string ID prints that device's connection string and exits
(from the running hub of --data if there is one).

--regenerate-key POLICY[/primary|/secondary] gives a shared access policy a new key,
prints its new connection string and exits (Azure: az iot hub policy renew-key).
Tokens signed with the old key are refused from then on. Stop a running hub of --data
first: the keys are part of its configuration.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runDev(cmd, s, o) },
	}
	fs := cmd.Flags()
	fs.StringVar(&o.dataDir, "data", defaultDataDir, "data directory (created if missing)")
	fs.StringVar(&o.fleetFile, "fleet", "", "HCL file of simulated devices to seed a new hub with")
	fs.StringVar(&o.host, "host", "localhost", "host name of the hub (certificate SAN and connection strings)")
	fs.StringVar(&o.listen, "listen", "", "address to listen on: `ADDR` (IP or host; 0.0.0.0 or :: = every interface; default: loopback, or --host when it is not localhost)")
	fs.IntVar(&o.httpsPort, "https-port", 443, "HTTPS port of the service REST API")
	fs.IntVar(&o.mqttPort, "mqtt-port", 8883, "port of the device MQTT endpoint (TLS)")
	fs.StringVar(&o.deviceCS, "device-connection-string", "", "print the connection string of device `ID` and exit")
	fs.StringVar(&o.tier, "tier", "", "enforce the throttles of IoT Hub tier `F1|S1|S2|S3` (default: unlimited)")
	fs.IntVar(&o.units, "units", 1, "number of IoT Hub units of --tier (S1/S2: 1-200, S3: 1-10, F1: 1)")
	fs.BoolVar(&o.policies, "policies", false, "print the connection string of every shared access policy")
	fs.StringVar(&o.regenKey, "regenerate-key", "", "give shared access policy `POLICY[/primary|/secondary]` a new key and exit")
	fs.StringVar(&o.dialect, "query-dialect", query.Documented.String(), "query language the hub accepts: `documented|extended`")
	fs.BoolVar(&o.noDash, "no-dashboard", false, "do not serve the web dashboard under /ui/")
	return cmd
}

func runDev(cmd *cobra.Command, s Streams, o *devOptions) error {
	for _, p := range []struct {
		flag string
		port int
	}{{"--https-port", o.httpsPort}, {"--mqtt-port", o.mqttPort}} {
		if p.port < 0 || p.port > 65535 {
			return flagErrorf("%s %d is not a port number", p.flag, p.port)
		}
	}
	listen, err := listenHost(cmd, o)
	if err != nil {
		return err
	}
	if cmd.Flags().Changed("units") && o.tier == "" {
		return flagErrorf("--units needs --tier (F1, S1, S2 or S3); without a tier the local hub is unlimited")
	}
	var dialect query.Dialect
	if err := dialect.Set(o.dialect); err != nil {
		return flagErrorf("--query-dialect: %s", err)
	}
	if o.tier != "" {
		if _, err := throttle.New(throttle.Options{Tier: o.tier, Units: o.units}); err != nil {
			return flagErrorf("--tier %s --units %d: %s", o.tier, o.units, err)
		}
	}
	ctx := cmd.Context()
	if o.deviceCS != "" {
		return printDeviceConnectionString(ctx, s, o)
	}
	if o.regenKey != "" {
		return regenerateKey(ctx, s, o)
	}
	logger := slog.New(slog.NewTextHandler(s.Err, &slog.HandlerOptions{Level: slog.LevelInfo}))
	h, err := hub.Start(ctx, hub.Options{
		DataDir:   o.dataDir,
		HostName:  o.host,
		HTTPSAddr: net.JoinHostPort(listen, strconv.Itoa(o.httpsPort)),
		MQTTAddr:  net.JoinHostPort(listen, strconv.Itoa(o.mqttPort)),
		FleetFile: o.fleetFile,
		Logger:    logger,
		Tier:      o.tier,
		Units:     tierUnits(o),
		// The hub's query language (docs/query.md, "The documented dialect").
		QueryDialect: dialect,
		Dashboard:    !o.noDash,
	})
	if err != nil {
		return fleetDiagnostics(s, err)
	}
	defer h.Close()

	if err := writeEndpointFile(o.dataDir, endpointFile{
		ConnectionString: h.ServiceConnectionString(),
		CAFile:           h.CAFile(),
		PID:              os.Getpid(),
		Tier:             h.Throttle().Tier(),
		Units:            h.Throttle().Units(),
	}); err != nil {
		return fmt.Errorf("writing %s: %w", endpointFileName, err)
	}
	defer os.Remove(filepath.Join(o.dataDir, endpointFileName))

	mqttPort := h.MQTTAddr().(*net.TCPAddr).Port
	out := s.Out
	fmt.Fprintf(out, "iotplan local IoT Hub is running.\n\n")
	fmt.Fprintf(out, "  Host name:  %s\n", o.host)
	fmt.Fprintf(out, "  Listening:  %s\n", listenSummary(h.ListenAddrs(), listen))
	fmt.Fprintf(out, "  REST API:   https://%s\n", h.HostName())
	fmt.Fprintf(out, "  MQTT:       %s:%d (TLS; MQTT over WebSockets on the REST port)\n", o.host, mqttPort)
	fmt.Fprintf(out, "  CA file:    %s\n", h.CAFile())
	fmt.Fprintf(out, "  Devices:    %s (%s simulated)\n", render.Count(h.Registry().DeviceCount()), render.Count(h.Sim().DeviceCount()))
	fmt.Fprintf(out, "  Data:       %s\n", o.dataDir)
	fmt.Fprintf(out, "  Throttling: %s\n", throttleSummary(h.Throttle()))
	if u := h.DashboardURL(); u != "" {
		// The token is the dashboard's only key, printed here and nowhere else (like
		// Jupyter's); the hub's log never carries it.
		fmt.Fprintf(out, "  Dashboard:  %s\n", u)
		fmt.Fprintf(out, "              (its token changes at every start; the browser must trust the CA file above)\n")
	}
	fmt.Fprintln(out)
	if o.policies {
		writePolicies(out, h)
	} else {
		fmt.Fprintf(out, "Service connection string (policy iothubowner):\n  %s\n\n", h.ServiceConnectionString())
	}
	if dcs, err := h.DeviceConnectionString("myDeviceId"); err == nil {
		fmt.Fprintf(out, "Device connection string of myDeviceId:\n  %s\n\n", dcs)
	}
	dataFlag := ""
	if o.dataDir != defaultDataDir {
		dataFlag = " -data " + o.dataDir
	}
	fmt.Fprintf(out, "In another terminal:\n  iotplan plan -dev%s examples/lockdoor.hcl\n", dataFlag)
	fmt.Fprintf(out, "  export NODE_EXTRA_CA_CERTS=%s   # for Azure's Node SDKs\n\n", h.CAFile())
	fmt.Fprintf(out, "Press Ctrl+C to stop.\n")

	<-ctx.Done()
	fmt.Fprintf(s.Err, "\nStopping the local hub...\n")
	return nil
}

// printDeviceConnectionString asks the running hub of the data directory for the device's
// key, or opens the hub's store itself when none runs. Device connection strings carry the
// bare host name: device SDKs add the MQTT port themselves.
func printDeviceConnectionString(ctx context.Context, s Streams, o *devOptions) error {
	if e, ok := readRunningEndpoint(o.dataDir); ok {
		pool, err := loadCAFile(e.CAFile)
		if err != nil {
			return err
		}
		c, err := hubclient.New(e.ConnectionString, hubclient.WithRootCAs(pool))
		if err != nil {
			return err
		}
		defer c.Close()
		key, err := c.DeviceKey(ctx, o.deviceCS)
		if err != nil {
			return fmt.Errorf("device %q: %s", o.deviceCS, oneLine(err.Error()))
		}
		fmt.Fprintln(s.Out, sas.ConnectionString{HostName: hostOnly(c.HostName()), DeviceID: o.deviceCS, SharedAccessKey: key}.String())
		return nil
	}
	// No hub runs here: open the store on a throwaway port just to read the key.
	h, err := hub.Start(ctx, hub.Options{DataDir: o.dataDir, HostName: o.host, HTTPSAddr: "127.0.0.1:0", FleetFile: o.fleetFile})
	if err != nil {
		return fleetDiagnostics(s, err)
	}
	defer h.Close()
	cs, err := h.DeviceConnectionString(o.deviceCS)
	if err != nil {
		return fmt.Errorf("device %q: %s", o.deviceCS, oneLine(err.Error()))
	}
	fmt.Fprintln(s.Out, cs)
	return nil
}

// listenHost is the address the hub binds: --listen, else --host when it names something
// other than this machine's loopback (devices are told to dial it), else "localhost", which
// internal/hub/bind binds on 127.0.0.1 and ::1.
func listenHost(cmd *cobra.Command, o *devOptions) (string, error) {
	if !cmd.Flags().Changed("listen") {
		if bind.IsLoopback(o.host) {
			return bind.Localhost, nil
		}
		return o.host, nil
	}
	l := strings.TrimSuffix(strings.TrimPrefix(o.listen, "["), "]")
	if l == "" || strings.ContainsAny(l, "/ ") || (strings.Contains(l, ":") && net.ParseIP(l) == nil) {
		return "", flagErrorf("--listen %q: want an IP address or host name without a port (0.0.0.0 or :: for every interface); the ports are --https-port and --mqtt-port", o.listen)
	}
	return l, nil
}

// listenSummary is the banner's "Listening" line: the addresses, and whether the network
// can reach them.
func listenSummary(addrs []net.Addr, host string) string {
	var hosts []string
	for _, a := range addrs {
		hosts = append(hosts, a.(*net.TCPAddr).IP.String())
	}
	s := strings.Join(hosts, ", ")
	if bind.IsLoopback(host) {
		return s + " (loopback only; --listen to change)"
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		// Go binds 0.0.0.0 dual-stack and reports it as "::": say what was asked for.
		return host + " (every interface: reachable from the network)"
	}
	return s + " (reachable from the network)"
}

// fleetDiagnostics prints a fleet file's diagnostics Terraform-style (file:line:col, the
// source lines, the detail), every one of them, and ends the command with exit status 1;
// other errors are returned as they are. Main would print only an error's first line.
func fleetDiagnostics(s Streams, err error) error {
	var fe *hub.FleetError
	if !errors.As(err, &fe) {
		return err
	}
	_ = schema.WriteDiagnostics(s.Err, fe.Files, fe.Diagnostics, s.Width, colorOn(s.ErrTTY, &configFlags{}))
	return &silentError{exitError}
}

// tierUnits is --units for a hub with a tier (an unlimited hub has no units).
func tierUnits(o *devOptions) int {
	if o.tier == "" {
		return 0
	}
	return o.units
}

// throttleSummary is the banner's throttling line: "unlimited", or the tier with the rates
// that bind iotplan (queries, job device operations, twin updates, job concurrency).
func throttleSummary(l *throttle.Limiter) string {
	if l.Unlimited() {
		return "unlimited (use --tier F1|S1|S2|S3 to enforce a tier's throttles)"
	}
	units := "1 unit"
	if l.Units() != 1 {
		units = fmt.Sprintf("%d units", l.Units())
	}
	return fmt.Sprintf("%s, %s: %s queries/min, %s job device ops/s, %s twin updates/s, %d concurrent job(s)",
		l.Tier(), units, rate(l.Rate(tier.Queries)*60), rate(l.Rate(tier.JobDeviceOps)),
		rate(l.Rate(tier.TwinUpdates)), l.MaxConcurrentJobs())
}

func rate(r float64) string { return strconv.FormatFloat(math.Round(r*100)/100, 'f', -1, 64) }

// writePolicies prints the connection string of every shared access policy with its rights.
func writePolicies(out io.Writer, h *hub.Hub) {
	fmt.Fprintf(out, "Shared access policies:\n")
	for _, p := range h.Policies() {
		cs, err := h.PolicyConnectionString(p.Name)
		if err != nil {
			continue
		}
		fmt.Fprintf(out, "  %s (%s):\n    %s\n", p.Name, p.Rights, cs)
	}
	fmt.Fprintln(out)
}

// regenerateKey renews one key of a shared access policy in the hub's store. The running hub
// owns the store, so this refuses while one runs rather than change keys under it.
func regenerateKey(ctx context.Context, s Streams, o *devOptions) error {
	policy, which, _ := strings.Cut(o.regenKey, "/")
	if which == "" {
		which = "primary"
	}
	if which != "primary" && which != "secondary" {
		return flagErrorf("--regenerate-key %s: the key is primary or secondary, not %q", o.regenKey, which)
	}
	if e, ok := readRunningEndpoint(o.dataDir); ok {
		return fmt.Errorf("the local hub in %s is running (pid %d): stop it, then regenerate the key", o.dataDir, e.PID)
	}
	h, err := hub.Start(ctx, hub.Options{DataDir: o.dataDir, HostName: o.host, HTTPSAddr: "127.0.0.1:0", FleetFile: o.fleetFile})
	if err != nil {
		return fleetDiagnostics(s, err)
	}
	defer h.Close()
	if _, err := h.RegeneratePolicyKey(policy, which); err != nil {
		return err
	}
	// The hub here listens on a throwaway port: print the string for the port 'iotplan dev'
	// will use.
	cs, err := h.PolicyConnectionString(policy)
	if err != nil {
		return err
	}
	parsed, err := sas.ParseConnectionString(cs)
	if err != nil {
		return err
	}
	parsed.HostName = o.host
	if o.httpsPort != 443 {
		parsed.HostName = net.JoinHostPort(o.host, strconv.Itoa(o.httpsPort))
	}
	if which == "secondary" {
		for _, p := range h.Policies() {
			if p.Name == policy {
				parsed.SharedAccessKey = p.SecondaryKey
			}
		}
	}
	fmt.Fprintf(s.Err, "Regenerated the %s key of policy %s. Its connection string is now:\n", which, policy)
	fmt.Fprintln(s.Out, parsed.String())
	return nil
}
