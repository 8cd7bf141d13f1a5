package wire

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

// NSFraming is the namespace of XMPP over WebSocket (RFC 7395).
const (
	NSFraming = "urn:ietf:params:xml:ns:xmpp-framing"
	// NSXML is the namespace the xml: prefix is bound to.
	NSXML = "http://www.w3.org/XML/1998/namespace"
)

// ErrTooBig is returned by budgetReader when a stanza outgrows
// limits.max_stanza_bytes.
var ErrTooBig = errors.New("stanza exceeds limits.max_stanza_bytes")

// budgetReader hands bytes to encoding/xml one at a time (the decoder uses
// io.ByteReader when the source has it, and then buffers nothing itself) and
// refuses to hand out more than the budget left for the current stanza. The
// budget is reset between stanzas, so a stanza that never ends, an endless
// attribute or an endless text node all stop at the limit.
type budgetReader struct {
	br   *bufio.Reader
	left int
	// win is what br had buffered when last peeked at, handed out from pos
	// on without a call into br per byte; the bytes before pos are still
	// in br, to be discarded (sync) before br is read again.
	win []byte
	pos int
	// onWait, if set, runs before br reads from the connection.
	onWait func()
}

func (b *budgetReader) ReadByte() (byte, error) {
	if b.left <= 0 {
		return 0, ErrTooBig
	}
	if b.pos < len(b.win) {
		c := b.win[b.pos]
		b.pos++
		b.left--
		return c, nil
	}
	return b.readByteSlow()
}

// readByteSlow reads a byte from br once the window is used up, and peeks
// at what br then holds.
func (b *budgetReader) readByteSlow() (byte, error) {
	b.sync()
	if b.onWait != nil && b.br.Buffered() == 0 {
		b.onWait()
	}
	c, err := b.br.ReadByte()
	if err != nil {
		return c, err
	}
	b.left--
	if n := b.br.Buffered(); n > 0 {
		b.win, _ = b.br.Peek(n)
	}
	return c, nil
}

// sync drops from br the bytes of the window already handed out.
func (b *budgetReader) sync() {
	if b.win != nil {
		_, _ = b.br.Discard(b.pos)
		b.win, b.pos = nil, 0
	}
}

// buffered is how many bytes br holds that were not handed out.
func (b *budgetReader) buffered() int { return b.br.Buffered() - b.pos }

func (b *budgetReader) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, ErrTooBig
	}
	b.sync()
	if b.onWait != nil && b.br.Buffered() == 0 {
		b.onWait()
	}
	if len(p) > b.left {
		p = p[:b.left]
	}
	n, err := b.br.Read(p)
	b.left -= n
	return n, err
}

// Element is one top-level Element read from a stream: its start tag and the
// copied tokens between the start and end tags.
type Element struct {
	Start xml.StartElement
	Inner []xml.Token
}

// Attr returns the value of the unqualified attribute named local.
func (e *Element) Attr(local string) string { return AttrOf(e.Start, local) }

// SetAttr sets (or with an empty value removes) the unqualified attribute local.
func (e *Element) SetAttr(local, value string) {
	attrs := e.Start.Attr[:0]
	for _, a := range e.Start.Attr {
		if a.Name.Local == local && a.Name.Space == "" {
			continue
		}
		attrs = append(attrs, a)
	}
	e.Start.Attr = attrs
	if value != "" {
		e.Start.Attr = append(e.Start.Attr, xml.Attr{Name: xml.Name{Local: local}, Value: value})
	}
}

