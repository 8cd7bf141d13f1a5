package c2s

import (
	"errors"
	"fmt"
	"net"
	"time"

	"mellium.im/xmpp/stream"

	"github.com/adhocd/adhocd/wire"
)

// The outbound queue of a bound session. A stanza for a client is encoded by
// whoever sends it and queued; the queue is written by a writer goroutine
// that exists only while there is something to write, so a sender never
// waits on another client's socket and an idle connection holds neither a
// goroutine nor a buffer. A client that does not read fills its queue: once
// more than limits.max_outbound_bytes waits while its socket has taken
// nothing for stallAfter (or more than hardLimitFactor times that in any
// case, which bounds memory) it is closed with policy-violation, and a write
// that blocks past limits.write_timeout closes it too. A queue over the
// limit whose writer is busy writing, or not yet scheduled, is not a slow
// client: a burst from one sender can outrun the writer for a moment. What was queued for it
// and never written is undeliverable and handed to the router (Router.Undeliverable),
// which answers it as RFC 6120 §10.4.3 and RFC 6121 §8.5 say. Bytes already handed to the
// socket cannot be taken back: a client that dies holding them loses them,
// as on any server without stream management (XEP-0198).

// outItem is one encoded stanza waiting in a queue, with the stanza itself
// for the answer it gets if it is never written.
type outItem struct {
	out *wire.Output
	el  *wire.Element
	// nonza items are not stanzas (XEP-0198's <enabled/>): written in
	// order, never counted; enable turns the counting on once written.
	nonza, enable bool
}

// outbound is the queue of one connection; its zero value is ready.
type outbound struct {
	items   []outItem
	bytes   int       // queued and being written
	writing bool      // a writer is draining the queue
	since   time.Time // when the write in progress began; zero between writes
	closed  bool      // the connection is gone or going: nothing more is taken
	// idle, when set, is closed once the writer stops (stop): a resume
	// waits on it so that no writer of the old connection runs on.
	idle chan struct{}
}

// stop records that the writer stopped and wakes whoever waits for it;
// qmu is held.
func (q *outbound) stop() {
	q.writing = false
	if q.idle != nil {
		close(q.idle)
		q.idle = nil
	}
}

const (
	// stallAfter is how long a write must have been waiting on the socket
	// for a queue over the limit to mean the client is not reading.
	stallAfter = 50 * time.Millisecond
	// hardLimitFactor times limits.max_outbound_bytes is queued at most.
	hardLimitFactor = 4
)

// slow reports whether adding n bytes to the queue means its client does not
// keep up (see the package comment above); qmu is held.
func (q *outbound) slow(n, limit int, now time.Time) bool {
	if q.bytes == 0 || q.bytes+n <= limit {
		return false
	}
	stalled := !q.since.IsZero() && now.Sub(q.since) >= stallAfter
	return stalled || q.bytes+n > hardLimitFactor*limit
}

// ErrUndeliverable says a stanza could not be queued for a stream.
var ErrUndeliverable = errors.New("c2s: the recipient's stream is closing")

// enqueue queues el for the client. When the caller is the connection's own
// reader (own), an idle queue is written at once in the caller's goroutine,
// which may wait on this client's socket only; any other caller never
// waits. An error means el was not taken (the connection is closing, or its
// queue is over the limit): the caller treats it as undeliverable.
func (c *Conn) enqueue(el *wire.Element, own bool) error {
	return c.enqueueItem(outItem{el: el}, own)
}

func (c *Conn) enqueueItem(it outItem, own bool) error {
	out := wire.NewOutput()
	if err := out.EncodeElement(it.el, c.rootNS()); err != nil {
		return err // out is dropped: its encoder may be mid-element
	}
	it.out = out
	c.qmu.Lock()
	q := &c.q
	if q.closed {
		c.qmu.Unlock()
		out.Release()
		return ErrUndeliverable
	}
	limit := c.env.Limits().MaxOutboundBytes
	if c.sm.hibernating {
		// Waiting for its client to resume: kept, up to the hard bound,
		// past which the session ends now.
		if q.bytes+out.Len() > hardLimitFactor*limit {
			c.qmu.Unlock()
			out.Release()
			go c.expire()
			return ErrUndeliverable
		}
		q.items = append(q.items, it)
		q.bytes += out.Len()
		c.qmu.Unlock()
		return nil
	}
	// The clock is read only when slow could say yes.
	if n := out.Len(); q.bytes != 0 && q.bytes+n > limit && q.slow(n, limit, time.Now()) {
		// A client that reads slower than it is sent to: closed, and what it
		// was never sent goes back.
		q.closed = true
		rest := q.take()
		q.done(rest)
		c.qmu.Unlock()
		out.Release()
		c.log.Info("client does not read: closing", "limit", limit)
		go func() {
			// A writer blocked on the socket gives up now rather than at
			// write_timeout; the stream error reaches a client that reads
			// again, if any.
			_ = c.nc.SetWriteDeadline(time.Now())
			c.Close(wire.StreamError(stream.PolicyViolation, fmt.Sprintf("more than %d bytes waiting to be read (limits.max_outbound_bytes)", limit)))
		}()
		c.undeliverable(rest)
		return ErrUndeliverable
	}
	q.items = append(q.items, it)
	q.bytes += out.Len()
	start := !q.writing
	q.writing = true
	c.qmu.Unlock()
	switch {
	case !start:
	case own:
		c.drain()
	default:
		go c.drain()
	}
	return nil
}

