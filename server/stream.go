package server

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"mellium.im/xmpp/stanza"
	"mellium.im/xmpp/stream"
)

// Namespaces of the stream layer (RFC 6120).
const (
	nsStream    = "http://etherx.jabber.org/streams"
	nsTLS       = "urn:ietf:params:xml:ns:xmpp-tls"
	nsSASL      = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsBind      = "urn:ietf:params:xml:ns:xmpp-bind"
	nsSession   = "urn:ietf:params:xml:ns:xmpp-session"
	nsXML       = "http://www.w3.org/XML/1998/namespace"
	nsCB        = "urn:xmpp:sasl-cb:0"
	nsRosterVer = "urn:xmpp:features:rosterver"
	nsFraming   = "urn:ietf:params:xml:ns:xmpp-framing"
)

// errTooBig is returned by budgetReader when a stanza outgrows
// limits.max_stanza_bytes.
var errTooBig = errors.New("stanza exceeds limits.max_stanza_bytes")

// budgetReader hands bytes to encoding/xml one at a time (the decoder uses
// io.ByteReader when the source has it, and then buffers nothing itself) and
// refuses to hand out more than the budget left for the current stanza. The
// budget is reset between stanzas, so a stanza that never ends, an endless
// attribute or an endless text node all stop at the limit.
type budgetReader struct {
	br   *bufio.Reader
	left int
}

func (b *budgetReader) ReadByte() (byte, error) {
	if b.left <= 0 {
		return 0, errTooBig
	}
	b.left--
	return b.br.ReadByte()
}

func (b *budgetReader) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, errTooBig
	}
	if len(p) > b.left {
		p = p[:b.left]
	}
	n, err := b.br.Read(p)
	b.left -= n
	return n, err
}

// element is one top-level element read from a stream: its start tag and the
// copied tokens between the start and end tags.
type element struct {
	start xml.StartElement
	inner []xml.Token
}

// attr returns the value of the unqualified attribute named local.
func (e *element) attr(local string) string { return attrOf(e.start, local) }

// setAttr sets (or with an empty value removes) the unqualified attribute local.
func (e *element) setAttr(local, value string) {
	attrs := e.start.Attr[:0]
	for _, a := range e.start.Attr {
		if a.Name.Local == local && a.Name.Space == "" {
			continue
		}
		attrs = append(attrs, a)
	}
	e.start.Attr = attrs
	if value != "" {
		e.start.Attr = append(e.start.Attr, xml.Attr{Name: xml.Name{Local: local}, Value: value})
	}
}

// payload returns the name of the first child element, if any, and the number
// of child elements.
func (e *element) payload() (xml.Name, int) {
	var first xml.Name
	n, depth := 0, 0
	for _, t := range e.inner {
		switch t := t.(type) {
		case xml.StartElement:
			if depth == 0 {
				if n == 0 {
					first = t.Name
				}
				n++
			}
			depth++
		case xml.EndElement:
			depth--
		}
	}
	return first, n
}

// child returns the tokens of the first child element named name, start and
// end tags included, or nil.
func (e *element) child(name xml.Name) []xml.Token {
	depth, from := 0, -1
	for i, t := range e.inner {
		switch t := t.(type) {
		case xml.StartElement:
			if depth == 0 && t.Name == name {
				from = i
			}
			depth++
		case xml.EndElement:
			depth--
			if depth == 0 && from >= 0 {
				return e.inner[from : i+1]
			}
		}
	}
	return nil
}

// sub returns the first child element named name, or nil.
func (e *element) sub(name xml.Name) *element {
	toks := e.child(name)
	if toks == nil {
		return nil
	}
	return &element{start: toks[0].(xml.StartElement), inner: toks[1 : len(toks)-1]}
}

// text returns the character data directly inside the child named name.
func (e *element) text(name xml.Name) (string, bool) {
	toks := e.child(name)
	if toks == nil {
		return "", false
	}
	return textOf(toks), true
}

