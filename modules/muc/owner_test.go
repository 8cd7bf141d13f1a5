package muc_test

import (
	"slices"
	"testing"

	"github.com/adhocd/adhocd/modules/muc"
	"github.com/adhocd/adhocd/servertest"
)

// TestConfigOnlyOwners: no one but an owner gets or submits the form.
func TestConfigOnlyOwners(t *testing.T) {
	e := newEnv(t, muc.Options{})
	alice := e.login("alice", "laptop")
	bob := e.login("bob", "phone")
	alice.create("r", "alice")
	bob.join("r", "bob", "")
	wantCond(t, "a participant's get", bob.iq("get", room("r"), `<query xmlns='`+nsOwner+`'/>`), "auth forbidden")
	wantCond(t, "a participant's submit", bob.iq("set", room("r"), `<query xmlns='`+nsOwner+`'>`+form()+`</query>`), "auth forbidden")
}

// TestConfigValidation: values the room cannot take are not-acceptable,
// and leave the configuration as it was.
func TestConfigValidation(t *testing.T) {
	e := newEnv(t, muc.Options{MaxOccupants: 50})
	alice := e.login("alice", "laptop")
	alice.create("r", "alice")
	for _, bad := range [][]string{
		{"muc#roomconfig_whois=everyone"},
		{"muc#roomconfig_persistentroom=maybe"},
		{"muc#roomconfig_maxusers=51"},
		{"muc#roomconfig_passwordprotectedroom=1"},
		{"muc#maxhistoryfetch=-1"},
		{"muc#roomconfig_allowpm=some"},
	} {
		a := alice.iq("set", room("r"), `<query xmlns='`+nsOwner+`'>`+form(append(bad, "muc#roomconfig_roomname=changed")...)+`</query>`)
		wantCond(t, bad[0], a, "modify not-acceptable")
	}
	q := child(alice.result("get", room("r"), `<query xmlns='`+nsOwner+`'/>`), nsOwner, "query")
	if v, _ := formValue(q, "muc#roomconfig_roomname"); v != "" {
		t.Fatalf("a refused form changed the name to %q", v)
	}
	if v, _ := formValue(q, "muc#roomconfig_maxusers"); v != "50" {
		t.Fatalf("maxusers %q, want the service's 50", v)
	}
}

// TestConfigChangeAnnounced: occupants are told of a configuration change
// (104), and that the room became non-anonymous (172).
func TestConfigChangeAnnounced(t *testing.T) {
	e := newEnv(t, muc.Options{})
	alice := e.login("alice", "laptop")
	bob := e.login("bob", "phone")
	alice.create("r", "alice")
	bob.join("r", "bob", "")
	alice.configure("r", "muc#roomconfig_whois=anyone")
	m := bob.next("the announcement", func(s *servertest.Node) bool {
		return s.Name.Local == "message" && s.Attr["from"] == room("r") && len(statuses(s)) > 0
	})
	if st := statuses(m); !slices.Contains(st, "104") || !slices.Contains(st, "172") {
		t.Fatalf("codes %q", st)
	}
}

// TestMembersOnlyRemovesNonMembers: a room made members-only removes who
// is not a member (322); everyone sees it.
func TestMembersOnlyRemovesNonMembers(t *testing.T) {
	e := newEnv(t, muc.Options{})
	alice := e.login("alice", "laptop")
	bob := e.login("bob", "phone")
	alice.create("r", "alice")
	bob.join("r", "bob", "")
	alice.configure("r", "muc#roomconfig_membersonly=1")
	for _, c := range []*client{alice, bob} {
		p := c.next("bob removed", presenceFrom(occ("r", "bob"), "unavailable"))
		if !slices.Contains(statuses(p), "322") {
			t.Fatalf("%s: %s", c.jid, p.Canon())
		}
	}
}

// TestDestroy: an owner destroys the room with a reason and an alternate
// venue; each occupant gets its unavailable presence with <destroy/>, and
// the room is gone.
func TestDestroy(t *testing.T) {
	e := newEnv(t, muc.Options{})
	alice := e.login("alice", "laptop")
	bob := e.login("bob", "phone")
	alice.create("r", "alice", "muc#roomconfig_persistentroom=1")
	bob.join("r", "bob", "")
	wantCond(t, "a participant destroying", bob.iq("set", room("r"), `<query xmlns='`+nsOwner+`'><destroy/></query>`), "auth forbidden")
	alice.result("set", room("r"), `<query xmlns='`+nsOwner+`'><destroy jid='`+room("elsewhere")+`'><reason>moving</reason></destroy></query>`)
	for _, c := range []*client{alice, bob} {
		nick := map[*client]string{alice: "alice", bob: "bob"}[c]
		p := c.next("own unavailable", presenceFrom(occ("r", nick), "unavailable"))
		d := child(child(p, nsUser, "x"), nsUser, "destroy")
		if d == nil || d.Attr["jid"] != room("elsewhere") || child(d, nsUser, "reason").Text != "moving" {
			t.Fatalf("%s: %s", c.jid, p.Canon())
		}
	}
	wantCond(t, "the destroyed room", bob.iq("get", room("r"), `<query xmlns='`+nsInfo+`'/>`), "cancel item-not-found")
}
