// Package tokenbucket is the token bucket that paces a stream's input:
// c2s charges it per stanza and per byte read (limits.rate.*), s2s per
// element an inbound server-to-server stream sends
// (s2s.limits.stanzas_per_second). The reader charges what it has read,
// then sleeps for as long as Take says, so that a peer over its rate loses
// nothing: what it sends next waits in its TCP buffer.
//
// It is written here rather than taken from golang.org/x/time/rate, which
// is not among the dependencies chosen for adhocd, and because this bucket
// may go into debt: a cost is always charged in full, so that a stanza
// larger than the burst still passes, at the rate, where a limiter that
// refuses costs above its burst would stop the stream for good.
package tokenbucket

import (
	"sync"
	"time"
)

// Bucket is a token bucket that may go into debt: each cost is charged in
// full, and its user then waits until the bucket is no longer in debt. The
// zero Bucket starts full at its first Take. It is safe for concurrent use.
type Bucket struct {
	mu     sync.Mutex
	tokens float64
	last   time.Time
}

// Take charges cost to the bucket, refilled at rate per second up to burst
// (0: one second's worth), and returns how long its user must wait before
// the bucket is out of debt. A rate of 0 is no limit: Take returns 0. A
// cost of 0 only asks whether the debt is paid.
func (b *Bucket) Take(now time.Time, cost float64, rate, burst int) time.Duration {
	if rate <= 0 {
		return 0
	}
	r, capacity := float64(rate), float64(burst)
	if burst <= 0 {
		capacity = r
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.last.IsZero() {
		b.tokens = capacity
	} else if dt := now.Sub(b.last); dt > 0 {
		b.tokens = min(capacity, b.tokens+dt.Seconds()*r)
	}
	b.last = now
	b.tokens -= cost
	if b.tokens >= 0 {
		return 0
	}
	return time.Duration(-b.tokens / r * float64(time.Second))
}
