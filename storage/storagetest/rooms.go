package storagetest

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/adhocd/adhocd/storage"
)

var roomCases = []testCase{
	{"PutGet", testRoomsPutGet},
	{"List", testRoomsList},
	{"Delete", testRoomsDelete},
	{"ArchiveAppend", testRoomArchiveAppend},
	{"ArchiveQuery", testRoomArchiveQuery},
	{"ArchiveUnknownID", testRoomArchiveUnknownID},
	{"ArchiveQuota", testRoomArchiveQuota},
	{"ArchiveReplace", testRoomArchiveReplace},
	{"ArchiveExpire", testRoomArchiveExpire},
	{"ArchiveNoRoom", testRoomArchiveNoRoom},
	{"ArchiveApart", testRoomArchiveApart},
	{"Transfer", testRoomsTransfer},
}

// The services and rooms of the cases.
const (
	svcA = "conference.example.org"
	svcB = "chat.example.org"
)

// putRoom stores state for the room.
func putRoom(t *testing.T, ctx context.Context, s storage.Store, service, room string, state []byte) {
	t.Helper()
	must(t, s.PutRoom(ctx, service, room, state), fmt.Sprintf("PutRoom(%q, %q)", service, room))
}

// checkRoom fails the test unless the room's stored state is want.
func checkRoom(t *testing.T, ctx context.Context, s storage.Store, service, room string, want []byte) {
	t.Helper()
	got, err := s.Room(ctx, service, room)
	must(t, err, fmt.Sprintf("Room(%q, %q)", service, room))
	if !bytes.Equal(got, want) {
		t.Fatalf("Room(%q, %q) = %q, want %q", service, room, got, want)
	}
}

// roomState is a state document as a module might keep it.
func roomState(name string) []byte {
	return []byte(`{"jid":"` + name + `@` + svcA + `","config":{"name":"☃ ` + name + `"},"affiliations":{"alice@example.org":"owner"}}`)
}

// roomMsgs returns n messages of a room, from occupants with these
// nicknames in turn.
func roomMsgs(service, room string, n int, nicks ...string) []storage.ArchivedMessage {
	var out []storage.ArchivedMessage
	for i := range n {
		from := room + "@" + service + "/" + nicks[i%len(nicks)]
		out = append(out, storage.ArchivedMessage{With: from,
			XML: fmt.Sprintf("<message xmlns='jabber:client' from='%s' type='groupchat' id='g%d'><body>said %d &amp; ☃</body></message>", from, i, i)})
	}
	return out
}

// appendRoom appends msgs to the room's archive within q and returns their
// ids.
func appendRoom(t *testing.T, ctx context.Context, s storage.Store, service, room string, q storage.ArchiveQuota, msgs ...storage.ArchivedMessage) []string {
	t.Helper()
	var ids []string
	for _, m := range msgs {
		id, err := s.AppendRoomArchive(ctx, service, room, m, q)
		must(t, err, fmt.Sprintf("AppendRoomArchive(%q, %q)", service, room))
		ids = append(ids, id)
	}
	return ids
}

// roomAll returns the room's whole archive, which must be complete in one
// page.
func roomAll(t *testing.T, ctx context.Context, s storage.Store, service, room string) []storage.ArchivedMessage {
	t.Helper()
	msgs, complete, err := s.QueryRoomArchive(ctx, service, room, storage.ArchiveQuery{Max: 100000})
	must(t, err, fmt.Sprintf("QueryRoomArchive(%q, %q)", service, room))
	if !complete {
		t.Fatalf("QueryRoomArchive(%q, %q) of the whole archive is not complete", service, room)
	}
	return msgs
}

// roomAndOther stores the rooms "r" and "other" of svcA, appends n
// messages from the occupant nick to r and one to other, and returns the id
// of other's: an id that r's archive does not hold.
func roomAndOther(t *testing.T, ctx context.Context, s storage.Store, n int, nick string) string {
	t.Helper()
	putRoom(t, ctx, s, svcA, "r", roomState("r"))
	putRoom(t, ctx, s, svcA, "other", roomState("other"))
	appendRoom(t, ctx, s, svcA, "r", storage.ArchiveQuota{}, roomMsgs(svcA, "r", n, nick)...)
	return appendRoom(t, ctx, s, svcA, "other", storage.ArchiveQuota{}, roomMsgs(svcA, "other", 1, "a")...)[0]
}

