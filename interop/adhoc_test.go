package interop_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/commands"
	"mellium.im/xmpp/jid"

	"github.com/adhocd/adhocd/adhoc"
	"github.com/adhocd/adhocd/adhoc/adhoctest"
	"github.com/adhocd/adhocd/server"
	"github.com/adhocd/adhocd/servertest"
)

// pyResponse is what slixmpp_adhoc_requester.py prints of a <command/>
// reply, as slixmpp parsed it.
type pyResponse struct {
	Node        string     `json:"node"`
	SessionID   string     `json:"sessionid"`
	Status      string     `json:"status"`
	Actions     []string   `json:"actions"`
	ActionOrder []string   `json:"action_order"`
	Execute     *string    `json:"execute"`
	Notes       [][]string `json:"notes"`
	Forms       []pyForm   `json:"forms"`
}

type pyForm struct {
	Type         string    `json:"type"`
	Title        string    `json:"title"`
	Instructions string    `json:"instructions"`
	Fields       []pyField `json:"fields"`
}

type pyField struct {
	Var      string   `json:"var"`
	Type     string   `json:"type"`
	Label    string   `json:"label"`
	Required bool     `json:"required"`
	Values   []string `json:"values"`
	Options  []string `json:"options"`
}

// wizardColors are the options of the wizard's colour field.
var wizardColors = []string{"red", "green", "blue"}

// newWizardAnswers makes up what a test answers the three-stage wizard: a
// name that is not ASCII and has a character XML must escape, one of the
// colours, a contact, and a comment of two lines (clients send a text-multi
// value as one <value/> per line, which the wizard joins again).
func newWizardAnswers(t *testing.T) (name, color, contact, comment string) {
	t.Helper()
	return "Zoë & co " + randomHex(t, 4), randomWizardColor(t),
		"carol." + randomHex(t, 4) + "@localhost", "first line " + randomHex(t, 4) + "\nsecond line ✓"
}

// randomWizardColor picks one of the wizard's colour values.
func randomWizardColor(t *testing.T) string {
	t.Helper()
	i, err := rand.Int(rand.Reader, big.NewInt(int64(len(wizardColors))))
	if err != nil {
		t.Fatal(err)
	}
	return wizardColors[i.Int64()]
}

// wizardFields are the fields of the wizard's first two stages as a client
// should parse them: stage1 with the answers name and color filled in again
// (after prev) when withValues is set.
func wizardFields(name, color string) (stage1 func(withValues bool) []pyField, stage2 []pyField) {
	stage1 = func(withValues bool) []pyField {
		f := []pyField{
			{Var: "name", Type: "text-single", Label: "Name", Required: true},
			{Var: "color", Type: "list-single", Label: "Colour", Required: true, Options: wizardColors},
		}
		if withValues {
			f[0].Values, f[1].Values = []string{name}, []string{color}
		}
		return f
	}
	return stage1, []pyField{
		{Var: "contact", Type: "jid-single", Label: "Contact", Required: true},
		{Var: "notify", Type: "boolean", Label: "Notify them"},
	}
}

// checkWizardExecuting checks the reply labelled label of a run of the
// wizard: executing in a session, the execute attribute and the actions
// offered in their order, no notes and one form, which it returns in r.
func checkWizardExecuting(t *testing.T, responses map[string]pyResponse, label, execute string, actions ...string) pyResponse {
	t.Helper()
	r, found := responses[label]
	if !found {
		t.Fatalf("no response %s", label)
	}
	if r.Node != adhoctest.WizardNode || r.Status != "executing" || r.SessionID == "" {
		t.Errorf("%s: node %q status %q sessionid %q, want %s executing with a session id", label, r.Node, r.Status, r.SessionID, adhoctest.WizardNode)
	}
	if r.Execute == nil || *r.Execute != execute {
		t.Errorf("%s: <actions execute=%v>, want %q", label, r.Execute, execute)
	}
	if !slices.Equal(r.ActionOrder, actions) {
		t.Errorf("%s: actions %v, want %v in that order", label, r.ActionOrder, actions)
	}
	if len(r.Notes) != 0 {
		t.Errorf("%s: notes %v, want none", label, r.Notes)
	}
	if len(r.Forms) != 1 || r.Forms[0].Type != "form" {
		t.Fatalf("%s: forms %+v, want one of type form", label, r.Forms)
	}
	return r
}

