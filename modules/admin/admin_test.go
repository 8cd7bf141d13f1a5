package admin_test

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/adhoc"
	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/modules/admin"
	"github.com/adhocd/adhocd/server"
	"github.com/adhocd/adhocd/servertest"
	"github.com/adhocd/adhocd/storage"
)

var domain = jid.MustParse("localhost")

const wait = 5 * time.Second

func ctx(t *testing.T) context.Context { return servertest.Context(t, 10*time.Second) }

type env struct {
	srv  *servertest.Server
	root *adhoc.Requester
}

func setup(t *testing.T, opts ...servertest.Option) *env {
	t.Helper()
	srv := servertest.Start(t, append([]servertest.Option{func(c *config.Config) { c.Admins = []string{"root@localhost"} }}, opts...)...)
	srv.AddUser("root", "toor")
	return &env{srv: srv, root: adhoc.NewRequester(srv.Dial("root", "toor", "").Session)}
}

// run executes an admin command as root, submitting values at its form
// (if it has one), and returns the final response.
func (e *env) run(t *testing.T, name string, v adhoc.Values) *adhoc.Response {
	t.Helper()
	r, err := e.runErr(t, e.root, name, v)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return r
}

func (e *env) runErr(t *testing.T, req *adhoc.Requester, name string, v adhoc.Values) (*adhoc.Response, error) {
	t.Helper()
	return req.Run(ctx(t), domain, admin.Node(name), func(_ context.Context, r *adhoc.Response) (adhoc.Action, adhoc.Values, error) {
		if len(r.Forms) == 0 || r.Forms[0].Fields[0].Var != "FORM_TYPE" || r.Forms[0].Fields[0].Values[0] != admin.NS {
			t.Errorf("%s: form without the hidden FORM_TYPE: %+v", name, r.Forms)
		}
		return adhoc.Complete, v, nil
	})
}

func note(r *adhoc.Response, typ adhoc.NoteType) string {
	for _, n := range r.Notes {
		if n.Type == typ {
			return n.Text
		}
	}
	return ""
}

func field(r *adhoc.Response, name string) []string {
	for _, f := range r.Forms {
		for _, fl := range f.Fields {
			if fl.Var == name {
				return fl.Values
			}
		}
	}
	return nil
}

func TestAddUser(t *testing.T) {
	e := setup(t)
	r := e.run(t, "add-user", adhoc.Values{"accountjid": {"juliet@localhost"}, "password": {"R0m30"}, "password-verify": {"R0m30"}})
	if r.Status != adhoc.Completed || note(r, adhoc.NoteError) != "" {
		t.Fatalf("add-user: %+v", r)
	}
	e.srv.Dial("juliet", "R0m30", "") // the account exists and logs in

	r = e.run(t, "add-user", adhoc.Values{"accountjid": {"romeo@localhost"}, "password": {"a"}, "password-verify": {"b"}})
	if !strings.Contains(note(r, adhoc.NoteError), "differ") {
		t.Fatalf("mismatched passwords: %+v", r.Notes)
	}
	if _, err := e.srv.Store().Account(ctx(t), "romeo"); err == nil {
		t.Fatal("an account was made despite the mismatch")
	}
	_, err := e.runErr(t, e.root, "add-user", adhoc.Values{"accountjid": {"juliet@localhost"}, "password": {"x"}, "password-verify": {"x"}})
	if adhoc.Condition(err) != "conflict" {
		t.Fatalf("existing account: %v", err)
	}
	r = e.run(t, "add-user", adhoc.Values{"accountjid": {"eve@example.org"}, "password": {"x"}, "password-verify": {"x"}})
	if !strings.Contains(note(r, adhoc.NoteError), "not on this server") {
		t.Fatalf("foreign domain: %+v", r.Notes)
	}
}

func TestDisableReenableDelete(t *testing.T) {
	e := setup(t)
	e.srv.AddUser("alice", "wonderland")
	e.srv.AddUser("bob", "builder")
	alice := e.srv.Dial("alice", "wonderland", "")

	// One bad JID in the list: nothing changes, the note names it.
	r := e.run(t, "disable-user", adhoc.Values{"accountjids": {"alice@localhost", "ghost@localhost"}})
	if !strings.Contains(note(r, adhoc.NoteError), "ghost@localhost") {
		t.Fatalf("bad list: %+v", r.Notes)
	}
	if a, _ := e.srv.Store().Account(ctx(t), "alice"); a.Disabled {
		t.Fatal("alice was disabled by a list with a bad JID")
	}

	e.run(t, "disable-user", adhoc.Values{"accountjids": {"alice@localhost"}})
	if !alice.Closed(wait) {
		t.Fatal("the disabled user's stream stayed open")
	}
	if _, err := e.srv.DialErr("alice", "wonderland", ""); err == nil {
		t.Fatal("a disabled user logged in")
	}
	if n := field(e.run(t, "get-disabled-users-num", nil), "disabledusersnum"); len(n) != 1 || n[0] != "1" {
		t.Fatalf("disabled count %v", n)
	}
	if l := field(e.run(t, "get-disabled-users-list", adhoc.Values{"max_items": {"none"}}), "disableduserjids"); len(l) != 1 || l[0] != "alice@localhost" {
		t.Fatalf("disabled list %v", l)
	}
	e.run(t, "reenable-user", adhoc.Values{"accountjids": {"alice@localhost"}})
	e.srv.Dial("alice", "wonderland", "")

	bob := e.srv.Dial("bob", "builder", "")
	e.run(t, "delete-user", adhoc.Values{"accountjids": {"bob@localhost"}})
	if !bob.Closed(wait) {
		t.Fatal("the deleted user's stream stayed open")
	}
	if _, err := e.srv.Store().Account(ctx(t), "bob"); err == nil {
		t.Fatal("the deleted account is still stored")
	}
}

