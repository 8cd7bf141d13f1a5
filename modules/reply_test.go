package modules_test

import (
	"testing"

	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/modules"
	"github.com/adhocd/adhocd/wire"
)

// TestErrorReply: the bounce of a stanza goes back from its addressee to
// its sender with the same id and type error; an IQ's carries only the
// <error/>, a message's or presence's the payload before it (RFC 6120
// §8.3.1).
func TestErrorReply(t *testing.T) {
	se := stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable, Text: map[string]string{"en": "gone"}}
	const errXML = `<error type="cancel"><service-unavailable xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/>` +
		`<text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas" xml:lang="en">gone</text></error>`
	for _, tc := range []struct {
		name, in, want string
	}{
		{"iq: the error alone",
			`<iq type="get" id="q1" from="alice@localhost/pc" to="svc.localhost"><query xmlns="urn:x"/></iq>`,
			`<iq id="q1" type="error" from="svc.localhost" to="alice@localhost/pc">` + errXML + `</iq>`},
		{"message: its payload back",
			`<message type="chat" id="m1" from="alice@localhost/pc" to="bob@localhost"><body>hi</body></message>`,
			`<message id="m1" type="error" from="bob@localhost" to="alice@localhost/pc"><body>hi</body>` + errXML + `</message>`},
		{"presence without id or to",
			`<presence from="alice@localhost/pc"><status>away</status></presence>`,
			`<presence type="error" to="alice@localhost/pc"><status>away</status>` + errXML + `</presence>`},
	} {
		el, ok := wire.ParseElement(tc.in)
		if !ok {
			t.Fatalf("%s: cannot parse %s", tc.name, tc.in)
		}
		before := wire.SerializeElement(el, 1<<20)
		reply, err := modules.ErrorReply(el, se.TokenReader())
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := wire.SerializeElement(reply, 1<<20); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, got, tc.want)
		}
		if after := wire.SerializeElement(el, 1<<20); after != before {
			t.Errorf("%s: the bounced stanza changed:\n%s\nto %s", tc.name, before, after)
		}
	}
}
