package s2s

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
	"mellium.im/xmpp/stream"

	"github.com/adhocd/adhocd/internal/tokenbucket"
	"github.com/adhocd/adhocd/wire"
)

// in is a stream a remote server opened: the domains it authenticated on
// it (several may share one stream, by dialback), and what it sends.
type in struct {
	p     *Pool
	c     *conn
	local string // the header's 'to'
	from  string // the header's 'from', possibly empty
	since time.Time

	mu      sync.Mutex
	authed  map[string]string // remote domain → "external" or "dialback"
	pending bool              // counted in Pool.pending
	dbWait  int               // dialback verifications under way

	// bucket paces what the stream sends once authenticated
	// (s2s.limits.stanzas_per_second; pace).
	bucket tokenbucket.Bucket
}

// maxDialbackPending bounds the <db:result/> requests one stream may have
// waiting for their verification.
const maxDialbackPending = 8

func domainJID(d string) jid.JID {
	j, _ := jid.New("", d, "")
	return j
}

func (i *in) hasDomain(d string) bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	_, ok := i.authed[d]
	return ok
}

func (i *in) info() []Conn {
	i.mu.Lock()
	defer i.mu.Unlock()
	var list []Conn
	for d, m := range i.authed {
		list = append(list, Conn{Local: i.local, Remote: d, Inbound: true, Auth: m, TLS: i.c.tls, Since: i.since})
	}
	if len(list) == 0 {
		list = append(list, Conn{Local: i.local, Remote: i.from, Inbound: true, TLS: i.c.tls, Since: i.since})
	}
	return list
}

// accept takes a new inbound connection within the limits. A direct-TLS
// one (directTLS) is wrapped in the TLS server side, whose handshake the
// stream runs first (handshake); refused, it is closed at once, without
// the handshake that a stream error would need.
func (p *Pool) accept(nc net.Conn, directTLS bool) {
	p.mu.Lock()
	if p.closed || p.pending >= p.cfg.Limits.MaxPending || p.totalLocked() >= p.cfg.Limits.MaxConnections {
		p.mu.Unlock()
		p.m.refuse(stream.ResourceConstraint.Err)
		if directTLS {
			_ = nc.Close()
			return
		}
		c := newConn(nc, p.limits)
		_ = c.write(header("", "", streamID()))
		se := wire.StreamError(stream.ResourceConstraint, "too many server-to-server streams")
		c.close(&se)
		return
	}
	if directTLS {
		nc = tls.Server(nc, p.inboundTLS(true))
	}
	i := &in{p: p, c: newConn(nc, p.limits), since: time.Now(), authed: map[string]string{}, pending: true}
	p.pending++
	p.ins[i] = struct{}{}
	p.wg.Add(1)
	p.mu.Unlock()
	go i.serve()
}

func (i *in) serve() {
	p := i.p
	defer p.wg.Done()
	defer func() {
		// A dialback verdict may still come (authenticated): whichever
		// of the two takes pending first gives the slot back, once.
		i.mu.Lock()
		wasPending := i.pending
		i.pending = false
		i.mu.Unlock()
		p.mu.Lock()
		delete(p.ins, i)
		if wasPending {
			p.pending--
		}
		p.mu.Unlock()
	}()
	stop := context.AfterFunc(p.ctx, func() {
		se := wire.StreamError(stream.SystemShutdown, "")
		i.c.close(&se)
	})
	defer stop()
	_ = i.c.nc.SetReadDeadline(time.Now().Add(p.cfg.ConnectTimeout.D()))
	err := i.stream()
	var se stream.Error
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		i.c.close(nil)
	case errors.As(err, &se):
		p.log.Info("s2s: inbound stream closed", "from", i.from, "err", err)
		p.m.refuse(se.Err)
		i.c.close(&se)
	default:
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			e := wire.StreamError(stream.ConnectionTimeout, "")
			i.c.close(&e)
			return
		}
		p.log.Info("s2s: inbound stream failed", "from", i.from, "err", err)
		i.c.close(nil)
	}
}

