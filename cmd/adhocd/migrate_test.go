package main_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/auth"
	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/servertest"
	"github.com/adhocd/adhocd/storage"
	"github.com/adhocd/adhocd/storage/postgres"
	"github.com/adhocd/adhocd/storage/postgres/pgtest"
)

// TestMigrateBoltToPostgres runs `adhocd migrate bolt-to-postgres` on a
// single node's bbolt store (accounts made by `adhocd user add`, a roster,
// an offline message, the MOTD, an archived message) and then starts a
// server on the database: the old password logs in, the offline message
// and the archive (with its id) are there, and a second run copies
// nothing twice. Run with --from and --dsn alone (no configuration), it
// copies the same into another database.
func TestMigrateBoltToPostgres(t *testing.T) {
	bin := build(t)
	dir := t.TempDir()
	cfg := writeConfig(t, dir)
	for _, u := range []string{"alice", "bob"} {
		if out, err := runCmd(t, bin, "pw-"+u+"\n", "user", "add", u+"@localhost", "--config", cfg); err != nil {
			t.Fatalf("user add %s: %v\n%s", u, err, out)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := storage.Open(filepath.Join(dir, "data"), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.UpdateRosterItem(ctx, "alice", "bob@localhost", func(it *storage.RosterItem, _ bool) (bool, error) {
		it.Subscription, it.Name, it.Groups = storage.SubBoth, "Bob", []string{"Friends"}
		return false, nil
	}); err != nil {
		t.Fatal(err)
	}
	offline := `<message xmlns="jabber:client" from="alice@localhost/a" to="bob@localhost" type="chat"><body>while you were away</body></message>`
	if err := st.StoreOffline(ctx, "bob", storage.OfflineMessage{Stamp: time.Now().UTC().Truncate(time.Microsecond), XML: offline}, storage.OfflineQuota{}); err != nil {
		t.Fatal(err)
	}
	if err := st.PutSetting(ctx, storage.SettingMOTD, []byte(`{"text":"hello","version":3}`)); err != nil {
		t.Fatal(err)
	}
	id, err := st.AppendArchive(ctx, "alice", storage.ArchivedMessage{With: "bob@localhost/b", XML: offline}, storage.ArchiveQuota{})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	dsn := pgtest.Start(t)
	out, err := runCmd(t, bin, "", "migrate", "bolt-to-postgres", "--config", cfg, "--dsn", dsn)
	if err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	for _, want := range []string{"accounts: 2 copied, 0 there already", "roster items: 1", "offline messages: 1", "archived messages: 1", "done:"} {
		if !strings.Contains(out, want) {
			t.Errorf("migrate does not say %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "postgres@") && strings.Contains(dsn, "password") {
		t.Errorf("migrate printed the DSN as given:\n%s", out)
	}
	out, err = runCmd(t, bin, "", "migrate", "bolt-to-postgres", "--config", cfg, "--dsn", dsn)
	if err != nil || !strings.Contains(out, "accounts: 0 copied, 2 there already") || !strings.Contains(out, "archived messages: 1") {
		t.Fatalf("second migrate: %v\n%s", err, out)
	}

	// As docs/clustering.md gives it for an operator without the file at
	// hand: the folder and the database on the command line, no
	// configuration (and none in the working directory), into an empty
	// database. It copies the same, and the old password verifies there.
	dsn2 := pgtest.Start(t)
	cmd := exec.CommandContext(ctx, bin, "migrate", "bolt-to-postgres", "--from", filepath.Join(dir, "data"), "--dsn", dsn2)
	cmd.Dir = t.TempDir()
	raw, err := cmd.CombinedOutput()
	if out := string(raw); err != nil {
		t.Fatalf("migrate with --from and --dsn alone: %v\n%s", err, out)
	} else {
		for _, want := range []string{"copying " + filepath.Join(dir, "data"), "accounts: 2 copied, 0 there already", "roster items: 1", "offline messages: 1", "archived messages: 1", "done:"} {
			if !strings.Contains(out, want) {
				t.Errorf("migrate with --from and --dsn alone does not say %q:\n%s", want, out)
			}
		}
	}
	db, err := postgres.Open(ctx, config.PostgresStorage{DSN: dsn2})
	if err != nil {
		t.Fatal(err)
	}
	st2 := postgres.NewStore(db)
	a, err := st2.Account(ctx, "alice")
	if err != nil || !auth.VerifyPassword(a, "pw-alice") || auth.VerifyPassword(a, "wrong") {
		t.Fatalf("alice's account copied without a configuration: %v (her password verifies: %v)", err, err == nil && auth.VerifyPassword(a, "pw-alice"))
	}
	if msgs, _, err := st2.QueryArchive(ctx, "alice", storage.ArchiveQuery{Max: 10}); err != nil || len(msgs) != 1 || msgs[0].ID != id {
		t.Fatalf("alice's archive copied without a configuration: %+v %v, want the message with id %s", msgs, err, id)
	}
	st2.Close()

	c := servertest.Config(t.TempDir())
	c.Storage.Backend, c.Storage.Postgres.DSN = config.BackendPostgres, dsn
	srv := servertest.StartConfig(t, c)
	alice, err := srv.DialErr("alice", "pw-alice", "laptop")
	if err != nil {
		t.Fatalf("alice cannot log in with her old password after the migration: %v", err)
	}
	defer alice.Close()
	if _, err := srv.DialErr("alice", "wrong", "laptop"); err == nil {
		t.Fatal("a wrong password logs in after the migration")
	}
	roster, _, err := srv.Store().Roster(ctx, "alice")
	if err != nil || len(roster) != 1 || roster[0].JID != "bob@localhost" || roster[0].Subscription != storage.SubBoth || roster[0].Name != "Bob" {
		t.Fatalf("alice's roster after the migration: %+v %v", roster, err)
	}
	msgs, _, err := srv.Store().QueryArchive(ctx, "alice", storage.ArchiveQuery{Max: 10})
	if err != nil || len(msgs) != 1 || msgs[0].ID != id || msgs[0].XML != offline {
		t.Fatalf("alice's archive after the migration: %+v %v, want the message with id %s", msgs, err, id)
	}
	motd, err := srv.Store().Setting(ctx, storage.SettingMOTD)
	if err != nil || !strings.Contains(string(motd), `"version":3`) {
		t.Fatalf("MOTD after the migration: %q %v", motd, err)
	}
	bob := srv.RawLogin("bob", "pw-bob", "phone")
	bob.Write("<presence/>") // offline messages come with the first available presence
	// The MOTD (a migrated setting) comes first, as a headline.
	if got := bob.Expect(`while you were away(?s:.*?)</message>`); !strings.Contains(got, "Message of the Day") || !strings.Contains(got, `from="alice@localhost/a"`) {
		t.Fatalf("bob's offline message after the migration: %s", got)
	}
}
