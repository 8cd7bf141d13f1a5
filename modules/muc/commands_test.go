package muc_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/adhocd/adhocd/adhoc"
	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/modules/muc"
	"github.com/adhocd/adhocd/server"
	"github.com/adhocd/adhocd/servertest"
)

var serviceJID = jid.MustParse(service)

// adminEnv is newEnv with root@localhost among the server's
// administrators.
func adminEnv(t *testing.T) *env {
	t.Helper()
	cfg := func(c *config.Config) {
		c.MUC.Enabled = false
		c.Admins = []string{"root@localhost"}
	}
	return &env{t: t, srv: servertest.StartWith(t, []server.Option{server.WithModules(muc.New(muc.Options{}))}, cfg), users: map[string]bool{}}
}

// requester logs user in with mellium's client and returns its XEP-0050
// requester.
func (e *env) requester(user string) *adhoc.Requester {
	e.t.Helper()
	if !e.users[user] {
		e.srv.AddUser(user, "pw-"+user)
		e.users[user] = true
	}
	return adhoc.NewRequester(e.srv.Dial(user, "pw-"+user, "commands").Session)
}

func cmdCtx(t *testing.T) context.Context { return servertest.Context(t, 10*time.Second) }

// nodes lists the command nodes at to that req may run.
func nodes(t *testing.T, req *adhoc.Requester, to jid.JID) []string {
	t.Helper()
	cmds, err := req.Commands(cmdCtx(t), to)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range cmds {
		if !c.JID.Equal(to) {
			t.Errorf("command %s listed at %s, not %s", c.Node, c.JID, to)
		}
		out = append(out, c.Node+" "+c.Name)
	}
	return out
}

// run executes node at the service and completes its one stage with vals.
func run(t *testing.T, req *adhoc.Requester, node string, vals adhoc.Values) *adhoc.Response {
	t.Helper()
	r, err := req.Start(cmdCtx(t), serviceJID, node)
	if err != nil {
		t.Fatalf("execute %s: %v", node, err)
	}
	if r.Status != adhoc.Executing || len(r.Forms) != 1 || r.SessionID == "" {
		t.Fatalf("execute %s: %+v, want a stage with one form", node, r)
	}
	if ft := r.Forms[0].Value("FORM_TYPE"); ft != muc.NSCommands {
		t.Fatalf("%s: FORM_TYPE %q", node, ft)
	}
	done, err := req.Complete(cmdCtx(t), r, vals)
	if err != nil {
		t.Fatalf("complete %s: %v", node, err)
	}
	if done.Status != adhoc.Completed || done.SessionID != r.SessionID {
		t.Fatalf("complete %s: %+v", node, done)
	}
	return done
}

// note is the text of the response's one note of type typ, failing the
// test when its notes are otherwise.
func note(t *testing.T, r *adhoc.Response, typ adhoc.NoteType) string {
	t.Helper()
	if len(r.Notes) != 1 || r.Notes[0].Type != typ {
		t.Fatalf("notes %+v, want one of type %s", r.Notes, typ)
	}
	return r.Notes[0].Text
}

// TestCommandsForAdmins: the service's JID has a command list of its own
// (disco#info has the commands feature) which shows the server's
// administrators the three commands and others none; others are refused
// the commands and their disco#info, and the server JID's list does not
// have them.
func TestCommandsForAdmins(t *testing.T) {
	e := adminEnv(t)
	root := e.requester("root")
	want := []string{
		muc.CommandNode("destroy-room") + " Destroy a Room",
		muc.CommandNode("list-rooms") + " List Rooms",
		muc.CommandNode("set-affiliation") + " Set an Affiliation in a Room",
	}
	if got := nodes(t, root, serviceJID); !slices.Equal(got, want) {
		t.Fatalf("the administrator sees %q at %s, want %q", got, service, want)
	}
	for _, n := range nodes(t, root, jid.MustParse("localhost")) {
		if strings.HasPrefix(n, muc.NSCommands) {
			t.Errorf("the server JID lists %s", n)
		}
	}
	if got := nodes(t, e.requester("alice"), serviceJID); len(got) != 0 {
		t.Fatalf("alice sees %q", got)
	}

	alice := e.login("alice", "laptop")
	if f := features(alice.result("get", service, `<query xmlns='http://jabber.org/protocol/disco#info'/>`)); !slices.Contains(f, adhoc.NS) {
		t.Errorf("service features %q lack %s", f, adhoc.NS)
	}
	list := alice.result("get", service, `<query xmlns='http://jabber.org/protocol/disco#info' node='`+adhoc.NS+`'/>`)
	if id := child(child(list, "http://jabber.org/protocol/disco#info", "query"), "http://jabber.org/protocol/disco#info", "identity"); id == nil || id.Attr["type"] != "command-list" {
		t.Errorf("command list's disco#info: %s", list.Canon())
	}
	wantCond(t, "alice's disco#info of a command", alice.iq("get", service,
		`<query xmlns='http://jabber.org/protocol/disco#info' node='`+muc.CommandNode("list-rooms")+`'/>`), "cancel forbidden")
	for _, name := range []string{"list-rooms", "destroy-room", "set-affiliation"} {
		wantCond(t, "alice runs "+name, alice.iq("set", service,
			`<command xmlns='`+adhoc.NS+`' node='`+muc.CommandNode(name)+`' action='execute'/>`), "cancel forbidden")
	}
	wantCond(t, "a command run with IQ get", alice.iq("get", service,
		`<command xmlns='`+adhoc.NS+`' node='`+muc.CommandNode("list-rooms")+`'/>`), "modify bad-request")

	// The administrator sees a command's disco#info.
	rootRaw := e.login("root", "raw")
	info := rootRaw.result("get", service, `<query xmlns='http://jabber.org/protocol/disco#info' node='`+muc.CommandNode("destroy-room")+`'/>`)
	if f := features(info); !slices.Contains(f, adhoc.NS) || !slices.Contains(f, "jabber:x:data") {
		t.Errorf("destroy-room's disco#info: %s", info.Canon())
	}
}

