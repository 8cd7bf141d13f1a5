// Package carbons is XEP-0280 Message Carbons (version 1.0.1), with XEP-0297
// forwarding. A session turns carbons on with
// an IQ set carrying <enable xmlns='urn:xmpp:carbons:2'/> (and off with
// <disable/>), addressed to nobody, to its own bare JID or to the server. It
// then receives, wrapped in <received/> or <sent/> and a XEP-0297
// <forwarded/>, a copy of every eligible message that reaches or leaves its
// account through another of the account's sessions. Turning carbons on costs
// the login nothing but the reply: the flag lives on the session
// (modules.Session.SetValue), nothing is stored.
//
// Eligibility follows the recommended rules of XEP-0280 §6.1, except the one
// that needs the server to remember messages (errors answering an eligible
// message): messages of type error or headline are never copied, nor is
// groupchat. A message is copied when it is of type chat; of type normal with
// a <body/>, a receipt (XEP-0184), a chat state (XEP-0085), a chat marker
// (XEP-0333) or an invitation (XEP-0249 direct, XEP-0045 mediated). A private
// message to a MUC participant (it carries a muc#user <x/>) is copied to the
// sender's other sessions, one from a MUC participant is not copied to the
// recipient's. A message with <private xmlns='urn:xmpp:carbons:2'/> (§8) or a
// XEP-0334 <no-copy/> hint is never copied, and is delivered unchanged: since
// XEP-0280 0.13 the server no longer strips <private/>. Carbons themselves
// (a message whose child is <received/> or <sent/>) are not copied again.
//
// Copies go to every session of the account that has carbons enabled, with
// or without available presence, except the sessions that got the message
// itself and the session that sent it. A message a user sends to their own
// account gets received copies only, so that no session sees it twice.
package carbons

import (
	"context"
	"encoding/xml"
	"slices"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/modules"
	"github.com/adhocd/adhocd/wire"
)

// Namespaces read or written by Message Carbons.
const (
	nsCarbons    = "urn:xmpp:carbons:2"
	nsForward    = "urn:xmpp:forward:0"
	nsHints      = "urn:xmpp:hints"
	nsReceipts   = "urn:xmpp:receipts"
	nsChatStates = "http://jabber.org/protocol/chatstates"
	nsMarkers    = "urn:xmpp:chat-markers:0"
	nsMUCUser    = "http://jabber.org/protocol/muc#user"
	nsConference = "jabber:x:conference"
)

// Module is XEP-0280 on the module API: IQ routes for enable and disable (on
// the server JID and on the account's own), a message hook for the copies,
// and the disco feature.
type Module struct {
	// copies counts the carbons delivered, by kind (sent, received).
	copies metric.Int64Counter
	h      modules.Host
	domain jid.JID
}

// New returns the Message Carbons module.
func New() modules.Module { return &Module{} }

// Interface guards: the capabilities the server finds on the module.
var (
	_ modules.IQHandler        = (*Module)(nil)
	_ modules.AccountIQHandler = (*Module)(nil)
	_ modules.MessageHook      = (*Module)(nil)
	_ modules.CopyHook         = (*Module)(nil)
	_ modules.Features         = (*Module)(nil)
)

// Name implements modules.Module.
func (m *Module) Name() string { return "carbons" }

// Start implements modules.Module.
func (m *Module) Start(_ context.Context, h modules.Host) error {
	m.h, m.domain = h, h.Domain()
	m.copies = modules.Counter(h, "adhocd.carbons.copies", "Message carbons delivered, by kind (sent, received).")
	return nil
}

// Stop implements modules.Module.
func (m *Module) Stop(context.Context) error { return nil }

// Features implements modules.Features: urn:xmpp:carbons:2 on the server JID.
func (m *Module) Features() []string { return []string{nsCarbons} }

var routes = []modules.Route{
	{Type: stanza.SetIQ, Payload: xml.Name{Space: nsCarbons, Local: "enable"}},
	{Type: stanza.SetIQ, Payload: xml.Name{Space: nsCarbons, Local: "disable"}},
}

// Routes implements modules.IQHandler: enable and disable sent to the server.
func (m *Module) Routes() []modules.Route { return routes }

// AccountRoutes implements modules.AccountIQHandler: enable and disable sent
// to the account's bare JID or to no one, as XEP-0280's examples do.
func (m *Module) AccountRoutes() []modules.Route { return routes }

// enabledKey keys the session's carbons flag.
type enabledKey struct{}

// HandleIQ turns carbons on or off for the requesting session.
func (m *Module) HandleIQ(_ context.Context, iq modules.IQ) (xml.TokenReader, error) {
	if iq.Session == nil {
		return nil, stanza.Error{Type: stanza.Cancel, Condition: stanza.NotAllowed}
	}
	iq.Session.SetValue(enabledKey{}, iq.Payload.Name.Local == "enable")
	return nil, nil
}

// enabled returns the sessions of user that enabled carbons.
func (m *Module) enabled(user string) []modules.Session {
	var out []modules.Session
	for _, s := range m.h.UserSessions(user) {
		if on, _ := s.Value(enabledKey{}).(bool); on {
			out = append(out, s)
		}
	}
	return out
}

