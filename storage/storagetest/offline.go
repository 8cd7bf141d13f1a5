package storagetest

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/storage"
)

var offlineCases = []testCase{
	{"Order", testOfflineOrder},
	{"UnknownAccount", testOfflineUnknownAccount},
	{"QuotaMessages", testOfflineQuotaMessages},
	{"QuotaBytes", testOfflineQuotaBytes},
	{"QuotaTotalBytes", testOfflineQuotaTotalBytes},
	{"Unbounded", testOfflineUnbounded},
	{"Expire", testOfflineExpire},
	{"ExpireLimit", testOfflineExpireLimit},
	{"Usage", testOfflineUsage},
}

// sized is an offline message whose XML is n bytes long.
func sized(at time.Time, n int) storage.OfflineMessage {
	return storage.OfflineMessage{Stamp: at, XML: strings.Repeat("x", n)}
}

// testOfflineOrder: TakeOffline returns the messages oldest first, as kept,
// and removes them; each account has its own.
func testOfflineOrder(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	createAccounts(t, ctx, s, "alice", "bob")
	checkTake(t, ctx, s, "alice", nil)
	base := now().Add(-time.Hour)
	var alice []storage.OfflineMessage
	for i := range 5 {
		alice = append(alice, offlineMsg(base.Add(time.Duration(i)*time.Second), fmt.Sprintf("message %d ☃ &amp; <b/>", i)))
	}
	bob := []storage.OfflineMessage{offlineMsg(base, "for bob")}
	storeOffline(t, ctx, s, "alice", alice[:3]...)
	storeOffline(t, ctx, s, "bob", bob...)
	storeOffline(t, ctx, s, "alice", alice[3:]...)
	checkTake(t, ctx, s, "alice", alice)
	checkTake(t, ctx, s, "alice", nil)
	// New messages after a take come back alone, in order.
	later := []storage.OfflineMessage{offlineMsg(base.Add(time.Minute), "later 1"), offlineMsg(base.Add(2*time.Minute), "later 2")}
	storeOffline(t, ctx, s, "alice", later...)
	checkTake(t, ctx, s, "alice", later)
	checkTake(t, ctx, s, "bob", bob)
}

// testOfflineUnknownAccount: a message for an account that does not exist
// is ErrNotFound and is not kept for an account made later.
func testOfflineUnknownAccount(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	err := s.StoreOffline(ctx, "ghost", offlineMsg(now(), "lost"), storage.OfflineQuota{})
	wantErr(t, err, storage.ErrNotFound, "StoreOffline for an unknown account")
	createAccounts(t, ctx, s, "ghost")
	checkTake(t, ctx, s, "ghost", nil)
}

// testOfflineQuotaMessages: past MaxMessages the account's messages are
// ErrFull (not ErrTotalFull), others' are not; a take makes room again.
func testOfflineQuotaMessages(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	createAccounts(t, ctx, s, "alice", "bob")
	q := storage.OfflineQuota{MaxMessages: 2}
	at := now()
	kept := []storage.OfflineMessage{offlineMsg(at, "1"), offlineMsg(at, "2")}
	for _, m := range kept {
		must(t, s.StoreOffline(ctx, "alice", m, q), "StoreOffline within MaxMessages")
	}
	err := s.StoreOffline(ctx, "alice", offlineMsg(at, "3"), q)
	wantErr(t, err, storage.ErrFull, "StoreOffline past MaxMessages")
	if errors.Is(err, storage.ErrTotalFull) {
		t.Fatalf("the account's bound answered ErrTotalFull: %v", err)
	}
	must(t, s.StoreOffline(ctx, "bob", offlineMsg(at, "for bob"), q), "StoreOffline for another account")
	checkTake(t, ctx, s, "alice", kept)
	must(t, s.StoreOffline(ctx, "alice", offlineMsg(at, "4"), q), "StoreOffline after a take")
	checkTake(t, ctx, s, "alice", []storage.OfflineMessage{offlineMsg(at, "4")})
}

