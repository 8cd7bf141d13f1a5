package account_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/adhocd/adhocd/account"
	"github.com/adhocd/adhocd/auth"
	"github.com/adhocd/adhocd/storage"
)

// recorder is a Sessions that records what the Service asked of it and
// whether the account still existed at that moment.
type recorder struct {
	st    storage.Store
	mu    sync.Mutex
	calls []string
}

func (r *recorder) exists(user string) bool {
	_, err := r.st.Account(context.Background(), user)
	return err == nil
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, s)
}

func (r *recorder) EndSessions(user, except, reason string) int {
	r.add(fmt.Sprintf("end %s except=%q (%s) exists=%v", user, except, reason, r.exists(user)))
	return 1
}

func (r *recorder) ContactRemoved(_ context.Context, deleted jid.JID, it storage.RemovedItem) {
	r.add(fmt.Sprintf("tell %s: %s left, was %s", it.Owner, deleted, it.Item.Subscription))
}

func (r *recorder) AccountCreated(_ context.Context, created jid.JID) {
	r.add("created " + created.String())
}

func (r *recorder) AccountDeleted(_ context.Context, deleted jid.JID) {
	r.add("forget " + deleted.String())
}

func open(t *testing.T) *storage.Bolt {
	t.Helper()
	st, err := storage.Open(t.TempDir(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestServiceRules: the session rules, each stated once in the Service, as
// every caller (CLI, control socket, admin commands, bootstrap) gets them.
func TestServiceRules(t *testing.T) {
	ctx := context.Background()
	st := open(t)
	rec := &recorder{st: st}
	svc := account.New(st, "localhost", 4096, rec)

	if err := svc.Add(ctx, "alice@localhost", "one"); err != nil {
		t.Fatal(err)
	}
	if err := svc.Add(ctx, "alice", "two"); !errors.Is(err, storage.ErrExists) {
		t.Fatalf("second add: %v, want ErrExists", err)
	}
	if err := svc.Add(ctx, "eve@example.org", "x"); !errors.Is(err, account.ErrWrongDomain) {
		t.Fatalf("foreign domain: %v", err)
	}
	for _, u := range []string{"bob", "carol"} {
		if err := svc.Add(ctx, u, "pw"); err != nil {
			t.Fatal(err)
		}
	}
	// The running server hears of each account made, and only of those.
	if want := []string{"created alice@localhost", "created bob@localhost", "created carol@localhost"}; !slices.Equal(rec.calls, want) {
		t.Fatalf("add told %q, want %q", rec.calls, want)
	}

	// A password change ends the other sessions, keeping the one asked for.
	if n, err := svc.SetPassword(ctx, "alice@localhost", "three", "laptop"); err != nil || n != 1 {
		t.Fatalf("passwd: %d %v", n, err)
	}
	if a, _ := st.Account(ctx, "alice"); !auth.VerifyPassword(a, "three") {
		t.Fatal("the new password does not verify")
	}
	// Disable: refused first, then the sessions end.
	if _, err := svc.Disable(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if a, _ := st.Account(ctx, "bob"); !a.Disabled {
		t.Fatal("bob is not disabled")
	}
	if err := svc.Enable(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if a, _ := st.Account(ctx, "bob"); a.Disabled {
		t.Fatal("bob is still disabled")
	}

	// Delete: sessions end while the account exists, then it and its items
	// in other rosters go, the contacts are told and its memory forgotten.
	_, err := st.UpdateRosterItem(ctx, "carol", "alice@localhost", func(it *storage.RosterItem, _ bool) (bool, error) {
		it.Subscription = storage.SubBoth
		return false, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	rec.calls = nil
	if err := svc.Delete(ctx, "alice@localhost"); err != nil {
		t.Fatal(err)
	}
	want := []string{
		`end alice except="" (the account was deleted) exists=true`,
		`end alice except="" (the account was deleted) exists=false`,
		`tell carol: alice@localhost left, was both`,
		`forget alice@localhost`,
	}
	if !slices.Equal(rec.calls, want) {
		t.Fatalf("delete asked\n%s\nwant\n%s", strings.Join(rec.calls, "\n"), strings.Join(want, "\n"))
	}
	if items, _, _ := st.Roster(ctx, "carol"); len(items) != 0 {
		t.Fatalf("carol's roster still has %+v", items)
	}
	if err := svc.Delete(ctx, "alice"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
	if users, err := svc.List(ctx); err != nil || !slices.Equal(users, []string{"bob@localhost", "carol@localhost"}) {
		t.Fatalf("list %v %v", users, err)
	}
}

// TestDoOffline: the command line's requests on a store with no server
// (NoSessions) run the same operations.
func TestDoOffline(t *testing.T) {
	ctx := context.Background()
	svc := account.New(open(t), "localhost", 4096, account.NoSessions{})
	for _, req := range []account.Request{
		{Op: "add", User: "alice@localhost", Password: "pw"},
		{Op: "add", User: "bob", Password: "pw"},
		{Op: "passwd", User: "bob", Password: "new"},
		{Op: "disable", User: "bob"},
		{Op: "enable", User: "bob"},
		{Op: "delete", User: "alice"},
	} {
		if resp := svc.Do(ctx, req); resp.Error != "" {
			t.Fatalf("%+v: %s", req, resp.Error)
		}
	}
	if resp := svc.Do(ctx, account.Request{Op: "list"}); resp.Error != "" || !slices.Equal(resp.Users, []string{"bob@localhost"}) {
		t.Fatalf("list: %+v", resp)
	}
	if resp := svc.Do(ctx, account.Request{Op: "rename"}); !strings.Contains(resp.Error, "unknown operation") {
		t.Fatalf("unknown op: %+v", resp)
	}
	if resp := svc.Do(ctx, account.Request{Op: "delete", User: "nobody"}); !strings.Contains(resp.Error, "not found") {
		t.Fatalf("delete of nobody: %+v", resp)
	}
}

// TestAdminsReloadAndEditRace: many reloads and edits at once; each keeps
// its half of the list (run with -race).
func TestAdminsReloadAndEditRace(t *testing.T) {
	ctx := context.Background()
	a := account.NewAdmins([]string{"root@localhost"})
	a.SetBootstrap("boot@localhost")
	if err := a.Load(ctx, open(t)); err != nil {
		t.Fatal(err)
	}
	const n = 50
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { a.Reconfigure([]string{"root@localhost", fmt.Sprintf("cfg%d@localhost", i)}) })
		wg.Go(func() {
			if err := a.Set(ctx, []string{fmt.Sprintf("ed%d@localhost", i)}); err != nil {
				t.Error(err)
			}
		})
		wg.Go(func() { _ = a.Is(jid.MustParse("root@localhost")) })
	}
	wg.Wait()
	a.Reconfigure([]string{"root@localhost", "cfg@localhost"})
	if err := a.Set(ctx, []string{"ed@localhost", "ed@localhost"}); err != nil {
		t.Fatal(err)
	}
	configured, stored := a.Lists()
	if !slices.Equal(configured, []string{"root@localhost", "cfg@localhost", "boot@localhost"}) || !slices.Equal(stored, []string{"ed@localhost"}) {
		t.Fatalf("configured %v stored %v", configured, stored)
	}
	for _, j := range []string{"root@localhost", "cfg@localhost", "boot@localhost", "ed@localhost/res"} {
		if !a.Is(jid.MustParse(j)) {
			t.Errorf("%s is not an admin", j)
		}
	}
	if a.Is(jid.MustParse("cfg1@localhost")) {
		t.Error("an admin of an old configuration stayed")
	}
	if err := a.Set(ctx, []string{"localhost"}); err == nil {
		t.Error("a server JID was stored as an admin")
	}
	// Stored admins come back from the store.
	st := open(t)
	b := account.NewAdmins(nil)
	if err := b.Load(ctx, st); err != nil {
		t.Fatal(err)
	}
	if err := b.Set(ctx, []string{"ops@localhost"}); err != nil {
		t.Fatal(err)
	}
	c := account.NewAdmins(nil)
	if err := c.Load(ctx, st); err != nil {
		t.Fatal(err)
	}
	if _, stored := c.Lists(); !slices.Equal(stored, []string{"ops@localhost"}) {
		t.Fatalf("loaded %v", stored)
	}
}
