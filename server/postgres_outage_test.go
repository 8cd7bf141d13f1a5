package server_test

import (
	"strings"
	"testing"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/servertest"
	"github.com/adhocd/adhocd/storage/postgres/pgtest"
)

// TestPostgresOutage stops the PostgreSQL server under a running adhocd
// and starts it again: meanwhile a stanza that needs the store is answered
// with an error of type wait and a login fails with temporary-auth-failure,
// while the stream already open stays open and the server stays ready;
// once the database is back the
// same stanza and a new login work, without restarting adhocd.
func TestPostgresOutage(t *testing.T) {
	pg := pgtest.NewCluster(t)
	cfg := servertest.Config(t.TempDir())
	cfg.Storage.Backend, cfg.Storage.Postgres.DSN = config.BackendPostgres, pg.CreateDatabase(t)
	srv := servertest.StartConfig(t, cfg)
	srv.AddUser("alice", "pw-alice")
	srv.AddUser("bob", "pw-bob")
	alice := servertest.IQLogin(t, srv, "alice", "pw-alice")
	const rosterGet = `<query xmlns='jabber:iq:roster'/>`
	if a := alice.IQ("get", "", rosterGet); a.Type != "result" {
		t.Fatalf("roster get with the database up: %s", a.XML)
	}

	pg.Stop()
	if a := alice.IQ("get", "", rosterGet); a.Type != "error" || !strings.HasPrefix(a.Err, "wait ") {
		t.Fatalf("roster get with the database down: want an error of type wait, got %s", a.XML)
	}
	_, err := srv.DialErr("bob", "pw-bob", "phone")
	if err == nil || !strings.Contains(err.Error(), "temporary-auth-failure") {
		t.Fatalf("login with the database down: want temporary-auth-failure, got %v", err)
	}
	// Readiness does not follow the shared database: every replica would
	// leave the Service at once.
	if !srv.Ready() {
		t.Fatal("not ready while PostgreSQL is down")
	}
	// The stream is still open and served.
	if a := alice.IQ("get", "localhost", `<ping xmlns='urn:xmpp:ping'/>`); a.Type != "result" {
		t.Fatalf("ping with the database down: %s", a.XML)
	}

	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	if a := alice.IQ("get", "", rosterGet); a.Type != "result" {
		t.Fatalf("roster get once the database is back: %s", a.XML)
	}
	bob, err := srv.DialErr("bob", "pw-bob", "phone")
	if err != nil {
		t.Fatalf("login once the database is back: %v", err)
	}
	bob.Close()
}
