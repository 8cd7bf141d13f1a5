package storagetest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/storage"
)

var archiveCases = []testCase{
	{"Append", testArchiveAppend},
	{"With", testArchiveWith},
	{"WithFullJIDSlash", testArchiveWithFullJIDSlash},
	{"StartEnd", testArchiveStartEnd},
	{"AfterBeforeID", testArchiveAfterBefore},
	{"UnknownID", testArchiveUnknownID},
	{"IDs", testArchiveIDs},
	{"PageForward", testArchivePageForward},
	{"PageLast", testArchivePageLast},
	{"PageWith", testArchivePageWith},
	{"Quota", testArchiveQuota},
	{"Expire", testArchiveExpire},
	{"Size", testArchiveSize},
	{"Usage", testArchiveUsage},
	{"NoAccount", testArchiveNoAccount},
	{"DeleteAccount", testArchiveDeleteAccount},
}

// stampSlack is how far from the time of its append a message's stamp may
// be: a backend may take the time from another clock (a database server's).
const stampSlack = 2 * time.Second

// archiveXML is the stanza of the i-th archived message of a case.
func archiveXML(i int) string {
	return fmt.Sprintf("<message xmlns='jabber:client' from='bob@example.org/phone' type='chat' id='m%d'><body>archived %d ☃ &amp; &lt;</body></message>", i, i)
}

// appendArchive appends msgs to the account's archive within q and returns
// their ids.
func appendArchive(t *testing.T, ctx context.Context, s storage.Store, username string, q storage.ArchiveQuota, msgs ...storage.ArchivedMessage) []string {
	t.Helper()
	var ids []string
	for _, m := range msgs {
		id, err := s.AppendArchive(ctx, username, m, q)
		must(t, err, fmt.Sprintf("AppendArchive(%q)", username))
		ids = append(ids, id)
	}
	return ids
}

// spacer makes appends a millisecond apart by the clock, so that a backend
// that keeps microseconds gives each a stamp of its own.
type spacer struct{ last time.Time }

func (sp *spacer) wait() {
	for !sp.last.IsZero() && time.Since(sp.last) < time.Millisecond {
		time.Sleep(50 * time.Microsecond)
	}
	sp.last = time.Now()
}

// appendSpaced is appendArchive with each message a millisecond after the
// one before.
func appendSpaced(t *testing.T, ctx context.Context, s storage.Store, sp *spacer, username string, msgs ...storage.ArchivedMessage) []string {
	t.Helper()
	var ids []string
	for _, m := range msgs {
		sp.wait()
		ids = append(ids, appendArchive(t, ctx, s, username, storage.ArchiveQuota{}, m)...)
	}
	return ids
}

// archived returns n messages with the given With, cycling through it.
func archived(n int, with ...string) []storage.ArchivedMessage {
	var out []storage.ArchivedMessage
	for i := range n {
		out = append(out, storage.ArchivedMessage{With: with[i%len(with)], XML: archiveXML(i)})
	}
	return out
}

// archiveAll returns the whole archive of the account, which must be
// complete in one page.
func archiveAll(t *testing.T, ctx context.Context, s storage.Store, username string) []storage.ArchivedMessage {
	t.Helper()
	msgs, complete, err := s.QueryArchive(ctx, username, storage.ArchiveQuery{Max: 100000})
	must(t, err, fmt.Sprintf("QueryArchive(%q)", username))
	if !complete {
		t.Fatalf("QueryArchive(%q) of the whole archive is not complete", username)
	}
	return msgs
}

// archivedEqual reports whether two archived messages are the same,
// stamps by Equal.
func archivedEqual(a, b storage.ArchivedMessage) bool {
	return a.ID == b.ID && a.Stamp.Equal(b.Stamp) && a.With == b.With && a.XML == b.XML
}

// idsOf lists the ids of msgs.
func idsOf(msgs []storage.ArchivedMessage) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, m.ID)
	}
	return out
}

// pick returns the messages of all at these indexes.
func pick(all []storage.ArchivedMessage, idx ...int) []storage.ArchivedMessage {
	out := []storage.ArchivedMessage{}
	for _, i := range idx {
		out = append(out, all[i])
	}
	return out
}

