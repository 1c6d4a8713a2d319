// Command simdevice is the device of Azure's "Schedule and broadcast jobs" tutorial
// (simDevice.js) written in Go with github.com/amenzhinsky/iothub's iotdevice client over
// MQTT: it connects with a device connection string, answers the direct method lockDoor
// with status 200 (printing "Locking Door!"), and reports every desired property it receives
// back as a reported property. It runs against Azure IoT Hub or against `iotplan dev`.
//
//	simdevice -connection-string "HostName=localhost;DeviceId=myDeviceId;SharedAccessKey=..." -ca .iotplan/dev/ca.pem
//
// Flags may also come from the environment: IOTHUB_DEVICE_CONNECTION_STRING, IOTHUB_CA_FILE,
// IOTHUB_MQTT_ADDR. See README.md.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"os/signal"
	"reflect"
	"syscall"
	"time"

	"github.com/amenzhinsky/iothub/iotdevice"
	iotmqtt "github.com/amenzhinsky/iothub/iotdevice/transport/mqtt"
	"github.com/amenzhinsky/iothub/logger"
	paho "github.com/eclipse/paho.mqtt.golang"
)

// config is the command line, after environment defaults.
type config struct {
	connectionString string
	caFile           string // PEM file of the CA to trust; "" = the SDK's Azure roots
	mqttAddr         string // host:port of the MQTT endpoint; "" = {HostName without port}:8883
	verbose          bool
}

const usage = `Usage: simdevice [flags]

The tutorial's device: answers the direct method lockDoor with 200 and reports
received desired properties back, over MQTT (TLS, port 8883).

Flags:
`

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("simdevice", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	fs.StringVar(&c.connectionString, "connection-string", getenv("IOTHUB_DEVICE_CONNECTION_STRING"),
		"device connection string `HostName=...;DeviceId=...;SharedAccessKey=...` (env IOTHUB_DEVICE_CONNECTION_STRING)")
	fs.StringVar(&c.caFile, "ca", getenv("IOTHUB_CA_FILE"),
		"PEM `file` of the CA that signed the hub's certificate, e.g. the CA file `iotplan dev` prints (env IOTHUB_CA_FILE); empty = Azure's public roots")
	fs.StringVar(&c.mqttAddr, "mqtt-addr", getenv("IOTHUB_MQTT_ADDR"),
		"`host:port` of the hub's MQTT endpoint (env IOTHUB_MQTT_ADDR); default: the connection string's host name on port 8883")
	fs.BoolVar(&c.verbose, "v", false, "log MQTT client debug messages")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q (all options are flags)", fs.Arg(0))
	}
	if c.connectionString == "" {
		return c, errors.New("no device connection string: pass -connection-string or set IOTHUB_DEVICE_CONNECTION_STRING (`iotplan dev --device-connection-string myDeviceId` prints one)")
	}
	return c, nil
}

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "simdevice:", err)
		os.Exit(2)
	}
	level := slog.LevelInfo
	if cfg.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, os.Stdout, log, nil); err != nil {
		fmt.Fprintln(os.Stderr, "simdevice:", err)
		os.Exit(1)
	}
}

