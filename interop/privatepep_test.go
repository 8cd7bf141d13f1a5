package interop_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/servertest"
)

// TestSlixmppPrivatePEP has slixmpp 1.8.3's XEP-0223 plugin (xep_0223) keep
// an app's private data in alice's PEP, as apps store settings and
// bookmarks: store() publishes the app's own element to the node of its
// namespace with the plugin's publish-options (pubsub#persist_items true,
// pubsub#access_model whitelist), and the node is created with that
// configuration, which alice reads back. In a new session retrieve() gives
// her the one item, its id, attribute and non-ASCII text as stored. Her
// contact bob (subscription both), whose caps ask for notifications of
// that node and of her nick, is notified of the nicks she publishes before
// and after but never of the private item; when he asks her bare JID for
// the node's items, all of them or the one by id, he is refused with
// not-allowed and <closed-node/> (type cancel: XEP-0060 §6.5.9 for a
// whitelist node he is not on, the answer of modules/pep), and so is carol,
// who is nobody's contact.
func TestSlixmppPrivatePEP(t *testing.T) {
	requireSlixmpp(t)
	srv := servertest.Start(t)
	_, args := addAccounts(t, srv, "private", "alice", "bob", "carol")
	srv.Befriend("alice", "bob")
	nick := "Alice " + randomHex(t, 3)
	version := randomHex(t, 4)
	text := "private " + randomHex(t, 8) + " ✓ ünïcode"

	args = append(args, "--nick", nick, "--version", version, "--text", text, "--timeout", "40")
	lines := runScript(t, 60*time.Second, "slixmpp_private_pep.py", withDebug(args, "PEP_DEBUG")...)

	got := byWord(lines)
	if _, ok := got["OK"]; !ok {
		t.Fatal("script did not print OK")
	}
	if q := got["CAPS_QUERIED"]; len(q) != 1 || !strings.HasPrefix(q[0], "http://slixmpp.com/ver/") {
		t.Errorf("the server asked bob for his caps %q, want one slixmpp node#ver", q)
	}
	if n := got["NICK_NOTIFIED"]; !slices.Equal(n, []string{nick + " 1", nick + " 2"}) {
		t.Errorf("bob was notified of the nicks %q, want the two alice published", n)
	}
	if l := got["LEAKED"]; len(l) > 0 {
		t.Errorf("bob was notified of alice's private data: %q", l)
	}
	if s := got["STORED"]; !slices.Equal(s, []string{"current"}) {
		t.Errorf("stored as item %q, want current (xep_0163's default id)", s)
	}
	if c := got["CONFIG"]; len(c) != 1 {
		t.Errorf("node configuration %q, want one", c)
	} else {
		var conf struct {
			Access  string `json:"access_model"`
			Persist any    `json:"persist_items"`
		}
		if err := json.Unmarshal([]byte(c[0]), &conf); err != nil {
			t.Fatalf("CONFIG %s: %v", c[0], err)
		}
		if conf.Access != "whitelist" || conf.Persist != true {
			t.Errorf("the node's configuration %s, want access_model whitelist and persist_items true (the plugin's profile)", c[0])
		}
	}

	type notes struct{ ID, Version, Text string }
	if r := got["RETRIEVED"]; len(r) != 1 {
		t.Errorf("RETRIEVED %q, want one line", r)
	} else {
		var items []notes
		if err := json.Unmarshal([]byte(r[0]), &items); err != nil {
			t.Fatalf("RETRIEVED %s: %v", r[0], err)
		}
		want := []notes{{"current", version, text}}
		if !slices.Equal(items, want) {
			t.Errorf("alice's new session retrieved %+v, want %+v", items, want)
		}
	}

	if r := got["READ"]; len(r) > 0 {
		t.Errorf("others read alice's private node: %q", r)
	}
	var wantDenied []string
	for _, who := range []string{"bob", "carol"} {
		for _, how := range []string{"all", "id"} {
			wantDenied = append(wantDenied, who+" "+how+" not-allowed closed-node cancel")
		}
	}
	if d := got["DENIED"]; !slices.Equal(d, wantDenied) {
		t.Errorf("refusals\n%swant\n%s", quoteLines(d), quoteLines(wantDenied))
	}
}
