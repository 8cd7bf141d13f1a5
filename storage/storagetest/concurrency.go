package storagetest

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/adhocd/adhocd/storage"
)

var concurrencyCases = []testCase{
	{"RosterVersions", testConcurrentRoster},
	{"UserDataCounter", testConcurrentUserData},
	{"OfflineQuota", testConcurrentOffline},
	{"AccountCounter", testConcurrentAccount},
}

// Each concurrency case runs workers goroutines of ops changes each: a
// store whose changes are not atomic loses some of them.
const (
	workers = 8
	ops     = 25
)

// parallel runs fn(w, i) for every worker w and op i, the workers at once,
// and waits for them all.
func parallel(fn func(w, i int)) {
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range ops {
				fn(w, i)
			}
		})
	}
	wg.Wait()
}

// testConcurrentRoster: changes to one roster from many goroutines each get
// a version of their own, and the last version is the number of changes.
func testConcurrentRoster(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	createAccounts(t, ctx, s, "alice")
	versions := make([][]uint64, workers)
	parallel(func(w, i int) {
		// Two workers share each contact, so that they also race on items.
		contact := fmt.Sprintf("c%d@example.org", w/2)
		v, err := s.UpdateRosterItem(ctx, "alice", contact, func(it *storage.RosterItem, _ bool) (bool, error) {
			it.Name = strconv.Itoa(i)
			it.Groups = append(it.Groups, fmt.Sprintf("%d.%d", w, i))
			return false, nil
		})
		if err != nil {
			t.Errorf("UpdateRosterItem: %v", err)
			return
		}
		versions[w] = append(versions[w], v)
	})
	if t.Failed() {
		return
	}
	var all []uint64
	for w, vs := range versions {
		if !slices.IsSorted(vs) {
			t.Errorf("worker %d saw versions go back: %v", w, vs)
		}
		all = append(all, vs...)
	}
	slices.Sort(all)
	for i, v := range all {
		if v != uint64(i+1) {
			t.Fatalf("the %d changes returned versions %v, want each of 1 to %d once", workers*ops, all, workers*ops)
		}
	}
	items, ver, err := s.Roster(ctx, "alice")
	must(t, err, "Roster")
	if ver != workers*ops || len(items) != workers/2 {
		t.Fatalf("after %d changes: version %d with %d items, want version %d with %d items", workers*ops, ver, len(items), workers*ops, workers/2)
	}
	for _, it := range items {
		if len(it.Groups) != 2*ops {
			t.Fatalf("item %q has %d groups, one per change: want %d (changes were lost)", it.JID, len(it.Groups), 2*ops)
		}
	}
}

// testConcurrentUserData: increments of one value by UpdateUserData from
// many goroutines are never lost.
func testConcurrentUserData(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	createAccounts(t, ctx, s, "alice")
	parallel(func(w, i int) {
		err := s.UpdateUserData(ctx, "alice", "counters", "n", func(cur []storage.Datum) ([]storage.Datum, error) {
			n := counterValue(t, cur, "n")
			return []storage.Datum{{Key: "n", Value: []byte(strconv.Itoa(n + 1))}}, nil
		})
		if err != nil {
			t.Errorf("UpdateUserData: %v", err)
		}
	})
	v, err := s.UserDatum(ctx, "alice", "counters", "n")
	must(t, err, "UserDatum")
	if string(v) != strconv.Itoa(workers*ops) {
		t.Fatalf("the counter is %q after %d increments", v, workers*ops)
	}
}

// testConcurrentOffline: StoreOffline from many goroutines within
// MaxMessages keeps exactly that many, and refuses the others with ErrFull.
func testConcurrentOffline(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	createAccounts(t, ctx, s, "alice")
	const max = 10
	var mu sync.Mutex
	kept, full := 0, 0
	parallel(func(w, i int) {
		err := s.StoreOffline(ctx, "alice", offlineMsg(now(), fmt.Sprintf("%d.%d", w, i)), storage.OfflineQuota{MaxMessages: max})
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err == nil:
			kept++
		case errors.Is(err, storage.ErrFull):
			full++
		default:
			t.Errorf("StoreOffline: %v", err)
		}
	})
	if kept != max || full != workers*ops-max {
		t.Fatalf("%d messages kept and %d refused as full, want %d and %d", kept, full, max, workers*ops-max)
	}
	msgs, err := s.TakeOffline(ctx, "alice")
	must(t, err, "TakeOffline")
	if len(msgs) != max {
		t.Fatalf("TakeOffline returned %d messages, want %d", len(msgs), max)
	}
	if r, ok := s.(storage.OfflineUsageReporter); ok {
		if b, n := r.OfflineUsage(); b != 0 || n != 0 {
			t.Fatalf("OfflineUsage after the take: %d bytes in %d messages, want none", b, n)
		}
	}
}

// testConcurrentAccount: increments of MOTDSeen by UpdateAccount from many
// goroutines are never lost.
func testConcurrentAccount(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	createAccounts(t, ctx, s, "alice")
	parallel(func(w, i int) {
		if err := s.UpdateAccount(ctx, "alice", func(a *storage.Account) error { a.MOTDSeen++; return nil }); err != nil {
			t.Errorf("UpdateAccount: %v", err)
		}
	})
	a, err := s.Account(ctx, "alice")
	must(t, err, "Account")
	if a.MOTDSeen != workers*ops {
		t.Fatalf("MOTDSeen is %d after %d increments", a.MOTDSeen, workers*ops)
	}
}