// textOf concatenates the character data directly inside the element that
// toks begins with, and stops at that element's end.
func textOf(toks []xml.Token) string {
	var sb strings.Builder
	depth := 0
	for _, t := range toks {
		switch t := t.(type) {
		case xml.StartElement:
			depth++
		case xml.EndElement:
			depth--
			if depth == 0 {
				return sb.String()
			}
		case xml.CharData:
			if depth == 1 {
				sb.Write(t)
			}
		}
	}
	return sb.String()
}

// sliceReader is an xml.TokenReader over tokens in memory.
type sliceReader struct {
	toks []xml.Token
	last xml.Token // read after toks when set (an element's end)
}

func (r *sliceReader) Token() (xml.Token, error) {
	if len(r.toks) == 0 {
		if t := r.last; t != nil {
			r.last = nil
			return t, nil
		}
		return nil, io.EOF
	}
	t := r.toks[0]
	r.toks = r.toks[1:]
	return t, nil
}

// tokenBuffer collects written tokens (copied, so callers may reuse theirs).
type tokenBuffer struct{ toks []xml.Token }

func (b *tokenBuffer) EncodeToken(t xml.Token) error {
	b.toks = append(b.toks, xml.CopyToken(t))
	return nil
}

// Flush implements xmlstream.Flusher; the buffer has nothing to flush.
func (b *tokenBuffer) Flush() error { return nil }

// elements splits the buffered tokens into top-level elements.
func (b *tokenBuffer) elements() []*element {
	var out []*element
	var cur *element
	depth, first := 0, 0
	for i, t := range b.toks {
		switch tok := t.(type) {
		case xml.StartElement:
			if depth == 0 {
				cur, first = &element{start: tok}, i+1
			}
			depth++
		case xml.EndElement:
			depth--
			if depth == 0 && cur != nil {
				// The children share the buffer; capped, so that appending
				// to them cannot overwrite what follows.
				cur.inner = b.toks[first:i:i]
				out = append(out, cur)
				cur = nil
			}
		}
	}
	return out
}

// decoder reads a client's stream with every limit of config.Limits applied
// as the bytes arrive.
type decoder struct {
	budget   *budgetReader
	d        *xml.Decoder
	maxBytes int
	maxDepth int
	maxAttrs int
	// framed: the input is XMPP over WebSocket (RFC 7395), a sequence of
	// top-level elements with no stream root: <open/>, stanzas, <close/>.
	// Elements that declare no namespace are taken as jabber:client.
	framed bool
	// stanzaStarted, if set, runs when a top-level element's start tag has
	// been read (the connection bounds the time to finish it).
	stanzaStarted func()
}

func newDecoder(r io.Reader, maxBytes, maxDepth, maxAttrs int) *decoder {
	br := &budgetReader{br: bufio.NewReaderSize(r, 4096), left: maxBytes}
	return &decoder{budget: br, d: newXMLDecoder(br), maxBytes: maxBytes, maxDepth: maxDepth, maxAttrs: maxAttrs}
}

// restart begins a new XML document on the same bytes (after SASL success),
// as RFC 6120 §4.3.3 requires: namespaces and state of the old stream go.
func (d *decoder) restart() {
	d.budget.left = d.maxBytes
	d.d = newXMLDecoder(d.budget)
	if d.framed {
		// Lenient where RFC 7395 §3.3.3 is strict: a stanza that declares
		// no namespace is a jabber:client stanza, as on a TCP stream.
		d.d.DefaultSpace = stanza.NSClient
	}
}

func newXMLDecoder(r io.Reader) *xml.Decoder {
	d := xml.NewDecoder(r)
	d.Strict = true
	// No entities beyond the five predefined ones, no charsets beyond UTF-8.
	d.Entity = nil
	d.CharsetReader = nil
	return d
}

// buffered reports bytes received but not yet parsed. After <starttls/> any
// such byte was sent in the clear before the handshake and must not be trusted.
func (d *decoder) buffered() int { return d.budget.br.Buffered() }

