package interop_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/servertest"
)

// mucLineWords are the lines of slixmpp_muc_features.py the test reads;
// the rest (common.Client's, the delays slixmpp's xep_0045 prints) are
// not compared.
var mucLineWords = []string{"CREATED", "JOINED", "REFUSED", "BANNED", "LIST", "HISTORY", "LIVE", "INVITE", "SUBJECT", "FEATURES", "OK"}

// runMUCScenario runs one scenario of slixmpp_muc_features.py against srv
// in room (a new room of conference.localhost) and returns the lines the
// test reads, in order.
func runMUCScenario(t *testing.T, args []string, scenario, room string, extra ...string) []string {
	t.Helper()
	args = append(append([]string{}, args...), "--scenario", scenario, "--room", room, "--timeout", "40")
	args = append(args, extra...)
	var got []string
	for _, line := range runScript(t, 60*time.Second, "slixmpp_muc_features.py", withDebug(args, "MUC_DEBUG")...) {
		word, _, _ := strings.Cut(line, " ")
		if slices.Contains(mucLineWords, word) {
			got = append(got, line)
		}
	}
	return got
}

// expectMUCLines fails the test unless got equals want.
func expectMUCLines(t *testing.T, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("the script printed\n%swant\n%s", quoteLines(got), quoteLines(want))
	}
}

// mucHistoryItem is one message of a HISTORY line: a message of the
// room's history as slixmpp's join_muc_wait collected it.
type mucHistoryItem struct {
	From      string `json:"from"`
	Body      string `json:"body"`
	DelayFrom string `json:"delay_from"`
	// Stamp is the delay's stamp as slixmpp's xep_0203 read it, StampAttr
	// the attribute itself; StampError why slixmpp could not read it.
	Stamp      string `json:"stamp"`
	StampAttr  string `json:"stamp_attr"`
	StampError string `json:"stamp_error"`
}

// mucInvite is an INVITE line: what the invitee's plugin read of an
// invitation.
type mucInvite struct {
	Kind     string  `json:"kind"`
	From     string  `json:"from"`
	Room     string  `json:"room"`
	Inviter  *string `json:"inviter"`
	Reason   string  `json:"reason"`
	Password *string `json:"password"`
}

// mucSubjectJSON is the JSON of a subject as the script prints it: compact,
// keys sorted (as json.Marshal writes a map).
func mucSubjectJSON(from, subject string) string {
	b, err := json.Marshal(map[string]string{"from": from, "subject": subject})
	if err != nil {
		panic(err)
	}
	return string(b)
}

