package c2s

import (
	"strconv"
	"testing"
	"time"
)

// TestBucket: a bucket starts full, goes into debt by a stanza's whole
// cost, asks for the wait that pays the debt, and refills at its rate up
// to its burst only.
func TestBucket(t *testing.T) {
	var b bucket
	t0 := time.Unix(1000, 0)
	for i := range 10 {
		if d := b.take(t0, 1, 10, 10); d != 0 {
			t.Fatalf("stanza %d of the burst waits %s", i, d)
		}
	}
	if d := b.take(t0, 1, 10, 10); d != 100*time.Millisecond {
		t.Fatalf("past the burst: wait %s, want 100ms", d)
	}
	// An hour later the bucket holds its burst, not more.
	t1 := t0.Add(time.Hour)
	for i := range 10 {
		if d := b.take(t1, 1, 10, 10); d != 0 {
			t.Fatalf("stanza %d after refill waits %s", i, d)
		}
	}
	if d := b.take(t1, 0, 10, 10); d != 0 {
		t.Fatalf("an empty bucket out of debt reports a wait of %s", d)
	}
	// A cost larger than the burst passes, at the rate.
	if d := b.take(t1, 25, 10, 10); d != 2500*time.Millisecond {
		t.Fatalf("25 at 10/s from empty: wait %s, want 2.5s", d)
	}
	// A rate of 0 is no limit; a burst of 0 is one second's worth.
	if d := b.take(t1, 1e9, 0, 0); d != 0 {
		t.Fatalf("rate 0 waits %s", d)
	}
	var c bucket
	if d := c.take(t0, 5, 5, 0); d != 0 {
		t.Fatalf("burst 0 at 5/s: first 5 wait %s", d)
	}
	if d := c.take(t0, 1, 5, 0); d != 200*time.Millisecond {
		t.Fatalf("burst 0 at 5/s: the sixth waits %s, want 200ms", d)
	}
}

// TestAccountBuckets: the streams of one account share one bucket, which
// goes with the account's last stream; the table is bounded.
func TestAccountBuckets(t *testing.T) {
	var a accountBuckets
	one, two := a.acquire("alice"), a.acquire("alice")
	if one == nil || one != two {
		t.Fatal("two streams of alice do not share a bucket")
	}
	if b := a.acquire("bob"); b == one {
		t.Fatal("bob shares alice's bucket")
	} else {
		a.release("bob", b)
	}
	a.release("alice", one)
	if a.len() != 1 {
		t.Fatalf("%d buckets with alice still bound once, want 1", a.len())
	}
	a.release("alice", two)
	if a.len() != 0 {
		t.Fatalf("%d buckets after every stream ended", a.len())
	}
	for i := range maxAccountBuckets {
		if a.acquire(strconv.Itoa(i)) == nil {
			t.Fatalf("table full at %d", i)
		}
	}
	if a.acquire("one-too-many") != nil {
		t.Fatal("the table grew past maxAccountBuckets")
	}
	if a.acquire("0") == nil {
		t.Fatal("a full table refused an account already in it")
	}
}