// checkRoomQuery fails the test unless q returns want, in order, with this
// complete flag.
func checkRoomQuery(t *testing.T, ctx context.Context, s storage.Store, service, room string, q storage.ArchiveQuery, want []storage.ArchivedMessage, complete bool) {
	t.Helper()
	got, c, err := s.QueryRoomArchive(ctx, service, room, q)
	must(t, err, fmt.Sprintf("QueryRoomArchive(%q, %+v)", room, q))
	if !slices.EqualFunc(got, want, archivedEqual) {
		t.Fatalf("QueryRoomArchive(%q, %+v):\n got  %q\n want %q", room, q, idsOf(got), idsOf(want))
	}
	if c != complete {
		t.Fatalf("QueryRoomArchive(%q, %+v): complete %v, want %v", room, q, c, complete)
	}
}

// testRoomsPutGet: PutRoom stores a state byte for byte and replaces it;
// Room returns it, ErrNotFound for a room not stored (in its service or
// another).
func testRoomsPutGet(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	_, err := s.Room(ctx, svcA, "lobby")
	wantErr(t, err, storage.ErrNotFound, "Room of a new store")
	putRoom(t, ctx, s, svcA, "lobby", roomState("lobby"))
	checkRoom(t, ctx, s, svcA, "lobby", roomState("lobby"))
	binary := seq(3, 300) // NUL and 0xff among them
	putRoom(t, ctx, s, svcA, "lobby", binary)
	checkRoom(t, ctx, s, svcA, "lobby", binary)
	_, err = s.Room(ctx, svcB, "lobby")
	wantErr(t, err, storage.ErrNotFound, "Room of another service")
	_, err = s.Room(ctx, svcA, "lobb")
	wantErr(t, err, storage.ErrNotFound, "Room of a name that is a prefix")
	if err := s.PutRoom(ctx, svcA, "", roomState("x")); err == nil {
		t.Fatal("PutRoom with an empty room name succeeded")
	}
	if err := s.PutRoom(ctx, "", "lobby", roomState("x")); err == nil {
		t.Fatal("PutRoom with an empty service succeeded")
	}
}

// testRoomsList: Rooms lists one service's rooms, ordered by the bytes of
// their names, each with its state.
func testRoomsList(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	rooms, err := s.Rooms(ctx, svcA)
	must(t, err, "Rooms of a new store")
	if len(rooms) != 0 {
		t.Fatalf("Rooms of a new store: %d", len(rooms))
	}
	names := []string{"zeta", "Alpha", "alpha", "été", "a.b", "a"}
	for _, n := range names {
		putRoom(t, ctx, s, svcA, n, roomState(n))
	}
	putRoom(t, ctx, s, svcB, "other", roomState("other"))
	rooms, err = s.Rooms(ctx, svcA)
	must(t, err, "Rooms")
	var got []string
	for _, r := range rooms {
		got = append(got, r.Name)
		if r.Service != svcA || !bytes.Equal(r.State, roomState(r.Name)) {
			t.Fatalf("Rooms: %q of %q with state %q", r.Name, r.Service, r.State)
		}
	}
	want := slices.Clone(names)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("Rooms = %q, want %q", got, want)
	}
}

