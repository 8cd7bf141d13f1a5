package interop_test

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/servertest"
)

// TestProfanityMUC drives Profanity 0.13 (Debian's profanity, on
// libstrophe) in a terminal into a room as its users do: a Go occupant has
// made the room, alice types /join room@conference.localhost, Profanity
// opens the room's window and says she joined; the Go occupant sees her
// enter, gets what she types in the window as a groupchat message from her
// room JID, and what it sends shows in her window under its nickname; the
// window's occupant list shows them both with their roles. Then alice
// /joins a room that does not exist: Profanity tells her it was created
// locked, she types /room accept (Profanity submits the instant room's
// empty form), Profanity says it is unlocked, and the Go occupant can
// enter it and sees her as its owner.
func TestProfanityMUC(t *testing.T) {
	requireProgram(t, "profanity", "profanity")
	u := terminalUser(t)
	srv := servertest.Start(t)
	alicePW, bobPW := "alice-"+randomHex(t, 6), "bob-"+randomHex(t, 6)
	srv.AddUser("alice", alicePW)
	srv.AddUser("bob", bobPW)
	room := "tea@" + conferenceDomain
	bob, _ := enterMUC(t, srv, "bob", bobPW, room, "bob")

	start := time.Now()
	p := startProfanity(t, srv, u, "alice", alicePW)
	p.enter("/join " + room)
	// Profanity's nickname in a room is the account's localpart.
	entered := bob.presenceOf("alice", false)
	if entered.User == nil || entered.User.Item.Role != "participant" || entered.OccupantID == nil {
		t.Errorf("bob saw alice enter with %+v, want a participant with an occupant id", entered)
	}
	p.waitFor("-> You have joined the room as alice", 15*time.Second)

	hello := randomBody(t)
	p.enter(hello)
	if m := bob.groupchat("alice", hello); m.OccupantID == nil {
		t.Errorf("bob got alice's message without an occupant id: %+v", m)
	}
	p.waitUntil("alice's own message in the room's window", 10*time.Second, func(s string) bool {
		return regexp.MustCompile(`alice: ` + regexp.QuoteMeta(hello)).MatchString(s)
	})

	reply := randomBody(t)
	bob.say(reply)
	bob.groupchat("bob", reply)
	s := p.waitUntil("bob's message in the room's window", 10*time.Second, func(s string) bool {
		return regexp.MustCompile(`bob: ` + regexp.QuoteMeta(reply)).MatchString(s)
	})
	// The window's title is the room's name (its localpart here), and
	// its occupant list shows bob, the owner, among the moderators and
	// alice among the participants.
	if title, _, _ := strings.Cut(s, "\n"); !strings.HasPrefix(strings.TrimSpace(title), "tea ") {
		p.fail("the window's title %q is not the room's name, tea", strings.TrimSpace(title))
	}
	roster := regexp.MustCompile(`Moderators\n[^\n]* bob\n[^\n]*Participants\n[^\n]* alice\n`)
	if !roster.MatchString(trimScreen(s)) {
		p.fail("the room's occupant list does not show bob among the moderators and alice among the participants")
	}

	// A room that does not exist: /join creates it locked, Profanity says
	// so, and /room accept (an instant room) opens it to others.
	created := "scones@" + conferenceDomain
	p.enter("/join " + created)
	p.waitFor("-> You have joined the room as alice, role: moderator, affiliation: owner", 15*time.Second)
	p.waitFor("Room locked, requires configuration.", 10*time.Second)
	p.enter("/room accept")
	p.waitFor("Room unlocked.", 10*time.Second)
	other, _ := enterMUC(t, srv, "bob", bobPW, created, "bob")
	if a, ok := other.present["alice"]; !ok || a.User == nil || a.User.Item.Affiliation != "owner" || a.User.Item.Role != "moderator" {
		t.Errorf("bob entered %s and saw alice as %+v, want its owner, a moderator", created, a)
	}
	t.Logf("Profanity joined, chatted and made a room in %s", time.Since(start).Round(time.Millisecond))
}
