package interop_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/servertest"
)

// TestSlixmppCarbons has slixmpp 1.8.3's XEP-0280 plugin use adhocd's
// Message Carbons as an app with two devices does: alice is logged in as
// res1 and res2, both with carbons enabled through the plugin, and bob
// talks to res1. res2 gets a received carbon of bob's message to res1 and a
// sent carbon of res1's message to bob, each wrapped as XEP-0280 §6 says
// (from alice's bare JID, the forwarded message with its original from and
// to), and each once. Messages marked <private xmlns='urn:xmpp:carbons:2'/>
// (§8), <no-copy xmlns='urn:xmpp:hints'/> (XEP-0334) or both are delivered,
// with the mark, and copied to nobody, either way. Nobody else gets a
// carbon: not res1 of its own messages, not bob.
func TestSlixmppCarbons(t *testing.T) {
	requireSlixmpp(t)
	srv := servertest.Start(t)
	jids, args := addAccounts(t, srv, "carbons", "alice", "bob")
	alice, bob := jids[0], jids[1]
	tag := "carbons-" + randomHex(t, 6)

	args = append(args, "--tag", tag, "--timeout", "60")
	lines := runScript(t, 90*time.Second, "slixmpp_carbons.py", withDebug(args, "CARBONS_DEBUG")...)

	printed := byWord(lines)
	enabled, carbons, received := printed["ENABLED"], printed["CARBON"], printed["RECEIVED"]
	if !slices.Contains(lines, "OK") {
		t.Fatalf("script did not print OK")
	}
	if !slices.Equal(enabled, []string{"res1", "res2"}) {
		t.Errorf("carbons enabled for %q, want res1 and res2", enabled)
	}

	res1 := alice + "/res1"
	bobFull := func(j string) bool { return strings.HasPrefix(j, bob+"/") }
	// CARBON <role> <kind> <carbon's from> <fwd from> <fwd to> <body...>
	type carbon struct{ role, kind, from, fwdFrom, fwdTo, body string }
	var got []carbon
	for _, c := range carbons {
		f := strings.SplitN(c, " ", 6)
		if len(f) != 6 {
			t.Errorf("bad CARBON line %q", c)
			continue
		}
		got = append(got, carbon{f[0], f[1], f[2], f[3], f[4], f[5]})
	}
	want := []struct{ kind, body string }{
		{"received", tag + " to-res1"},
		{"sent", tag + " from-res1"},
		{"received", tag + " to-res1 last"},
		{"sent", tag + " from-res1 last"},
	}
	if len(got) != len(want) {
		t.Errorf("carbons: %q, want %d, all to res2", carbons, len(want))
	}
	for i, w := range want {
		if i >= len(got) {
			break
		}
		g := got[i]
		if g.role != "res2" || g.kind != w.kind || g.body != w.body || g.from != alice {
			t.Errorf("carbon %d: %+v, want a %s carbon of %q at res2 from %s", i, g, w.kind, w.body, alice)
			continue
		}
		// The forwarded message as it was sent: bob's to res1, or res1's
		// to bob's bare JID.
		if w.kind == "received" && (!bobFull(g.fwdFrom) || g.fwdTo != res1) {
			t.Errorf("received carbon forwards a message from %s to %s, want from bob's full JID to %s", g.fwdFrom, g.fwdTo, res1)
		}
		if w.kind == "sent" && (g.fwdFrom != res1 || g.fwdTo != bob) {
			t.Errorf("sent carbon forwards a message from %s to %s, want from %s to %s", g.fwdFrom, g.fwdTo, res1, bob)
		}
	}

	// RECEIVED <role> <from> <private|-> <no-copy|-> <body...>: the marked
	// messages reached the peer unchanged, and res2 got only carbons.
	marks := map[string]string{"private": "private -", "no-copy": "- no-copy", "private+no-copy": "private no-copy"}
	for name, mark := range marks {
		for _, w := range []struct{ role, from, body string }{
			{"res1", "bob", tag + " to-res1 " + name},
			{"bob", res1, tag + " from-res1 " + name},
		} {
			found := false
			for _, r := range received {
				f := strings.SplitN(r, " ", 5)
				if len(f) != 5 || f[0] != w.role || f[4] != w.body {
					continue
				}
				found = true
				if f[2]+" "+f[3] != mark {
					t.Errorf("%s got %q with marks %q, want %q", w.role, w.body, f[2]+" "+f[3], mark)
				}
				if (w.from == "bob" && !bobFull(f[1])) || (w.from != "bob" && f[1] != w.from) {
					t.Errorf("%s got %q from %s, want from %s", w.role, w.body, f[1], w.from)
				}
			}
			if !found {
				t.Errorf("%s did not get %q", w.role, w.body)
			}
		}
	}
	for _, r := range received {
		if strings.HasPrefix(r, "res2 ") {
			t.Errorf("res2 got a message that was not a carbon: %q", r)
		}
	}
}