// testRoomsDelete: DeleteRoom removes the room and its archive (what was
// appended just before too), is no error for a room not stored, and a
// room stored again under the name starts with an empty archive; other
// rooms keep theirs.
func testRoomsDelete(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	putRoom(t, ctx, s, svcA, "gone", roomState("gone"))
	putRoom(t, ctx, s, svcA, "kept", roomState("kept"))
	appendRoom(t, ctx, s, svcA, "gone", storage.ArchiveQuota{}, roomMsgs(svcA, "gone", 3, "a")...)
	roomAll(t, ctx, s, svcA, "gone")
	appendRoom(t, ctx, s, svcA, "gone", storage.ArchiveQuota{}, roomMsgs(svcA, "gone", 2, "b")...)
	kept := appendRoom(t, ctx, s, svcA, "kept", storage.ArchiveQuota{}, roomMsgs(svcA, "kept", 2, "a")...)
	must(t, s.DeleteRoom(ctx, svcA, "gone"), "DeleteRoom")
	must(t, s.DeleteRoom(ctx, svcA, "gone"), "DeleteRoom again")
	must(t, s.DeleteRoom(ctx, svcB, "never"), "DeleteRoom of a room never stored")
	_, err := s.Room(ctx, svcA, "gone")
	wantErr(t, err, storage.ErrNotFound, "Room after DeleteRoom")
	rooms, err := s.Rooms(ctx, svcA)
	must(t, err, "Rooms")
	if len(rooms) != 1 || rooms[0].Name != "kept" {
		t.Fatalf("Rooms after a deletion: %+v", rooms)
	}
	putRoom(t, ctx, s, svcA, "gone", roomState("gone"))
	checkRoomQuery(t, ctx, s, svcA, "gone", storage.ArchiveQuery{Max: 10}, nil, true)
	if got := idsOf(roomAll(t, ctx, s, svcA, "kept")); !slices.Equal(got, kept) {
		t.Fatalf("the other room's archive after a deletion: %q, want %q", got, kept)
	}
	ids := appendRoom(t, ctx, s, svcA, "gone", storage.ArchiveQuota{}, roomMsgs(svcA, "gone", 1, "c")...)
	if got := idsOf(roomAll(t, ctx, s, svcA, "gone")); !slices.Equal(got, ids) {
		t.Fatalf("the new room's archive: %q, want %q", got, ids)
	}
}

// testRoomArchiveAppend: ids sort in the order of the appends, m.ID is
// ignored, and each message comes back as it was with a stamp of its
// append.
func testRoomArchiveAppend(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	putRoom(t, ctx, s, svcA, "r", roomState("r"))
	msgs := roomMsgs(svcA, "r", 12, "alice", "bob", "☃ snow")
	for i := range msgs {
		msgs[i].ID = "chosen-by-the-caller"
	}
	start := time.Now()
	ids := appendRoom(t, ctx, s, svcA, "r", storage.ArchiveQuota{}, msgs...)
	end := time.Now()
	got := roomAll(t, ctx, s, svcA, "r")
	if len(got) != len(msgs) {
		t.Fatalf("the room's archive holds %d messages, want %d", len(got), len(msgs))
	}
	for i, m := range got {
		if i > 0 && ids[i-1] >= ids[i] {
			t.Fatalf("ids %q, %q of appends %d and %d are not in order", ids[i-1], ids[i], i-1, i)
		}
		if m.ID != ids[i] || m.With != msgs[i].With || m.XML != msgs[i].XML {
			t.Fatalf("message %d came back as %q with %q: %q", i, m.ID, m.With, m.XML)
		}
		if m.Stamp.Before(start.Add(-stampSlack)) || m.Stamp.After(end.Add(stampSlack)) {
			t.Fatalf("message %d stamped %v, appended between %v and %v", i, m.Stamp, start, end)
		}
	}
}

// testRoomArchiveQuery: the filters and paging of QueryArchive on a room's
// archive: with an occupant's room JID or the room's, ids, after and
// before, forward and last pages, start and end.
func testRoomArchiveQuery(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	putRoom(t, ctx, s, svcA, "r", roomState("r"))
	var sp spacer
	for _, m := range roomMsgs(svcA, "r", 8, "alice", "bob") {
		sp.wait()
		appendRoom(t, ctx, s, svcA, "r", storage.ArchiveQuota{}, m)
	}
	sp.wait()
	appendRoom(t, ctx, s, svcA, "r", storage.ArchiveQuota{}, storage.ArchivedMessage{With: "r@" + svcA, XML: "<message xmlns='jabber:client' type='groupchat'/>"})
	all := roomAll(t, ctx, s, svcA, "r")
	checkDistinctStamps(t, all)
	alice := "r@" + svcA + "/alice"
	checkRoomQuery(t, ctx, s, svcA, "r", storage.ArchiveQuery{With: alice, Max: 10}, pick(all, 0, 2, 4, 6), true)
	checkRoomQuery(t, ctx, s, svcA, "r", storage.ArchiveQuery{With: "r@" + svcA, Max: 20}, all, true)
	checkRoomQuery(t, ctx, s, svcA, "r", storage.ArchiveQuery{With: "r@" + svcA + "/ali", Max: 10}, nil, true)
	checkRoomQuery(t, ctx, s, svcA, "r", storage.ArchiveQuery{IDs: []string{all[5].ID, all[1].ID, "0000000000000001"}, Max: 10}, pick(all, 1, 5), true)
	checkRoomQuery(t, ctx, s, svcA, "r", storage.ArchiveQuery{Max: 3}, pick(all, 0, 1, 2), false)
	checkRoomQuery(t, ctx, s, svcA, "r", storage.ArchiveQuery{Max: 3, AfterID: all[2].ID}, pick(all, 3, 4, 5), false)
	checkRoomQuery(t, ctx, s, svcA, "r", storage.ArchiveQuery{Max: 3, AfterID: all[5].ID}, pick(all, 6, 7, 8), true)
	checkRoomQuery(t, ctx, s, svcA, "r", storage.ArchiveQuery{Max: 2, Last: true}, pick(all, 7, 8), false)
	checkRoomQuery(t, ctx, s, svcA, "r", storage.ArchiveQuery{Max: 2, Last: true, BeforeID: all[2].ID}, pick(all, 0, 1), true)
	checkRoomQuery(t, ctx, s, svcA, "r", storage.ArchiveQuery{With: alice, Max: 1, Last: true, BeforeID: all[6].ID}, pick(all, 4), false)
	checkRoomQuery(t, ctx, s, svcA, "r", storage.ArchiveQuery{Start: all[2].Stamp, End: all[4].Stamp, Max: 10}, pick(all, 2, 3, 4), true)
}

