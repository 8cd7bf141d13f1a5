package c2s_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/servertest"
)

// TestStanzaThatNeverEndsIsCut: a bound client that starts a stanza and
// never finishes it is disconnected after limits.stanza_timeout with
// connection-timeout; others go on.
func TestStanzaThatNeverEndsIsCut(t *testing.T) {
	srv := servertest.Start(t, func(c *config.Config) { c.Limits.StanzaTimeout = config.Duration(300 * time.Millisecond) })
	srv.AddUser("alice", "wonderland")
	r := srv.RawLogin("alice", "wonderland", "slow")
	start := time.Now()
	r.Write(`<message to='alice@localhost'><body>never ends`)
	got, _ := r.ClosedByServer(servertest.Wait)
	if !strings.Contains(got, "<connection-timeout xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>") {
		t.Fatalf("got %q", got)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("cut after %s", d)
	}
	srv.Dial("alice", "wonderland", "")
}

// TestKeepalivesAreNotStanzas: white space between stanzas, however slow,
// does not count against limits.stanza_timeout.
func TestKeepalivesAreNotStanzas(t *testing.T) {
	srv := servertest.Start(t, func(c *config.Config) { c.Limits.StanzaTimeout = config.Duration(200 * time.Millisecond) })
	srv.AddUser("alice", "wonderland")
	r := srv.RawLogin("alice", "wonderland", "idle")
	for i := 0; i < 6; i++ {
		time.Sleep(100 * time.Millisecond)
		r.Write(" ")
	}
	r.Write(`<iq type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`)
	if got := r.Expect(`id="p"`); !strings.Contains(got, `type="result"`) {
		t.Fatalf("the idle session was not served: %q", got)
	}
}

// TestConnectionFloodFromOneAddress: beyond limits.max_connections_per_address
// a connection gets policy-violation; a freed slot is usable again.
func TestConnectionFloodFromOneAddress(t *testing.T) {
	srv := servertest.Start(t, func(c *config.Config) { c.Limits.MaxConnectionsPerAddress = 3 })
	srv.AddUser("alice", "wonderland")
	var open []*servertest.Raw
	for i := 0; i < 3; i++ {
		r := srv.RawDial()
		r.Write(servertest.Header)
		r.Expect(`</stream:features>`)
		open = append(open, r)
	}
	extra := srv.RawDial()
	if got, _ := extra.ClosedByServer(servertest.Wait); !strings.Contains(got, "<policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>") {
		t.Fatalf("the fourth connection got %q", got)
	}
	open[0].Close()
	srv.EventuallyDial(t, "alice", "wonderland")
}

// TestPasswordGuessingIsSlowedPerAddress: after
// limits.max_auth_failures_per_address wrong passwords from one address, even
// the right password fails (temporary-auth-failure) until the window passes.
func TestPasswordGuessingIsSlowedPerAddress(t *testing.T) {
	srv := servertest.Start(t, func(c *config.Config) {
		c.Limits.MaxAuthFailures = 1
		c.Limits.MaxAuthFailuresPerAddress = 3
		c.Limits.AuthFailureWindow = config.Duration(800 * time.Millisecond)
	})
	srv.AddUser("alice", "wonderland")
	plain := func(pw string) string {
		r := srv.RawDial()
		r.StartTLS(srv.ClientTLS)
		r.Write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>` + b64("\x00alice\x00"+pw) + `</auth>`)
		got, _ := r.ReadUntil(`</failure>|<success`, servertest.Wait)
		return got
	}
	for i := 0; i < 3; i++ {
		if got := plain(fmt.Sprintf("guess%d", i)); !strings.Contains(got, "<not-authorized/>") {
			t.Fatalf("guess %d: %q", i, got)
		}
	}
	if got := plain("wonderland"); !strings.Contains(got, "<temporary-auth-failure/>") {
		t.Fatalf("the right password during the back-off: %q", got)
	}
	time.Sleep(900 * time.Millisecond)
	if got := plain("wonderland"); !strings.Contains(got, "<success") {
		t.Fatalf("after the window: %q", got)
	}
}

// TestManyNamespaceDeclarations: namespace declarations count against
// limits.max_attributes, so one element cannot declare thousands of them.
func TestManyNamespaceDeclarations(t *testing.T) {
	srv := servertest.Start(t, func(c *config.Config) { c.Limits.MaxAttributes = 32 })
	srv.AddUser("alice", "wonderland")
	var b strings.Builder
	for i := 0; i < 100; i++ {
		fmt.Fprintf(&b, " xmlns:p%d='urn:x:%d'", i, i)
	}
	r := srv.RawLogin("alice", "wonderland", "ns")
	r.Write(`<message to='alice@localhost'` + b.String() + `/>`)
	if got, _ := r.ClosedByServer(servertest.Wait); !strings.Contains(got, "<policy-violation") {
		t.Fatalf("got %q", got)
	}
	srv.Dial("alice", "wonderland", "")
}

// TestOversizedAnnouncement: an announcement (or any form) larger than
// limits.max_stanza_bytes closes the sender's stream with policy-violation,
// reaches nobody, and the server goes on.
func TestOversizedAnnouncement(t *testing.T) {
	srv := servertest.Start(t, func(c *config.Config) {
		c.Limits.MaxStanzaBytes = 4096
		c.Admins = []string{"root@localhost"}
	})
	srv.AddUser("root", "toor")
	srv.AddUser("alice", "wonderland")
	alice := srv.Dial("alice", "wonderland", "")
	r := srv.RawLogin("root", "toor", "admin")
	r.Write(`<iq type='set' id='a' to='localhost'><command xmlns='http://jabber.org/protocol/commands' node='http://jabber.org/protocol/admin#announce'><x xmlns='jabber:x:data' type='submit'><field var='announcement'><value>` + strings.Repeat("spam ", 2000) + `</value></field></x></command></iq>`)
	if got, _ := r.ClosedByServer(servertest.Wait); !strings.Contains(got, "<policy-violation") {
		t.Fatalf("got %q", got)
	}
	if _, ok := alice.Wait(300*time.Millisecond, func(s servertest.Stanza) bool { return s.Name == "message" }); ok {
		t.Fatal("the oversized announcement was delivered")
	}
	srv.Dial("root", "toor", "")
}
