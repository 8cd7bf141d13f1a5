package s2s_test

import (
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/s2s"
	"github.com/adhocd/adhocd/servertest"
	"github.com/adhocd/adhocd/wire"
)

// Faults of the remote side, as a user sees them: a remote server that
// restarts under an established stream, and one that authenticates and
// then stops reading. docs/federation.md promises that nothing fails
// silently: every message a test sends here either reaches its recipient
// or comes back to its sender as an error, exactly once, and the tests
// count them (RFC 6120 §8.3 for the errors, §4.9.3 for the streams).

// tally is what became of each message a fault test sent, by id: the
// recipient got it (arrived), or its sender got an error back (bounced,
// with the error's type and condition), or neither yet.
type tally struct {
	mu        sync.Mutex
	sent      []string
	arrived   map[string][]time.Time
	bounced   map[string][]string
	bouncedAt map[string]time.Time
}

func newTally() *tally {
	return &tally{arrived: map[string][]time.Time{},
		bounced: map[string][]string{}, bouncedAt: map[string]time.Time{}}
}

// send sends a chat message from c to to, recorded as sent first, so that
// an outcome that comes before SendRaw returns is not one of an unknown
// message.
func (tl *tally) send(t *testing.T, c *servertest.Client, to, id, body string) {
	t.Helper()
	tl.mu.Lock()
	tl.sent = append(tl.sent, id)
	tl.mu.Unlock()
	limSend(t, c, "<message to='"+to+"' type='chat' id='"+id+"'><body>"+body+"</body></message>")
}

func (tl *tally) arrive(id string) {
	tl.mu.Lock()
	tl.arrived[id] = append(tl.arrived[id], time.Now())
	tl.mu.Unlock()
}

func (tl *tally) bounce(id, cond string) {
	tl.mu.Lock()
	tl.bounced[id] = append(tl.bounced[id], cond)
	if _, ok := tl.bouncedAt[id]; !ok {
		tl.bouncedAt[id] = time.Now()
	}
	tl.mu.Unlock()
}

// fate is what became of id so far: how many times it arrived, and the
// errors that came back for it.
func (tl *tally) fate(id string) (arrived int, bounced []string) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return len(tl.arrived[id]), slices.Clone(tl.bounced[id])
}

// bouncedWith counts the messages that came back with cond ("wait
// resource-constraint").
func (tl *tally) bouncedWith(cond string) int {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	n := 0
	for _, cs := range tl.bounced {
		if slices.Contains(cs, cond) {
			n++
		}
	}
	return n
}

// firstBounce is when the first error with cond came back, zero if none.
func (tl *tally) firstBounce(cond string) time.Time {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	var first time.Time
	for id, cs := range tl.bounced {
		if slices.Contains(cs, cond) && (first.IsZero() || tl.bouncedAt[id].Before(first)) {
			first = tl.bouncedAt[id]
		}
	}
	return first
}

