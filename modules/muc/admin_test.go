package muc_test

import (
	"slices"
	"testing"

	"github.com/adhocd/adhocd/modules/muc"
	"github.com/adhocd/adhocd/servertest"
)

// admin sends a muc#admin set of items and returns the answer.
func (c *client) admin(name, items string) *servertest.Node {
	c.t.Helper()
	return c.iq("set", room(name), `<query xmlns='`+nsAdmin+`'>`+items+`</query>`)
}

// threeInRoom has alice own room r and bob and carol in it.
func threeInRoom(t *testing.T, config ...string) (alice, bob, carol *client) {
	e := newEnv(t, muc.Options{})
	alice = e.login("alice", "laptop")
	bob = e.login("bob", "phone")
	carol = e.login("carol", "pc")
	alice.create("r", "alice", config...)
	bob.join("r", "bob", "")
	carol.join("r", "carol", "")
	bob.next("carol entering", presenceFrom(occ("r", "carol"), ""))
	alice.next("carol entering", presenceFrom(occ("r", "carol"), ""))
	return alice, bob, carol
}

// TestKick: a moderator kicks a participant with a reason: everyone sees
// it leave with 307, the actor and the reason, the kicked one with 110.
func TestKick(t *testing.T) {
	alice, bob, carol := threeInRoom(t)
	if a := alice.admin("r", `<item nick='bob' role='none'><reason>rude</reason></item>`); a.Attr["type"] != "result" {
		t.Fatalf("kick: %s", a.Canon())
	}
	for _, c := range []*client{alice, bob, carol} {
		p := c.next("bob kicked", presenceFrom(occ("r", "bob"), "unavailable"))
		it := item(p)
		if !slices.Contains(statuses(p), "307") || it.Attr["role"] != "none" || child(it, nsUser, "reason").Text != "rude" ||
			child(it, nsUser, "actor").Attr["nick"] != "alice" {
			t.Fatalf("%s: %s", c.jid, p.Canon())
		}
		if self := slices.Contains(statuses(p), "110"); self != (c == bob) {
			t.Fatalf("%s: 110 %v: %s", c.jid, self, p.Canon())
		}
	}
	bob.say("r", "still?")
	wantCond(t, "the kicked one speaking", bob.next("error", func(s *servertest.Node) bool { return s.Attr["type"] == "error" }), "modify not-acceptable")
}

// TestKickRules: a participant kicks no one (forbidden); no one kicks an
// owner or admin (not-allowed); a nickname no one has is item-not-found.
func TestKickRules(t *testing.T) {
	alice, bob, _ := threeInRoom(t)
	wantCond(t, "a participant kicking", bob.admin("r", `<item nick='carol' role='none'/>`), "auth forbidden")
	alice.result("set", room("r"), `<query xmlns='`+nsAdmin+`'><item affiliation='admin' jid='bob@localhost'/></query>`)
	wantCond(t, "an admin kicking the owner", bob.admin("r", `<item nick='alice' role='none'/>`), "cancel not-allowed")
	wantCond(t, "the owner kicking an admin", alice.admin("r", `<item nick='bob' role='none'/>`), "cancel not-allowed")
	wantCond(t, "kicking no one", alice.admin("r", `<item nick='dave' role='none'/>`), "cancel item-not-found")
}

// TestVoice: in a moderated room a moderator gives a visitor voice, who may
// then speak, and takes it back.
func TestVoice(t *testing.T) {
	alice, bob, carol := threeInRoom(t, "muc#roomconfig_moderatedroom=1")
	alice.result("set", room("r"), `<query xmlns='`+nsAdmin+`'><item nick='bob' role='participant'/></query>`)
	carol.next("bob's new role", func(s *servertest.Node) bool {
		return isPresence(s, occ("r", "bob"), "") && item(s).Attr["role"] == "participant"
	})
	bob.say("r", "thanks")
	carol.heard("r", "bob", "thanks")
	wantCond(t, "a participant taking voice", bob.admin("r", `<item nick='carol' role='visitor'/>`), "auth forbidden")
	alice.result("set", room("r"), `<query xmlns='`+nsAdmin+`'><item nick='bob' role='visitor'/></query>`)
	bob.next("own new role", func(s *servertest.Node) bool {
		return isPresence(s, occ("r", "bob"), "") && item(s).Attr["role"] == "visitor"
	})
	bob.say("r", "again")
	wantCond(t, "a visitor again", bob.next("error", func(s *servertest.Node) bool { return s.Attr["type"] == "error" }), "auth forbidden")
}

// TestModeratorRole: admins give and take moderation; a moderator who is
// a participant then kicks participants but not admins.
func TestModeratorRole(t *testing.T) {
	alice, bob, carol := threeInRoom(t)
	alice.result("set", room("r"), `<query xmlns='`+nsAdmin+`'><item nick='bob' role='moderator'/></query>`)
	wantCond(t, "a moderator giving moderation", bob.admin("r", `<item nick='carol' role='moderator'/>`), "auth forbidden")
	wantCond(t, "a participant's moderator kicking the owner", bob.admin("r", `<item nick='alice' role='none'/>`), "cancel not-allowed")
	if a := bob.admin("r", `<item nick='carol' role='none'/>`); a.Attr["type"] != "result" {
		t.Fatalf("kick by a moderator: %s", a.Canon())
	}
	carol.next("kicked", presenceFrom(occ("r", "carol"), "unavailable"))
}

