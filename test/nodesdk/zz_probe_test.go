package nodesdk

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/iotplan/iotplan/internal/hub"
)

// TEMPORARY ad-hoc probe; deleted before the report.
func TestZZProbe(t *testing.T) {
	if os.Getenv("PROBE") != "1" {
		t.Skip()
	}
	dir := t.TempDir()
	ff := filepath.Join(dir, "f.hcl")
	os.WriteFile(ff, []byte(fleet+"\ndevice \"door-other-off\" {\n offline = true\n}\n"), 0o644)
	h, err := hub.Start(context.Background(), hub.Options{DataDir: filepath.Join(dir, "h"), HostName: "localhost", HTTPSAddr: ":443", MQTTAddr: ":8883", FleetFile: ff})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	cs, _ := h.DeviceConnectionString("myDeviceId")
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "/tmp/nodesdk-wire/probe.js")
	cmd.Env = append(os.Environ(), "NODE_PATH="+mustAbs("node_modules"), "DEVICE_CONNECTION_STRING="+cs, "IOTHUB_CONNECTION_STRING="+h.ServiceConnectionString(), "NODE_EXTRA_CA_CERTS="+h.CAFile())
	out, err := cmd.CombinedOutput()
	t.Logf("%s\nerr=%v", out, err)
}

func mustAbs(p string) string { a, _ := filepath.Abs(p); return a }
