package storage_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/storage"
)

// TestArchive: messages come back oldest first with time-ordered ids and
// stamps; with filters by bare JID, full JID and domain; pages forward
// (after-id) and backward (before, the newest first) with complete set only
// on the last page; ids; the per-account bound drops the oldest; expiry
// removes by age; the size counts; deletion of the account removes it.
func TestArchive(t *testing.T) {
	ctx := context.Background()
	st := open(t, t.TempDir())
	for _, u := range []string{"alice", "bob"} {
		if err := st.CreateAccount(ctx, storage.Account{Username: u}); err != nil {
			t.Fatal(err)
		}
	}
	with := []string{"bob@example.org/phone", "carol@example.org", "bob@example.org", "dave@elsewhere.net/x", "bob@example.org/desk"}
	var ids []string
	for i, w := range with {
		id, err := st.AppendArchive(ctx, "alice", storage.ArchivedMessage{With: w, XML: fmt.Sprintf("<message><body>%d</body></message>", i)}, storage.ArchiveQuota{})
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) > 0 && id <= ids[len(ids)-1] {
			t.Fatalf("id %s does not sort after %s", id, ids[len(ids)-1])
		}
		ids = append(ids, id)
	}
	bodies := func(ms []storage.ArchivedMessage) string {
		var b []string
		for _, m := range ms {
			b = append(b, strings.TrimSuffix(strings.TrimPrefix(m.XML, "<message><body>"), "</body></message>"))
		}
		return strings.Join(b, ",")
	}
	for _, tc := range []struct {
		name     string
		q        storage.ArchiveQuery
		want     string
		complete bool
	}{
		{"all", storage.ArchiveQuery{Max: 10}, "0,1,2,3,4", true},
		{"bare JID", storage.ArchiveQuery{With: "bob@example.org", Max: 10}, "0,2,4", true},
		{"full JID", storage.ArchiveQuery{With: "bob@example.org/desk", Max: 10}, "4", true},
		{"domain", storage.ArchiveQuery{With: "example.org", Max: 10}, "0,1,2,4", true},
		{"first page", storage.ArchiveQuery{Max: 2}, "0,1", false},
		{"after", storage.ArchiveQuery{AfterID: ids[1], Max: 2}, "2,3", false},
		{"last page", storage.ArchiveQuery{AfterID: ids[2], Max: 2}, "3,4", true},
		{"newest", storage.ArchiveQuery{Last: true, Max: 2}, "3,4", false},
		{"before", storage.ArchiveQuery{Last: true, BeforeID: ids[3], Max: 2}, "1,2", false},
		{"oldest", storage.ArchiveQuery{Last: true, BeforeID: ids[2], Max: 2}, "0,1", true},
		{"between", storage.ArchiveQuery{AfterID: ids[0], BeforeID: ids[4], Max: 10}, "1,2,3", true},
		{"ids", storage.ArchiveQuery{IDs: []string{ids[3], ids[1], "nope"}, Max: 10}, "1,3", true},
	} {
		got, complete, err := st.QueryArchive(ctx, "alice", tc.q)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if bodies(got) != tc.want || complete != tc.complete {
			t.Errorf("%s: got %s (complete %v), want %s (complete %v)", tc.name, bodies(got), complete, tc.want, tc.complete)
		}
	}
	got, _, _ := st.QueryArchive(ctx, "alice", storage.ArchiveQuery{Max: 10})
	if got[0].ID != ids[0] || got[0].Stamp.IsZero() || time.Since(got[0].Stamp) > time.Minute {
		t.Errorf("first message: id %s stamp %v", got[0].ID, got[0].Stamp)
	}
	stamps, _, _ := st.QueryArchive(ctx, "alice", storage.ArchiveQuery{Start: got[2].Stamp, End: got[3].Stamp, Max: 10})
	if bodies(stamps) != "2,3" {
		t.Errorf("start and end: %s", bodies(stamps))
	}
	for _, id := range []string{"zz", "0123456789abcdef"} {
		if _, _, err := st.QueryArchive(ctx, "alice", storage.ArchiveQuery{AfterID: id, Max: 1}); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("after an id not in the archive (%s): %v", id, err)
		}
	}
	if n, b, err := st.ArchiveSize(ctx, "alice"); err != nil || n != 5 || b <= 0 {
		t.Errorf("size: %d messages, %d bytes, %v", n, b, err)
	}

	// The bound drops the oldest.
	for i := range 3 {
		if _, err := st.AppendArchive(ctx, "bob", storage.ArchivedMessage{With: "alice@example.org", XML: fmt.Sprintf("<message><body>b%d</body></message>", i)}, storage.ArchiveQuota{MaxMessages: 2}); err != nil {
			t.Fatal(err)
		}
	}
	if got, _, _ := st.QueryArchive(ctx, "bob", storage.ArchiveQuery{Max: 10}); bodies(got) != "b1,b2" {
		t.Errorf("a bound of 2 after 3 messages: %s", bodies(got))
	}
	if n, _, _ := st.ArchiveSize(ctx, "bob"); n != 2 {
		t.Errorf("size after the bound: %d", n)
	}

	// Expiry by age, a batch at a time.
	if n, err := st.ExpireArchive(ctx, time.Now().Add(time.Minute), 4); err != nil || n != 4 {
		t.Fatalf("expire: %d, %v", n, err)
	}
	if n, err := st.ExpireArchive(ctx, time.Now().Add(time.Minute), 4); err != nil || n != 3 {
		t.Fatalf("expire the rest: %d, %v", n, err)
	}
	if n, b, _ := st.ArchiveSize(ctx, "alice"); n != 0 || b != 0 {
		t.Errorf("size after expiry: %d, %d", n, b)
	}

	if _, err := st.AppendArchive(ctx, "alice", storage.ArchivedMessage{With: "x@y", XML: "<message/>"}, storage.ArchiveQuota{}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.DeleteAccount(ctx, "alice", "alice@example.org"); err != nil {
		t.Fatal(err)
	}
	// A message for the deleted account (one the router had in hand) is
	// not kept, not even for a new account of the same name.
	if _, err := st.AppendArchive(ctx, "alice", storage.ArchivedMessage{With: "x@y", XML: "<message/>"}, storage.ArchiveQuota{}); err != nil {
		t.Errorf("archive of a deleted account: %v", err)
	}
	if err := st.CreateAccount(ctx, storage.Account{Username: "alice"}); err != nil {
		t.Fatal(err)
	}
	if n, _, _ := st.ArchiveSize(ctx, "alice"); n != 0 {
		t.Errorf("a new alice has the old one's archive: %d", n)
	}
}

