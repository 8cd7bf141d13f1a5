package interop_test

// This file federates adhocd with the harness's peers as
// s2s_adhocd_test.go does (startAdhocdFederation), with Gajim's library on
// both ends instead of slixmpp: an nbxmpp 4.2.2 user (Debian's
// python3-nbxmpp, Gajim 1.7's library) on adhocd.test and an nbxmpp user
// on Prosody 0.12's prosody.test or ejabberd 23.01's ejabberd.test, in one
// GLib main loop (s2s_nbxmpp.py). Each starts its session as Gajim does
// (disco#info of its server, the roster, then presence) and adds the other
// as Gajim's Presence module does: a roster set, then a subscription
// request with a nickname (XEP-0172) sent right after it (RFC 6121 §3.1).
// What each sees is read where Gajim reads it, from nbxmpp's parsed
// properties. The streams authenticate with XEP-0220 dialback, both
// certificates self-signed: nbxmpp accepts a certificate it cannot verify
// only when it is the very one it was given, which with the EXTERNAL
// set-up's CA-issued certificates would need the leaf certificates, not
// the CA; the s2s authentication itself is TestS2SAdhocd*'s. Same
// requirements as the harness: root, the peer's package and
// python3-nbxmpp; serial (the fixed addresses). S2S_DEBUG=1 logs adhocd at
// debug level and nbxmpp's XML.

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/storage"
)

// TestS2SNbxmpp: an nbxmpp user on adhocd and one on the peer subscribe to
// each other (the request's nickname arrives across the servers), each
// sees the other's approval and available presence, both rosters end
// with subscription both and no pending request (in the pushes, and in
// the roster the adhocd user fetches again, and in adhocd's store), a chat
// message goes each way, and the peer's user sees the adhocd user go
// offline.
func TestS2SNbxmpp(t *testing.T) {
	requireNbxmpp(t)
	eachPeer(t, testS2SNbxmpp)
}

func testS2SNbxmpp(t *testing.T, pc adhocdPeerCase) {
	f := startAdhocdFederation(t, pc, authDialback, map[string]string{"bob": "pw-" + randomHex(t, 8)})
	srv, p := f.srv, f.peer
	const alicePW = "gajim-wonderland"
	alice, bob := srv.AddUser("alice", alicePW), p.jid("bob")

	aBody, bBody := randomBody(t), randomBody(t)
	args := append(f.adhocdArgs(t),
		"--a-jid", alice, "--a-password", alicePW,
		"--b-host", p.addr, "--b-port", strconv.Itoa(peerC2SPort), "--b-cafile", p.caFile,
		"--b-jid", bob, "--b-password", p.users["bob"],
		"--a-body", aBody, "--b-body", bBody,
		"--timeout", "100",
	)
	lines := runScript(t, 120*time.Second, "s2s_nbxmpp.py", withDebug(args, "S2S_DEBUG")...)
	got := byWord(lines)
	if !slices.Contains(lines, "OK") {
		t.Error("s2s_nbxmpp.py did not print OK")
	}
	for _, word := range []string{"ERROR", "MESSAGE_ERROR"} {
		if len(got[word]) > 0 {
			t.Errorf("%s %q", word, got[word])
		}
	}

	// Logins: a on adhocd with nbxmpp's choice of what adhocd offers.
	var aFull string
	for _, l := range got["LOGIN"] {
		if w := strings.Fields(l); len(w) == 3 && w[0] == "a" {
			aFull = w[1]
			if !strings.HasPrefix(w[1], alice+"/") || w[2] != "SCRAM-SHA-256" {
				t.Errorf("LOGIN %q, want %s/… with SCRAM-SHA-256", l, alice)
			}
		}
	}
	if aFull == "" || !slices.ContainsFunc(got["LOGIN"], func(s string) bool { return strings.HasPrefix(s, "b "+bob+"/") }) {
		t.Fatalf("LOGIN %q, want a as %s and b as %s", got["LOGIN"], alice, bob)
	}
	if !slices.ContainsFunc(got["DISCO"], func(s string) bool {
		w := strings.Fields(s)
		return len(w) == 3 && w[0] == "a" && w[1] == adhocdDomain && w[2] != "0"
	}) {
		t.Errorf("DISCO %q, want features of %s for a", got["DISCO"], adhocdDomain)
	}

	// The subscription exchange, nicknames included (XEP-0172: carried
	// in the request, across both servers).
	for _, want := range []struct{ word, line string }{
		{"SUBSCRIBE", "b " + alice + " Alice (Gajim)"},
		{"SUBSCRIBED", "a " + bob},
		{"SUBSCRIBE", "a " + bob + " Bob"},
		{"SUBSCRIBED", "b " + alice},
		{"RECEIVED", "b " + alice + " " + aBody},
		{"RECEIVED", "a " + bob + " " + bBody},
	} {
		if !slices.Contains(got[want.word], want.line) {
			t.Errorf("%s %q, want %q", want.word, got[want.word], want.line)
		}
	}
	// a's roster (what Gajim's contact list shows): the push of b once b
	// approved (to, or both if a's approval came first), the last push
	// both with nothing pending, and the roster fetched again the same.
	roster := got["ROSTER"]
	var aPushes []string
	for _, r := range roster {
		if rest, ok := strings.CutPrefix(r, "a push "+bob+" "); ok {
			aPushes = append(aPushes, rest)
		}
	}
	if len(aPushes) == 0 || aPushes[len(aPushes)-1] != "both -" {
		t.Errorf("a's roster pushes of %s: %q, want the last one both with no ask", bob, aPushes)
	}
	if !slices.ContainsFunc(aPushes, func(s string) bool { return s == "to -" || s == "both -" }) {
		t.Errorf("a's roster pushes of %s: %q, want one with subscription to after b's approval", bob, aPushes)
	}
	if want := "a fetch " + bob + " both -"; !slices.Contains(roster, want) {
		t.Errorf("ROSTER %q, want %q (a's roster fetched again)", roster, want)
	}
	if want := "b push " + alice + " both -"; !slices.Contains(roster, want) {
		t.Errorf("ROSTER %q, want %q (b's roster)", roster, want)
	}

	// Presence: each sees the other online after the approval, and b sees
	// a's very session go offline.
	for _, want := range []struct{ word, prefix string }{
		{"AVAILABLE", "a " + bob + "/"},
		{"AVAILABLE", "b " + aFull},
		{"UNAVAILABLE", "b " + aFull},
	} {
		if !slices.ContainsFunc(got[want.word], func(s string) bool { return strings.HasPrefix(s, want.prefix) }) {
			t.Errorf("%s %q, want %s…", want.word, got[want.word], want.prefix)
		}
	}

	// adhocd's store: alice's item of bob, as the next session's roster
	// (and any other of alice's clients) would read it.
	item, err := srv.Store().RosterItem(context.Background(), "alice", bob)
	if err != nil {
		t.Fatalf("adhocd: alice's roster item of %s: %v", bob, err)
	}
	if item.Subscription != storage.SubBoth || item.AskOut || item.PendingIn || item.Hidden {
		t.Errorf("adhocd: alice's roster item of %s: %+v, want subscription both, nothing pending", bob, item)
	}

	// Both ways over adhocd's own streams with the peer, by dialback.
	for _, inbound := range []bool{false, true} {
		if c := waitS2SConn(t, srv, p.domain, inbound); c.Auth != "dialback" || !c.TLS {
			t.Errorf("adhocd's %s stream with %s: %+v, want dialback on TLS", direction(inbound), p.domain, c)
		}
	}
}
