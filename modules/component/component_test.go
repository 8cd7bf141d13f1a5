package component_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/modules/component"
	"github.com/adhocd/adhocd/modules/defaults"
	"github.com/adhocd/adhocd/server"
	"github.com/adhocd/adhocd/servertest"
	"github.com/adhocd/adhocd/storage"
)

func TestHandshake(t *testing.T) {
	srv, m := start(t)
	c := dial(t, m, gw)
	if c.from != gw || len(c.id) < 16 {
		t.Fatalf("server header from %q id %q: want from %s and a random id", c.from, c.id, gw)
	}
	c.handshake(gwSecret)
	if got := c.next(); got.XMLName.Space != component.NS || got.XMLName.Local != "handshake" || got.Inner != "" {
		t.Fatalf("got {%s}%s %q, want an empty <handshake/> in %s", got.XMLName.Space, got.XMLName.Local, got.Inner, component.NS)
	}
	eventually(t, "the component is connected", func() bool { return m.Connected(gw) })

	// Both components are items of the server's disco#items, connected or
	// not.
	srv.AddUser("alice", "wonderland")
	alice := srv.Dial("alice", "wonderland", "")
	items, err := alice.IQ(servertest.Context(t, servertest.Wait), `<iq type='get' id='i1' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>`)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{gw, bot} {
		if !strings.Contains(items, `jid="`+d+`"`) {
			t.Errorf("the server's disco#items do not list %s: %s", d, items)
		}
	}
}

func TestHandshakeUpperCaseDigestAccepted(t *testing.T) {
	_, m := start(t)
	c := dial(t, m, bot)
	// Prosody compares without regard to case; so does adhocd.
	c.send("<handshake>" + strings.ToUpper(digest(c.id, botSecret)) + "</handshake>")
	if got := c.next(); got.XMLName.Local != "handshake" {
		t.Fatalf("got <%s>, want <handshake/>", got.XMLName.Local)
	}
}

func TestStreamRefused(t *testing.T) {
	for _, tc := range []struct {
		name, header, then, want string
	}{
		{"wrong secret", header(gw), "<handshake>" + digest("", "guess") + "</handshake>", "not-authorized"},
		{"handshake with the other component's secret", header(gw), "SECRET:" + botSecret, "not-authorized"},
		{"handshake holding an element", header(gw), "<handshake><x/></handshake>", "not-authorized"},
		{"a stanza before the handshake", header(gw), "<message to='alice@localhost' from='gw.localhost'><body>hi</body></message>", "not-authorized"},
		{"unknown domain", header("nobody.localhost"), "", "host-unknown"},
		{"the server's own domain", header("localhost"), "", "host-unknown"},
		{"no to", `<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams'>`, "", "improper-addressing"},
		{"client namespace", `<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='gw.localhost'>`, "", "invalid-namespace"},
		{"restricted XML", `<?xml version='1.0'?><!DOCTYPE x><stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='gw.localhost'>`, "", "restricted-xml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, m := start(t)
			c := dialRaw(t, m.Addr().String())
			c.send(tc.header)
			// The server's header comes first, also before an error about
			// the client's (XEP-0114 §3, RFC 6120 §4.9.1.2).
			c.header()
			switch {
			case strings.HasPrefix(tc.then, "SECRET:"):
				c.handshake(strings.TrimPrefix(tc.then, "SECRET:"))
			case tc.then != "":
				c.send(tc.then)
			}
			if got := c.streamError(); got != tc.want {
				t.Fatalf("stream error %s, want %s", got, tc.want)
			}
			if m.Connected(gw) {
				t.Fatal("a refused stream is the domain's component")
			}
		})
	}
}

func TestConflictKeepsTheFirst(t *testing.T) {
	srv, m := start(t)
	srv.AddUser("alice", "wonderland")
	first := connect(t, m, gw, gwSecret)
	second := dial(t, m, gw)
	second.handshake(gwSecret)
	if got := second.streamError(); got != "conflict" {
		t.Fatalf("a second component for %s: stream error %s, want conflict", gw, got)
	}
	// The first one still gets what is sent to the domain.
	alice := online(t, srv, "alice", "wonderland")
	send(t, alice, `<message to='echo@gw.localhost' type='chat'><body>still you</body></message>`)
	got := first.nextWhere(isMessage)
	if got.attr("to") != "echo@gw.localhost" || !strings.Contains(got.Inner, "still you") {
		t.Fatalf("the first component got %+v", got)
	}
}

