// Package servertest starts a real adhocd server on 127.0.0.1:0 for tests, as
// net/http/httptest does for HTTP, and connects clients to it: a mellium.im
// client that negotiates STARTTLS, SCRAM and binding like any XMPP client,
// and a raw client that writes bytes and reads the server's answer, for tests
// of what a well-behaved client library would never send.
package servertest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/modules/defaults"
	"github.com/adhocd/adhocd/server"
	"github.com/adhocd/adhocd/storage"
	"github.com/adhocd/adhocd/storage/postgres/pgtest"
	"github.com/adhocd/adhocd/tlscert"
)

// Server is a started adhocd server.
type Server struct {
	*server.Server
	// Dir is the server's storage folder.
	Dir string
	// Addr is the c2s listener, host:port on loopback.
	Addr string
	// WSURL is the XMPP-over-WebSocket endpoint (ws:// or wss://) when the
	// configuration sets websocket.listen (see WithWebSocket), else empty.
	WSURL string
	// ClientTLS trusts the server's self-signed certificate.
	ClientTLS *tls.Config
	cfg       config.Config
	opts      []server.Option
	t         testing.TB
}

// Option changes the test server's configuration before it starts.
type Option func(*config.Config)

// Config returns a configuration for a test server in dir: loopback port 0,
// 4096 SCRAM iterations, short timeouts, federation off (s2s.listen's
// default would take :5269; WithS2S turns it on, on loopback).
func Config(dir string) config.Config {
	cfg := config.Default()
	cfg.C2S.Listen = "127.0.0.1:0"
	cfg.S2S.Listen = ""
	cfg.Storage.Path = dir
	cfg.Limits.PreAuthTimeout = config.Duration(10 * time.Second)
	cfg.Limits.WriteTimeout = config.Duration(5 * time.Second)
	cfg.Log.Level = "warn"
	return cfg
}

// Start starts a server in a fresh temporary folder and stops it when the
// test ends.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	return StartWith(t, nil, opts...)
}

// StartWith is Start with server options (extra modules or commands).
func StartWith(t testing.TB, srvOpts []server.Option, opts ...Option) *Server {
	t.Helper()
	cfg := Config(t.TempDir())
	for _, o := range opts {
		o(&cfg)
	}
	return StartConfig(t, cfg, srvOpts...)
}

// BackendEnv names the environment variable that picks the storage
// backend of every test server: "postgres" runs each on a new database of
// a throwaway PostgreSQL server (package pgtest; shared by the whole run
// under pgrun), anything else on the configuration's own backend (a bbolt
// file in the test's folder by default). The whole suite runs both ways in
// CI.
const BackendEnv = "ADHOCD_TEST_BACKEND"

// Postgres reports whether BackendEnv asks for the PostgreSQL backend.
func Postgres() bool { return os.Getenv(BackendEnv) == config.BackendPostgres }

// Embedded keeps the test's servers on the configuration's own backend
// (the bbolt file by default) whatever BackendEnv says: for a test of what
// the embedded store alone does (its file and its lock, its free-disk
// floor, the in-memory command sessions). Not for parallel tests.
func Embedded(t testing.TB) {
	t.Helper()
	if tt, ok := t.(interface{ Setenv(k, v string) }); ok {
		tt.Setenv(BackendEnv, "")
		return
	}
	t.Fatal("servertest.Embedded needs a *testing.T or *testing.B")
}

// UseBackend points cfg at the backend BackendEnv asks for: with
// "postgres", a new database of its own unless cfg names one already
// (a restart on the same data keeps it).
func UseBackend(t testing.TB, cfg *config.Config) {
	t.Helper()
	if !Postgres() || cfg.Storage.Backend == config.BackendPostgres {
		return
	}
	cfg.Storage.Backend = config.BackendPostgres
	cfg.Storage.Postgres.DSN = pgtest.Start(t)
}

// StartConfig starts a server with cfg as it is (its storage folder is kept,
// so a second server can be started on the first one's data), on the
// backend BackendEnv asks for (UseBackend).
func StartConfig(t testing.TB, cfg config.Config, opts ...server.Option) *Server {
	t.Helper()
	UseBackend(t, &cfg)
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.Log.Level))
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: lvl}))
	srv, err := server.New(cfg, append([]server.Option{server.WithLogger(logger), server.WithModules(defaults.Modules()...)}, opts...)...)
	if err != nil {
		t.Fatalf("servertest: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Start(ctx); err != nil {
		t.Fatalf("servertest: start: %v", err)
	}
	s := &Server{Server: srv, Dir: cfg.Storage.Path, Addr: srv.Addr().String(), cfg: cfg, opts: opts, t: t}
	if a := srv.WebSocketAddr(); a != nil {
		scheme := "ws"
		if cfg.WebSocket.TLS {
			scheme = "wss"
		}
		s.WSURL = scheme + "://" + a.String() + cfg.WebSocket.Path
	}
	pem, err := os.ReadFile(filepath.Join(cfg.Storage.Path, tlscert.SelfSignedFile))
	if err == nil {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		s.ClientTLS = &tls.Config{RootCAs: pool, ServerName: cfg.Domain, MinVersion: tls.VersionTLS12}
	}
	t.Cleanup(func() { _ = s.Stop() })
	return s
}

