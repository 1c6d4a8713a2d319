// Package nodesdk proves the local hub against Azure's own Node.js IoT SDKs: it runs the seed
// tutorial "Schedule and broadcast jobs (Node.js)" — simDevice.js (azure-iot-device +
// azure-iot-device-mqtt) and scheduleJobService.js (azure-iothub JobClient) — unmodified,
// except that the connection strings come from the environment, against an in-process hub
// on the ports those SDKs cannot change: HTTPS 443 and MQTT 8883, HostName "localhost",
// the hub's CA trusted through NODE_EXTRA_CA_CERTS.
//
// The SDK versions are pinned exactly in package.json / package-lock.json (azure-iothub and
// azure-iot-device with its MQTT transport, from github.com/Azure/azure-iot-sdk-node). The test needs Node.js ≥ 20, the
// packages installed, and the right to bind ports 443 and 8883, so it only runs when asked:
//
//	cd test/nodesdk && npm ci
//	IOTPLAN_NODE_SDK=1 go test ./test/nodesdk
//
// With IOTPLAN_NODE_SDK=1 a missing node, missing or wrong node_modules, or a port that cannot
// be bound is a failure, not a skip. IOTPLAN_LOG=debug puts the hub's debug log (every
// request, every MQTT session event) into the failure output; DEBUG=… (the SDKs' `debug`
// module) is passed through to both programs.
//
// myDeviceId is declared offline in the fleet, so the in-process simulated device never
// answers for it: the lockDoor answer can only come from the Node device. A second,
// simulated-online device checks that the job's query condition targets myDeviceId only.
package nodesdk

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"github.com/iotplan/iotplan/internal/lockedbuf"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/iotplan/iotplan/internal/hub"
)

const (
	envRun = "IOTPLAN_NODE_SDK"
	device = "myDeviceId"
	// otherDevice is online (simulated) and answers lockDoor, but the tutorial's query
	// condition does not select it.
	otherDevice = "door-other"

	deviceReadyTimeout = 30 * time.Second
	// serviceTimeout bounds scheduleJobService.js: it polls every 5 s, so a healthy run takes
	// 5–10 s.
	serviceTimeout = 90 * time.Second
)

// fleet: myDeviceId exists but is never connected by the simulator.
const fleet = `
device "myDeviceId" {
  offline = true
}

device "door-other" {
  desired = { building = "41" }
  method "lockDoor" {
    status = 200
  }
}
`

