package private_test

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/servertest"
)

// XEP-0049 over TCP, with raw clients so that each answer is read as the
// server wrote it. The fragments are the XEP's examples and XEP-0048's
// bookmarks.

// exodus is the fragment of XEP-0049's examples.
const exodus = `<exodus xmlns="exodus:prefs">
      <defaultnick>Hamlet</defaultnick>
    </exodus>`

// bookmarks is XEP-0048's example of bookmarks kept in private storage.
const bookmarks = `<storage xmlns='storage:bookmarks'>
      <conference name='Council of Oberon' autojoin='true' jid='council@conference.underhill.org'>
        <nick>Puck</nick>
      </conference>
      <url name='Complete Works of Shakespeare' url='http://the-tech.mit.edu/Shakespeare/'/>
    </storage>`

// bookmarksKept is bookmarks as modules/bookmarks gives them back.
const bookmarksKept = `<storage xmlns='storage:bookmarks'>
      <conference jid='council@conference.underhill.org' name='Council of Oberon' autojoin='true'><nick>Puck</nick></conference>
    </storage>`

// query wraps fragments in <query xmlns='jabber:iq:private'/>.
func query(frags ...string) string {
	return `<query xmlns="jabber:iq:private">` + strings.Join(frags, "") + `</query>`
}

// TestPrivate: XEP-0049's examples and XEP-0048 bookmarks, stored and read
// back, and the errors of §2.3.
func TestPrivate(t *testing.T) {
	srv := servertest.Start(t)
	srv.AddUser("hamlet", "denmark")
	srv.AddUser("macbeth", "scotland")
	hamlet := servertest.IQLogin(t, srv, "hamlet", "denmark")
	macbeth := servertest.IQLogin(t, srv, "macbeth", "scotland")

	// Nothing stored: the element as asked for, empty.
	if r := hamlet.IQ("get", "", query(`<exodus xmlns="exodus:prefs"/>`)); r.Type != "result" || r.PayloadCanon() != servertest.CanonOf(t, query(`<exodus xmlns="exodus:prefs"/>`)) {
		t.Errorf("get before any set: %s", r.XML)
	}
	// "Client Stores Private Data" and "Client Retrieves Private Data".
	if r := hamlet.IQ("set", "", query(exodus)); r.Type != "result" || r.Payload != nil {
		t.Fatalf("set: %s", r.XML)
	}
	if r := hamlet.IQ("get", "", query(`<exodus xmlns="exodus:prefs"/>`)); r.Type != "result" || r.PayloadCanon() != servertest.CanonOf(t, query(exodus)) {
		t.Errorf("get after set:\n got %s\nwant %s", r.PayloadCanon(), servertest.CanonOf(t, query(exodus)))
	}
	// XEP-0048 bookmarks through the own bare JID; the other fragment
	// stays. modules/bookmarks keeps them as XEP-0402 items, which have
	// no URL bookmarks: the room comes back, the URL does not.
	if r := hamlet.IQ("set", "hamlet@localhost", query(bookmarks)); r.Type != "result" {
		t.Fatalf("set bookmarks: %s", r.XML)
	}
	if r := hamlet.IQ("get", "hamlet@localhost", query(`<storage xmlns='storage:bookmarks'/>`)); r.From != "hamlet@localhost" || r.PayloadCanon() != servertest.CanonOf(t, query(bookmarksKept)) {
		t.Errorf("get bookmarks: %s", r.XML)
	}
	if r := hamlet.IQ("get", "", query(`<exodus xmlns="exodus:prefs"/>`)); r.PayloadCanon() != servertest.CanonOf(t, query(exodus)) {
		t.Errorf("exodus prefs after the bookmarks were set: %s", r.XML)
	}
	// A set of several elements, a get of two names of one namespace.
	two := []string{`<a xmlns='urn:example:two'>1</a>`, `<b xmlns='urn:example:two'><c/></b>`}
	if r := hamlet.IQ("set", "", query(two...)); r.Type != "result" {
		t.Fatalf("set of two: %s", r.XML)
	}
	if r := hamlet.IQ("get", "", query(`<b xmlns='urn:example:two'/>`, `<a xmlns='urn:example:two'/>`)); r.PayloadCanon() != servertest.CanonOf(t, query(two[1], two[0])) {
		t.Errorf("get of two: %s", r.XML)
	}
	if r := hamlet.IQ("get", "", query(`<a xmlns='urn:example:two'/>`, `<storage xmlns='storage:bookmarks'/>`)); r.Err != "modify bad-request" {
		t.Errorf("a get of two namespaces: %s", r.XML)
	}

	// "User Attempts to Get or Set Data for Another User": forbidden, and
	// nothing changes.
	for _, typ := range []string{"set", "get"} {
		if r := macbeth.IQ(typ, "hamlet@localhost", query(`<exodus xmlns="exodus:prefs"><defaultnick>Macbeth</defaultnick></exodus>`)); r.Err != "auth forbidden" {
			t.Errorf("macbeth's %s of hamlet's data: %s", typ, r.XML)
		}
	}
	if r := macbeth.IQ("get", "", query(`<exodus xmlns="exodus:prefs"/>`)); r.PayloadCanon() != servertest.CanonOf(t, query(`<exodus xmlns="exodus:prefs"/>`)) {
		t.Errorf("macbeth sees data he never stored: %s", r.XML)
	}
	if r := hamlet.IQ("get", "", query(`<exodus xmlns="exodus:prefs"/>`)); r.PayloadCanon() != servertest.CanonOf(t, query(exodus)) {
		t.Errorf("hamlet's data after macbeth's set: %s", r.XML)
	}

	// "User Attempts to Get Data Without Specifying Child Element".
	if r := hamlet.IQ("get", "", query()); r.Err != "modify bad-request" {
		t.Errorf("get of an empty query: %s", r.XML)
	}
	if r := hamlet.IQ("set", "", query()); r.Err != "modify not-acceptable" {
		t.Errorf("set of an empty query: %s", r.XML)
	}
	// Reserved namespaces; a child with no xmlns is in jabber:iq:private.
	for _, frag := range []string{`<x/>`, `<message xmlns='jabber:client'/>`, `<x xmlns='jabber:server'>1</x>`, `<x xmlns=''>1</x>`} {
		for _, typ := range []string{"get", "set"} {
			if r := hamlet.IQ(typ, "", query(frag)); r.Err != "modify not-acceptable" {
				t.Errorf("%s of %s: %s", typ, frag, r.XML)
			}
		}
	}

	// An empty element removes what was kept.
	if r := hamlet.IQ("set", "", query(`<storage xmlns='storage:bookmarks'> </storage>`)); r.Type != "result" {
		t.Fatalf("set empty: %s", r.XML)
	}
	if r := hamlet.IQ("get", "", query(`<storage xmlns='storage:bookmarks'/>`)); r.PayloadCanon() != servertest.CanonOf(t, query(`<storage xmlns='storage:bookmarks'/>`)) {
		t.Errorf("get after removal: %s", r.XML)
	}
}