func TestEndUserSession(t *testing.T) {
	e := setup(t)
	e.srv.AddUser("alice", "wonderland")
	one := e.srv.RawLogin("alice", "wonderland", "one")
	two := e.srv.RawLogin("alice", "wonderland", "two")
	three := e.srv.RawLogin("alice", "wonderland", "three")
	r := e.run(t, "end-user-session", adhoc.Values{"accountjids": {"alice@localhost/one"}})
	if note(r, adhoc.NoteInfo) != "ended 1 session" {
		t.Fatalf("full JID: %+v", r.Notes)
	}
	if got, _ := one.ClosedByServer(wait); !strings.Contains(got, "<not-authorized") {
		t.Fatalf("the ended session got %q", got)
	}
	r = e.run(t, "end-user-session", adhoc.Values{"accountjids": {"alice@localhost"}})
	if note(r, adhoc.NoteInfo) != "ended 2 sessions" {
		t.Fatalf("bare JID: %+v", r.Notes)
	}
	for _, c := range []*servertest.Raw{two, three} {
		if _, ok := c.ClosedByServer(wait); !ok {
			t.Fatal("a session stayed open")
		}
	}
	// A kicked user may log in again (kicking is not banning).
	e.srv.Dial("alice", "wonderland", "")
	// Sessions on another server are not this one's to end (XEP-0133 is
	// local only, federation or not).
	r = e.run(t, "end-user-session", adhoc.Values{"accountjids": {"bob@b.example/home"}})
	if !strings.Contains(note(r, adhoc.NoteError), "not on this server") {
		t.Fatalf("a remote JID: %+v", r.Notes)
	}
}

func TestChangeUserPassword(t *testing.T) {
	e := setup(t)
	e.srv.AddUser("alice", "old")
	session := e.srv.Dial("alice", "old", "")
	e.run(t, "change-user-password", adhoc.Values{"accountjid": {"alice@localhost"}, "password": {"new"}})
	if !session.Closed(wait) {
		t.Fatal("the account's session survived the password change")
	}
	if _, err := e.srv.DialErr("alice", "old", ""); err == nil {
		t.Fatal("the old password still works")
	}
	e.srv.Dial("alice", "new", "")
}

