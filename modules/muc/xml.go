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

// node is an element the service writes: a name, attributes, text, tokens
// copied from a client's stanza, and then the children the service adds.
type node struct {
	name  xml.Name
	attrs []xml.Attr
	text  string
	kids  []node
	raw   []xml.Token
}

// elem returns the element local in space with attributes given as
// name, value pairs; a pair with an empty value is left out.
func elem(space, local string, attrs ...string) node {
	n := node{name: xml.Name{Space: space, Local: local}}
	for i := 0; i+1 < len(attrs); i += 2 {
		if attrs[i+1] != "" {
			n.attrs = append(n.attrs, xml.Attr{Name: xml.Name{Local: attrs[i]}, Value: attrs[i+1]})
		}
	}
	return n
}

// textElem is an element holding text (which may be empty).
func textElem(space, local, text string) node {
	n := elem(space, local)
	n.text = text
	return n
}

// add appends children.
func (n node) add(kids ...node) node {
	n.kids = append(n.kids, kids...)
	return n
}

// tokens appends n's tokens to dst.
func (n node) tokens(dst []xml.Token) []xml.Token {
	st := xml.StartElement{Name: n.name, Attr: n.attrs}
	dst = append(dst, st)
	if n.text != "" {
		dst = append(dst, xml.CharData(n.text))
	}
	dst = append(dst, n.raw...)
	for _, k := range n.kids {
		dst = k.tokens(dst)
	}
	return append(dst, st.End())
}

// reader is n as a token stream, for Host.Send.
func (n node) reader() xml.TokenReader { return &wire.SliceReader{Toks: n.tokens(nil)} }

// stanzaOf is a jabber:client stanza (message, presence or iq) from from
// to to; typ and id are left out when empty.
func stanzaOf(kind, from, to, typ, id string) node {
	return elem(stanza.NSClient, kind, "from", from, "to", to, "type", typ, "id", id)
}

// statusNodes are muc#user <status/> elements for codes.
func statusNodes(codes ...string) []node {
	out := make([]node, 0, len(codes))
	for _, c := range codes {
		out = append(out, elem(nsUser, "status", "code", c))
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

// errorOf is a stanza error with an English text.
func errorOf(typ stanza.ErrorType, cond stanza.Condition, text string) stanza.Error {
	se := stanza.Error{Type: typ, Condition: cond}
	if text != "" {
		se.Text = map[string]string{"en": text}
	}
	return se
}
