package tlscert_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/adhocd/adhocd/tlscert"
)

// TestGeneratedUsages checks that the self-signed certificate, kept on
// disk or in memory, is for TLS servers and TLS clients: a server that
// initiates an s2s stream presents it as a client.
func TestGeneratedUsages(t *testing.T) {
	dir := t.TempDir()
	onDisk, err := tlscert.Load("", "", dir, "a.test")
	if err != nil {
		t.Fatal(err)
	}
	inMemory, err := tlscert.SelfSigned("a.test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for name, der := range map[string][]byte{"Load": onDisk.Certificate[0], "SelfSigned": inMemory.Certificate[0]} {
		leaf, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		want := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
		if !slices.Equal(leaf.ExtKeyUsage, want) {
			t.Errorf("%s: extended key usages %v, want %v", name, leaf.ExtKeyUsage, want)
		}
		roots := x509.NewCertPool()
		roots.AddCert(leaf)
		for _, u := range want {
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "a.test", KeyUsages: []x509.ExtKeyUsage{u}}); err != nil {
				t.Errorf("%s: does not verify for usage %v: %v", name, u, err)
			}
		}
	}
	t.Run("openssl", func(t *testing.T) {
		// What OpenSSL peers (Prosody, ejabberd) check of a client
		// certificate; a serverAuth-only certificate is the control.
		openssl, err := exec.LookPath("openssl")
		if err != nil {
			t.Skip("openssl not installed")
		}
		cert := filepath.Join(dir, tlscert.SelfSignedFile)
		old := filepath.Join(t.TempDir(), "server-only.pem")
		der, _ := serverOnly(t, "a.test")
		if err := os.WriteFile(old, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			file, purpose string
			ok            bool
		}{
			{cert, "sslclient", true},
			{cert, "sslserver", true},
			{old, "sslclient", false},
			{old, "sslserver", true},
		} {
			out, err := exec.Command(openssl, "verify", "-CAfile", c.file, "-purpose", c.purpose, c.file).CombinedOutput()
			if (err == nil) != c.ok {
				t.Errorf("openssl verify -purpose %s %s: %v, want ok=%v\n%s", c.purpose, filepath.Base(c.file), err, c.ok, out)
			}
		}
	})
}

// TestKeepsStoredCertificate checks that a self-signed certificate kept
// from an older adhocd, for serverAuth alone, is served as it is and not
// replaced: clients pinned it.
func TestKeepsStoredCertificate(t *testing.T) {
	dir := t.TempDir()
	der, key := serverOnly(t, "a.test")
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(filepath.Join(dir, tlscert.SelfSignedFile), certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "selfsigned-key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := tlscert.Load("", "", dir, "a.test")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(c.Certificate[0], der) {
		t.Error("Load replaced the stored certificate")
	}
	after, err := os.ReadFile(filepath.Join(dir, tlscert.SelfSignedFile))
	if err != nil || !bytes.Equal(after, certPEM) {
		t.Errorf("the stored certificate file changed (%v)", err)
	}
}

// serverOnly makes a self-signed certificate for domain with the
// serverAuth usage alone, as adhocd generated before s2s.
func serverOnly(t *testing.T, domain string) ([]byte, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: domain},
		DNSNames:              []string{domain},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return der, key
}
