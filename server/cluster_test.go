package server_test

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/adhocd/adhocd/adhoc"
	"github.com/adhocd/adhocd/cluster/redistest"
	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/modules/admin"
	"github.com/adhocd/adhocd/server"
	"github.com/adhocd/adhocd/servertest"
	"github.com/adhocd/adhocd/storage"
	"github.com/adhocd/adhocd/storage/postgres/pgtest"
)

// replicas starts n servers of one domain on one PostgreSQL database and
// one Redis: a cluster, as n pods of the chart's Deployment.
func replicas(t *testing.T, n int, opts ...servertest.Option) []*servertest.Server {
	t.Helper()
	rd := redistest.Start(t)
	addrs := make([]string, n)
	for i := range addrs {
		addrs[i] = rd.Addr()
	}
	return replicasOn(t, pgtest.Start(t), addrs, opts...)
}

// replicasOn starts one replica on dsn per Redis address of redis (the
// Redis itself, or a proxy to it).
func replicasOn(t *testing.T, dsn string, redis []string, opts ...servertest.Option) []*servertest.Server {
	t.Helper()
	var out []*servertest.Server
	for i, addr := range redis {
		out = append(out, servertest.StartConfig(t, replicaConfig(t, dsn, addr, i, opts...)))
	}
	return out
}

// replicaConfig is the configuration of replica i (named a, b, c…).
func replicaConfig(t *testing.T, dsn, redis string, i int, opts ...servertest.Option) config.Config {
	cfg := servertest.Config(t.TempDir())
	cfg.Storage.Backend, cfg.Storage.Postgres.DSN = config.BackendPostgres, dsn
	cfg.Cluster.Redis.Addr = redis
	cfg.Cluster.Replica = string(rune('a' + i))
	for _, o := range opts {
		o(&cfg)
	}
	return cfg
}

