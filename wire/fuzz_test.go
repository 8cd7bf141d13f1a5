package wire

// FuzzDecoder drives the limited stream decoder (NewDecoder, StreamHeader,
// Next) in process: every element it returns respects max_depth,
// max_attributes and max_stanza_bytes, is balanced and re-encodes to
// well-formed XML that reads back as the same element, and every error is
// io.EOF or an RFC 6120 stream error. Run it for a bounded time with
//
//	go test -run '^$' -fuzz '^FuzzDecoder$' -fuzztime 30s ./wire
//
// A failing input is written to testdata/fuzz/FuzzDecoder/ and then runs in
// every plain go test. The server's fuzz targets (FuzzStream,
// FuzzBoundStream) send such input over TCP to a whole server.

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"unicode/utf8"

	"mellium.im/xmpp/stream"

	"github.com/adhocd/adhocd/wire/wiretest"
)

// fuzzDecoderSeeds are stream contents as clients send them, and what RFC 6120
// forbids.
var fuzzDecoderSeeds = []string{
	wiretest.Header,
	wiretest.Header + `</stream:stream>`,
	wiretest.Header + ` <presence/> ` + "\n\t " + `<presence><show>away</show><status>lunch &amp; more</status><priority>5</priority></presence>`,
	wiretest.Header + `<message to='bob@localhost' type='chat' id='m1' xml:lang='en'><body>hi &lt;b&gt; &#x263A; &#9731;</body><thread>t1</thread></message>`,
	wiretest.Header + `<iq type='get' id='r1'><query xmlns='jabber:iq:roster' ver=''/></iq><iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>phone</resource></bind></iq>`,
	wiretest.Header + `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHdvbmRlcmxhbmQ=</auth>`,
	wiretest.Header + `<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`,
	wiretest.Header + `<iq type='set' id='c' to='localhost'><command xmlns='http://jabber.org/protocol/commands' node='urn:adhocd:demo:wizard' action='execute'><x xmlns='jabber:x:data' type='submit'><field var='name'><value>Alice</value></field></x></command></iq>`,
	wiretest.Header + `<message xmlns:a='urn:a' a:x='1' b:y='2'><a:body xmlns='urn:b'><b:c/></a:body></message>`,
	wiretest.Header + `<message><body>` + strings.Repeat("a", 1100) + `</body></message>`,
	wiretest.Header + strings.Repeat("<a>", 20) + strings.Repeat("</a>", 20),
	wiretest.Header + `<message a1='1' a2='2' a3='3' a4='4' a5='5' a6='6' a7='7' a8='8' a9='9'/>`,
	wiretest.Header + `<message xmlns:p1='u1' xmlns:p2='u2' xmlns:p3='u3' xmlns:p4='u4' xmlns:p5='u5' xmlns:p6='u6' xmlns:p7='u7' xmlns:p8='u8' xmlns:p9='u9'/>`,
	`<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol "lol">]><stream:stream>`,
	wiretest.Header + `<!-- hello --><?foo bar?>`,
	wiretest.Header + `<message><body>&lol;</body></message>`,
	wiretest.Header + `<message><body></message>`,
	wiretest.Header + `hello<message/>`,
	wiretest.Header + `&#32;&#x9;<message/>`,
	`<?xml version='1.0' encoding='ISO-8859-1'?><stream:stream>`,
	"\xef\xbb\xbf" + wiretest.Header + "<message><body>\xff\xfe</body></message>",
	wiretest.Header + `<message><body><![CDATA[<not a tag>]]></body></message>`,
	"  \r\n" + wiretest.Header + "<message>\r\n</message>",
}

