package component

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
	"mellium.im/xmpp/stream"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/modules"
	"github.com/adhocd/adhocd/wire"
)

// NS is the namespace of the streams components open to the server
// (XEP-0114 §3, the "accept" method).
const NS = "jabber:component:accept"

// maxPending bounds the connections that have not completed their
// handshake at once; one more is refused with resource-constraint.
const maxPending = 16

// Options are the listener and the components it accepts.
type Options struct {
	// Listen is the TCP address components connect to, host:port; empty:
	// nothing listens and the module serves no domain.
	Listen string
	// Components are the components accepted, one per domain.
	Components []Component
}

// Component is one external component the server accepts.
type Component struct {
	// Domain is the component's domain.
	Domain string
	// Secret is the secret shared with the component.
	Secret string
}

// String implements fmt.Stringer: the domain alone, so that a Component
// printed or logged never shows its secret.
func (c Component) String() string { return "component " + c.Domain }

// Module is the XEP-0114 listener and a modules.DomainHandler for the
// components' domains, which the server's disco#items lists.
type Module struct {
	opts Options
	// fromConfig takes opts from the server's components section at Start.
	fromConfig bool
	h          modules.Host
	log        *slog.Logger
	server     jid.JID
	// secrets are the components' secrets by domain; domains their JIDs,
	// in order.
	secrets map[string]string
	domains []jid.JID
	ln      net.Listener
	wg      sync.WaitGroup

	// mu guards what follows.
	mu sync.RWMutex
	// conns are the authenticated streams by domain; open every stream,
	// for Stop; pending how many of them have not completed their
	// handshake.
	conns    map[string]*conn
	open     map[*conn]struct{}
	pending  int
	stopping bool

	stanzas, handshakes metric.Int64Counter
}

// New returns the module with opts.
func New(opts Options) *Module { return &Module{opts: opts} }

// FromConfig is the constructor of the default module table: a module
// whose options come from the server's components section at Start, each
// secret read from its file or environment variable then.
func FromConfig() modules.Module { return &Module{fromConfig: true} }

// options reads the components section, and the secrets it names unless
// nothing is to listen.
func options(c config.Components) (Options, error) {
	o := Options{Listen: c.Listen}
	if c.Listen == "" {
		return o, nil
	}
	for _, s := range c.Services {
		secret, err := s.Secret()
		if err != nil {
			return Options{}, fmt.Errorf("component: %w", err)
		}
		o.Components = append(o.Components, Component{Domain: s.Domain, Secret: secret})
	}
	return o, nil
}

// Interface guards: the capabilities the server finds on the module.
var (
	_ modules.Module        = (*Module)(nil)
	_ modules.DomainHandler = (*Module)(nil)
)

// Name implements modules.Module.
func (m *Module) Name() string { return "component" }

// Start implements modules.Module: it checks the components, listens and
// lists their domains among the server's disco items. With no listener or
// no component it does nothing.
func (m *Module) Start(_ context.Context, h modules.Host) error {
	if m.fromConfig {
		o, err := options(h.Config().Components)
		if err != nil {
			return err
		}
		m.opts = o
	}
	m.h, m.log, m.server = h, h.Logger(), h.Domain()
	if m.opts.Listen == "" || len(m.opts.Components) == 0 {
		return nil
	}
	m.secrets = make(map[string]string, len(m.opts.Components))
	for _, c := range m.opts.Components {
		d, err := jid.New("", c.Domain, "")
		switch {
		case err != nil:
			return fmt.Errorf("component: domain %q: %w", c.Domain, err)
		case d.Domainpart() == m.server.Domainpart():
			return fmt.Errorf("component: %s is the server's own domain", c.Domain)
		case m.secrets[d.Domainpart()] != "":
			return fmt.Errorf("component: %s is listed twice", c.Domain)
		case c.Secret == "":
			return fmt.Errorf("component: %s has an empty secret", c.Domain)
		}
		m.secrets[d.Domainpart()] = c.Secret
		m.domains = append(m.domains, d)
	}
	slices.SortFunc(m.domains, func(a, b jid.JID) int { return strings.Compare(a.String(), b.String()) })
	m.conns = make(map[string]*conn)
	m.open = make(map[*conn]struct{})
	m.stanzas = modules.Counter(h, "adhocd.component.stanzas", "Stanzas exchanged with external components (XEP-0114), by direction: in (sent by a component), out (written to one).")
	m.handshakes = modules.Counter(h, "adhocd.component.handshakes", "Component handshakes, by outcome: success, not-authorized, conflict, host-unknown.")
	if _, err := modules.MeterOf(h).Int64ObservableGauge("adhocd.component.connected",
		metric.WithDescription("External components connected now (XEP-0114)."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			m.mu.RLock()
			defer m.mu.RUnlock()
			o.Observe(int64(len(m.conns)))
			return nil
		})); err != nil {
		m.log.Warn("metric not created", "name", "adhocd.component.connected", "err", err)
	}
	ln, err := net.Listen("tcp", m.opts.Listen)
	if err != nil {
		return fmt.Errorf("component: listen: %w", err)
	}
	m.ln = ln
	for _, d := range m.domains {
		// Connected or not: a component's disco#info is its own.
		h.Disco().AddNodeHandler(modules.ServiceItem{JID: d})
	}
	m.wg.Add(1)
	go m.accept()
	m.log.Info("listening for components", "addr", ln.Addr().String(), "domains", m.domainNames())
	return nil
}

