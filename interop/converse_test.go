package interop_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/adhoc/adhoctest"
	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/server"
	"github.com/adhocd/adhocd/servertest"
)

// chromiumPath is Debian's Chromium, which playwright-core drives (it never
// downloads a browser of its own here).
const chromiumPath = "/usr/bin/chromium"

// requireChromium skips the test when Chromium is missing, or fails it under
// CI.
func requireChromium(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		unavailable(t, "Chromium unavailable ("+err.Error()+"); install Debian's chromium")
	}
}

// converseSite serves js/converse.html at / and Converse's dist folder
// from js/node_modules at /dist/, as a web host of Converse would.
func converseSite() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, filepath.Join(jsDir, "converse.html"))
	})
	dist := filepath.Join(jsDir, "node_modules", "converse.js", "dist")
	mux.Handle("GET /dist/", http.StripPrefix("/dist/", http.FileServer(http.Dir(dist))))
	return mux
}

// converseRig is what a test that drives Converse.js in Chromium runs
// against: node, the site that serves Converse (converseSite), a server
// whose WebSocket listener on loopback admits the site's origin, and the
// test's artifact directory, where the scripts save their screenshots.
type converseRig struct {
	node  string
	site  *httptest.Server
	srv   *servertest.Server
	shots string
}

// startConverseRig checks for node, the npm packages and Chromium (see
// requireNode), starts the site and the server with srvOpts and, when not
// nil, configure applied to its configuration, and stops both when the
// test ends.
func startConverseRig(t *testing.T, srvOpts []server.Option, configure servertest.Option) *converseRig {
	t.Helper()
	node := requireNode(t, "converse.js", "playwright-core")
	requireChromium(t)
	site := httptest.NewServer(converseSite())
	t.Cleanup(site.Close)
	opts := []servertest.Option{servertest.WithWebSocket, func(c *config.Config) {
		c.WebSocket.AllowedOrigins = []string{site.URL}
	}}
	if configure != nil {
		opts = append(opts, configure)
	}
	srv := servertest.StartWith(t, srvOpts, opts...)
	return &converseRig{node: node, site: site, srv: srv, shots: t.ArtifactDir()}
}

// start runs js/name logged in as jid with password over the server's
// WebSocket, with the flags every Converse script takes (converse_common.mjs)
// and then args; the script gives up after timeout, the test kills it a
// little later.
func (r *converseRig) start(t *testing.T, timeout time.Duration, name, jid, password string, args ...string) *script {
	t.Helper()
	return startProgram(t, timeout+30*time.Second, nil, r.node, append([]string{filepath.Join(jsDir, name),
		"--url", r.site.URL + "/",
		"--websocket-url", r.srv.WSURL,
		"--jid", jid,
		"--password", password,
		"--screenshots", r.shots,
		"--chromium", chromiumPath,
		"--timeout", strconv.Itoa(int(timeout / time.Second)),
	}, args...)...)
}

// converseFacts returns what a Converse script printed, the rest of the
// last line under each first word. It fails the test for every request the
// page tried beyond loopback (BLOCKED), for a login by another SASL
// mechanism than SCRAM-SHA-256, when the script did not print OK, and for
// each of the screenshots it should have saved that is not in the rig's
// artifact directory.
func (r *converseRig) facts(t *testing.T, lines []string, screenshots ...string) map[string]string {
	t.Helper()
	got := map[string]string{}
	ok := scanLines(lines, func(word, rest string) {
		if word == "BLOCKED" {
			t.Errorf("the page tried to reach beyond loopback: %s", rest)
		}
		got[word] = rest
	})
	if m := got["MECHANISM"]; m != "SCRAM-SHA-256" {
		t.Errorf("Converse logged in with %q, want SCRAM-SHA-256", m)
	}
	if !ok {
		t.Error("the Converse script did not print OK")
	}
	for _, name := range screenshots {
		if _, err := os.Stat(filepath.Join(r.shots, name)); err != nil {
			t.Errorf("screenshot: %v", err)
		}
	}
	return got
}

