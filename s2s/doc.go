// Package s2s is server-to-server federation (RFC 6120 §§4–9, issue 20;
// docs/design-federation.md): the Pool the router hands stanzas for other
// domains to (router.Remote), its outbound stream per domain pair with a
// bounded queue while the stream is set up (out.go), the streams remote
// servers open (in.go), and their shared pieces (stream.go). Streams use
// STARTTLS (required by default), then SASL EXTERNAL when the peer's
// certificate verifies (XEP-0178), else XEP-0220 dialback, whose keys are
// verified over a connection of their own, as ejabberd does. Every stanza
// received is checked against the domains its stream authenticated
// (invalid-from) and the domains this server serves (host-unknown: no
// relay), then handed to Host.Receive in jabber:client. Inbound direct TLS
// (XEP-0368, directtls.go: ListenDirectTLS) runs the TLS handshake first,
// with ALPN xmpp-server, then the same inbound stream without STARTTLS.
//
// An authenticated inbound stream is paced (s2s.limits.stanzas_per_second
// and burst_stanzas): each element it sends is charged to a token bucket
// of its own (package internal/tokenbucket, shared with c2s), and over the
// rate its reader sleeps until the bucket is out of debt, so that the
// peer's next stanzas wait in its TCP buffer and none is lost. The idle
// deadline is set again after the pause, so that a paced peer does not
// look idle.
//
// The pool's metrics (metrics.go; docs/observability.md) count streams,
// stanzas, bounces, authentications and refusals. Their domain label is
// bounded by s2s.metrics_domains: the busiest domains that authenticated
// (a decayed rate, ranked at most once a minute) have a label of their
// own, the others are "other", and every series only grows while it is
// reported.
//
//   - resolve.go turns a remote domain into an ordered list of targets to
//     connect to, each saying whether it is direct TLS. A static host map
//     (the s2s.hosts configuration) comes first, for tests and private
//     networks; a domain that is an IP address is used as it is; otherwise
//     DNS SRV records for _xmpp-server._tcp (RFC 6120 §3.2.1) and
//     _xmpps-server._tcp (XEP-0368, direct TLS) are read at once and merged
//     into one order, by priority and then by RFC 2782's weighted random
//     choice within a priority, as XEP-0368 §3 asks. A lone "." target
//     means the domain offers no service. Only when the domain publishes
//     no SRV record at all does the domain's own A/AAAA on port 5269 serve
//     instead (RFC 6120 §3.2.2): not after a "." (XEP-0368 §5), nor after
//     a lookup that failed with a server error. DNS is behind a
//     two-method interface (LookupSRV, and optionally LookupHost) that
//     *net.Resolver implements, so that tests answer it themselves.
//   - dialback.go makes and checks dialback keys as XEP-0185 recommends
//     (HMAC-SHA256 keyed with the hexadecimal SHA-256 of a secret, compared
//     in constant time), and writes and reads the <db:result/> and
//     <db:verify/> elements of XEP-0220. They are written with the literal
//     prefix db:, bound to jabber:server:dialback by every stream header,
//     because ejabberd recognises only those names (design §8); read, they
//     are recognised by namespace and by an undeclared db prefix alike.
//   - certs.go verifies a peer's certificate chain and its identity for
//     the remote domain (RFC 6125, XEP-0178), for SASL EXTERNAL.
//   - s2stest holds what tests need: a test CA issuing certificates with
//     the identities of RFC 6125 and XEP-0178 (later: a DNS stub on
//     loopback and a raw peer that plays a remote server).
//
// Why these are written here: mellium.im/xmpp v0.22.0, whose jid, stanza
// and stream values adhocd uses, has no dialback at all (nor does
// mellium.im/sasl v0.3.2 have EXTERNAL), and its dial.Dialer with S2S set
// does not resolve as the specifications say: it lists every
// _xmpps-server target before every _xmpp-server one instead of merging
// their priorities, tries direct TLS on port 5270 of a domain without SRV
// records (a port no specification defines), dials the client ports with
// NoLookup, knows no static host map, and returns the first TCP connection
// that succeeds, so that a caller cannot move on to the next target when
// TLS or the XMPP negotiation fails on one (RFC 6120 §3.2.1). Its server
// session also reads without the limits of package wire (design §7).
package s2s
