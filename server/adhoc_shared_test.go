package server_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/adhocd/adhocd/adhoc/adhoctest"
	"github.com/adhocd/adhocd/cluster/redistest"
	"github.com/adhocd/adhocd/server"
	"github.com/adhocd/adhocd/servertest"
	"github.com/adhocd/adhocd/storage/postgres/pgtest"
)

// TestAdhocSessionOnAnotherServer: two replicas of a cluster share their
// XEP-0050 sessions (in PostgreSQL). A command started on the first goes
// on on the second from the same full JID (the client reconnected there),
// with what the first stage took; another account cannot continue it
// there; and a session canceled on the second is ended for the first too.
func TestAdhocSessionOnAnotherServer(t *testing.T) {
	dsn, rd := pgtest.Start(t), redistest.Start(t)
	i := 0
	start := func() *servertest.Server {
		i++
		return servertest.StartConfig(t, replicaConfig(t, dsn, rd.Addr(), i-1), server.WithCommands(adhoctest.Wizard()))
	}
	a, b := start(), start()
	a.AddUser("alice", "pw-alice")
	a.AddUser("bob", "pw-bob")

	onA := a.RawLogin("alice", "pw-alice", "laptop")
	onA.Write(`<iq type='set' id='c1' to='localhost'><command xmlns='http://jabber.org/protocol/commands' node='` + adhoctest.WizardNode + `' action='execute'/></iq>`)
	got := onA.Expect(`id=["']c1["'](?s:.*?)</iq>`)
	m := regexp.MustCompile(`sessionid=["']([^"']+)["']`).FindStringSubmatch(got)
	if m == nil || !strings.Contains(got, "Who are you?") {
		t.Fatalf("execute on the first server: %s", got)
	}
	sid := m[1]
	next := func(id string) string {
		return `<iq type='set' id='` + id + `' to='localhost'><command xmlns='http://jabber.org/protocol/commands' node='` + adhoctest.WizardNode +
			`' sessionid='` + sid + `' action='next'><x xmlns='jabber:x:data' type='submit'><field var='name'><value>Ann</value></field>` +
			`<field var='color'><value>red</value></field></x></command></iq>`
	}

	// Bob, on the second server, cannot take it over.
	bob := b.RawLogin("bob", "pw-bob", "laptop")
	bob.Write(next("b1"))
	if got := bob.Expect(`id=["']b1["'](?s:.*?)</iq>`); !strings.Contains(got, "bad-sessionid") {
		t.Fatalf("another account continuing the session: %s", got)
	}

	onB := b.RawLogin("alice", "pw-alice", "laptop") // the same full JID, on the other server
	onB.Write(next("c2"))
	got = onB.Expect(`id=["']c2["'](?s:.*?)</iq>`)
	if !strings.Contains(got, "Hello Ann") || !strings.Contains(got, `status="executing"`) && !strings.Contains(got, `status='executing'`) {
		t.Fatalf("next on the second server: %s", got)
	}
	onB.Write(`<iq type='set' id='c3' to='localhost'><command xmlns='http://jabber.org/protocol/commands' node='` + adhoctest.WizardNode +
		`' sessionid='` + sid + `' action='cancel'/></iq>`)
	if got := onB.Expect(`id=["']c3["'](?s:.*?)</iq>|id=["']c3["'][^>]*/>`); !strings.Contains(got, "canceled") {
		t.Fatalf("cancel on the second server: %s", got)
	}
	// Ended for the first server too: session-expired, not a stage.
	onA2 := a.RawLogin("alice", "pw-alice", "laptop")
	onA2.Write(next("c4"))
	if got := onA2.Expect(`id=["']c4["'](?s:.*?)</iq>`); !strings.Contains(got, "session-expired") {
		t.Fatalf("the canceled session on the first server: %s", got)
	}
}
