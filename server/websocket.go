package server

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/coder/websocket"

	"github.com/adhocd/adhocd/c2s"
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
	ln = s.withSendBuffer(ln)
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
	c := c2s.NewWebSocket(s.env, wc, r.RemoteAddr, r.TLS)
	release, ok := s.admit(c)
	if !ok {
		return
	}
	defer release()
	c.Serve()
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
