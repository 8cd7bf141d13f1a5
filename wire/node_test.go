package wire_test

import (
	"encoding/xml"
	"errors"
	"io"
	"testing"

	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/wire"
)

// TestNodeWrites builds nodes as the services do and checks the XML they
// make, as the server would write it in a stream whose default namespace is
// jabber:client.
func TestNodeWrites(t *testing.T) {
	const nsInfo = "http://jabber.org/protocol/disco#info"
	// A client's payload, as the decoder keeps it: relayed unchanged.
	payload := wire.Parse(`<body>hi &amp; bye</body><x xmlns='urn:example'><y/></x>`)
	for _, tc := range []struct {
		name string
		n    wire.Node
		want string
	}{
		{"empty attribute values are left out",
			wire.Elem(stanza.NSClient, "iq", "from", "a@b", "to", "", "type", "result", "id", "1"),
			`<iq from="a@b" type="result" id="1"/>`},
		{"an odd name without a value is ignored",
			wire.Elem(nsInfo, "feature", "var", "urn:x", "dangling"),
			`<feature xmlns="` + nsInfo + `" var="urn:x"/>`},
		{"text is escaped",
			wire.TextElem("urn:t", "reason", "a < b & c"),
			`<reason xmlns="urn:t">a &lt; b &amp; c</reason>`},
		{"empty text writes nothing",
			wire.TextElem("urn:t", "reason", ""),
			`<reason xmlns="urn:t"/>`},
		{"children in order, each namespace declared once",
			wire.Elem(nsInfo, "query", "node", "n").Add(
				wire.Elem(nsInfo, "identity", "category", "conference", "type", "text"),
				wire.Elem(nsInfo, "feature", "var", "f1"),
			).Add(wire.Elem(nsInfo, "feature", "var", "f2")),
			`<query xmlns="` + nsInfo + `" node="n"><identity category="conference" type="text"/>` +
				`<feature var="f1"/><feature var="f2"/></query>`},
		{"text, then raw tokens, then children",
			wire.Node{Name: xml.Name{Space: stanza.NSClient, Local: "message"}, Text: "t", Raw: payload}.
				Add(wire.Elem("urn:kid", "kid")),
			`<message>t<body>hi &amp; bye</body><x xmlns="urn:example"><y/></x><kid xmlns="urn:kid"/></message>`},
	} {
		if got := wire.Serialize(tc.n.Tokens(nil), 1<<20); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, got, tc.want)
		}
	}
}

// TestNodeTokensAppend: Tokens appends to what dst holds, so that nodes
// can be written one after another into one buffer.
func TestNodeTokensAppend(t *testing.T) {
	a, b := wire.Elem("urn:a", "a"), wire.TextElem("urn:b", "b", "x")
	toks := b.Tokens(a.Tokens(nil))
	if got, want := wire.Serialize(toks, 1<<20), `<a xmlns="urn:a"/><b xmlns="urn:b">x</b>`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

// TestNodeReader: Reader yields the node's tokens, then io.EOF, and reads
// back as the same element.
func TestNodeReader(t *testing.T) {
	n := wire.Elem(stanza.NSClient, "presence", "to", "room@muc/nick").
		Add(wire.Elem("http://jabber.org/protocol/muc", "x").Add(wire.TextElem("http://jabber.org/protocol/muc", "password", "secret")))
	r := n.Reader()
	buf := &wire.TokenBuffer{}
	for {
		tok, err := r.Token()
		if tok != nil {
			if err := buf.EncodeToken(tok); err != nil {
				t.Fatal(err)
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	els := buf.Elements()
	if len(els) != 1 {
		t.Fatalf("read %d elements, want 1", len(els))
	}
	el := els[0]
	if el.Start.Name.Local != "presence" || el.Attr("to") != "room@muc/nick" {
		t.Fatalf("start %v", el.Start)
	}
	x := el.Sub(xml.Name{Space: "http://jabber.org/protocol/muc", Local: "x"})
	if x == nil {
		t.Fatalf("no <x/> in %s", wire.SerializeElement(el, 1<<20))
	}
	if got, ok := x.Text(xml.Name{Space: "http://jabber.org/protocol/muc", Local: "password"}); !ok || got != "secret" {
		t.Fatalf("password %q, %v", got, ok)
	}
}
