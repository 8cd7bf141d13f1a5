package upload

import (
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/modules"
	"github.com/adhocd/adhocd/tlscert"
	"github.com/adhocd/adhocd/wire"
)

// Options are the service's domain, listener, folder and bounds. A zero
// field takes the default named beside it, but for the quotas, where 0 is
// no bound.
type Options struct {
	// Domain is the service's domain; default "upload." and the server's
	// domain.
	Domain string
	// Name is the service's name in disco (default "HTTP File Upload").
	Name string
	// Listen is the HTTP listener's address (default 127.0.0.1:5281).
	Listen string
	// TLS serves HTTPS with the server's certificate (tls.*).
	TLS bool
	// PublicURL is the base of the slots' URLs; default the scheme of TLS,
	// the service's domain and the listener's port. The listener serves
	// under its path.
	PublicURL string
	// Dir is the folder of the files (default "upload" in the storage
	// folder).
	Dir string
	// MaxFileBytes bounds one file (default 100 MiB).
	MaxFileBytes int64
	// QuotaPerUserBytes bounds what one account stores, its open slots
	// included; QuotaTotalBytes what everyone does. 0: no bound.
	QuotaPerUserBytes, QuotaTotalBytes int64
	// MinFreeDiskBytes is the free space a slot must leave on the folder's
	// filesystem; 0: no floor.
	MinFreeDiskBytes int64
	// ExpireAfter is how long a file is kept; 0 keeps files.
	ExpireAfter time.Duration
	// SlotLifetime is how long a slot takes its upload (default 5m).
	SlotLifetime time.Duration
	// MaxPendingSlots bounds an account's slots not uploaded to (default
	// 20).
	MaxPendingSlots int
	// Now is the clock of slots and expiry (default time.Now).
	Now func() time.Time
	// SweepInterval is how often expired files are looked for (default
	// one minute).
	SweepInterval time.Duration
}

// maxNameBytes bounds a file name, as most filesystems do.
const maxNameBytes = 255

