package interop_test

import (
	"testing"
	"time"
)

// TestConverseMUC drives Converse.js 14 (npm converse.js) in headless
// Chromium over XMPP over WebSocket (RFC 7395) into a group chat
// (js/converse_muc.mjs): a room in auto_join_rooms that does not exist yet,
// which Converse creates at login as its users do (disco#info of the room,
// item-not-found, the join presence, 201, the instant room's empty form).
// Once its room view shows that it entered, a Go occupant enters (so the
// room is unlocked) and sees alice as its owner and a moderator; Converse's
// occupant list shows them both, what alice types in the view reaches the
// Go occupant as a groupchat message from her room JID, and the Go
// occupant's answer renders in the view under its nickname. A screenshot
// is kept in the test's artifact directory (go test -artifacts).
func TestConverseMUC(t *testing.T) {
	rig := startConverseRig(t, nil, nil)
	srv := rig.srv
	const alicePW, bobPW = "converse-muc-alice", "converse-muc-bob"
	alice := srv.AddUser("alice", alicePW)
	srv.AddUser("bob", bobPW)
	room := "lounge@" + conferenceDomain
	body, reply := randomBody(t), randomBody(t)

	start := time.Now()
	s := rig.start(t, 60*time.Second, "converse_muc.mjs", alice, alicePW,
		"--room", room,
		"--nick", "alice",
		"--body", body,
		"--reply", reply,
		"--reply-nick", "bob",
	)
	lines, ok := s.linesUntil("ENTERED", 60*time.Second)
	if !ok {
		s.finish()
		t.Fatalf("Converse did not enter the room; it printed %q", lines)
	}
	bob, _ := enterMUC(t, srv, "bob", bobPW, room, "bob")
	if a, ok := bob.present["alice"]; !ok || a.User == nil || a.User.Item.Affiliation != "owner" || a.User.Item.Role != "moderator" {
		t.Errorf("bob entered and saw alice as %+v, want the room's owner, a moderator", a)
	}
	if m := bob.groupchat("alice", body); m.OccupantID == nil || m.Delay != nil {
		t.Errorf("bob got Converse's message %+v, want it live with an occupant id", m)
	}
	bob.say(reply)
	lines = append(lines, s.finish()...)
	t.Logf("Converse.js ran for %s; screenshot in %s", time.Since(start).Round(time.Millisecond), rig.shots)

	got := rig.facts(t, lines, "converse-muc.png")
	if e := got["ENTERED"]; e != room+" alice" {
		t.Errorf("Converse entered %q, want %s as alice", e, room)
	}
	if o := got["OCCUPANTS"]; o != "alice,bob" {
		t.Errorf("the room's occupant list shows %q, want alice,bob", o)
	}
	_, shown := cutJSON[struct{ Author, Text string }](t, "SHOWN", "- "+got["SHOWN"])
	if shown.Author != "bob" || shown.Text != reply {
		t.Errorf("the room's view shows %+v, want bob's %q", shown, reply)
	}
}
