package muc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/modules"
	"github.com/adhocd/adhocd/wire"
)

// IQ requests to occupants (XEP-0045 §7.5 lets a service pass them on, as
// Prosody does): an occupant sends a request to another's room JID, the
// room sends it on from the sender's own room JID to the real JID of the
// target's latest session, under an id of the room's, and relays the
// answer from the room JID the request was addressed to, under the
// requester's id. Neither learns the other's real JID. A request waits
// for its answer at most forwardTimeout (then the requester is answered
// recipient-unavailable), and only so many wait at once. An answer counts
// only from the session the request went to, to the room JID it came
// from; any other is dropped, as RFC 6120 §8.3.1 forbids answering an
// answer.
//
// Requests for a vCard or a PEP node go to the user's bare JID instead,
// as Prosody sends them: the server answers those on the account's behalf
// through the module that serves them, with the requester's room JID as
// the requester.

// Bounds of forwarded requests.
const (
	// maxForwards bounds the requests of the service waiting for an
	// answer, maxForwardsPerUser those of one requesting user; past
	// either a request is refused with resource-constraint.
	maxForwards        = 1000
	maxForwardsPerUser = 20
	// forwardTimeout is how long a forwarded request waits.
	forwardTimeout = 30 * time.Second
)

// toAccount are the payload namespaces of requests to an occupant that go
// to the user's bare JID, and the module that answers them there.
var toAccount = map[string]string{
	"vcard-temp":                        "vcard",
	"http://jabber.org/protocol/pubsub": "pep",
}

// forwards is the requests waiting for an occupant's answer, by the id
// the room gave them.
type forwards struct {
	mu      sync.Mutex
	pending map[string]*forwarded
	// perUser counts the pending requests of each requesting bare JID.
	perUser map[string]int
}

// forwarded is one request waiting for its answer.
type forwarded struct {
	// requester is the real full JID that asked, id the id it gave.
	requester jid.JID
	id        string
	// via is the requester's room JID, from which the request went and
	// to which the answer comes; target the room JID it was addressed
	// to, from which the answer goes.
	via, target string
	// asked is the real full JID of the session the request went to.
	asked jid.JID
	timer *time.Timer
}

// add records f under a new id, unless a bound is reached; expire runs
// with the id once forwardTimeout has passed.
func (fw *forwards) add(f *forwarded, expire func(id string)) (string, error) {
	var b [12]byte
	_, _ = rand.Read(b[:])
	id := "muc-" + hex.EncodeToString(b[:])
	user := f.requester.Bare().String()
	fw.mu.Lock()
	defer fw.mu.Unlock()
	switch {
	case len(fw.pending) >= maxForwards:
		return "", modules.StanzaError(stanza.Wait, stanza.ResourceConstraint, "the service has too many requests to occupants waiting for an answer")
	case fw.perUser[user] >= maxForwardsPerUser:
		return "", modules.StanzaError(stanza.Wait, stanza.ResourceConstraint,
			fmt.Sprintf("you have %d requests to occupants waiting for an answer already", maxForwardsPerUser))
	}
	if fw.pending == nil {
		fw.pending, fw.perUser = map[string]*forwarded{}, map[string]int{}
	}
	fw.pending[id] = f
	fw.perUser[user]++
	f.timer = time.AfterFunc(forwardTimeout, func() { expire(id) })
	return id, nil
}

// take removes and returns the request of id when match accepts it (nil
// accepts any); nil when there is none.
func (fw *forwards) take(id string, match func(*forwarded) bool) *forwarded {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	f := fw.pending[id]
	if f == nil || (match != nil && !match(f)) {
		return nil
	}
	delete(fw.pending, id)
	user := f.requester.Bare().String()
	if fw.perUser[user]--; fw.perUser[user] <= 0 {
		delete(fw.perUser, user)
	}
	return f
}

// waiting is how many requests wait for an answer.
func (fw *forwards) waiting() int {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	return len(fw.pending)
}