// testRoomArchiveUnknownID: an after or before id not in the room's
// archive, one of another room's among them, is ErrNotFound.
func testRoomArchiveUnknownID(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	theirs := roomAndOther(t, ctx, s, 2, "a")
	for _, id := range []string{theirs, "0000000000000001", "not an id"} {
		_, _, err := s.QueryRoomArchive(ctx, svcA, "r", storage.ArchiveQuery{AfterID: id, Max: 10})
		wantErr(t, err, storage.ErrNotFound, "QueryRoomArchive after "+id)
		_, _, err = s.QueryRoomArchive(ctx, svcA, "r", storage.ArchiveQuery{BeforeID: id, Last: true, Max: 10})
		wantErr(t, err, storage.ErrNotFound, "QueryRoomArchive before "+id)
	}
	_, _, err := s.QueryRoomArchive(ctx, svcA, "empty", storage.ArchiveQuery{AfterID: theirs, Max: 10})
	wantErr(t, err, storage.ErrNotFound, "QueryRoomArchive of a room not stored, after an id")
}

// testRoomArchiveQuota: past MaxMessages a room's oldest messages go, and
// only that room's.
func testRoomArchiveQuota(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	putRoom(t, ctx, s, svcA, "r", roomState("r"))
	putRoom(t, ctx, s, svcA, "big", roomState("big"))
	q := storage.ArchiveQuota{MaxMessages: 3}
	ids := appendRoom(t, ctx, s, svcA, "r", q, roomMsgs(svcA, "r", 5, "a")...)
	appendRoom(t, ctx, s, svcA, "big", storage.ArchiveQuota{}, roomMsgs(svcA, "big", 5, "a")...)
	if got := idsOf(roomAll(t, ctx, s, svcA, "r")); !slices.Equal(got, ids[2:]) {
		t.Fatalf("with MaxMessages 3 after 5 appends the room's archive holds %q, want %q", got, ids[2:])
	}
	ids = append(ids, appendRoom(t, ctx, s, svcA, "r", q, roomMsgs(svcA, "r", 1, "b")...)...)
	if got := idsOf(roomAll(t, ctx, s, svcA, "r")); !slices.Equal(got, ids[3:]) {
		t.Fatalf("after one more append the room's archive holds %q, want %q", got, ids[3:])
	}
	if n := len(roomAll(t, ctx, s, svcA, "big")); n != 5 {
		t.Fatalf("one room's quota trimmed another's archive to %d", n)
	}
}

