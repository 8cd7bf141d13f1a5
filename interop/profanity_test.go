package interop_test

import (
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/adhoc/adhoctest"
	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/server"
	"github.com/adhocd/adhocd/servertest"
)

// carbonsError is what Profanity prints when the server refuses to enable
// XEP-0280 message carbons, which it asks for at every login.
const carbonsError = "Server error enabling message carbons"

// startProfanity starts Profanity in tmux as u with a home of its own and
// logs in as user with /connect, as the README tells users to: the server's
// loopback address and "tls trust" for its self-signed certificate.
func startProfanity(t *testing.T, srv *servertest.Server, u clientUser, user, password string) *terminal {
	t.Helper()
	host, port, err := net.SplitHostPort(srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	jid := user + "@" + srv.Domain().String()
	p := startTerminal(t, "profanity "+jid, u, u.newHome(t), "profanity")
	p.waitFor("Type '/help' to show complete help.", 20*time.Second)
	p.enter("/connect " + jid + " server " + host + " port " + port + " tls trust")
	p.waitFor("Enter password:", 10*time.Second)
	p.typeText(password)
	p.keys("Enter")
	p.waitFor(jid+"/", 20*time.Second)
	p.waitFor("logged in successfully", 20*time.Second)
	// Profanity asks the server's disco#info at login and, until the
	// answer is in, says the server "does not support ad hoc commands"
	// to a /cmd typed at once (seen on a loaded CI machine). The server
	// answers a stream's IQs in order: once the ping sent now is answered,
	// so is the disco#info.
	p.enter("/ping")
	p.waitFor("Ping response from server", 20*time.Second)
	return p
}

// checkCarbons fails the test (and goes on) if Profanity reported that the
// server refused message carbons. It pings the server first: the answer to
// the carbons request, sent at login, comes before the ping's.
func checkCarbons(t *testing.T, p *terminal) {
	t.Helper()
	p.enter("/ping")
	s := p.waitFor("Ping response from server", 10*time.Second)
	if strings.Contains(s, carbonsError) {
		t.Errorf("%s: Profanity could not enable message carbons (XEP-0280) at login; its screen:\n%s", p.name, trimScreen(s))
	}
}

// formField returns the tag (field1, field2, ...) Profanity gave the field
// labelled label in the form on the screen.
func formField(p *terminal, screen, label string) string {
	p.t.Helper()
	m := regexp.MustCompile(`\[(field\d+)\] ` + regexp.QuoteMeta(label)).FindStringSubmatch(screen)
	if m == nil {
		p.fail("no field labelled %q in the form", label)
	}
	return m[1]
}

// TestProfanity drives two Profanity 0.13 instances (Debian's profanity,
// on libstrophe) in terminals, each with its own home: an administrator
// lists the server's ad-hoc commands with /cmd list, runs Add User with
// /cmd exec, fills its form with /fieldN and sends it with /form submit, and
// the account must then exist (its owner logs in with it). Then the
// administrator and another user chat: what one types shows in the other's
// window. Neither may be told at login that the server refused message
// carbons.
func TestProfanity(t *testing.T) {
	requireProgram(t, "profanity", "profanity")
	u := terminalUser(t)
	srv := servertest.Start(t, func(c *config.Config) { c.Admins = []string{"admin@localhost"} })
	adminPW := "adm-" + randomHex(t, 6)
	srv.AddUser("admin", adminPW)
	bobPW := "bob-" + randomHex(t, 6)
	srv.AddUser("bob", bobPW)

	admin := startProfanity(t, srv, u, "admin", adminPW)
	bob := startProfanity(t, srv, u, "bob", bobPW)
	checkCarbons(t, admin)
	checkCarbons(t, bob)

	admin.enter("/cmd list localhost")
	s := admin.waitFor("urn:adhocd:admin#status", 15*time.Second)
	for _, node := range []string{"http://jabber.org/protocol/admin#add-user", "http://jabber.org/protocol/admin#announce"} {
		if !strings.Contains(s, node) {
			admin.fail("/cmd list localhost lists no %s", node)
		}
	}

	admin.enter("/cmd exec http://jabber.org/protocol/admin#add-user localhost")
	s = admin.waitFor("Form title: Adding a User", 15*time.Second)
	admin.waitFor("/form submit", 10*time.Second)
	carolPW := "carol-" + randomHex(t, 6)
	for _, f := range []struct{ label, value, shown string }{
		{"The Jabber ID for the account to be added", "carol@localhost", "carol@localhost"},
		{"The password for this account", carolPW, "[hidden]"},
		{"Retype password", carolPW, "[hidden]"},
	} {
		tag := formField(admin, s, f.label)
		admin.enter("/" + tag + " " + f.value)
		updated := regexp.MustCompile(`\[` + tag + `\] ` + regexp.QuoteMeta(f.label) + `( \(required\))?: ` + regexp.QuoteMeta(f.shown))
		admin.waitUntil(tag+" set", 10*time.Second, updated.MatchString)
	}
	admin.enter("/form submit")
	admin.waitFor("http://jabber.org/protocol/admin#add-user completed", 15*time.Second)
	admin.waitFor("added carol@localhost", 5*time.Second)
	if _, err := srv.DialErr("carol", carolPW, ""); err != nil {
		t.Fatalf("carol cannot log in with the password given in Profanity's form: %v", err)
	}

	// A chat: /msg opens admin's window with bob; bob's console announces
	// the message and /win 2 shows it; bob's reply shows in admin's window.
	hello := randomBody(t)
	admin.enter("/msg bob@localhost " + hello)
	admin.waitFor("me: "+hello, 10*time.Second)
	bob.waitFor("<< chat message: admin@localhost/", 10*time.Second)
	bob.enter("/win 2")
	bob.waitFor("admin@localhost/profanity", 10*time.Second)
	bob.waitFor(": "+hello, 10*time.Second)
	reply := randomBody(t)
	bob.enter(reply)
	bob.waitFor("me: "+reply, 10*time.Second)
	admin.waitUntil("bob's reply", 10*time.Second, func(s string) bool {
		return regexp.MustCompile(`bob@localhost/\S+: ` + regexp.QuoteMeta(reply)).MatchString(s)
	})
}

// setFormField sets the field labelled label of the form on p's screen by
// typing /fieldN args, and waits for Profanity to say it updated it.
func setFormField(p *terminal, label, args string) {
	p.t.Helper()
	s := p.screen()
	tag := formField(p, s, label)
	const updated = "Field updated..."
	before := strings.Count(s, updated)
	p.enter("/" + tag + " " + args)
	p.waitUntil(tag+" updated", 10*time.Second, func(s string) bool {
		return strings.Count(s, updated) > before
	})
}

// TestProfanityWizard drives Profanity 0.13 (Debian's profanity, on
// libstrophe) in a terminal through adhocd's three-stage demo wizard as a
// user would: /cmd exec of the wizard on localhost, then at each stage the
// fields set with /fieldN (a name and a colour; a contact and the boolean
// on; two lines added to the text-multi comment) and /form submit. Each
// stage must show what the ones before were told (stage 2 greets the name,
// stage 3's instructions repeat name, colour and contact), and the
// completed command must show its result form echoing every answer and,
// in the console, that it completed with the note "done".
//
// Profanity offers no way back: /form has only show, submit, cancel and
// help (src/command/cmd_funcs.c, cmd_form), and submit sends the stage's
// form with no action attribute (src/xmpp/stanza.c,
// stanza_create_command_config_submit_iq), which XEP-0050 reads as
// "execute", the stage's default action. So the run is next, next,
// complete, each by the stage's default.
func TestProfanityWizard(t *testing.T) {
	requireProgram(t, "profanity", "profanity")
	u := terminalUser(t)
	srv := servertest.StartWith(t, []server.Option{server.WithCommands(adhoctest.Wizard())})
	alicePW := "alice-" + randomHex(t, 6)
	srv.AddUser("alice", alicePW)
	p := startProfanity(t, srv, u, "alice", alicePW)

	var (
		name     = "name-" + randomHex(t, 4)
		color    = randomWizardColor(t)
		contact  = "friend-" + randomHex(t, 4) + "@localhost"
		comment1 = "first-" + randomHex(t, 4)
		comment2 = "second-" + randomHex(t, 4)
	)

	p.enter("/cmd exec " + adhoctest.WizardNode + " localhost")
	p.waitFor("Form title: Who are you?", 15*time.Second)
	p.waitFor("/form submit", 10*time.Second)
	setFormField(p, "Name", name)
	setFormField(p, "Colour", color)
	p.enter("/form submit")

	p.waitFor("Form title: Hello "+name, 15*time.Second)
	p.waitFor("/form submit", 10*time.Second)
	setFormField(p, "Contact", contact)
	setFormField(p, "Notify them", "on")
	p.enter("/form submit")

	p.waitFor("Form title: Confirm", 15*time.Second)
	p.waitFor(name+" likes "+color+" and knows "+contact, 10*time.Second)
	p.waitFor("/form submit", 10*time.Second)
	setFormField(p, "Comment", "add "+comment1)
	setFormField(p, "Comment", "add "+comment2)
	p.enter("/form submit")

	// The result form opens in a window of its own, a field a line, with
	// the answers in the order of the wizard's stages: the boolean as
	// Profanity sent it ("1"), the comment's lines joined by a line break.
	var lines []string
	for _, v := range []string{name, color, contact, "1", comment1} {
		lines = append(lines, `- \[field\d+\] [^\n]*: `+regexp.QuoteMeta(v)+`\n`)
	}
	want := regexp.MustCompile(strings.Join(lines, `[^\n]*`) + `\s*` + regexp.QuoteMeta(comment2) + `\n`)
	p.waitUntil("the wizard's result form", 15*time.Second, func(s string) bool {
		return !strings.Contains(s, "Form title: Confirm") && want.MatchString(trimScreen(s))
	})

	// The console, window 1, says the command completed, and its note
	// (lines compared with their trailing blanks trimmed).
	p.enter("/win 1")
	completed := regexp.MustCompile(`! ` + regexp.QuoteMeta(adhoctest.WizardNode) + ` completed\n[^\n]*! done\n`)
	p.waitUntil("the console to say the wizard completed with the note done", 10*time.Second, func(s string) bool {
		return completed.MatchString(trimScreen(s))
	})
}
