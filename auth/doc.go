// Package auth is adhocd's SASL (RFC 6120 §6, RFC 4422) server side: the
// mechanisms SCRAM-SHA-256, SCRAM-SHA-1 (RFC 5802, RFC 7677) with their -PLUS
// channel-binding variants, and PLAIN (RFC 4616) over TLS only.
//
// SCRAM itself comes from github.com/xdg-go/scram. mellium.im/xmpp's own
// server-side SASL feature is not used because it can only hand a mechanism a
// clear-text password, never salted credentials, so it cannot verify SCRAM
// against keys at rest. This package adds what no library does for us: the
// choice of mechanisms per stream state, channel-binding type negotiation from
// the gs2 header (tls-exporter, tls-server-end-point, tls-unique), the mapping
// of every failure to its RFC 6120 §6.5 condition, and credentials for unknown
// users that fail exactly like a wrong password so that accounts cannot be
// enumerated.
package auth
