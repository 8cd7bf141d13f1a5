package interop_test

// This file federates adhocd with the harness's peers as
// s2s_adhocd_test.go does (startAdhocdFederation), with a browser client on
// adhocd's side: Converse.js 14 (npm converse.js) in headless Chromium,
// logged in to adhocd.test over XMPP over WebSocket (RFC 7395, adhocd's
// websocket.listen on loopback, the page's origin admitted), as
// converse_test.go runs it (converseRig). Its user adds a contact on
// Prosody 0.12's prosody.test (or ejabberd 23.01's ejabberd.test) through
// Converse's own Add Contact dialog (js/s2s_converse.mjs); the contact is a
// slixmpp user there (testdata/s2s_converse_peer.py) who approves,
// subscribes back and answers a message. Converse approves the contact's
// request by itself, as it does for a contact it asked to subscribe to,
// and its user logs out at the end (the profile dialog's Log out).
// The streams authenticate with XEP-0220 dialback, both certificates
// self-signed (the s2s authentication itself is TestS2SAdhocd*'s). Same
// requirements as the harness, and node, the npm packages and Chromium
// (requireNode, requireChromium); serial (the fixed addresses). S2S_DEBUG=1
// logs adhocd at debug level and slixmpp's XML; CONVERSE_LOGLEVEL=debug
// Converse's console.

import (
	"context"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/servertest"
	"github.com/adhocd/adhocd/storage"
)

// TestS2SConverse: a Converse.js user on adhocd adds a user of the peer in
// the Add Contact dialog; the peer's user gets the request with the
// Converse user's nickname (XEP-0172), approves and subscribes back, Converse approves, and both
// rosters end with subscription both and nothing pending (Converse's
// roster item shows the contact online; adhocd's store has the name typed
// in the dialog). What the Converse user types in the chat reaches the
// peer's user from Converse's very session, the answer renders in
// Converse's chat under the contact's name, and the peer's user sees the
// Converse user go offline when it logs out.
func TestS2SConverse(t *testing.T) {
	requireSlixmpp(t)
	eachPeer(t, testS2SConverse)
}

