package s2s

import (
	"cmp"
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/otel/metric"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/wire"
)

// Host is what the pool needs of the server: where the stanzas it reads
// go, where the ones it could not deliver are answered, and which domains
// are this server's.
type Host interface {
	// Receive routes a stanza from a remote domain (router.Router.Receive).
	Receive(ctx context.Context, from, to jid.JID, el *wire.Element) error
	// Bounce answers a stanza for a remote domain that could not be
	// delivered (router.Router.Bounce).
	Bounce(el *wire.Element, se stanza.Error)
	// Served reports whether domain is the server's or one of its
	// services': the only domains a remote server may address, and the
	// only ones stanzas are sent from.
	Served(domain string) bool
	// Allowed reports whether the access lists let this server federate
	// with domain (edit-blacklist, edit-whitelist).
	Allowed(domain string) bool
}

// Options configure a Pool.
type Options struct {
	Config config.S2S
	Limits Limits
	Host   Host
	// Certificate is what this server presents, at each handshake.
	Certificate func() (*tls.Certificate, error)
	// DNS answers the lookups of remote domains; nil: the system's.
	DNS SRVLookuper
	// Secret is the dialback secret (XEP-0185); nil: a random one.
	Secret []byte
	Log    *slog.Logger
	// Meter makes the pool's instruments (metrics.go); nil: none recorded.
	Meter metric.Meter
}

// Pool holds the server's federation: the outbound stream to each remote
// domain, with its queue, and the inbound streams remote servers opened.
// It implements router.Remote.
type Pool struct {
	cfg      config.S2S
	limits   Limits
	host     Host
	log      *slog.Logger
	resolver *Resolver
	keyer    *Keyer
	verifier *CertVerifier
	cert     func() (*tls.Certificate, error)
	m        *instruments

	ctx    context.Context // ends at Close: every stream's
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	outs    map[pair]*out
	ins     map[*in]struct{}
	pending int                // inbound streams not yet authenticated
	failed  map[string]failure // remote domain → until when it is bounced
	lns     []net.Listener
	closed  bool
}

// pair is the key of an outbound stream: the local domain it speaks for
// and the remote one (RFC 6120 §2.5, XEP-0220: authentication is per
// domain pair).
type pair struct{ local, remote string }

// failure is a remote domain that could not be reached, bounced at once
// until it expires.
type failure struct {
	until time.Time
	delay time.Duration
	cond  stanza.Condition
}

// New returns a pool; Listen starts accepting.
func New(o Options) (*Pool, error) {
	r, err := NewResolver(ResolverOptions{Hosts: o.Config.Hosts, DNS: o.DNS})
	if err != nil {
		return nil, err
	}
	secret := o.Secret
	if len(secret) == 0 {
		secret = RandomSecret()
	}
	k, err := NewKeyer(secret)
	if err != nil {
		return nil, err
	}
	v, err := NewCertVerifier(o.Config.CAFile)
	if err != nil {
		return nil, err
	}
	log := o.Log
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Pool{cfg: o.Config, limits: o.Limits, host: o.Host, log: log, resolver: r, keyer: k, verifier: v, cert: o.Certificate,
		ctx: ctx, cancel: cancel, outs: map[pair]*out{}, ins: map[*in]struct{}{}, failed: map[string]failure{}}
	if p.m, err = newInstruments(o.Meter, o.Config.MetricsDomains, p.List); err != nil {
		log.Warn("s2s: metrics not created", "err", err)
		p.m, _ = newInstruments(nil, o.Config.MetricsDomains, p.List)
	}
	return p, nil
}

// Listen accepts remote servers' streams on ln until Close.
func (p *Pool) Listen(ln net.Listener) { p.listen(ln, false) }

// listen accepts on ln until Close; directTLS: the connections begin with
// TLS (ListenDirectTLS).
func (p *Pool) listen(ln net.Listener, directTLS bool) {
	p.mu.Lock()
	p.lns = append(p.lns, ln)
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				if !errors.Is(err, net.ErrClosed) {
					p.log.Error("s2s: accept", "err", err)
				}
				return
			}
			p.accept(nc, directTLS)
		}
	}()
}

// HandleStanza queues el, from the local JID from, for the remote JID to
// (router.Remote). It never waits on the network: what fails later is
// answered through Host.Bounce.
func (p *Pool) HandleStanza(ctx context.Context, from jid.JID, el *wire.Element, to jid.JID) (err error) {
	remote := to.Domainpart()
	defer func() { p.m.bounceErr(remote, err) }()
	if !p.host.Allowed(remote) {
		return stanza.Error{Type: stanza.Cancel, Condition: stanza.Forbidden, By: from.Domain(),
			Text: map[string]string{"en": "the server's access lists do not allow " + remote}}
	}
	b, err := encode(from, el, to)
	if err != nil {
		return fmt.Errorf("s2s: encode: %w", err)
	}
	if len(b) > p.cfg.Limits.MaxStanzaBytes {
		return stanza.Error{Type: stanza.Modify, Condition: stanza.PolicyViolation, By: from.Domain(),
			Text: map[string]string{"en": "the stanza is larger than remote servers are sent"}}
	}
	k := pair{local: from.Domainpart(), remote: remote}
	for range 2 {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return stanza.Error{Type: stanza.Wait, Condition: stanza.RemoteServerTimeout, By: from.Domain(),
				Text: map[string]string{"en": "the server is shutting down"}}
		}
		if f, ok := p.failed[remote]; ok {
			if time.Now().Before(f.until) {
				p.mu.Unlock()
				return stanza.Error{Type: errType(f.cond), Condition: f.cond, By: from.Domain()}
			}
		}
		o := p.outs[k]
		if o == nil {
			if p.countLocked(remote) >= p.cfg.Limits.MaxConnectionsPerDomain || p.totalLocked() >= p.cfg.Limits.MaxConnections {
				p.mu.Unlock()
				return stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint, By: from.Domain(),
					Text: map[string]string{"en": "too many server-to-server streams"}}
			}
			o = newOut(p, k)
			p.outs[k] = o
			p.wg.Add(1)
			go o.run()
		}
		p.mu.Unlock()
		err := o.enqueue(queued{el: el, b: b})
		if !errors.Is(err, errClosed) {
			return err
		}
	}
	return stanza.Error{Type: stanza.Wait, Condition: stanza.RemoteServerTimeout, By: from.Domain()}
}

