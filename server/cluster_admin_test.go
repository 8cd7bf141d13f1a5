package server_test

import (
	"context"
	"encoding/base64"
	"errors"
	"html"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/adhoc"
	"github.com/adhocd/adhocd/cluster/redistest"
	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/modules/admin"
	"github.com/adhocd/adhocd/server"
	"github.com/adhocd/adhocd/servertest"
	"github.com/adhocd/adhocd/storage"
	"github.com/adhocd/adhocd/storage/postgres/pgtest"
)

// The administrator of the cluster tests, an administrator by
// config.yaml on every replica.
const rootJID, rootPassword = "root@localhost", "pw-root"

func withRoot(c *config.Config) { c.Admins = []string{rootJID} }

// runAdmin runs the XEP-0133 command name at the server JID through req
// (a real XMPP client), submitting v at its form if it shows one, and
// returns the final response.
func runAdmin(t *testing.T, srv *servertest.Server, req *adhoc.Requester, name string, v adhoc.Values) *adhoc.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	r, err := req.Run(ctx, srv.Domain(), admin.Node(name), func(_ context.Context, r *adhoc.Response) (adhoc.Action, adhoc.Values, error) {
		return adhoc.Complete, v, nil
	})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if r.Status != adhoc.Completed {
		t.Fatalf("%s: status %s, want completed", name, r.Status)
	}
	return r
}

// notes joins a response's notes; any error note fails the test.
func notes(t *testing.T, name string, r *adhoc.Response) string {
	t.Helper()
	var out []string
	for _, n := range r.Notes {
		if n.Type == adhoc.NoteError {
			t.Fatalf("%s: error note %q", name, n.Text)
		}
		out = append(out, n.Text)
	}
	return strings.Join(out, " ")
}

// values returns the values of the result form's field name.
func values(r *adhoc.Response, name string) []string {
	for _, f := range r.Forms {
		for _, fl := range f.Fields {
			if fl.Var == name {
				return fl.Values
			}
		}
	}
	return nil
}

// online logs user in on srv with resource res (password pw-user) and
// sends initial presence, which comes back from the user's own JID.
func online(t *testing.T, srv *servertest.Server, user, res string) *servertest.Raw {
	t.Helper()
	r := srv.RawLogin(user, "pw-"+user, res)
	r.Write(`<presence/>`)
	r.Expect(`<presence[^>]*from=["']` + user + `@localhost/` + res + `["']`)
	return r
}

// alive checks that r's stream still serves it: its roster query is
// answered.
func alive(t *testing.T, r *servertest.Raw, what string) {
	t.Helper()
	r.Write(`<iq type='get' id='alive'><query xmlns='jabber:iq:roster'/></iq>`)
	if got, ok := r.ReadUntil(`<iq[^>]*id=["']alive["']`, wait); !ok {
		t.Fatalf("%s: the stream no longer answers: %q", what, got)
	}
}

// ended checks that the server closed r's stream with a not-authorized
// stream error whose text is reason.
func ended(t *testing.T, r *servertest.Raw, what, reason string) {
	t.Helper()
	got, ok := r.ClosedByServer(wait)
	got = html.UnescapeString(got)
	if !ok || !strings.Contains(got, "not-authorized") || !strings.Contains(got, reason) {
		t.Fatalf("%s: %q (closed %v), want a not-authorized stream error saying %q", what, got, ok, reason)
	}
}

