package c2s

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
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

	"github.com/coder/websocket"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
	"mellium.im/xmpp/stream"

	"github.com/adhocd/adhocd/auth"
	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/tlscert"
	"github.com/adhocd/adhocd/wire"
)

// Namespaces of resource binding (RFC 6120 §7) and of the legacy session
// (RFC 3921 §3), which the router answers once a resource is bound.
const (
	NSBind    = "urn:ietf:params:xml:ns:xmpp-bind"
	NSSession = "urn:ietf:params:xml:ns:xmpp-session"
)

// Namespaces of the stream layer (RFC 6120).
const (
	NSStream = "http://etherx.jabber.org/streams"
	NSTLS    = "urn:ietf:params:xml:ns:xmpp-tls"
	NSSASL   = "urn:ietf:params:xml:ns:xmpp-sasl"
	NSCB     = "urn:xmpp:sasl-cb:0"
)

// Env is what a stream needs of the server it belongs to. The server
// makes one and shares it between its streams.
type Env struct {
	// Domain is the server JID.
	Domain jid.JID
	// C2S is the c2s section of the configuration (require_tls, …).
	C2S config.C2S
	// Limits returns the limits in force (a reload may change them).
	Limits func() config.Limits
	// TLS is the configuration STARTTLS uses; nil offers no STARTTLS.
	TLS *tls.Config
	// IsAdmin reports whether an account may use the connections reserved
	// for administrators (AdmitReserved).
	IsAdmin func(jid.JID) bool
	// Certificate, if set, returns the certificate to serve now: each
	// STARTTLS sends the one current at its start, and the stream's channel
	// binding (tls-server-end-point) binds to that one, whatever is renewed
	// later. Without it, TLS's own certificates serve.
	Certificate func() *tlscert.Cert
	// Auth runs the SASL exchanges.
	Auth *auth.Authenticator
	// Backoff counts failed logins per address.
	Backoff *Backoff
	// Observer counts the streams' events.
	Observer Observer
	// Router takes the stream once a resource is bound.
	Router Router
	// Log is the server's logger.
	Log *slog.Logger
	// StanzasOut counts the stanzas written to clients.
	StanzasOut *atomic.Uint64
	// Features are offered to an authenticated stream beside resource
	// binding, each as an empty element in its namespace: the router's
	// (roster versioning) and the modules' (modules.StreamFeatures).
	Features []xml.Name
	// Caps, if set, returns the node and hash of the server's disco#info,
	// which every stream's features carry (XEP-0115 §6.3).
	Caps func() (node, ver string)

	// sm holds the streams that may be resumed (XEP-0198, sm.go).
	sm smRegistry
	// accounts holds the stanza buckets shared by the streams of one
	// account (limits.rate.account_stanzas_per_second); its zero value is
	// ready, and the server's streams share it through their *Env.
	accounts accountBuckets
}

// Router is what a stream hands its session to: the router registers a
// bound resource and routes its stanzas from then on.
type Router interface {
	// Bind makes c the session of full (RFC 6120 §7) and returns the
	// router's side of it, or a stanza.Error for the bind request
	// (resource-constraint, say).
	Bind(ctx context.Context, c *Conn, full jid.JID) (Session, error)
	// Undeliverable answers the stanzas that were queued for c and will
	// never be written (RFC 6120 §10.4.3, RFC 6121 §8.5).
	Undeliverable(c *Conn, els []*wire.Element)
}

// Session is the router's side of a bound session.
type Session interface {
	// Route handles one stanza the client sent, with a context that ends
	// with the stream. A stream error it returns closes the stream.
	Route(ctx context.Context, el *wire.Element) error
	// Unbound runs once when the bound stream ends.
	Unbound()
}

// State is where a stream is in its negotiation (RFC 6120 §4.3).
type State int32

// The states of a stream, in the order a client goes through them.
const (
	// Connected: the stream is open, nothing negotiated yet.
	Connected State = iota
	// Secured: STARTTLS succeeded (or the WebSocket transport is TLS).
	Secured
	// Authenticating: a SASL exchange is in progress.
	Authenticating
	// Authenticated: SASL succeeded; the client may bind a resource.
	Authenticated
	// Bound: a resource is bound; stanzas go to the router.
	Bound
	// Closing: the stream is ending, or its session was ended by the
	// server (a conflict, an administrator); nothing more is negotiated
	// or routed.
	Closing
)

