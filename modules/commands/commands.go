// Package commands serves XEP-0050 ad-hoc commands on the server JID: it
// routes <command/> IQs to the server's adhoc.Provider and answers disco for
// the command list and each command node, per requester. With
// adhoc.demo_commands it adds the demo commands of package adhoc/demo.
package commands

import (
	"context"
	"encoding/xml"
	"errors"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/disco/items"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/mux"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/adhoc"
	"github.com/adhocd/adhocd/adhoc/demo"
	"github.com/adhocd/adhocd/modules"
)

// Module wires the provider into the server.
type Module struct {
	domain   jid.JID
	provider *adhoc.Provider
}

var (
	_ modules.Module      = (*Module)(nil)
	_ modules.NodeHandler = (*Module)(nil)
)

// New returns the commands module.
func New() modules.Module { return &Module{} }

// Name implements modules.Module.
func (*Module) Name() string { return "commands" }

// Start implements modules.Module.
func (m *Module) Start(_ context.Context, h modules.Host) error {
	m.domain, m.provider = h.Domain(), h.Commands()
	h.Disco().AddFeature(adhoc.NS)
	h.Disco().AddNodeHandler(m)
	h.Handle(mux.IQ(stanza.SetIQ, xml.Name{Space: adhoc.NS, Local: "command"}, mux.IQHandlerFunc(m.handle)))
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

// handle treats an IQ without 'to' as addressed to the server JID.
func (m *Module) handle(iq stanza.IQ, t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	if iq.To.String() == "" {
		iq.To = m.domain
	}
	return m.provider.HandleIQ(iq, t, start)
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
