package adhoc_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/form"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/adhoc"
	"github.com/adhocd/adhocd/adhoc/adhoctest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

var (
	server = jid.MustParse("localhost")
	alice  = jid.MustParse("alice@localhost/phone")
	alice2 = jid.MustParse("alice@localhost/laptop")
	bob    = jid.MustParse("bob@localhost/desk")
)

// response is a <command/> reply, read with the requester's parser, and its
// XML as sent.
type response struct {
	*adhoc.Response
	raw string
}

// actions renders the offered actions as "default:action,action".
func (r *response) actions() string {
	if r.Default == "" {
		return ""
	}
	a := make([]string, len(r.Actions))
	for i, x := range r.Actions {
		a[i] = string(x)
	}
	return string(r.Default) + ":" + strings.Join(a, ",")
}

func (r *response) value(name string) string {
	for _, f := range r.Forms {
		if v := f.Value(name); v != "" {
			return v
		}
	}
	return ""
}

// fields is a submission: var, value, var, value, …
func submit(fields ...string) []xml.Token {
	x := xml.StartElement{Name: xml.Name{Space: "jabber:x:data", Local: "x"}, Attr: []xml.Attr{{Name: xml.Name{Local: "type"}, Value: "submit"}}}
	toks := []xml.Token{x}
	for i := 0; i+1 < len(fields); i += 2 {
		f := xml.StartElement{Name: xml.Name{Space: "jabber:x:data", Local: "field"}, Attr: []xml.Attr{{Name: xml.Name{Local: "var"}, Value: fields[i]}}}
		v := xml.StartElement{Name: xml.Name{Space: "jabber:x:data", Local: "value"}}
		toks = append(toks, f, v, xml.CharData(fields[i+1]), v.End(), f.End())
	}
	return append(toks, x.End())
}

// twoValues submits field f with values a and b, and then var, value pairs.
func twoValues(f, a, b string, more ...string) []xml.Token {
	toks := submit(append([]string{f, a}, more...)...)
	v := xml.StartElement{Name: xml.Name{Space: "jabber:x:data", Local: "value"}}
	// Insert a second value after the first one (tokens 1..5: field, value, text, /value).
	out := append([]xml.Token{}, toks[:5]...)
	out = append(out, v, xml.CharData(b), v.End())
	return append(out, toks[5:]...)
}

var (
	stage1 = submit("name", "Alice", "color", "green")
	stage2 = submit("contact", "bob@localhost", "notify", "true")
	stage3 = submit("comment", "all good")
)

type call struct {
	from   jid.JID
	node   string
	sid    string
	action string
	lang   string
	form   []xml.Token
}

func run(t *testing.T, p *adhoc.Provider, c call) (*response, error) {
	t.Helper()
	if c.node == "" {
		c.node = adhoctest.WizardNode
	}
	start := xml.StartElement{Name: xml.Name{Space: adhoc.NS, Local: "command"}, Attr: []xml.Attr{{Name: xml.Name{Local: "node"}, Value: c.node}}}
	if c.sid != "" {
		start.Attr = append(start.Attr, xml.Attr{Name: xml.Name{Local: "sessionid"}, Value: c.sid})
	}
	if c.action != "" {
		start.Attr = append(start.Attr, xml.Attr{Name: xml.Name{Local: "action"}, Value: c.action})
	}
	iq := stanza.IQ{ID: "x", Type: stanza.SetIQ, From: c.from, To: server, Lang: c.lang}
	r, err := p.Handle(context.Background(), iq, start, c.form)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	e := xml.NewEncoder(&buf)
	if _, err := xmlstream.Copy(e, r); err != nil {
		t.Fatal(err)
	}
	if err := e.Flush(); err != nil {
		t.Fatal(err)
	}
	raw := buf.String()
	parsed, err := adhoc.ParseCommand(xml.NewDecoder(strings.NewReader(raw)))
	if err != nil {
		t.Fatalf("response %q: %v", raw, err)
	}
	return &response{Response: parsed, raw: raw}, nil
}

