package s2s_test

import (
	"crypto/tls"
	"encoding/xml"
	"net"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/s2s"
	"github.com/adhocd/adhocd/server"
	"github.com/adhocd/adhocd/servertest"
)

// Inbound direct TLS (XEP-0368): s2s.direct_tls_listen, whose connections
// begin with TLS and ALPN xmpp-server, then carry the ordinary inbound
// stream with TLS already on (docs/design-federation.md §9, case 7).

// directTLSPair starts a.test and b.test federated, b.test with a direct
// TLS listener that is a.test's only way to b.test: a.test finds it
// through an _xmpps-server SRV record (XEP-0368 §3) of its DNS, which has
// no _xmpp-server record, and b.test is not in its static host map. Every
// stream a.test opens to b.test, and so every stanza it sends there, goes
// through that listener. b.test reaches a.test's ordinary listener
// through its static host map, as servertest.Federated sets it.
func directTLSPair(t *testing.T, edit func(a, b *config.Config)) (a, b *servertest.Server) {
	t.Helper()
	tlsAddr := servertest.FreeAddr(t)
	_, port, err := net.SplitHostPort(tlsAddr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		t.Fatal(err)
	}
	dns := &fakeDNS{
		srv:   map[string]srvReply{"_xmpps-server._tcp.b.test.": {recs: []*net.SRV{{Target: "xmpp.b.test.", Port: uint16(n)}}}},
		hosts: map[string]hostReply{"xmpp.b.test.": {addrs: []string{"127.0.0.1"}}},
	}
	addrA, addrB := servertest.FreeAddr(t), servertest.FreeAddr(t)
	ca, cb := servertest.Config(t.TempDir()), servertest.Config(t.TempDir())
	ca.Domain, cb.Domain = "a.test", "b.test"
	ca.S2S.Listen, cb.S2S.Listen = addrA, addrB
	cb.S2S.DirectTLSListen = tlsAddr
	cb.S2S.Hosts = map[string]string{"a.test": addrA}
	if edit != nil {
		edit(&ca, &cb)
	}
	a, b = servertest.StartConfig(t, ca, server.WithS2SDNS(dns)), servertest.StartConfig(t, cb)
	if got := b.S2SDirectTLSAddr(); got == nil || got.String() != tlsAddr {
		t.Fatalf("b.test's direct TLS listener is at %v, want %s", got, tlsAddr)
	}
	if a.S2SDirectTLSAddr() != nil {
		t.Fatalf("a.test has a direct TLS listener at %v without s2s.direct_tls_listen", a.S2SDirectTLSAddr())
	}
	t.Cleanup(func() {
		if q := dns.queries(); !slices.Contains(q, "SRV _xmpps-server._tcp.b.test.") {
			t.Errorf("a.test never looked b.test's direct TLS service up: %v", q)
		}
	})
	return a, b
}

// TestDirectTLSDialback: with self-signed certificates, a.test's stream
// to b.test's direct TLS listener is authenticated by dialback; messages
// cross both ways (b.test answers over its own STARTTLS stream to
// a.test's ordinary listener), and both ends of the direct TLS stream
// report TLS.
func TestDirectTLSDialback(t *testing.T) {
	a, b := directTLSPair(t, nil)
	exchange(t, a, b)
	for _, c := range []s2s.Conn{conn(t, a, "b.test", false), conn(t, b, "a.test", true)} {
		if c.Auth != "dialback" || !c.TLS {
			t.Errorf("direct TLS stream %+v: want dialback over TLS", c)
		}
	}
}

// TestDirectTLSExternal: with certificates of a test CA that both trust,
// and valid certificates required, a.test authenticates its direct TLS
// stream to b.test with SASL EXTERNAL: b.test asked for a.test's
// certificate in the direct TLS handshake.
func TestDirectTLSExternal(t *testing.T) {
	a, b := verifiedPair(t, directTLSPair, nil)
	exchange(t, a, b)
	for _, c := range []s2s.Conn{conn(t, a, "b.test", false), conn(t, b, "a.test", true)} {
		if c.Auth != "external" || !c.TLS {
			t.Errorf("direct TLS stream %+v: want SASL EXTERNAL over TLS", c)
		}
	}
}

