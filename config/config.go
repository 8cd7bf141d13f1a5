// Package config owns adhocd's configuration: the Config type that is the
// whole of config.yaml, its defaults (Default), strict loading (Load, Parse)
// and validation. It imports nothing of the server, so a tool can read a
// configuration without linking it.
//
// The file is decoded strictly with go.yaml.in/yaml/v3: an unknown key is an
// error that names the key and its line, so a typo never silently falls back
// to a default. Every limit the server enforces on network input lives here,
// with the default that applies when the key is absent.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
	"mellium.im/xmpp/jid"
)

// Config is the whole of config.yaml.
type Config struct {
	// Domain is the XMPP domain the server serves (the server JID).
	Domain string `yaml:"domain"`
	// Admins are bare JIDs allowed to run the administration commands.
	Admins []string `yaml:"admins"`

	C2S       C2S       `yaml:"c2s"`
	WebSocket WebSocket `yaml:"websocket"`
	TLS       TLS       `yaml:"tls"`
	Storage   Storage   `yaml:"storage"`
	Cluster   Cluster   `yaml:"cluster"`
	MUC       MUC       `yaml:"muc"`
	Limits    Limits    `yaml:"limits"`
	Metrics   Metrics   `yaml:"metrics"`
	Adhoc     Adhoc     `yaml:"adhoc"`
	Admin     Admin     `yaml:"admin"`
	OTel      OTel      `yaml:"otel"`
	Log       Log       `yaml:"log"`
	Debug     Debug     `yaml:"debug"`
	Shutdown  Shutdown  `yaml:"shutdown"`

	// Components are the XEP-0114 external components (config/components.go).
	Components Components `yaml:"components"`

	// HTTPUpload is the XEP-0363 file upload service (config/upload.go).
	HTTPUpload HTTPUpload `yaml:"http_upload"`

	// S2S is federation with other servers (config/s2s.go).
	S2S S2S `yaml:"s2s"`
}

// C2S configures the client-to-server listener.
type C2S struct {
	// Listen is the TCP address of the listener, host:port.
	Listen string `yaml:"listen"`
	// DirectTLSListen is the TCP address of a listener whose connections
	// begin with TLS (XEP-0368, ALPN xmpp-client), host:port; empty: none.
	DirectTLSListen string `yaml:"direct_tls_listen"`
	// RequireTLS makes STARTTLS mandatory before authentication.
	RequireTLS bool `yaml:"require_tls"`
	// AllowPlainWithoutTLS offers SASL PLAIN on unencrypted streams. It exists
	// for benchmarks on loopback only, like Prosody's
	// allow_unencrypted_plain_auth, and is off by default.
	AllowPlainWithoutTLS bool `yaml:"allow_plain_without_tls"`
	// ChannelBinding offers SCRAM-*-PLUS and advertises the channel-binding
	// types of XEP-0440 on TLS streams (on by default). Turning it off is for
	// deployments whose bots cannot be changed and give up at the first SASL
	// failure (slixmpp 1.8 binds only to tls-unique, which TLS 1.3 lacks).
	ChannelBinding bool `yaml:"channel_binding"`
}

// WebSocket configures XMPP over WebSocket (RFC 7395) for web clients, with
// XEP-0156 discovery on the same listener.
type WebSocket struct {
	// Listen is the TCP address of the HTTP listener, host:port; empty: off.
	Listen string `yaml:"listen"`
	// Path is where the WebSocket endpoint is served.
	Path string `yaml:"path"`
	// TLS serves HTTPS with the c2s certificate (tls.*). Off, the listener
	// speaks plain HTTP, for an ingress or proxy that terminates TLS.
	TLS bool `yaml:"tls"`
	// AllowedOrigins lists the Origin header values (scheme://host[:port],
	// or "*" for any) a browser may connect from. Empty allows only pages
	// served from the listener's own host.
	AllowedOrigins []string `yaml:"allowed_origins"`
	// PublicURL is the wss:// (or ws://) URL that XEP-0156 discovery
	// advertises, for a listener behind a proxy; empty: derived from the
	// request (its Host header and scheme).
	PublicURL string `yaml:"public_url"`
}

// TLS names the certificate served by STARTTLS. When both files are empty a
// self-signed certificate for the domain is generated on first start into the
// storage folder and kept across restarts.
type TLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ReloadInterval is how often the certificate files are checked for a
	// change (a renewal); a changed pair is loaded without a restart. SIGHUP
	// and the reload command load them at once. 0 stops the checks.
	ReloadInterval Duration `yaml:"reload_interval"`
}

