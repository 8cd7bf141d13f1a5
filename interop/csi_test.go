package interop_test

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/servertest"
)

// TestSlixmppCSI has slixmpp 1.8.3's XEP-0352 plugin (xep_0352) tell adhocd
// that alice's app is in the background, as a mobile app does, while her
// contact bob changes his presence and types. The server offers the csi
// stream feature (the plugin enables itself on it). While alice is
// inactive she gets nothing of bob's three presence updates and two
// chat-state-only messages for a second; when she says <active/> she gets
// only the last of each, bob's dnd presence and his paused state, each with
// a XEP-0203 <delay/> from the server stamped while she was inactive.
// Inactive again, bob's presence update and composing are held until his
// chat message with a body: that reaches her at once, while she is still
// inactive, right after the presence and the chat state it flushes (with
// their delays); the message itself has none.
func TestSlixmppCSI(t *testing.T) {
	requireSlixmpp(t)
	srv := servertest.Start(t)
	_, args := addAccounts(t, srv, "csi", "alice", "bob")
	srv.Befriend("alice", "bob")
	tag := "csi-" + randomHex(t, 6)
	body := randomBody(t)

	args = append(args, "--tag", tag, "--body", body, "--timeout", "30")
	start := time.Now().Add(-time.Second)
	lines := runScript(t, 45*time.Second, "slixmpp_csi.py", withDebug(args, "CSI_DEBUG")...)
	end := time.Now().Add(time.Second)

	if !slices.Contains(lines, "OK") {
		t.Fatal("script did not print OK")
	}
	if !slices.Contains(lines, "CSI_FEATURE offered True") {
		t.Errorf("the csi stream feature was not offered, or the plugin did not enable itself: want CSI_FEATURE offered True in\n%s", quoteLines(lines))
	}

	// GOT <phase> <kind> <state> <delay from|-> <stamp|-> <text|->, in the
	// order alice got them; stamps are checked apart.
	var got []string
	for _, line := range lines {
		rest, ok := strings.CutPrefix(line, "GOT ")
		if !ok {
			continue
		}
		f := strings.SplitN(rest, " ", 6)
		if len(f) != 6 {
			t.Fatalf("bad GOT line %q", line)
		}
		if f[4] != "-" {
			stamp, err := time.Parse(time.RFC3339Nano, f[4])
			if err != nil {
				t.Errorf("%q: the delay's stamp: %v", line, err)
			} else if stamp.Before(start) || stamp.After(end) {
				t.Errorf("%q: the delay is stamped %s, not while the test ran (%s to %s)", line, stamp, start, end)
			}
			f[4] = "stamp"
		}
		got = append(got, strings.Join(f, " "))
	}
	domain := srv.Domain().String()
	status := func(n int) string { return tag + " status " + strconv.Itoa(n) }
	want := []string{
		// Nothing while A-inactive; after <active/>, the last of each.
		"A-active presence dnd " + domain + " stamp " + status(3),
		"A-active chatstate paused " + domain + " stamp -",
		// The body message flushes what is held, and goes at once.
		"B-inactive presence chat " + domain + " stamp " + status(4),
		"B-inactive chatstate composing " + domain + " stamp -",
		"B-inactive message active - - " + body,
	}
	if !slices.Equal(got, want) {
		t.Errorf("alice got, from bob,\n%swant\n%s", quoteLines(got), quoteLines(want))
	}
	for _, line := range lines {
		if ms, ok := strings.CutPrefix(line, "LATENCY "); ok {
			// At once: not held for a state change that never comes.
			if n, err := strconv.Atoi(ms); err != nil || n > 2000 {
				t.Errorf("bob's message took %s ms to reach the inactive alice", ms)
			}
		}
	}
}
