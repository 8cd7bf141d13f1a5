package server_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"regexp"
	"strings"
	"testing"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/form"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/adhoc"
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

// raceNode is the command of TestAdhocStageSubmittedTwice: two stages, the
// first of which holds its submission until the test lets it go.
const raceNode = "urn:adhocd:test:race"

// raceCommand is raceNode on one replica: the check of the first stage
// reports the name submitted on arrived and waits for release.
func raceCommand(arrived chan<- string, release <-chan struct{}) adhoc.Command {
	return adhoc.Command{
		Node:  raceNode,
		Name:  "Race",
		Allow: adhoc.Anyone(),
		Stages: []adhoc.Stage{
			{
				Form: func(context.Context, *adhoc.Request) (*form.Data, error) {
					return form.New(form.Text("name", form.Label("Name"), form.Required)), nil
				},
				Check: func(ctx context.Context, r *adhoc.Request) error {
					arrived <- r.Values.Get("name")
					select {
					case <-release:
						return nil
					case <-ctx.Done():
						return ctx.Err()
					}
				},
			},
			{Form: func(_ context.Context, r *adhoc.Request) (*form.Data, error) {
				return form.New(form.Title("Hello "+r.Values.Get("name")), form.Text("color", form.Label("Colour"), form.Required)), nil
			}},
		},
		Complete: func(_ context.Context, r *adhoc.Request) (*adhoc.Result, error) {
			return &adhoc.Result{Notes: []adhoc.Note{{Type: adhoc.NoteInfo, Text: r.Values.Get("name") + " likes " + r.Values.Get("color")}}}, nil
		},
	}
}

