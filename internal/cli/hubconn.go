package cli

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"

	"github.com/iotplan/iotplan/internal/hub"
	"github.com/iotplan/iotplan/internal/hubclient"
	"github.com/iotplan/iotplan/internal/reconcile"
	"github.com/iotplan/iotplan/internal/render"
	"github.com/iotplan/iotplan/internal/state"
	"github.com/iotplan/iotplan/internal/tier"
	"github.com/iotplan/iotplan/schema"
)

// defaultDataDir is where the local hub keeps its state unless --data says otherwise.
const defaultDataDir = ".iotplan/dev"

// envConnectionString names the environment variable holding a service connection string.
const envConnectionString = "IOTHUB_CONNECTION_STRING"

// hubFlags select the hub a command talks to.
type hubFlags struct {
	dev     bool
	dataDir string
	tier    string
	units   int
	state   string
}

func (f *hubFlags) register(fs *pflag.FlagSet) {
	fs.BoolVar(&f.dev, "dev", false, "use the built-in local IoT Hub (started in-process unless 'iotplan dev' is running)")
	fs.StringVar(&f.dataDir, "data", defaultDataDir, "data directory of the local hub (with -dev)")
	fs.StringVar(&f.tier, "hub-tier", "", "the hub's tier, F1, S1, S2 or S3 (else "+envHubTier+", the hub block's tier, or S1 assumed)")
	fs.IntVar(&f.units, "hub-units", 0, "the hub's units (else "+envHubUnits+", the hub block's units, or 1)")
	fs.StringVar(&f.state, "state", "", "the named state on the hub (else the hub block's state, or \""+state.DefaultName+"\")")
}

// endpointFile is written by a running 'iotplan dev' into its data directory so that
// 'plan -dev' and 'apply -dev' in another terminal talk to it instead of starting their own.
// It holds the hub's own owner key, like the hub's database beside it, and is private (0600).
type endpointFile struct {
	ConnectionString string `json:"connectionString"`
	CAFile           string `json:"caFile"`
	PID              int    `json:"pid"`
	// Tier and Units are the running hub's throttling tier ("" = unlimited).
	Tier  string `json:"tier,omitempty"`
	Units int    `json:"units,omitempty"`
}

const endpointFileName = "endpoint.json"

// WriteEndpoint records a running local hub in its data directory, as 'iotplan dev' does, so
// that '-dev -data DIR' commands talk to it (tools and tests that run a hub in-process).
func WriteEndpoint(dataDir, connectionString, caFile string, pid int) error {
	return writeEndpointFile(dataDir, endpointFile{ConnectionString: connectionString, CAFile: caFile, PID: pid})
}

func writeEndpointFile(dataDir string, e endpointFile) error {
	b, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dataDir, endpointFileName), b, 0o600)
}

// readRunningEndpoint returns the endpoint of an 'iotplan dev' that is still running.
func readRunningEndpoint(dataDir string) (endpointFile, bool) {
	var e endpointFile
	b, err := os.ReadFile(filepath.Join(dataDir, endpointFileName))
	if err != nil || json.Unmarshal(b, &e) != nil || e.PID <= 0 {
		return e, false
	}
	return e, state.ProcessAlive(e.PID)
}

// hubSession is the hub a command talks to, and how to let go of it.
type hubSession struct {
	client *hubclient.Client
	// tier is the hub's tier (the zero Tier: an unlimited local hub); tierAssumed: it was not
	// declared and assumedTier stands in for it.
	tier        tier.Tier
	tierAssumed bool
	// local is set when the command started the local hub in-process.
	local *hub.Hub
	// name describes the hub for messages, never with a key.
	name string
}

func (h *hubSession) Close() {
	if h.local != nil {
		h.local.Close()
	}
}

