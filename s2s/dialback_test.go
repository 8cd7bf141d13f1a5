package s2s_test

import (
	"bytes"
	"encoding/xml"
	"reflect"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/s2s"
	"github.com/adhocd/adhocd/wire"
)

// The published examples: XEP-0185 §3 (also checked with Python's hmac
// module) and the two keys of XEP-0220 §2.1.1 and §2.2.2.
var dialbackVectors = []struct {
	secret, receiving, originating, streamID, key string
}{
	{"s3cr3tf0rd14lb4ck", "xmpp.example.com", "example.org", "D60000229F",
		"37c69b1cf07a3f67c04a5ef5902fa5114f2c76fe4a2686482ba5b89323075643"},
	{"s3cr3tf0rd14lb4ck", "montague.example", "capulet.example", "D60000229F",
		"b4835385f37fe2895af6c196b59097b16862406db80559900d96bf6fa7d23df3"},
	{"d14lb4ck43v3r", "capulet.example", "montague.example", "417GAF25",
		"225cc5aa6a071133249d25fef42ae516fc7a86c523aa1c6980a7f73e784c972d"},
}

// TestDialbackKeyVectors: Key gives the keys that XEP-0185 and XEP-0220
// print for their inputs, and Verify accepts them.
func TestDialbackKeyVectors(t *testing.T) {
	for _, v := range dialbackVectors {
		k, err := s2s.NewKeyer([]byte(v.secret))
		if err != nil {
			t.Fatal(err)
		}
		if got := k.Key(v.receiving, v.originating, v.streamID); got != v.key {
			t.Errorf("Key(%q, %q, %q) with secret %q = %s, want %s", v.receiving, v.originating, v.streamID, v.secret, got, v.key)
		}
		if !k.Verify(v.receiving, v.originating, v.streamID, v.key) {
			t.Errorf("Verify refuses the published key %s", v.key)
		}
		if !k.Verify(v.receiving, v.originating, v.streamID, strings.ToUpper(v.key)) {
			t.Errorf("Verify refuses the published key in upper case")
		}
	}
}

// TestDialbackVerifyRefuses: every change to the key or to what it is
// bound to (the two domains, in order, the stream ID and the secret) makes
// Verify refuse it.
func TestDialbackVerifyRefuses(t *testing.T) {
	v := dialbackVectors[0]
	k, err := s2s.NewKeyer([]byte(v.secret))
	if err != nil {
		t.Fatal(err)
	}
	// Each hex digit changed in turn: the comparison covers the whole key.
	for i := range len(v.key) {
		b := []byte(v.key)
		b[i] = "1032547698badcfe"[strings.IndexByte("0123456789abcdef", b[i])]
		if k.Verify(v.receiving, v.originating, v.streamID, string(b)) {
			t.Errorf("Verify accepts the key with digit %d changed: %s", i, b)
		}
	}
	for _, bad := range []string{"", v.key[:62], v.key + "00", v.key[:63] + "g", " " + v.key, v.key[:32]} {
		if k.Verify(v.receiving, v.originating, v.streamID, bad) {
			t.Errorf("Verify accepts %q", bad)
		}
	}
	for _, in := range [][3]string{
		{v.originating, v.receiving, v.streamID}, // domains swapped
		{v.receiving, v.originating, "D60000229E"},
		{v.receiving, "example.net", v.streamID},
		{"xmpp.example.net", v.originating, v.streamID},
		{v.receiving + " " + v.originating, "", v.streamID}, // the spaces are separators
	} {
		if k.Verify(in[0], in[1], in[2], v.key) {
			t.Errorf("Verify(%q, %q, %q) accepts the key of (%q, %q, %q)", in[0], in[1], in[2], v.receiving, v.originating, v.streamID)
		}
	}
	other, err := s2s.NewKeyer([]byte(v.secret + "!"))
	if err != nil {
		t.Fatal(err)
	}
	if other.Verify(v.receiving, v.originating, v.streamID, v.key) {
		t.Error("a Keyer with another secret accepts the key")
	}
}