// NoRateLimits turns the per-connection and per-account rate limits off
// (limits.rate.*), for benchmarks that measure the server, not its pacing.
func NoRateLimits(c *config.Config) { c.Limits.Rate = config.Rate{} }

// WithWebSocket turns on the XMPP-over-WebSocket listener on a loopback
// port (plain HTTP, as behind a proxy that terminates TLS).
func WithWebSocket(c *config.Config) { c.WebSocket.Listen = "127.0.0.1:0" }

// WithS2S turns federation on, its listener on a loopback port (used by the
// federation tests; docs/design-federation.md).
func WithS2S(c *config.Config) { c.S2S.Listen = "127.0.0.1:0" }

// Stop shuts the server down gracefully (idempotent).
func (s *Server) Stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return s.Shutdown(ctx)
}

// Restart stops the server and starts a new one on the same data and
// configuration.
func (s *Server) Restart() *Server {
	s.t.Helper()
	if err := s.Stop(); err != nil {
		s.t.Fatalf("servertest: stop: %v", err)
	}
	cfg := s.cfg
	cfg.C2S.Listen = s.Addr
	if a := s.WebSocketAddr(); a != nil {
		cfg.WebSocket.Listen = a.String()
	}
	return StartConfig(s.t, cfg, s.opts...)
}

// AddUser creates an account and returns its bare JID.
func (s *Server) AddUser(user, password string) string {
	s.t.Helper()
	if err := s.Server.AddUser(context.Background(), user, password); err != nil {
		s.t.Fatalf("servertest: add user %s: %v", user, err)
	}
	return user + "@" + s.Domain().String()
}

// Befriend makes the local accounts a and b contacts with a presence
// subscription both ways, in the store, as an accepted subscription
// exchange leaves them.
func (s *Server) Befriend(a, b string) {
	s.t.Helper()
	for _, p := range [][2]string{{a, b}, {b, a}} {
		_, err := s.Store().UpdateRosterItem(context.Background(), p[0], p[1]+"@"+s.Domain().String(), func(it *storage.RosterItem, _ bool) (bool, error) {
			it.Subscription = storage.SubBoth
			return false, nil
		})
		if err != nil {
			s.t.Fatalf("servertest: roster of %s: %v", p[0], err)
		}
	}
}

// Context returns a context that ends after d, or when the test ends.
func Context(t testing.TB, d time.Duration) context.Context {
	c, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return c
}

// Wait is how long the tests wait for an answer that should come at once.
const Wait = 5 * time.Second

// TwoUsers starts a server (with opts) with the accounts alice (password
// wonderland) and bob (builder), both logged in.
func TwoUsers(tb testing.TB, opts ...Option) (srv *Server, alice, bob *Client) {
	tb.Helper()
	srv = Start(tb, opts...)
	srv.AddUser("alice", "wonderland")
	srv.AddUser("bob", "builder")
	return srv, srv.Dial("alice", "wonderland", ""), srv.Dial("bob", "builder", "")
}

// EventuallyDial logs in as user within Wait, retrying while the server
// refuses the connection (until a closed one has been accounted for).
func (s *Server) EventuallyDial(t testing.TB, user, password string) {
	t.Helper()
	deadline := time.Now().Add(Wait)
	for {
		if _, err := s.DialErr(user, password, ""); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no connection accepted after one closed")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// FreeAddr returns a 127.0.0.1 address whose port was free a moment ago, for
// a listener the test opens later (a server whose address another's
// configuration must name before either starts). The port is drawn at
// random below Linux's ephemeral range (32768–60999), where the kernel
// never puts the local end of an outgoing connection nor a listener on
// port 0: a port taken from that range, freed, and bound again moments
// later may meanwhile have become some connection's source port (seen
// as "address already in use" on a busy machine).
func FreeAddr(t testing.TB) string {
	t.Helper()
	for range 100 {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePortLow+rand.IntN(freePortHigh-freePortLow)))
		if l, err := net.Listen("tcp", addr); err == nil {
			_ = l.Close()
			return addr
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// The ports FreeAddr draws from: below the ephemeral range, above the
// usual services'.
const freePortLow, freePortHigh = 20000, 32768

// Federated starts two servers, a.test and b.test, with federation on
// loopback and a static s2s host entry for each other (the federation
// tests; docs/design-federation.md §9). edit, if set, changes either
// configuration first; optsB are server options of b.test.
func Federated(t testing.TB, edit func(a, b *config.Config), optsB ...server.Option) (a, b *Server) {
	t.Helper()
	addrA, addrB := FreeAddr(t), FreeAddr(t)
	ca, cb := Config(t.TempDir()), Config(t.TempDir())
	ca.Domain, cb.Domain = "a.test", "b.test"
	ca.S2S.Listen, cb.S2S.Listen = addrA, addrB
	ca.S2S.Hosts = map[string]string{"b.test": addrB}
	cb.S2S.Hosts = map[string]string{"a.test": addrA}
	if edit != nil {
		edit(&ca, &cb)
	}
	return StartConfig(t, ca), StartConfig(t, cb, optsB...)
}
