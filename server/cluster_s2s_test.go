package server_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/cluster/redistest"
	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/s2s"
	"github.com/adhocd/adhocd/servertest"
	"github.com/adhocd/adhocd/storage/postgres/pgtest"
)

// crossing is how long a stanza may take to reach the other server, the
// first one setting up the streams (TLS and a dialback each way).
const crossing = 15 * time.Second

// TestClusterFederation: a cluster of two a.test replicas federates with
// b.test, whose static host entry names replica 0 alone
// (docs/design-federation.md §9, Cluster). Alice is on replica 1, which
// b.test never connects to:
//
//   - her message to bob makes replica 1 open its own outbound stream;
//     b.test verifies its dialback key on replica 0, which must confirm a
//     key replica 1 made (the shared s2s.dialback_secret_file);
//   - bob's message to her lands on replica 0, through b.test's stream,
//     and is delivered to her session on replica 1;
//   - bob subscribes to her presence, she approves: he sees her available
//     presence and her roster lists him.
//
// Each replica's s2s listing holds its own streams only.
func TestClusterFederation(t *testing.T) {
	dsn, rd := pgtest.Start(t), redistest.Start(t)
	secret := filepath.Join(t.TempDir(), "dialback-secret")
	if err := os.WriteFile(secret, []byte("a secret every a.test replica shares"), 0o600); err != nil {
		t.Fatal(err)
	}
	addrB := servertest.FreeAddr(t)
	var rs []*servertest.Server
	for i := range 2 {
		listen := servertest.FreeAddr(t)
		rs = append(rs, servertest.StartConfig(t, replicaConfig(t, dsn, rd.Addr(), i, func(c *config.Config) {
			c.Domain = "a.test"
			c.S2S.Listen = listen
			c.S2S.DialbackSecretFile = secret
			c.S2S.Hosts = map[string]string{"b.test": addrB}
		})))
	}
	a0, a1 := rs[0], rs[1]
	cb := servertest.Config(t.TempDir())
	cb.Domain = "b.test"
	cb.S2S.Listen = addrB
	cb.S2S.Hosts = map[string]string{"a.test": a0.S2SAddr().String()}
	b := servertest.StartConfig(t, cb)

	a0.AddUser("alice", "wonderland") // in PostgreSQL: an account of every replica
	b.AddUser("bob", "builder")
	ctx := servertest.Context(t, time.Minute)
	send := func(c *servertest.Client, s string) {
		t.Helper()
		if err := c.SendRaw(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	alice, bob := a1.Dial("alice", "wonderland", ""), b.Dial("bob", "builder", "")
	send(alice, "<presence/>")
	send(bob, "<presence/>")
	aliceJID, bobJID := alice.LocalAddr().String(), bob.LocalAddr().String()

	// 1. Alice → bob, through replica 1's own outbound stream.
	send(alice, "<message to='bob@b.test' type='chat' id='m1'><body>from replica 1</body></message>")
	got := bob.Next(crossing, isMessage("from replica 1"))
	if got.Attrs["from"] != aliceJID {
		t.Fatalf("bob's message from alice: from %q, want %q: %s", got.Attrs["from"], aliceJID, got.XML)
	}
	if !hasStream(a1.S2S(), "b.test", false) {
		t.Fatalf("replica 1's streams after alice wrote to bob: %+v, want its own outbound stream to b.test, authenticated by dialback", a1.S2S())
	}

	// 2. Bob → alice: b.test's stream lands on replica 0, alice is on 1.
	send(bob, "<message to='alice@a.test' type='chat' id='m2'><body>across the cluster</body></message>")
	got = alice.Next(crossing, isMessage("across the cluster"))
	if got.Attrs["from"] != bobJID {
		t.Fatalf("alice's message from bob: from %q, want %q: %s", got.Attrs["from"], bobJID, got.XML)
	}
	if !hasStream(a0.S2S(), "b.test", true) {
		t.Fatalf("replica 0's streams: %+v, want b.test's inbound stream, authenticated by dialback", a0.S2S())
	}
	// The operator's listing is per replica: b.test never connected to
	// replica 1.
	for _, c := range a1.S2S() {
		if c.Inbound {
			t.Fatalf("replica 1 lists an inbound stream %+v; b.test only connects to replica 0", c)
		}
	}

	// 3. Bob subscribes to alice's presence, she approves.
	send(bob, "<presence to='alice@a.test' type='subscribe'/>")
	alice.Next(crossing, isPresence("bob@b.test", "subscribe"))
	send(alice, "<presence to='bob@b.test' type='subscribed'/>")
	bob.Next(crossing, isPresence("alice@a.test", "subscribed"))
	// Her available presence follows her approval, from replica 1.
	if p := bob.Next(crossing, isPresence("alice@a.test/", "")); p.Attrs["from"] != aliceJID {
		t.Fatalf("bob sees alice's presence from %q, want %q", p.Attrs["from"], aliceJID)
	}
	roster, err := alice.IQ(ctx, "<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(roster, `jid="bob@b.test"`) || !strings.Contains(roster, `subscription="from"`) {
		t.Fatalf("alice's roster after she approved bob: %s, want bob@b.test with subscription from", roster)
	}
	roster, err = bob.IQ(ctx, "<iq type='get' id='r2'><query xmlns='jabber:iq:roster'/></iq>")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(roster, `jid="alice@a.test"`) || !strings.Contains(roster, `subscription="to"`) {
		t.Fatalf("bob's roster after alice approved: %s, want alice@a.test with subscription to", roster)
	}
}

func isMessage(body string) func(servertest.Stanza) bool {
	return func(s servertest.Stanza) bool {
		// The body is re-encoded with its namespace: match its text.
		return s.Name == "message" && strings.Contains(s.XML, ">"+body+"</body>")
	}
}

func isPresence(from, typ string) func(servertest.Stanza) bool {
	return func(s servertest.Stanza) bool {
		return s.Name == "presence" && strings.HasPrefix(s.Attrs["from"], from) && s.Attrs["type"] == typ
	}
}

// hasStream reports whether conns holds a stream with remote in the
// direction inbound, authenticated by dialback (the test servers'
// certificates are self-signed: no SASL EXTERNAL).
func hasStream(conns []s2s.Conn, remote string, inbound bool) bool {
	for _, c := range conns {
		if c.Remote == remote && c.Inbound == inbound && c.Auth == "dialback" {
			return true
		}
	}
	return false
}