// openHub resolves the hub: -dev (a running 'iotplan dev', else one started in-process),
// else the config's hub block, else IOTHUB_CONNECTION_STRING; and its tier (declaredTier;
// for a local hub, its own; for a real one, assumedTier when none is declared). The client
// paces its calls to that tier.
func openHub(ctx context.Context, f hubFlags, cfg *schema.Config, logOut io.Writer) (*hubSession, error) {
	t, declared, err := declaredTier(f, cfg)
	if err != nil {
		return nil, err
	}
	if f.dev {
		return openDevHub(ctx, f.dataDir, t, declared, logOut)
	}
	cs, source := "", ""
	if cfg != nil && cfg.Hub != nil && cfg.Hub.ConnectionString != "" {
		cs, source = cfg.Hub.ConnectionString, "the hub block"
	} else if v := strings.TrimSpace(os.Getenv(envConnectionString)); v != "" {
		cs, source = v, envConnectionString
	}
	if cs == "" {
		return nil, fmt.Errorf("no IoT Hub to talk to: set %s to a service connection string, add a hub block, or use -dev for the built-in local hub", envConnectionString)
	}
	hs := &hubSession{tier: t}
	if !declared {
		hs.tier, hs.tierAssumed = assumedTier, true
	}
	c, err := hubclient.New(cs, hubclient.WithTier(hs.tier))
	if err != nil {
		// hubclient's errors never carry the key; say where the string came from.
		return nil, fmt.Errorf("%s: %s", source, oneLine(err.Error()))
	}
	hs.client, hs.name = c, c.HostName()
	return hs, nil
}

// openDevHub talks to the local hub: a running 'iotplan dev' of dataDir (its tier is the one
// it runs with), else one started in-process (unlimited). A declared tier overrides either,
// for rehearsing against a hub's quotas.
func openDevHub(ctx context.Context, dataDir string, t tier.Tier, declared bool, logOut io.Writer) (*hubSession, error) {
	if e, ok := readRunningEndpoint(dataDir); ok {
		pool, err := loadCAFile(e.CAFile)
		if err != nil {
			return nil, fmt.Errorf("local hub in %s: %w", dataDir, err)
		}
		if !declared {
			if t, err = tier.Parse(e.Tier, e.Units); err != nil {
				return nil, fmt.Errorf("local hub in %s: %w", dataDir, err)
			}
		}
		c, err := hubclient.New(e.ConnectionString, hubclient.WithRootCAs(pool), hubclient.WithTier(t))
		if err != nil {
			return nil, fmt.Errorf("local hub in %s: %s", dataDir, oneLine(err.Error()))
		}
		return &hubSession{client: c, tier: t, name: c.HostName() + " (iotplan dev, pid " + fmt.Sprint(e.PID) + ")"}, nil
	}
	h, err := hub.Start(ctx, hub.Options{
		DataDir:   dataDir,
		HostName:  "localhost",
		HTTPSAddr: "127.0.0.1:0",
		Logger:    hubLogger(logOut),
	})
	if err != nil {
		return nil, fmt.Errorf("starting the local hub in %s: %w", dataDir, err)
	}
	c, err := hubclient.New(h.ServiceConnectionString(), hubclient.WithRootCAs(h.RootCAs()), hubclient.WithTier(t))
	if err != nil {
		h.Close()
		return nil, err
	}
	fmt.Fprintf(logOut, "Started the built-in local IoT Hub in %s (%s simulated devices) for this run.\n\n", dataDir, render.Count(h.Sim().DeviceCount()))
	return &hubSession{client: c, tier: t, local: h, name: h.HostName() + " (built-in local hub, " + dataDir + ")"}, nil
}

func loadCAFile(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the hub's CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errors.New("the hub's CA file holds no certificate: " + path)
	}
	return pool, nil
}

// hubLogger logs the in-process hub's warnings and errors; IOTPLAN_LOG=debug|info shows more.
func hubLogger(w io.Writer) *slog.Logger {
	level := slog.LevelWarn
	switch strings.ToLower(os.Getenv("IOTPLAN_LOG")) {
	case "debug":
		level = slog.LevelDebug
	case "info":
		level = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// planOptions are the plan options for this hub: its host and tier.
func (h *hubSession) planOptions() reconcile.PlanOptions {
	return reconcile.PlanOptions{Hub: h.client.HostName(), Tier: h.tier, TierAssumed: h.tierAssumed}
}

// stateName resolves the named state: -state, else the hub block's state, else the default.
func stateName(f hubFlags, cfg *schema.Config) (string, error) {
	name := f.state
	if name == "" && cfg != nil && cfg.Hub != nil {
		name = cfg.Hub.State
	}
	if name == "" {
		return state.DefaultName, nil
	}
	if err := state.CheckName(name); err != nil {
		return "", flagErrorf("-state: %v", err)
	}
	return name, nil
}