// Storage configures where adhocd keeps its data: the embedded bbolt store
// (the default), or a PostgreSQL database (postgres.go).
type Storage struct {
	// Backend is bolt (the bbolt file under Path) or postgres (Postgres).
	Backend string `yaml:"backend"`
	// Path is the folder holding the bbolt database, the generated
	// certificate and the control socket (with either backend).
	Path string `yaml:"path"`
	// SCRAMIterations is the PBKDF2 iteration count for new passwords.
	SCRAMIterations int `yaml:"scram_iterations"`
	// LoginTimeDelay is how long an account's last login and logout times
	// may wait in memory to be written together with others (0: each is
	// written at once, one transaction per login and per logout).
	LoginTimeDelay Duration `yaml:"login_time_delay"`
	// Postgres configures the PostgreSQL backend (storage.backend:
	// postgres).
	Postgres PostgresStorage `yaml:"postgres"`
}

// Limits bound what a client may make the server do. All are enforced on
// network input; exceeding one gives the stream or stanza error named beside it.
type Limits struct {
	// MaxStanzaBytes bounds one top-level element (policy-violation).
	MaxStanzaBytes int `yaml:"max_stanza_bytes"`
	// MaxDepth bounds element nesting inside a stanza (policy-violation).
	MaxDepth int `yaml:"max_depth"`
	// MaxAttributes bounds the attributes on one element (policy-violation).
	MaxAttributes int `yaml:"max_attributes"`
	// PreAuthTimeout is how long a connection may take to authenticate and
	// bind (connection-timeout).
	PreAuthTimeout Duration `yaml:"pre_auth_timeout"`
	// IdleTimeout closes a bound stream that sends nothing for this long
	// (connection-timeout); 0 disables it.
	IdleTimeout Duration `yaml:"idle_timeout"`
	// WriteTimeout bounds one write to a client; a client that does not read
	// is disconnected.
	WriteTimeout Duration `yaml:"write_timeout"`
	// MaxOutboundBytes bounds what waits to be written to one client: a
	// client that reads slower than it is sent to is closed with
	// policy-violation once this much is queued, and what it was never sent
	// goes back to the senders (or to offline storage).
	MaxOutboundBytes int `yaml:"max_outbound_bytes"`
	// SocketSendBuffer is the kernel send buffer (SO_SNDBUF) of each client
	// connection, set at accept; 0 leaves the kernel's autotuning, which on
	// Linux lets it grow to 4 MiB. What sits there is written as far as the
	// server can tell, and lost with the connection when the client dies
	// (without XEP-0198), so a small buffer keeps a slow client's backlog in
	// its outbound queue, where max_outbound_bytes sees it and what was not
	// written goes back to the senders or to offline storage.
	SocketSendBuffer int `yaml:"socket_send_buffer"`
	// MaxAuthFailures is the number of failed SASL attempts per stream before
	// the stream is closed (policy-violation).
	MaxAuthFailures int `yaml:"max_auth_failures"`
	// MaxSessionsPerAccount bounds the resources bound at once per account
	// (resource-constraint on bind).
	MaxSessionsPerAccount int `yaml:"max_sessions_per_account"`
	// MaxOfflineMessages bounds the messages kept per account while it has
	// no available resource (XEP-0160); the next gets service-unavailable.
	// 0 keeps none: every such message is answered with service-unavailable.
	MaxOfflineMessages int `yaml:"max_offline_messages"`
	// MaxOfflineBytes bounds the bytes of the messages kept per account (the
	// stanzas as kept); a message that would pass it is answered as one
	// beyond MaxOfflineMessages.
	MaxOfflineBytes int64 `yaml:"max_offline_bytes"`
	// MaxOfflineTotalBytes bounds the bytes of offline messages kept for all
	// accounts together; past it every recipient's next message gets
	// service-unavailable.
	MaxOfflineTotalBytes int64 `yaml:"max_offline_total_bytes"`
	// OfflineTTL is how long an offline message is kept; older ones are
	// removed in the background and never delivered. 0 keeps them.
	OfflineTTL Duration `yaml:"offline_ttl"`
	// MinFreeDiskBytes is the free space the store's filesystem keeps:
	// below it, writes users cause (offline messages, roster changes,
	// subscription requests) get resource-constraint, while logins, reads
	// and administration go on. 0 disables the floor.
	MinFreeDiskBytes int64 `yaml:"min_free_disk_bytes"`
	// MaxConnections bounds the open client connections (the next one gets
	// resource-constraint).
	MaxConnections int `yaml:"max_connections"`
	// AdminReservedConnections are admitted beyond MaxConnections for
	// administrators: such a connection may only log in, and is closed with
	// resource-constraint if the account is not an administrator.
	AdminReservedConnections int `yaml:"admin_reserved_connections"`
	// MaxRosterItems bounds one account's roster (not-allowed on roster set).
	MaxRosterItems int `yaml:"max_roster_items"`
	// MaxBlocklistItems bounds the JIDs one account blocks (XEP-0191): a
	// block that would pass it is refused whole with not-acceptable.
	MaxBlocklistItems int `yaml:"max_blocklist_items"`
	// StanzaTimeout bounds how long a bound client may take to finish a
	// stanza it started (connection-timeout): a stanza that never ends does
	// not hold the connection forever.
	StanzaTimeout Duration `yaml:"stanza_timeout"`
	// MaxConnectionsPerAddress bounds the open connections from one IP
	// address (policy-violation).
	MaxConnectionsPerAddress int `yaml:"max_connections_per_address"`
	// MaxAuthFailuresPerAddress failed SASL attempts from one IP address
	// within AuthFailureWindow make further attempts from it fail at once
	// with temporary-auth-failure until the window has passed.
	MaxAuthFailuresPerAddress int      `yaml:"max_auth_failures_per_address"`
	AuthFailureWindow         Duration `yaml:"auth_failure_window"`
	// MaxAuthFailuresPerAccountAddress failed SASL attempts for one account
	// from one IP address within AuthFailureWindow make further attempts for
	// that account from that address fail at once with
	// temporary-auth-failure; other accounts behind the same address (a NAT,
	// a load balancer) still log in until MaxAuthFailuresPerAddress.
	MaxAuthFailuresPerAccountAddress int `yaml:"max_auth_failures_per_account_address"`
	// Rate paces what an authenticated stream may send (limits.rate.*).
	Rate Rate `yaml:"rate"`
	// PEP bounds what each account keeps in its XEP-0163 PEP service.
	PEP PEPLimits `yaml:"pep"`
	// SM bounds XEP-0198 stream management.
	SM SMLimits `yaml:"sm"`
	// CSI bounds XEP-0352 client state indication.
	CSI CSILimits `yaml:"csi"`
	// MAM bounds each account's message archive (XEP-0313).
	MAM MAMLimits `yaml:"mam"`
	// VCard bounds the vCard each account keeps (XEP-0054).
	VCard VCardLimits `yaml:"vcard"`
	// Private bounds what each account keeps in private XML storage
	// (XEP-0049), bookmarks (XEP-0048) among it.
	Private PrivateLimits `yaml:"private"`
}

