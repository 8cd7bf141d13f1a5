package s2s_test

import (
	"encoding/xml"
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

// The limits of federation (s2s.limits.*, s2s.connect_timeout,
// s2s.idle_timeout; docs/configuration.md, "Federation"), each checked as an
// operator or a user sees it: the stream error a remote server gets, the
// stanza error a local sender gets back, the streams the s2s command lists.
// The remote server is the raw c.test of rawpeer_test.go, a TCP listener
// that never answers, or a second adhocd.

// limRefusedWithin is how soon a refused connection is answered: at once,
// before anything is read from it.
const limRefusedWithin = 2 * time.Second

// limDial opens a TCP connection to srv's s2s listener, closed when the
// test ends, every read and write bounded by within.
func limDial(t *testing.T, srv *servertest.Server, within time.Duration) *rawPeer {
	t.Helper()
	nc, err := net.DialTimeout("tcp", srv.S2SAddr().String(), servertest.Wait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(within))
	return &rawPeer{t: t, nc: nc, dec: wire.NewDecoder(nc, 1<<16, 16, 32)}
}

// limRefused opens a connection to srv and returns the stream error it is
// refused with: a refused connection gets a stream header, the error and
// the end of the stream at once, without b.test reading anything (so this
// side sends nothing, and a connection that is not refused fails the test
// when nothing comes within limRefusedWithin).
func limRefused(t *testing.T, srv *servertest.Server) string {
	t.Helper()
	p := limDial(t, srv, limRefusedWithin)
	if _, err := p.dec.StreamHeader(); err != nil {
		t.Fatalf("no stream header at once from b.test (a connection past a limit is answered before anything is read): %v", err)
	}
	return p.streamError()
}

// limTryRaw opens c.test's stream as dialRaw does, without failing the
// test: the error says why b.test did not answer with its header and
// features (a refusal's stream error, or the connection's failure).
func limTryRaw(t *testing.T, srv *servertest.Server) (*rawPeer, error) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", srv.S2SAddr().String(), servertest.Wait)
	if err != nil {
		return nil, err
	}
	_ = nc.SetDeadline(time.Now().Add(rawDeadline))
	p := &rawPeer{t: t, nc: nc, dec: wire.NewDecoder(nc, 1<<16, 16, 32)}
	fail := func(err error) (*rawPeer, error) {
		_ = nc.Close()
		return nil, err
	}
	if _, err := io.WriteString(nc, rawHeader); err != nil {
		return fail(err)
	}
	st, err := p.dec.StreamHeader()
	if err != nil {
		return fail(err)
	}
	el, err := p.dec.Next()
	if err != nil {
		return fail(err)
	}
	if el.Start.Name != (xml.Name{Space: nsStreams, Local: "features"}) {
		return fail(fmt.Errorf("b.test sent %s, want its features", showEl(el)))
	}
	p.id = wire.AttrOf(st, "id")
	t.Cleanup(func() { _ = nc.Close() })
	return p, nil
}

