package commands_test

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/adhocd/adhocd/adhoc"
	"github.com/adhocd/adhocd/adhoc/adhoctest"
	"github.com/adhocd/adhocd/adhoc/demo"
	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/server"
	"github.com/adhocd/adhocd/servertest"
)

var domain = jid.MustParse("localhost")

func ctx(t *testing.T) context.Context { return servertest.Context(t, 10*time.Second) }

// start runs a server with the demo commands; root is an admin.
func start(t *testing.T, opts ...servertest.Option) *servertest.Server {
	t.Helper()
	var srv *servertest.Server
	isAdmin := func(j jid.JID) bool { return srv.IsAdmin(j) }
	srv = servertest.StartWith(t, []server.Option{server.WithCommands(adhoctest.Wizard(), adhoctest.Greeting(), adhoctest.AdminOnly(isAdmin))},
		append([]servertest.Option{func(c *config.Config) { c.Admins = []string{"root@localhost"} }}, opts...)...)
	srv.AddUser("alice", "wonderland")
	srv.AddUser("bob", "builder")
	srv.AddUser("root", "toor")
	return srv
}

func TestDiscovery(t *testing.T) {
	srv := start(t)
	alice := srv.Dial("alice", "wonderland", "")
	root := srv.Dial("root", "toor", "")

	info, err := alice.IQ(ctx(t), `<iq type='get' id='i1' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	if err != nil || !strings.Contains(info, `var="http://jabber.org/protocol/commands"`) {
		t.Fatalf("server features lack commands: %q %v", info, err)
	}
	list := func(c *servertest.Client) []string {
		cmds, err := adhoc.NewRequester(c.Session).Commands(ctx(t), domain)
		if err != nil {
			t.Fatal(err)
		}
		var nodes []string
		for _, c := range cmds {
			if !c.JID.Equal(domain) {
				t.Errorf("command %s listed at %s", c.Node, c.JID)
			}
			nodes = append(nodes, c.Node)
		}
		return nodes
	}
	if got := strings.Join(list(alice), " "); got != adhoctest.TimeNode+" "+adhoctest.WizardNode {
		t.Fatalf("alice sees %q", got)
	}
	seen := 0
	for _, n := range list(root) {
		switch n {
		case adhoctest.TimeNode, adhoctest.WizardNode, adhoctest.AdminOnlyNode:
			seen++
		}
	}
	if seen != 3 {
		t.Fatalf("the admin sees %d of the 3 test commands", seen)
	}
	items, err := alice.IQ(ctx(t), `<iq type='get' id='i2' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info' node='http://jabber.org/protocol/commands'/></iq>`)
	if err != nil || !strings.Contains(items, `type="command-list"`) {
		t.Fatalf("command list identity: %q %v", items, err)
	}
	node, err := alice.IQ(ctx(t), `<iq type='get' id='i3' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info' node='`+adhoctest.WizardNode+`'/></iq>`)
	if err != nil || !strings.Contains(node, `type="command-node"`) || !strings.Contains(node, `var="jabber:x:data"`) {
		t.Fatalf("command node info: %q %v", node, err)
	}
	_, err = alice.IQ(ctx(t), `<iq type='get' id='i4' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info' node='`+adhoctest.AdminOnlyNode+`'/></iq>`)
	if err == nil || !strings.Contains(err.Error(), "<forbidden") {
		t.Fatalf("a forbidden node's info: %v", err)
	}
}

// TestWizardOverTCP drives the three-stage wizard through execute, next,
// prev, next, next, complete.
func TestWizardOverTCP(t *testing.T) {
	srv := start(t)
	alice := srv.Dial("alice", "wonderland", "")
	req := adhoc.NewRequester(alice.Session)

	r, err := req.Start(ctx(t), domain, adhoctest.WizardNode)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != adhoc.Executing || r.Default != adhoc.Next || len(r.Forms) != 1 || r.Forms[0].Fields[0].Var != "name" || !r.Forms[0].Fields[0].IsRequired() {
		t.Fatalf("stage 1: %+v", r)
	}
	sid := r.SessionID
	r, err = req.Continue(ctx(t), r, adhoc.Next, adhoc.Values{"name": {"Alice"}, "color": {"blue"}})
	if err != nil || r.Forms[0].Title != "Hello Alice" || !r.Allowed(adhoc.Prev) {
		t.Fatalf("stage 2: %+v %v", r, err)
	}
	r, err = req.Continue(ctx(t), r, adhoc.Prev, nil)
	if err != nil || r.Forms[0].Value("name") != "Alice" || r.Forms[0].Value("color") != "blue" {
		t.Fatalf("prev did not bring back stage 1's answers: %+v %v", r, err)
	}
	r, err = req.Continue(ctx(t), r, adhoc.Next, adhoc.Values{"name": {"Alice"}, "color": {"red"}})
	if err != nil {
		t.Fatal(err)
	}
	r, err = req.Continue(ctx(t), r, adhoc.Execute, adhoc.Values{"contact": {"Bob@Localhost"}, "notify": {"1"}})
	if err != nil || r.Default != adhoc.Complete || r.Allowed(adhoc.Next) {
		t.Fatalf("stage 3: %+v %v", r, err)
	}
	if r.SessionID != sid {
		t.Fatalf("session id changed: %s -> %s", sid, r.SessionID)
	}
	r, err = req.Complete(ctx(t), r, adhoc.Values{"comment": {"line one", "line two"}})
	if err != nil {
		t.Fatal(err)
	}
	f := r.Forms[0]
	if r.Status != adhoc.Completed || f.Type != "result" || f.Value("color") != "red" || f.Value("contact") != "bob@localhost" || f.Value("comment") != "line one\nline two" {
		t.Fatalf("completed: %+v", r)
	}
	if len(r.Notes) != 1 || r.Notes[0].Text != "done" {
		t.Fatalf("notes: %+v", r.Notes)
	}

	// The flow helper runs it with a callback per stage.
	answers := []adhoc.Values{{"name": {"Ann"}, "color": {"green"}}, {"contact": {"x@y"}}, {}}
	stage := 0
	final, err := req.Run(ctx(t), domain, adhoctest.WizardNode, func(_ context.Context, r *adhoc.Response) (adhoc.Action, adhoc.Values, error) {
		v := answers[stage]
		stage++
		return r.Default, v, nil
	})
	if err != nil || final.Status != adhoc.Completed || final.Forms[0].Value("name") != "Ann" || stage != 3 {
		t.Fatalf("Run: %+v %v after %d stages", final, err, stage)
	}

	// Cancel ends a session with status canceled; the id is then expired.
	r, err = req.Start(ctx(t), domain, adhoctest.WizardNode)
	if err != nil {
		t.Fatal(err)
	}
	c, err := req.Cancel(ctx(t), r)
	if err != nil || c.Status != adhoc.Canceled {
		t.Fatalf("cancel: %+v %v", c, err)
	}
	_, err = req.Continue(ctx(t), r, adhoc.Next, adhoc.Values{"name": {"x"}, "color": {"red"}})
	if adhoc.Condition(err) != "session-expired" {
		t.Fatalf("after cancel: %v", err)
	}
}

// TestErrorsOverTCP reproduces every XEP-0050 error over the wire and checks
// the exact elements of the <error/>.
func TestErrorsOverTCP(t *testing.T) {
	srv := start(t, func(c *config.Config) { c.Adhoc.MaxSessionsPerUser = 3 })
	alice := srv.Dial("alice", "wonderland", "")
	bob := srv.Dial("bob", "builder", "")
	areq := adhoc.NewRequester(alice.Session)
	live, err := areq.Start(ctx(t), domain, adhoctest.WizardNode)
	if err != nil {
		t.Fatal(err)
	}
	ended, err := areq.Start(ctx(t), domain, adhoctest.WizardNode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := areq.Cancel(ctx(t), ended); err != nil {
		t.Fatal(err)
	}
	cmd := func(attrs, payload string) string {
		return `<iq type='set' id='e1' to='localhost'><command xmlns='http://jabber.org/protocol/commands' ` + attrs + `>` + payload + `</command></iq>`
	}
	wiz := `node='` + adhoctest.WizardNode + `'`
	cases := []struct {
		name, who, iq, typ, cond, specific string
	}{
		{"malformed-action", "alice", cmd(wiz+` action='jump'`, ""), "modify", "bad-request", "malformed-action"},
		{"bad-action", "alice", cmd(wiz+` sessionid='`+live.SessionID+`' action='prev'`, ""), "modify", "bad-request", "bad-action"},
		{"bad-locale", "alice", `<iq type='set' id='e1' to='localhost' xml:lang='de'><command xmlns='http://jabber.org/protocol/commands' ` + wiz + `/></iq>`, "modify", "bad-request", "bad-locale"},
		{"bad-payload", "alice", cmd(wiz+` sessionid='`+live.SessionID+`' action='next'`, `<x xmlns='jabber:x:data' type='submit'><field var='name'><value>A</value></field><field var='color'><value>purple</value></field></x>`), "modify", "bad-request", "bad-payload"},
		{"bad-sessionid (invented)", "alice", cmd(wiz+` sessionid='mine' action='next'`, ""), "modify", "bad-request", "bad-sessionid"},
		{"bad-sessionid (another user's)", "bob", cmd(wiz+` sessionid='`+live.SessionID+`' action='cancel'`, ""), "modify", "bad-request", "bad-sessionid"},
		{"session-expired", "alice", cmd(wiz+` sessionid='`+ended.SessionID+`' action='next'`, ""), "cancel", "not-allowed", "session-expired"},
		{"forbidden", "alice", cmd(`node='`+adhoctest.AdminOnlyNode+`'`, ""), "cancel", "forbidden", ""},
		{"item-not-found", "alice", cmd(`node='urn:nothing'`, ""), "cancel", "item-not-found", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := alice
			if tc.who == "bob" {
				c = bob
			}
			_, err := c.IQ(ctx(t), tc.iq)
			if err == nil {
				t.Fatal("want an error reply")
			}
			got := err.Error()
			if !regexp.MustCompile(`<error[^>]* type="`+tc.typ+`">`).MatchString(got) || !strings.Contains(got, "<"+tc.cond+` xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"`) {
				t.Fatalf("want %s/%s, got %s", tc.typ, tc.cond, got)
			}
			if tc.specific != "" && !strings.Contains(got, "<"+tc.specific+` xmlns="http://jabber.org/protocol/commands"`) {
				t.Fatalf("want the specific condition %s, got %s", tc.specific, got)
			}
			if tc.specific == "" && strings.Contains(got, `xmlns="http://jabber.org/protocol/commands"></`) {
				t.Fatalf("unexpected specific condition: %s", got)
			}
		})
	}
	// Bob's attempt changed nothing: alice's session goes on.
	if _, err := areq.Continue(ctx(t), live, adhoc.Next, adhoc.Values{"name": {"A"}, "color": {"red"}}); err != nil {
		t.Fatalf("alice's session after bob's attempt: %v", err)
	}
	t.Run("not-allowed at the per-user cap", func(t *testing.T) {
		for i := 0; i < 2; i++ {
			if _, err := areq.Start(ctx(t), domain, adhoctest.WizardNode); err != nil {
				t.Fatal(err)
			}
		}
		_, err := alice.IQ(ctx(t), cmd(wiz, ""))
		if err == nil || !strings.Contains(err.Error(), `type="cancel"><not-allowed xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"`) {
			t.Fatalf("want not-allowed, got %v", err)
		}
	})
}

var sidRE = regexp.MustCompile(`sessionid="([^"]+)"`)

// TestSessionSurvivesRestart: with adhoc.persist, a multi-stage session
// started before a restart goes on to completion after it, with the answers
// given before it.
func TestSessionSurvivesRestart(t *testing.T) {
	srv := start(t, func(c *config.Config) { c.Adhoc.Persist = true })
	exec := func(r *servertest.Raw, id, attrs, form string) string {
		r.Write(`<iq type='set' id='` + id + `' to='localhost'><command xmlns='http://jabber.org/protocol/commands' node='` + adhoctest.WizardNode + `' ` + attrs + `>` + form + `</command></iq>`)
		return r.Expect(`id="` + id + `".*</iq>`)
	}
	r := srv.RawLogin("alice", "wonderland", "desk")
	got := exec(r, "s1", "", "")
	m := sidRE.FindStringSubmatch(got)
	if m == nil {
		t.Fatalf("no session id in %q", got)
	}
	sid := m[1]
	got = exec(r, "s2", `sessionid='`+sid+`' action='next'`, `<x xmlns='jabber:x:data' type='submit'><field var='name'><value>Persisted</value></field><field var='color'><value>green</value></field></x>`)
	if !strings.Contains(got, "Hello Persisted") {
		t.Fatalf("stage 2 before the restart: %q", got)
	}

	srv2 := srv.Restart()
	r2 := srv2.RawLogin("alice", "wonderland", "desk")
	got = exec(r2, "s3", `sessionid='`+sid+`' action='next'`, `<x xmlns='jabber:x:data' type='submit'><field var='contact'><value>bob@localhost</value></field></x>`)
	if !strings.Contains(got, "Persisted likes green and knows bob@localhost") {
		t.Fatalf("stage 3 after the restart lost the earlier answers: %q", got)
	}
	got = exec(r2, "s4", `sessionid='`+sid+`' action='complete'`, "")
	if !strings.Contains(got, `status="completed"`) || !strings.Contains(got, "<value>Persisted</value>") {
		t.Fatalf("completion after the restart: %q", got)
	}
	// Completed: the id is now expired, after another restart too.
	srv3 := srv2.Restart()
	r3 := srv3.RawLogin("alice", "wonderland", "desk")
	got = exec(r3, "s5", `sessionid='`+sid+`' action='next'`, "")
	if !strings.Contains(got, "<session-expired") {
		t.Fatalf("a completed id after a restart: %q", got)
	}
}

// BenchmarkOneStageOverLoopback measures one execution of a one-stage
// command by a mellium client over TLS on loopback, reply parsed.
func BenchmarkOneStageOverLoopback(b *testing.B) {
	srv := servertest.StartWith(b, []server.Option{server.WithCommands(adhoctest.Greeting())}, servertest.NoRateLimits)
	srv.AddUser("alice", "wonderland")
	req := adhoc.NewRequester(srv.Dial("alice", "wonderland", "").Session)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		r, err := req.Start(ctx, domain, adhoctest.TimeNode)
		if err != nil || r.Status != adhoc.Completed {
			b.Fatalf("%+v %v", r, err)
		}
	}
}