// TestSlixmppMUCFeatures drives slixmpp 1.8.3's own XEP-0045 plugin
// (xep_0045) and its XEP-0249 plugin (xep_0249) through the group chat
// features a slixmpp bot or app uses, one scenario of
// testdata/slixmpp_muc_features.py per subtest, on one server, each in a
// room of its own that alice creates and configures:
//
//   - ban: bob, banned with a reason, sees 301 and the reason; the outcast
//     list holds his bare JID; his rejoin is refused with forbidden, and
//     once the ban is lifted he joins.
//   - history: messages sent before a join arrive with a XEP-0203 delay
//     from the room, as many as maxstanzas asks (2, then 0), all of them
//     without a <history/>, oldest first, from their senders' room JIDs;
//     a message sent after the join comes without a delay.
//   - invitations: in a members-only room, a XEP-0249 direct invitation
//     fires the invitee's groupchat_direct_invite with the room's JID, and
//     a mediated one (XEP-0045 §7.8.2) comes from the room with the
//     inviter and reason, fires groupchat_invite and makes the invitee a
//     member, who then joins.
//   - subject: the empty subject at join, a change seen by every occupant
//     from its author's room JID, a participant's change refused, and the
//     subject given to a later joiner.
//   - password: the room shows muc_passwordprotected, refuses a join
//     without the password and with a wrong one (not-authorized), takes
//     one with it, and a mediated invitation carries the password.
func TestSlixmppMUCFeatures(t *testing.T) {
	requireSlixmpp(t)
	srv := servertest.Start(t)
	jids, args := addAccounts(t, srv, "muc", "alice", "bob", "carol")
	alice, bob := jids[0], jids[1]
	body := randomBody(t)
	args = append(args, "--body", body)

	t.Run("ban", func(t *testing.T) {
		room := "ban@" + conferenceDomain
		got := runMUCScenario(t, args, "ban", room)
		empty := mucSubjectJSON(room, "")
		expectMUCLines(t, got, []string{
			"CREATED 110,201",
			"JOINED bob 110 alice,bob " + empty,
			`BANNED bob {"actor":"alice","codes":"110,301","reason":"spam"}`,
			`BANNED alice {"actor":"alice","codes":"301","reason":"spam"}`,
			"LIST outcast " + bob,
			"REFUSED bob-banned forbidden auth",
			"LIST outcast -",
			"JOINED bob-unbanned 110 alice,bob " + empty,
			"OK",
		})
	})

	t.Run("history", func(t *testing.T) {
		room := "history@" + conferenceDomain
		before := time.Now().Add(-time.Second)
		got := runMUCScenario(t, args, "history", room)
		after := time.Now().Add(time.Second)
		histories := map[string][]mucHistoryItem{}
		var rest []string
		for _, line := range got {
			if word, rest, _ := strings.Cut(line, " "); word == "HISTORY" {
				label, h := cutJSON[[]mucHistoryItem](t, word, rest)
				histories[label] = h
				continue
			}
			rest = append(rest, line)
		}
		empty := mucSubjectJSON(room, "")
		liveJSON, _ := json.Marshal(map[string]any{"from": room + "/alice", "body": body + " live", "delayed": false})
		expectMUCLines(t, rest, []string{
			"CREATED 110,201",
			"JOINED bob 110 alice,bob " + empty,
			"JOINED carol-maxstanzas-0 110 alice,bob,carol " + empty,
			"JOINED carol-all 110 alice,bob,carol " + empty,
			"LIVE bob " + string(liveJSON),
			"OK",
		})
		for label, want := range map[string][]string{
			"bob-maxstanzas-2":   {body + " 2", body + " 3"},
			"carol-maxstanzas-0": {},
			"carol-all":          {body + " 1", body + " 2", body + " 3"},
		} {
			h, ok := histories[label]
			if !ok {
				t.Errorf("no HISTORY %s", label)
				continue
			}
			bodies := []string{}
			var last time.Time
			for _, m := range h {
				bodies = append(bodies, m.Body)
				// The stamp as sent; then as slixmpp's xep_0203 reads it.
				stamp, err := time.Parse(time.RFC3339Nano, m.StampAttr)
				if m.From != room+"/alice" || m.DelayFrom != room || err != nil || stamp.Before(before.Truncate(time.Millisecond)) || stamp.After(after) || stamp.Before(last) {
					t.Errorf("%s: history message %+v (stamp: %v), want one from %s/alice delayed by %s, stamped in order between %s and %s",
						label, m, err, room, room, before.Format(time.RFC3339), after.Format(time.RFC3339))
				}
				last = stamp
				if m.StampError != "" {
					t.Errorf("%s: slixmpp could not read the stamp %q: %s", label, m.StampAttr, m.StampError)
				} else if read, err := time.Parse(time.RFC3339Nano, m.Stamp); err != nil || read.Sub(stamp).Abs() > time.Millisecond {
					t.Errorf("%s: slixmpp read the stamp %q as %q (%v)", label, m.StampAttr, m.Stamp, err)
				}
			}
			if !slices.Equal(bodies, want) {
				t.Errorf("%s: history %q, want %q", label, bodies, want)
			}
		}
	})

	t.Run("invitations", func(t *testing.T) {
		room := "invite@" + conferenceDomain
		got := runMUCScenario(t, args, "invite", room)
		invites := map[string]mucInvite{}
		var rest []string
		for _, line := range got {
			if word, r, _ := strings.Cut(line, " "); word == "INVITE" {
				label, inv := cutJSON[mucInvite](t, word, r)
				invites[label] = inv
				continue
			}
			rest = append(rest, line)
		}
		expectMUCLines(t, rest, []string{
			"CREATED 110,201",
			"REFUSED carol-not-member registration-required auth",
			"LIST member " + bob,
			"JOINED bob 110 alice,bob " + mucSubjectJSON(room, ""),
			"OK",
		})
		direct, mediated := invites["carol"], invites["bob"]
		if direct.Kind != "direct" || direct.Room != room || !strings.HasPrefix(direct.From, alice+"/") ||
			direct.Reason != "direct "+body || direct.Password != nil {
			t.Errorf("carol's XEP-0249 invitation: %+v, want a direct invitation to %s from %s/… with the reason", direct, room, alice)
		}
		if mediated.Kind != "mediated" || mediated.From != room || mediated.Room != room || mediated.Inviter == nil ||
			!strings.HasPrefix(*mediated.Inviter, alice+"/") || mediated.Reason != "mediated "+body || mediated.Password != nil {
			t.Errorf("bob's mediated invitation: %+v, want one from %s naming %s/… as the inviter, with the reason", mediated, room, alice)
		}
	})

	t.Run("subject", func(t *testing.T) {
		room := "subject@" + conferenceDomain
		got := runMUCScenario(t, args, "subject", room)
		set := mucSubjectJSON(room+"/alice", "subject "+body)
		expectMUCLines(t, got, []string{
			"CREATED 110,201",
			"JOINED bob 110 alice,bob " + mucSubjectJSON(room, ""),
			"SUBJECT alice " + set,
			"SUBJECT bob " + set,
			"REFUSED bob-subject forbidden auth",
			"JOINED carol 110 alice,bob,carol " + set,
			"OK",
		})
	})

	t.Run("password", func(t *testing.T) {
		room := "secret@" + conferenceDomain
		secret := "pw " + randomHex(t, 6)
		got := runMUCScenario(t, args, "password", room, "--room-password", secret)
		invites := map[string]mucInvite{}
		var rest []string
		for _, line := range got {
			word, r, _ := strings.Cut(line, " ")
			switch word {
			case "INVITE":
				label, inv := cutJSON[mucInvite](t, word, r)
				invites[label] = inv
				continue
			case "FEATURES":
				_, features, _ := strings.Cut(r, " ")
				fs := strings.Split(features, ",")
				if !slices.Contains(fs, "muc_passwordprotected") || slices.Contains(fs, "muc_unsecured") {
					t.Errorf("the room's features %q, want muc_passwordprotected and not muc_unsecured", features)
				}
				continue
			}
			rest = append(rest, line)
		}
		empty := mucSubjectJSON(room, "")
		expectMUCLines(t, rest, []string{
			"CREATED 110,201",
			"REFUSED bob-no-password not-authorized auth",
			"REFUSED bob-wrong-password not-authorized auth",
			"JOINED bob 110 alice,bob " + empty,
			"JOINED carol 110 alice,bob,carol " + empty,
			"OK",
		})
		inv, ok := invites["carol"]
		if !ok || inv.Kind != "mediated" || inv.Room != room || inv.Password == nil || *inv.Password != secret {
			t.Errorf("carol's invitation: %+v, want a mediated one to %s carrying the password", inv, room)
		}
	})
}