// TestListRoomsCommand: every room, hidden ones too, with its name,
// occupants, persistence and publicity, by JID.
func TestListRoomsCommand(t *testing.T) {
	e := adminEnv(t)
	alice := e.login("alice", "laptop")
	bob := e.login("bob", "phone")
	alice.create("tea", "alice", "muc#roomconfig_roomname=Tea Room", "muc#roomconfig_persistentroom=1")
	alice.create("den", "alice", "muc#roomconfig_publicroom=0")
	bob.join("tea", "bob", "")

	r, err := e.requester("root").Start(cmdCtx(t), serviceJID, muc.CommandNode("list-rooms"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != adhoc.Completed || len(r.Forms) != 1 || r.Forms[0].Type != "result" {
		t.Fatalf("list-rooms: %+v", r)
	}
	if n := note(t, r, adhoc.NoteInfo); n != "2 rooms" {
		t.Errorf("note %q", n)
	}
	f := r.Forms[0]
	var cols []string
	for _, c := range f.Reported {
		cols = append(cols, c.Var)
	}
	if strings.Join(cols, " ") != "jid name occupants persistent public" {
		t.Errorf("columns %q", cols)
	}
	var rows []string
	for _, it := range f.Items {
		var vals []string
		for _, fl := range it.Fields {
			vals = append(vals, fl.Var+"="+strings.Join(fl.Values, ","))
		}
		rows = append(rows, strings.Join(vals, " "))
	}
	want := []string{
		"jid=den@" + service + " name= occupants=1 persistent=0 public=0",
		"jid=tea@" + service + " name=Tea Room occupants=2 persistent=1 public=1",
	}
	if !slices.Equal(rows, want) {
		t.Errorf("rows\n%q\nwant\n%q", rows, want)
	}
}

// TestDestroyRoomCommand: the occupants get the XEP-0045 §10.9 destroy
// presence with the reason and alternate venue given, and the room is
// gone; a JID that names no room of the service completes with an error
// note and changes nothing.
func TestDestroyRoomCommand(t *testing.T) {
	e := adminEnv(t)
	alice := e.login("alice", "laptop")
	bob := e.login("bob", "phone")
	alice.create("tea", "alice")
	bob.join("tea", "bob", "")
	root := e.requester("root")

	for v, want := range map[string]string{
		"nosuch@" + service:     "there is no room nosuch@" + service,
		"tea@localhost":         "tea@localhost is not a room's JID: give room@" + service,
		"tea@" + service + "/x": "tea@" + service + "/x is not a room's JID: give room@" + service,
	} {
		if got := note(t, run(t, root, muc.CommandNode("destroy-room"), adhoc.Values{"room": {v}}), adhoc.NoteError); got != want {
			t.Errorf("destroy %s: note %q, want %q", v, got, want)
		}
	}
	alice.result("get", room("tea"), `<query xmlns='http://jabber.org/protocol/disco#info'/>`)

	done := run(t, root, muc.CommandNode("destroy-room"), adhoc.Values{
		"room": {"tea@" + service}, "reason": {"closing time"}, "venue": {"pub@" + service}})
	if got := note(t, done, adhoc.NoteInfo); got != "tea@"+service+" was destroyed; 2 occupants were told" {
		t.Errorf("note %q", got)
	}
	for _, c := range []struct {
		cl   *client
		nick string
	}{{alice, "alice"}, {bob, "bob"}} {
		p := c.cl.next("destroy presence", presenceFrom(occ("tea", c.nick), "unavailable"))
		d := child(child(p, nsUser, "x"), nsUser, "destroy")
		if r := child(d, nsUser, "reason"); d == nil || d.Attr["jid"] != "pub@"+service || r == nil || r.Text != "closing time" {
			t.Fatalf("%s: destroy presence %s", c.nick, p.Canon())
		}
		if !slices.Contains(statuses(p), "110") {
			t.Errorf("%s: own destroy presence without 110: %s", c.nick, p.Canon())
		}
		if it := item(p); it.Attr["role"] != "none" || it.Attr["affiliation"] != "none" {
			t.Errorf("%s: item %s", c.nick, p.Canon())
		}
	}
	wantCond(t, "the destroyed room", alice.iq("get", room("tea"), `<query xmlns='http://jabber.org/protocol/disco#info'/>`), "cancel item-not-found")
}

// TestSetAffiliationCommand: the administrator acts as the room's owner:
// the occupants see the change as they see an owner's (a new role with
// the affiliation, a ban with 301 that keeps the user out), a user who is
// not in the room gets the affiliation, and the rules hold (the last owner
// stays, with an error note).
func TestSetAffiliationCommand(t *testing.T) {
	e := adminEnv(t)
	alice := e.login("alice", "laptop")
	bob := e.login("bob", "phone")
	alice.create("tea", "alice")
	bob.join("tea", "bob", "")
	alice.next("bob's presence", presenceFrom(occ("tea", "bob"), ""))
	root := e.requester("root")
	set := func(user, aff, reason string) *adhoc.Response {
		t.Helper()
		return run(t, root, muc.CommandNode("set-affiliation"), adhoc.Values{
			"room": {"tea@" + service}, "jid": {user}, "affiliation": {aff}, "reason": {reason}})
	}

	// The form offers the five affiliations.
	r, err := root.Start(cmdCtx(t), serviceJID, muc.CommandNode("set-affiliation"))
	if err != nil {
		t.Fatal(err)
	}
	var opts []string
	for _, f := range r.Forms[0].Fields {
		if f.Var == "affiliation" {
			for _, o := range f.Options {
				opts = append(opts, o.Value)
			}
		}
	}
	if strings.Join(opts, " ") != "owner admin member none outcast" {
		t.Errorf("affiliations offered: %q", opts)
	}
	if _, err := root.Cancel(cmdCtx(t), r); err != nil {
		t.Fatal(err)
	}

	if got := note(t, set("Bob@Localhost/phone", "admin", "helps out"), adhoc.NoteInfo); got != "bob@localhost is now admin of tea@"+service {
		t.Errorf("note %q", got)
	}
	for _, c := range []*client{alice, bob} {
		p := c.next("bob's new affiliation", presenceFrom(occ("tea", "bob"), ""))
		if it := item(p); it.Attr["affiliation"] != "admin" || it.Attr["role"] != "moderator" || child(it, nsUser, "reason").Text != "helps out" {
			t.Errorf("%s sees %s", c.jid, p.Canon())
		}
	}

	set("bob@localhost", "outcast", "")
	for _, c := range []*client{alice, bob} {
		p := c.next("bob's ban", presenceFrom(occ("tea", "bob"), "unavailable"))
		if !slices.Contains(statuses(p), "301") || item(p).Attr["affiliation"] != "outcast" {
			t.Errorf("%s sees %s", c.jid, p.Canon())
		}
	}
	if got := bob.joinErr("tea", "bob", ""); got != "auth forbidden" {
		t.Errorf("banned bob joins: %q", got)
	}

	set("carol@localhost", "member", "")
	members := alice.result("get", room("tea"), `<query xmlns='`+nsAdmin+`'><item affiliation='member'/></query>`)
	if it := child(child(members, nsAdmin, "query"), nsAdmin, "item"); it == nil || it.Attr["jid"] != "carol@localhost" {
		t.Errorf("members: %s", members.Canon())
	}

	if got := note(t, set("alice@localhost", "none", ""), adhoc.NoteError); got != "nothing was changed: the room's last owner cannot give up ownership" {
		t.Errorf("the last owner removed: note %q", got)
	}
	alice.result("get", room("tea"), `<query xmlns='`+nsOwner+`'/>`)

	if got := note(t, set("alice@localhost", "owner", ""), adhoc.NoteInfo); got != "alice@localhost is now owner of tea@"+service {
		t.Errorf("note %q", got)
	}
	r, err = root.Start(cmdCtx(t), serviceJID, muc.CommandNode("set-affiliation"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := root.Complete(cmdCtx(t), r, adhoc.Values{"room": {"tea@" + service}, "jid": {"x@localhost"}, "affiliation": {"boss"}}); adhoc.Condition(err) != "bad-payload" {
		t.Errorf("an affiliation not offered: %v", err)
	}
}
