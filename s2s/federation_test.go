package s2s_test

import (
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/s2s"
	"github.com/adhocd/adhocd/servertest"
)

// pair starts a.test and b.test federated (servertest.Federated).
func pair(t *testing.T, edit func(a, b *config.Config)) (a, b *servertest.Server) {
	t.Helper()
	return servertest.Federated(t, edit)
}

func isMessage(from, body string) func(servertest.Stanza) bool {
	return func(s servertest.Stanza) bool {
		return s.Name == "message" && strings.HasPrefix(s.Attrs["from"], from) && strings.Contains(s.XML, ">"+body+"</body>")
	}
}

// conn returns the stream of srv with remote in the direction asked, or
// fails the test once Wait has passed.
func conn(t *testing.T, srv *servertest.Server, remote string, inbound bool) s2s.Conn {
	t.Helper()
	deadline := time.Now().Add(servertest.Wait)
	for {
		for _, c := range srv.S2S() {
			if c.Remote == remote && c.Inbound == inbound && c.Auth != "" {
				return c
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has no authenticated stream with %s (inbound %v): %+v", srv.Domain(), remote, inbound, srv.S2S())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestMessagesBothWays: a user of a.test and one of b.test exchange
// messages over STARTTLS streams authenticated by dialback (the servers'
// certificates are self-signed).
func TestMessagesBothWays(t *testing.T) {
	a, b := pair(t, nil)
	a.AddUser("alice", "wonderland")
	b.AddUser("bob", "builder")
	alice, bob := a.Dial("alice", "wonderland", ""), b.Dial("bob", "builder", "")
	ctx := servertest.Context(t, 20*time.Second)
	for _, c := range []*servertest.Client{alice, bob} {
		if err := c.SendRaw(ctx, "<presence/>"); err != nil {
			t.Fatal(err)
		}
	}
	if err := alice.SendRaw(ctx, "<message to='bob@b.test' type='chat' id='m1'><body>hello from a</body></message>"); err != nil {
		t.Fatal(err)
	}
	got := bob.Next(15*time.Second, isMessage("alice@a.test/", "hello from a"))
	if got.Attrs["to"] != "" && !strings.HasPrefix(got.Attrs["to"], "bob@b.test") {
		t.Fatalf("bob got a message to %q", got.Attrs["to"])
	}
	if err := bob.SendRaw(ctx, "<message to='alice@a.test' type='chat' id='m2'><body>hello from b</body></message>"); err != nil {
		t.Fatal(err)
	}
	alice.Next(15*time.Second, isMessage("bob@b.test/", "hello from b"))
	for _, c := range []s2s.Conn{conn(t, a, "b.test", false), conn(t, a, "b.test", true), conn(t, b, "a.test", false), conn(t, b, "a.test", true)} {
		if c.Auth != "dialback" || !c.TLS {
			t.Errorf("stream %+v: want dialback over TLS", c)
		}
	}
}
