package server_test

import (
	"context"
	"encoding/xml"
	"slices"
	"strings"
	"sync"
	"testing"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/adhoc"
	"github.com/adhocd/adhocd/adhoc/adhoctest"
	"github.com/adhocd/adhocd/modules"
	"github.com/adhocd/adhocd/server"
	"github.com/adhocd/adhocd/servertest"
	"github.com/adhocd/adhocd/wire"
)

// echoService serves echo.localhost (modules.DomainHandler): it sends a
// message back to its sender, answers IQs with errors, and remembers the
// presence it receives.
type echoService struct {
	h  modules.Host
	mu sync.Mutex
	// presence are the presence stanzas received, "from type".
	presence []string
}

func (e *echoService) Name() string                                  { return "echo" }
func (e *echoService) Start(_ context.Context, h modules.Host) error { e.h = h; return nil }
func (e *echoService) Stop(context.Context) error                    { return nil }
func (e *echoService) Domains() []string                             { return []string{"echo.localhost"} }

func (e *echoService) HandleStanza(ctx context.Context, from jid.JID, el *wire.Element, to jid.JID) error {
	switch el.Start.Name.Local {
	case "message":
		body, _ := el.Text(xml.Name{Space: stanza.NSClient, Local: "body"})
		reply := `<message xmlns='jabber:client' from='` + to.String() + `' to='` + from.String() + `' type='chat'><body>echo: ` + body + `</body></message>`
		return e.h.Send(ctx, xml.NewDecoder(strings.NewReader(reply)))
	case "presence":
		e.mu.Lock()
		e.presence = append(e.presence, from.String()+" "+el.Attr("type"))
		e.mu.Unlock()
		return nil
	}
	return stanza.Error{Type: stanza.Cancel, Condition: stanza.FeatureNotImplemented}
}

func (e *echoService) seen() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.presence...)
}

// TestServiceDomain: a module that serves a domain of its own gets what
// local sessions send to it there (messages, IQs, directed presence, and
// the unavailable presence of a session that ends), its error answers
// reach the sender, and what it sends reaches local users.
func TestServiceDomain(t *testing.T) {
	echo := &echoService{}
	srv := servertest.StartWith(t, []server.Option{server.WithModules(echo)})
	srv.AddUser("alice", "pw")
	alice := srv.RawLogin("alice", "pw", "laptop")

	alice.Write(`<message to='room@echo.localhost' type='chat' id='m1'><body>hello</body></message>`)
	if got := alice.Expect(`echo: hello(?s:.*?)</message>`); !strings.Contains(got, "room@echo.localhost") {
		t.Fatalf("the service's answer: %s", got)
	}
	alice.Write(`<iq type='get' id='q1' to='echo.localhost'><query xmlns='jabber:iq:version'/></iq>`)
	if got := alice.Expect(`id=["']q1["'](?s:.*?)</iq>`); !strings.Contains(got, "feature-not-implemented") {
		t.Fatalf("the service's error: %s", got)
	}
	alice.Write(`<presence to='room@echo.localhost/alice'/>`)
	eventually(t, wait, "the directed presence at the service", func() bool { return len(echo.seen()) == 1 })
	alice.Write(`</stream:stream>`)
	eventually(t, wait, "the unavailable presence of the ended session at the service", func() bool {
		s := echo.seen()
		return len(s) == 2 && s[1] == "alice@localhost/laptop unavailable"
	})
	if s := echo.seen(); s[0] != "alice@localhost/laptop " {
		t.Fatalf("presence at the service: %q", s)
	}
}

// TestCommandsForOtherDomains: the server's ad-hoc commands are for local
// requesters: those of its domain and of the domains its modules serve (a
// component, the group chat service). A requester of another domain sees
// and runs only a command marked Remote, though the others' policy is
// Anyone().
func TestCommandsForOtherDomains(t *testing.T) {
	remote := adhoctest.Greeting()
	remote.Node, remote.Remote = "urn:test:remote-greeting", true
	srv := servertest.StartWith(t, []server.Option{server.WithModules(&echoService{}), server.WithCommands(adhoctest.Greeting(), remote)})
	ctx := context.Background()
	nodes := func(requester string) []string {
		var out []string
		for _, it := range srv.Commands().Items(ctx, srv.Domain(), jid.MustParse(requester), "") {
			out = append(out, it.Node)
		}
		return out
	}
	local := []string{adhoctest.TimeNode, remote.Node} // sorted by node
	for _, r := range []string{"alice@localhost/phone", "echo.localhost", "bot@echo.localhost/x", "conference.localhost"} {
		if got := nodes(r); !slices.Equal(got, local) {
			t.Errorf("commands for %s: %q, want %q", r, got, local)
		}
	}
	if got, want := nodes("eve@remote.example/pc"), []string{remote.Node}; !slices.Equal(got, want) {
		t.Errorf("commands for a remote requester: %q, want %q", got, want)
	}
	execute := func(from, node string) error {
		iq := stanza.IQ{ID: "c1", Type: stanza.SetIQ, From: jid.MustParse(from), To: srv.Domain()}
		start := xml.StartElement{Name: xml.Name{Space: adhoc.NS, Local: "command"}, Attr: []xml.Attr{{Name: xml.Name{Local: "node"}, Value: node}}}
		_, err := srv.Commands().Handle(ctx, iq, start, nil)
		return err
	}
	if err := execute("eve@remote.example/pc", adhoctest.TimeNode); adhoc.Condition(err) != "forbidden" {
		t.Errorf("a remote requester ran a command not marked Remote: %v", err)
	}
	if err := execute("eve@remote.example/pc", remote.Node); err != nil {
		t.Errorf("a remote requester refused a Remote command: %v", err)
	}
	if err := execute("alice@localhost/phone", adhoctest.TimeNode); err != nil {
		t.Errorf("a local requester refused: %v", err)
	}
}
