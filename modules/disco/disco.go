// Package disco answers XEP-0030 service discovery on the server JID, and on
// each local account's bare JID (identity account/registered, the features
// the modules declare, their nodes), from the registry every module
// publishes into (modules.Disco). Encoding uses
// mellium.im/xmpp/disco's types; the dispatch is ours because answers depend
// on who asks.
package disco

import (
	"context"
	"encoding/xml"
	"errors"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/disco"
	"mellium.im/xmpp/disco/info"
	"mellium.im/xmpp/disco/items"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/modules"
)

// Module serves disco#info and disco#items.
type Module struct {
	reg *modules.Disco
}

var (
	_ modules.Module           = (*Module)(nil)
	_ modules.IQHandler        = (*Module)(nil)
	_ modules.BareJIDIQHandler = (*Module)(nil)
	_ modules.AccountFeatures  = (*Module)(nil)
	_ modules.Features         = (*Module)(nil)
	_ modules.Identities       = (*Module)(nil)
)

// New returns the disco module.
func New() modules.Module { return &Module{} }

// Name implements modules.Module.
func (*Module) Name() string { return "disco" }

// Start implements modules.Module.
func (m *Module) Start(_ context.Context, h modules.Host) error {
	m.reg = h.Disco()
	return nil
}

// Identities implements modules.Identities: the server JID is an IM server.
func (*Module) Identities() []info.Identity {
	return []info.Identity{{Category: "server", Type: "im", Name: "adhocd"}}
}

// Stop implements modules.Module.
func (*Module) Stop(context.Context) error { return nil }

var (
	infoQuery  = xml.Name{Space: disco.NSInfo, Local: "query"}
	itemsQuery = xml.Name{Space: disco.NSItems, Local: "query"}
)

// Routes implements modules.IQHandler.
func (*Module) Routes() []modules.Route {
	return []modules.Route{{Type: stanza.GetIQ, Payload: infoQuery}, {Type: stanza.GetIQ, Payload: itemsQuery}}
}

// BareJIDRoutes implements modules.BareJIDIQHandler: the same queries on a
// local account's bare JID.
func (m *Module) BareJIDRoutes() []modules.Route { return m.Routes() }

// RemoteRoutes implements modules.RemoteIQHandler: remote entities discover
// the server and the accounts as local ones do (XEP-0030), each node
// handler answering per requester.
func (m *Module) RemoteRoutes() []modules.Route { return m.Routes() }

// AccountFeatures implements modules.AccountFeatures: the bare JIDs answer
// both queries too.
func (*Module) AccountFeatures() []string { return []string{disco.NSInfo, disco.NSItems} }

// Features implements modules.Features.
func (*Module) Features() []string { return []string{disco.NSInfo, disco.NSItems} }

// HandleIQ implements modules.IQHandler and modules.BareJIDIQHandler: the
// registry's answer for the requested node of the server JID or of the
// account's bare JID, for this requester. An unknown node is
// item-not-found.
func (m *Module) HandleIQ(ctx context.Context, iq modules.IQ) (xml.TokenReader, error) {
	node := nodeOf(iq.Payload)
	account := iq.To.Localpart() != ""
	var inner []xml.TokenReader
	if iq.Payload.Name == infoQuery {
		var di modules.DiscoInfo
		var err error
		if account {
			di, err = m.reg.AccountInfo(ctx, iq.From, iq.To, node)
		} else {
			di, err = m.reg.Info(ctx, iq.From, node)
		}
		if err != nil {
			return nil, discoError(err)
		}
		for _, id := range di.Identities {
			inner = append(inner, id.TokenReader())
		}
		for _, f := range di.Features {
			inner = append(inner, info.Feature{Var: f}.TokenReader())
		}
	} else {
		var its []items.Item
		var err error
		if account {
			its, err = m.reg.AccountItems(ctx, iq.From, iq.To, node)
		} else {
			its, err = m.reg.Items(ctx, iq.From, node)
		}
		if err != nil {
			return nil, discoError(err)
		}
		for _, it := range its {
			inner = append(inner, it.TokenReader())
		}
	}
	return xmlstream.Wrap(xmlstream.MultiReader(inner...), queryStart(iq.Payload.Name.Space, node)), nil
}

func nodeOf(start xml.StartElement) string {
	for _, a := range start.Attr {
		if a.Name.Local == "node" && a.Name.Space == "" {
			return a.Value
		}
	}
	return ""
}

func queryStart(space, node string) xml.StartElement {
	s := xml.StartElement{Name: xml.Name{Space: space, Local: "query"}}
	if node != "" {
		s.Attr = []xml.Attr{{Name: xml.Name{Local: "node"}, Value: node}}
	}
	return s
}

// discoError is item-not-found for an unknown node, a stanza error as it
// is, and anything else for the server to report as internal.
func discoError(err error) error {
	if errors.Is(err, modules.ErrNoNode) {
		return stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound}
	}
	return err
}
