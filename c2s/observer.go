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

// NopObserver counts nothing.
type NopObserver struct{}

func (NopObserver) Connection(string)    {}
func (NopObserver) Login(string, string) {}
func (NopObserver) StanzaIn(string)      {}
func (NopObserver) StanzaOut(string)     {}
func (NopObserver) StreamError(string)   {}
func (NopObserver) SessionBound(int)     {}