// testOfflineQuotaBytes: MaxBytes bounds the bytes of the account's
// messages' XML: up to the bound is kept, one byte past it is ErrFull.
func testOfflineQuotaBytes(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	createAccounts(t, ctx, s, "alice", "bob")
	q := storage.OfflineQuota{MaxBytes: 10}
	at := now()
	must(t, s.StoreOffline(ctx, "alice", sized(at, 6), q), "StoreOffline of 6 bytes")
	wantErr(t, s.StoreOffline(ctx, "alice", sized(at, 5), q), storage.ErrFull, "StoreOffline to 11 bytes of 10")
	must(t, s.StoreOffline(ctx, "alice", sized(at, 4), q), "StoreOffline to exactly 10 bytes")
	err := s.StoreOffline(ctx, "alice", sized(at, 1), q)
	wantErr(t, err, storage.ErrFull, "StoreOffline past MaxBytes")
	if errors.Is(err, storage.ErrTotalFull) {
		t.Fatalf("the account's bound answered ErrTotalFull: %v", err)
	}
	wantErr(t, s.StoreOffline(ctx, "bob", sized(at, 11), q), storage.ErrFull, "a message larger than MaxBytes alone")
	must(t, s.StoreOffline(ctx, "bob", sized(at, 10), q), "StoreOffline of another account")
	checkTake(t, ctx, s, "alice", []storage.OfflineMessage{sized(at, 6), sized(at, 4)})
	must(t, s.StoreOffline(ctx, "alice", sized(at, 10), q), "StoreOffline after a take")
}

// testOfflineQuotaTotalBytes: MaxTotalBytes bounds the bytes of all
// accounts together (ErrTotalFull, not ErrFull); a take makes room.
func testOfflineQuotaTotalBytes(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	createAccounts(t, ctx, s, "alice", "bob")
	q := storage.OfflineQuota{MaxTotalBytes: 10}
	at := now()
	must(t, s.StoreOffline(ctx, "alice", sized(at, 6), q), "StoreOffline of 6 bytes")
	must(t, s.StoreOffline(ctx, "bob", sized(at, 4), q), "StoreOffline to exactly 10 bytes in all")
	for _, user := range []string{"alice", "bob"} {
		err := s.StoreOffline(ctx, user, sized(at, 1), q)
		wantErr(t, err, storage.ErrTotalFull, "StoreOffline past MaxTotalBytes for "+user)
		if errors.Is(err, storage.ErrFull) {
			t.Fatalf("the store's bound answered ErrFull: %v", err)
		}
	}
	checkTake(t, ctx, s, "bob", []storage.OfflineMessage{sized(at, 4)})
	must(t, s.StoreOffline(ctx, "alice", sized(at, 4), q), "StoreOffline after bob's take")
	wantErr(t, s.StoreOffline(ctx, "bob", sized(at, 1), q), storage.ErrTotalFull, "StoreOffline past MaxTotalBytes again")
	checkTake(t, ctx, s, "alice", []storage.OfflineMessage{sized(at, 6), sized(at, 4)})
}

// testOfflineUnbounded: a zero quota sets no bound, and each zero field of
// a quota sets none while the others apply.
func testOfflineUnbounded(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	createAccounts(t, ctx, s, "alice", "bob")
	at := now()
	var want []storage.OfflineMessage
	for i := range 40 {
		m := sized(at.Add(time.Duration(i)*time.Millisecond), 1000)
		must(t, s.StoreOffline(ctx, "alice", m, storage.OfflineQuota{}), fmt.Sprintf("StoreOffline %d with no quota", i))
		want = append(want, m)
	}
	// Only MaxMessages set: bytes unbounded.
	for i := range 3 {
		must(t, s.StoreOffline(ctx, "bob", sized(at, 5000), storage.OfflineQuota{MaxMessages: 3}), fmt.Sprintf("StoreOffline %d with MaxMessages alone", i))
	}
	// Only MaxBytes set: the number of messages unbounded.
	must(t, s.StoreOffline(ctx, "alice", sized(at, 1), storage.OfflineQuota{MaxBytes: 40001}), "StoreOffline with MaxBytes alone")
	want = append(want, sized(at, 1))
	checkTake(t, ctx, s, "alice", want)
	checkTake(t, ctx, s, "bob", []storage.OfflineMessage{sized(at, 5000), sized(at, 5000), sized(at, 5000)})
}

