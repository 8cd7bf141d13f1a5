package wire

import (
	"encoding/xml"
	"strings"
	"testing"

	"mellium.im/xmpp/stanza"
)

const benchMessage = `<message to='bob@localhost/desk' type='chat' id='m1'><body>Hello, how are you today?</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>`

// BenchmarkDecodeStanza measures reading one message stanza with every limit
// applied (byte budget, depth, attributes, restricted XML).
func BenchmarkDecodeStanza(b *testing.B) {
	stream := `<?xml version='1.0'?><stream:stream to='localhost' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>` +
		strings.Repeat(benchMessage, 1024)
	b.ReportAllocs()
	b.SetBytes(int64(len(benchMessage)))
	var d *Decoder
	n := 0
	for b.Loop() {
		if n%1024 == 0 {
			d = NewDecoder(strings.NewReader(stream), 256<<10, 64, 64)
			if _, err := d.StreamHeader(); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := d.Next(); err != nil {
			b.Fatal(err)
		}
		n++
	}
}

// BenchmarkEncodeStanza measures writing one buffered message stanza.
func BenchmarkEncodeStanza(b *testing.B) {
	d := NewDecoder(strings.NewReader(`<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>`+benchMessage), 1<<20, 64, 64)
	if _, err := d.StreamHeader(); err != nil {
		b.Fatal(err)
	}
	el, err := d.Next()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		out := NewOutput()
		if err := out.EncodeElement(el, stanza.NSClient); err != nil {
			b.Fatal(err)
		}
		out.Release()
	}
}

// TestOutputRefusesOpenElements: a handler's output that leaves an element
// open is refused (and that output is dropped, not pooled); the next output
// from the pool encodes a whole element.
func TestOutputRefusesOpenElements(t *testing.T) {
	iq := xml.StartElement{Name: xml.Name{Space: "jabber:client", Local: "iq"}}
	out := NewOutput()
	if err := out.Encode(&SliceReader{Toks: []xml.Token{iq}}, stanza.NSClient); err == nil || !strings.Contains(err.Error(), "left open") {
		t.Fatalf("an open element was encoded: %v", err)
	}
	out = NewOutput()
	if err := out.Encode(&SliceReader{Toks: []xml.Token{iq, iq.End()}}, stanza.NSClient); err != nil {
		t.Fatal(err)
	}
	if got := string(out.Bytes()); got != `<iq/>` {
		t.Fatalf("encoded %q", got)
	}
	out.Release()
}
