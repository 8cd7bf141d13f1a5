package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/storage"
	"github.com/adhocd/adhocd/storage/postgres/pgtest"
)

// TestArchiveBatchFallback: a batch that fails (here one of its ids is
// taken already, as another replica's could be) is written a message at a
// time, by the same code for an account's archive and a room's: the
// message under a new id, after the one that held its id, its quota
// applied; a message of an owner not stored is dropped without an error.
func TestArchiveBatchFallback(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := Open(ctx, config.PostgresStorage{DSN: pgtest.Start(t)})
	if err != nil {
		t.Fatal(err)
	}
	s := NewStore(db)
	t.Cleanup(func() { _ = s.Close() })
	if err := s.CreateAccount(ctx, storage.Account{Username: "alice", Created: time.Now().Add(-time.Hour).UTC()}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutRoom(ctx, "conference.example.org", "lobby", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	kinds := []struct {
		name   string
		a      *archiveTable
		key    []string
		ghost  []string
		append func(storage.ArchivedMessage, storage.ArchiveQuota) (string, error)
		all    func() ([]storage.ArchivedMessage, bool, error)
	}{
		{"account", accountArchives, []string{"alice"}, []string{"ghost"},
			func(m storage.ArchivedMessage, q storage.ArchiveQuota) (string, error) {
				return s.AppendArchive(ctx, "alice", m, q)
			},
			func() ([]storage.ArchivedMessage, bool, error) {
				return s.QueryArchive(ctx, "alice", storage.ArchiveQuery{Max: 100})
			}},
		{"room", roomArchives, []string{"conference.example.org", "lobby"}, []string{"conference.example.org", "ghost"},
			func(m storage.ArchivedMessage, q storage.ArchiveQuota) (string, error) {
				return s.AppendRoomArchive(ctx, "conference.example.org", "lobby", m, q)
			},
			func() ([]storage.ArchivedMessage, bool, error) {
				return s.QueryRoomArchive(ctx, "conference.example.org", "lobby", storage.ArchiveQuery{Max: 100})
			}},
	}
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			first := storage.ArchivedMessage{With: "bob@example.org", XML: "<message xmlns='jabber:client'><body>first</body></message>"}
			id, err := k.append(first, storage.ArchiveQuota{})
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := k.all(); err != nil { // written
				t.Fatal(err)
			}
			n, _ := storage.ParseArchiveID(id)
			again := storage.ArchivedMessage{With: "carol@example.org", XML: "<message xmlns='jabber:client'><body>again</body></message>"}
			batch := []pendingArchive{
				{key: k.key, id: n, m: again, q: storage.ArchiveQuota{MaxMessages: 1}},
				{key: k.ghost, id: s.clock.Next(time.Now()), m: again},
			}
			if err := s.writeBatch(ctx, k.a, batch); err != nil {
				t.Fatalf("writeBatch with a taken id: %v", err)
			}
			got, complete, err := k.all()
			if err != nil || !complete {
				t.Fatalf("the archive after the batch: complete %v, %v", complete, err)
			}
			if len(got) != 1 || got[0].ID <= id || got[0].With != again.With || got[0].XML != again.XML {
				t.Fatalf("the archive after a batch whose id was taken, with MaxMessages 1: %+v; want %q alone under an id after %s", got, again.XML, id)
			}
			var ghosts int
			if err := s.db.pool.QueryRow(ctx, `SELECT count(*) FROM `+k.a.table+` WHERE `+ownerMatch(k.a.cols), keyArgs(k.ghost)...).Scan(&ghosts); err != nil {
				t.Fatal(err)
			}
			if ghosts != 0 {
				t.Fatalf("%d messages kept for an owner not stored", ghosts)
			}
		})
	}
}