// TestDialbackSecret: an empty secret is refused; random secrets differ,
// and so do the keys made with them.
func TestDialbackSecret(t *testing.T) {
	if _, err := s2s.NewKeyer(nil); err == nil {
		t.Error("NewKeyer(nil) succeeded")
	}
	a, b := s2s.RandomSecret(), s2s.RandomSecret()
	if len(a) < 16 || bytes.Equal(a, b) {
		t.Fatalf("RandomSecret gave %q and %q", a, b)
	}
	ka, _ := s2s.NewKeyer(a)
	kb, _ := s2s.NewKeyer(b)
	if ka.Key("b.test", "a.test", "id1") == kb.Key("b.test", "a.test", "id1") {
		t.Error("two random secrets give the same key")
	}
	// The same secret gives the same key: what lets another replica
	// verify it.
	again, _ := s2s.NewKeyer(a)
	if again.Key("b.test", "a.test", "id1") != ka.Key("b.test", "a.test", "id1") {
		t.Error("the same secret gives different keys")
	}
}

var (
	keyR = dialbackVectors[1].key
	keyV = dialbackVectors[2].key
)

// dialbackXML pairs elements with their text, as Marshal writes them
// without the namespace declaration (the stream header carries it). They
// are the examples of XEP-0220 §2.
var dialbackXML = []struct {
	name string
	d    s2s.Dialback
	xml  string
}{{
	name: "result request (Example 1)",
	d:    s2s.Dialback{Kind: s2s.DialbackResult, From: "capulet.example", To: "montague.example", Key: keyR},
	xml:  `<db:result from='capulet.example' to='montague.example'>` + keyR + `</db:result>`,
}, {
	name: "result valid (Example 2)",
	d:    s2s.Dialback{Kind: s2s.DialbackResult, From: "montague.example", To: "capulet.example", Type: s2s.DialbackValid},
	xml:  `<db:result from='montague.example' to='capulet.example' type='valid'/>`,
}, {
	name: "result invalid (Example 3)",
	d:    s2s.Dialback{Kind: s2s.DialbackResult, From: "montague.example", To: "capulet.example", Type: s2s.DialbackInvalid},
	xml:  `<db:result from='montague.example' to='capulet.example' type='invalid'/>`,
}, {
	name: "result error (Example 4)",
	d: s2s.Dialback{Kind: s2s.DialbackResult, From: "montague.example", To: "capulet.example", Type: s2s.DialbackError,
		Error: &stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound}},
	xml: `<db:result from='montague.example' to='capulet.example' type='error'>` +
		`<error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></db:result>`,
}, {
	name: "verify request (Example 5)",
	d:    s2s.Dialback{Kind: s2s.DialbackVerify, From: "capulet.example", To: "montague.example", ID: "417GAF25", Key: keyV},
	xml:  `<db:verify from='capulet.example' to='montague.example' id='417GAF25'>` + keyV + `</db:verify>`,
}, {
	name: "verify valid (Example 6)",
	d:    s2s.Dialback{Kind: s2s.DialbackVerify, From: "montague.example", To: "capulet.example", ID: "417GAF25", Type: s2s.DialbackValid},
	xml:  `<db:verify from='montague.example' to='capulet.example' id='417GAF25' type='valid'/>`,
}, {
	name: "verify error with text and by",
	d: s2s.Dialback{Kind: s2s.DialbackVerify, From: "b.test", To: "a.test", ID: "s1", Type: s2s.DialbackError,
		Error: &stanza.Error{Type: stanza.Cancel, Condition: stanza.RemoteServerNotFound, By: jid.MustParse("b.test"),
			Text: map[string]string{"": "no route", "de": "kein Weg"}}},
	xml: `<db:verify from='b.test' to='a.test' id='s1' type='error'><error type='cancel' by='b.test'>` +
		`<remote-server-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>` +
		`<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>no route</text>` +
		`<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' xml:lang='de'>kein Weg</text></error></db:verify>`,
}, {
	name: "attribute values and text are escaped",
	d:    s2s.Dialback{Kind: s2s.DialbackVerify, From: "a.test", To: "b.test", ID: `x'<&"`, Key: "a<b&c"},
	xml:  `<db:verify from='a.test' to='b.test' id='x&#39;&lt;&amp;&#34;'>a&lt;b&amp;c</db:verify>`,
}}