// open reads the peer's header, answers it and sends the features.
func (i *in) open(restart bool) error {
	h, err := i.c.readHeader()
	if err != nil {
		if !restart {
			_ = i.c.write(header(h.to, h.from, streamID()))
		}
		return err
	}
	if restart && (h.to != i.local || h.from != i.from) {
		return wire.StreamError(stream.ImproperAddressing, "a restarted stream keeps its 'from' and 'to'")
	}
	i.c.id = streamID()
	if err := i.c.write(header(h.to, h.from, i.c.id)); err != nil {
		return err
	}
	switch {
	case h.to == "":
		return wire.StreamError(stream.ImproperAddressing, "the stream header needs 'to'")
	case !i.p.host.Served(h.to):
		return wire.StreamError(stream.HostUnknown, h.to+" is not served here")
	case h.from != "" && i.p.host.Served(h.from):
		return wire.StreamError(stream.InvalidFrom, h.from+" is served here")
	}
	i.local, i.from = h.to, h.from
	return i.c.write([]byte(i.features()))
}

// features lists what the stream offers in its state (design §5).
func (i *in) features() string {
	f := "<stream:features>"
	cfg := i.p.cfg
	if !i.c.tls {
		f += "<starttls xmlns='" + nsTLS + "'>"
		if cfg.RequireTLS {
			f += "<required/>"
		}
		f += "</starttls>"
	}
	if i.c.tls && i.authedCount() == 0 && i.externalOK() {
		f += "<mechanisms xmlns='" + nsSASL + "'><mechanism>EXTERNAL</mechanism></mechanisms>"
	}
	if !cfg.RequireValidCertificates && (i.c.tls || !cfg.RequireTLS) {
		f += "<dialback xmlns='" + NSDialbackFeature + "'><errors/></dialback>"
	}
	return f + "</stream:features>"
}

// externalOK reports whether the peer's certificate verifies for the
// header's 'from' (XEP-0178 §3).
func (i *in) externalOK() bool {
	tc, ok := i.c.nc.(*tls.Conn)
	if !ok || i.from == "" {
		return false
	}
	return i.p.verifier.VerifyPeer(i.from, tc.ConnectionState()).Valid()
}

func (i *in) authenticated(domain, method string) {
	i.mu.Lock()
	i.authed[domain] = method
	wasPending := i.pending
	i.pending = false
	i.mu.Unlock()
	if wasPending {
		i.p.mu.Lock()
		i.p.pending--
		i.p.mu.Unlock()
	}
	// idle_timeout bounds the stream from now on, connect_timeout no
	// longer: a dialback verdict comes while the reader waits, and that
	// wait must not be left without a deadline.
	_ = i.c.nc.SetReadDeadline(time.Now().Add(i.p.cfg.IdleTimeout.D()))
	i.p.m.authenticated(domain, dirIn, method, true)
	i.p.log.Info("s2s: inbound stream authenticated", "local", i.local, "remote", domain, "auth", method, "tls", i.c.tls)
}

func (i *in) stream() error {
	if err := i.handshake(); err != nil {
		return err
	}
	if err := i.open(false); err != nil {
		return err
	}
	for {
		if i.authedCount() > 0 {
			_ = i.c.nc.SetReadDeadline(time.Now().Add(i.p.cfg.IdleTimeout.D()))
		}
		el, err := i.c.dec.Next()
		if err != nil {
			return err
		}
		if err := i.handle(el); err != nil {
			return err
		}
		if i.authedCount() > 0 {
			// The pause comes before the idle deadline is set again, at
			// the top of the loop: a paced peer does not look idle.
			i.pace()
		}
	}
}

// maxPause bounds one sleep of a paced stream.
const maxPause = time.Second

