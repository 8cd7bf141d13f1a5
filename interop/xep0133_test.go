package interop_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/adhocd/adhocd/adhoc"
	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/modules/admin"
	"github.com/adhocd/adhocd/servertest"
	"github.com/adhocd/adhocd/storage"
)

// xep0133Outcome is what slixmpp_xep0133.py reports of one helper: a RESULT
// (status, notes, the form the server first answered, the result forms) or
// an ERROR (the error IQ's condition).
type xep0133Outcome struct {
	Kind    string              `json:"-"` // RESULT or ERROR
	Status  string              `json:"status"`
	Notes   [][2]string         `json:"notes"`
	Initial map[string][]string `json:"initial"`
	Forms   []struct {
		Type   string              `json:"type"`
		Fields map[string][]string `json:"fields"`
		Roster []xep0133RosterItem `json:"roster"`
	} `json:"forms"`
	Condition string `json:"condition"`
	ErrType   string `json:"type"`
	Text      string `json:"text"`
}

type xep0133RosterItem struct {
	JID          string   `json:"jid"`
	Name         string   `json:"name"`
	Subscription string   `json:"subscription"`
	Groups       []string `json:"groups"`
}

// field returns the values of var in the first result form that has it.
func (o xep0133Outcome) field(name string) []string {
	for _, f := range o.Forms {
		if v, ok := f.Fields[name]; ok {
			return v
		}
	}
	return nil
}

func (o xep0133Outcome) note(typ string) string {
	for _, n := range o.Notes {
		if n[0] == typ {
			return n[1]
		}
	}
	return ""
}

// xep0133Report is everything the script printed.
type xep0133Report struct {
	helpers  []string                    // HELPER lines: the plugin's helpers
	commands []string                    // COMMAND lines: disco#items nodes
	outcomes map[string][]xep0133Outcome // by helper, in the order run
	mechs    []string
	failures []string
	ok       bool
}

// xep0133NotFound are the helpers of slixmpp 1.8.3 whose nodes adhocd does
// not have: get-user-password was retracted from XEP-0133, and
// get-online-users and get-idle-userslist are slixmpp's own names, not
// XEP-0133's (which has get-online-users-list and get-idle-users; slixmpp
// has a helper for the first and none for the second).
var xep0133NotFound = []string{"get_user_password", "get_online_users", "get_idle_userslist"}

