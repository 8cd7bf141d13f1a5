package muc

import (
	"context"
	"github.com/adhocd/adhocd/modules"
	"time"

	"mellium.im/xmpp/stanza"
)

// rateBucket is an occupant's token bucket (muc.message_rate): it holds up
// to Options.MessageBurst stanzas and refills at Options.MessageRate a
// second. Unlike the connection's pacing (c2s, limits.rate), which slows a
// flooding client down, a room refuses what comes past its rate: the
// occupant is told, and the other occupants see nothing of it. It is
// guarded by the room's lock, as the occupant is.
type rateBucket struct {
	tokens float64
	last   time.Time
}

// tooFast is the answer to a stanza past the occupant's rate
// (policy-violation of type wait, as Prosody's mod_muc_limits answers).
var tooFast = modules.StanzaError(stanza.Wait, stanza.PolicyViolation, "you are sending to this room too fast; wait a moment and send again")

// allow charges one stanza of o to its bucket and tells whether it may go
// on. With no rate set everything goes.
func (m *Module) allow(ctx context.Context, o *occupant) bool {
	rate := m.opts.MessageRate
	if rate <= 0 {
		return true
	}
	burst := float64(max(m.opts.MessageBurst, 1))
	now := m.now()
	b := &o.rate
	if b.last.IsZero() {
		b.tokens = burst
	} else if dt := now.Sub(b.last); dt > 0 {
		b.tokens = min(burst, b.tokens+dt.Seconds()*rate)
	}
	b.last = now
	if b.tokens < 1 {
		m.metrics.rateLimited.Add(ctx, 1)
		return false
	}
	b.tokens--
	return true
}