// checkWizardRun checks the replies of one run of the wizard as a
// requester parsed them, labelled stage1 (execute), stage2 (next with name
// and color), stage1-again (prev: the answers are in the form again),
// stage2-again (next), stage3 (next with contact and notify true: the
// summary of the answers) and completed (complete with comment: the result
// form echoes every answer, with the note "done"), all in one session,
// whose first reply it returns.
func checkWizardRun(t *testing.T, responses map[string]pyResponse, name, color, contact, comment string) pyResponse {
	t.Helper()
	stage1Fields, stage2Fields := wizardFields(name, color)
	s1 := checkWizardExecuting(t, responses, "stage1", "next", "next")
	checkForm(t, "stage1", s1.Forms[0], "Who are you?", "", stage1Fields(false))
	s2 := checkWizardExecuting(t, responses, "stage2", "next", "prev", "next")
	checkForm(t, "stage2", s2.Forms[0], "Hello "+name, "", stage2Fields)
	s1b := checkWizardExecuting(t, responses, "stage1-again", "next", "next")
	checkForm(t, "stage1-again", s1b.Forms[0], "Who are you?", "", stage1Fields(true))
	s2b := checkWizardExecuting(t, responses, "stage2-again", "next", "prev", "next")
	checkForm(t, "stage2-again", s2b.Forms[0], "Hello "+name, "", stage2Fields)
	s3 := checkWizardExecuting(t, responses, "stage3", "complete", "prev", "complete")
	checkForm(t, "stage3", s3.Forms[0], "Confirm", name+" likes "+color+" and knows "+contact,
		[]pyField{{Var: "comment", Type: "text-multi", Label: "Comment"}})
	for _, r := range []pyResponse{s2, s1b, s2b, s3} {
		if r.SessionID != s1.SessionID {
			t.Errorf("session id changed from %q to %q", s1.SessionID, r.SessionID)
		}
	}

	done, found := responses["completed"]
	if !found {
		t.Fatal("no response completed")
	}
	if done.Node != adhoctest.WizardNode || done.Status != "completed" || done.SessionID != s1.SessionID {
		t.Errorf("completed: node %q status %q sessionid %q, want %s completed in session %q", done.Node, done.Status, done.SessionID, adhoctest.WizardNode, s1.SessionID)
	}
	if len(done.ActionOrder) != 0 || done.Execute != nil {
		t.Errorf("completed: actions %v execute %v, want no <actions/>", done.ActionOrder, done.Execute)
	}
	if len(done.Notes) != 1 || !slices.Equal(done.Notes[0], []string{"info", "done"}) {
		t.Errorf("completed: notes %v, want [[info done]]", done.Notes)
	}
	if len(done.Forms) != 1 || done.Forms[0].Type != "result" {
		t.Fatalf("completed: forms %+v, want one of type result", done.Forms)
	}
	checkForm(t, "completed", done.Forms[0], "", "", []pyField{
		{Var: "name", Type: "text-single", Values: []string{name}},
		{Var: "color", Type: "text-single", Values: []string{color}},
		{Var: "contact", Type: "text-single", Values: []string{contact}},
		{Var: "notify", Type: "text-single", Values: []string{"1"}},
		{Var: "comment", Type: "text-single", Values: []string{comment}},
	})
	return s1
}

