package muc_test

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/adhocd/adhocd/modules/muc"
	"github.com/adhocd/adhocd/server"
	"github.com/adhocd/adhocd/servertest"
	"github.com/adhocd/adhocd/storage"
)

// restart stops the server and starts it again on the same data, with
// the same service (whose rooms in memory end with the first).
func (e *env) restart() {
	e.t.Helper()
	e.srv = e.srv.Restart()
}

// affiliations is the muc#admin list of affiliation a of the room, as
// its owner c reads it.
func (c *client) affiliations(name, a string) []string {
	c.t.Helper()
	q := child(c.result("get", room(name), `<query xmlns='`+nsAdmin+`'><item affiliation='`+a+`'/></query>`), nsAdmin, "query")
	var out []string
	for _, k := range q.Kids {
		out = append(out, k.Attr["jid"])
	}
	return out
}

// subjectOf waits for the subject that ends a join and returns its text.
func (c *client) subjectOf(name string) string {
	c.t.Helper()
	s := c.next("subject of "+name, func(s *servertest.Node) bool {
		return s.Name.Local == "message" && child(s, "jabber:client", "subject") != nil
	})
	return text(s, "subject")
}

// TestPersistentRoomRestart: a persistent room, its configuration, its
// affiliations (members-only, a member, a ban), its subject, its occupant
// ids and its history survive a restart of the server; a temporary room
// and a destroyed persistent room do not.
func TestPersistentRoomRestart(t *testing.T) {
	e := newEnv(t, muc.Options{})
	alice := e.login("alice", "laptop")
	bob := e.login("bob", "phone")
	alice.create("kept", "alice", "muc#roomconfig_persistentroom=1", "muc#roomconfig_roomname=Kept room",
		"muc#roomconfig_membersonly=1", "muc#maxhistoryfetch=10")
	alice.result("set", room("kept"), `<query xmlns='`+nsAdmin+`'><item affiliation='member' jid='bob@localhost'/><item affiliation='outcast' jid='carol@localhost'/></query>`)
	idBob := occupantID(bob.join("kept", "bob", ""))
	bob.subjectOf("kept")
	alice.Write(`<message to='` + room("kept") + `' type='groupchat'><subject>Before the restart</subject></message>`)
	bob.next("the subject", func(s *servertest.Node) bool { return text(s, "subject") == "Before the restart" })
	alice.say("kept", "said before the restart")
	bob.heard("kept", "alice", "said before the restart")
	alice.create("tmp", "alice")
	alice.create("gone", "alice", "muc#roomconfig_persistentroom=1")
	alice.result("set", room("gone"), `<query xmlns='`+nsOwner+`'><destroy/></query>`)

	e.restart()
	alice = e.login("alice", "laptop")
	bob = e.login("bob", "phone")
	carol := e.login("carol", "pc")
	dave := e.login("dave", "pc")
	info := roomInfo(bob, "kept")
	for _, f := range []string{"muc_persistent", "muc_membersonly"} {
		if !slices.Contains(features(info), f) {
			t.Fatalf("after the restart the room lacks %s: %s", f, info.Canon())
		}
	}
	q := child(alice.result("get", room("kept"), `<query xmlns='`+nsOwner+`'/>`), nsOwner, "query")
	if v, _ := formValue(q, "muc#roomconfig_roomname"); v != "Kept room" {
		t.Fatalf("the room's name after the restart: %q", v)
	}
	if got := alice.affiliations("kept", "member"); !slices.Equal(got, []string{"bob@localhost"}) {
		t.Fatalf("members after the restart: %q", got)
	}
	if got := alice.affiliations("kept", "outcast"); !slices.Equal(got, []string{"carol@localhost"}) {
		t.Fatalf("outcasts after the restart: %q", got)
	}
	if got := carol.joinErr("kept", "carol", ""); got != "auth forbidden" {
		t.Fatalf("the banned user's join after the restart: %q", got)
	}
	if got := dave.joinErr("kept", "dave", ""); got != "auth registration-required" {
		t.Fatalf("a non-member's join after the restart: %q", got)
	}
	self := bob.join("kept", "bob", "")
	if slices.Contains(statuses(self), "201") {
		t.Fatal("the persistent room was created again")
	}
	if occupantID(self) != idBob {
		t.Fatalf("bob's occupant id %q after the restart, %q before", occupantID(self), idBob)
	}
	h := bob.heard("kept", "alice", "said before the restart")
	if child(h, "urn:xmpp:delay", "delay") == nil {
		t.Fatalf("the history after the restart has no delay: %s", h.Canon())
	}
	if got := bob.subjectOf("kept"); got != "Before the restart" {
		t.Fatalf("the subject after the restart: %q", got)
	}
	if item(self).Attr["affiliation"] != "member" {
		t.Fatalf("bob's affiliation after the restart: %s", self.Canon())
	}
	for _, r := range []string{"tmp", "gone"} {
		wantCond(t, r+" after the restart", alice.iq("get", room(r), `<query xmlns='`+nsInfo+`'/>`), "cancel item-not-found")
	}
}

// TestTemporaryAgainLeavesStore: a persistent room made temporary is no
// longer stored: once its last occupant leaves it is gone, and a restart
// does not bring it back.
func TestTemporaryAgainLeavesStore(t *testing.T) {
	e := newEnv(t, muc.Options{})
	alice := e.login("alice", "laptop")
	alice.create("r", "alice", "muc#roomconfig_persistentroom=1")
	alice.configure("r", "muc#roomconfig_persistentroom=0")
	e.restart()
	alice = e.login("alice", "laptop")
	wantCond(t, "the room made temporary, after a restart", alice.iq("get", room("r"), `<query xmlns='`+nsInfo+`'/>`), "cancel item-not-found")
}

