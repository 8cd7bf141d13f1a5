package server

import (
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
	"mellium.im/xmpp/stream"

	"github.com/adhocd/adhocd/account"
	"github.com/adhocd/adhocd/adhoc"
	"github.com/adhocd/adhocd/auth"
	"github.com/adhocd/adhocd/c2s"
	"github.com/adhocd/adhocd/cluster"
	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/modules"
	"github.com/adhocd/adhocd/router"
	"github.com/adhocd/adhocd/s2s"
	"github.com/adhocd/adhocd/storage"
	"github.com/adhocd/adhocd/storage/adhocsessions"
	"github.com/adhocd/adhocd/storage/backend"
	"github.com/adhocd/adhocd/storage/postgres"
	"github.com/adhocd/adhocd/tlscert"
	"github.com/adhocd/adhocd/wire"
)

// Server is one adhocd instance: the lifecycle of the listeners, the
// router, the modules and the store, and what administration needs.
type Server struct {
	cfg         config.Config
	log         *slog.Logger
	domain      jid.JID
	store       storage.Store
	ownsStore   bool
	auth        *auth.Authenticator
	tlsConfig   *tls.Config
	certs       *tlscert.Certs
	stopWatch   func() // ends the watch of the certificate files
	metrics     Observer
	modules     []modules.Module
	commands    *adhoc.Provider
	cmdObserver func(context.Context, adhoc.Event)
	// meters gives each module its meter (modules.Metered); nil: none.
	meters metric.MeterProvider
	extra  []adhoc.Command
	disco  modules.Disco
	// accountHooks are the modules' modules.AccountHook, in start order.
	accountHooks []modules.AccountHook

	// router routes the bound sessions' stanzas; env is what every c2s
	// stream shares. Both are made by Start.
	router *router.Router
	// cluster is the directory and bus of the replicas (cluster.go); nil
	// for one process.
	cluster *cluster.Cluster
	env     *c2s.Env
	// remote takes the stanzas for other domains (remote.go); nil:
	// federation off.
	remote router.Remote
	pool   *s2s.Pool       // federation, when s2s.listen is set (federation.go)
	s2sDNS s2s.SRVLookuper // WithS2SDNS
	s2sLn  net.Listener
	// s2sTLSLn is s2s.direct_tls_listen's listener (XEP-0368), when set.
	s2sTLSLn net.Listener

	lifecycle func(restart bool)
	reload    func() (config.Config, error)
	onReload  []func(context.Context, config.Config)
	bootstrap *struct {
		jid      jid.JID
		password string
	}
	startedAt time.Time

	// What reload can change: limits and admin settings swapped whole; the
	// admin list has its own lock.
	lim      atomic.Pointer[config.Limits]
	adminCfg atomic.Pointer[config.Admin]
	admins   *account.Admins

	// served holds the domains of the modules' services
	// (modules.DomainHandler), set as they start: with the server's own
	// domain, what counts as local (admins.go).
	served atomic.Pointer[map[string]bool]

	authBackoff c2s.Backoff

	mu       sync.Mutex
	perAddr  map[string]int // open connections per client IP
	ln       net.Listener
	ctl      net.Listener
	wsLn     net.Listener // XMPP over WebSocket, when configured
	tlsLn    net.Listener // direct TLS (XEP-0368), when configured
	wsHTTP   *http.Server
	conns    map[*c2s.Conn]struct{}
	wg       sync.WaitGroup
	started  []modules.Module
	stopping bool
	done     chan struct{}
}

// Observer receives the server's countable events (package c2s defines
// it; the metrics package implements it).
type Observer = c2s.Observer

// StanzaTracer is the optional capability of an Observer that traces each
// stanza (c2s.StanzaTracer).
type StanzaTracer = c2s.StanzaTracer

// Option configures a Server.
type Option func(*Server)

// WithLogger sets the logger (default: slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.log = l } }

// WithStore uses an already open store; the server will not close it.
func WithStore(st storage.Store) Option { return func(s *Server) { s.store = st } }

