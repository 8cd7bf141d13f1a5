package c2s

import (
	"strconv"
	"testing"
)

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
