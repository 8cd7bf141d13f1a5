// Package c2s owns one client-to-server stream (RFC 6120; RFC 7395 over
// WebSocket): its negotiation as an explicit state machine (State:
// connected, secured, authenticating, authenticated, bound, closing) with
// STARTTLS (§5), SASL through package auth (§6) and resource binding (§7);
// then, once bound, each stanza handed to the router's Session with a
// context that ends with the stream; and the stream's bounded outbound
// queue, drained by a writer goroutine that exists only while there is
// something to write, so that no sender ever waits on another client's
// socket (outbound.go).
//
// Input is paced as well as bounded (rate.go): once bound, a stream is
// charged per stanza and per byte read against token buckets
// (limits.rate.*), its own and, optionally, one shared by every stream of
// its account, kept in a registry with one entry per online account. A
// stream over its rate loses nothing and is not cut off: its reader
// sleeps after the stanza for as long as the buckets need, so that the
// client's next stanzas wait in its TCP buffer, as ejabberd's shapers
// make them. The buckets are internal/tokenbucket's (shared with the
// pacing of server-to-server streams). Failed logins are counted per address and per (address,
// account) (backoff.go); the account is read from the client's first SASL
// message (saslname.go), because package auth names it only once an
// exchange succeeded.
//
// What a stream needs of the server it gets through Env, and the router
// through the Router and Session interfaces, so that this package imports
// neither: the server (package server) composes them. The WebSocket
// transport is github.com/coder/websocket; wsconn.go adapts it to the
// net.Conn a stream reads, with read deadlines that do not close it.
package c2s