// eventually polls ok for up to d.
func eventually(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

const wait = 10 * time.Second

// TestClusterRouting: users on different replicas reach each other as on
// one server. Presence goes both ways (broadcast and the probe of a
// contact online elsewhere), messages to full and bare JIDs arrive, an IQ
// and its answer cross, a message to a bare JID goes to the resource of
// highest priority whatever its replica, and one for an account online
// nowhere is kept offline and delivered on another replica.
func TestClusterRouting(t *testing.T) {
	rs := replicas(t, 3)
	a, b, c := rs[0], rs[1], rs[2]
	a.AddUser("alice", "pw-alice")
	a.AddUser("bob", "pw-bob")
	a.Befriend("alice", "bob")

	alice := a.RawLogin("alice", "pw-alice", "laptop")
	alice.Write(`<presence/>`)
	alice.Expect(`<presence[^>]*from=["']alice@localhost/laptop["']`) // her own, reflected

	bob := b.RawLogin("bob", "pw-bob", "phone")
	bob.Write(`<presence><priority>1</priority></presence>`)
	// Bob hears of alice on replica a (the directory answers his probe),
	// alice of bob (his broadcast, forwarded to her replica).
	bob.Expect(`<presence[^>]*from=["']alice@localhost/laptop["']`)
	alice.Expect(`<presence[^>]*from=["']bob@localhost/phone["']`)

	alice.Write(`<message to='bob@localhost/phone' type='chat' id='m1'><body>to the phone</body></message>`)
	if got := bob.Expect(`to the phone(?s:.*?)</message>`); !strings.Contains(got, "alice@localhost/laptop") {
		t.Fatalf("bob's message from alice: %s", got)
	}
	bob.Write(`<message to='alice@localhost' type='chat' id='m2'><body>to the bare JID</body></message>`)
	alice.Expect(`to the bare JID`)

	// An IQ to a full JID on another replica, and its answer back.
	alice.Write(`<iq type='get' id='v1' to='bob@localhost/phone'><query xmlns='jabber:iq:version'/></iq>`)
	bob.Expect(`<iq[^>]*id=["']v1["']`)
	bob.Write(`<iq type='result' id='v1' to='alice@localhost/laptop'><query xmlns='jabber:iq:version'><name>raw</name></query></iq>`)
	if got := alice.Expect(`<iq[^>]*id=["']v1["'](?s:.*?)</iq>`); !strings.Contains(got, "<name>raw</name>") || !strings.Contains(got, `type="result"`) && !strings.Contains(got, `type='result'`) {
		t.Fatalf("alice's answer from bob on another replica: %s", got)
	}

	// Bob's second resource, on replica c, has the higher priority: a
	// message to his bare JID goes there alone.
	bob2 := c.RawLogin("bob", "pw-bob", "desk")
	bob2.Write(`<presence><priority>5</priority></presence>`)
	bob2.Expect(`<presence[^>]*from=["']bob@localhost/desk["']`)
	bob.Expect(`<presence[^>]*from=["']bob@localhost/desk["']`) // his own other resource
	alice.Expect(`<presence[^>]*from=["']bob@localhost/desk["']`)
	alice.Write(`<message to='bob@localhost' type='chat' id='m3'><body>highest priority</body></message>`)
	bob2.Expect(`highest priority`)
	if got, ok := bob.ReadUntil(`highest priority`, 500*time.Millisecond); ok {
		t.Fatalf("the resource of lower priority got the message too: %s", got)
	}

	// Carol is online nowhere: kept offline, delivered on another replica.
	a.AddUser("carol", "pw-carol")
	alice.Write(`<message to='carol@localhost' type='chat' id='m4'><body>while you were away</body></message>`)
	eventually(t, wait, "the message kept offline", func() bool {
		_, n := c.Store().(storage.OfflineUsageReporter).OfflineUsage()
		return n == 1
	})
	carol := c.RawLogin("carol", "pw-carol", "tablet")
	carol.Write(`<presence/>`)
	carol.Expect(`while you were away`)

	// Alice leaves: bob's resources on both other replicas hear it.
	alice.Write(`</stream:stream>`)
	bob.Expect(`<presence[^>]*from=["']alice@localhost/laptop["'][^>]*type=["']unavailable["']|<presence[^>]*type=["']unavailable["'][^>]*from=["']alice@localhost/laptop["']`)
	bob2.Expect(`<presence[^>]*from=["']alice@localhost/laptop["'][^>]*type=["']unavailable["']|<presence[^>]*type=["']unavailable["'][^>]*from=["']alice@localhost/laptop["']`)
}

// TestClusterSessions: what an administrator and the session rules see
// across replicas. A resource bound on another replica is a conflict there
// (the older stream ends), the per-account session cap counts every
// replica's sessions, every replica counts and lists every session, and
// ending a user's sessions from one replica ends them on all.
func TestClusterSessions(t *testing.T) {
	rs := replicas(t, 3, func(c *config.Config) { c.Limits.MaxSessionsPerAccount = 2 })
	a, b, c := rs[0], rs[1], rs[2]
	a.AddUser("alice", "pw-alice")

	first := a.RawLogin("alice", "pw-alice", "laptop")
	b.RawLogin("alice", "pw-alice", "laptop") // the same full JID on replica b
	if got, ok := first.ClosedByServer(wait); !ok || !strings.Contains(got, "conflict") {
		t.Fatalf("the older session of the resource, on another replica: %q (closed %v), want a conflict stream error", got, ok)
	}

	c.RawLogin("alice", "pw-alice", "phone") // two sessions now: b and c
	third := a.RawDial()
	third.Authenticate(a.ClientTLS, "alice", "pw-alice")
	third.Write(`<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>desk</resource></bind></iq>`)
	if got := third.Expect(`</iq>`); !strings.Contains(got, "resource-constraint") {
		t.Fatalf("a third session with two on other replicas and a cap of 2: %s, want resource-constraint", got)
	}

	for _, r := range rs {
		var jids []string
		for _, s := range r.Sessions() {
			jids = append(jids, s.JID.String())
		}
		if len(jids) != 2 || !strings.Contains(strings.Join(jids, " "), "alice@localhost/laptop") || !strings.Contains(strings.Join(jids, " "), "alice@localhost/phone") {
			t.Fatalf("sessions as replica %s lists them: %v, want alice's laptop and phone", r.Config().Cluster.Replica, jids)
		}
	}

	if n := a.EndSessions("alice", "", "ended by an administrator"); n != 2 {
		t.Fatalf("ending alice's sessions from replica a ended %d, want 2", n)
	}
	eventually(t, wait, "no session left after ending them from another replica", func() bool { return len(b.Sessions()) == 0 })
}

// TestClusterSettings: administrators and access lists edited at run time
// through one replica are in force on the others within a second; a
// session the new blacklist refuses ends on the replica that holds it.
func TestClusterSettings(t *testing.T) {
	rs := replicas(t, 2)
	a, b := rs[0], rs[1]
	a.AddUser("alice", "pw-alice")
	bob, err := jid.Parse("bob@localhost")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.SetAdmins(context.Background(), []string{"bob@localhost"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "bob made an administrator, on the other replica", func() bool { return b.IsAdmin(bob) })

	alice := b.RawLogin("alice", "pw-alice", "laptop")
	if err := a.SetAccessLists(context.Background(), []string{"alice@localhost"}, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "the blacklist, on the other replica", func() bool { black, _ := b.AccessLists(); return len(black) == 1 })
	if got, ok := alice.ClosedByServer(wait); !ok || !strings.Contains(got, "not-authorized") {
		t.Fatalf("alice's session on the other replica after the blacklist: %q (closed %v)", got, ok)
	}
}

// TestClusterFencing cuts one replica from Redis (a proxy between them)
// for more than a lease: that replica closes its streams with
// system-shutdown and turns not ready, while the other goes on; once Redis
// is reachable again it is ready, and a user logging in there again is
// reachable from the other replica.
func TestClusterFencing(t *testing.T) {
	const lease = 3 * time.Second
	rd := redistest.Start(t)
	cut := redistest.NewProxy(t, rd.Addr())
	rs := replicasOn(t, pgtest.Start(t), []string{rd.Addr(), cut.Addr()}, func(c *config.Config) { c.Cluster.Lease = config.Duration(lease) })
	a, b := rs[0], rs[1]
	a.AddUser("alice", "pw-alice")
	a.AddUser("bob", "pw-bob")
	alice := b.RawLogin("alice", "pw-alice", "laptop")

	cut.Cut()
	if got, ok := alice.ClosedByServer(3 * lease); !ok || !strings.Contains(got, "system-shutdown") {
		t.Fatalf("a stream of the replica cut from Redis: %q (closed %v), want system-shutdown", got, ok)
	}
	if b.Ready() {
		t.Fatal("the fenced replica is ready")
	}
	if !a.Ready() {
		t.Fatal("the other replica is not ready")
	}

	cut.Restore()
	eventually(t, 3*lease, "the replica ready again once Redis is back", b.Ready)
	alice = b.RawLogin("alice", "pw-alice", "laptop")
	bob := a.RawLogin("bob", "pw-bob", "phone")
	bob.Write(`<message to='alice@localhost/laptop' type='chat' id='m1'><body>are you back?</body></message>`)
	alice.Expect(`are you back\?`)
}

// TestClusterRedisRestart restarts Redis (empty: nothing persisted) under
// two replicas with a user on each: no stream closes, every replica writes
// its sessions back, and the users reach each other again.
func TestClusterRedisRestart(t *testing.T) {
	rd := redistest.Start(t)
	rs := replicasOn(t, pgtest.Start(t), []string{rd.Addr(), rd.Addr()}, func(c *config.Config) { c.Cluster.Lease = config.Duration(3 * time.Second) })
	a, b := rs[0], rs[1]
	a.AddUser("alice", "pw-alice")
	a.AddUser("bob", "pw-bob")
	alice := a.RawLogin("alice", "pw-alice", "laptop")
	bob := b.RawLogin("bob", "pw-bob", "phone")
	eventually(t, wait, "both sessions listed", func() bool { return len(a.Sessions()) == 2 })

	rd.Stop()
	if err := rd.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 4*wait, "the directory rebuilt with both sessions", func() bool { return len(a.Sessions()) == 2 && len(b.Sessions()) == 2 })
	bob.Write(`<message to='alice@localhost/laptop' type='chat' id='m1'><body>after the restart</body></message>`)
	alice.Expect(`after the restart`)
	alice.Write(`<message to='bob@localhost/phone' type='chat' id='m2'><body>and back</body></message>`)
	bob.Expect(`and back`)
	for _, r := range []*servertest.Raw{alice, bob} {
		if got, closed := r.ClosedByServer(100 * time.Millisecond); closed {
			t.Fatalf("a stream closed across the Redis restart: %q", got)
		}
	}
}

// TestClusterRestartIsPerReplica: the XEP-0133 restart command run on one
// replica restarts that replica alone, says so in its note, and announces
// it to that replica's users, not to those of the others.
func TestClusterRestartIsPerReplica(t *testing.T) {
	dsn, rd := pgtest.Start(t), redistest.Start(t)
	admins := func(c *config.Config) { c.Admins = []string{"root@localhost"} }
	stopped := make(chan bool, 1)
	a := servertest.StartConfig(t, replicaConfig(t, dsn, rd.Addr(), 0, admins), server.WithLifecycle(func(restart bool) { stopped <- restart }))
	b := servertest.StartConfig(t, replicaConfig(t, dsn, rd.Addr(), 1, admins))
	a.AddUser("root", "toor")
	a.AddUser("alice", "pw-alice")
	a.AddUser("bob", "pw-bob")
	alice := a.RawLogin("alice", "pw-alice", "laptop")
	bob := b.RawLogin("bob", "pw-bob", "phone")

	root := adhoc.NewRequester(a.Dial("root", "toor", "").Session)
	r, err := root.Run(context.Background(), a.Domain(), admin.Node("restart"), func(context.Context, *adhoc.Response) (adhoc.Action, adhoc.Values, error) {
		return adhoc.Complete, adhoc.Values{"announcement": {"this replica restarts"}}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var notes []string
	for _, n := range r.Notes {
		notes = append(notes, n.Text)
	}
	if text := strings.Join(notes, " "); !strings.Contains(text, "this replica will restart") || !strings.Contains(text, "other replicas of the cluster go on") {
		t.Fatalf("restart's note in a cluster: %q", text)
	}
	alice.Expect(`this replica restarts`)
	if got, ok := bob.ReadUntil(`this replica restarts`, 300*time.Millisecond); ok {
		t.Fatalf("a user of another replica got the announcement: %s", got)
	}
	if restart := <-stopped; !restart {
		t.Fatal("restart stopped the replica without restarting it")
	}
}

// TestClusterMOTDOnce: replicas configured with the same admin.motd
// deliver it once per account, not once per replica: its version comes
// from its text, and the claim of it is a row lock in the shared store.
func TestClusterMOTDOnce(t *testing.T) {
	rs := replicas(t, 2, func(c *config.Config) { c.Admin.MOTD = "hello, cluster" })
	a, b := rs[0], rs[1]
	a.AddUser("alice", "pw-alice")
	onA := a.RawLogin("alice", "pw-alice", "laptop")
	onA.Write(`<presence/>`)
	onA.Expect(`hello, cluster`)
	onB := b.RawLogin("alice", "pw-alice", "phone")
	onB.Write(`<presence/>`)
	onB.Expect(`<presence[^>]*from=["']alice@localhost/phone["']`)
	if got, ok := onB.ReadUntil(`hello, cluster`, 500*time.Millisecond); ok {
		t.Fatalf("the message of the day came again through the other replica: %s", got)
	}
}

// TestClusterRedisRestartUnderLoad: messages keep flowing between two
// replicas while Redis restarts; none is lost but what pub/sub's at most
// once may lose at the instant Redis stops. What could not cross while
// Redis was down was kept offline for its recipient (never dropped), and
// arrives at the recipient's next login.
func TestClusterRedisRestartUnderLoad(t *testing.T) {
	rd := redistest.Start(t)
	rs := replicasOn(t, pgtest.Start(t), []string{rd.Addr(), rd.Addr()}, func(c *config.Config) {
		c.Cluster.Lease = config.Duration(3 * time.Second)
		c.Limits.MaxOfflineMessages = 1000
	})
	a, b := rs[0], rs[1]
	a.AddUser("alice", "pw-alice")
	a.AddUser("bob", "pw-bob")
	alice := a.RawLogin("alice", "pw-alice", "laptop")
	bob := b.RawLogin("bob", "pw-bob", "phone")
	bob.Write(`<presence/>`)
	bob.Expect(`<presence[^>]*from=["']bob@localhost/phone["']`)

	const n = 150
	received := map[string]bool{}
	var mu sync.Mutex
	read := func(r *servertest.Raw, until time.Duration) {
		re := regexp.MustCompile(`load-(\d+)`)
		for {
			got, ok := r.ReadUntil(`load-\d+`, until)
			if !ok {
				return
			}
			mu.Lock()
			for _, m := range re.FindAllStringSubmatch(got, -1) {
				received[m[1]] = true
			}
			mu.Unlock()
		}
	}
	done := make(chan struct{})
	go func() { defer close(done); read(bob, 2*time.Second) }()
	for i := range n {
		if i == n/3 {
			rd.Stop()
		}
		if i == n/2 {
			if err := rd.Start(); err != nil {
				t.Error(err)
			}
		}
		alice.Write(fmt.Sprintf(`<message to='bob@localhost' type='chat' id='l%d'><body>load-%d</body></message>`, i, i))
		time.Sleep(10 * time.Millisecond)
	}
	<-done
	mu.Lock()
	live := len(received)
	mu.Unlock()
	// What was kept offline comes with bob's next available presence.
	again := a.RawLogin("bob", "pw-bob", "desk")
	again.Write(`<presence/>`)
	read(again, 2*time.Second)
	var missing []int
	for i := range n {
		if !received[fmt.Sprint(i)] {
			missing = append(missing, i)
		}
	}
	// Redis pub/sub is at most once: what Redis took for a subscriber and
	// had not written to it when it stopped is gone (docs/clustering.md);
	// at most one in a hundred is tolerated, and logged.
	if len(missing) > n/100 {
		t.Fatalf("%d of %d messages lost across the Redis restart: %v", len(missing), n, missing)
	} else if len(missing) > 0 {
		t.Logf("%d of %d messages lost across the Redis restart (pub/sub is at most once): %v", len(missing), n, missing)
	}
	t.Logf("%d messages delivered at once, %d kept offline while Redis was down", live, n-live)
	if got, ok := alice.ReadUntil(`type=["']error["']`, 100*time.Millisecond); ok {
		t.Fatalf("alice got an error: %s", got)
	}
}
