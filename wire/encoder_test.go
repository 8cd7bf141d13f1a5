package wire

import (
	"bytes"
	"encoding/xml"
	"strings"
	"testing"

	"mellium.im/xmpp/stanza"
)

// TestEncoderWritesEachNamespaceOnce reads XML as a client sends it, with
// the server's decoder, and checks what the encoder writes of it: no child
// repeats its parent's default namespace, a child in another namespace or in
// none says so, and nothing else changes.
func TestEncoderWritesEachNamespaceOnce(t *testing.T) {
	for _, tc := range []struct {
		name, root, in, want string
	}{
		{"disco items", stanza.NSClient,
			`<iq type='result' id='1'><query xmlns='http://jabber.org/protocol/disco#items' node='http://jabber.org/protocol/commands'><item jid='localhost' node='a' name='A'/><item jid='localhost' node='b' name='B'/></query></iq>`,
			`<iq type="result" id="1"><query xmlns="http://jabber.org/protocol/disco#items" node="http://jabber.org/protocol/commands"><item jid="localhost" node="a" name="A"/><item jid="localhost" node="b" name="B"/></query></iq>`},
		{"body in the stream namespace", stanza.NSClient,
			`<message to='b@localhost'><body>hi</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>`,
			`<message to="b@localhost"><body>hi</body><active xmlns="http://jabber.org/protocol/chatstates"/></message>`},
		{"over WebSocket the stanza declares jabber:client", "",
			`<message to='b@localhost'><body>hi</body></message>`,
			`<message xmlns="jabber:client" to="b@localhost"><body>hi</body></message>`},
		{"prefixed input", stanza.NSClient,
			`<iq type='get' id='2' xmlns:d='http://jabber.org/protocol/disco#info'><d:query><d:feature var='x'/></d:query></iq>`,
			`<iq type="get" id="2"><query xmlns="http://jabber.org/protocol/disco#info"><feature var="x"/></query></iq>`},
		{"back to the parent's namespace after a foreign child", stanza.NSClient,
			`<message><x xmlns='jabber:x:data'><field var='a'><value>1</value></field></x><body>b</body></message>`,
			`<message><x xmlns="jabber:x:data"><field var="a"><value>1</value></field></x><body>b</body></message>`},
		{"element in no namespace", stanza.NSClient,
			`<message><foo xmlns=''><bar/></foo></message>`,
			`<message><foo xmlns=""><bar/></foo></message>`},
		{"xml:lang and a namespaced attribute", stanza.NSClient,
			`<message xml:lang='fr' xmlns:e='urn:example'><body e:kind='k'>salut</body></message>`,
			`<message xml:lang="fr"><body xmlns:ns1="urn:example" ns1:kind="k">salut</body></message>`},
		{"escaping", stanza.NSClient,
			`<message id='a&quot;b&apos;&lt;'><body>1 &lt; 2 &amp;&amp; 3 &gt; 2&#xD;
"quoted" 'single'</body></message>`,
			`<message id="a&quot;b'&lt;"><body>1 &lt; 2 &amp;&amp; 3 &gt; 2&#xD;
"quoted" 'single'</body></message>`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDecoder(strings.NewReader(tc.in), 1<<16, 16, 16)
			d.d.DefaultSpace = stanza.NSClient // as the client's stream header declares
			el, err := d.Next()
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			var e Encoder
			e.Reset(&b, tc.root)
			if err := e.CopyFrom(el.reader()); err != nil {
				t.Fatal(err)
			}
			if got := b.String(); got != tc.want {
				t.Errorf("encoded\n%s\nwant\n%s", got, tc.want)
			}
			// What was written reads back to the same names and values.
			d2 := xml.NewDecoder(strings.NewReader(b.String()))
			d2.DefaultSpace = tc.root
			el2, err := (&Decoder{d: d2, budget: &budgetReader{left: 1 << 30}, maxBytes: 1 << 30, maxDepth: 16, maxAttrs: 16}).Next()
			if err != nil {
				t.Fatalf("reading back %s: %v", b.String(), err)
			}
			if el2.Start.Name != el.Start.Name || len(el2.Inner) != len(el.Inner) {
				t.Fatalf("read back %v with %d tokens, want %v with %d", el2.Start.Name, len(el2.Inner), el.Start.Name, len(el.Inner))
			}
			for i := range el.Inner {
				a, _ := el.Inner[i].(xml.StartElement)
				b, _ := el2.Inner[i].(xml.StartElement)
				if a.Name != b.Name {
					t.Errorf("token %d: %v read back as %v", i, a.Name, b.Name)
				}
			}
		})
	}
}