// TestDialbackMarshal: elements are written with the literal db: prefix
// (ejabberd matches the names db:result and db:verify), and declare it only
// when asked.
func TestDialbackMarshal(t *testing.T) {
	for _, tc := range dialbackXML {
		got, err := tc.d.Marshal(false)
		if err != nil || string(got) != tc.xml {
			t.Errorf("%s: Marshal(false) =\n\t%s, %v\nwant\n\t%s", tc.name, got, err, tc.xml)
		}
		got, err = tc.d.Marshal(true)
		want := strings.Replace(tc.xml, "<db:"+tc.d.Kind.String(), "<db:"+tc.d.Kind.String()+" xmlns:db='jabber:server:dialback'", 1)
		if err != nil || string(got) != want {
			t.Errorf("%s: Marshal(true) =\n\t%s, %v\nwant\n\t%s", tc.name, got, err, want)
		}
	}
}

// TestDialbackMarshalRefuses: what XEP-0220 does not allow is not written.
func TestDialbackMarshalRefuses(t *testing.T) {
	for name, d := range map[string]s2s.Dialback{
		"no kind":            {From: "a.test", To: "b.test"},
		"no from":            {Kind: s2s.DialbackResult, To: "b.test", Key: keyR},
		"no to":              {Kind: s2s.DialbackResult, From: "a.test", Key: keyR},
		"verify without id":  {Kind: s2s.DialbackVerify, From: "a.test", To: "b.test", Key: keyV},
		"result with an id":  {Kind: s2s.DialbackResult, From: "a.test", To: "b.test", ID: "s1", Key: keyR},
		"unknown type":       {Kind: s2s.DialbackResult, From: "a.test", To: "b.test", Type: "maybe"},
		"error without one":  {Kind: s2s.DialbackResult, From: "a.test", To: "b.test", Type: s2s.DialbackError},
		"error without type": {Kind: s2s.DialbackResult, From: "a.test", To: "b.test", Type: s2s.DialbackError, Error: &stanza.Error{Condition: stanza.ItemNotFound}},
		"an error on valid":  {Kind: s2s.DialbackResult, From: "a.test", To: "b.test", Type: s2s.DialbackValid, Error: &stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound}},
	} {
		if got, err := d.Marshal(false); err == nil || !strings.HasPrefix(err.Error(), "s2s: dialback ") {
			t.Errorf("%s: Marshal = %s, %v; want an s2s: dialback error", name, got, err)
		}
	}
}

// readStream reads header (a stream header) and then body through
// wire.Decoder, as an inbound s2s stream will, and returns the first
// element after the header.
func readStream(t *testing.T, header, body string) *wire.Element {
	t.Helper()
	d := wire.NewDecoder(strings.NewReader(header+body), 1<<16, 16, 16)
	if _, err := d.StreamHeader(); err != nil {
		t.Fatalf("header: %v", err)
	}
	el, err := d.Next()
	if err != nil {
		t.Fatalf("read %s: %v", body, err)
	}
	return el
}

const (
	// headerDB is an s2s stream header that binds db (XEP-0220 §2.4.1).
	headerDB = `<stream:stream xmlns='jabber:server'` + s2s.DialbackDecl +
		` xmlns:stream='http://etherx.jabber.org/streams' from='capulet.example' to='montague.example' version='1.0'>`
	// headerNoDB leaves db undeclared, as some old peers do.
	headerNoDB = `<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' to='montague.example'>`
)

// TestDialbackRoundTrip: what Marshal writes, read back from a stream
// through wire.Decoder, is the element it was made from, with the prefix
// declared on the header or on the element.
func TestDialbackRoundTrip(t *testing.T) {
	for _, tc := range dialbackXML {
		for _, declare := range []bool{false, true} {
			header := headerDB
			if declare {
				header = headerNoDB
			}
			text, err := tc.d.Marshal(declare)
			if err != nil {
				t.Fatal(err)
			}
			got, err := s2s.ParseDialback(readStream(t, header, string(text)))
			if err != nil {
				t.Errorf("%s: ParseDialback(%s): %v", tc.name, text, err)
				continue
			}
			if !reflect.DeepEqual(got, tc.d) {
				t.Errorf("%s (declared on the element: %v): read back\n\t%#v\nwant\n\t%#v", tc.name, declare, got, tc.d)
			}
		}
	}
}