// testOfflineExpire: ExpireOffline removes the messages of every account
// stamped before before (one stamped at before stays) and returns how many.
func testOfflineExpire(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	createAccounts(t, ctx, s, "alice", "bob", "carol")
	base := now().Add(-time.Hour)
	at := func(m float64) time.Time { return base.Add(time.Duration(m * float64(time.Minute))) }
	alice := []storage.OfflineMessage{offlineMsg(at(0), "a0"), offlineMsg(at(1), "a1"), offlineMsg(at(2), "a2"), offlineMsg(at(3), "a3")}
	bob := []storage.OfflineMessage{offlineMsg(at(0.5), "b0"), offlineMsg(at(1.5), "b1"), offlineMsg(at(2.5), "b2")}
	carol := []storage.OfflineMessage{offlineMsg(at(5), "c0")}
	storeOffline(t, ctx, s, "alice", alice...)
	storeOffline(t, ctx, s, "bob", bob...)
	storeOffline(t, ctx, s, "carol", carol...)
	n, err := s.ExpireOffline(ctx, at(2), 100)
	must(t, err, "ExpireOffline")
	if n != 4 {
		t.Fatalf("ExpireOffline removed %d messages, want 4", n)
	}
	n, err = s.ExpireOffline(ctx, at(2), 100)
	must(t, err, "ExpireOffline again")
	if n != 0 {
		t.Fatalf("ExpireOffline again removed %d messages, want 0", n)
	}
	checkTake(t, ctx, s, "alice", alice[2:])
	checkTake(t, ctx, s, "bob", bob[2:])
	checkTake(t, ctx, s, "carol", carol)
}

// testOfflineExpireLimit: ExpireOffline removes at most limit messages a
// call, so that calls repeated while they get limit remove all that
// expired; a limit below 1 is an error.
func testOfflineExpireLimit(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	createAccounts(t, ctx, s, "alice", "bob")
	base := now().Add(-time.Hour)
	var alice, bob []storage.OfflineMessage
	for i := range 4 {
		alice = append(alice, offlineMsg(base.Add(time.Duration(i)*time.Minute), fmt.Sprint("a", i)))
		bob = append(bob, offlineMsg(base.Add(time.Duration(i)*time.Minute+time.Second), fmt.Sprint("b", i)))
	}
	storeOffline(t, ctx, s, "alice", alice...)
	storeOffline(t, ctx, s, "bob", bob...)
	for _, limit := range []int{0, -1} {
		if _, err := s.ExpireOffline(ctx, now(), limit); err == nil {
			t.Fatalf("ExpireOffline with limit %d succeeded", limit)
		}
	}
	before := base.Add(3 * time.Minute) // 3 of alice's and 3 of bob's
	var got []int
	for range 4 {
		n, err := s.ExpireOffline(ctx, before, 4)
		must(t, err, "ExpireOffline")
		got = append(got, n)
	}
	if fmt.Sprint(got) != "[4 2 0 0]" {
		t.Fatalf("ExpireOffline with limit 4, repeated: removed %v, want [4 2 0 0]", got)
	}
	checkTake(t, ctx, s, "alice", alice[3:])
	checkTake(t, ctx, s, "bob", bob[3:])
}

// testOfflineUsage: a store that reports its offline usage counts the
// messages and the bytes of their XML, through every store, take, expiry
// and account deletion.
func testOfflineUsage(t *testing.T, open opener) {
	s := open(t)
	r, ok := s.(storage.OfflineUsageReporter)
	if !ok {
		t.Skip("the store does not implement storage.OfflineUsageReporter")
	}
	ctx := testContext(t)
	check := func(what string, bytes, messages int64) {
		t.Helper()
		if b, n := r.OfflineUsage(); b != bytes || n != messages {
			t.Fatalf("OfflineUsage %s: %d bytes in %d messages, want %d in %d", what, b, n, bytes, messages)
		}
	}
	check("of a new store", 0, 0)
	createAccounts(t, ctx, s, "alice", "bob")
	old := now().Add(-time.Hour)
	storeOffline(t, ctx, s, "alice", sized(old, 5), sized(now(), 7), sized(now(), 11))
	check("after three messages", 23, 3)
	storeOffline(t, ctx, s, "bob", sized(old, 13))
	check("after bob's", 36, 4)
	wantErr(t, s.StoreOffline(ctx, "bob", sized(now(), 1), storage.OfflineQuota{MaxMessages: 1}), storage.ErrFull, "StoreOffline past the quota")
	check("after a refused message", 36, 4)
	n, err := s.ExpireOffline(ctx, old.Add(time.Second), 100)
	must(t, err, "ExpireOffline")
	if n != 2 {
		t.Fatalf("ExpireOffline removed %d, want 2", n)
	}
	check("after expiry", 18, 2)
	_, err = s.TakeOffline(ctx, "alice")
	must(t, err, "TakeOffline")
	check("after alice's take", 0, 0)
	storeOffline(t, ctx, s, "bob", sized(now(), 17), sized(now(), 19))
	check("after two more", 36, 2)
	_, err = s.DeleteAccount(ctx, "bob", "bob@example.org")
	must(t, err, "DeleteAccount")
	check("after bob's deletion", 0, 0)
}
