package c2s_test

import (
	"fmt"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/servertest"
)

// Stream management (XEP-0198) over TCP, with raw clients.

// q makes a pattern's double quotes match either quote: the server writes
// some elements with one, some with the other.
func q(pattern string) string { return strings.ReplaceAll(pattern, `"`, `["']`) }

// dropTCP breaks a raw client's connection under TLS, as a network that
// goes does: no closing tag, no TLS close_notify.
func dropTCP(r *servertest.Raw) {
	if tc, ok := r.Conn.(interface{ NetConn() net.Conn }); ok {
		tc.NetConn().Close()
		return
	}
	r.Conn.Close()
}

var enabledID = regexp.MustCompile(`<enabled xmlns="urn:xmpp:sm:3" id="([0-9a-f]+)" resume="true" max="(\d+)"/>`)

// TestSMAcknowledgements: the feature is offered once authenticated;
// <enable/> is answered <enabled/>; <r/> with the count of stanzas the
// server handled; the server asks for acknowledgements itself once five
// stanzas wait for one; an acknowledgement of more than was sent is a
// stream error; <enable/> before binding fails.
func TestSMAcknowledgements(t *testing.T) {
	srv := servertest.Start(t)
	srv.AddUser("alice", "pw")
	srv.AddUser("bob", "pw")
	pre := srv.RawDial()
	if f := pre.Authenticate(srv.ClientTLS, "alice", "pw"); !strings.Contains(f, `<sm xmlns='urn:xmpp:sm:3'/>`) {
		t.Fatalf("no stream management among the features after authentication: %s", f)
	}
	pre.Write(`<enable xmlns='urn:xmpp:sm:3'/>`)
	pre.Expect(q(`<failed xmlns="urn:xmpp:sm:3"><unexpected-request`))

	alice := srv.RawLogin("alice", "pw", "a")
	alice.Write(`<enable xmlns='urn:xmpp:sm:3'/>`)
	alice.Expect(`<enabled xmlns="urn:xmpp:sm:3"/>`)
	for i := range 3 {
		alice.Write(fmt.Sprintf(`<iq type='get' id='p%d' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`, i))
	}
	alice.Write(`<r xmlns='urn:xmpp:sm:3'/>`)
	alice.Expect(q(`<a xmlns="urn:xmpp:sm:3" h="3"/>`))

	in := readInBackground(alice)
	bob := srv.RawLogin("bob", "pw", "b")
	for i := range 6 {
		bob.Write(fmt.Sprintf(`<message to='alice@localhost/a' type='chat' id='m%d'><body>%d</body></message>`, i, i))
	}
	in.waitFor(t, `id="m5"`, 5*time.Second)
	// Three pongs and six messages were written; the server asked.
	in.waitFor(t, q(`<r xmlns="urn:xmpp:sm:3"/>`), 5*time.Second)
	alice.Write(`<a xmlns='urn:xmpp:sm:3' h='9'/>`)
	alice.Write(`<a xmlns='urn:xmpp:sm:3' h='12'/>`)
	in.waitFor(t, `undefined-condition.*handled-count-too-high`, 5*time.Second)
}

// TestSMUnacknowledgedGoOffline: without resumption, what a client never
// acknowledged is not lost with its connection: the messages come back from
// offline storage at its next login.
func TestSMUnacknowledgedGoOffline(t *testing.T) {
	srv := servertest.Start(t)
	srv.AddUser("alice", "pw")
	srv.AddUser("bob", "pw")
	alice := srv.RawLogin("alice", "pw", "phone")
	alice.Write(`<enable xmlns='urn:xmpp:sm:3'/><presence/>`)
	alice.Expect(`<enabled`)
	in := readInBackground(alice)
	in.waitFor(t, `<presence[^>]*from="alice@localhost/phone"`, 5*time.Second)
	bob := srv.RawLogin("bob", "pw", "b")
	for i := range 3 {
		bob.Write(fmt.Sprintf(`<message to='alice@localhost' type='chat' id='u%d'><body>unacked %d</body></message>`, i, i))
	}
	in.waitFor(t, `id="u2"`, 5*time.Second)
	dropTCP(alice)
	for deadline := time.Now().Add(5 * time.Second); isBound(srv, "alice@localhost/phone"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the broken session did not end")
		}
	}
	again := srv.RawLogin("alice", "pw", "desk")
	again.Write(`<presence/>`)
	got := readInBackground(again)
	for i := range 3 {
		got.waitFor(t, fmt.Sprintf(`id="u%d".*<delay`, i), 5*time.Second)
	}
}

