package c2s_test

import (
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/servertest"
)

// smallReceiveBuffer makes a client socket that holds little unread data,
// so that a client that stops reading backs up the server quickly.
var smallReceiveBuffer = &net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
	})
	if err != nil {
		return err
	}
	return serr
}}

// reader collects what a raw client receives, in the background.
type reader struct {
	mu  sync.Mutex
	got strings.Builder
}

func readInBackground(r *servertest.Raw) *reader {
	rd := &reader{}
	go func() {
		b := make([]byte, 64<<10)
		for {
			_ = r.SetReadDeadline(time.Now().Add(30 * time.Second))
			n, err := r.Conn.Read(b)
			rd.mu.Lock()
			rd.got.Write(b[:n])
			rd.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return rd
}

func (rd *reader) String() string {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	return rd.got.String()
}

// waitFor polls until what rd received matches pattern.
func (rd *reader) waitFor(t *testing.T, pattern string, timeout time.Duration) time.Duration {
	t.Helper()
	re := regexp.MustCompile(pattern)
	start := time.Now()
	for !re.MatchString(rd.String()) {
		if time.Since(start) > timeout {
			t.Fatalf("never received %q within %s", pattern, timeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return time.Since(start)
}

var (
	floodID = regexp.MustCompile(`id="(flood-\d+|fiq-\d+)"`)
	stanzas = regexp.MustCompile(`<(message|iq) [^>]*>`)
)

// ids lists the ids of flood messages and IQs in received XML, by kind:
// delivered stanzas and error answers.
func ids(xml string) (delivered, errors []string) {
	for _, m := range stanzas.FindAllString(xml, -1) {
		id := floodID.FindStringSubmatch(m)
		if id == nil {
			continue
		}
		if strings.Contains(m, `type="error"`) {
			errors = append(errors, id[1])
		} else {
			delivered = append(delivered, id[1])
		}
	}
	return delivered, errors
}

// isBound reports whether a session with the full JID j is bound.
func isBound(srv *servertest.Server, j string) bool {
	for _, si := range srv.Sessions() {
		if si.JID.String() == j {
			return true
		}
	}
	return false
}

// TestSlowReaderDoesNotHoldSenders: a client that stops reading while
// another floods it with messages holds nobody: the flooder's own pings and
// an unrelated pair's messages keep going (each answered within a generous
// bound while the flood lasts; before the outbound queue, the flooder
// waited up to write_timeout on every write), the slow client is closed
// once limits.max_outbound_bytes is queued for it, and every message the
// flooder sent is accounted for exactly once: written to the slow client's
// socket, kept offline for it (it had no other resource), or answered to
// the sender with an error.
func TestSlowReaderDoesNotHoldSenders(t *testing.T) {
	srv := servertest.Start(t, func(c *config.Config) {
		c.Limits.MaxOutboundBytes = 64 << 10
		// Long: the slow client must be found out by its queue, not by a
		// write timing out (before the outbound queue, the flooder waited
		// this long on each write to it).
		c.Limits.WriteTimeout = config.Duration(60 * time.Second)
		c.Limits.MaxOfflineMessages = 100000
		c.Limits.MaxStanzaBytes = 1 << 20
		// The flooder's 8 MiB would take half a minute at the default
		// limits.rate.bytes_per_second: pacing is TestFloodIsPaced's.
		c.Limits.Rate = config.Rate{}
	})
	for _, u := range []string{"slow", "flood", "carol", "dave"} {
		srv.AddUser(u, "pw")
	}
	slow := srv.RawDialer(smallReceiveBuffer)
	slow.Login(srv.ClientTLS, "slow", "pw", "stuck")
	slow.Write(`<presence/>`)
	slow.Expect(`<presence[^>]*from="slow@localhost/stuck"`)
	// From here on the slow client reads nothing.

	flood := srv.RawLogin("flood", "pw", "f")
	floodIn := readInBackground(flood)
	carol := srv.RawLogin("carol", "pw", "c")
	carolIn := readInBackground(carol)
	dave := srv.RawLogin("dave", "pw", "d")
	daveIn := readInBackground(dave)

	const n = 1000
	body := strings.Repeat("x", 8<<10)
	var worstFlooder, worstPair time.Duration
	for i := range n {
		flood.Write(fmt.Sprintf(`<message to='slow@localhost/stuck' type='chat' id='flood-%d'><body>%s</body></message>`, i, body))
		if i%50 == 0 {
			// IQ requests too: one never written is answered with an error.
			flood.Write(fmt.Sprintf(`<iq type='get' id='fiq-%d' to='slow@localhost/stuck'><query xmlns='jabber:iq:version'/></iq>`, i))
		}
		if i%250 == 0 {
			// The flooder is answered all along (behind its own messages,
			// which may be going to offline storage), and so is an
			// unrelated pair.
			flood.Write(fmt.Sprintf(`<iq type='get' id='fping-%d' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`, i))
			worstFlooder = max(worstFlooder, floodIn.waitFor(t, fmt.Sprintf(`id="fping-%d"`, i), 20*time.Second))
			carol.Write(fmt.Sprintf(`<message to='dave@localhost/d' type='chat' id='cd-%d'><body>hi</body></message>`, i))
			worstPair = max(worstPair, daveIn.waitFor(t, fmt.Sprintf(`id="cd-%d"`, i), 2*time.Second))
		}
	}
	flood.Write(`<iq type='get' id='fping-end' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`)
	floodIn.waitFor(t, `id="fping-end"`, 20*time.Second)
	t.Logf("slowest answer during the flood: %s to the flooder, %s between the unrelated pair", worstFlooder, worstPair)

	// The slow client is closed (reading its socket now would let it catch
	// up, so the server is asked)...
	deadline := time.Now().Add(10 * time.Second)
	for isBound(srv, "slow@localhost/stuck") {
		if time.Now().After(deadline) {
			t.Fatal("the slow client was not disconnected")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// ...and what reached its socket is still there.
	inSocket, _ := slow.ClosedByServer(20 * time.Second)
	written, _ := ids(inSocket)

	// What it was never sent waits offline for it.
	again := srv.RawLogin("slow", "pw", "back")
	againIn := readInBackground(again)
	again.Write(`<presence/>`)
	againIn.waitFor(t, `<presence[^>]*from="slow@localhost/back"`, 5*time.Second)
	var offline, bounced []string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		offline, _ = ids(againIn.String())
		_, bounced = ids(floodIn.String())
		if len(written)+len(offline)+len(bounced) >= n+n/50 {
			break
		}
	}

	seen := map[string]int{}
	for _, l := range [][]string{written, offline, bounced} {
		for _, id := range l {
			seen[id]++
		}
	}
	for i := range n {
		want := []string{fmt.Sprintf("flood-%d", i)}
		if i%50 == 0 {
			want = append(want, fmt.Sprintf("fiq-%d", i))
		}
		for _, id := range want {
			if c := seen[id]; c != 1 {
				t.Errorf("%s accounted for %d times (written %d, offline %d, errors %d)", id, c, len(written), len(offline), len(bounced))
			}
		}
	}
	if !strings.Contains(floodIn.String(), `<service-unavailable xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/>`) {
		t.Error("no IQ was answered service-unavailable: the test did not exercise the queue's bounce")
	}
	if len(written) == n {
		t.Errorf("all %d messages were written to a client that never read: the test did not back the server up", n)
	}
	t.Logf("of %d messages: %d written to the socket, %d kept offline, %d answered with an error", n, len(written), len(offline), len(bounced))
	_ = carolIn
}

// TestDeadClientLosesOnlyItsSocketBuffers: a client that stops reading and
// then dies (its socket closed with data unread, as a phone losing its
// network does, seen from the server as a reset) loses at most what the
// kernel buffers held: limits.socket_send_buffer keeps the server's send
// buffer small, so the backlog waits in the outbound queue, and what was
// never written goes to offline storage or back to the sender. With the
// kernel's autotuning (socket_send_buffer 0) Linux lets the send buffer grow
// to 4 MiB and nearly all of such a backlog was lost, answered to nobody.
// When the account has another resource online, the backlog reaches it
// instead (RFC 6121 §8.5.3.2.1).
func TestDeadClientLosesOnlyItsSocketBuffers(t *testing.T) {
	t.Run("alone", func(t *testing.T) { testDeadClient(t, false) })
	t.Run("another resource online", func(t *testing.T) { testDeadClient(t, true) })
}

func testDeadClient(t *testing.T, other bool) {
	const sndbuf = 64 << 10
	srv := servertest.Start(t, func(c *config.Config) {
		c.Limits.SocketSendBuffer = sndbuf
		// Large: the client must die holding a backlog, not be closed as
		// a slow client first.
		c.Limits.MaxOutboundBytes = 16 << 20
		c.Limits.WriteTimeout = config.Duration(60 * time.Second)
		c.Limits.MaxOfflineMessages = 100000
		c.Limits.MaxOfflineBytes = 64 << 20
		c.Limits.Rate = config.Rate{}
	})
	srv.AddUser("dying", "pw")
	srv.AddUser("flood", "pw")
	dying := srv.RawDialer(smallReceiveBuffer)
	dying.Login(srv.ClientTLS, "dying", "pw", "phone")
	dying.Write(`<presence/>`)
	dying.Expect(`<presence[^>]*from="dying@localhost/phone"`)
	// From here on the dying client reads nothing.
	var desk *reader
	if other {
		d := srv.RawLogin("dying", "pw", "desk")
		desk = readInBackground(d)
		d.Write(`<presence/>`)
		desk.waitFor(t, `<presence[^>]*from="dying@localhost/desk"`, 5*time.Second)
	}

	flood := srv.RawLogin("flood", "pw", "f")
	floodIn := readInBackground(flood)
	const n = 300
	body := strings.Repeat("x", 8<<10)
	for i := range n {
		flood.Write(fmt.Sprintf(`<message to='dying@localhost/phone' type='chat' id='flood-%d'><body>%s</body></message>`, i, body))
	}
	// The flooder's stream is handled in order: the ping's answer says
	// that every message was queued for the dying client.
	flood.Write(`<iq type='get' id='fping' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`)
	floodIn.waitFor(t, `id="fping"`, 20*time.Second)
	time.Sleep(200 * time.Millisecond) // the writer fills the socket buffers

	// It dies: the TCP connection is closed under TLS with data unread.
	if tc, ok := dying.Conn.(interface{ NetConn() net.Conn }); ok {
		tc.NetConn().Close()
	} else {
		dying.Conn.Close()
	}
	deadline := time.Now().Add(20 * time.Second)
	for isBound(srv, "dying@localhost/phone") {
		if time.Now().After(deadline) {
			t.Fatal("the dead client's session did not end")
		}
		time.Sleep(10 * time.Millisecond)
	}

	againIn := desk
	if !other {
		again := srv.RawLogin("dying", "pw", "back")
		againIn = readInBackground(again)
		again.Write(`<presence/>`)
		againIn.waitFor(t, `<presence[^>]*from="dying@localhost/back"`, 5*time.Second)
	}
	// Collected until nothing more comes for a second.
	var offline, bounced []string
	last, quiet := -1, time.Now()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && time.Since(quiet) < time.Second; time.Sleep(50 * time.Millisecond) {
		offline, _ = ids(againIn.String())
		_, bounced = ids(floodIn.String())
		if got := len(offline) + len(bounced); got != last {
			last, quiet = got, time.Now()
		}
	}
	lost := n - len(offline) - len(bounced)
	t.Logf("of %d messages to a client that died: %d kept offline or delivered to its other resource, %d answered with an error, %d lost in the socket buffers", n, len(offline), len(bounced), lost)
	if len(offline)+len(bounced) == 0 {
		t.Fatal("nothing was kept offline or answered: the backlog was not in the outbound queue")
	}
	// Linux doubles SO_SNDBUF for its bookkeeping; the client's own receive
	// buffer and the TLS records add a little.
	if most := (2*sndbuf + 64<<10) / len(body); lost > most {
		t.Errorf("%d messages lost with the dead client; its socket buffers hold at most %d", lost, most)
	}
}
