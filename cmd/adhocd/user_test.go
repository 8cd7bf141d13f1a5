package main_test

import (
	"context"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/adhocd/adhocd/servertest"
	"github.com/adhocd/adhocd/storage"
)

// TestUserDisableEnableDelete runs the real binary's user commands, first
// with the server stopped (on the store directly) and then through the
// running server's control socket with a raw XMPP client (servertest.Raw)
// logged in: disable refuses logins (and, online, ends the session), enable
// lets the account in again, and delete also removes the account from the
// other accounts' rosters.
func TestUserDisableEnableDelete(t *testing.T) {
	bin := build(t)
	dir := t.TempDir()
	cfg := writeConfig(t, dir)
	user := func(stdin string, args ...string) {
		t.Helper()
		if out, err := runCmd(t, bin, stdin, append([]string{"user", args[0], "--config", cfg}, args[1:]...)...); err != nil {
			t.Fatalf("user %v: %v\n%s", args, err, out)
		}
	}
	for _, u := range []string{"alice", "bob", "carol"} {
		user("pw-"+u+"\n", "add", u+"@localhost")
	}
	// Offline: bob lists alice and carol; disable and enable carol; delete
	// alice.
	ctx := context.Background()
	st, err := storage.Open(filepath.Join(dir, "data"), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, contact := range []string{"alice@localhost", "carol@localhost"} {
		_, err := st.UpdateRosterItem(ctx, "bob", contact, func(it *storage.RosterItem, _ bool) (bool, error) {
			it.Subscription = storage.SubBoth
			return false, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	user("", "disable", "carol")
	user("", "delete", "alice@localhost")
	st, err = storage.Open(filepath.Join(dir, "data"), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if a, err := st.Account(ctx, "carol"); err != nil || !a.Disabled {
		t.Fatalf("carol after user disable: %+v %v", a, err)
	}
	if items, _, err := st.Roster(ctx, "bob"); err != nil || len(items) != 1 || items[0].JID != "carol@localhost" {
		t.Fatalf("bob's roster after the offline delete of alice: %+v %v", items, err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	user("", "enable", "carol")

	// Online: through the control socket.
	cmd, addrs, logs := startAdhocd(t, bin, cfg)
	addr := next(t, addrs, logs)
	tlsCfg := clientTLS(t, dir)
	carol := servertest.DialRaw(t, addr)
	carol.Login(tlsCfg, "carol", "pw-carol", "desk") // enabled again
	user("", "disable", "carol@localhost")
	if got, _ := carol.ClosedByServer(5 * time.Second); !strings.Contains(got, "<not-authorized") || !strings.Contains(got, "disabled") {
		t.Fatalf("carol's session after user disable: %q", got)
	}
	again := servertest.DialRaw(t, addr)
	again.StartTLS(tlsCfg)
	again.Write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGNhcm9sAHB3LWNhcm9s</auth>`) // carol, pw-carol
	if got := again.Expect(`</failure>`); !strings.Contains(got, "<account-disabled/>") {
		t.Fatalf("a disabled carol logging in: %q", got)
	}
	user("", "enable", "carol")
	servertest.DialRaw(t, addr).Login(tlsCfg, "carol", "pw-carol", "desk")
	if out, err := runCmd(t, bin, "", "user", "delete", "--config", cfg, "alice@localhost"); err == nil || !strings.Contains(out, "not found") {
		t.Fatalf("deleting alice twice: %v %s", err, out)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
}
