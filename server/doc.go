// Package server is adhocd's XMPP core. Until the split that issue 14 plans
// (a wire package, c2s and router packages; see docs/architecture.md), it
// owns every hop of a stanza's way through the server:
//
//   - the listeners and connection limits (server.go), for TCP and for XMPP
//     over WebSocket, RFC 7395, with XEP-0156 discovery (websocket.go);
//   - the wire codec: the budgeted reader and strict decoder (stream.go)
//     and the encoder that writes each namespace once (encoder.go);
//   - the client-to-server stream of RFC 6120 (c2s.go): STARTTLS, SASL
//     through package auth, resource binding;
//   - the session registry (sessions.go) and the router (router.go), which
//     hands IQ requests to the server JID to the modules that declared them
//     (modules.IQHandler), with the stream's context;
//   - each connection's bounded outbound queue and its writer (outbound.go),
//     and what is answered for stanzas never written (RFC 6120 §10.4.3,
//     RFC 6121 §8.5);
//   - the instant-messaging rules of RFC 6121: roster (roster.go),
//     subscriptions and presence (presence.go), message delivery between
//     local users; XEP-0160 offline messages with XEP-0203 delay
//     (offline.go); XEP-0280 Message Carbons (carbons.go);
//   - the access lists of edit-blacklist and edit-whitelist (access.go),
//     the control socket of `adhocd user …` (control.go), reload and the
//     server's lifecycle.
//
// Why the stream layer is written here rather than taken from
// mellium.im/xmpp: mellium's Session owns its decoder and input loop, so a
// server built on it cannot bound a stanza's size or depth while it is read,
// cannot refuse comments, processing instructions and DTDs with
// restricted-xml (they reach the loop as "bad state" and become
// undefined-condition), and cannot verify SCRAM against salted keys. The
// stream here is still parsed by encoding/xml, never by hand; mellium provides
// JIDs, stanza and stream-error types, and the disco, ping, version and forms
// packages the modules use. IQs reach the modules without mellium's mux: the
// router parses each one once and hands the module its payload as read.
//
// Every limit on network input comes from config.Limits and is enforced while
// bytes arrive, with the stream or stanza error RFC 6120 names for it.
package server