func TestTutorialScheduleJobs(t *testing.T) {
	if os.Getenv(envRun) != "1" {
		t.Skip("runs Azure's Node.js SDKs against the local hub on ports 443/8883; to run it: " +
			"`cd test/nodesdk && npm ci`, then `IOTPLAN_NODE_SDK=1 go test ./test/nodesdk` (needs node ≥ 20 and the right to bind 443 and 8883)")
	}
	node := checkNode(t)
	checkPackages(t)

	hubLog := &lockedbuf.Buffer{}
	dir := t.TempDir()
	fleetFile := filepath.Join(dir, "fleet.hcl")
	if err := os.WriteFile(fleetFile, []byte(fleet), 0o644); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(dir, "hub")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h, err := hub.Start(ctx, hub.Options{
		DataDir:   dataDir,
		HostName:  "localhost",
		HTTPSAddr: ":443",
		MQTTAddr:  ":8883",
		FleetFile: fleetFile,
		Logger:    slog.New(slog.NewTextHandler(hubLog, &slog.HandlerOptions{Level: logLevel()})),
	})
	if err != nil {
		t.Fatalf("starting the local hub on :443 and :8883 (Azure's SDKs cannot use other ports): %v", err)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("closing the hub: %v", err)
		}
	})
	if h.HostName() != "localhost" {
		t.Fatalf("hub HostName = %q, want \"localhost\" (HTTPS on 443)", h.HostName())
	}
	if a, ok := h.MQTTAddr().(*net.TCPAddr); !ok || a.Port != 8883 {
		t.Fatalf("hub MQTT endpoint = %v, want port 8883", h.MQTTAddr())
	}

	var dev, svc proc
	t.Cleanup(func() {
		// Shown with -v, and on failure.
		t.Logf("simDevice.js stdout:\n%s\nsimDevice.js stderr:\n%s", dev.stdout.String(), dev.stderr.String())
		t.Logf("scheduleJobService.js stdout:\n%s\nscheduleJobService.js stderr:\n%s", svc.stdout.String(), svc.stderr.String())
		t.Logf("hub log (IOTPLAN_LOG=debug for more):\n%s", hubLog)
	})

	// The device side: simDevice.js connects over MQTT and registers lockDoor.
	devCS, err := h.DeviceConnectionString(device)
	if err != nil {
		t.Fatal(err)
	}
	dev.start(t, node, "simDevice.js", 0, map[string]string{
		"DEVICE_CONNECTION_STRING": devCS,
		"NODE_EXTRA_CA_CERTS":      h.CAFile(),
		// The SDK logs "enabled methods" when the hub acknowledged the method subscription
		// (internal_client.js _enableMethods): the moment a lockDoor call can be delivered.
		"DEBUG": debugEnv("azure-iot-device:InternalClient"),
	})
	waitFor(t, deviceReadyTimeout, "simDevice.js to connect and subscribe to direct methods", &dev, func() bool {
		return h.Link().Connected(device) && strings.Contains(dev.stderr.String(), "enabled methods")
	})
	if !strings.Contains(dev.stdout.String(), "Client connected to IoT Hub. Register handler for lockDoor direct method.") {
		t.Fatalf("simDevice.js did not print its connected line:\n%s", dev.stdout.String())
	}

	// The service side: scheduleJobService.js schedules both jobs and polls them to the end.
	svc.start(t, node, "scheduleJobService.js", serviceTimeout, map[string]string{
		"IOTHUB_CONNECTION_STRING": h.ServiceConnectionString(),
		"NODE_EXTRA_CA_CERTS":      h.CAFile(),
		"DEBUG":                    debugEnv(""),
	})
	if err := svc.wait(); err != nil {
		t.Fatalf("scheduleJobService.js: %v (timeout %s); stdout:\n%s\nstderr:\n%s", err, serviceTimeout, svc.stdout.String(), svc.stderr.String())
	}

	out := svc.stdout.String()
	methodJob := match(t, out, `scheduling Device Method job with id: (\S+)`)
	twinJob := match(t, out, `scheduling Twin Update job with id: (\S+)`)
	if s := svc.stderr.String(); strings.Contains(s, "Could not") {
		t.Errorf("scheduleJobService.js reported errors:\n%s", s)
	}
	results := jobResults(t, out)
	for _, want := range []struct{ id, typ string }{{methodJob, "scheduleDeviceMethod"}, {twinJob, "scheduleUpdateTwin"}} {
		if !strings.Contains(out, "Job: "+want.id+" - status: completed\n") {
			t.Errorf("job %s (%s) never reported status completed", want.id, want.typ)
		}
		r, ok := results[want.id]
		if !ok {
			t.Errorf("scheduleJobService.js did not print the final document of job %s", want.id)
			continue
		}
		stats, _ := r["deviceJobStatistics"].(map[string]any)
		if r["status"] != "completed" || r["type"] != want.typ || stats["deviceCount"] != 1.0 || stats["succeededCount"] != 1.0 || stats["failedCount"] != 0.0 {
			t.Errorf("final job document %s: status %v, type %v, deviceJobStatistics %v; want completed, %s, 1 device succeeded",
				want.id, r["status"], r["type"], r["deviceJobStatistics"], want.typ)
		}
	}

	// The Node device, not a simulated one, answered lockDoor.
	devOut := dev.stdout.String()
	if !strings.Contains(devOut, "Locking Door!\n") || !strings.Contains(devOut, "Response to method 'lockDoor' sent successfully.\n") {
		t.Errorf("simDevice.js did not handle lockDoor; stdout:\n%s", devOut)
	}
	if n := h.Sim().Calls(device, "lockDoor"); n != 0 {
		t.Errorf("the simulated %s received %d lockDoor calls; want 0 (only the Node device may answer)", device, n)
	}
	if n := h.Sim().Calls(otherDevice, "lockDoor"); n != 0 {
		t.Errorf("%s received %d lockDoor calls; the query condition selects only %s", otherDevice, n, device)
	}
	var row map[string]any
	h.Jobs().ForEachDeviceJob(func(r map[string]any) bool {
		if r["jobId"] == methodJob && r["deviceId"] == device {
			row = r
			return false
		}
		return true
	})
	resp, _ := row["outcome"].(map[string]any)
	resp, _ = resp["deviceMethodResponse"].(map[string]any)
	if row["status"] != "completed" || resp["status"] != 200.0 {
		t.Errorf("devices.jobs row of %s in job %s = %v; want completed with deviceMethodResponse.status 200", device, methodJob, row)
	}

	// The twin job wrote the tutorial's desired properties, and only on myDeviceId.
	twin, err := h.Registry().GetTwin(device)
	if err != nil {
		t.Fatal(err)
	}
	desired := props(twin, "desired")
	if desired["building"] != "43" || desired["floor"] != 3.0 {
		t.Errorf("twin %s desired = %v; want building \"43\" and floor 3", device, desired)
	}
	other, err := h.Registry().GetTwin(otherDevice)
	if err != nil {
		t.Fatal(err)
	}
	if d := props(other, "desired"); d["building"] != "41" || d["floor"] != nil {
		t.Errorf("twin %s desired = %v; the twin job must not touch it", otherDevice, d)
	}
}