// run connects and serves until ctx ends. ready (tests) is called once the lockDoor handler
// and the desired-property subscription are in place.
func run(ctx context.Context, cfg config, out io.Writer, log *slog.Logger, ready func()) error {
	creds, err := iotdevice.ParseConnectionString(cfg.connectionString)
	if err != nil {
		// The SDK's message names fields only; it never echoes the key.
		return fmt.Errorf("connection string: %w", err)
	}
	if creds.DeviceID == "" || creds.HostName == "" || creds.SharedAccessKey.SharedAccessKey == "" {
		return errors.New("connection string: needs HostName, DeviceId and SharedAccessKey")
	}
	tlsConfig, err := clientTLS(cfg.caFile, creds.HostName)
	if err != nil {
		return err
	}
	broker := brokerAddr(cfg.mqttAddr, creds.HostName)

	tr := iotmqtt.New(
		iotmqtt.WithClientOptionsConfig(func(o *paho.ClientOptions) {
			// The transport always dials "tls://{HostName}:8883" with Azure's roots; a local hub
			// needs its own CA, and a HostName with a port ("localhost:8443") is not dialable.
			o.Servers = nil
			o.AddBroker("tls://" + broker)
			o.SetTLSConfig(tlsConfig)
			o.SetConnectTimeout(30 * time.Second)
		}),
	)
	c, err := iotdevice.New(tr, creds, iotdevice.WithLogger(sdkLogger(log)))
	if err != nil {
		return err
	}
	defer c.Close()

	log.Info("connecting", "device", creds.DeviceID, "mqtt", broker)
	connectCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	err = c.Connect(connectCtx)
	cancel()
	if err != nil {
		return fmt.Errorf("could not connect to %s as %s: %w", broker, creds.DeviceID, err)
	}
	log.Info("connected", "device", creds.DeviceID)

	// The SDK sends method answers with the context given here, so it must live as long as
	// the device does.
	if err := c.RegisterMethod(ctx, "lockDoor", func(map[string]any) (int, map[string]any, error) {
		fmt.Fprintln(out, "Locking Door!")
		return 200, nil, nil
	}); err != nil {
		return fmt.Errorf("registering lockDoor: %w", err)
	}
	sub, err := c.SubscribeTwinUpdates(ctx)
	if err != nil {
		return fmt.Errorf("subscribing to desired properties: %w", err)
	}
	// Reconnection flow (IoT Hub docs): subscribe first, then read the full twin, so no
	// change falls between the two.
	desired, reported, err := c.RetrieveTwinState(ctx)
	if err != nil {
		return fmt.Errorf("reading the twin: %w", err)
	}
	if err := reportBack(ctx, c, log, changed(desired, reported)); err != nil {
		return err
	}
	if ready != nil {
		ready()
	}
	for {
		select {
		case <-ctx.Done():
			log.Info("stopping")
			return nil
		case patch, ok := <-sub.C():
			if !ok {
				return fmt.Errorf("desired-property subscription ended: %v", sub.Err())
			}
			log.Info("desired properties received", "version", patch.Version())
			if err := reportBack(ctx, c, log, props(patch)); err != nil {
				log.Warn("could not report properties", "err", err)
			}
		}
	}
}

// reportBack sends props as reported properties (nothing when empty).
func reportBack(ctx context.Context, c *iotdevice.Client, log *slog.Logger, props map[string]any) error {
	if len(props) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err := c.UpdateTwinState(ctx, props)
	if err != nil {
		return fmt.Errorf("reporting properties: %w", err)
	}
	log.Info("reported properties", "keys", len(props), "version", v)
	return nil
}

// props is a desired section or patch without the hub's own $version/$metadata.
func props(s iotdevice.TwinState) map[string]any {
	out := maps.Clone(map[string]any(s))
	delete(out, "$version")
	delete(out, "$metadata")
	return out
}

// changed is the part of desired that reported does not already mirror.
func changed(desired, reported iotdevice.TwinState) map[string]any {
	out := map[string]any{}
	for k, v := range props(desired) {
		if !reflect.DeepEqual(reported[k], v) {
			out[k] = v
		}
	}
	return out
}

// brokerAddr is the MQTT endpoint: the flag, or the host name's host on 8883 (IoT Hub's port;
// a port in HostName belongs to the REST API).
func brokerAddr(flagAddr, hostName string) string {
	if flagAddr != "" {
		return flagAddr
	}
	host := hostName
	if h, _, err := net.SplitHostPort(hostName); err == nil {
		host = h
	}
	return net.JoinHostPort(host, "8883")
}

// clientTLS trusts caFile (or the SDK's Azure roots) and checks the certificate against the
// hub's host name, also when -mqtt-addr dials an IP address.
func clientTLS(caFile, hostName string) (*tls.Config, error) {
	serverName := hostName
	if h, _, err := net.SplitHostPort(hostName); err == nil {
		serverName = h
	}
	cfg := &tls.Config{ServerName: serverName, MinVersion: tls.VersionTLS12}
	if caFile == "" {
		return cfg, nil // nil RootCAs: the system roots (Azure's hubs chain to public CAs)
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s: no PEM certificate in it", caFile)
	}
	cfg.RootCAs = pool
	return cfg, nil
}

// sdkLogger routes the SDK's log lines to slog (its errors as warnings: the SDK retries).
func sdkLogger(log *slog.Logger) logger.Logger {
	lvl := logger.LevelWarn
	if log.Enabled(context.Background(), slog.LevelDebug) {
		lvl = logger.LevelDebug
	}
	return logger.New(lvl, func(l logger.Level, s string) {
		switch l {
		case logger.LevelError, logger.LevelWarn:
			log.Warn("iothub sdk: " + s)
		default:
			log.Debug("iothub sdk: " + s)
		}
	})
}
