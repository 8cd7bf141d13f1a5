package interop_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/servertest"
)

// TestSlixmppBlocking runs slixmpp 1.8.3's own XEP-0191 plugin (xep_0191)
// against adhocd: the blocker's get_blocked() finds an empty list, block()
// of the other account is answered and pushed to the blocker's session
// (which asked for the list), get_blocked() lists it; the blocked client's
// chat message comes back as service-unavailable and never reaches the
// blocker, the blocker's own message to it as not-acceptable with
// <blocked/>; after unblock() (pushed too) the blocked client's next message
// arrives.
func TestSlixmppBlocking(t *testing.T) {
	requireSlixmpp(t)
	srv := servertest.Start(t)
	jids, args := addAccounts(t, srv, "blocking", "blocker", "blocked")
	blocked := jids[1]
	body := randomBody(t)
	args = append(args, "--body", body, "--timeout", "40")
	lines := runScript(t, 60*time.Second, "slixmpp_blocking.py", args...)

	// common.Client's login lines (slixmpp's -PLUS refusals over TLS 1.3,
	// see TestSlixmppMessage) are not this test's.
	var got []string
	for _, line := range lines {
		if !strings.HasPrefix(line, "MECHANISM ") && !strings.HasPrefix(line, "AUTH_FAILED") {
			got = append(got, line)
		}
	}
	list := `["` + blocked + `"]`
	want := []string{
		"BLOCKLIST_BEFORE []",
		"BLOCKED",
		"PUSH block " + list,
		"BLOCKLIST " + list,
		"ERROR service-unavailable cancel",
		"NOTHING_WHILE_BLOCKED",
		"BLOCKER_ERROR not-acceptable blocked",
		"UNBLOCKED",
		"PUSH unblock " + list,
		"RECEIVED " + body,
		"OK",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("the script printed\n%s\nwant\n%s", quoteLines(got), quoteLines(want))
	}
}

func quoteLines(lines []string) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString("  " + strconv.Quote(l) + "\n")
	}
	return b.String()
}