var stateNames = [...]string{"connected", "secured", "authenticating", "authenticated", "bound", "closing"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "state(" + strconv.Itoa(int(s)) + ")"
}

// Conn is one client-to-server stream: its negotiation (STARTTLS, SASL,
// resource binding), then the stanzas of a bound session, and its outbound
// queue (outbound.go).
type Conn struct {
	env  *Env
	log  *slog.Logger
	raw  net.Conn // the TCP connection
	nc   net.Conn // raw, or the TLS connection over it
	tls  *tls.ConnectionState
	dec  *wire.Decoder
	read *countingReader // what dec reads, counted for limits.rate
	lang string
	// directTLS: the connection begins with TLS (XEP-0368).
	directTLS bool
	// ws: the stream is framed as XMPP over WebSocket (RFC 7395): <open/>
	// and <close/> instead of the stream root, one element per message,
	// no STARTTLS (the transport's TLS, if any, is the HTTP connection's).
	ws bool

	// state is a State; it changes in the reader's goroutine, except for
	// Bound to Closing (Unbind), and is read from any.
	state atomic.Int32

	wmu     sync.Mutex
	outOpen bool // our stream header for the current stream is sent
	closed  bool // our stream is closed; nothing more is written
	// serverClosed: the server closed the stream (a stream error, the
	// answer to the client's close): it does not hibernate (sm.go).
	serverClosed bool
	wdSet        time.Time // when the write deadline was last set

	// ctx is the context of the stream's handlers; cancel ends it.
	ctx    context.Context
	cancel context.CancelFunc

	// The outbound queue of the bound session (outbound.go), and its
	// stream management (sm.go).
	qmu        sync.Mutex
	q          outbound
	sm         smState
	smEnabling bool // an <enabled/> is queued

	authFailures int
	attempted    string            // the account the current SASL exchange names, once sent
	cbRefused    bool              // a -PLUS attempt asked for a binding type we lack
	serverCert   *x509.Certificate // what our TLS handshake sent, when known
	reserved     bool              // admitted beyond the limit, for administrators only
	user         string            // localpart once authenticated
	addr         jid.JID           // full JID once bound
	sess         Session           // the router's side once bound
	pacer        *pacer            // limits.rate once bound
	connected    time.Time
	lastActive   atomic.Int64 // unix nanoseconds of the last stanza received
	stanzas      atomic.Uint64
}