// WithModules adds modules to those the server runs, in start order. A
// server runs none by default: cmd/adhocd passes modules/defaults.Modules(),
// and a program that embeds adhocd passes those, its own, or both.
func WithModules(m ...modules.Module) Option {
	return func(s *Server) { s.modules = append(s.modules, m...) }
}

// WithCommands adds XEP-0050 commands on the server JID, for programs that
// embed adhocd.
func WithCommands(c ...adhoc.Command) Option {
	return func(s *Server) { s.extra = append(s.extra, c...) }
}

// WithLifecycle sets what the restart and shutdown admin commands do: stop
// is called with restart true or false once their delay has passed. The
// adhocd command shuts the server down gracefully and, for a restart,
// executes itself again. Without it, the server shuts itself down and a
// restart is a shutdown.
func WithLifecycle(stop func(restart bool)) Option { return func(s *Server) { s.lifecycle = stop } }

// WithBootstrapAdmin creates the account j with password at start, before
// the server listens, if it does not exist yet, and makes it an
// administrator (ADHOCD_ADMIN_JID / ADHOCD_ADMIN_PASSWORD in containers).
func WithBootstrapAdmin(j jid.JID, password string) Option {
	return func(s *Server) {
		s.bootstrap = &struct {
			jid      jid.JID
			password string
		}{j.Bare(), password}
		s.admins.SetBootstrap(j.Bare().String())
	}
}

// WithCommandObserver receives an event for every ad-hoc command request
// (the metrics package counts, times and traces them).
func WithCommandObserver(f func(context.Context, adhoc.Event)) Option {
	return func(s *Server) { s.cmdObserver = f }
}

// WithObserver receives the server's events (the metrics package implements
// it).
func WithObserver(o Observer) Option { return func(s *Server) { s.metrics = o } }

// WithMeterProvider gives the modules their meters from mp (metrics'
// Telemetry.MeterProvider), each named after its module; without it their
// instruments record nothing.
func WithMeterProvider(mp metric.MeterProvider) Option { return func(s *Server) { s.meters = mp } }

// New returns a server for cfg. It has no side effects: Start opens the store,
// loads the certificate and listens.
func New(cfg config.Config, opts ...Option) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	d, err := jid.Parse(cfg.Domain)
	if err != nil {
		return nil, fmt.Errorf("server: domain: %w", err)
	}
	s := &Server{
		cfg:     cfg,
		log:     slog.Default(),
		domain:  d,
		metrics: c2s.NopObserver{},
		conns:   make(map[*c2s.Conn]struct{}),
		perAddr: make(map[string]int),
		admins:  account.NewAdmins(cfg.Admins),
		done:    make(chan struct{}),
	}
	s.lim.Store(&cfg.Limits)
	s.adminCfg.Store(&cfg.Admin)
	for _, o := range opts {
		o(s)
	}
	if b := s.bootstrap; b != nil && b.jid.Domainpart() != d.Domainpart() {
		return nil, fmt.Errorf("server: bootstrap admin %s: not an account of the server's domain %s; only local accounts can be administrators", b.jid, d)
	}
	return s, nil
}

