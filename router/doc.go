// Package router routes the stanzas of bound client sessions (RFC 6120 §8,
// §10; RFC 6121 §8.5): it checks and stamps each stanza's from, parses its
// to, applies the access lists (XEP-0133 edit-blacklist, edit-whitelist) and
// hands it on by kind and addressee:
//
//   - IQs (router.go): to the account's own handlers (the roster, disco of
//     the bare JID, roster.go), to the modules that declared the route
//     (modules.IQHandler on the server JID, modules.AccountIQHandler on the
//     account's), or to the addressed resource; a request nobody serves
//     gets service-unavailable;
//   - messages: to a full JID, or to the highest-priority available
//     resources of a bare JID; with none, to the module that keeps offline
//     messages (modules.OfflineStore); the modules' OutboundMessageHooks
//     see a message before it is delivered (XEP-0313 archives it), their
//     InboundMessageHooks before it reaches its account, their
//     MessageHooks what was sent and received (XEP-0280 carbons);
//   - presence (presence.go): broadcast, probes, directed presence and the
//     subscription state machine of RFC 6121 §3, with roster updates and
//     pushes (roster.go).
//
// It owns the registry of bound sessions (sessions.go) with each session's
// presence state, and implements c2s.Router: a stream that binds a resource
// gets its router-side Session, and stanzas queued for a stream that ends
// unwritten come back here to be answered (RFC 6120 §10.4.3). The modules'
// capabilities are collected by AddModule (hooks.go). Local delivery goes
// through each session's c2s queue; a cluster directory (issue 18) would
// sit beside the local registry behind the same calls.
package router
