package s2s_test

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/s2s"
	"github.com/adhocd/adhocd/servertest"
	"github.com/adhocd/adhocd/wire"
)

// A raw remote server, written here byte by byte, plays c.test against
// one adhocd, b.test: it opens a stream without TLS (b.test has
// require_tls off), asks for dialback (XEP-0220) and sends stanzas a
// well-behaved server would not. c.test's authoritative server is played
// by the test too, on a listener of its own that b.test's static host map
// names, and answers b.test's <db:verify/> as each case wants. What is
// checked is what the design's §5 says of an inbound stream (and §9's "Raw
// peer" cases): the stream errors, by their exact condition, and what
// b.test routes.

const (
	nsStreams     = "http://etherx.jabber.org/streams"
	nsStreamError = "urn:ietf:params:xml:ns:xmpp-streams"
	// rawKey is the dialback key c.test presents: b.test never checks it
	// itself, it asks c.test's authoritative server (XEP-0220 §2.1.3).
	rawKey = "37c69b1cf07a3f67c04a5ef5902fa5114f2c76fe4a2686482ba5b89323075643"
	// rawDeadline bounds every connection of a case.
	rawDeadline = 15 * time.Second
)

// rawHeader is the stream header c.test opens its streams with.
const rawHeader = "<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='" + nsStreams +
	"' xmlns:db='jabber:server:dialback' from='c.test' to='b.test' version='1.0'>"

// authority is c.test's authoritative server: it accepts b.test's
// verification connections and answers each <db:verify/> with verdict.
type authority struct {
	t        *testing.T
	ln       net.Listener
	verdict  s2s.DialbackType
	verifies chan s2s.Dialback

	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func startAuthority(t *testing.T, verdict s2s.DialbackType) *authority {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &authority{t: t, ln: ln, verdict: verdict, verifies: make(chan s2s.Dialback, 16)}
	a.wg.Add(1)
	go a.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		a.mu.Lock()
		for _, c := range a.conns {
			_ = c.Close()
		}
		a.mu.Unlock()
		a.wg.Wait()
	})
	return a
}

func (a *authority) accept() {
	defer a.wg.Done()
	for n := 1; ; n++ {
		nc, err := a.ln.Accept()
		if err != nil {
			return
		}
		a.mu.Lock()
		a.conns = append(a.conns, nc)
		a.mu.Unlock()
		a.wg.Add(1)
		go a.serve(nc, fmt.Sprintf("authority-%d", n))
	}
}

// serve answers one connection of b.test: a stream header with an id,
// empty features (no STARTTLS: b.test does not require it), then the
// verdict on each <db:verify/>.
func (a *authority) serve(nc net.Conn, id string) {
	defer a.wg.Done()
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(rawDeadline))
	dec := wire.NewDecoder(nc, 1<<16, 16, 32)
	st, err := dec.StreamHeader()
	if err != nil {
		a.t.Errorf("authority: b.test's stream header: %v", err)
		return
	}
	if from, to := wire.AttrOf(st, "from"), wire.AttrOf(st, "to"); from != "b.test" || to != "c.test" {
		a.t.Errorf("authority: b.test's header is from %q to %q, want b.test to c.test", from, to)
	}
	if _, err := io.WriteString(nc, "<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='"+nsStreams+
		"' xmlns:db='jabber:server:dialback' from='c.test' to='b.test' id='"+id+"' version='1.0'><stream:features/>"); err != nil {
		return
	}
	for {
		el, err := dec.Next()
		if err != nil {
			return // b.test closes the connection after the answer
		}
		if s2s.DialbackKindOf(el.Start.Name) != s2s.DialbackVerify {
			// An outbound stream of b.test's own (its <db:result/>)
			// reaches this listener too: not what a case waits for.
			a.t.Logf("authority: ignored %s", showEl(el))
			continue
		}
		d, err := s2s.ParseDialback(el)
		if err != nil {
			a.t.Errorf("authority: %s: %v", showEl(el), err)
			return
		}
		a.verifies <- d
		b, err := s2s.Dialback{Kind: s2s.DialbackVerify, From: d.To, To: d.From, ID: d.ID, Type: a.verdict}.Marshal(false)
		if err != nil {
			a.t.Errorf("authority: %v", err)
			return
		}
		if _, err := nc.Write(b); err != nil {
			return
		}
	}
}