// Start opens the store, loads or generates the certificate, starts the
// router and the modules and begins accepting clients on c2s.listen. When
// it fails, what it had opened and started is closed and stopped again.
func (s *Server) Start(ctx context.Context) (err error) {
	s.startedAt = time.Now()
	var listeners []net.Listener
	defer func() {
		if err == nil {
			return
		}
		for _, ln := range listeners {
			_ = ln.Close()
		}
		if s.pool != nil {
			_ = s.pool.Close(ctx)
		}
		s.stopModules(ctx)
		_ = s.closeCluster()
		_ = s.closeStore()
	}()
	for _, step := range []func(context.Context) error{s.openStore, s.openCluster, s.loadTLS, s.newPool, s.startRouter, s.startModules, s.bootstrapAdmin} {
		if err := step(ctx); err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", s.cfg.C2S.Listen)
	if err != nil {
		return fmt.Errorf("server: listen: %w", err)
	}
	ln = s.withSendBuffer(ln)
	listeners = append(listeners, ln)
	wsLn, wsHTTP, err := s.listenWebSocket()
	if err != nil {
		return err
	}
	if wsLn != nil {
		listeners = append(listeners, wsLn)
	}
	var tlsLn net.Listener
	if a := s.cfg.C2S.DirectTLSListen; a != "" {
		if tlsLn, err = net.Listen("tcp", a); err != nil {
			return fmt.Errorf("server: direct TLS listen: %w", err)
		}
		tlsLn = s.withSendBuffer(tlsLn)
		listeners = append(listeners, tlsLn)
	}
	s2sLn, s2sTLSLn, err := s.listenS2S()
	if err != nil {
		return err
	}
	for _, ln := range []net.Listener{s2sLn, s2sTLSLn} {
		if ln != nil {
			listeners = append(listeners, ln)
		}
	}
	ctl, err := s.listenControl()
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.ln, s.ctl, s.wsLn, s.wsHTTP, s.tlsLn, s.s2sLn, s.s2sTLSLn = ln, ctl, wsLn, wsHTTP, tlsLn, s2sLn, s2sTLSLn
	s.mu.Unlock()
	if s2sLn != nil {
		s.log.Info("adhocd listening for servers", "s2s", s2sLn.Addr().String(), "require_tls", s.cfg.S2S.RequireTLS,
			"require_valid_certificates", s.cfg.S2S.RequireValidCertificates)
		s.pool.Listen(s2sLn)
	}
	if s2sTLSLn != nil {
		s.log.Info("adhocd listening for servers over direct TLS", "addr", s2sTLSLn.Addr().String())
		s.pool.ListenDirectTLS(s2sTLSLn)
	}
	if wsHTTP != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := wsHTTP.Serve(wsLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("websocket listener", "err", err)
			}
		}()
		s.log.Info("adhocd listening for XMPP over WebSocket", "addr", wsLn.Addr().String(), "path", s.cfg.WebSocket.Path, "tls", s.cfg.WebSocket.TLS)
	}
	if d := s.cfg.TLS.ReloadInterval.D(); d > 0 {
		wctx, stop := context.WithCancel(context.Background())
		s.stopWatch = stop
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.certs.Watch(wctx, d, s.log)
		}()
	}
	s.wg.Add(1)
	go s.serveControl(ctl)
	s.log.Info("adhocd listening", "domain", s.domain.String(), "c2s", ln.Addr().String(), "require_tls", s.cfg.C2S.RequireTLS)
	s.wg.Add(1)
	go s.accept(ln, c2s.New)
	if tlsLn != nil {
		s.log.Info("adhocd listening for direct TLS", "addr", tlsLn.Addr().String())
		s.wg.Add(1)
		go s.accept(tlsLn, c2s.NewDirectTLS)
	}
	return nil
}

// openStore opens the store storage.backend names (package
// storage/backend), unless WithStore gave one.
func (s *Server) openStore(ctx context.Context) error {
	if s.store != nil {
		return nil
	}
	st, err := backend.Open(ctx, s.cfg, backend.Options{Log: s.log.With("component", "storage")})
	if err != nil {
		return err
	}
	s.store, s.ownsStore = st, true
	return nil
}

// loadTLS loads the certificate (or makes the self-signed one) and the
// authenticator, whose channel binding needs it.
func (s *Server) loadTLS(context.Context) error {
	certs, err := tlscert.Open(s.cfg.TLS.CertFile, s.cfg.TLS.KeyFile, s.cfg.Storage.Path, s.domain.String())
	if err != nil {
		return err
	}
	s.certs = certs
	// The certificate is served as it is now: a renewal (ReloadCertificate,
	// tls.reload_interval) reaches the next handshake.
	s.tlsConfig = &tls.Config{GetCertificate: certs.GetCertificate, MinVersion: tls.VersionTLS12}
	s.auth = auth.NewAuthenticator(s.store, s.domain.String(), auth.Options{
		PlainWithoutTLS: s.cfg.C2S.AllowPlainWithoutTLS, ChannelBinding: s.cfg.C2S.ChannelBinding, Certificate: certs.Current().Leaf})
	s.auth.Check = s.accessCheck
	return nil
}

