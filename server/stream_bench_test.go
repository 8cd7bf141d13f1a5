package server

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
	var d *decoder
	n := 0
	for b.Loop() {
		if n%1024 == 0 {
			d = newDecoder(strings.NewReader(stream), 256<<10, 64, 64)
			if _, err := d.streamHeader(); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := d.next(); err != nil {
			b.Fatal(err)
		}
		n++
	}
}

// BenchmarkEncodeStanza measures writing one buffered message stanza.
func BenchmarkEncodeStanza(b *testing.B) {
	d := newDecoder(strings.NewReader(`<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>`+benchMessage), 1<<20, 64, 64)
	if _, err := d.streamHeader(); err != nil {
		b.Fatal(err)
	}
	el, err := d.next()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		out := outputs.Get().(*output)
		if err := out.encodeElement(el, stanza.NSClient); err != nil {
			b.Fatal(err)
		}
		out.release()
	}
}

// TestOutputRefusesOpenElements: a handler's output that leaves an element
// open is refused (and that output is dropped, not pooled); the next output
// from the pool encodes a whole element.
func TestOutputRefusesOpenElements(t *testing.T) {
	iq := xml.StartElement{Name: xml.Name{Space: "jabber:client", Local: "iq"}}
	out := outputs.Get().(*output)
	if err := out.encode(&sliceReader{toks: []xml.Token{iq}}, stanza.NSClient); err == nil || !strings.Contains(err.Error(), "left open") {
		t.Fatalf("an open element was encoded: %v", err)
	}
	out = outputs.Get().(*output)
	if err := out.encode(&sliceReader{toks: []xml.Token{iq, iq.End()}}, stanza.NSClient); err != nil {
		t.Fatal(err)
	}
	if got := out.buf.String(); got != `<iq/>` {
		t.Fatalf("encoded %q", got)
	}
	out.release()
}