// Addr is the listener's address, nil when nothing listens.
func (m *Module) Addr() net.Addr {
	if m.ln == nil {
		return nil
	}
	return m.ln.Addr()
}

// Connected reports whether a component is connected for domain.
func (m *Module) Connected(domain string) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.conns[domain] != nil
}

// Stop implements modules.Module: it stops listening and closes every
// component's stream with system-shutdown, then waits for their ends
// within ctx.
func (m *Module) Stop(ctx context.Context) error {
	if m.ln == nil {
		return nil
	}
	m.mu.Lock()
	m.stopping = true
	open := make([]*conn, 0, len(m.open))
	for c := range m.open {
		open = append(open, c)
	}
	m.mu.Unlock()
	_ = m.ln.Close()
	for _, c := range open {
		c.shutdown(stream.SystemShutdown)
	}
	done := make(chan struct{})
	go func() {
		m.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		for _, c := range open {
			_ = c.nc.Close()
		}
		return fmt.Errorf("component: stop: %w", ctx.Err())
	}
}

// accept serves the listener's connections until it is closed.
func (m *Module) accept() {
	defer m.wg.Done()
	var delay time.Duration
	for {
		nc, err := m.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Temporary failures (EMFILE, …): back off instead of spinning.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			m.log.Warn("accept", "err", err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		c := newConn(m, nc)
		m.mu.Lock()
		refuse := ""
		switch {
		case m.stopping:
			refuse = "the server is shutting down"
		case m.pending >= maxPending:
			refuse = "too many components are connecting at once"
		default:
			m.pending++
			c.pending = true
			m.open[c] = struct{}{}
		}
		m.mu.Unlock()
		if refuse != "" {
			m.wg.Add(1)
			go func() {
				defer m.wg.Done()
				c.refuse(wire.StreamError(stream.ResourceConstraint, refuse))
			}()
			continue
		}
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			c.serve()
		}()
	}
}

// register makes c, whose handshake succeeded, the component of its
// domain; a domain that has one already refuses it with conflict.
func (m *Module) register(c *conn) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c.pending {
		c.pending = false
		m.pending--
	}
	if m.stopping {
		return stream.SystemShutdown
	}
	if m.conns[c.domain] != nil {
		return wire.StreamError(stream.Conflict, "a component is connected for "+c.domain+" already")
	}
	m.conns[c.domain] = c
	return nil
}

// unregister forgets c, whose stream ended.
func (m *Module) unregister(c *conn) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c.pending {
		c.pending = false
		m.pending--
	}
	if m.conns[c.domain] == c {
		delete(m.conns, c.domain)
	}
	delete(m.open, c)
}

// connOf returns the stream of domain's component, or nil.
func (m *Module) connOf(domain string) *conn {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.conns[domain]
}

// Domains implements modules.DomainHandler: the configured components'
// domains, none when nothing listens.
func (m *Module) Domains() []string { return m.domainNames() }

func (m *Module) domainNames() []string {
	out := make([]string, len(m.domains))
	for i, d := range m.domains {
		out[i] = d.Domainpart()
	}
	return out
}

// HandleStanza implements modules.DomainHandler: a stanza a local session
// sent to a component's domain, or any JID at it, is queued for the
// component's stream. While the component is not connected, IQ requests
// and messages are answered service-unavailable (type wait) and the rest is
// dropped.
func (m *Module) HandleStanza(ctx context.Context, _ jid.JID, el *wire.Element, to jid.JID) error {
	err := m.toComponent(ctx, to.Domainpart(), el)
	if err == nil {
		return nil
	}
	typ := el.Attr("type")
	switch el.Start.Name.Local {
	case "iq":
		if typ == "result" || typ == "error" {
			return nil
		}
	case "message":
		if typ == "error" {
			return nil
		}
	default:
		return nil
	}
	return err
}

// toComponent queues el for the component of domain: a stanza.Error says
// why it cannot be.
func (m *Module) toComponent(ctx context.Context, domain string, el *wire.Element) error {
	c := m.connOf(domain)
	if c == nil {
		return notConnected(domain)
	}
	if err := c.enqueue(el); err != nil {
		return err
	}
	m.stanzas.Add(ctx, 1, dirOut)
	return nil
}

// notConnected is the answer for a component's domain while no component
// serves it.
func notConnected(domain string) stanza.Error {
	return stanza.Error{Type: stanza.Wait, Condition: stanza.ServiceUnavailable,
		Text: map[string]string{"en": "the component " + domain + " is not connected"}}
}

// The metrics' attributes.
var (
	dirIn  = metric.WithAttributes(attribute.String("direction", "in"))
	dirOut = metric.WithAttributes(attribute.String("direction", "out"))
)

// outcome is the attribute of a handshake's outcome.
func outcome(o string) metric.AddOption {
	return metric.WithAttributes(attribute.String("outcome", o))
}