// startRouter makes the router and what the streams share, with the stored
// administrators and access lists, and the XEP-0050 provider.
func (s *Server) startRouter(ctx context.Context) error {
	s.router = router.New(router.Options{Domain: s.domain, Store: s.store, Log: s.log, Observer: s.metrics, Limits: s.limits, Cluster: s.cluster,
		Remote: s.remote})
	s.wireCluster()
	s.env = &c2s.Env{Domain: s.domain, C2S: s.cfg.C2S, Limits: s.limits, TLS: s.tlsConfig, Auth: s.auth,
		Backoff: &s.authBackoff, Observer: s.metrics, Router: s.router, Log: s.log, StanzasOut: &s.router.StanzasOut,
		Features: s.router.StreamFeatures(), Certificate: s.certs.Current, IsAdmin: s.IsAdmin}
	if err := s.loadAdmins(ctx); err != nil {
		return err
	}
	if err := s.loadAccess(ctx); err != nil {
		return err
	}
	provider, err := s.newProvider(ctx)
	if err != nil {
		return err
	}
	s.commands = provider
	for _, c := range s.extra {
		if err := s.commands.AddCommand(s.domain, c); err != nil {
			return fmt.Errorf("server: %w", err)
		}
	}
	return nil
}

// startModules starts the modules in order and takes what each declares:
// its router capabilities and its disco features.
func (s *Server) startModules(ctx context.Context) error {
	for _, m := range s.modules {
		if err := m.Start(ctx, &host{s: s, log: s.log.With("module", m.Name()), name: m.Name()}); err != nil {
			return fmt.Errorf("server: start module %s: %w", m.Name(), err)
		}
		s.started = append(s.started, m)
		if err := s.router.AddModule(m); err != nil {
			return err
		}
		if dh, ok := m.(modules.DomainHandler); ok {
			s.addServed(dh.Domains())
		}
		if f, ok := m.(modules.Features); ok {
			s.disco.AddFeature(f.Features()...)
		}
		if f, ok := m.(modules.AccountFeatures); ok {
			s.disco.AddAccountFeature(f.AccountFeatures()...)
		}
		if ids, ok := m.(modules.Identities); ok {
			for _, id := range ids.Identities() {
				s.disco.AddIdentity(id)
			}
		}
		if ah, ok := m.(modules.AccountHook); ok {
			s.accountHooks = append(s.accountHooks, ah)
		}
		if sf, ok := m.(modules.StreamFeatures); ok {
			s.env.Features = append(s.env.Features, sf.StreamFeatures()...)
		}
	}
	// The server's disco#info is whole once every module has started: its
	// XEP-0115 hash is computed once, for every stream's features.
	node, ver := s.disco.Caps()
	s.env.Caps = func() (string, string) { return node, ver }
	return nil
}

// bootstrapAdmin creates the bootstrap administrator's account if it does
// not exist (WithBootstrapAdmin).
func (s *Server) bootstrapAdmin(ctx context.Context) error {
	b := s.bootstrap
	if b == nil {
		return nil
	}
	switch err := s.AddUser(ctx, b.jid.String(), b.password); {
	case err == nil:
		s.log.Info("bootstrapped admin account", "jid", b.jid.String())
	case !errors.Is(err, storage.ErrExists):
		return fmt.Errorf("server: bootstrap admin %s: %w", b.jid, err)
	}
	return nil
}