// TestSMResume: a resumable session whose connection breaks stays bound
// (its contacts see no unavailable presence) and keeps what is sent to it; a
// new stream of the same account resumes it with the count of what it
// received, gets <resumed/> with the count of what the server handled, then
// what it had not acknowledged and what came meanwhile, in order; the
// resumed session routes as before.
func TestSMResume(t *testing.T) {
	srv := servertest.Start(t)
	srv.AddUser("alice", "pw")
	srv.AddUser("bob", "pw")
	alice := srv.RawLogin("alice", "pw", "phone")
	alice.Write(`<enable xmlns='urn:xmpp:sm:3' resume='true'/>`)
	m := enabledID.FindStringSubmatch(alice.Expect(`<enabled[^>]*/>`))
	if m == nil {
		t.Fatal("no resumption id in <enabled/>")
	}
	id := m[1]
	if m[2] != "300" {
		t.Errorf("max = %s, want limits.sm.resume_timeout's 300 s", m[2])
	}
	alice.Write(`<presence/>`)
	aliceIn := readInBackground(alice)
	aliceIn.waitFor(t, `<presence[^>]*from="alice@localhost/phone"`, 5*time.Second)

	bob := srv.RawLogin("bob", "pw", "b")
	bobIn := readInBackground(bob)
	bob.Write(`<message to='alice@localhost/phone' type='chat' id='r1'><body>one</body></message>`)
	bob.Write(`<message to='alice@localhost/phone' type='chat' id='r2'><body>two</body></message>`)
	aliceIn.waitFor(t, `id="r2"`, 5*time.Second)
	// The presence echo and r1 are acknowledged, r2 is not.
	alice.Write(`<a xmlns='urn:xmpp:sm:3' h='2'/>`)
	time.Sleep(50 * time.Millisecond)
	dropTCP(alice)
	time.Sleep(100 * time.Millisecond)
	if !isBound(srv, "alice@localhost/phone") {
		t.Fatal("the resumable session ended with its connection")
	}
	bob.Write(`<message to='alice@localhost/phone' type='chat' id='r3'><body>three</body></message>`)
	bob.Write(`<iq type='get' id='bping' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`)
	bobIn.waitFor(t, `id="bping"`, 5*time.Second)
	if strings.Contains(bobIn.String(), `type="unavailable"`) || strings.Contains(bobIn.String(), `type="error"`) {
		t.Fatalf("bob saw alice go or his message bounce while she could resume: %s", bobIn.String())
	}

	// Another account cannot take the session.
	mallory := srv.RawDial()
	srv.AddUser("mallory", "pw")
	mallory.Authenticate(srv.ClientTLS, "mallory", "pw")
	mallory.Write(`<resume xmlns='urn:xmpp:sm:3' previd='` + id + `' h='2'/>`)
	mallory.Expect(q(`<failed xmlns="urn:xmpp:sm:3"><item-not-found`))

	back := srv.RawDial()
	back.Authenticate(srv.ClientTLS, "alice", "pw")
	back.Write(`<resume xmlns='urn:xmpp:sm:3' previd='` + id + `' h='2'/>`)
	backIn := readInBackground(back)
	// alice sent <enable/>'s successor stanzas: her presence (1).
	backIn.waitFor(t, q(`<resumed xmlns="urn:xmpp:sm:3" previd="`+id+`" h="1"/>`), 5*time.Second)
	backIn.waitFor(t, `id="r2".*id="r3"`, 5*time.Second)
	if strings.Contains(backIn.String(), `id="r1"`) {
		t.Errorf("r1, acknowledged, was written again: %s", backIn.String())
	}
	back.Write(`<message to='bob@localhost/b' type='chat' id='after'><body>back</body></message>`)
	bobIn.waitFor(t, `id="after"[^>]*from="alice@localhost/phone"|from="alice@localhost/phone"[^>]*id="after"`, 5*time.Second)
	// The count goes on from what was resent: r2 and r3 are 3 and 4.
	back.Write(`<a xmlns='urn:xmpp:sm:3' h='4'/><r xmlns='urn:xmpp:sm:3'/>`)
	backIn.waitFor(t, q(`<a xmlns="urn:xmpp:sm:3" h="2"/>`), 5*time.Second)
}