// TestPrivateDisco: jabber:iq:private is a feature of the server JID.
func TestPrivateDisco(t *testing.T) {
	srv := servertest.Start(t)
	srv.AddUser("hamlet", "denmark")
	hamlet := servertest.IQLogin(t, srv, "hamlet", "denmark")
	r := hamlet.IQ("get", "localhost", `<query xmlns='http://jabber.org/protocol/disco#info'/>`)
	if !regexp.MustCompile(`<feature[^>]* var=["']jabber:iq:private["']`).MatchString(r.XML) {
		t.Errorf("disco#info lacks jabber:iq:private: %s", r.XML)
	}
}

// TestPrivateLimits: a fragment over limits.private.max_fragment_bytes, or
// a set that would take the account over limits.private.max_bytes, is
// refused whole with not-acceptable and a text that says which; a set that
// makes an account over the limit smaller goes through.
func TestPrivateLimits(t *testing.T) {
	srv := servertest.Start(t, func(c *config.Config) {
		c.Limits.Private = config.PrivateLimits{MaxBytes: 5000, MaxFragmentBytes: 2000}
	})
	srv.AddUser("hamlet", "denmark")
	hamlet := servertest.IQLogin(t, srv, "hamlet", "denmark")
	// frag is stored as n bytes, its key as len("{urn:x}") + len(name).
	frag := func(name string, n int) string {
		frame := len(`<` + name + ` xmlns="urn:x"></` + name + `>`)
		return `<` + name + ` xmlns='urn:x'>` + strings.Repeat("p", n-frame) + `</` + name + `>`
	}
	size := func() int64 {
		n, err := srv.Store().UserDataSize(context.Background(), "hamlet", "private")
		if err != nil {
			t.Fatal(err)
		}
		return n
	}

	if r := hamlet.IQ("set", "", query(frag("a", 2000))); r.Type != "result" {
		t.Fatalf("a fragment of exactly the limit: %s", r.XML)
	}
	r := hamlet.IQ("set", "", query(frag("b", 100), frag("c", 2001)))
	if r.Err != "modify not-acceptable" || !strings.Contains(r.Text, "{urn:x}c has 2001 bytes") || !strings.Contains(r.Text, "2000") {
		t.Errorf("a fragment over the limit: %s", r.XML)
	}
	if r := hamlet.IQ("get", "", query(`<b xmlns='urn:x'/>`)); r.PayloadCanon() != servertest.CanonOf(t, query(`<b xmlns='urn:x'/>`)) {
		t.Errorf("part of a refused set was kept: %s", r.XML)
	}
	// 2008 + 2008 kept; one more of 1000 passes 5000.
	if r := hamlet.IQ("set", "", query(frag("b", 2000))); r.Type != "result" {
		t.Fatalf("second fragment: %s", r.XML)
	}
	if got := size(); got != 2*(7+1+2000) {
		t.Fatalf("user data size %d, want %d", got, 2*(7+1+2000))
	}
	r = hamlet.IQ("set", "", query(frag("c", 1000)))
	if r.Err != "modify not-acceptable" || !strings.Contains(r.Text, "would keep 5024 bytes") || !strings.Contains(r.Text, "5000") {
		t.Errorf("a set past the account's limit: %s", r.XML)
	}
	// Replacing a fragment by a smaller one, or removing one, is no growth.
	if r := hamlet.IQ("set", "", query(frag("a", 1500), frag("c", 400))); r.Type != "result" {
		t.Errorf("a set that keeps the account within its limit: %s", r.XML)
	}
	if r := hamlet.IQ("set", "", query(`<a xmlns='urn:x'/>`, `<b xmlns='urn:x'/>`, `<c xmlns='urn:x'/>`)); r.Type != "result" {
		t.Errorf("removal: %s", r.XML)
	}
	if got := size(); got != 0 {
		t.Errorf("user data size %d after removing every fragment", got)
	}
}