// verify returns the next <db:verify/> b.test sent, or fails the test.
func (a *authority) verify(t *testing.T) s2s.Dialback {
	t.Helper()
	select {
	case d := <-a.verifies:
		return d
	case <-time.After(servertest.Wait):
		t.Fatal("b.test never asked c.test's authoritative server to verify the key")
		return s2s.Dialback{}
	}
}

// none fails the test if b.test asked for a verification.
func (a *authority) none(t *testing.T) {
	t.Helper()
	select {
	case d := <-a.verifies:
		t.Fatalf("b.test asked c.test's authoritative server to verify %+v", d)
	default:
	}
}

// rawPeer is the stream c.test opened to b.test.
type rawPeer struct {
	t   *testing.T
	nc  net.Conn
	dec *wire.Decoder
	id  string // b.test's stream id
}

// startRaw starts b.test, federating without TLS, with c.test's
// authoritative server answering verdict.
func startRaw(t *testing.T, verdict s2s.DialbackType) (*servertest.Server, *authority) {
	t.Helper()
	return startRawWith(t, verdict, nil)
}

// startRawWith is startRaw with edit, if not nil, applied to b.test's s2s
// section first.
func startRawWith(t *testing.T, verdict s2s.DialbackType, edit func(*config.S2S)) (*servertest.Server, *authority) {
	t.Helper()
	auth := startAuthority(t, verdict)
	return rawServer(t, auth.ln.Addr().String(), edit), auth
}

// rawServer starts b.test for raw peers: no TLS required, c.test's
// authoritative server at authAddr, edit (if not nil) applied to its s2s
// section.
func rawServer(t *testing.T, authAddr string, edit func(*config.S2S)) *servertest.Server {
	t.Helper()
	cfg := servertest.Config(t.TempDir())
	cfg.Domain = "b.test"
	cfg.S2S.Listen = servertest.FreeAddr(t)
	cfg.S2S.RequireTLS = false
	cfg.S2S.ConnectTimeout = config.Duration(5 * time.Second)
	cfg.S2S.Hosts = map[string]string{"c.test": authAddr}
	if edit != nil {
		edit(&cfg.S2S)
	}
	return servertest.StartConfig(t, cfg)
}

// dialRaw opens c.test's stream to srv and reads its header and features.
func dialRaw(t *testing.T, srv *servertest.Server) *rawPeer {
	t.Helper()
	nc, err := net.DialTimeout("tcp", srv.S2SAddr().String(), servertest.Wait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(rawDeadline))
	p, f := openRaw(t, nc)
	if f.Sub(xml.Name{Space: s2s.NSDialbackFeature, Local: "dialback"}) == nil {
		t.Fatalf("b.test offers no dialback without TLS: %s", showEl(f))
	}
	return p
}

// openRaw opens c.test's stream to b.test over nc, plain TCP or direct
// TLS, checks b.test's header and returns the peer with b.test's
// features.
func openRaw(t *testing.T, nc net.Conn) (*rawPeer, *wire.Element) {
	t.Helper()
	p := &rawPeer{t: t, nc: nc, dec: wire.NewDecoder(nc, 1<<16, 16, 32)}
	p.send(rawHeader)
	st, err := p.dec.StreamHeader()
	if err != nil {
		t.Fatalf("b.test's stream header: %v", err)
	}
	p.id = wire.AttrOf(st, "id")
	if from, to := wire.AttrOf(st, "from"), wire.AttrOf(st, "to"); from != "b.test" || to != "c.test" || p.id == "" {
		t.Fatalf("b.test's header: from %q, to %q, id %q", from, to, p.id)
	}
	f := p.next()
	if f.Start.Name != (xml.Name{Space: nsStreams, Local: "features"}) {
		t.Fatalf("b.test sent %s, want its features", showEl(f))
	}
	return p, f
}

func (p *rawPeer) send(s string) {
	p.t.Helper()
	if _, err := io.WriteString(p.nc, s); err != nil {
		p.t.Fatalf("raw peer: write: %v", err)
	}
}

