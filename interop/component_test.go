package interop_test

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/servertest"
)

// TestSlixmppComponent runs slixmpp 1.8.3's ComponentXMPP as an external
// component of adhocd (XEP-0114): it connects to the component port with
// the secret the server reads from the same environment variable, a
// slixmpp user's chat message reaches it and its echo comes back, its
// XEP-0030 identity answers the user's disco#info, and XEP-0199 pings go
// both ways, the user's to the component and the component's to the
// user's full JID.
func TestSlixmppComponent(t *testing.T) {
	requireSlixmpp(t)
	const domain = "echo.localhost"
	secret := randomHex(t, 16)
	t.Setenv("COMPONENT_SECRET", secret)
	addr := servertest.FreeAddr(t)
	srv := servertest.Start(t, func(c *config.Config) {
		c.Components = config.Components{Listen: addr, Services: []config.ComponentService{
			{Domain: domain, SecretEnv: "COMPONENT_SECRET"},
		}}
	})
	const pw = "wonderland"
	user := srv.AddUser("alice", pw)
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	body := randomBody(t)
	args := append(serverArgs(t, srv),
		"--user-jid", user, "--user-password", pw,
		"--component-port", port, "--component-domain", domain,
		"--body", body, "--timeout", "40",
	)
	// The script reads the secret from COMPONENT_SECRET too: the test's
	// environment is the script's.
	lines := runScript(t, 60*time.Second, "slixmpp_component.py", withDebug(args, "COMPONENT_DEBUG")...)
	var got []string
	for _, line := range lines {
		for _, p := range []string{"COMPONENT_", "ECHOED ", "INFO ", "PONG ", "OK"} {
			if strings.HasPrefix(line, p) {
				got = append(got, line)
			}
		}
	}
	want := []string{
		"COMPONENT_CONNECTED " + domain,
		"COMPONENT_GOT " + user + " " + body,
		"ECHOED echo@" + domain + " echo: " + body,
		"INFO gateway/xmpp Echo",
		"PONG component",
		"PONG user",
		"OK",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("the script printed\n%s\nwant\n%s", quoteLines(got), quoteLines(want))
	}
}
