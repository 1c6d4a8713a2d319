package cli

import (
	"context"
	"github.com/iotplan/iotplan/internal/hub/bind"
	"github.com/iotplan/iotplan/internal/lockedbuf"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// A broken fleet file is reported like a broken configuration: every diagnostic, with
// file:line:col, the source line and the detail, and exit status 1 — not only the first line
// of an error.
func TestDevFleetFileDiagnostics(t *testing.T) {
	cases := []struct {
		name, src string
		want      []string // each must appear in the error stream
	}{
		{"syntax", "device \"a\" {\n  method \"m\" {\n    status = \n  }\n}\n",
			[]string{"syntax.hcl:3:", "status ="}},
		{"unknown-attribute", "device \"a\" {\n  colour = \"red\"\n}\n",
			[]string{"unknown-attribute.hcl:2:3", "colour = \"red\"", "Unsupported argument"}},
		{"bad-count", "group \"g\" {\n  count = -3\n  id    = \"d-%d\"\n}\n",
			[]string{"bad-count.hcl:2:", "count = -3"}},
		{"bad-id-format", "group \"g\" {\n  count = 2\n  id    = \"d-%s-%q\"\n}\n",
			[]string{"bad-id-format.hcl:3:", "Invalid id pattern"}},
		{"duplicate-ids", "device \"a\" {\n}\ndevice \"b\" {\n}\ndevice \"a\" {\n}\n",
			[]string{"duplicate-ids.hcl:5:", "Duplicate device id"}},
		{"bad-method-status", "device \"a\" {\n  method \"m\" {\n    status = \"ok\"\n  }\n}\n",
			[]string{"bad-method-status.hcl:3:", "status = \"ok\""}},
		// Two mistakes: both are reported, each with its own location.
		{"two-errors", "device \"a\" {\n  colour = \"red\"\n}\ngroup \"g\" {\n  count = 1\n  id    = \"x\"\n  size = 3\n}\n",
			[]string{"two-errors.hcl:2:3", "two-errors.hcl:7:3", "colour", "size = 3"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fleet := filepath.Join(t.TempDir(), c.name+".hcl")
			if err := os.WriteFile(fleet, []byte(c.src), 0o644); err != nil {
				t.Fatal(err)
			}
			data := t.TempDir()
			r := iotplan(t, "dev", "--data", data, "--fleet", fleet, "--https-port", "0", "--mqtt-port", "0")
			if r.code != exitError {
				t.Fatalf("exit %d, want 1; stderr:\n%s", r.code, r.err)
			}
			if !strings.HasPrefix(r.err, "Error: ") {
				t.Errorf("stderr does not start with a diagnostic:\n%s", r.err)
			}
			for _, w := range c.want {
				if !strings.Contains(r.err, w) {
					t.Errorf("missing %q in:\n%s", w, r.err)
				}
			}
			// The snippet is numbered source ("    2: ..."), as for configurations.
			if !strings.Contains(r.err, ": ") || !strings.Contains(r.err, "  on ") {
				t.Errorf("no located snippet in:\n%s", r.err)
			}
			if strings.Contains(r.out, "is running") {
				t.Errorf("the hub started despite the broken fleet:\n%s", r.out)
			}
			// Nothing was created: a typo leaves no half-made hub.
			if _, err := os.Stat(filepath.Join(data, "hub.db")); err == nil {
				t.Errorf("hub.db was created for a broken fleet")
			}
		})
	}
}

// startDev runs `iotplan dev` in-process until the test ends and returns its banner.
func startDev(t *testing.T, args ...string) string {
	t.Helper()
	var out, errb lockedbuf.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	args = append([]string{"dev", "--data", t.TempDir(), "--https-port", "0", "--mqtt-port", "0"}, args...)
	go func() { done <- run(ctx, args, Streams{In: strings.NewReader(""), Out: &out, Err: &errb, Width: 100}) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("iotplan dev did not stop")
		}
	})
	for deadline := time.Now().Add(60 * time.Second); !strings.Contains(out.String(), "Press Ctrl+C"); {
		select {
		case code := <-done:
			t.Fatalf("iotplan dev exited %d:\n%s\n%s", code, out.String(), errb.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("iotplan dev did not start:\n%s\n%s", out.String(), errb.String())
		}
	}
	return out.String()
}

// bannerPorts are the REST and MQTT ports `iotplan dev` printed.
func bannerPorts(t *testing.T, banner string) []string {
	t.Helper()
	m := regexp.MustCompile(`REST API: +https://[^:\s]+:(\d+)[\s\S]*MQTT: +\S+:(\d+)`).FindStringSubmatch(banner)
	if m == nil {
		t.Fatalf("no ports in:\n%s", banner)
	}
	return m[1:]
}

// reachable reports whether anything answers on ip at any of ports.
func reachable(ip net.IP, ports []string) bool {
	for _, p := range ports {
		if c, err := net.DialTimeout("tcp", net.JoinHostPort(ip.String(), p), 2*time.Second); err == nil {
			c.Close()
			return true
		}
	}
	return false
}

// `iotplan dev` listens on loopback only unless told otherwise with --listen.
func TestDevListensOnLoopbackByDefault(t *testing.T) {
	banner := startDev(t)
	if !regexp.MustCompile(`Listening: +127\.0\.0\.1(, ::1)? \(loopback only`).MatchString(banner) {
		t.Errorf("no loopback Listening line:\n%s", banner)
	}
	ports := bannerPorts(t, banner)
	if !reachable(net.IPv4(127, 0, 0, 1), ports) {
		t.Fatalf("nothing answers on 127.0.0.1 %v", ports)
	}
	ips := machineIPs(t)
	for _, ip := range ips {
		if reachable(ip, ports) {
			t.Errorf("the hub answers on %s, a non-loopback address", ip)
		}
	}
	if len(ips) == 0 {
		return
	}
	// --listen 0.0.0.0: the machine's other IPv4 addresses reach it.
	banner = startDev(t, "--listen", "0.0.0.0")
	if !strings.Contains(banner, "Listening:  0.0.0.0 (every interface") {
		t.Errorf("no every-interface Listening line:\n%s", banner)
	}
	ports = bannerPorts(t, banner)
	for _, ip := range ips {
		if ip.To4() != nil && !reachable(ip, ports) {
			t.Errorf("--listen 0.0.0.0: nothing answers on %s", ip)
		}
	}
}

func TestDevListenFlagErrors(t *testing.T) {
	for _, bad := range []string{"127.0.0.1:8443", "", "http://x"} {
		r := iotplan(t, "dev", "--data", t.TempDir(), "--listen", bad)
		if r.code != exitError || !strings.Contains(r.err, "--listen") || !strings.Contains(r.err, "--help") {
			t.Errorf("--listen %q: exit %d, %s", bad, r.code, r.err)
		}
	}
}

// machineIPs are this machine's non-loopback addresses (bind.NonLoopbackIPs).
func machineIPs(t *testing.T) []net.IP {
	ips, err := bind.NonLoopbackIPs()
	if err != nil {
		t.Fatal(err)
	}
	return ips
}
