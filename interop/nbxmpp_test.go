package interop_test

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/adhoc/adhoctest"
	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/modules/admin"
	"github.com/adhocd/adhocd/server"
	"github.com/adhocd/adhocd/servertest"
)

// nbCommand is what nbxmpp_adhoc.py prints of an AdHocCommand that nbxmpp's
// execute_command returned: the reply as nbxmpp parsed it, its form read
// with nbxmpp's data forms.
type nbCommand struct {
	JID       string     `json:"jid"`
	Node      string     `json:"node"`
	SessionID string     `json:"sessionid"`
	Status    string     `json:"status"`
	Actions   []string   `json:"actions"` // sorted; nbxmpp always adds cancel
	Default   string     `json:"default"`
	Notes     [][]string `json:"notes"`
	Form      *pyForm    `json:"form"`
}

// nbSent is what the script sent at a step: the action and the form.
type nbSent struct {
	Action string  `json:"action"`
	Form   *pyForm `json:"form"`
}

// nbReport is everything nbxmpp_adhoc.py printed.
type nbReport struct {
	login struct {
		JID        string `json:"jid"`
		Mechanism  string `json:"mechanism"`
		TLSVersion string `json:"tls_version"`
	}
	commands  []struct{ JID, Node, Name string }
	sent      map[string]nbSent
	responses map[string]nbCommand
	errors    map[string]string
	ok        bool
}

