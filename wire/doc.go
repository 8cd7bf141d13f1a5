// Package wire is the XML codec of XMPP streams (RFC 6120 §4, §11; RFC 7395
// framing over WebSocket), with no XMPP semantics beyond the stream: it
// reads a client's bytes into elements with every limit applied as they
// arrive, and writes elements back declaring each namespace once.
//
//   - Decoder reads a stream header and then one top-level Element at a
//     time. A budget reader bounds each element's bytes
//     (limits.max_stanza_bytes) while encoding/xml tokenises it; the
//     decoder's own loop bounds depth and attributes and refuses DTDs,
//     comments, processing instructions and entities with restricted-xml.
//     Every failure is io.EOF or an RFC 6120 stream error with its defined
//     condition.
//   - Element is a start tag and its inner tokens, parsed once and shared by
//     the router, the modules and the encoder from then on.
//   - Encoder and Output write tokens so that no child repeats its parent's
//     default namespace (some clients, nbxmpp among them, fail on the
//     redundant form that encoding/xml's Encoder writes).
//
// It is written here, on top of encoding/xml, because a server must bound a
// stanza while it is read and refuse restricted XML with its exact
// condition; mellium.im/xmpp's session owns its decoder and reports those as
// undefined-condition, and no library encodes a token stream with namespaces
// declared once.
package wire
