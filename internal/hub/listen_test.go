package hub

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/iotplan/iotplan/internal/hub/bind"
)

// The permission error on :443 (not reproducible as root) names the flag and the trade-off.
func TestExplainListenError(t *testing.T) {
	eacces := &net.OpError{Op: "listen", Net: "tcp", Err: os.NewSyscallError("bind", syscall.EACCES)}
	err := explainListenError(":443", eacces)
	for _, want := range []string{":443", "permission denied", "--https-port", "Azure's SDKs", "amenzhinsky", "host:port"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in: %v", want, err)
		}
	}
	inUse := &net.OpError{Op: "listen", Net: "tcp", Err: os.NewSyscallError("bind", syscall.EADDRINUSE)}
	if err := explainListenError(":443", inUse); !strings.Contains(err.Error(), "already in use") || !strings.Contains(err.Error(), "--https-port") {
		t.Errorf("in use: %v", err)
	}
	other := errors.New("boom")
	if err := explainListenError("x:1", other); !errors.Is(err, other) {
		t.Errorf("other: %v", err)
	}
}

// The hub's default addresses are loopback only, and a hub on "localhost" answers on
// 127.0.0.1 and ::1 (Node.js may resolve localhost to either) and on nothing else.
func TestLocalhostHubIsLoopbackOnly(t *testing.T) {
	if host, _, _ := net.SplitHostPort(DefaultAddr); !bind.IsLoopback(host) {
		t.Errorf("DefaultAddr %q is not loopback", DefaultAddr)
	}
	h, err := Start(context.Background(), Options{DataDir: t.TempDir(), HTTPSAddr: "localhost:0", MQTTAddr: "localhost:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	addrs := append(h.ListenAddrs(), h.mqtt.Addrs()...)
	for _, a := range addrs {
		if !a.(*net.TCPAddr).IP.IsLoopback() {
			t.Errorf("the hub listens on %v", a)
		}
	}
	// Every loopback listener serves the REST API.
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: h.RootCAs(), ServerName: "localhost"}}}
	for _, a := range h.ListenAddrs() {
		resp, err := hc.Get("https://" + a.String() + "/devices/x?api-version=2021-04-12")
		if err != nil {
			t.Errorf("REST API on %v: %v", a, err)
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("REST API on %v: %s, want 401 without a token", a, resp.Status)
		}
	}
	for _, ip := range machineIPs(t) {
		for _, a := range addrs {
			other := net.JoinHostPort(ip.String(), strconv.Itoa(a.(*net.TCPAddr).Port))
			if c, err := net.DialTimeout("tcp", other, 2*time.Second); err == nil {
				c.Close()
				t.Errorf("the hub answers on %s, a non-loopback address", other)
			}
		}
	}
}

// machineIPs are this machine's non-loopback addresses (bind.NonLoopbackIPs).
func machineIPs(t *testing.T) []net.IP {
	ips, err := bind.NonLoopbackIPs()
	if err != nil {
		t.Fatal(err)
	}
	if len(ips) == 0 {
		t.Log("no non-loopback address on this machine: only the bound addresses are checked")
	}
	return ips
}
