package muc_test

import (
	"slices"
	"testing"

	"github.com/adhocd/adhocd/modules/muc"
	"github.com/adhocd/adhocd/servertest"
)

// TestCreateInstantRoom: the first to enter creates the room and owns it;
// the room is locked (201) and no one else may enter until the owner
// accepts the default configuration with an empty form.
func TestCreateInstantRoom(t *testing.T) {
	e := newEnv(t, muc.Options{})
	alice := e.login("alice", "laptop")
	bob := e.login("bob", "phone")
	self := alice.join("r", "alice", "")
	if st := statuses(self); !slices.Contains(st, "201") || !slices.Contains(st, "110") {
		t.Fatalf("creator's presence codes %q: %s", st, self.Canon())
	}
	if it := item(self); it.Attr["affiliation"] != "owner" || it.Attr["role"] != "moderator" {
		t.Fatalf("creator's item: %s", self.Canon())
	}
	if occupantID(self) == "" {
		t.Errorf("no occupant id: %s", self.Canon())
	}
	if got := bob.joinErr("r", "bob", ""); got != "cancel item-not-found" {
		t.Fatalf("entering a locked room: %q", got)
	}
	alice.result("set", room("r"), `<query xmlns='`+nsOwner+`'><x xmlns='`+nsXData+`' type='submit'/></query>`)
	if st := statuses(bob.join("r", "bob", "")); slices.Contains(st, "201") {
		t.Fatalf("bob's codes %q", st)
	}
}

// TestConfigureNewRoom: the owner of a new room asks for the form, which
// has the muc#roomconfig fields, and submits it.
func TestConfigureNewRoom(t *testing.T) {
	e := newEnv(t, muc.Options{})
	alice := e.login("alice", "laptop")
	alice.join("r", "alice", "")
	a := alice.result("get", room("r"), `<query xmlns='`+nsOwner+`'/>`)
	q := child(a, nsOwner, "query")
	if v, _ := formValue(q, "FORM_TYPE"); v != nsMUC+"#roomconfig" {
		t.Fatalf("FORM_TYPE %q: %s", v, a.Canon())
	}
	for _, f := range []string{"muc#roomconfig_roomname", "muc#roomconfig_roomdesc", "muc#roomconfig_persistentroom",
		"muc#roomconfig_publicroom", "muc#roomconfig_membersonly", "muc#roomconfig_moderatedroom",
		"muc#roomconfig_passwordprotectedroom", "muc#roomconfig_roomsecret", "muc#roomconfig_maxusers",
		"muc#roomconfig_whois", "muc#roomconfig_changesubject", "muc#maxhistoryfetch", "muc#roomconfig_allowpm"} {
		if _, ok := formValue(q, f); !ok {
			t.Errorf("the form lacks %s", f)
		}
	}
	if v, _ := formValue(q, "muc#roomconfig_whois"); v != "moderators" {
		t.Errorf("default whois %q", v)
	}
	alice.configure("r", "muc#roomconfig_roomname=Tea Room")
	id := child(child(roomInfo(alice, "r"), nsInfo, "query"), nsInfo, "identity")
	if id.Attr["name"] != "Tea Room" {
		t.Fatalf("name %s", id.Canon())
	}
}

// TestCancelNewRoom: cancelling the initial configuration destroys the
// locked room; its owner is told it left.
func TestCancelNewRoom(t *testing.T) {
	e := newEnv(t, muc.Options{})
	alice := e.login("alice", "laptop")
	alice.join("r", "alice", "")
	alice.result("set", room("r"), `<query xmlns='`+nsOwner+`'><x xmlns='`+nsXData+`' type='cancel'/></query>`)
	alice.next("unavailable presence", presenceFrom(occ("r", "alice"), "unavailable"))
	wantCond(t, "disco of a cancelled room", alice.iq("get", room("r"), `<query xmlns='`+nsInfo+`'/>`), "cancel item-not-found")
}

