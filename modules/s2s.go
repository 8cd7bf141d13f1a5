package modules

import "time"

// S2SInfo describes one server-to-server stream (RFC 6120 §2.5, with
// XEP-0220 dialback or SASL EXTERNAL) for the operator: modules/admin's
// s2s command lists them, and the status report counts them.
type S2SInfo struct {
	// Local is this server's domain that the stream speaks for; Remote
	// the other server's.
	Local, Remote string
	// Inbound is set for a stream the remote server opened, clear for one
	// this server opened to it.
	Inbound bool
	// Auth is how the remote domain was authenticated: "external" (SASL
	// EXTERNAL with its certificate), "dialback" (XEP-0220), or empty
	// while the stream is still being negotiated.
	Auth string
	// TLS is set once the stream is encrypted (STARTTLS).
	TLS bool
	// Since is when the stream was opened; for an outbound stream, once
	// it is established, when that was.
	Since time.Time
	// Queued is how many stanzas wait in an outbound stream's queue (while
	// it is being set up, or behind its writer); zero for an inbound one.
	Queued int
}
