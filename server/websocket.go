package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/adhocd/adhocd/wire"
)

// XMPP over WebSocket (RFC 7395) and its discovery (XEP-0156), for web
// clients such as Converse.js. The WebSocket protocol itself is
// github.com/coder/websocket; what is here is the HTTP side (origin check,
// subprotocol, discovery documents) and an adapter that gives the c2s
// stream a net.Conn whose read deadlines do not close the socket, so that a
// timeout is answered with the same stream error as on TCP.

// Discovery paths and the link relation of XEP-0156.
const (
	hostMetaPath     = "/.well-known/host-meta"
	hostMetaJSONPath = "/.well-known/host-meta.json"
	relWebSocket     = "urn:xmpp:alt-connections:websocket"
	wsSubprotocol    = "xmpp"
)

// listenWebSocket starts the WebSocket listener when websocket.listen is set.
func (s *Server) listenWebSocket() (net.Listener, *http.Server, error) {
	wc := s.cfg.WebSocket
	if wc.Listen == "" {
		return nil, nil, nil
	}
	ln, err := net.Listen("tcp", wc.Listen)
	if err != nil {
		return nil, nil, fmt.Errorf("server: websocket listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc(wc.Path, s.serveWebSocket)
	mux.HandleFunc(hostMetaPath, s.serveHostMeta)
	mux.HandleFunc(hostMetaJSONPath, s.serveHostMeta)
	hs := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: s.limits().PreAuthTimeout.D(),
		// WebSocket needs HTTP/1.1's upgrade: no HTTP/2 on this listener.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
	if wc.TLS {
		cfg := s.tlsConfig.Clone()
		cfg.NextProtos = []string{"http/1.1"}
		ln = tls.NewListener(ln, cfg)
	}
	return ln, hs, nil
}

// WebSocketAddr returns the WebSocket listener's address, or nil when
// websocket.listen is not set.
func (s *Server) WebSocketAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.wsLn == nil {
		return nil
	}
	return s.wsLn.Addr()
}

// serveWebSocket upgrades a request to an XMPP stream and serves it until it
// ends: the handler's goroutine is the stream's reader.
func (s *Server) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	if !s.originAllowed(r) {
		http.Error(w, "this origin may not connect (websocket.allowed_origins)", http.StatusForbidden)
		return
	}
	if !slices.Contains(requestedSubprotocols(r), wsSubprotocol) {
		http.Error(w, "the WebSocket subprotocol xmpp is required (RFC 7395 §3.1)", http.StatusBadRequest)
		return
	}
	wc, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		Subprotocols: []string{wsSubprotocol},
		// The origin was checked above, by websocket.allowed_origins.
		InsecureSkipVerify: true,
		CompressionMode:    websocket.CompressionDisabled,
	})
	if err != nil {
		s.log.Debug("websocket upgrade failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	// One message is one element; the byte budget of the decoder answers a
	// stanza over limits.max_stanza_bytes with policy-violation, and a
	// message far larger is refused by the WebSocket layer unread.
	wc.SetReadLimit(int64(2*s.limits().MaxStanzaBytes) + 1024)
	nc := newWSConn(wc, r.RemoteAddr)
	c := newWebSocketConn(s, nc, r.TLS)
	release, ok := s.admit(c)
	if !ok {
		return
	}
	defer release()
	c.serve()
}

// newWebSocketConn is a c2s connection framed by RFC 7395, over TLS when
// the HTTP connection was (its state then serves channel binding too).
func newWebSocketConn(srv *Server, nc net.Conn, st *tls.ConnectionState) *conn {
	c := newConn(srv, nc)
	c.ws = true
	c.tls = st
	c.setIO(nc)
	return c
}

// requestedSubprotocols lists the Sec-WebSocket-Protocol values offered.
func requestedSubprotocols(r *http.Request) []string {
	var out []string
	for _, h := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, p := range strings.Split(h, ",") {
			out = append(out, strings.TrimSpace(p))
		}
	}
	return out
}

// originAllowed applies websocket.allowed_origins. A request without an
// Origin header does not come from a browser page (xmpp.js in Node, a
// bot) and is allowed: the check protects users' browsers from pages of
// other sites, which always send it. An empty list allows pages served from
// the listener's own host.
func (s *Server) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	allowed := s.cfg.WebSocket.AllowedOrigins
	if len(allowed) == 0 {
		return strings.EqualFold(u.Host, r.Host)
	}
	for _, a := range allowed {
		if a == "*" {
			return true
		}
		if au, err := url.Parse(a); err == nil && strings.EqualFold(au.Scheme, u.Scheme) && strings.EqualFold(au.Host, u.Host) {
			return true
		}
	}
	return false
}

// webSocketURL is the endpoint discovery advertises: websocket.public_url,
// or the scheme and host the request came with.
func (s *Server) webSocketURL(r *http.Request) string {
	if u := s.cfg.WebSocket.PublicURL; u != "" {
		return u
	}
	scheme := "ws"
	if r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
		scheme = "wss"
	}
	return (&url.URL{Scheme: scheme, Host: r.Host, Path: s.cfg.WebSocket.Path}).String()
}