// TestConverse drives Converse.js 14.0.0 (npm converse.js, its dist bundle)
// in headless Chromium (Debian's, through playwright-core 1.65.1) as an
// administrator would: it logs in over XMPP over WebSocket (RFC 7395, plain
// ws:// on loopback) from a page on another loopback origin, opens Settings
// → Commands on the server JID, runs get-online-users-num (one stage),
// add-user (a form filled in and completed) and the three-stage test wizard
// (stage 1 filled, Next, Previous: the answers are there again, Next, stage
// 2 and 3 filled, Complete: the result form echoes them), and sends a chat
// message to a roster contact, a Go client on TCP. Screenshots are kept in
// the test's artifact directory (go test -artifacts).
func TestConverse(t *testing.T) {
	rig := startConverseRig(t, []server.Option{server.WithCommands(adhoctest.Wizard())}, func(c *config.Config) {
		c.Admins = []string{"admin@localhost"}
	})
	srv := rig.srv
	const adminPW, bobPW = "converse-admin", "bob-the-receiver"
	admin := srv.AddUser("admin", adminPW)
	bobJID := srv.AddUser("bob", bobPW)
	bob := srv.Dial("bob", bobPW, "")
	// Available, so that a message to the bare JID reaches this resource.
	if err := bob.SendRaw(servertest.Context(t, 5*time.Second), `<presence/>`); err != nil {
		t.Fatal(err)
	}
	// Bob in the admin's roster, set beforehand by another of the admin's
	// clients: Converse 14 opens chats only with roster contacts when the
	// server has no XEP-0191 blocking (see converse.mjs).
	seed := srv.Dial("admin", adminPW, "")
	if _, err := seed.IQ(servertest.Context(t, 5*time.Second),
		`<iq type="set" id="seed"><query xmlns="jabber:iq:roster"><item jid="`+bobJID+`" name="Bob"/></query></iq>`); err != nil {
		t.Fatalf("roster set: %v", err)
	}
	newUser, newPW := "dave"+randomHex(t, 4), "pw-"+randomHex(t, 8)
	body := randomBody(t)
	wizName, wizColor, wizContact, wizComment := newWizardAnswers(t)

	start := time.Now()
	lines := rig.start(t, 120*time.Second, "converse.mjs", admin, adminPW,
		"--domain", srv.Domain().String(),
		"--new-user", newUser,
		"--new-password", newPW,
		"--wizard-node", adhoctest.WizardNode,
		"--wizard-name", wizName,
		"--wizard-color", wizColor,
		"--wizard-contact", wizContact,
		"--wizard-comment", wizComment,
		"--to", bobJID,
		"--body", body,
	).finish()
	t.Logf("Converse.js ran for %s; screenshots in %s", time.Since(start).Round(time.Millisecond), rig.shots)
	got := rig.facts(t, lines, "converse-online-users.png", "converse-add-user-form.png", "converse-add-user.png",
		"converse-wizard-prev.png", "converse-wizard.png", "converse-chat.png")
	wizard := map[string]converseCommandView{}
	for _, rest := range byWord(lines)["WIZARD"] {
		label, v := cutJSON[converseCommandView](t, "WIZARD", rest)
		wizard[label] = v
	}
	if got["COMMANDS"] == "" || got["COMMANDS"] == "0" {
		t.Errorf("Converse listed %q commands on localhost, want the admin commands", got["COMMANDS"])
	}
	if n := got["ONLINE_USERS"]; n != "2" {
		t.Errorf("get-online-users-num shows %q, want 2 (Converse and the Go client)", n)
	}
	for _, v := range []string{"accountjid", "password", "password-verify"} {
		if !strings.Contains(","+got["ADD_USER_FORM"]+",", ","+v+",") {
			t.Errorf("add-user form fields %q lack %s", got["ADD_USER_FORM"], v)
		}
	}
	if want := "Completed | added " + newUser + "@localhost"; got["ADD_USER"] != want {
		t.Errorf("add-user shows %q, want %q", got["ADD_USER"], want)
	}
	if _, err := srv.DialErr(newUser, newPW, ""); err != nil {
		t.Errorf("the account add-user made does not log in: %v", err)
	}
	checkConverseWizard(t, wizard, wizName, wizColor, wizContact, wizComment)

	// Converse may send chat states first; the test waits for the body.
	var m struct {
		Body string `xml:"body"`
	}
	msg := bob.Next(10*time.Second, func(st servertest.Stanza) bool {
		return st.Name == "message" && strings.Contains(st.XML, "<body")
	})
	if err := msg.Decode(&m); err != nil {
		t.Fatalf("decode %s: %v", msg.XML, err)
	}
	if m.Body != body || msg.Attrs["type"] != "chat" || !strings.HasPrefix(msg.Attrs["from"], admin+"/") {
		t.Errorf("Go client got %s, want a chat from %s with body %q", msg.XML, admin, body)
	}
}

// converseCommandView is what converse.mjs read of a running command in
// Converse's view (readCommand there).
type converseCommandView struct {
	Title        string               `json:"title"`
	Instructions string               `json:"instructions"`
	FormAlert    string               `json:"formAlert"`
	Fields       []converseFieldShown `json:"fields"`
	Buttons      []string             `json:"buttons"`
	Alert        string               `json:"alert"`
	Note         string               `json:"note"`
}

// converseFieldShown is one widget of a command's form: what it shows
// (the text, the selected option, checked or unchecked) and, for a text
// input, the value attribute Converse rendered from the server's form.
type converseFieldShown struct {
	Name      string  `json:"name"`
	ReadOnly  bool    `json:"readonly"`
	Shown     string  `json:"shown"`
	Attribute *string `json:"attribute"`
	// stale, in a wanted field, means what it shows is not checked.
	stale bool
}

