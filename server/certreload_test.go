package server_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/servertest"
	"github.com/adhocd/adhocd/tlscert"
)

// secretMount lays out a certificate as a Kubernetes Secret volume does:
// tls.crt and tls.key are symlinks through ..data, a symlink to a folder
// of the current version, which an update replaces by swapping ..data.
type secretMount struct {
	t   *testing.T
	dir string
	n   int
}

func newSecretMount(t *testing.T) *secretMount {
	m := &secretMount{t: t, dir: t.TempDir()}
	for _, f := range []string{"tls.crt", "tls.key"} {
		if err := os.Symlink(filepath.Join("..data", f), filepath.Join(m.dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

// publish writes a new self-signed certificate for localhost as the next
// version and swaps ..data to it atomically; it returns the certificate.
func (m *secretMount) publish() *x509.Certificate {
	m.t.Helper()
	cert, err := tlscert.SelfSigned("localhost", time.Hour)
	if err != nil {
		m.t.Fatal(err)
	}
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		m.t.Fatal(err)
	}
	m.n++
	version := filepath.Join(m.dir, "..v"+string(rune('0'+m.n)))
	if err := os.Mkdir(version, 0o700); err != nil {
		m.t.Fatal(err)
	}
	write := func(name, typ string, der []byte) {
		if err := os.WriteFile(filepath.Join(version, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			m.t.Fatal(err)
		}
	}
	write("tls.crt", "CERTIFICATE", cert.Certificate[0])
	write("tls.key", "PRIVATE KEY", key)
	tmp := filepath.Join(m.dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(version), tmp); err != nil {
		m.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(m.dir, "..data")); err != nil {
		m.t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		m.t.Fatal(err)
	}
	return leaf
}

// served opens a stream, negotiates STARTTLS and returns the certificate
// the server presented, with the raw stream for more.
func served(t *testing.T, srv *servertest.Server) (*x509.Certificate, *servertest.Raw) {
	t.Helper()
	r := srv.RawDial()
	r.StartTLS(&tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12})
	return r.Conn.(*tls.Conn).ConnectionState().PeerCertificates[0], r
}

// TestCertificateRenewal: when the Secret's files are swapped, the next
// STARTTLS presents the new certificate without a restart, and a stream
// secured before goes on; a reload (SIGHUP, the reload command) does the
// same at once when the periodic check is off.
func TestCertificateRenewal(t *testing.T) {
	for _, tc := range []struct {
		name     string
		interval time.Duration
	}{{"watched", 50 * time.Millisecond}, {"reloaded", 0}} {
		t.Run(tc.name, func(t *testing.T) {
			m := newSecretMount(t)
			first := m.publish()
			srv := servertest.Start(t, func(c *config.Config) {
				c.TLS.CertFile = filepath.Join(m.dir, "tls.crt")
				c.TLS.KeyFile = filepath.Join(m.dir, "tls.key")
				c.TLS.ReloadInterval = config.Duration(tc.interval)
			})
			got, before := served(t, srv)
			if !got.Equal(first) {
				t.Fatalf("served %v, want the mounted certificate", got.Subject)
			}
			second := m.publish()
			if tc.interval == 0 {
				if err := srv.ReloadCertificate(); err != nil {
					t.Fatal(err)
				}
			}
			deadline := time.Now().Add(5 * time.Second)
			for {
				if got, _ = served(t, srv); got.Equal(second) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the renewed certificate is never served")
				}
				time.Sleep(20 * time.Millisecond)
			}
			// The stream secured before the renewal still works.
			before.Write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AG5vYm9keQBub25l</auth>`)
			before.Expect(`<failure`)
		})
	}
}

// TestCertificateRenewalKeepsWhatWorks: files that do not load (a key that
// is not the certificate's) leave the certificate in use, and the reload
// says why.
func TestCertificateRenewalKeepsWhatWorks(t *testing.T) {
	m := newSecretMount(t)
	first := m.publish()
	srv := servertest.Start(t, func(c *config.Config) {
		c.TLS.CertFile = filepath.Join(m.dir, "tls.crt")
		c.TLS.KeyFile = filepath.Join(m.dir, "tls.key")
		c.TLS.ReloadInterval = 0
	})
	m.publish()
	// The new version's key is replaced by another's.
	other, err := tlscert.SelfSigned("localhost", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	key, err := x509.MarshalPKCS8PrivateKey(other.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(m.dir, "tls.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := srv.ReloadCertificate(); err == nil {
		t.Fatal("a mismatched key pair was accepted")
	}
	if got, _ := served(t, srv); !got.Equal(first) {
		t.Fatal("a failed reload replaced the certificate in use")
	}
}
