package c2s

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/internal/tokenbucket"
)

// maxPause bounds one sleep of a paced stream: a longer debt is waited out
// in several, each of which sees a reload of limits.rate (a rate turned off
// ends the wait) and the stream's end.
const maxPause = time.Second

// maxAccountBuckets bounds the table of per-account buckets. Its entries
// live only while an account has a bound stream, so it holds at most one
// per bound account; past the bound a new account is paced per stream only.
const maxAccountBuckets = 100000

// pacer is the buckets of one bound stream (package tokenbucket, shared
// with s2s): its own stanzas and bytes, and the stanzas of its account,
// shared with the account's other streams.
type pacer struct {
	stanzas, bytes tokenbucket.Bucket
	account        *accountBucket // nil: no account bucket
	read           *countingReader
	charged        uint64 // bytes of read already charged
}

// wait charges one stanza and the bytes read since the last call, and
// returns how long the stream must pause for the most indebted bucket.
func (p *pacer) wait(now time.Time, r config.Rate, stanzas float64) time.Duration {
	n := p.read.n.Load()
	b := float64(n - p.charged)
	p.charged = n
	d := p.stanzas.Take(now, stanzas, r.StanzasPerSecond, r.BurstStanzas)
	d = max(d, p.bytes.Take(now, b, r.BytesPerSecond, r.BurstBytes))
	if p.account != nil {
		d = max(d, p.account.b.Take(now, stanzas, r.AccountStanzasPerSecond, r.AccountBurstStanzas))
	}
	return d
}

// pace pauses the stream's reader after a stanza for as long as its
// buckets need (limits.rate): the client's next stanzas wait in its TCP
// buffer, none is dropped. It returns early with ctx's error when the
// stream ends.
func (c *Conn) pace(ctx context.Context) error {
	if c.pacer == nil {
		return nil
	}
	d := c.pacer.wait(time.Now(), c.env.Limits().Rate, 1)
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(min(d, maxPause))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		// Charge nothing more: only see whether the debt is paid, under
		// the limits in force now.
		d = c.pacer.wait(time.Now(), c.env.Limits().Rate, 0)
		if d <= 0 {
			return nil
		}
		t.Reset(min(d, maxPause))
	}
}

// countingReader counts the bytes read from a stream's connection, which
// the byte bucket is charged with (white-space keepalives included).
type countingReader struct {
	r io.Reader
	n atomic.Uint64
}

func (cr *countingReader) Read(p []byte) (int, error) {
	n, err := cr.r.Read(p)
	cr.n.Add(uint64(n))
	return n, err
}

// accountBucket is the stanza bucket shared by the bound streams of one
// account (limits.rate.account_stanzas_per_second).
type accountBucket struct {
	b    tokenbucket.Bucket
	refs int // bound streams of the account; guarded by accountBuckets.mu
}

// accountBuckets is the registry of per-account buckets: an entry is made
// when an account binds its first stream and dropped when its last one
// ends, so that the table holds only accounts online now (and at most
// maxAccountBuckets).
type accountBuckets struct {
	mu sync.Mutex
	m  map[string]*accountBucket
}

// acquire returns the bucket of user, made if needed, with one more
// reference; nil when the table is full.
func (a *accountBuckets) acquire(user string) *accountBucket {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.m == nil {
		a.m = make(map[string]*accountBucket)
	}
	ab := a.m[user]
	if ab == nil {
		if len(a.m) >= maxAccountBuckets {
			return nil
		}
		ab = &accountBucket{}
		a.m[user] = ab
	}
	ab.refs++
	return ab
}

// release drops one reference to user's bucket, and the bucket with the
// last one.
func (a *accountBuckets) release(user string, ab *accountBucket) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ab.refs--
	if ab.refs <= 0 && a.m[user] == ab {
		delete(a.m, user)
	}
}

// len returns the number of accounts with a bucket.
func (a *accountBuckets) len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.m)
}