// refused tries SASL PLAIN for user on srv and returns the failure the
// server answers; a success fails the test.
func refused(t *testing.T, srv *servertest.Server, user, password string) string {
	t.Helper()
	r := srv.RawDial()
	r.StartTLS(srv.ClientTLS)
	r.Write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>` +
		base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+password)) + `</auth>`)
	got := html.UnescapeString(r.Expect(`<success|</failure>|<failure[^>]*/>`))
	if strings.Contains(got, "<success") {
		t.Fatalf("%s logged in on replica %s: %s", user, srv.Config().Cluster.Replica, got)
	}
	return got
}

// TestClusterAdminCommands: an administrator on replica a runs the
// XEP-0133 commands over XMPP, and they act on the users of every
// replica. The counts and lists of online, active and idle users include
// the sessions of b and c; end-user-session, disable-user, delete-user
// and change-user-password end streams held by b and c (a disabled,
// deleted or re-passworded account cannot log in on another replica);
// an announcement reaches the users of b and c; a message of the day set
// on a reaches a user online on b at once, and a later login on c once,
// not again through another replica.
func TestClusterAdminCommands(t *testing.T) {
	const idle = 3 * time.Second
	rs := replicas(t, 3, withRoot, func(c *config.Config) { c.Admin.IdleAfter = config.Duration(idle) })
	a, b, c := rs[0], rs[1], rs[2]
	for _, u := range []string{"root", "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "judy"} {
		a.AddUser(u, "pw-"+u)
	}
	root := adhoc.NewRequester(a.Dial("root", rootPassword, "").Session)
	run := func(name string, v adhoc.Values) *adhoc.Response { t.Helper(); return runAdmin(t, a, root, name, v) }

	// Counts and lists. Alice (on a) and dave (on c) say nothing for
	// longer than admin.idle_after; bob (b) and carol (c) speak just
	// before the commands, and root runs them.
	alice := online(t, a, "alice", "laptop")
	bob := online(t, b, "bob", "phone")
	carol := online(t, c, "carol", "tablet")
	dave := online(t, c, "dave", "desk")
	time.Sleep(idle + idle/2)
	for _, r := range []*servertest.Raw{bob, carol} {
		alive(t, r, "an active user")
	}
	if n := values(run("get-online-users-num", nil), "onlineusersnum"); !slices.Equal(n, []string{"5"}) {
		t.Errorf("get-online-users-num on replica a: %q, want 5 (root and alice on a, bob on b, carol and dave on c)", n)
	}
	all := adhoc.Values{"max_items": {"none"}}
	if l := values(run("get-online-users-list", all), "onlineuserjids"); !slices.Equal(l, []string{"alice@localhost", "bob@localhost", "carol@localhost", "dave@localhost", rootJID}) {
		t.Errorf("get-online-users-list on replica a: %q, want the users of every replica", l)
	}
	if l := values(run("get-active-users", all), "activeuserjids"); !slices.Equal(l, []string{"bob@localhost", "carol@localhost", rootJID}) {
		t.Errorf("get-active-users on replica a: %q, want bob (on b), carol (on c) and root", l)
	}
	if n := values(run("get-active-users-num", nil), "activeusersnum"); !slices.Equal(n, []string{"3"}) {
		t.Errorf("get-active-users-num on replica a: %q, want 3", n)
	}
	// XEP-0133 §4.22 names the idle list's field activeuserjids.
	if l := values(run("get-idle-users", all), "activeuserjids"); !slices.Equal(l, []string{"alice@localhost", "dave@localhost"}) {
		t.Errorf("get-idle-users on replica a: %q, want alice (on a) and dave (on c)", l)
	}
	if n := values(run("get-idle-users-num", nil), "idleusersnum"); !slices.Equal(n, []string{"2"}) {
		t.Errorf("get-idle-users-num on replica a: %q, want 2", n)
	}

	// end-user-session: one resource by its full JID (on c), then every
	// session of the account (the one left, on b).
	erinPhone := online(t, b, "erin", "phone")
	erinDesk := online(t, c, "erin", "desk")
	if got := notes(t, "end-user-session", run("end-user-session", adhoc.Values{"accountjids": {"erin@localhost/desk"}})); !strings.Contains(got, "ended 1 session") {
		t.Fatalf("end-user-session of erin's resource on c: %q", got)
	}
	ended(t, erinDesk, "erin's session on c after end-user-session of its full JID", "the session was ended by an administrator")
	alive(t, erinPhone, "erin's other resource, on b")
	if got := notes(t, "end-user-session", run("end-user-session", adhoc.Values{"accountjids": {"erin@localhost"}})); !strings.Contains(got, "ended 1 session") {
		t.Fatalf("end-user-session of erin's bare JID: %q", got)
	}
	ended(t, erinPhone, "erin's session on b after end-user-session of her bare JID", "the session was ended by an administrator")

	// disable-user: frank's stream on c ends, and he cannot log in on c.
	frank := online(t, c, "frank", "laptop")
	if got := notes(t, "disable-user", run("disable-user", adhoc.Values{"accountjids": {"frank@localhost"}})); !strings.Contains(got, "disabled 1 account") {
		t.Fatalf("disable-user: %q", got)
	}
	ended(t, frank, "frank's session on c after disable-user", "the account was disabled")
	if got := refused(t, c, "frank", "pw-frank"); !strings.Contains(got, "account-disabled") {
		t.Fatalf("the disabled account's login on c: %s, want account-disabled", got)
	}

	// delete-user: grace's stream on b ends, the account is gone, she
	// cannot log in on c.
	grace := online(t, b, "grace", "phone")
	if got := notes(t, "delete-user", run("delete-user", adhoc.Values{"accountjids": {"grace@localhost"}})); !strings.Contains(got, "deleted 1 account") {
		t.Fatalf("delete-user: %q", got)
	}
	ended(t, grace, "grace's session on b after delete-user", "the account was deleted")
	if _, err := c.Store().Account(context.Background(), "grace"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("the deleted account, read by replica c: %v, want ErrNotFound", err)
	}
	if got := refused(t, c, "grace", "pw-grace"); !strings.Contains(got, "not-authorized") {
		t.Fatalf("the deleted account's login on c: %s, want not-authorized", got)
	}

	// change-user-password: heidi's streams on b and c end; the old
	// password no longer logs in, the new one does.
	heidiB, heidiC := online(t, b, "heidi", "phone"), online(t, c, "heidi", "desk")
	got := notes(t, "change-user-password", run("change-user-password", adhoc.Values{"accountjid": {"heidi@localhost"}, "password": {"new-heidi"}}))
	if !strings.Contains(got, "changed the password of heidi@localhost and ended 2 other sessions") {
		t.Fatalf("change-user-password: %q", got)
	}
	ended(t, heidiB, "heidi's session on b after change-user-password", "the password was changed")
	ended(t, heidiC, "heidi's session on c after change-user-password", "the password was changed")
	if got := refused(t, b, "heidi", "pw-heidi"); !strings.Contains(got, "not-authorized") {
		t.Fatalf("the old password on b: %s, want not-authorized", got)
	}
	heidi := b.RawLogin("heidi", "new-heidi", "phone")
	eventually(t, wait, "the ended sessions gone from the directory", func() bool { return len(a.Sessions()) == 6 })

	// announce: to every session of every replica (root, alice, bob,
	// carol, dave and heidi's new one).
	if got := notes(t, "announce", run("announce", adhoc.Values{"announcement": {"maintenance at noon"}})); !strings.Contains(got, "sent the announcement to 6 sessions") {
		t.Fatalf("announce: %q", got)
	}
	for _, u := range []struct {
		name string
		r    *servertest.Raw
	}{{"alice on a", alice}, {"bob on b", bob}, {"carol on c", carol}, {"dave on c", dave}, {"heidi on b", heidi}} {
		got := u.r.Expect(`maintenance at noon(?s:.*?)</message>`)
		if !strings.Contains(got, "<subject>Announcement</subject>") || !strings.Contains(got, "headline") {
			t.Fatalf("the announcement as %s got it: %s", u.name, got)
		}
	}

	// set-motd: at once to the available sessions (alice, bob, carol,
	// dave; heidi sent no presence), each once.
	if got := notes(t, "set-motd", run("set-motd", adhoc.Values{"motd": {"welcome to the cluster"}})); !strings.Contains(got, "4 sessions online got it now") {
		t.Fatalf("set-motd: %q", got)
	}
	motd := `<subject>Message of the Day</subject>`
	for _, u := range []struct {
		name string
		r    *servertest.Raw
	}{{"bob on b", bob}, {"carol on c", carol}} {
		if got := u.r.Expect(`welcome to the cluster(?s:.*?)</message>`); strings.Count(got, motd) != 1 {
			t.Fatalf("the message of the day as %s got it: %s", u.name, got)
		}
		if got, ok := u.r.ReadUntil(`welcome to the cluster`, 500*time.Millisecond); ok {
			t.Fatalf("%s got the message of the day again: %s", u.name, got)
		}
	}
	// Judy was offline: her next login, on c, gets it once; her logins
	// on b and a afterwards do not.
	judy := c.RawLogin("judy", "pw-judy", "tablet")
	judy.Write(`<presence/>`)
	if got := judy.Expect(`welcome to the cluster(?s:.*?)</message>`); strings.Count(got, motd) != 1 {
		t.Fatalf("judy's first login after set-motd, on c: %s", got)
	}
	if got, ok := judy.ReadUntil(`welcome to the cluster`, 500*time.Millisecond); ok {
		t.Fatalf("judy got the message of the day twice on c: %s", got)
	}
	for _, r := range []*servertest.Server{b, a} {
		again := r.RawLogin("judy", "pw-judy", "other-"+r.Config().Cluster.Replica)
		again.Write(`<presence/>`)
		if got, ok := again.ReadUntil(`welcome to the cluster`, time.Second); ok {
			t.Fatalf("judy's later login on replica %s got the message of the day again: %s", r.Config().Cluster.Replica, got)
		}
	}
}

// TestClusterWhitelist: a whitelist set with edit-whitelist on one
// replica is in force on the others within a second: a session there
// that it does not list ends (not-authorized), the listed one and the
// administrator's stay, the unlisted account cannot log in on any
// replica, and every replica's edit-whitelist form shows the list. Emptied
// from another replica, it lets everyone in again.
func TestClusterWhitelist(t *testing.T) {
	rs := replicas(t, 3, withRoot)
	a, b, c := rs[0], rs[1], rs[2]
	for _, u := range []string{"root", "alice", "bob"} {
		a.AddUser(u, "pw-"+u)
	}
	rootA := adhoc.NewRequester(a.Dial("root", rootPassword, "").Session)
	rootB := b.RawLogin("root", rootPassword, "console")
	alice := online(t, b, "alice", "laptop")
	bob := online(t, b, "bob", "phone")

	if got := notes(t, "edit-whitelist", runAdmin(t, a, rootA, "edit-whitelist", adhoc.Values{"whitelistjids": {"alice@localhost"}})); !strings.Contains(got, "the list has 1 entry") {
		t.Fatalf("edit-whitelist on a: %q", got)
	}
	set := time.Now()
	for _, r := range []*servertest.Server{b, c} {
		eventually(t, time.Second, "the whitelist on replica "+r.Config().Cluster.Replica, func() bool {
			_, white := r.AccessLists()
			return slices.Equal(white, []string{"alice@localhost"})
		})
	}
	ended(t, bob, "bob's session on b, not on the whitelist", "blocked by the server's access lists")
	if d := time.Since(set); d > time.Second {
		t.Errorf("bob's session on b ended %s after the whitelist was set on a, want within a second", d)
	}
	alive(t, alice, "alice's session on b, on the whitelist")
	alive(t, rootB, "the administrator's session on b, not on the whitelist")
	for _, r := range rs {
		if got := refused(t, r, "bob", "pw-bob"); !strings.Contains(got, "blocked by the server's access lists") {
			t.Fatalf("bob's login on replica %s under the whitelist: %s", r.Config().Cluster.Replica, got)
		}
	}
	c.RawLogin("alice", "pw-alice", "desk") // listed: logs in elsewhere too

	// The form on c shows the list set on a; emptied there, a lets bob in.
	rootC := adhoc.NewRequester(c.Dial("root", rootPassword, "").Session)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	resp, err := rootC.Start(ctx, c.Domain(), admin.Node("edit-whitelist"))
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Forms) == 0 || !slices.Equal(values(resp, "whitelistjids"), []string{"alice@localhost"}) {
		t.Fatalf("edit-whitelist's form on c: %+v, want the list set on a", resp.Forms)
	}
	resp, err = rootC.Complete(ctx, resp, adhoc.Values{"whitelistjids": nil})
	if err != nil || resp.Status != adhoc.Completed {
		t.Fatalf("emptying the whitelist on c: %+v, %v", resp, err)
	}
	eventually(t, time.Second, "the empty whitelist on replica a", func() bool { _, white := a.AccessLists(); return len(white) == 0 })
	a.RawLogin("bob", "pw-bob", "phone")
}

// TestClusterShutdownIsPerReplica: the XEP-0133 shutdown command run on
// one replica shuts that replica alone down (the lifecycle gets restart
// false), says so in its note, and announces it to that replica's users,
// not to those of the others; once it stopped, its users are gone from
// the directory and the other replica serves on.
func TestClusterShutdownIsPerReplica(t *testing.T) {
	dsn, rd := pgtest.Start(t), redistest.Start(t)
	stopped := make(chan bool, 1)
	a := servertest.StartConfig(t, replicaConfig(t, dsn, rd.Addr(), 0, withRoot), server.WithLifecycle(func(restart bool) { stopped <- restart }))
	b := servertest.StartConfig(t, replicaConfig(t, dsn, rd.Addr(), 1, withRoot))
	for _, u := range []string{"root", "alice", "bob"} {
		a.AddUser(u, "pw-"+u)
	}
	alice := a.RawLogin("alice", "pw-alice", "laptop")
	bob := b.RawLogin("bob", "pw-bob", "phone")
	eventually(t, wait, "both sessions in the directory", func() bool { return len(b.Sessions()) == 2 })

	root := adhoc.NewRequester(a.Dial("root", rootPassword, "").Session)
	got := notes(t, "shutdown", runAdmin(t, a, root, "shutdown", adhoc.Values{"announcement": {"this replica shuts down"}}))
	if !strings.Contains(got, "this replica will shut down in 0s") || !strings.Contains(got, "other replicas of the cluster go on") ||
		!strings.Contains(got, "the announcement went to its 2 sessions") {
		t.Fatalf("shutdown's note in a cluster: %q", got)
	}
	alice.Expect(`this replica shuts down`)
	if got, ok := bob.ReadUntil(`this replica shuts down`, 300*time.Millisecond); ok {
		t.Fatalf("a user of another replica got the announcement: %s", got)
	}
	select {
	case restart := <-stopped:
		if restart {
			t.Fatal("shutdown asked the lifecycle for a restart")
		}
	case <-time.After(wait):
		t.Fatal("shutdown never stopped the replica")
	}

	// What adhocd does when the lifecycle says stop: this replica shuts
	// down; the other goes on without it.
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	if got, ok := alice.ClosedByServer(wait); !ok || !strings.Contains(got, "system-shutdown") {
		t.Fatalf("a stream of the replica shut down: %q (closed %v), want system-shutdown", got, ok)
	}
	eventually(t, wait, "the stopped replica's sessions gone from the directory", func() bool {
		s := b.Sessions()
		return len(s) == 1 && s[0].JID.String() == "bob@localhost/phone"
	})
	alive(t, bob, "a stream of the other replica")
}

// inbox reads a mellium client's stanzas in any order: what a wait skips
// is kept for the next.
type inbox struct {
	name string
	c    *servertest.Client
	kept []servertest.Stanza
}

func newInbox(name string, c *servertest.Client) *inbox { return &inbox{name: name, c: c} }

// want returns the first stanza, kept or new, for which match is true,
// and fails the test if none comes within wait.
func (in *inbox) want(t *testing.T, what string, match func(servertest.Stanza) bool) servertest.Stanza {
	t.Helper()
	if i := slices.IndexFunc(in.kept, match); i >= 0 {
		st := in.kept[i]
		in.kept = slices.Delete(in.kept, i, i+1)
		return st
	}
	deadline := time.Now().Add(wait)
	for {
		st, ok := in.c.Wait(time.Until(deadline), nil)
		if !ok {
			var got []string
			for _, k := range in.kept {
				got = append(got, k.XML)
			}
			t.Fatalf("%s: %s: not received within %s; received meanwhile:\n%s", in.name, what, wait, strings.Join(got, "\n"))
		}
		if match(st) {
			return st
		}
		in.kept = append(in.kept, st)
	}
}

// none fails the test if a stanza for which match is true is kept or
// comes within d.
func (in *inbox) none(t *testing.T, what string, d time.Duration, match func(servertest.Stanza) bool) {
	t.Helper()
	if i := slices.IndexFunc(in.kept, match); i >= 0 {
		t.Fatalf("%s: %s: %s", in.name, what, in.kept[i].XML)
	}
	deadline := time.Now().Add(d)
	for {
		st, ok := in.c.Wait(time.Until(deadline), nil)
		if !ok {
			return
		}
		if match(st) {
			t.Fatalf("%s: %s: %s", in.name, what, st.XML)
		}
		in.kept = append(in.kept, st)
	}
}

// jid is the full JID the client was bound to.
func (in *inbox) jid() string { return in.c.LocalAddr().String() }

// presence matches a presence of type typ ("" available) from from,
// whose XML contains each of contains.
func presence(typ, from string, contains ...string) func(servertest.Stanza) bool {
	return func(st servertest.Stanza) bool {
		if st.Name != "presence" || st.Attrs["type"] != typ || st.Attrs["from"] != from {
			return false
		}
		for _, s := range contains {
			if !strings.Contains(st.XML, s) {
				return false
			}
		}
		return true
	}
}

// rosterPush matches a roster push (RFC 6121 §2.1.6) of the item of
// contact with subscription sub and ask ("" or "subscribe").
func rosterPush(contact, sub, ask string) func(servertest.Stanza) bool {
	return func(st servertest.Stanza) bool {
		// From the server: no from (RFC 6121 §2.1.6).
		if st.Name != "iq" || st.Attrs["type"] != "set" || st.Attrs["from"] != "" {
			return false
		}
		var q struct {
			Items []struct {
				JID          string `xml:"jid,attr"`
				Subscription string `xml:"subscription,attr"`
				Ask          string `xml:"ask,attr"`
			} `xml:"query>item"`
		}
		if st.Decode(&q) != nil || len(q.Items) != 1 {
			return false
		}
		it := q.Items[0]
		return it.JID == contact && it.Subscription == sub && it.Ask == ask
	}
}

// TestClusterSubscription: a presence subscription between alice (on a,
// and on c) and bob (on b, and on a), made with real subscription
// stanzas (RFC 6121 §3): each side's resources on every replica get the
// request or the approval and the roster pushes, alice then gets bob's
// presence from both his replicas (and he does not get hers: the
// subscription is one way), and after alice unsubscribes from one of her
// other replica's resources she gets his unavailable presence and no more
// of his updates.
func TestClusterSubscription(t *testing.T) {
	rs := replicas(t, 3)
	a, b, c := rs[0], rs[1], rs[2]
	a.AddUser("alice", "pw-alice")
	a.AddUser("bob", "pw-bob")
	alice1, alice2 := newInbox("alice on a", a.Dial("alice", "pw-alice", "")), newInbox("alice on c", c.Dial("alice", "pw-alice", ""))
	bob1, bob2 := newInbox("bob on b", b.Dial("bob", "pw-bob", "")), newInbox("bob on a", a.Dial("bob", "pw-bob", ""))
	ctx := servertest.Context(t, time.Minute)
	send := func(in *inbox, xml string) {
		t.Helper()
		if err := in.c.SendRaw(ctx, xml); err != nil {
			t.Fatalf("%s: send %s: %v", in.name, xml, err)
		}
	}
	for _, in := range []*inbox{alice1, alice2, bob1, bob2} {
		// Interested in roster pushes, and available.
		if _, err := in.c.IQ(ctx, `<iq type='get' id='roster1'><query xmlns='jabber:iq:roster'/></iq>`); err != nil {
			t.Fatalf("%s: roster: %v", in.name, err)
		}
		send(in, `<presence/>`)
		in.want(t, "its own initial presence", presence("", in.jid()))
	}

	// A third resource of bob, on c, never asked for the roster: it gets
	// the request but no roster push.
	bob3 := c.RawLogin("bob", "pw-bob", "watch")
	bob3.Write(`<presence/>`)
	bob3.Expect(`<presence[^>]*from=["']bob@localhost/watch["']`)

	// alice (on a) asks.
	send(alice1, `<presence to='bob@localhost' type='subscribe'/>`)
	for _, in := range []*inbox{alice1, alice2} {
		in.want(t, "the roster push of her request", rosterPush("bob@localhost", "none", "subscribe"))
	}
	for _, in := range []*inbox{bob1, bob2} {
		in.want(t, "alice's request", presence("subscribe", "alice@localhost"))
	}
	bob3.Expect(`<presence[^>]*type=["']subscribe["']`)

	// bob (on b) approves.
	send(bob1, `<presence to='alice@localhost' type='subscribed'/>`)
	for _, in := range []*inbox{bob1, bob2} {
		in.want(t, "the roster push of his approval", rosterPush("alice@localhost", "from", ""))
	}
	if got, ok := bob3.ReadUntil(`jabber:iq:roster`, 500*time.Millisecond); ok {
		t.Fatalf("a roster push to a resource on another replica that never asked for the roster: %s", got)
	}

	for _, in := range []*inbox{alice1, alice2} {
		in.want(t, "bob's approval", presence("subscribed", "bob@localhost"))
		in.want(t, "the roster push of the approval", rosterPush("bob@localhost", "to", ""))
		in.want(t, "bob's presence on b", presence("", bob1.jid()))
		in.want(t, "bob's presence on a", presence("", bob2.jid()))
	}
	for _, it := range []struct{ user, contact string }{{"alice", "bob@localhost"}, {"bob", "alice@localhost"}} {
		got, err := c.Store().RosterItem(ctx, it.user, it.contact)
		want := map[string]storage.Subscription{"alice": storage.SubTo, "bob": storage.SubFrom}[it.user]
		if err != nil || got.Subscription != want || got.AskOut || got.PendingIn {
			t.Fatalf("%s's roster item %s: %+v, %v; want subscription %s, nothing pending", it.user, it.contact, got, err, want)
		}
	}

	// Presence afterwards: bob's reaches alice's resources on both her
	// replicas; hers does not reach him.
	send(bob2, `<presence><status>out for lunch</status></presence>`)
	for _, in := range []*inbox{alice1, alice2} {
		in.want(t, "bob's new presence", presence("", bob2.jid(), "out for lunch"))
	}
	send(alice2, `<presence><status>at my desk</status></presence>`)
	alice1.want(t, "her own other resource's presence", presence("", alice2.jid(), "at my desk"))
	for _, in := range []*inbox{bob1, bob2} {
		in.none(t, "alice's presence without a subscription to her", 500*time.Millisecond, presence("", alice2.jid(), "at my desk"))
	}

	// alice (on c) unsubscribes.
	send(alice2, `<presence to='bob@localhost' type='unsubscribe'/>`)
	for _, in := range []*inbox{alice1, alice2} {
		in.want(t, "the roster push of her unsubscription", rosterPush("bob@localhost", "none", ""))
		in.want(t, "bob's unavailable presence on b", presence("unavailable", bob1.jid()))
		in.want(t, "bob's unavailable presence on a", presence("unavailable", bob2.jid()))
	}
	for _, in := range []*inbox{bob1, bob2} {
		in.want(t, "alice's unsubscription", presence("unsubscribe", "alice@localhost"))
		in.want(t, "the roster push of her unsubscription", rosterPush("alice@localhost", "none", ""))
	}
	send(bob1, `<presence><status>back</status></presence>`)
	for _, in := range []*inbox{alice1, alice2} {
		in.none(t, "bob's presence after the unsubscription", 500*time.Millisecond, presence("", bob1.jid(), "back"))
	}
}