// TestEnterOrder: who enters gets the occupants' presence, then its own
// (110) last, then the subject; in a semi-anonymous room a participant
// sees no real JID, the moderators see the newcomer's.
func TestEnterOrder(t *testing.T) {
	e := newEnv(t, muc.Options{})
	alice := e.login("alice", "laptop")
	bob := e.login("bob", "phone")
	alice.create("r", "alice")
	bob.Write(`<presence to='` + occ("r", "bob") + `'><x xmlns='` + nsMUC + `'/><status>hi</status></presence>`)
	var kinds []string
	for {
		s := bob.next("the room", func(*servertest.Node) bool { return true })
		switch {
		case s.Name.Local == "presence":
			kinds = append(kinds, "presence "+s.Attr["from"])
			if s.Attr["from"] == occ("r", "alice") {
				if it := item(s); it.Attr["jid"] != "" || it.Attr["affiliation"] != "owner" || it.Attr["role"] != "moderator" {
					t.Errorf("alice as bob sees her: %s", s.Canon())
				}
			}
			if s.Attr["from"] == occ("r", "bob") {
				if st := statuses(s); !slices.Equal(st, []string{"110"}) {
					t.Errorf("bob's codes %q", st)
				}
				if text(s, "status") != "hi" {
					t.Errorf("bob's status text lost: %s", s.Canon())
				}
			}
		case child(s, "jabber:client", "subject") != nil:
			kinds = append(kinds, "subject")
		default:
			kinds = append(kinds, s.Name.Local)
		}
		if kinds[len(kinds)-1] == "subject" {
			break
		}
	}
	if want := []string{"presence " + occ("r", "alice"), "presence " + occ("r", "bob"), "subject"}; !slices.Equal(kinds, want) {
		t.Fatalf("bob received %q, want %q", kinds, want)
	}
	p := alice.next("bob's presence", presenceFrom(occ("r", "bob"), ""))
	if it := item(p); it.Attr["jid"] != bob.jid || it.Attr["role"] != "participant" || it.Attr["affiliation"] != "none" {
		t.Fatalf("bob as alice (moderator) sees him: %s", p.Canon())
	}
	if slices.Contains(statuses(p), "110") {
		t.Fatalf("110 to another occupant: %s", p.Canon())
	}
}

// TestNonAnonymousRoom: in a non-anonymous room everyone sees real JIDs,
// and who enters is told so (100).
func TestNonAnonymousRoom(t *testing.T) {
	e := newEnv(t, muc.Options{})
	alice := e.login("alice", "laptop")
	bob := e.login("bob", "phone")
	alice.create("r", "alice", "muc#roomconfig_whois=anyone")
	self := bob.join("r", "bob", "")
	if !slices.Contains(statuses(self), "100") {
		t.Errorf("no 100: %s", self.Canon())
	}
	p := bob.next("alice's presence", presenceFrom(occ("r", "alice"), ""))
	if item(p).Attr["jid"] != alice.jid {
		t.Fatalf("alice's JID hidden from bob: %s", p.Canon())
	}
}

// TestNicknameConflict: a nickname another user holds is refused.
func TestNicknameConflict(t *testing.T) {
	e := newEnv(t, muc.Options{})
	alice := e.login("alice", "laptop")
	bob := e.login("bob", "phone")
	alice.create("r", "alice")
	if got := bob.joinErr("r", "alice", ""); got != "cancel conflict" {
		t.Fatalf("bob as alice: %q", got)
	}
}

// TestOneNickSeveralSessions: a second session of the same account
// entering with its nickname joins the occupant (as in Prosody): the
// others see no second occupant, messages reach both sessions, and when
// one leaves the occupant stays.
func TestOneNickSeveralSessions(t *testing.T) {
	e := newEnv(t, muc.Options{})
	alice := e.login("alice", "laptop")
	phone := e.login("alice", "phone")
	bob := e.login("bob", "desk")
	alice.create("r", "alice")
	bob.join("r", "bob", "")
	phone.join("r", "alice", "")
	bob.say("r", "to both")
	alice.heard("r", "bob", "to both")
	phone.heard("r", "bob", "to both")
	phone.Write(`<presence type='unavailable' to='` + occ("r", "alice") + `'/>`)
	left := phone.next("own unavailable presence", presenceFrom(occ("r", "alice"), "unavailable"))
	if !slices.Contains(statuses(left), "110") {
		t.Errorf("phone's leave: %s", left.Canon())
	}
	settle(phone, bob, alice)
	bob.none("alice leaving", presenceFrom(occ("r", "alice"), "unavailable"))
	bob.say("r", "still here?")
	alice.heard("r", "bob", "still here?")
}