// TestSMResumeTimeout: past limits.sm.resume_timeout a broken session ends:
// its contacts get its unavailable presence, what it never received waits
// offline, and its id no longer resumes.
func TestSMResumeTimeout(t *testing.T) {
	srv := servertest.Start(t, func(c *config.Config) { c.Limits.SM.ResumeTimeout = config.Duration(500 * time.Millisecond) })
	srv.AddUser("alice", "pw")
	srv.AddUser("bob", "pw")
	srv.Befriend("alice", "bob")
	bob := srv.RawLogin("bob", "pw", "b")
	bob.Write(`<presence/>`)
	bobIn := readInBackground(bob)
	alice := srv.RawLogin("alice", "pw", "phone")
	alice.Write(`<enable xmlns='urn:xmpp:sm:3' resume='true'/>`)
	id := enabledID.FindStringSubmatch(alice.Expect(`<enabled[^>]*/>`))[1]
	alice.Write(`<presence/>`)
	bobIn.waitFor(t, `<presence[^>]*from="alice@localhost/phone"`, 5*time.Second)
	dropTCP(alice)
	time.Sleep(100 * time.Millisecond)
	bob.Write(`<message to='alice@localhost' type='chat' id='late'><body>late</body></message>`)
	bobIn.waitFor(t, `<presence[^>]*from="alice@localhost/phone"[^>]*type="unavailable"|<presence[^>]*type="unavailable"[^>]*from="alice@localhost/phone"`, 5*time.Second)

	back := srv.RawDial()
	back.Authenticate(srv.ClientTLS, "alice", "pw")
	back.Write(`<resume xmlns='urn:xmpp:sm:3' previd='` + id + `' h='0'/>`)
	back.Expect(q(`<failed xmlns="urn:xmpp:sm:3"><item-not-found`))
	back.Write(`<iq type='set' id='bind2'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>desk</resource></bind></iq>`)
	back.Expect(`</iq>`)
	back.Write(`<presence/>`)
	readInBackground(back).waitFor(t, `id="late".*<delay`, 5*time.Second)
}

// TestSMResumeKeepsTheBurstOfTheBreak: messages that reach a resumable
// session while its connection is breaking (the first write to the reset
// socket fails, the reader has not yet seen the reset) are kept for the
// resume like those sent once it hibernates: none of them goes to offline
// storage or elsewhere, all come after <resumed/>, in order.
func TestSMResumeKeepsTheBurstOfTheBreak(t *testing.T) {
	srv := servertest.Start(t)
	srv.AddUser("alice", "pw")
	srv.AddUser("bob", "pw")
	bob := srv.RawLogin("bob", "pw", "b")
	bobIn := readInBackground(bob)
	for round := range 5 {
		alice := srv.RawLogin("alice", "pw", "phone")
		alice.Write(`<enable xmlns='urn:xmpp:sm:3' resume='true'/>`)
		m := enabledID.FindStringSubmatch(alice.Expect(`<enabled[^>]*/>`))
		if m == nil {
			t.Fatal("no resumption id in <enabled/>")
		}
		// A reset rather than a close: the server's next write fails.
		if tc, ok := alice.Conn.(interface{ NetConn() net.Conn }); ok {
			if tcp, ok := tc.NetConn().(*net.TCPConn); ok {
				_ = tcp.SetLinger(0)
			}
		}
		dropTCP(alice)
		const n = 30
		for i := range n {
			bob.Write(fmt.Sprintf(`<message to='alice@localhost/phone' type='chat' id='b%d-%d'><body>%d</body></message>`, round, i, i))
		}
		bob.Write(fmt.Sprintf(`<iq type='get' id='bping%d' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`, round))
		bobIn.waitFor(t, fmt.Sprintf(`id="bping%d"`, round), 5*time.Second)

		back := srv.RawDial()
		back.Authenticate(srv.ClientTLS, "alice", "pw")
		back.Write(`<resume xmlns='urn:xmpp:sm:3' previd='` + m[1] + `' h='0'/>`)
		backIn := readInBackground(back)
		backIn.waitFor(t, `<resumed`, 5*time.Second)
		var order strings.Builder
		for i := range n {
			order.WriteString(fmt.Sprintf(`id="b%d-%d".*`, round, i))
		}
		backIn.waitFor(t, order.String(), 5*time.Second)
		back.Write(fmt.Sprintf(`<a xmlns='urn:xmpp:sm:3' h='%d'/></stream:stream>`, n))
		back.Conn.Close()
		for deadline := time.Now().Add(5 * time.Second); isBound(srv, "alice@localhost/phone"); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the closed session did not end")
			}
		}
	}
	if msgs, err := srv.Store().TakeOffline(t.Context(), "alice"); err != nil || len(msgs) != 0 {
		t.Errorf("alice has %d offline messages (%v), want none: all came with the resume", len(msgs), err)
	}
}