// TestArchiveUsage: the total of all archives is what the accounts'
// sizes add up to, a message counted as soon as it is appended (queued or
// written); it follows the per-account bound, expiry and the deletion of
// an account, and is the same after the store is opened again.
func TestArchiveUsage(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st := open(t, dir)
	usage := func(st *storage.Bolt, wantMessages int64) int64 {
		t.Helper()
		n, b, err := st.ArchiveUsage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var sumN, sumB int64
		for _, u := range []string{"alice", "bob"} {
			un, ub, err := st.ArchiveSize(ctx, u)
			if err != nil {
				t.Fatal(err)
			}
			sumN, sumB = sumN+int64(un), sumB+ub
		}
		if n != wantMessages || n != sumN || b != sumB || (n > 0) != (b > 0) {
			t.Fatalf("archive usage %d messages, %d bytes; want %d messages, the accounts' sizes add up to %d, %d", n, b, wantMessages, sumN, sumB)
		}
		return b
	}
	usage(st, 0)
	for _, u := range []string{"alice", "bob"} {
		if err := st.CreateAccount(ctx, storage.Account{Username: u}); err != nil {
			t.Fatal(err)
		}
	}
	appendN := func(user string, n int, q storage.ArchiveQuota) {
		t.Helper()
		for i := range n {
			m := storage.ArchivedMessage{With: "carol@example.org", XML: fmt.Sprintf("<message><body>%s %d</body></message>", user, i)}
			if _, err := st.AppendArchive(ctx, user, m, q); err != nil {
				t.Fatal(err)
			}
		}
	}
	appendN("alice", 3, storage.ArchiveQuota{})
	usage(st, 3) // right after the appends: what is queued counts
	appendN("bob", 4, storage.ArchiveQuota{MaxMessages: 2})
	usage(st, 5) // bob keeps his newest 2
	if n, err := st.ExpireArchive(ctx, time.Now().Add(time.Minute), 1); err != nil || n != 1 {
		t.Fatalf("expire: %d %v", n, err)
	}
	usage(st, 4)
	if _, err := st.DeleteAccount(ctx, "bob", "bob@example.org"); err != nil {
		t.Fatal(err)
	}
	b := usage(st, 2)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st = open(t, dir)
	if got := usage(st, 2); got != b {
		t.Fatalf("after reopening: %d bytes, before %d", got, b)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := st.ArchiveUsage(cancelled); !errors.Is(err, context.Canceled) {
		t.Fatalf("with a cancelled context: %v", err)
	}
}
