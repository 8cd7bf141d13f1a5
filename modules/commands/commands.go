// Package commands serves XEP-0050 ad-hoc commands on the server JID: it
// routes <command/> IQs to the server's adhoc.Provider and answers disco for
// the command list and each command node, per requester. With
// adhoc.demo_commands it adds the demo commands of package adhoc/demo.
package commands

import (
	"context"
	"encoding/xml"
	"errors"
	"log/slog"

	"mellium.im/xmpp/disco/items"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/adhoc"
	"github.com/adhocd/adhocd/adhoc/demo"
	"github.com/adhocd/adhocd/modules"
)

// Module wires the provider into the server.
type Module struct {
	domain   jid.JID
	provider *adhoc.Provider
	log      *slog.Logger
}

var (
	_ modules.Module      = (*Module)(nil)
	_ modules.NodeHandler = (*Module)(nil)
	_ modules.IQHandler   = (*Module)(nil)
	_ modules.Features    = (*Module)(nil)
	_ modules.AccountHook = (*Module)(nil)
)

// New returns the commands module.
func New() modules.Module { return &Module{} }

// Name implements modules.Module.
func (*Module) Name() string { return "commands" }

// Start implements modules.Module.
func (m *Module) Start(_ context.Context, h modules.Host) error {
	m.domain, m.provider, m.log = h.Domain(), h.Commands(), h.Logger()
	h.Disco().AddNodeHandler(m)
	if h.Config().Adhoc.DemoCommands {
		for _, c := range []adhoc.Command{demo.Wizard(), demo.Greeting()} {
			if err := m.provider.AddCommand(m.domain, c); err != nil {
				return err
			}
		}
	}
	return nil
}

// Stop implements modules.Module.
func (*Module) Stop(context.Context) error { return nil }

// AccountCreated implements modules.AccountHook: a new account has no
// command sessions.
func (*Module) AccountCreated(context.Context, jid.JID) {}

// AccountDeleted implements modules.AccountHook: the deleted account's
// command sessions end, so that an account made again under the same name
// cannot continue them (it gets session-expired).
func (m *Module) AccountDeleted(ctx context.Context, deleted jid.JID) {
	st, ok := m.provider.Store().(adhoc.OwnerEnder)
	if !ok {
		m.log.Warn("the ad-hoc session store cannot end a deleted account's sessions", "jid", deleted.String())
		return
	}
	if err := st.EndOwner(ctx, deleted.String()); err != nil {
		m.log.Warn("end the ad-hoc sessions of a deleted account", "jid", deleted.String(), "err", err)
	}
}

var command = xml.Name{Space: adhoc.NS, Local: "command"}

// Routes implements modules.IQHandler: commands run with IQ set; a get is
// answered bad-request.
func (*Module) Routes() []modules.Route {
	return []modules.Route{{Type: stanza.SetIQ, Payload: command}, {Type: stanza.GetIQ, Payload: command}}
}

// RemoteRoutes implements modules.RemoteIQHandler: a requester of another
// domain reaches the provider, which runs for it only the commands marked
// adhoc.Command.Remote, and of those only what their policy allows.
func (m *Module) RemoteRoutes() []modules.Route { return m.Routes() }

// Features implements modules.Features.
func (*Module) Features() []string { return []string{adhoc.NS} }

// HandleIQ implements modules.IQHandler: the request goes to the provider
// with the stream's context, so a command stage sees the client leave.
func (m *Module) HandleIQ(ctx context.Context, iq modules.IQ) (xml.TokenReader, error) {
	if iq.Type != stanza.SetIQ {
		return nil, stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest,
			Text: map[string]string{"en": "commands are run with IQ set"}}
	}
	return m.provider.Handle(ctx, iq.IQ, iq.Payload, iq.Inner)
}

// DiscoInfo implements modules.NodeHandler.
func (m *Module) DiscoInfo(ctx context.Context, requester jid.JID, node string) (modules.DiscoInfo, error) {
	ids, features, ok, err := m.provider.Info(ctx, m.domain, requester, node, "")
	if !ok {
		return modules.DiscoInfo{}, modules.ErrNoNode
	}
	var ae adhoc.Error
	if errors.As(err, &ae) {
		return modules.DiscoInfo{}, ae.Stanza
	}
	return modules.DiscoInfo{Identities: ids, Features: features}, err
}

// DiscoItems implements modules.NodeHandler: the commands this requester
// may run, on the node http://jabber.org/protocol/commands.
func (m *Module) DiscoItems(ctx context.Context, requester jid.JID, node string) ([]items.Item, error) {
	if node != adhoc.NS {
		return nil, modules.ErrNoNode
	}
	return m.provider.Items(ctx, m.domain, requester, ""), nil
}