// VCardLimits bound each account's vCard (XEP-0054).
type VCardLimits struct {
	// MaxBytes bounds one vCard as stored, its XML written out again; a
	// larger one is refused with not-acceptable. An avatar in PHOTO/BINVAL
	// counts as its base64 text, a third larger than the image.
	MaxBytes int `yaml:"max_bytes"`
}

// PrivateLimits bound each account's private XML storage (XEP-0049).
type PrivateLimits struct {
	// MaxBytes bounds all of one account's fragments together (their keys
	// and XML as stored); a set that would pass it is refused with
	// not-acceptable.
	MaxBytes int64 `yaml:"max_bytes"`
	// MaxFragmentBytes bounds one fragment as stored (not-acceptable).
	MaxFragmentBytes int `yaml:"max_fragment_bytes"`
}

// MAMLimits bound each account's message archive (XEP-0313).
type MAMLimits struct {
	// Retention is how long an archived message is kept; 0 keeps it until
	// MaxMessages pushes it out.
	Retention Duration `yaml:"retention"`
	// MaxMessages is the messages one account's archive keeps; the oldest
	// go first. 0 archives nothing.
	MaxMessages int `yaml:"max_messages"`
	// MaxPage is the most messages one query returns (a client asking for
	// more gets this many, and pages on).
	MaxPage int `yaml:"max_page"`
}

// CSILimits bound XEP-0352 client state indication.
type CSILimits struct {
	// MaxHeld bounds the stanzas held for one inactive session (after
	// collapsing); past it what is held is delivered.
	MaxHeld int `yaml:"max_held"`
}

// SMLimits bound XEP-0198 stream management.
type SMLimits struct {
	// ResumeTimeout is how long a session whose connection broke waits for
	// its client to resume it; 0 offers no resumption. Meanwhile its stanzas
	// wait for it; past it, what the client never acknowledged goes back to
	// the senders or to offline storage.
	ResumeTimeout Duration `yaml:"resume_timeout"`
	// MaxUnacked bounds the stanzas sent to a client and not yet
	// acknowledged; a client past it is closed with policy-violation.
	MaxUnacked int `yaml:"max_unacked"`
}

// PEPLimits bound each account's PEP service (XEP-0163).
type PEPLimits struct {
	// MaxNodes is the nodes one account may have (not-allowed past it).
	MaxNodes int `yaml:"max_nodes"`
	// MaxItems is the items one node keeps: the oldest goes when a publish
	// passes a node's pubsub#max_items, and a node asking for more, or for
	// "max", gets this many.
	MaxItems int `yaml:"max_items"`
	// MaxItemBytes bounds one item's payload (not-acceptable with
	// payload-too-big past it).
	MaxItemBytes int `yaml:"max_item_bytes"`
	// MaxAccountBytes bounds the whole of one account's PEP data, nodes and
	// items (resource-constraint past it).
	MaxAccountBytes int64 `yaml:"max_account_bytes"`
}