// token reads one token and maps the restricted XML of RFC 6120 §11.1 and
// parse failures to stream errors.
func (d *decoder) token() (xml.Token, error) {
	t, err := d.d.Token()
	if err != nil {
		return nil, d.mapErr(err)
	}
	switch t := t.(type) {
	case xml.Comment, xml.Directive:
		return nil, stream.RestrictedXML
	case xml.ProcInst:
		return nil, stream.RestrictedXML
	case xml.StartElement:
		if len(t.Attr) > d.maxAttrs {
			return nil, streamErr(stream.PolicyViolation, fmt.Sprintf("more than %d attributes on one element", d.maxAttrs))
		}
		// encoding/xml lets a local name after a prefix start with a digit
		// ("a:0"); such a name could not be written to a recipient as XML.
		if !ncName(t.Name.Local) {
			return nil, streamErr(stream.NotWellFormed, fmt.Sprintf("%q is not an XML name", t.Name.Local))
		}
		for _, a := range t.Attr {
			if !ncName(a.Name.Local) {
				return nil, streamErr(stream.NotWellFormed, fmt.Sprintf("%q is not an XML name", a.Name.Local))
			}
		}
		return stripNSDecl(t), nil
	}
	return t, nil
}

// ncName reports whether s is an XML NCName (XML 1.0 fifth edition names,
// without colons).
func ncName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_' || (r >= 'A' && r <= 'Z') || (r >= 'a' && r <= 'z'):
		case i > 0 && (r == '-' || r == '.' || (r >= '0' && r <= '9') || r == 0xB7):
		case r >= 0xC0 && r <= 0xD6, r >= 0xD8 && r <= 0xF6, r >= 0xF8 && r <= 0x2FF,
			r >= 0x370 && r <= 0x37D, r >= 0x37F && r <= 0x1FFF, r >= 0x200C && r <= 0x200D,
			r >= 0x2070 && r <= 0x218F, r >= 0x2C00 && r <= 0x2FEF, r >= 0x3001 && r <= 0xD7FF,
			r >= 0xF900 && r <= 0xFDCF, r >= 0xFDF0 && r <= 0xFFFD, r >= 0x10000 && r <= 0xEFFFF:
		case i > 0 && (r >= 0x300 && r <= 0x36F || r >= 0x203F && r <= 0x2040):
		default:
			return false
		}
	}
	return true
}

func (d *decoder) mapErr(err error) error {
	var ne net.Error
	var se *xml.SyntaxError
	switch {
	case errors.Is(err, errTooBig):
		return streamErr(stream.PolicyViolation, fmt.Sprintf("stanza larger than %d bytes", d.maxBytes))
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return io.EOF
	case errors.As(err, &ne) && ne.Timeout():
		return stream.ConnectionTimeout
	case errors.As(err, &se) && se.Msg == "unexpected EOF":
		// The client closed the connection without closing its stream.
		return io.EOF
	case errors.As(err, &se):
		if strings.Contains(se.Msg, "entity") {
			return streamErr(stream.RestrictedXML, "entity references other than the predefined ones are not allowed")
		}
		if strings.Contains(se.Msg, "encoding") || strings.Contains(se.Msg, "UTF-8") {
			return stream.UnsupportedEncoding
		}
		return stream.NotWellFormed
	case strings.Contains(err.Error(), "unsupported charset"), strings.Contains(err.Error(), "encoding"):
		return stream.UnsupportedEncoding
	case strings.HasPrefix(err.Error(), "xml:"):
		// Any other complaint of the parser (an XML declaration with a
		// version other than 1.0, say): the input is not well-formed XML 1.0.
		return streamErr(stream.NotWellFormed, strings.TrimPrefix(err.Error(), "xml: "))
	}
	return err
}

