package csi

import (
	"context"
	"encoding/xml"
	"sync"
	"time"

	"github.com/adhocd/adhocd/modules"
	"github.com/adhocd/adhocd/wire"
)

const nsDelay = "urn:xmpp:delay"

// state is one session's client state and what is held for it. InterceptOut
// runs in the senders' goroutines, any number at once, and must not block:
// mu guards the fields and is never held across a delivery.
//
// Held stanzas go out through modules.Session.Deliver, which runs the
// interceptors again, this one included: the copies on their way out are in
// releasing, and InterceptOut lets them pass. One goroutine at a time
// delivers (flushing); a stanza that comes meanwhile and must not overtake
// what is held joins the queue, and the goroutine that delivers takes it
// too before it stops.
type state struct {
	mu       sync.Mutex
	inactive bool
	flushing bool
	// held is in the order the stanzas came; a stanza collapsed away by a
	// newer one leaves a zero entry. live counts the others.
	held []entry
	live int
	// last is, per collapse key, the index in held of its newest stanza.
	last map[collapseKey]int
	// releasing holds the stanzas being delivered by the flushing goroutine.
	releasing map[*wire.Element]struct{}
}

// entry is one stanza waiting.
type entry struct {
	el *wire.Element
	// since is when it was held; zero for a stanza that only waited for a
	// flush to end, which gets no delay stamp.
	since time.Time
	// key is what it collapses with.
	key collapseKey
}

func newState() *state {
	return &state{last: make(map[collapseKey]int), releasing: make(map[*wire.Element]struct{})}
}

func (st *state) setInactive() {
	st.mu.Lock()
	st.inactive = true
	st.mu.Unlock()
}

// activate ends holding and delivers what is held, unless another
// goroutine is delivering it already; domain is the server's JID.
func (st *state) activate(s modules.Session, domain string) {
	st.mu.Lock()
	st.inactive = false
	if st.flushing || st.live == 0 {
		st.mu.Unlock()
		return
	}
	st.flushing = true
	st.mu.Unlock()
	st.drain(s, domain)
}

// out decides for one stanza about to be queued for s: true lets it go on
// its way now, false means it is held (or queued behind what is held, and
// delivered by the goroutine that flushes).
func (st *state) out(m *Module, s modules.Session, el *wire.Element) bool {
	st.mu.Lock()
	if _, ok := st.releasing[el]; ok {
		delete(st.releasing, el)
		st.mu.Unlock()
		return true
	}
	if !st.inactive && !st.flushing {
		// Active with nothing held: the path of every stanza of a
		// session that became active again.
		st.mu.Unlock()
		return true
	}
	urgent, key := classify(el)
	if st.inactive && !urgent {
		if kept, replaced := st.hold(entry{el: el, since: m.now(), key: key}, m.maxHeld); kept {
			st.mu.Unlock()
			ctx := context.Background()
			m.held.Add(ctx, 1)
			if replaced {
				m.collapsed.Add(ctx, 1)
			}
			return false
		}
	}
	if st.flushing {
		if st.live >= m.maxHeld {
			// Past the bound even while another goroutine delivers: this
			// one goes at once rather than grow the queue.
			st.mu.Unlock()
			return true
		}
		st.held = append(st.held, entry{el: el})
		st.live++
		st.mu.Unlock()
		return false
	}
	// Urgent, or the bound is reached: what is held goes first, then this
	// stanza, the router's way.
	st.flushing = true
	st.mu.Unlock()
	st.drain(s, m.domain)
	return true
}

// hold keeps e (the caller holds mu), dropping the stanza it collapses
// (replaced), and reports kept false when the session already holds max
// stanzas and e replaces none of them.
func (st *state) hold(e entry, max int) (kept, replaced bool) {
	i, replaces := -1, false
	if e.key.kind != keepAll {
		i, replaces = st.last[e.key]
	}
	if !replaces && st.live >= max {
		return false, false
	}
	if replaces {
		st.held[i] = entry{}
		st.live--
	}
	st.held = append(st.held, e)
	st.live++
	if e.key.kind != keepAll {
		st.last[e.key] = len(st.held) - 1
	}
	if len(st.held) >= 2*max && len(st.held) >= 2*st.live {
		st.compact()
	}
	return true, replaces
}

// compact removes the entries collapsed away, so that held stays within
// twice the bound.
func (st *state) compact() {
	n := 0
	for _, e := range st.held {
		if e.el != nil {
			st.held[n] = e
			n++
		}
	}
	clear(st.held[n:])
	st.held = st.held[:n]
	clear(st.last)
	for i, e := range st.held {
		if e.key.kind != keepAll {
			st.last[e.key] = i
		}
	}
}

// drain delivers everything held, in order, until nothing is left, and
// then ends the flush (the caller set flushing). domain, the server's
// JID, is the delay stamps' from.
func (st *state) drain(s modules.Session, domain string) {
	for {
		st.mu.Lock()
		if st.live == 0 {
			st.held = st.held[:0]
			clear(st.last)
			st.flushing = false
			st.mu.Unlock()
			return
		}
		batch := make([]*wire.Element, 0, st.live)
		for _, e := range st.held {
			if e.el == nil {
				continue
			}
			out := release(e, domain)
			st.releasing[out] = struct{}{}
			batch = append(batch, out)
		}
		clear(st.held)
		st.held = st.held[:0]
		st.live = 0
		clear(st.last)
		st.mu.Unlock()
		for _, el := range batch {
			s.Deliver(el)
			// Another interceptor may have dropped it before this one saw it.
			st.mu.Lock()
			delete(st.releasing, el)
			st.mu.Unlock()
		}
	}
}

// release is the stanza to deliver for e: a copy of its own (the original
// is shared with other recipients, and releasing knows it by its address),
// with a XEP-0203 delay stamped when it was held.
func release(e entry, domain string) *wire.Element {
	out := &wire.Element{Start: e.el.Start, Inner: e.el.Inner}
	if e.since.IsZero() || e.el.Sub(xml.Name{Space: nsDelay, Local: "delay"}) != nil {
		return out
	}
	attrs := make([]xml.Attr, 0, 2)
	if domain != "" {
		attrs = append(attrs, xml.Attr{Name: xml.Name{Local: "from"}, Value: domain})
	}
	attrs = append(attrs, xml.Attr{Name: xml.Name{Local: "stamp"}, Value: modules.Stamp(e.since)})
	delay := xml.StartElement{Name: xml.Name{Space: nsDelay, Local: "delay"}, Attr: attrs}
	inner := make([]xml.Token, 0, len(e.el.Inner)+2)
	inner = append(inner, e.el.Inner...)
	out.Inner = append(inner, delay, delay.End())
	return out
}
