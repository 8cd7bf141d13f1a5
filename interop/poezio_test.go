package interop_test

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/adhoc/adhoctest"
	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/server"
	"github.com/adhocd/adhocd/servertest"
)

// poezioConfig is poezio.cfg for one account on a test server: the JID and
// password, the server's loopback address in place of DNS, and trust in its
// self-signed certificate alone (ca_cert_path for the chain, certificate for
// poezio's own pin of the key, so that it asks nothing at first login).
const poezioConfig = `[Poezio]
jid = %s
password = %s
custom_host = %s
custom_port = %s
ca_cert_path = %s
certificate = %s
`

// poezio is poezio running in a terminal, logged in.
type poezio struct {
	*terminal
	debugLog string
}

// startPoezio starts poezio in tmux as u, logged in as jid, and waits for
// the login to succeed.
func startPoezio(t *testing.T, srv *servertest.Server, u clientUser, jid, password string) *poezio {
	t.Helper()
	home := u.newHome(t)
	cert, err := os.ReadFile(filepath.Join(srv.Dir, "selfsigned-cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(home, "server-cert.pem")
	if err := os.WriteFile(ca, cert, 0o600); err != nil {
		t.Fatal(err)
	}
	host, port, err := net.SplitHostPort(srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(home, "poezio.cfg")
	body := fmt.Sprintf(poezioConfig, jid, password, host, port, ca, spkiFingerprint(t, cert))
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	u.own(t, home)
	p := &poezio{debugLog: filepath.Join(home, "debug.log")}
	p.terminal = startTerminal(t, "poezio "+jid, u, home, "poezio", "-f", cfg, "-d", p.debugLog)
	t.Cleanup(func() {
		if t.Failed() {
			p.logCommands()
		}
	})
	p.waitFor("Your JID is "+jid+"/", 30*time.Second)
	return p
}

// spkiFingerprint is poezio's pin of a certificate: the SHA-256 of its
// SubjectPublicKeyInfo, in upper-case hex pairs separated by colons.
func spkiFingerprint(t *testing.T, certPEM []byte) string {
	t.Helper()
	block, _ := pem.Decode(certPEM)
	if block == nil {
		t.Fatal("server certificate: no PEM block")
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("server certificate: %v", err)
	}
	sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	hexes := make([]string, len(sum))
	for i, b := range sum {
		hexes[i] = fmt.Sprintf("%02X", b)
	}
	return strings.Join(hexes, ":")
}

// logCommands logs the XEP-0050 stanzas of poezio's debug log, which say
// why a command did not complete when poezio shows nothing.
func (p *poezio) logCommands() {
	b, err := os.ReadFile(p.debugLog)
	if err != nil {
		p.t.Logf("%s: no debug log: %v", p.name, err)
		return
	}
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, "http://jabber.org/protocol/commands") {
			lines = append(lines, l)
		}
	}
	p.t.Logf("%s: XEP-0050 stanzas in its debug log:\n%s", p.name, strings.Join(lines, "\n"))
}

// command types a slash command. The "/" goes alone first: poezio takes
// keys that arrive together as pasted text, and a pasted "/" does not open
// the command line of the roster or a list tab.
func (p *poezio) command(line string) {
	p.t.Helper()
	p.keys("/")
	p.waitUntil("the command line to open", 10*time.Second, func(s string) bool {
		return strings.HasSuffix(lastLine(s), "/")
	})
	p.enter(strings.TrimPrefix(line, "/"))
}

// lastLine is the last non-blank line of a screen, trailing blanks dropped.
func lastLine(screen string) string {
	lines := strings.Split(trimScreen(screen), "\n")
	return lines[len(lines)-1]
}

// adhoc opens the list of jid's commands with /ad-hoc, selects node with the
// arrow keys, runs it with Enter and waits for its form titled title.
func (p *poezio) adhoc(jid, node, title string) {
	p.t.Helper()
	header := "Ad-hoc commands of JID " + jid
	// Closing a form goes back to the list it came from; close that list,
	// or the new one could not be told from it on the screen.
	if strings.Contains(p.screen(), header) {
		p.command("/close")
		p.waitUntil("the old command list to close", 10*time.Second, func(s string) bool {
			return !strings.Contains(s, header)
		})
	}
	p.command("/ad-hoc " + jid)
	s := p.waitUntil("the command list of "+jid, 15*time.Second, func(s string) bool {
		return strings.Contains(s, header) && !strings.Contains(s, header+" (Loading)") && strings.Contains(s, node)
	})
	// The cursor is on the first command, the line under the column titles.
	first, at := -1, -1
	for i, l := range strings.Split(s, "\n") {
		switch {
		case first < 0 && strings.Contains(l, "Node") && strings.Contains(l, "Description"):
			first = i + 1
		case first >= 0 && strings.Contains(l, node+" "):
			at = i
		}
		if at >= 0 {
			break
		}
	}
	if first < 0 || at < 0 {
		p.fail("no line of %s in the command list", node)
	}
	// One Down at a time, each waited for until the highlight moved: keys
	// sent while poezio is still drawing the list can be lost on a loaded
	// machine, and the Enter would then run another command.
	for range at - first {
		before := p.styledScreen()
		p.keys("Down")
		p.waitStyled("the highlight to move down", 10*time.Second, func(s string) bool { return s != before })
	}
	p.keys("Enter")
	p.waitFor(title, 30*time.Second)
}

// TestPoezioAdminCommands drives poezio 0.14 (Debian's poezio, on slixmpp
// 1.8) in a terminal as an administrator would: /ad-hoc localhost, then Add
// User (the account JID and the password twice typed into poezio's form,
// Ctrl+Y to send) and Send Announcement to Online Users. The account must
// then exist (its owner logs in with it) and another user's session must
// get the announcement. poezio sends a single-stage form with action
// "next", which adhocd must take as "complete" on a command's last stage.
func TestPoezioAdminCommands(t *testing.T) {
	requireProgram(t, "poezio", "poezio")
	u := terminalUser(t)
	srv := servertest.Start(t, func(c *config.Config) { c.Admins = []string{"admin@localhost"} })
	adminPW := "adm-" + randomHex(t, 6)
	admin := srv.AddUser("admin", adminPW)
	srv.AddUser("bob", "bob-pw")
	bob := srv.Dial("bob", "bob-pw", "")
	p := startPoezio(t, srv, u, admin, adminPW)

	// Add User: the first field has the focus; Down moves to the next.
	carolPW := "carol-" + randomHex(t, 6)
	p.adhoc("localhost", "http://jabber.org/protocol/admin#add-user", "Adding a User")
	p.typeText("carol@localhost")
	p.keys("Down")
	p.typeText(carolPW)
	p.keys("Down")
	p.typeText(carolPW)
	masked := strings.Repeat("*", len(carolPW))
	p.waitUntil("the form filled in", 10*time.Second, func(s string) bool {
		return strings.Contains(s, "carol@localhost") && strings.Count(s, masked) == 2
	})
	p.keys("C-y")
	p.waitFor("added carol@localhost", 15*time.Second)
	if _, err := srv.DialErr("carol", carolPW, ""); err != nil {
		t.Fatalf("carol cannot log in with the password typed into poezio: %v", err)
	}

	// Send Announcement: Enter edits the text-multi field's first line,
	// Enter again ends it.
	text := randomBody(t)
	p.adhoc("localhost", "http://jabber.org/protocol/admin#announce", "Making an Announcement")
	submitTextMulti(p, text)
	p.waitFor("sent the announcement to", 15*time.Second)
	bob.Next(10*time.Second, func(st servertest.Stanza) bool {
		return st.Name == "message" && st.Attrs["from"] == "localhost" && strings.Contains(st.XML, text)
	})
}

// submitTextMulti types text as the first line of the form's focused
// text-multi field and submits the form: Enter starts the edit, Enter ends
// it, C-y submits. Each key is waited for (the screen changes) before the
// next one: on a loaded machine poezio took keys sent together out of
// step, typed text went nowhere, or C-y came before the edit ended and the
// form went without the text.
func submitTextMulti(p *poezio, text string) {
	p.t.Helper()
	before := p.styledScreen()
	p.keys("Enter")
	p.waitStyled("the edit of the text-multi field to begin", 10*time.Second, func(s string) bool { return s != before })
	p.typeText(text)
	p.waitFor(text, 10*time.Second)
	before = p.styledScreen()
	p.keys("Enter")
	p.waitStyled("the edit of the text-multi field to end", 10*time.Second, func(s string) bool { return s != before })
	p.keys("C-y")
}

// wizardColorLabel is the label the wizard gives the colour value color.
func wizardColorLabel(color string) string {
	return strings.ToUpper(color[:1]) + color[1:]
}

// TestPoezioWizard drives poezio 0.14 (Debian's poezio, on slixmpp 1.8) in
// a terminal through adhocd's three-stage demo wizard as a user would: the
// wizard chosen in /ad-hoc localhost, its name typed and colour picked with
// the arrow keys, Ctrl+Y to go on; the contact typed and the boolean turned
// on with →, Ctrl+Y; a comment line entered into the text-multi field,
// Ctrl+Y. Each stage must show what the one before it was told (stage 2
// greets the name), and the completed command's result form must show the
// name, colour, contact, notify flag and comment given, in that order.
//
// poezio offers no way back: its form tab (poezio/tabs/data_forms.py) has
// only Ctrl+Y, which calls slixmpp's continue_command with its default
// action "next" (poezio/core/handlers.py, _validate_adhoc_step), and Ctrl+G
// to cancel; it reads neither the actions a stage offers nor prev. So the
// run is next, next, next, and the last next, on a stage that offers no
// next, is taken as complete.
//
// poezio cannot show the note "done" of a result that carries a form:
// next_adhoc_step adds each note to the form as a fixed field with the note
// as its label and no value, and the form window
// (poezio/windows/data_forms.py, FormWin) draws a fixed field's value, not
// its label. The test checks instead, in poezio's debug log, that poezio
// received the completed result with that note.
func TestPoezioWizard(t *testing.T) {
	requireProgram(t, "poezio", "poezio")
	u := terminalUser(t)
	srv := servertest.StartWith(t, []server.Option{server.WithCommands(adhoctest.Wizard())})
	alicePW := "alice-" + randomHex(t, 6)
	alice := srv.AddUser("alice", alicePW)
	p := startPoezio(t, srv, u, alice, alicePW)

	var (
		name    = "name-" + randomHex(t, 4)
		color   = randomWizardColor(t)
		contact = "friend-" + randomHex(t, 4) + "@localhost"
		comment = "comment-" + randomHex(t, 6)
	)

	// Stage 1: the name field has the focus; the colour list starts on
	// its first option and → moves along it.
	p.adhoc("localhost", adhoctest.WizardNode, "Who are you?")
	p.typeText(name)
	p.keys("Down")
	for range slices.Index(wizardColors, color) {
		p.keys("Right")
	}
	p.waitUntil("stage 1 filled in", 10*time.Second, func(s string) bool {
		return strings.Contains(s, name) && strings.Contains(s, wizardColorLabel(color))
	})
	p.keys("C-y")

	// Stage 2 greets the name given in stage 1; → turns the boolean on.
	p.waitFor("Hello "+name, 15*time.Second)
	p.typeText(contact)
	p.keys("Down", "Right")
	p.waitUntil("stage 2 filled in", 10*time.Second, func(s string) bool {
		return strings.Contains(s, contact) && strings.Contains(s, "True")
	})
	p.keys("C-y")

	// Stage 3: Enter edits the text-multi field's first line, Enter
	// again ends it.
	p.waitFor("Confirm", 15*time.Second)
	submitTextMulti(p, comment)

	// The result form echoes every answer, the colour as its value and
	// the boolean as poezio sent it ("1"), one field a line.
	want := []string{name, color, contact, "1", comment}
	p.waitUntil(fmt.Sprintf("the wizard's result form with the values %q", want), 15*time.Second, func(s string) bool {
		return !strings.Contains(s, "Confirm") && containsRun(formValues(s), want)
	})
	p.waitUntil("the completed result with the note done in poezio's debug log", 10*time.Second, func(string) bool {
		return p.received(`status="completed"`, `<note type="info">done</note>`)
	})
}

// formValues are the texts of the lines of poezio's form tab that hold
// something right of the tab list, trimmed: a form's labels and values.
func formValues(screen string) []string {
	var vals []string
	for _, l := range strings.Split(screen, "\n") {
		_, right, ok := strings.Cut(l, "│")
		if v := strings.TrimSpace(right); ok && v != "" {
			vals = append(vals, v)
		}
	}
	return vals
}

// containsRun reports whether want occurs in have as consecutive elements.
func containsRun(have, want []string) bool {
	for i := 0; i+len(want) <= len(have); i++ {
		if slices.Equal(have[i:i+len(want)], want) {
			return true
		}
	}
	return false
}

// received reports whether poezio's debug log has a received stanza that
// contains all of parts.
func (p *poezio) received(parts ...string) bool {
	b, err := os.ReadFile(p.debugLog)
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.Contains(l, "RECV: ") {
			continue
		}
		all := true
		for _, part := range parts {
			all = all && strings.Contains(l, part)
		}
		if all {
			return true
		}
	}
	return false
}
