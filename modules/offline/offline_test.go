package offline_test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/adhocd/adhocd/adhoc"
	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/server"
	"github.com/adhocd/adhocd/servertest"
	"github.com/adhocd/adhocd/storage"
)

// The quotas of offline storage over TCP, as the sender and the recipient
// see them: raw clients, so that every error is read as the server wrote it.

const wait = 5 * time.Second

// send writes a chat message of a body of n bytes (tag, a dash, padding)
// to to.
func send(c *servertest.Raw, id, to, tag string, n int) {
	c.Write(fmt.Sprintf(`<message id='%s' type='chat' to='%s'><body>%s-%s</body></message>`, id, to, tag, strings.Repeat("x", n-len(tag)-1)))
}

// ping fences a raw stream: when the pong is read, the server has handled
// every stanza written before, and all it answered is in the returned text.
func ping(c *servertest.Raw, id string) string {
	c.Write(`<iq type='get' id='` + id + `' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`)
	return c.Expect(`id="` + id + `"`)
}

// bounced returns the error answers to the messages in got, by id: the
// error element's type, condition and text.
func bounced(got string) map[string]string {
	out := map[string]string{}
	re := regexp.MustCompile(`(?s)<message[^>]*id="([^"]+)"[^>]*type="error".*?<error[^>]*type="([a-z]+)"[^>]*>\s*<([a-z-]+)[^>]*>.*?<text[^>]*>([^<]*)</text>`)
	for _, m := range re.FindAllStringSubmatch(got, -1) {
		out[m[1]] = m[2] + " " + m[3] + ": " + m[4]
	}
	return out
}

// delivered returns the tags of the offline messages in got, in order.
func delivered(got string) []string {
	var tags []string
	for _, m := range regexp.MustCompile(`<body>(m[0-9a-z]+)-x*</body><delay`).FindAllStringSubmatch(got, -1) {
		tags = append(tags, m[1])
	}
	return tags
}

// online sends available presence and returns everything the session got
// until a ping answered after it.
func online(c *servertest.Raw) string {
	c.Write(`<presence/>`)
	return ping(c, "after-presence")
}

func usage(t *testing.T, srv *servertest.Server) (bytes, messages int64) {
	t.Helper()
	u, ok := srv.Store().(storage.OfflineUsageReporter)
	if !ok {
		t.Fatal("the server's store does not report its offline usage")
	}
	return u.OfflineUsage()
}

// TestPerAccountBytes: the message that would take an account past
// limits.max_offline_bytes is answered service-unavailable (wait) with the
// recipient's reason; the recipient later gets exactly the messages kept,
// and once they are delivered the account has room again.
func TestPerAccountBytes(t *testing.T) {
	srv := servertest.Start(t, func(c *config.Config) { c.Limits.MaxOfflineBytes = 3000; noArchive(c) })
	srv.AddUser("alice", "wonderland")
	srv.AddUser("bob", "builder")
	alice := srv.RawLogin("alice", "wonderland", "raw")
	for i := range 3 {
		send(alice, fmt.Sprintf("b%d", i), "bob@localhost", fmt.Sprintf("m%d", i), 1200)
	}
	got := bounced(ping(alice, "p1"))
	want := map[string]string{"b2": "wait service-unavailable: the recipient is offline and has too much waiting"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("errors to the sender: %v, want %v", got, want)
	}
	if b, n := usage(t, srv); n != 2 || b <= 2400 || b > 3000 {
		t.Fatalf("kept: %d bytes in %d messages, want 2 messages within 3000 bytes", b, n)
	}
	bob := srv.RawLogin("bob", "builder", "phone")
	if tags := delivered(online(bob)); fmt.Sprint(tags) != "[m0 m1]" {
		t.Fatalf("bob got %v, want [m0 m1]", tags)
	}
	if b, n := usage(t, srv); b != 0 || n != 0 {
		t.Fatalf("after delivery: %d bytes in %d messages kept", b, n)
	}
	bob.Write(`<presence type='unavailable'/>`)
	ping(bob, "p2")
	send(alice, "b3", "bob@localhost", "m3", 1200)
	if got := bounced(ping(alice, "p3")); len(got) != 0 {
		t.Fatalf("after delivery bob has room again, got %v", got)
	}
}