// TestBan: an admin bans by JID: the user is removed (301) and cannot come
// back; the outcast list has it.
func TestBan(t *testing.T) {
	alice, bob, carol := threeInRoom(t)
	alice.result("set", room("r"), `<query xmlns='`+nsAdmin+`'><item affiliation='outcast' jid='bob@localhost'><reason>spam</reason></item></query>`)
	for _, c := range []*client{alice, bob, carol} {
		p := c.next("bob banned", presenceFrom(occ("r", "bob"), "unavailable"))
		if !slices.Contains(statuses(p), "301") || item(p).Attr["affiliation"] != "outcast" {
			t.Fatalf("%s: %s", c.jid, p.Canon())
		}
	}
	if got := bob.joinErr("r", "bob", ""); got != "auth forbidden" {
		t.Fatalf("the banned one entering: %q", got)
	}
	l := alice.result("get", room("r"), `<query xmlns='`+nsAdmin+`'><item affiliation='outcast'/></query>`)
	var jids []string
	for _, k := range child(l, nsAdmin, "query").Kids {
		jids = append(jids, k.Attr["jid"])
	}
	if !slices.Equal(jids, []string{"bob@localhost"}) {
		t.Fatalf("outcasts %q", jids)
	}
}

// TestAffiliationRules: members and participants change no affiliation;
// admins manage members and outcasts but not admins and owners; the last
// owner cannot give up ownership; a request is applied whole or not at all.
func TestAffiliationRules(t *testing.T) {
	alice, bob, carol := threeInRoom(t)
	wantCond(t, "a participant banning", bob.admin("r", `<item affiliation='outcast' jid='carol@localhost'/>`), "auth forbidden")
	alice.result("set", room("r"), `<query xmlns='`+nsAdmin+`'><item affiliation='admin' jid='bob@localhost'/></query>`)
	carol.next("bob the admin, a moderator", func(s *servertest.Node) bool {
		return isPresence(s, occ("r", "bob"), "") && item(s).Attr["affiliation"] == "admin" && item(s).Attr["role"] == "moderator"
	})
	wantCond(t, "an admin making an owner", bob.admin("r", `<item affiliation='owner' jid='carol@localhost'/>`), "cancel not-allowed")
	wantCond(t, "an admin banning the owner", bob.admin("r", `<item affiliation='outcast' jid='alice@localhost'/>`), "cancel not-allowed")
	if a := bob.admin("r", `<item affiliation='member' jid='carol@localhost'/>`); a.Attr["type"] != "result" {
		t.Fatalf("an admin making a member: %s", a.Canon())
	}
	wantCond(t, "the last owner leaving ownership", alice.admin("r", `<item affiliation='admin' jid='alice@localhost'/>`), "cancel conflict")
	wantCond(t, "a request with one refused item",
		bob.admin("r", `<item affiliation='outcast' jid='dave@localhost'/><item affiliation='owner' jid='bob@localhost'/>`), "cancel not-allowed")
	l := alice.result("get", room("r"), `<query xmlns='`+nsAdmin+`'><item affiliation='outcast'/></query>`)
	if k := child(l, nsAdmin, "query").Kids; len(k) != 0 {
		t.Fatalf("half a refused request applied: %s", l.Canon())
	}
	alice.result("set", room("r"), `<query xmlns='`+nsAdmin+`'><item affiliation='owner' jid='bob@localhost'/></query>`)
	alice.result("set", room("r"), `<query xmlns='`+nsAdmin+`'><item affiliation='none' jid='alice@localhost'/></query>`)
	wantCond(t, "a participant asking for the member list", carol.iq("get", room("r"), `<query xmlns='`+nsAdmin+`'><item affiliation='member'/></query>`), "auth forbidden")
}

// TestAdminLists: admins list members; moderators list roles.
func TestAdminLists(t *testing.T) {
	alice, _, _ := threeInRoom(t)
	alice.result("set", room("r"), `<query xmlns='`+nsAdmin+`'><item affiliation='member' jid='carol@localhost'/><item affiliation='member' jid='dave@localhost'/></query>`)
	l := alice.result("get", room("r"), `<query xmlns='`+nsAdmin+`'><item affiliation='member'/></query>`)
	var got []string
	for _, k := range child(l, nsAdmin, "query").Kids {
		got = append(got, k.Attr["jid"]+" "+k.Attr["nick"])
	}
	if !slices.Equal(got, []string{"carol@localhost carol", "dave@localhost "}) {
		t.Fatalf("members %q", got)
	}
	l = alice.result("get", room("r"), `<query xmlns='`+nsAdmin+`'><item role='participant'/></query>`)
	got = nil
	for _, k := range child(l, nsAdmin, "query").Kids {
		got = append(got, k.Attr["nick"])
	}
	if !slices.Equal(got, []string{"bob", "carol"}) {
		t.Fatalf("participants %q", got)
	}
}
