package csi

import (
	"encoding/xml"

	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/wire"
)

// Namespaces the rules of the package comment read.
const (
	nsCarbons    = "urn:xmpp:carbons:2"
	nsForward    = "urn:xmpp:forward:0"
	nsChatStates = "http://jabber.org/protocol/chatstates"
	nsHints      = "urn:xmpp:hints"
	nsSID        = "urn:xmpp:sid:0"
	nsEME        = "urn:xmpp:eme:0"
	nsOMEMO      = "eu.siacs.conversations.axolotl"
	nsOMEMO2     = "urn:xmpp:omemo:2"
	nsConference = "jabber:x:conference"
	nsMUCUser    = "http://jabber.org/protocol/muc#user"
	nsJingleMsg  = "urn:xmpp:jingle-message:0"
)

// kind is what a held stanza collapses with.
type kind uint8

const (
	// keepAll: never collapsed.
	keepAll kind = iota
	// presenceUpdate: the last presence of a sender's full JID.
	presenceUpdate
	// chatState: the last chat-state-only message of a sender's full JID.
	chatState
	// carbonChatState: the same, received as a carbon (XEP-0280), by the
	// forwarded message's sender.
	carbonChatState
)

// collapseKey names the held stanza a newer one replaces.
type collapseKey struct {
	kind kind
	from string
}

// classify tells whether el is urgent (see the package comment) and, when
// it is not, what it collapses with.
func classify(el *wire.Element) (bool, collapseKey) {
	if !wire.IsStanza(el.Start.Name) {
		return true, collapseKey{}
	}
	typ := el.Attr("type")
	switch el.Start.Name.Local {
	case "iq":
		return true, collapseKey{}
	case "presence":
		switch typ {
		case "", "unavailable", "error":
			return false, collapseKey{kind: presenceUpdate, from: el.Attr("from")}
		}
		return true, collapseKey{}
	}
	switch typ {
	case "error":
		return true, collapseKey{}
	case "headline":
		return false, collapseKey{}
	}
	return classifyMessage(el.Inner, el.Attr("from"), chatState)
}

// classifyMessage reads a message's children (inner), sent by from; ck is
// the kind its chat states collapse as.
func classifyMessage(inner []xml.Token, from string, ck kind) (bool, collapseKey) {
	states, other := false, false
	for _, c := range children(inner) {
		n := c.start.Name
		switch n.Space {
		case stanza.NSClient:
			switch n.Local {
			case "body", "subject":
				return true, collapseKey{}
			case "thread":
			default:
				other = true
			}
		case nsCarbons:
			switch n.Local {
			case "sent":
				return true, collapseKey{}
			case "received":
				fwd, ok := forwardedMessage(c.inner)
				if !ok || ck == carbonChatState {
					// A carbon without a message, or of a carbon.
					return false, collapseKey{}
				}
				return classifyMessage(fwd.inner, wire.AttrOf(fwd.start, "from"), carbonChatState)
			default:
				other = true
			}
		case nsChatStates:
			states = true
		case nsHints, nsSID:
		case nsEME, nsOMEMO, nsOMEMO2:
			if n.Local == "encryption" || n.Local == "encrypted" {
				return true, collapseKey{}
			}
			other = true
		case nsConference:
			if n.Local == "x" {
				return true, collapseKey{}
			}
			other = true
		case nsMUCUser:
			if invite(c.inner) {
				return true, collapseKey{}
			}
			other = true
		case nsJingleMsg:
			return true, collapseKey{}
		default:
			other = true
		}
	}
	if states && !other {
		return false, collapseKey{kind: ck, from: from}
	}
	return false, collapseKey{}
}

// child is one child element: its start tag and its content.
type child struct {
	start xml.StartElement
	inner []xml.Token
}

// children splits toks, an element's content, into its child elements.
func children(toks []xml.Token) []child {
	var out []child
	depth, from := 0, 0
	for i, t := range toks {
		switch t.(type) {
		case xml.StartElement:
			if depth == 0 {
				from = i
			}
			depth++
		case xml.EndElement:
			depth--
			if depth == 0 {
				out = append(out, child{start: toks[from].(xml.StartElement), inner: toks[from+1 : i]})
			}
		}
	}
	return out
}

// forwardedMessage finds <forwarded xmlns='urn:xmpp:forward:0'><message/>
// in a carbon's content.
func forwardedMessage(toks []xml.Token) (child, bool) {
	for _, f := range children(toks) {
		if f.start.Name != (xml.Name{Space: nsForward, Local: "forwarded"}) {
			continue
		}
		for _, m := range children(f.inner) {
			if m.start.Name == (xml.Name{Space: stanza.NSClient, Local: "message"}) {
				return m, true
			}
		}
	}
	return child{}, false
}

// invite reports whether a muc#user <x/> carries an <invite/> (XEP-0045
// mediated invitation).
func invite(toks []xml.Token) bool {
	for _, c := range children(toks) {
		if c.start.Name == (xml.Name{Space: nsMUCUser, Local: "invite"}) {
			return true
		}
	}
	return false
}