// TestTotalBytes: past limits.max_offline_total_bytes another recipient's
// message is refused (service-unavailable, wait) while the server goes on
// serving, and what was kept is delivered; then there is room again.
func TestTotalBytes(t *testing.T) {
	srv := servertest.Start(t, func(c *config.Config) { c.Limits.MaxOfflineTotalBytes = 3000; noArchive(c) })
	srv.AddUser("alice", "wonderland")
	srv.AddUser("bob", "builder")
	srv.AddUser("carol", "singer")
	alice := srv.RawLogin("alice", "wonderland", "raw")
	send(alice, "b0", "bob@localhost", "m0", 1200)
	send(alice, "b1", "bob@localhost", "m1", 1200)
	send(alice, "c0", "carol@localhost", "m2", 1200)
	got := bounced(ping(alice, "p1"))
	want := map[string]string{"c0": "wait service-unavailable: the recipient is offline and the server keeps no more messages for now"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("errors to the sender: %v, want %v", got, want)
	}
	// The store keeps serving: a small message still fits, an online
	// recipient still gets messages, bob gets what was kept.
	send(alice, "c1", "carol@localhost", "m3", 100)
	if got := bounced(ping(alice, "p2")); len(got) != 0 {
		t.Fatalf("a message within the total: %v", got)
	}
	bob := srv.RawLogin("bob", "builder", "phone")
	if tags := delivered(online(bob)); fmt.Sprint(tags) != "[m0 m1]" {
		t.Fatalf("bob got %v, want [m0 m1]", tags)
	}
	send(alice, "live", "bob@localhost/phone", "live", 10)
	bob.Expect(`>live`)
	send(alice, "c2", "carol@localhost", "m4", 1200)
	if got := bounced(ping(alice, "p3")); len(got) != 0 {
		t.Fatalf("room again after bob's were delivered: %v", got)
	}
	carol := srv.RawLogin("carol", "singer", "desk")
	if tags := delivered(online(carol)); fmt.Sprint(tags) != "[m3 m4]" {
		t.Fatalf("carol got %v, want [m3 m4]", tags)
	}
}