// occupantIQ handles a request to an occupant's room JID: the XEP-0410
// self-ping, which the room answers itself for a session that is in the
// room under that nickname, or a request passed on to the occupant. The
// sender must be in the room (not-acceptable, which also tells a
// self-pinging client to join again) and the nickname an occupant's
// (item-not-found).
func (m *Module) occupantIQ(ctx context.Context, from jid.JID, el, q *wire.Element, to jid.JID) error {
	r := m.lookup(to.Localpart())
	if r == nil {
		return notOccupant
	}
	// What the request needs of the room is read under its lock; the
	// request itself is passed on without it.
	o := r.occupantOf(from)
	target := r.occupants[to.Resourcepart()]
	var via string
	var asked jid.JID
	if o != nil {
		via = occupantJID(r, o.nick)
	}
	if target != nil {
		asked = target.primary().jid
	}
	r.mu.Unlock()
	typ := el.Attr("type")
	switch {
	case o == nil:
		return notOccupant
	case typ == "get" && q.Start.Name.Space == nsPing && q.Start.Name.Local == "ping" && via == to.String():
		m.send(ctx, stanzaOf("iq", to.String(), from.String(), "result", el.Attr("id")))
		return nil
	case target == nil:
		return modules.StanzaError(stanza.Cancel, stanza.ItemNotFound, "no occupant has that nickname")
	}
	if module, ok := toAccount[q.Start.Name.Space]; ok {
		return m.askAccount(ctx, from, via, el, q, to, asked.Bare(), module)
	}
	f := &forwarded{requester: from, id: el.Attr("id"), via: via, target: to.String(), asked: asked}
	id, err := m.fwd.add(f, m.expire)
	if err != nil {
		return err
	}
	req := stanzaOf("iq", via, asked.String(), typ, id)
	if lang := langOf(el.Start); lang != "" {
		req.Attr = append(req.Attr, xmlLang(lang))
	}
	req.Raw = el.Inner
	if err := m.h.Send(ctx, req.Reader()); err != nil {
		// The session went away meanwhile (service-unavailable).
		if f := m.fwd.take(id, nil); f != nil {
			f.timer.Stop()
		}
		var se stanza.Error
		if errors.As(err, &se) {
			return se
		}
		return fmt.Errorf("muc: forward to an occupant: %w", err)
	}
	return nil
}

// forwardAnswer relays an occupant's answer (an IQ result or error that
// from sent to to, a room JID) to the request it answers, or drops it.
func (m *Module) forwardAnswer(ctx context.Context, from jid.JID, el *wire.Element, to jid.JID) {
	f := m.fwd.take(el.Attr("id"), func(f *forwarded) bool { return f.asked.Equal(from) && f.via == to.String() })
	if f == nil {
		return
	}
	f.timer.Stop()
	a := stanzaOf("iq", f.target, f.requester.String(), el.Attr("type"), f.id)
	a.Raw = el.Inner
	m.send(ctx, a)
}

// expire answers the request of id, which got no answer in time, with
// recipient-unavailable.
func (m *Module) expire(id string) {
	f := m.fwd.take(id, nil)
	if f == nil {
		return
	}
	se := modules.StanzaError(stanza.Wait, stanza.RecipientUnavailable, fmt.Sprintf("the occupant did not answer within %s", forwardTimeout))
	e, err := readNode(se.TokenReader())
	if err != nil {
		m.log.Debug("muc: render a timeout", "err", err)
		return
	}
	if e.Name.Space == "" {
		e.Name.Space = stanza.NSClient
	}
	m.send(context.Background(), stanzaOf("iq", f.target, f.requester.String(), "error", f.id).Add(e))
}

// askAccount has the server answer a request to an occupant that goes to
// the user's bare JID (toAccount): the module named module answers it, as
// it answers requests to a local bare JID, with the requester's room JID
// via as the requester; the answer goes from to, the room JID asked.
func (m *Module) askAccount(ctx context.Context, from jid.JID, via string, el, q *wire.Element, to, bare jid.JID, module string) error {
	typ := stanza.IQType(el.Attr("type"))
	h := m.accountHandler(module, modules.Route{Type: typ, Payload: q.Start.Name})
	if h == nil {
		return unsupported
	}
	requester, err := jid.Parse(via)
	if err != nil {
		return fmt.Errorf("muc: room JID %q: %w", via, err)
	}
	iq := modules.IQ{
		IQ:      stanza.IQ{XMLName: el.Start.Name, ID: el.Attr("id"), Type: typ, From: requester, To: bare, Lang: langOf(el.Start)},
		Payload: q.Start, Inner: q.Inner,
	}
	resp, err := h.HandleIQ(ctx, iq)
	if err != nil {
		return err
	}
	reply := stanzaOf("iq", to.String(), from.String(), "result", el.Attr("id"))
	if resp != nil {
		n, err := readNode(resp)
		if err != nil {
			return fmt.Errorf("muc: %s answer: %w", module, err)
		}
		reply = reply.Add(n)
	}
	m.send(ctx, reply)
	return nil
}

// accountHandler is the started module named name when it answers route
// at local bare JIDs (modules.BareJIDIQHandler), or nil.
func (m *Module) accountHandler(name string, route modules.Route) modules.BareJIDIQHandler {
	finder, ok := m.h.(modules.ModuleFinder)
	if !ok {
		return nil
	}
	mod, ok := finder.Module(name)
	if !ok {
		return nil
	}
	h, ok := mod.(modules.BareJIDIQHandler)
	if !ok {
		return nil
	}
	for _, r := range h.BareJIDRoutes() {
		if r == route {
			return h
		}
	}
	return nil
}