// Rate is the token buckets that pace a bound stream's input: a stream over
// its rate is not cut off and loses nothing, the server stops reading from
// it until the bucket allows (its stanzas wait in its TCP buffer). Each
// rate of 0 disables its bucket; a burst of 0 is one second's worth.
type Rate struct {
	// StanzasPerSecond and BurstStanzas bound the stanzas of one stream.
	StanzasPerSecond int `yaml:"stanzas_per_second"`
	BurstStanzas     int `yaml:"burst_stanzas"`
	// BytesPerSecond and BurstBytes bound the bytes one stream sends.
	BytesPerSecond int `yaml:"bytes_per_second"`
	BurstBytes     int `yaml:"burst_bytes"`
	// AccountStanzasPerSecond and AccountBurstStanzas bound the stanzas of
	// all the streams of one account together (0: no such limit).
	AccountStanzasPerSecond int `yaml:"account_stanzas_per_second"`
	AccountBurstStanzas     int `yaml:"account_burst_stanzas"`
}

// Metrics configures the HTTP listener for /metrics, /healthz and /readyz.
type Metrics struct {
	// Listen is host:port; empty disables the listener.
	Listen string `yaml:"listen"`
}

// Shutdown configures how the server stops (SIGTERM, the shutdown
// command, a rollout).
type Shutdown struct {
	// Drain spreads the closing of the client connections over this long:
	// the server turns not ready at once, then closes its streams in
	// slices (system-shutdown, each session unbound at once), so that the
	// clients of a replica in a cluster reconnect to the others a few at a
	// time rather than all in the same second. 0 closes them all at once.
	Drain Duration `yaml:"drain"`
}

// Debug configures what helps find where the server spends its time.
type Debug struct {
	// PprofListen is host:port of an HTTP listener serving Go's
	// /debug/pprof/ profiles; empty (the default) disables it. It exposes
	// the process's internals: bind it to loopback only.
	PprofListen string `yaml:"pprof_listen"`
}

// Adhoc configures the XEP-0050 engine.
type Adhoc struct {
	// MaxSessions bounds the command sessions held at once (LRU eviction).
	MaxSessions int `yaml:"max_sessions"`
	// SessionTTL is the sliding lifetime of an idle command session.
	SessionTTL Duration `yaml:"session_ttl"`
	// MaxSessionsPerUser bounds one requester's open sessions (not-allowed).
	MaxSessionsPerUser int `yaml:"max_sessions_per_user"`
	// Persist keeps command sessions in the bbolt store so that they survive
	// a restart.
	Persist bool `yaml:"persist"`
	// DemoCommands adds the demo commands (a three-stage wizard and a
	// one-stage greeting, open to every user) to the server JID: to try a
	// client's multi-stage support, and the benchmark's multi-stage flow.
	DemoCommands bool `yaml:"demo_commands"`
}

// OTel configures OpenTelemetry traces and the OTLP export of metrics.
//
// Every key but Exporter may be left empty, and the standard OTEL_*
// environment variables then fill it (OTEL_EXPORTER_OTLP_ENDPOINT and the
// rest, with their _TRACES_ and _METRICS_ variants); a key set here wins
// over its variable. OTEL_SDK_DISABLED=true turns the export off whatever
// Exporter says.
type OTel struct {
	// Exporter is none, stdout (traces to standard output, for trying it
	// out) or otlp (traces and metrics over OTLP to Endpoint).
	Exporter string `yaml:"exporter"`
	// Protocol is the OTLP transport: http/protobuf or grpc. Empty:
	// OTEL_EXPORTER_OTLP_PROTOCOL, else http/protobuf.
	Protocol string `yaml:"protocol"`
	// Endpoint is the collector, host:port or a URL (http://host:4318; for
	// OTLP/HTTP a URL's path is the base of /v1/traces and /v1/metrics).
	// Empty: OTEL_EXPORTER_OTLP_ENDPOINT, else localhost:4318 (4317 for
	// grpc).
	Endpoint string `yaml:"endpoint"`
	// Insecure, when true, sends OTLP without TLS. False leaves it to the
	// endpoint's scheme and OTEL_EXPORTER_OTLP_INSECURE (default: TLS).
	Insecure bool `yaml:"insecure"`
	// Headers are sent with every export (a hosted collector's API key).
	// When set they replace OTEL_EXPORTER_OTLP_HEADERS as a whole.
	Headers Headers `yaml:"headers"`
	// CAFile is a PEM file of the certificate authorities that the
	// collector's certificate must chain to. Empty:
	// OTEL_EXPORTER_OTLP_CERTIFICATE, else the system's roots.
	CAFile string `yaml:"ca_file"`
	// Compression is gzip or none. Empty: OTEL_EXPORTER_OTLP_COMPRESSION,
	// else none.
	Compression string `yaml:"compression"`
	// Timeout bounds one export. Zero: OTEL_EXPORTER_OTLP_TIMEOUT, else 10s.
	Timeout Duration `yaml:"timeout"`
	// ServiceName names this server in traces and metrics. Empty:
	// OTEL_SERVICE_NAME, else service.name of OTEL_RESOURCE_ATTRIBUTES, else
	// adhocd.
	ServiceName string `yaml:"service_name"`
}

