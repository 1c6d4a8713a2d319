package tlscert

import (
	"bytes"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func verify(t *testing.T, b *Bundle, name string, now time.Time) error {
	t.Helper()
	inter := x509.NewCertPool()
	_, err := b.Cert.Leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: b.Pool, Intermediates: inter, CurrentTime: now})
	return err
}

func TestEnsureCreatesReusesAndRenews(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	b1, err := Ensure(dir, "myhub.local", now)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"myhub.local", "localhost", "127.0.0.1", "::1"} {
		if err := verify(t, b1, name, now); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := verify(t, b1, "other.example", now); err == nil {
		t.Error("certificate valid for a name it should not cover")
	}
	for _, f := range []string{CAFile, CAKeyFile, ServerFile, ServerKeyFile} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if (f == CAKeyFile || f == ServerKeyFile) && st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v", f, st.Mode().Perm())
		}
	}
	if b1.CAPath != filepath.Join(dir, CAFile) {
		t.Errorf("CAPath %s", b1.CAPath)
	}

	// Second start, same host: everything reused.
	b2, err := Ensure(dir, "myhub.local", now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b2.CA.Raw, b1.CA.Raw) || !bytes.Equal(b2.Cert.Leaf.Raw, b1.Cert.Leaf.Raw) {
		t.Error("certificates were regenerated without a reason")
	}

	// Host changed: same CA, new server certificate for the new name.
	b3, err := Ensure(dir, "other.example", now.Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b3.CA.Raw, b1.CA.Raw) || bytes.Equal(b3.Cert.Leaf.Raw, b1.Cert.Leaf.Raw) {
		t.Error("host change: want same CA, new server certificate")
	}
	if err := verify(t, b3, "other.example", now.Add(2*time.Hour)); err != nil {
		t.Error(err)
	}
	// An IP host name becomes an IP SAN.
	b4, err := Ensure(dir, "10.1.2.3", now)
	if err != nil {
		t.Fatal(err)
	}
	if err := verify(t, b4, "10.1.2.3", now); err != nil {
		t.Error(err)
	}

	// Close to expiry: the server certificate is renewed, still under the same CA.
	late := b4.Cert.Leaf.NotAfter.Add(-24 * time.Hour)
	b5, err := Ensure(dir, "10.1.2.3", late)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(b5.Cert.Leaf.Raw, b4.Cert.Leaf.Raw) || !bytes.Equal(b5.CA.Raw, b1.CA.Raw) {
		t.Error("expiring server certificate not renewed")
	}

	// A corrupt server key is replaced rather than failing the start.
	if err := os.WriteFile(filepath.Join(dir, ServerKeyFile), []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Ensure(dir, "10.1.2.3", late); err != nil {
		t.Fatal(err)
	}
}
