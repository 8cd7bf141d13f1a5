package main

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const password = "soak-pw"

// record is one tracked message: sent, then delivered or answered with an
// error. confirmed means the server is known to have handled it: always
// without --chaos, after a ping barrier with it (offline messages) in chaos.
type record struct {
	kind      string // chat, offline or slow
	to        string
	sent      time.Time
	confirmed bool
	epoch     int64 // the server's restarts when it was confirmed
	delivered int
	bounced   string
}

// ledger holds every tracked message and the latencies measured.
type ledger struct {
	mu      sync.Mutex
	seq     int64
	msgs    map[string]*record
	chatLat []time.Duration
	cmdLat  []time.Duration
	errors  map[string]int // what went wrong on the way, by kind
	// restarts counts the server's restarts (chaos), for the messages
	// confirmed before one and delivered after.
	restarts atomic.Int64
	counts   map[string]int
}

func newLedger() *ledger {
	return &ledger{msgs: map[string]*record{}, errors: map[string]int{}, counts: map[string]int{}}
}

func (l *ledger) add(kind, to string, confirmed bool) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	id := "m" + strconv.FormatInt(l.seq, 10)
	l.msgs[id] = &record{kind: kind, to: to, sent: time.Now(), confirmed: confirmed, epoch: l.restarts.Load()}
	return id
}

func (l *ledger) confirm(ids []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, id := range ids {
		if r := l.msgs[id]; r != nil {
			r.confirmed = true
			r.epoch = l.restarts.Load()
		}
	}
}

// seen counts a message that a client received, and returns its record.
func (l *ledger) seen(st *stanza) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.msgs[st.ID]
	if r == nil {
		return
	}
	if st.Type == "error" {
		r.bounced = st.condition()
		l.counts["bounced "+r.kind+" ("+r.bounced+")"]++
		return
	}
	r.delivered++
	if r.delivered == 1 {
		l.counts["delivered "+r.kind]++
		if r.confirmed && l.restarts.Load() > r.epoch {
			l.counts["delivered "+r.kind+" after a restart (confirmed before it)"]++
		}
		if st.Delay != nil {
			l.counts["delivered "+r.kind+" from offline storage"]++
		} else if r.kind == "chat" {
			l.chatLat = append(l.chatLat, time.Since(r.sent))
		}
	} else {
		l.counts["duplicate "+r.kind]++
	}
}

func (l *ledger) count(what string) {
	l.mu.Lock()
	l.counts[what]++
	l.mu.Unlock()
}

func (l *ledger) fail(what string) {
	l.mu.Lock()
	l.errors[what]++
	l.mu.Unlock()
}

func (l *ledger) cmd(d time.Duration) {
	l.mu.Lock()
	l.cmdLat = append(l.cmdLat, d)
	l.mu.Unlock()
}

// outstanding counts the messages neither delivered nor bounced.
func (l *ledger) outstanding() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.msgs {
		if r.delivered == 0 && r.bounced == "" {
			n++
		}
	}
	return n
}

// load is the mixed workload against one server.
type load struct {
	srv   *server
	led   *ledger
	log   *slog.Logger
	chaos bool
	// rcvbuf is the slow readers' socket receive buffer (--slow-rcvbuf).
	rcvbuf int
	// What the server confirmed and a restart must keep.
	mu      sync.Mutex
	rosters map[string]map[string]string // user → contact → name (confirmed)
	unsure  map[string]map[string]bool   // user → contacts whose last change was not confirmed
	created []string                     // accounts made while running
	flood   struct{ sent, received, errors atomic.Int64 }
}

// sizes of the workload.
type sizes struct {
	pairs, offline, roster, commands, churn, slow int
	floodRate                                     int
}

func (z sizes) users() []string {
	var u []string
	add := func(p string, n int) {
		for i := 0; i < n; i++ {
			u = append(u, p+strconv.Itoa(i))
		}
	}
	add("pa", z.pairs)
	add("pb", z.pairs)
	add("off", z.offline)
	add("roster", z.roster)
	add("cmd", z.commands)
	add("churn", z.churn)
	add("slow", z.slow)
	add("feed", z.slow)
	return append(u, "offsender", "flood", "sink")
}