// TestParseDialback: what peers really send is read, whichever way the
// dialback namespace reaches the element.
func TestParseDialback(t *testing.T) {
	for _, tc := range []struct {
		name, header, body string
		want               s2s.Dialback
	}{{
		name:   "the key on a line of its own, as in the XEPs",
		header: headerDB,
		body:   "<db:result\n  to='xmpp.example.com'\n  from='example.org'>\n    " + dialbackVectors[0].key + "\n</db:result>",
		want:   s2s.Dialback{Kind: s2s.DialbackResult, From: "example.org", To: "xmpp.example.com", Key: dialbackVectors[0].key},
	}, {
		name:   "db left undeclared",
		header: headerNoDB,
		body:   `<db:result from='capulet.example' to='montague.example'>` + keyR + `</db:result>`,
		want:   s2s.Dialback{Kind: s2s.DialbackResult, From: "capulet.example", To: "montague.example", Key: keyR},
	}, {
		name:   "the namespace as a default namespace",
		header: headerNoDB,
		body:   `<verify xmlns='jabber:server:dialback' from='capulet.example' to='montague.example' id='417GAF25'>` + keyV + `</verify>`,
		want:   s2s.Dialback{Kind: s2s.DialbackVerify, From: "capulet.example", To: "montague.example", ID: "417GAF25", Key: keyV},
	}, {
		name:   "another prefix for the namespace",
		header: headerNoDB,
		body:   `<x:verify xmlns:x='jabber:server:dialback' from='capulet.example' to='montague.example' id='417GAF25' type='valid'/>`,
		want:   s2s.Dialback{Kind: s2s.DialbackVerify, From: "capulet.example", To: "montague.example", ID: "417GAF25", Type: s2s.DialbackValid},
	}, {
		name:   "Prosody: valid, with the key repeated",
		header: headerDB,
		body:   `<db:result from='montague.example' to='capulet.example' type='valid'>` + keyR + `</db:result>`,
		want:   s2s.Dialback{Kind: s2s.DialbackResult, From: "montague.example", To: "capulet.example", Type: s2s.DialbackValid, Key: keyR},
	}, {
		// Prosody 0.12 copies the id of the db:verify answer it got onto
		// its verdict; it is dropped.
		name:   "Prosody: valid, with the stream id and the key",
		header: headerDB,
		body:   `<db:result id='s1' to='capulet.example' from='montague.example' type='valid'>` + keyR + `</db:result>`,
		want:   s2s.Dialback{Kind: s2s.DialbackResult, From: "montague.example", To: "capulet.example", Type: s2s.DialbackValid, Key: keyR},
	}, {
		name:   "ejabberd: error with a condition",
		header: headerDB,
		body: `<db:result from='montague.example' to='capulet.example' type='error'><error type='cancel'>` +
			`<item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></db:result>`,
		want: s2s.Dialback{Kind: s2s.DialbackResult, From: "montague.example", To: "capulet.example", Type: s2s.DialbackError,
			Error: &stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound}},
	}, {
		name:   "error text before the condition",
		header: headerDB,
		body: `<db:result from='b.test' to='a.test' type='error'><error type='wait'>` +
			`<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' xml:lang='en'>later</text>` +
			`<remote-server-timeout xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></db:result>`,
		want: s2s.Dialback{Kind: s2s.DialbackResult, From: "b.test", To: "a.test", Type: s2s.DialbackError,
			Error: &stanza.Error{Type: stanza.Wait, Condition: stanza.RemoteServerTimeout, Text: map[string]string{"en": "later"}}},
	}, {
		name:   "type error without an error child",
		header: headerDB,
		body:   `<db:result from='b.test' to='a.test' type='error'/>`,
		want:   s2s.Dialback{Kind: s2s.DialbackResult, From: "b.test", To: "a.test", Type: s2s.DialbackError},
	}, {
		name:   "an error child without type error is not an error",
		header: headerDB,
		body:   `<db:result from='b.test' to='a.test' type='valid'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></db:result>`,
		want:   s2s.Dialback{Kind: s2s.DialbackResult, From: "b.test", To: "a.test", Type: s2s.DialbackValid},
	}} {
		got, err := s2s.ParseDialback(readStream(t, tc.header, tc.body))
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got\n\t%#v\nwant\n\t%#v", tc.name, got, tc.want)
		}
	}
}

