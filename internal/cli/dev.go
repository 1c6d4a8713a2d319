package cli

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/iotplan/iotplan/internal/hub"
)

type devOptions struct {
	dataDir   string
	fleetFile string
	host      string
	httpsPort int
	deviceCS  string
}

func newDevCmd(s Streams) *cobra.Command {
	o := &devOptions{}
	cmd := &cobra.Command{
		Use:   "dev [--data DIR] [--fleet FILE] [--host H] [--https-port P]",
		Short: "Run the local IoT Hub in the foreground",
		Long: `Runs the built-in local IoT Hub (service REST API over HTTPS, device registry,
twins, queries, jobs, simulated devices) until interrupted, like Azurite for Azure
Storage. State lives in --data; a new hub is seeded from --fleet, or from the
default fleet (examples/fleet.hcl) when none is given.

The default port is the hub's own, 443, because Azure's SDKs cannot use another.
Without the right to bind it, pass --https-port; iotplan and amenzhinsky/iothub
then use "HostName=<host>:<port>" connection strings, Azure's SDKs cannot.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runDev(cmd, s, o) },
	}
	fs := cmd.Flags()
	fs.StringVar(&o.dataDir, "data", defaultDataDir, "data directory (created if missing)")
	fs.StringVar(&o.fleetFile, "fleet", "", "HCL file of simulated devices to seed a new hub with")
	fs.StringVar(&o.host, "host", "localhost", "host name of the hub (certificate SAN and connection strings)")
	fs.IntVar(&o.httpsPort, "https-port", 443, "HTTPS port of the service REST API")
	fs.StringVar(&o.deviceCS, "device-connection-string", "", "print the connection string of this device and exit")
	return cmd
}

func runDev(cmd *cobra.Command, s Streams, o *devOptions) error {
	if o.httpsPort < 0 || o.httpsPort > 65535 {
		return flagErrorf("--https-port %d is not a port number", o.httpsPort)
	}
	ctx := cmd.Context()
	logger := slog.New(slog.NewTextHandler(s.Err, &slog.HandlerOptions{Level: slog.LevelInfo}))
	addr := net.JoinHostPort("", strconv.Itoa(o.httpsPort))
	if o.deviceCS != "" {
		// Printing a connection string must not need the port: use a throwaway one.
		addr = "127.0.0.1:0"
	}
	h, err := hub.Start(ctx, hub.Options{
		DataDir:   o.dataDir,
		HostName:  o.host,
		HTTPSAddr: addr,
		FleetFile: o.fleetFile,
		Logger:    logger,
	})
	if err != nil {
		return err
	}
	defer h.Close()

	if o.deviceCS != "" {
		cs, err := h.DeviceConnectionString(o.deviceCS)
		if err != nil {
			return err
		}
		fmt.Fprintln(s.Out, cs)
		return nil
	}

	if err := writeEndpointFile(o.dataDir, endpointFile{
		ConnectionString: h.ServiceConnectionString(),
		CAFile:           h.CAFile(),
		PID:              os.Getpid(),
	}); err != nil {
		return fmt.Errorf("writing %s: %w", endpointFileName, err)
	}
	defer os.Remove(filepath.Join(o.dataDir, endpointFileName))

	fleet := "remembered fleet"
	if o.fleetFile != "" {
		fleet = o.fleetFile
	}
	out := s.Out
	fmt.Fprintf(out, "iotplan local IoT Hub is running.\n\n")
	fmt.Fprintf(out, "  Host name:  %s\n", h.HostName())
	fmt.Fprintf(out, "  REST API:   https://%s\n", h.HostName())
	fmt.Fprintf(out, "  CA file:    %s\n", h.CAFile())
	fmt.Fprintf(out, "  Fleet:      %d devices (%s)\n", h.Sim().DeviceCount(), fleet)
	fmt.Fprintf(out, "  Data:       %s\n\n", o.dataDir)
	fmt.Fprintf(out, "Service connection string (policy iothubowner):\n  %s\n\n", h.ServiceConnectionString())
	if dcs, err := h.DeviceConnectionString("myDeviceId"); err == nil {
		fmt.Fprintf(out, "Device connection string of myDeviceId:\n  %s\n\n", dcs)
	}
	fmt.Fprintf(out, "In another terminal:\n  iotplan plan -dev examples/lockdoor.hcl\n")
	fmt.Fprintf(out, "  export NODE_EXTRA_CA_CERTS=%s   # for Azure's Node SDKs\n\n", h.CAFile())
	fmt.Fprintf(out, "Press Ctrl+C to stop.\n")

	<-ctx.Done()
	fmt.Fprintf(s.Err, "\nStopping the local hub...\n")
	return nil
}