// pace charges the element just read to the stream's bucket
// (s2s.limits.stanzas_per_second and burst_stanzas; 0: no pacing) and, over
// the rate, sleeps until the bucket is out of debt, in sleeps of at most
// maxPause: the peer's next stanzas wait in its TCP buffer, none is lost.
// It returns early when the pool closes.
func (i *in) pace() {
	l := i.p.cfg.Limits
	d := i.bucket.Take(time.Now(), 1, l.StanzasPerSecond, l.BurstStanzas)
	for d > 0 {
		t := time.NewTimer(min(d, maxPause))
		select {
		case <-i.p.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		d = i.bucket.Take(time.Now(), 0, l.StanzasPerSecond, l.BurstStanzas)
	}
}

// domainFull reports whether one more stream with domain would pass
// s2s.limits.max_connections_per_domain (streams both ways count).
func (p *Pool) domainFull(domain string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.countLocked(domain) >= p.cfg.Limits.MaxConnectionsPerDomain
}

// authedCount is the number of domains authenticated on the stream; the
// map is written by the dialback goroutines, under i.mu.
func (i *in) authedCount() int {
	i.mu.Lock()
	defer i.mu.Unlock()
	return len(i.authed)
}

func (i *in) handle(el *wire.Element) error {
	name := el.Start.Name
	switch {
	case name == xml.Name{Space: nsTLS, Local: "starttls"}:
		if i.c.tls {
			return wire.StreamError(stream.PolicyViolation, "TLS is already on")
		}
		// TLS comes before authentication (RFC 6120 §5.3.1); a dialback
		// verdict written while the connection is swapped for its TLS
		// one would also land on the wrong layer.
		i.mu.Lock()
		started := i.dbWait > 0 || len(i.authed) > 0
		i.mu.Unlock()
		if started {
			return wire.StreamError(stream.PolicyViolation, "STARTTLS after dialback began")
		}
		if err := i.c.write([]byte("<proceed xmlns='" + nsTLS + "'/>")); err != nil {
			return err
		}
		tc := tls.Server(i.c.nc, i.p.inboundTLS(false))
		ctx, cancel := context.WithTimeout(i.p.ctx, i.p.cfg.ConnectTimeout.D())
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			_ = i.c.nc.Close()
			return fmt.Errorf("s2s: STARTTLS: %w", err)
		}
		i.c.upgrade(tc)
		return i.open(true)
	case name == xml.Name{Space: nsSASL, Local: "auth"}:
		return i.external(el)
	case DialbackKindOf(name) != 0:
		return i.dialbackIn(el)
	case name.Space == NSServer && (name.Local == "message" || name.Local == "presence" || name.Local == "iq"):
		return i.stanza(el)
	}
	if cond, ok := isStreamError(el); ok {
		i.p.log.Info("s2s: stream error from the peer", "from", i.from, "condition", cond)
		return io.EOF
	}
	return wire.StreamError(stream.UnsupportedStanzaType, "<"+name.Local+"/> is not a stanza of jabber:server")
}

func (i *in) saslFailure() error {
	i.p.m.authenticated(i.from, dirIn, methodExternal, false)
	return i.c.write([]byte("<failure xmlns='" + nsSASL + "'><not-authorized/></failure>"))
}

// external answers SASL EXTERNAL: the certificate must verify for the
// header's 'from', the authorization identity, if any, name it, and the
// access lists allow the domain (as for dialback).
func (i *in) external(el *wire.Element) error {
	if !i.c.tls || i.authedCount() > 0 || el.Attr("mechanism") != "EXTERNAL" || !i.externalOK() || !i.p.host.Allowed(i.from) {
		return i.saslFailure()
	}
	text := strings.TrimSpace(elementText(el))
	if text != "" && text != "=" {
		b, err := base64.StdEncoding.DecodeString(text)
		if err != nil || string(b) != i.from {
			return i.saslFailure()
		}
	}
	if i.p.domainFull(i.from) {
		return wire.StreamError(stream.ResourceConstraint, "too many streams with "+i.from)
	}
	if err := i.c.write([]byte("<success xmlns='" + nsSASL + "'/>")); err != nil {
		return err
	}
	i.authenticated(i.from, "external")
	i.c.dec.Restart()
	return i.open(true)
}