// TestSMShutdownKeepsWhatHibernates: a server that shuts down while a
// session waits for its client to resume does not lose what waited: the
// message the client never acknowledged and the one that came during the
// break are kept offline, and the client gets both at its next login to
// the restarted server.
func TestSMShutdownKeepsWhatHibernates(t *testing.T) {
	srv := servertest.Start(t)
	srv.AddUser("alice", "pw")
	srv.AddUser("bob", "pw")
	alice := srv.RawLogin("alice", "pw", "phone")
	alice.Write(`<enable xmlns='urn:xmpp:sm:3' resume='true'/><presence/>`)
	alice.Expect(`<enabled`)
	aliceIn := readInBackground(alice)
	aliceIn.waitFor(t, `<presence[^>]*from="alice@localhost/phone"`, 5*time.Second)
	bob := srv.RawLogin("bob", "pw", "b")
	bobIn := readInBackground(bob)
	bob.Write(`<message to='alice@localhost/phone' type='chat' id='s1'><body>unacked</body></message>`)
	aliceIn.waitFor(t, `id="s1"`, 5*time.Second)
	dropTCP(alice)
	time.Sleep(100 * time.Millisecond)
	bob.Write(`<message to='alice@localhost/phone' type='chat' id='s2'><body>during the break</body></message>`)
	bob.Write(`<iq type='get' id='bping' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`)
	bobIn.waitFor(t, `id="bping"`, 5*time.Second)
	if !isBound(srv, "alice@localhost/phone") {
		t.Fatal("the resumable session ended with its connection")
	}

	srv = srv.Restart()
	again := srv.RawLogin("alice", "pw", "desk")
	again.Write(`<presence/>`)
	in := readInBackground(again)
	in.waitFor(t, `id="s1"`, 5*time.Second)
	in.waitFor(t, `id="s2"`, 5*time.Second)
	if got := in.String(); strings.Count(got, `xmlns="urn:xmpp:delay"`) < 2 {
		t.Errorf("the messages did not come from offline storage with their delay: %s", got)
	}
}

// TestSMMaxUnacked: limits.sm.max_unacked bounds what waits for a client's
// acknowledgement: a client that acknowledges keeps its stream however
// much it receives, one that lets more than the bound wait is closed with
// policy-violation, and what it never acknowledged is not lost: the
// messages come back from offline storage at its next login, and those it
// acknowledged do not come again.
func TestSMMaxUnacked(t *testing.T) {
	const limit = 10
	srv := servertest.Start(t, func(c *config.Config) { c.Limits.SM.MaxUnacked = limit })
	srv.AddUser("alice", "pw")
	srv.AddUser("bob", "pw")
	alice := srv.RawLogin("alice", "pw", "phone")
	alice.Write(`<enable xmlns='urn:xmpp:sm:3'/>`)
	alice.Expect(`<enabled`)
	in := readInBackground(alice)
	bob := srv.RawLogin("bob", "pw", "b")
	send := func(from, to int) {
		for i := from; i < to; i++ {
			bob.Write(fmt.Sprintf(`<message to='alice@localhost/phone' type='chat' id='k%d'><body>%d</body></message>`, i, i))
		}
	}
	// Eight, acknowledged; then eight more: never more than the bound
	// waits, the stream stays.
	send(0, 8)
	in.waitFor(t, `id="k7"`, 5*time.Second)
	alice.Write(`<a xmlns='urn:xmpp:sm:3' h='8'/><r xmlns='urn:xmpp:sm:3'/>`)
	in.waitFor(t, q(`<a xmlns="urn:xmpp:sm:3" h="\d+"/>`), 5*time.Second)
	send(8, 16)
	in.waitFor(t, `id="k15"`, 5*time.Second)
	if !isBound(srv, "alice@localhost/phone") || strings.Contains(in.String(), "policy-violation") {
		t.Fatalf("closed with %d stanzas unacknowledged, the bound being %d: %s", 8, limit, in.String())
	}
	// Three more: eleven wait, one past the bound.
	send(16, 19)
	in.waitFor(t, `<stream:error><policy-violation[^>]*/><text[^>]*>more than 10 stanzas not acknowledged \(limits.sm.max_unacked\)`, 5*time.Second)
	for deadline := time.Now().Add(5 * time.Second); isBound(srv, "alice@localhost/phone"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the closed session did not end")
		}
	}

	again := srv.RawLogin("alice", "pw", "desk")
	again.Write(`<presence/>`)
	got := readInBackground(again)
	for i := 8; i < 19; i++ {
		got.waitFor(t, fmt.Sprintf(`id="k%d".*<delay`, i), 5*time.Second)
	}
	again.Write(`<iq type='get' id='fence' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`)
	got.waitFor(t, `id="fence"`, 5*time.Second)
	for i := range 8 {
		if strings.Contains(got.String(), fmt.Sprintf(`id="k%d"`, i)) {
			t.Errorf("k%d, acknowledged, came again: %s", i, got.String())
		}
	}
}
