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
// What a stream needs of the server it gets through Env, and the router
// through the Router and Session interfaces, so that this package imports
// neither: the server (package server) composes them. The WebSocket
// transport is github.com/coder/websocket; wsconn.go adapts it to the
// net.Conn a stream reads, with read deadlines that do not close it.
package c2s
