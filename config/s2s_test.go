package config_test

import (
	"encoding/pem"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/tlscert"
)

// TestS2SDefaults: the s2s section's defaults are those of
// docs/design-federation.md §6 (federation on at :5269, TLS required,
// dialback allowed), and the shipped config.yaml writes out the same.
func TestS2SDefaults(t *testing.T) {
	want := config.S2S{
		Listen:         ":5269",
		RequireTLS:     true,
		ConnectTimeout: config.Duration(30 * time.Second),
		IdleTimeout:    config.Duration(10 * time.Minute),
		RetryDelay:     config.Duration(30 * time.Second),
		CloseTimeout:   config.Duration(5 * time.Second),
		MetricsDomains: 20,
		Limits: config.S2SLimits{
			MaxConnections: 500, MaxConnectionsPerDomain: 4, MaxPending: 64, MaxStanzaBytes: 524288,
			QueueStanzas: 500, QueueBytes: 1048576, StanzasPerSecond: 200, BurstStanzas: 1000,
		},
	}
	def := config.Default().S2S
	if !reflect.DeepEqual(def, want) {
		t.Fatalf("Default().S2S =\n%+v\nwant\n%+v", def, want)
	}
	if !def.Enabled() || def.DirectTLSListen != "" || def.RequireValidCertificates || def.CAFile != "" || def.DialbackSecretFile != "" || def.Hosts != nil {
		t.Fatalf("defaults: %+v", def)
	}
	// An empty file gives the same section, validated.
	empty, err := config.Parse(nil)
	if err != nil || !reflect.DeepEqual(empty.S2S, want) {
		t.Fatalf("s2s of an empty file: %+v, %v", empty.S2S, err)
	}
	shipped, err := config.Load(filepath.Join("..", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(shipped.S2S, want) {
		t.Fatalf("config.yaml's s2s section disagrees with Default():\n%+v\n%+v", shipped.S2S, want)
	}
}

// TestS2SOff: an empty listen turns federation off, and the other keys
// keep their defaults.
func TestS2SOff(t *testing.T) {
	cfg, err := config.Parse([]byte(`s2s: {listen: ""}`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.S2S.Enabled() || cfg.S2S.Listen != "" || !cfg.S2S.RequireTLS || cfg.S2S.Limits != config.DefaultS2S().Limits {
		t.Fatalf("s2s off: %+v", cfg.S2S)
	}
}

// TestS2SParse: every key of the section reaches its field, and the host
// map's domains are taken in their canonical form.
func TestS2SParse(t *testing.T) {
	ca := writeCA(t, t.TempDir())
	cfg, err := config.Parse([]byte(`
s2s:
  listen: "127.0.0.1:15269"
  direct_tls_listen: "[::1]:15270"
  hosts: {B.Test: "127.0.0.1:5270", c.test.: "tls://192.0.2.5:5270", "[2001:db8::1]": "[2001:db8::1]:5269"}
  require_tls: true
  require_valid_certificates: true
  ca_file: ` + ca + `
  dialback_secret_file: /run/secrets/dialback
  connect_timeout: 5s
  idle_timeout: 1m
  retry_delay: 2s
  close_timeout: 1s
  metrics_domains: 0
  limits: {max_connections: 10, max_connections_per_domain: 2, max_pending: 3, max_stanza_bytes: 2048,
           queue_stanzas: 7, queue_bytes: 4096, stanzas_per_second: 9, burst_stanzas: 11}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := config.S2S{
		Listen:          "127.0.0.1:15269",
		DirectTLSListen: "[::1]:15270",
		Hosts: map[string]string{"b.test": "127.0.0.1:5270", "c.test": "tls://192.0.2.5:5270",
			"[2001:db8::1]": "[2001:db8::1]:5269"},
		RequireTLS:               true,
		RequireValidCertificates: true,
		CAFile:                   ca,
		DialbackSecretFile:       "/run/secrets/dialback",
		ConnectTimeout:           config.Duration(5 * time.Second),
		IdleTimeout:              config.Duration(time.Minute),
		RetryDelay:               config.Duration(2 * time.Second),
		CloseTimeout:             config.Duration(time.Second),
		MetricsDomains:           0,
		Limits: config.S2SLimits{MaxConnections: 10, MaxConnectionsPerDomain: 2, MaxPending: 3, MaxStanzaBytes: 2048,
			QueueStanzas: 7, QueueBytes: 4096, StanzasPerSecond: 9, BurstStanzas: 11},
	}
	if !reflect.DeepEqual(cfg.S2S, want) {
		t.Fatalf("s2s =\n%+v\nwant\n%+v", cfg.S2S, want)
	}
}

// TestS2SValidate: what the section refuses, each with the message that
// names the key to fix.
func TestS2SValidate(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	key := filepath.Join(dir, "key.pem")
	badCert := filepath.Join(dir, "bad.pem")
	for _, f := range []struct{ path, text string }{
		{notPEM, "just some text\n"},
		{key, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}}))},
		{badCert, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2, 3}}))},
	} {
		if err := os.WriteFile(f.path, []byte(f.text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct{ yaml, want string }{
		// Listeners.
		{"s2s: {listen: nowhere}", `s2s.listen "nowhere"`},
		{"s2s: {direct_tls_listen: nowhere}", `s2s.direct_tls_listen "nowhere"`},
		{"s2s: {listen: '', direct_tls_listen: ':5270'}", `s2s.direct_tls_listen ":5270" is set but s2s.listen is empty (federation off)`},
		{"s2s: {listen: ':5269', direct_tls_listen: '127.0.0.1:5269'}", "s2s.direct_tls_listen \"127.0.0.1:5269\": the port of s2s.listen"},
		{"c2s: {listen: ':5269'}", `s2s.listen ":5269": the port of c2s.listen ":5269"`},
		{"metrics: {listen: '127.0.0.1:9090'}\ns2s: {direct_tls_listen: ':9090'}", `s2s.direct_tls_listen ":9090": the port of metrics.listen`},
		{"http_upload: {enabled: true, listen: '127.0.0.1:5269'}", `http_upload.listen "127.0.0.1:5269": the port of s2s.listen`},
		// The host map.
		{"s2s: {hosts: {localhost: '127.0.0.1:5269'}}", `s2s.hosts: "localhost": the server's own domain`},
		{"s2s: {hosts: {LocalHost.: '127.0.0.1:5269'}}", `s2s.hosts: "LocalHost.": the server's own domain`},
		{"s2s: {hosts: {conference.localhost: '127.0.0.1:5269'}}", `s2s.hosts: "conference.localhost": the domain of muc.domain, served here`},
		{"http_upload: {enabled: true}\ns2s: {hosts: {upload.localhost: '127.0.0.1:5269'}}", `s2s.hosts: "upload.localhost": the domain of http_upload.domain`},
		{"components: {services: [{domain: gw.localhost, secret_env: S}]}\ns2s: {hosts: {GW.localhost: '127.0.0.1:5269'}}",
			`s2s.hosts: "GW.localhost": the domain of components.services[0]`},
		{"s2s: {hosts: {'a@b.test': '127.0.0.1:5269'}}", `s2s.hosts: "a@b.test": not a domain`},
		{"s2s: {hosts: {'': '127.0.0.1:5269'}}", `s2s.hosts: "": not a domain`},
		{"s2s: {hosts: {b.test: '127.0.0.1:5269', B.TEST: '127.0.0.1:5270'}}", `listed twice (as b.test)`},
		{"s2s: {hosts: {b.test: 'b.example'}}", `s2s.hosts: b.test: "b.example": want host:port or tls://host:port`},
		{"s2s: {hosts: {b.test: 'b.example:xmpp'}}", `s2s.hosts: b.test: "b.example:xmpp": the port must be a number from 1 to 65535`},
		{"s2s: {hosts: {b.test: 'b.example:0'}}", "the port must be a number from 1 to 65535"},
		{"s2s: {hosts: {b.test: 'b.example:65536'}}", "the port must be a number from 1 to 65535"},
		{"s2s: {hosts: {b.test: ':5269'}}", `s2s.hosts: b.test: ":5269": no host`},
		{"s2s: {hosts: {b.test: 'https://b.example:5269'}}", `want host:port or tls://host:port`},
		{"s2s: {hosts: {b.test: 'tls://b.example'}}", `s2s.hosts: b.test: "tls://b.example": want host:port`},
		// TLS and certificates.
		{"s2s: {require_tls: false, require_valid_certificates: true}", "s2s.require_valid_certificates is on but s2s.require_tls is off"},
		{"s2s: {ca_file: " + filepath.Join(dir, "missing.pem") + "}", "s2s.ca_file " + filepath.Join(dir, "missing.pem") + ": open"},
		{"s2s: {ca_file: " + notPEM + "}", "s2s.ca_file " + notPEM + ": no PEM certificate in it"},
		{"s2s: {ca_file: " + key + "}", `a PEM block of type "PRIVATE KEY"`},
		{"s2s: {ca_file: " + badCert + "}", "s2s.ca_file " + badCert + ": certificate 1:"},
		{"s2s: {ca_file: " + dir + "}", "s2s.ca_file " + dir},
		// Durations.
		{"s2s: {connect_timeout: 0s}", "s2s.connect_timeout 0s: must be positive"},
		{"s2s: {idle_timeout: -1m}", "s2s.idle_timeout -1m0s: must be positive"},
		{"s2s: {retry_delay: 0s}", "s2s.retry_delay 0s: must be positive"},
		{"s2s: {close_timeout: 0s}", "s2s.close_timeout 0s: must be positive"},
		{"s2s: {connect_timeout: soon}", "duration"},
		{"s2s: {metrics_domains: -1}", "s2s.metrics_domains -1: must be 0"},
		// Limits.
		{"s2s: {limits: {max_connections: 0}}", "s2s.limits.max_connections 0: must be positive"},
		{"s2s: {limits: {max_connections_per_domain: 0}}", "s2s.limits.max_connections_per_domain 0: must be positive"},
		{"s2s: {limits: {max_pending: -1}}", "s2s.limits.max_pending -1: must be positive"},
		{"s2s: {limits: {max_stanza_bytes: 0}}", "s2s.limits.max_stanza_bytes 0: must be positive"},
		{"s2s: {limits: {max_stanza_bytes: 1000}}", "s2s.limits.max_stanza_bytes 1000: must be at least 1024"},
		{"s2s: {limits: {queue_stanzas: 0}}", "s2s.limits.queue_stanzas 0: must be positive"},
		{"s2s: {limits: {queue_bytes: 0}}", "s2s.limits.queue_bytes 0: must be positive"},
		{"s2s: {limits: {queue_bytes: 4096}}", "s2s.limits.queue_bytes 4096: must be at least s2s.limits.max_stanza_bytes 524288"},
		{"s2s: {limits: {stanzas_per_second: 0}}", "s2s.limits.stanzas_per_second 0: must be positive"},
		{"s2s: {limits: {burst_stanzas: 0}}", "s2s.limits.burst_stanzas 0: must be positive"},
		{"s2s: {limits: {max_connections: 3, max_connections_per_domain: 4}}", "s2s.limits.max_connections_per_domain 4: must not pass s2s.limits.max_connections 3"},
		// Unknown keys, as everywhere.
		{"s2s: {listn: ':5269'}", "listn"},
		{"s2s: {limits: {max_conections: 1}}", "max_conections"},
	} {
		if _, err := config.Parse([]byte(tc.yaml)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: want an error mentioning %q, got %v", tc.yaml, tc.want, err)
		}
	}
	// The keys are checked with federation off too, so that turning it on
	// shows no old mistake.
	if _, err := config.Parse([]byte("s2s: {listen: '', connect_timeout: 0s}")); err == nil || !strings.Contains(err.Error(), "s2s.connect_timeout") {
		t.Errorf("a bad key with federation off: %v", err)
	}
	for _, ok := range []string{
		// A service that does not run leaves its domain to the map.
		"muc: {enabled: false}\ns2s: {hosts: {conference.localhost: '127.0.0.1:5269'}}",
		"s2s: {hosts: {upload.localhost: 'tls://[2001:db8::5]:5270'}}",
		// Federation off: its listener shares nothing.
		"c2s: {listen: ':5269'}\ns2s: {listen: ''}",
		"s2s: {listen: '127.0.0.1:0', direct_tls_listen: '127.0.0.1:0'}",
		"s2s: {require_tls: false}",
		"s2s: {hosts: {}}",
	} {
		if _, err := config.Parse([]byte(ok)); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
}

// TestS2SFilesRelativeToConfig: ca_file and dialback_secret_file are taken
// from the configuration file's folder, and ca_file is checked there.
func TestS2SFilesRelativeToConfig(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "certs"), 0o700); err != nil {
		t.Fatal(err)
	}
	writeCAAt(t, filepath.Join(dir, "certs", "ca.pem"))
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte("s2s: {ca_file: certs/ca.pem, dialback_secret_file: secrets/dialback}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.S2S.CAFile, filepath.Join(dir, "certs", "ca.pem"); got != want {
		t.Fatalf("ca_file %q, want %q", got, want)
	}
	if got, want := cfg.S2S.DialbackSecretFile, filepath.Join(dir, "secrets", "dialback"); got != want {
		t.Fatalf("dialback_secret_file %q, want %q", got, want)
	}
}

// TestS2SHostsNotShared: validation puts the domains in canonical form in a
// map of its own, leaving the one it was given as it was.
func TestS2SHostsNotShared(t *testing.T) {
	cfg := config.Default()
	given := map[string]string{"B.Test": "127.0.0.1:5270"}
	cfg.S2S.Hosts = given
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(cfg.S2S.Hosts, map[string]string{"b.test": "127.0.0.1:5270"}) || !maps.Equal(given, map[string]string{"B.Test": "127.0.0.1:5270"}) {
		t.Fatalf("validated %v, given %v", cfg.S2S.Hosts, given)
	}
}

// TestAdminsLocalOnly: an administrator must be an account of the server's
// domain; one of another domain (a remote server's, or a service's) is
// refused with the reason.
func TestAdminsLocalOnly(t *testing.T) {
	for _, y := range []string{
		"domain: example.org\nadmins: [root@example.org, boss@remote.example]",
		"domain: example.org\nadmins: [root@conference.example.org]",
	} {
		_, err := config.Parse([]byte(y))
		if err == nil || !strings.Contains(err.Error(), "not an account of this server's domain example.org; only local accounts can be administrators") {
			t.Errorf("%q: error %v, want one refusing the remote admin", y, err)
		}
	}
	cfg, err := config.Parse([]byte("domain: Example.ORG\nadmins: [Root@EXAMPLE.org]"))
	if err != nil || cfg.Admins[0] != "root@example.org" {
		t.Fatalf("a local admin in another case: %q, %v", cfg.Admins, err)
	}
}

// writeCA writes a PEM certificate into dir and returns its path.
func writeCA(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "ca.pem")
	writeCAAt(t, p)
	return p
}

func writeCAAt(t *testing.T, path string) {
	t.Helper()
	var b []byte
	// Two certificates with text between them, as in a system bundle.
	for _, d := range []string{"ca-one.test", "ca-two.test"} {
		c, err := tlscert.SelfSigned(d, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		b = append(b, "# "+d+"\n"...)
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]})...)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestDialbackSecret: the secret file is read as a component's: the same
// secret whether or not the file ends in a newline (the replicas of a
// cluster must agree), and a clear error for an empty, oversized or
// missing file; no file means no secret (the pool makes a random one).
func TestDialbackSecret(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, f := range []string{write("plain", "s3cret"), write("newline", "s3cret\n"), write("spaces", "  s3cret \r\n")} {
		got, err := config.S2S{DialbackSecretFile: f}.DialbackSecret()
		if err != nil || string(got) != "s3cret" {
			t.Errorf("%s: secret %q, %v; want s3cret", filepath.Base(f), got, err)
		}
	}
	if got, err := (config.S2S{}).DialbackSecret(); got != nil || err != nil {
		t.Errorf("no file: %q, %v; want nil, nil", got, err)
	}
	for file, want := range map[string]string{
		write("empty", " \n"):                   "s2s.dialback_secret_file " + filepath.Join(dir, "empty") + " is empty",
		write("big", strings.Repeat("x", 5000)): "larger than 4096 bytes",
		filepath.Join(dir, "missing"):           "s2s.dialback_secret_file: open",
	} {
		if _, err := (config.S2S{DialbackSecretFile: file}).DialbackSecret(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one with %q", filepath.Base(file), err, want)
		}
	}
}