// TestParseDialbackRefuses: elements that XEP-0220 requires more of, and
// elements that are not dialback, are errors.
func TestParseDialbackRefuses(t *testing.T) {
	for _, body := range []string{
		`<db:result to='montague.example'>` + keyR + `</db:result>`,
		`<db:result from='capulet.example'>` + keyR + `</db:result>`,
		`<db:verify from='capulet.example' to='montague.example'>` + keyV + `</db:verify>`,
		`<db:result from='capulet.example' to='montague.example' type='maybe'/>`,
		`<db:other from='capulet.example' to='montague.example'/>`,
		`<result from='capulet.example' to='montague.example'/>`,
		`<iq type='get' id='1'/>`,
	} {
		if got, err := s2s.ParseDialback(readStream(t, headerDB, body)); err == nil || !strings.HasPrefix(err.Error(), "s2s: ") {
			t.Errorf("ParseDialback(%s) = %#v, %v; want an error", body, got, err)
		}
	}
}

// TestDialbackKindOf: the names recognised as dialback.
func TestDialbackKindOf(t *testing.T) {
	for name, want := range map[xml.Name]s2s.DialbackKind{
		{Space: s2s.NSDialback, Local: "result"}:  s2s.DialbackResult,
		{Space: s2s.NSDialback, Local: "verify"}:  s2s.DialbackVerify,
		{Space: "db", Local: "verify"}:            s2s.DialbackVerify,
		{Space: "jabber:server", Local: "result"}: 0,
		{Space: s2s.NSDialback, Local: "errors"}:  0,
		{Space: "x", Local: "result"}:             0,
	} {
		if got := s2s.DialbackKindOf(name); got != want {
			t.Errorf("DialbackKindOf(%v) = %v, want %v", name, got, want)
		}
	}
}

// TestDialbackExchange plays XEP-0185's example end to end with the
// elements: the Originating Server's key in <db:result/>, passed on by
// the Receiving Server in <db:verify/> with the stream ID, checked by the
// Authoritative Server, which shares the secret.
func TestDialbackExchange(t *testing.T) {
	v := dialbackVectors[0]
	originating, _ := s2s.NewKeyer([]byte(v.secret))
	authoritative, _ := s2s.NewKeyer([]byte(v.secret))

	// Step 1: example.org sends its key to xmpp.example.com.
	result, err := s2s.Dialback{Kind: s2s.DialbackResult, From: v.originating, To: v.receiving,
		Key: originating.Key(v.receiving, v.originating, v.streamID)}.Marshal(false)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s2s.ParseDialback(readStream(t, headerDB, string(result)))
	if err != nil {
		t.Fatal(err)
	}
	// Step 2: xmpp.example.com asks about it on its stream to example.org.
	verify, err := s2s.Dialback{Kind: s2s.DialbackVerify, From: got.To, To: got.From, ID: v.streamID, Key: got.Key}.Marshal(false)
	if err != nil {
		t.Fatal(err)
	}
	req, err := s2s.ParseDialback(readStream(t, headerDB, string(verify)))
	if err != nil {
		t.Fatal(err)
	}
	// Step 3: example.org checks it: receiving is the request's from.
	if !authoritative.Verify(req.From, req.To, req.ID, req.Key) {
		t.Fatalf("the Authoritative Server refuses %s", verify)
	}
	if authoritative.Verify(req.From, req.To, "another-stream", req.Key) {
		t.Fatal("the key is accepted for another stream")
	}
}
