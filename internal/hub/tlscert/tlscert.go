// Package tlscert gives the local hub its TLS identity: a private certificate authority and a
// server certificate signed by it, kept in the hub's data directory so that clients can trust
// the CA file once (NODE_EXTRA_CA_CERTS, --cacert, x509.CertPool) across restarts.
//
// Files (PEM) in the directory: ca.pem, ca-key.pem (0600), server.pem, server-key.pem (0600).
// The CA (ECDSA P-256, 10 years) is made on first use and then reused. The server certificate
// (ECDSA P-256, 825 days — the longest lifetime Apple platforms accept) is made on first use and
// remade when the wanted host-name set changes, when it expires within 30 days, or when it no
// longer chains to the CA. SANs: the configured host name (DNS or IP), localhost, 127.0.0.1, ::1.
//
// Imports: stdlib only.
package tlscert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// File names inside the data directory.
const (
	CAFile        = "ca.pem"
	CAKeyFile     = "ca-key.pem"
	ServerFile    = "server.pem"
	ServerKeyFile = "server-key.pem"
)

// Bundle is the loaded TLS identity.
type Bundle struct {
	CAPath string          // absolute path of ca.pem
	Pool   *x509.CertPool  // holds only the CA: what clients of this hub should trust
	Cert   tls.Certificate // server certificate chain + key, for tls.Config.Certificates
	CA     *x509.Certificate
}

// Ensure loads or creates the CA and server certificate in dir for hostName (a DNS name or an
// IP literal, without a port). now is the clock used for validity checks.
func Ensure(dir, hostName string, now time.Time) (*Bundle, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	dir = abs
	ca, caKey, err := loadPair(dir, CAFile, CAKeyFile)
	if errors.Is(err, os.ErrNotExist) || (err == nil && now.After(ca.NotAfter.Add(-30*24*time.Hour))) {
		ca, caKey, err = newCA(dir, now)
	}
	if err != nil {
		return nil, fmt.Errorf("hub CA in %s: %w", dir, err)
	}
	dnsNames, ips := sans(hostName)
	srv, srvKey, err := loadPair(dir, ServerFile, ServerKeyFile)
	if err != nil || !serverOK(srv, ca, dnsNames, ips, now) {
		srv, srvKey, err = newServer(dir, ca, caKey, dnsNames, ips, now)
		if err != nil {
			return nil, fmt.Errorf("hub server certificate in %s: %w", dir, err)
		}
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &Bundle{
		CAPath: filepath.Join(dir, CAFile),
		Pool:   pool,
		CA:     ca,
		Cert:   tls.Certificate{Certificate: [][]byte{srv.Raw, ca.Raw}, PrivateKey: srvKey, Leaf: srv},
	}, nil
}

// sans returns the wanted DNS names and IPs, sorted, so sets compare by equality.
func sans(hostName string) ([]string, []net.IP) {
	dns := []string{"localhost"}
	ips := []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")}
	h := strings.TrimSuffix(strings.TrimSpace(hostName), ".")
	if h != "" {
		if ip := net.ParseIP(strings.Trim(h, "[]")); ip != nil {
			ips = append(ips, ip)
		} else {
			dns = append(dns, strings.ToLower(h))
		}
	}
	slices.Sort(dns)
	dns = slices.Compact(dns)
	slices.SortFunc(ips, func(a, b net.IP) int { return strings.Compare(string(a.To16()), string(b.To16())) })
	ips = slices.CompactFunc(ips, func(a, b net.IP) bool { return a.Equal(b) })
	return dns, ips
}

func serverOK(c, ca *x509.Certificate, dns []string, ips []net.IP, now time.Time) bool {
	if now.After(c.NotAfter.Add(-30*24*time.Hour)) || now.Before(c.NotBefore) {
		return false
	}
	if c.CheckSignatureFrom(ca) != nil {
		return false
	}
	got := slices.Clone(c.DNSNames)
	slices.Sort(got)
	if !slices.Equal(got, dns) {
		return false
	}
	gotIPs := slices.Clone(c.IPAddresses)
	slices.SortFunc(gotIPs, func(a, b net.IP) int { return strings.Compare(string(a.To16()), string(b.To16())) })
	return slices.EqualFunc(gotIPs, ips, func(a, b net.IP) bool { return a.Equal(b) })
}

func loadPair(dir, certFile, keyFile string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	cb, err := os.ReadFile(filepath.Join(dir, certFile))
	if err != nil {
		return nil, nil, err
	}
	kb, err := os.ReadFile(filepath.Join(dir, keyFile))
	if err != nil {
		return nil, nil, err
	}
	cp, _ := pem.Decode(cb)
	kp, _ := pem.Decode(kb)
	if cp == nil || kp == nil {
		return nil, nil, fmt.Errorf("%s or %s is not PEM", certFile, keyFile)
	}
	cert, err := x509.ParseCertificate(cp.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", certFile, err)
	}
	key, err := x509.ParseECPrivateKey(kp.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", keyFile, err)
	}
	return cert, key, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	return n
}

func newCA(dir string, now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	host, _ := os.Hostname()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "iotplan local hub CA", Organization: []string{"iotplan"}, OrganizationalUnit: []string{host}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	if err := writePair(dir, CAFile, CAKeyFile, der, key); err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

func newServer(dir string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, dns []string, ips []net.IP, now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	if caKey == nil {
		return nil, nil, errors.New("no CA key")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	cn := dns[0]
	for _, d := range dns {
		if d != "localhost" {
			cn = d
		}
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"iotplan"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(825 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     dns,
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	if err := writePair(dir, ServerFile, ServerKeyFile, der, key); err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

func writePair(dir, certFile, keyFile string, der []byte, key *ecdsa.PrivateKey) error {
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	// Key first, so a crash in between leaves a certificate without its key (which is
	// regenerated next time) rather than a new key with a stale certificate.
	if err := writeAtomic(filepath.Join(dir, keyFile), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return err
	}
	return writeAtomic(filepath.Join(dir, certFile), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
