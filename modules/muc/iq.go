package muc

import (
	"context"
	"encoding/xml"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/adhoc"
	"github.com/adhocd/adhocd/modules"
	"github.com/adhocd/adhocd/wire"
)

// handleIQ answers an IQ get or set to the service or a room, or forwards
// one to an occupant (forward.go); an error it returns is the answer.
func (m *Module) handleIQ(ctx context.Context, from jid.JID, el *wire.Element, to jid.JID) error {
	name, n := el.Payload()
	if n != 1 {
		return modules.StanzaError(stanza.Modify, stanza.BadRequest, "an IQ request has one child")
	}
	q := el.Sub(name)
	typ := el.Attr("type")
	var res []wire.Node
	var err error
	switch {
	case to.Localpart() == "":
		res, err = m.serviceIQ(ctx, from, el, q)
	case to.Resourcepart() == "":
		res, err = m.roomIQ(ctx, from, typ, q, to)
	default:
		return m.occupantIQ(ctx, from, el, q, to)
	}
	if err != nil {
		return err
	}
	reply := stanzaOf("iq", to.String(), from.String(), "result", el.Attr("id")).Add(res...)
	m.send(ctx, reply)
	return nil
}

// unsupported is the answer to a request the service does not serve
// (RFC 6120 §8.4).
var unsupported = modules.StanzaError(stanza.Cancel, stanza.ServiceUnavailable, "")

// serviceIQ answers disco, ping and the administration commands
// (commands.go) of the service's JID.
func (m *Module) serviceIQ(ctx context.Context, from jid.JID, el, q *wire.Element) ([]wire.Node, error) {
	typ := el.Attr("type")
	switch name := q.Start.Name; {
	case name == xml.Name{Space: adhoc.NS, Local: "command"}:
		return m.commandsIQ(ctx, from, el, q)
	case typ == "get" && name == xml.Name{Space: nsDiscoInfo, Local: "query"}:
		return m.serviceInfo(ctx, from, q.Attr("node"))
	case typ == "get" && name == xml.Name{Space: nsDiscoItems, Local: "query"}:
		return m.serviceItems(ctx, from, q.Attr("node"))
	case typ == "get" && name == xml.Name{Space: nsPing, Local: "ping"}:
		return nil, nil
	}
	return nil, unsupported
}

// roomIQ answers the requests to a room's bare JID: disco, muc#owner,
// muc#admin, ping. A locked room is invisible but to its owners.
func (m *Module) roomIQ(ctx context.Context, from jid.JID, typ string, q *wire.Element, to jid.JID) ([]wire.Node, error) {
	r := m.lookup(to.Localpart())
	if r == nil {
		return nil, modules.StanzaError(stanza.Cancel, stanza.ItemNotFound, "no such room")
	}
	defer r.mu.Unlock()
	if r.Locked && r.affiliation(from.Bare().String()) != Owner {
		return nil, modules.StanzaError(stanza.Cancel, stanza.ItemNotFound, "no such room")
	}
	name := q.Start.Name
	switch {
	case name.Space == nsMAM || isModeration(name):
		return m.archiveIQ(ctx, r, from, typ, q) // archive.go, moderate.go
	case name.Local != "query" && !(name.Space == nsPing && name.Local == "ping"):
	case name.Space == nsDiscoInfo && typ == "get":
		return m.roomInfo(r, q.Attr("node"))
	case name.Space == nsDiscoItems && typ == "get":
		return m.roomItems(q.Attr("node"))
	case name.Space == nsOwner:
		return m.ownerIQ(ctx, r, from, typ, q)
	case name.Space == nsAdmin:
		return m.adminIQ(ctx, r, from, typ, q)
	case name.Space == nsPing && typ == "get":
		return nil, nil
	}
	return nil, unsupported
}
