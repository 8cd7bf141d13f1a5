package config

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"mellium.im/xmpp/jid"
)

// S2S configures federation (RFC 6120 server-to-server streams, with
// XEP-0220 dialback and SASL EXTERNAL; docs/design-federation.md): the
// listener remote servers connect to, how this server reaches theirs, and
// what it bounds. An empty Listen turns federation off: no listener, no
// outbound stream, and stanzas to other domains are answered with
// remote-server-not-found as without federation.
type S2S struct {
	// Listen is the TCP address remote servers connect to, host:port
	// (":5269" by default, the IANA port of xmpp-server); empty: federation
	// off, in both directions.
	Listen string `yaml:"listen"`
	// DirectTLSListen is the TCP address of a listener whose connections
	// begin with TLS (XEP-0368, ALPN xmpp-server), host:port, usually
	// ":5270"; empty: none. It needs Listen: it adds to federation, it does
	// not replace the listener.
	DirectTLSListen string `yaml:"direct_tls_listen"`
	// Hosts maps a remote domain to where its server is reached,
	// "host:port" (STARTTLS) or "tls://host:port" (direct TLS), bypassing
	// the DNS lookups (_xmpp-server and _xmpps-server SRV records, then the
	// domain's addresses). The domains are taken in their canonical form;
	// none may be the server's own or one of its services'.
	Hosts map[string]string `yaml:"hosts"`
	// RequireTLS requires TLS (STARTTLS or direct TLS) on every stream, in
	// both directions: a remote server that does not offer or accept it is
	// not federated with.
	RequireTLS bool `yaml:"require_tls"`
	// RequireValidCertificates accepts only SASL EXTERNAL with a
	// certificate that verifies for the remote domain (RFC 6125,
	// XEP-0178), in both directions, never dialback. It needs RequireTLS.
	RequireValidCertificates bool `yaml:"require_valid_certificates"`
	// CAFile is a PEM bundle of the certificate authorities that remote
	// servers' certificates are verified against; empty: the system's
	// roots. It must hold at least one certificate. A relative path is
	// taken from the configuration file's folder.
	CAFile string `yaml:"ca_file"`
	// DialbackSecretFile is a file whose content is the secret XEP-0185
	// dialback keys are made with. Every replica of a cluster must share
	// it, so that any replica can verify a key another one made; empty: a
	// random secret per process. A relative path is taken from the
	// configuration file's folder.
	DialbackSecretFile string `yaml:"dialback_secret_file"`
	// ConnectTimeout bounds the setting up of an outbound stream to one
	// domain: resolution, connection, TLS and authentication.
	ConnectTimeout Duration `yaml:"connect_timeout"`
	// IdleTimeout closes a stream, either way, that carries nothing for
	// this long; the next stanza opens a new one.
	IdleTimeout Duration `yaml:"idle_timeout"`
	// RetryDelay is how long stanzas to a domain that could not be reached
	// are bounced at once (remote-server-timeout or
	// remote-server-not-found) before it is tried again; it doubles at
	// each new failure, up to five minutes, with jitter.
	RetryDelay Duration `yaml:"retry_delay"`
	// CloseTimeout bounds the closing of the streams when the server stops:
	// their queues are bounced, and their </stream> waited for this long.
	CloseTimeout Duration `yaml:"close_timeout"`
	// MetricsDomains is how many remote domains get a metric label of
	// their own; the others are counted under "other", so that the
	// metrics' cardinality stays bounded whatever domains connect. 0 counts
	// every domain under "other".
	MetricsDomains int `yaml:"metrics_domains"`
	// Limits bound what remote servers may make this one do.
	Limits S2SLimits `yaml:"limits"`
}

// S2SLimits bound federation. All are enforced on network input or on what
// waits for it; exceeding one gives the error named beside it.
type S2SLimits struct {
	// MaxConnections bounds the open server-to-server streams, inbound and
	// outbound together (an inbound one past it is closed with
	// resource-constraint; an outbound one is not opened, and its stanzas
	// bounced).
	MaxConnections int `yaml:"max_connections"`
	// MaxConnectionsPerDomain bounds the streams with one remote domain,
	// both ways (resource-constraint past it).
	MaxConnectionsPerDomain int `yaml:"max_connections_per_domain"`
	// MaxPending bounds the inbound connections that have not yet
	// authenticated (closed with resource-constraint past it).
	MaxPending int `yaml:"max_pending"`
	// MaxStanzaBytes bounds one top-level element a remote server sends
	// (policy-violation); at least 1024.
	MaxStanzaBytes int `yaml:"max_stanza_bytes"`
	// QueueStanzas bounds the stanzas waiting for one remote domain's
	// stream (while it is set up, or slower than what is sent to it); the
	// next is bounced with resource-constraint.
	QueueStanzas int `yaml:"queue_stanzas"`
	// QueueBytes bounds the bytes of those stanzas, the same way; at least
	// MaxStanzaBytes.
	QueueBytes int `yaml:"queue_bytes"`
	// StanzasPerSecond and BurstStanzas pace what one inbound stream may
	// send (a token bucket): a stream over its rate is not read from until
	// the bucket allows, and loses nothing.
	StanzasPerSecond int `yaml:"stanzas_per_second"`
	BurstStanzas     int `yaml:"burst_stanzas"`
}

