package admin_test

import (
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/adhocd/adhocd/adhoc"
	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/modules"
	"github.com/adhocd/adhocd/modules/admin"
	"github.com/adhocd/adhocd/server"
	"github.com/adhocd/adhocd/servertest"
)

// federated starts a.test and b.test federated, with root@ its domain as
// administrator of each.
func federated(t *testing.T) (a, b *servertest.Server) {
	t.Helper()
	return servertest.Federated(t, func(a, b *config.Config) {
		a.Admins, b.Admins = []string{"root@a.test"}, []string{"root@b.test"}
	})
}

// s2sRows runs the s2s command on srv as root and returns its rows.
func s2sRows(t *testing.T, root *adhoc.Requester, srv *servertest.Server) (*adhoc.Response, []map[string]string) {
	t.Helper()
	r, err := root.Start(ctx(t), jid.MustParse(srv.Config().Domain), admin.OperatorNode("s2s"))
	if err != nil || r.Status != adhoc.Completed || len(r.Forms) != 1 {
		t.Fatalf("s2s on %s: %+v %v", srv.Config().Domain, r, err)
	}
	return r, rows(r.Forms[0])
}

// statusFigures runs the status command on srv as root.
func statusFigures(t *testing.T, root *adhoc.Requester, srv *servertest.Server) map[string]string {
	t.Helper()
	r, err := root.Start(ctx(t), jid.MustParse(srv.Config().Domain), admin.OperatorNode("status"))
	if err != nil || r.Status != adhoc.Completed || len(r.Forms) != 1 {
		t.Fatalf("status on %s: %+v %v", srv.Config().Domain, r, err)
	}
	got := map[string]string{}
	for _, f := range r.Forms[0].Fields {
		got[f.Var] = strings.Join(f.Values, "")
	}
	return got
}

// controlFigures is what `adhocd status` prints, read from srv's control
// socket.
func controlFigures(t *testing.T, srv *servertest.Server) map[string]string {
	t.Helper()
	figures, err := server.ControlStatus(ctx(t), srv.Dir)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, f := range figures {
		got[f.Var] = f.Value
	}
	return got
}

