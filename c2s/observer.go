package c2s

import "context"

// Observer receives the server's countable events. The metrics package
// implements it; without one the server uses a no-op and pays one interface
// call per event.
type Observer interface {
	// Connection counts connections: accepted, refused, closed.
	Connection(event string)
	// Login counts SASL outcomes by mechanism: success or the failure condition.
	Login(mechanism, outcome string)
	// StanzaIn and StanzaOut count stanzas by kind (message, presence, iq).
	StanzaIn(kind string)
	StanzaOut(kind string)
	// StreamError counts stream errors sent, by condition.
	StreamError(condition string)
	// SessionBound moves the gauge of bound sessions by delta.
	SessionBound(delta int)
}

// StanzaTracer is an optional capability of an Observer: it opens a span
// for one stanza from a client (kind: message, presence, iq) and returns
// the context its handlers run in, so that what they trace (a command
// stage, say) is a child of the stanza; end closes the span.
type StanzaTracer interface {
	TraceStanza(ctx context.Context, kind string) (_ context.Context, end func())
}

// SMObserver is an optional capability of an Observer: it counts what
// XEP-0198 stream management does (sm.go). The server finds it by type
// assertion; an Observer without it counts none of it.
type SMObserver interface {
	// SMEnabled counts an <enable/> answered <enabled/>.
	SMEnabled()
	// SMResumed counts a session resumed by a new stream (<resumed/>).
	SMResumed()
	// SMResumeFailed counts a <resume/> answered <failed/>, by reason:
	// unknown (no hibernating session of the account by that id: never
	// given, another account's, or forgotten once its timeout ended it),
	// expired (the session ended as the resumption came), timeout (the old
	// stream did not let go of the session in time), bad-request (no
	// previd, or an h that is not a 32-bit count), too-high (an h above
	// what the server sent) or unexpected (a resume on a bound stream).
	SMResumeFailed(reason string)
}

// NopObserver counts nothing.
type NopObserver struct{}

func (NopObserver) Connection(string)    {}
func (NopObserver) Login(string, string) {}
func (NopObserver) StanzaIn(string)      {}
func (NopObserver) StanzaOut(string)     {}
func (NopObserver) StreamError(string)   {}
func (NopObserver) SessionBound(int)     {}