// Headers are HTTP headers (gRPC metadata) for OTLP exports. In YAML they
// are a mapping of name to value, or one string in the format of
// OTEL_EXPORTER_OTLP_HEADERS ("name=value,name2=value2", values
// percent-encoded). They are held in that string format, in the order
// written, so that Config stays comparable.
type Headers string

// UnmarshalYAML implements yaml.Unmarshaler.
func (h *Headers) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		var s string
		if err := n.Decode(&s); err != nil {
			return fmt.Errorf("line %d: headers: %w", n.Line, err)
		}
		*h = Headers(s)
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: headers: want a mapping of name to value", n.Line)
	}
	var b strings.Builder
	for i := 0; i+1 < len(n.Content); i += 2 {
		var name, value string
		if err := errors.Join(n.Content[i].Decode(&name), n.Content[i+1].Decode(&value)); err != nil {
			return fmt.Errorf("line %d: headers: %w", n.Content[i].Line, err)
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(name + "=" + url.PathEscape(value))
	}
	*h = Headers(b.String())
	return nil
}

// Map returns the headers by name; nil when there are none. An entry
// without "=", or whose name is not an HTTP token, is an error (which names
// the header, never its value).
func (h Headers) Map() (map[string]string, error) {
	if strings.TrimSpace(string(h)) == "" {
		return nil, nil
	}
	m := map[string]string{}
	for i, kv := range strings.Split(string(h), ",") {
		if strings.TrimSpace(kv) == "" {
			continue
		}
		name, value, ok := strings.Cut(kv, "=")
		name = strings.TrimSpace(name)
		if !ok {
			return nil, fmt.Errorf("header %d: want name=value", i+1)
		}
		if name == "" || strings.IndexFunc(name, notTokenChar) >= 0 {
			return nil, fmt.Errorf("header %q: not a valid header name", name)
		}
		v, err := url.PathUnescape(value)
		if err != nil {
			return nil, fmt.Errorf("header %q: bad percent-encoding in its value", name)
		}
		m[name] = strings.TrimSpace(v)
	}
	return m, nil
}

// notTokenChar reports whether r may not appear in an HTTP field name
// (RFC 9110 §5.6.2).
func notTokenChar(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return false
	}
	return !strings.ContainsRune("!#$%&'*+-.^_`|~", r)
}

// Admin configures the administration commands.
type Admin struct {
	// IdleAfter is how long a session may send nothing and still count as
	// active; after that it is idle (get-active-users, get-idle-users).
	IdleAfter Duration `yaml:"idle_after"`
	// MOTD, when set, is the message of the day: applied at start and on
	// reload when it differs from the one in force (set-motd can still
	// change it until the next reload).
	MOTD string `yaml:"motd"`
}

// Log configures the server's structured log.
type Log struct {
	// Level is debug, info, warn or error.
	Level string `yaml:"level"`
	// Format is text or json.
	Format string `yaml:"format"`
}