func FuzzDecoder(f *testing.F) {
	for _, s := range fuzzDecoderSeeds {
		f.Add(uint16(1024), uint8(8), uint8(8), []byte(s))
	}
	f.Add(uint16(200), uint8(3), uint8(2), []byte(wiretest.Header+` <message to='a@b' id='x'><body>`+strings.Repeat("b", 150)+`</body></message>`))
	f.Fuzz(func(t *testing.T, maxBytes uint16, maxDepth, maxAttrs uint8, data []byte) {
		mb := 64 + int(maxBytes)%4096
		md := 1 + int(maxDepth)%16
		ma := 1 + int(maxAttrs)%16
		d := NewDecoder(bytes.NewReader(data), mb, md, ma)
		started := 0
		d.StanzaStarted = func() { started++ }
		if _, err := d.StreamHeader(); err != nil {
			fuzzCheckDecodeErr(t, err)
			return
		}
		if off := d.d.InputOffset(); off > int64(mb) {
			t.Fatalf("stream header read from %d bytes, more than max_stanza_bytes %d", off, mb)
		}
		for i := 0; ; i++ {
			before, prev := started, int(d.d.InputOffset())
			el, err := d.Next()
			if err != nil {
				fuzzCheckDecodeErr(t, err)
				return
			}
			end := int(d.d.InputOffset())
			if started != before+1 {
				t.Fatalf("element %d: stanzaStarted ran %d times, want once", i, started-before)
			}
			// The element begins at its '<' (what precedes it is white space
			// or character references to white space).
			lt := bytes.IndexByte(data[prev:end], '<')
			if lt < 0 {
				t.Fatalf("element %d: no '<' in its input %q", i, data[prev:end])
			}
			if n := end - (prev + lt); n > mb {
				t.Fatalf("element %d <%s> came from %d bytes of input, more than max_stanza_bytes %d:\n%q",
					i, el.Start.Name.Local, n, mb, data[prev+lt:end])
			}
			fuzzCheckElement(t, el, md, ma)
		}
	})
}

// fuzzCheckDecodeErr: the decoder ends with io.EOF or a defined stream error.
func fuzzCheckDecodeErr(t *testing.T, err error) {
	t.Helper()
	if err == io.EOF || err == ErrStreamEnd {
		return
	}
	var se stream.Error
	if !errors.As(err, &se) {
		t.Fatalf("decoder error %T %q is neither io.EOF nor a stream error", err, err)
	}
	if !wiretest.StreamConditions[se.Err] {
		t.Fatalf("stream error condition %q is not defined by RFC 6120 §4.9.3", se.Err)
	}
}