// waitFigures waits for the status report that figures gives to count
// out and in server-to-server streams.
func waitFigures(t *testing.T, name string, figures func() map[string]string, out, in string) {
	t.Helper()
	deadline := time.Now().Add(servertest.Wait)
	for {
		st := figures()
		if st["s2s-outbound"] == out && st["s2s-inbound"] == in {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s's status: s2s-outbound %q, s2s-inbound %q, want %s and %s", name, st["s2s-outbound"], st["s2s-inbound"], out, in)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestS2SCommandFederated: once alice@a.test and bob@b.test have exchanged
// a message each way (after the first, each server counts the one stream
// in its direction), a.test's s2s command lists its stream to b.test and
// the one b.test opened, both authenticated by dialback over TLS (the
// certificates are self-signed), since the test began, nothing queued; the
// status command and `adhocd status` (the control socket) count one stream
// each way on both servers, and none before the first message. A server
// with federation off has no s2s figures.
func TestS2SCommandFederated(t *testing.T) {
	begin := time.Now().Add(-time.Second).Truncate(time.Second)
	a, b := federated(t)
	a.AddUser("root", "toor")
	b.AddUser("root", "toor")
	a.AddUser("alice", "wonderland")
	b.AddUser("bob", "builder")
	rootA := adhoc.NewRequester(a.Dial("root", "toor", "").Session)
	rootB := adhoc.NewRequester(b.Dial("root", "toor", "").Session)

	r, rs := s2sRows(t, rootA, a)
	if len(rs) != 0 || len(r.Notes) != 1 || r.Notes[0].Text != "0 streams: 0 outbound, 0 inbound" {
		t.Fatalf("s2s before any message: %v %+v", rs, r.Notes)
	}
	for _, st := range []map[string]string{statusFigures(t, rootA, a), controlFigures(t, a)} {
		if st["s2s-outbound"] != "0" || st["s2s-inbound"] != "0" {
			t.Fatalf("a.test's status before any message: s2s-outbound %q, s2s-inbound %q", st["s2s-outbound"], st["s2s-inbound"])
		}
	}

	alice, bob := login(t, a, "alice", "wonderland"), login(t, b, "bob", "builder")
	if err := alice.SendRaw(ctx(t), "<message to='bob@b.test' type='chat' id='m1'><body>hello from a</body></message>"); err != nil {
		t.Fatal(err)
	}
	bob.Next(15*time.Second, func(s servertest.Stanza) bool { return s.Name == "message" && s.Attrs["id"] == "m1" })
	// One way so far: a.test has its stream out, b.test that stream in
	// (once the dialback verification connection b.test opened to a.test
	// has closed).
	waitFigures(t, "a.test", func() map[string]string { return statusFigures(t, rootA, a) }, "1", "0")
	waitFigures(t, "b.test", func() map[string]string { return controlFigures(t, b) }, "0", "1")
	if err := bob.SendRaw(ctx(t), "<message to='alice@a.test' type='chat' id='m2'><body>hello from b</body></message>"); err != nil {
		t.Fatal(err)
	}
	alice.Next(15*time.Second, func(s servertest.Stanza) bool { return s.Name == "message" && s.Attrs["id"] == "m2" })

	// The dialback verification connections close on their own: wait for
	// the list to settle to the two streams.
	var settled bool
	deadline := time.Now().Add(servertest.Wait)
	for !settled {
		r, rs = s2sRows(t, rootA, a)
		settled = len(rs) == 2 && rs[0]["auth"] != "negotiating" && rs[1]["auth"] != "negotiating"
		if !settled {
			if time.Now().After(deadline) {
				t.Fatalf("a.test's s2s did not settle to two streams: %v", rs)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	end := time.Now()
	if len(r.Notes) != 1 || r.Notes[0].Text != "2 streams: 1 outbound, 1 inbound" {
		t.Errorf("notes %+v", r.Notes)
	}
	for i, direction := range []string{"out", "in"} {
		row := rs[i]
		want := map[string]string{"remote": "b.test", "local": "a.test", "direction": direction, "auth": "dialback", "tls": "true", "queued": "0"}
		for k, v := range want {
			if row[k] != v {
				t.Errorf("row %d %s = %q, want %q (row %v)", i, k, row[k], v, row)
			}
		}
		since, err := time.Parse(time.RFC3339, row["since"])
		if err != nil || !strings.HasSuffix(row["since"], "Z") || since.Before(begin) || since.After(end) {
			t.Errorf("row %d since %q: not RFC 3339 UTC between %s and %s (%v)", i, row["since"], begin.UTC().Format(time.RFC3339), end.UTC().Format(time.RFC3339), err)
		}
	}
	// What the command shows is what the server reports.
	var fromServer []modules.S2SInfo
	for _, c := range a.S2SStreams() {
		if c.Auth != "" {
			fromServer = append(fromServer, c)
		}
	}
	if len(fromServer) != 2 || fromServer[0].Inbound || !fromServer[1].Inbound || fromServer[0].Remote != "b.test" {
		t.Errorf("a.test's S2SStreams %+v", fromServer)
	}

	for _, srv := range []struct {
		name string
		root *adhoc.Requester
		s    *servertest.Server
	}{{"a.test", rootA, a}, {"b.test", rootB, b}} {
		for via, st := range map[string]map[string]string{"status command": statusFigures(t, srv.root, srv.s), "control socket": controlFigures(t, srv.s)} {
			if st["s2s-outbound"] != "1" || st["s2s-inbound"] != "1" {
				t.Errorf("%s's %s: s2s-outbound %q, s2s-inbound %q, want 1 and 1", srv.name, via, st["s2s-outbound"], st["s2s-inbound"])
			}
		}
	}

	// Federation off: no s2s figures, and the command says why it lists
	// nothing.
	e := setup(t)
	if st := statusFigures(t, e.root, e.srv); st["s2s-outbound"] != "" || st["s2s-inbound"] != "" {
		t.Errorf("s2s figures with federation off: %v", st)
	}
	if r, rs := s2sRows(t, e.root, e.srv); len(rs) != 0 || note(r, adhoc.NoteInfo) != "0 streams: 0 outbound, 0 inbound" || len(r.Notes) != 2 || r.Notes[1].Text != "federation is off: s2s.listen is empty" {
		t.Errorf("s2s with federation off: %v %+v", rs, r.Notes)
	}
}