// testRoomArchiveReplace: ReplaceRoomArchived changes the XML of one
// message, which keeps its id, stamp and With and its place; an id the
// room's archive does not hold is ErrNotFound.
func testRoomArchiveReplace(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	theirs := roomAndOther(t, ctx, s, 3, "alice")
	before := roomAll(t, ctx, s, svcA, "r")
	tomb := "<message xmlns='jabber:client' from='r@" + svcA + "/alice' type='groupchat'><retracted xmlns='urn:xmpp:message-retract:1'/></message>"
	must(t, s.ReplaceRoomArchived(ctx, svcA, "r", before[1].ID, tomb), "ReplaceRoomArchived")
	want := slices.Clone(before)
	want[1].XML = tomb
	checkRoomQuery(t, ctx, s, svcA, "r", storage.ArchiveQuery{Max: 10}, want, true)
	for _, id := range []string{theirs, "0000000000000001", "x"} {
		wantErr(t, s.ReplaceRoomArchived(ctx, svcA, "r", id, tomb), storage.ErrNotFound, "ReplaceRoomArchived of "+id)
	}
	wantErr(t, s.ReplaceRoomArchived(ctx, svcB, "r", before[0].ID, tomb), storage.ErrNotFound, "ReplaceRoomArchived in another service")
	// A message appended just before is replaced too.
	ids := appendRoom(t, ctx, s, svcA, "r", storage.ArchiveQuota{}, roomMsgs(svcA, "r", 1, "bob")...)
	must(t, s.ReplaceRoomArchived(ctx, svcA, "r", ids[0], tomb), "ReplaceRoomArchived of a new message")
	if got := roomAll(t, ctx, s, svcA, "r"); len(got) != 4 || got[3].XML != tomb {
		t.Fatalf("after replacing the newest: %+v", got)
	}
	checkRoomQuery(t, ctx, s, svcA, "other", storage.ArchiveQuery{Max: 10}, roomAll(t, ctx, s, svcA, "other")[:1], true)
}

// testRoomArchiveExpire: ExpireRoomArchives removes the messages of every
// room stamped before before, at most limit a call, and returns how many;
// accounts' archives are not touched.
func testRoomArchiveExpire(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	putRoom(t, ctx, s, svcA, "r", roomState("r"))
	putRoom(t, ctx, s, svcB, "r", roomState("r"))
	createAccounts(t, ctx, s, "alice")
	var sp spacer
	for i := range 4 {
		sp.wait()
		appendRoom(t, ctx, s, svcA, "r", storage.ArchiveQuota{}, roomMsgs(svcA, "r", 1, fmt.Sprint("a", i))...)
		sp.wait()
		appendRoom(t, ctx, s, svcB, "r", storage.ArchiveQuota{}, roomMsgs(svcB, "r", 1, fmt.Sprint("b", i))...)
		appendSpaced(t, ctx, s, &sp, "alice", archived(1, "bob@example.org")...)
	}
	sp.wait()
	appendRoom(t, ctx, s, svcA, "r", storage.ArchiveQuota{}, roomMsgs(svcA, "r", 2, "z")...)
	a, b := roomAll(t, ctx, s, svcA, "r"), roomAll(t, ctx, s, svcB, "r")
	checkDistinctStamps(t, a)
	before := a[3].Stamp // after b[2], before b[3]
	checkExpire(t, ctx, "ExpireRoomArchives", s.ExpireRoomArchives, before)
	checkRoomQuery(t, ctx, s, svcA, "r", storage.ArchiveQuery{Max: 100}, a[3:], true)
	checkRoomQuery(t, ctx, s, svcB, "r", storage.ArchiveQuery{Max: 100}, b[3:], true)
	if n := len(archiveAll(t, ctx, s, "alice")); n != 4 {
		t.Fatalf("ExpireRoomArchives left %d of the account's 4 messages", n)
	}
}

// testRoomArchiveNoRoom: a message for a room that is not stored is not
// kept, not for a room stored later under that name either.
func testRoomArchiveNoRoom(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	// It may get an id or an error: either way nothing is kept.
	_, _ = s.AppendRoomArchive(ctx, svcA, "ghost", roomMsgs(svcA, "ghost", 1, "a")[0], storage.ArchiveQuota{})
	checkRoomQuery(t, ctx, s, svcA, "ghost", storage.ArchiveQuery{Max: 10}, nil, true)
	putRoom(t, ctx, s, svcA, "ghost", roomState("ghost"))
	checkRoomQuery(t, ctx, s, svcA, "ghost", storage.ArchiveQuery{Max: 10}, nil, true)
}

