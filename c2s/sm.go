package c2s

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"mellium.im/xmpp/stanza"
	"mellium.im/xmpp/stream"

	"github.com/adhocd/adhocd/wire"
)

// XEP-0198 Stream Management (version 1.6.1), urn:xmpp:sm:3. Once a bound
// client enables it, both sides count the stanzas they handle: the client
// answers the server's <r/> with <a h/>, the number of stanzas it has
// received, and the server keeps every stanza it wrote until the client has
// acknowledged it. What the client never acknowledged is not lost when its
// connection goes: it is handed to the router as undeliverable (messages
// with a body to the account's other resources or to offline storage), as
// what was queued and never written is.
//
// With resumption (<enable resume='true'/>, limits.sm.resume_timeout) a
// connection that breaks (a reset, a timeout, an end without the client's
// closing tag) leaves its session bound, hibernating: stanzas for it wait in
// its queue. A new stream of the same account that sends <resume previd h/>
// within the timeout takes the session over: the Conn of the session keeps
// its router side, its counts and its queue, and gets the new connection;
// the stanzas the client had not received are written again, then the
// queue. Past the timeout the session ends as if its connection had just
// closed. A client that closes its stream, or that the server closes (a
// conflict, an administrator, a stream error), does not hibernate.

// NSSM is the namespace of stream management.
const NSSM = "urn:xmpp:sm:3"

// smRequestAfter is how many unacknowledged stanzas make the server ask the
// client for an acknowledgement.
const smRequestAfter = 5

// smState is a stream's stream management; qmu guards it.
type smState struct {
	on bool
	id string // the resumption id; "" when not resumable
	// in counts the stanzas the client sent and the server handled, from
	// its <enable/> on: the stream's reader alone touches it (a resume reads
	// it once the old reader has stopped), qmu is not needed. out counts
	// those written to the client. unacked are the stanzas written and not
	// yet acknowledged, oldest first: the client's last h is
	// out-len(unacked).
	in, out uint32
	unacked []*wire.Element
	asked   bool // an <r/> is outstanding
	// inflight counts the stanzas of the batch being written, which a
	// client may read and acknowledge before the write returns and
	// smWritten counts them; early counts those it did (smAck), which
	// smWritten then counts as written and acknowledged at once.
	inflight, early uint32

	hibernating bool
	timer       *time.Timer
	// slept is closed once the stream hibernates: a resume that finds
	// the old stream still reading waits for it.
	slept chan struct{}
}

// smRegistry holds the resumable streams by id; its zero value is ready.
type smRegistry struct {
	mu   sync.Mutex
	byID map[string]*Conn
}

func (r *smRegistry) add(id string, c *Conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byID == nil {
		r.byID = make(map[string]*Conn)
	}
	r.byID[id] = c
}

func (r *smRegistry) get(id string) *Conn {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.byID[id]
}

func (r *smRegistry) remove(id string, c *Conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byID[id] == c {
		delete(r.byID, id)
	}
}

// EndHibernating ends every session that waits for its client to resume
// it, as its timeout would: what it was never sent and never acknowledged
// goes back to the router (to offline storage). The server calls it as it
// shuts down, before its store closes: a hibernating session has no
// connection for the shutdown to close.
func (e *Env) EndHibernating() {
	e.sm.mu.Lock()
	conns := make([]*Conn, 0, len(e.sm.byID))
	for _, c := range e.sm.byID {
		conns = append(conns, c)
	}
	e.sm.mu.Unlock()
	for _, c := range conns {
		c.expire()
	}
}

// smFailed is <failed/> with a stanza error condition.
func smFailed(cond stanza.Condition, h string) string {
	attr := ""
	if h != "" {
		attr = ` h='` + h + `'`
	}
	return `<failed xmlns='` + NSSM + `'` + attr + `><` + string(cond) + ` xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>`
}

// smElement handles a stream management element of a bound stream.
func (c *Conn) smElement(el *wire.Element) error {
	switch el.Start.Name.Local {
	case "enable":
		return c.smEnable(el)
	case "r":
		c.qmu.Lock()
		on := c.sm.on || c.smEnabling
		c.qmu.Unlock()
		h := c.sm.in
		if !on {
			return c.writeRaw(smFailed(stanza.UnexpectedRequest, ""))
		}
		return c.writeRaw(`<a xmlns='` + NSSM + `' h='` + strconv.FormatUint(uint64(h), 10) + `'/>`)
	case "a":
		h, err := strconv.ParseUint(el.Attr("h"), 10, 32)
		if err != nil {
			return wire.StreamError(stream.BadFormat, "<a/> carries h, a 32-bit count")
		}
		return c.smAck(uint32(h))
	case "resume":
		c.smResumeFailed("unexpected")
		return c.writeRaw(smFailed(stanza.UnexpectedRequest, ""))
	}
	return wire.StreamError(stream.UnsupportedStanzaType, "unexpected element <"+el.Start.Name.Local+"/> of stream management")
}

