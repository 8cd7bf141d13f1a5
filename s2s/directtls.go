package s2s

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
)

// Direct TLS, inbound (XEP-0368): connections to s2s.direct_tls_listen
// begin with the TLS handshake, with the ALPN protocol "xmpp-server"
// (XEP-0368 §4), then carry the ordinary inbound stream of in.go with TLS
// already on: its features offer no STARTTLS, SASL EXTERNAL when the
// peer's certificate verifies for the header's 'from' (XEP-0178), dialback
// otherwise, exactly as after STARTTLS. A peer that sends no ALPN
// extension is accepted, as Prosody and ejabberd do; one that offers only
// other protocols ("xmpp-client") fails the handshake with crypto/tls's
// no_application_protocol alert (RFC 7301 §3.2).

// ListenDirectTLS accepts remote servers' direct-TLS streams on ln until
// Close, within the same limits as Listen (max_pending, max_connections).
func (p *Pool) ListenDirectTLS(ln net.Listener) { p.listen(ln, true) }

// inboundTLS is the tls.Config of an inbound stream: the server's
// certificate, read at each handshake, a client certificate asked for
// (for SASL EXTERNAL) and, for direct TLS, ALPN xmpp-server.
func (p *Pool) inboundTLS(directTLS bool) *tls.Config {
	return p.verifier.InboundConfig(TLSOptions{Certificate: p.cert, RequireValid: p.cfg.RequireValidCertificates, DirectTLS: directTLS})
}

// handshake runs the TLS handshake of a direct-TLS connection before its
// stream opens, within connect_timeout; a connection accepted without TLS
// (STARTTLS comes later, in the stream) has none to run.
func (i *in) handshake() error {
	tc, ok := i.c.nc.(*tls.Conn)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(i.p.ctx, i.p.cfg.ConnectTimeout.D())
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("s2s: direct TLS handshake with %s: %w", tc.RemoteAddr(), err)
	}
	i.p.log.Debug("s2s: direct TLS connection", "addr", tc.RemoteAddr().String(), "alpn", tc.ConnectionState().NegotiatedProtocol)
	return nil
}
