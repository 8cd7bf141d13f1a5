package main_test

import (
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/adhocd/adhocd/servertest"
)

// TestControlSocketAtConnectionLimit: with limits.max_connections and the
// administrators' reserved connections all held by idle TCP connections, a
// new client connection is refused with resource-constraint, yet the
// control socket, which is not a client connection, still works: `adhocd
// user add` makes an account and `adhocd status` reports the figures (the
// five connections held among them). Once the idle connections are gone
// the new account logs in over c2s.
func TestControlSocketAtConnectionLimit(t *testing.T) {
	bin := build(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	// The idle connections must outlast the test on a loaded machine:
	// limits.pre_auth_timeout would otherwise close them after 30 s.
	yaml := "domain: localhost\nadmins: [root@localhost]\nc2s:\n  listen: 127.0.0.1:0\ns2s:\n  listen: \"\"\nstorage:\n  path: data\n" +
		"limits:\n  max_connections: 3\n  admin_reserved_connections: 2\n  pre_auth_timeout: 10m\nlog:\n  level: info\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	srv, addrs, logs := startAdhocd(t, bin, cfg)
	addr := next(t, addrs, logs)

	const held = 3 + 2 // max_connections and the reserved ones
	var idle []net.Conn
	for range held {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		idle = append(idle, c)
	}
	// status through the control socket, until the server has admitted
	// every idle connection (it accepts them one after another).
	status := func(want *regexp.Regexp) string {
		t.Helper()
		var out string
		var code int
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if out, code = exitCode(t, bin, "", "status", "--config", cfg); code == 0 && want.MatchString(out) || time.Now().After(deadline) {
				break
			}
		}
		if code != 0 {
			t.Fatalf("adhocd status at the connection limit: exit %d: %s", code, out)
		}
		if !want.MatchString(out) {
			t.Fatalf("adhocd status does not say %s:\n%s\nserver log:\n%s", want, out, logs.String())
		}
		return out
	}
	out := status(regexp.MustCompile(`Open connections: +5\n`))
	for _, want := range []string{"Uptime:", "Version:", "Bound sessions:", "Online users:", "Goroutines:", "Heap in use (bytes):"} {
		if !strings.Contains(out, want) {
			t.Errorf("adhocd status lacks %q:\n%s", want, out)
		}
	}

	// The c2s listener is full: the next connection is refused.
	refused := servertest.DialRaw(t, addr)
	if got, _ := refused.ClosedByServer(servertest.Wait); !strings.Contains(got, "<resource-constraint") {
		t.Fatalf("a connection past max_connections and the reserved ones got %q, want resource-constraint", got)
	}

	// The control socket is not: an account is made through it.
	if out, code := exitCode(t, bin, "pw-carol\n", "user", "add", "carol", "--config", cfg); code != 0 {
		t.Fatalf("adhocd user add at the connection limit: exit %d: %s", code, out)
	}
	if out, code := exitCode(t, bin, "", "user", "list", "--config", cfg); code != 0 || !strings.Contains(out, "carol@localhost") {
		t.Fatalf("adhocd user list at the connection limit: exit %d: %q", code, out)
	}
	status(regexp.MustCompile(`Open connections: +5\n`))

	// With the idle connections gone, carol logs in and is served.
	for _, c := range idle {
		c.Close()
	}
	status(regexp.MustCompile(`Open connections: +0\n`))
	carol := servertest.DialRaw(t, addr)
	carol.Authenticate(clientTLS(t, dir), "carol", "pw-carol")
	carol.Write(`<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>desk</resource></bind></iq>`)
	if got := carol.Expect(`id=['"]bind1['"][^>]*>.*</iq>`); !strings.Contains(got, "<jid>carol@localhost/desk</jid>") {
		t.Fatalf("carol's bind: %q", got)
	}
	carol.Write(`<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`)
	if got := carol.Expect(`<iq[^>]*id=['"]p1['"][^>]*>`); !regexp.MustCompile(`<iq[^>]*type=['"]result['"]`).MatchString(got) {
		t.Fatalf("carol's ping: %q", got)
	}
	status(regexp.MustCompile(`Bound sessions: +1\n`))

	if err := srv.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := srv.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
}
