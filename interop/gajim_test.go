package interop_test

import (
	"context"
	"encoding/xml"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/modules"
	"github.com/adhocd/adhocd/server"
	"github.com/adhocd/adhocd/servertest"
)

// sessionWatch is a server module that records every session that sends
// initial presence, so that a test can see a client's login from the
// server's side.
type sessionWatch struct {
	mu        sync.Mutex
	host      modules.Host
	available chan jid.JID
}

func newSessionWatch() *sessionWatch { return &sessionWatch{available: make(chan jid.JID, 16)} }

func (w *sessionWatch) Name() string { return "test-session-watch" }

func (w *sessionWatch) Start(_ context.Context, h modules.Host) error {
	w.mu.Lock()
	w.host = h
	w.mu.Unlock()
	return nil
}

// SessionOnline implements modules.OnlineHook.
func (w *sessionWatch) SessionOnline(_ context.Context, s modules.Session) {
	select {
	case w.available <- s.JID():
	default:
	}
}

func (w *sessionWatch) Stop(context.Context) error { return nil }

// sessions lists the server's bound sessions.
func (w *sessionWatch) sessions() []modules.SessionInfo {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.host.Sessions()
}

// TestGajimListsAdminCommands drives Gajim 1.7.3 (Debian's gajim package),
// the GTK client, under Xvfb: it logs in as an administrator of a real
// adhocd, opens "Execute Command…" on the server JID (Gajim's own app action
// behind that menu entry) and screenshots the command list it shows. Gajim
// runs in testdata/gajim_driver.py's process, which starts it as
// /usr/bin/gajim does and adds a hook to its main loop that triggers the
// action and reads the list from the window.
func TestGajimListsAdminCommands(t *testing.T) {
	requireProgram(t, "gajim", "gajim")
	requireProgram(t, "xvfb", "xvfb-run")
	requireProgram(t, "util-linux", "setsid")
	watch := newSessionWatch()
	srv := servertest.StartWith(t, []server.Option{server.WithModules(watch)}, func(c *config.Config) {
		c.Admins = []string{"admin@localhost"}
	})
	password := randomHex(t, 8)
	srv.AddUser("admin", password)
	resource := "gajim-" + randomHex(t, 4)

	u := terminalUser(t)
	home := u.newHome(t)
	cert, err := os.ReadFile(filepath.Join(srv.Dir, "selfsigned-cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	cafile := filepath.Join(home, "server-cert.pem")
	if err := os.WriteFile(cafile, cert, 0o600); err != nil {
		t.Fatal(err)
	}
	u.own(t, home)
	host, port, err := net.SplitHostPort(srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	driver, err := filepath.Abs(filepath.Join("testdata", "gajim_driver.py"))
	if err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(home, "gajim-commands.png")
	gajimLog := filepath.Join(home, "gajim.log")
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		if b, err := os.ReadFile(gajimLog); err == nil {
			t.Logf("Gajim's log:\n%s", b)
		}
		// The driver saves the screen when it gives up, too.
		if _, err := os.Stat(shot); err == nil {
			saveArtifact(t, shot)
		}
	})

	// setsid makes the driver lead a process group of its own (xvfb-run,
	// Xvfb, Gajim), which the cleanup ends by its PID.
	argv := []string{}
	if u.runAs != "" {
		argv = append(argv, "runuser", "-u", u.runAs, "--")
	}
	argv = append(argv, "env", "-i")
	argv = append(argv, clientEnv(home)...)
	argv = append(argv, "xvfb-run", "--auto-servernum", "--server-args=-screen 0 1280x800x24 -nolisten tcp",
		python, driver,
		"--host", host, "--port", port, "--cafile", cafile,
		"--profile", filepath.Join(home, "gajim"),
		"--user", "admin", "--domain", "localhost", "--password", password,
		"--resource", resource, "--target", "localhost",
		"--screenshot", shot, "--log", gajimLog, "--timeout", "40")
	s := startProgram(t, 55*time.Second, nil, "setsid", argv...)
	s.name = "gajim_driver.py"
	t.Cleanup(func() { stopGroup(s.cmd.Process.Pid, 3*time.Second) })

	// Gajim's session, as Gajim and the server see it: bound with the
	// resource of its profile, and available.
	want := "admin@localhost/" + resource
	if line, ok := s.next("available ", 40*time.Second); !ok || line != "available "+want {
		_ = s.wait()
		t.Fatalf("Gajim: %q, want available %s", line, want)
	}
	select {
	case j := <-watch.available:
		if j.String() != want {
			t.Fatalf("available session %s, want %s", j, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the server saw no session become available; want %s", want)
	}
	if !slices.ContainsFunc(watch.sessions(), func(si modules.SessionInfo) bool {
		return si.JID.String() == want && si.Available
	}) {
		t.Errorf("server sessions %v lack an available %s", watch.sessions(), want)
	}

	// The list Gajim shows is the server's: every command an admin may run,
	// by name, in the server's order.
	rows := s.finish()
	var listed []string
	var gotShot string
	for _, l := range rows {
		if name, ok := strings.CutPrefix(l, "command "); ok {
			listed = append(listed, name)
		}
		if p, ok := strings.CutPrefix(l, "screenshot "); ok {
			gotShot = p
		}
	}
	if want := adminCommandNames(t, srv, password); !slices.Equal(listed, want) {
		t.Errorf("Gajim's command list:\n%q\nthe server's:\n%q", listed, want)
	}
	// Gajim asked for it as XEP-0050 says: disco#items of the commands
	// node of the server JID (its -v log shows every stanza it sent).
	b, err := os.ReadFile(gajimLog)
	if err != nil {
		t.Fatal(err)
	}
	if !commandListRequest.Match(b) {
		t.Errorf("Gajim's log has no disco#items request for the commands node of localhost")
	}
	if gotShot != shot {
		t.Fatalf("driver printed screenshot %q, want %q", gotShot, shot)
	}
	saveArtifact(t, shot)
}

// commandListRequest is Gajim's request for the command list, as its -v log
// shows the stanzas it sent.
var commandListRequest = regexp.MustCompile(`<iq [^>]*to="localhost" type="get"[^>]*><query xmlns="http://jabber.org/protocol/disco#items" node="http://jabber.org/protocol/commands"`)

// adminCommandNames asks srv, as a second session of admin, for the names of
// the commands on its JID, in the order it lists them.
func adminCommandNames(t *testing.T, srv *servertest.Server, password string) []string {
	t.Helper()
	c := srv.Dial("admin", password, "")
	reply, err := c.IQ(servertest.Context(t, 10*time.Second),
		`<iq type="get" to="localhost" id="list"><query xmlns="http://jabber.org/protocol/disco#items" node="http://jabber.org/protocol/commands"/></iq>`)
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Items []struct {
			Name string `xml:"name,attr"`
		} `xml:"query>item"`
	}
	if err := xml.Unmarshal([]byte(reply), &r); err != nil {
		t.Fatalf("disco#items reply %s: %v", reply, err)
	}
	var names []string
	for _, it := range r.Items {
		names = append(names, it.Name)
	}
	if len(names) == 0 {
		t.Fatalf("the server lists no commands: %s", reply)
	}
	return names
}

// saveArtifact copies file into the test's artifact folder (kept with
// go test -artifacts, as .ci/run does) and logs where it is.
func saveArtifact(t *testing.T, file string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), "\x89PNG\r\n\x1a\n") {
		t.Fatalf("%s is not a PNG", file)
	}
	dst := filepath.Join(t.ArtifactDir(), filepath.Base(file))
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", dst)
}
