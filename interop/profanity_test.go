package interop_test

import (
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/server/config"
	"github.com/adhocd/adhocd/server/servertest"
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
