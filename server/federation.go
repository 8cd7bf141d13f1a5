package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strconv"

	"go.opentelemetry.io/otel/metric"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/modules"
	"github.com/adhocd/adhocd/s2s"
	"github.com/adhocd/adhocd/wire"
)

// Federation (package s2s; docs/design-federation.md): the pool of
// server-to-server streams is the router's Remote unless an embedder gave
// one (WithRemote); s2s.listen empty leaves federation off.

// newPool makes the pool, before the router that it is the Remote of.
func (s *Server) newPool(context.Context) error {
	if s.remote != nil || s.cfg.S2S.Listen == "" {
		return nil
	}
	secret, err := s.cfg.S2S.DialbackSecret()
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	if secret == nil && s.cfg.Cluster.Enabled() && !s.cfg.S2S.RequireValidCertificates {
		s.log.Warn("s2s: this replica of a cluster makes dialback keys with a random secret: a remote server that checks a key with another replica is refused; set s2s.dialback_secret_file to one file shared by every replica (docs/clustering.md)")
	}
	l := s.limits()
	var meter metric.Meter // nil: the pool records nothing
	if s.meters != nil {
		meter = s.meters.Meter("github.com/adhocd/adhocd/s2s")
	}
	p, err := s2s.New(s2s.Options{
		Config: s.cfg.S2S,
		Limits: s2s.Limits{MaxStanzaBytes: s.cfg.S2S.Limits.MaxStanzaBytes, MaxDepth: l.MaxDepth, MaxAttributes: l.MaxAttributes, WriteTimeout: l.WriteTimeout.D(), SendBuffer: l.SocketSendBuffer},
		Host:   poolHost{s},
		Certificate: func() (*tls.Certificate, error) {
			return &s.certs.Current().TLS, nil
		},
		DNS:    s.s2sDNS,
		Secret: secret,
		Log:    s.log.With("component", "s2s"),
		Meter:  meter,
	})
	if err != nil {
		return fmt.Errorf("server: s2s: %w", err)
	}
	s.pool, s.remote = p, p
	return nil
}

// listenS2S opens s2s.listen and, when set, s2s.direct_tls_listen (whose
// connections begin with TLS, XEP-0368) for the pool; nil listeners with
// federation off.
func (s *Server) listenS2S() (plain, direct net.Listener, err error) {
	if s.pool == nil {
		return nil, nil, nil
	}
	if plain, err = net.Listen("tcp", s.cfg.S2S.Listen); err != nil {
		return nil, nil, fmt.Errorf("server: s2s listen: %w", err)
	}
	plain = s.withSendBuffer(plain)
	if a := s.cfg.S2S.DirectTLSListen; a != "" {
		if direct, err = net.Listen("tcp", a); err != nil {
			_ = plain.Close()
			return nil, nil, fmt.Errorf("server: s2s direct TLS listen: %w", err)
		}
		direct = s.withSendBuffer(direct)
	}
	return plain, direct, nil
}

// S2SAddr is the address of the s2s listener, or nil with federation off.
func (s *Server) S2SAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.s2sLn == nil {
		return nil
	}
	return s.s2sLn.Addr()
}

// S2SDirectTLSAddr is the address of the s2s direct TLS listener, or nil
// when s2s.direct_tls_listen is empty or federation is off.
func (s *Server) S2SDirectTLSAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.s2sTLSLn == nil {
		return nil
	}
	return s.s2sTLSLn.Addr()
}

// S2S lists the server-to-server streams (none with federation off).
func (s *Server) S2S() []s2s.Conn {
	if s.pool == nil {
		return nil
	}
	return s.pool.List()
}

// S2SStreams lists the server-to-server streams as the operator sees them
// (modules/admin's s2s command): S2S's, in the module API's terms.
func (s *Server) S2SStreams() []modules.S2SInfo {
	conns := s.S2S()
	if len(conns) == 0 {
		return nil
	}
	out := make([]modules.S2SInfo, 0, len(conns))
	for _, c := range conns {
		out = append(out, modules.S2SInfo{Local: c.Local, Remote: c.Remote, Inbound: c.Inbound, Auth: c.Auth, TLS: c.TLS, Since: c.Since, Queued: c.Queued})
	}
	return out
}

func (h *host) S2SStreams() []modules.S2SInfo { return h.s.S2SStreams() }

// s2sFigures counts the server-to-server streams for the status report,
// each direction on its own, those still negotiating included; none with
// federation off.
func (s *Server) s2sFigures() []modules.Figure {
	if s.pool == nil {
		return nil
	}
	in, out := 0, 0
	for _, c := range s.pool.List() {
		if c.Inbound {
			in++
		} else {
			out++
		}
	}
	return []modules.Figure{
		{Var: "s2s-outbound", Label: "Server-to-server streams out", Value: strconv.Itoa(out)},
		{Var: "s2s-inbound", Label: "Server-to-server streams in", Value: strconv.Itoa(in)},
	}
}

// WithS2SDNS answers the s2s lookups of remote domains (tests: a DNS stub).
func WithS2SDNS(r s2s.SRVLookuper) Option { return func(s *Server) { s.s2sDNS = r } }

// poolHost is what the pool needs of the server.
type poolHost struct{ s *Server }

func (h poolHost) Receive(ctx context.Context, from, to jid.JID, el *wire.Element) error {
	return h.s.router.Receive(ctx, from, to, el)
}

func (h poolHost) Bounce(el *wire.Element, se stanza.Error) { h.s.router.Bounce(el, se) }

func (h poolHost) Served(domain string) bool {
	j, err := jid.New("", domain, "")
	return err == nil && h.s.isLocal(j)
}

func (h poolHost) Allowed(domain string) bool {
	j, err := jid.New("", domain, "")
	return err == nil && h.s.router.Access().Allowed(j)
}
