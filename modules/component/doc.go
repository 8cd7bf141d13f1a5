// Package component is the server side of XEP-0114 (Jabber Component
// Protocol, version 1.5, the "accept" method): trusted external programs
// (gateways, bots, services written with any XMPP library) connect over
// TCP, authenticate with a secret they share with the server, and from
// then on serve a domain of their own, gateway.example.org say, through
// the server. Users reach them as they reach any JID; the component sends
// from any address at its domain. Its behaviour follows Prosody's
// mod_component, which is what components expect of a server.
//
// What it does:
//
//   - listening (component.go): on components.listen (127.0.0.1:5347 by
//     default), and only while components.services names at least one
//     component, each with a secret read at start from its secret_file or
//     its secret_env; the secret is never logged and never kept in the
//     configuration.
//   - the stream (stream.go): the component opens
//     <stream:stream xmlns='jabber:component:accept' to='DOMAIN'>; the
//     server answers with its header, from DOMAIN with a random stream id,
//     and expects <handshake/> carrying hex(SHA-1(id + secret)), compared
//     in constant time, then answers with an empty <handshake/>. Stream
//     errors, each sent after a header of ours when none was sent yet:
//     improper-addressing (no to), host-unknown (a domain not configured),
//     invalid-namespace (another content namespace), not-authorized (a
//     wrong handshake, or anything before it), conflict (the domain has a
//     component connected already: as Prosody by default, the first one
//     stays and the newcomer is refused, so that a second instance started
//     by mistake never takes the traffic of one that works; a component
//     whose old connection is dead without the server knowing is refused
//     until TCP keepalive ends that connection), connection-timeout (no
//     successful handshake within limits.pre_auth_timeout), and
//     resource-constraint (more than a few connections waiting for their
//     handshake at once).
//   - input is bounded as a client's is (package wire): limits.
//     max_stanza_bytes, max_depth and max_attributes, restricted XML
//     refused, policy-violation past a limit; a stanza started must end
//     within limits.stanza_timeout. Components are trusted: no rate limit
//     paces them and an idle one is not disconnected.
//   - stanzas from the component (route.go): jabber:component:accept
//     stanzas become jabber:client ones. The from must be at the
//     component's domain (XEP-0114 §3), else the stream ends with
//     invalid-from, as Prosody ends it; a stanza without a from is taken
//     as from the domain itself. A stanza without a to is answered with
//     bad-request. Stanzas to local JIDs go through Host.Send as a contact
//     server's would: messages to full or bare JIDs (kept offline for an
//     account with no available session, XEP-0160), IQs to full JIDs,
//     presence, subscription stanzas and probes through the account's
//     roster (RFC 6121 §3, §4.3). Stanzas to the component's own domain or
//     to another configured component are written to that component's
//     stream; to any other domain they are answered remote-server-not-found
//     (adhocd has no server-to-server), errors and results excepted.
//   - stanzas to the component (component.go): the module is a
//     modules.DomainHandler for the configured domains, so the router hands
//     it what local sessions address to a component's domain or any JID at
//     it; each is written to the component's stream by a writer goroutine,
//     the sender never waiting on the component's socket. While no
//     component is connected for the domain, IQ requests and messages are
//     answered service-unavailable of type wait (Prosody answers
//     remote-server-timeout; service-unavailable is the condition RFC 6120
//     gives an entity that is not there to serve, and wait says to retry),
//     and presence is dropped. A component that reads slower than it is
//     sent to gets at most limits.max_outbound_bytes queued, the stanzas
//     past it answered resource-constraint; a write that blocks for
//     limits.write_timeout ends its stream. Stanzas queued and never
//     written when its stream ends are answered service-unavailable.
//   - disco: every configured domain is an item of the server's
//     disco#items; the component answers disco#info of its domain itself.
//   - metrics: adhocd.component.stanzas (direction in or out),
//     adhocd.component.handshakes (outcome) and adhocd.component.connected.
//
// The server side is written here because mellium.im/xmpp/component is
// the component side only (a component dialling a server), and because a
// server must bound input as it arrives and route into adhocd's router,
// which package wire and the module API already do for client streams.
//
// A component connects to one process: in a cluster, only the sessions of
// the replica it is connected to reach it (the others answer
// service-unavailable), as a group chat service's rooms exist per replica.
package component
