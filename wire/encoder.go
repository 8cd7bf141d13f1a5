package wire

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"
)

// Encoder serialises tokens as XML that declares each namespace once: a
// child in its parent's default namespace carries no xmlns attribute. The
// standard library's xml.Encoder writes xmlns="…" on every element whose
// name has a namespace, so every <item/> of a disco#items reply repeats
// xmlns="http://jabber.org/protocol/disco#items"; valid XML, but some
// clients read attributes as the element's own (nbxmpp 4.2 fails on such a
// command list), and it costs bytes on every stanza.
//
// A token's namespace follows encoding/xml's conventions, so that tokens
// from the decoder and from mellium.im handlers mean the same here as they
// did to xml.Encoder: a StartElement with Name.Space set is in that
// namespace; one with an empty Name.Space is in the namespace its xmlns
// attribute names (the decoder marks elements in no namespace with
// xmlns=""), or else inherits its parent's. Declarations among the
// attributes are never copied: the encoder writes its own.
//
// It is written here because no library does this for a stream of tokens
// whose outermost default namespace is the stream's (jabber:client on TCP,
// none over WebSocket, RFC 7395 §3.3.3).
type Encoder struct {
	buf   *bytes.Buffer
	stack []openElement
	// root is the default namespace in force outside the first element.
	root string
	// startOpen: the last start tag is not yet closed with '>' or "/>".
	startOpen bool
}

type openElement struct {
	local, ns string
}

var errOpenElement = errors.New("element left open")

// Reset prepares the encoder to write whole elements into buf, outside of
// which root is the default namespace.
func (e *Encoder) Reset(buf *bytes.Buffer, root string) {
	e.buf, e.root, e.stack, e.startOpen = buf, root, e.stack[:0], false
}

// defaultNS is the default namespace in force for the next element.
func (e *Encoder) defaultNS() string {
	if n := len(e.stack); n > 0 {
		return e.stack[n-1].ns
	}
	return e.root
}

