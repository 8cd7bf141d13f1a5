package tlscert

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Cert is one loaded certificate with its parsed leaf.
type Cert struct {
	TLS  tls.Certificate
	Leaf *x509.Certificate
}

// Certs is the certificate a server serves, which it can read again while
// it runs: when an operator asks (SIGHUP, the reload command) and when the
// files change, as cert-manager's renewal of a mounted Kubernetes Secret
// does by swapping a symlink. A stream keeps the certificate its handshake
// used; the next handshake gets the new one. A reload that fails (a key that
// does not match, a half-written file) keeps the certificate in use.
type Certs struct {
	certFile, keyFile, dir, domain string

	cur atomic.Pointer[Cert]
	mu  sync.Mutex // serialises Reload
	// stamp identifies the files Reload read last.
	stamp fileStamp
}

// Open loads the configured certificate, or the self-signed one for domain
// kept in dir (generated on first use), as Load does.
func Open(certFile, keyFile, dir, domain string) (*Certs, error) {
	c := &Certs{certFile: certFile, keyFile: keyFile, dir: dir, domain: domain}
	if _, err := c.Reload(); err != nil {
		return nil, err
	}
	return c, nil
}

// Current returns the certificate served now.
func (c *Certs) Current() *Cert { return c.cur.Load() }

// GetCertificate serves the current certificate (tls.Config.GetCertificate).
func (c *Certs) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return &c.cur.Load().TLS, nil
}

// Reload reads the certificate files again and reports whether what they
// hold changed. On an error the certificate in use stays.
func (c *Certs) Reload() (changed bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	stamp := c.stampNow()
	cert, err := Load(c.certFile, c.keyFile, c.dir, c.domain)
	if err != nil {
		return false, err
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return false, fmt.Errorf("tlscert: parse certificate: %w", err)
		}
	}
	c.stamp = stamp
	if old := c.cur.Load(); old != nil && old.Leaf.Equal(leaf) {
		return false, nil
	}
	c.cur.Store(&Cert{TLS: cert, Leaf: leaf})
	return true, nil
}

// Watch reloads the certificate whenever its files change, looking every
// interval, until ctx ends. It logs what it did.
func (c *Certs) Watch(ctx context.Context, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c.mu.Lock()
		same := c.stampNow() == c.stamp
		c.mu.Unlock()
		if same {
			continue
		}
		changed, err := c.Reload()
		switch {
		case err != nil:
			log.Warn("certificate files changed but do not load; keeping the certificate in use", "err", err)
		case changed:
			log.Info("certificate reloaded", "subject", c.Current().Leaf.Subject.String(), "not_after", c.Current().Leaf.NotAfter)
		}
	}
}

// fileStamp tells whether a pair of files changed: the device, inode, size
// and modification time of each, with symlinks followed (a Secret mount's
// files are symlinks into a folder that is replaced whole).
type fileStamp [2]struct {
	dev, ino uint64
	size     int64
	mtime    int64
}

func (c *Certs) stampNow() fileStamp {
	certFile, keyFile := c.certFile, c.keyFile
	if certFile == "" {
		certFile, keyFile = filepath.Join(c.dir, SelfSignedFile), filepath.Join(c.dir, "selfsigned-key.pem")
	}
	var s fileStamp
	for i, f := range []string{certFile, keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			continue
		}
		s[i].size, s[i].mtime = fi.Size(), fi.ModTime().UnixNano()
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			s[i].dev, s[i].ino = uint64(st.Dev), st.Ino
		}
	}
	return s
}