// TestEncoderTokensOfHandlers: tokens built by handlers (mellium.im style,
// an empty Name.Space meaning "the parent's") are written as xml.Encoder
// would have, less the repeated declarations; what cannot be written is
// refused, not written half.
func TestEncoderTokensOfHandlers(t *testing.T) {
	q := xml.StartElement{Name: xml.Name{Space: "http://jabber.org/protocol/disco#info", Local: "query"}}
	feat := xml.StartElement{Name: xml.Name{Local: "feature"}, Attr: []xml.Attr{{Name: xml.Name{Local: "var"}, Value: "urn:xmpp:ping"}}}
	text := xml.StartElement{Name: xml.Name{Space: "urn:ietf:params:xml:ns:xmpp-stanzas", Local: "text"},
		Attr: []xml.Attr{{Name: xml.Name{Space: "xmlns", Local: "x"}, Value: "y"}, {Name: xml.Name{Space: "xml", Local: "lang"}, Value: "en"}}}
	var b bytes.Buffer
	var e Encoder
	e.Reset(&b, stanza.NSClient)
	for _, tok := range []xml.Token{q, feat, feat.End(), text, xml.CharData("t"), text.End(), q.End()} {
		if err := e.Token(tok); err != nil {
			t.Fatal(err)
		}
	}
	want := `<query xmlns="http://jabber.org/protocol/disco#info"><feature var="urn:xmpp:ping"/><text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas" xml:lang="en">t</text></query>`
	if err := e.Close(); err != nil || b.String() != want {
		t.Fatalf("got %s (%v), want %s", b.String(), err, want)
	}
	for name, toks := range map[string][]xml.Token{
		"mismatched end":    {q, feat.End()},
		"end with no start": {feat.End()},
		"comment":           {q, xml.Comment("x")},
		"no name":           {xml.StartElement{}},
	} {
		e.Reset(&b, stanza.NSClient)
		var err error
		for _, tok := range toks {
			if err = e.Token(tok); err != nil {
				break
			}
		}
		if err == nil {
			t.Errorf("%s: encoded without an error", name)
		}
	}
}

// TestEncoderReplacesWhatXMLCannotCarry: a NUL, another control character
// or a byte that is not UTF-8, in text or in an attribute, is written as
// U+FFFD so that the recipient's parser never fails on the stanza.
func TestEncoderReplacesWhatXMLCannotCarry(t *testing.T) {
	var b bytes.Buffer
	var e Encoder
	e.Reset(&b, stanza.NSClient)
	body := xml.StartElement{Name: xml.Name{Local: "body"}, Attr: []xml.Attr{{Name: xml.Name{Local: "a"}, Value: "x\x01y\xfe\tz"}}}
	for _, tok := range []xml.Token{body, xml.CharData("a\x00b\xffc\uFFFDd\x1b"), body.End()} {
		if err := e.Token(tok); err != nil {
			t.Fatal(err)
		}
	}
	if want := "<body a=\"x\uFFFDy\uFFFD&#x9;z\">a\uFFFDb\uFFFDc\uFFFDd\uFFFD</body>"; b.String() != want {
		t.Fatalf("got %q, want %q", b.String(), want)
	}
}

// reader returns a token reader over the whole element.
func (e *Element) reader() xml.TokenReader {
	toks := make([]xml.Token, 0, len(e.Inner)+2)
	toks = append(toks, e.Start)
	toks = append(toks, e.Inner...)
	toks = append(toks, e.Start.End())
	return &SliceReader{Toks: toks}
}
