// Package disco answers XEP-0030 service discovery on the server JID from the
// registry every module publishes into (modules.Disco). Encoding uses
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
	"mellium.im/xmpp/mux"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/modules"
)

// Module serves disco#info and disco#items.
type Module struct {
	reg *modules.Disco
}

var _ modules.Module = (*Module)(nil)

// New returns the disco module.
func New() modules.Module { return &Module{} }

// Name implements modules.Module.
func (*Module) Name() string { return "disco" }

// Start implements modules.Module.
func (m *Module) Start(_ context.Context, h modules.Host) error {
	m.reg = h.Disco()
	m.reg.AddIdentity(info.Identity{Category: "server", Type: "im", Name: "adhocd"})
	m.reg.AddFeature(disco.NSInfo, disco.NSItems)
	h.Handle(
		mux.IQ(stanza.GetIQ, xml.Name{Space: disco.NSInfo, Local: "query"}, mux.IQHandlerFunc(m.info)),
		mux.IQ(stanza.GetIQ, xml.Name{Space: disco.NSItems, Local: "query"}, mux.IQHandlerFunc(m.items)),
	)
	return nil
}

// Stop implements modules.Module.
func (*Module) Stop(context.Context) error { return nil }

func nodeOf(start *xml.StartElement) string {
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

func (m *Module) info(iq stanza.IQ, t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	node := nodeOf(start)
	di, err := m.reg.Info(context.Background(), iq.From, node)
	if err != nil {
		return replyError(iq, t, err)
	}
	var inner []xml.TokenReader
	for _, id := range di.Identities {
		inner = append(inner, id.TokenReader())
	}
	for _, f := range di.Features {
		inner = append(inner, info.Feature{Var: f}.TokenReader())
	}
	_, err = xmlstream.Copy(t, iq.Result(xmlstream.Wrap(xmlstream.MultiReader(inner...), queryStart(disco.NSInfo, node))))
	return err
}

func (m *Module) items(iq stanza.IQ, t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	node := nodeOf(start)
	its, err := m.reg.Items(context.Background(), iq.From, node)
	if err != nil {
		return replyError(iq, t, err)
	}
	var inner []xml.TokenReader
	for _, it := range its {
		inner = append(inner, it.TokenReader())
	}
	_, err = xmlstream.Copy(t, iq.Result(xmlstream.Wrap(xmlstream.MultiReader(inner...), queryStart(disco.NSItems, node))))
	return err
}

// replyError sends item-not-found for an unknown node, a stanza error as it
// is, and internal-server-error for anything else.
func replyError(iq stanza.IQ, t xmlstream.TokenReadEncoder, err error) error {
	se := stanza.Error{Type: stanza.Cancel, Condition: stanza.InternalServerError}
	switch {
	case errors.Is(err, modules.ErrNoNode):
		se = stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound}
	default:
		errors.As(err, &se)
	}
	_, e := xmlstream.Copy(t, iq.Error(se))
	return e
}