// TestPasswordProtected: a password-protected room wants its password.
func TestPasswordProtected(t *testing.T) {
	e := newEnv(t, muc.Options{})
	alice := e.login("alice", "laptop")
	bob := e.login("bob", "phone")
	alice.create("r", "alice", "muc#roomconfig_passwordprotectedroom=1", "muc#roomconfig_roomsecret=tea")
	if got := bob.joinErr("r", "bob", ""); got != "auth not-authorized" {
		t.Fatalf("without password: %q", got)
	}
	if got := bob.joinErr("r", "bob", "<password>coffee</password>"); got != "auth not-authorized" {
		t.Fatalf("with a wrong password: %q", got)
	}
	bob.join("r", "bob", "<password>tea</password>")
}

// TestMembersOnly: a members-only room refuses non-members
// (registration-required) and lets members in.
func TestMembersOnly(t *testing.T) {
	e := newEnv(t, muc.Options{})
	alice := e.login("alice", "laptop")
	bob := e.login("bob", "phone")
	alice.create("r", "alice", "muc#roomconfig_membersonly=1")
	if got := bob.joinErr("r", "bob", ""); got != "auth registration-required" {
		t.Fatalf("non-member: %q", got)
	}
	alice.result("set", room("r"), `<query xmlns='`+nsAdmin+`'><item affiliation='member' jid='bob@localhost'/></query>`)
	if it := item(bob.join("r", "bob", "")); it.Attr["affiliation"] != "member" {
		t.Fatalf("bob's item: %s", it.Canon())
	}
}

// TestBannedCannotEnter: an outcast is forbidden.
func TestBannedCannotEnter(t *testing.T) {
	e := newEnv(t, muc.Options{})
	alice := e.login("alice", "laptop")
	bob := e.login("bob", "phone")
	alice.create("r", "alice")
	alice.result("set", room("r"), `<query xmlns='`+nsAdmin+`'><item affiliation='outcast' jid='bob@localhost'/></query>`)
	if got := bob.joinErr("r", "bob", ""); got != "auth forbidden" {
		t.Fatalf("outcast: %q", got)
	}
}

// TestRoomFull: past the room's maxusers a user is refused
// (service-unavailable), an admin still enters.
func TestRoomFull(t *testing.T) {
	e := newEnv(t, muc.Options{})
	alice := e.login("alice", "laptop")
	bob := e.login("bob", "phone")
	carol := e.login("carol", "pc")
	alice.create("r", "alice", "muc#roomconfig_maxusers=1")
	if got := bob.joinErr("r", "bob", ""); got != "wait service-unavailable" {
		t.Fatalf("into a full room: %q", got)
	}
	alice.result("set", room("r"), `<query xmlns='`+nsAdmin+`'><item affiliation='admin' jid='carol@localhost'/></query>`)
	carol.join("r", "carol", "")
}

// TestNicknameChange: a new nickname is seen as the old one leaving with
// 303 and the new nick, then the new one entering.
func TestNicknameChange(t *testing.T) {
	e := newEnv(t, muc.Options{})
	alice := e.login("alice", "laptop")
	bob := e.login("bob", "phone")
	alice.create("r", "alice")
	bob.join("r", "bob", "")
	bob.Write(`<presence to='` + occ("r", "robert") + `'/>`)
	for _, c := range []*client{alice, bob} {
		gone := c.next("303", presenceFrom(occ("r", "bob"), "unavailable"))
		if !slices.Contains(statuses(gone), "303") || item(gone).Attr["nick"] != "robert" {
			t.Fatalf("%s: nick change: %s", c.jid, gone.Canon())
		}
		c.next("the new nick", presenceFrom(occ("r", "robert"), ""))
	}
	bob.say("r", "I am robert")
	alice.heard("r", "robert", "I am robert")
}