// Defaults of the s2s section.
const (
	DefaultS2SListen         = ":5269"
	DefaultS2SConnectTimeout = 30 * time.Second
	DefaultS2SIdleTimeout    = 10 * time.Minute
	DefaultS2SRetryDelay     = 30 * time.Second
	DefaultS2SCloseTimeout   = 5 * time.Second
	DefaultS2SMetricsDomains = 20
)

// maxCABytes bounds s2s.ca_file as read: a CA bundle (the system's has
// about 200 KiB); a path naming something else (a device, a large file)
// must not be read whole.
const maxCABytes = 8 << 20

// DefaultS2S is the s2s section's default: federation on at :5269, TLS
// required, dialback allowed.
func DefaultS2S() S2S {
	return S2S{
		Listen:         DefaultS2SListen,
		RequireTLS:     true,
		ConnectTimeout: Duration(DefaultS2SConnectTimeout),
		IdleTimeout:    Duration(DefaultS2SIdleTimeout),
		RetryDelay:     Duration(DefaultS2SRetryDelay),
		CloseTimeout:   Duration(DefaultS2SCloseTimeout),
		MetricsDomains: DefaultS2SMetricsDomains,
		Limits: S2SLimits{
			MaxConnections:          500,
			MaxConnectionsPerDomain: 4,
			MaxPending:              64,
			MaxStanzaBytes:          512 << 10,
			QueueStanzas:            500,
			QueueBytes:              1 << 20,
			StanzasPerSecond:        200,
			BurstStanzas:            1000,
		},
	}
}

// DialbackSecret reads the dialback secret from DialbackSecretFile, as a
// component's secret_file is read: white space around it trimmed (so that
// the copies of a cluster's replicas agree whether or not they end in a
// newline), at most 4096 bytes, not empty. Without the file it returns
// nil: the pool then makes a random secret.
func (s S2S) DialbackSecret() ([]byte, error) {
	if s.DialbackSecretFile == "" {
		return nil, nil
	}
	v, err := readSecretFile("s2s.dialback_secret_file", s.DialbackSecretFile)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return []byte(v), nil
}

// Enabled reports whether federation is on (s2s.listen is set).
func (s S2S) Enabled() bool { return s.Listen != "" }

// resolve makes the relative files absolute against base, the
// configuration file's folder, as Load does with the other paths.
func (s *S2S) resolve(base string) {
	for _, p := range []*string{&s.CAFile, &s.DialbackSecretFile} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(base, *p)
		}
	}
}

// validate checks the section; bad collects what is wrong. domain is the
// server's domain (valid, or empty when it is not), services the domains of
// its services (group chat, upload, components) by the key that names
// each, and listeners the other listeners' addresses by key, which the
// federation listeners must not share. Every key is checked whether
// federation is on or not, so that turning it on shows no old mistake.
// The dialback secret file is not read here: the secret is read at start.
func (s *S2S) validate(domain string, services, listeners map[string]string, bad func(format string, args ...any)) {
	switch {
	case s.Listen == "" && s.DirectTLSListen != "":
		bad("s2s.direct_tls_listen %q is set but s2s.listen is empty (federation off): set s2s.listen too, or empty both", s.DirectTLSListen)
	case s.Listen != "":
		own := map[string]string{"s2s.listen": s.Listen}
		if s.DirectTLSListen != "" {
			own["s2s.direct_tls_listen"] = s.DirectTLSListen
		}
		for _, k := range slices.Sorted(maps.Keys(own)) {
			if _, _, err := net.SplitHostPort(own[k]); err != nil {
				bad("%s %q: %v", k, own[k], err)
				delete(own, k)
			}
		}
		if a, b := own["s2s.listen"], own["s2s.direct_tls_listen"]; a != "" && b != "" && sameListener(a, b) {
			bad("s2s.direct_tls_listen %q: the port of s2s.listen %q; direct TLS needs a port of its own", b, a)
		}
		for _, k := range slices.Sorted(maps.Keys(own)) {
			for _, o := range slices.Sorted(maps.Keys(listeners)) {
				if sameListener(own[k], listeners[o]) {
					bad("%s %q: the port of %s %q; federation needs a port of its own", k, own[k], o, listeners[o])
				}
			}
		}
	}
	s.validateHosts(domain, services, bad)
	if s.RequireValidCertificates && !s.RequireTLS {
		bad("s2s.require_valid_certificates is on but s2s.require_tls is off: certificates are only seen over TLS; turn require_tls on")
	}
	if s.CAFile != "" {
		if err := checkCAFile(s.CAFile); err != nil {
			bad("s2s.ca_file %s: %v", s.CAFile, err)
		}
	}
	for _, d := range []struct {
		name string
		v    Duration
	}{
		{"connect_timeout", s.ConnectTimeout}, {"idle_timeout", s.IdleTimeout},
		{"retry_delay", s.RetryDelay}, {"close_timeout", s.CloseTimeout},
	} {
		if d.v <= 0 {
			bad("s2s.%s %s: must be positive", d.name, d.v.D())
		}
	}
	if s.MetricsDomains < 0 {
		bad("s2s.metrics_domains %d: must be 0 (every domain counted as other) or more", s.MetricsDomains)
	}
	l := s.Limits
	for _, n := range []struct {
		name string
		v    int
	}{
		{"max_connections", l.MaxConnections}, {"max_connections_per_domain", l.MaxConnectionsPerDomain},
		{"max_pending", l.MaxPending}, {"max_stanza_bytes", l.MaxStanzaBytes},
		{"queue_stanzas", l.QueueStanzas}, {"queue_bytes", l.QueueBytes},
		{"stanzas_per_second", l.StanzasPerSecond}, {"burst_stanzas", l.BurstStanzas},
	} {
		if n.v <= 0 {
			bad("s2s.limits.%s %d: must be positive", n.name, n.v)
		}
	}
	if l.MaxStanzaBytes > 0 && l.MaxStanzaBytes < 1024 {
		bad("s2s.limits.max_stanza_bytes %d: must be at least 1024", l.MaxStanzaBytes)
	}
	if l.QueueBytes > 0 && l.QueueBytes < l.MaxStanzaBytes {
		bad("s2s.limits.queue_bytes %d: must be at least s2s.limits.max_stanza_bytes %d (a queue must hold the largest stanza)", l.QueueBytes, l.MaxStanzaBytes)
	}
	if l.MaxConnectionsPerDomain > l.MaxConnections && l.MaxConnections > 0 {
		bad("s2s.limits.max_connections_per_domain %d: must not pass s2s.limits.max_connections %d", l.MaxConnectionsPerDomain, l.MaxConnections)
	}
}

