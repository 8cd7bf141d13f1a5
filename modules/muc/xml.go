package muc

import (
	"encoding/xml"
	"strings"

	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/wire"
)

// Namespaces read or written by the service.
const (
	nsMUC        = "http://jabber.org/protocol/muc"
	nsUser       = nsMUC + "#user"
	nsAdmin      = nsMUC + "#admin"
	nsOwner      = nsMUC + "#owner"
	nsRoomConfig = nsMUC + "#roomconfig"
	nsRoomInfo   = nsMUC + "#roominfo"
	nsStableID   = nsMUC + "#stable_id"
	nsSelfPing   = nsMUC + "#self-ping-optimization"
	nsXData      = "jabber:x:data"
	nsDelay      = "urn:xmpp:delay"
	nsPing       = "urn:xmpp:ping"
	nsOccupantID = "urn:xmpp:occupant-id:0"
	nsDiscoInfo  = "http://jabber.org/protocol/disco#info"
	nsDiscoItems = "http://jabber.org/protocol/disco#items"
)

// stanzaOf is a jabber:client stanza (message, presence or iq) from from
// to to; typ and id are left out when empty.
func stanzaOf(kind, from, to, typ, id string) wire.Node {
	return wire.Elem(stanza.NSClient, kind, "from", from, "to", to, "type", typ, "id", id)
}

// statusNodes are muc#user <status/> elements for codes.
func statusNodes(codes ...string) []wire.Node {
	out := make([]wire.Node, 0, len(codes))
	for _, c := range codes {
		out = append(out, wire.Elem(nsUser, "status", "code", c))
	}
	return out
}

// without returns the child elements of toks (an element's inner tokens)
// except those drop rejects, as tokens; character data between children is
// kept. The result shares no slice with toks.
func without(toks []xml.Token, drop func(xml.Name) bool) []xml.Token {
	return withoutElems(toks, func(st xml.StartElement) bool { return drop(st.Name) })
}

// withoutElems is without, deciding on a child's start tag (its name and
// attributes).
func withoutElems(toks []xml.Token, drop func(xml.StartElement) bool) []xml.Token {
	out := make([]xml.Token, 0, len(toks))
	depth := 0
	skipping := false
	for _, t := range toks {
		switch t := t.(type) {
		case xml.StartElement:
			if depth == 0 {
				skipping = drop(t)
			}
			depth++
		case xml.EndElement:
			depth--
			if depth == 0 && skipping {
				skipping = false
				continue
			}
		}
		if !skipping {
			out = append(out, t)
		}
	}
	return out
}

// mucChild reports the children the service replaces in what it relays:
// the client's own MUC payloads and any occupant id it claims (XEP-0421
// §4: a service strips them).
func mucChild(n xml.Name) bool {
	switch n.Space {
	case nsMUC, nsUser, nsOccupantID:
		return true
	}
	return false
}

// textOf is the trimmed text of el's child local in space, and whether it
// is there.
func textOf(el *wire.Element, space, local string) (string, bool) {
	s, ok := el.Text(xml.Name{Space: space, Local: local})
	return strings.TrimSpace(s), ok
}