// smAck drops what the client acknowledged. An acknowledgement of more
// than was sent is a stream error (XEP-0198 §4, handled-count-too-high).
func (c *Conn) smAck(h uint32) error {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	if !c.sm.on {
		return nil
	}
	acked := c.sm.out - uint32(len(c.sm.unacked)) + c.sm.early
	n := h - acked // modulo 2^32, as XEP-0198 §5 counts
	// What is being written counts as sent: the client may have read it
	// before the write returned.
	if int64(n) > int64(len(c.sm.unacked))+int64(c.sm.inflight)-int64(c.sm.early) {
		return wire.StreamError(stream.UndefinedCondition, fmt.Sprintf("handled-count-too-high: acknowledged %d stanzas, %d were sent", h, c.sm.out+c.sm.inflight-c.sm.early))
	}
	dropped := min(n, uint32(len(c.sm.unacked)))
	clear(c.sm.unacked[:dropped])
	c.sm.unacked = c.sm.unacked[dropped:]
	c.sm.early += n - dropped
	c.sm.asked = false
	return nil
}

// smEnable turns stream management on (XEP-0198 §3). The <enabled/> goes
// through the outbound queue, and counting starts when it is written, so
// that the client and the server count the same stanzas.
func (c *Conn) smEnable(el *wire.Element) error {
	l := c.env.Limits().SM
	c.qmu.Lock()
	if c.sm.on || c.smEnabling {
		c.qmu.Unlock()
		return c.writeRaw(smFailed(stanza.UnexpectedRequest, ""))
	}
	c.smEnabling = true
	c.qmu.Unlock()
	c.sm.in = 0
	reply := &wire.Element{Start: xml.StartElement{Name: xml.Name{Space: NSSM, Local: "enabled"}}}
	if r := el.Attr("resume"); (r == "true" || r == "1") && l.ResumeTimeout > 0 {
		id := NewID()
		reply.SetAttr("id", id)
		reply.SetAttr("resume", "true")
		reply.SetAttr("max", strconv.Itoa(int(l.ResumeTimeout.D()/time.Second)))
		c.qmu.Lock()
		c.sm.id = id
		c.sm.slept = make(chan struct{})
		c.qmu.Unlock()
		c.env.sm.add(id, c)
	}
	if err := c.enqueueItem(outItem{el: reply, nonza: true, enable: true}, true); err != nil {
		return err
	}
	if o, ok := c.env.Observer.(SMObserver); ok {
		o.SMEnabled()
	}
	return nil
}

// smResumeFailed counts a <failed/> answer to <resume/> (SMObserver).
func (c *Conn) smResumeFailed(reason string) {
	if o, ok := c.env.Observer.(SMObserver); ok {
		o.SMResumeFailed(reason)
	}
}

// smWritten counts stanzas just written (qmu held) and reports whether the
// client should be asked for an acknowledgement.
func (c *Conn) smWritten(it outItem) {
	if it.nonza {
		if it.enable {
			c.sm.on = true
		}
		return
	}
	if !c.sm.on {
		return
	}
	c.sm.out++
	if c.sm.early > 0 {
		c.sm.early--
		return
	}
	c.sm.unacked = append(c.sm.unacked, it.el)
}

// smInflight counts the stanzas of batch that smWritten will count once
// written: those after stream management is on, or after the <enabled/>
// of the batch turns it on. It runs under qmu as the batch is taken.
func (c *Conn) smInflight(batch []outItem) uint32 {
	on, n := c.sm.on, uint32(0)
	for _, it := range batch {
		switch {
		case it.nonza && it.enable:
			on = true
		case !it.nonza && on:
			n++
		}
	}
	return n
}

