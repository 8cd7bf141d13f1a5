// Package tlscert provides the certificate adhocd serves: the configured one,
// or a self-signed certificate for the domain that is generated once into the
// storage folder and kept, so that clients which pinned it keep trusting it
// across restarts.
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
	"os"
	"path/filepath"
	"time"
)

// SelfSignedFile is the name of the generated certificate in the storage
// folder (its key is beside it in selfsigned-key.pem).
const SelfSignedFile = "selfsigned-cert.pem"

// Load returns the configured certificate or, when none is set, the
// self-signed one for domain kept in dir (generated on first use).
func Load(certFile, keyFile, dir, domain string) (tls.Certificate, error) {
	if certFile != "" {
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return c, fmt.Errorf("tlscert: load certificate: %w", err)
		}
		return c, nil
	}
	certFile = filepath.Join(dir, SelfSignedFile)
	keyFile = filepath.Join(dir, "selfsigned-key.pem")
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err == nil {
		if leaf, perr := x509.ParseCertificate(c.Certificate[0]); perr == nil && leaf.VerifyHostname(domain) == nil && time.Now().Before(leaf.NotAfter) {
			return c, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return c, fmt.Errorf("tlscert: load self-signed certificate: %w", err)
	}
	if err := writeSelfSigned(certFile, keyFile, domain); err != nil {
		return tls.Certificate{}, err
	}
	c, err = tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return c, fmt.Errorf("tlscert: load self-signed certificate: %w", err)
	}
	return c, nil
}

func writeSelfSigned(certFile, keyFile, domain string) error {
	der, key, err := generate(domain, 10*365*24*time.Hour)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return fmt.Errorf("tlscert: marshal key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(certFile), 0o700); err != nil {
		return fmt.Errorf("tlscert: %w", err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return fmt.Errorf("tlscert: write key: %w", err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return fmt.Errorf("tlscert: write certificate: %w", err)
	}
	return nil
}

// SelfSigned returns a fresh self-signed certificate for domain, valid for
// the given time, held in memory only (for tests and tools).
func SelfSigned(domain string, valid time.Duration) (tls.Certificate, error) {
	der, key, err := generate(domain, valid)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// generate makes a P-256 key and a self-signed server certificate for domain.
func generate(domain string, valid time.Duration) ([]byte, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("tlscert: generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("tlscert: serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: domain, Organization: []string{"adhocd self-signed"}},
		DNSNames:              []string{domain},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(valid),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("tlscert: create certificate: %w", err)
	}
	return der, key, nil
}
