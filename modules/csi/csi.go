// Package csi is XEP-0352 Client State Indication (version 1.0.0): a client
// that the user is not looking at (a phone in a pocket) says so with the
// top-level element <inactive xmlns='urn:xmpp:csi:0'/>, and the server
// holds back what can wait, so that the client's radio stays asleep; with
// <active/> the client gets what was held, in the order it came. The
// feature <csi xmlns='urn:xmpp:csi:0'/> is offered to authenticated
// streams, and a stream begins active.
//
// While a session is inactive, a stanza about to be queued for it
// (modules.StanzaInterceptor's InterceptOut) is held when it is not
// urgent, and a held one that a newer one supersedes is dropped:
//
//   - presence updates (available, unavailable, error) are held, only the
//     last one of each sender's full JID kept;
//   - messages that carry only chat states (XEP-0085, beside a <thread/>,
//     XEP-0334 hints and XEP-0359 ids) are held, only the last one of each
//     sender's full JID kept (received carbons of them per original sender);
//   - other messages without anything a user waits for are held and all
//     kept: receipts (XEP-0184) and chat markers (XEP-0333), each of which
//     acknowledges a message of its own, PEP notifications (XEP-0163, type
//     headline) and other headlines, messages with unknown payloads.
//
// Urgent, and delivered at once, are IQs, subscription presence (subscribe,
// subscribed, unsubscribe, unsubscribed, and probes), messages of type
// error, messages with a <body/> or a <subject/>, encrypted messages
// (XEP-0380, OMEMO), invitations (XEP-0249, XEP-0045), call proposals
// (XEP-0353), sent carbons (the user's own activity on another device, a
// read marker that should clear a notification) and received carbons whose
// forwarded message is urgent; any top-level element that is not a stanza.
// These are the rules of Prosody's mod_csi_simple, with the difference that
// adhocd collapses presence and chat states instead of only delaying them.
//
// An urgent stanza first makes everything held go out, in order, so that no
// stanza overtakes one its sender sent earlier; so does <active/>, and so
// does the stanza that would hold more than limits.csi.max_held. Held
// stanzas go out with a XEP-0203 <delay/> from the server stamped when they
// were held, unless they carry one already. The state and what is held live
// in the session (modules.Session.SetValue) and end with it: what is held
// when a session ends is dropped, as the presence and chat states a dead
// stream was never sent are. A XEP-0198 resumption keeps the session and so
// its state: the server does not hear of resumptions yet, and a resumed
// client is inactive until it says <active/> again.
package csi

import (
	"context"
	"encoding/xml"
	"time"

	"go.opentelemetry.io/otel/metric"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stream"

	"github.com/adhocd/adhocd/modules"
	"github.com/adhocd/adhocd/wire"
)

// NS is XEP-0352's namespace.
const NS = "urn:xmpp:csi:0"

// Module is XEP-0352 on the module API: the stream feature, the handler of
// <active/> and <inactive/>, and the interceptor that holds stanzas.
type Module struct {
	// held and collapsed count the stanzas held while inactive and the
	// held ones a newer one replaced.
	held, collapsed metric.Int64Counter
	maxHeld         int
	domain          string
	// now is the clock of the delay stamps.
	now func() time.Time
}

// New returns the Client State Indication module.
func New() modules.Module { return &Module{now: time.Now} }

// Interface guards: the capabilities the server finds on the module.
var (
	_ modules.StreamFeatures       = (*Module)(nil)
	_ modules.StreamElementHandler = (*Module)(nil)
	_ modules.StanzaInterceptor    = (*Module)(nil)
)

// Name implements modules.Module.
func (m *Module) Name() string { return "csi" }

// Start implements modules.Module.
func (m *Module) Start(_ context.Context, h modules.Host) error {
	m.maxHeld = h.Config().Limits.CSI.MaxHeld
	if m.maxHeld < 1 {
		m.maxHeld = 1
	}
	m.domain = h.Domain().String()
	m.held = modules.Counter(h, "adhocd.csi.held", "Stanzas held for inactive sessions (XEP-0352).")
	m.collapsed = modules.Counter(h, "adhocd.csi.collapsed", "Held stanzas dropped for a newer one of the same sender and kind (presence, chat states).")
	return nil
}

// Stop implements modules.Module.
func (m *Module) Stop(context.Context) error { return nil }

// StreamFeatures implements modules.StreamFeatures: <csi xmlns='urn:xmpp:csi:0'/>.
func (m *Module) StreamFeatures() []xml.Name { return []xml.Name{{Space: NS, Local: "csi"}} }

var elements = []xml.Name{{Space: NS, Local: "active"}, {Space: NS, Local: "inactive"}}

// StreamElements implements modules.StreamElementHandler: <active/> and
// <inactive/>; any other name in the namespace is left to the router, which
// closes the stream with unsupported-stanza-type.
func (m *Module) StreamElements() []xml.Name { return elements }

// stateKey keys a session's state (modules.Session.Value).
type stateKey struct{}

// HandleStreamElement implements modules.StreamElementHandler. <inactive/>
// starts holding; <active/> stops it and delivers what was held. Either is
// harmless when the session is in that state already. It runs on the
// session's own stream, the one goroutine that sets the state.
func (m *Module) HandleStreamElement(_ context.Context, s modules.Session, el *wire.Element) error {
	st, _ := s.Value(stateKey{}).(*state)
	switch el.Start.Name.Local {
	case "inactive":
		if st == nil {
			st = newState()
			s.SetValue(stateKey{}, st)
		}
		st.setInactive()
	case "active":
		if st != nil {
			st.activate(s, m.domain)
		}
	default:
		return wire.StreamError(stream.UnsupportedStanzaType, "unsupported element {"+NS+"}"+el.Start.Name.Local)
	}
	return nil
}

// InterceptIn implements modules.StanzaInterceptor: what a session sends is
// never held.
func (m *Module) InterceptIn(context.Context, modules.Session, *wire.Element, jid.JID) error {
	return nil
}

// InterceptOut implements modules.StanzaInterceptor: it holds a stanza that
// can wait for an inactive session, and makes what is held go out before
// an urgent one. A session that never sent <inactive/> costs one lookup.
func (m *Module) InterceptOut(to modules.Session, el *wire.Element) bool {
	st, _ := to.Value(stateKey{}).(*state)
	if st == nil {
		return true
	}
	return st.out(m, to, el)
}