// limEventuallyRaw opens c.test's stream, retrying for servertest.Wait
// while b.test refuses it (until a closed one has been accounted for).
func limEventuallyRaw(t *testing.T, srv *servertest.Server) *rawPeer {
	t.Helper()
	deadline := time.Now().Add(servertest.Wait)
	for {
		p, err := limTryRaw(t, srv)
		if err == nil {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("no s2s connection accepted after one closed: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// limInbound counts srv's inbound streams: all of them, and those
// authenticated.
func limInbound(srv *servertest.Server) (all, authed int) {
	for _, c := range srv.S2S() {
		if c.Inbound {
			all++
			if c.Auth != "" {
				authed++
			}
		}
	}
	return all, authed
}

// limErrors collects the message errors c receives, by id, until each of
// ids has one or within has passed.
func limErrors(c *servertest.Client, within time.Duration, ids ...string) map[string][]servertest.Stanza {
	got := map[string][]servertest.Stanza{}
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	deadline := time.Now().Add(within)
	for len(want) > 0 {
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		s, ok := c.Wait(left, func(s servertest.Stanza) bool { return s.Name == "message" && s.Attrs["type"] == "error" })
		if !ok {
			break
		}
		got[s.Attrs["id"]] = append(got[s.Attrs["id"]], s)
		delete(want, s.Attrs["id"])
	}
	return got
}

// limCondition is the stanza error condition of an error stanza, with its
// type: "wait resource-constraint", say.
func limCondition(s servertest.Stanza) string {
	var v struct {
		Error struct {
			Type  string `xml:"type,attr"`
			Inner []struct {
				XMLName xml.Name
			} `xml:",any"`
		} `xml:"error"`
	}
	if err := s.Decode(&v); err != nil {
		return "undecodable: " + err.Error()
	}
	for _, k := range v.Error.Inner {
		if k.XMLName.Space == "urn:ietf:params:xml:ns:xmpp-stanzas" && k.XMLName.Local != "text" {
			return v.Error.Type + " " + k.XMLName.Local
		}
	}
	return v.Error.Type + " (no condition)"
}

// limSend sends each stanza as c, failing the test on an error.
func limSend(t *testing.T, c *servertest.Client, stanzas ...string) {
	t.Helper()
	ctx := servertest.Context(t, servertest.Wait)
	for _, s := range stanzas {
		if err := c.SendRaw(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
}

// silentServer is a remote server that is up but hung: it accepts TCP
// connections and never writes a byte.
type silentServer struct {
	ln net.Listener

	mu    sync.Mutex
	conns []net.Conn
}

func startSilent(t *testing.T) *silentServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &silentServer{ln: ln}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, nc)
			s.mu.Unlock()
			// What the server writes is read and dropped, so that it
			// never waits on a full socket buffer.
			go func() { _, _ = io.Copy(io.Discard, nc) }()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
		s.mu.Lock()
		for _, c := range s.conns {
			_ = c.Close()
		}
		s.mu.Unlock()
	})
	return s
}

func (s *silentServer) accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// TestLimitMaxPending: with s2s.limits.max_pending 2, two connections that
// send their stream header and never authenticate are both held; a third
// gets a stream header and resource-constraint and is closed. Once one of
// the two closes, a new connection is taken; once one authenticates, it no
// longer counts as pending either.
func TestLimitMaxPending(t *testing.T) {
	srv, auth := startRawWith(t, s2s.DialbackValid, func(s *config.S2S) {
		s.Limits.MaxPending = 2
		// The held connections must outlive the case.
		s.ConnectTimeout = config.Duration(10 * time.Second)
	})
	first, second := dialRaw(t, srv), dialRaw(t, srv)
	if all, authed := limInbound(srv); all != 2 || authed != 0 {
		t.Fatalf("b.test lists %d inbound streams, %d authenticated: %+v; want the 2 pending", all, authed, srv.S2S())
	}
	if cond := limRefused(t, srv); cond != "resource-constraint" {
		t.Fatalf("a third unauthenticated connection: stream error %s, want resource-constraint", cond)
	}
	// The held ones are untouched by the refusal: each still gets an
	// answer (a <db:verify/> is answered on any inbound stream).
	second.send("<db:verify from='c.test' to='b.test' id='x'>" + rawKey + "</db:verify>")
	if el := second.next(); s2s.DialbackKindOf(el.Start.Name) != s2s.DialbackVerify {
		t.Fatalf("a held connection got %s, want the answer to its <db:verify/>", showEl(el))
	}

	_ = first.nc.Close()
	third := limEventuallyRaw(t, srv)
	if cond := limRefused(t, srv); cond != "resource-constraint" {
		t.Fatalf("past max_pending again: stream error %s, want resource-constraint", cond)
	}
	// An authenticated stream is no longer pending: its slot is free.
	third.authenticate(srv, auth)
	limEventuallyRaw(t, srv)
	if all, authed := limInbound(srv); all != 3 || authed != 1 {
		t.Errorf("b.test lists %d inbound streams, %d authenticated: %+v; want 3, 1 authenticated", all, authed, srv.S2S())
	}
}

// TestLimitMaxConnections: with s2s.limits.max_connections 2, c.test's
// authenticated stream and one pending connection fill b.test: the next
// connection is refused with resource-constraint, and a local user's
// message to another domain, which needs an outbound stream, comes back
// with resource-constraint. Once a stream closes, a connection is taken
// again.
func TestLimitMaxConnections(t *testing.T) {
	srv, auth := startRawWith(t, s2s.DialbackValid, func(s *config.S2S) {
		s.Limits.MaxConnections = 2
		s.Limits.MaxConnectionsPerDomain = 1
		s.Hosts["d.test"] = servertest.FreeAddr(t)
	})
	bob := online(t, srv, "bob", "builder")
	p := dialRaw(t, srv)
	p.authenticate(srv, auth)
	pending := dialRaw(t, srv)
	if cond := limRefused(t, srv); cond != "resource-constraint" {
		t.Fatalf("a connection past max_connections: stream error %s, want resource-constraint", cond)
	}
	limSend(t, bob, "<message to='dave@d.test' type='chat' id='d1'><body>over the limit</body></message>")
	got := limErrors(bob, servertest.Wait, "d1")
	if len(got["d1"]) != 1 || limCondition(got["d1"][0]) != "wait resource-constraint" {
		t.Fatalf("bob's message past max_connections: errors %v, want one wait resource-constraint", got)
	}
	for _, c := range srv.S2S() {
		if !c.Inbound {
			t.Errorf("an outbound stream was opened past max_connections: %+v", c)
		}
	}
	// c.test's stream still works.
	p.send("<message from='eve@c.test/x' to='bob@b.test' type='chat' id='c1'><body>still here</body></message>")
	bob.Next(servertest.Wait, isMessage("eve@c.test/x", "still here"))

	_ = pending.nc.Close()
	limEventuallyRaw(t, srv)
}

// TestLimitMaxConnectionsPerDomain: with s2s.limits.max_connections_per_domain
// 1, c.test's authenticated inbound stream is the one stream b.test may
// have with c.test: a local user's message to c.test, which needs an
// outbound stream, comes back at once with resource-constraint, and no
// outbound stream is opened; a second stream from c.test cannot
// authenticate (its dialback request gets type='error' with
// resource-constraint, without a verification). Once c.test's stream
// closes, the message opens an outbound stream.
func TestLimitMaxConnectionsPerDomain(t *testing.T) {
	srv, auth := startRawWith(t, s2s.DialbackValid, func(s *config.S2S) {
		s.Limits.MaxConnections = 10
		s.Limits.MaxConnectionsPerDomain = 1
	})
	bob := online(t, srv, "bob", "builder")
	p := dialRaw(t, srv)
	p.authenticate(srv, auth)

	start := time.Now()
	limSend(t, bob, "<message to='eve@c.test' type='chat' id='e1'><body>one stream only</body></message>")
	got := limErrors(bob, servertest.Wait, "e1")
	if len(got["e1"]) != 1 || limCondition(got["e1"][0]) != "wait resource-constraint" {
		t.Fatalf("bob's message past max_connections_per_domain: errors %v, want one wait resource-constraint", got)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("the error took %v, want it at once", d)
	}
	for _, c := range srv.S2S() {
		if !c.Inbound {
			t.Errorf("an outbound stream to c.test was opened past max_connections_per_domain: %+v", c)
		}
	}

	second := dialRaw(t, srv)
	d := second.result()
	if d.Type != s2s.DialbackError || d.Error == nil || d.Error.Condition != "resource-constraint" {
		t.Fatalf("a second stream from c.test past max_connections_per_domain: verdict %+v (error %+v), want type='error' with resource-constraint", d, d.Error)
	}
	auth.none(t)
	if _, authed := limInbound(srv); authed != 1 {
		t.Errorf("b.test has %d authenticated inbound streams: %+v, want c.test's first only", authed, srv.S2S())
	}

	_ = p.nc.Close()
	deadline := time.Now().Add(servertest.Wait)
	for n := 2; ; n++ {
		limSend(t, bob, fmt.Sprintf("<message to='eve@c.test' type='chat' id='e%d'><body>a stream of my own</body></message>", n))
		out := false
		for _, c := range srv.S2S() {
			out = out || (!c.Inbound && c.Remote == "c.test")
		}
		if out {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no outbound stream to c.test after its inbound stream closed: %+v", srv.S2S())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// limBig is a message whose body makes it larger than 2048 bytes.
func limBig(to, id string) string {
	return "<message to='" + to + "' type='chat' id='" + id + "'><body>" + strings.Repeat("x", 2500) + "</body></message>"
}

// TestLimitMaxStanzaBytesInbound: with s2s.limits.max_stanza_bytes 2048, an
// authenticated remote server that sends a larger stanza gets
// policy-violation and its stream ends; one just under the limit is
// delivered, and another stream from c.test is served after.
func TestLimitMaxStanzaBytesInbound(t *testing.T) {
	srv, auth := startRawWith(t, s2s.DialbackValid, func(s *config.S2S) { s.Limits.MaxStanzaBytes = 2048 })
	bob := online(t, srv, "bob", "builder")
	p := dialRaw(t, srv)
	p.authenticate(srv, auth)
	fits := "<message from='eve@c.test/x' to='bob@b.test' type='chat' id='c1'><body>" + strings.Repeat("y", 1800) + "</body></message>"
	p.send(fits)
	bob.Next(servertest.Wait, isMessage("eve@c.test/x", strings.Repeat("y", 1800)))
	p.send("<message from='eve@c.test/x' to='bob@b.test' type='chat' id='c2'><body>" + strings.Repeat("x", 2500) + "</body></message>")
	wantStreamError(t, p, "policy-violation")

	again := dialRaw(t, srv)
	again.authenticate(srv, auth)
	again.send("<message from='eve@c.test/x' to='bob@b.test' type='chat' id='c3'><body>after the big one</body></message>")
	bob.Next(servertest.Wait, isMessage("eve@c.test/x", "after the big one"))
	if _, ok := bob.Wait(200*time.Millisecond, isMessage("eve@c.test/x", strings.Repeat("x", 2500))); ok {
		t.Error("bob got the stanza larger than max_stanza_bytes")
	}
}

// TestLimitMaxStanzaBytesOutbound: with s2s.limits.max_stanza_bytes 2048 on
// a.test, a user's message larger than that to a user of b.test comes back
// to her at once as a message error, policy-violation (modify), and is not
// delivered; her next message, and another user's, cross as before.
func TestLimitMaxStanzaBytesOutbound(t *testing.T) {
	a, b := pair(t, func(a, _ *config.Config) { a.S2S.Limits.MaxStanzaBytes = 2048 })
	alice, carol := online(t, a, "alice", "wonderland"), online(t, a, "carol", "caroline")
	bob := online(t, b, "bob", "builder")
	limSend(t, alice, limBig("bob@b.test", "big1"))
	got := limErrors(alice, servertest.Wait, "big1")
	if len(got["big1"]) != 1 || limCondition(got["big1"][0]) != "modify policy-violation" {
		t.Fatalf("alice's oversized message: errors %v, want one modify policy-violation", got)
	}
	limSend(t, alice, "<message to='bob@b.test' type='chat' id='s1'><body>small from alice</body></message>")
	limSend(t, carol, "<message to='bob@b.test' type='chat' id='s2'><body>small from carol</body></message>")
	// The two cross in either order.
	seen := map[string]bool{}
	for len(seen) < 2 {
		s := bob.Next(crossing, func(s servertest.Stanza) bool {
			return isMessage("alice@a.test/", "small from alice")(s) || isMessage("carol@a.test/", "small from carol")(s)
		})
		seen[s.Attrs["id"]] = true
	}
	if _, ok := bob.Wait(200*time.Millisecond, isMessage("alice@a.test/", strings.Repeat("x", 2500))); ok {
		t.Error("bob got the message larger than max_stanza_bytes")
	}
}

// TestLimitQueue: with s2s.limits.queue_stanzas 3, six messages sent at
// once to a domain whose server accepts the connection and never answers:
// the first three wait for the stream, the others come back at once with
// resource-constraint; when s2s.connect_timeout passes, the three queued
// come back too, with remote-server-not-found (cancel): the server never
// answered with a stream header, so no stream was ever opened (the first
// row of the bounce table of docs/design-federation.md §4, as Prosody's
// had_stream). Each message gets exactly one error, and one connection was
// tried, not one per message.
func TestLimitQueue(t *testing.T) {
	hung := startSilent(t)
	cfg := servertest.Config(t.TempDir())
	cfg.Domain = "a.test"
	cfg.S2S.Listen = "127.0.0.1:0"
	cfg.S2S.Hosts = map[string]string{"c.test": hung.ln.Addr().String()}
	cfg.S2S.ConnectTimeout = config.Duration(2 * time.Second)
	cfg.S2S.Limits.QueueStanzas = 3
	a := servertest.StartConfig(t, cfg)
	alice := online(t, a, "alice", "wonderland")

	ids := []string{"q1", "q2", "q3", "q4", "q5", "q6"}
	var msgs []string
	for _, id := range ids {
		msgs = append(msgs, "<message to='eve@c.test' type='chat' id='"+id+"'><body>queued "+id+"</body></message>")
	}
	start := time.Now()
	limSend(t, alice, msgs...)
	early := limErrors(alice, time.Second, "q4", "q5", "q6")
	for _, id := range ids[3:] {
		if len(early[id]) != 1 || limCondition(early[id][0]) != "wait resource-constraint" {
			t.Errorf("%s, past queue_stanzas: errors %v within a second, want one wait resource-constraint", id, early[id])
		}
	}
	for _, id := range ids[:3] {
		if len(early[id]) != 0 {
			t.Errorf("%s, queued, came back before the connect timeout: %v", id, early[id])
		}
	}
	if q := a.S2S(); len(q) != 1 || q[0].Inbound || q[0].Remote != "c.test" || q[0].Auth != "" || q[0].Queued != 3 {
		t.Errorf("a.test's streams while c.test's is set up: %+v, want one outbound, negotiating, 3 queued", q)
	}

	late := limErrors(alice, 3*time.Second, "q1", "q2", "q3")
	if d := time.Since(start); d < 2*time.Second {
		t.Errorf("the queued messages came back after %v, before connect_timeout 2s", d)
	}
	for _, id := range ids[:3] {
		if len(late[id]) != 1 || limCondition(late[id][0]) != "cancel remote-server-not-found" {
			t.Errorf("%s, queued when connect_timeout passed: errors %v, want one cancel remote-server-not-found", id, late[id])
		}
	}
	// Nothing more comes: no second error, no lost one found late.
	if s, ok := alice.Wait(300*time.Millisecond, func(s servertest.Stanza) bool { return s.Name == "message" }); ok {
		t.Errorf("alice got another message after one error each: %s", s.XML)
	}
	if n := hung.accepted(); n != 1 {
		t.Errorf("c.test's server got %d connections, want 1 for the pair", n)
	}
	if q := a.S2S(); len(q) != 0 {
		t.Errorf("a.test's streams after the failure: %+v, want none", q)
	}
}

// TestLimitIdleTimeout: with s2s.idle_timeout 1s on both servers, the
// streams a message opened are listed, then gone within a few seconds of
// silence, both ways; the next message opens new ones and crosses.
func TestLimitIdleTimeout(t *testing.T) {
	a, b := pair(t, func(a, b *config.Config) {
		a.S2S.IdleTimeout = config.Duration(time.Second)
		b.S2S.IdleTimeout = config.Duration(time.Second)
	})
	alice, bob := online(t, a, "alice", "wonderland"), online(t, b, "bob", "builder")
	limSend(t, alice, "<message to='bob@b.test' type='chat' id='i1'><body>before the silence</body></message>")
	bob.Next(crossing, isMessage("alice@a.test/", "before the silence"))
	first := conn(t, a, "b.test", false)
	conn(t, b, "a.test", true)

	deadline := time.Now().Add(4 * time.Second)
	for len(a.S2S())+len(b.S2S()) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("streams still open after 4s with idle_timeout 1s: a.test %+v, b.test %+v", a.S2S(), b.S2S())
		}
		time.Sleep(50 * time.Millisecond)
	}

	limSend(t, alice, "<message to='bob@b.test' type='chat' id='i2'><body>after the silence</body></message>")
	bob.Next(crossing, isMessage("alice@a.test/", "after the silence"))
	if again := conn(t, a, "b.test", false); !again.Since.After(first.Since) {
		t.Errorf("the outbound stream after the idle close %+v is not a new one (the first: %+v)", again, first)
	}
}

// TestLimitIdleTimeoutInbound: with s2s.idle_timeout 1s, an inbound stream
// that authenticated and then sends nothing is closed with
// connection-timeout within a few seconds, freeing its slot.
func TestLimitIdleTimeoutInbound(t *testing.T) {
	srv, auth := startRawWith(t, s2s.DialbackValid, func(s *config.S2S) { s.IdleTimeout = config.Duration(time.Second) })
	p := dialRaw(t, srv)
	p.authenticate(srv, auth)
	start := time.Now()
	_ = p.nc.SetDeadline(start.Add(4 * time.Second))
	wantStreamError(t, p, "connection-timeout")
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the silent authenticated stream was closed after %v, want about idle_timeout 1s", d)
	}
	deadline := time.Now().Add(servertest.Wait)
	for {
		if all, _ := limInbound(srv); all == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the idle stream is still listed: %+v", srv.S2S())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLimitConnectTimeoutInbound: with s2s.connect_timeout 1s, an inbound
// connection that sends nothing, or only its stream header, is closed with
// connection-timeout after about a second (it never authenticated), and the
// server still takes new streams.
func TestLimitConnectTimeoutInbound(t *testing.T) {
	srv, auth := startRawWith(t, s2s.DialbackValid, func(s *config.S2S) { s.ConnectTimeout = config.Duration(time.Second) })
	t.Run("nothing", func(t *testing.T) {
		start := time.Now()
		p := limDial(t, srv, 4*time.Second)
		if _, err := p.dec.StreamHeader(); err != nil {
			t.Fatalf("no stream header before the stream error: %v", err)
		}
		wantStreamError(t, p, "connection-timeout")
		if d := time.Since(start); d < 900*time.Millisecond || d > 3*time.Second {
			t.Errorf("a silent connection was closed after %v, want about connect_timeout 1s", d)
		}
	})
	t.Run("header only", func(t *testing.T) {
		start := time.Now()
		p := dialRaw(t, srv)
		_ = p.nc.SetDeadline(start.Add(4 * time.Second))
		wantStreamError(t, p, "connection-timeout")
		if d := time.Since(start); d < 900*time.Millisecond || d > 3*time.Second {
			t.Errorf("an unauthenticated stream was closed after %v, want about connect_timeout 1s", d)
		}
	})
	// The server still serves: a stream that authenticates in time stays.
	p := dialRaw(t, srv)
	p.authenticate(srv, auth)
	time.Sleep(1200 * time.Millisecond)
	p.send("<db:verify from='c.test' to='b.test' id='x'>" + rawKey + "</db:verify>")
	if el := p.next(); s2s.DialbackKindOf(el.Start.Name) != s2s.DialbackVerify {
		t.Fatalf("an authenticated stream past connect_timeout got %s, want the answer to its <db:verify/>", showEl(el))
	}
}

// gatedAuthority is c.test's authoritative server answering each
// <db:verify/> with valid only once the test opens its gate: the verdict
// can then be made to come after the stream that asked for it is gone.
type gatedAuthority struct {
	ln       net.Listener
	verifies chan struct{}
	gate     chan struct{}
}

func startGatedAuthority(t *testing.T) *gatedAuthority {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &gatedAuthority{ln: ln, verifies: make(chan struct{}, 16), gate: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer nc.Close()
				_ = nc.SetDeadline(time.Now().Add(rawDeadline))
				dec := wire.NewDecoder(nc, 1<<16, 16, 32)
				if _, err := dec.StreamHeader(); err != nil {
					return
				}
				if _, err := io.WriteString(nc, "<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='"+nsStreams+
					"' xmlns:db='jabber:server:dialback' from='c.test' to='b.test' id='gated' version='1.0'><stream:features/>"); err != nil {
					return
				}
				for {
					el, err := dec.Next()
					if err != nil {
						return
					}
					d, err := s2s.ParseDialback(el)
					if err != nil || d.Kind != s2s.DialbackVerify {
						continue
					}
					a.verifies <- struct{}{}
					select {
					case <-a.gate:
					case <-time.After(rawDeadline):
						return
					}
					b, err := s2s.Dialback{Kind: s2s.DialbackVerify, From: d.To, To: d.From, ID: d.ID, Type: s2s.DialbackValid}.Marshal(false)
					if err != nil {
						return
					}
					if _, err := nc.Write(b); err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
	})
	return a
}

// TestLimitMaxPendingAbandonedDialback: a remote server that asks for
// dialback and closes its stream before the verdict comes (a valid one:
// it is the authoritative server of its own domain) frees its pending slot
// once, not twice: with s2s.limits.max_pending 1, a connection afterwards
// is held and the next one is still refused with resource-constraint.
func TestLimitMaxPendingAbandonedDialback(t *testing.T) {
	auth := startGatedAuthority(t)
	srv := rawServer(t, auth.ln.Addr().String(), func(c *config.S2S) { c.Limits.MaxPending = 1 })

	for n := range 3 {
		p := dialRaw(t, srv)
		p.send("<db:result from='c.test' to='b.test'>" + rawKey + "</db:result>")
		select {
		case <-auth.verifies:
		case <-time.After(servertest.Wait):
			t.Fatal("b.test never asked c.test's authoritative server to verify the key")
		}
		_ = p.nc.Close()
		deadline := time.Now().Add(servertest.Wait)
		for {
			if all, _ := limInbound(srv); all == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("attempt %d: the closed stream is still listed: %+v", n, srv.S2S())
			}
			time.Sleep(10 * time.Millisecond)
		}
		auth.gate <- struct{}{} // the valid verdict, for a stream that is gone
	}
	// Let the verdicts land.
	time.Sleep(300 * time.Millisecond)
	dialRaw(t, srv)
	if cond := limRefused(t, srv); cond != "resource-constraint" {
		t.Fatalf("a second pending connection with max_pending 1, after abandoned dialbacks: stream error %s, want resource-constraint", cond)
	}
}
