package wire

import "encoding/xml"

// Node is an element a module writes, built in memory: a name, attributes,
// text, tokens copied as they are (the payload of a client's stanza that a
// service relays), and then the child nodes. It is the writing side of
// Element: a service composes its answers with Elem, TextElem and Add, and
// hands Reader to the router.
type Node struct {
	Name xml.Name
	Attr []xml.Attr
	// Text is the character data written first; empty writes none.
	Text string
	// Raw are whole tokens written after Text and before Kids, unchanged:
	// they must make whole elements (or character data).
	Raw  []xml.Token
	Kids []Node
}

// Elem returns the element local in space with attributes given as name,
// value pairs; a pair with an empty value is left out, so that an optional
// attribute is passed as it is.
func Elem(space, local string, attrs ...string) Node {
	n := Node{Name: xml.Name{Space: space, Local: local}}
	for i := 0; i+1 < len(attrs); i += 2 {
		if attrs[i+1] != "" {
			n.Attr = append(n.Attr, xml.Attr{Name: xml.Name{Local: attrs[i]}, Value: attrs[i+1]})
		}
	}
	return n
}

// TextElem is the element local in space holding text (which may be
// empty).
func TextElem(space, local, text string) Node {
	n := Elem(space, local)
	n.Text = text
	return n
}

// Add returns n with kids appended to its children. As with append, the
// result may share its children's array with n: build a node from one
// chain of Add calls rather than adding to the same node twice.
func (n Node) Add(kids ...Node) Node {
	n.Kids = append(n.Kids, kids...)
	return n
}

// Tokens appends n's tokens, from its start tag to its end tag, to dst.
func (n Node) Tokens(dst []xml.Token) []xml.Token {
	st := xml.StartElement{Name: n.Name, Attr: n.Attr}
	dst = append(dst, st)
	if n.Text != "" {
		dst = append(dst, xml.CharData(n.Text))
	}
	dst = append(dst, n.Raw...)
	for _, k := range n.Kids {
		dst = k.Tokens(dst)
	}
	return append(dst, st.End())
}

// Reader is n as a token stream (for modules.Host's Send).
func (n Node) Reader() xml.TokenReader { return &SliceReader{Toks: n.Tokens(nil)} }

// SwapNS moves el from the namespace from to the namespace to: its own
// name and those of the children that inherited the stream's default
// namespace (a message's <body/>). It puts the stanzas of an external
// component (jabber:component:accept) or of a remote server
// (jabber:server) in jabber:client, the namespace of stanzas inside the
// server, and back.
func SwapNS(el *Element, from, to string) {
	if el.Start.Name.Space == from {
		el.Start.Name.Space = to
	}
	for i, t := range el.Inner {
		switch t := t.(type) {
		case xml.StartElement:
			if t.Name.Space == from {
				t.Name.Space = to
				el.Inner[i] = t
			}
		case xml.EndElement:
			if t.Name.Space == from {
				t.Name.Space = to
				el.Inner[i] = t
			}
		}
	}
}