// dialbackIn answers <db:result/> and <db:verify/> requests (XEP-0220).
func (i *in) dialbackIn(el *wire.Element) error {
	d, err := ParseDialback(el)
	if err != nil {
		return wire.StreamError(stream.BadFormat, err.Error())
	}
	if d.Type != DialbackRequest {
		i.p.log.Debug("s2s: unsolicited dialback answer dropped", "from", i.from, "kind", d.Kind)
		return nil
	}
	if d.Kind == DialbackVerify {
		// We are the authoritative server: is the key ours?
		t := DialbackInvalid
		if i.p.host.Served(d.To) && i.p.keyer.Verify(d.From, d.To, d.ID, d.Key) {
			t = DialbackValid
		}
		b, err := Dialback{Kind: DialbackVerify, From: d.To, To: d.From, ID: d.ID, Type: t}.Marshal(false)
		if err != nil {
			return err
		}
		return i.c.write(b)
	}
	answer := func(t DialbackType, se *stanza.Error) error {
		b, err := Dialback{Kind: DialbackResult, From: d.To, To: d.From, Type: t, Error: se}.Marshal(false)
		if err != nil {
			return err
		}
		return i.c.write(b)
	}
	refuse := func(se *stanza.Error) error {
		i.p.m.authenticated(d.From, dirIn, methodDialback, false)
		i.p.m.refuse(string(se.Condition))
		return answer(DialbackError, se)
	}
	switch {
	case !i.p.host.Served(d.To) || (i.local != "" && d.To != i.local):
		return refuse(&stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound})
	case !i.p.host.Allowed(d.From):
		return refuse(&stanza.Error{Type: stanza.Cancel, Condition: stanza.Forbidden})
	case !i.c.tls && i.p.cfg.RequireTLS, i.p.cfg.RequireValidCertificates:
		return refuse(&stanza.Error{Type: stanza.Cancel, Condition: stanza.PolicyViolation})
	case !i.hasDomain(d.From) && i.p.domainFull(d.From):
		return refuse(&stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint})
	}
	i.mu.Lock()
	if i.dbWait >= maxDialbackPending {
		i.mu.Unlock()
		return refuse(&stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint})
	}
	i.dbWait++
	i.mu.Unlock()
	id := i.c.id
	i.p.wg.Add(1)
	go func() {
		defer i.p.wg.Done()
		defer func() { i.mu.Lock(); i.dbWait--; i.mu.Unlock() }()
		ctx, cancel := context.WithTimeout(i.p.ctx, i.p.cfg.ConnectTimeout.D())
		valid, err := i.p.verify(ctx, d.To, d.From, id, d.Key)
		cancel()
		switch {
		case err != nil:
			i.p.log.Info("s2s: dialback verification failed", "from", d.From, "err", err)
			cond := stanza.RemoteServerTimeout
			if errors.Is(err, errNoStream) {
				cond = stanza.RemoteServerNotFound
			}
			i.p.m.authenticated(d.From, dirIn, methodDialback, false)
			_ = answer(DialbackError, &stanza.Error{Type: errType(cond), Condition: cond})
		case valid:
			i.authenticated(d.From, "dialback")
			_ = answer(DialbackValid, nil)
		default:
			i.p.m.authenticated(d.From, dirIn, methodDialback, false)
			i.p.m.refuse(stream.NotAuthorized.Err)
			_ = answer(DialbackInvalid, nil)
			se := wire.StreamError(stream.NotAuthorized, "the dialback key is invalid")
			i.c.close(&se)
		}
	}()
	return nil
}

// stanza checks a stanza's addresses against the stream (no spoofing, no
// relay) and routes it.
func (i *in) stanza(el *wire.Element) error {
	fromAttr, toAttr := el.Attr("from"), el.Attr("to")
	if fromAttr == "" || toAttr == "" {
		return wire.StreamError(stream.ImproperAddressing, "a stanza between servers needs 'from' and 'to'")
	}
	from, err := jid.Parse(fromAttr)
	if err != nil {
		return wire.StreamError(stream.InvalidFrom, "'from' is not a JID")
	}
	if !i.hasDomain(from.Domainpart()) {
		return wire.StreamError(stream.InvalidFrom, from.Domainpart()+" is not authenticated on this stream")
	}
	to, err := jid.Parse(toAttr)
	if err != nil {
		return wire.StreamError(stream.ImproperAddressing, "'to' is not a JID")
	}
	if !i.p.host.Served(to.Domainpart()) {
		return wire.StreamError(stream.HostUnknown, to.Domainpart()+" is not served here")
	}
	wire.SwapNS(el, NSServer, stanza.NSClient)
	i.p.m.stanza(from.Domainpart(), dirIn, 1)
	if err := i.p.host.Receive(i.p.ctx, from, to, el); err != nil {
		i.p.log.Warn("s2s: inbound stanza not routed", "from", fromAttr, "to", toAttr, "err", err)
	}
	return nil
}