// Duration is a time.Duration written in YAML as "30s", "5m" and so on.
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return fmt.Errorf("line %d: duration: %w", n.Line, err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: duration %q: %w", n.Line, s, err)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Default returns the configuration that applies to every key config.yaml
// leaves out.
func Default() Config {
	return Config{
		Domain:    "localhost",
		C2S:       C2S{Listen: ":5222", RequireTLS: true, ChannelBinding: true},
		WebSocket: WebSocket{Path: "/xmpp-websocket"},
		TLS:       TLS{ReloadInterval: Duration(time.Minute)},
		Storage: Storage{
			Backend:         BackendBolt,
			Path:            "data",
			SCRAMIterations: 4096,
			LoginTimeDelay:  Duration(time.Second),
			Postgres: PostgresStorage{
				MaxConns:       DefaultPostgresMaxConns,
				ConnectTimeout: Duration(DefaultPostgresConnectTimeout),
			},
		},
		Cluster: Cluster{Lease: Duration(DefaultClusterLease)},
		MUC:     DefaultMUC(),
		Limits: Limits{
			MaxStanzaBytes:           256 << 10,
			MaxDepth:                 64,
			MaxAttributes:            64,
			PreAuthTimeout:           Duration(30 * time.Second),
			IdleTimeout:              0,
			WriteTimeout:             Duration(30 * time.Second),
			MaxOutboundBytes:         1 << 20,
			SocketSendBuffer:         64 << 10,
			MaxAuthFailures:          3,
			MaxSessionsPerAccount:    10,
			MaxOfflineMessages:       100,
			MaxOfflineBytes:          1 << 20,
			MaxOfflineTotalBytes:     256 << 20,
			OfflineTTL:               Duration(30 * 24 * time.Hour),
			MinFreeDiskBytes:         256 << 20,
			MaxConnections:           10000,
			AdminReservedConnections: 8,
			MaxRosterItems:           1000,
			MaxBlocklistItems:        1000,
			StanzaTimeout:            Duration(60 * time.Second),

			MaxConnectionsPerAddress:  200,
			MaxAuthFailuresPerAddress: 50,
			AuthFailureWindow:         Duration(5 * time.Minute),

			MaxAuthFailuresPerAccountAddress: 5,
			Rate: Rate{
				StanzasPerSecond: 200,
				BurstStanzas:     400,
				BytesPerSecond:   256 << 10,
				BurstBytes:       1 << 20,
			},
			PEP: PEPLimits{
				MaxNodes:        128,
				MaxItems:        256,
				MaxItemBytes:    128 << 10,
				MaxAccountBytes: 16 << 20,
			},
			SM:      SMLimits{ResumeTimeout: Duration(5 * time.Minute), MaxUnacked: 1000},
			CSI:     CSILimits{MaxHeld: 500},
			MAM:     MAMLimits{Retention: Duration(365 * 24 * time.Hour), MaxMessages: 50000, MaxPage: 250},
			VCard:   VCardLimits{MaxBytes: 128 << 10},
			Private: PrivateLimits{MaxBytes: 1 << 20, MaxFragmentBytes: 128 << 10},
		},
		Adhoc: Adhoc{
			MaxSessions:        10000,
			SessionTTL:         Duration(10 * time.Minute),
			MaxSessionsPerUser: 20,
		},
		Admin: Admin{IdleAfter: Duration(5 * time.Minute)},
		OTel:  OTel{Exporter: "none"},
		Log:   Log{Level: "info", Format: "text"},

		Components: DefaultComponents(),

		HTTPUpload: DefaultHTTPUpload(),

		S2S: DefaultS2S(),
	}
}

// Load reads the file at path over the defaults and validates the result.
// Relative paths (storage, certificate) are made absolute against the
// file's folder, so the server does not depend on its working directory.
// The paths are resolved before validation, so that a file it checks
// (s2s.ca_file) is the one the server will read.
func Load(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	cfg, err := decode(b)
	if err != nil {
		return Config{}, fmt.Errorf("config: %s: %w", path, err)
	}
	base, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	for _, p := range []*string{&cfg.Storage.Path, &cfg.TLS.CertFile, &cfg.TLS.KeyFile, &cfg.OTel.CAFile} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(base, *p)
		}
	}
	cfg.Components.resolve(base)
	cfg.S2S.resolve(base)
	if err := cfg.Validate(); err != nil {
		return Config{}, fmt.Errorf("config: %s: %w", path, err)
	}
	return cfg, nil
}

