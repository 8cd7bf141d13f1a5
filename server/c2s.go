package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
	"mellium.im/xmpp/stream"

	"github.com/adhocd/adhocd/auth"
	"github.com/adhocd/adhocd/wire"
)

// Namespaces of the stream layer (RFC 6120).
const (
	nsStream    = "http://etherx.jabber.org/streams"
	nsTLS       = "urn:ietf:params:xml:ns:xmpp-tls"
	nsSASL      = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsBind      = "urn:ietf:params:xml:ns:xmpp-bind"
	nsSession   = "urn:ietf:params:xml:ns:xmpp-session"
	nsXML       = "http://www.w3.org/XML/1998/namespace"
	nsCB        = "urn:xmpp:sasl-cb:0"
	nsRosterVer = "urn:xmpp:features:rosterver"
)

// conn is one client-to-server connection: stream negotiation (STARTTLS, SASL,
// resource binding) and then the stanzas of a bound session.
type conn struct {
	srv  *Server
	log  *slog.Logger
	raw  net.Conn // the TCP connection
	nc   net.Conn // raw, or the TLS connection over it
	tls  *tls.ConnectionState
	dec  *wire.Decoder
	lang string
	// ws: the stream is framed as XMPP over WebSocket (RFC 7395): <open/>
	// and <close/> instead of the stream root, one element per message,
	// no STARTTLS (the transport's TLS, if any, is the HTTP connection's).
	ws bool

	wmu     sync.Mutex
	outOpen bool // our stream header for the current stream is sent
	closed  bool // our stream is closed; nothing more is written

	// ctx is the context of the stream's handlers; cancel ends it.
	ctx    context.Context
	cancel context.CancelFunc

	// The outbound queue of the bound session (outbound.go).
	qmu sync.Mutex
	q   outbound

	authFailures int
	cbRefused    bool    // a -PLUS attempt asked for a binding type we lack
	user         string  // localpart once authenticated
	addr         jid.JID // full JID once bound
	addrName     string  // addr.String(), which allocates on every call
	bound        atomic.Bool
	connected    time.Time
	lastActive   atomic.Int64 // unix nanoseconds of the last stanza received
	stanzas      atomic.Uint64
	// values are what modules keep for the session (modules.Session).
	values sync.Map

	// Presence state, guarded by pmu.
	pmu        sync.Mutex
	available  bool
	priority   int
	presence   *wire.Element       // the last broadcast presence
	interested bool                // requested the roster (receives pushes)
	directed   map[string]struct{} // full JIDs sent directed presence
}