// streamHeader reads up to the opening <stream:stream>, allowing only the XML
// declaration and white space before it.
func (d *decoder) streamHeader() (xml.StartElement, error) {
	for i := 0; ; i++ {
		t, err := d.d.Token()
		if err != nil {
			return xml.StartElement{}, d.mapErr(err)
		}
		switch t := t.(type) {
		case xml.ProcInst:
			if t.Target != "xml" || i != 0 {
				return xml.StartElement{}, stream.RestrictedXML
			}
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return xml.StartElement{}, stream.NotWellFormed
			}
		case xml.StartElement:
			start := t.Copy()
			if d.framed && start.Name == (xml.Name{Space: nsFraming, Local: "open"}) {
				// <open/> is an element of its own: its end follows.
				if err := d.skipEnd(); err != nil {
					return xml.StartElement{}, err
				}
			}
			d.budget.left = d.maxBytes
			return start, nil
		case xml.Comment, xml.Directive:
			return xml.StartElement{}, stream.RestrictedXML
		default:
			return xml.StartElement{}, stream.NotWellFormed
		}
	}
}

// next reads the next top-level element of the stream. It returns io.EOF when
// the client closed its stream, and skips white space between stanzas
// (keepalives), resetting the byte budget after each element.
func (d *decoder) next() (*element, error) {
	for {
		t, err := d.token()
		if err != nil {
			return nil, err
		}
		switch t := t.(type) {
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return nil, streamErr(stream.BadFormat, "text outside a stanza")
			}
			// encoding/xml has already read the '<' that ended the white
			// space: it belongs to the next element's budget.
			d.budget.left = d.maxBytes - 1
		case xml.EndElement:
			// The only end tag at this level closes the stream.
			return nil, io.EOF
		case xml.StartElement:
			if d.framed && t.Name == (xml.Name{Space: nsFraming, Local: "close"}) {
				// RFC 7395 §3.6: the client closes its stream.
				return nil, io.EOF
			}
			if d.stanzaStarted != nil {
				d.stanzaStarted()
			}
			el, err := d.rest(t)
			d.budget.left = d.maxBytes
			return el, err
		}
	}
}

// skipEnd reads the end of an element that must be empty (<open/>).
func (d *decoder) skipEnd() error {
	t, err := d.token()
	if err != nil {
		return err
	}
	if _, ok := t.(xml.EndElement); !ok {
		return streamErr(stream.BadFormat, "<open/> must be empty")
	}
	return nil
}

// rest reads the content of an element whose start tag was just read.
func (d *decoder) rest(start xml.StartElement) (*element, error) {
	el := &element{start: start.Copy()}
	depth := 1
	for depth > 0 {
		t, err := d.token()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil, stream.NotWellFormed
			}
			return nil, err
		}
		switch t.(type) {
		case xml.StartElement:
			depth++
			if depth > d.maxDepth {
				return nil, streamErr(stream.PolicyViolation, fmt.Sprintf("elements nested deeper than %d", d.maxDepth))
			}
		case xml.EndElement:
			depth--
			if depth == 0 {
				return el, nil
			}
		}
		el.inner = append(el.inner, xml.CopyToken(t))
	}
	return el, nil
}

// stripNSDecl drops xmlns declarations: encoding/xml has already resolved every
// name, and the encoder declares namespaces again where it writes them. An
// element in no namespace gets xmlns="" so that, written inside a parent with
// a default namespace, it does not fall into the parent's namespace.
func stripNSDecl(t xml.StartElement) xml.StartElement {
	n := 0
	for _, a := range t.Attr {
		if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
			continue
		}
		t.Attr[n] = a
		n++
	}
	t.Attr = t.Attr[:n]
	if t.Name.Space == "" {
		t.Attr = append(t.Attr, xml.Attr{Name: xml.Name{Local: "xmlns"}, Value: ""})
	}
	return t
}

// streamErr is a stream error with explanatory text.
func streamErr(e stream.Error, text string) stream.Error {
	e.Text = []struct {
		Lang  string
		Value string
	}{{Lang: "en", Value: text}}
	return e
}

// isStanza reports whether name is a jabber:client stanza.
func isStanza(name xml.Name) bool {
	return name.Space == stanza.NSClient && (name.Local == "message" || name.Local == "presence" || name.Local == "iq")
}
