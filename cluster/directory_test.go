package cluster_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/cluster"
	"github.com/adhocd/adhocd/cluster/redistest"
)

// TestBind: binding, the resource conflict (on this and on another
// replica), the per-account cap, and what Resources, Online and Users
// answer about it.
func TestBind(t *testing.T) {
	srv := redistest.Start(t)
	a := open(t, srv.Addr(), "a", 0)
	b := open(t, srv.Addr(), "b", 0)
	ctx := ctxT(t)

	phone := entry("a", "alice", "phone", "s1")
	phone.Priority, phone.Available, phone.Presence = 5, true, "<presence><show>chat</show></presence>"
	if old, err := a.Bind(ctx, phone, 2); err != nil || old != nil {
		t.Fatalf("Bind phone = %v, %v; want no old entry", old, err)
	}
	wantEntries(t, "alice after phone", resources(t, b, "alice"), phone)

	// The caller's Replica is replaced by the binding replica's id.
	laptop := entry("somebody", "alice", "laptop", "s2")
	if _, err := a.Bind(ctx, laptop, 2); err != nil {
		t.Fatal(err)
	}
	laptop.Replica = "a"
	wantEntries(t, "alice, ordered by resource", resources(t, a, "alice"), laptop, phone)

	// The cap counts the account's entries; replacing one is not a new one.
	tablet := entry("b", "alice", "tablet", "s3")
	if _, err := b.Bind(ctx, tablet, 2); !errors.Is(err, cluster.ErrTooManySessions) {
		t.Fatalf("third session with max 2: %v, want ErrTooManySessions", err)
	}
	if _, err := b.Bind(ctx, tablet, 0); err != nil {
		t.Fatalf("third session without a cap: %v", err)
	}
	wantOnline(t, a, 1, 3)
	if err := b.Unbind(ctx, "alice", "tablet", "s3"); err != nil {
		t.Fatal(err)
	}

	// Conflict on another replica: the new session replaces the old one,
	// which Bind returns for the caller to close.
	phone2 := entry("b", "alice", "phone", "s4")
	old, err := b.Bind(ctx, phone2, 2)
	if err != nil {
		t.Fatal(err)
	}
	if old == nil || !reflect.DeepEqual(*old, phone) {
		t.Fatalf("Bind over a's phone returned old %+v, want %+v", old, phone)
	}
	wantEntries(t, "alice after the conflict", resources(t, a, "alice"), laptop, phone2)
	wantOnline(t, a, 1, 2) // a's owned set no longer counts the replaced phone

	// Conflict on the same replica.
	laptop2 := entry("a", "alice", "laptop", "s5")
	old, err = a.Bind(ctx, laptop2, 2)
	if err != nil || old == nil || old.Stream != "s2" {
		t.Fatalf("Bind over a's own laptop = %+v, %v; want the s2 entry", old, err)
	}
	// Binding the same session again (a retried call) returns no old entry.
	if old, err := a.Bind(ctx, laptop2, 2); err != nil || old != nil {
		t.Fatalf("Bind of the same stream again = %+v, %v; want none", old, err)
	}
	wantOnline(t, a, 1, 2)

	bob := entry("a", "bob", "desk", "s6")
	if _, err := a.Bind(ctx, bob, 1); err != nil {
		t.Fatal(err)
	}
	wantOnline(t, b, 2, 3)
	users, err := b.Users(ctx)
	if err != nil || !reflect.DeepEqual(users, []string{"alice", "bob"}) {
		t.Fatalf("Users = %v, %v", users, err)
	}
	// bob's cap of 1 refuses a second resource, not the same one again.
	if _, err := b.Bind(ctx, entry("b", "bob", "phone", "s7"), 1); !errors.Is(err, cluster.ErrTooManySessions) {
		t.Fatalf("bob's second session with max 1: %v", err)
	}

	m, err := b.ResourcesOf(ctx, []string{"alice", "bob", "carol", "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 2 {
		t.Fatalf("ResourcesOf has %d users, want alice and bob: %v", len(m), m)
	}
	wantEntries(t, "ResourcesOf alice", m["alice"], laptop2, phone2)
	wantEntries(t, "ResourcesOf bob", m["bob"], bob)
}

// TestUnbindAndUpdate: both act only on the entry of the caller's stream;
// a newer session of the same resource stays as it is.
func TestUnbindAndUpdate(t *testing.T) {
	srv := redistest.Start(t)
	a := open(t, srv.Addr(), "a", 0)
	b := open(t, srv.Addr(), "b", 0)
	ctx := ctxT(t)

	old := entry("a", "alice", "phone", "s1")
	if _, err := a.Bind(ctx, old, 0); err != nil {
		t.Fatal(err)
	}
	cur := entry("b", "alice", "phone", "s2")
	if _, err := b.Bind(ctx, cur, 0); err != nil {
		t.Fatal(err)
	}

	// The replaced session updates and unbinds: nothing changes.
	upd := old
	upd.Priority, upd.Available, upd.Presence = 9, true, "<presence/>"
	if ok, err := a.Update(ctx, upd); err != nil || ok {
		t.Fatalf("Update of the replaced stream = %v, %v; want false", ok, err)
	}
	if err := a.Unbind(ctx, "alice", "phone", "s1"); err != nil {
		t.Fatal(err)
	}
	wantEntries(t, "after the old stream's update and unbind", resources(t, a, "alice"), cur)
	wantOnline(t, a, 1, 1)

	// The current session updates: priority, availability and presence
	// change, the rest stays.
	upd = cur
	upd.Priority, upd.Available = -1, true
	upd.Presence = `<presence xml:lang="en"><status>Ünïcode / "quotes" &amp; <![CDATA[x]]></status></presence>`
	upd.Since = since.AddDate(1, 0, 0) // not updated
	if ok, err := b.Update(ctx, upd); err != nil || !ok {
		t.Fatalf("Update of the current stream = %v, %v; want true", ok, err)
	}
	want := cur
	want.Priority, want.Available, want.Presence = upd.Priority, upd.Available, upd.Presence
	wantEntries(t, "after the update", resources(t, a, "alice"), want)

	// Back to no presence.
	upd.Available, upd.Presence = false, ""
	if ok, err := b.Update(ctx, upd); err != nil || !ok {
		t.Fatalf("second Update = %v, %v", ok, err)
	}
	want.Available, want.Presence = false, ""
	wantEntries(t, "after the second update", resources(t, a, "alice"), want)

	// A presence longer than 8 KiB is refused, by Bind and Update.
	long := cur
	long.Presence = "<presence><status>" + strings.Repeat("x", cluster.MaxPresence) + "</status></presence>"
	if _, err := b.Update(ctx, long); !errors.Is(err, cluster.ErrPresenceTooLong) {
		t.Fatalf("Update with a long presence: %v", err)
	}
	long.Resource = "other"
	if _, err := b.Bind(ctx, long, 0); !errors.Is(err, cluster.ErrPresenceTooLong) {
		t.Fatalf("Bind with a long presence: %v", err)
	}
	exact := entry("b", "alice", "exact", "s3")
	exact.Presence = strings.Repeat("x", cluster.MaxPresence)
	if _, err := b.Bind(ctx, exact, 0); err != nil {
		t.Fatalf("Bind with a presence of exactly MaxPresence: %v", err)
	}
	if err := b.Unbind(ctx, "alice", "exact", "s3"); err != nil {
		t.Fatal(err)
	}

	// Unbinding an update of a stream that is not there.
	if ok, err := b.Update(ctx, entry("b", "nobody", "x", "s9")); err != nil || ok {
		t.Fatalf("Update of no entry = %v, %v", ok, err)
	}

	if err := b.Unbind(ctx, "alice", "phone", "s2"); err != nil {
		t.Fatal(err)
	}
	wantEntries(t, "after the last unbind", resources(t, a, "alice"))
	wantOnline(t, a, 0, 0)
	if users, err := a.Users(ctx); err != nil || len(users) != 0 {
		t.Fatalf("Users = %v, %v; want none", users, err)
	}
}

// TestEntryChecks: entries the directory cannot hold are refused before
// Redis is asked.
func TestEntryChecks(t *testing.T) {
	srv := redistest.Start(t)
	a := open(t, srv.Addr(), "a", 0)
	ctx := ctxT(t)
	for _, e := range []cluster.Entry{
		entry("a", "", "r", "s"),
		entry("a", "u", "", "s"),
		entry("a", "u", "r", ""),
		entry("a", "u\x00v", "r", "s"),
		entry("a", "u", "r\x00", "s"),
	} {
		if _, err := a.Bind(ctx, e, 0); err == nil {
			t.Errorf("Bind(%+v) succeeded", e)
		}
	}
	wantOnline(t, a, 0, 0)
}

// TestReplicas: Replicas lists the live replicas with what they said of
// themselves; an id in use is refused.
func TestReplicas(t *testing.T) {
	srv := redistest.Start(t)
	a := open(t, srv.Addr(), "a", 0)
	open(t, srv.Addr(), "b", 0)
	rs, err := a.Replicas(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || rs[0].ID != "a" || rs[1].ID != "b" {
		t.Fatalf("Replicas = %+v, want a and b", rs)
	}
	for _, r := range rs {
		if r.Address != r.ID+".adhocd.test:5222" || r.Started.IsZero() || !r.LeaseExpiry.After(r.Started) {
			t.Errorf("replica %+v: address, start or lease expiry wrong", r)
		}
	}
	if a.Replica() != "a" {
		t.Errorf("Replica() = %q", a.Replica())
	}
	_, err = cluster.Open(ctxT(t), cluster.Options{Addr: srv.Addr(), Domain: domain, Replica: "a"})
	if err == nil {
		t.Fatal("Open with the id of a live replica succeeded")
	}
}

// TestSentinel: a replica that finds Redis through Sentinel shares the
// directory and the bus with one that connects directly.
func TestSentinel(t *testing.T) {
	srv := redistest.Start(t)
	sen := redistest.StartSentinel(t, "adhocd", srv)
	ctx := ctxT(t)
	a, err := cluster.Open(ctx, cluster.Options{
		SentinelMaster: "adhocd",
		SentinelAddrs:  []string{sen.Addr()},
		Domain:         domain,
		Replica:        "a",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	b := open(t, srv.Addr(), "b", 0)
	newInbox(a)
	phone := entry("a", "alice", "phone", "s1")
	if _, err := a.Bind(ctx, phone, 0); err != nil {
		t.Fatal(err)
	}
	wantEntries(t, "alice seen by b", resources(t, b, "alice"), phone)
	if ok, err := b.Send(ctx, "a", cluster.Envelope{Kind: "deliver"}); err != nil || !ok {
		t.Fatalf("Send to the replica behind Sentinel = %v, %v", ok, err)
	}
}

// TestTLSPassword: Options.TLS and Options.Password reach Redis, for the
// directory and the subscriptions.
func TestTLSPassword(t *testing.T) {
	srv := redistest.StartWith(t, redistest.Options{Password: "sesame", TLS: true})
	ctx := ctxT(t)
	o := cluster.Options{Addr: srv.Addr(), Password: "sesame", TLS: srv.ClientTLS(), Domain: domain, Replica: "a"}
	a, err := cluster.Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	in := newInbox(a)
	if _, err := a.Bind(ctx, entry("a", "alice", "phone", "s1"), 0); err != nil {
		t.Fatal(err)
	}
	if ok, err := a.Send(ctx, "a", cluster.Envelope{Kind: "deliver"}); err != nil || !ok {
		t.Fatalf("Send = %v, %v", ok, err)
	}
	in.next(t)

	o.Replica, o.Password = "b", "wrong"
	if c, err := cluster.Open(ctx, o); err == nil {
		_ = c.Close()
		t.Fatal("Open with a wrong password succeeded")
	}
	o.Password, o.TLS = "sesame", nil
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if c, err := cluster.Open(short, o); err == nil {
		_ = c.Close()
		t.Fatal("Open without TLS succeeded")
	}
}