// span returns the indexes from, from+1, …, to-1.
func span(from, to int) []int {
	var out []int
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

// checkQuery fails the test unless q returns want, in this order, with
// this complete flag.
func checkQuery(t *testing.T, ctx context.Context, s storage.Store, username string, q storage.ArchiveQuery, want []storage.ArchivedMessage, complete bool) {
	t.Helper()
	got, c, err := s.QueryArchive(ctx, username, q)
	must(t, err, fmt.Sprintf("QueryArchive(%+v)", q))
	if !slices.EqualFunc(got, want, archivedEqual) {
		t.Fatalf("QueryArchive(%+v):\n got  %q\n want %q", q, idsOf(got), idsOf(want))
	}
	if c != complete {
		t.Fatalf("QueryArchive(%+v): complete %v, want %v", q, c, complete)
	}
}

// checkDistinctStamps fails the test unless the stamps of msgs increase
// strictly, as appends a millisecond apart must give them.
func checkDistinctStamps(t *testing.T, msgs []storage.ArchivedMessage) {
	t.Helper()
	for i := 1; i < len(msgs); i++ {
		if !msgs[i].Stamp.After(msgs[i-1].Stamp) {
			t.Fatalf("messages appended a millisecond apart have stamps %v and %v", msgs[i-1].Stamp, msgs[i].Stamp)
		}
	}
}

// checkSize fails the test unless ArchiveSize counts msgs: their number,
// and bytes of at least their With and XML, and at most 16 more each.
func checkSize(t *testing.T, ctx context.Context, s storage.Store, username string, msgs []storage.ArchivedMessage) {
	t.Helper()
	n, b, err := s.ArchiveSize(ctx, username)
	must(t, err, fmt.Sprintf("ArchiveSize(%q)", username))
	var lo int64
	for _, m := range msgs {
		lo += int64(len(m.With) + len(m.XML))
	}
	hi := lo + 16*int64(len(msgs))
	if n != len(msgs) || b < lo || b > hi {
		t.Fatalf("ArchiveSize(%q) = %d messages, %d bytes; want %d messages, %d to %d bytes", username, n, b, len(msgs), lo, hi)
	}
}

// checkExpire calls expire (ExpireArchive, ExpireRoomArchives) with
// before and a limit of 4 four times and fails the test unless the calls
// remove 4, 2, 0 and 0 messages: the six stamped before before that the
// expiry cases append, at most limit a call.
func checkExpire(t *testing.T, ctx context.Context, name string, expire func(context.Context, time.Time, int) (int, error), before time.Time) {
	t.Helper()
	var counts []int
	for range 4 {
		n, err := expire(ctx, before, 4)
		must(t, err, name)
		counts = append(counts, n)
	}
	if fmt.Sprint(counts) != "[4 2 0 0]" {
		t.Fatalf("%s with limit 4, repeated: removed %v, want [4 2 0 0]", name, counts)
	}
}

// testArchiveAppend: AppendArchive returns ids that sort as strings in the
// order of the appends, ignoring m.ID; the archive gives each message back
// with its id, its With and XML as they were, and a stamp of its append.
func testArchiveAppend(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	createAccounts(t, ctx, s, "alice")
	msgs := archived(20, "bob@example.org/phone", "carol@example.org", "Émile@example.org/☃ résumé")
	for i := range msgs {
		msgs[i].ID = "chosen-by-the-caller"
	}
	msgs[3].XML = strings.Repeat("<x/>", 4000) // a large stanza
	start := time.Now()
	ids := appendArchive(t, ctx, s, "alice", storage.ArchiveQuota{}, msgs...)
	end := time.Now()
	for i, id := range ids {
		if id == "" || id == "chosen-by-the-caller" {
			t.Fatalf("AppendArchive returned id %q", id)
		}
		if i > 0 && ids[i-1] >= id {
			t.Fatalf("ids of appends %d and %d: %q, %q: not in the order of the appends", i-1, i, ids[i-1], id)
		}
	}
	got := archiveAll(t, ctx, s, "alice")
	if len(got) != len(msgs) {
		t.Fatalf("the archive holds %d messages, want %d", len(got), len(msgs))
	}
	for i, m := range got {
		if m.ID != ids[i] || m.With != msgs[i].With || m.XML != msgs[i].XML {
			t.Fatalf("message %d came back as id %q with %q xml %.60q; want id %q with %q xml %.60q", i, m.ID, m.With, m.XML, ids[i], msgs[i].With, msgs[i].XML)
		}
		if m.Stamp.Before(start.Add(-stampSlack)) || m.Stamp.After(end.Add(stampSlack)) {
			t.Fatalf("message %d stamped %v, appended between %v and %v", i, m.Stamp, start, end)
		}
		if i > 0 && m.Stamp.Before(got[i-1].Stamp) {
			t.Fatalf("message %d stamped %v, before message %d's %v", i, m.Stamp, i-1, got[i-1].Stamp)
		}
	}
}

// testArchiveWith: With keeps a full JID's messages, a bare JID's and its
// resources', a domain's and every JID's at it; nothing that only looks
// alike.
func testArchiveWith(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	createAccounts(t, ctx, s, "alice")
	with := []string{
		"bob@example.org/phone",          // 0
		"carol@example.org",              // 1
		"bob@example.org",                // 2
		"bob@example.org/laptop",         // 3
		"dave@other.example/example.org", // 4: a resource that reads like the domain
		"example.org",                    // 5: the domain itself
		"bobby@example.org/phone",        // 6
		"bob@example.org.evil/x",         // 7
		"erin@sub.example.org",           // 8
		"example.org/admin",              // 9
	}
	var msgs []storage.ArchivedMessage
	for i, w := range with {
		msgs = append(msgs, storage.ArchivedMessage{With: w, XML: archiveXML(i)})
	}
	appendArchive(t, ctx, s, "alice", storage.ArchiveQuota{}, msgs...)
	all := archiveAll(t, ctx, s, "alice")
	cases := []struct {
		with string
		idx  []int
	}{
		{"", span(0, len(with))},
		{"bob@example.org", []int{0, 2, 3}},
		{"bob@example.org/phone", []int{0}},
		{"bob@example.org/laptop", []int{3}},
		{"carol@example.org", []int{1}},
		{"example.org", []int{0, 1, 2, 3, 5, 6, 9}},
		{"other.example", []int{4}},
		{"sub.example.org", []int{8}},
		{"example.org.evil", []int{7}},
		{"nobody@example.org", nil},
		{"bob", nil},
	}
	for _, c := range cases {
		checkQuery(t, ctx, s, "alice", storage.ArchiveQuery{With: c.with, Max: 100}, pick(all, c.idx...), true)
	}
}

// testArchiveWithFullJIDSlash: a resource may hold a slash (RFC 7622
// §3.4), so a full JID filter keeps that JID alone, not the JIDs whose
// resource starts with its resource and a slash; a bare JID filter keeps
// them all.
func testArchiveWithFullJIDSlash(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	createAccounts(t, ctx, s, "alice")
	with := []string{"bob@example.org/phone", "bob@example.org/phone/2", "bob@example.org/phone/", "bob@example.org/phone2"}
	var msgs []storage.ArchivedMessage
	for i, w := range with {
		msgs = append(msgs, storage.ArchivedMessage{With: w, XML: archiveXML(i)})
	}
	appendArchive(t, ctx, s, "alice", storage.ArchiveQuota{}, msgs...)
	all := archiveAll(t, ctx, s, "alice")
	checkQuery(t, ctx, s, "alice", storage.ArchiveQuery{With: "bob@example.org", Max: 100}, all, true)
	checkQuery(t, ctx, s, "alice", storage.ArchiveQuery{With: "bob@example.org/phone/2", Max: 100}, pick(all, 1), true)
	checkQuery(t, ctx, s, "alice", storage.ArchiveQuery{With: "bob@example.org/phone", Max: 100}, pick(all, 0), true)
}

// testArchiveStartEnd: Start and End bound the stamps, both inclusive;
// either alone bounds one side.
func testArchiveStartEnd(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	createAccounts(t, ctx, s, "alice")
	var sp spacer
	appendSpaced(t, ctx, s, &sp, "alice", archived(6, "bob@example.org/phone")...)
	all := archiveAll(t, ctx, s, "alice")
	checkDistinctStamps(t, all)
	st := func(i int) time.Time { return all[i].Stamp }
	cases := []struct {
		q        storage.ArchiveQuery
		idx      []int
		complete bool
	}{
		{storage.ArchiveQuery{Start: st(2), End: st(4)}, []int{2, 3, 4}, true},
		{storage.ArchiveQuery{Start: st(3)}, []int{3, 4, 5}, true},
		{storage.ArchiveQuery{End: st(1)}, []int{0, 1}, true},
		{storage.ArchiveQuery{Start: st(2), End: st(2)}, []int{2}, true},
		{storage.ArchiveQuery{Start: st(1).Add(time.Microsecond), End: st(4).Add(-time.Microsecond)}, []int{2, 3}, true},
		{storage.ArchiveQuery{Start: st(5).Add(time.Microsecond)}, nil, true},
		{storage.ArchiveQuery{End: st(0).Add(-time.Microsecond)}, nil, true},
		{storage.ArchiveQuery{Start: st(1), Max: 2}, []int{1, 2}, false},
		{storage.ArchiveQuery{Start: st(1), End: st(4), Max: 2, Last: true}, []int{3, 4}, false},
		{storage.ArchiveQuery{Start: st(1), End: st(4), Max: 4, Last: true}, []int{1, 2, 3, 4}, true},
	}
	for _, c := range cases {
		if c.q.Max == 0 {
			c.q.Max = 100
		}
		checkQuery(t, ctx, s, "alice", c.q, pick(all, c.idx...), c.complete)
	}
}

// testArchiveAfterBefore: AfterID and BeforeID bound the ids, both
// exclusive, alone or together, paging either way.
func testArchiveAfterBefore(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	createAccounts(t, ctx, s, "alice")
	ids := appendArchive(t, ctx, s, "alice", storage.ArchiveQuota{}, archived(10, "bob@example.org/phone")...)
	all := archiveAll(t, ctx, s, "alice")
	cases := []struct {
		q        storage.ArchiveQuery
		idx      []int
		complete bool
	}{
		{storage.ArchiveQuery{AfterID: ids[2], Max: 100}, span(3, 10), true},
		{storage.ArchiveQuery{BeforeID: ids[5], Max: 100}, span(0, 5), true},
		{storage.ArchiveQuery{AfterID: ids[2], BeforeID: ids[7], Max: 100}, span(3, 7), true},
		{storage.ArchiveQuery{AfterID: ids[2], BeforeID: ids[7], Max: 2}, []int{3, 4}, false},
		{storage.ArchiveQuery{AfterID: ids[2], BeforeID: ids[7], Max: 2, Last: true}, []int{5, 6}, false},
		{storage.ArchiveQuery{AfterID: ids[2], BeforeID: ids[3], Max: 100}, nil, true},
		{storage.ArchiveQuery{AfterID: ids[9], Max: 100}, nil, true},
		{storage.ArchiveQuery{BeforeID: ids[0], Max: 100, Last: true}, nil, true},
		{storage.ArchiveQuery{AfterID: ids[5], Max: 2, Last: true}, []int{8, 9}, false},
		{storage.ArchiveQuery{AfterID: ids[5], Max: 4, Last: true}, span(6, 10), true},
	}
	for _, c := range cases {
		checkQuery(t, ctx, s, "alice", c.q, pick(all, c.idx...), c.complete)
	}
}

// testArchiveUnknownID: an AfterID or BeforeID that is not in the account's
// archive (another account's, an expired one, one never made) is
// ErrNotFound.
func testArchiveUnknownID(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	createAccounts(t, ctx, s, "alice", "bob")
	var sp spacer
	expired := appendSpaced(t, ctx, s, &sp, "alice", archived(1, "bob@example.org")...)[0]
	appendSpaced(t, ctx, s, &sp, "alice", archived(3, "bob@example.org")...)
	bobs := appendArchive(t, ctx, s, "bob", storage.ArchiveQuota{}, archived(1, "alice@example.org")...)[0]
	all := archiveAll(t, ctx, s, "alice")
	n, err := s.ExpireArchive(ctx, all[1].Stamp, 10)
	must(t, err, "ExpireArchive")
	if n != 1 {
		t.Fatalf("ExpireArchive removed %d, want 1", n)
	}
	for _, id := range []string{expired, bobs, "not-an-id", "0000000000000000", "ffffffffffffffff"} {
		for _, q := range []storage.ArchiveQuery{{AfterID: id, Max: 10}, {BeforeID: id, Max: 10}, {BeforeID: id, Max: 10, Last: true}} {
			_, _, err := s.QueryArchive(ctx, "alice", q)
			wantErr(t, err, storage.ErrNotFound, fmt.Sprintf("QueryArchive(%+v) with an id not in the archive", q))
		}
	}
}

// testArchiveIDs: IDs selects those messages alone, oldest first whatever
// the order asked, ignoring ids not in the archive.
func testArchiveIDs(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	createAccounts(t, ctx, s, "alice", "bob")
	ids := appendArchive(t, ctx, s, "alice", storage.ArchiveQuota{}, archived(6, "bob@example.org")...)
	bobs := appendArchive(t, ctx, s, "bob", storage.ArchiveQuota{}, archived(1, "alice@example.org")...)[0]
	all := archiveAll(t, ctx, s, "alice")
	checkQuery(t, ctx, s, "alice", storage.ArchiveQuery{IDs: []string{ids[4], "not-an-id", ids[1], bobs, ids[5]}, Max: 10}, pick(all, 1, 4, 5), true)
	checkQuery(t, ctx, s, "alice", storage.ArchiveQuery{IDs: []string{ids[3]}, Max: 10}, pick(all, 3), true)
	got, _, err := s.QueryArchive(ctx, "alice", storage.ArchiveQuery{IDs: []string{"not-an-id", bobs}, Max: 10})
	must(t, err, "QueryArchive by unknown ids")
	if len(got) != 0 {
		t.Fatalf("QueryArchive by ids none of which is alice's: %q", idsOf(got))
	}
}

// testArchivePageForward: a forward page holds the oldest Max of what
// matches; complete says whether nothing more follows. Pages chained by
// AfterID walk the whole archive.
func testArchivePageForward(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	createAccounts(t, ctx, s, "alice")
	ids := appendArchive(t, ctx, s, "alice", storage.ArchiveQuota{}, archived(10, "bob@example.org/phone")...)
	all := archiveAll(t, ctx, s, "alice")
	checkQuery(t, ctx, s, "alice", storage.ArchiveQuery{Max: 3}, pick(all, 0, 1, 2), false)
	checkQuery(t, ctx, s, "alice", storage.ArchiveQuery{Max: 9}, pick(all, span(0, 9)...), false)
	checkQuery(t, ctx, s, "alice", storage.ArchiveQuery{Max: 10}, all, true)
	checkQuery(t, ctx, s, "alice", storage.ArchiveQuery{Max: 11}, all, true)
	checkQuery(t, ctx, s, "alice", storage.ArchiveQuery{Max: 1}, pick(all, 0), false)
	// Exactly to the end: complete.
	checkQuery(t, ctx, s, "alice", storage.ArchiveQuery{AfterID: ids[6], Max: 3}, pick(all, 7, 8, 9), true)
	var walked []storage.ArchivedMessage
	var flags []bool
	after := ""
	for range 10 {
		page, complete, err := s.QueryArchive(ctx, "alice", storage.ArchiveQuery{AfterID: after, Max: 3})
		must(t, err, "QueryArchive")
		walked = append(walked, page...)
		flags = append(flags, complete)
		if complete {
			break
		}
		after = page[len(page)-1].ID
	}
	if !slices.EqualFunc(walked, all, archivedEqual) || fmt.Sprint(flags) != "[false false false true]" {
		t.Fatalf("forward pages of 3 walked %q with complete %v; want all 10 in 4 pages, the last complete", idsOf(walked), flags)
	}
}

// testArchivePageLast: a Last page holds the newest Max of what matches,
// oldest first; complete says whether nothing more precedes. Pages
// chained by BeforeID walk the whole archive back.
func testArchivePageLast(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	createAccounts(t, ctx, s, "alice")
	ids := appendArchive(t, ctx, s, "alice", storage.ArchiveQuota{}, archived(10, "bob@example.org/phone")...)
	all := archiveAll(t, ctx, s, "alice")
	checkQuery(t, ctx, s, "alice", storage.ArchiveQuery{Max: 3, Last: true}, pick(all, 7, 8, 9), false)
	checkQuery(t, ctx, s, "alice", storage.ArchiveQuery{Max: 1, Last: true}, pick(all, 9), false)
	checkQuery(t, ctx, s, "alice", storage.ArchiveQuery{Max: 9, Last: true}, pick(all, span(1, 10)...), false)
	checkQuery(t, ctx, s, "alice", storage.ArchiveQuery{Max: 10, Last: true}, all, true)
	checkQuery(t, ctx, s, "alice", storage.ArchiveQuery{Max: 50, Last: true}, all, true)
	checkQuery(t, ctx, s, "alice", storage.ArchiveQuery{BeforeID: ids[3], Max: 3, Last: true}, pick(all, 0, 1, 2), true)
	checkQuery(t, ctx, s, "alice", storage.ArchiveQuery{BeforeID: ids[2], Max: 3, Last: true}, pick(all, 0, 1), true)
	var walked []storage.ArchivedMessage
	var flags []bool
	before := ""
	for range 10 {
		page, complete, err := s.QueryArchive(ctx, "alice", storage.ArchiveQuery{BeforeID: before, Max: 3, Last: true})
		must(t, err, "QueryArchive")
		walked = append(slices.Clone(page), walked...)
		flags = append(flags, complete)
		if complete {
			break
		}
		before = page[0].ID
	}
	if !slices.EqualFunc(walked, all, archivedEqual) || fmt.Sprint(flags) != "[false false false true]" {
		t.Fatalf("backward pages of 3 walked %q with complete %v; want all 10 in 4 pages, the last complete", idsOf(walked), flags)
	}
}

// testArchivePageWith: with a filter, a page and complete count only what
// matches: messages that do not match, after the last that does, leave the
// page complete.
func testArchivePageWith(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	createAccounts(t, ctx, s, "alice")
	// bob at 0, 2, 4, 6; carol at the others.
	ids := appendArchive(t, ctx, s, "alice", storage.ArchiveQuota{}, archived(8, "bob@example.org/phone", "carol@example.org")...)
	all := archiveAll(t, ctx, s, "alice")
	bob := "bob@example.org"
	checkQuery(t, ctx, s, "alice", storage.ArchiveQuery{With: bob, Max: 4}, pick(all, 0, 2, 4, 6), true)
	checkQuery(t, ctx, s, "alice", storage.ArchiveQuery{With: bob, Max: 3}, pick(all, 0, 2, 4), false)
	checkQuery(t, ctx, s, "alice", storage.ArchiveQuery{With: bob, Max: 2, AfterID: ids[2]}, pick(all, 4, 6), true)
	checkQuery(t, ctx, s, "alice", storage.ArchiveQuery{With: bob, Max: 4, Last: true}, pick(all, 0, 2, 4, 6), true)
	checkQuery(t, ctx, s, "alice", storage.ArchiveQuery{With: bob, Max: 3, Last: true}, pick(all, 2, 4, 6), false)
	checkQuery(t, ctx, s, "alice", storage.ArchiveQuery{With: bob, Max: 1, Last: true, BeforeID: ids[1]}, pick(all, 0), true)
	checkQuery(t, ctx, s, "alice", storage.ArchiveQuery{With: "carol@example.org", Max: 4, AfterID: ids[0]}, pick(all, 1, 3, 5, 7), true)
}

// testArchiveQuota: past ArchiveQuota.MaxMessages the oldest messages go,
// and the size follows.
func testArchiveQuota(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	createAccounts(t, ctx, s, "alice", "bob")
	q := storage.ArchiveQuota{MaxMessages: 3}
	ids := appendArchive(t, ctx, s, "alice", q, archived(5, "bob@example.org")...)
	appendArchive(t, ctx, s, "bob", storage.ArchiveQuota{}, archived(5, "alice@example.org")...)
	got := archiveAll(t, ctx, s, "alice")
	if !slices.Equal(idsOf(got), ids[2:]) {
		t.Fatalf("with MaxMessages 3 after 5 appends the archive holds %q, want the newest 3 %q", idsOf(got), ids[2:])
	}
	checkSize(t, ctx, s, "alice", got)
	ids = append(ids, appendArchive(t, ctx, s, "alice", q, archived(1, "carol@example.org")...)...)
	got = archiveAll(t, ctx, s, "alice")
	if !slices.Equal(idsOf(got), ids[3:]) {
		t.Fatalf("after one more append the archive holds %q, want %q", idsOf(got), ids[3:])
	}
	checkSize(t, ctx, s, "alice", got)
	if n := len(archiveAll(t, ctx, s, "bob")); n != 5 {
		t.Fatalf("alice's quota trimmed bob's archive to %d", n)
	}
}

// testArchiveExpire: ExpireArchive removes the messages of every account
// stamped before before (not one stamped at it), at most limit a call,
// and returns how many.
func testArchiveExpire(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	createAccounts(t, ctx, s, "alice", "bob")
	var sp spacer
	for i := range 4 {
		appendSpaced(t, ctx, s, &sp, "alice", archived(1, fmt.Sprintf("x%d@example.org", i))...)
		appendSpaced(t, ctx, s, &sp, "bob", archived(1, fmt.Sprintf("y%d@example.org", i))...)
	}
	appendSpaced(t, ctx, s, &sp, "alice", archived(2, "z@example.org")...)
	alice, bob := archiveAll(t, ctx, s, "alice"), archiveAll(t, ctx, s, "bob")
	checkDistinctStamps(t, alice)
	checkDistinctStamps(t, bob)
	before := alice[3].Stamp // after bob[2], before bob[3]
	checkExpire(t, ctx, "ExpireArchive", s.ExpireArchive, before)
	checkQuery(t, ctx, s, "alice", storage.ArchiveQuery{Max: 100}, alice[3:], true)
	checkQuery(t, ctx, s, "bob", storage.ArchiveQuery{Max: 100}, bob[3:], true)
	checkSize(t, ctx, s, "alice", alice[3:])
	checkSize(t, ctx, s, "bob", bob[3:])
}

// testArchiveSize: ArchiveSize counts the account's messages exactly and
// their bytes within what the messages hold and a little more each.
func testArchiveSize(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	createAccounts(t, ctx, s, "alice", "bob")
	checkSize(t, ctx, s, "alice", nil)
	msgs := archived(7, "bob@example.org/phone", "a@b", strings.Repeat("long", 100)+"@example.org")
	msgs[2].XML = strings.Repeat("<y/>", 1000)
	appendArchive(t, ctx, s, "alice", storage.ArchiveQuota{}, msgs...)
	appendArchive(t, ctx, s, "bob", storage.ArchiveQuota{}, archived(2, "alice@example.org")...)
	checkSize(t, ctx, s, "alice", msgs)
	checkSize(t, ctx, s, "bob", archived(2, "alice@example.org"))
	checkSize(t, ctx, s, "carol", nil)
}

// testArchiveUsage: a store that reports the usage of all archives reports
// the sum of the accounts' ArchiveSize.
func testArchiveUsage(t *testing.T, open opener) {
	s := open(t)
	r, ok := s.(storage.ArchiveUsageReporter)
	if !ok {
		t.Skip("the store does not implement storage.ArchiveUsageReporter")
	}
	ctx := testContext(t)
	users := []string{"alice", "bob", "carol"}
	check := func(what string) {
		t.Helper()
		var wantN, wantB int64
		for _, u := range users {
			n, b, err := s.ArchiveSize(ctx, u)
			must(t, err, "ArchiveSize")
			wantN, wantB = wantN+int64(n), wantB+b
		}
		n, b, err := r.ArchiveUsage(ctx)
		must(t, err, "ArchiveUsage")
		if n != wantN || b != wantB {
			t.Fatalf("ArchiveUsage %s: %d messages %d bytes; the accounts' sizes add up to %d and %d", what, n, b, wantN, wantB)
		}
	}
	check("of a new store")
	createAccounts(t, ctx, s, users...)
	appendArchive(t, ctx, s, "alice", storage.ArchiveQuota{}, archived(5, "bob@example.org")...)
	appendArchive(t, ctx, s, "bob", storage.ArchiveQuota{}, archived(3, "alice@example.org/x")...)
	check("after appends")
	appendArchive(t, ctx, s, "alice", storage.ArchiveQuota{MaxMessages: 2}, archived(1, "bob@example.org")...)
	check("after a quota")
	_, err := s.ExpireArchive(ctx, time.Now().Add(time.Hour), 1)
	must(t, err, "ExpireArchive")
	check("after expiry")
	_, err = s.DeleteAccount(ctx, "bob", "bob@example.org")
	must(t, err, "DeleteAccount")
	check("after a deletion")
}

// testArchiveNoAccount: a message for an account that does not exist is not
// kept, not for an account made later under that name either.
func testArchiveNoAccount(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	// It may get an id or an error: either way nothing is kept.
	_, _ = s.AppendArchive(ctx, "ghost", storage.ArchivedMessage{With: "bob@example.org", XML: archiveXML(0)}, storage.ArchiveQuota{})
	createAccounts(t, ctx, s, "ghost")
	checkQuery(t, ctx, s, "ghost", storage.ArchiveQuery{Max: 10}, nil, true)
	checkSize(t, ctx, s, "ghost", nil)
	if r, ok := s.(storage.ArchiveUsageReporter); ok {
		n, b, err := r.ArchiveUsage(ctx)
		must(t, err, "ArchiveUsage")
		if n != 0 || b != 0 {
			t.Fatalf("ArchiveUsage counts the message for a missing account: %d messages %d bytes", n, b)
		}
	}
}

// testArchiveDeleteAccount: DeleteAccount removes the account's archive,
// what was appended just before it too; an account made again under the
// name starts with none, and the other archives stay.
func testArchiveDeleteAccount(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	createAccounts(t, ctx, s, "alice", "bob")
	appendArchive(t, ctx, s, "alice", storage.ArchiveQuota{}, archived(3, "bob@example.org")...)
	archiveAll(t, ctx, s, "alice")
	appendArchive(t, ctx, s, "alice", storage.ArchiveQuota{}, archived(2, "bob@example.org")...)
	bobs := appendArchive(t, ctx, s, "bob", storage.ArchiveQuota{}, archived(2, "alice@example.org")...)
	_, err := s.DeleteAccount(ctx, "alice", "alice@example.org")
	must(t, err, "DeleteAccount")
	createAccounts(t, ctx, s, "alice")
	checkQuery(t, ctx, s, "alice", storage.ArchiveQuery{Max: 10}, nil, true)
	checkSize(t, ctx, s, "alice", nil)
	if got := idsOf(archiveAll(t, ctx, s, "bob")); !slices.Equal(got, bobs) {
		t.Fatalf("bob's archive after alice's deletion: %q, want %q", got, bobs)
	}
	// The new account's archive works.
	ids := appendArchive(t, ctx, s, "alice", storage.ArchiveQuota{}, archived(1, "bob@example.org")...)
	if got := idsOf(archiveAll(t, ctx, s, "alice")); !slices.Equal(got, ids) {
		t.Fatalf("the new account's archive: %q, want %q", got, ids)
	}
}
