package tokenbucket_test

import (
	"sync"
	"testing"
	"time"

	"github.com/adhocd/adhocd/internal/tokenbucket"
)

// TestBucket: a bucket starts full, goes into debt by a stanza's whole
// cost, asks for the wait that pays the debt, and refills at its rate up
// to its burst only.
func TestBucket(t *testing.T) {
	var b tokenbucket.Bucket
	t0 := time.Unix(1000, 0)
	for i := range 10 {
		if d := b.Take(t0, 1, 10, 10); d != 0 {
			t.Fatalf("stanza %d of the burst waits %s", i, d)
		}
	}
	if d := b.Take(t0, 1, 10, 10); d != 100*time.Millisecond {
		t.Fatalf("past the burst: wait %s, want 100ms", d)
	}
	// An hour later the bucket holds its burst, not more.
	t1 := t0.Add(time.Hour)
	for i := range 10 {
		if d := b.Take(t1, 1, 10, 10); d != 0 {
			t.Fatalf("stanza %d after refill waits %s", i, d)
		}
	}
	if d := b.Take(t1, 0, 10, 10); d != 0 {
		t.Fatalf("an empty bucket out of debt reports a wait of %s", d)
	}
	// A cost larger than the burst passes, at the rate.
	if d := b.Take(t1, 25, 10, 10); d != 2500*time.Millisecond {
		t.Fatalf("25 at 10/s from empty: wait %s, want 2.5s", d)
	}
	// Time pays the debt: 1s later 1.5s remain; a cost of 0 only asks.
	if d := b.Take(t1.Add(time.Second), 0, 10, 10); d != 1500*time.Millisecond {
		t.Fatalf("1s into a 2.5s debt: wait %s, want 1.5s", d)
	}
	// A rate of 0 is no limit; a burst of 0 is one second's worth.
	if d := b.Take(t1, 1e9, 0, 0); d != 0 {
		t.Fatalf("rate 0 waits %s", d)
	}
	var c tokenbucket.Bucket
	if d := c.Take(t0, 5, 5, 0); d != 0 {
		t.Fatalf("burst 0 at 5/s: first 5 wait %s", d)
	}
	if d := c.Take(t0, 1, 5, 0); d != 200*time.Millisecond {
		t.Fatalf("burst 0 at 5/s: the sixth waits %s, want 200ms", d)
	}
}

// TestBucketConcurrent: takers sharing a bucket (the streams of one
// account) are each charged: 100 stanzas at 10/s with a burst of 10 owe
// 9s in all, whichever goroutine charged them.
func TestBucketConcurrent(t *testing.T) {
	var b tokenbucket.Bucket
	t0 := time.Unix(1000, 0)
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			for range 10 {
				b.Take(t0, 1, 10, 10)
			}
		})
	}
	wg.Wait()
	if d := b.Take(t0, 0, 10, 10); d != 9*time.Second {
		t.Fatalf("100 stanzas at 10/s, burst 10: wait %s, want 9s", d)
	}
}
