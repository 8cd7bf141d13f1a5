package interop_test

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/servertest"
)

// TestSlixmppSMResumption has slixmpp 1.8.3's XEP-0198 plugin use
// adhocd's stream management the way an app that loads it does: it enables
// it once bound (alice with resumption, bob without), answers the server's
// <r/>, asks for acknowledgements of its own stanzas, and resumes a session
// whose connection broke. alice stops reading, so that messages bob sends
// her wait unread in her socket, written by the server and never
// acknowledged; then her transport is aborted under TLS with nothing
// written (no closing tag, no close_notify). While she is away bob sends her
// full JID more messages, which the server acknowledges to him; alice
// connects again, slixmpp sends <resume h/> and gets <resumed/>, and she
// gets every message once — none of those she had received before the cut
// again, those her socket threw away and those sent while she was away —
// without binding again, as the same full JID. <resumed h/> counts every stanza she sent before the
// cut, all of them acknowledged before it.
//
// slixmpp 1.8.3 cannot resend what was in flight at a cut: its plugin
// empties its queue of unacknowledged stanzas when it sends <resume/> (in
// _handle_outgoing, Resume is treated as Enable), so the messages written
// into the aborted transport are lost on the client's side whatever the
// server's h says; the script lets the server acknowledge alice's
// replies before it cuts her off.
func TestSlixmppSMResumption(t *testing.T) {
	requireSlixmpp(t)
	srv := servertest.Start(t)
	_, args := addAccounts(t, srv, "sm", "alice", "bob")
	tag := "sm-" + randomHex(t, 6)
	const before, replies, inflight, away = 7, 3, 2, 3

	args = append(args,
		"--tag", tag,
		"--before", strconv.Itoa(before), "--replies", strconv.Itoa(replies),
		"--inflight", strconv.Itoa(inflight), "--away", strconv.Itoa(away),
		"--timeout", "90",
	)
	lines := runScript(t, 120*time.Second, "slixmpp_sm.py", withDebug(args, "SM_DEBUG")...)

	got := byWord(lines)
	received := map[string]map[string]int{"alice": {}, "bob": {}}
	for _, r := range got["RECEIVED"] {
		role, body, _ := strings.Cut(r, " ")
		if m := received[role]; m != nil {
			m[body]++
		}
	}
	if _, ok := got["OK"]; !ok {
		t.Fatalf("script did not print OK")
	}

	// Enabled: alice resumable with an id and the server's timeout, bob not.
	enabled := map[string]string{}
	for _, e := range got["SM_ENABLED"] {
		role, attrs, _ := strings.Cut(e, " ")
		enabled[role] = attrs
	}
	if a := enabled["alice"]; !strings.Contains(a, "resume=true") || strings.Contains(a, "id=-") || strings.Contains(a, "max=-") {
		t.Errorf("alice's <enabled/>: %q, want resume=true with an id and a max", a)
	}
	if b := enabled["bob"]; b != "id=- resume=false max=-" {
		t.Errorf("bob's <enabled/>: %q, want no id, no resumption", b)
	}
	if len(got["ACK_SENT"]) == 0 {
		t.Errorf("the server never sent alice <r/>")
	}
	if f := got["SM_FAILED"]; len(f) > 0 {
		t.Errorf("stream management failed: %q", f)
	}

	// Resumed, as the same session.
	if len(got["RESUMED"]) != 1 {
		t.Fatalf("RESUMED lines: %q, want one", got["RESUMED"])
	}
	id := strings.TrimPrefix(strings.Fields(enabled["alice"])[0], "id=")
	if r := got["RESUMED"][0]; !strings.Contains(r, "previd="+id+" ") {
		t.Errorf("resumed %q, want previd=%s", r, id)
	}
	// The server handled exactly what alice sent before the cut (all of it
	// acknowledged, since the script waited for that).
	if c := got["CUT"]; len(c) == 1 {
		var handled, seq, last int
		if _, err := fmt.Sscanf(c[0], "alice %d %d %d", &handled, &seq, &last); err != nil || seq != last {
			t.Errorf("at the cut: %q, want last_ack = seq", c[0])
		} else if !strings.Contains(got["RESUMED"][0], fmt.Sprintf(" h=%d ", seq)) {
			t.Errorf("resumed %q, want the server's h=%d, what alice had sent", got["RESUMED"][0], seq)
		}
		if handled < before {
			t.Errorf("alice had handled %d stanzas at the cut, want at least the %d messages", handled, before)
		}
	} else {
		t.Errorf("CUT lines: %q, want one", c)
	}
	var bound []string
	for _, b := range got["BOUND"] {
		if role, jid, _ := strings.Cut(b, " "); role == "alice" {
			bound = append(bound, jid)
		}
	}
	if len(bound) != 1 {
		t.Errorf("alice bound %q, want one bind", bound)
	}
	final := map[string]string{}
	for _, f := range got["FINAL"] {
		role, rest, _ := strings.Cut(f, " ")
		final[role] = rest
	}
	if len(bound) == 1 && !strings.HasSuffix(final["alice"], "binds=1 jid="+bound[0]) {
		t.Errorf("alice at the end: %q, want binds=1 jid=%s", final["alice"], bound[0])
	}
	// Every stanza alice and bob sent was acknowledged (the script waits
	// for that): the plugin's seq and last_ack agree.
	for role, f := range final {
		var h, seq, last int
		if _, err := fmt.Sscanf(f, "handled=%d seq=%d last_ack=%d", &h, &seq, &last); err != nil || seq != last {
			t.Errorf("%s at the end: %q, want last_ack = seq", role, f)
		}
	}

	// Each message once.
	want := map[string][]string{"alice": {}, "bob": {}}
	for i := range before {
		want["alice"] = append(want["alice"], fmt.Sprintf("%s before %d", tag, i))
	}
	for i := range inflight {
		want["alice"] = append(want["alice"], fmt.Sprintf("%s inflight %d", tag, i))
	}
	for i := range away {
		want["alice"] = append(want["alice"], fmt.Sprintf("%s away %d", tag, i))
	}
	want["alice"] = append(want["alice"], tag+" after")
	for i := range replies {
		want["bob"] = append(want["bob"], fmt.Sprintf("%s reply %d", tag, i))
	}
	want["bob"] = append(want["bob"], tag+" done")
	for role, bodies := range want {
		for _, b := range bodies {
			if n := received[role][b]; n != 1 {
				t.Errorf("%s received %q %d times, want once", role, b, n)
			}
		}
		if len(received[role]) != len(bodies) {
			t.Errorf("%s received %d distinct messages, want %d: %v", role, len(received[role]), len(bodies), received[role])
		}
	}
}

