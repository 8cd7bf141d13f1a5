package s2s

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/s2s/s2stest"
	"github.com/adhocd/adhocd/wire"
)

// FuzzInboundStream feeds arbitrary bytes to an inbound stream as a remote
// server would send them (RFC 6120 §4, XEP-0220), after a valid stream
// header or instead of one, and checks what must hold whatever comes: the
// pool never panics, it closes the connection within a bound (connect_timeout
// before authentication, idle_timeout after), it stops with no goroutine
// left, and it never hands Host.Receive a stanza from a domain that no stream
// authenticated (nor to one it does not serve).
//
// mode picks where the bytes go: 0, from the first byte (the header is the
// fuzzer's); 1, after a valid header from c.test and the server's features;
// 2, the same, with c.test then authenticated on the stream as a dialback
// verdict would (the stanza path). Nothing can authenticate otherwise: the
// only domain the access lists allow, c.test, has its authoritative server
// at a closed loopback port, so every <db:result/> fails its verification;
// the TLS certificate is self-signed and EXTERNAL is never offered.
//
// Each input runs on a pool of its own over net.Pipe, with timeouts of
// 20 ms: no listener, no server.
func FuzzInboundStream(f *testing.F) {
	for _, s := range []struct {
		mode byte
		data string
	}{
		{0, fuzzHeader},
		{0, fuzzHeader + "<db:result from='c.test' to='b.test'>k</db:result>"},
		{0, fuzzHeader + "\x00<<>&garbage</stream:stream>"},
		{0, "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='b.test' version='1.0'>"},
		{1, "<db:result from='c.test' to='b.test'>0123456789abcdef</db:result>"},
		{1, "<db:verify from='c.test' to='b.test' id='x'>0123456789abcdef</db:verify>"},
		{1, "<db:result type='valid' from='c.test' to='b.test'/><message from='eve@c.test' to='bob@b.test'><body>hi</body></message>"},
		{1, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"},
		{1, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\x16\x03\x01\x00\x05hello"},
		{1, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>"},
		{1, "<message from='eve@c.test' to='bob@b.test'><body>not authenticated</body></message>"},
		{1, "<db:result from='c.test' to='b.test'>k</db:result><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"},
		{1, "junk"},
		{2, "<message from='eve@c.test/x' to='bob@b.test' type='chat'><body>hi</body></message>"},
		// Silent, or a stanza that never ends, right after the verdict:
		// idle_timeout must still end the stream.
		{2, ""},
		{2, "<message from='eve@c.test/x' to='bob@b.test'><body>never ends"},
		{2, "<message from='x@evil.test' to='bob@b.test'><body>spoofed</body></message>"},
		{2, "<iq from='c.test' to='elsewhere.test' type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>"},
		{2, "<presence from='eve@c.test/x' to='bob@b.test'/></stream:stream>"},
		{2, "<message from='eve@c.test/x' to='bob@b.test'><body>" + strings.Repeat("x", 5000) + "</body></message>"},
	} {
		f.Add(s.mode, []byte(s.data))
	}
	f.Fuzz(func(t *testing.T, mode byte, data []byte) {
		fuzzInbound(t, mode%3, data, 20*time.Millisecond)
	})
}

// TestFuzzInboundHarness: the fuzz target's harness delivers what it must,
// so that its invariants are not vacuous: a stanza from the domain marked
// authenticated reaches Host.Receive; the same stanza on a stream where
// nothing authenticated ends it with invalid-from and reaches nothing.
func TestFuzzInboundHarness(t *testing.T) {
	msg := "<message from='eve@c.test/x' to='bob@b.test' type='chat'><body>hi</body></message></stream:stream>"
	if r := fuzzInbound(t, 2, []byte(msg), 2*time.Second); len(r.received) != 1 || r.received[0] != "eve@c.test/x" {
		t.Errorf("authenticated: Host.Receive got %q, want the one message from eve@c.test/x; the server wrote %s", r.received, r.out)
	}
	r := fuzzInbound(t, 1, []byte(msg), 2*time.Second)
	if len(r.received) != 0 || !bytes.Contains(r.out, []byte("<invalid-from")) {
		t.Errorf("not authenticated: Host.Receive got %q, want nothing; the server wrote %s, want invalid-from", r.received, r.out)
	}
}

const fuzzHeader = "<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'" +
	" xmlns:db='jabber:server:dialback' from='c.test' to='b.test' version='1.0'>"

// fuzzHost is the server a fuzzed stream talks to: it serves b.test, lets
// only c.test federate, and checks each stanza it is handed.
type fuzzHost struct {
	t *testing.T
	p *Pool

	mu       sync.Mutex
	received []string
}

func (h *fuzzHost) Receive(_ context.Context, from, to jid.JID, _ *wire.Element) error {
	authed := false
	h.p.mu.Lock()
	for i := range h.p.ins {
		authed = authed || i.hasDomain(from.Domainpart())
	}
	h.p.mu.Unlock()
	if !authed {
		h.t.Errorf("Host.Receive got a stanza from %s, a domain no stream authenticated", from)
	}
	if !h.Served(to.Domainpart()) {
		h.t.Errorf("Host.Receive got a stanza to %s, a domain not served here", to)
	}
	h.mu.Lock()
	h.received = append(h.received, from.String())
	h.mu.Unlock()
	return nil
}

func (h *fuzzHost) Bounce(el *wire.Element, se stanza.Error) {
	h.t.Errorf("Host.Bounce(%s, %v): nothing was sent to a remote domain", el.Start.Name.Local, se)
}

func (h *fuzzHost) Served(d string) bool  { return d == "b.test" }
func (h *fuzzHost) Allowed(d string) bool { return d == "c.test" }

// fuzzNoDNS finds nothing: no lookup leaves the process.
type fuzzNoDNS struct{}

func (fuzzNoDNS) LookupSRV(_ context.Context, service, proto, name string) (string, []*net.SRV, error) {
	return "", nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

func (fuzzNoDNS) LookupHost(_ context.Context, host string) ([]string, error) {
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

var fuzzShared = sync.OnceValues(func() (*tls.Certificate, string) {
	c, err := s2stest.SelfSigned(s2stest.Options{DNS: []string{"b.test"}})
	if err != nil {
		panic(err)
	}
	// A loopback port nothing listens on any more: c.test's
	// authoritative server, which refuses every verification at once.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return c.TLS(), addr
})

// fuzzRun is what one input made the pool do.
type fuzzRun struct {
	received []string // the from of each stanza Host.Receive got
	out      []byte   // what the server wrote
}

// fuzzInbound runs one input (FuzzInboundStream says what mode is) on a
// pool of its own, whose timeouts are timeout, and checks the invariants.
func fuzzInbound(t *testing.T, mode byte, data []byte, timeout time.Duration) fuzzRun {
	t.Helper()
	cert, authority := fuzzShared()
	cfg := config.S2S{
		Hosts:          map[string]string{"c.test": authority},
		ConnectTimeout: config.Duration(timeout),
		IdleTimeout:    config.Duration(timeout),
		RetryDelay:     config.Duration(time.Second),
		CloseTimeout:   config.Duration(time.Second),
		Limits: config.S2SLimits{
			MaxConnections: 8, MaxConnectionsPerDomain: 4, MaxPending: 4, MaxStanzaBytes: 4096,
			QueueStanzas: 8, QueueBytes: 1 << 16,
		},
	}
	h := &fuzzHost{t: t}
	p, err := New(Options{
		Config:      cfg,
		Limits:      Limits{MaxStanzaBytes: 4096, MaxDepth: 16, MaxAttributes: 32, WriteTimeout: time.Second},
		Host:        h,
		Certificate: func() (*tls.Certificate, error) { return cert, nil },
		DNS:         fuzzNoDNS{},
		Secret:      []byte("the fuzz target's dialback secret"),
		Log:         slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	h.p = p
	server, client := net.Pipe()
	defer client.Close()
	p.accept(server, false)

	// The server's output is read as it comes (net.Pipe has no buffer),
	// until the server closes its end.
	var (
		omu      sync.Mutex
		out      bytes.Buffer
		featured = make(chan struct{})
		closed   = make(chan struct{})
	)
	go func() {
		defer close(closed)
		once := sync.Once{}
		b := make([]byte, 4096)
		for {
			n, err := client.Read(b)
			omu.Lock()
			out.Write(b[:n])
			if bytes.Contains(out.Bytes(), []byte("</stream:features>")) {
				once.Do(func() { close(featured) })
			}
			omu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	written := make(chan struct{})
	go func() {
		defer close(written)
		if mode > 0 {
			if _, err := io.WriteString(client, fuzzHeader); err != nil {
				return
			}
			select {
			case <-featured:
			case <-closed:
				return
			}
			if mode == 2 {
				var i *in
				p.mu.Lock()
				for k := range p.ins {
					i = k
				}
				p.mu.Unlock()
				if i == nil {
					return
				}
				i.authenticated("c.test", "dialback")
			}
		}
		_, _ = client.Write(data)
	}()

	// Whatever came, the server ends the stream: at once, or when its
	// connect or idle timeout passes after the last byte.
	bound := 2*timeout + 3*time.Second
	select {
	case <-closed:
	case <-time.After(bound):
		omu.Lock()
		wrote := bytes.Clone(out.Bytes())
		omu.Unlock()
		t.Fatalf("mode %d: the server did not close the stream within %v of %q; it wrote %q", mode, bound, data, wrote)
	}
	_ = client.Close()
	<-written
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatalf("mode %d: the pool did not stop after %q: %v", mode, data, err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	omu.Lock()
	defer omu.Unlock()
	return fuzzRun{received: h.received, out: bytes.Clone(out.Bytes())}
}
