package postgres_test

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/adhocd/adhocd/adhoc"
	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/storage/postgres"
	"github.com/adhocd/adhocd/storage/postgres/pgtest"
)

// TestSessionStore: what two replicas sharing the session table see. A
// session one stores the other reads with its revision; of two updates
// from the same revision the second is refused (ErrSessionChanged); an
// ended session reads as ended on both; the per-owner cap counts both
// replicas' sessions; both get the same session-id secret.
func TestSessionStore(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dsn := pgtest.Start(t)
	open := func() *postgres.SessionStore {
		db, err := postgres.Open(ctx, config.PostgresStorage{DSN: dsn})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(db.Close)
		return postgres.NewSessionStore(db, time.Minute, 2)
	}
	one, two := open(), open()

	s1, err := one.Secret(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := two.Secret(ctx)
	if err != nil || !bytes.Equal(s1, s2) || len(s1) != 32 {
		t.Fatalf("secrets %x and %x (%v): want one 32-byte secret for both", s1, s2, err)
	}

	sess := &adhoc.Session{ID: "s1", Node: "wizard", Responder: "localhost", Requester: "alice@localhost/r", Owner: "alice@localhost",
		Values: []adhoc.Values{{"name": {"Ann"}}}}
	if _, err := two.Get(ctx, "s1"); !errors.Is(err, adhoc.ErrNoSession) {
		t.Fatalf("unknown session: %v, want ErrNoSession", err)
	}
	if err := one.Put(ctx, sess); err != nil || sess.Revision != 1 {
		t.Fatalf("put a new session: %v, revision %d", err, sess.Revision)
	}
	got, err := two.Get(ctx, "s1")
	if err != nil || got.Revision != 1 || got.Values[0].Get("name") != "Ann" || got.Requester != sess.Requester {
		t.Fatalf("the other replica reads %+v %v", got, err)
	}
	again, err := one.Get(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	got.Stage = 1
	if err := two.Put(ctx, got); err != nil || got.Revision != 2 {
		t.Fatalf("update from revision 1: %v, revision %d", err, got.Revision)
	}
	again.Stage = 1
	if err := one.Put(ctx, again); !errors.Is(err, adhoc.ErrSessionChanged) {
		t.Fatalf("a second update from revision 1: %v, want ErrSessionChanged", err)
	}

	// The cap of 2 per owner counts both replicas' sessions.
	if err := two.Put(ctx, &adhoc.Session{ID: "s2", Node: "wizard", Requester: "alice@localhost/r", Owner: "alice@localhost"}); err != nil {
		t.Fatal(err)
	}
	if err := one.Put(ctx, &adhoc.Session{ID: "s3", Node: "wizard", Requester: "alice@localhost/r", Owner: "alice@localhost"}); !errors.Is(err, adhoc.ErrTooManySessions) {
		t.Fatalf("a third session for alice: %v, want ErrTooManySessions", err)
	}

	if err := one.End(ctx, "s1"); err != nil {
		t.Fatal(err)
	}
	if _, err := two.Get(ctx, "s1"); !errors.Is(err, adhoc.ErrSessionEnded) {
		t.Fatalf("an ended session on the other replica: %v, want ErrSessionEnded", err)
	}
	if err := two.Put(ctx, got); !errors.Is(err, adhoc.ErrSessionEnded) {
		t.Fatalf("an update of an ended session: %v, want ErrSessionEnded", err)
	}
	if err := one.Put(ctx, &adhoc.Session{ID: "s3", Node: "wizard", Requester: "alice@localhost/r", Owner: "alice@localhost"}); err != nil {
		t.Fatalf("a new session once one ended: %v", err)
	}
	if err := two.EndOwner(ctx, "alice@localhost"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"s2", "s3"} {
		if _, err := one.Get(ctx, id); !errors.Is(err, adhoc.ErrSessionEnded) {
			t.Fatalf("%s after EndOwner: %v, want ErrSessionEnded", id, err)
		}
	}
	if st := one.Stats(); st.Held != 0 || st.Refusals != 1 {
		t.Fatalf("stats %+v: want none held and one refusal", st)
	}
}

// TestSecretRace: replicas starting together on a fresh database all get
// the one secret that the first insert stored (with ON CONFLICT DO
// NOTHING, a replica that lost the race read no row and did not start:
// three at once failed about one trial in four).
func TestSecretRace(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for trial := range 8 {
		dsn := pgtest.Start(t)
		stores := make([]*postgres.SessionStore, 3)
		for i := range stores {
			db, err := postgres.Open(ctx, config.PostgresStorage{DSN: dsn})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(db.Close)
			stores[i] = postgres.NewSessionStore(db, time.Minute, 2)
		}
		secrets := make([][]byte, len(stores))
		errs := make([]error, len(stores))
		var wg sync.WaitGroup
		for i, s := range stores {
			wg.Go(func() { secrets[i], errs[i] = s.Secret(ctx) })
		}
		wg.Wait()
		for i := range stores {
			if errs[i] != nil || len(secrets[i]) != 32 || !bytes.Equal(secrets[i], secrets[0]) {
				t.Fatalf("trial %d, replica %d: secret %x, %v; replica 0 has %x", trial, i, secrets[i], errs[i], secrets[0])
			}
		}
	}
}