func errType(c stanza.Condition) stanza.ErrorType {
	if c == stanza.RemoteServerNotFound {
		return stanza.Cancel
	}
	return stanza.Wait
}

// encode writes el for the wire, with from and to set, in no namespace of
// its own: the peer reads it in jabber:server. It copies el's start, which
// the router may share between stanzas.
func encode(from jid.JID, el *wire.Element, to jid.JID) ([]byte, error) {
	st := el.Start.Copy()
	st.Attr = slices.DeleteFunc(st.Attr, func(a xml.Attr) bool {
		return a.Name.Space == "" && (a.Name.Local == "from" || a.Name.Local == "to")
	})
	st.Attr = append(st.Attr, xml.Attr{Name: xml.Name{Local: "from"}, Value: from.String()}, xml.Attr{Name: xml.Name{Local: "to"}, Value: to.String()})
	o := wire.NewOutput()
	if err := o.EncodeElement(&wire.Element{Start: st, Inner: el.Inner}, stanza.NSClient); err != nil {
		return nil, err
	}
	b := slices.Clone(o.Bytes())
	o.Release()
	return b, nil
}

// countLocked is the number of streams with remote, both ways.
func (p *Pool) countLocked(remote string) int {
	n := 0
	for k := range p.outs {
		if k.remote == remote {
			n++
		}
	}
	for i := range p.ins {
		if i.hasDomain(remote) {
			n++
		}
	}
	return n
}

func (p *Pool) totalLocked() int { return len(p.outs) + len(p.ins) }

// fail records that remote could not be reached: its stanzas are bounced
// at once for the retry delay, doubled at each new failure up to five
// minutes.
func (p *Pool) fail(remote string, cond stanza.Condition) {
	p.mu.Lock()
	defer p.mu.Unlock()
	d := p.cfg.RetryDelay.D()
	if f, ok := p.failed[remote]; ok && time.Since(f.until) < 5*time.Minute {
		d = min(2*f.delay, 5*time.Minute)
	}
	if d <= 0 {
		return
	}
	p.failed[remote] = failure{until: time.Now().Add(d), delay: d, cond: cond}
}

func (p *Pool) succeed(remote string) {
	p.mu.Lock()
	delete(p.failed, remote)
	p.mu.Unlock()
}

// removeOut forgets o when it is still the stream of its pair.
func (p *Pool) removeOut(o *out) {
	p.mu.Lock()
	if p.outs[o.key] == o {
		delete(p.outs, o.key)
	}
	p.mu.Unlock()
}

// Conn describes one stream for the operator (the s2s command).
type Conn struct {
	Local, Remote string
	Inbound       bool
	Auth          string // "external", "dialback", or "" while negotiating
	TLS           bool
	Since         time.Time
	Queued        int
}

// List returns the streams, outbound first, by remote domain.
func (p *Pool) List() []Conn {
	p.mu.Lock()
	outs := make([]*out, 0, len(p.outs))
	for _, o := range p.outs {
		outs = append(outs, o)
	}
	ins := make([]*in, 0, len(p.ins))
	for i := range p.ins {
		ins = append(ins, i)
	}
	p.mu.Unlock()
	var list []Conn
	for _, o := range outs {
		list = append(list, o.info())
	}
	for _, i := range ins {
		list = append(list, i.info()...)
	}
	slices.SortStableFunc(list, func(a, b Conn) int {
		return cmp.Or(cmp.Compare(b2i(a.Inbound), b2i(b.Inbound)), cmp.Compare(a.Remote, b.Remote))
	})
	return list
}

// b2i orders false before true.
func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// flush waits, within ctx, for the established streams to write what is
// queued for them (the unavailable presence of the clients that the
// shutdown closed just before).
func (p *Pool) flush(ctx context.Context) {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		waiting := false
		p.mu.Lock()
		for _, o := range p.outs {
			o.mu.Lock()
			if o.c != nil && len(o.q) > 0 {
				waiting = true
			}
			o.mu.Unlock()
		}
		p.mu.Unlock()
		if !waiting {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Close ends every stream: the queues are bounced, the streams closed
// with </stream:stream> (inbound ones with system-shutdown), within ctx.
func (p *Pool) Close(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	lns := p.lns
	p.mu.Unlock()
	for _, ln := range lns {
		_ = ln.Close()
	}
	p.flush(ctx)
	p.cancel()
	p.m.stop()
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("s2s: close: %w", ctx.Err())
	}
}
