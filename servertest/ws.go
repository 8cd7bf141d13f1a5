package servertest

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/xdg-go/scram"
)

// WS is a raw XMPP-over-WebSocket client (RFC 7395): it sends one element
// per message, as written, and reads the server's messages one by one.
type WS struct {
	c *websocket.Conn
	t testing.TB
	// Subprotocol is what the server chose in its handshake.
	Subprotocol string
}

// WSOptions change the WebSocket handshake.
type WSOptions struct {
	// Subprotocols offered; nil offers "xmpp".
	Subprotocols []string
	// Header is sent with the upgrade request (Origin, say).
	Header http.Header
	// TLS is the client's TLS configuration for wss:// URLs.
	TLS *tls.Config
}

// DialWS connects to the server's WebSocket endpoint; the connection is
// closed when the test ends.
func (s *Server) DialWS(opts WSOptions) *WS {
	s.t.Helper()
	if s.WSURL == "" {
		s.t.Fatal("servertest: the server has no WebSocket listener (use WithWebSocket)")
	}
	w, resp, err := DialWSErr(s.WSURL, opts)
	if err != nil {
		s.t.Fatalf("servertest: websocket dial: %v (response %v)", err, resp)
	}
	w.t = s.t
	s.t.Cleanup(func() { _ = w.c.CloseNow() })
	return w
}

// DialWSErr connects to url and returns the handshake's error and response
// instead of failing, for tests of refused handshakes. The caller closes a
// connection it got (Close).
func DialWSErr(url string, opts WSOptions) (*WS, *http.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	proto := opts.Subprotocols
	if proto == nil {
		proto = []string{"xmpp"}
	}
	do := &websocket.DialOptions{Subprotocols: proto, HTTPHeader: opts.Header}
	if opts.TLS != nil {
		do.HTTPClient = &http.Client{Transport: &http.Transport{TLSClientConfig: opts.TLS}}
	}
	c, resp, err := websocket.Dial(ctx, url, do)
	if err != nil {
		return nil, resp, err
	}
	c.SetReadLimit(1 << 22)
	return &WS{c: c, Subprotocol: c.Subprotocol()}, resp, nil
}

// Close closes the WebSocket at once.
func (w *WS) Close() { _ = w.c.CloseNow() }

// Send writes s as one text message.
func (w *WS) Send(s string) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.c.Write(ctx, websocket.MessageText, []byte(s)); err != nil {
		w.t.Fatalf("servertest: websocket send: %v", err)
	}
}

// Next returns the next message, or "" and the error once the connection
// is closed or timeout has passed.
func (w *WS) Next(timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, b, err := w.c.Read(ctx)
	return string(b), err
}

// Expect reads messages until one matches pattern and returns it; it fails
// the test on timeout or close, showing what came instead.
func (w *WS) Expect(pattern string) string {
	w.t.Helper()
	re := regexp.MustCompile(pattern)
	var seen []string
	deadline := time.Now().Add(5 * time.Second)
	for {
		m, err := w.Next(time.Until(deadline))
		if err != nil {
			w.t.Fatalf("servertest: never received %q (%v); got %q", pattern, err, seen)
		}
		if re.MatchString(m) {
			return m
		}
		seen = append(seen, m)
	}
}

// Open sends the RFC 7395 <open/> and reads the server's <open/> and
// stream features; it returns the features.
func (w *WS) Open() string {
	w.t.Helper()
	w.Send(`<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>`)
	w.Expect(`^<open `)
	return w.Expect(`^<stream:features`)
}

// Login opens the stream, authenticates with SCRAM-SHA-256 and binds
// resource: what a web client does.
func (w *WS) Login(user, password, resource string) {
	w.t.Helper()
	features := w.Open()
	if !strings.Contains(features, "<mechanism>SCRAM-SHA-256</mechanism>") {
		w.t.Fatalf("servertest: SCRAM-SHA-256 not offered: %s", features)
	}
	client, err := scram.SHA256.NewClient(user, password, "")
	if err != nil {
		w.t.Fatal(err)
	}
	conv := client.NewConversation()
	first, _ := conv.Step("")
	w.Send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>` + base64.StdEncoding.EncodeToString([]byte(first)) + `</auth>`)
	for {
		m := w.Expect(`^<(challenge|success|failure)`)
		if strings.HasPrefix(m, "<failure") {
			w.t.Fatalf("servertest: SASL failed: %s", m)
		}
		data := regexp.MustCompile(`>([^<]*)</`).FindStringSubmatch(m)
		var in []byte
		if data != nil {
			if in, err = base64.StdEncoding.DecodeString(data[1]); err != nil {
				w.t.Fatalf("servertest: %s: %v", m, err)
			}
		}
		out, err := conv.Step(string(in))
		if err != nil {
			w.t.Fatalf("servertest: SCRAM: %v", err)
		}
		if strings.HasPrefix(m, "<success") {
			break
		}
		w.Send(`<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>` + base64.StdEncoding.EncodeToString([]byte(out)) + `</response>`)
	}
	w.Open()
	w.Send(`<iq xmlns='jabber:client' type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>` + resource + `</resource></bind></iq>`)
	w.Expect(`id='bind1'`)
}