// checkConverseWizard checks each view of the wizard as Converse showed it:
// the widgets and buttons of every stage, the answers of stage 1 filled in
// again after Previous, the summary of stage 3, and the completed view
// echoing what was submitted with the note "done".
func checkConverseWizard(t *testing.T, views map[string]converseCommandView, name, color, contact, comment string) {
	t.Helper()
	str := func(s string) *string { return &s }
	type want struct {
		fields       []converseFieldShown
		buttons      []string
		instructions string
		formAlert    string
	}
	empty := str("")
	// Converse 14 shows a stage's fields in the <input> elements of the
	// stage before when lit can reuse them: at stage 2 the Contact input
	// is the one Name was typed into, so it still shows the name (a user
	// clears it). What the server sent is in the value attribute (no
	// value), so stage 2's Contact is checked by that alone: stale.
	stale := func(f converseFieldShown) converseFieldShown { f.Shown, f.stale = "", true; return f }
	stages := []struct {
		label string
		want  want
	}{
		{"stage1", want{
			fields:  []converseFieldShown{{Name: "name", Attribute: empty}, {Name: "color", Shown: "red"}},
			buttons: []string{"next:Next"},
		}},
		{"stage2", want{
			fields:    []converseFieldShown{stale(converseFieldShown{Name: "contact", Attribute: empty}), {Name: "notify", Shown: "unchecked"}},
			buttons:   []string{"prev:Previous", "next:Next"},
			formAlert: "Executing",
		}},
		// Previous: the server's stage-1 form carries the answers again.
		// The colour list is a new <select>, so what it shows is the
		// server's; the Name input is reused, so its value attribute
		// tells the server's answer apart from what was left in it.
		{"stage1-again", want{
			fields:    []converseFieldShown{{Name: "name", Shown: name, Attribute: str(name)}, {Name: "color", Shown: color}},
			buttons:   []string{"next:Next"},
			formAlert: "Executing",
		}},
		{"stage2-again", want{
			fields:    []converseFieldShown{stale(converseFieldShown{Name: "contact", Attribute: empty}), {Name: "notify", Shown: "unchecked"}},
			buttons:   []string{"prev:Previous", "next:Next"},
			formAlert: "Executing",
		}},
		{"stage3", want{
			fields:       []converseFieldShown{{Name: "comment"}},
			buttons:      []string{"prev:Previous", "complete:Complete"},
			instructions: name + " likes " + color + " and knows " + contact,
			formAlert:    "Executing",
		}},
		// The result form, read-only; a text-single <input> cannot show a
		// newline, so the two lines of the comment show joined.
		{"completed", want{
			fields: []converseFieldShown{
				{Name: "name", ReadOnly: true, Shown: name, Attribute: str(name)},
				{Name: "color", ReadOnly: true, Shown: color, Attribute: str(color)},
				{Name: "contact", ReadOnly: true, Shown: contact, Attribute: str(contact)},
				{Name: "notify", ReadOnly: true, Shown: "1", Attribute: str("1")},
				{Name: "comment", ReadOnly: true, Shown: strings.ReplaceAll(comment, "\n", ""), Attribute: str(comment)},
			},
		}},
	}
	for _, st := range stages {
		v, ok := views[st.label]
		if !ok {
			t.Errorf("wizard: Converse showed no %s", st.label)
			continue
		}
		// Converse keeps the title of the first stage for the whole run.
		if st.label == "stage1" && v.Title != "Who are you?" {
			t.Errorf("wizard %s: title %q, want %q", st.label, v.Title, "Who are you?")
		}
		if v.Instructions != st.want.instructions || v.FormAlert != st.want.formAlert {
			t.Errorf("wizard %s: instructions %q alert %q, want %q and %q", st.label, v.Instructions, v.FormAlert, st.want.instructions, st.want.formAlert)
		}
		if !slices.Equal(v.Buttons, st.want.buttons) {
			t.Errorf("wizard %s: buttons %q, want %q", st.label, v.Buttons, st.want.buttons)
		}
		if len(v.Fields) != len(st.want.fields) {
			t.Errorf("wizard %s: fields %+v, want %d: %+v", st.label, v.Fields, len(st.want.fields), st.want.fields)
			continue
		}
		for i, w := range st.want.fields {
			g := v.Fields[i]
			if w.stale {
				w.Shown = g.Shown
			}
			if g.Name != w.Name || g.ReadOnly != w.ReadOnly || g.Shown != w.Shown ||
				(g.Attribute == nil) != (w.Attribute == nil) || (w.Attribute != nil && *g.Attribute != *w.Attribute) {
				t.Errorf("wizard %s: field %d = %s, want %s", st.label, i, fieldString(g), fieldString(w))
			}
		}
	}
	done := views["completed"]
	if done.Alert != "Completed" || done.Note != "done" {
		t.Errorf("wizard completed: alert %q note %q, want Completed and done", done.Alert, done.Note)
	}
}

// fieldString formats a widget for an error message.
func fieldString(f converseFieldShown) string {
	attr := "none"
	if f.Attribute != nil {
		attr = fmt.Sprintf("%q", *f.Attribute)
	}
	return fmt.Sprintf("{%s shows %q, value attribute %s, read-only %t}", f.Name, f.Shown, attr, f.ReadOnly)
}
