package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/server"
)

// checkConfigCmd loads and validates a configuration, as the server would
// at start, and prints what the server would serve and listen on. It opens
// no port and no store.
func checkConfigCmd(args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlags("check-config", "[--config FILE]", stderr)
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("check-config takes no arguments")
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	storagePath, err := filepath.Abs(cfg.Storage.Path)
	if err != nil {
		return fmt.Errorf("storage.path: %w", err)
	}
	w := func(k, format string, args ...any) {
		fmt.Fprintf(stdout, "%-10s %s\n", k+":", fmt.Sprintf(format, args...))
	}
	fmt.Fprintf(stdout, "%s: the configuration is valid\n", *cfgPath)
	w("domain", "%s", cfg.Domain)
	tlsMode := "STARTTLS offered"
	if cfg.C2S.RequireTLS {
		tlsMode = "STARTTLS required"
	}
	w("c2s", "%s (%s)", cfg.C2S.Listen, tlsMode)
	if cfg.WebSocket.Listen == "" {
		w("websocket", "off")
	} else {
		scheme := "ws"
		if cfg.WebSocket.TLS {
			scheme = "wss"
		}
		w("websocket", "%s, %s://…%s", cfg.WebSocket.Listen, scheme, cfg.WebSocket.Path)
	}
	w("s2s", "%s", s2sSummary(cfg.S2S))
	if cfg.Metrics.Listen == "" {
		w("metrics", "off")
	} else {
		w("metrics", "%s (/metrics, /healthz, /readyz)", cfg.Metrics.Listen)
	}
	if cfg.Debug.PprofListen != "" {
		w("pprof", "%s", cfg.Debug.PprofListen)
	}
	w("otel", "%s", cfg.OTel.Exporter)
	if cfg.Storage.Backend == config.BackendPostgres {
		w("storage", "postgres %s (certificate and control socket in %s)", cfg.Storage.Postgres.RedactedDSN(), storagePath)
	} else {
		w("storage", "%s", storagePath)
	}
	switch r := cfg.Cluster.Redis; {
	case !cfg.Cluster.Enabled():
		w("cluster", "off (one process)")
	case r.SentinelMaster != "":
		w("cluster", "redis master %q through Sentinels %s (lease %s)", r.SentinelMaster, strings.Join(r.Sentinels(), ", "), cfg.Cluster.Lease.D())
	default:
		w("cluster", "redis %s (lease %s)", r.Addr, cfg.Cluster.Lease.D())
	}
	if cfg.MUC.Enabled {
		w("muc", "%s", cfg.MUC.ServiceDomain(cfg.Domain))
	} else {
		w("muc", "off")
	}
	if up := cfg.HTTPUpload; up.Enabled {
		w("upload", "%s, HTTP on %s, files in %s", up.ServiceDomain(cfg.Domain), up.Listen, up.Dir(storagePath))
	} else {
		w("upload", "off")
	}
	if c := cfg.Components; c.Listen == "" || len(c.Services) == 0 {
		w("components", "off")
	} else {
		domains := make([]string, len(c.Services))
		for i, s := range c.Services {
			domains[i] = s.Domain
		}
		w("components", "%s on %s (secrets are read at start)", strings.Join(domains, ", "), c.Listen)
	}
	if cfg.TLS.CertFile == "" {
		w("tls", "a self-signed certificate for %s, kept in %s", cfg.Domain, storagePath)
	} else {
		w("tls", "%s, key %s", cfg.TLS.CertFile, cfg.TLS.KeyFile)
	}
	admins := "none (but ADHOCD_ADMIN_JID, if set)"
	if len(cfg.Admins) > 0 {
		admins = strings.Join(cfg.Admins, ", ")
	}
	w("admins", "%s", admins)
	return nil
}

// s2sSummary says how the server federates: its listeners, whether TLS
// is required, how remote servers authenticate, and where the static host
// map sends which domains.
func s2sSummary(c config.S2S) string {
	if !c.Enabled() {
		return "off (federation with other servers)"
	}
	var b strings.Builder
	b.WriteString(c.Listen)
	if c.DirectTLSListen != "" {
		b.WriteString(", direct TLS " + c.DirectTLSListen)
	}
	switch {
	case c.RequireValidCertificates:
		b.WriteString(" (TLS required, SASL EXTERNAL with verified certificates only")
	case c.RequireTLS:
		b.WriteString(" (TLS required, SASL EXTERNAL or dialback")
	default:
		b.WriteString(" (TLS offered, SASL EXTERNAL or dialback")
	}
	if c.CAFile != "" {
		b.WriteString(", CAs of " + c.CAFile)
	}
	b.WriteString(")")
	if len(c.Hosts) > 0 {
		b.WriteString("; static hosts: " + strings.Join(slices.Sorted(maps.Keys(c.Hosts)), ", "))
	}
	return b.String()
}

// healthcheckCmd exits 0 when the server of the configuration answers an
// XMPP stream on its c2s port with stream features: what a container's
// HEALTHCHECK runs, with nothing but the binary in the image.
func healthcheckCmd(args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlags("healthcheck", "[--config FILE] [--timeout D]", stderr)
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for the server's answer")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("healthcheck takes no arguments")
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	addr, err := dialAddr(cfg.C2S.Listen)
	if err != nil {
		return err
	}
	if err := probe(addr, cfg.Domain, *timeout); err != nil {
		return fmt.Errorf("unhealthy: %w", err)
	}
	fmt.Fprintf(stdout, "healthy: %s answers for %s\n", addr, cfg.Domain)
	return nil
}

// dialAddr turns a listen address into one to dial: an empty or unspecified
// host is this machine's loopback.
func dialAddr(listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("c2s.listen %q: %w", listen, err)
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	return net.JoinHostPort(host, port), nil
}

// probe opens a stream to addr for domain and waits for the server's stream
// features, then closes the stream.
func probe(addr, domain string, timeout time.Duration) error {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	header := `<?xml version='1.0'?><stream:stream to='` + xmlAttr(domain) + `' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`
	if _, err := io.WriteString(c, header); err != nil {
		return err
	}
	r := bufio.NewReaderSize(io.LimitReader(c, 64<<10), 4096)
	var got []byte
	for !bytes.HasSuffix(got, []byte("</stream:features>")) {
		b, err := r.ReadByte()
		if err != nil {
			return fmt.Errorf("no stream features from %s: %w", addr, err)
		}
		got = append(got, b)
		if bytes.HasSuffix(got, []byte("</stream:error>")) {
			return fmt.Errorf("%s answered with a stream error: %s", addr, got)
		}
	}
	_, _ = io.WriteString(c, "</stream:stream>")
	return nil
}

// xmlAttr escapes s for an attribute in single quotes.
func xmlAttr(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", "'", "&apos;").Replace(s)
}

// statusCmd prints the running server's status report, the figures of the
// operator's status command, asked through the control socket: it works
// when the c2s listener is full or stuck.
func statusCmd(args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlags("status", "[--config FILE]", stderr)
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("status takes no arguments")
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	figures, err := server.ControlStatus(ctx, cfg.Storage.Path)
	if err != nil {
		return fmt.Errorf("no server answers on %s's control socket: %w", cfg.Storage.Path, err)
	}
	for _, f := range figures {
		fmt.Fprintf(stdout, "%-42s %s\n", f.Label+":", f.Value)
	}
	return nil
}