func TestMessagesBothWays(t *testing.T) {
	srv, m := start(t)
	srv.AddUser("alice", "wonderland")
	c := connect(t, m, gw, gwSecret)
	alice := online(t, srv, "alice", "wonderland")
	full := alice.LocalAddr().String()

	send(t, alice, `<message to='bob@gw.localhost' type='chat' id='m1'><body>hello bob &amp; co</body></message>`)
	got := c.nextWhere(isMessage)
	if got.XMLName.Space != component.NS {
		t.Errorf("the message is in %q: want the stream's namespace, written without a declaration", got.XMLName.Space)
	}
	if got.attr("from") != full || got.attr("to") != "bob@gw.localhost" || got.attr("id") != "m1" {
		t.Errorf("component got from %q to %q id %q; want from %s to bob@gw.localhost id m1", got.attr("from"), got.attr("to"), got.attr("id"), full)
	}
	if !strings.Contains(got.Inner, "<body>hello bob &amp; co</body>") {
		t.Errorf("component got %q, want the body without a namespace declaration", got.Inner)
	}

	// The component writes from any JID at its domain, to the bare JID.
	c.send(`<message from='bob@gw.localhost/phone' to='alice@localhost' type='chat' id='r1'><body>hi alice</body></message>`)
	in := alice.Next(servertest.Wait, func(s servertest.Stanza) bool { return s.Name == "message" })
	if in.Attrs["from"] != "bob@gw.localhost/phone" || !strings.Contains(in.XML, ">hi alice</body>") {
		t.Fatalf("alice got %s", in.XML)
	}
	// Without a from, the domain itself.
	c.send(`<message to='` + full + `' type='headline'><body>news</body></message>`)
	in = alice.Next(servertest.Wait, func(s servertest.Stanza) bool { return s.Name == "message" })
	if in.Attrs["from"] != gw || !strings.Contains(in.XML, "news") {
		t.Fatalf("alice got %s, want a headline from %s", in.XML, gw)
	}
}

