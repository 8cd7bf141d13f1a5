package main_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/cluster/redistest"
	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/servertest"
	"github.com/adhocd/adhocd/storage"
	"github.com/adhocd/adhocd/storage/postgres"
	"github.com/adhocd/adhocd/storage/postgres/pgtest"
)

// clusterConfig writes the configuration of one replica of a cluster on
// dsn and Redis at redis, in dir; extra is more of config.yaml's top-level
// sections (metrics, shutdown, limits), appended as it is.
func clusterConfig(t *testing.T, dir, dsn, redis, replica string, lease time.Duration, extra ...string) string {
	t.Helper()
	cfg := filepath.Join(dir, "config.yaml")
	yaml := fmt.Sprintf("domain: localhost\nc2s:\n  listen: 127.0.0.1:0\ns2s:\n  listen: \"\"\nstorage:\n  path: data\n  backend: postgres\n  postgres:\n    dsn: %q\n"+
		"cluster:\n  redis:\n    addr: %s\n  lease: %s\n  replica: %s\nlog:\n  level: info\n", dsn, redis, lease, replica) + strings.Join(extra, "")
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestClusterReplicaKilled runs three adhocd processes as one cluster and
// SIGKILLs one. A message sent to a user of the dead replica before the
// directory forgets it is kept offline (its replica no longer listens),
// the user's contacts on both other replicas are told it is unavailable
// within about a lease, the survivors go on routing between themselves,
// and the user, logging in again on a surviving replica, gets the message.
// Then adhocd user, run where no server is, disables the user: the session
// on a surviving replica ends.
func TestClusterReplicaKilled(t *testing.T) {
	const lease = 3 * time.Second
	bin := build(t)
	dsn := pgtest.Start(t)
	rd := redistest.Start(t)
	d1, d2, d3 := t.TempDir(), t.TempDir(), t.TempDir()
	cfg1 := clusterConfig(t, d1, dsn, rd.Addr(), "one", lease)
	cfg2 := clusterConfig(t, d2, dsn, rd.Addr(), "two", lease)
	cfg3 := clusterConfig(t, d3, dsn, rd.Addr(), "three", lease)
	_, addrs1, logs1 := startAdhocd(t, bin, cfg1)
	addr1 := next(t, addrs1, logs1)
	p2, addrs2, logs2 := startAdhocd(t, bin, cfg2)
	addr2 := next(t, addrs2, logs2)
	_, addrs3, logs3 := startAdhocd(t, bin, cfg3)
	addr3 := next(t, addrs3, logs3)

	for _, u := range []string{"alice", "bob", "carol"} {
		if out, err := runCmd(t, bin, "pw-"+u+"\n", "user", "add", u+"@localhost", "--config", cfg1); err != nil {
			t.Fatalf("user add %s: %v\n%s", u, err, out)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := postgres.Open(ctx, config.PostgresStorage{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	st := postgres.NewStore(db)
	defer st.Close()
	for _, p := range [][2]string{{"alice", "bob"}, {"bob", "alice"}, {"carol", "bob"}, {"bob", "carol"}, {"alice", "carol"}, {"carol", "alice"}} {
		if _, err := st.UpdateRosterItem(ctx, p[0], p[1]+"@localhost", func(it *storage.RosterItem, _ bool) (bool, error) {
			it.Subscription = storage.SubBoth
			return false, nil
		}); err != nil {
			t.Fatal(err)
		}
	}

	login := func(addr, dir, user, res string) *servertest.Raw {
		t.Helper()
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		r := servertest.NewRaw(t, c)
		r.Login(clientTLS(t, dir), user, "pw-"+user, res)
		r.Write(`<presence/>`)
		return r
	}
	alice := login(addr1, d1, "alice", "laptop")
	bob := login(addr2, d2, "bob", "phone")
	bob.Expect(`from=["']alice@localhost/laptop["']`)
	alice.Expect(`<presence[^>]*from=["']bob@localhost/phone["']`)
	carol := login(addr3, d3, "carol", "tablet")
	carol.Expect(`<presence[^>]*from=["']bob@localhost/phone["']`)

	if err := p2.Process.Kill(); err != nil { // SIGKILL: no goodbye to the cluster
		t.Fatal(err)
	}
	killed := time.Now()
	_ = p2.Wait()
	alice.Write(`<message to='bob@localhost' type='chat' id='m1'><body>sent as your server died</body></message>`)

	unavailable := `<presence[^>]*from=["']bob@localhost/phone["'][^>]*type=["']unavailable["']|<presence[^>]*type=["']unavailable["'][^>]*from=["']bob@localhost/phone["']`
	if got, ok := alice.ReadUntil(unavailable, 4*lease); !ok {
		t.Fatalf("alice was not told bob is unavailable within %s of his replica's death; she read %q\nreplica one:\n%s", 4*lease, got, logs1.String())
	}
	// The dead replica's lease key lapses at most a lease after its last
	// renewal, and a survivor's reaper, every third of a lease, finds it
	// then: about a lease and a third; two leases leave room for a slow
	// machine, never for a reap that waits for a second lease.
	took := time.Since(killed)
	t.Logf("bob announced unavailable %s after his replica died (lease %s)", took.Round(time.Millisecond), lease)
	if took > 2*lease {
		t.Errorf("bob announced unavailable %s after his replica died, want within two leases (%s)", took, 2*lease)
	}
	if got, ok := carol.ReadUntil(unavailable, 4*lease); !ok {
		t.Fatalf("carol, on the third replica, was not told bob is unavailable; she read %q\nreplica three:\n%s", got, logs3.String())
	}
	carol.Write(`<message to='alice@localhost' type='chat' id='c1'><body>still here</body></message>`)
	alice.Expect(`still here`)
	if got, ok := alice.ReadUntil(`<message[^>]*type=["']error["']`, 200*time.Millisecond); ok {
		t.Fatalf("the message to bob bounced: %s", got)
	}
	bob = login(addr1, d1, "bob", "phone")
	got, ok := bob.ReadUntil(`sent as your server died(?s:.*?)</message>`, 10*time.Second)
	if !ok {
		t.Fatalf("bob, logged in again, never got the message sent as his replica died; he read %q\nreplica one:\n%s", got, logs1.String())
	}
	if !strings.Contains(got, "alice@localhost/laptop") {
		t.Fatalf("bob's kept message: %s", got)
	}

	// adhocd user on the dead replica's host, where no server answers: it
	// changes the database and ends bob's session on replica one through
	// the directory.
	if out, err := runCmd(t, bin, "", "user", "disable", "bob@localhost", "--config", cfg2); err != nil {
		t.Fatalf("user disable with no server on this host: %v\n%s", err, out)
	}
	if got, ok := bob.ClosedByServer(10 * time.Second); !ok || !strings.Contains(got, "not-authorized") {
		t.Fatalf("bob's session on another replica after adhocd user disable: %q (closed %v)", got, ok)
	}
}