// newProvider makes the XEP-0050 provider with the session store that
// adhoc.* configures: an LRU in memory, or with adhoc.persist the LRU in
// front of a bucket of the server's bbolt file; on the PostgreSQL backend
// always the table every replica shares.
func (s *Server) newProvider(ctx context.Context) (*adhoc.Provider, error) {
	a := s.cfg.Adhoc
	mem := adhoc.NewMemoryStore(a.MaxSessions, a.SessionTTL.D(), a.MaxSessionsPerUser)
	// Requesters of other domains run only the commands marked Remote.
	opts := []adhoc.Option{adhoc.WithStore(mem), adhoc.WithLogger(s.log.With("component", "adhoc")), adhoc.WithLocal(s.isLocal)}
	if s.cmdObserver != nil {
		opts = append(opts, adhoc.WithObserver(s.cmdObserver))
	}
	if pg, ok := s.store.(*postgres.Store); ok {
		// Every replica shares the sessions and their ids' secret, so
		// that a session goes on whichever replica its next stage reaches
		// (adhoc.persist is implied).
		ps := postgres.NewSessionStore(pg.DB(), a.SessionTTL.D(), a.MaxSessionsPerUser)
		secret, err := ps.Secret(ctx)
		if err != nil {
			return nil, err
		}
		return adhoc.NewProvider(append(opts, adhoc.WithStore(ps), adhoc.WithSecret(secret))...), nil
	}
	if a.Persist {
		b, ok := s.store.(interface{ DB() *bolt.DB })
		if !ok {
			return nil, errors.New("server: adhoc.persist needs the bbolt store")
		}
		bs, err := adhocsessions.New(b.DB(), mem)
		if err != nil {
			return nil, err
		}
		secret, err := bs.Secret()
		if err != nil {
			return nil, err
		}
		opts = append(opts, adhoc.WithStore(bs), adhoc.WithSecret(secret))
	}
	return adhoc.NewProvider(opts...), nil
}

// Addr returns the c2s listener's address once started.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// DirectTLSAddr returns the direct TLS listener's address, or nil when
// c2s.direct_tls_listen is not set.
func (s *Server) DirectTLSAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tlsLn == nil {
		return nil
	}
	return s.tlsLn.Addr()
}

// Store returns the server's store (open between Start and Shutdown).
func (s *Server) Store() storage.Store { return s.store }

// Commands returns the XEP-0050 provider of the server JID (set by Start).
func (s *Server) Commands() *adhoc.Provider { return s.commands }

// Domain returns the server JID.
func (s *Server) Domain() jid.JID { return s.domain }

// Config returns the configuration in force: as started, with what a
// reload changed since.
func (s *Server) Config() config.Config {
	c := s.cfg
	c.Limits = s.limits()
	c.Admin = *s.adminCfg.Load()
	c.Admins = s.admins.Configured()
	return c
}

// limits returns the limits in force.
func (s *Server) limits() config.Limits { return *s.lim.Load() }

// accept serves the connections of a listener, each a stream made by
// newConn (a plain one, or one that begins with TLS).
func (s *Server) accept(ln net.Listener, newConn func(*c2s.Env, net.Conn) *c2s.Conn) {
	defer s.wg.Done()
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Temporary failures (EMFILE, …): back off instead of spinning.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log.Warn("accept", "err", err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		c := newConn(s.env, nc)
		release, ok := s.admit(c)
		if !ok {
			continue
		}
		go func() {
			defer release()
			c.Serve()
		}()
	}
}

// admit applies the connection limits to a new connection of any
// transport: a connection refused is closed with the stream error that says
// why. Once admitted, c is served by the caller, which calls release when c
// has ended.
func (s *Server) admit(c *c2s.Conn) (release func(), ok bool) {
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		c.Close(stream.SystemShutdown)
		return nil, false
	}
	lim := s.limits()
	if n := len(s.conns); n >= lim.MaxConnections {
		// Beyond the limit, the reserved connections let an administrator
		// in to mend things; who it is, SASL tells.
		if n >= lim.MaxConnections+lim.AdminReservedConnections {
			s.mu.Unlock()
			s.metrics.Connection("refused")
			c.Close(wire.StreamError(stream.ResourceConstraint, "too many connections"))
			return nil, false
		}
		c.AdmitReserved()
	}
	host := c.Host()
	if s.perAddr[host] >= s.limits().MaxConnectionsPerAddress {
		s.mu.Unlock()
		s.metrics.Connection("refused")
		c.Close(wire.StreamError(stream.PolicyViolation, "too many connections from your address"))
		return nil, false
	}
	s.perAddr[host]++
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	s.metrics.Connection("accepted")
	return func() {
		s.mu.Lock()
		delete(s.conns, c)
		if s.perAddr[host]--; s.perAddr[host] <= 0 {
			delete(s.perAddr, host)
		}
		s.mu.Unlock()
		s.metrics.Connection("closed")
		s.wg.Done()
	}, true
}

