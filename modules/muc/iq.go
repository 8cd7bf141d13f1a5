package muc

import (
	"context"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/wire"
)

// handleIQ answers an IQ get or set to the service, a room or an occupant;
// an error it returns is the answer.
func (m *Module) handleIQ(ctx context.Context, from jid.JID, el *wire.Element, to jid.JID) error {
	name, n := el.Payload()
	if n != 1 {
		return errorOf(stanza.Modify, stanza.BadRequest, "an IQ request has one child")
	}
	q := el.Sub(name)
	typ := el.Attr("type")
	var res []node
	var err error
	switch {
	case to.Localpart() == "":
		res, err = m.serviceIQ(typ, q)
	case to.Resourcepart() == "":
		res, err = m.roomIQ(ctx, from, typ, q, to)
	default:
		res, err = m.occupantIQ(from, typ, q, to)
	}
	if err != nil {
		return err
	}
	reply := stanzaOf("iq", to.String(), from.String(), "result", el.Attr("id")).add(res...)
	m.send(ctx, reply)
	return nil
}

// unsupported is the answer to a request the service does not serve
// (RFC 6120 §8.4).
var unsupported = errorOf(stanza.Cancel, stanza.ServiceUnavailable, "")

// serviceIQ answers disco and ping of the service's JID.
func (m *Module) serviceIQ(typ string, q *wire.Element) ([]node, error) {
	switch {
	case typ == "get" && q.Start.Name.Space == nsDiscoInfo && q.Start.Name.Local == "query":
		return m.serviceInfo(q.Attr("node"))
	case typ == "get" && q.Start.Name.Space == nsDiscoItems && q.Start.Name.Local == "query":
		return m.serviceItems(q.Attr("node"))
	case typ == "get" && q.Start.Name.Space == nsPing && q.Start.Name.Local == "ping":
		return nil, nil
	}
	return nil, unsupported
}

// roomIQ answers the requests to a room's bare JID: disco, muc#owner,
// muc#admin, ping. A locked room is invisible but to its owners.
func (m *Module) roomIQ(ctx context.Context, from jid.JID, typ string, q *wire.Element, to jid.JID) ([]node, error) {
	r := m.lookup(to.Localpart())
	if r == nil {
		return nil, errorOf(stanza.Cancel, stanza.ItemNotFound, "no such room")
	}
	defer r.mu.Unlock()
	if r.Locked && r.affiliation(from.Bare().String()) != Owner {
		return nil, errorOf(stanza.Cancel, stanza.ItemNotFound, "no such room")
	}
	name := q.Start.Name
	switch {
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

// occupantIQ answers requests to an occupant's room JID: the XEP-0410
// self-ping, which the room answers itself for a session that is in the
// room under that nickname (not-acceptable otherwise, which tells the
// client to join again). Other requests are not forwarded to occupants.
func (m *Module) occupantIQ(from jid.JID, typ string, q *wire.Element, to jid.JID) ([]node, error) {
	r := m.lookup(to.Localpart())
	if r == nil {
		return nil, notOccupant
	}
	defer r.mu.Unlock()
	o := r.occupantOf(from)
	if o == nil {
		return nil, notOccupant
	}
	if typ == "get" && q.Start.Name.Space == nsPing && q.Start.Name.Local == "ping" {
		if o.nick != to.Resourcepart() {
			return nil, notOccupant
		}
		return nil, nil
	}
	if r.occupants[to.Resourcepart()] == nil {
		return nil, errorOf(stanza.Cancel, stanza.ItemNotFound, "no occupant has that nickname")
	}
	return nil, errorOf(stanza.Cancel, stanza.FeatureNotImplemented, "the room does not forward requests to occupants")
}
