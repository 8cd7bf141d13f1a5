package muc

import (
	"context"
	"encoding/xml"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/modules"
	"github.com/adhocd/adhocd/wire"
)

// The waiting of forwarded requests, on the fake clock of a synctest
// bubble: the module runs on a host that records what it sends.

// sentHost is a modules.Host whose Send records the stanza; the rest of
// the Host is nil, which these tests do not reach.
type sentHost struct {
	modules.Host
	mu   sync.Mutex
	sent []*wire.Element
}

func (h *sentHost) Send(_ context.Context, r xml.TokenReader) error {
	buf := &wire.TokenBuffer{}
	if _, err := xmlstream.Copy(buf, r); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sent = append(h.sent, buf.Elements()...)
	return nil
}

// take returns and forgets what was sent.
func (h *sentHost) take() []*wire.Element {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := h.sent
	h.sent = nil
	return out
}

// forwardRoom is a module on a sentHost with room r@conference.localhost
// whose occupants are the given full JIDs, each under its localpart.
func forwardRoom(t *testing.T, users ...string) (*Module, *sentHost) {
	t.Helper()
	h := &sentHost{}
	m := New(Options{})
	m.opts.setDefaults("localhost")
	m.h, m.log, m.domain = h, slog.New(slog.DiscardHandler), jid.MustParse("conference.localhost")
	m.key = make([]byte, 32)
	m.rooms, m.created = map[string]*room{}, map[string]int{}
	r, _, err := m.open("r", jid.MustParse(users[0]))
	if err != nil {
		t.Fatal(err)
	}
	r.Locked = false
	for _, u := range users {
		j := jid.MustParse(u)
		r.addOccupant(&occupant{nick: j.Localpart(), bare: j.Bare(), role: Participant, sessions: []*occSession{{jid: j}}})
	}
	r.mu.Unlock()
	return m, h
}

// request has from send an IQ get with id to nick in room r, and returns
// what the module answered with (nil when it passed the request on).
func request(m *Module, from, id, nick string) error {
	el, ok := wire.ParseElement(`<iq xmlns='jabber:client' type='get' id='` + id + `' to='r@conference.localhost/` + nick + `'><query xmlns='jabber:iq:version'/></iq>`)
	if !ok {
		panic("unparsable request")
	}
	return m.HandleStanza(context.Background(), jid.MustParse(from), el, jid.MustParse("r@conference.localhost/"+nick))
}

// answerFrom has from send the result of id to the room JID via.
func answerFrom(m *Module, from, id, via string) {
	el, ok := wire.ParseElement(`<iq xmlns='jabber:client' type='result' id='` + id + `' to='` + via + `'/>`)
	if !ok {
		panic("unparsable answer")
	}
	_ = m.HandleStanza(context.Background(), jid.MustParse(from), el, jid.MustParse(via))
}

// TestForwardTimeout: a request without an answer is answered
// recipient-unavailable from the occupant's room JID once forwardTimeout
// has passed, not before, and a late answer is then dropped.
func TestForwardTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, h := forwardRoom(t, "alice@localhost/laptop", "bob@localhost/phone")
		if err := request(m, "alice@localhost/laptop", "v1", "bob"); err != nil {
			t.Fatal(err)
		}
		sent := h.take()
		if len(sent) != 1 || sent[0].Attr("to") != "bob@localhost/phone" || sent[0].Attr("from") != "r@conference.localhost/alice" {
			t.Fatalf("forwarded %d stanzas: %+v", len(sent), sent)
		}
		id := sent[0].Attr("id")

		time.Sleep(forwardTimeout - time.Millisecond)
		synctest.Wait()
		if got := h.take(); len(got) != 0 || m.fwd.waiting() != 1 {
			t.Fatalf("before the timeout: sent %d, %d waiting", len(got), m.fwd.waiting())
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		got := h.take()
		if len(got) != 1 {
			t.Fatalf("at the timeout: sent %d stanzas", len(got))
		}
		e := got[0]
		cond := e.Sub(xml.Name{Space: stanza.NSClient, Local: "error"})
		if e.Attr("type") != "error" || e.Attr("id") != "v1" || e.Attr("to") != "alice@localhost/laptop" || e.Attr("from") != "r@conference.localhost/bob" ||
			cond == nil || cond.Attr("type") != "wait" || cond.Sub(xml.Name{Space: nsStanzas, Local: string(stanza.RecipientUnavailable)}) == nil {
			t.Fatalf("timeout answer %s", wire.SerializeElement(e, 1<<16))
		}
		answerFrom(m, "bob@localhost/phone", id, "r@conference.localhost/alice")
		if got := h.take(); len(got) != 0 || m.fwd.waiting() != 0 {
			t.Fatalf("a late answer: sent %d, %d waiting", len(got), m.fwd.waiting())
		}
	})
}

// nsStanzas is the namespace of stanza error conditions.
const nsStanzas = "urn:ietf:params:xml:ns:xmpp-stanzas"

// TestForwardBounds: one user has at most maxForwardsPerUser requests
// waiting (the next is refused resource-constraint and not sent), another
// user is not held back by that, and an answer makes room again.
func TestForwardBounds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, h := forwardRoom(t, "alice@localhost/laptop", "bob@localhost/phone", "carol@localhost/pc")
		for i := range maxForwardsPerUser {
			if err := request(m, "alice@localhost/laptop", "a"+strconv.Itoa(i), "bob"); err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
		}
		sent := h.take()
		if len(sent) != maxForwardsPerUser {
			t.Fatalf("%d forwarded, want %d", len(sent), maxForwardsPerUser)
		}
		var se stanza.Error
		if err := request(m, "alice@localhost/laptop", "over", "bob"); !asStanzaError(err, &se) || se.Condition != stanza.ResourceConstraint {
			t.Fatalf("one request too many: %v", err)
		}
		if got := h.take(); len(got) != 0 {
			t.Fatalf("the refused request was sent: %+v", got)
		}
		if err := request(m, "carol@localhost/pc", "c1", "bob"); err != nil {
			t.Fatalf("carol's request: %v", err)
		}
		h.take()
		answerFrom(m, "bob@localhost/phone", sent[0].Attr("id"), "r@conference.localhost/alice")
		if got := h.take(); len(got) != 1 || got[0].Attr("id") != "a0" {
			t.Fatalf("the answer relayed as %+v", got)
		}
		if err := request(m, "alice@localhost/laptop", "again", "bob"); err != nil {
			t.Fatalf("after an answer: %v", err)
		}
		// The bubble ends once every request has timed out.
		time.Sleep(forwardTimeout)
		synctest.Wait()
		if n := m.fwd.waiting(); n != 0 {
			t.Fatalf("%d still waiting after the timeout", n)
		}
	})
}

func asStanzaError(err error, se *stanza.Error) bool {
	e, ok := err.(stanza.Error)
	if ok {
		*se = e
	}
	return ok
}
