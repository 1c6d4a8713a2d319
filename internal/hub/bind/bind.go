// Package bind opens the local hub's TCP listeners. The one rule it adds to net.Listen is for
// "localhost": that host is bound on every loopback address, 127.0.0.1 and ::1 (when the
// machine has IPv6), on one port, because clients do not agree on which of the two
// "localhost" means — Node.js 17 and later take the resolver's order, often ::1 first
// (https://nodejs.org/api/dns.html#dnssetdefaultresultorderorder), Go and most others try
// both — and a hub on only one of them would refuse some of Azure's SDKs.
//
// Imports: stdlib only.
package bind

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"
)

// Localhost is the host name bound on every loopback address.
const Localhost = "localhost"

// TCP listens on addr ("host:port"). Host "localhost" yields a listener on 127.0.0.1 and,
// where IPv6 is available, one on [::1] with the same port (port 0 picks one free on both);
// any other host, or "" for every interface, yields the one listener net.Listen opens.
func TCP(addr string) ([]net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if !strings.EqualFold(host, Localhost) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, err
		}
		return []net.Listener{ln}, nil
	}
	// With port 0 the port chosen on 127.0.0.1 may be taken on ::1; try a few.
	for range 5 {
		lns, err := loopback(port)
		if err == nil || port != "0" || !errors.Is(err, syscall.EADDRINUSE) {
			return lns, err
		}
	}
	return nil, fmt.Errorf("listen on %s: no port free on both 127.0.0.1 and ::1", addr)
}

// loopback listens on 127.0.0.1:port and then on [::1] with the port the first one got.
func loopback(port string) ([]net.Listener, error) {
	v4, err := net.Listen("tcp4", net.JoinHostPort("127.0.0.1", port))
	if err != nil {
		return nil, err
	}
	got := strconv.Itoa(v4.Addr().(*net.TCPAddr).Port)
	v6, err := net.Listen("tcp6", net.JoinHostPort("::1", got))
	switch {
	case err == nil:
		return []net.Listener{v4, v6}, nil
	case noIPv6(err):
		return []net.Listener{v4}, nil // a machine or container without IPv6: 127.0.0.1 only
	}
	v4.Close()
	return nil, err
}

// noIPv6 reports whether err says the machine has no ::1 to bind (IPv6 disabled or absent).
func noIPv6(err error) bool {
	return errors.Is(err, syscall.EADDRNOTAVAIL) || errors.Is(err, syscall.EAFNOSUPPORT) ||
		errors.Is(err, syscall.EPROTONOSUPPORT)
}

// IsLoopback reports whether host names this machine's loopback interface only: "localhost"
// or a loopback IP address (127.0.0.0/8, ::1).
func IsLoopback(host string) bool {
	if strings.EqualFold(host, Localhost) {
		return true
	}
	ip := net.ParseIP(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
	return ip != nil && ip.IsLoopback()
}

// CloseAll closes every listener (on a failed start).
func CloseAll(lns []net.Listener) {
	for _, ln := range lns {
		ln.Close()
	}
}

// NonLoopbackIPs are this machine's addresses other than loopback and link-local ones (a
// link-local IPv6 address needs a zone to dial): where a hub bound to loopback must not be
// reachable.
func NonLoopbackIPs() ([]net.IP, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	var ips []net.IP
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
			ips = append(ips, n.IP)
		}
	}
	return ips, nil
}