// Shutdown stops accepting, ends every stream with system-shutdown, waits for
// the connections to finish (or ctx to end), stops the modules in reverse
// order and closes the store.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		<-s.done
		return nil
	}
	s.stopping = true
	if s.stopWatch != nil {
		s.stopWatch()
	}
	ln, ctl, wsHTTP, tlsLn := s.ln, s.ctl, s.wsHTTP, s.tlsLn
	conns := make([]*c2s.Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	defer close(s.done)

	if ln != nil {
		_ = ln.Close()
		_ = ctl.Close()
	}
	if tlsLn != nil {
		_ = tlsLn.Close()
	}
	if wsHTTP != nil {
		// Stops accepting; the upgraded streams are among conns.
		_ = wsHTTP.Close()
	}
	// In parallel: a client that does not read holds its own close for up
	// to write_timeout, and no other's; spread over shutdown.drain.
	s.drain(ctx, conns)
	// Sessions waiting for a resume have no connection among conns.
	if s.env != nil {
		s.env.EndHibernating()
	}
	// After the clients: their unavailable presence still reaches remote
	// contacts; within s2s.close_timeout.
	if s.pool != nil {
		pctx, cancel := context.WithTimeout(ctx, s.cfg.S2S.CloseTimeout.D())
		if err := s.pool.Close(pctx); err != nil {
			s.log.Warn("s2s streams not all closed", "err", err)
		}
		cancel()
	}
	waited := make(chan struct{})
	go func() { s.wg.Wait(); close(waited) }()
	var errs []error
	select {
	case <-waited:
	case <-ctx.Done():
		for _, c := range conns {
			c.Abort()
		}
		errs = append(errs, fmt.Errorf("server: shutdown: %w", ctx.Err()))
		<-waited
	}
	s.stopModules(ctx)
	if err := s.closeCluster(); err != nil {
		errs = append(errs, err)
	}
	if err := s.closeStore(); err != nil {
		errs = append(errs, err)
	}
	s.log.Info("adhocd stopped")
	return errors.Join(errs...)
}

// drain closes conns with system-shutdown, each on its own goroutine,
// spread evenly over shutdown.drain (all at once without one, and the rest
// at once when ctx ends first). Ready is false from the start, so that a
// load balancer sends no new clients meanwhile.
func (s *Server) drain(ctx context.Context, conns []*c2s.Conn) {
	d := s.cfg.Shutdown.Drain.D()
	start := time.Now()
	if d > 0 && len(conns) > 1 {
		s.log.Info("draining connections", "connections", len(conns), "over", d)
	}
	for i, c := range conns {
		if d > 0 && len(conns) > 1 {
			at := start.Add(d * time.Duration(i) / time.Duration(len(conns)))
			if wait := time.Until(at); wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
					d = 0 // the rest at once
				}
			}
		}
		go c.Close(stream.SystemShutdown)
	}
}

// Ready reports whether the server serves: listening, store open, no
// shutdown begun, and in a cluster taking part in it (cluster.Cluster Up:
// not fenced, subscribed to its channels) (for /readyz). PostgreSQL is not
// asked: an outage of the shared database must not empty the Service.
func (s *Server) Ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ln != nil && !s.stopping && (s.cluster == nil || s.cluster.Up())
}

// Stopping reports whether shutdown has begun.
func (s *Server) Stopping() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopping
}

func (s *Server) stopModules(ctx context.Context) {
	for _, m := range slices.Backward(s.started) {
		if err := m.Stop(ctx); err != nil {
			s.log.Warn("stop module", "module", m.Name(), "err", err)
		}
	}
	s.started = nil
}

func (s *Server) closeStore() error {
	if s.ownsStore && s.store != nil {
		return s.store.Close()
	}
	return nil
}

