package blocking_test

import (
	"slices"
	"testing"

	"github.com/adhocd/adhocd/server"
	"github.com/adhocd/adhocd/servertest"
)

// TestBlocklistDiskFloor: below limits.min_free_disk_bytes (the floor set
// 1 GiB above the real free space, as modules/offline's TestDiskFloor does)
// a block is refused with resource-constraint of type wait and changes
// nothing: not the stored list, not what is enforced, and no session gets
// a push of it. The list is still read and enforced, and an unblock, which
// only removes, goes on. With the floor lowered the same block succeeds.
func TestBlocklistDiskFloor(t *testing.T) {
	floor := servertest.NewDiskFloor(t) // the free-disk floor is the bbolt store's
	dir, st := floor.Dir, floor.Store
	srv := servertest.StartConfig(t, servertest.Config(dir), server.WithStore(st))
	users(t, srv, "juliet", "romeo", "tybalt")
	j, j2 := login(t, srv, "juliet", "chamber"), login(t, srv, "juliet", "balcony")
	j2.blocklist() // j2 gets the pushes
	mustResult(t, "block tybalt", j.block("tybalt@localhost"))
	j2.next("the push of the block of tybalt", isPush)
	romeo, tybalt := login(t, srv, "romeo", "orchard"), login(t, srv, "tybalt", "street")

	floor.Raise()

	r := j.block("romeo@localhost")
	if r.Type != "error" || r.condition() != "resource-constraint" || r.Error.Type != "wait" {
		t.Fatalf("a block below the floor: %s, want resource-constraint of type wait", r.XML)
	}
	settle(j, j2)
	j2.none("a push of the refused block", isPush)
	j.none("a push of the refused block", isPush)
	if got := j.blocklist(); !slices.Equal(got, []string{"tybalt@localhost"}) {
		t.Fatalf("blocklist below the floor %q, want tybalt alone", got)
	}
	// Enforced as before: romeo gets through, tybalt does not.
	romeo.Write(`<message type='chat' to='juliet@localhost/chamber' id='r1'><body>wherefore</body></message>`)
	if m := j.next("romeo's message", kind("message", fromAccount("romeo"))); m.Type == "error" || m.Body != "wherefore" {
		t.Errorf("romeo's message below the floor: %s", m.XML)
	}
	tybalt.Write(`<message type='chat' to='juliet@localhost/chamber' id='t1'><body>draw</body></message>`)
	if e := tybalt.next("the answer to tybalt's message", func(s stanzaOnWire) bool { return s.ID == "t1" }); e.condition() != "service-unavailable" {
		t.Errorf("tybalt's message below the floor: %s, want service-unavailable", e.XML)
	}

	// An unblock only removes: it goes on below the floor, pushed and
	// enforced at once.
	mustResult(t, "unblock tybalt below the floor", j.unblock("tybalt@localhost"))
	if p := j2.next("the push of the unblock", isPush); p.Unblock == nil || !slices.Equal(p.Unblock.jids(), []string{"tybalt@localhost"}) {
		t.Errorf("the unblock push: %s", p.XML)
	}
	if got := j.blocklist(); len(got) != 0 {
		t.Errorf("blocklist after the unblock %q, want none", got)
	}
	tybalt.Write(`<message type='chat' to='juliet@localhost/chamber' id='t2'><body>peace</body></message>`)
	if m := j.next("tybalt's message", kind("message", fromAccount("tybalt"))); m.Type == "error" || m.Body != "peace" {
		t.Errorf("tybalt's message after the unblock: %s", m.XML)
	}

	floor.Lower()
	mustResult(t, "block romeo with the floor lowered", j.block("romeo@localhost"))
	if p := j2.next("the push of the block of romeo", isPush); p.Block == nil || !slices.Equal(p.Block.jids(), []string{"romeo@localhost"}) {
		t.Errorf("the block push: %s", p.XML)
	}
	romeo.Write(`<message type='chat' to='juliet@localhost/chamber' id='r2'><body>again</body></message>`)
	if e := romeo.next("the answer to romeo's message", func(s stanzaOnWire) bool { return s.ID == "r2" }); e.condition() != "service-unavailable" {
		t.Errorf("romeo's message once blocked: %s, want service-unavailable", e.XML)
	}
}