// TestPrivateDiskFloor: below the store's free-disk floor a set gets
// resource-constraint (wait), while reads and removals go on.
func TestPrivateDiskFloor(t *testing.T) {
	servertest.Embedded(t) // the free-disk floor is the bbolt store's
	srv := servertest.Start(t, func(c *config.Config) { c.Limits.MinFreeDiskBytes = 1 << 62 })
	srv.AddUser("hamlet", "denmark")
	hamlet := servertest.IQLogin(t, srv, "hamlet", "denmark")
	if r := hamlet.IQ("set", "", query(exodus)); r.Err != "wait resource-constraint" {
		t.Errorf("set below the disk floor: %s", r.XML)
	}
	if r := hamlet.IQ("get", "", query(`<exodus xmlns="exodus:prefs"/>`)); r.Type != "result" {
		t.Errorf("get below the disk floor: %s", r.XML)
	}
	if r := hamlet.IQ("set", "", query(`<exodus xmlns="exodus:prefs"/>`)); r.Type != "result" {
		t.Errorf("removal below the disk floor: %s", r.XML)
	}
}

// TestPrivateDeletedWithAccount: deleting an account deletes its private
// XML; an account made again under the name starts with none.
func TestPrivateDeletedWithAccount(t *testing.T) {
	srv := servertest.Start(t)
	srv.AddUser("hamlet", "denmark")
	hamlet := servertest.IQLogin(t, srv, "hamlet", "denmark")
	if r := hamlet.IQ("set", "", query(bookmarks)); r.Type != "result" {
		t.Fatalf("set: %s", r.XML)
	}
	if err := srv.Accounts().Delete(context.Background(), "hamlet"); err != nil {
		t.Fatal(err)
	}
	srv.AddUser("hamlet", "again")
	hamlet = servertest.IQLogin(t, srv, "hamlet", "again")
	if r := hamlet.IQ("get", "", query(`<storage xmlns='storage:bookmarks'/>`)); r.PayloadCanon() != servertest.CanonOf(t, query(`<storage xmlns='storage:bookmarks'/>`)) {
		t.Errorf("the new account has the old one's bookmarks: %s", r.XML)
	}
}