// take empties the queue and returns what it held; qmu is held. The
// bytes stay counted until written (done).
func (q *outbound) take() []outItem {
	items := q.items
	q.items = nil
	return items
}

// done uncounts items that are written or given up; qmu is held.
func (q *outbound) done(items []outItem) {
	for _, it := range items {
		q.bytes -= it.out.Len()
	}
}

// drain writes the queue until it is empty. It runs in one goroutine at a
// time per connection: the one that set writing.
func (c *Conn) drain() {
	// spare is the slice of a batch written whole, emptied: the queue
	// takes it back rather than allocating one for the next stanza.
	var spare []outItem
	for {
		c.qmu.Lock()
		if c.q.items == nil && spare != nil {
			c.q.items, spare = spare, nil
		}
		if len(c.q.items) == 0 || c.sm.hibernating {
			// Done, or the connection went under a resumable session:
			// what is queued waits for the client to resume.
			c.q.stop()
			c.qmu.Unlock()
			return
		}
		batch := c.q.take()
		c.q.since = time.Now()
		c.sm.inflight = c.smInflight(batch)
		c.qmu.Unlock()
		n, err := c.writeBatch(batch)
		c.qmu.Lock()
		c.q.since = time.Time{}
		c.sm.inflight = 0
		c.q.done(batch)
		for _, it := range batch[:n] {
			c.smWritten(it)
		}
		// A client that acknowledged more of the batch than the write
		// reported before failing has those stanzas: they count as written.
		for c.sm.early > 0 && n < len(batch) {
			c.smWritten(batch[n])
			n++
		}
		c.qmu.Unlock()
		for _, it := range batch[:n] {
			it.out.Release()
			if !it.nonza {
				c.env.StanzasOut.Add(1)
				c.env.Observer.StanzaOut(it.el.Start.Name.Local)
			}
		}
		if n > 0 {
			c.smAfterBatch()
		}
		if err == nil && cap(batch) <= 64 {
			clear(batch)
			spare = batch[:0]
		}
		if err != nil {
			c.qmu.Lock()
			if !c.q.closed && c.sm.on && c.sm.id != "" {
				// The connection went under a resumable session, broken or
				// closed by its reader on the way to hibernating: what was
				// not written waits in the queue. Should the session end
				// instead, endSession hands it back (closeQueue); had it
				// ended already, the queue would be closed.
				unwritten := batch[n:]
				for _, it := range unwritten {
					c.q.bytes += it.out.Len()
				}
				c.q.items = append(unwritten, c.q.items...)
				c.q.stop()
				c.qmu.Unlock()
				return
			}
			c.q.closed = true
			c.q.stop()
			rest := c.q.take()
			c.q.done(rest)
			c.qmu.Unlock()
			if !errors.Is(err, ErrClosed) {
				c.log.Info("write failed: closing", "err", err)
			}
			c.undeliverable(append(batch[n:], rest...))
			return
		}
	}
}

// writeBatch writes queued stanzas in order and returns how many were
// written whole: on TCP in one vectored write, over WebSocket one message
// each.
func (c *Conn) writeBatch(batch []outItem) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closed {
		return 0, ErrClosed
	}
	c.setWriteDeadline()
	if c.ws {
		for i, it := range batch {
			if _, err := c.nc.Write(it.out.Bytes()); err != nil {
				return i, c.writeFailed(err)
			}
		}
		return len(batch), nil
	}
	if len(batch) == 1 {
		// One stanza: a plain write, without the vector.
		b := batch[0].out.Bytes()
		if n, err := c.nc.Write(b); err != nil {
			if n == len(b) {
				return 1, c.writeFailed(err)
			}
			return 0, c.writeFailed(err)
		}
		return 1, nil
	}
	bufs := make(net.Buffers, len(batch))
	for i, it := range batch {
		bufs[i] = it.out.Bytes()
	}
	written, err := bufs.WriteTo(c.nc)
	if err == nil {
		return len(batch), nil
	}
	n := 0
	for _, it := range batch {
		written -= int64(it.out.Len())
		if written < 0 {
			break
		}
		n++
	}
	return n, c.writeFailed(err)
}

// closeQueue takes nothing more for c and hands back what it had queued
// and no writer will write; the connection is ending.
func (c *Conn) closeQueue() {
	c.qmu.Lock()
	c.q.closed = true
	var rest []outItem
	if !c.q.writing {
		rest = c.q.take()
		c.q.done(rest)
	}
	c.qmu.Unlock()
	c.undeliverable(rest)
}

// undeliverable releases what will never be written and hands the stanzas
// to the router to be answered.
func (c *Conn) undeliverable(items []outItem) {
	if len(items) == 0 {
		return
	}
	els := make([]*wire.Element, len(items))
	for i, it := range items {
		it.out.Release()
		els[i] = it.el
	}
	c.env.Router.Undeliverable(c, els)
}

// Deliver queues el for the client; the caller never waits on the
// client's socket. It returns ErrUndeliverable when the stream can take
// nothing more (the stanza then is the caller's to answer).
func (c *Conn) Deliver(el *wire.Element) error { return c.enqueue(el, false) }

// Reply queues el from the stream's own reader (the answer to its own
// request): with nothing else queued it is written at once, in the caller's
// goroutine, which then waits on this client's socket only.
func (c *Conn) Reply(el *wire.Element) error { return c.enqueue(el, true) }