func newProvider(t *testing.T, opts ...adhoc.Option) *adhoc.Provider {
	t.Helper()
	p := adhoc.NewProvider(opts...)
	for _, c := range []adhoc.Command{adhoctest.Wizard(), adhoctest.Greeting(),
		adhoctest.AdminOnly(func(j jid.JID) bool { return j.Bare().Equal(bob.Bare()) })} {
		if err := p.AddCommand(server, c); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// at starts a wizard session as alice and advances it to stage n (0-based).
func at(t *testing.T, p *adhoc.Provider, n int) string {
	t.Helper()
	r, err := run(t, p, call{from: alice})
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range [][]xml.Token{stage1, stage2}[:n] {
		if _, err := run(t, p, call{from: alice, sid: r.SessionID, action: "next", form: f}); err != nil {
			t.Fatalf("advance to stage %d: %v", i+1, err)
		}
	}
	return r.SessionID
}

func wantErr(t *testing.T, err error, cond string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want %s, got a result", cond)
	}
	if got := adhoc.Condition(err); got != cond {
		t.Fatalf("want %s, got %s (%v)", cond, got, err)
	}
}

// TestStateMachine runs every action against every kind of stage and
// session state.
func TestStateMachine(t *testing.T) {
	type want struct{ status, actions, err string }
	cases := []struct {
		name  string
		stage int // -1: no session; 0..2 live session at that stage
		state string
		act   string
		form  []xml.Token
		want  want
	}{
		{"new: execute", -1, "", "", nil, want{status: "executing", actions: "next:next"}},
		{"new: explicit execute", -1, "", "execute", nil, want{status: "executing", actions: "next:next"}},
		{"new: next", -1, "", "next", nil, want{err: "bad-sessionid"}},
		{"new: prev", -1, "", "prev", nil, want{err: "bad-sessionid"}},
		{"new: complete", -1, "", "complete", nil, want{err: "bad-sessionid"}},
		{"new: cancel", -1, "", "cancel", nil, want{err: "bad-sessionid"}},
		{"new: unknown action", -1, "", "jump", nil, want{err: "malformed-action"}},

		{"first: execute means next", 0, "live", "", stage1, want{status: "executing", actions: "next:prev,next"}},
		{"first: next", 0, "live", "next", stage1, want{status: "executing", actions: "next:prev,next"}},
		{"first: next without the form", 0, "live", "next", nil, want{err: "bad-payload"}},
		{"first: prev", 0, "live", "prev", nil, want{err: "bad-action"}},
		{"first: complete", 0, "live", "complete", stage1, want{err: "bad-action"}},
		{"first: cancel", 0, "live", "cancel", nil, want{status: "canceled"}},
		{"first: unknown action", 0, "live", "jump", nil, want{err: "malformed-action"}},

		{"middle: execute means next", 1, "live", "", stage2, want{status: "executing", actions: "complete:prev,complete"}},
		{"middle: next", 1, "live", "next", stage2, want{status: "executing", actions: "complete:prev,complete"}},
		{"middle: prev", 1, "live", "prev", nil, want{status: "executing", actions: "next:next"}},
		{"middle: complete", 1, "live", "complete", stage2, want{err: "bad-action"}},
		{"middle: cancel", 1, "live", "cancel", nil, want{status: "canceled"}},

		{"last: execute means complete", 2, "live", "", stage3, want{status: "completed"}},
		{"last: complete", 2, "live", "complete", stage3, want{status: "completed"}},
		{"last: complete with nothing optional", 2, "live", "complete", nil, want{status: "completed"}},
		{"last: next is taken as complete", 2, "live", "next", stage3, want{status: "completed"}},
		{"last: prev", 2, "live", "prev", nil, want{status: "executing", actions: "next:prev,next"}},
		{"last: cancel", 2, "live", "cancel", nil, want{status: "canceled"}},

		{"ended: next", 1, "ended", "next", stage2, want{err: "session-expired"}},
		{"ended: cancel", 1, "ended", "cancel", nil, want{err: "session-expired"}},
		{"ended: complete", 1, "ended", "complete", nil, want{err: "session-expired"}},
		{"other resource: next", 0, "other-resource", "next", stage1, want{err: "bad-sessionid"}},
		{"other user: cancel", 0, "other-user", "cancel", nil, want{err: "bad-sessionid"}},
		{"other node: next", 0, "other-node", "next", stage1, want{err: "bad-sessionid"}},
		{"unknown id: next", 0, "unknown", "next", stage1, want{err: "bad-sessionid"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newProvider(t)
			c := call{from: alice, action: tc.act, form: tc.form}
			if tc.stage >= 0 {
				c.sid = at(t, p, tc.stage)
			}
			switch tc.state {
			case "ended":
				if _, err := run(t, p, call{from: alice, sid: c.sid, action: "cancel"}); err != nil {
					t.Fatal(err)
				}
			case "other-resource":
				c.from = alice2
			case "other-user":
				c.from = bob
			case "other-node":
				c.node = adhoctest.TimeNode
			case "unknown":
				c.sid = "made-up-by-the-client"
			}
			r, err := run(t, p, c)
			if tc.want.err != "" {
				wantErr(t, err, tc.want.err)
				if strings.HasPrefix(tc.state, "other") {
					// The owner's session is untouched and goes on.
					if _, err := run(t, p, call{from: alice, sid: c.sid, action: "cancel"}); err != nil {
						t.Fatalf("the owner's session was harmed: %v", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("want %s, got %v", tc.want.status, err)
			}
			if string(r.Status) != tc.want.status || r.actions() != tc.want.actions {
				t.Fatalf("status %s actions %q, want %s %q\n%s", r.Status, r.actions(), tc.want.status, tc.want.actions, r.raw)
			}
			if c.sid != "" && r.SessionID != c.sid {
				t.Fatalf("session id changed from %q to %q", c.sid, r.SessionID)
			}
		})
	}
}

func TestPrevRemembersValues(t *testing.T) {
	p := newProvider(t)
	sid := at(t, p, 2)
	r, err := run(t, p, call{from: alice, sid: sid, action: "prev"})
	if err != nil {
		t.Fatal(err)
	}
	if r.value("contact") != "bob@localhost" || r.value("notify") != "1" {
		t.Fatalf("stage 2 not pre-filled after prev: %s", r.raw)
	}
	r, err = run(t, p, call{from: alice, sid: sid, action: "prev"})
	if err != nil {
		t.Fatal(err)
	}
	if r.value("name") != "Alice" || r.value("color") != "green" {
		t.Fatalf("stage 1 not pre-filled: %s", r.raw)
	}
	// Change the name and go forward: the new value is used.
	if _, err := run(t, p, call{from: alice, sid: sid, action: "next", form: submit("name", "Alicia", "color", "blue")}); err != nil {
		t.Fatal(err)
	}
	r, err = run(t, p, call{from: alice, sid: sid, action: "next", form: stage2})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(r.raw, "Alicia likes blue") {
		t.Fatalf("stage 3 summary: %s", r.raw)
	}
	r, err = run(t, p, call{from: alice, sid: sid, action: "complete", form: stage3})
	if err != nil {
		t.Fatal(err)
	}
	if r.value("name") != "Alicia" || r.value("contact") != "bob@localhost" || r.value("comment") != "all good" || r.Forms[0].Type != "result" {
		t.Fatalf("result: %s", r.raw)
	}
	if len(r.Notes) != 1 || r.Notes[0].Type != adhoc.NoteInfo {
		t.Fatalf("notes: %+v", r.Notes)
	}
}

func TestBadPayload(t *testing.T) {
	for _, tc := range []struct {
		name string
		form []xml.Token
	}{
		{"required field missing", submit("color", "red")},
		{"required field empty", submit("name", " ", "color", "red")},
		{"value outside the options", submit("name", "A", "color", "purple")},
		{"two values for a single field", twoValues("name", "A", "B", "color", "red")},
		{"not a data form submission", []xml.Token{xml.StartElement{Name: xml.Name{Space: "jabber:x:data", Local: "x"}, Attr: []xml.Attr{{Name: xml.Name{Local: "type"}, Value: "form"}}}, xml.EndElement{Name: xml.Name{Space: "jabber:x:data", Local: "x"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newProvider(t)
			sid := at(t, p, 0)
			_, err := run(t, p, call{from: alice, sid: sid, action: "next", form: tc.form})
			wantErr(t, err, "bad-payload")
			// The session stays at its stage: a good submission goes on.
			if _, err := run(t, p, call{from: alice, sid: sid, action: "next", form: stage1}); err != nil {
				t.Fatalf("after bad-payload: %v", err)
			}
		})
	}
	t.Run("malformed JID", func(t *testing.T) {
		p := newProvider(t)
		sid := at(t, p, 1)
		_, err := run(t, p, call{from: alice, sid: sid, action: "next", form: submit("contact", "a@b@c")})
		wantErr(t, err, "bad-payload")
	})
	t.Run("not a boolean", func(t *testing.T) {
		p := newProvider(t)
		sid := at(t, p, 1)
		_, err := run(t, p, call{from: alice, sid: sid, action: "next", form: submit("contact", "a@b", "notify", "maybe")})
		wantErr(t, err, "bad-payload")
	})
}

func TestFailedCompletionCarriesErrorNote(t *testing.T) {
	p := newProvider(t)
	r, err := run(t, p, call{from: alice})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range [][]xml.Token{submit("name", "fail", "color", "red"), stage2} {
		if _, err := run(t, p, call{from: alice, sid: r.SessionID, action: "next", form: f}); err != nil {
			t.Fatal(err)
		}
	}
	r, err = run(t, p, call{from: alice, sid: r.SessionID, action: "complete"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != adhoc.Completed || len(r.Notes) != 1 || r.Notes[0].Type != adhoc.NoteError || !strings.Contains(r.Notes[0].Text, "choose another") {
		t.Fatalf("want completed with an error note: %s", r.raw)
	}
}

func TestOneStageCommand(t *testing.T) {
	p := newProvider(t)
	r, err := run(t, p, call{from: alice, node: adhoctest.TimeNode})
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != adhoc.Completed || r.Actions != nil || len(r.Notes) != 1 || r.Notes[0].Text != "hello alice@localhost" {
		t.Fatalf("one-stage result: %s", r.raw)
	}
	_, err = run(t, p, call{from: alice, node: adhoctest.TimeNode, sid: r.SessionID, action: "complete"})
	wantErr(t, err, "session-expired")
}

func TestAccess(t *testing.T) {
	p := newProvider(t)
	_, err := run(t, p, call{from: alice, node: adhoctest.AdminOnlyNode})
	wantErr(t, err, "forbidden")
	if _, err := run(t, p, call{from: bob, node: adhoctest.AdminOnlyNode}); err != nil {
		t.Fatalf("admin refused: %v", err)
	}
	_, err = run(t, p, call{from: alice, node: "urn:nothing"})
	wantErr(t, err, "item-not-found")

	items := p.Items(context.Background(), server, alice, "")
	for _, it := range items {
		if it.Node == adhoctest.AdminOnlyNode {
			t.Fatal("disco#items shows alice a command she may not run")
		}
	}
	if len(items) != 2 || len(p.Items(context.Background(), server, bob, "")) != 3 {
		t.Fatalf("items for alice %d", len(items))
	}
	if _, _, ok, err := p.Info(context.Background(), server, alice, adhoctest.AdminOnlyNode, ""); !ok || adhoc.Condition(err) != "forbidden" {
		t.Fatalf("disco#info of a forbidden node: %v %v", ok, err)
	}
	ids, features, ok, err := p.Info(context.Background(), server, alice, adhoctest.WizardNode, "fr")
	if !ok || err != nil || ids[0].Type != "command-node" || ids[0].Name != adhoctest.Wizard().Names["fr"] || len(features) != 2 {
		t.Fatalf("disco#info of the wizard: %+v %v %v %v", ids, features, ok, err)
	}
}

// TestRemoteRequesters: with WithLocal, a requester of another domain
// sees and runs only the commands that set Remote, Allow still deciding
// for those; local requesters are not affected; and without WithLocal
// every requester counts as local.
func TestRemoteRequesters(t *testing.T) {
	carol := jid.MustParse("carol@remote.example/pc")
	const (
		remoteGreeting = "urn:test:remote-greeting"
		remoteWizard   = "urn:test:remote-wizard"
		remoteAdmin    = "urn:test:remote-admin"
	)
	isLocal := func(j jid.JID) bool { return j.Domainpart() == "localhost" || j.Domainpart() == "conference.localhost" }
	p := newProvider(t, adhoc.WithLocal(isLocal))
	g := adhoctest.Greeting()
	g.Node, g.Remote = remoteGreeting, true
	w := adhoctest.Wizard()
	w.Node, w.Remote = remoteWizard, true
	a := adhoctest.AdminOnly(func(j jid.JID) bool { return j.Bare().Equal(bob.Bare()) })
	a.Node, a.Remote = remoteAdmin, true
	for _, c := range []adhoc.Command{g, w, a} {
		if err := p.AddCommand(server, c); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	nodes := func(requester jid.JID) []string {
		var out []string
		for _, it := range p.Items(ctx, server, requester, "") {
			out = append(out, it.Node)
		}
		return out
	}

	// disco#items: carol sees the Remote commands Allow lets her run, and
	// none of the Anyone() commands without Remote.
	if got, want := nodes(carol), []string{remoteGreeting, remoteWizard}; !slices.Equal(got, want) {
		t.Fatalf("disco#items for a remote requester: %q, want %q", got, want)
	}
	if got, want := nodes(alice), []string{adhoctest.TimeNode, remoteGreeting, remoteWizard, adhoctest.WizardNode}; !slices.Equal(sorted(got), sorted(want)) {
		t.Fatalf("disco#items for alice: %q, want %q", got, want)
	}
	// A served subdomain counts as local: it sees what alice sees.
	if got := nodes(jid.MustParse("conference.localhost")); !slices.Equal(sorted(got), sorted(nodes(alice))) {
		t.Fatalf("disco#items for the served domain: %q", got)
	}

	// Execute: a command without Remote is forbidden to carol, one-stage
	// or multi-stage, although its Allow is Anyone().
	for _, node := range []string{adhoctest.TimeNode, adhoctest.WizardNode} {
		_, err := run(t, p, call{from: carol, node: node})
		wantErr(t, err, "forbidden")
		if _, _, ok, err := p.Info(ctx, server, carol, node, ""); !ok || adhoc.Condition(err) != "forbidden" {
			t.Fatalf("disco#info of %s for a remote requester: %v %v", node, ok, err)
		}
	}
	// A Remote command runs for her, through its stages.
	r, err := run(t, p, call{from: carol, node: remoteGreeting})
	if err != nil || r.Status != adhoc.Completed {
		t.Fatalf("remote greeting: %+v %v", r, err)
	}
	r, err = run(t, p, call{from: carol, node: remoteWizard})
	if err != nil || r.Status != adhoc.Executing {
		t.Fatalf("remote wizard: %+v %v", r, err)
	}
	if r, err = run(t, p, call{from: carol, node: remoteWizard, sid: r.SessionID, action: "next", form: stage1}); err != nil || r.Status != adhoc.Executing {
		t.Fatalf("remote wizard, stage 2: %+v %v", r, err)
	}
	if _, _, ok, err := p.Info(ctx, server, carol, remoteWizard, ""); !ok || err != nil {
		t.Fatalf("disco#info of a Remote command for a remote requester: %v %v", ok, err)
	}
	// Allow still decides for a Remote command: carol is no admin, bob is.
	_, err = run(t, p, call{from: carol, node: remoteAdmin})
	wantErr(t, err, "forbidden")
	if _, _, ok, err := p.Info(ctx, server, carol, remoteAdmin, ""); !ok || adhoc.Condition(err) != "forbidden" {
		t.Fatalf("disco#info of a Remote admin command for a remote requester: %v %v", ok, err)
	}
	if _, err := run(t, p, call{from: bob, node: remoteAdmin}); err != nil {
		t.Fatalf("the admin refused a Remote admin command: %v", err)
	}
	// A remote JID with the local one's localpart is no local account.
	_, err = run(t, p, call{from: jid.MustParse("alice@remote.example/phone"), node: adhoctest.TimeNode})
	wantErr(t, err, "forbidden")

	// No WithLocal: every requester is local, as for an embedded provider.
	open := newProvider(t)
	if r, err := run(t, open, call{from: carol, node: adhoctest.TimeNode}); err != nil || r.Status != adhoc.Completed {
		t.Fatalf("without WithLocal a remote requester was refused: %+v %v", r, err)
	}
	if got := len(open.Items(ctx, server, carol, "")); got != 2 {
		t.Fatalf("without WithLocal a remote requester sees %d commands, want the 2 Anyone() ones", got)
	}
}

func sorted(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }

// TestAccessRecheckedEveryStage: a requester that loses access mid-session
// is refused at the next stage and the session ends.
func TestAccessRecheckedEveryStage(t *testing.T) {
	var allowed atomic.Bool
	allowed.Store(true)
	p := adhoc.NewProvider()
	cmd := adhoctest.Wizard()
	cmd.Allow = func(context.Context, jid.JID) bool { return allowed.Load() }
	if err := p.AddCommand(server, cmd); err != nil {
		t.Fatal(err)
	}
	sid := at(t, p, 1)
	allowed.Store(false)
	_, err := run(t, p, call{from: alice, sid: sid, action: "next", form: stage2})
	wantErr(t, err, "forbidden")
	allowed.Store(true)
	_, err = run(t, p, call{from: alice, sid: sid, action: "next", form: stage2})
	wantErr(t, err, "session-expired")
}

func TestLocale(t *testing.T) {
	p := newProvider(t)
	r, err := run(t, p, call{from: alice, lang: "fr"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Lang != "fr" || r.Forms[0].Title != "Qui êtes-vous ?" {
		t.Fatalf("French: %s", r.raw)
	}
	r, err = run(t, p, call{from: alice, lang: "en-GB"})
	if err != nil || r.Lang != "en" {
		t.Fatalf("en-GB should be served in en: %v %+v", err, r)
	}
	_, err = run(t, p, call{from: alice, lang: "de"})
	wantErr(t, err, "bad-locale")
}

func TestPerUserCap(t *testing.T) {
	p := newProvider(t, adhoc.WithStore(adhoc.NewMemoryStore(100, time.Minute, 3)))
	for i := 0; i < 3; i++ {
		if _, err := run(t, p, call{from: alice}); err != nil {
			t.Fatal(err)
		}
	}
	// The cap is per account, whatever the resource.
	_, err := run(t, p, call{from: alice2})
	wantErr(t, err, "not-allowed")
	if _, err := run(t, p, call{from: bob}); err != nil {
		t.Fatalf("another user is not capped by alice: %v", err)
	}
}

func TestRacingCompletes(t *testing.T) {
	var completions atomic.Int32
	p := adhoc.NewProvider()
	cmd := adhoctest.Wizard()
	inner := cmd.Complete
	cmd.Complete = func(ctx context.Context, r *adhoc.Request) (*adhoc.Result, error) {
		completions.Add(1)
		time.Sleep(10 * time.Millisecond)
		return inner(ctx, r)
	}
	if err := p.AddCommand(server, cmd); err != nil {
		t.Fatal(err)
	}
	sid := at(t, p, 2)
	var wg sync.WaitGroup
	results := make(chan error, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := run(t, p, call{from: alice, sid: sid, action: "complete", form: stage3})
			results <- err
		}()
	}
	wg.Wait()
	close(results)
	ok, expired := 0, 0
	for err := range results {
		switch {
		case err == nil:
			ok++
		case adhoc.Condition(err) == "session-expired":
			expired++
		default:
			t.Errorf("unexpected: %v", err)
		}
	}
	if ok != 1 || expired != 7 || completions.Load() != 1 {
		t.Fatalf("completed %d, expired %d, Complete ran %d times", ok, expired, completions.Load())
	}
}

func TestAbandonedSessionsStayBounded(t *testing.T) {
	store := adhoc.NewMemoryStore(500, time.Minute, 100000)
	p := newProvider(t, adhoc.WithStore(store))
	var first string
	for i := 0; i < 10000; i++ {
		r, err := run(t, p, call{from: jid.MustParse("u@localhost/" + string(rune('a'+i%26)))})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = r.SessionID
		}
	}
	st := store.Stats()
	if st.Held != 500 || st.Evictions != 10000-500 {
		t.Fatalf("held %d, evicted %d", st.Held, st.Evictions)
	}
	// The evicted session answers session-expired, not bad-sessionid.
	_, err := run(t, p, call{from: jid.MustParse("u@localhost/a"), sid: first, action: "cancel"})
	wantErr(t, err, "session-expired")
}

func TestSessionExpires(t *testing.T) {
	store := adhoc.NewMemoryStore(100, 150*time.Millisecond, 10)
	p := newProvider(t, adhoc.WithStore(store))
	sid := at(t, p, 1)
	// Use keeps it alive (the TTL slides)...
	for i := 0; i < 3; i++ {
		time.Sleep(80 * time.Millisecond)
		if _, err := run(t, p, call{from: alice, sid: sid, action: "prev"}); err != nil {
			t.Fatalf("sliding TTL: %v", err)
		}
		if _, err := run(t, p, call{from: alice, sid: sid, action: "next", form: stage1}); err != nil {
			t.Fatalf("sliding TTL: %v", err)
		}
	}
	// ...and silence ends it.
	time.Sleep(250 * time.Millisecond)
	_, err := run(t, p, call{from: alice, sid: sid, action: "next", form: stage2})
	wantErr(t, err, "session-expired")
	if store.Stats().Expirations != 1 {
		t.Fatalf("expirations %d", store.Stats().Expirations)
	}
}

func TestEvents(t *testing.T) {
	var mu sync.Mutex
	var got []adhoc.Event
	p := newProvider(t, adhoc.WithObserver(func(_ context.Context, e adhoc.Event) {
		mu.Lock()
		got = append(got, e)
		mu.Unlock()
	}))
	sid := at(t, p, 2)
	_, _ = run(t, p, call{from: alice, sid: sid, action: "prev"})
	_, _ = run(t, p, call{from: alice, sid: sid, action: "next", form: stage2})
	// next on the last stage is resolved to complete.
	_, _ = run(t, p, call{from: alice, sid: sid, action: "next", form: stage3})
	_, _ = run(t, p, call{from: alice, sid: sid, action: "complete", form: stage3})
	want := []string{"execute/executing", "next/executing", "next/executing", "prev/executing", "next/executing",
		"complete/completed", "complete/session-expired"}
	if len(got) != len(want) {
		t.Fatalf("events %+v", got)
	}
	for i, e := range got {
		if string(e.Action)+"/"+e.Outcome != want[i] || e.Node != adhoctest.WizardNode {
			t.Errorf("event %d: %+v, want %s", i, e, want[i])
		}
	}
}

var sidRE = regexp.MustCompile(`sessionid="[a-z0-9]+"`)

// TestGolden compares the wizard's responses with testdata/*.xml (go test
// -update rewrites them).
func TestGolden(t *testing.T) {
	p := newProvider(t)
	steps := []struct {
		name string
		c    call
	}{
		{"stage1", call{from: alice}},
		{"stage2", call{action: "next", form: stage1}},
		{"stage3", call{action: "next", form: stage2}},
		{"completed", call{action: "complete", form: stage3}},
	}
	sid := ""
	for _, s := range steps {
		s.c.from, s.c.sid = alice, sid
		r, err := run(t, p, s.c)
		if err != nil {
			t.Fatal(err)
		}
		sid = r.SessionID
		got := sidRE.ReplaceAllString(r.raw, `sessionid="SID"`) + "\n"
		path := filepath.Join("testdata", s.name+".xml")
		if *update {
			if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test -update)", err)
		}
		if got != string(want) {
			t.Errorf("%s:\n got %s\nwant %s", s.name, got, want)
		}
	}
}

// TestNextSubmitsASingleStageForm: poezio 0.14 submits a single-stage form
// with action="next" although only complete is offered. As in Prosody, next
// on the last stage is taken as complete, after the same validation: a
// missing required field is still bad-payload, and the command completes
// with the submitted value once it is there.
func TestNextSubmitsASingleStageForm(t *testing.T) {
	p := newProvider(t)
	var got string
	if err := p.AddCommand(server, adhoc.Command{
		Node:  "urn:example:one-form",
		Name:  "One form",
		Allow: adhoc.Anyone(),
		Stages: []adhoc.Stage{{Form: func(context.Context, *adhoc.Request) (*form.Data, error) {
			return form.New(form.Text("name", form.Required)), nil
		}}},
		Complete: func(_ context.Context, r *adhoc.Request) (*adhoc.Result, error) {
			got = r.Values.Get("name")
			return &adhoc.Result{}, nil
		},
	}); err != nil {
		t.Fatal(err)
	}
	r, err := run(t, p, call{from: alice, node: "urn:example:one-form"})
	if err != nil {
		t.Fatal(err)
	}
	if r.actions() != "complete:complete" {
		t.Fatalf("a single-stage form offers %q, want complete only", r.actions())
	}
	_, err = run(t, p, call{from: alice, node: "urn:example:one-form", sid: r.SessionID, action: "next"})
	wantErr(t, err, "bad-payload")
	done, err := run(t, p, call{from: alice, node: "urn:example:one-form", sid: r.SessionID, action: "next", form: submit("name", "Zoë")})
	if err != nil || done.Status != "completed" || got != "Zoë" {
		t.Fatalf("next on the only stage: %v, status %v, value %q", err, done, got)
	}
}
