package server_test

import (
	"context"
	"encoding/xml"
	"strings"
	"sync"
	"testing"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

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
