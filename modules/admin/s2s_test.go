package admin_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"log/slog"
	"strings"
	"testing"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/adhoc"
	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/modules"
	"github.com/adhocd/adhocd/modules/admin"
)

// fakeHost is the server as the admin module sees it, with the streams
// it is told to list. The embedded Host is nil: a method the module calls
// that is not defined here panics, so the test shows what the s2s command
// uses.
type fakeHost struct {
	admin.Host
	cfg      config.Config
	commands *adhoc.Provider
	streams  []modules.S2SInfo
}

var fakeDomain = jid.MustParse("example.net")

func (h *fakeHost) Domain() jid.JID                               { return fakeDomain }
func (h *fakeHost) Config() config.Config                         { return h.cfg }
func (h *fakeHost) Logger() *slog.Logger                          { return slog.New(slog.DiscardHandler) }
func (h *fakeHost) Commands() *adhoc.Provider                     { return h.commands }
func (h *fakeHost) IsAdmin(j jid.JID) bool                        { return j.Bare().String() == "root@example.net" }
func (h *fakeHost) OnReload(func(context.Context, config.Config)) {}
func (h *fakeHost) S2SStreams() []modules.S2SInfo                 { return h.streams }

// startFake starts the admin module on a fake host listing streams.
func startFake(t *testing.T, cfg config.Config, streams []modules.S2SInfo) *adhoc.Provider {
	t.Helper()
	h := &fakeHost{cfg: cfg, commands: adhoc.NewProvider(), streams: streams}
	if err := admin.New().Start(ctx(t), h); err != nil {
		t.Fatal(err)
	}
	return h.commands
}

// execute runs node on the fake host's provider as from, the way the
// server hands it an IQ set, and parses the answer as a client would.
func execute(t *testing.T, p *adhoc.Provider, from, node string) (*adhoc.Response, error) {
	t.Helper()
	start := xml.StartElement{Name: xml.Name{Space: adhoc.NS, Local: "command"}, Attr: []xml.Attr{{Name: xml.Name{Local: "node"}, Value: node}}}
	iq := stanza.IQ{ID: "s2s-1", Type: stanza.SetIQ, From: jid.MustParse(from), To: fakeDomain}
	r, err := p.Handle(ctx(t), iq, start, nil)
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
	resp, err := adhoc.ParseCommand(xml.NewDecoder(&buf))
	if err != nil {
		t.Fatalf("%s: %v\n%s", node, err, buf.String())
	}
	return resp, nil
}

// rows returns a multi-item result's items as maps of var to value.
func rows(f adhoc.Form) []map[string]string {
	var out []map[string]string
	for _, it := range f.Items {
		row := map[string]string{}
		for _, fl := range it.Fields {
			row[fl.Var] = strings.Join(fl.Values, "")
		}
		out = append(out, row)
	}
	return out
}

// TestS2SCommandTable: the s2s command lists every stream the server
// reports, outbound first and then by remote domain, with the columns an
// operator reads (direction, authentication, TLS, since in RFC 3339 UTC,
// queue), a stream still negotiating as such, and a count; only an
// administrator may run it.
func TestS2SCommandTable(t *testing.T) {
	since := time.Date(2026, 3, 1, 12, 30, 5, 0, time.FixedZone("CET", 3600))
	cfg := config.Config{}
	cfg.S2S.Listen = "127.0.0.1:5269"
	p := startFake(t, cfg, []modules.S2SInfo{
		{Local: "example.net", Remote: "b.example", Inbound: true, Auth: "external", TLS: true, Since: since},
		{Local: "example.net", Remote: "c.example", Auth: "", Since: since.Add(time.Minute), Queued: 3},
		{Local: "example.net", Remote: "a.example", Auth: "dialback", TLS: true, Since: since},
		{Local: "example.net", Remote: "a.example", Inbound: true, Auth: "dialback", TLS: false, Since: since.Add(2 * time.Second)},
	})
	r, err := execute(t, p, "root@example.net/cli", admin.OperatorNode("s2s"))
	if err != nil || r.Status != adhoc.Completed {
		t.Fatalf("s2s: %+v %v", r, err)
	}
	if note(r, adhoc.NoteInfo) != "4 streams: 2 outbound, 2 inbound" {
		t.Errorf("note %+v", r.Notes)
	}
	if len(r.Forms) != 1 || r.Forms[0].Type != "result" || r.Forms[0].Title != "Server-to-server streams" {
		t.Fatalf("forms %+v", r.Forms)
	}
	f := r.Forms[0]
	var cols []string
	for _, c := range f.Reported {
		cols = append(cols, c.Var+"="+c.Label)
	}
	if got := strings.Join(cols, ", "); got != "remote=Remote domain, local=Local domain, direction=Direction, auth=Authentication, tls=TLS, since=Since, queued=Queued stanzas" {
		t.Errorf("columns %s", got)
	}
	if ft := f.Value("FORM_TYPE"); ft != admin.NSOperator {
		t.Errorf("FORM_TYPE %q", ft)
	}
	want := []map[string]string{
		{"remote": "a.example", "local": "example.net", "direction": "out", "auth": "dialback", "tls": "true", "since": "2026-03-01T11:30:05Z", "queued": "0"},
		{"remote": "c.example", "local": "example.net", "direction": "out", "auth": "negotiating", "tls": "false", "since": "2026-03-01T11:31:05Z", "queued": "3"},
		{"remote": "a.example", "local": "example.net", "direction": "in", "auth": "dialback", "tls": "false", "since": "2026-03-01T11:30:07Z", "queued": "0"},
		{"remote": "b.example", "local": "example.net", "direction": "in", "auth": "external", "tls": "true", "since": "2026-03-01T11:30:05Z", "queued": "0"},
	}
	got := rows(f)
	if len(got) != len(want) {
		t.Fatalf("%d rows, want %d: %v", len(got), len(want), got)
	}
	for i := range want {
		for k, v := range want[i] {
			if got[i][k] != v {
				t.Errorf("row %d %s = %q, want %q (row %v)", i, k, got[i][k], v, got[i])
			}
		}
	}

	// Not an administrator: refused, and the command is not listed.
	if _, err := execute(t, p, "juliet@example.net/phone", admin.OperatorNode("s2s")); adhoc.Condition(err) != "forbidden" {
		t.Fatalf("a user ran s2s: %v", err)
	}
	for _, it := range p.Items(ctx(t), fakeDomain, jid.MustParse("juliet@example.net/phone"), "") {
		if it.Node == admin.OperatorNode("s2s") {
			t.Fatal("the s2s command is listed for a user")
		}
	}
}

// TestS2SCommandFederationOff: with s2s.listen empty the command completes
// with no rows and says that federation is off.
func TestS2SCommandFederationOff(t *testing.T) {
	p := startFake(t, config.Config{}, nil)
	r, err := execute(t, p, "root@example.net/cli", admin.OperatorNode("s2s"))
	if err != nil || r.Status != adhoc.Completed {
		t.Fatalf("s2s: %+v %v", r, err)
	}
	if len(r.Forms) != 1 || len(r.Forms[0].Items) != 0 {
		t.Fatalf("rows with federation off: %+v", r.Forms)
	}
	var notes []string
	for _, n := range r.Notes {
		notes = append(notes, n.Text)
	}
	if got := strings.Join(notes, "; "); got != "0 streams: 0 outbound, 0 inbound; federation is off: s2s.listen is empty" {
		t.Fatalf("notes %q", got)
	}
}