// CopyFrom encodes every token of r; they must make whole elements.
func (e *Encoder) CopyFrom(r xml.TokenReader) error {
	for {
		t, err := r.Token()
		if t != nil {
			if e2 := e.Token(t); e2 != nil {
				return e2
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("server: encode: %w", err)
		}
	}
	return e.Close()
}

// Close reports an element left open; the output is then incomplete.
func (e *Encoder) Close() error {
	if len(e.stack) != 0 {
		return fmt.Errorf("server: encode: %d %w", len(e.stack), errOpenElement)
	}
	return nil
}

// Token writes one Token.
func (e *Encoder) Token(t xml.Token) error {
	switch t := t.(type) {
	case xml.StartElement:
		return e.Start(t)
	case xml.EndElement:
		return e.End(t)
	case xml.CharData:
		e.closeStart()
		escapeText(e.buf, t)
		return nil
	}
	return fmt.Errorf("server: encode: %T is not allowed in a stanza", t)
}

func (e *Encoder) closeStart() {
	if e.startOpen {
		e.buf.WriteByte('>')
		e.startOpen = false
	}
}

func (e *Encoder) Start(t xml.StartElement) error {
	if t.Name.Local == "" {
		return errors.New("server: encode: start element with no name")
	}
	e.closeStart()
	parent := e.defaultNS()
	ns, declared := t.Name.Space, t.Name.Space != ""
	if !declared {
		ns = parent
		for _, a := range t.Attr {
			if a.Name.Space == "" && a.Name.Local == "xmlns" {
				ns = a.Value
			}
		}
	}
	e.buf.WriteByte('<')
	e.buf.WriteString(t.Name.Local)
	if ns != parent {
		e.buf.WriteString(` xmlns="`)
		EscapeAttr(e.buf, ns)
		e.buf.WriteByte('"')
	}
	prefixes := 0
	for _, a := range t.Attr {
		switch {
		case a.Name.Local == "":
			return errors.New("server: encode: attribute with no name")
		case a.Name.Space == "xmlns", a.Name.Space == "" && a.Name.Local == "xmlns":
			continue // declarations: written above, as needed
		case a.Name.Space == "":
			e.buf.WriteByte(' ')
		case a.Name.Space == NSXML || a.Name.Space == "xml":
			e.buf.WriteString(" xml:")
		default:
			// An attribute in another namespace gets a prefix of its own.
			prefixes++
			p := "ns" + strconv.Itoa(prefixes)
			e.buf.WriteString(" xmlns:" + p + `="`)
			EscapeAttr(e.buf, a.Name.Space)
			e.buf.WriteString(`" ` + p + ":")
		}
		e.buf.WriteString(a.Name.Local)
		e.buf.WriteString(`="`)
		EscapeAttr(e.buf, a.Value)
		e.buf.WriteByte('"')
	}
	e.startOpen = true
	e.stack = append(e.stack, openElement{local: t.Name.Local, ns: ns})
	return nil
}

func (e *Encoder) End(t xml.EndElement) error {
	n := len(e.stack)
	if n == 0 {
		return fmt.Errorf("server: encode: end tag </%s> without a start", t.Name.Local)
	}
	top := e.stack[n-1]
	if t.Name.Local != top.local || (t.Name.Space != "" && t.Name.Space != top.ns) {
		return fmt.Errorf("server: encode: end tag </%s> does not close <%s>", t.Name.Local, top.local)
	}
	e.stack = e.stack[:n-1]
	if e.startOpen {
		e.buf.WriteString("/>")
		e.startOpen = false
		return nil
	}
	e.buf.WriteString("</")
	e.buf.WriteString(top.local)
	e.buf.WriteByte('>')
	return nil
}

// escapeText writes character data: markup characters as entities, a
// carriage return as a reference (so that it survives end-of-line
// normalisation), and what is not a valid XML character as U+FFFD.
func escapeText(b *bytes.Buffer, s []byte) {
	// The string shares s's bytes for the call only; nothing keeps it.
	escape(b, unsafe.String(unsafe.SliceData(s), len(s)), false)
}

// escapeAttr writes an attribute value for double quotes; white space other
// than the space is kept as references, which attribute normalisation
// would otherwise turn into spaces.
// EscapeAttr writes s escaped for an attribute value in quotes of either
// kind, with what XML cannot carry replaced.
func EscapeAttr(b *bytes.Buffer, s string) { escape(b, s, true) }

func escape(b *bytes.Buffer, s string, attr bool) {
	// Printable ASCII other than the markup characters is written as it
	// is, without decoding runes; the rest from the first other byte on.
	i := 0
	for i < len(s) {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '&' || c == '<' || c == '>' || c == '"' {
			break
		}
		i++
	}
	if i == len(s) {
		b.WriteString(s)
		return
	}
	b.WriteString(s[:i])
	escapeRunes(b, s[i:], attr)
}

// escapeRunes is escape, rune by rune.
func escapeRunes(b *bytes.Buffer, s string, attr bool) {
	last := 0
	for i, r := range s {
		var esc string
		switch {
		case r == '&':
			esc = "&amp;"
		case r == '<':
			esc = "&lt;"
		case r == '>' && !attr:
			esc = "&gt;"
		case r == '"' && attr:
			esc = "&quot;"
		case r == '\t' && attr:
			esc = "&#x9;"
		case r == '\n' && attr:
			esc = "&#xA;"
		case r == '\r':
			esc = "&#xD;"
		case r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD"), !xmlChar(r):
			esc = "\uFFFD"
		default:
			continue
		}
		b.WriteString(s[last:i])
		b.WriteString(esc)
		_, w := utf8.DecodeRuneInString(s[i:])
		last = i + w
	}
	b.WriteString(s[last:])
}

// xmlChar reports whether r is a character XML 1.0 allows (§2.2).
func xmlChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		(r >= 0x20 && r <= 0xD7FF) || (r >= 0xE000 && r <= 0xFFFD) || (r >= 0x10000 && r <= 0x10FFFF)
}