// startDirectTLS starts b.test alone with a direct TLS listener; edit, if
// set, changes its configuration first.
func startDirectTLS(t *testing.T, edit func(*config.Config)) *servertest.Server {
	t.Helper()
	cfg := servertest.Config(t.TempDir())
	cfg.Domain = "b.test"
	cfg.S2S.Listen = "127.0.0.1:0"
	cfg.S2S.DirectTLSListen = "127.0.0.1:0"
	cfg.S2S.ConnectTimeout = config.Duration(5 * time.Second)
	if edit != nil {
		edit(&cfg)
	}
	srv := servertest.StartConfig(t, cfg)
	if srv.S2SDirectTLSAddr() == nil {
		t.Fatal("b.test has no direct TLS listener")
	}
	return srv
}

// tlsDial opens a TLS connection to srv's direct TLS listener, trusting
// its self-signed certificate, offering the ALPN protocols alpn (none if
// empty).
func tlsDial(t *testing.T, srv *servertest.Server, alpn ...string) (*tls.Conn, error) {
	t.Helper()
	cfg := srv.ClientTLS.Clone()
	cfg.NextProtos = alpn
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: servertest.Wait}, Config: cfg}
	nc, err := d.DialContext(servertest.Context(t, rawDeadline), "tcp", srv.S2SDirectTLSAddr().String())
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = nc.Close() })
	tc := nc.(*tls.Conn)
	_ = tc.SetDeadline(time.Now().Add(rawDeadline))
	return tc, nil
}

// TestDirectTLSRaw: a raw peer's TLS connection to the direct TLS
// listener negotiates ALPN xmpp-server; the stream that follows offers
// no STARTTLS, TLS being on, and dialback although TLS is required; a
// second <starttls/> is refused. A peer without ALPN is accepted, one
// offering only xmpp-client is not.
func TestDirectTLSRaw(t *testing.T) {
	srv := startDirectTLS(t, nil) // s2s.require_tls on, by default
	tc, err := tlsDial(t, srv, "xmpp-server")
	if err != nil {
		t.Fatalf("direct TLS with ALPN xmpp-server: %v", err)
	}
	if got := tc.ConnectionState().NegotiatedProtocol; got != "xmpp-server" {
		t.Fatalf("ALPN negotiated %q, want xmpp-server", got)
	}
	p, f := openRaw(t, tc)
	if k := f.Sub(xml.Name{Space: "urn:ietf:params:xml:ns:xmpp-tls", Local: "starttls"}); k != nil {
		t.Errorf("the features over direct TLS offer STARTTLS: %s", showEl(f))
	}
	if f.Sub(xml.Name{Space: s2s.NSDialbackFeature, Local: "dialback"}) == nil {
		t.Errorf("the features over direct TLS offer no dialback, though TLS is on: %s", showEl(f))
	}
	if f.Sub(xml.Name{Space: "urn:ietf:params:xml:ns:xmpp-sasl", Local: "mechanisms"}) != nil {
		t.Errorf("the features offer SASL EXTERNAL to a peer without a certificate: %s", showEl(f))
	}
	c := waitConn(t, srv, func(c s2s.Conn) bool { return c.Inbound && c.Remote == "c.test" })
	if !c.TLS || c.Auth != "" {
		t.Errorf("b.test's stream from c.test: %+v, want TLS, not authenticated", c)
	}
	p.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
	wantStreamError(t, p, "policy-violation")

	tc, err = tlsDial(t, srv)
	if err != nil {
		t.Fatalf("direct TLS without ALPN: %v", err)
	}
	if got := tc.ConnectionState().NegotiatedProtocol; got != "" {
		t.Errorf("ALPN negotiated %q with a peer that offered none", got)
	}
	openRaw(t, tc)

	if _, err := tlsDial(t, srv, "xmpp-client"); err == nil {
		t.Error("a TLS handshake offering only ALPN xmpp-client succeeded on the s2s direct TLS listener")
	}
}