// TestSlixmppRunsWizard has slixmpp's XEP-0050 requester (the xep_0050
// plugin: get_commands, start_command, continue_command with next and prev,
// complete_command, cancel_command) run adhocd's three-stage test wizard,
// and checks every reply as slixmpp parsed it: the forms of each stage, the
// actions offered, the earlier answers shown again after prev, and the
// result form echoing what was sent.
func TestSlixmppRunsWizard(t *testing.T) {
	requireSlixmpp(t)
	srv := servertest.StartWith(t, []server.Option{server.WithCommands(adhoctest.Wizard())})
	const pw = "wonderland"
	user := srv.AddUser("alice", pw)
	name, color, contact, comment := newWizardAnswers(t)

	lines := runScript(t, 60*time.Second, "slixmpp_adhoc_requester.py", append(serverArgs(t, srv),
		"--jid", user,
		"--password", pw,
		"--server", srv.Domain().String(),
		"--node", adhoctest.WizardNode,
		"--name", name,
		"--color", color,
		"--contact", contact,
		"--notify", "true",
		"--comment", comment,
		"--timeout", "40",
	)...)

	var (
		ok        bool
		listed    []struct{ JID, Node, Name string }
		responses = map[string]pyResponse{}
		mech      string
	)
	for _, line := range lines {
		word, rest, _ := strings.Cut(line, " ")
		switch word {
		case "OK":
			ok = true
		case "MECHANISM":
			if f := strings.Fields(rest); len(f) == 2 {
				mech = f[1]
			}
		case "AUTH_FAILED":
			if !strings.Contains(rest, "-PLUS") {
				t.Errorf("unexpected SASL failure: %s", line)
			}
		case "COMMANDS":
			if err := json.Unmarshal([]byte(rest), &listed); err != nil {
				t.Fatalf("%s: %v", line, err)
			}
		case "RESPONSE":
			label, js, _ := strings.Cut(rest, " ")
			var r pyResponse
			if err := json.Unmarshal([]byte(js), &r); err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			responses[label] = r
		}
	}
	if !ok {
		t.Fatal("script did not print OK")
	}
	if mech != "SCRAM-SHA-256" && mech != "SCRAM-SHA-256-PLUS" {
		t.Errorf("logged in with %q, want SCRAM-SHA-256(-PLUS)", mech)
	}

	// get_commands lists the wizard at the server's JID.
	if !slices.ContainsFunc(listed, func(c struct{ JID, Node, Name string }) bool {
		return c.JID == srv.Domain().String() && c.Node == adhoctest.WizardNode && c.Name == adhoctest.Wizard().Name
	}) {
		t.Errorf("get_commands(%s) = %+v, want the node %s named %q", srv.Domain(), listed, adhoctest.WizardNode, adhoctest.Wizard().Name)
	}

	s1 := checkWizardRun(t, responses, name, color, contact, comment)

	c1 := checkWizardExecuting(t, responses, "cancel-stage1", "next", "next")
	if c1.SessionID == s1.SessionID {
		t.Errorf("second session reuses the session id %q", c1.SessionID)
	}
	canceled := responses["canceled"]
	if canceled.Node != adhoctest.WizardNode || canceled.Status != "canceled" || canceled.SessionID != c1.SessionID {
		t.Errorf("canceled: node %q status %q sessionid %q, want %s canceled in session %q", canceled.Node, canceled.Status, canceled.SessionID, adhoctest.WizardNode, c1.SessionID)
	}
	if len(canceled.Forms) != 0 || len(canceled.ActionOrder) != 0 {
		t.Errorf("canceled: forms %+v actions %v, want neither", canceled.Forms, canceled.ActionOrder)
	}
}

// checkForm compares a form slixmpp parsed with the one wanted, field by
// field and in order.
func checkForm(t *testing.T, label string, got pyForm, title, instructions string, want []pyField) {
	t.Helper()
	if got.Title != title || got.Instructions != instructions {
		t.Errorf("%s: title %q instructions %q, want %q and %q", label, got.Title, got.Instructions, title, instructions)
	}
	if len(got.Fields) != len(want) {
		t.Errorf("%s: fields %+v, want %+v", label, got.Fields, want)
		return
	}
	for i, w := range want {
		g := got.Fields[i]
		if g.Var != w.Var || g.Type != w.Type || g.Label != w.Label || g.Required != w.Required ||
			!slices.Equal(g.Values, w.Values) || !slices.Equal(g.Options, w.Options) {
			t.Errorf("%s: field %d = %+v, want %+v", label, i, g, w)
		}
	}
}

// echoNode is the command the slixmpp bot provides.
const echoNode = "urn:interop:echo"

