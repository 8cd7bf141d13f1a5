package muc_test

import (
	"slices"
	"testing"

	"github.com/adhocd/adhocd/modules/muc"
	"github.com/adhocd/adhocd/servertest"
)

const (
	nsInfo  = "http://jabber.org/protocol/disco#info"
	nsItems = "http://jabber.org/protocol/disco#items"
)

// TestServiceInfo: the service's disco#info is a text conference service
// with the MUC feature and the extensions it implements.
func TestServiceInfo(t *testing.T) {
	e := newEnv(t, muc.Options{})
	alice := e.login("alice", "laptop")
	a := alice.result("get", service, `<query xmlns='`+nsInfo+`'/>`)
	if a.Attr["from"] != service {
		t.Fatalf("answer from %q", a.Attr["from"])
	}
	id := child(child(a, nsInfo, "query"), nsInfo, "identity")
	if id == nil || id.Attr["category"] != "conference" || id.Attr["type"] != "text" {
		t.Fatalf("identity: %s", a.Canon())
	}
	for _, f := range []string{nsMUC, nsInfo, nsItems, nsOccID, "urn:xmpp:ping"} {
		if !slices.Contains(features(a), f) {
			t.Errorf("feature %s missing: %q", f, features(a))
		}
	}
	wantCond(t, "unknown node", alice.iq("get", service, `<query xmlns='`+nsInfo+`' node='x'/>`), "cancel item-not-found")
	wantCond(t, "unknown request", alice.iq("get", service, `<query xmlns='jabber:iq:version'/>`), "cancel service-unavailable")
}

// TestServerItemsListService: the server's disco#items (servertest runs
// the default modules, disco among them) lists the service.
func TestServerItemsListService(t *testing.T) {
	e := newEnv(t, muc.Options{})
	alice := e.login("alice", "laptop")
	a := alice.result("get", "localhost", `<query xmlns='`+nsItems+`'/>`)
	var jids []string
	for _, k := range child(a, nsItems, "query").Kids {
		jids = append(jids, k.Attr["jid"]+" "+k.Attr["name"])
	}
	if !slices.Contains(jids, service+" Chatrooms") {
		t.Fatalf("server items %q lack the service", jids)
	}
}

// items lists the disco#items of the service, "jid name".
func items(c *client) []string {
	c.t.Helper()
	a := c.result("get", service, `<query xmlns='`+nsItems+`'/>`)
	var out []string
	for _, k := range child(a, nsItems, "query").Kids {
		out = append(out, k.Attr["jid"]+" "+k.Attr["name"])
	}
	return out
}

// TestServiceItemsListPublicRooms: the service's items are its public
// rooms, by name; hidden rooms and rooms still locked are not listed.
func TestServiceItemsListPublicRooms(t *testing.T) {
	e := newEnv(t, muc.Options{})
	alice := e.login("alice", "laptop")
	alice.create("lobby", "alice", "muc#roomconfig_roomname=The Lobby")
	alice.create("secret", "alice", "muc#roomconfig_publicroom=0")
	alice.join("new", "alice", "") // locked until configured
	got := items(alice)
	if want := []string{room("lobby") + " The Lobby"}; !slices.Equal(got, want) {
		t.Fatalf("items %q, want %q", got, want)
	}
	alice.configure("new")
	if got, want := items(alice), []string{room("lobby") + " The Lobby", room("new") + " new"}; !slices.Equal(got, want) {
		t.Fatalf("items %q, want %q", got, want)
	}
}

// roomInfo is a room's disco#info answer as bob sees it.
func roomInfo(c *client, name string) *servertest.Node {
	c.t.Helper()
	return c.result("get", room(name), `<query xmlns='`+nsInfo+`'/>`)
}

// TestRoomInfoFeatures: a room's features say how it is configured, both
// ways.
func TestRoomInfoFeatures(t *testing.T) {
	e := newEnv(t, muc.Options{})
	alice := e.login("alice", "laptop")
	bob := e.login("bob", "phone")
	alice.create("r", "alice")
	defaults := []string{"muc_public", "muc_open", "muc_unmoderated", "muc_temporary", "muc_semianonymous", "muc_unsecured", nsMUC}
	got := features(roomInfo(bob, "r"))
	for _, f := range defaults {
		if !slices.Contains(got, f) {
			t.Errorf("default room lacks %s: %q", f, got)
		}
	}
	alice.configure("r", "muc#roomconfig_publicroom=0", "muc#roomconfig_membersonly=1", "muc#roomconfig_moderatedroom=1",
		"muc#roomconfig_persistentroom=1", "muc#roomconfig_whois=anyone", "muc#roomconfig_passwordprotectedroom=1", "muc#roomconfig_roomsecret=s3cret")
	got = features(roomInfo(bob, "r"))
	for _, f := range []string{"muc_hidden", "muc_membersonly", "muc_moderated", "muc_persistent", "muc_nonanonymous", "muc_passwordprotected"} {
		if !slices.Contains(got, f) {
			t.Errorf("configured room lacks %s: %q", f, got)
		}
	}
	for _, f := range defaults[:6] {
		if slices.Contains(got, f) {
			t.Errorf("configured room still has %s", f)
		}
	}
}

// TestRoomInfoForm: a room's disco#info carries the muc#roominfo form
// with its description, occupant count and subject, and its name in the
// identity.
func TestRoomInfoForm(t *testing.T) {
	e := newEnv(t, muc.Options{})
	alice := e.login("alice", "laptop")
	bob := e.login("bob", "phone")
	alice.create("r", "alice", "muc#roomconfig_roomname=Tea", "muc#roomconfig_roomdesc=All about tea")
	alice.Write(`<message to='` + room("r") + `' type='groupchat'><subject>Oolong</subject></message>`)
	alice.next("subject", func(s *servertest.Node) bool { return text(s, "subject") == "Oolong" })
	bob.join("r", "bob", "")
	q := child(roomInfo(bob, "r"), nsInfo, "query")
	if id := child(q, nsInfo, "identity"); id.Attr["name"] != "Tea" || id.Attr["category"] != "conference" {
		t.Errorf("identity %s", id.Canon())
	}
	for v, want := range map[string]string{
		"FORM_TYPE":                nsMUC + "#roominfo",
		"muc#roominfo_description": "All about tea",
		"muc#roominfo_occupants":   "2",
		"muc#roominfo_subject":     "Oolong",
	} {
		if got, _ := formValue(q, v); got != want {
			t.Errorf("%s = %q, want %q", v, got, want)
		}
	}
	wantCond(t, "a room that does not exist", bob.iq("get", room("nope"), `<query xmlns='`+nsInfo+`'/>`), "cancel item-not-found")
}
