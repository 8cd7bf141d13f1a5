package interop_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/adhoc/adhoctest"
	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/modules/admin"
	"github.com/adhocd/adhocd/server"
	"github.com/adhocd/adhocd/servertest"
)

// jsDir is the Node project of the JavaScript clients; CI fills its
// node_modules with `npm ci --prefix interop/js`.
const jsDir = "js"

// requireNode returns the path of node after checking that each of the npm
// packages is installed in js/node_modules. It skips the test when one is
// missing, or fails it when running under CI, where a skip would hide a
// broken setup.
func requireNode(t *testing.T, packages ...string) string {
	t.Helper()
	var missing []string
	node, err := exec.LookPath("node")
	if err != nil {
		missing = append(missing, "node ("+err.Error()+"); install Debian's nodejs")
	}
	for _, p := range packages {
		if _, err := os.Stat(filepath.Join(jsDir, "node_modules", p, "package.json")); err != nil {
			missing = append(missing, p+" ("+err.Error()+"); run npm ci --prefix interop/js")
		}
	}
	if len(missing) == 0 {
		return node
	}
	unavailable(t, "JavaScript client unavailable: "+strings.Join(missing, "; "))
	return ""
}

// unavailable skips the test for a missing client, or fails it when running
// under CI, where a skip would hide a broken setup.
func unavailable(t *testing.T, msg string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// TestXmppjs drives xmpp.js 0.14.0 (@xmpp/client from npm, on Node) over
// TCP: it logs in as an administrator with STARTTLS and SCRAM-SHA-1 (the
// strongest mechanism xmpp.js has), lists the commands of the server JID
// (disco#items), runs get-online-users-num, add-user and the three-stage
// test wizard (next, prev, next, next, complete) through raw XEP-0050 IQs
// and sends a chat message to a Go client.
func TestXmppjs(t *testing.T) {
	node := requireNode(t, "@xmpp/client")
	srv := servertest.StartWith(t, []server.Option{server.WithCommands(adhoctest.Wizard())},
		func(c *config.Config) { c.Admins = []string{"admin@localhost"} })
	// xmpp.js verifies the certificate against the domain (its STARTTLS
	// upgrade sets the TLS server name to "localhost") while connecting to
	// the listener's IPv4 address.
	runXmppjs(t, srv, node, "xmpp://"+srv.Addr)
}

// TestXmppjsWebSocket drives xmpp.js 0.14.0 (@xmpp/client, on Node with its
// built-in WebSocket) over XMPP over WebSocket (RFC 7395) on plain ws://
// loopback, with the steps of TestXmppjs: SCRAM-SHA-1 login (no PLAIN
// without TLS), the command list, get-online-users-num, add-user, the
// wizard with prev and a chat message to a Go client on TCP.
func TestXmppjsWebSocket(t *testing.T) {
	node := requireNode(t, "@xmpp/client")
	srv := servertest.StartWith(t, []server.Option{server.WithCommands(adhoctest.Wizard())}, func(c *config.Config) {
		c.Admins = []string{"admin@localhost"}
		c.WebSocket.Listen = "127.0.0.1:0"
	})
	// Node 20 has WebSocket behind a flag; Node 22 and later have it on
	// and accept the flag.
	runXmppjs(t, srv, node, srv.WSURL, "NODE_OPTIONS=--experimental-websocket")
}

// runXmppjs runs js/xmppjs.mjs as admin@localhost against service and
// checks what a user of the client would: the login, the command list, the
// number of online users (the script's session and a Go client's), that
// the account the add-user form made can log in, every reply of the wizard
// (checkWizardRun), and that the Go client got the exact body. env is
// added to node's environment; srv runs the wizard of adhoc/adhoctest.
func runXmppjs(t *testing.T, srv *servertest.Server, node, service string, env ...string) {
	t.Helper()
	const adminPW, bobPW = "xmpp.js-admin", "bob-the-receiver"
	srv.AddUser("admin", adminPW)
	srv.AddUser("bob", bobPW)
	bob := srv.Dial("bob", bobPW, "")
	newUser, newPW := "carol"+randomHex(t, 4), "pw-"+randomHex(t, 8)
	body := randomBody(t)
	wizName, wizColor, wizContact, wizComment := newWizardAnswers(t)

	start := time.Now()
	args := []string{filepath.Join(jsDir, "xmppjs.mjs"),
		"--service", service,
		"--domain", srv.Domain().String(),
		"--user", "admin",
		"--password", adminPW,
		"--new-user", newUser,
		"--new-password", newPW,
		"--wizard-node", adhoctest.WizardNode,
		"--wizard-name", wizName,
		"--wizard-color", wizColor,
		"--wizard-contact", wizContact,
		"--wizard-comment", wizComment,
		"--to", bob.LocalAddr().String(),
		"--body", body,
		"--timeout", "30",
	}
	env = append(env, "NODE_EXTRA_CA_CERTS="+filepath.Join(srv.Dir, "selfsigned-cert.pem"))
	lines := startProgram(t, 60*time.Second, env, node, args...).finish()
	t.Logf("xmpp.js ran for %s", time.Since(start).Round(time.Millisecond))

	got := map[string]string{}
	responses := map[string]pyResponse{}
	var listed []struct{ JID, Node, Name string }
	for _, line := range lines {
		key, val, _ := strings.Cut(line, " ")
		switch key {
		case "RESPONSE":
			label, js, _ := strings.Cut(val, " ")
			var r pyResponse
			if err := json.Unmarshal([]byte(js), &r); err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			responses[label] = r
		case "COMMANDS":
			if err := json.Unmarshal([]byte(val), &listed); err != nil {
				t.Fatalf("%s: %v", line, err)
			}
		}
		got[key] = val
	}
	if m := got["MECHANISM"]; m != "SCRAM-SHA-1" {
		t.Errorf("xmpp.js logged in with %q, want SCRAM-SHA-1", m)
	}
	for node, name := range map[string]string{
		admin.Node("add-user"):             "Add User",
		admin.Node("get-online-users-num"): "Get Number of Online Users",
		adhoctest.WizardNode:               adhoctest.Wizard().Name,
	} {
		if !slices.ContainsFunc(listed, func(c struct{ JID, Node, Name string }) bool {
			return c.JID == srv.Domain().String() && c.Node == node && c.Name == name
		}) {
			t.Errorf("command list %+v lacks %s named %q at %s", listed, node, name, srv.Domain())
		}
	}
	if n := got["ONLINE_USERS"]; n != "2" {
		t.Errorf("get-online-users-num = %q, want 2 (xmpp.js and the Go client)", n)
	}
	for _, v := range []string{"FORM_TYPE", "accountjid", "password", "password-verify"} {
		if !strings.Contains(","+got["ADD_USER_FORM"]+",", ","+v+",") {
			t.Errorf("add-user form fields %q lack %s", got["ADD_USER_FORM"], v)
		}
	}
	if s := got["ADD_USER"]; s != "completed" && !strings.HasPrefix(s, "completed info:") {
		t.Errorf("add-user ended %q, want completed without an error note", s)
	}
	if _, ok := got["OK"]; !ok {
		t.Errorf("script did not print OK")
	}
	if _, err := srv.DialErr(newUser, newPW, ""); err != nil {
		t.Errorf("the account add-user made does not log in: %v", err)
	}
	checkWizardRun(t, responses, wizName, wizColor, wizContact, wizComment)

	msg := bob.Next(10*time.Second, func(st servertest.Stanza) bool { return st.Name == "message" })
	var m struct {
		Body string `xml:"body"`
	}
	if err := msg.Decode(&m); err != nil {
		t.Fatalf("decode %s: %v", msg.XML, err)
	}
	if m.Body != body || msg.Attrs["type"] != "chat" || !strings.HasPrefix(msg.Attrs["from"], "admin@localhost/") {
		t.Errorf("Go client got %s, want a chat from admin@localhost with body %q", msg.XML, body)
	}
}