func (p *rawPeer) next() *wire.Element {
	p.t.Helper()
	el, err := p.dec.Next()
	if err != nil {
		p.t.Fatalf("raw peer: read: %v", err)
	}
	return el
}

// result asks b.test to authenticate c.test with the key and returns its
// verdict.
func (p *rawPeer) result() s2s.Dialback {
	p.t.Helper()
	p.send("<db:result from='c.test' to='b.test'>" + rawKey + "</db:result>")
	return p.nextResult()
}

func (p *rawPeer) nextResult() s2s.Dialback {
	p.t.Helper()
	el := p.next()
	if s2s.DialbackKindOf(el.Start.Name) != s2s.DialbackResult {
		p.t.Fatalf("b.test sent %s, want <db:result/>", showEl(el))
	}
	d, err := s2s.ParseDialback(el)
	if err != nil {
		p.t.Fatalf("%s: %v", showEl(el), err)
	}
	if d.From != "b.test" || d.To != "c.test" {
		p.t.Fatalf("b.test's verdict %s is not from b.test to c.test", showEl(el))
	}
	return d
}

// authenticate has c.test authenticated by dialback, c.test's
// authoritative server saying the key is valid.
func (p *rawPeer) authenticate(srv *servertest.Server, auth *authority) {
	p.t.Helper()
	p.send("<db:result from='c.test' to='b.test'>" + rawKey + "</db:result>")
	v := auth.verify(p.t)
	if v.From != "b.test" || v.To != "c.test" || v.ID != p.id || v.Key != rawKey || v.Type != s2s.DialbackRequest {
		p.t.Fatalf("b.test's <db:verify/> %+v: want from b.test to c.test, id %q (its stream's) and the key c.test sent", v, p.id)
	}
	if d := p.nextResult(); d.Type != s2s.DialbackValid {
		p.t.Fatalf("b.test's verdict: %+v, want valid", d)
	}
	c := conn(p.t, srv, "c.test", true)
	if c.Auth != "dialback" || c.TLS || c.Local != "b.test" {
		p.t.Fatalf("b.test's stream from c.test: %+v, want dialback without TLS", c)
	}
}

// streamError reads until b.test's stream error, returns its condition
// and checks that the stream ends after it.
func (p *rawPeer) streamError() string {
	p.t.Helper()
	el := p.next()
	if el.Start.Name != (xml.Name{Space: nsStreams, Local: "error"}) {
		p.t.Fatalf("b.test sent %s, want a stream error", showEl(el))
	}
	cond := ""
	for _, k := range el.Children(xml.Name{}) {
		if k.Start.Name.Space == nsStreamError && k.Start.Name.Local != "text" {
			cond = k.Start.Name.Local
			break
		}
	}
	if cond == "" {
		p.t.Fatalf("stream error without a condition: %s", showEl(el))
	}
	p.closed()
	return cond
}

// closed checks that b.test ends the stream (</stream:stream>, or the
// connection closed) and sends nothing else first.
func (p *rawPeer) closed() {
	p.t.Helper()
	el, err := p.dec.Next()
	switch {
	case err == nil:
		p.t.Fatalf("b.test sent %s, want the end of the stream", showEl(el))
	case !errors.Is(err, io.EOF):
		p.t.Fatalf("b.test did not close the stream: %v", err)
	}
}

// showEl renders an element for a failure message.
func showEl(el *wire.Element) string {
	toks := append(append([]xml.Token{el.Start}, el.Inner...), el.Start.End())
	if s := wire.Serialize(toks, 1<<16); s != "" {
		return s
	}
	return "<" + el.Start.Name.Local + " xmlns='" + el.Start.Name.Space + "'/>"
}

func wantStreamError(t *testing.T, p *rawPeer, want string) {
	t.Helper()
	if got := p.streamError(); got != want {
		t.Fatalf("stream error %s, want %s", got, want)
	}
}