// validateHosts checks the static host map and puts its domains in their
// canonical form (in a new map: the decoded one may be shared).
func (s *S2S) validateHosts(domain string, services map[string]string, bad func(format string, args ...any)) {
	if len(s.Hosts) == 0 {
		s.Hosts = nil
		return
	}
	served := make(map[string]string, len(services))
	for k, d := range services {
		served[d] = k
	}
	out := make(map[string]string, len(s.Hosts))
	for _, k := range slices.Sorted(maps.Keys(s.Hosts)) {
		v := s.Hosts[k]
		j, err := jid.New("", k, "")
		if err != nil || k == "" || strings.ContainsAny(k, "@/") {
			bad("s2s.hosts: %q: not a domain", k)
			continue
		}
		d := j.Domainpart()
		switch {
		case domain != "" && d == domain:
			bad("s2s.hosts: %q: the server's own domain; the map is for remote domains", k)
			continue
		case served[d] != "":
			bad("s2s.hosts: %q: the domain of %s, served here; the map is for remote domains", k, served[d])
			continue
		}
		if _, dup := out[d]; dup {
			bad("s2s.hosts: %q: listed twice (as %s)", k, d)
			continue
		}
		if err := checkHostAddr(v); err != nil {
			bad("s2s.hosts: %s: %v", d, err)
			continue
		}
		out[d] = v
	}
	s.Hosts = out
}

// checkHostAddr checks a static host entry: host:port or tls://host:port,
// the port a number from 1 to 65535.
func checkHostAddr(v string) error {
	addr := strings.TrimPrefix(v, "tls://")
	if strings.Contains(addr, "://") {
		return fmt.Errorf("%q: want host:port or tls://host:port", v)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q: want host:port or tls://host:port: %v", v, err)
	}
	if host == "" {
		return fmt.Errorf("%q: no host", v)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return fmt.Errorf("%q: the port must be a number from 1 to 65535", v)
	}
	return nil
}

// checkCAFile reads a PEM bundle and parses each of its certificates; a
// file without one, with another kind of block, or with a certificate that
// does not parse is an error.
func checkCAFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxCABytes+1))
	if err != nil {
		return err
	}
	if len(b) > maxCABytes {
		return fmt.Errorf("larger than %d bytes", maxCABytes)
	}
	n := 0
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return fmt.Errorf("a PEM block of type %q; want CERTIFICATE blocks only", block.Type)
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return fmt.Errorf("certificate %d: %w", n+1, err)
		}
		n++
	}
	if n == 0 {
		return errors.New("no PEM certificate in it")
	}
	return nil
}

// serviceDomains returns the domains the server's services are on, by the
// key that configures each: the group chat and upload services when they
// run, and every component. Each is in canonical form once its own section
// was validated; one that is not a domain is left out.
func (c *Config) serviceDomains() map[string]string {
	out := map[string]string{}
	add := func(key, d string) {
		if j, err := jid.New("", d, ""); err == nil && !strings.ContainsAny(d, "@/") {
			out[key] = j.Domainpart()
		}
	}
	if c.MUC.Enabled {
		add("muc.domain", c.MUC.ServiceDomain(c.Domain))
	}
	if c.HTTPUpload.Enabled {
		add("http_upload.domain", c.HTTPUpload.ServiceDomain(c.Domain))
	}
	for i, s := range c.Components.Services {
		add(fmt.Sprintf("components.services[%d]", i), s.Domain)
	}
	return out
}