func TestUserInformation(t *testing.T) {
	e := setup(t)
	e.srv.AddUser("alice", "wonderland")
	e.srv.AddUser("bob", "builder")
	alice := e.srv.Dial("alice", "wonderland", "")
	if _, err := alice.IQ(ctx(t), `<iq type='set' id='r1'><query xmlns='jabber:iq:roster'><item jid='bob@localhost' name='Bob'><group>Friends</group></item></query></iq>`); err != nil {
		t.Fatal(err)
	}
	r := e.run(t, "get-user-roster", adhoc.Values{"accountjids": {"alice@localhost"}})
	if v := field(r, "accountjids"); len(v) != 1 || v[0] != "alice@localhost" {
		t.Fatalf("roster result: %+v", r.Forms)
	}
	raw, err := e.srv.Dial("root", "toor", "").IQ(ctx(t), `<iq type='set' id='x' to='localhost'><command xmlns='http://jabber.org/protocol/commands' node='`+admin.Node("get-user-roster")+`'/></iq>`)
	if err != nil || !strings.Contains(raw, `var="FORM_TYPE"`) {
		t.Fatalf("roster form: %v", err)
	}

	r = e.run(t, "get-user-lastlogin", adhoc.Values{"accountjids": {"alice@localhost", "bob@localhost"}})
	last := field(r, "lastlogin")
	if len(last) != 1 {
		t.Fatalf("lastlogin values %v (bob never logged in)", last)
	}
	if ts, err := time.Parse(time.RFC3339, last[0]); err != nil || time.Since(ts) > time.Minute || !strings.HasSuffix(last[0], "Z") {
		t.Fatalf("lastlogin %q is not a recent XEP-0082 UTC DateTime: %v", last[0], err)
	}

	r = e.run(t, "user-stats", adhoc.Values{"accountjid": {"alice@localhost"}})
	if v := field(r, "archivedmessages"); len(v) != 1 || v[0] != "0" {
		t.Errorf("archivedmessages %v", v)
	}
	if v := field(r, "rostersize"); len(v) != 1 || v[0] != "1" {
		t.Fatalf("rostersize %v", v)
	}
	if v := field(r, "ipaddresses"); len(v) != 1 || v[0] != "127.0.0.1" {
		t.Fatalf("ipaddresses %v", v)
	}
	if v := field(r, "onlineresources"); len(v) != 1 || v[0] != alice.LocalAddr().Resourcepart() {
		t.Fatalf("onlineresources %v", v)
	}

	// A message each way: both are in alice's archive (XEP-0313), which
	// user-stats reports in messages and bytes.
	bob := e.srv.Dial("bob", "builder", "")
	if err := alice.SendRaw(ctx(t), `<message to='`+bob.LocalAddr().String()+`' type='chat' id='m1'><body>hello bob</body></message>`); err != nil {
		t.Fatal(err)
	}
	bob.Next(wait, func(s servertest.Stanza) bool { return s.Name == "message" && s.Attrs["id"] == "m1" })
	if err := bob.SendRaw(ctx(t), `<message to='`+alice.LocalAddr().String()+`' type='chat' id='m2'><body>hello alice</body></message>`); err != nil {
		t.Fatal(err)
	}
	alice.Next(wait, func(s servertest.Stanza) bool { return s.Name == "message" && s.Attrs["id"] == "m2" })
	r = e.run(t, "user-stats", adhoc.Values{"accountjid": {"alice@localhost"}})
	if v := field(r, "archivedmessages"); len(v) != 1 || v[0] != "2" {
		t.Errorf("archivedmessages after a message each way: %v, want 2", v)
	}
	v := field(r, "archivebytes")
	if len(v) != 1 {
		t.Fatalf("archivebytes %v", v)
	}
	// Each archived message is at least its body.
	if n, err := strconv.ParseInt(v[0], 10, 64); err != nil || n < int64(len("hello bob")+len("hello alice")) {
		t.Errorf("archivebytes %q after two messages", v[0])
	}
}

func TestCountsAndLists(t *testing.T) {
	e := setup(t, func(c *config.Config) { c.Admin.IdleAfter = config.Duration(500 * time.Millisecond) })
	for _, u := range []string{"a1", "a2", "a3", "a4"} {
		e.srv.AddUser(u, "pw")
	}
	e.srv.Dial("a1", "pw", "")
	e.srv.Dial("a1", "pw", "") // two sessions, one user
	idle := e.srv.Dial("a2", "pw", "")
	_ = idle
	time.Sleep(700 * time.Millisecond) // everyone idle now
	a1 := e.srv.Dial("a1", "pw", "")   // a1 active again
	if err := a1.SendRaw(ctx(t), `<presence/>`); err != nil {
		t.Fatal(err)
	}

	num := func(name, v string) string {
		t.Helper()
		f := field(e.run(t, name, nil), v)
		if len(f) != 1 {
			t.Fatalf("%s: %v", name, f)
		}
		return f[0]
	}
	// root is online and just ran commands (active); a1 active; a2 idle.
	if got := num("get-registered-users-num", "registeredusersnum"); got != "5" {
		t.Fatalf("registered %s", got)
	}
	if got := num("get-online-users-num", "onlineusersnum"); got != "3" {
		t.Fatalf("online %s", got)
	}
	if got := num("get-active-users-num", "activeusersnum"); got != "2" {
		t.Fatalf("active %s", got)
	}
	if got := num("get-idle-users-num", "idleusersnum"); got != "1" {
		t.Fatalf("idle %s", got)
	}
	list := func(name, v, max string) []string {
		t.Helper()
		return field(e.run(t, name, adhoc.Values{"max_items": {max}}), v)
	}
	if got := strings.Join(list("get-registered-users-list", "registereduserjids", "none"), " "); got != "a1@localhost a2@localhost a3@localhost a4@localhost root@localhost" {
		t.Fatalf("registered list %q", got)
	}
	if got := list("get-registered-users-list", "registereduserjids", "25"); len(got) != 5 {
		t.Fatalf("max_items 25 of 5: %v", got)
	}
	if got := strings.Join(list("get-online-users-list", "onlineuserjids", "none"), " "); got != "a1@localhost a2@localhost root@localhost" {
		t.Fatalf("online list %q", got)
	}
	if got := strings.Join(list("get-active-users", "activeuserjids", "none"), " "); got != "a1@localhost root@localhost" {
		t.Fatalf("active list %q", got)
	}
	if got := strings.Join(list("get-idle-users", "activeuserjids", "none"), " "); got != "a2@localhost" {
		t.Fatalf("idle list %q", got)
	}
}