// TestDiskFloor: with less free disk than limits.min_free_disk_bytes (the
// floor set 1 GiB above the real free space), offline messages, roster
// changes and subscription requests are refused with resource-constraint;
// logins, roster reads and admin commands go on; with the floor lowered
// the same writes succeed.
func TestDiskFloor(t *testing.T) {
	floor := servertest.NewDiskFloor(t) // the free-disk floor is the bbolt store's
	dir, st := floor.Dir, floor.Store
	cfg := servertest.Config(dir)
	cfg.Admins = []string{"root@localhost"}
	srv := servertest.StartConfig(t, cfg, server.WithStore(st))
	srv.AddUser("alice", "wonderland")
	srv.AddUser("bob", "builder")
	srv.AddUser("root", "toor")
	floor.Raise()

	alice := srv.RawLogin("alice", "wonderland", "raw")
	send(alice, "off", "bob@localhost", "m0", 100)
	alice.Write(`<iq type='set' id='r1'><query xmlns='jabber:iq:roster'><item jid='carol@localhost'/></query></iq>`)
	alice.Write(`<presence type='subscribe' to='bob@localhost'/>`)
	got := ping(alice, "p1")
	if m := bounced(got); !strings.HasPrefix(m["off"], "wait resource-constraint:") {
		t.Errorf("offline message below the floor: %v in %q", m, got)
	}
	if !regexp.MustCompile(`(?s)<iq[^>]*id="r1"[^>]*type="error".*?<resource-constraint`).MatchString(got) {
		t.Errorf("roster set below the floor: %q", got)
	}
	if !regexp.MustCompile(`(?s)<presence[^>]*type="error".*?<resource-constraint`).MatchString(got) {
		t.Errorf("subscription request below the floor: %q", got)
	}
	if b, n := st.OfflineUsage(); b != 0 || n != 0 {
		t.Errorf("kept below the floor: %d bytes in %d messages", b, n)
	}

	// Logins, reads and administration go on.
	bob := srv.RawLogin("bob", "builder", "phone")
	bob.Write(`<iq type='get' id='r2'><query xmlns='jabber:iq:roster'/></iq>`)
	if r := bob.Expect(`id="r2"`); !strings.Contains(r, `type="result"`) || strings.Contains(r, "alice@localhost") {
		t.Errorf("roster read below the floor: %q", r)
	}
	root := adhoc.NewRequester(srv.Dial("root", "toor", "").Session)
	ctx := servertest.Context(t, wait)
	if n, err := root.Start(ctx, jid.MustParse("localhost"), "http://jabber.org/protocol/admin#get-registered-users-num"); err != nil || n.Forms[0].Value("registeredusersnum") != "3" {
		t.Errorf("a read command below the floor: %+v %v", n, err)
	}
	r, err := root.Start(ctx, jid.MustParse("localhost"), "http://jabber.org/protocol/admin#add-user")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := root.Complete(ctx, r, adhoc.Values{"accountjid": {"carol@localhost"}, "password": {"c"}, "password-verify": {"c"}}); err != nil {
		t.Errorf("add-user below the floor: %v", err)
	}
	srv.RawLogin("carol", "c", "desk")

	floor.Lower()
	bob.Write(`<presence type='unavailable'/>`)
	ping(bob, "p2")
	send(alice, "off2", "bob@localhost", "m1", 100)
	alice.Write(`<iq type='set' id='r3'><query xmlns='jabber:iq:roster'><item jid='carol@localhost'/></query></iq>`)
	got = ping(alice, "p3")
	if m := bounced(got); len(m) != 0 || !regexp.MustCompile(`<iq[^>]*id="r3"[^>]*type="result"`).MatchString(got) {
		t.Errorf("with the floor lowered: %v in %q", m, got)
	}
}

// TestOfflineTTL: messages older than limits.offline_ttl are removed in the
// background (the store's usage drops to zero without any login) and never
// delivered; a message sent later is.
func TestOfflineTTL(t *testing.T) {
	srv := servertest.Start(t, func(c *config.Config) { c.Limits.OfflineTTL = config.Duration(time.Second); noArchive(c) })
	srv.AddUser("alice", "wonderland")
	srv.AddUser("bob", "builder")
	alice := srv.RawLogin("alice", "wonderland", "raw")
	for i := range 3 {
		send(alice, fmt.Sprintf("o%d", i), "bob@localhost", fmt.Sprintf("mold%d", i), 100)
	}
	ping(alice, "p1")
	if _, n := usage(t, srv); n != 3 {
		t.Fatalf("kept %d messages, want 3", n)
	}
	deadline := time.Now().Add(wait)
	for {
		b, n := usage(t, srv)
		if b == 0 && n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still kept after the TTL: %d bytes in %d messages", b, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	send(alice, "n0", "bob@localhost", "mnew", 100)
	ping(alice, "p2")
	bob := srv.RawLogin("bob", "builder", "phone")
	if tags := delivered(online(bob)); fmt.Sprint(tags) != "[mnew]" {
		t.Fatalf("bob got %v, want only [mnew]", tags)
	}
}

// noArchive turns XEP-0313 archiving off: the sizes these tests count are
// of the messages as sent, without the archive's stanza-id.
func noArchive(c *config.Config) { c.Limits.MAM.MaxMessages = 0 }