// await waits up to within for each of ids to have arrived or bounced,
// and reports whether they all did.
func (tl *tally) await(within time.Duration, ids ...string) bool {
	deadline := time.Now().Add(within)
	for {
		done := true
		for _, id := range ids {
			if a, b := tl.fate(id); a == 0 && len(b) == 0 {
				done = false
				break
			}
		}
		if done {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// settled waits up to within for every message sent to have an outcome,
// then fails the test for each that has none (lost silently), or more
// than one (delivered twice, or delivered and reported as failed).
func (tl *tally) settled(t *testing.T, within time.Duration) {
	t.Helper()
	tl.mu.Lock()
	sent := slices.Clone(tl.sent)
	tl.mu.Unlock()
	tl.await(within, sent...)
	lost := 0
	for _, id := range sent {
		a, b := tl.fate(id)
		switch {
		case a+len(b) == 0:
			lost++
			if lost <= 10 {
				t.Errorf("message %s was lost silently: it neither arrived nor came back as an error", id)
			}
		case a+len(b) > 1:
			t.Errorf("message %s has %d outcomes (arrived %d times, errors %v), want exactly one", id, a+len(b), a, b)
		}
	}
	if lost > 10 {
		t.Errorf("... %d messages lost silently in all, of %d sent", lost, len(sent))
	}
}

// watch hands each stanza c receives to f, on a goroutine of its own,
// until c's stream or the test ends.
func watch(t *testing.T, c *servertest.Client, f func(servertest.Stanza)) {
	const poll = 50 * time.Millisecond
	done, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		for {
			start := time.Now()
			s, ok := c.Wait(poll, nil)
			if ok {
				f(s)
				continue
			}
			select {
			case <-done:
				return
			default:
			}
			if time.Since(start) < poll/2 {
				return // the stream ended: Wait returns at once from now on
			}
		}
	}()
	t.Cleanup(func() { close(done); <-exited })
}

// watchMessages records in tl the messages c receives from peer (a bare
// JID, matching its full JIDs too): an error is the bounce of the message
// with its id, anything else that message's arrival.
func (tl *tally) watchMessages(t *testing.T, c *servertest.Client, peer string) {
	watch(t, c, func(s servertest.Stanza) {
		if s.Name != "message" || (s.Attrs["from"] != peer && !strings.HasPrefix(s.Attrs["from"], peer+"/")) {
			return
		}
		if s.Attrs["type"] == "error" {
			tl.bounce(s.Attrs["id"], limCondition(s))
			return
		}
		tl.arrive(s.Attrs["id"])
	})
}

// outbound reports whether srv lists an outbound stream to remote, in
// any state.
func outbound(srv *servertest.Server, remote string) (s2s.Conn, bool) {
	for _, c := range srv.S2S() {
		if !c.Inbound && c.Remote == remote {
			return c, true
		}
	}
	return s2s.Conn{}, false
}

// noOutbound waits up to within for srv to list no outbound stream to
// remote.
func noOutbound(srv *servertest.Server, remote string, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for {
		if _, ok := outbound(srv, remote); !ok {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// faultRetryDelay is s2s.retry_delay in the restart test: how long
// a.test bounces b.test's stanzas at once after it could not reach it.
const faultRetryDelay = 500 * time.Millisecond

// TestRemoteRestarts: alice@a.test and bob@b.test exchange messages; b.test
// stops. a.test notices that its stream to b.test is gone (b.test's
// shutdown ends it), and alice's messages while b.test is down come back
// to her as errors, remote-server-not-found or remote-server-timeout,
// within a second, not lost. b.test starts again on the same address with
// the same accounts, bob logs in again, and once s2s.retry_delay has
// passed alice's messages reach him over a new stream, and his reach her.
// Every message sent is counted: it arrived, or its sender got one error.
func TestRemoteRestarts(t *testing.T) {
	a, b := servertest.Federated(t, func(a, b *config.Config) {
		for _, c := range []*config.Config{a, b} {
			c.S2S.RetryDelay = config.Duration(faultRetryDelay)
			c.S2S.ConnectTimeout = config.Duration(3 * time.Second)
		}
	})
	tl := newTally()
	alice := online(t, a, "alice", "wonderland")
	bob := online(t, b, "bob", "builder")
	tl.watchMessages(t, alice, "bob@b.test")
	tl.watchMessages(t, bob, "alice@a.test")

	tl.send(t, alice, "bob@b.test", "m1", "before the restart")
	tl.send(t, bob, "alice@a.test", "r1", "before the restart, from b")
	if !tl.await(crossing, "m1", "r1") {
		t.Fatal("alice and bob could not exchange messages before the restart")
	}
	for _, id := range []string{"m1", "r1"} {
		if n, errs := tl.fate(id); n != 1 || len(errs) != 0 {
			t.Fatalf("%s before the restart: arrived %d times, errors %v", id, n, errs)
		}
	}
	first := conn(t, a, "b.test", false)

	if err := b.Stop(); err != nil {
		t.Fatalf("stopping b.test: %v", err)
	}
	// At once, as a user would: the stream a.test had is dead, and what
	// alice sends must not be written to it and lost.
	stopped := time.Now()
	tl.send(t, alice, "bob@b.test", "down1", "while b.test is down")
	if !tl.await(2*time.Second, "down1") {
		t.Fatalf("alice's message sent just after b.test stopped: no error came back within 2s (a.test's streams: %+v)", a.S2S())
	}
	if !noOutbound(a, "b.test", time.Second) {
		t.Errorf("a.test still lists its outbound stream to b.test after b.test stopped: %+v", a.S2S())
	}
	tl.send(t, alice, "bob@b.test", "down2", "still down")
	if !tl.await(time.Second, "down2") {
		t.Fatal("alice's second message while b.test is down: no error came back within 1s")
	}
	for _, id := range []string{"down1", "down2"} {
		n, errs := tl.fate(id)
		if n != 0 || len(errs) != 1 || (errs[0] != "cancel remote-server-not-found" && errs[0] != "wait remote-server-timeout") {
			t.Errorf("%s, sent while b.test was down: arrived %d times, errors %v; want one remote-server-not-found or remote-server-timeout", id, n, errs)
		}
	}
	t.Logf("b.test down for %v", time.Since(stopped))

	b = b.Restart()
	restarted := time.Now()
	bob = b.Dial("bob", "builder", "")
	limSend(t, bob, "<presence/>")
	tl.watchMessages(t, bob, "alice@a.test")

	// Until the retry delay has passed since the failure, a.test may
	// still bounce at once; after it, a new stream is opened.
	var through string
	for n := 1; through == "" && time.Since(restarted) < 6*time.Second; n++ {
		id := fmt.Sprintf("up%d", n)
		tl.send(t, alice, "bob@b.test", id, "after the restart")
		if !tl.await(crossing, id) {
			t.Fatalf("%s, sent after b.test restarted: neither delivered nor bounced within %v", id, crossing)
		}
		if arrived, _ := tl.fate(id); arrived > 0 {
			through = id
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if through == "" {
		t.Fatalf("no message of alice's reached bob within 6s of b.test's restart (retry_delay %v); a.test's streams: %+v", faultRetryDelay, a.S2S())
	}
	for n := 1; ; n++ {
		id := fmt.Sprintf("up%d", n)
		if id == through {
			t.Logf("after the restart: %d message(s) bounced while the failure was remembered, %s got through %v after the restart",
				n-1, id, time.Since(restarted))
			break
		}
		if _, errs := tl.fate(id); len(errs) != 1 || (errs[0] != "cancel remote-server-not-found" && errs[0] != "wait remote-server-timeout") {
			t.Errorf("%s, sent after the restart before the retry delay had passed: errors %v, want one remote-server-not-found or remote-server-timeout", id, errs)
		}
	}
	if d := time.Since(restarted); d > faultRetryDelay+3*time.Second {
		t.Errorf("the first message got through %v after the restart, want about retry_delay %v", d, faultRetryDelay)
	}
	tl.send(t, alice, "bob@b.test", "last", "the restart is over")
	tl.send(t, bob, "alice@a.test", "r2", "back again, from b")
	if !tl.await(crossing, "last", "r2") {
		t.Fatal("after the restart, alice's or bob's message had no outcome")
	}
	for _, id := range []string{"last", "r2"} {
		if n, errs := tl.fate(id); n != 1 || len(errs) != 0 {
			t.Errorf("%s, after the restart: arrived %d times, errors %v; want it delivered", id, n, errs)
		}
	}
	if again := conn(t, a, "b.test", false); !again.Since.After(first.Since) {
		t.Errorf("a.test's stream to b.test after the restart %+v is not a new one (before: %+v)", again, first)
	}
	tl.settled(t, servertest.Wait)
}

// Limits of a.test in TestStalledPeer: small, so that the stall is soon
// felt; faultBody is each flooding message's body.
const (
	faultWriteTimeout = 4 * time.Second
	faultQueueBytes   = 64 << 10
	faultBody         = 8 << 10
	// faultFlood is how many messages alice floods c.test with: 1.6 MB,
	// many times what the socket buffers and the queue may hold, and less
	// than the 4 MiB Linux would grow a send buffer to by itself.
	faultFlood = 200
)

// staller plays c.test's server for a.test's outbound streams: it answers
// a.test's stream header with its own and the dialback feature, no
// STARTTLS (a.test has require_tls off), and says a.test's dialback key is
// valid without checking it back (XEP-0220 §2.1.3: the receiving server's
// decision). Then it reads one stanza on its first stream and nothing more
// on any: it is up, authenticated, and no longer reads. Its receive
// buffer is left as the kernel makes it: one shrunk to a few KiB makes
// loopback drop a.test's 64 KiB segments, and the retransmissions, backed
// off to seconds, would outlast the test when drain reads at the end.
type staller struct {
	t     *testing.T
	ln    net.Listener
	hello chan *wire.Element // the stanza read on the first stream

	mu    sync.Mutex
	conns []stalled
	wg    sync.WaitGroup
}

// stalled is one authenticated stream the staller no longer reads.
type stalled struct {
	nc  net.Conn
	dec *wire.Decoder
}

func startStaller(t *testing.T) *staller {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &staller{t: t, ln: ln, hello: make(chan *wire.Element, 1)}
	var accepted []net.Conn
	var amu sync.Mutex
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for n := 1; ; n++ {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			amu.Lock()
			accepted = append(accepted, nc)
			amu.Unlock()
			s.wg.Add(1)
			go s.serve(nc, n)
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		amu.Lock()
		for _, nc := range accepted {
			_ = nc.Close()
		}
		amu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *staller) serve(nc net.Conn, n int) {
	defer s.wg.Done()
	_ = nc.SetDeadline(time.Now().Add(rawDeadline))
	dec := wire.NewDecoder(nc, 1<<16, 16, 32)
	st, err := dec.StreamHeader()
	if err != nil {
		s.t.Errorf("staller: a.test's stream header: %v", err)
		return
	}
	if from, to := wire.AttrOf(st, "from"), wire.AttrOf(st, "to"); from != "a.test" || to != "c.test" {
		s.t.Errorf("staller: a.test's header is from %q to %q, want a.test to c.test", from, to)
		return
	}
	if _, err := io.WriteString(nc, "<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='"+nsStreams+
		"' xmlns:db='jabber:server:dialback' from='c.test' to='a.test' id='stall-"+fmt.Sprint(n)+
		"' version='1.0'><stream:features><dialback xmlns='"+s2s.NSDialbackFeature+"'/></stream:features>"); err != nil {
		s.t.Errorf("staller: %v", err)
		return
	}
	for {
		el, err := dec.Next()
		if err != nil {
			s.t.Errorf("staller: a.test's stream ended before its <db:result/>: %v", err)
			return
		}
		if s2s.DialbackKindOf(el.Start.Name) != s2s.DialbackResult {
			continue
		}
		d, err := s2s.ParseDialback(el)
		if err != nil || d.From != "a.test" || d.To != "c.test" || d.Key == "" {
			s.t.Errorf("staller: a.test's dialback request %s (%v)", showEl(el), err)
			return
		}
		break
	}
	if _, err := io.WriteString(nc, "<db:result from='c.test' to='a.test' type='valid'/>"); err != nil {
		s.t.Errorf("staller: %v", err)
		return
	}
	if n == 1 {
		el, err := dec.Next()
		if err != nil {
			s.t.Errorf("staller: no first stanza on a.test's stream: %v", err)
			return
		}
		s.hello <- el
	}
	_ = nc.SetDeadline(time.Time{})
	s.mu.Lock()
	s.conns = append(s.conns, stalled{nc: nc, dec: dec})
	s.mu.Unlock()
}

// drain reads, on every stalled stream, what a.test wrote that the kernel
// buffers held, until a.test's end of it (a.test must have closed them),
// and returns the ids of the whole messages read. A message cut short by
// the end of the connection is not one of them.
func (s *staller) drain(t *testing.T) []string {
	t.Helper()
	_ = s.ln.Close()
	s.mu.Lock()
	conns := slices.Clone(s.conns)
	s.mu.Unlock()
	var ids []string
	for _, c := range conns {
		_ = c.nc.SetReadDeadline(time.Now().Add(servertest.Wait))
		for {
			el, err := c.dec.Next()
			if err != nil {
				if !strings.Contains(err.Error(), "EOF") && !strings.Contains(err.Error(), "not-well-formed") {
					t.Logf("staller: reading a stalled stream: %v", err)
				}
				break
			}
			if el.Start.Name.Local == "message" {
				ids = append(ids, el.Attr("id"))
			}
		}
	}
	return ids
}

// TestStalledPeer: c.test's server authenticates a.test's stream, reads
// alice's first message, and then stops reading. alice floods eve@c.test
// with messages of 8 KiB: once the kernel's buffers and a.test's queue
// (s2s.limits.queue_bytes) are full, her messages come back at once with
// resource-constraint; when the blocked write passes limits.write_timeout,
// a.test drops the stream, and what was queued for it comes back with
// remote-server-timeout. Every message is accounted for: the stalled peer
// finds it on its socket in the end, or alice got exactly one error for
// it. Meanwhile a stalled peer freezes no one else: carol's message to
// bob@b.test crosses within three seconds (the flood's own errors keep
// the test's clients busy), and alice's own server answers her ping, while
// the stall lasts.
func TestStalledPeer(t *testing.T) {
	stall := startStaller(t)
	a, b := servertest.Federated(t, func(a, _ *config.Config) {
		a.S2S.RequireTLS = false
		a.S2S.Hosts["c.test"] = stall.ln.Addr().String()
		a.S2S.ConnectTimeout = config.Duration(3 * time.Second)
		a.S2S.Limits.MaxStanzaBytes = 16 << 10
		a.S2S.Limits.QueueBytes = faultQueueBytes
		a.Limits.WriteTimeout = config.Duration(faultWriteTimeout)
		// alice is sent back an error as large as each message: her own
		// session must hold them, and nothing paces her flood.
		a.Limits.MaxOutboundBytes = 32 << 20
		servertest.NoRateLimits(a)
	})
	alice, carol := online(t, a, "alice", "wonderland"), online(t, a, "carol", "caroline")
	bob := online(t, b, "bob", "builder")
	tl := newTally()
	tl.watchMessages(t, alice, "eve@c.test")
	tl.watchMessages(t, carol, "bob@b.test")
	tl.watchMessages(t, bob, "carol@a.test")

	// carol's streams with b.test are up before the stall.
	tl.send(t, carol, "bob@b.test", "c0", "before the stall")
	if !tl.await(crossing, "c0") {
		t.Fatal("carol's first message to bob had no outcome")
	}
	if n, errs := tl.fate("c0"); n != 1 {
		t.Fatalf("carol's first message to bob: arrived %d times, errors %v", n, errs)
	}
	limSend(t, alice, "<message to='eve@c.test' type='chat' id='hello'><body>are you there?</body></message>")
	select {
	case el := <-stall.hello:
		if el.Start.Name.Local != "message" || el.Attr("id") != "hello" {
			t.Fatalf("c.test's first stanza from a.test: %s, want alice's message", showEl(el))
		}
	case <-time.After(servertest.Wait):
		t.Fatalf("c.test's server never got alice's first message; a.test's streams: %+v", a.S2S())
	}

	body := strings.Repeat("x", faultBody)
	floodStart := time.Now()
	const sent = faultFlood
	for i := 1; i <= sent; i++ {
		tl.send(t, alice, "eve@c.test", fmt.Sprintf("f%d", i), body)
	}
	t.Logf("flood: %d messages (%d KiB) in %v", sent, sent*faultBody>>10, time.Since(floodStart))
	if _, ok := outbound(a, "c.test"); !ok {
		t.Fatalf("a.test has no stream to c.test right after the flood: the stall is over too soon (%+v)", a.S2S())
	}

	// While the write to c.test is blocked: others are served at once.
	stallSeen := time.Now()
	tl.send(t, carol, "bob@b.test", "c1", "during the stall")
	if !tl.await(3*time.Second, "c1") {
		t.Errorf("carol's message to bob@b.test during the stall did not arrive within 3s: the stalled peer froze other senders")
	}
	if n, errs := tl.fate("c1"); n != 1 || len(errs) != 0 {
		t.Errorf("carol's message during the stall: arrived %d times, errors %v", n, errs)
	}
	pingStart := time.Now()
	ctx := servertest.Context(t, 3*time.Second)
	if _, err := alice.IQ(ctx, "<iq type='get' to='a.test' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>"); err != nil {
		t.Errorf("alice's ping of her own server during the stall: %v", err)
	}
	pinged := time.Since(pingStart)
	if at, ok := tl.arrivedAt("c1"); ok {
		t.Logf("during the stall: carol's message crossed in %v, alice's ping was answered in %v", at.Sub(stallSeen), pinged)
	}
	if ended := tl.firstBounce("wait remote-server-timeout"); !ended.IsZero() {
		if at, _ := tl.arrivedAt("c1"); !at.Before(ended) {
			t.Errorf("carol's message arrived at %v, after the stall ended at %v: it waited for the stalled stream", at, ended)
		}
	}

	// The blocked write times out: a.test drops the stream.
	if !noOutbound(a, "c.test", faultWriteTimeout+3*time.Second) {
		t.Fatalf("a.test still has its stream to c.test %v after the flood (limits.write_timeout %v), though c.test reads nothing: no write blocked; "+
			"alice was told of %d of her %d messages, the others count as written (%+v)",
			time.Since(floodStart), faultWriteTimeout, tl.bouncedWith("wait resource-constraint")+tl.bouncedWith("wait remote-server-timeout"), sent, a.S2S())
	}
	for _, id := range stall.drain(t) {
		tl.arrive(id)
	}
	tl.settled(t, servertest.Wait)

	full, dropped := tl.bouncedWith("wait resource-constraint"), tl.bouncedWith("wait remote-server-timeout")
	written := 0
	for i := 1; i <= sent; i++ {
		if n, _ := tl.fate(fmt.Sprintf("f%d", i)); n > 0 {
			written++
		}
	}
	t.Logf("of %d messages: %d written to c.test's socket, %d bounced with resource-constraint, %d with remote-server-timeout", sent, written, full, dropped)
	if full == 0 {
		t.Error("no message came back with resource-constraint: the queue for the stalled stream never filled")
	}
	if dropped == 0 {
		t.Error("no message came back with remote-server-timeout: what was queued when the stream was dropped was not answered as its failure")
	}
	if written+full+dropped != sent {
		t.Errorf("written %d + bounced %d (resource-constraint) + %d (remote-server-timeout) != sent %d: some came back with another condition, or not at all", written, full, dropped, sent)
	}
}

// arrivedAt is when id first arrived.
func (tl *tally) arrivedAt(id string) (time.Time, bool) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if len(tl.arrived[id]) == 0 {
		return time.Time{}, false
	}
	return tl.arrived[id][0], true
}
