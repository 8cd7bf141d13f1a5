package server

import (
	"encoding/xml"
	"slices"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/wire"
)

// Message Carbons (XEP-0280, version 1.0.1). A session turns carbons on with
// an IQ set carrying <enable xmlns='urn:xmpp:carbons:2'/> (and off with
// <disable/>), addressed to nobody, to its own bare JID or to the server. It
// then receives, wrapped in <received/> or <sent/> and a XEP-0297
// <forwarded/>, a copy of every eligible message that reaches or leaves its
// account through another of the account's sessions. Turning carbons on costs
// the login nothing but the reply: the flag lives on the connection, nothing
// is stored.
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

// featureCarbons is the disco#info feature of XEP-0280 on the server JID.
const featureCarbons = nsCarbons

// carbonsIQ answers an IQ set that enables or disables carbons for c's
// session. It reports whether the IQ was one.
func (s *Server) carbonsIQ(c *conn, el *wire.Element, to jid.JID) (bool, error) {
	if el.Attr("type") != string(stanza.SetIQ) {
		return false, nil
	}
	if to.String() != "" && !to.Equal(c.addr.Bare()) && !to.Equal(s.domain) {
		return false, nil
	}
	payload, n := el.Payload()
	if n != 1 || payload.Space != nsCarbons {
		return false, nil
	}
	switch payload.Local {
	case "enable":
		c.carbons.Store(true)
	case "disable":
		c.carbons.Store(false)
	default:
		return false, nil
	}
	return true, s.reply(c, el, nil)
}

// carbonsReceived sends a <received/> copy of el, just delivered to got (all
// sessions of user, or none when it was kept offline), to each other session
// of user that enabled carbons.
func (s *Server) carbonsReceived(el *wire.Element, user string, got ...*conn) {
	dsts := s.sessions.carbonsEnabled(user)
	if len(dsts) == 0 || !carbonEligible(el, false) {
		return
	}
	from := el.Attr("from")
	var fwd []xml.Token
	for _, dst := range dsts {
		if slices.Contains(got, dst) || dst.addr.String() == from {
			continue
		}
		if fwd == nil {
			fwd = forwarded("received", el)
		}
		s.deliver(dst, carbonFor(dst, el, fwd))
	}
}

// carbonsSent sends a <sent/> copy of el, which c sent to to and which was
// accepted for delivery, to each other session of c's account that enabled
// carbons. A message to the account itself is left to carbonsReceived.
func (s *Server) carbonsSent(c *conn, el *wire.Element, to jid.JID) {
	if s.isLocal(to) && to.Localpart() == c.user {
		return
	}
	dsts := s.sessions.carbonsEnabled(c.user)
	if len(dsts) == 0 || (len(dsts) == 1 && dsts[0] == c) || !carbonEligible(el, true) {
		return
	}
	fwd := forwarded("sent", el)
	for _, dst := range dsts {
		if dst != c {
			s.deliver(dst, carbonFor(dst, el, fwd))
		}
	}
}

// carbonFor wraps the forwarded tokens for one session: from its bare JID, to
// its full JID, of the original's type (XEP-0280 §7, §8).
func carbonFor(dst *conn, orig *wire.Element, fwd []xml.Token) *wire.Element {
	w := &wire.Element{Start: xml.StartElement{Name: xml.Name{Space: stanza.NSClient, Local: "message"}}, Inner: fwd}
	w.SetAttr("from", dst.addr.Bare().String())
	w.SetAttr("to", dst.addr.String())
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