// TestSlixmppProviderThroughServer has adhocd's Go requester, logged in as
// alice, list and run a command that a slixmpp bot (its xep_0050 plugin's
// add_command) provides on its full JID, every request and reply routed by
// adhocd: execute shows a form, complete with the form filled in ends the
// command with a note the bot computed from the submission, and a second
// session is canceled.
func TestSlixmppProviderThroughServer(t *testing.T) {
	requireSlixmpp(t)
	srv := servertest.Start(t)
	const botPW, alicePW = "tweedledee", "tweedledum"
	bot := srv.AddUser("bot", botPW)
	srv.AddUser("alice", alicePW)

	s := startScript(t, 90*time.Second, "slixmpp_adhoc_provider.py", append(serverArgs(t, srv),
		"--jid", bot,
		"--password", botPW,
		"--timeout", "60",
	)...)
	line, ok := s.next("BOUND ", 30*time.Second)
	if !ok {
		_ = s.wait()
		t.Fatal("the bot did not print BOUND")
	}
	botJID, err := jid.Parse(strings.TrimPrefix(line, "BOUND "))
	if err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	if botJID.Bare().String() != bot || botJID.Resourcepart() == "" {
		t.Fatalf("bot bound %s, want a full JID of %s", botJID, bot)
	}

	alice := srv.Dial("alice", alicePW, "")
	req := adhoc.NewRequester(alice.Session)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	cmds, err := req.Commands(ctx, botJID)
	if err != nil {
		t.Fatalf("list commands of %s: %v", botJID, err)
	}
	if !slices.ContainsFunc(cmds, func(c commands.Command) bool {
		return c.Node == echoNode && c.Name == "Echo" && c.JID.Equal(botJID)
	}) {
		t.Fatalf("commands of %s = %+v, want %s named Echo at %s", botJID, cmds, echoNode, botJID)
	}

	resp, err := req.Start(ctx, botJID, echoNode)
	if err != nil {
		t.Fatalf("execute %s: %v", echoNode, err)
	}
	if resp.Status != adhoc.Executing || resp.Node != echoNode || resp.SessionID == "" {
		t.Fatalf("execute: status %q node %q sessionid %q, want executing %s with a session id", resp.Status, resp.Node, resp.SessionID, echoNode)
	}
	// slixmpp offers <actions><complete/></actions> without the execute
	// attribute, which XEP-0050 §4.2 allows (the responder MAY specify it).
	if !slices.Equal(resp.Actions, []adhoc.Action{adhoc.Complete}) || resp.Default != "" {
		t.Errorf("execute: actions %v execute %q, want [complete] and no execute attribute", resp.Actions, resp.Default)
	}
	if len(resp.Forms) != 1 || resp.Forms[0].Type != "form" || resp.Forms[0].Title != "Echo" || len(resp.Forms[0].Fields) != 1 {
		t.Fatalf("execute: forms %+v, want the form Echo with one field", resp.Forms)
	}
	if f := resp.Forms[0].Fields[0]; f.Var != "text" || f.Type != "text-single" || !f.IsRequired() {
		t.Errorf("execute: field %+v, want text-single text, required", f)
	}
	if !resp.Allowed(adhoc.Complete) {
		t.Fatal("execute: complete not allowed")
	}
	if line, ok := s.next("EXECUTED ", 10*time.Second); !ok || line != "EXECUTED "+alice.LocalAddr().String()+" "+resp.SessionID {
		t.Errorf("bot printed %q, want EXECUTED %s %s", line, alice.LocalAddr(), resp.SessionID)
	}

	text := randomBody(t)
	runes := []rune(text)
	slices.Reverse(runes)
	want := string(runes)
	done, err := req.Complete(ctx, resp, adhoc.Values{"text": {text}})
	if err != nil {
		t.Fatalf("complete: %v", err)
	}
	if done.Status != adhoc.Completed || done.SessionID != resp.SessionID || done.Node != echoNode {
		t.Errorf("complete: status %q sessionid %q node %q, want completed in session %q of %s", done.Status, done.SessionID, done.Node, resp.SessionID, echoNode)
	}
	if !slices.Equal(done.Notes, []adhoc.Note{{Type: adhoc.NoteInfo, Text: want}}) {
		t.Errorf("complete: notes %+v, want one info note %q", done.Notes, want)
	}
	if len(done.Forms) != 0 || len(done.Actions) != 0 {
		t.Errorf("complete: forms %+v actions %v, want neither", done.Forms, done.Actions)
	}
	if line, ok := s.next("SUBMITTED ", 10*time.Second); !ok {
		t.Errorf("bot did not print SUBMITTED")
	} else {
		sid, js, _ := strings.Cut(strings.TrimPrefix(line, "SUBMITTED "), " ")
		var got string
		if err := json.Unmarshal([]byte(js), &got); err != nil || sid != resp.SessionID || got != text {
			t.Errorf("bot printed %q, want SUBMITTED %s with the text %q", line, resp.SessionID, text)
		}
	}

	second, err := req.Start(ctx, botJID, echoNode)
	if err != nil {
		t.Fatalf("execute again: %v", err)
	}
	if second.SessionID == "" || second.SessionID == resp.SessionID {
		t.Errorf("second session id %q, want a new one (first was %q)", second.SessionID, resp.SessionID)
	}
	canceled, err := req.Cancel(ctx, second)
	if err != nil {
		t.Fatalf("cancel: %v", err)
	}
	if canceled.Status != adhoc.Canceled || canceled.SessionID != second.SessionID || canceled.Node != echoNode {
		t.Errorf("cancel: status %q sessionid %q node %q, want canceled in session %q of %s", canceled.Status, canceled.SessionID, canceled.Node, second.SessionID, echoNode)
	}
	if line, ok := s.next("CANCELED ", 10*time.Second); !ok || line != "CANCELED "+second.SessionID {
		t.Errorf("bot printed %q, want CANCELED %s", line, second.SessionID)
	}

	if !slices.Contains(s.finish(), "OK") {
		t.Error("script did not print OK")
	}
}
