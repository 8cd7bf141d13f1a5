// Package server is adhocd's XMPP core: the client-to-server listener (RFC
// 6120: STARTTLS, SASL, resource binding), the session registry, the router,
// and the instant-messaging rules of RFC 6121 (roster, subscriptions,
// presence, message delivery between local users).
//
// Why the stream layer is written here rather than taken from
// mellium.im/xmpp: mellium's Session owns its decoder and input loop, so a
// server built on it cannot bound a stanza's size or depth while it is read,
// cannot refuse comments, processing instructions and DTDs with
// restricted-xml (they reach the loop as "bad state" and become
// undefined-condition), and cannot verify SCRAM against salted keys. The
// stream here is still parsed by encoding/xml, never by hand; mellium provides
// JIDs, stanza and stream-error types, the mux that dispatches IQs to modules,
// and the disco, ping, version and forms packages the modules use.
//
// Every limit on network input comes from config.Limits and is enforced while
// bytes arrive, with the stream or stanza error RFC 6120 names for it.
package server