// TestSlixmppCaps checks the server's XEP-0115 <c/> in its stream features
// (§6.3) with slixmpp 1.8.3's xep_0115, which handles the <c/> of the
// features after authentication the way it handles a contact's caps: it
// asks disco#info of node#ver, recomputes the verification string (§5.1)
// and stores it for the server only if it matches. The ver must also be the
// one slixmpp's generate_verstring computes from the server's disco#info
// without a node, and the node#ver answer must carry that node (§6.2). The
// test is skipped when no stream features carry <c/>.
func TestSlixmppCaps(t *testing.T) {
	requireSlixmpp(t)
	srv := servertest.Start(t)
	const alicePW = "caps-alice"
	alice := srv.AddUser("alice", alicePW)
	args := append(serverArgs(t, srv),
		"--alice-jid", alice, "--alice-password", alicePW,
		"--bob-jid", alice, "--bob-password", alicePW, // unused with --caps
		"--tag", "caps", "--caps",
		"--timeout", "60",
	)
	lines := runScript(t, 90*time.Second, "slixmpp_sm.py", withDebug(args, "SM_DEBUG")...)

	var features []string // "<hash> <node> <ver>", or "-"
	stored, computed := "", map[string][]string{}
	for _, line := range lines {
		word, rest, _ := strings.Cut(line, " ")
		switch word {
		case "FEATURES":
			_, c, _ := strings.Cut(rest, " ")
			features = append(features, c)
		case "CAPS_STORED":
			stored = rest
		case "CAPS_COMPUTED":
			which, r, _ := strings.Cut(rest, " ")
			computed[which] = strings.Fields(r)
		}
	}
	if !slices.Contains(lines, "OK") {
		t.Fatalf("script did not print OK")
	}
	if !slices.ContainsFunc(features, func(c string) bool { return c != "-" }) {
		t.Skipf("no stream features carry <c xmlns='http://jabber.org/protocol/caps'/>: %q", features)
	}
	last := features[len(features)-1]
	if last == "-" {
		t.Fatalf("the stream features after authentication carry no <c/> (slixmpp reads only those): %q", features)
	}
	for i, c := range features {
		if c != last {
			t.Errorf("stream features %d carry caps %q, the last ones %q", i+1, c, last)
		}
	}
	f := strings.Fields(last)
	if len(f) != 3 {
		t.Fatalf("caps %q: want hash, node and ver", last)
	}
	hash, node, ver := f[0], f[1], f[2]
	t.Logf("server caps: hash=%s node=%s ver=%s", hash, node, ver)
	if stored != ver {
		t.Errorf("slixmpp stored ver %q for the server, want %q: its own check of node#ver failed (run with SM_DEBUG=1 for its log)", stored, ver)
	}
	if r := computed["root"]; len(r) != 2 || r[0] != ver {
		t.Errorf("generate_verstring of the server's disco#info: %q, want %s", r, ver)
	}
	if n := computed["node"]; len(n) != 2 || n[0] != ver || n[1] != node+"#"+ver {
		t.Errorf("disco#info of node#ver: (ver node) %q, want %s %s#%s", n, ver, node, ver)
	}
}