// Payload returns the name of the first child element, if any, and the number
// of child elements.
func (e *Element) Payload() (xml.Name, int) {
	var first xml.Name
	n, depth := 0, 0
	for _, t := range e.Inner {
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

// Child returns the tokens of the first Child element named name, start and
// end tags included, or nil.
func (e *Element) Child(name xml.Name) []xml.Token {
	depth, from := 0, -1
	for i, t := range e.Inner {
		switch t := t.(type) {
		case xml.StartElement:
			if depth == 0 && t.Name == name {
				from = i
			}
			depth++
		case xml.EndElement:
			depth--
			if depth == 0 && from >= 0 {
				return e.Inner[from : i+1]
			}
		}
	}
	return nil
}

// Sub returns the first child element named name, or nil.
func (e *Element) Sub(name xml.Name) *Element {
	toks := e.Child(name)
	if toks == nil {
		return nil
	}
	return &Element{Start: toks[0].(xml.StartElement), Inner: toks[1 : len(toks)-1]}
}

// Children returns the child elements named name, in order; an empty name
// returns every child.
func (e *Element) Children(name xml.Name) []*Element {
	var out []*Element
	depth, from := 0, -1
	for i, t := range e.Inner {
		switch t := t.(type) {
		case xml.StartElement:
			if depth == 0 && (name == xml.Name{} || t.Name == name) {
				from = i
			}
			depth++
		case xml.EndElement:
			depth--
			if depth == 0 && from >= 0 {
				out = append(out, &Element{Start: e.Inner[from].(xml.StartElement), Inner: e.Inner[from+1 : i]})
				from = -1
			}
		}
	}
	return out
}

// Text returns the character data directly inside the child named name.
func (e *Element) Text(name xml.Name) (string, bool) {
	toks := e.Child(name)
	if toks == nil {
		return "", false
	}
	return TextOf(toks), true
}

// TextOf concatenates the character data directly inside the element that
// toks begins with, and stops at that element's end.
func TextOf(toks []xml.Token) string {
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

// SliceReader is an xml.TokenReader over tokens in memory.
type SliceReader struct {
	Toks []xml.Token
	Last xml.Token // read after toks when set (an element's end)
}

func (r *SliceReader) Token() (xml.Token, error) {
	if len(r.Toks) == 0 {
		if t := r.Last; t != nil {
			r.Last = nil
			return t, nil
		}
		return nil, io.EOF
	}
	t := r.Toks[0]
	r.Toks = r.Toks[1:]
	return t, nil
}

// TokenBuffer collects written tokens (copied, so callers may reuse theirs).
type TokenBuffer struct{ Toks []xml.Token }

func (b *TokenBuffer) EncodeToken(t xml.Token) error {
	b.Toks = append(b.Toks, xml.CopyToken(t))
	return nil
}

// Flush implements xmlstream.Flusher; the buffer has nothing to flush.
func (b *TokenBuffer) Flush() error { return nil }

// Elements splits the buffered tokens into top-level Elements.
func (b *TokenBuffer) Elements() []*Element {
	var out []*Element
	var cur *Element
	depth, first := 0, 0
	for i, t := range b.Toks {
		switch tok := t.(type) {
		case xml.StartElement:
			if depth == 0 {
				cur, first = &Element{Start: tok}, i+1
			}
			depth++
		case xml.EndElement:
			depth--
			if depth == 0 && cur != nil {
				// The children share the buffer; capped, so that appending
				// to them cannot overwrite what follows.
				cur.Inner = b.Toks[first:i:i]
				out = append(out, cur)
				cur = nil
			}
		}
	}
	return out
}

// Decoder reads a client's stream with every limit of config.Limits applied
// as the bytes arrive.
type Decoder struct {
	budget   *budgetReader
	d        *xml.Decoder
	maxBytes int
	maxDepth int
	maxAttrs int
	// Framed: the input is XMPP over WebSocket (RFC 7395), a sequence of
	// top-level elements with no stream root: <open/>, stanzas, <close/>.
	// Elements that declare no namespace are taken as jabber:client.
	Framed bool
	// StanzaStarted, if set, runs when a top-level element's start tag has
	// been read.
	StanzaStarted func()
	// StanzaWait, if set, runs once per top-level element, before the
	// decoder first waits on the connection for the rest of an element
	// whose start tag it has read (the connection then bounds the time to
	// finish it). An element that arrived whole never waits: it costs no
	// call.
	StanzaWait func()
	inStanza   bool // between a top-level start tag and its end
	waited     bool // StanzaWait ran for the current element
}

// NewDecoder returns a decoder of r with the limits of config.Limits:
// bytes per top-level element, depth and attributes per element.
func NewDecoder(r io.Reader, maxBytes, maxDepth, maxAttrs int) *Decoder {
	br := &budgetReader{br: bufio.NewReaderSize(r, 4096), left: maxBytes}
	d := &Decoder{budget: br, d: newXMLDecoder(br), maxBytes: maxBytes, maxDepth: maxDepth, maxAttrs: maxAttrs}
	br.onWait = d.waiting
	return d
}

// waiting runs before the budget reader reads from the connection.
func (d *Decoder) waiting() {
	if d.inStanza && !d.waited && d.StanzaWait != nil {
		d.waited = true
		d.StanzaWait()
	}
}

// Restart begins a new XML document on the same bytes (after SASL success),
// as RFC 6120 §4.3.3 requires: namespaces and state of the old stream go.
func (d *Decoder) Restart() {
	d.budget.left = d.maxBytes
	d.d = newXMLDecoder(d.budget)
	if d.Framed {
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

// Buffered reports bytes received but not yet parsed. After <starttls/> any
// such byte was sent in the clear before the handshake and must not be trusted.
func (d *Decoder) Buffered() int { return d.budget.buffered() }

// token reads one token and maps the restricted XML of RFC 6120 §11.1 and
// parse failures to stream errors.
func (d *Decoder) token() (xml.Token, error) {
	tok, err := d.d.Token()
	if err != nil {
		return nil, d.mapErr(err)
	}
	switch t := tok.(type) {
	case xml.Comment, xml.Directive:
		return nil, stream.RestrictedXML
	case xml.ProcInst:
		return nil, stream.RestrictedXML
	case xml.StartElement:
		if len(t.Attr) > d.maxAttrs {
			return nil, StreamError(stream.PolicyViolation, fmt.Sprintf("more than %d attributes on one element", d.maxAttrs))
		}
		// encoding/xml lets a local name after a prefix start with a digit
		// ("a:0"); such a name could not be written to a recipient as XML.
		if !ncName(t.Name.Local) {
			return nil, StreamError(stream.NotWellFormed, fmt.Sprintf("%q is not an XML name", t.Name.Local))
		}
		for _, a := range t.Attr {
			if !ncName(a.Name.Local) {
				return nil, StreamError(stream.NotWellFormed, fmt.Sprintf("%q is not an XML name", a.Name.Local))
			}
		}
		if !hasNSDecl(t) {
			// Nothing to strip: the token as read, not boxed again.
			return tok, nil
		}
		return StripNSDecl(t), nil
	}
	return tok, nil
}

// hasNSDecl reports whether stripNSDecl would change t: it declares a
// namespace or is in none.
func hasNSDecl(t xml.StartElement) bool {
	if t.Name.Space == "" {
		return true
	}
	for _, a := range t.Attr {
		if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
			return true
		}
	}
	return false
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

func (d *Decoder) mapErr(err error) error {
	var ne net.Error
	var se *xml.SyntaxError
	switch {
	case errors.Is(err, ErrTooBig):
		return StreamError(stream.PolicyViolation, fmt.Sprintf("stanza larger than %d bytes", d.maxBytes))
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return io.EOF
	case errors.As(err, &ne) && ne.Timeout():
		return stream.ConnectionTimeout
	case errors.As(err, &se) && se.Msg == "unexpected EOF":
		// The client closed the connection without closing its stream.
		return io.EOF
	case errors.As(err, &se):
		if strings.Contains(se.Msg, "entity") {
			return StreamError(stream.RestrictedXML, "entity references other than the predefined ones are not allowed")
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
		return StreamError(stream.NotWellFormed, strings.TrimPrefix(err.Error(), "xml: "))
	}
	return err
}

// StreamHeader reads up to the opening <stream:stream>, allowing only the XML
// declaration and white space before it.
func (d *Decoder) StreamHeader() (xml.StartElement, error) {
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
			if d.Framed && start.Name == (xml.Name{Space: NSFraming, Local: "open"}) {
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

// Next reads the next top-level element of the stream, and skips white
// space between stanzas (keepalives), resetting the byte budget after each
// element. The client's closing of its stream (its </stream:stream>, or
// <close/> over WebSocket) is ErrStreamEnd; a connection that ends without
// it is io.EOF.
func (d *Decoder) Next() (*Element, error) {
	for {
		t, err := d.token()
		if err != nil {
			return nil, err
		}
		switch t := t.(type) {
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return nil, StreamError(stream.BadFormat, "text outside a stanza")
			}
			// encoding/xml has already read the '<' that ended the white
			// space: it belongs to the next element's budget.
			d.budget.left = d.maxBytes - 1
		case xml.EndElement:
			// The only end tag at this level closes the stream.
			return nil, ErrStreamEnd
		case xml.StartElement:
			if d.Framed && t.Name == (xml.Name{Space: NSFraming, Local: "close"}) {
				// RFC 7395 §3.6: the client closes its stream.
				return nil, ErrStreamEnd
			}
			if d.StanzaStarted != nil {
				d.StanzaStarted()
			}
			d.inStanza, d.waited = true, false
			el, err := d.rest(t)
			d.inStanza = false
			d.budget.left = d.maxBytes
			return el, err
		}
	}
}

// ErrStreamEnd is what Next returns when the client closes its stream; it
// is io.EOF too, for callers to whom both ends are the same.
var ErrStreamEnd = fmt.Errorf("wire: the client closed its stream: %w", io.EOF)

// skipEnd reads the end of an element that must be empty (<open/>).
func (d *Decoder) skipEnd() error {
	t, err := d.token()
	if err != nil {
		return err
	}
	if _, ok := t.(xml.EndElement); !ok {
		return StreamError(stream.BadFormat, "<open/> must be empty")
	}
	return nil
}

// rest reads the content of an element whose start tag was just read.
func (d *Decoder) rest(start xml.StartElement) (*Element, error) {
	// The decoder gives every start tag names, values and an attribute
	// slice of its own: only character data, which points into the
	// decoder's buffer, is copied. The element is the one holder of its
	// start's attributes, so SetAttr may use their spare capacity (an
	// element made from another's start copies it, as presence does).
	el := &Element{Start: start}
	depth := 1
	for depth > 0 {
		t, err := d.token()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil, stream.NotWellFormed
			}
			return nil, err
		}
		switch c := t.(type) {
		case xml.StartElement:
			depth++
			if depth > d.maxDepth {
				return nil, StreamError(stream.PolicyViolation, fmt.Sprintf("elements nested deeper than %d", d.maxDepth))
			}
		case xml.EndElement:
			depth--
			if depth == 0 {
				return el, nil
			}
		case xml.CharData:
			t = c.Copy()
		default:
			t = xml.CopyToken(t)
		}
		if el.Inner == nil {
			el.Inner = make([]xml.Token, 0, 8)
		}
		el.Inner = append(el.Inner, t)
	}
	return el, nil
}

// StripNSDecl drops xmlns declarations: encoding/xml has already resolved every
// name, and the encoder declares namespaces again where it writes them. An
// element in no namespace gets xmlns="" so that, written inside a parent with
// a default namespace, it does not fall into the parent's namespace.
func StripNSDecl(t xml.StartElement) xml.StartElement {
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

// StreamError is a stream error with explanatory text.
func StreamError(e stream.Error, text string) stream.Error {
	e.Text = []struct {
		Lang  string
		Value string
	}{{Lang: "en", Value: text}}
	return e
}

// IsStanza reports whether name is a jabber:client stanza.
func IsStanza(name xml.Name) bool {
	return name.Space == stanza.NSClient && (name.Local == "message" || name.Local == "presence" || name.Local == "iq")
}