// TestNbxmppAdHoc drives adhocd with nbxmpp 4.2.2 (Debian's python3-nbxmpp,
// Gajim 1.7's library) on a GLib main loop, the way Gajim's command window
// does: login over STARTTLS trusting only the server's certificate,
// request_command_list on the server JID as an administrator, add-user (the
// form, then the form submitted with the action Gajim sends for it,
// complete), get-registered-users-num (one stage), and the three-stage test
// wizard with next, prev (the earlier answers come back), next, complete,
// and a second session canceled. It checks each reply as nbxmpp parsed it,
// and on the server that the account was made with the password sent and
// that the count is the number of accounts.
func TestNbxmppAdHoc(t *testing.T) {
	requireNbxmpp(t)
	srv := servertest.StartWith(t, []server.Option{server.WithCommands(adhoctest.Wizard())}, func(c *config.Config) {
		c.Admins = []string{"admin@localhost"}
	})
	const adminPW = "gajim-admin-pw"
	adminJID := srv.AddUser("admin", adminPW)
	srv.AddUser("alice", "alice-pw")
	srv.AddUser("bob", "bob-pw")
	newUser := "gajim-" + randomHex(t, 4)
	newPW := "pw " + randomHex(t, 8) + " ✓"
	name, color, contact, comment := newWizardAnswers(t)

	lines := runScript(t, 60*time.Second, "nbxmpp_adhoc.py", append(serverArgs(t, srv),
		"--jid", adminJID,
		"--password", adminPW,
		"--server", srv.Domain().String(),
		"--new-jid", newUser+"@localhost",
		"--new-password", newPW,
		"--name", name,
		"--color", color,
		"--contact", contact,
		"--comment", comment,
		"--timeout", "40",
	)...)
	rep := parseNbReport(t, lines)
	if !rep.ok {
		t.Error("script did not print OK")
	}

	// nbxmpp never uses -PLUS (GLib gives it no channel binding) and
	// prefers SCRAM-SHA-512, which adhocd does not offer.
	if !strings.HasPrefix(rep.login.JID, adminJID+"/") || rep.login.Mechanism != "SCRAM-SHA-256" || rep.login.TLSVersion != "tls-1-3" {
		t.Errorf("login %+v, want %s/… with SCRAM-SHA-256 over TLS 1.3", rep.login, adminJID)
	}

	// The command list, as nbxmpp's AdHocCommand(**item attributes) read it.
	if e, failed := rep.errors["commands"]; failed {
		t.Errorf("nbxmpp could not read the command list of %s: %s", srv.Domain(), e)
	}
	for node, cmdName := range map[string]string{
		admin.Node("add-user"):                 "Add User",
		admin.Node("get-registered-users-num"): "Get Number of Registered Users",
		adhoctest.WizardNode:                   adhoctest.Wizard().Name,
	} {
		if _, failed := rep.errors["commands"]; failed {
			break
		}
		if !slices.ContainsFunc(rep.commands, func(c struct{ JID, Node, Name string }) bool {
			return c.JID == srv.Domain().String() && c.Node == node && c.Name == cmdName
		}) {
			t.Errorf("command list %+v lacks %s named %q at %s", rep.commands, node, cmdName, srv.Domain())
		}
	}

	get := func(label string) nbCommand {
		t.Helper()
		if e, failed := rep.errors[label]; failed {
			t.Fatalf("%s: %s", label, e)
		}
		r, found := rep.responses[label]
		if !found {
			t.Fatalf("no response %s", label)
		}
		return r
	}
	// executing checks a stage nbxmpp parsed: executing, a session, the
	// actions it offers (nbxmpp adds cancel) with default the one Enter
	// sends in Gajim, one form and no notes.
	executing := func(label, node, def string, actions ...string) nbCommand {
		t.Helper()
		r := get(label)
		if r.Node != node || r.Status != "executing" || r.SessionID == "" || r.JID != srv.Domain().String() {
			t.Errorf("%s: node %q status %q sessionid %q from %q, want %s executing with a session id from %s", label, r.Node, r.Status, r.SessionID, r.JID, node, srv.Domain())
		}
		want := append([]string{"cancel"}, actions...)
		slices.Sort(want)
		if r.Default != def || !slices.Equal(r.Actions, want) {
			t.Errorf("%s: actions %v default %q, want %v and %q", label, r.Actions, r.Default, want, def)
		}
		if len(r.Notes) != 0 {
			t.Errorf("%s: notes %v, want none", label, r.Notes)
		}
		if r.Form == nil || r.Form.Type != "form" {
			t.Fatalf("%s: form %+v, want one of type form", label, r.Form)
		}
		return r
	}
	sent := func(label, action string) nbSent {
		t.Helper()
		s, found := rep.sent[label]
		if !found || s.Action != action {
			t.Errorf("%s: sent %+v, want action %s", label, s, action)
		}
		return s
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// add-user: a one-stage form, which Gajim submits with complete.
	form := executing("add-user-form", admin.Node("add-user"), "complete", "complete")
	for _, want := range []pyField{
		{Var: "accountjid", Type: "jid-single", Required: true},
		{Var: "password", Type: "text-private"},
		{Var: "password-verify", Type: "text-private"},
	} {
		if !slices.ContainsFunc(form.Form.Fields, func(f pyField) bool {
			return f.Var == want.Var && f.Type == want.Type && f.Required == want.Required
		}) {
			t.Errorf("add-user form %+v lacks %+v", form.Form.Fields, want)
		}
	}
	sent("add-user-done", "complete")
	done := get("add-user-done")
	if done.Status != "completed" || done.SessionID != form.SessionID || slices.ContainsFunc(done.Notes, func(n []string) bool { return n[0] == "error" }) {
		t.Errorf("add-user-done: %+v, want completed in session %q without an error note", done, form.SessionID)
	}
	if a, err := srv.Store().Account(ctx, newUser); err != nil || a.Disabled {
		t.Errorf("account %s after add-user: %+v, %v", newUser, a, err)
	}
	if _, err := srv.DialErr(newUser, newPW, ""); err != nil {
		t.Errorf("%s cannot log in with the password nbxmpp sent: %v", newUser, err)
	}

	// get-registered-users-num: one stage, completed at once, with the
	// number of accounts the store holds (the one just made included).
	accounts, err := srv.Store().Accounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	num := get("users-num")
	if num.Status != "completed" || num.Form == nil || num.Form.Type != "result" {
		t.Fatalf("users-num: %+v, want completed with a result form", num)
	}
	wantNum := []string{strconv.Itoa(len(accounts))}
	if !slices.ContainsFunc(num.Form.Fields, func(f pyField) bool {
		return f.Var == "registeredusersnum" && slices.Equal(f.Values, wantNum)
	}) {
		t.Errorf("users-num fields %+v, want registeredusersnum %v", num.Form.Fields, wantNum)
	}
	if len(accounts) != 4 {
		t.Errorf("store has %d accounts, want admin, alice, bob and %s", len(accounts), newUser)
	}

	// The wizard.
	stage1Fields, stage2Fields := wizardFields(name, color)
	node := adhoctest.WizardNode
	s1 := executing("stage1", node, "next", "next")
	checkForm(t, "stage1", *s1.Form, "Who are you?", "", stage1Fields(false))
	sent("stage2", "next")
	s2 := executing("stage2", node, "next", "next", "prev")
	checkForm(t, "stage2", *s2.Form, "Hello "+name, "", stage2Fields)
	if s := sent("stage1-again", "prev"); s.Form != nil {
		t.Errorf("prev sent a form: %+v", s.Form)
	}
	s1b := executing("stage1-again", node, "next", "next")
	checkForm(t, "stage1-again", *s1b.Form, "Who are you?", "", stage1Fields(true))
	sent("stage2-again", "next")
	s2b := executing("stage2-again", node, "next", "next", "prev")
	checkForm(t, "stage2-again", *s2b.Form, "Hello "+name, "", stage2Fields)
	sent("stage3", "next")
	s3 := executing("stage3", node, "complete", "complete", "prev")
	checkForm(t, "stage3", *s3.Form, "Confirm", name+" likes "+color+" and knows "+contact,
		[]pyField{{Var: "comment", Type: "text-multi", Label: "Comment"}})
	for _, r := range []nbCommand{s2, s1b, s2b, s3} {
		if r.SessionID != s1.SessionID {
			t.Errorf("session id changed from %q to %q", s1.SessionID, r.SessionID)
		}
	}
	sent("completed", "complete")
	end := get("completed")
	if end.Status != "completed" || end.SessionID != s1.SessionID || len(end.Actions) != 0 || end.Default != "" {
		t.Errorf("completed: %+v, want completed in session %q with no actions", end, s1.SessionID)
	}
	if len(end.Notes) != 1 || !slices.Equal(end.Notes[0], []string{"info", "done"}) {
		t.Errorf("completed: notes %v, want [[info done]]", end.Notes)
	}
	if end.Form == nil || end.Form.Type != "result" {
		t.Fatalf("completed: form %+v, want one of type result", end.Form)
	}
	// Gajim's boolean widget sets "1"; its text-multi one sends a value per
	// line, which the wizard joins again.
	checkForm(t, "completed", *end.Form, "", "", []pyField{
		{Var: "name", Type: "text-single", Values: []string{name}},
		{Var: "color", Type: "text-single", Values: []string{color}},
		{Var: "contact", Type: "text-single", Values: []string{contact}},
		{Var: "notify", Type: "text-single", Values: []string{"1"}},
		{Var: "comment", Type: "text-single", Values: []string{comment}},
	})

	c1 := executing("cancel-stage1", node, "next", "next")
	if c1.SessionID == s1.SessionID {
		t.Errorf("second session reuses the session id %q", c1.SessionID)
	}
	sent("canceled", "cancel")
	canceled := get("canceled")
	if canceled.Status != "canceled" || canceled.SessionID != c1.SessionID || canceled.Form != nil || len(canceled.Actions) != 0 {
		t.Errorf("canceled: %+v, want canceled in session %q with no form or actions", canceled, c1.SessionID)
	}
}

// parseNbReport reads the lines nbxmpp_adhoc.py printed.
func parseNbReport(t *testing.T, lines []string) nbReport {
	t.Helper()
	rep := nbReport{sent: map[string]nbSent{}, responses: map[string]nbCommand{}, errors: map[string]string{}}
	for _, line := range lines {
		word, rest, _ := strings.Cut(line, " ")
		label, js, _ := strings.Cut(rest, " ")
		var err error
		switch word {
		case "OK":
			rep.ok = true
		case "LOGIN":
			err = json.Unmarshal([]byte(rest), &rep.login)
		case "COMMANDS":
			err = json.Unmarshal([]byte(rest), &rep.commands)
		case "SENT":
			var s nbSent
			err = json.Unmarshal([]byte(js), &s)
			rep.sent[label] = s
		case "RESPONSE":
			var r nbCommand
			err = json.Unmarshal([]byte(js), &r)
			rep.responses[label] = r
		case "ERROR":
			rep.errors[label] = js
		}
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
	}
	return rep
}
