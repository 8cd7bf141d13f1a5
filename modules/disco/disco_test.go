package disco_test

import (
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/adhocd/adhocd/servertest"
)

// TestAccountBareJID: disco#info on a local account's bare JID, the
// requester's own or a contact's, is answered by the server on the account's
// behalf with the identity account/registered (XEP-0030 §3.1); disco#items
// with no items; a bare JID with no account behind it is
// service-unavailable (RFC 6121 §8.5.1), and an unknown node item-not-found.
func TestAccountBareJID(t *testing.T) {
	srv := servertest.Start(t)
	srv.AddUser("alice", "pw")
	srv.AddUser("bob", "pw")
	alice := srv.RawLogin("alice", "pw", "a")
	for _, to := range []string{"alice@localhost", "bob@localhost"} {
		alice.Write(`<iq type='get' id='i1' to='` + to + `'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
		got := alice.Expect(`<iq[^>]*id="i1"[^>]*>.*?</iq>`)
		for _, want := range []string{`from="` + to + `"`, `type="result"`, `<identity category="account" type="registered"`, `<feature var="http://jabber.org/protocol/disco#info"`} {
			if !strings.Contains(got, want) {
				t.Errorf("disco#info of %s: %s lacks %s", to, got, want)
			}
		}
		alice.Write(`<iq type='get' id='i2' to='` + to + `'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>`)
		got = alice.Expect(`<iq[^>]*id="i2"[^>]*>.*?</iq>|<iq[^>]*id="i2"[^>]*/>`)
		if !strings.Contains(got, `type="result"`) || strings.Contains(got, `<item `) {
			t.Errorf("disco#items of %s: %s", to, got)
		}
	}
	alice.Write(`<iq type='get' id='i3' to='nobody@localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	if got := alice.Expect(`<iq[^>]*id="i3"[^>]*>.*?</iq>`); !strings.Contains(got, `<service-unavailable`) {
		t.Errorf("disco#info of an account that does not exist: %s", got)
	}
	alice.Write(`<iq type='get' id='i4' to='bob@localhost'><query xmlns='http://jabber.org/protocol/disco#info' node='nothing'/></iq>`)
	if got := alice.Expect(`<iq[^>]*id="i4"[^>]*>.*?</iq>`); !strings.Contains(got, `<item-not-found`) {
		t.Errorf("disco#info of an unknown node: %s", got)
	}
	// The server JID still answers as the server.
	alice.Write(`<iq type='get' id='i5' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	if got := alice.Expect(`<iq[^>]*id="i5"[^>]*>.*?</iq>`); !strings.Contains(got, `<identity category="server" type="im"`) {
		t.Errorf("disco#info of the server: %s", got)
	}
}

// TestServerCaps: the stream features carry the server's XEP-0115 caps,
// whose hash is that of its disco#info (§5.1, computed here from the
// answer), and disco#info of node#ver answers the same as the root node.
func TestServerCaps(t *testing.T) {
	srv := servertest.Start(t)
	srv.AddUser("alice", "pw")
	raw := srv.RawDial()
	features := raw.Authenticate(srv.ClientTLS, "alice", "pw")
	m := regexp.MustCompile(`<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='([^']+)' ver='([^']+)'/>`).FindStringSubmatch(features)
	if m == nil {
		t.Fatalf("no caps in the stream features: %s", features)
	}
	node, ver := m[1], m[2]
	raw.Write(`<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>`)
	raw.Expect(`</iq>`)
	for i, n := range []string{"", node + "#" + ver} {
		q := `<query xmlns='http://jabber.org/protocol/disco#info'/>`
		if n != "" {
			q = `<query xmlns='http://jabber.org/protocol/disco#info' node='` + n + `'/>`
		}
		raw.Write(fmt.Sprintf(`<iq type='get' id='c%d' to='localhost'>%s</iq>`, i, q))
		got := raw.Expect(fmt.Sprintf(`<iq[^>]*id="c%d".*?</iq>`, i))
		var ids, feats []string
		for _, id := range regexp.MustCompile(`<identity category="([^"]*)" type="([^"]*)"(?: name="([^"]*)")?`).FindAllStringSubmatch(got, -1) {
			ids = append(ids, id[1]+"/"+id[2]+"//"+id[3])
		}
		for _, f := range regexp.MustCompile(`<feature var="([^"]*)"`).FindAllStringSubmatch(got, -1) {
			feats = append(feats, f[1])
		}
		sort.Strings(ids)
		sort.Strings(feats)
		s := strings.Join(ids, "<") + "<" + strings.Join(feats, "<") + "<"
		sum := sha1.Sum([]byte(s))
		if h := base64.StdEncoding.EncodeToString(sum[:]); h != ver {
			t.Errorf("disco#info of node %q hashes to %s, the caps say %s: %s", n, h, ver, got)
		}
	}
}