func newConn(srv *Server, nc net.Conn) *conn {
	c := &conn{
		srv:       srv,
		raw:       nc,
		nc:        nc,
		connected: time.Now(),
		lang:      "en",
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.log = srv.log.With("remote", nc.RemoteAddr().String())
	c.setIO(nc)
	return c
}

func (c *conn) setIO(nc net.Conn) {
	l := c.srv.limits()
	c.nc = nc
	c.dec = wire.NewDecoder(nc, l.MaxStanzaBytes, l.MaxDepth, l.MaxAttributes)
	if c.ws {
		c.dec.Framed = true
		c.dec.Restart()
	}
}

// host returns the client's IP address.
func (c *conn) host() string { return hostOf(c.raw.RemoteAddr()) }

func hostOf(a net.Addr) string {
	if h, _, err := net.SplitHostPort(a.String()); err == nil {
		return h
	}
	return a.String()
}

// JID returns the bound full JID, or the zero JID before binding.
func (c *conn) JID() jid.JID { return c.addr }

// serve runs the connection until the client leaves, an error ends it or the
// server shuts it down.
// The context handed to every handler ends when the stream does: when run
// returns, or as soon as another goroutine closes the stream (closeWith),
// so that work done for the client stops when the client goes.
func (c *conn) serve() {
	defer c.cancel()
	_ = c.raw.SetReadDeadline(c.connected.Add(c.srv.limits().PreAuthTimeout.D()))
	err := c.run(c.ctx)
	c.finish(err)
}

func (c *conn) run(ctx context.Context) error {
	if err := c.openStream(); err != nil {
		return err
	}
	idle := c.srv.limits().IdleTimeout.D()
	// established stays true once the session was bound, even after an
	// administrator unbinds it: a closing stream never negotiates again.
	established := false
	for {
		if established {
			// Between stanzas: the idle timeout, or none.
			var d time.Time
			if idle > 0 {
				d = time.Now().Add(idle)
			}
			_ = c.raw.SetReadDeadline(d)
		}
		el, err := c.dec.Next()
		if err != nil {
			return err
		}
		c.lastActive.Store(time.Now().UnixNano())
		if established {
			if err := c.srv.route(ctx, c, el); err != nil {
				return err
			}
			continue
		}
		if err := c.negotiate(ctx, el); err != nil {
			return err
		}
		if c.bound.Load() {
			established = true
			// Within a stanza: limits.stanza_timeout to finish it.
			c.dec.StanzaStarted = func() {
				_ = c.raw.SetReadDeadline(time.Now().Add(c.srv.limits().StanzaTimeout.D()))
			}
		}
	}
}

// openStream reads the client's stream header, checks it against RFC 6120
// §4.9.3 and answers with ours and the features of the current stream state.
func (c *conn) openStream() error {
	hdr, err := c.dec.StreamHeader()
	if err != nil {
		return err
	}
	var to, from, version, ns string
	for _, a := range hdr.Attr {
		switch {
		case a.Name.Space == "" && a.Name.Local == "to":
			to = a.Value
		case a.Name.Space == "" && a.Name.Local == "from":
			from = a.Value
		case a.Name.Space == "" && a.Name.Local == "version":
			version = a.Value
		case a.Name.Space == "" && a.Name.Local == "xmlns":
			ns = a.Value
		case a.Name.Space == nsXML && a.Name.Local == "lang":
			c.lang = a.Value
		}
	}
	if f, err := jid.Parse(from); from != "" && (err != nil || f.Domain().String() != c.srv.domain.String()) {
		from = ""
	}
	if err := c.writeHeader(from); err != nil {
		return err
	}
	switch {
	case c.ws && hdr.Name != xml.Name{Space: wire.NSFraming, Local: "open"}:
		return wire.StreamError(stream.BadFormat, "a WebSocket stream begins with <open xmlns='"+wire.NSFraming+"'/> (RFC 7395)")
	case c.ws:
	case hdr.Name.Local != "stream":
		return wire.StreamError(stream.BadFormat, "the root element must be <stream:stream>")
	case hdr.Name.Space != nsStream:
		return wire.StreamError(stream.InvalidNamespace, "the stream namespace must be "+nsStream)
	case ns != stanza.NSClient:
		return wire.StreamError(stream.InvalidNamespace, "the content namespace must be jabber:client")
	}
	if to != "" {
		t, err := jid.Parse(to)
		if err != nil || !t.Equal(c.srv.domain) {
			return wire.StreamError(stream.HostUnknown, "this server serves "+c.srv.domain.String())
		}
	}
	if major, _, ok := strings.Cut(version, "."); !ok || major != "1" {
		return wire.StreamError(stream.UnsupportedVersion, "XMPP 1.0 is required")
	}
	return c.writeRaw(c.features())
}

func (c *conn) writeHeader(to string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.outOpen = true
	return c.writeLocked(c.header(to))
}

// header is our stream header, addressed to to if it is set: the stream's
// root on TCP, the <open/> element over WebSocket (RFC 7395 §3.3.2).
func (c *conn) header(to string) string {
	var b strings.Builder
	if c.ws {
		b.WriteString(`<open xmlns='` + wire.NSFraming + `' version='1.0' xml:lang='en' id='`)
	} else {
		b.WriteString(`<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0' xml:lang='en' id='`)
	}
	b.WriteString(newID())
	b.WriteString(`' from='`)
	xml.EscapeText(&b, []byte(c.srv.domain.String()))
	if to != "" {
		b.WriteString(`' to='`)
		xml.EscapeText(&b, []byte(to))
	}
	if c.ws {
		b.WriteString(`'/>`)
	} else {
		b.WriteString(`'>`)
	}
	return b.String()
}

// streamPrefix is what a top-level element with the stream prefix
// (features, error) declares: nothing on TCP, where the stream root binds
// it, and the prefix itself over WebSocket, where each message stands alone.
func (c *conn) streamPrefix() string {
	if c.ws {
		return ` xmlns:stream='` + nsStream + `'`
	}
	return ""
}

// stanzaNS is what a stanza written as text declares: nothing on TCP, where
// jabber:client is the stream's default namespace, jabber:client over
// WebSocket.
func (c *conn) stanzaNS() string {
	if c.ws {
		return ` xmlns='` + stanza.NSClient + `'`
	}
	return ""
}

// rootNS is the default namespace outside the elements written: the
// stream's on TCP, none over WebSocket.
func (c *conn) rootNS() string {
	if c.ws {
		return ""
	}
	return stanza.NSClient
}

// features lists the stream features for the current state (RFC 6120 §4.3.2).
func (c *conn) features() string {
	var b strings.Builder
	b.WriteString("<stream:features" + c.streamPrefix() + ">")
	switch {
	case c.user != "":
		b.WriteString(`<bind xmlns='` + nsBind + `'/><session xmlns='` + nsSession + `'><optional/></session><ver xmlns='` + nsRosterVer + `'/>`)
	default:
		if c.tls == nil && c.srv.tlsConfig != nil && !c.ws {
			b.WriteString(`<starttls xmlns='` + nsTLS + `'>`)
			if c.srv.cfg.C2S.RequireTLS {
				b.WriteString(`<required/>`)
			}
			b.WriteString(`</starttls>`)
		}
		if c.tls != nil || !c.srv.cfg.C2S.RequireTLS || c.ws {
			b.WriteString(`<mechanisms xmlns='` + nsSASL + `'>`)
			for _, m := range c.srv.auth.Mechanisms(c.tls) {
				b.WriteString("<mechanism>" + m + "</mechanism>")
			}
			b.WriteString(`</mechanisms>`)
			if types := c.srv.auth.ChannelBindingTypes(c.tls); len(types) > 0 {
				b.WriteString(`<sasl-channel-binding xmlns='` + nsCB + `'>`)
				for _, t := range types {
					b.WriteString(`<channel-binding type='` + t + `'/>`)
				}
				b.WriteString(`</sasl-channel-binding>`)
			}
		}
	}
	b.WriteString("</stream:features>")
	return b.String()
}

// negotiate handles one element before the session is bound.
func (c *conn) negotiate(ctx context.Context, el *wire.Element) error {
	name := el.Start.Name
	switch {
	case name == xml.Name{Space: nsTLS, Local: "starttls"}:
		return c.startTLS(ctx)
	case name == xml.Name{Space: nsSASL, Local: "auth"}:
		return c.authenticate(ctx, el)
	case name.Space == nsSASL && (name.Local == "response" || name.Local == "abort"):
		return c.saslFailure(auth.MalformedRequest, "no SASL exchange is in progress")
	case wire.IsStanza(name):
		if c.user == "" {
			return wire.StreamError(stream.NotAuthorized, "authenticate first")
		}
		if name.Local == "iq" {
			return c.bindIQ(ctx, el)
		}
		return wire.StreamError(stream.NotAuthorized, "bind a resource first")
	case name.Space != stanza.NSClient && name.Space != nsTLS && name.Space != nsSASL:
		return wire.StreamError(stream.InvalidNamespace, fmt.Sprintf("unexpected namespace %q", name.Space))
	}
	return wire.StreamError(stream.UnsupportedStanzaType, fmt.Sprintf("unexpected element <%s/>", name.Local))
}

// startTLS upgrades the connection (RFC 6120 §5.4). Bytes that arrived after
// <starttls/> and before <proceed/> are a command-injection attempt: the
// stream is closed instead.
func (c *conn) startTLS(ctx context.Context) error {
	if c.tls != nil || c.user != "" {
		return wire.StreamError(stream.PolicyViolation, "TLS is already negotiated")
	}
	if c.srv.tlsConfig == nil || c.ws {
		// Over WebSocket, TLS is the HTTP connection's (RFC 7395 §3.6).
		if err := c.writeRaw(`<failure xmlns='` + nsTLS + `'/>`); err != nil {
			return err
		}
		return io.EOF
	}
	if c.dec.Buffered() > 0 {
		return wire.StreamError(stream.PolicyViolation, "data sent after <starttls/> before the TLS handshake")
	}
	if err := c.writeRaw(`<proceed xmlns='` + nsTLS + `'/>`); err != nil {
		return err
	}
	tc := tls.Server(c.raw, c.srv.tlsConfig)
	hctx, cancel := context.WithTimeout(ctx, c.srv.limits().PreAuthTimeout.D())
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		c.closeConn()
		return fmt.Errorf("tls handshake: %w", err)
	}
	st := tc.ConnectionState()
	c.wmu.Lock()
	c.tls = &st
	c.setIO(tc)
	c.outOpen = false
	c.wmu.Unlock()
	return c.openStream()
}