// TestStoredRoomsCountTowardsLimits: after a restart the stored rooms
// count towards the service's bound and their creators'.
func TestStoredRoomsCountTowardsLimits(t *testing.T) {
	e := newEnv(t, muc.Options{MaxRooms: 2, MaxRoomsPerUser: 1})
	alice := e.login("alice", "laptop")
	bob := e.login("bob", "phone")
	alice.create("a", "alice", "muc#roomconfig_persistentroom=1")
	bob.create("b", "bob", "muc#roomconfig_persistentroom=1")
	e.restart()
	alice = e.login("alice", "laptop")
	carol := e.login("carol", "pc")
	if got := carol.joinErr("c", "carol", ""); got != "wait resource-constraint" {
		t.Fatalf("a room past max_rooms after a restart: %q", got)
	}
	bob = e.login("bob", "phone")
	bob.result("set", room("b"), `<query xmlns='`+nsOwner+`'><destroy/></query>`)
	if got := alice.joinErr("a2", "alice", ""); got != "cancel not-allowed" {
		t.Fatalf("a second room of alice's after a restart: %q", got)
	}
	carol.create("c", "carol")
}

// failingRooms is a bbolt store whose room writes fail while err is set,
// as a full disk or a broken database makes them fail.
type failingRooms struct {
	*storage.Bolt
	err atomic.Pointer[error]
}

func (f *failingRooms) fail() error {
	if p := f.err.Load(); p != nil {
		return *p
	}
	return nil
}

func (f *failingRooms) PutRoom(ctx context.Context, service, room string, state []byte) error {
	if err := f.fail(); err != nil {
		return err
	}
	return f.Bolt.PutRoom(ctx, service, room, state)
}

func (f *failingRooms) DeleteRoom(ctx context.Context, service, room string) error {
	if err := f.fail(); err != nil {
		return err
	}
	return f.Bolt.DeleteRoom(ctx, service, room)
}

// TestStoreRefusesChange: a change of a persistent room that the store
// refuses is answered with resource-constraint (a full disk) or
// internal-server-error, and is not made: configuration, affiliations,
// subject, destruction.
func TestStoreRefusesChange(t *testing.T) {
	servertest.Embedded(t)
	dir := t.TempDir()
	bolt, err := storage.Open(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bolt.Close() })
	st := &failingRooms{Bolt: bolt}
	cfg := servertest.Config(dir)
	cfg.MUC.Enabled = false
	e := &env{t: t, users: map[string]bool{},
		srv: servertest.StartConfig(t, cfg, server.WithModules(muc.New(muc.Options{})), server.WithStore(st))}
	alice := e.login("alice", "laptop")
	bob := e.login("bob", "phone")
	alice.create("r", "alice", "muc#roomconfig_persistentroom=1", "muc#roomconfig_roomname=Before")
	bob.join("r", "bob", "")
	bob.subjectOf("r")

	for _, c := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("storage: put room: %w", syscall.ENOSPC), "wait resource-constraint"},
		{fmt.Errorf("storage: put room: connection refused"), "wait internal-server-error"},
	} {
		st.err.Store(&c.err)
		a := alice.iq("set", room("r"), `<query xmlns='`+nsOwner+`'>`+form("muc#roomconfig_roomname=After")+`</query>`)
		wantCond(t, "a configuration the store refuses", a, c.want)
		a = alice.iq("set", room("r"), `<query xmlns='`+nsAdmin+`'><item affiliation='outcast' jid='bob@localhost'/></query>`)
		wantCond(t, "a ban the store refuses", a, c.want)
		alice.Write(`<message to='` + room("r") + `' type='groupchat' id='subj'><subject>Refused</subject></message>`)
		wantCond(t, "a subject the store refuses", alice.next("error", func(s *servertest.Node) bool { return s.Attr["id"] == "subj" }), c.want)
		a = alice.iq("set", room("r"), `<query xmlns='`+nsOwner+`'><destroy/></query>`)
		wantCond(t, "a destruction the store refuses", a, c.want)
	}
	st.err.Store(nil)
	q := child(alice.result("get", room("r"), `<query xmlns='`+nsOwner+`'/>`), nsOwner, "query")
	if v, _ := formValue(q, "muc#roomconfig_roomname"); v != "Before" {
		t.Fatalf("a refused configuration changed the name to %q", v)
	}
	if got := alice.affiliations("r", "outcast"); len(got) != 0 {
		t.Fatalf("a refused ban is in the list: %q", got)
	}
	settle(alice, bob)
	bob.none("a refused change", func(s *servertest.Node) bool {
		return text(s, "subject") == "Refused" || s.Name.Local == "presence" && s.Attr["type"] == "unavailable"
	})
	bob.say("r", "still here")
	alice.heard("r", "bob", "still here")
	if v, _ := formValue(child(roomInfo(alice, "r"), nsInfo, "query"), "muc#roominfo_subject"); v != "" {
		t.Fatalf("a refused subject is the room's: %q", v)
	}
}

// TestOccupantIDKeyKept: the key of occupant ids is made once and kept
// in the store's settings, so that a temporary room made again after a
// restart gives a user the same id.
func TestOccupantIDKeyKept(t *testing.T) {
	e := newEnv(t, muc.Options{})
	alice := e.login("alice", "laptop")
	alice.create("r", "alice")
	before := occupantID(alice.join("r", "alice", ""))
	e.restart()
	alice = e.login("alice", "laptop")
	self := alice.join("r", "alice", "")
	if !slices.Contains(statuses(self), "201") || occupantID(self) != before {
		t.Fatalf("after a restart: %s; id before %q", self.Canon(), before)
	}
}
