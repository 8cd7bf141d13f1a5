package router_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/adhocd/adhocd/adhoc"
	"github.com/adhocd/adhocd/server"
	"github.com/adhocd/adhocd/servertest"
	"github.com/adhocd/adhocd/storage"
)

// fullDisk is a store whose writes fail with ENOSPC while full is set, as a
// full disk (or a store mounted read-only) makes them fail; reads work.
type fullDisk struct {
	*storage.Bolt
	full atomic.Bool
}

func (f *fullDisk) fail(op string) error {
	if f.full.Load() {
		return fmt.Errorf("storage: %s: %w", op, syscall.ENOSPC)
	}
	return nil
}

func (f *fullDisk) CreateAccount(ctx context.Context, a storage.Account) error {
	if err := f.fail("create account"); err != nil {
		return err
	}
	return f.Bolt.CreateAccount(ctx, a)
}

func (f *fullDisk) UpdateAccount(ctx context.Context, u string, fn func(*storage.Account) error) error {
	if err := f.fail("update account"); err != nil {
		return err
	}
	return f.Bolt.UpdateAccount(ctx, u, fn)
}

func (f *fullDisk) UpdateRosterItem(ctx context.Context, u, c string, fn func(*storage.RosterItem, bool) (bool, error)) (uint64, error) {
	if err := f.fail("update roster"); err != nil {
		return 0, err
	}
	return f.Bolt.UpdateRosterItem(ctx, u, c, fn)
}

func (f *fullDisk) PutSetting(ctx context.Context, k string, v []byte) error {
	if err := f.fail("put setting"); err != nil {
		return err
	}
	return f.Bolt.PutSetting(ctx, k, v)
}

// TestFullDisk: with every write failing, writes are answered with an error
// (resource-constraint), nothing crashes, streams stay up and reads go on;
// once space is back, writes work again.
func TestFullDisk(t *testing.T) {
	dir := t.TempDir()
	bolt, err := storage.Open(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bolt.Close() })
	st := &fullDisk{Bolt: bolt}
	cfg := servertest.Config(dir)
	cfg.Admins = []string{"root@localhost"}
	srv := servertest.StartConfig(t, cfg, server.WithStore(st))
	srv.AddUser("alice", "wonderland")
	srv.AddUser("root", "toor")
	alice := srv.Dial("alice", "wonderland", "")
	root := adhoc.NewRequester(srv.Dial("root", "toor", "").Session)

	st.full.Store(true)
	_, err = alice.IQ(ctx(t), `<iq type='set' id='r1'><query xmlns='jabber:iq:roster'><item jid='bob@localhost'/></query></iq>`)
	if err == nil || !strings.Contains(err.Error(), "<resource-constraint") {
		t.Fatalf("roster set on a full disk: %v", err)
	}
	// The stream is still up and served.
	if _, err := alice.IQ(ctx(t), `<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`); err != nil {
		t.Fatalf("the stream did not survive the failed write: %v", err)
	}
	// An admin write fails with an error reply...
	r, err := root.Start(ctx(t), jid.MustParse("localhost"), "http://jabber.org/protocol/admin#add-user")
	if err != nil {
		t.Fatal(err)
	}
	_, err = root.Complete(ctx(t), r, adhoc.Values{"accountjid": {"carol@localhost"}, "password": {"c"}, "password-verify": {"c"}})
	if adhoc.Condition(err) != "resource-constraint" {
		t.Fatalf("add-user on a full disk: %v", err)
	}
	// ...while reads go on: counts, and logins (whose last-login record fails).
	if n, err := root.Start(ctx(t), jid.MustParse("localhost"), "http://jabber.org/protocol/admin#get-registered-users-num"); err != nil || n.Forms[0].Value("registeredusersnum") != "2" {
		t.Fatalf("a read on a full disk: %+v %v", n, err)
	}
	srv.Dial("alice", "wonderland", "")

	st.full.Store(false)
	r, err = root.Start(ctx(t), jid.MustParse("localhost"), "http://jabber.org/protocol/admin#add-user")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := root.Complete(ctx(t), r, adhoc.Values{"accountjid": {"carol@localhost"}, "password": {"c"}, "password-verify": {"c"}}); err != nil {
		t.Fatalf("add-user after space came back: %v", err)
	}
	srv.Dial("carol", "c", "")
}
