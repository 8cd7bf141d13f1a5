package interop_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/server/config"
	"github.com/adhocd/adhocd/server/servertest"
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

// TestConverse drives Converse.js 14.0.0 (npm converse.js, its dist bundle)
// in headless Chromium (Debian's, through playwright-core 1.65.1) as an
// administrator would: it logs in over XMPP over WebSocket (RFC 7395, plain
// ws:// on loopback) from a page on another loopback origin, opens Settings
// → Commands on the server JID, runs get-online-users-num (one stage) and
// add-user (a form filled in and completed), and sends a chat message to a
// roster contact, a Go client on TCP. Screenshots are kept in the
// test's artifact directory (go test -artifacts).
func TestConverse(t *testing.T) {
	node := requireNode(t, "converse.js", "playwright-core")
	requireChromium(t)

	web := httptest.NewServer(converseSite())
	t.Cleanup(web.Close)
	srv := servertest.Start(t, func(c *config.Config) {
		c.Admins = []string{"admin@localhost"}
		c.WebSocket.Listen = "127.0.0.1:0"
		c.WebSocket.AllowedOrigins = []string{web.URL}
	})
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
	shots := t.ArtifactDir()

	start := time.Now()
	lines := startProgram(t, 150*time.Second, nil, node, filepath.Join(jsDir, "converse.mjs"),
		"--url", web.URL+"/",
		"--websocket-url", srv.WSURL,
		"--jid", admin,
		"--password", adminPW,
		"--domain", srv.Domain().String(),
		"--new-user", newUser,
		"--new-password", newPW,
		"--to", bobJID,
		"--body", body,
		"--screenshots", shots,
		"--chromium", chromiumPath,
		"--timeout", "120",
	).finish()
	t.Logf("Converse.js ran for %s; screenshots in %s", time.Since(start).Round(time.Millisecond), shots)
	for _, name := range []string{"converse-online-users.png", "converse-add-user-form.png", "converse-add-user.png", "converse-chat.png"} {
		if _, err := os.Stat(filepath.Join(shots, name)); err != nil {
			t.Errorf("screenshot: %v", err)
		}
	}

	got := map[string]string{}
	for _, line := range lines {
		key, val, _ := strings.Cut(line, " ")
		if key == "BLOCKED" {
			t.Errorf("the page tried to reach beyond loopback: %s", val)
		}
		got[key] = val
	}
	if m := got["MECHANISM"]; m != "SCRAM-SHA-256" {
		t.Errorf("Converse logged in with %q, want SCRAM-SHA-256", m)
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
	if _, ok := got["OK"]; !ok {
		t.Errorf("script did not print OK")
	}
	if _, err := srv.DialErr(newUser, newPW, ""); err != nil {
		t.Errorf("the account add-user made does not log in: %v", err)
	}

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