// New returns a stream over a TCP connection.
func New(env *Env, nc net.Conn) *Conn {
	c := &Conn{
		env:       env,
		raw:       nc,
		nc:        nc,
		connected: time.Now(),
		lang:      "en",
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.log = env.Log.With("remote", nc.RemoteAddr().String())
	c.setIO(nc)
	return c
}

// NewWebSocket returns a stream framed by RFC 7395 over a WebSocket, over
// TLS when the HTTP connection was (its state then serves channel binding
// too). The WebSocket's own TLS counts as the stream's: no STARTTLS.
func NewWebSocket(env *Env, ws *websocket.Conn, remoteAddr string, st *tls.ConnectionState) *Conn {
	c := New(env, newWSConn(ws, remoteAddr))
	c.ws = true
	c.tls = st
	if st != nil {
		c.setState(Secured)
		if env.Certificate != nil {
			// The HTTP server's handshake served the certificate current
			// then; it was renewed since only if a renewal fell between
			// that handshake and this upgrade.
			c.serverCert = env.Certificate().Leaf
		}
	}
	c.setIO(c.nc)
	return c
}

func (c *Conn) setIO(nc net.Conn) {
	l := c.env.Limits()
	c.nc = nc
	c.read = &countingReader{r: nc}
	c.dec = wire.NewDecoder(c.read, l.MaxStanzaBytes, l.MaxDepth, l.MaxAttributes)
	if c.ws {
		c.dec.Framed = true
		c.dec.Restart()
	}
}

// isAdmin reports whether the local account user is an administrator.
func (c *Conn) isAdmin(user string) bool {
	if c.env.IsAdmin == nil {
		return false
	}
	j, err := jid.New(user, c.env.Domain.Domainpart(), "")
	return err == nil && c.env.IsAdmin(j)
}

// authStream is what the SASL exchange needs to know of this stream.
func (c *Conn) authStream() auth.Stream {
	return auth.Stream{TLS: c.tls, CBTypeRefused: c.cbRefused, ServerCertificate: c.serverCert}
}

// State returns where the stream is in its negotiation.
func (c *Conn) State() State { return State(c.state.Load()) }

func (c *Conn) setState(s State) { c.state.Store(int32(s)) }

// Host returns the client's IP address.
func (c *Conn) Host() string { return HostOf(c.raw.RemoteAddr()) }

// HostOf returns the IP address of a network address.
func HostOf(a net.Addr) string {
	if h, _, err := net.SplitHostPort(a.String()); err == nil {
		return h
	}
	return a.String()
}

// JID returns the bound full JID, or the zero JID before binding.
func (c *Conn) JID() jid.JID { return c.addr }

// Log is the stream's logger, with its address and JID.
func (c *Conn) Log() *slog.Logger { return c.log }

// Info describes the stream: its client's address, when it connected and
// last sent a stanza, and how many stanzas it sent.
func (c *Conn) Info() (remote string, since, lastActive time.Time, stanzas uint64) {
	return c.raw.RemoteAddr().String(), c.connected, time.Unix(0, c.lastActive.Load()), c.stanzas.Load()
}

// AdmitReserved marks a stream admitted beyond limits.max_connections, on
// one of the connections reserved for administrators: once it has
// authenticated, an account that is not an administrator is closed with
// resource-constraint. Call it before Serve.
func (c *Conn) AdmitReserved() { c.reserved = true }

// Abort closes the network connection at once, without a word to the
// client (a shutdown past its deadline).
func (c *Conn) Abort() { _ = c.raw.Close() }

// Unbind ends the bound session from outside its stream (a resource
// conflict, an administrator): from now on the stream routes nothing and
// its end does not run Session.Unbound. It reports whether the session
// was bound, so that one caller does what the end of a session needs.
func (c *Conn) Unbind() bool {
	return c.state.CompareAndSwap(int32(Bound), int32(Closing))
}

// The context handed to every handler ends when the stream does: when run
// returns, or as soon as another goroutine closes the stream (Close),
// so that work done for the client stops when the client goes.
// Serve runs the stream until the client leaves, an error ends it or the
// server closes it.
func (c *Conn) Serve() {
	defer c.cancel()
	_ = c.raw.SetReadDeadline(c.connected.Add(c.env.Limits().PreAuthTimeout.D()))
	err := c.run(c.ctx)
	var r errResumed
	if errors.As(err, &r) {
		// This connection now serves the session it resumed (sm.go).
		c.setState(Closing)
		r.old.serveResumed()
		return
	}
	c.finish(err)
}

func (c *Conn) run(ctx context.Context) error {
	if c.directTLS {
		if c.env.TLS == nil {
			return errors.New("c2s: direct TLS without a TLS configuration")
		}
		if err := c.handshake(ctx, alpnClient); err != nil {
			return err
		}
	}
	if err := c.openStream(); err != nil {
		return err
	}
	for c.State() != Bound {
		el, err := c.dec.Next()
		if err != nil {
			return err
		}
		c.lastActive.Store(time.Now().UnixNano())
		if err := c.negotiate(ctx, el); err != nil {
			return err
		}
	}
	return c.serveBound(ctx)
}

// serveBound reads and routes the stanzas of the bound session until the
// stream ends. Once bound, a stream never negotiates again, even after an
// administrator unbinds it.
func (c *Conn) serveBound(ctx context.Context) error {
	// Within a stanza that waits for more bytes: limits.stanza_timeout to
	// finish it.
	stanzaDeadline := false
	c.dec.StanzaWait = func() {
		stanzaDeadline = true
		_ = c.raw.SetReadDeadline(time.Now().Add(c.env.Limits().StanzaTimeout.D()))
	}
	idle := c.env.Limits().IdleTimeout.D()
	// Between stanzas the read deadline is limits.idle_timeout ahead, set
	// again only once an eighth of it has passed (a busy stream does not
	// reset its timer for every stanza, and the timeout holds to within an
	// eighth); within a stanza that has to wait for more bytes, it is
	// limits.stanza_timeout (stanzaDeadline, set by the decoder's
	// StanzaWait).
	var idleSet time.Time
	now := time.Now()
	for {
		if stanzaDeadline || idleSet.IsZero() || idle > 0 && now.Sub(idleSet) >= idle/8 {
			var d time.Time
			if idle > 0 {
				d = now.Add(idle)
			}
			_ = c.raw.SetReadDeadline(d)
			idleSet, stanzaDeadline = now, false
		}
		el, err := c.dec.Next()
		if err != nil {
			return err
		}
		now = time.Now()
		c.lastActive.Store(now.UnixNano())
		if c.State() != Bound {
			// Unbound by the server while the stream closes: nothing
			// more is routed.
			return ErrClosed
		}
		if el.Start.Name.Space == NSSM {
			if err := c.smElement(el); err != nil {
				return err
			}
			continue
		}
		c.stanzas.Add(1)
		if err := c.sess.Route(ctx, el); err != nil {
			return err
		}
		c.sm.in++ // the reader's alone: counted from <enable/> on
		if err := c.pace(ctx); err != nil {
			return ErrClosed
		}
		now = time.Now()
	}
}

// openStream reads the client's stream header, checks it against RFC 6120
// §4.9.3 and answers with ours and the features of the current stream state.
func (c *Conn) openStream() error {
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
		case a.Name.Space == wire.NSXML && a.Name.Local == "lang":
			c.lang = a.Value
		}
	}
	if f, err := jid.Parse(from); from != "" && (err != nil || f.Domain().String() != c.env.Domain.String()) {
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
	case hdr.Name.Space != NSStream:
		return wire.StreamError(stream.InvalidNamespace, "the stream namespace must be "+NSStream)
	case ns != stanza.NSClient:
		return wire.StreamError(stream.InvalidNamespace, "the content namespace must be jabber:client")
	}
	if to != "" {
		t, err := jid.Parse(to)
		if err != nil || !t.Equal(c.env.Domain) {
			return wire.StreamError(stream.HostUnknown, "this server serves "+c.env.Domain.String())
		}
	}
	if major, _, ok := strings.Cut(version, "."); !ok || major != "1" {
		return wire.StreamError(stream.UnsupportedVersion, "XMPP 1.0 is required")
	}
	return c.writeRaw(c.features())
}