// IsAdmin reports whether j's bare JID is an administrator: always false
// for a JID of another domain (a remote server's or a service's), whatever
// the lists hold.
func (s *Server) IsAdmin(j jid.JID) bool {
	return j.Domainpart() == s.domain.Domainpart() && s.admins.Is(j)
}

// Send delivers a stanza that the server (or a module) originates: a message
// or presence to a local JID, an IQ to a local full JID.
func (s *Server) Send(ctx context.Context, r xml.TokenReader) error { return s.router.Send(ctx, r) }

// host is the modules.Host a module sees.
type host struct {
	s    *Server
	log  *slog.Logger
	name string // the module's
}

var _ modules.Host = (*host)(nil)

func (h *host) Domain() jid.JID                                   { return h.s.domain }
func (h *host) Config() config.Config                             { return h.s.Config() }
func (h *host) Logger() *slog.Logger                              { return h.log }
func (h *host) Store() storage.Store                              { return h.s.store }
func (h *host) Disco() *modules.Disco                             { return &h.s.disco }
func (h *host) Commands() *adhoc.Provider                         { return h.s.commands }
func (h *host) IsAdmin(j jid.JID) bool                            { return h.s.IsAdmin(j) }
func (h *host) Send(ctx context.Context, r xml.TokenReader) error { return h.s.Send(ctx, r) }

// Request implements modules.IQRequester.
func (h *host) Request(ctx context.Context, to jid.JID, typ stanza.IQType, payload xml.TokenReader) (*wire.Element, error) {
	return h.s.router.Request(ctx, to, typ, payload)
}

func (h *host) Sessions() []modules.SessionInfo { return h.s.Sessions() }

// Meter implements modules.Metered: the module's meter, one that records
// nothing without WithMeterProvider.
func (h *host) Meter() metric.Meter {
	if h.s.meters == nil {
		return noop.NewMeterProvider().Meter("")
	}
	return h.s.meters.Meter("github.com/adhocd/adhocd/modules/" + h.name)
}

// Module implements modules.ModuleFinder: a module started before the one
// that asks.
func (h *host) Module(name string) (modules.Module, bool) {
	for _, m := range h.s.started {
		if m.Name() == name {
			return m, true
		}
	}
	return nil, false
}

func (h *host) UserSessions(user string) []modules.Session { return h.s.router.UserSessions(user) }

func (h *host) EndSessions(user, res, reason string) int { return h.s.EndSessions(user, res, reason) }

func (h *host) Admins() (configured, stored []string) { return h.s.Admins() }

func (h *host) SetAdmins(ctx context.Context, stored []string) error {
	return h.s.SetAdmins(ctx, stored)
}

func (h *host) Logins(user string) (int, time.Time) { return h.s.Logins(user) }

func (h *host) AccessLists() (black, white []string) { return h.s.AccessLists() }

func (h *host) SetAccessLists(ctx context.Context, black, white []string) error {
	return h.s.SetAccessLists(ctx, black, white)
}

func (h *host) Stop(restart bool) {
	if h.s.lifecycle != nil {
		h.s.lifecycle(restart)
		return
	}
	go func() { _ = h.s.Shutdown(context.Background()) }()
}

// Status reports the server's counters.
func (s *Server) Status() modules.Status {
	s.mu.Lock()
	conns := len(s.conns)
	s.mu.Unlock()
	sessions, users, in, out := s.router.Count()
	return modules.Status{Started: s.startedAt, Connections: conns, Sessions: sessions, OnlineUsers: users,
		StanzasIn: in, StanzasOut: out}
}

func (h *host) Status() modules.Status { return h.s.Status() }

// ReloadCertificate reads the certificate files again; new handshakes get
// what they hold, the streams already secured keep theirs.
func (s *Server) ReloadCertificate() error {
	changed, err := s.certs.Reload()
	if err != nil {
		return fmt.Errorf("server: certificate: %w", err)
	}
	if changed {
		leaf := s.certs.Current().Leaf
		s.log.Info("certificate reloaded", "subject", leaf.Subject.String(), "not_after", leaf.NotAfter)
	}
	return nil
}