// waitConn returns the first stream of srv that ok accepts, or fails the
// test once servertest.Wait has passed.
func waitConn(t *testing.T, srv *servertest.Server, ok func(s2s.Conn) bool) s2s.Conn {
	t.Helper()
	deadline := time.Now().Add(servertest.Wait)
	for {
		for _, c := range srv.S2S() {
			if ok(c) {
				return c
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no such stream on %s: %+v", srv.Domain(), srv.S2S())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDirectTLSRawDelivers: c.test, played raw over direct TLS,
// authenticates by dialback (c.test's authoritative server, reached
// without TLS, says the key is valid) and its message reaches bob@b.test.
func TestDirectTLSRawDelivers(t *testing.T) {
	auth := startAuthority(t, s2s.DialbackValid)
	srv := startDirectTLS(t, func(c *config.Config) {
		c.S2S.RequireTLS = false // for the authoritative server's stream
		c.S2S.Hosts = map[string]string{"c.test": auth.ln.Addr().String()}
	})
	bob := online(t, srv, "bob", "builder")
	tc, err := tlsDial(t, srv, "xmpp-server")
	if err != nil {
		t.Fatal(err)
	}
	p, f := openRaw(t, tc)
	if f.Sub(xml.Name{Space: "urn:ietf:params:xml:ns:xmpp-tls", Local: "starttls"}) != nil {
		t.Errorf("the features over direct TLS offer STARTTLS: %s", showEl(f))
	}
	p.send("<db:result from='c.test' to='b.test'>" + rawKey + "</db:result>")
	if v := auth.verify(t); v.ID != p.id || v.Key != rawKey {
		t.Fatalf("b.test's <db:verify/> %+v: want id %q and the key c.test sent", v, p.id)
	}
	if d := p.nextResult(); d.Type != s2s.DialbackValid {
		t.Fatalf("b.test's verdict: %+v, want valid", d)
	}
	if c := conn(t, srv, "c.test", true); c.Auth != "dialback" || !c.TLS {
		t.Errorf("b.test's stream from c.test: %+v, want dialback over TLS", c)
	}
	p.send("<message from='eve@c.test/x' to='bob@b.test' type='chat' id='c1'><body>hello over direct TLS</body></message>")
	got := bob.Next(servertest.Wait, isMessage("eve@c.test/x", "hello over direct TLS"))
	if got.Attrs["id"] != "c1" {
		t.Errorf("bob got %s", got.XML)
	}
}

// TestDirectTLSLimits: the direct TLS listener counts against
// s2s.limits.max_pending as the other does: with one connection still
// unauthenticated, the next is closed before its TLS handshake; once the
// first goes, a new one is taken. Stopping the server closes the listener.
func TestDirectTLSLimits(t *testing.T) {
	srv := startDirectTLS(t, func(c *config.Config) { c.S2S.Limits.MaxPending = 1 })
	first, err := tlsDial(t, srv, "xmpp-server")
	if err != nil {
		t.Fatal(err)
	}
	openRaw(t, first)
	if _, err := tlsDial(t, srv, "xmpp-server"); err == nil {
		t.Fatal("a second unauthenticated direct TLS connection was taken past max_pending 1")
	}
	_ = first.Close()
	deadline := time.Now().Add(servertest.Wait)
	for {
		tc, err := tlsDial(t, srv, "xmpp-server")
		if err == nil {
			openRaw(t, tc)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no direct TLS connection taken after the first closed: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	addr := srv.S2SDirectTLSAddr().String()
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if nc, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		_ = nc.Close()
		t.Errorf("the direct TLS listener %s still accepts after the server stopped", addr)
	}
}
