package upload

import (
	"encoding/xml"

	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/wire"
)

// Namespaces read or written by the service.
const (
	// NS is XEP-0363's namespace.
	NS           = "urn:xmpp:http:upload:0"
	nsDiscoInfo  = "http://jabber.org/protocol/disco#info"
	nsDiscoItems = "http://jabber.org/protocol/disco#items"
	nsPing       = "urn:xmpp:ping"
	nsXData      = "jabber:x:data"
)

// node is an element the service writes: a name, attributes, text and
// children.
type node struct {
	name  xml.Name
	attrs []xml.Attr
	text  string
	kids  []node
}

// elem returns the element local in space with attributes given as name,
// value pairs; a pair with an empty value is left out.
func elem(space, local string, attrs ...string) node {
	n := node{name: xml.Name{Space: space, Local: local}}
	for i := 0; i+1 < len(attrs); i += 2 {
		if attrs[i+1] != "" {
			n.attrs = append(n.attrs, xml.Attr{Name: xml.Name{Local: attrs[i]}, Value: attrs[i+1]})
		}
	}
	return n
}

// textElem is an element holding text.
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
	for _, k := range n.kids {
		dst = k.tokens(dst)
	}
	return append(dst, st.End())
}

// reader is n as a token stream, for Host.Send.
func (n node) reader() xml.TokenReader { return &wire.SliceReader{Toks: n.tokens(nil)} }

// errorOf is a stanza error with an English text.
func errorOf(typ stanza.ErrorType, cond stanza.Condition, text string) stanza.Error {
	se := stanza.Error{Type: typ, Condition: cond}
	if text != "" {
		se.Text = map[string]string{"en": text}
	}
	return se
}

// appError is a stanza error with an element of XEP-0363's namespace
// inside it: <file-too-large/> or <retry/>.
type appError struct {
	se  stanza.Error
	app node
}

func (e appError) Error() string { return e.se.Error() }

// TokenReader renders the <error/> (modules.DomainHandler's contract).
func (e appError) TokenReader() xml.TokenReader {
	return e.se.Wrap(&wire.SliceReader{Toks: e.app.tokens(nil)})
}