// smAfterBatch asks for an acknowledgement when enough is unacknowledged,
// and closes a client that never acknowledges (limits.sm.max_unacked).
func (c *Conn) smAfterBatch() {
	c.qmu.Lock()
	n, ask := len(c.sm.unacked), c.sm.on && !c.sm.asked && len(c.sm.unacked) >= smRequestAfter
	if ask {
		c.sm.asked = true
	}
	c.qmu.Unlock()
	if max := c.env.Limits().SM.MaxUnacked; n > max {
		c.Close(wire.StreamError(stream.PolicyViolation, fmt.Sprintf("more than %d stanzas not acknowledged (limits.sm.max_unacked)", max)))
		return
	}
	if ask {
		_ = c.writeRaw(`<r xmlns='` + NSSM + `'/>`)
	}
}

// smResumable reports whether the stream would hibernate were its
// connection to break now.
func (c *Conn) smResumable() bool {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	return c.sm.on && c.sm.id != ""
}

// broken reports whether err ended the connection under the client, as a
// network that goes does: not the client's closing tag, not a stream error
// the server sent (other than a timeout), not the server closing it.
func (c *Conn) broken(err error) bool {
	if errors.Is(err, wire.ErrStreamEnd) {
		return false
	}
	c.wmu.Lock()
	byServer := c.serverClosed
	c.wmu.Unlock()
	if byServer {
		return false
	}
	var se stream.Error
	if errors.As(err, &se) {
		return se.Err == stream.ConnectionTimeout.Err
	}
	return true
}

// hibernate keeps the session bound while its client may resume it: the
// transport is gone, stanzas for the session wait in its queue, and after
// limits.sm.resume_timeout the session ends (expire).
func (c *Conn) hibernate() {
	c.closeConn()
	c.releaseAccount()
	c.qmu.Lock()
	c.sm.hibernating = true
	c.sm.timer = time.AfterFunc(c.env.Limits().SM.ResumeTimeout.D(), c.expire)
	slept := c.sm.slept
	c.qmu.Unlock()
	c.log.Info("connection lost: session kept for resumption", "timeout", c.env.Limits().SM.ResumeTimeout.D())
	close(slept)
}

// expire ends a hibernating session: what it was never sent or never
// acknowledged goes back to the router.
func (c *Conn) expire() {
	c.qmu.Lock()
	if !c.sm.hibernating {
		c.qmu.Unlock()
		return
	}
	c.sm.hibernating = false
	if c.sm.timer != nil {
		c.sm.timer.Stop()
	}
	id := c.sm.id
	c.qmu.Unlock()
	c.env.sm.remove(id, c)
	c.log.Info("session not resumed: ended")
	c.endSession()
}

// endSession takes nothing more for the stream, hands back what it was never
// sent and what its client never acknowledged, and leaves the registry.
func (c *Conn) endSession() {
	c.closeQueue()
	c.qmu.Lock()
	unacked := c.sm.unacked
	c.sm.unacked = nil
	id := c.sm.id
	c.qmu.Unlock()
	if id != "" {
		c.env.sm.remove(id, c)
	}
	// What was never acknowledged is answered (kept offline, mostly)
	// before the session leaves the registry: a login that sees it gone
	// finds those messages kept.
	if len(unacked) > 0 {
		c.env.Router.Undeliverable(c, unacked)
	}
	if c.state.CompareAndSwap(int32(Bound), int32(Closing)) {
		c.sess.Unbound()
	} else {
		c.setState(Closing)
	}
}

// errResumed is what run returns when the stream resumed another: the
// goroutine goes on serving that one.
type errResumed struct{ old *Conn }

func (errResumed) Error() string { return "c2s: the stream resumed a session" }

