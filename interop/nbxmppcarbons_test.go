package interop_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/servertest"
)

// nbMessage is a message as nbxmpp_carbons.py printed it from the
// properties nbxmpp parsed: a MESSAGE (private and no_copy set) or, once
// nbxmpp unwrapped it, the message a CARBON forwards (is_sent, is_received
// set).
type nbMessage struct {
	IsSent     bool   `json:"is_sent"`
	IsReceived bool   `json:"is_received"`
	Type       string `json:"type"`
	JID        string `json:"jid"` // the remote JID nbxmpp chose
	From       string `json:"from"`
	To         string `json:"to"`
	Body       string `json:"body"`
	Private    bool   `json:"private"`
	NoCopy     bool   `json:"no_copy"`
}

// TestNbxmppCarbons has nbxmpp 4.2.2 (Debian's python3-nbxmpp) use adhocd's
// Message Carbons as Gajim 1.7 does: alice's desk and phone sessions each
// ask the server's disco#info at login, find urn:xmpp:carbons:2 there and
// send <enable/> addressed to nobody, as Gajim's Carbons module does; bob
// is a plain nbxmpp client. The phone sends bob a chat message and bob
// sends one to the phone's full JID: desk gets a sent carbon and a received
// carbon, which nbxmpp's dispatcher accepts (the wrapper is from alice's
// bare JID) and unwraps, so that Gajim's message handler sees
// carbon.is_sent with bob's bare JID as the remote JID, and
// carbon.is_received from bob's full JID, each with the original's from,
// to, type and body. Messages marked <private xmlns='urn:xmpp:carbons:2'/>
// (XEP-0280 §8), alone or with <no-copy xmlns='urn:xmpp:hints'/>, either
// way, are delivered with the marks and copied to nobody: desk's next
// carbons are of the ordinary messages sent after them. Nobody else gets a
// carbon, and desk gets nothing but carbons.
func TestNbxmppCarbons(t *testing.T) {
	requireNbxmpp(t)
	srv := servertest.Start(t)
	jids, args := addAccounts(t, srv, "nbcarbons", "alice", "bob")
	alice, bob := jids[0], jids[1]
	tag := "nbcarbons-" + randomHex(t, 6)

	args = append(args, "--tag", tag, "--timeout", "40")
	lines := runScript(t, 60*time.Second, "nbxmpp_carbons.py", withDebug(args, "CARBONS_DEBUG")...)

	logins := map[string]string{}
	var disco, enabled, timeouts, errs []string
	messages := map[string][]nbMessage{}
	carbons := map[string][]nbMessage{}
	ok := scanLines(lines, func(word, rest string) {
		switch word {
		case "LOGIN":
			role, jid, _ := strings.Cut(rest, " ")
			logins[role] = jid
		case "DISCO":
			disco = append(disco, rest)
		case "ENABLED":
			enabled = append(enabled, rest)
		case "TIMEOUT":
			timeouts = append(timeouts, rest)
		case "ERROR":
			errs = append(errs, rest)
		case "MESSAGE":
			role, m := cutJSON[nbMessage](t, word, rest)
			messages[role] = append(messages[role], m)
		case "CARBON":
			role, m := cutJSON[nbMessage](t, word, rest)
			carbons[role] = append(carbons[role], m)
		}
	})
	if !ok {
		t.Error("script did not print OK")
	}
	for _, e := range errs {
		t.Errorf("nbxmpp: %s", e)
	}
	for _, w := range timeouts {
		t.Errorf("not seen in time: %s", w)
	}

	desk, phone := alice+"/desk", alice+"/phone"
	if logins["desk"] != desk || logins["phone"] != phone || !strings.HasPrefix(logins["bob"], bob+"/") {
		t.Fatalf("logins %v, want desk %s, phone %s and bob %s/…", logins, desk, phone, bob)
	}
	bobFull := logins["bob"]
	// Gajim finds carbons among the server's features and enables them.
	domain := srv.Domain().String()
	if want := []string{"desk " + domain + " carbons", "phone " + domain + " carbons"}; !slices.Equal(disco, want) {
		t.Errorf("disco %q, want %q", disco, want)
	}
	if want := []string{"desk result", "phone result"}; !slices.Equal(enabled, want) {
		t.Errorf("enable answered %q, want %q", enabled, want)
	}

	// Desk's carbons, in order, as nbxmpp unwrapped them.
	sent := func(body string) nbMessage {
		return nbMessage{IsSent: true, Type: "chat", JID: bob, From: phone, To: bob, Body: tag + " " + body}
	}
	received := func(body string) nbMessage {
		return nbMessage{IsReceived: true, Type: "chat", JID: bobFull, From: bobFull, To: phone, Body: tag + " " + body}
	}
	want := []nbMessage{sent("from-phone"), received("to-phone"), sent("from-phone last"), received("to-phone last")}
	if !slices.Equal(carbons["desk"], want) {
		t.Errorf("desk's carbons:\n%+v\nwant\n%+v", carbons["desk"], want)
	}
	for _, role := range []string{"phone", "bob"} {
		if len(carbons[role]) != 0 {
			t.Errorf("%s got carbons: %+v", role, carbons[role])
		}
	}
	if len(messages["desk"]) != 0 {
		t.Errorf("desk got messages that are not carbons: %+v", messages["desk"])
	}

	// What phone and bob got: everything sent, marks unchanged.
	msg := func(from, to, body string, private, noCopy bool) nbMessage {
		return nbMessage{Type: "chat", JID: from, From: from, To: to, Body: tag + " " + body, Private: private, NoCopy: noCopy}
	}
	for role, want := range map[string][]nbMessage{
		"bob": {
			msg(phone, bob, "from-phone", false, false),
			msg(phone, bob, "from-phone private", true, false),
			msg(phone, bob, "from-phone private+no-copy", true, true),
			msg(phone, bob, "from-phone last", false, false),
		},
		"phone": {
			msg(bobFull, phone, "to-phone", false, false),
			msg(bobFull, phone, "to-phone private", true, false),
			msg(bobFull, phone, "to-phone private+no-copy", true, true),
			msg(bobFull, phone, "to-phone last", false, false),
		},
	} {
		if !slices.Equal(messages[role], want) {
			t.Errorf("%s got:\n%+v\nwant\n%+v", role, messages[role], want)
		}
	}
}