// TestAdhocStageSubmittedTwice: the same stage of a session shared by two
// replicas is submitted through both at once: the client moved to replica
// b (the same full JID: its stream on a ended with conflict) while a was
// still serving the submission it had sent there, and sends it again on
// b. Each replica read the session at the same revision; the first to
// store its submission (a) shows the next stage, and the other (b)
// answers its user with the error XEP-0050 leaves to the server (RFC 6120
// §8.3.3.4 <conflict/>, of type wait: the session goes on, retry), not
// with a stage built on what it read. The session then continues on b
// from a's submission.
//
// A request of a stream that ended is canceled with it (its context), so
// the request still in flight on a is handed to a's provider directly,
// as a's stream handed it before it ended; b's is a real stream's.
func TestAdhocStageSubmittedTwice(t *testing.T) {
	dsn, rd := pgtest.Start(t), redistest.Start(t)
	arrived := make(chan string, 2)
	releaseA, releaseB := make(chan struct{}), make(chan struct{})
	a := servertest.StartConfig(t, replicaConfig(t, dsn, rd.Addr(), 0), server.WithCommands(raceCommand(arrived, releaseA)))
	b := servertest.StartConfig(t, replicaConfig(t, dsn, rd.Addr(), 1), server.WithCommands(raceCommand(arrived, releaseB)))
	a.AddUser("alice", "pw-alice")
	ctx := servertest.Context(t, time.Minute)
	gotArrival := func(want string) {
		t.Helper()
		select {
		case name := <-arrived:
			if name != want {
				t.Fatalf("the stage's check got %q, want %q", name, want)
			}
		case <-time.After(wait):
			t.Fatalf("the submission of %q never reached the stage's check", want)
		}
	}

	onA := a.RawLogin("alice", "pw-alice", "laptop")
	onA.Write(`<iq type='set' id='c1' to='localhost'><command xmlns='http://jabber.org/protocol/commands' node='` + raceNode + `' action='execute'/></iq>`)
	m := regexp.MustCompile(`sessionid=["']([^"']+)["']`).FindStringSubmatch(onA.Expect(`id=["']c1["'](?s:.*?)</iq>`))
	if m == nil {
		t.Fatal("execute: no session id")
	}
	sid := m[1]
	onB := b.RawLogin("alice", "pw-alice", "laptop")
	if closed, ok := onA.ClosedByServer(wait); !ok || !strings.Contains(closed, "conflict") {
		t.Fatalf("alice's older stream, on a: %q (closed %v), want a conflict stream error", closed, ok)
	}

	// a's submission, in flight: held in the stage's check.
	type result struct {
		xml string
		err error
	}
	onAResult := make(chan result, 1)
	go func() {
		iq := stanza.IQ{ID: "c2", Type: stanza.SetIQ, From: jid.MustParse("alice@localhost/laptop"), To: a.Domain()}
		start := xml.StartElement{Name: xml.Name{Space: adhoc.NS, Local: "command"}, Attr: []xml.Attr{
			{Name: xml.Name{Local: "node"}, Value: raceNode}, {Name: xml.Name{Local: "sessionid"}, Value: sid}, {Name: xml.Name{Local: "action"}, Value: "next"}}}
		var payload []xml.Token
		for sub := (adhoc.Values{"name": {"Ann"}}).Submission(); ; {
			tok, err := sub.Token()
			if tok != nil {
				payload = append(payload, xml.CopyToken(tok))
			}
			if err != nil {
				break
			}
		}
		resp, err := a.Commands().Handle(ctx, iq, start, payload)
		if err != nil {
			onAResult <- result{err: err}
			return
		}
		var buf bytes.Buffer
		e := xml.NewEncoder(&buf)
		if _, err := xmlstream.Copy(e, resp); err != nil {
			onAResult <- result{err: err}
			return
		}
		err = e.Flush()
		onAResult <- result{xml: buf.String(), err: err}
	}()
	gotArrival("Ann")
	// The same submission through b: read at the same revision, held too.
	onB.Write(`<iq type='set' id='c3' to='localhost'><command xmlns='http://jabber.org/protocol/commands' node='` + raceNode +
		`' sessionid='` + sid + `' action='next'><x xmlns='jabber:x:data' type='submit'><field var='name'><value>Bea</value></field></x></command></iq>`)
	gotArrival("Bea")

	// a stores its submission first and shows the next stage.
	close(releaseA)
	select {
	case r := <-onAResult:
		if r.err != nil || !strings.Contains(r.xml, "Hello Ann") || !strings.Contains(r.xml, `status="executing"`) {
			t.Fatalf("the submission through a, stored first: %s, %v; want the next stage", r.xml, r.err)
		}
	case <-time.After(wait):
		t.Fatal("the submission through a never completed")
	}
	close(releaseB)
	got := onB.Expect(`id=["']c3["'](?s:.*?)</iq>`)
	if !regexp.MustCompile(`<iq[^>]*type=["']error["']`).MatchString(got) || !regexp.MustCompile(`<error[^>]*type=["']wait["']`).MatchString(got) ||
		!regexp.MustCompile(`<conflict xmlns=["']urn:ietf:params:xml:ns:xmpp-stanzas["']`).MatchString(got) {
		t.Fatalf("the same stage submitted through b after a stored it: %s, want a <conflict/> error of type wait", got)
	}
	if strings.Contains(got, "Hello Bea") || strings.Contains(got, "Hello Ann") {
		t.Fatalf("the losing submission was shown a stage: %s", got)
	}

	// The session goes on, from a's submission.
	s, err := b.Commands().Store().Get(ctx, sid)
	if err != nil || s.Stage != 1 || s.Values[0].Get("name") != "Ann" {
		t.Fatalf("the session after both submissions: %+v, %v; want stage 1 with a's name", s, err)
	}
	onB.Write(`<iq type='set' id='c4' to='localhost'><command xmlns='http://jabber.org/protocol/commands' node='` + raceNode +
		`' sessionid='` + sid + `' action='complete'><x xmlns='jabber:x:data' type='submit'><field var='color'><value>red</value></field></x></command></iq>`)
	if got := onB.Expect(`id=["']c4["'](?s:.*?)</iq>`); !strings.Contains(got, "Ann likes red") || !regexp.MustCompile(`status=["']completed["']`).MatchString(got) {
		t.Fatalf("completing the session on b after the conflict: %s", got)
	}
}