// resume takes over a hibernating session of the same account (XEP-0198
// §5): an unknown id, another account's or an expired one is <failed/> with
// item-not-found, after which the client may bind as usual.
func (c *Conn) resume(ctx context.Context, el *wire.Element) error {
	h64, err := strconv.ParseUint(el.Attr("h"), 10, 32)
	if err != nil || el.Attr("previd") == "" {
		c.smResumeFailed("bad-request")
		return c.writeRaw(smFailed(stanza.BadRequest, ""))
	}
	old := c.env.sm.get(el.Attr("previd"))
	if old == nil || old.user != c.user {
		c.smResumeFailed("unknown")
		return c.writeRaw(smFailed(stanza.ItemNotFound, ""))
	}
	// The old connection may still look alive to the server (the client
	// found out first): it is closed, and it hibernates.
	old.qmu.Lock()
	sleeping, slept := old.sm.hibernating, old.sm.slept
	old.qmu.Unlock()
	if !sleeping {
		_ = old.raw.Close()
		select {
		case <-slept:
		case <-time.After(5 * time.Second):
			c.smResumeFailed("timeout")
			return c.writeRaw(smFailed(stanza.ItemNotFound, ""))
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := old.takeOver(c, uint32(h64)); err != nil {
		return err
	}
	return errResumed{old: old}
}

// takeOver moves the new stream's connection into the hibernating stream c,
// answers <resumed/> and writes again what the client had not received.
func (c *Conn) takeOver(n *Conn, h uint32) error {
	c.qmu.Lock()
	// A writer of the old connection may still be on its way out (it
	// stops at the closed connection and puts back what it held): it is
	// waited for, so that nothing of it is written on the new one.
	for c.q.writing {
		idle := make(chan struct{})
		c.q.idle = idle
		c.qmu.Unlock()
		select {
		case <-idle:
		case <-time.After(5 * time.Second):
			n.smResumeFailed("timeout")
			return n.writeRaw(smFailed(stanza.ItemNotFound, ""))
		}
		c.qmu.Lock()
	}
	if !c.sm.hibernating || c.q.closed || c.State() != Bound {
		c.qmu.Unlock()
		n.smResumeFailed("expired")
		return n.writeRaw(smFailed(stanza.ItemNotFound, ""))
	}
	acked := c.sm.out - uint32(len(c.sm.unacked))
	k := h - acked
	if int64(k) > int64(len(c.sm.unacked)) {
		c.qmu.Unlock()
		n.smResumeFailed("too-high")
		return n.writeRaw(smFailed(stanza.UnexpectedRequest, strconv.FormatUint(uint64(c.sm.in), 10)))
	}
	c.sm.hibernating = false
	c.sm.timer.Stop()
	c.sm.slept = make(chan struct{})
	resend := c.sm.unacked[k:]
	c.sm.unacked = nil
	c.sm.out = h
	c.sm.asked = false
	in := c.sm.in
	// What waits is written anew over the new connection: the stanzas
	// not received first, then the queue, each encoded again (the new
	// stream may be framed differently).
	queued := c.q.take()
	c.q.done(queued)
	c.q.writing = true
	c.qmu.Unlock()

	c.wmu.Lock()
	c.raw, c.nc, c.tls, c.dec, c.read, c.ws = n.raw, n.nc, n.tls, n.dec, n.read, n.ws
	c.closed, c.serverClosed, c.outOpen, c.wdSet = false, false, true, time.Time{}
	c.wmu.Unlock()
	c.log = c.env.Log.With("remote", c.raw.RemoteAddr().String(), "jid", c.addr.String())
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if c.pacer != nil {
		c.pacer.read, c.pacer.charged = c.read, c.read.n.Load()
		c.pacer.account = c.env.accounts.acquire(c.user)
	}
	c.log.Info("session resumed", "resent", len(resend), "queued", len(queued))
	if o, ok := c.env.Observer.(SMObserver); ok {
		o.SMResumed()
	}
	err := c.writeRaw(`<resumed xmlns='` + NSSM + `' previd='` + c.sm.id + `' h='` + strconv.FormatUint(uint64(in), 10) + `'/>`)
	items := make([]outItem, 0, len(resend)+len(queued))
	for _, el := range resend {
		items = append(items, outItem{el: el})
	}
	for _, it := range queued {
		it.out.Release()
		items = append(items, outItem{el: it.el, nonza: it.nonza, enable: it.enable})
	}
	for _, it := range items {
		it.out = wire.NewOutput()
		if eerr := it.out.EncodeElement(it.el, c.rootNS()); eerr != nil {
			it.out.Release()
			continue
		}
		c.qmu.Lock()
		c.q.items = append(c.q.items, it)
		c.q.bytes += it.out.Len()
		c.qmu.Unlock()
	}
	go c.drain()
	return err
}

// serveResumed runs a resumed session's stream in the goroutine of the
// stream that resumed it, until it ends or breaks again.
func (c *Conn) serveResumed() {
	defer c.cancel()
	err := c.serveBound(c.ctx)
	c.finish(err)
}

// releaseAccount gives back the account's share of limits.rate.
func (c *Conn) releaseAccount() {
	if c.pacer != nil && c.pacer.account != nil {
		c.env.accounts.release(c.user, c.pacer.account)
		c.pacer.account = nil
	}
}