// authenticate runs one SASL exchange (RFC 6120 §6.4).
func (c *conn) authenticate(ctx context.Context, el *wire.Element) error {
	if c.user != "" {
		return wire.StreamError(stream.PolicyViolation, "already authenticated")
	}
	if c.tls == nil && c.srv.cfg.C2S.RequireTLS && c.srv.tlsConfig != nil && !c.ws {
		return c.saslFailure(auth.EncryptionRequired, "negotiate STARTTLS first")
	}
	if c.srv.authBackoff.blocked(c.host(), c.srv.limits()) {
		c.srv.metrics.Login(el.Attr("mechanism"), auth.TemporaryAuthFailure)
		return c.saslFailure(auth.TemporaryAuthFailure, "too many failed logins from your address: try again later")
	}
	mech := el.Attr("mechanism")
	ex, err := c.srv.auth.Start(mech, auth.Stream{TLS: c.tls, CBTypeRefused: c.cbRefused})
	if err != nil {
		return c.authFailed(err, mech)
	}
	in, err := saslData(el)
	if err != nil {
		return c.authFailed(err, mech)
	}
	for {
		if in == nil {
			// No initial response: send an empty challenge (RFC 6120 §6.4.2).
			if err := c.writeRaw(`<challenge xmlns='` + nsSASL + `'/>`); err != nil {
				return err
			}
		} else {
			out, done, err := ex.Step(ctx, in)
			if err != nil {
				return c.authFailed(err, mech)
			}
			if done {
				c.user = ex.Username()
				c.log = c.log.With("user", c.user)
				c.srv.metrics.Login(mech, "success")
				c.log.Info("authenticated", "mechanism", mech)
				// Additional data with success, or an empty element when there is
				// none (RFC 6120 §6.4.6: "=" is only the client's empty response).
				if err := c.writeRaw(`<success xmlns='` + nsSASL + `'>` + base64.StdEncoding.EncodeToString(out) + `</success>`); err != nil {
					return err
				}
				c.dec.Restart()
				return c.openStream()
			}
			if err := c.writeRaw(`<challenge xmlns='` + nsSASL + `'>` + encodeSASL(out) + `</challenge>`); err != nil {
				return err
			}
		}
		next, err := c.dec.Next()
		if err != nil {
			return err
		}
		switch next.Start.Name {
		case xml.Name{Space: nsSASL, Local: "response"}:
			if in, err = saslData(next); err != nil {
				return c.authFailed(err, mech)
			}
			if in == nil {
				in = []byte{}
			}
		case xml.Name{Space: nsSASL, Local: "abort"}:
			return c.authFailed(&auth.Failure{Condition: auth.Aborted}, mech)
		default:
			return c.authFailed(&auth.Failure{Condition: auth.MalformedRequest, Text: "expected <response/> or <abort/>"}, mech)
		}
	}
}