// TestDemoCommandsOption: adhoc.demo_commands lists the demo commands to
// every user and runs the wizard's three stages; without it they are absent.
func TestDemoCommandsOption(t *testing.T) {
	for _, on := range []bool{false, true} {
		srv := servertest.Start(t, func(c *config.Config) { c.Adhoc.DemoCommands = on })
		srv.AddUser("alice", "wonderland")
		req := adhoc.NewRequester(srv.Dial("alice", "wonderland", "").Session)
		list, err := req.Commands(ctx(t), domain)
		if err != nil {
			t.Fatal(err)
		}
		var nodes []string
		for _, c := range list {
			nodes = append(nodes, c.Node)
		}
		listed := strings.Contains(strings.Join(nodes, " "), demo.WizardNode)
		if listed != on || strings.Contains(strings.Join(nodes, " "), demo.GreetingNode) != on {
			t.Fatalf("demo_commands %v: alice sees %v", on, nodes)
		}
		if !on {
			if _, err := req.Start(ctx(t), domain, demo.WizardNode); adhoc.Condition(err) != "item-not-found" {
				t.Fatalf("the wizard runs without demo_commands: %v", err)
			}
			continue
		}
		stages := 0
		r, err := req.Run(ctx(t), domain, demo.WizardNode, func(_ context.Context, r *adhoc.Response) (adhoc.Action, adhoc.Values, error) {
			stages++
			return r.Default, adhoc.Values{"name": {"Ann"}, "color": {"red"}, "contact": {"bob@localhost"}}, nil
		})
		if err != nil || r.Status != adhoc.Completed || stages != 3 || r.Forms[0].Value("contact") != "bob@localhost" {
			t.Fatalf("wizard: %d stages, %+v, %v", stages, r, err)
		}
	}
}
