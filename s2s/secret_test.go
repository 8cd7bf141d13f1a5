package s2s_test

// The dialback secret shared by the replicas of one domain (XEP-0185,
// config.S2S.DialbackSecretFile): a remote server may verify a key with
// any replica (XEP-0220's Authoritative Server is whatever its resolution
// of the domain reaches), so a key made by one replica must be confirmed
// by another. These tests run two replicas of a.test, each on a store of
// its own, and b.test, whose host map sends a.test to the second replica
// only: alice, on the first replica, writes to bob@b.test.

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/s2s"
	"github.com/adhocd/adhocd/servertest"
)

// secretConnectTimeout bounds each stream's setting up in these tests, so
// that a verification that hangs fails fast rather than after the default.
const secretConnectTimeout = 10 * time.Second

// writeSecret writes a new random dialback secret to a file of its own and
// returns its path.
func writeSecret(t *testing.T) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "dialback-secret")
	if err := os.WriteFile(f, s2s.RandomSecret(), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// replicas starts two replicas of a.test, with secretA1 and secretA2 as
// their s2s.dialback_secret_file ("" for a random secret per process), and
// b.test, which reaches a.test at the second replica's address only. Both
// replicas reach b.test, as one configuration deployed twice would.
func replicas(t *testing.T, secretA1, secretA2 string) (a1, a2, b *servertest.Server) {
	t.Helper()
	addrA1, addrA2, addrB := servertest.FreeAddr(t), servertest.FreeAddr(t), servertest.FreeAddr(t)
	mk := func(domain, listen, secret string, hosts map[string]string) config.Config {
		c := servertest.Config(t.TempDir())
		c.Domain = domain
		c.S2S.Listen = listen
		c.S2S.Hosts = hosts
		c.S2S.DialbackSecretFile = secret
		c.S2S.ConnectTimeout = config.Duration(secretConnectTimeout)
		return c
	}
	ca1 := mk("a.test", addrA1, secretA1, map[string]string{"b.test": addrB})
	ca2 := mk("a.test", addrA2, secretA2, map[string]string{"b.test": addrB})
	cb := mk("b.test", addrB, "", map[string]string{"a.test": addrA2})
	return servertest.StartConfig(t, ca1), servertest.StartConfig(t, ca2), servertest.StartConfig(t, cb)
}

// authenticated returns srv's authenticated streams with remote in the
// direction asked.
func authenticated(srv *servertest.Server, remote string, inbound bool) []s2s.Conn {
	var cs []s2s.Conn
	for _, c := range srv.S2S() {
		if c.Remote == remote && c.Inbound == inbound && c.Auth != "" {
			cs = append(cs, c)
		}
	}
	return cs
}

// TestDialbackSecretShared: with the same secret file, the replica that
// b.test asks confirms the key that the other replica made; alice's
// message reaches bob over A1's dialback-authenticated stream.
func TestDialbackSecretShared(t *testing.T) {
	secret := writeSecret(t)
	a1, a2, b := replicas(t, secret, secret)
	alice := online(t, a1, "alice", "wonderland")
	bob := online(t, b, "bob", "builder")
	ctx := servertest.Context(t, 30*time.Second)
	if err := alice.SendRaw(ctx, "<message to='bob@b.test' type='chat' id='m1'><body>from replica one</body></message>"); err != nil {
		t.Fatal(err)
	}
	bob.Next(crossing, isMessage("alice@a.test/", "from replica one"))

	// The message came over A1's own stream, authenticated by dialback
	// (self-signed certificates), and b.test holds it as a.test's.
	if c := conn(t, a1, "b.test", false); c.Auth != "dialback" || !c.TLS {
		t.Errorf("A1's stream to b.test: %+v, want dialback over TLS", c)
	}
	if c := conn(t, b, "a.test", true); c.Auth != "dialback" || !c.TLS {
		t.Errorf("b.test's stream from a.test: %+v, want dialback over TLS", c)
	}
	// A2 only answered the <db:verify/>, on a connection b.test closes
	// after the answer: it opened no stream of its own to b.test, and has
	// none authenticated from it.
	if cs := append(authenticated(a2, "b.test", false), authenticated(a2, "b.test", true)...); len(cs) != 0 {
		t.Errorf("A2's streams with b.test: %+v, want none", cs)
	}
}

// TestDialbackSecretDiffers: with secrets that differ (two files, or a
// random one per process, as with no file), A2 finds A1's key invalid;
// b.test refuses the stream, bob gets nothing, and alice's message comes
// back to her as an error.
func TestDialbackSecretDiffers(t *testing.T) {
	for _, c := range []struct {
		name   string
		a1, a2 func(*testing.T) string
	}{
		{"two files", writeSecret, writeSecret},
		{"random per process", func(*testing.T) string { return "" }, func(*testing.T) string { return "" }},
		{"file on one replica only", writeSecret, func(*testing.T) string { return "" }},
	} {
		t.Run(c.name, func(t *testing.T) {
			a1, a2, b := replicas(t, c.a1(t), c.a2(t))
			alice := online(t, a1, "alice", "wonderland")
			bob := online(t, b, "bob", "builder")
			ctx := servertest.Context(t, 30*time.Second)
			start := time.Now()
			if err := alice.SendRaw(ctx, "<message to='bob@b.test' type='chat' id='m1'><body>from replica one</body></message>"); err != nil {
				t.Fatal(err)
			}
			// A1's dialback() gets <db:result type='invalid'/> (or the
			// not-authorized stream error that follows it): a stream was
			// opened, so the queue is bounced with remote-server-timeout
			// (out.go run, failureCondition), type wait, by a.test.
			got, ok := alice.Wait(crossing, func(s servertest.Stanza) bool {
				return s.Name == "message" && s.Attrs["type"] == "error"
			})
			if !ok {
				t.Fatalf("no error came back to alice within %v", crossing)
			}
			elapsed := time.Since(start)
			t.Logf("alice got, after %v: %s", elapsed, got.XML)
			if got.Attrs["id"] != "m1" || !strings.HasPrefix(got.Attrs["from"], "bob@b.test") {
				t.Errorf("the error: %s, want id m1 from bob@b.test", got.XML)
			}
			if !strings.Contains(got.XML, "<remote-server-timeout") || !strings.Contains(got.XML, `type="wait"`) || !strings.Contains(got.XML, `by="a.test"`) {
				t.Errorf("the error: %s, want remote-server-timeout, type wait, by a.test", got.XML)
			}
			// A refused key is a verdict, not a timeout: it comes before
			// the connect timeout would have ended the attempt.
			if elapsed >= secretConnectTimeout {
				t.Errorf("the error took %v, not less than the connect timeout %v: a timeout, not a refusal", elapsed, secretConnectTimeout)
			}
			if s, ok := bob.Wait(time.Second, isMessage("alice@a.test", "from replica one")); ok {
				t.Fatalf("bob received the message of an unauthenticated stream: %s", s.XML)
			}
			if cs := authenticated(b, "a.test", true); len(cs) != 0 {
				t.Errorf("b.test's authenticated streams from a.test: %+v, want none", cs)
			}
			if cs := authenticated(a1, "b.test", false); len(cs) != 0 {
				t.Errorf("A1's authenticated streams to b.test: %+v, want none", cs)
			}
			if cs := authenticated(a2, "b.test", false); len(cs) != 0 {
				t.Errorf("A2's authenticated streams to b.test: %+v, want none", cs)
			}
		})
	}
}