func (c *Conn) writeHeader(to string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.outOpen = true
	return c.writeLocked(c.header(to))
}

// header is our stream header, addressed to to if it is set: the stream's
// root on TCP, the <open/> element over WebSocket (RFC 7395 §3.3.2).
func (c *Conn) header(to string) string {
	var b strings.Builder
	if c.ws {
		b.WriteString(`<open xmlns='` + wire.NSFraming + `' version='1.0' xml:lang='en' id='`)
	} else {
		b.WriteString(`<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0' xml:lang='en' id='`)
	}
	b.WriteString(NewID())
	b.WriteString(`' from='`)
	xml.EscapeText(&b, []byte(c.env.Domain.String()))
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
func (c *Conn) streamPrefix() string {
	if c.ws {
		return ` xmlns:stream='` + NSStream + `'`
	}
	return ""
}

// stanzaNS is what a stanza written as text declares: nothing on TCP, where
// jabber:client is the stream's default namespace, jabber:client over
// WebSocket.
func (c *Conn) stanzaNS() string {
	if c.ws {
		return ` xmlns='` + stanza.NSClient + `'`
	}
	return ""
}

// rootNS is the default namespace outside the elements written: the
// stream's on TCP, none over WebSocket.
func (c *Conn) rootNS() string {
	if c.ws {
		return ""
	}
	return stanza.NSClient
}

// features lists the stream features for the current state (RFC 6120 §4.3.2).
func (c *Conn) features() string {
	var b strings.Builder
	b.WriteString("<stream:features" + c.streamPrefix() + ">")
	switch {
	case c.State() == Authenticated:
		b.WriteString(`<bind xmlns='` + NSBind + `'/><session xmlns='` + NSSession + `'><optional/></session><sm xmlns='` + NSSM + `'/>`)
		for _, f := range c.env.Features {
			b.WriteString(`<` + f.Local + ` xmlns='`)
			xml.EscapeText(&b, []byte(f.Space))
			b.WriteString(`'/>`)
		}
	default:
		if c.tls == nil && c.env.TLS != nil && !c.ws {
			b.WriteString(`<starttls xmlns='` + NSTLS + `'>`)
			if c.env.C2S.RequireTLS {
				b.WriteString(`<required/>`)
			}
			b.WriteString(`</starttls>`)
		}
		if c.tls != nil || !c.env.C2S.RequireTLS || c.ws {
			b.WriteString(`<mechanisms xmlns='` + NSSASL + `'>`)
			for _, m := range c.env.Auth.Mechanisms(c.authStream()) {
				b.WriteString("<mechanism>" + m + "</mechanism>")
			}
			b.WriteString(`</mechanisms>`)
			if types := c.env.Auth.ChannelBindingTypes(c.authStream()); len(types) > 0 {
				b.WriteString(`<sasl-channel-binding xmlns='` + NSCB + `'>`)
				for _, t := range types {
					b.WriteString(`<channel-binding type='` + t + `'/>`)
				}
				b.WriteString(`</sasl-channel-binding>`)
			}
		}
	}
	if c.env.Caps != nil {
		node, ver := c.env.Caps()
		b.WriteString(`<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='`)
		xml.EscapeText(&b, []byte(node))
		b.WriteString(`' ver='`)
		xml.EscapeText(&b, []byte(ver))
		b.WriteString(`'/>`)
	}
	b.WriteString("</stream:features>")
	return b.String()
}

// negotiate handles one element before the session is bound.
func (c *Conn) negotiate(ctx context.Context, el *wire.Element) error {
	name := el.Start.Name
	switch {
	case name == xml.Name{Space: NSTLS, Local: "starttls"}:
		return c.startTLS(ctx)
	case name == xml.Name{Space: NSSASL, Local: "auth"}:
		return c.authenticate(ctx, el)
	case name.Space == NSSASL && (name.Local == "response" || name.Local == "abort"):
		return c.saslFailure(auth.MalformedRequest, "no SASL exchange is in progress")
	case name.Space == NSSM:
		switch {
		case c.State() != Authenticated:
			return wire.StreamError(stream.NotAuthorized, "authenticate first")
		case name.Local == "resume":
			return c.resume(ctx, el)
		case name.Local == "enable" || name.Local == "r":
			// XEP-0198 §3: stream management is enabled once bound.
			return c.writeRaw(smFailed(stanza.UnexpectedRequest, ""))
		}
		return nil
	case wire.IsStanza(name):
		if c.State() != Authenticated {
			return wire.StreamError(stream.NotAuthorized, "authenticate first")
		}
		if name.Local == "iq" {
			return c.bindIQ(ctx, el)
		}
		return wire.StreamError(stream.NotAuthorized, "bind a resource first")
	case name.Space != stanza.NSClient && name.Space != NSTLS && name.Space != NSSASL:
		return wire.StreamError(stream.InvalidNamespace, fmt.Sprintf("unexpected namespace %q", name.Space))
	}
	return wire.StreamError(stream.UnsupportedStanzaType, fmt.Sprintf("unexpected element <%s/>", name.Local))
}

// startTLS upgrades the connection (RFC 6120 §5.4). Bytes that arrived after
// <starttls/> and before <proceed/> are a command-injection attempt: the
// stream is closed instead.
func (c *Conn) startTLS(ctx context.Context) error {
	if c.State() != Connected {
		return wire.StreamError(stream.PolicyViolation, "TLS is already negotiated")
	}
	if c.env.TLS == nil || c.ws {
		// Over WebSocket, TLS is the HTTP connection's (RFC 7395 §3.6).
		if err := c.writeRaw(`<failure xmlns='` + NSTLS + `'/>`); err != nil {
			return err
		}
		return io.EOF
	}
	if c.dec.Buffered() > 0 {
		return wire.StreamError(stream.PolicyViolation, "data sent after <starttls/> before the TLS handshake")
	}
	if err := c.writeRaw(`<proceed xmlns='` + NSTLS + `'/>`); err != nil {
		return err
	}
	if err := c.handshake(ctx, nil); err != nil {
		return err
	}
	return c.openStream()
}

// handshake runs TLS as the server over the TCP connection, with the
// certificate current now, and makes the stream secured; nextProtos are
// the ALPN protocols offered (direct TLS's xmpp-client).
func (c *Conn) handshake(ctx context.Context, nextProtos []string) error {
	cfg := c.env.TLS
	if c.env.Certificate != nil || nextProtos != nil {
		cfg = cfg.Clone()
	}
	if c.env.Certificate != nil {
		cert := c.env.Certificate()
		cfg.GetCertificate = nil
		cfg.Certificates = []tls.Certificate{cert.TLS}
		c.serverCert = cert.Leaf
	}
	if nextProtos != nil {
		cfg.NextProtos = nextProtos
	}
	tc := tls.Server(c.raw, cfg)
	hctx, cancel := context.WithTimeout(ctx, c.env.Limits().PreAuthTimeout.D())
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
	c.setState(Secured)
	return nil
}

// NewDirectTLS returns a stream over a TCP connection that begins with
// TLS (XEP-0368 direct TLS, ALPN xmpp-client): the handshake runs in Serve,
// within limits.pre_auth_timeout, and the stream opens secured.
func NewDirectTLS(env *Env, nc net.Conn) *Conn {
	c := New(env, nc)
	c.directTLS = true
	return c
}

// alpnClient is the ALPN protocol of direct TLS (XEP-0368 §4).
var alpnClient = []string{"xmpp-client"}

// authenticate runs one SASL exchange (RFC 6120 §6.4).
func (c *Conn) authenticate(ctx context.Context, el *wire.Element) error {
	if c.State() == Authenticated {
		return wire.StreamError(stream.PolicyViolation, "already authenticated")
	}
	if c.tls == nil && c.env.C2S.RequireTLS && c.env.TLS != nil && !c.ws {
		return c.saslFailure(auth.EncryptionRequired, "negotiate STARTTLS first")
	}
	if c.env.Backoff.blocked(c.Host(), c.env.Limits()) {
		c.env.Observer.Login(el.Attr("mechanism"), auth.TemporaryAuthFailure)
		return c.saslFailure(auth.TemporaryAuthFailure, "too many failed logins from your address: try again later")
	}
	mech := el.Attr("mechanism")
	c.attempted = ""
	before := c.State()
	c.setState(Authenticating)
	defer func() {
		if c.State() == Authenticating {
			c.setState(before) // failed or aborted: the client may try again
		}
	}()
	ex, err := c.env.Auth.Start(mech, c.authStream())
	if err != nil {
		return c.authFailed(err, mech)
	}
	in, err := saslData(el)
	if err != nil {
		return c.authFailed(err, mech)
	}
	first := true
	for {
		if in == nil {
			// No initial response: send an empty challenge (RFC 6120 §6.4.2).
			if err := c.writeRaw(`<challenge xmlns='` + NSSASL + `'/>`); err != nil {
				return err
			}
		} else {
			if first {
				// The client names its account in its first message: an
				// account that used up its failures from this address is
				// refused before its password is checked.
				first = false
				c.attempted = c.attemptedUser(mech, in)
				if c.attempted != "" && c.env.Backoff.blockedAccount(c.Host(), c.attempted, c.env.Limits()) {
					c.env.Observer.Login(mech, auth.TemporaryAuthFailure)
					return c.saslFailure(auth.TemporaryAuthFailure, "too many failed logins for this account from your address: try again later")
				}
			}
			out, done, err := ex.Step(ctx, in)
			if err != nil {
				return c.authFailed(err, mech)
			}
			if done {
				if c.reserved && !c.isAdmin(ex.Username()) {
					c.env.Observer.Connection("refused")
					return wire.StreamError(stream.ResourceConstraint, "the server is full: only administrators may connect now")
				}
				c.user = ex.Username()
				c.env.Backoff.succeeded(c.Host(), c.user)
				c.setState(Authenticated)
				c.log = c.log.With("user", c.user)
				c.env.Observer.Login(mech, "success")
				c.log.Info("authenticated", "mechanism", mech)
				// Additional data with success, or an empty element when there is
				// none (RFC 6120 §6.4.6: "=" is only the client's empty response).
				if err := c.writeRaw(`<success xmlns='` + NSSASL + `'>` + base64.StdEncoding.EncodeToString(out) + `</success>`); err != nil {
					return err
				}
				c.dec.Restart()
				return c.openStream()
			}
			if err := c.writeRaw(`<challenge xmlns='` + NSSASL + `'>` + encodeSASL(out) + `</challenge>`); err != nil {
				return err
			}
		}
		next, err := c.dec.Next()
		if err != nil {
			return err
		}
		switch next.Start.Name {
		case xml.Name{Space: NSSASL, Local: "response"}:
			if in, err = saslData(next); err != nil {
				return c.authFailed(err, mech)
			}
			if in == nil {
				in = []byte{}
			}
		case xml.Name{Space: NSSASL, Local: "abort"}:
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
func (c *Conn) authFailed(err error, mech string) error {
	var f *auth.Failure
	if !errors.As(err, &f) {
		return err
	}
	if errors.Is(err, auth.ErrChannelBindingType) {
		c.cbRefused = true
	}
	if f.Condition == auth.NotAuthorized {
		c.env.Backoff.failed(c.Host(), c.attempted, c.env.Limits())
	}
	c.env.Observer.Login(mech, f.Condition)
	c.log.Info("authentication failed", "mechanism", mech, "condition", f.Condition, "err", f.Err)
	return c.saslFailure(f.Condition, f.Text)
}

func (c *Conn) saslFailure(cond, text string) error {
	c.authFailures++
	s := `<failure xmlns='` + NSSASL + `'><` + cond + `/>`
	if text != "" {
		var b bytes.Buffer
		_ = xml.EscapeText(&b, []byte(text))
		s += `<text xml:lang='en'>` + b.String() + `</text>`
	}
	if err := c.writeRaw(s + `</failure>`); err != nil {
		return err
	}
	if c.authFailures >= c.env.Limits().MaxAuthFailures {
		return wire.StreamError(stream.PolicyViolation, "too many failed authentication attempts")
	}
	return nil
}

// bindIQ handles resource binding (RFC 6120 §7) and the legacy session IQ
// (RFC 3921 §3, kept optional by RFC 6121 for old clients).
func (c *Conn) bindIQ(ctx context.Context, el *wire.Element) error {
	iq, err := stanza.NewIQ(el.Start)
	if err != nil || iq.ID == "" {
		return wire.StreamError(stream.BadFormat, "malformed IQ")
	}
	payload, n := el.Payload()
	switch {
	case iq.Type != stanza.SetIQ || n != 1:
		return c.sendIQError(iq, stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest})
	case payload == xml.Name{Space: NSBind, Local: "bind"}:
	case payload == xml.Name{Space: NSSession, Local: "session"}:
		return wire.StreamError(stream.NotAuthorized, "bind a resource first")
	default:
		return wire.StreamError(stream.NotAuthorized, "bind a resource first")
	}
	res, _ := el.Sub(payload).Text(xml.Name{Space: NSBind, Local: "resource"})
	res = strings.TrimSpace(res)
	if res == "" {
		res = NewID()[:12]
	}
	full, err := jid.New(c.user, c.env.Domain.Domain().String(), res)
	if err != nil {
		return c.sendIQError(iq, stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest, Text: map[string]string{"en": "invalid resource"}})
	}
	// Stanzas routed to the session from the moment it is bound wait in
	// its queue until the bind result is written: the result comes first.
	c.qmu.Lock()
	c.q.writing = true
	c.qmu.Unlock()
	c.addr = full
	c.log = c.log.With("jid", full.String())
	sess, err := c.env.Router.Bind(ctx, c, full)
	if err != nil {
		c.addr = jid.JID{}
		c.qmu.Lock()
		c.q.stop()
		c.qmu.Unlock()
		var se stanza.Error
		if errors.As(err, &se) {
			return c.sendIQError(iq, se)
		}
		return err
	}
	c.sess = sess
	c.pacer = &pacer{read: c.read, charged: c.read.n.Load(), account: c.env.accounts.acquire(c.user)}
	c.setState(Bound)
	var b strings.Builder
	b.WriteString(`<iq` + c.stanzaNS() + ` type='result' id='`)
	xml.EscapeText(&b, []byte(iq.ID))
	b.WriteString(`'><bind xmlns='` + NSBind + `'><jid>`)
	xml.EscapeText(&b, []byte(full.String()))
	b.WriteString(`</jid></bind></iq>`)
	err = c.writeRaw(b.String())
	c.drain()
	return err
}

// sendIQError answers an IQ with a stanza error.
func (c *Conn) sendIQError(iq stanza.IQ, se stanza.Error) error {
	reply := stanza.IQ{ID: iq.ID, Type: stanza.ErrorIQ, To: iq.From, From: iq.To}
	return c.writeTokens(reply.Wrap(se.TokenReader()))
}

// writeRaw writes pre-escaped XML.
func (c *Conn) writeRaw(s string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.writeLocked(s)
}

func (c *Conn) writeLocked(s string) error {
	if c.closed {
		return ErrClosed
	}
	c.setWriteDeadline()
	if _, err := io.WriteString(c.nc, s); err != nil {
		return c.writeFailed(err)
	}
	return nil
}

// writeTokens writes one element from r.
func (c *Conn) writeTokens(r xml.TokenReader) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closed {
		return ErrClosed
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

// setWriteDeadline puts the write deadline limits.write_timeout ahead, but
// only once an eighth of it has passed since it was last set, so that a
// busy stream does not reset its timer for every write (the timeout holds
// to within an eighth). wmu is held.
func (c *Conn) setWriteDeadline() { c.writeDeadline(false) }

// forceWriteDeadline puts the write deadline limits.write_timeout ahead
// whenever it was last set (the close after a writer was cut off). wmu is
// held.
func (c *Conn) forceWriteDeadline() { c.writeDeadline(true) }

func (c *Conn) writeDeadline(force bool) {
	d := c.env.Limits().WriteTimeout.D()
	if d <= 0 {
		return
	}
	now := time.Now()
	if !force && !c.wdSet.IsZero() && now.Sub(c.wdSet) < d/8 {
		return
	}
	c.wdSet = now
	_ = c.nc.SetWriteDeadline(now.Add(d))
}

// writeFailed gives up on a client that cannot take our writes: the
// connection is closed so that its reader ends too.
func (c *Conn) writeFailed(err error) error {
	c.closed = true
	_ = c.raw.Close()
	return fmt.Errorf("server: write: %w", err)
}

// ErrClosed is what writing to a closed stream returns.
var ErrClosed = errors.New("c2s: stream closed")

// Close ends the stream with a stream error (conflict, system-shutdown, …)
// from any goroutine. The reader then sees the closed connection and cleans up.
// A session waiting for its client to resume it ends now.
func (c *Conn) Close(se stream.Error) {
	c.wmu.Lock()
	c.closeLocked(&se)
	c.wmu.Unlock()
	c.qmu.Lock()
	sleeping := c.sm.hibernating
	c.qmu.Unlock()
	if sleeping {
		c.expire()
	}
}

func (c *Conn) closeLocked(se *stream.Error) {
	c.serverClosed = true
	if c.closed {
		return
	}
	c.forceWriteDeadline()
	// Over WebSocket each element is a message of its own; on TCP one write.
	var parts []string
	if !c.outOpen {
		// RFC 6120 §4.9.1.2: a header precedes an error on a stream not yet opened.
		parts = append(parts, c.header(""))
	}
	if se != nil {
		parts = append(parts, wire.StreamErrorXML(*se, c.streamPrefix()))
		c.env.Observer.StreamError(se.Err)
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

func (c *Conn) closeConn() {
	c.wmu.Lock()
	c.closed = true
	c.wmu.Unlock()
	_ = c.raw.Close()
}

// finish ends the connection after run returned: a stream error is sent, a
// clean close is answered with ours, and the session leaves the registry.
func (c *Conn) finish(err error) {
	if c.State() == Bound && c.smResumable() && c.broken(err) {
		c.hibernate()
		return
	}
	var se stream.Error
	switch {
	case err == nil, errors.Is(err, io.EOF), errors.Is(err, ErrClosed):
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
	c.releaseAccount()
	c.endSession()
}

// NewID returns 128 random bits in hex, for stream ids and resources.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