// saslData decodes the base64 content of <auth/> or <response/>: nil when
// empty (no data), empty for "=" (empty data), RFC 6120 §6.4.2.
func saslData(el *wire.Element) ([]byte, error) {
	s := strings.TrimSpace(wire.TextOf(append([]xml.Token{el.Start}, el.Inner...)))
	switch s {
	case "":
		return nil, nil
	case "=":
		return []byte{}, nil
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, &auth.Failure{Condition: auth.IncorrectEncoding, Err: err}
	}
	return b, nil
}

func encodeSASL(b []byte) string {
	if len(b) == 0 {
		return "="
	}
	return base64.StdEncoding.EncodeToString(b)
}

// authFailed answers a failed exchange and closes the stream with
// policy-violation once limits.max_auth_failures is reached.
func (c *conn) authFailed(err error, mech string) error {
	var f *auth.Failure
	if !errors.As(err, &f) {
		return err
	}
	if errors.Is(err, auth.ErrChannelBindingType) {
		c.cbRefused = true
	}
	if f.Condition == auth.NotAuthorized {
		c.srv.authBackoff.failed(c.host(), c.srv.limits())
	}
	c.srv.metrics.Login(mech, f.Condition)
	c.log.Info("authentication failed", "mechanism", mech, "condition", f.Condition, "err", f.Err)
	return c.saslFailure(f.Condition, f.Text)
}