// HasCopy implements modules.CopyHook: a session that enabled carbons got
// a <received/> copy of an eligible message delivered to another session
// of its account (MessageReceived), unless it sent the message itself.
func (m *Module) HasCopy(msg modules.Message, _ string, s modules.Session) bool {
	on, _ := s.Value(enabledKey{}).(bool)
	return on && s.JID().String() != msg.El.Attr("from") && carbonEligible(msg.El, false)
}

// Personal implements modules.CopyHook: a message marked <private/> or
// with the XEP-0334 <no-copy/> hint is meant for its recipient's session
// alone.
func (m *Module) Personal(msg modules.Message) bool {
	return msg.El.Sub(xml.Name{Space: nsCarbons, Local: "private"}) != nil ||
		msg.El.Sub(xml.Name{Space: nsHints, Local: "no-copy"}) != nil
}

// MessageReceived sends a <received/> copy of a message just delivered to
// got (sessions of user, or none when it was kept offline) to each other
// session of user that enabled carbons.
func (m *Module) MessageReceived(_ context.Context, msg modules.Message, user string, got []modules.Session) {
	dsts := m.enabled(user)
	if len(dsts) == 0 || !carbonEligible(msg.El, false) {
		return
	}
	from := msg.El.Attr("from")
	var fwd []xml.Token
	for _, dst := range dsts {
		if slices.Contains(got, dst) || dst.JID().String() == from {
			continue
		}
		if fwd == nil {
			fwd = forwarded("received", msg.El)
		}
		dst.Deliver(carbonFor(dst, msg.El, fwd))
		m.copies.Add(context.Background(), 1, received)
	}
}

// MessageSent sends a <sent/> copy of a message a session sent, and which
// was accepted for delivery, to each other session of its account that
// enabled carbons. A message to the account itself is left to
// MessageReceived.
func (m *Module) MessageSent(_ context.Context, msg modules.Message) {
	if msg.Sender == nil {
		return
	}
	user := msg.Sender.JID().Localpart()
	if msg.To.Domainpart() == m.domain.Domainpart() && msg.To.Localpart() == user {
		return
	}
	dsts := m.enabled(user)
	if len(dsts) == 0 || (len(dsts) == 1 && dsts[0] == msg.Sender) || !carbonEligible(msg.El, true) {
		return
	}
	fwd := forwarded("sent", msg.El)
	for _, dst := range dsts {
		if dst != msg.Sender {
			dst.Deliver(carbonFor(dst, msg.El, fwd))
			m.copies.Add(context.Background(), 1, sent)
		}
	}
}

// The attributes of the copies counter.
var (
	sent     = metric.WithAttributes(attribute.String("kind", "sent"))
	received = metric.WithAttributes(attribute.String("kind", "received"))
)

// carbonFor wraps the forwarded tokens for one session: from its bare JID, to
// its full JID, of the original's type (XEP-0280 §7, §8).
func carbonFor(dst modules.Session, orig *wire.Element, fwd []xml.Token) *wire.Element {
	w := &wire.Element{Start: xml.StartElement{Name: xml.Name{Space: stanza.NSClient, Local: "message"}}, Inner: fwd}
	w.SetAttr("from", dst.JID().Bare().String())
	w.SetAttr("to", dst.JID().String())
	w.SetAttr("type", orig.Attr("type"))
	return w
}

// forwarded returns <kind xmlns='urn:xmpp:carbons:2'><forwarded
// xmlns='urn:xmpp:forward:0'>el</forwarded></kind> as tokens. The original's
// tokens are shared, not copied: nothing changes a delivered element.
func forwarded(kind string, el *wire.Element) []xml.Token {
	k := xml.StartElement{Name: xml.Name{Space: nsCarbons, Local: kind}}
	f := xml.StartElement{Name: xml.Name{Space: nsForward, Local: "forwarded"}}
	toks := make([]xml.Token, 0, len(el.Inner)+6)
	toks = append(toks, k, f, el.Start)
	toks = append(toks, el.Inner...)
	return append(toks, el.Start.End(), f.End(), k.End())
}

// carbonEligible applies the rules described at the top of this file to a
// message that is being sent (sent) or received.
func carbonEligible(el *wire.Element, sent bool) bool {
	typ := el.Attr("type")
	switch typ {
	case "chat", "normal", "":
	default: // groupchat, headline, error
		return false
	}
	var body, im, invite, muc, inMUC bool
	depth := 0
	for _, t := range el.Inner {
		switch t := t.(type) {
		case xml.StartElement:
			if depth == 1 && inMUC && t.Name == (xml.Name{Space: nsMUCUser, Local: "invite"}) {
				invite = true
			}
			depth++
			if depth != 1 {
				continue
			}
			inMUC = false
			switch t.Name.Space {
			case stanza.NSClient:
				body = body || t.Name.Local == "body"
			case nsCarbons:
				// <private/> opts out; <received/> and <sent/> are carbons already.
				return false
			case nsHints:
				if t.Name.Local == "no-copy" {
					return false
				}
			case nsReceipts, nsChatStates, nsMarkers:
				im = true
			case nsConference:
				invite = invite || t.Name.Local == "x"
			case nsMUCUser:
				inMUC = t.Name.Local == "x"
				muc = muc || inMUC
			}
		case xml.EndElement:
			depth--
		}
	}
	if muc && !invite && !sent {
		// A private message from a MUC occupant: the MUC service copies it to
		// every client joined with the nickname already.
		return false
	}
	return typ == "chat" || body || im || invite
}
