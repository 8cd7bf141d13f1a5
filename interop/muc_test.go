package interop_test

import (
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/servertest"
)

// TestSlixmppMUC runs slixmpp 1.8.3's own XEP-0045 plugin (xep_0045)
// against adhocd's group chat service: the owner's join creates a room
// (status 201, with 110 for its own presence), its configuration form is
// read and submitted, the other client joins and sees the owner, group
// chat messages go both ways from the senders' room JIDs, and the owner
// kicks the other, who sees status 307 (with 110).
func TestSlixmppMUC(t *testing.T) {
	requireSlixmpp(t)
	srv := servertest.Start(t)
	body := randomBody(t)
	_, args := addAccounts(t, srv, "muc", "owner", "other")
	args = append(args, "--room", "tea@conference.localhost", "--body", body, "--timeout", "40")
	lines := runScript(t, 60*time.Second, "slixmpp_muc.py", args...)
	var got []string
	for _, line := range lines {
		for _, p := range []string{"CREATED ", "CONFIGURED ", "JOINED ", "GROUPCHAT ", "KICKED ", "OK"} {
			if strings.HasPrefix(line, p) {
				got = append(got, line)
			}
		}
	}
	want := []string{
		"CREATED 110,201",
		"CONFIGURED http://jabber.org/protocol/muc#roomconfig",
		"JOINED bob alice,bob",
		"GROUPCHAT other alice " + body,
		"GROUPCHAT owner bob hello from bob",
		"KICKED 110,307",
		"OK",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("the script printed\n%s\nwant\n%s", quoteLines(got), quoteLines(want))
	}
}
