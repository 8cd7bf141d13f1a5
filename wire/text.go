package wire

import (
	"bytes"
	"encoding/xml"
	"strings"

	"mellium.im/xmpp/stanza"
	"mellium.im/xmpp/stream"
)

// AttrOf returns the value of st's unqualified attribute named local.
func AttrOf(st xml.StartElement, local string) string {
	for _, a := range st.Attr {
		if a.Name.Local == local && a.Name.Space == "" {
			return a.Value
		}
	}
	return ""
}

// StreamErrorXML renders a stream error with the stream prefix bound by our
// header, or declared by decl.
func StreamErrorXML(se stream.Error, decl string) string {
	var b strings.Builder
	b.WriteString(`<stream:error` + decl + `><` + se.Err + ` xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>`)
	for _, t := range se.Text {
		b.WriteString(`<text xmlns='urn:ietf:params:xml:ns:xmpp-streams' xml:lang='` + t.Lang + `'>`)
		xml.EscapeText(&b, []byte(t.Value))
		b.WriteString(`</text>`)
	}
	b.WriteString(`</stream:error>`)
	return b.String()
}

// Serialize renders tokens, outside of which jabber:client is the default
// namespace, as XML text to be stored; it returns "" for tokens that make no
// whole elements or whose text is longer than limit.
func Serialize(toks []xml.Token, limit int) string {
	var b bytes.Buffer
	var e Encoder
	e.Reset(&b, stanza.NSClient)
	for _, t := range toks {
		if err := e.Token(t); err != nil {
			return ""
		}
	}
	if e.Close() != nil || b.Len() > limit {
		return ""
	}
	return b.String()
}

// Parse reads back what Serialize stored.
func Parse(s string) []xml.Token {
	if s == "" {
		return nil
	}
	d := xml.NewDecoder(strings.NewReader(s))
	// Serialize leaves out jabber:client, the stream's namespace.
	d.DefaultSpace = stanza.NSClient
	var out []xml.Token
	for {
		t, err := d.Token()
		if err != nil {
			return out
		}
		if st, ok := t.(xml.StartElement); ok {
			t = StripNSDecl(st)
		}
		out = append(out, xml.CopyToken(t))
	}
}

// SerializeElement renders a whole element as Serialize does: "" when its
// text is longer than limit.
func SerializeElement(el *Element, limit int) string {
	whole := make([]xml.Token, 0, len(el.Inner)+2)
	whole = append(append(append(whole, el.Start), el.Inner...), el.Start.End())
	return Serialize(whole, limit)
}

// ParseElement reads back what SerializeElement stored; false when s is
// not one whole element.
func ParseElement(s string) (*Element, bool) {
	toks := Parse(s)
	if len(toks) < 2 {
		return nil, false
	}
	start, ok := toks[0].(xml.StartElement)
	if !ok {
		return nil, false
	}
	if end, ok := toks[len(toks)-1].(xml.EndElement); !ok || end.Name != start.Name {
		return nil, false
	}
	return &Element{Start: start, Inner: toks[1 : len(toks)-1]}, true
}
