// Package server composes an adhocd instance and runs its lifecycle: it
// opens the store (package storage), loads the certificate (tlscert), makes
// the router (package router) and what every client stream shares
// (c2s.Env), starts the modules it is given in order and stops them in
// reverse, and listens: TCP for c2s streams (package c2s), XMPP over
// WebSocket (RFC 7395) with XEP-0156 discovery (websocket.go), and the
// control socket of `adhocd user …` (control.go). It applies the
// connection limits before a stream begins, ends every stream with
// system-shutdown in parallel at Shutdown, and keeps what administration
// changes at run time: the administrators (account.Admins), the access
// lists of edit-blacklist and edit-whitelist (access.go, applied by the
// router and at login) and reload (reload.go).
//
// It runs no module by default: cmd/adhocd, the composition root, passes
// modules/defaults.Modules(); a program that embeds adhocd passes those, its
// own, or both (WithModules). The modules reach the server through the Host
// it gives each (server.go's host), never through this package.
//
// The way of one stanza: bytes → package wire (decoder, limits) → package
// c2s (negotiation, then the bound session) → package router (addressing,
// access lists, RFC 6121, the modules' capabilities) → a module or local
// delivery → the recipient's c2s queue → wire's encoder. docs/architecture.md
// follows it hop by hop.
package server