func TestAnnounce(t *testing.T) {
	e := setup(t)
	e.srv.AddUser("alice", "wonderland")
	e.srv.AddUser("bob", "builder")
	alice := e.srv.Dial("alice", "wonderland", "")
	bob := e.srv.Dial("bob", "builder", "")
	r := e.run(t, "announce", adhoc.Values{"announcement": {"maintenance at noon", "be ready"}})
	if note(r, adhoc.NoteInfo) != "sent the announcement to 3 sessions" {
		t.Fatalf("announce: %+v", r.Notes)
	}
	for _, c := range []*servertest.Client{alice, bob} {
		m := c.Next(wait, func(s servertest.Stanza) bool { return s.Name == "message" })
		if m.Attrs["from"] != "localhost" || !strings.Contains(m.XML, "maintenance at noon\nbe ready") {
			t.Fatalf("announcement received: %q", m.XML)
		}
	}
}

func TestEditAdmin(t *testing.T) {
	e := setup(t)
	e.srv.AddUser("alice", "wonderland")
	alice := adhoc.NewRequester(e.srv.Dial("alice", "wonderland", "").Session)
	if _, err := e.runErr(t, alice, "get-online-users-num", nil); adhoc.Condition(err) != "forbidden" {
		t.Fatalf("alice before: %v", err)
	}
	r := e.run(t, "edit-admin", adhoc.Values{"adminjids": {"alice@localhost"}})
	if !strings.Contains(note(r, adhoc.NoteWarn), "root@localhost stays an administrator") {
		t.Fatalf("configured admin left out: %+v", r.Notes)
	}
	if _, err := e.runErr(t, alice, "get-online-users-num", nil); err != nil {
		t.Fatalf("alice as admin: %v", err)
	}
	// Kept in the store: still an admin after a restart.
	srv2 := e.srv.Restart()
	alice2 := adhoc.NewRequester(srv2.Dial("alice", "wonderland", "").Session)
	if _, err := e.runErr(t, alice2, "get-online-users-num", nil); err != nil {
		t.Fatalf("alice after restart: %v", err)
	}
	root2 := adhoc.NewRequester(srv2.Dial("root", "toor", "").Session)
	if _, err := e.runErr(t, root2, "edit-admin", adhoc.Values{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.runErr(t, alice2, "get-online-users-num", nil); adhoc.Condition(err) != "forbidden" {
		t.Fatalf("alice removed: %v", err)
	}
}

// TestAccessControl: a plain user sees no admin command and is refused each
// one with forbidden; nothing changes.
func TestAccessControl(t *testing.T) {
	e := setup(t)
	e.srv.AddUser("alice", "wonderland")
	e.srv.AddUser("victim", "pw")
	c := e.srv.Dial("alice", "wonderland", "")
	req := adhoc.NewRequester(c.Session)
	cmds, err := req.Commands(ctx(t), domain)
	if err != nil {
		t.Fatal(err)
	}
	for _, cmd := range cmds {
		if strings.HasPrefix(cmd.Node, admin.NS) {
			t.Errorf("a plain user sees %s", cmd.Node)
		}
	}
	rootCmds, err := e.root.Commands(ctx(t), domain)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, cmd := range rootCmds {
		if strings.HasPrefix(cmd.Node, admin.NS) {
			n++
			if _, err := req.Start(ctx(t), domain, cmd.Node); adhoc.Condition(err) != "forbidden" {
				t.Errorf("%s run by a plain user: %v", cmd.Node, err)
			}
		}
	}
	if n < 20 {
		t.Fatalf("the admin sees only %d admin commands", n)
	}
	if a, err := e.srv.Store().Account(ctx(t), "victim"); err != nil || a.Disabled {
		t.Fatalf("victim changed: %+v %v", a, err)
	}
	// get-user-password was retracted from XEP-0133: it does not exist.
	if _, err := e.root.Start(ctx(t), domain, admin.Node("get-user-password")); adhoc.Condition(err) != "item-not-found" {
		t.Fatalf("get-user-password: %v", err)
	}
}

// TestAdminRemovedMidSession: an administrator removed while a command's
// form is open is refused when submitting it, and nothing changes.
func TestAdminRemovedMidSession(t *testing.T) {
	e := setup(t)
	e.srv.AddUser("alice", "wonderland")
	e.run(t, "edit-admin", adhoc.Values{"adminjids": {"alice@localhost"}})
	alice := adhoc.NewRequester(e.srv.Dial("alice", "wonderland", "").Session)
	open, err := alice.Start(ctx(t), domain, admin.Node("add-user"))
	if err != nil {
		t.Fatal(err)
	}
	e.run(t, "edit-admin", adhoc.Values{})
	_, err = alice.Complete(ctx(t), open, adhoc.Values{"accountjid": {"mallory@localhost"}, "password": {"x"}, "password-verify": {"x"}})
	if adhoc.Condition(err) != "forbidden" {
		t.Fatalf("submission after removal: %v", err)
	}
	if _, err := e.srv.Store().Account(ctx(t), "mallory"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("the account was made: %v", err)
	}
}

// TestAuditLog: each admin action writes one audit line naming who, the
// command, the targets and the outcome, and never a password.
func TestAuditLog(t *testing.T) {
	var logs servertest.SyncBuffer
	srv := servertest.StartWith(t, []server.Option{server.WithLogger(slog.New(slog.NewJSONHandler(&logs, nil)))},
		func(c *config.Config) { c.Admins = []string{"root@localhost"} })
	srv.AddUser("root", "toor")
	e := &env{srv: srv, root: adhoc.NewRequester(srv.Dial("root", "toor", "").Session)}
	const secret = "S3cret-Value-42"
	e.run(t, "add-user", adhoc.Values{"accountjid": {"juliet@localhost"}, "password": {secret}, "password-verify": {secret}})
	e.run(t, "change-user-password", adhoc.Values{"accountjid": {"juliet@localhost"}, "password": {secret + "x"}})
	e.run(t, "disable-user", adhoc.Values{"accountjids": {"nobody@localhost"}})
	if strings.Contains(logs.String(), secret) {
		t.Fatal("a password reached the log")
	}
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == "admin action" {
			lines = append(lines, m)
		}
	}
	if len(lines) != 3 {
		t.Fatalf("%d audit lines, want 3:\n%s", len(lines), logs.String())
	}
	want := []struct{ command, target, outcome string }{
		{"add-user", "juliet@localhost", "completed"},
		{"change-user-password", "juliet@localhost", "completed"},
		{"disable-user", "nobody@localhost", "failed: nothing was changed: there is no account nobody@localhost"},
	}
	for i, w := range want {
		l := lines[i]
		targets, _ := l["targets"].([]any)
		if l["by"] != "root@localhost" || l["command"] != w.command || len(targets) != 1 || targets[0] != w.target || l["outcome"] != w.outcome {
			t.Errorf("audit line %d: %v, want %+v", i, l, w)
		}
	}
}

func isHeadline(subject, text string) func(servertest.Stanza) bool {
	return func(s servertest.Stanza) bool {
		return s.Name == "message" && strings.Contains(s.XML, ">"+subject+"</subject>") && strings.Contains(s.XML, text)
	}
}

// login connects, comes online and returns the client.
func login(t *testing.T, srv *servertest.Server, user, pw string) *servertest.Client {
	t.Helper()
	c := srv.Dial(user, pw, "")
	if err := c.SendRaw(ctx(t), `<presence/>`); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestMessageOfTheDay(t *testing.T) {
	e := setup(t)
	e.srv.AddUser("alice", "wonderland")
	e.srv.AddUser("bob", "builder")
	alice := login(t, e.srv, "alice", "wonderland")
	alice.Next(wait, func(s servertest.Stanza) bool { return s.Name == "presence" })

	e.run(t, "set-motd", adhoc.Values{"motd": {"hello all", "second line"}})
	alice.Next(wait, isHeadline("Message of the Day", "hello all\nsecond line"))

	// Bob logs in later: he gets it once, at that login, not at the next.
	bob := login(t, e.srv, "bob", "builder")
	bob.Next(wait, isHeadline("Message of the Day", "hello all"))
	if err := bob.Close(); err != nil {
		t.Fatal(err)
	}
	bob = login(t, e.srv, "bob", "builder")
	if _, ok := bob.Wait(500*time.Millisecond, isHeadline("Message of the Day", "hello all")); ok {
		t.Fatal("the same message of the day was delivered twice")
	}

	// edit-motd shows the current text and delivers the new one.
	raw, err := e.srv.Dial("root", "toor", "").IQ(ctx(t), `<iq type='set' id='m' to='localhost'><command xmlns='http://jabber.org/protocol/commands' node='`+admin.Node("edit-motd")+`'/></iq>`)
	if err != nil || !regexp.MustCompile(`>hello all</value><value[^>]*>second line</value>`).MatchString(raw) {
		t.Fatalf("edit-motd form: %q %v", raw, err)
	}
	e.run(t, "edit-motd", adhoc.Values{"motd": {"changed"}})
	bob.Next(wait, isHeadline("Message of the Day", "changed"))

	e.run(t, "delete-motd", nil)
	e.srv.AddUser("carol", "c")
	carol := login(t, e.srv, "carol", "c")
	if _, ok := carol.Wait(500*time.Millisecond, func(s servertest.Stanza) bool { return s.Name == "message" }); ok {
		t.Fatal("a deleted message of the day was delivered")
	}
}

func TestWelcomeMessage(t *testing.T) {
	e := setup(t)
	e.srv.AddUser("old", "x")
	e.run(t, "set-welcome", adhoc.Values{"welcome": {"welcome aboard"}})
	e.run(t, "add-user", adhoc.Values{"accountjid": {"newbie@localhost"}, "password": {"pw"}, "password-verify": {"pw"}})
	newbie := login(t, e.srv, "newbie", "pw")
	newbie.Next(wait, isHeadline("Welcome", "welcome aboard"))
	if err := newbie.Close(); err != nil {
		t.Fatal(err)
	}
	again := login(t, e.srv, "newbie", "pw")
	old := login(t, e.srv, "old", "x")
	for _, c := range []*servertest.Client{again, old} {
		if _, ok := c.Wait(500*time.Millisecond, isHeadline("Welcome", "welcome aboard")); ok {
			t.Fatal("the welcome message went to an account that is not new, or twice")
		}
	}
	e.run(t, "delete-welcome", nil)
	e.run(t, "add-user", adhoc.Values{"accountjid": {"late@localhost"}, "password": {"pw"}, "password-verify": {"pw"}})
	late := login(t, e.srv, "late", "pw")
	if _, ok := late.Wait(500*time.Millisecond, func(s servertest.Stanza) bool { return s.Name == "message" }); ok {
		t.Fatal("a deleted welcome message was delivered")
	}
}

func TestBlacklistAndWhitelist(t *testing.T) {
	e := setup(t)
	e.srv.AddUser("alice", "wonderland")
	e.srv.AddUser("bob", "builder")
	e.srv.AddUser("carol", "c")
	bob := e.srv.Dial("bob", "builder", "")

	// Blacklisting bob ends his session, refuses his logins, and nobody can
	// send to him; a remote domain can be blacklisted too.
	e.run(t, "edit-blacklist", adhoc.Values{"blacklistjids": {"bob@localhost", "evil.example"}})
	if !bob.Closed(wait) {
		t.Fatal("the blacklisted user's session stayed open")
	}
	if _, err := e.srv.DialErr("bob", "builder", ""); err == nil {
		t.Fatal("a blacklisted user logged in")
	}
	alice := e.srv.RawLogin("alice", "wonderland", "a")
	alice.Write(`<message id='m1' type='chat' to='bob@localhost'><body>hi</body></message>`)
	if got := alice.Expect(`</message>`); !strings.Contains(got, "<forbidden") {
		t.Fatalf("message to a blacklisted JID: %q", got)
	}
	alice.Write(`<message id='m2' type='chat' to='someone@evil.example'><body>hi</body></message>`)
	if got := alice.Expect(`</message>`); !strings.Contains(got, "<forbidden") {
		t.Fatalf("message to a blacklisted domain: %q", got)
	}
	// The form shows the current list; an empty submission clears it.
	raw, err := e.srv.Dial("root", "toor", "").IQ(ctx(t), `<iq type='set' id='b' to='localhost'><command xmlns='http://jabber.org/protocol/commands' node='`+admin.Node("edit-blacklist")+`'/></iq>`)
	if err != nil || !strings.Contains(raw, ">bob@localhost</value>") || !strings.Contains(raw, ">evil.example</value>") {
		t.Fatalf("blacklist form: %q %v", raw, err)
	}
	e.run(t, "edit-blacklist", adhoc.Values{})
	e.srv.Dial("bob", "builder", "")

	// A whitelist of alice only: carol is refused, alice and the admin log in.
	e.run(t, "edit-whitelist", adhoc.Values{"whitelistjids": {"alice@localhost"}})
	if _, err := e.srv.DialErr("carol", "c", ""); err == nil {
		t.Fatal("a user outside the whitelist logged in")
	}
	e.srv.Dial("alice", "wonderland", "")
	e.srv.Dial("root", "toor", "")
	// The lists survive a restart.
	srv2 := e.srv.Restart()
	if _, err := srv2.DialErr("carol", "c", ""); err == nil {
		t.Fatal("the whitelist was lost across a restart")
	}
	// The whole local domain on the whitelist lets every local user in.
	root2 := adhoc.NewRequester(srv2.Dial("root", "toor", "").Session)
	if _, err := (&env{srv: srv2, root: root2}).runErr(t, root2, "edit-whitelist", adhoc.Values{"whitelistjids": {"localhost"}}); err != nil {
		t.Fatal(err)
	}
	srv2.Dial("carol", "c", "")
}

func TestRestartAndShutdown(t *testing.T) {
	stopped := make(chan bool, 2)
	srv := servertest.StartWith(t, []server.Option{server.WithLifecycle(func(restart bool) { stopped <- restart })},
		func(c *config.Config) { c.Admins = []string{"root@localhost"} })
	srv.AddUser("root", "toor")
	srv.AddUser("alice", "wonderland")
	e := &env{srv: srv, root: adhoc.NewRequester(srv.Dial("root", "toor", "").Session)}
	alice := srv.Dial("alice", "wonderland", "")

	start := time.Now()
	r := e.run(t, "restart", adhoc.Values{"announcement": {"back in a minute"}})
	if !strings.Contains(note(r, adhoc.NoteInfo), "restart") {
		t.Fatalf("restart: %+v", r.Notes)
	}
	alice.Next(wait, isHeadline("Announcement", "back in a minute"))
	select {
	case restart := <-stopped:
		if !restart {
			t.Fatal("restart stopped the server without restarting")
		}
		if time.Since(start) < 400*time.Millisecond {
			t.Fatal("the server stopped before the command's reply could be sent")
		}
	case <-time.After(wait):
		t.Fatal("restart never stopped the server")
	}
	e.run(t, "shutdown", nil)
	if restart := <-stopped; restart {
		t.Fatal("shutdown asked for a restart")
	}
	// A delay that is not one of the options is refused.
	_, err := e.runErr(t, e.root, "shutdown", adhoc.Values{"delay": {"7"}})
	if adhoc.Condition(err) != "bad-payload" {
		t.Fatalf("delay 7: %v", err)
	}
}

// TestShutdownWithoutLifecycle: an embedded server with no lifecycle shuts
// itself down; clients get system-shutdown.
func TestShutdownWithoutLifecycle(t *testing.T) {
	e := setup(t)
	e.srv.AddUser("alice", "wonderland")
	alice := e.srv.RawLogin("alice", "wonderland", "a")
	e.run(t, "shutdown", nil)
	if got, _ := alice.ClosedByServer(wait); !strings.Contains(got, "<system-shutdown") {
		t.Fatalf("client got %q", got)
	}
	if !e.srv.Stopping() {
		t.Fatal("the server is not stopping")
	}
}

// runOperator runs one of adhocd's own operator commands as root.
func (e *env) runOperator(t *testing.T, name string) *adhoc.Response {
	t.Helper()
	r, err := e.root.Start(ctx(t), domain, admin.OperatorNode(name))
	if err != nil || r.Status != adhoc.Completed {
		t.Fatalf("%s: %+v %v", name, r, err)
	}
	return r
}

func TestOperatorCommands(t *testing.T) {
	e := setup(t)
	e.srv.AddUser("alice", "wonderland")
	alice := e.srv.Dial("alice", "wonderland", "")
	// An open command session (the add-user form) is counted.
	if _, err := e.root.Start(ctx(t), domain, admin.Node("add-user")); err != nil {
		t.Fatal(err)
	}
	r := e.runOperator(t, "status")
	for f, want := range map[string]string{"sessions": "2", "connections": "2", "online-users": "2", "adhoc-sessions": "1", "version": "(devel)"} {
		if got := field(r, f); len(got) != 1 || got[0] != want {
			t.Errorf("status %s = %v, want %s", f, got, want)
		}
	}
	if in := field(r, "stanzas-in"); len(in) != 1 || in[0] == "0" {
		t.Errorf("stanzas-in %v", in)
	}

	r = e.runOperator(t, "sessions")
	if len(r.Forms) != 1 || len(r.Forms[0].Items) != 2 {
		t.Fatalf("sessions table: %+v", r.Forms)
	}
	found := false
	for _, it := range r.Forms[0].Items {
		vals := map[string]string{}
		for _, f := range it.Fields {
			vals[f.Var] = strings.Join(f.Values, "")
		}
		if vals["jid"] == "alice@localhost" {
			found = vals["resource"] == alice.LocalAddr().Resourcepart() && strings.HasPrefix(vals["address"], "127.0.0.1:")
		}
	}
	if !found {
		t.Fatalf("alice's session is not listed right: %+v", r.Forms[0].Items)
	}
	if !strings.HasPrefix(note(e.runOperator(t, "ping"), adhoc.NoteInfo), "pong at ") {
		t.Fatal("ping")
	}
}

// TestStatusStores: the status command reports what the stores hold: all
// archives together (what alice and bob exchanged, archived on both sides)
// and the offline messages (the one waiting for carol, who is offline),
// the same figures the store counts.
func TestStatusStores(t *testing.T) {
	e := setup(t)
	for _, u := range []string{"alice", "bob", "carol"} {
		e.srv.AddUser(u, "pw")
	}
	figures := func() map[string]string {
		t.Helper()
		r := e.runOperator(t, "status")
		got := map[string]string{}
		for _, f := range []string{"archive-messages", "archive-bytes", "offline-messages", "offline-bytes"} {
			if v := field(r, f); len(v) == 1 {
				got[f] = v[0]
			}
		}
		return got
	}
	if got := figures(); got["archive-messages"] != "0" || got["archive-bytes"] != "0" || got["offline-messages"] != "0" || got["offline-bytes"] != "0" {
		t.Fatalf("status of empty stores: %v", got)
	}

	alice := login(t, e.srv, "alice", "pw")
	bob := login(t, e.srv, "bob", "pw")
	for i := range 3 {
		id := fmt.Sprintf("m%d", i)
		if err := alice.SendRaw(ctx(t), `<message to='bob@localhost' type='chat' id='`+id+`'><body>hello `+id+`</body></message>`); err != nil {
			t.Fatal(err)
		}
		bob.Next(wait, func(s servertest.Stanza) bool { return s.Name == "message" && s.Attrs["id"] == id })
	}
	if err := alice.SendRaw(ctx(t), `<message to='carol@localhost' type='chat' id='c0'><body>call me</body></message>`); err != nil {
		t.Fatal(err)
	}
	// carol's message is kept offline once the router has handled it, and
	// alice's copy archived once it is sent (after it was kept).
	var got map[string]string
	for deadline := time.Now().Add(wait); ; time.Sleep(20 * time.Millisecond) {
		if got = figures(); got["offline-messages"] == "1" && got["archive-messages"] == "8" || time.Now().After(deadline) {
			break
		}
	}
	t.Logf("status: %v", got)
	st := e.srv.Store()
	var messages, size int64
	for _, u := range []string{"alice", "bob", "carol"} {
		n, b, err := st.ArchiveSize(ctx(t), u)
		if err != nil {
			t.Fatal(err)
		}
		messages, size = messages+int64(n), size+b
	}
	// alice's 4 sent, bob's 3 received and carol's 1, archived while she
	// is offline.
	if messages != 8 || got["archive-messages"] != fmt.Sprint(messages) || got["archive-bytes"] != fmt.Sprint(size) {
		t.Errorf("status archive-messages %s, archive-bytes %s; the archives hold %d messages, %d bytes", got["archive-messages"], got["archive-bytes"], messages, size)
	}
	offBytes, offMessages := st.(storage.OfflineUsageReporter).OfflineUsage()
	if got["offline-messages"] != "1" || offMessages != 1 || got["offline-bytes"] != fmt.Sprint(offBytes) || offBytes == 0 {
		t.Errorf("status offline-messages %s, offline-bytes %s; the store keeps %d messages, %d bytes", got["offline-messages"], got["offline-bytes"], offMessages, offBytes)
	}
}

func TestReload(t *testing.T) {
	var next config.Config
	srv := servertest.StartWith(t, []server.Option{server.WithReload(func() (config.Config, error) { return next, nil })},
		func(c *config.Config) { c.Admins = []string{"root@localhost"} })
	srv.AddUser("root", "toor")
	srv.AddUser("alice", "wonderland")
	e := &env{srv: srv, root: adhoc.NewRequester(srv.Dial("root", "toor", "").Session)}
	alice := login(t, srv, "alice", "wonderland")
	aliceReq := adhoc.NewRequester(alice.Session)
	if _, err := e.runErr(t, aliceReq, "get-online-users-num", nil); adhoc.Condition(err) != "forbidden" {
		t.Fatalf("alice before the reload: %v", err)
	}

	next = srv.Config()
	next.Admins = append(next.Admins, "alice@localhost")
	next.Limits.MaxStanzaBytes = 2048
	next.Admin.MOTD = "from config.yaml"
	next.C2S.Listen = "127.0.0.1:1"
	r := e.runOperator(t, "reload")
	if !strings.Contains(note(r, adhoc.NoteWarn), "c2s") {
		t.Fatalf("a changed c2s.listen is not reported: %+v", r.Notes)
	}
	if _, err := e.runErr(t, aliceReq, "get-online-users-num", nil); err != nil {
		t.Fatalf("alice after the reload: %v", err)
	}
	alice.Next(wait, isHeadline("Message of the Day", "from config.yaml"))
	// The new stanza limit applies to the streams opened after the reload.
	raw := srv.RawLogin("root", "toor", "raw")
	raw.Write(`<message to='alice@localhost'><body>` + strings.Repeat("x", 3000) + `</body></message>`)
	if got, _ := raw.ClosedByServer(wait); !strings.Contains(got, "<policy-violation") {
		t.Fatalf("the reloaded limit is not in force: %q", got)
	}
}

// TestOtherDomainRefused: a requester of another domain (adhocd has no
// server-to-server links, so only a program embedding it could deliver one)
// is refused every admin node, even with an administrator's localpart.
func TestOtherDomainRefused(t *testing.T) {
	e := setup(t)
	e.srv.AddUser("victim", "pw")
	stranger := jid.MustParse("root@evil.example/x")
	for _, name := range []string{"add-user", "delete-user", "disable-user", "get-registered-users-num", "shutdown", "edit-admin"} {
		start := xml.StartElement{Name: xml.Name{Space: adhoc.NS, Local: "command"}, Attr: []xml.Attr{{Name: xml.Name{Local: "node"}, Value: admin.Node(name)}}}
		iq := stanza.IQ{ID: "x", Type: stanza.SetIQ, From: stranger, To: domain}
		if _, err := e.srv.Commands().Handle(ctx(t), iq, start, nil); adhoc.Condition(err) != "forbidden" {
			t.Errorf("%s from another domain: %v", name, err)
		}
	}
	if a, err := e.srv.Store().Account(ctx(t), "victim"); err != nil || a.Disabled {
		t.Fatalf("victim changed: %+v %v", a, err)
	}
}
