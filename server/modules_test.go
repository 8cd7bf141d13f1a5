package server_test

import (
	"context"
	"encoding/xml"
	"slices"
	"strings"
	"sync"
	"testing"

	"mellium.im/xmpp/disco/info"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/modules"
	"github.com/adhocd/adhocd/server"
	"github.com/adhocd/adhocd/servertest"
	"github.com/adhocd/adhocd/wire"
)

// probe is a module with the capabilities that no default module needs
// yet, as a program embedding adhocd would write one.
type probe struct {
	mu               sync.Mutex
	created, deleted []string
}

var (
	_ modules.StreamFeatures    = (*probe)(nil)
	_ modules.Identities        = (*probe)(nil)
	_ modules.AccountHook       = (*probe)(nil)
	_ modules.StanzaInterceptor = (*probe)(nil)
)

// InterceptIn refuses messages whose body says "refused".
func (*probe) InterceptIn(_ context.Context, _ modules.Session, el *wire.Element, _ jid.JID) error {
	if body, _ := el.Text(xml.Name{Space: stanza.NSClient, Local: "body"}); body == "refused" {
		return stanza.Error{Type: stanza.Cancel, Condition: stanza.NotAcceptable}
	}
	return nil
}

// InterceptOut drops messages whose body says "dropped".
func (*probe) InterceptOut(_ modules.Session, el *wire.Element) bool {
	body, _ := el.Text(xml.Name{Space: stanza.NSClient, Local: "body"})
	return body != "dropped"
}

func (*probe) Name() string                              { return "probe" }
func (*probe) Start(context.Context, modules.Host) error { return nil }
func (*probe) Stop(context.Context) error                { return nil }

func (*probe) StreamFeatures() []xml.Name {
	return []xml.Name{{Space: "urn:example:probe", Local: "probe"}}
}

func (*probe) Identities() []info.Identity {
	return []info.Identity{{Category: "gateway", Type: "probe", Name: "Probe"}}
}

func (p *probe) AccountCreated(_ context.Context, j jid.JID) {
	p.mu.Lock()
	p.created = append(p.created, j.String())
	p.mu.Unlock()
}

func (p *probe) AccountDeleted(_ context.Context, j jid.JID) {
	p.mu.Lock()
	p.deleted = append(p.deleted, j.String())
	p.mu.Unlock()
}

func (p *probe) seen() (created, deleted []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.created), slices.Clone(p.deleted)
}

// TestModuleCapabilities: what a module declares reaches clients: its
// stream feature is offered to an authenticated stream beside binding and
// roster versioning, its identity is in the server's disco#info beside the
// disco module's, and it hears of accounts created and deleted on the
// running server.
func TestModuleCapabilities(t *testing.T) {
	p := &probe{}
	srv := servertest.StartWith(t, []server.Option{server.WithModules(p)})
	srv.AddUser("alice", "wonderland")
	if created, _ := p.seen(); !slices.Equal(created, []string{"alice@localhost"}) {
		t.Fatalf("created: %v", created)
	}

	r := srv.RawDial()
	r.StartTLS(srv.ClientTLS)
	r.Write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHdvbmRlcmxhbmQ=</auth>`)
	r.Expect(`<success`)
	r.Write(servertest.Header)
	features := r.Expect(`</stream:features>`)
	for _, want := range []string{`<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>`, `<ver xmlns='urn:xmpp:features:rosterver'/>`, `<probe xmlns='urn:example:probe'/>`} {
		if !strings.Contains(features, want) {
			t.Errorf("features after authentication lack %s: %s", want, features)
		}
	}

	c := srv.Dial("alice", "wonderland", "")
	got, err := c.IQ(servertest.Context(t, servertest.Wait), `<iq type='get' id='d1' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`category="gateway"`, `type="probe"`, `category="server"`} {
		if !strings.Contains(got, want) {
			t.Errorf("disco#info lacks %s: %s", want, got)
		}
	}

	if err := srv.Accounts().Delete(servertest.Context(t, servertest.Wait), "alice"); err != nil {
		t.Fatal(err)
	}
	if _, deleted := p.seen(); !slices.Equal(deleted, []string{"alice@localhost"}) {
		t.Fatalf("deleted: %v", deleted)
	}
}

// TestStanzaInterceptor: a module's interceptor refuses a stanza on its way
// in (the sender gets the module's error, the recipient nothing) and drops
// one on its way out (nobody hears of it); what it lets pass arrives.
func TestStanzaInterceptor(t *testing.T) {
	srv := servertest.StartWith(t, []server.Option{server.WithModules(&probe{})})
	srv.AddUser("alice", "wonderland")
	srv.AddUser("bob", "builder")
	alice := srv.RawLogin("alice", "wonderland", "a")
	bob := srv.RawLogin("bob", "builder", "b")
	bob.Write(`<presence/>`)
	bob.Expect(`<presence[^>]*from="bob@localhost/b"`)

	alice.Write(`<message to='bob@localhost/b' id='m1' type='chat'><body>refused</body></message>`)
	if got := alice.Expect(`id="m1"[^>]*>.*?</message>`); !strings.Contains(got, `type="error"`) || !strings.Contains(got, "<not-acceptable") {
		t.Fatalf("the refused message's answer: %s", got)
	}
	alice.Write(`<message to='bob@localhost/b' id='m2' type='chat'><body>dropped</body></message>`)
	alice.Write(`<message to='bob@localhost/b' id='m3' type='chat'><body>passed</body></message>`)
	got := bob.Expect(`<message[^>]*>.*?</message>`)
	if !strings.Contains(got, `id="m3"`) {
		t.Fatalf("bob's first message is not the one let through: %s", got)
	}
	alice.Write(`<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`)
	if got := alice.Expect(`id="p1"[^>]*/?>`); strings.Contains(got, "m2") || !strings.Contains(got, `type="result"`) {
		t.Fatalf("alice heard of the dropped message, or no ping result: %s", got)
	}
}