func (c *conn) saslFailure(cond, text string) error {
	c.authFailures++
	s := `<failure xmlns='` + nsSASL + `'><` + cond + `/>`
	if text != "" {
		var b bytes.Buffer
		_ = xml.EscapeText(&b, []byte(text))
		s += `<text xml:lang='en'>` + b.String() + `</text>`
	}
	if err := c.writeRaw(s + `</failure>`); err != nil {
		return err
	}
	if c.authFailures >= c.srv.limits().MaxAuthFailures {
		return wire.StreamError(stream.PolicyViolation, "too many failed authentication attempts")
	}
	return nil
}

// bindIQ handles resource binding (RFC 6120 §7) and the legacy session IQ
// (RFC 3921 §3, kept optional by RFC 6121 for old clients).
func (c *conn) bindIQ(ctx context.Context, el *wire.Element) error {
	iq, err := stanza.NewIQ(el.Start)
	if err != nil || iq.ID == "" {
		return wire.StreamError(stream.BadFormat, "malformed IQ")
	}
	payload, n := el.Payload()
	switch {
	case iq.Type != stanza.SetIQ || n != 1:
		return c.sendIQError(iq, stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest})
	case payload == xml.Name{Space: nsBind, Local: "bind"}:
	case payload == xml.Name{Space: nsSession, Local: "session"}:
		return wire.StreamError(stream.NotAuthorized, "bind a resource first")
	default:
		return wire.StreamError(stream.NotAuthorized, "bind a resource first")
	}
	res, _ := el.Sub(payload).Text(xml.Name{Space: nsBind, Local: "resource"})
	res = strings.TrimSpace(res)
	if res == "" {
		res = newID()[:12]
	}
	full, err := jid.New(c.user, c.srv.domain.Domain().String(), res)
	if err != nil {
		return c.sendIQError(iq, stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest, Text: map[string]string{"en": "invalid resource"}})
	}
	// Stanzas routed to the session from the moment it is bound wait in
	// its queue until the bind result is written: the result comes first.
	c.qmu.Lock()
	c.q.writing = true
	c.qmu.Unlock()
	if err := c.srv.sessions.bind(c, full); err != nil {
		c.qmu.Lock()
		c.q.writing = false
		c.qmu.Unlock()
		var se stanza.Error
		if errors.As(err, &se) {
			return c.sendIQError(iq, se)
		}
		return err
	}
	c.addr, c.addrName = full, full.String()
	c.log = c.log.With("jid", full.String())
	c.bound.Store(true)
	c.srv.onBound(ctx, c)
	var b strings.Builder
	b.WriteString(`<iq` + c.stanzaNS() + ` type='result' id='`)
	xml.EscapeText(&b, []byte(iq.ID))
	b.WriteString(`'><bind xmlns='` + nsBind + `'><jid>`)
	xml.EscapeText(&b, []byte(full.String()))
	b.WriteString(`</jid></bind></iq>`)
	err = c.writeRaw(b.String())
	c.drain()
	return err
}

// sendIQError answers an IQ with a stanza error.
func (c *conn) sendIQError(iq stanza.IQ, se stanza.Error) error {
	reply := stanza.IQ{ID: iq.ID, Type: stanza.ErrorIQ, To: iq.From, From: iq.To}
	return c.writeTokens(reply.Wrap(se.TokenReader()))
}