// fuzzCheckElement checks an element the decoder returned: within the limits,
// balanced, restricted XML only, namespace declarations stripped; its
// accessors agree with its tokens; and it re-encodes (as conn.writeElement
// does) to well-formed XML that decodes to the same element.
func fuzzCheckElement(t *testing.T, el *Element, maxDepth, maxAttrs int) {
	t.Helper()
	if el.Start.Name.Local == "" {
		t.Fatal("element without a name")
	}
	checkStart := func(st xml.StartElement) {
		attrs := len(st.Attr)
		if st.Name.Space == "" && attrs > 0 && st.Attr[attrs-1].Name.Local == "xmlns" {
			attrs-- // the xmlns="" stripNSDecl adds
		}
		if attrs > maxAttrs {
			t.Fatalf("<%s> has %d attributes, more than max_attributes %d", st.Name.Local, attrs, maxAttrs)
		}
		for _, a := range st.Attr {
			// Only an element in no namespace keeps a declaration: xmlns=""
			// (so that it stays there when written inside a parent).
			undeclare := a.Name.Space == "" && a.Name.Local == "xmlns" && a.Value == "" && st.Name.Space == ""
			if !undeclare && (a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns")) {
				t.Fatalf("<%s> kept the namespace declaration %s:%s", st.Name.Local, a.Name.Space, a.Name.Local)
			}
		}
	}
	checkStart(el.Start)
	stack := []xml.Name{el.Start.Name}
	deepest, fuzzChildren := 1, 0
	for _, tok := range el.Inner {
		switch tok := tok.(type) {
		case xml.StartElement:
			if len(stack) == 1 {
				fuzzChildren++
			}
			checkStart(tok)
			stack = append(stack, tok.Name)
			deepest = max(deepest, len(stack))
		case xml.EndElement:
			if len(stack) <= 1 {
				t.Fatalf("end tag </%s> closes more than the element holds", tok.Name.Local)
			}
			if tok.Name != stack[len(stack)-1] {
				t.Fatalf("end tag %v does not match start tag %v", tok.Name, stack[len(stack)-1])
			}
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if !utf8.Valid(tok) {
				t.Fatalf("character data is not UTF-8: %q", tok)
			}
		default:
			t.Fatalf("token %T inside a stanza (RFC 6120 §11.1 restricts these)", tok)
		}
	}
	if len(stack) != 1 {
		t.Fatalf("element returned with %d elements still open", len(stack)-1)
	}
	if deepest > maxDepth {
		t.Fatalf("element nested %d deep, more than max_depth %d", deepest, maxDepth)
	}
	first, n := el.Payload()
	if n != fuzzChildren {
		t.Fatalf("payload() counts %d children, the tokens hold %d", n, fuzzChildren)
	}
	if n > 0 {
		sub := el.Sub(first)
		if sub == nil || sub.Start.Name != first {
			t.Fatalf("sub(%v) = %v", first, sub)
		}
		if _, ok := el.Text(first); !ok {
			t.Fatalf("text(%v) found no child", first)
		}
	}

	// Re-encode as the server does when it routes the element.
	var buf bytes.Buffer
	enc := xml.NewEncoder(&buf)
	r := el.reader()
	for {
		tok, err := r.Token()
		if err == io.EOF {
			break
		}
		if err := enc.EncodeToken(tok); err != nil {
			t.Fatalf("the element does not re-encode: %v", err)
		}
	}
	if err := enc.Flush(); err != nil {
		t.Fatal(err)
	}
	encoded := buf.String()
	dec := xml.NewDecoder(&buf)
	dec.Strict = true
	var back []xml.Token
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the re-encoded element is not well-formed XML: %v\n%s", err, encoded)
		}
		tok = xml.CopyToken(tok)
		if st, ok := tok.(xml.StartElement); ok {
			tok = StripNSDecl(st)
		}
		back = append(back, tok)
	}
	want := append(append([]xml.Token{el.Start}, el.Inner...), el.Start.End())
	if err := fuzzSameTokens(want, back); err != nil {
		t.Fatalf("the element re-encodes to another element: %v\nencoded: %s", err, encoded)
	}
}

// fuzzSameTokens compares two token sequences: names with their namespaces,
// attributes (as sets), character data (adjacent runs merged).
func fuzzSameTokens(a, b []xml.Token) error {
	a, b = fuzzMergeText(a), fuzzMergeText(b)
	if len(a) != len(b) {
		return fmt.Errorf("%d tokens, want %d", len(b), len(a))
	}
	for i := range a {
		switch x := a[i].(type) {
		case xml.StartElement:
			y, ok := b[i].(xml.StartElement)
			if !ok || x.Name != y.Name {
				return fmt.Errorf("token %d: %#v, want %#v", i, b[i], x)
			}
			if len(x.Attr) != len(y.Attr) {
				return fmt.Errorf("token %d: attributes %v, want %v", i, y.Attr, x.Attr)
			}
			for _, at := range x.Attr {
				found := false
				for _, bt := range y.Attr {
					found = found || at == bt
				}
				if !found {
					return fmt.Errorf("token %d: attribute %v lost (have %v)", i, at, y.Attr)
				}
			}
		case xml.EndElement:
			if y, ok := b[i].(xml.EndElement); !ok || x.Name != y.Name {
				return fmt.Errorf("token %d: %#v, want %#v", i, b[i], x)
			}
		case xml.CharData:
			if y, ok := b[i].(xml.CharData); !ok || !bytes.Equal(x, y) {
				return fmt.Errorf("token %d: %#v, want %q", i, b[i], x)
			}
		}
	}
	return nil
}

func fuzzMergeText(toks []xml.Token) []xml.Token {
	var out []xml.Token
	for _, t := range toks {
		if cd, ok := t.(xml.CharData); ok {
			if len(cd) == 0 {
				continue
			}
			if n := len(out); n > 0 {
				if prev, ok := out[n-1].(xml.CharData); ok {
					out[n-1] = append(append(xml.CharData{}, prev...), cd...)
					continue
				}
			}
		}
		out = append(out, t)
	}
	return out
}