// TestRawPeerStreamErrors: after c.test is authenticated, a stanza that
// breaks the rules of server-to-server streams ends the stream with the
// stream error of RFC 6120 it earns: from a domain the stream did not
// authenticate (invalid-from, §4.9.3.10), for a domain b.test does not
// serve, which it does not relay (host-unknown, §4.9.3.6), without 'to'
// (improper-addressing, §8.1.1.1), and a STARTTLS after dialback, which
// comes too late (policy-violation, §5.3.1).
func TestRawPeerStreamErrors(t *testing.T) {
	for _, tc := range []struct{ name, stanza string }{
		{"invalid-from", "<message from='x@evil.test' to='bob@b.test' type='chat'><body>spoofed</body></message>"},
		{"host-unknown", "<message from='eve@c.test/x' to='bob@elsewhere.test' type='chat'><body>relay me</body></message>"},
		{"improper-addressing", "<message from='eve@c.test/x' type='chat'><body>to whom?</body></message>"},
		{"policy-violation", "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, auth := startRaw(t, s2s.DialbackValid)
			p := dialRaw(t, srv)
			p.authenticate(srv, auth)
			p.send(tc.stanza)
			wantStreamError(t, p, tc.name)
		})
	}
}

// TestRawPeerDelivers: once c.test is authenticated, its message to
// bob@b.test reaches bob's session.
func TestRawPeerDelivers(t *testing.T) {
	srv, auth := startRaw(t, s2s.DialbackValid)
	bob := online(t, srv, "bob", "builder")
	p := dialRaw(t, srv)
	p.authenticate(srv, auth)
	p.send("<message from='eve@c.test/x' to='bob@b.test' type='chat' id='c1'><body>hello from c</body></message>")
	got := bob.Next(servertest.Wait, isMessage("eve@c.test/x", "hello from c"))
	if got.Attrs["from"] != "eve@c.test/x" || got.Attrs["id"] != "c1" {
		t.Fatalf("bob got %s", got.XML)
	}
	if to := got.Attrs["to"]; to != "" && !strings.HasPrefix(to, "bob@b.test") {
		t.Fatalf("bob got a message to %q", to)
	}
}

// TestRawPeerInvalidKey: c.test's authoritative server says the key is
// not its own: b.test answers type='invalid' and ends the stream.
func TestRawPeerInvalidKey(t *testing.T) {
	srv, auth := startRaw(t, s2s.DialbackInvalid)
	p := dialRaw(t, srv)
	d := p.result()
	if v := auth.verify(t); v.ID != p.id || v.Key != rawKey {
		t.Fatalf("b.test's <db:verify/> %+v: want id %q and the key c.test sent", v, p.id)
	}
	if d.Type != s2s.DialbackInvalid {
		t.Fatalf("b.test's verdict %+v, want invalid", d)
	}
	wantStreamError(t, p, "not-authorized")
	for _, c := range srv.S2S() {
		if c.Auth != "" {
			t.Fatalf("b.test has an authenticated stream after an invalid key: %+v", c)
		}
	}
}

// TestRawPeerUnsolicitedResult: a <db:result type='valid'/> that answers
// no request of b.test's is dropped (XEP-0220 §3.1): c.test is still not
// authenticated, and its stanza gets invalid-from.
func TestRawPeerUnsolicitedResult(t *testing.T) {
	srv, auth := startRaw(t, s2s.DialbackValid)
	p := dialRaw(t, srv)
	p.send("<db:result type='valid' from='c.test' to='b.test'/>")
	p.send("<message from='eve@c.test/x' to='bob@b.test' type='chat'><body>let me in</body></message>")
	wantStreamError(t, p, "invalid-from")
	auth.none(t)
}

// TestRawPeerBlacklisted: with c.test on b.test's blacklist, its dialback
// request is refused with type='error' and forbidden, without asking
// c.test's authoritative server; c.test stays unauthenticated.
func TestRawPeerBlacklisted(t *testing.T) {
	srv, auth := startRaw(t, s2s.DialbackValid)
	if err := srv.SetAccessLists(servertest.Context(t, servertest.Wait), []string{"c.test"}, nil); err != nil {
		t.Fatal(err)
	}
	p := dialRaw(t, srv)
	d := p.result()
	if d.Type != s2s.DialbackError || d.Error == nil || d.Error.Condition != "forbidden" {
		t.Fatalf("b.test's answer %+v (error %+v), want type='error' with forbidden", d, d.Error)
	}
	auth.none(t)
	p.send("<message from='eve@c.test/x' to='bob@b.test' type='chat'><body>blocked</body></message>")
	wantStreamError(t, p, "invalid-from")
}
