package bind

import (
	"net"
	"strconv"
	"testing"
	"time"
)

// "localhost" is bound on the loopback addresses only, on one port, and nothing else on the
// machine answers on that port.
func TestLocalhostIsLoopbackOnly(t *testing.T) {
	lns, err := TCP("localhost:0")
	if err != nil {
		t.Fatal(err)
	}
	defer CloseAll(lns)
	port := lns[0].Addr().(*net.TCPAddr).Port
	for _, ln := range lns {
		a := ln.Addr().(*net.TCPAddr)
		if !a.IP.IsLoopback() || a.Port != port {
			t.Errorf("listener on %v, want a loopback address on port %d", a, port)
		}
		c, err := net.DialTimeout("tcp", a.String(), 2*time.Second)
		if err != nil {
			t.Errorf("dial %v: %v", a, err)
			continue
		}
		c.Close()
	}
	if hasIPv6Loopback() && len(lns) != 2 {
		t.Errorf("listeners %d, want 127.0.0.1 and ::1", len(lns))
	}
	others := nonLoopbackIPs(t)
	if len(others) == 0 {
		t.Skip("this machine has no non-loopback address to try")
	}
	for _, ip := range others {
		addr := net.JoinHostPort(ip.String(), strconv.Itoa(port))
		if c, err := net.DialTimeout("tcp", addr, 2*time.Second); err == nil {
			c.Close()
			t.Errorf("%s answers: the listener is reachable from the network", addr)
		}
	}
}

// Any other host is bound as net.Listen binds it.
func TestOtherHosts(t *testing.T) {
	lns, err := TCP("127.0.0.1:0")
	if err != nil || len(lns) != 1 || lns[0].Addr().(*net.TCPAddr).IP.String() != "127.0.0.1" {
		t.Fatalf("TCP(127.0.0.1:0) = %v, %v", lns, err)
	}
	CloseAll(lns)
	if _, err := TCP("localhost"); err == nil {
		t.Error("an address without a port was accepted")
	}
}

func TestIsLoopback(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "LocalHost": true, "127.0.0.1": true, "127.1.2.3": true, "::1": true, "[::1]": true,
		"0.0.0.0": false, "::": false, "192.0.2.7": false, "myhub.example": false, "": false,
	} {
		if got := IsLoopback(host); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", host, got, want)
		}
	}
}

func hasIPv6Loopback() bool {
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

// nonLoopbackIPs are this machine's non-loopback addresses (bind.NonLoopbackIPs).
func nonLoopbackIPs(t *testing.T) []net.IP {
	ips, err := NonLoopbackIPs()
	if err != nil {
		t.Fatal(err)
	}
	return ips
}