func TestIQBothWays(t *testing.T) {
	srv, m := start(t)
	srv.AddUser("alice", "wonderland")
	c := connect(t, m, gw, gwSecret)
	alice := online(t, srv, "alice", "wonderland")
	full := alice.LocalAddr().String()

	// The user asks the component; the component answers.
	answer := make(chan string, 1)
	errs := make(chan error, 1)
	go func() {
		a, err := alice.IQ(servertest.Context(t, servertest.Wait), `<iq type='get' id='d1' to='gw.localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
		answer <- a
		errs <- err
	}()
	q := c.nextWhere(func(e el) bool { return e.XMLName.Local == "iq" })
	if q.attr("from") != full || q.attr("to") != gw || q.attr("type") != "get" || !strings.Contains(q.Inner, "http://jabber.org/protocol/disco#info") {
		t.Fatalf("component got %+v", q)
	}
	c.send(`<iq type='result' id='` + q.attr("id") + `' from='gw.localhost' to='` + full + `'><query xmlns='http://jabber.org/protocol/disco#info'><identity category='gateway' type='smtp' name='Mail'/></query></iq>`)
	if a, err := <-answer, <-errs; err != nil || !strings.Contains(a, `category="gateway"`) {
		t.Fatalf("alice's answer %q, %v; want the component's identity", a, err)
	}

	// The component asks the user; the user's client answers (mellium
	// refuses what it does not serve, with service-unavailable).
	c.send(`<iq type='get' id='p1' from='gw.localhost' to='` + full + `'><ping xmlns='urn:xmpp:ping'/></iq>`)
	r := c.nextWhere(func(e el) bool { return e.XMLName.Local == "iq" && e.attr("id") == "p1" })
	if r.attr("from") != full || r.attr("to") != gw || (r.attr("type") != "result" && r.attr("type") != "error") {
		t.Fatalf("component got %+v, want alice's answer to p1", r)
	}
}

func TestNotConnected(t *testing.T) {
	srv, _ := start(t)
	srv.AddUser("alice", "wonderland")
	alice := online(t, srv, "alice", "wonderland")
	ctx := servertest.Context(t, servertest.Wait)
	a, err := alice.IQ(ctx, `<iq type='get' id='d1' to='gw.localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	if err == nil || !strings.Contains(a, "service-unavailable") || !strings.Contains(a, `type="wait"`) {
		t.Fatalf("IQ to a component not connected: %q, %v; want service-unavailable of type wait", a, err)
	}
	send(t, alice, `<message to='bob@gw.localhost' id='m1'><body>anyone?</body></message>`)
	e := alice.Next(servertest.Wait, func(s servertest.Stanza) bool { return s.Name == "message" })
	if e.Attrs["type"] != "error" || e.Attrs["from"] != "bob@gw.localhost" || !strings.Contains(e.XML, "service-unavailable") {
		t.Fatalf("message to a component not connected answered %s", e.XML)
	}
}

func TestComponentStanzaChecks(t *testing.T) {
	srv, m := start(t)
	srv.AddUser("alice", "wonderland")
	c := connect(t, m, gw, gwSecret)
	// No to: bad-request, the stream goes on.
	c.send(`<message from='gw.localhost' id='n1'><body>to whom?</body></message>`)
	e := c.nextWhere(isMessage)
	if e.attr("type") != "error" || e.attr("id") != "n1" || !strings.Contains(e.Inner, "bad-request") {
		t.Fatalf("a stanza without to answered %+v", e)
	}
	// No other domain is reachable.
	c.send(`<message from='gw.localhost' to='someone@elsewhere.example' id='n2'><body>out</body></message>`)
	e = c.nextWhere(isMessage)
	if e.attr("type") != "error" || e.attr("from") != "someone@elsewhere.example" || !strings.Contains(e.Inner, "remote-server-not-found") {
		t.Fatalf("a stanza to another domain answered %+v", e)
	}
	// A local account that does not exist.
	c.send(`<message from='gw.localhost' to='nobody@localhost' id='n3' type='chat'><body>?</body></message>`)
	e = c.nextWhere(isMessage)
	if e.attr("type") != "error" || e.attr("id") != "n3" || !strings.Contains(e.Inner, "service-unavailable") {
		t.Fatalf("a message to no account answered %+v", e)
	}
	// A from outside the component's domain ends the stream.
	c.send(`<message from='alice@localhost' to='alice@localhost'><body>forged</body></message>`)
	if got := c.streamError(); got != "invalid-from" {
		t.Fatalf("a forged from: stream error %s, want invalid-from", got)
	}
	eventually(t, "the component is gone", func() bool { return !m.Connected(gw) })
}

func TestOversizeStanza(t *testing.T) {
	_, m := start(t, func(c *config.Config) { c.Limits.MaxStanzaBytes = 1024 })
	c := connect(t, m, gw, gwSecret)
	c.send(`<message from='gw.localhost' to='alice@localhost'><body>` + strings.Repeat("x", 2048) + `</body></message>`)
	if got := c.streamError(); got != "policy-violation" {
		t.Fatalf("a stanza over limits.max_stanza_bytes: stream error %s, want policy-violation", got)
	}
}

func TestPreAuthTimeout(t *testing.T) {
	_, m := start(t, func(c *config.Config) { c.Limits.PreAuthTimeout = config.Duration(200 * time.Millisecond) })
	c := dial(t, m, gw)
	if got := c.streamError(); got != "connection-timeout" {
		t.Fatalf("no handshake: stream error %s, want connection-timeout", got)
	}
}

func TestDisconnectCleanup(t *testing.T) {
	srv, m := start(t)
	srv.AddUser("alice", "wonderland")
	c := connect(t, m, gw, gwSecret)
	c.send(`</stream:stream>`)
	if _, err := c.read(servertest.Wait); !errors.Is(err, errStreamEnd) {
		t.Fatalf("after the component's close: %v, want the server's", err)
	}
	eventually(t, "the component is gone", func() bool { return !m.Connected(gw) })
	alice := online(t, srv, "alice", "wonderland")
	a, err := alice.IQ(servertest.Context(t, servertest.Wait), `<iq type='get' id='d1' to='gw.localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	if err == nil || !strings.Contains(a, "service-unavailable") {
		t.Fatalf("IQ after the component left: %q, %v; want service-unavailable", a, err)
	}
	// The domain is free for the component's next connection.
	again := connect(t, m, gw, gwSecret)
	send(t, alice, `<message to='gw.localhost'><body>back?</body></message>`)
	if got := again.nextWhere(isMessage); !strings.Contains(got.Inner, "back?") {
		t.Fatalf("the reconnected component got %+v", got)
	}
	// A connection that just drops frees it too.
	_ = again.nc.Close()
	eventually(t, "the dropped component is gone", func() bool { return !m.Connected(gw) })
	connect(t, m, gw, gwSecret)
}

func TestBetweenComponents(t *testing.T) {
	_, m := start(t)
	g := connect(t, m, gw, gwSecret)
	b := connect(t, m, bot, botSecret)
	g.send(`<message from='relay@gw.localhost' to='echo@bot.localhost' id='x1'><body>to the bot</body></message>`)
	got := b.nextWhere(isMessage)
	if got.attr("from") != "relay@gw.localhost" || !strings.Contains(got.Inner, "to the bot") {
		t.Fatalf("the bot got %+v", got)
	}
	// To its own domain: back on its own stream.
	g.send(`<message from='a@gw.localhost' to='b@gw.localhost'><body>loop</body></message>`)
	if got := g.nextWhere(isMessage); got.attr("to") != "b@gw.localhost" || !strings.Contains(got.Inner, "loop") {
		t.Fatalf("gw got %+v", got)
	}
}

func TestOfflineMessageKept(t *testing.T) {
	srv, m := start(t)
	srv.AddUser("carol", "secret")
	c := connect(t, m, gw, gwSecret)
	c.send(`<message from='bob@gw.localhost' to='carol@localhost' type='chat' id='o1'><body>while you were out</body></message>`)
	// Kept: no error comes back. A later stanza on the same stream shows
	// the first was handled.
	c.send(`<iq type='get' id='sync' from='gw.localhost' to='nobody@localhost/x'><ping xmlns='urn:xmpp:ping'/></iq>`)
	if got := c.next(); got.attr("id") != "sync" {
		t.Fatalf("the message to an offline account was answered %+v", got)
	}
	carol := online(t, srv, "carol", "secret")
	in := carol.Next(servertest.Wait, func(s servertest.Stanza) bool { return s.Name == "message" })
	if in.Attrs["from"] != "bob@gw.localhost" || !strings.Contains(in.XML, "while you were out") || !strings.Contains(in.XML, "urn:xmpp:delay") {
		t.Fatalf("carol got %s, want the kept message with its delay", in.XML)
	}
}

func TestSubscriptions(t *testing.T) {
	srv, m := start(t)
	srv.AddUser("alice", "wonderland")
	c := connect(t, m, gw, gwSecret)
	alice := online(t, srv, "alice", "wonderland")
	ctx := servertest.Context(t, servertest.Wait)
	isPresence := func(typ string) func(el) bool {
		return func(e el) bool { return e.XMLName.Local == "presence" && e.attr("type") == typ }
	}

	// The component's contact asks to see alice's presence; alice agrees.
	c.send(`<presence type='subscribe' from='bob@gw.localhost/x' to='alice@localhost'/>`)
	in := alice.Next(servertest.Wait, func(s servertest.Stanza) bool { return s.Name == "presence" && s.Attrs["type"] == "subscribe" })
	if in.Attrs["from"] != "bob@gw.localhost" {
		t.Fatalf("alice got the request from %q, want bob@gw.localhost", in.Attrs["from"])
	}
	send(t, alice, `<presence type='subscribed' to='bob@gw.localhost'/>`)
	got := c.nextWhere(isPresence("subscribed"))
	if got.attr("from") != "alice@localhost" || got.attr("to") != "bob@gw.localhost" {
		t.Fatalf("component got subscribed from %q to %q", got.attr("from"), got.attr("to"))
	}
	// Then alice's presence, and on a probe again.
	if got := c.nextWhere(isPresence("")); got.attr("from") != alice.LocalAddr().String() {
		t.Fatalf("component got presence from %q, want alice's session", got.attr("from"))
	}
	c.send(`<presence type='probe' from='bob@gw.localhost' to='alice@localhost'/>`)
	if got := c.nextWhere(isPresence("")); got.attr("from") != alice.LocalAddr().String() || got.attr("to") != "bob@gw.localhost" {
		t.Fatalf("the probe was answered from %q to %q", got.attr("from"), got.attr("to"))
	}

	// Alice subscribes to the contact; the component agrees.
	send(t, alice, `<presence type='subscribe' to='bob@gw.localhost'/>`)
	got = c.nextWhere(isPresence("subscribe"))
	if got.attr("from") != "alice@localhost" || got.attr("to") != "bob@gw.localhost" {
		t.Fatalf("component got subscribe from %q to %q", got.attr("from"), got.attr("to"))
	}
	c.send(`<presence type='subscribed' from='bob@gw.localhost' to='alice@localhost'/>`)
	alice.Next(servertest.Wait, func(s servertest.Stanza) bool {
		return s.Name == "presence" && s.Attrs["type"] == "subscribed" && s.Attrs["from"] == "bob@gw.localhost"
	})
	eventually(t, "alice's roster has bob both ways", func() bool {
		it, err := srv.Store().RosterItem(ctx, "alice", "bob@gw.localhost")
		return err == nil && it.Subscription == storage.SubBoth
	})
	c.send(`<presence from='bob@gw.localhost/x' to='alice@localhost'><status>on the gateway</status></presence>`)
	in = alice.Next(servertest.Wait, func(s servertest.Stanza) bool { return s.Name == "presence" && s.Attrs["from"] == "bob@gw.localhost/x" })
	if !strings.Contains(in.XML, "on the gateway") {
		t.Fatalf("alice got %s", in.XML)
	}

	// Alice's next session probes the contact when it comes online.
	online(t, srv, "alice", "wonderland")
	if got := c.nextWhere(isPresence("probe")); got.attr("from") != "alice@localhost" || got.attr("to") != "bob@gw.localhost" {
		t.Fatalf("the login's probe from %q to %q", got.attr("from"), got.attr("to"))
	}
}

func TestFromConfig(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "gw.secret")
	if err := os.WriteFile(file, []byte(gwSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ADHOCD_TEST_BOT_SECRET", botSecret)
	addr := servertest.FreeAddr(t)
	servertest.Start(t, func(c *config.Config) {
		c.Components = config.Components{Listen: addr, Services: []config.ComponentService{
			{Domain: gw, SecretFile: file}, {Domain: bot, SecretEnv: "ADHOCD_TEST_BOT_SECRET"},
		}}
	})
	for _, p := range [][2]string{{gw, gwSecret}, {bot, botSecret}} {
		c := dialTo(t, addr, p[0])
		c.handshake(p[1])
		if got := c.next(); got.XMLName.Local != "handshake" {
			t.Fatalf("%s: got <%s>, want <handshake/>", p[0], got.XMLName.Local)
		}
	}
}

func TestFromConfigMissingSecret(t *testing.T) {
	cfg := servertest.Config(t.TempDir())
	cfg.Components = config.Components{Listen: "127.0.0.1:0", Services: []config.ComponentService{
		{Domain: gw, SecretEnv: "ADHOCD_TEST_UNSET_SECRET"},
	}}
	srv, err := server.New(cfg, server.WithModules(defaults.Modules()...))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = srv.Start(ctx)
	if err == nil {
		_ = srv.Shutdown(ctx)
		t.Fatal("the server started with a component whose secret is not set")
	}
	if !strings.Contains(err.Error(), "ADHOCD_TEST_UNSET_SECRET") {
		t.Fatalf("start error %v, want one naming the variable", err)
	}
}

func TestComponentPrintsNoSecret(t *testing.T) {
	o := component.Options{Components: []component.Component{{Domain: gw, Secret: gwSecret}}}
	if s := fmt.Sprintf("%v %+v %s", o, o, o.Components); strings.Contains(s, gwSecret) {
		t.Fatalf("printed options show the secret: %s", s)
	}
}

func isMessage(e el) bool { return e.XMLName.Local == "message" }

func send(t *testing.T, c *servertest.Client, s string) {
	t.Helper()
	if err := c.SendRaw(servertest.Context(t, servertest.Wait), s); err != nil {
		t.Fatal(err)
	}
}

func TestShutdownClosesComponents(t *testing.T) {
	srv, m := start(t)
	c := connect(t, m, gw, gwSecret)
	done := make(chan error, 1)
	go func() { done <- srv.Stop() }()
	if got := c.streamError(); got != "system-shutdown" {
		t.Fatalf("at shutdown: stream error %s, want system-shutdown", got)
	}
	c.nc.Close()
	if err := <-done; err != nil {
		t.Fatalf("stop: %v", err)
	}
}