// serveHostMeta answers XEP-0156 discovery in XRD (host-meta) or JRD
// (host-meta.json), readable from pages of any origin as the XEP asks.
func (s *Server) serveHostMeta(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Access-Control-Allow-Origin", "*")
	href := s.webSocketURL(r)
	if r.URL.Path == hostMetaJSONPath {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"links": []map[string]string{{"rel": relWebSocket, "href": href}},
		})
		return
	}
	w.Header().Set("Content-Type", "application/xrd+xml")
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="utf-8"?>` + "\n" + `<XRD xmlns="http://docs.oasis-open.org/ns/xri/xrd-1.0">` + "\n" +
		`  <Link rel="` + relWebSocket + `" href="`)
	wire.EscapeAttr(&b, href)
	b.WriteString("\"/>\n</XRD>\n")
	_, _ = w.Write(b.Bytes())
}

// wsConn presents a WebSocket as the net.Conn a c2s stream reads and
// writes: each Write is one text message, Read returns the messages' bytes
// in order. A pump goroutine reads whole messages (at most one waits in
// memory beside the one being parsed), so that a read deadline ends a Read
// with a timeout and leaves the WebSocket open for the stream error; the
// library's own net.Conn closes the connection on a deadline instead.
type wsConn struct {
	c      *websocket.Conn
	ctx    context.Context
	cancel context.CancelFunc
	remote net.Addr
	msgs   chan []byte
	cur    []byte // the rest of the message being read

	mu            sync.Mutex
	readDeadline  time.Time
	writeDeadline time.Time
	err           error // why the pump stopped
	closeOnce     sync.Once
}

func newWSConn(c *websocket.Conn, remoteAddr string) *wsConn {
	ctx, cancel := context.WithCancel(context.Background())
	w := &wsConn{c: c, ctx: ctx, cancel: cancel, msgs: make(chan []byte, 1), remote: wsAddr(remoteAddr)}
	go w.pump()
	return w
}

func (w *wsConn) pump() {
	defer close(w.msgs)
	for {
		typ, data, err := w.c.Read(w.ctx)
		if err != nil {
			w.mu.Lock()
			w.err = err
			w.mu.Unlock()
			return
		}
		if typ != websocket.MessageText {
			// RFC 7395 §3.3.3: XMPP is sent in text messages.
			_ = w.c.Close(websocket.StatusUnsupportedData, "XMPP over WebSocket uses text messages")
			w.mu.Lock()
			w.err = io.EOF
			w.mu.Unlock()
			return
		}
		select {
		case w.msgs <- data:
		case <-w.ctx.Done():
			return
		}
	}
}

// errDeadline is the timeout a Read or Write past its deadline returns.
var errDeadline = &net.OpError{Op: "read", Net: "websocket", Err: errTimeout{}}

type errTimeout struct{}

func (errTimeout) Error() string   { return "i/o timeout" }
func (errTimeout) Timeout() bool   { return true }
func (errTimeout) Temporary() bool { return true }

func (w *wsConn) Read(p []byte) (int, error) {
	if len(w.cur) == 0 {
		m, err := w.nextMessage()
		if err != nil {
			return 0, err
		}
		w.cur = m
	}
	n := copy(p, w.cur)
	w.cur = w.cur[n:]
	return n, nil
}

// nextMessage waits for the next message, until the read deadline.
func (w *wsConn) nextMessage() ([]byte, error) {
	w.mu.Lock()
	d := w.readDeadline
	w.mu.Unlock()
	var timeout <-chan time.Time
	if !d.IsZero() {
		left := time.Until(d)
		if left <= 0 {
			return nil, errDeadline
		}
		t := time.NewTimer(left)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case m, ok := <-w.msgs:
		if !ok {
			return nil, w.readErr()
		}
		return m, nil
	case <-timeout:
		return nil, errDeadline
	}
}

// readErr maps why the pump stopped to what a net.Conn reader sees: io.EOF
// for a closed WebSocket, net.ErrClosed for one closed here.
func (w *wsConn) readErr() error {
	w.mu.Lock()
	err := w.err
	w.mu.Unlock()
	switch {
	case err == nil, errors.Is(err, io.EOF), websocket.CloseStatus(err) != -1:
		return io.EOF
	case w.ctx.Err() != nil:
		return net.ErrClosed
	}
	return err
}

func (w *wsConn) Write(p []byte) (int, error) {
	w.mu.Lock()
	d := w.writeDeadline
	w.mu.Unlock()
	ctx := w.ctx
	if !d.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d)
		defer cancel()
	}
	if err := w.c.Write(ctx, websocket.MessageText, p); err != nil {
		return 0, fmt.Errorf("websocket write: %w", err)
	}
	return len(p), nil
}

// Close closes the WebSocket with a normal closure; the closing handshake
// runs in the background (bounded by the library), so that Close never
// blocks the stream's writer.
func (w *wsConn) Close() error {
	w.closeOnce.Do(func() {
		go func() {
			_ = w.c.Close(websocket.StatusNormalClosure, "")
			w.cancel()
		}()
	})
	return nil
}

func (w *wsConn) LocalAddr() net.Addr  { return wsAddr("") }
func (w *wsConn) RemoteAddr() net.Addr { return w.remote }

func (w *wsConn) SetDeadline(t time.Time) error {
	_ = w.SetReadDeadline(t)
	return w.SetWriteDeadline(t)
}

func (w *wsConn) SetReadDeadline(t time.Time) error {
	w.mu.Lock()
	w.readDeadline = t
	w.mu.Unlock()
	return nil
}

func (w *wsConn) SetWriteDeadline(t time.Time) error {
	w.mu.Lock()
	w.writeDeadline = t
	w.mu.Unlock()
	return nil
}

// wsAddr is the client's address as the HTTP request gave it (host:port).
type wsAddr string

func (a wsAddr) Network() string { return "websocket" }
func (a wsAddr) String() string  { return string(a) }

var _ net.Conn = (*wsConn)(nil)