// checkNode finds node and checks it is recent enough for the pinned SDKs.
func checkNode(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("%s=1 but node is not on PATH: install Node.js 20 or later", envRun)
	}
	out, err := exec.Command(node, "--version").Output()
	if err != nil {
		t.Fatalf("%s --version: %v", node, err)
	}
	var major int
	if _, err := fmt.Sscanf(strings.TrimSpace(string(out)), "v%d", &major); err != nil || major < 20 {
		t.Fatalf("node %s is too old: the test needs Node.js 20 or later", strings.TrimSpace(string(out)))
	}
	return node
}

// checkPackages checks that node_modules holds exactly the versions package.json pins.
func checkPackages(t *testing.T) {
	t.Helper()
	var pkg struct {
		Dependencies map[string]string `json:"dependencies"`
	}
	src, err := os.ReadFile("package.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(src, &pkg); err != nil {
		t.Fatalf("package.json: %v", err)
	}
	if len(pkg.Dependencies) == 0 {
		t.Fatal("package.json pins no dependencies")
	}
	for name, want := range pkg.Dependencies {
		var got struct {
			Version string `json:"version"`
		}
		src, err := os.ReadFile(filepath.Join("node_modules", name, "package.json"))
		if err == nil {
			err = json.Unmarshal(src, &got)
		}
		switch {
		case err != nil:
			t.Fatalf("%s is not installed (%v): run `cd test/nodesdk && npm ci`", name, err)
		case got.Version != want:
			t.Fatalf("node_modules has %s %s, package.json pins %s: run `cd test/nodesdk && npm ci`", name, got.Version, want)
		}
	}
}

// proc is one node program with its output captured.
type proc struct {
	name           string
	cmd            *exec.Cmd
	stdout, stderr lockedbuf.Buffer
	done           chan struct{}
	err            error
}

// start runs `node script` in this directory; timeout 0 = until the test ends. The process
// is killed when the test ends, whatever the path.
func (p *proc) start(t *testing.T, node, script string, timeout time.Duration, env map[string]string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	if timeout > 0 {
		ctx, cancel = context.WithTimeout(context.Background(), timeout)
	}
	p.name = script
	p.cmd = exec.CommandContext(ctx, node, script)
	p.cmd.Env = os.Environ()
	for k, v := range env {
		p.cmd.Env = append(p.cmd.Env, k+"="+v)
	}
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	p.cmd.WaitDelay = 5 * time.Second
	p.cmd.SysProcAttr = childProcAttr()
	p.done = make(chan struct{})
	if err := p.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting node %s: %v", script, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		if ctx.Err() == context.DeadlineExceeded {
			p.err = fmt.Errorf("killed after %s: %w", timeout, p.err)
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		cancel()
		<-p.done
	})
}

// wait waits for the program to exit and returns how it ended.
func (p *proc) wait() error {
	<-p.done
	return p.err
}

// exited reports whether the program has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitFor polls cond until it holds, the program ends, or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, p *proc, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if p.exited() {
			t.Fatalf("waiting for %s: node %s exited (%v); stdout:\n%s\nstderr:\n%s", what, p.name, exitStatus(p.err), p.stdout.String(), p.stderr.String())
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: not done after %s", what, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func exitStatus(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// jobResults decodes the job documents scheduleJobService.js prints with
// JSON.stringify(result, null, 2) once a job ends: a "{" line up to the next "}" line.
func jobResults(t *testing.T, out string) map[string]map[string]any {
	t.Helper()
	res := map[string]map[string]any{}
	var block []string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "{":
			block = []string{line}
		case block != nil:
			block = append(block, line)
			if line == "}" {
				var doc map[string]any
				if err := json.Unmarshal([]byte(strings.Join(block, "\n")), &doc); err != nil {
					t.Errorf("job document printed by scheduleJobService.js is not JSON: %v", err)
				} else if id, _ := doc["jobId"].(string); id != "" {
					res[id] = doc
				}
				block = nil
			}
		}
	}
	return res
}

func match(t *testing.T, out, re string) string {
	t.Helper()
	m := regexp.MustCompile(re).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("scheduleJobService.js output has no line matching %q:\n%s", re, out)
	}
	return m[1]
}

func props(twin map[string]any, kind string) map[string]any {
	p, _ := twin["properties"].(map[string]any)
	m, _ := p[kind].(map[string]any)
	return m
}

// debugEnv adds the test's own `debug` namespaces to the caller's DEBUG, if any.
func debugEnv(ns string) string {
	return strings.Trim(os.Getenv("DEBUG")+","+ns, ",")
}

func logLevel() slog.Level {
	switch strings.ToLower(os.Getenv("IOTPLAN_LOG")) {
	case "debug":
		return slog.LevelDebug
	case "info":
		return slog.LevelInfo
	}
	return slog.LevelWarn
}
