package c2s

import (
	"testing"

	"github.com/adhocd/adhocd/wire"
)

// TestSMAckDuringWrite: a client may read a stanza and acknowledge it
// before the write of its batch returns (drain counts the batch only then):
// the acknowledgement counts the stanzas in flight as sent, and they are
// acknowledged as they are counted; acknowledging more than the batch is
// still handled-count-too-high.
func TestSMAckDuringWrite(t *testing.T) {
	c := &Conn{}
	c.sm.on = true
	stanza := func() outItem { return outItem{el: &wire.Element{}} }
	// One stanza written and counted, a batch of two on its way.
	c.smWritten(stanza())
	batch := []outItem{stanza(), stanza()}
	c.sm.inflight = c.smInflight(batch)
	if c.sm.inflight != 2 {
		t.Fatalf("in flight: %d", c.sm.inflight)
	}
	// The client read the first two and acknowledges them.
	if err := c.smAck(2); err != nil {
		t.Fatalf("ack of a stanza in flight: %v", err)
	}
	if len(c.sm.unacked) != 0 || c.sm.early != 1 {
		t.Fatalf("after the early ack: %d unacked, %d early", len(c.sm.unacked), c.sm.early)
	}
	// More than was written or is in flight is refused.
	if err := c.smAck(4); err == nil {
		t.Fatal("an ack of 4 with 3 sent was taken")
	}
	// The write returns: the first of the batch was acknowledged already,
	// the second waits for its acknowledgement.
	c.sm.inflight = 0
	for _, it := range batch {
		c.smWritten(it)
	}
	if c.sm.out != 3 || len(c.sm.unacked) != 1 || c.sm.early != 0 {
		t.Fatalf("after the write: out %d, %d unacked, %d early", c.sm.out, len(c.sm.unacked), c.sm.early)
	}
	if err := c.smAck(3); err != nil || len(c.sm.unacked) != 0 {
		t.Fatalf("ack of all three: %v, %d unacked", err, len(c.sm.unacked))
	}
	// An <enabled/> in the batch turns counting on for what follows it.
	c2 := &Conn{}
	if n := c2.smInflight([]outItem{stanza(), {nonza: true, enable: true}, stanza()}); n != 1 {
		t.Fatalf("in flight after an enable: %d", n)
	}
}