// testRoomArchiveApart: rooms of one name on two services, an account of
// that name, and rooms whose names are prefixes of each other keep archives
// of their own.
func testRoomArchiveApart(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	createAccounts(t, ctx, s, "r")
	for _, k := range []struct{ svc, room string }{{svcA, "r"}, {svcB, "r"}, {svcA, "r2"}} {
		putRoom(t, ctx, s, k.svc, k.room, roomState(k.room))
	}
	a := appendRoom(t, ctx, s, svcA, "r", storage.ArchiveQuota{}, roomMsgs(svcA, "r", 2, "x")...)
	b := appendRoom(t, ctx, s, svcB, "r", storage.ArchiveQuota{}, roomMsgs(svcB, "r", 3, "x")...)
	c := appendRoom(t, ctx, s, svcA, "r2", storage.ArchiveQuota{}, roomMsgs(svcA, "r2", 1, "x")...)
	acct := appendArchive(t, ctx, s, "r", storage.ArchiveQuota{}, archived(1, "bob@example.org")...)
	for _, k := range []struct {
		svc, room string
		want      []string
	}{{svcA, "r", a}, {svcB, "r", b}, {svcA, "r2", c}} {
		if got := idsOf(roomAll(t, ctx, s, k.svc, k.room)); !slices.Equal(got, k.want) {
			t.Fatalf("archive of %s of %s: %q, want %q", k.room, k.svc, got, k.want)
		}
	}
	if got := idsOf(archiveAll(t, ctx, s, "r")); !slices.Equal(got, acct) {
		t.Fatalf("the account's archive: %q, want %q", got, acct)
	}
}

// testRoomsTransfer: storage.Transfer copies every service's rooms with
// their states and archives (ids and stamps kept); run again, it counts
// the rooms there already, completes their archives without doubling a
// message, and leaves their states.
func testRoomsTransfer(t *testing.T, open opener) {
	a, b := transferStores(t, open)
	ctx := testContext(t)
	putRoom(t, ctx, a, svcA, "lobby", roomState("lobby"))
	putRoom(t, ctx, a, svcA, "quiet", roomState("quiet"))
	putRoom(t, ctx, a, svcB, "lobby", seq(9, 64))
	appendRoom(t, ctx, a, svcA, "lobby", storage.ArchiveQuota{}, roomMsgs(svcA, "lobby", transferArchived, "alice", "bob")...)
	appendRoom(t, ctx, a, svcB, "lobby", storage.ArchiveQuota{}, roomMsgs(svcB, "lobby", 2, "carol")...)
	r, err := storage.Transfer(ctx, a, b, nil)
	must(t, err, "Transfer")
	if r.Rooms != 3 || r.RoomsExisting != 0 || r.RoomArchived != transferArchived+2 {
		t.Fatalf("Transfer report %+v, want 3 rooms and %d archived messages", r, transferArchived+2)
	}
	check := func() {
		t.Helper()
		for _, svc := range []string{svcA, svcB} {
			want, err := a.Rooms(ctx, svc)
			must(t, err, "Rooms of the source")
			got, err := b.Rooms(ctx, svc)
			must(t, err, "Rooms of the copy")
			if !slices.EqualFunc(got, want, func(x, y storage.StoredRoom) bool {
				return x.Service == y.Service && x.Name == y.Name && bytes.Equal(x.State, y.State)
			}) {
				t.Fatalf("rooms of %s in the copy %+v, want %+v", svc, got, want)
			}
			for _, room := range want {
				msgs := roomAll(t, ctx, a, svc, room.Name)
				checkRoomQuery(t, ctx, b, svc, room.Name, storage.ArchiveQuery{Max: len(msgs) + 1}, msgs, true)
			}
		}
	}
	check()
	// The source goes on; the copy's lobby changes its state.
	appendRoom(t, ctx, a, svcA, "lobby", storage.ArchiveQuota{}, roomMsgs(svcA, "lobby", 3, "dave")...)
	putRoom(t, ctx, a, svcA, "new", roomState("new"))
	changed := []byte(`{"changed":true}`)
	putRoom(t, ctx, b, svcB, "lobby", changed)
	r, err = storage.Transfer(ctx, a, b, nil)
	must(t, err, "Transfer again")
	if r.Rooms != 1 || r.RoomsExisting != 3 || r.RoomArchived != transferArchived+2+3 {
		t.Fatalf("second Transfer report %+v, want 1 room, 3 existing, %d archived messages read", r, transferArchived+5)
	}
	checkRoom(t, ctx, b, svcB, "lobby", changed)
	putRoom(t, ctx, b, svcB, "lobby", seq(9, 64))
	check()
	if n := len(roomAll(t, ctx, b, svcA, "lobby")); n != transferArchived+3 {
		t.Fatalf("the lobby's archive in the copy holds %d messages after two transfers, want %d", n, transferArchived+3)
	}
}