// Parse decodes YAML over the defaults and validates the result. An unknown
// key is an error naming the key and its line. Relative paths stay as they
// are (relative to the working directory).
func Parse(b []byte) (Config, error) {
	cfg, err := decode(b)
	if err != nil {
		return Config{}, err
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// decode decodes YAML over the defaults, strictly.
func decode(b []byte) (Config, error) {
	cfg := Default()
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, err
	}
	return cfg, nil
}

// Validate checks every value for what the server can run with.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	// domain is the server's domain once checked, empty while it is not
	// valid (the checks against it are then skipped).
	domain := ""
	d, err := jid.Parse(c.Domain)
	switch {
	case c.Domain == "":
		bad("domain: must be set")
	case err != nil:
		bad("domain %q: %v", c.Domain, err)
	case d.Localpart() != "" || d.Resourcepart() != "":
		bad("domain %q: must be a bare domain", c.Domain)
	default:
		c.Domain = d.Domain().String()
		domain = c.Domain
	}
	for i, a := range c.Admins {
		j, err := jid.Parse(a)
		if err != nil || j.Localpart() == "" || j.Resourcepart() != "" {
			bad("admins[%d] %q: must be a bare JID user@domain", i, a)
			continue
		}
		if domain != "" && j.Domainpart() != domain {
			// An account of another server (over federation, or a
			// service's domain) is never one the server authenticates.
			bad("admins[%d] %q: not an account of this server's domain %s; only local accounts can be administrators", i, a, c.Domain)
			continue
		}
		c.Admins[i] = j.String()
	}
	if _, _, err := net.SplitHostPort(c.C2S.Listen); err != nil {
		bad("c2s.listen %q: %v", c.C2S.Listen, err)
	}
	for _, l := range [][2]string{{"metrics.listen", c.Metrics.Listen}, {"debug.pprof_listen", c.Debug.PprofListen}, {"websocket.listen", c.WebSocket.Listen}} {
		if l[1] == "" {
			continue // optional listeners
		}
		if _, _, err := net.SplitHostPort(l[1]); err != nil {
			bad("%s %q: %v", l[0], l[1], err)
		}
	}
	if !strings.HasPrefix(c.WebSocket.Path, "/") {
		bad("websocket.path %q: must begin with /", c.WebSocket.Path)
	}
	for i, o := range c.WebSocket.AllowedOrigins {
		if u, err := url.Parse(o); o != "*" && (err != nil || u.Scheme == "" || u.Host == "" || (u.Path != "" && u.Path != "/")) {
			bad("websocket.allowed_origins[%d] %q: must be scheme://host[:port] or *", i, o)
		}
	}
	if u := c.WebSocket.PublicURL; u != "" {
		if p, err := url.Parse(u); err != nil || (p.Scheme != "ws" && p.Scheme != "wss") || p.Host == "" {
			bad("websocket.public_url %q: must be a ws:// or wss:// URL", u)
		}
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		bad("tls: cert_file and key_file must be set together")
	}
	if c.TLS.ReloadInterval < 0 {
		bad("tls.reload_interval: must not be negative")
	}
	if c.Storage.Path == "" {
		bad("storage.path: must be set")
	}
	if c.Storage.SCRAMIterations < 4096 {
		bad("storage.scram_iterations %d: must be at least 4096 (RFC 7677)", c.Storage.SCRAMIterations)
	}
	if d := c.Storage.LoginTimeDelay.D(); d < 0 || d > time.Minute {
		bad("storage.login_time_delay %v: must be between 0 and 1m", d)
	}
	c.Storage.validate(bad)
	c.Cluster.validate(c.Storage.Backend, bad)
	c.MUC.validate(c.Domain, bad)
	c.Components.validate(c.Domain, c.MUC, bad)
	// Every listener takes a port of its own (an empty one takes none).
	listeners := map[string]string{"c2s.listen": c.C2S.Listen, "c2s.direct_tls_listen": c.C2S.DirectTLSListen,
		"websocket.listen": c.WebSocket.Listen, "metrics.listen": c.Metrics.Listen, "debug.pprof_listen": c.Debug.PprofListen}
	if len(c.Components.Services) > 0 {
		listeners["components.listen"] = c.Components.Listen
	}
	others := maps.Clone(listeners)
	others["s2s.listen"], others["s2s.direct_tls_listen"] = c.S2S.Listen, c.S2S.DirectTLSListen
	c.HTTPUpload.validate(c.Domain, others, bad)
	c.S2S.validate(domain, c.serviceDomains(), listeners, bad)
	if c.Shutdown.Drain < 0 {
		bad("shutdown.drain %s: must not be negative", c.Shutdown.Drain.D())
	}
	positive := []struct {
		name string
		v    int
	}{
		{"limits.max_stanza_bytes", c.Limits.MaxStanzaBytes},
		{"limits.max_depth", c.Limits.MaxDepth},
		{"limits.max_attributes", c.Limits.MaxAttributes},
		{"limits.max_auth_failures", c.Limits.MaxAuthFailures},
		{"limits.max_sessions_per_account", c.Limits.MaxSessionsPerAccount},
		{"limits.max_connections", c.Limits.MaxConnections},
		{"limits.max_roster_items", c.Limits.MaxRosterItems},
		{"limits.max_blocklist_items", c.Limits.MaxBlocklistItems},
		{"limits.max_connections_per_address", c.Limits.MaxConnectionsPerAddress},
		{"limits.max_auth_failures_per_address", c.Limits.MaxAuthFailuresPerAddress},
		{"limits.max_auth_failures_per_account_address", c.Limits.MaxAuthFailuresPerAccountAddress},
		{"adhoc.max_sessions", c.Adhoc.MaxSessions},
		{"adhoc.max_sessions_per_user", c.Adhoc.MaxSessionsPerUser},
	}
	// Counts where 0 means none or off.
	for _, n := range []struct {
		name, zero string
		v          int64
	}{
		{"limits.admin_reserved_connections", "none", int64(c.Limits.AdminReservedConnections)},
		{"limits.max_offline_messages", "none kept", int64(c.Limits.MaxOfflineMessages)},
		{"limits.min_free_disk_bytes", "no floor", c.Limits.MinFreeDiskBytes},
		{"limits.rate.stanzas_per_second", "off", int64(c.Limits.Rate.StanzasPerSecond)},
		{"limits.rate.burst_stanzas", "one second's worth", int64(c.Limits.Rate.BurstStanzas)},
		{"limits.rate.bytes_per_second", "off", int64(c.Limits.Rate.BytesPerSecond)},
		{"limits.rate.burst_bytes", "one second's worth", int64(c.Limits.Rate.BurstBytes)},
		{"limits.rate.account_stanzas_per_second", "off", int64(c.Limits.Rate.AccountStanzasPerSecond)},
		{"limits.rate.account_burst_stanzas", "one second's worth", int64(c.Limits.Rate.AccountBurstStanzas)},
	} {
		if n.v < 0 {
			bad("%s %d: must be 0 (%s) or more", n.name, n.v, n.zero)
		}
	}
	if c.Limits.MaxOfflineBytes <= 0 {
		bad("limits.max_offline_bytes %d: must be positive", c.Limits.MaxOfflineBytes)
	}
	if c.Limits.MaxOfflineTotalBytes <= 0 {
		bad("limits.max_offline_total_bytes %d: must be positive", c.Limits.MaxOfflineTotalBytes)
	}
	if c.Limits.OfflineTTL < 0 {
		bad("limits.offline_ttl: must not be negative (0 keeps messages)")
	}
	for _, p := range positive {
		if p.v <= 0 {
			bad("%s %d: must be positive", p.name, p.v)
		}
	}
	if c.Limits.MaxOutboundBytes < 16<<10 {
		bad("limits.max_outbound_bytes %d: must be at least 16384", c.Limits.MaxOutboundBytes)
	}
	if p := c.Limits.PEP; p.MaxNodes < 1 || p.MaxItems < 1 || p.MaxItemBytes < 1024 || p.MaxAccountBytes < int64(p.MaxItemBytes) {
		bad("limits.pep: max_nodes and max_items must be positive, max_item_bytes at least 1024 and max_account_bytes at least max_item_bytes")
	}
	if n := c.Limits.VCard.MaxBytes; n < 1024 {
		bad("limits.vcard.max_bytes %d: must be at least 1024", n)
	}
	if p := c.Limits.Private; p.MaxFragmentBytes < 1024 || p.MaxBytes < int64(p.MaxFragmentBytes) {
		bad("limits.private: max_fragment_bytes %d must be at least 1024, and max_bytes %d at least max_fragment_bytes", p.MaxFragmentBytes, p.MaxBytes)
	}
	if m := c.Limits.MAM; m.Retention < 0 || m.MaxMessages < 0 || m.MaxPage < 1 {
		bad("limits.mam: retention and max_messages must not be negative, max_page must be positive")
	}
	if c.Limits.SM.ResumeTimeout < 0 || c.Limits.SM.MaxUnacked < 10 {
		bad("limits.sm: resume_timeout must not be negative and max_unacked at least 10")
	}
	if n := c.Limits.CSI.MaxHeld; n < 1 {
		bad("limits.csi.max_held %d: must be positive", n)
	}
	if n := c.Limits.SocketSendBuffer; n != 0 && (n < 4<<10 || n > 16<<20) {
		bad("limits.socket_send_buffer %d: must be 0 (the kernel's autotuning) or from 4096 to 16777216", n)
	}
	if c.Limits.MaxStanzaBytes < 1024 {
		bad("limits.max_stanza_bytes %d: must be at least 1024", c.Limits.MaxStanzaBytes)
	}
	for _, p := range []struct {
		name string
		v    Duration
	}{
		{"limits.pre_auth_timeout", c.Limits.PreAuthTimeout},
		{"limits.write_timeout", c.Limits.WriteTimeout},
		{"limits.stanza_timeout", c.Limits.StanzaTimeout},
		{"limits.auth_failure_window", c.Limits.AuthFailureWindow},
		{"adhoc.session_ttl", c.Adhoc.SessionTTL},
		{"admin.idle_after", c.Admin.IdleAfter},
	} {
		if p.v <= 0 {
			bad("%s %s: must be positive", p.name, p.v.D())
		}
	}
	if c.Limits.IdleTimeout < 0 {
		bad("limits.idle_timeout: must not be negative")
	}
	switch c.OTel.Exporter {
	case "none", "stdout", "otlp":
	default:
		bad("otel.exporter %q: must be none, stdout or otlp", c.OTel.Exporter)
	}
	switch c.OTel.Protocol {
	case "", "http/protobuf", "grpc":
	default:
		bad("otel.protocol %q: must be http/protobuf or grpc", c.OTel.Protocol)
	}
	if e := c.OTel.Endpoint; strings.Contains(e, "://") {
		if u, err := url.Parse(e); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("otel.endpoint %q: want host:port or an http:// or https:// URL", e)
		}
	} else if e != "" {
		if _, _, err := net.SplitHostPort(e); err != nil {
			bad("otel.endpoint %q: %v", e, err)
		}
	}
	if _, err := c.OTel.Headers.Map(); err != nil {
		bad("otel.headers: %v", err)
	}
	switch c.OTel.Compression {
	case "", "gzip", "none":
	default:
		bad("otel.compression %q: must be gzip or none", c.OTel.Compression)
	}
	if c.OTel.Timeout < 0 {
		bad("otel.timeout: must not be negative")
	}
	switch strings.ToLower(c.Log.Level) {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level %q: must be debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format %q: must be text or json", c.Log.Format)
	}
	return errors.Join(errs...)
}