// writeRaw writes pre-escaped XML.
func (c *conn) writeRaw(s string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.writeLocked(s)
}

func (c *conn) writeLocked(s string) error {
	if c.closed {
		return errClosed
	}
	c.setWriteDeadline()
	if _, err := io.WriteString(c.nc, s); err != nil {
		return c.writeFailed(err)
	}
	return nil
}

// writeTokens writes one element from r.
func (c *conn) writeTokens(r xml.TokenReader) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closed {
		return errClosed
	}
	out := wire.NewOutput()
	if err := out.Encode(r, c.rootNS()); err != nil {
		return err // out is dropped: its encoder may be mid-element
	}
	c.setWriteDeadline()
	_, err := c.nc.Write(out.Bytes())
	out.Release()
	if err != nil {
		return c.writeFailed(err)
	}
	return nil
}

func (c *conn) setWriteDeadline() {
	if d := c.srv.limits().WriteTimeout.D(); d > 0 {
		_ = c.nc.SetWriteDeadline(time.Now().Add(d))
	}
}

// writeFailed gives up on a client that cannot take our writes: the
// connection is closed so that its reader ends too.
func (c *conn) writeFailed(err error) error {
	c.closed = true
	_ = c.raw.Close()
	return fmt.Errorf("server: write: %w", err)
}

var errClosed = errors.New("server: stream closed")

// closeWith ends the stream with a stream error (conflict, system-shutdown, …)
// from any goroutine. The reader then sees the closed connection and cleans up.
func (c *conn) closeWith(se stream.Error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.closeLocked(&se)
}

func (c *conn) closeLocked(se *stream.Error) {
	if c.closed {
		return
	}
	c.setWriteDeadline()
	// Over WebSocket each element is a message of its own; on TCP one write.
	var parts []string
	if !c.outOpen {
		// RFC 6120 §4.9.1.2: a header precedes an error on a stream not yet opened.
		parts = append(parts, c.header(""))
	}
	if se != nil {
		parts = append(parts, wire.StreamErrorXML(*se, c.streamPrefix()))
		c.srv.metrics.StreamError(se.Err)
	}
	if c.ws {
		parts = append(parts, `<close xmlns='`+wire.NSFraming+`'/>`)
		for _, p := range parts {
			if _, err := io.WriteString(c.nc, p); err != nil {
				break
			}
		}
	} else {
		_, _ = io.WriteString(c.nc, strings.Join(parts, "")+`</stream:stream>`)
	}
	c.closed = true
	c.cancel()
	// Give the client a moment to read our close before the socket goes.
	go func(nc net.Conn) {
		time.Sleep(100 * time.Millisecond)
		_ = nc.Close()
	}(c.raw)
}

func (c *conn) closeConn() {
	c.wmu.Lock()
	c.closed = true
	c.wmu.Unlock()
	_ = c.raw.Close()
}

// finish ends the connection after run returned: a stream error is sent, a
// clean close is answered with ours, and the session leaves the registry.
func (c *conn) finish(err error) {
	var se stream.Error
	switch {
	case err == nil, errors.Is(err, io.EOF), errors.Is(err, errClosed):
		c.wmu.Lock()
		c.closeLocked(nil)
		c.wmu.Unlock()
	case errors.As(err, &se):
		c.log.Info("stream error", "condition", se.Err, "text", se.Text)
		c.wmu.Lock()
		c.closeLocked(&se)
		c.wmu.Unlock()
	default:
		c.log.Debug("connection ended", "err", err)
		c.closeConn()
	}
	c.closeQueue()
	if c.bound.CompareAndSwap(true, false) {
		c.srv.onUnbound(c)
	}
}

// newID returns 128 random bits in hex, for stream ids and resources.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// priorityOf reads a presence's <priority/>, RFC 6121 §4.7.2.3 (-128..127).
func priorityOf(el *wire.Element) int {
	s, ok := el.Text(xml.Name{Space: stanza.NSClient, Local: "priority"})
	if !ok {
		return 0
	}
	p, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || p < -128 || p > 127 {
		return 0
	}
	return p
}