// online logs user in with initial presence, retrying while the server is
// down (a restart in chaos mode), until ctx ends.
func (ld *load) online(ctx context.Context, user string, on func(*client, *stanza)) (*client, error) {
	for {
		c, err := login(ctx, ld.srv.addr, user, password, on)
		if err == nil {
			if err = c.write("<presence/>"); err == nil {
				return c, nil
			}
			c.drop()
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		ld.led.fail("login")
		sleep(ctx, 200*time.Millisecond)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// receiver counts tracked messages and answers chat originals with an ack.
func (ld *load) receiver(acks chan<- string) func(*client, *stanza) {
	return func(c *client, st *stanza) {
		if st.XMLName.Local != "message" {
			return
		}
		if strings.HasPrefix(st.ID, "ack-") {
			if acks != nil {
				select {
				case acks <- strings.TrimPrefix(st.ID, "ack-"):
				default:
				}
			}
			return
		}
		ld.led.seen(st)
		if st.Type != "error" && strings.HasPrefix(st.Body, "chat ") && st.From != "" {
			_ = c.message(st.From, "ack-"+st.ID, "ack")
		}
	}
}

// pair: a sends chat messages to b's full JID, each answered by b's ack,
// and both log out and in again now and then.
func (ld *load) pair(ctx context.Context, i int) {
	acks := make(chan string, 16)
	for ctx.Err() == nil {
		a, err := ld.online(ctx, "pa"+strconv.Itoa(i), ld.receiver(acks))
		if err != nil {
			return
		}
		b, err := ld.online(ctx, "pb"+strconv.Itoa(i), ld.receiver(nil))
		if err != nil {
			a.drop()
			return
		}
		ld.led.count("logins")
		until := time.Now().Add(time.Duration(10+rand.IntN(20)) * time.Second)
		for ctx.Err() == nil && time.Now().Before(until) {
			id := ld.led.add("chat", b.jid, !ld.chaos)
			sent := time.Now()
			if err := a.message(b.jid, id, "chat "+id+" "+strings.Repeat("x", rand.IntN(200))); err != nil {
				break
			}
			select {
			case <-acks:
				ld.led.count("acks")
			case <-time.After(5 * time.Second):
				ld.led.fail("ack timeout")
			case <-ctx.Done():
			case <-a.closed():
			}
			sleep(ctx, 20*time.Millisecond-time.Since(sent))
			if a.failed() || b.failed() {
				break
			}
		}
		a.logout()
		b.logout()
	}
}

// offline sends messages to accounts that are not logged in, confirms them
// with a ping, and logs each account in a round later to collect them.
func (ld *load) offline(ctx context.Context, n int) {
	var s *client
	for k := 0; ctx.Err() == nil; k++ {
		if s == nil || s.failed() {
			var err error
			if s, err = ld.online(ctx, "offsender", ld.receiver(nil)); err != nil {
				return
			}
		}
		to := "off" + strconv.Itoa(k%n) + "@localhost"
		var ids []string
		for j := 0; j < 5; j++ {
			id := ld.led.add("offline", to, !ld.chaos)
			ids = append(ids, id)
			_ = s.message(to, id, "offline "+id)
		}
		if err := s.ping(ctx); err == nil {
			ld.led.confirm(ids)
			ld.led.count("offline batches confirmed")
		}
		// Collect the account written to n/2 rounds ago.
		ld.collect(ctx, "off"+strconv.Itoa((k+n/2+1)%n), time.Second)
		sleep(ctx, 200*time.Millisecond)
	}
	if s != nil {
		s.logout()
	}
}

// collect logs user in, receives for a while what waits for it, and logs out.
func (ld *load) collect(ctx context.Context, user string, wait time.Duration) {
	c, err := login(ctx, ld.srv.addr, user, password, ld.receiver(nil))
	if err != nil {
		ld.led.fail("login")
		return
	}
	_ = c.write("<presence/>")
	if err := c.ping(ctx); err != nil {
		ld.led.fail("collect ping")
	}
	sleep(context.Background(), wait)
	c.logout()
}

// roster adds, renames and removes contacts and changes presence, keeping
// what the server confirmed.
func (ld *load) roster(ctx context.Context, i int) {
	user := "roster" + strconv.Itoa(i)
	ld.mu.Lock()
	ld.rosters[user] = map[string]string{}
	ld.unsure[user] = map[string]bool{}
	ld.mu.Unlock()
	shows := []string{"away", "chat", "dnd", "xa", ""}
	for ctx.Err() == nil {
		c, err := ld.online(ctx, user, ld.receiver(nil))
		if err != nil {
			return
		}
		for n := 0; n < 50 && ctx.Err() == nil && !c.failed(); n++ {
			contact := "contact" + strconv.Itoa(rand.IntN(20)) + "@localhost"
			var item, name string
			if rand.IntN(4) == 0 {
				item = "<item jid='" + contact + "' subscription='remove'/>"
			} else {
				name = "n" + strconv.Itoa(rand.IntN(1000))
				item = "<item jid='" + contact + "' name='" + name + "'/>"
			}
			ld.mu.Lock()
			ld.unsure[user][contact] = true
			ld.mu.Unlock()
			st, err := c.iq(ctx, "set", "", "<query xmlns='jabber:iq:roster'>"+item+"</query>")
			if err != nil && name == "" && st != nil && st.condition() == "item-not-found" {
				err = nil // removing a contact that is not there: it is not there
			}
			if err == nil {
				ld.mu.Lock()
				delete(ld.unsure[user], contact)
				if name == "" {
					delete(ld.rosters[user], contact)
				} else {
					ld.rosters[user][contact] = name
				}
				ld.mu.Unlock()
				ld.led.count("roster changes confirmed")
			} else if ctx.Err() == nil {
				ld.led.fail("roster set: " + err.Error())
			}
			show := shows[rand.IntN(len(shows))]
			if show == "" {
				_ = c.write("<presence/>")
			} else {
				_ = c.write("<presence><show>" + show + "</show></presence>")
			}
			ld.led.count("presence changes")
			sleep(ctx, 100*time.Millisecond)
		}
		c.logout()
	}
}

// checkRosters compares each roster the server has with what it confirmed.
func (ld *load) checkRosters(ctx context.Context) []string {
	var bad []string
	ld.mu.Lock()
	defer ld.mu.Unlock()
	for user, want := range ld.rosters {
		c, err := login(ctx, ld.srv.addr, user, password, nil)
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s: %v", user, err))
			continue
		}
		st, err := c.iq(ctx, "get", "", "<query xmlns='jabber:iq:roster'/>")
		c.logout()
		if err != nil || st.Roster == nil {
			bad = append(bad, fmt.Sprintf("%s: roster get: %v", user, err))
			continue
		}
		got := map[string]string{}
		for _, it := range st.Roster.Items {
			got[it.JID] = it.Name
		}
		for contact, name := range want {
			if ld.unsure[user][contact] {
				continue
			}
			if g, ok := got[contact]; !ok || g != name {
				bad = append(bad, fmt.Sprintf("%s: contact %s: want name %q, server has %q (present %v)", user, contact, name, g, ok))
			}
		}
		for contact := range got {
			if _, ok := want[contact]; !ok && !ld.unsure[user][contact] {
				bad = append(bad, fmt.Sprintf("%s: contact %s was removed but the server has it", user, contact))
			}
		}
	}
	return bad
}

const wizard = "urn:adhocd:demo:wizard"

// commands runs the demo wizard's flow again and again, abandoning every
// third after its second stage, and times every round trip.
func (ld *load) commands(ctx context.Context, i int) {
	for ctx.Err() == nil {
		c, err := ld.online(ctx, "cmd"+strconv.Itoa(i), ld.receiver(nil))
		if err != nil {
			return
		}
		for n := 0; ctx.Err() == nil && !c.failed() && n < 200; n++ {
			if err := ld.flow(ctx, c, n%3 == 2); err != nil && ctx.Err() == nil {
				ld.led.fail("command flow: " + err.Error())
			}
			sleep(ctx, 30*time.Millisecond)
		}
		c.logout()
	}
}

func (ld *load) flow(ctx context.Context, c *client, abandon bool) error {
	run := func(body string) (*stanza, error) {
		t := time.Now()
		st, err := c.iq(ctx, "set", "localhost", body)
		if err == nil {
			ld.led.cmd(time.Since(t))
		}
		return st, err
	}
	st, err := run("<command xmlns='http://jabber.org/protocol/commands' node='" + wizard + "' action='execute'/>")
	if err != nil {
		return err
	}
	if st.Command == nil || st.Command.SessionID == "" {
		return fmt.Errorf("soak: execute: no session")
	}
	sid := st.Command.SessionID
	stage := func(action string, kv ...string) (*stanza, error) {
		var b strings.Builder
		b.WriteString("<command xmlns='http://jabber.org/protocol/commands' node='" + wizard + "' sessionid='" + sid + "' action='" + action + "'><x xmlns='jabber:x:data' type='submit'>")
		for j := 0; j+1 < len(kv); j += 2 {
			b.WriteString("<field var='" + kv[j] + "'><value>" + kv[j+1] + "</value></field>")
		}
		b.WriteString("</x></command>")
		return run(b.String())
	}
	if _, err := stage("next", "name", "Ann", "color", "red"); err != nil {
		return err
	}
	if abandon {
		ld.led.count("command flows abandoned")
		return nil
	}
	if _, err := stage("next", "contact", "a@localhost"); err != nil {
		return err
	}
	st, err = stage("complete", "comment", "ok")
	if err != nil {
		return err
	}
	if st.Command == nil || st.Command.Status != "completed" {
		return fmt.Errorf("soak: complete: not completed")
	}
	ld.led.count("command flows completed")
	return nil
}

// churn logs in, sends presence and logs out, again and again.
func (ld *load) churn(ctx context.Context, i int) {
	for ctx.Err() == nil {
		c, err := ld.online(ctx, "churn"+strconv.Itoa(i), ld.receiver(nil))
		if err != nil {
			return
		}
		ld.led.count("logins")
		_ = c.ping(ctx)
		if rand.IntN(5) == 0 {
			c.drop() // gone without closing the stream
		} else {
			c.logout()
		}
		sleep(ctx, 100*time.Millisecond)
	}
}

// slow: a reader that stops reading for 8 s out of every 16 while its
// feeder sends it 2 KiB messages 20 times a second (320 KiB held by the
// server per pause, under limits.max_outbound_bytes). The reader logs in
// again every minute; the feeder stays, so that the server's answers for
// what it could not deliver (an error, once the offline store is full)
// reach it, however late the server finds the old connection dead.
func (ld *load) slow(ctx context.Context, i int) {
	var f *client
	defer func() {
		if f != nil {
			f.logout()
		}
	}()
	for ctx.Err() == nil {
		if f == nil || f.failed() {
			var err error
			if f, err = ld.online(ctx, "feed"+strconv.Itoa(i), ld.receiver(nil)); err != nil {
				return
			}
		}
		r, err := ld.online(ctx, "slow"+strconv.Itoa(i), ld.receiver(nil))
		if err != nil {
			return
		}
		// A small receive buffer keeps the backlog in the server's outbound
		// queue rather than in this kernel's socket buffer.
		if tc, ok := r.nc.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(ld.rcvbuf)
		}
		start := time.Now()
		for ctx.Err() == nil && !r.failed() && !f.failed() && time.Since(start) < time.Minute {
			r.paused.Store(time.Since(start)%(16*time.Second) >= 8*time.Second)
			id := ld.led.add("slow", r.jid, !ld.chaos)
			if err := f.message(r.jid, id, "slow "+id+" "+strings.Repeat("s", 2048)); err != nil {
				break
			}
			sleep(ctx, 50*time.Millisecond)
		}
		if r.failed() && ctx.Err() == nil {
			ld.led.count("slow reader disconnected by the server")
		}
		r.logout()
	}
	// The last answers for the last reader.
	sleep(context.Background(), 5*time.Second)
}

// flooder sends small messages to sink as fast as rate allows, in bursts of
// a tenth of a second; they are counted, not tracked.
func (ld *load) flooder(ctx context.Context, rate int) {
	sinkOn := func(c *client, st *stanza) {
		if st.XMLName.Local == "message" && strings.HasPrefix(st.Body, "flood") {
			ld.flood.received.Add(1)
		}
	}
	floodOn := func(c *client, st *stanza) {
		if st.Type == "error" {
			ld.flood.errors.Add(1)
		}
	}
	for ctx.Err() == nil {
		sink, err := ld.online(ctx, "sink", sinkOn)
		if err != nil {
			return
		}
		f, err := ld.online(ctx, "flood", floodOn)
		if err != nil {
			sink.drop()
			return
		}
		var b strings.Builder
		for ctx.Err() == nil && !f.failed() && !sink.failed() {
			t := time.Now()
			b.Reset()
			for j := 0; j < rate/10; j++ {
				b.WriteString("<message type='chat' to='sink@localhost'><body>flood</body></message>")
			}
			if f.write(b.String()) != nil {
				break
			}
			ld.flood.sent.Add(int64(rate / 10))
			sleep(ctx, 100*time.Millisecond-time.Since(t))
		}
		if ctx.Err() == nil {
			ld.led.count("flood connection lost")
		}
		f.logout()
		sleep(context.Background(), time.Second)
		sink.logout()
	}
}

// creator makes an account through the control socket every 2 s (chaos).
func (ld *load) creator(ctx context.Context) {
	for n := 0; ctx.Err() == nil; n++ {
		user := "made" + strconv.Itoa(n)
		if err := ld.srv.addUser(ctx, user, password); err == nil {
			ld.mu.Lock()
			ld.created = append(ld.created, user)
			ld.mu.Unlock()
		} else if ctx.Err() == nil {
			ld.led.fail("account creation (server down?)")
		}
		sleep(ctx, 2*time.Second)
	}
}