// TestSlixmppAdminHelpers runs every XEP-0133 helper of slixmpp's xep_0133
// plugin as an administrator, except restart and shutdown (they would stop
// the server under the test; modules/admin tests them), and checks what
// each did to the server: accounts made, deleted, disabled and re-enabled,
// sessions ended, passwords changed, messages delivered to a client logged
// in with mellium, settings, access lists and admins stored, and the
// numbers and lists computed here from the accounts and sessions the test
// made. Helpers whose commands adhocd does not have must fail with
// item-not-found.
func TestSlixmppAdminHelpers(t *testing.T) {
	requireSlixmpp(t)
	const idleAfter = 2 * time.Second
	srv := servertest.Start(t, func(c *config.Config) {
		c.Admins = []string{"root@localhost"}
		c.Admin.IdleAfter = config.Duration(idleAfter)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const wait = 5 * time.Second

	// The listener comes online first and then sends nothing: by the time
	// the script counts, it is idle and the administrator is active.
	const listenerPW = "listener-pw"
	beforeLogin := time.Now()
	listenerJID := srv.AddUser("listener", listenerPW)
	listener := srv.Dial("listener", listenerPW, "")
	if err := listener.SendRaw(ctx, `<presence/>`); err != nil {
		t.Fatal(err)
	}
	if _, err := listener.IQ(ctx, `<iq type='set' id='r1'><query xmlns='jabber:iq:roster'><item jid='friend@localhost' name='Friend'><group>Pals</group></item></query></iq>`); err != nil {
		t.Fatal(err)
	}
	quietSince := time.Now()

	const rootPW = "toor"
	rootJID := srv.AddUser("root", rootPW)
	oldPW := "old-" + randomHex(t, 8)
	users := map[string]string{} // every account the test made, and its password
	for _, u := range []string{"victim", "alpha", "bravo", "charlie", "delta", "banned", "ops"} {
		pw := u + "-pw"
		if u == "charlie" {
			pw = oldPW
		}
		srv.AddUser(u, pw)
		users[u] = pw
	}
	users["root"], users["listener"] = rootPW, listenerPW
	delta := srv.Dial("delta", users["delta"], "")
	banned := srv.Dial("banned", users["banned"], "")

	newPW, plainPW, changePW := "new-"+randomHex(t, 8), "plain-"+randomHex(t, 8), "changed-"+randomHex(t, 8)
	announcement := randomBody(t) + "\nsecond line"
	motd, motdEdited := "motd "+randomBody(t)+"\nsecond line", "edited "+randomBody(t)
	welcomeOld, welcome := "old welcome "+randomBody(t), "welcome "+randomBody(t)
	blacklist := []string{"banned@localhost", "evil.example"}
	whitelist := []string{"localhost", "friends.example"}

	// Let the listener become idle before the script starts.
	time.Sleep(time.Until(quietSince.Add(idleAfter + 500*time.Millisecond)))

	args := []string{
		"--jid", rootJID, "--password", rootPW,
		"--new-jid", "newuser@localhost", "--new-password", newPW,
		"--plain-jid", "plain@localhost", "--plain-password", plainPW,
		"--delete-jid", "victim@localhost",
		"--disable-jid", "alpha@localhost",
		"--toggle-jid", "bravo@localhost",
		"--kick-jid", "delta@localhost",
		"--change-jid", "charlie@localhost", "--change-password", changePW,
		"--info-jid", listenerJID,
		"--never-jid", "bravo@localhost",
		"--announcement", announcement,
		"--motd", motd, "--motd-edited", motdEdited,
		"--welcome-old", welcomeOld, "--welcome", welcome,
		"--admin", rootJID, "--admin", "ops@localhost",
	}
	for _, b := range blacklist {
		args = append(args, "--blacklist", b)
	}
	for _, w := range whitelist {
		args = append(args, "--whitelist", w)
	}
	rep := xep0133Run(t, srv, args)

	// Logged in with SCRAM only; over TLS 1.3 the -PLUS attempts are refused.
	if len(rep.mechs) != 1 || !strings.HasPrefix(rep.mechs[0], "SCRAM-") {
		t.Errorf("administrator's SASL mechanisms %v, want one SCRAM mechanism", rep.mechs)
	}
	for _, f := range rep.failures {
		if !strings.Contains(f, "-PLUS") {
			t.Errorf("unexpected SASL failure: %s", f)
		}
	}
	if !rep.ok {
		t.Error("script did not print OK")
	}

	// Every helper but restart and shutdown ran; the server lists exactly
	// the commands of those that succeed.
	t.Logf("slixmpp 1.8.3 xep_0133 helpers: %s", strings.Join(rep.helpers, " "))
	for _, h := range rep.helpers {
		node := admin.Node(strings.ReplaceAll(h, "_", "-"))
		listed := slices.Contains(rep.commands, node)
		if h == "restart" || h == "shutdown" {
			if len(rep.outcomes[h]) != 0 {
				t.Errorf("%s was run", h)
			}
			continue
		}
		outs := rep.outcomes[h]
		if len(outs) == 0 {
			t.Errorf("%s was not run", h)
			continue
		}
		for _, o := range outs {
			if slices.Contains(xep0133NotFound, h) {
				if o.Kind != "ERROR" || o.Condition != "item-not-found" {
					t.Errorf("%s: %s %+v, want an item-not-found error", h, o.Kind, o)
				}
				if listed {
					t.Errorf("%s: the server lists %s", h, node)
				}
				continue
			}
			if o.Kind != "RESULT" || o.Status != "completed" || o.note("error") != "" {
				t.Errorf("%s: %s %+v, want completed without an error note", h, o.Kind, o)
			}
			if !listed {
				t.Errorf("%s: the server does not list %s", h, node)
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	first := func(h string) xep0133Outcome { return rep.outcomes[h][0] }
	last := func(h string) xep0133Outcome { return rep.outcomes[h][len(rep.outcomes[h])-1] }
	account := func(u string) (storage.Account, error) { return srv.Store().Account(ctx, u) }
	headline := func(subject, body string) func(servertest.Stanza) bool {
		return func(s servertest.Stanza) bool {
			var m struct {
				Subject string `xml:"subject"`
				Body    string `xml:"body"`
			}
			return s.Name == "message" && s.Attrs["from"] == "localhost" && s.Decode(&m) == nil && m.Subject == subject && m.Body == body
		}
	}

	// announce, set_motd, edit_motd: the listener got each, in that order.
	listener.Next(wait, headline("Announcement", announcement))
	listener.Next(wait, headline("Message of the Day", motd))
	if got := first("edit_motd").Initial["motd"]; !slices.Equal(got, strings.Split(motd, "\n")) {
		t.Errorf("edit_motd form showed %q, want the current message %q", got, motd)
	}
	listener.Next(wait, headline("Message of the Day", motdEdited))
	// delete_motd
	if _, err := srv.Store().Setting(ctx, storage.SettingMOTD); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("message of the day after delete_motd: %v", err)
	}

	// add_user, set_welcome, delete_welcome: plain was made while no welcome
	// message was set, newuser after it was set again.
	if raw, err := srv.Store().Setting(ctx, storage.SettingWelcome); err != nil || string(raw) != welcome {
		t.Errorf("welcome message %q, %v; want %q", raw, err, welcome)
	}
	if got := last("set_welcome").Initial["welcome"]; len(got) != 0 {
		t.Errorf("set_welcome form after delete_welcome showed %q", got)
	}
	for u, pending := range map[string]bool{"newuser": true, "plain": false} {
		if a, err := account(u); err != nil || a.WelcomePending != pending || a.Disabled {
			t.Errorf("account %s after add_user: %+v, %v; want welcome pending %v", u, a, err, pending)
		}
	}
	newuser := srv.Dial("newuser", newPW, "")
	if err := newuser.SendRaw(ctx, `<presence/>`); err != nil {
		t.Fatal(err)
	}
	newuser.Next(wait, headline("Welcome", welcome))
	plain := srv.Dial("plain", plainPW, "")
	if err := plain.SendRaw(ctx, `<presence/>`); err != nil {
		t.Fatal(err)
	}
	if m, ok := plain.Wait(time.Second, func(s servertest.Stanza) bool { return s.Name == "message" }); ok {
		t.Errorf("plain (made with no welcome message, after delete_motd) got %s", m.XML)
	}
	users["newuser"], users["plain"] = newPW, plainPW

	// delete_user
	if _, err := account("victim"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("victim after delete_user: %v", err)
	}
	delete(users, "victim")

	// disable_user alpha and bravo, reenable_user bravo.
	if a, err := account("alpha"); err != nil || !a.Disabled {
		t.Errorf("alpha after disable_user: %+v, %v", a, err)
	}
	if a, err := account("bravo"); err != nil || a.Disabled {
		t.Errorf("bravo after disable_user and reenable_user: %+v, %v", a, err)
	}
	if _, err := srv.DialErr("alpha", users["alpha"], ""); err == nil {
		t.Error("disabled alpha logged in")
	}
	srv.Dial("bravo", users["bravo"], "")

	// end_user_session: delta's one session closed; delta may log in again.
	if !delta.Closed(wait) {
		t.Error("delta's session survived end_user_session")
	}
	if n := first("end_user_session").note("info"); n != "ended 1 session" {
		t.Errorf("end_user_session note %q", n)
	}
	srv.Dial("delta", users["delta"], "")

	// change_user_password
	if _, err := srv.DialErr("charlie", oldPW, ""); err == nil {
		t.Error("charlie's old password still works")
	}
	srv.Dial("charlie", changePW, "")
	users["charlie"] = changePW

	// get_user_roster: the listener's roster, set above.
	roster := first("get_user_roster")
	if got := roster.field("accountjids"); !slices.Equal(got, []string{listenerJID}) {
		t.Errorf("get_user_roster accountjids %q", got)
	}
	if len(roster.Forms) != 1 || len(roster.Forms[0].Roster) != 1 {
		t.Errorf("get_user_roster forms %+v, want one with one item", roster.Forms)
	} else if it := roster.Forms[0].Roster[0]; it.JID != "friend@localhost" || it.Name != "Friend" || it.Subscription != "none" || !slices.Equal(it.Groups, []string{"Pals"}) {
		t.Errorf("get_user_roster item %+v", it)
	}

	// get_user_lastlogin: the listener's, as stored; bravo had none then.
	ll := first("get_user_lastlogin")
	if len(ll.Forms) != 2 {
		t.Fatalf("get_user_lastlogin forms %+v, want one per account", ll.Forms)
	}
	la, err := account("listener")
	if err != nil {
		t.Fatal(err)
	}
	want := la.LastLogin.UTC().Format(time.RFC3339)
	if got := ll.Forms[0].Fields["lastlogin"]; !slices.Equal(got, []string{want}) || !slices.Equal(ll.Forms[0].Fields["accountjids"], []string{listenerJID}) {
		t.Errorf("get_user_lastlogin of the listener: %+v, want %s", ll.Forms[0].Fields, want)
	}
	if la.LastLogin.Before(beforeLogin.Add(-time.Second)) || la.LastLogin.After(quietSince) {
		t.Errorf("listener's last login %s is not when it logged in", la.LastLogin)
	}
	if got := ll.Forms[1].Fields["lastlogin"]; len(got) != 0 || !slices.Equal(ll.Forms[1].Fields["accountjids"], []string{"bravo@localhost"}) {
		t.Errorf("get_user_lastlogin of bravo (never logged in): %+v", ll.Forms[1].Fields)
	}

	// user_stats of the listener.
	stats := first("user_stats")
	for name, want := range map[string][]string{
		"accountjid":      {listenerJID},
		"rostersize":      {"1"},
		"ipaddresses":     {"127.0.0.1"},
		"onlineresources": {listener.LocalAddr().Resourcepart()},
	} {
		if got := stats.field(name); !slices.Equal(got, want) {
			t.Errorf("user_stats %s = %q, want %q", name, got, want)
		}
	}

	// edit_blacklist: banned's session ended, it cannot log in, and nobody
	// can send to evil.example.
	black, white := srv.AccessLists()
	if !slices.Equal(black, blacklist) || !slices.Equal(white, whitelist) {
		t.Errorf("access lists %q %q, want %q %q", black, white, blacklist, whitelist)
	}
	if !banned.Closed(wait) {
		t.Error("banned's session survived edit_blacklist")
	}
	if _, err := srv.DialErr("banned", users["banned"], ""); err == nil {
		t.Error("blacklisted banned logged in")
	}
	// edit_whitelist: local accounts still log in (above), but a domain the
	// whitelist lacks cannot be contacted, while one it has can be tried.
	for to, cond := range map[string]string{
		"someone@evil.example":    "forbidden",
		"someone@other.example":   "forbidden",
		"someone@friends.example": "remote-server-not-found",
	} {
		id := "m-" + randomHex(t, 8)
		if err := listener.SendRaw(ctx, `<message id='`+id+`' type='chat' to='`+to+`'><body>hi</body></message>`); err != nil {
			t.Fatal(err)
		}
		m := listener.Next(wait, func(s servertest.Stanza) bool { return s.Name == "message" && s.Attrs["id"] == id })
		if m.Attrs["type"] != "error" || !strings.Contains(m.XML, "<"+cond) {
			t.Errorf("message to %s: %s, want a %s error", to, m.XML, cond)
		}
	}

	// edit_admin: the form showed root; ops is now a (stored) admin and can
	// run an admin command.
	if got := first("edit_admin").Initial["adminjids"]; !slices.Contains(got, rootJID) {
		t.Errorf("edit_admin form showed %q, want %s in it", got, rootJID)
	}
	if _, stored := srv.Admins(); !slices.Equal(stored, []string{"ops@localhost"}) {
		t.Errorf("stored admins %q", stored)
	}
	ops := adhoc.NewRequester(srv.Dial("ops", users["ops"], "").Session)
	if _, err := ops.Start(ctx, jid.MustParse("localhost"), admin.Node("get-online-users-num")); err != nil {
		t.Errorf("ops after edit_admin: %v", err)
	}

	// The numbers and lists, as they were when the script asked (after
	// every change; it was then the only admin session, the listener the
	// only other one, idle).
	var registered []string
	for u := range users {
		registered = append(registered, u+"@localhost")
	}
	slices.Sort(registered)
	accts, err := srv.Store().Accounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(accts) != len(registered) {
		t.Errorf("%d accounts stored, the test expects %d: %q", len(accts), len(registered), registered)
	}
	online := []string{listenerJID, rootJID}
	slices.Sort(online)
	for _, c := range []struct {
		helper, field string
		want          []string
	}{
		{"get_registered_users_num", "registeredusersnum", []string{strconv.Itoa(len(registered))}},
		{"get_registered_users_list", "registereduserjids", registered},
		{"get_disabled_users_num", "disabledusersnum", []string{"1"}},
		{"get_disabled_users_list", "disableduserjids", []string{"alpha@localhost"}},
		{"get_online_users_num", "onlineusersnum", []string{strconv.Itoa(len(online))}},
		{"get_online_users_list", "onlineuserjids", online},
		{"get_active_users_num", "activeusersnum", []string{"1"}},
		{"get_active_users", "activeuserjids", []string{rootJID}},
		{"get_idle_users_num", "idleusersnum", []string{"1"}},
	} {
		if got := first(c.helper).field(c.field); !slices.Equal(got, c.want) {
			t.Errorf("%s: %s = %q, want %q", c.helper, c.field, got, c.want)
		}
	}
}

// xep0133Run runs slixmpp_xep0133.py with args against srv and parses what
// it printed; it fails the test if the script failed.
func xep0133Run(t *testing.T, srv *servertest.Server, args []string) xep0133Report {
	t.Helper()
	args = append(append(serverArgs(t, srv), "--timeout", "60"), args...)
	lines := runScript(t, 75*time.Second, "slixmpp_xep0133.py", args...)

	rep := xep0133Report{outcomes: map[string][]xep0133Outcome{}}
	for _, line := range lines {
		kind, rest, _ := strings.Cut(line, " ")
		switch kind {
		case "HELPER":
			rep.helpers = append(rep.helpers, rest)
		case "COMMAND":
			rep.commands = append(rep.commands, rest)
		case "MECHANISM":
			rep.mechs = append(rep.mechs, rest[strings.LastIndex(rest, " ")+1:])
		case "AUTH_FAILED":
			rep.failures = append(rep.failures, rest)
		case "RESULT", "ERROR":
			helper, raw, _ := strings.Cut(rest, " ")
			o := xep0133Outcome{Kind: kind}
			if err := json.Unmarshal([]byte(raw), &o); err != nil {
				t.Fatalf("%s %s: %v", kind, helper, err)
			}
			rep.outcomes[helper] = append(rep.outcomes[helper], o)
		case "OK":
			rep.ok = true
		}
	}
	return rep
}
