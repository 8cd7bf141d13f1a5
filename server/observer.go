package server

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

type nopObserver struct{}

func (nopObserver) Connection(string)    {}
func (nopObserver) Login(string, string) {}
func (nopObserver) StanzaIn(string)      {}
func (nopObserver) StanzaOut(string)     {}
func (nopObserver) StreamError(string)   {}
func (nopObserver) SessionBound(int)     {}