func (o *Options) setDefaults(server, storage string) {
	if o.Domain == "" {
		o.Domain = "upload." + server
	}
	if o.Name == "" {
		o.Name = config.DefaultHTTPUpload().Name
	}
	if o.Listen == "" {
		o.Listen = config.DefaultUploadListen
	}
	if o.Dir == "" {
		o.Dir = config.HTTPUpload{}.Dir(storage)
	}
	if o.MaxFileBytes <= 0 {
		o.MaxFileBytes = config.DefaultUploadMaxFileBytes
	}
	if o.SlotLifetime <= 0 {
		o.SlotLifetime = config.DefaultUploadSlotLifetime
	}
	if o.MaxPendingSlots <= 0 {
		o.MaxPendingSlots = config.DefaultUploadPendingSlots
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.SweepInterval <= 0 {
		o.SweepInterval = time.Minute
	}
}

// options are the module's options from the server's configuration.
func options(cfg config.Config) Options {
	c := cfg.HTTPUpload
	return Options{Domain: c.ServiceDomain(cfg.Domain), Name: c.Name, Listen: c.Listen, TLS: c.TLS, PublicURL: c.PublicURL,
		Dir: c.Dir(cfg.Storage.Path), MaxFileBytes: c.MaxFileBytes, QuotaPerUserBytes: c.QuotaPerUserBytes,
		QuotaTotalBytes: c.QuotaTotalBytes, MinFreeDiskBytes: cfg.Limits.MinFreeDiskBytes, ExpireAfter: c.ExpireAfter.D(),
		SlotLifetime: c.SlotLifetime.D(), MaxPendingSlots: c.MaxPendingSlots}
}

// Module is the upload service on the module API: a DomainHandler for its
// domain, the server's disco items listing it, and its HTTP listener.
type Module struct {
	opts Options
	// fromConfig takes opts from the server's http_upload section at Start
	// (FromConfig); off is set when that section leaves the service off.
	fromConfig, off bool
	h               modules.Host
	log             *slog.Logger
	domain          jid.JID
	// base is the public URL the slots' URLs begin with; its path ends
	// in "/", and the listener serves what is under it.
	base  *url.URL
	files *store

	ln     net.Listener
	srv    *http.Server
	cancel context.CancelFunc
	wg     sync.WaitGroup

	slots, uploads, uploadedBytes, downloads, removed metric.Int64Counter
	gauge                                             metric.Registration
}

// New returns the upload service with opts.
func New(opts Options) *Module { return &Module{opts: opts} }

// FromConfig is the constructor of the default module table: a module
// whose options come from the server's http_upload section at Start (or
// that serves nothing when http_upload.enabled is off).
func FromConfig() modules.Module { return &Module{fromConfig: true} }

// Interface guards: the capabilities the server finds on the module.
var (
	_ modules.Module        = (*Module)(nil)
	_ modules.DomainHandler = (*Module)(nil)
	_ modules.AccountHook   = (*Module)(nil)
	_ http.Handler          = (*Module)(nil)
)

// Name implements modules.Module.
func (m *Module) Name() string { return "upload" }

// reloader is what a Host offers a module told of configuration reloads
// (SIGHUP, the reload command): the module reads the certificate again
// then, as the server does.
type reloader interface {
	OnReload(fn func(context.Context, config.Config))
}

// Start implements modules.Module: it loads the folder's index, listens,
// and registers the service among the server's disco items. The listener
// and the sweeper run until Stop.
func (m *Module) Start(ctx context.Context, h modules.Host) (err error) {
	cfg := h.Config()
	if m.fromConfig {
		if !cfg.HTTPUpload.Enabled {
			m.off = true
			return nil
		}
		m.opts = options(cfg)
	}
	m.opts.setDefaults(h.Domain().Domainpart(), cfg.Storage.Path)
	d, err := jid.New("", m.opts.Domain, "")
	if err != nil {
		return fmt.Errorf("upload: domain %q: %w", m.opts.Domain, err)
	}
	m.h, m.log, m.domain = h, h.Logger(), d
	m.files, err = openStore(m.opts.Dir, m.opts.Now, m.opts.ExpireAfter, m.opts.SlotLifetime)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", m.opts.Listen)
	if err != nil {
		return fmt.Errorf("upload: listen: %w", err)
	}
	defer func() {
		if err != nil {
			_ = ln.Close()
		}
	}()
	if m.base, err = m.publicURL(ln.Addr()); err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.cancel = cancel
	m.srv = &http.Server{
		Handler:           m,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(m.log.Handler(), slog.LevelDebug),
	}
	if m.opts.TLS {
		certs, err := tlscert.Open(cfg.TLS.CertFile, cfg.TLS.KeyFile, cfg.Storage.Path, h.Domain().String())
		if err != nil {
			cancel()
			return fmt.Errorf("upload: %w", err)
		}
		m.srv.TLSConfig = &tls.Config{GetCertificate: certs.GetCertificate, MinVersion: tls.VersionTLS12}
		if iv := cfg.TLS.ReloadInterval.D(); iv > 0 {
			m.wg.Go(func() { certs.Watch(runCtx, iv, m.log) })
		}
		if r, ok := h.(reloader); ok {
			r.OnReload(func(context.Context, config.Config) {
				if _, err := certs.Reload(); err != nil {
					m.log.Warn("upload: certificate not reloaded", "err", err)
				}
			})
		}
	}
	m.metrics(h)
	m.ln = ln
	m.wg.Go(func() {
		var err error
		if m.opts.TLS {
			err = m.srv.ServeTLS(ln, "", "")
		} else {
			err = m.srv.Serve(ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.log.Error("upload: listener", "err", err)
		}
	})
	m.wg.Go(func() { m.sweepLoop(runCtx) })
	h.Disco().AddNodeHandler(modules.ServiceItem{JID: m.domain, Name: m.opts.Name})
	m.log.Info("upload service listening", "domain", m.domain.String(), "addr", ln.Addr().String(), "url", m.base.String(), "tls", m.opts.TLS, "dir", m.opts.Dir)
	return nil
}

// publicURL is the base of the slots' URLs: Options.PublicURL, or the
// scheme of Options.TLS with the service's domain and the port of addr.
func (m *Module) publicURL(addr net.Addr) (*url.URL, error) {
	s := m.opts.PublicURL
	if s == "" {
		scheme, port := "http", ""
		if m.opts.TLS {
			scheme = "https"
		}
		if a, ok := addr.(*net.TCPAddr); ok {
			port = strconv.Itoa(a.Port)
		}
		host := m.domain.Domainpart()
		if !(scheme == "http" && port == "80") && !(scheme == "https" && port == "443") && port != "" {
			host = net.JoinHostPort(host, port)
		}
		s = scheme + "://" + host + "/"
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("upload: public URL %q: not an http:// or https:// URL", s)
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
		u.RawPath = ""
	}
	return u, nil
}

// Addr is the HTTP listener's address once started.
func (m *Module) Addr() net.Addr {
	if m.ln == nil {
		return nil
	}
	return m.ln.Addr()
}

// Stop implements modules.Module: the listener stops taking requests and
// finishes those under way within ctx; the sweeper stops.
func (m *Module) Stop(ctx context.Context) error {
	if m.off || m.srv == nil {
		return nil
	}
	err := m.srv.Shutdown(ctx)
	if err != nil {
		// Uploads still running when ctx ended are cut.
		_ = m.srv.Close()
	}
	m.cancel()
	m.wg.Wait()
	if m.gauge != nil {
		_ = m.gauge.Unregister()
	}
	if err != nil {
		return fmt.Errorf("upload: stop: %w", err)
	}
	return nil
}

// Domains implements modules.DomainHandler.
func (m *Module) Domains() []string {
	if m.off {
		return nil
	}
	return []string{m.domain.Domainpart()}
}

// metrics makes the module's instruments.
func (m *Module) metrics(h modules.Host) {
	m.slots = modules.Counter(h, "adhocd.upload.slots", "Slot requests of the upload service (XEP-0363), by outcome: granted, or the reason of the refusal (bad-request, too-large, quota, pending, disk, not-allowed).")
	m.uploads = modules.Counter(h, "adhocd.upload.uploads", "Files stored by a PUT to a slot.")
	m.uploadedBytes = modules.Counter(h, "adhocd.upload.uploaded_bytes", "Bytes of the files stored.")
	m.downloads = modules.Counter(h, "adhocd.upload.downloads", "GET requests answered with a file's bytes (whole or a range).")
	m.removed = modules.Counter(h, "adhocd.upload.removed", "Files and slots removed, by reason: expired (a file past http_upload.expire_after), abandoned (a slot never uploaded to), account (its account was deleted).")
	g, err := modules.MeterOf(h).Int64ObservableGauge("adhocd.upload.bytes",
		metric.WithDescription("Bytes the upload service holds: the files stored and the sizes of the open slots, as this process counts them."))
	if err != nil {
		h.Logger().Warn("metric not created", "name", "adhocd.upload.bytes", "err", err)
		return
	}
	m.gauge, err = modules.MeterOf(h).RegisterCallback(func(_ context.Context, o metric.Observer) error {
		_, _, total := m.files.usage("")
		o.ObserveInt64(g, total)
		return nil
	}, g)
	if err != nil {
		h.Logger().Warn("metric callback not registered", "name", "adhocd.upload.bytes", "err", err)
	}
}

// count adds one to c with the attribute key=value.
func count(ctx context.Context, c metric.Int64Counter, key, value string) {
	c.Add(ctx, 1, metric.WithAttributes(attribute.String(key, value)))
}

// sweepLoop sweeps now and then every Options.SweepInterval until ctx ends.
func (m *Module) sweepLoop(ctx context.Context) {
	t := time.NewTicker(m.opts.SweepInterval)
	defer t.Stop()
	for {
		err := m.files.sweep(ctx, func(_ string, file bool) {
			reason := "abandoned"
			if file {
				reason = "expired"
			}
			count(ctx, m.removed, "reason", reason)
		})
		if err != nil && ctx.Err() == nil {
			m.log.Warn("upload: sweep", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// HandleStanza implements modules.DomainHandler: IQ requests to the
// service (slots, disco, ping); messages and presence are ignored, as a
// service without chat ignores them.
func (m *Module) HandleStanza(ctx context.Context, from jid.JID, el *wire.Element, to jid.JID) error {
	typ := el.Attr("type")
	if el.Start.Name.Local != "iq" || (typ != "get" && typ != "set") {
		return nil
	}
	if to.Localpart() != "" || to.Resourcepart() != "" {
		return modules.StanzaError(stanza.Cancel, stanza.ServiceUnavailable, "")
	}
	name, n := el.Payload()
	if n != 1 {
		return modules.StanzaError(stanza.Modify, stanza.BadRequest, "an IQ request has one child")
	}
	q := el.Sub(name)
	var res []wire.Node
	var err error
	switch {
	case typ == "get" && name == xml.Name{Space: nsDiscoInfo, Local: "query"}:
		res, err = m.info(q.Attr("node"))
	case typ == "get" && name == xml.Name{Space: nsDiscoItems, Local: "query"}:
		res, err = m.items(q.Attr("node"))
	case typ == "get" && name == xml.Name{Space: nsPing, Local: "ping"}:
	case typ == "get" && name == xml.Name{Space: NS, Local: "request"}:
		res, err = m.slot(ctx, from, q)
	default:
		err = modules.StanzaError(stanza.Cancel, stanza.ServiceUnavailable, "")
	}
	if err != nil {
		return err
	}
	reply := wire.Elem(stanza.NSClient, "iq", "from", m.domain.String(), "to", from.String(), "type", "result", "id", el.Attr("id")).Add(res...)
	if err := m.h.Send(context.WithoutCancel(ctx), reply.Reader()); err != nil {
		m.log.Debug("upload: send", "err", err)
	}
	return nil
}

// AccountCreated implements modules.AccountHook.
func (m *Module) AccountCreated(context.Context, jid.JID) {}

// AccountDeleted implements modules.AccountHook: the account's files and
// slots go with it (those this process indexed: on a folder shared by
// replicas, those of the others stay until they expire).
func (m *Module) AccountDeleted(ctx context.Context, account jid.JID) {
	if m.off || m.files == nil {
		return
	}
	owner := account.Bare().String()
	for _, tok := range m.files.owned(owner) {
		if err := m.files.remove(tok); err != nil {
			m.log.Warn("upload: remove a deleted account's file", "err", err)
			continue
		}
		count(ctx, m.removed, "reason", "account")
	}
}