func testS2SConverse(t *testing.T, pc adhocdPeerCase) {
	node := requireNode(t, "converse.js", "playwright-core")
	requireChromium(t)
	site := httptest.NewServer(converseSite())
	t.Cleanup(site.Close)
	f := startAdhocdFederation(t, pc, authDialback, map[string]string{"bob": "pw-" + randomHex(t, 8)},
		servertest.WithWebSocket, func(c *config.Config) { c.WebSocket.AllowedOrigins = []string{site.URL} })
	srv, p := f.srv, f.peer
	if srv.WSURL == "" {
		t.Fatal("adhocd has no WebSocket listener")
	}
	rig := &converseRig{node: node, site: site, srv: srv, shots: t.ArtifactDir()}
	const alicePW = "converse-federates"
	alice, bob := srv.AddUser("alice", alicePW), p.jid("bob")
	bobName, aliceNick := "Bob on "+p.kind.name, "Alice (Converse)"
	body, reply := randomBody(t), randomBody(t)

	// The peer's user first, logged in and waiting for the request.
	peerArgs := append(p.clientArgs("bob"),
		"--contact", alice, "--expect", body, "--body", reply,
		"--tls-max", "1.2", "--timeout", "150")
	peerScript := startScript(t, 180*time.Second, "s2s_converse_peer.py", withDebug(peerArgs, "S2S_DEBUG")...)
	peerLines, ok := peerScript.linesUntil("READY", 30*time.Second)
	if !ok {
		peerScript.finish()
		t.Fatalf("s2s_converse_peer.py did not log in to %s; it printed %q", p.domain, peerLines)
	}

	start := time.Now()
	convLines := rig.start(t, 120*time.Second, "s2s_converse.mjs", alice, alicePW,
		"--contact", bob, "--contact-name", bobName, "--nickname", aliceNick, "--body", body, "--reply", reply).finish()
	t.Logf("Converse.js ran for %s; screenshots in %s", time.Since(start).Round(time.Millisecond), rig.shots)
	peerLines = append(peerLines, peerScript.finish()...)

	// Converse's side, as its user sees it.
	got := rig.facts(t, convLines, "s2s-converse-roster.png", "s2s-converse-chat.png")
	if want := bob + " " + bobName; got["ADDED"] != want {
		t.Errorf("Converse's roster shows the new contact as %q, want %q", got["ADDED"], want)
	}
	_, roster := cutJSON[struct {
		Subscription string
		Ask          *string
		Requesting   *bool
		Status       string
	}](t, "ROSTER", "- "+got["ROSTER"])
	if roster.Subscription != "both" || roster.Ask != nil || (roster.Requesting != nil && *roster.Requesting) ||
		roster.Status != "This contact is online" {
		t.Errorf("Converse's roster has %s as %+v, want subscription both, nothing pending, shown online", bob, roster)
	}
	if _, ok := got["LOGGED_OUT"]; !ok {
		t.Error("Converse did not log out")
	}
	_, shown := cutJSON[struct{ Author, Text, From string }](t, "SHOWN", "- "+got["SHOWN"])
	if shown.Author != bobName || shown.Text != reply || !strings.HasPrefix(shown.From, bob+"/") {
		t.Errorf("Converse's chat shows %+v, want %q from %s/… under %q", shown, reply, bob, bobName)
	}

	// The peer's side.
	pg := byWord(peerLines)
	if !slices.Contains(peerLines, "OK") {
		t.Error("s2s_converse_peer.py did not print OK")
	}
	var bobFull string
	if r := pg["READY"]; len(r) == 1 {
		bobFull = r[0]
	}
	if !strings.HasPrefix(bobFull, bob+"/") || shown.From != bobFull {
		t.Errorf("Converse's chat shows the answer from %q, want the peer's session %q (READY %q)", shown.From, bobFull, pg["READY"])
	}
	for _, want := range []struct{ word, line string }{
		// Converse's request carries its user's nickname (XEP-0172),
		// across both servers.
		{"SUBSCRIBE", alice + " " + aliceNick},
		{"SUBSCRIBED", alice},
		{"SUBSCRIPTION", alice + " both"},
		{"ROSTER", alice + " both -"},
	} {
		if !slices.Contains(pg[want.word], want.line) {
			t.Errorf("%s %q, want %q", want.word, pg[want.word], want.line)
		}
	}
	// One session of alice's, Converse's: online once approved, the
	// sender of the message, and offline when the browser closed.
	var aliceFull string
	for _, a := range pg["AVAILABLE"] {
		if strings.HasPrefix(a, alice+"/") {
			aliceFull = a
		}
	}
	if aliceFull == "" {
		t.Fatalf("AVAILABLE %q, want %s/…", pg["AVAILABLE"], alice)
	}
	if want := aliceFull + " " + body; !slices.Contains(pg["RECEIVED"], want) {
		t.Errorf("RECEIVED %q, want %q", pg["RECEIVED"], want)
	}
	if !slices.Contains(pg["UNAVAILABLE"], aliceFull) {
		t.Errorf("UNAVAILABLE %q, want %s", pg["UNAVAILABLE"], aliceFull)
	}

	// adhocd's store: alice's item of bob as the dialog made it, as the
	// next session's roster would read it.
	item, err := srv.Store().RosterItem(context.Background(), "alice", bob)
	if err != nil {
		t.Fatalf("adhocd: alice's roster item of %s: %v", bob, err)
	}
	if item.Subscription != storage.SubBoth || item.AskOut || item.PendingIn || item.Hidden || item.Name != bobName {
		t.Errorf("adhocd: alice's roster item of %s: %+v, want %q with subscription both, nothing pending", bob, item, bobName)
	}

	// Both ways over adhocd's own streams with the peer, by dialback.
	for _, inbound := range []bool{false, true} {
		if c := waitS2SConn(t, srv, p.domain, inbound); c.Auth != "dialback" || !c.TLS {
			t.Errorf("adhocd's %s stream with %s: %+v, want dialback on TLS", direction(inbound), p.domain, c)
		}
	}
}
