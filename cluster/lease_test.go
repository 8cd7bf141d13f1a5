package cluster_test

import (
	"context"
	"errors"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/adhocd/adhocd/cluster"
	"github.com/adhocd/adhocd/cluster/redistest"
)

// lease is the short lease of the tests that wait for one to lapse.
const lease = 600 * time.Millisecond

type reaped struct {
	dead string
	gone []cluster.Entry
}

func onReap(c *cluster.Cluster) chan reaped {
	ch := make(chan reaped, 8)
	c.OnReap(func(ctx context.Context, dead string, gone []cluster.Entry) {
		ch <- reaped{dead, gone}
	})
	return ch
}

func sortEntries(es []cluster.Entry) []cluster.Entry {
	sort.Slice(es, func(i, j int) bool {
		if es[i].User != es[j].User {
			return es[i].User < es[j].User
		}
		return es[i].Resource < es[j].Resource
	})
	return es
}

func rawClient(t *testing.T, addr string) *redis.Client {
	t.Helper()
	r := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func mustBind(t *testing.T, c *cluster.Cluster, e cluster.Entry) cluster.Entry {
	t.Helper()
	if _, err := c.Bind(ctxT(t), e, 0); err != nil {
		t.Fatalf("Bind %s/%s on %s: %v", e.User, e.Resource, c.Replica(), err)
	}
	e.Replica = c.Replica()
	return e
}

// TestReap: a replica that dies without leaving is reaped by a survivor
// once its lease has expired; OnReap gets exactly its entries, and the
// directory no longer lists them. An entry another replica took over is
// not the dead one's.
func TestReap(t *testing.T) {
	srv := redistest.Start(t)
	a := open(t, srv.Addr(), "a", lease)
	b := open(t, srv.Addr(), "b", lease)
	reapsA := onReap(a)

	bAlice := mustBind(t, b, entry("", "alice", "phone", "b1"))
	bBob := mustBind(t, b, entry("", "bob", "desk", "b2"))
	mustBind(t, b, entry("", "carol", "laptop", "b3"))
	aCarol := mustBind(t, a, entry("", "carol", "laptop", "a1")) // replaces b's
	aAlice := mustBind(t, a, entry("", "alice", "tablet", "a2"))
	wantOnline(t, a, 3, 4)

	start := time.Now()
	cluster.CloseAbruptly(b)
	var r reaped
	select {
	case r = <-reapsA:
	case <-time.After(10 * lease):
		t.Fatalf("b not reaped within %v", 10*lease)
	}
	t.Logf("reaped %v after the crash (lease %v)", time.Since(start).Round(time.Millisecond), lease)
	if r.dead != "b" {
		t.Fatalf("reaped %q, want b", r.dead)
	}
	wantEntries(t, "b's reaped entries", sortEntries(r.gone), bAlice, bBob)

	wantEntries(t, "alice", resources(t, a, "alice"), aAlice)
	wantEntries(t, "bob", resources(t, a, "bob"))
	wantEntries(t, "carol", resources(t, a, "carol"), aCarol)
	wantOnline(t, a, 2, 2)
	if users, err := a.Users(ctxT(t)); err != nil || len(users) != 2 || users[0] != "alice" || users[1] != "carol" {
		t.Fatalf("Users = %v, %v", users, err)
	}
	if ids := replicaIDs(t, a); len(ids) != 1 || ids[0] != "a" {
		t.Fatalf("Replicas = %v, want a", ids)
	}
	raw := rawClient(t, srv.Addr())
	if n, err := raw.Exists(ctxT(t), "adhocd:{"+domain+"}:own:b", "adhocd:{"+domain+"}:replica:b").Result(); err != nil || n != 0 {
		t.Fatalf("b's keys left: %d, %v", n, err)
	}
	if _, err := raw.ZScore(ctxT(t), "adhocd:{"+domain+"}:replicas", "b").Result(); !errors.Is(err, redis.Nil) {
		t.Fatalf("b still in the replicas zset: %v", err)
	}
}

// TestReapOnce: with several survivors, one reaps.
func TestReapOnce(t *testing.T) {
	srv := redistest.Start(t)
	survivors := []*cluster.Cluster{open(t, srv.Addr(), "a", lease), open(t, srv.Addr(), "b", lease), open(t, srv.Addr(), "c", lease)}
	var reaps atomic.Int32
	var gone sync.Map
	for _, s := range survivors {
		s.OnReap(func(ctx context.Context, dead string, es []cluster.Entry) {
			reaps.Add(1)
			for _, e := range es {
				if _, dup := gone.LoadOrStore(e.User+"/"+e.Resource, s.Replica()); dup {
					t.Errorf("%s/%s reaped twice", e.User, e.Resource)
				}
			}
		})
	}
	d := open(t, srv.Addr(), "d", lease)
	for _, u := range []string{"u1", "u2", "u3", "u4", "u5"} {
		mustBind(t, d, entry("", u, "r", u+"-s"))
	}
	cluster.CloseAbruptly(d)
	waitFor(t, "d reaped", func() bool {
		u, s, err := survivors[0].Online(ctxT(t))
		return err == nil && u == 0 && s == 0 && reaps.Load() > 0
	})
	// An absence cannot be polled for: give every survivor's reaper (one
	// pass every lease/3) three more passes in which it must not reap d
	// again.
	time.Sleep(lease)
	if n := reaps.Load(); n != 1 {
		t.Fatalf("d reaped %d times", n)
	}
	n := 0
	gone.Range(func(any, any) bool { n++; return true })
	if n != 5 {
		t.Fatalf("%d entries reaped, want 5", n)
	}
}

// TestFence: a replica cut from Redis for more than a lease fences
// itself (OnFence), refuses binds, is reaped by the others; when Redis is
// reachable again it registers again and writes back what OnRecover
// returns.
func TestFence(t *testing.T) {
	srv := redistest.Start(t)
	p := redistest.NewProxy(t, srv.Addr())
	a := open(t, p.Addr(), "a", lease)
	b := open(t, srv.Addr(), "b", lease)
	reapsB := onReap(b)

	alice := mustBind(t, a, entry("", "alice", "phone", "a1"))
	bob := mustBind(t, a, entry("", "bob", "desk", "a2"))
	fenced := make(chan struct{})
	var fences atomic.Int32
	a.OnFence(func() {
		if fences.Add(1) == 1 {
			close(fenced)
		}
	})
	recovered := make(chan struct{}, 4)
	// The server closed bob's stream when it fenced; alice's stays (say).
	a.OnRecover(func(ctx context.Context) []cluster.Entry {
		recovered <- struct{}{}
		return []cluster.Entry{alice}
	})

	p.Cut()
	select {
	case <-fenced:
	case <-time.After(10 * lease):
		t.Fatal("a did not fence itself")
	}
	if !a.Fenced() {
		t.Fatal("Fenced() = false after OnFence")
	}
	if _, err := a.Bind(ctxT(t), entry("", "carol", "x", "a3"), 0); !errors.Is(err, cluster.ErrFenced) {
		t.Fatalf("Bind while fenced: %v, want ErrFenced", err)
	}
	if _, err := a.Update(ctxT(t), alice); !errors.Is(err, cluster.ErrFenced) {
		t.Fatalf("Update while fenced: %v, want ErrFenced", err)
	}
	var r reaped
	select {
	case r = <-reapsB:
	case <-time.After(10 * lease):
		t.Fatal("b did not reap the fenced a")
	}
	if r.dead != "a" {
		t.Fatalf("b reaped %q", r.dead)
	}
	wantEntries(t, "a's reaped entries", sortEntries(r.gone), alice, bob)

	p.Restore()
	select {
	case <-recovered:
	case <-time.After(10 * lease):
		t.Fatal("OnRecover did not run after the proxy was restored")
	}
	waitFor(t, "a unfenced", func() bool { return !a.Fenced() })
	wantEntries(t, "alice after the recovery", resources(t, b, "alice"), alice)
	wantEntries(t, "bob after the recovery", resources(t, b, "bob"))
	wantOnline(t, b, 1, 1)
	if ids := replicaIDs(t, b); len(ids) != 2 {
		t.Fatalf("Replicas = %v, want a and b", ids)
	}
	if fences.Load() != 1 {
		t.Fatalf("OnFence ran %d times", fences.Load())
	}
	mustBind(t, a, entry("", "carol", "x", "a3"))
	newInbox(a)
	waitFor(t, "a's channel subscribed again", func() bool {
		ok, err := b.Send(ctxT(t), "a", cluster.Envelope{Kind: "hello"})
		return err == nil && ok
	})
}

// TestFenceStale: a replica that fenced itself without being reaped (its
// lease lapsed, no survivor ran) prunes its entries that OnRecover does
// not return when it registers again.
func TestFenceStale(t *testing.T) {
	srv := redistest.Start(t)
	p := redistest.NewProxy(t, srv.Addr())
	a := open(t, p.Addr(), "a", lease)
	alice := mustBind(t, a, entry("", "alice", "phone", "a1"))
	mustBind(t, a, entry("", "bob", "desk", "a2"))
	fenced := make(chan struct{})
	a.OnFence(func() { close(fenced) })
	a.OnRecover(func(ctx context.Context) []cluster.Entry { return []cluster.Entry{alice} })
	p.Cut()
	select {
	case <-fenced:
	case <-time.After(10 * lease):
		t.Fatal("a did not fence itself")
	}
	p.Restore()
	waitFor(t, "a unfenced", func() bool { return !a.Fenced() })
	wantEntries(t, "alice", resources(t, a, "alice"), alice)
	wantEntries(t, "bob", resources(t, a, "bob"))
	wantOnline(t, a, 1, 1)
}

// TestRedisRestart: Redis restarts empty; without fencing, each replica
// notices its lease gone and writes its sessions back; an Update and an
// Unbind made before that are applied after it; a session that another
// replica bound for the same resource meanwhile wins (OnLost).
func TestRedisRestart(t *testing.T) {
	srv := redistest.Start(t)
	const lease = 3 * time.Second // longer than the outage: no fence
	a := open(t, srv.Addr(), "a", lease)
	b := open(t, srv.Addr(), "b", lease)
	var fences atomic.Int32
	for _, c := range []*cluster.Cluster{a, b} {
		c.OnFence(func() { fences.Add(1) })
	}
	ctx := ctxT(t)

	alice := mustBind(t, a, entry("", "alice", "phone", "a1"))
	bob := mustBind(t, a, entry("", "bob", "desk", "a2"))
	carol := mustBind(t, b, entry("", "carol", "laptop", "b1"))
	a.OnRecover(func(ctx context.Context) []cluster.Entry { return []cluster.Entry{alice, bob} })
	b.OnRecover(func(ctx context.Context) []cluster.Entry { return []cluster.Entry{carol} })

	srv.Stop()
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	// Before or after a's recovery, these hold in the end: alice's new
	// presence, bob gone (as if OnRecover's snapshot had been taken just
	// before his session ended).
	upd := alice
	upd.Available, upd.Presence = true, "<presence/>"
	var ok bool
	waitFor(t, "an Update after the restart", func() bool {
		var err error
		ok, err = a.Update(ctx, upd)
		return err == nil
	})
	if !ok {
		t.Fatal("Update after the restart = false")
	}
	waitFor(t, "an Unbind after the restart", func() bool { return a.Unbind(ctx, "bob", "desk", "a2") == nil })

	waitFor(t, "both replicas registered again", func() bool {
		rs, err := a.Replicas(ctx)
		return err == nil && len(rs) == 2
	})
	waitFor(t, "the directory rebuilt", func() bool {
		m, err := a.ResourcesOf(ctx, []string{"alice", "bob", "carol"})
		return err == nil && len(m) == 2 && len(m["alice"]) == 1 && m["alice"][0].Presence == "<presence/>" && len(m["carol"]) == 1
	})
	wantEntries(t, "alice", resources(t, b, "alice"), upd)
	wantEntries(t, "carol", resources(t, b, "carol"), carol)
	wantOnline(t, b, 2, 2)
	if fences.Load() != 0 {
		t.Fatalf("OnFence ran %d times on a restart shorter than the lease", fences.Load())
	}
	if a.Fenced() || b.Fenced() {
		t.Fatal("a replica is fenced")
	}
	newInbox(b)
	waitFor(t, "b's channel subscribed again", func() bool {
		ok, err := a.Send(ctx, "b", cluster.Envelope{Kind: "hello"})
		return err == nil && ok
	})

	// Second restart: b binds alice/phone before a has written it back;
	// a's older session loses (OnLost).
	lost := make(chan []cluster.Entry, 1)
	a.OnLost(func(ctx context.Context, es []cluster.Entry) { lost <- es })
	hold := make(chan struct{})
	a.OnRecover(func(ctx context.Context) []cluster.Entry {
		<-hold
		return []cluster.Entry{upd}
	})
	srv.Stop()
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	var bPhone cluster.Entry
	waitFor(t, "b binding alice/phone after the restart", func() bool {
		_, err := b.Bind(ctx, entry("", "alice", "phone", "b2"), 0)
		bPhone = entry("b", "alice", "phone", "b2")
		return err == nil
	})
	close(hold)
	select {
	case es := <-lost:
		wantEntries(t, "lost", es, upd)
	case <-time.After(10 * time.Second):
		t.Fatal("OnLost did not run")
	}
	wantEntries(t, "alice after the second restart", resources(t, a, "alice"), bPhone)
	if _, err := a.Bind(ctx, entry("", "dave", "x", "a3"), 0); err != nil {
		t.Fatalf("Bind on a after its recovery: %v", err)
	}
}

// TestClose: a replica that leaves removes its entries and its lease; no
// one reaps it.
func TestClose(t *testing.T) {
	srv := redistest.Start(t)
	a := open(t, srv.Addr(), "a", lease)
	b := open(t, srv.Addr(), "b", lease)
	mustBind(t, b, entry("", "alice", "phone", "b1"))
	mustBind(t, b, entry("", "bob", "desk", "b2"))
	aCarol := mustBind(t, a, entry("", "carol", "laptop", "a1"))
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	wantEntries(t, "alice", resources(t, a, "alice"))
	wantEntries(t, "bob", resources(t, a, "bob"))
	wantEntries(t, "carol", resources(t, a, "carol"), aCarol)
	wantOnline(t, a, 1, 1)
	if ids := replicaIDs(t, a); len(ids) != 1 || ids[0] != "a" {
		t.Fatalf("Replicas = %v, want a", ids)
	}
	raw := rawClient(t, srv.Addr())
	keys, err := raw.Keys(ctxT(t), "adhocd:*b*").Result()
	if err != nil || len(keys) != 0 {
		t.Fatalf("keys of b left: %v, %v", keys, err)
	}
	// Not in the zset: no reaper will look for b.
	if _, err := raw.ZScore(ctxT(t), "adhocd:{"+domain+"}:replicas", "b").Result(); !errors.Is(err, redis.Nil) {
		t.Fatalf("b still in the replicas zset: %v", err)
	}
	if ok, err := a.Send(ctxT(t), "b", cluster.Envelope{Kind: "x"}); err != nil || ok {
		t.Fatalf("Send to the closed b = %v, %v; want not delivered", ok, err)
	}
}

// TestCloseAfterReap: a replica reaped while fenced closes without an
// error.
func TestCloseAfterReap(t *testing.T) {
	srv := redistest.Start(t)
	p := redistest.NewProxy(t, srv.Addr())
	a := open(t, p.Addr(), "a", lease)
	b := open(t, srv.Addr(), "b", lease)
	reapsB := onReap(b)
	mustBind(t, a, entry("", "alice", "phone", "a1"))
	p.Cut()
	select {
	case <-reapsB:
	case <-time.After(10 * lease):
		t.Fatal("b did not reap a")
	}
	// Closed at once, before or while it registers again.
	p.Restore()
	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if ids := replicaIDs(t, b); len(ids) != 1 || ids[0] != "b" {
		t.Fatalf("Replicas = %v, want b", ids)
	}
}
