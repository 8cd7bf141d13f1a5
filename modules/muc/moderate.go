package muc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"slices"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/modules"
	"github.com/adhocd/adhocd/storage"
	"github.com/adhocd/adhocd/wire"
)

// XEP-0425 Moderated Message Retraction (version 0.3.0): a moderator of a
// room that keeps an archive retracts an occupant's message by its
// stanza id,
//
//	<iq type='set' to='room@service'>
//	  <moderate xmlns='urn:xmpp:message-moderate:1' id='STANZA-ID'>
//	    <retract xmlns='urn:xmpp:message-retract:1'/><reason>…</reason>
//	  </moderate>
//	</iq>
//
// and the room tells every occupant with a message from its own JID, a
// XEP-0424 <retract id='STANZA-ID'/> holding <moderated by='the
// moderator's room JID'/> with the moderator's occupant id, and the
// reason. The archived message becomes a tombstone: its sender's room JID,
// id, occupant id and real JID stay; its body and every other child are
// replaced by <retracted stamp='…'> holding the same <moderated/> and
// reason. The join history no longer has it, and the notice itself is
// archived (so that a client catching up from the archive learns of it).
//
// The older form of version 0.2 (urn:xmpp:message-moderate:0 inside a
// XEP-0422 <apply-to xmlns='urn:xmpp:fasten:0' id='…'/>, with
// urn:xmpp:message-retract:0) is accepted too, and each notice and
// tombstone carries both forms: the clients of Debian 12 speak only it
// (nbxmpp 4.2, so Gajim 1.7, and slixmpp 1.8 send and read the :0 form;
// Converse.js took :1 in version 11). Both features are advertised.
//
// Errors: forbidden for one who is not a moderator of the room (an
// occupant with that role), item-not-found for an id the room's archive
// does not hold, not-acceptable for the room's own notices, and
// service-unavailable in a room that keeps no archive (it has no stanza
// ids). Retracting a tombstone again changes nothing and is answered with
// a result.

// Namespaces of moderation.
const (
	nsModerate0 = "urn:xmpp:message-moderate:0"
	nsModerate1 = "urn:xmpp:message-moderate:1"
	nsRetract0  = "urn:xmpp:message-retract:0"
	nsRetract1  = "urn:xmpp:message-retract:1"
	nsFasten    = "urn:xmpp:fasten:0"
)

// maxReasonBytes bounds a moderation's reason.
const maxReasonBytes = 1024

// isModeration reports the payloads of moderation requests (both forms).
func isModeration(n xml.Name) bool {
	return n == xml.Name{Space: nsModerate1, Local: "moderate"} || n == xml.Name{Space: nsFasten, Local: "apply-to"}
}

// moderation is a request read: the stanza id and the reason.
type moderation struct{ id, reason string }

// parseModeration reads either form of the request.
func parseModeration(q *wire.Element) (moderation, error) {
	bad := modules.StanzaError(stanza.Modify, stanza.BadRequest, "expected <moderate xmlns='"+nsModerate1+"' id='…'><retract xmlns='"+nsRetract1+"'/></moderate>")
	var mo moderation
	mo.id = q.Attr("id")
	body := q
	if q.Start.Name.Space == nsFasten {
		body = q.Sub(xml.Name{Space: nsModerate0, Local: "moderate"})
		if body == nil || body.Sub(xml.Name{Space: nsRetract0, Local: "retract"}) == nil {
			return mo, bad
		}
	} else if q.Sub(xml.Name{Space: nsRetract1, Local: "retract"}) == nil {
		return mo, bad
	}
	mo.reason, _ = textOf(body, body.Start.Name.Space, "reason")
	switch {
	case mo.id == "":
		return mo, bad
	case len(mo.reason) > maxReasonBytes:
		return mo, modules.StanzaError(stanza.Modify, stanza.PolicyViolation, fmt.Sprintf("the reason is longer than %d bytes", maxReasonBytes))
	}
	return mo, nil
}

// moderate answers a moderation request to r (see the top of the file).
func (m *Module) moderate(ctx context.Context, r *room, from jid.JID, typ string, q *wire.Element) ([]wire.Node, error) {
	if !isModeration(q.Start.Name) || !r.archiving() {
		return nil, unsupported
	}
	if typ != "set" {
		return nil, modules.StanzaError(stanza.Modify, stanza.BadRequest, "a moderation is an IQ set")
	}
	mo, err := parseModeration(q)
	if err != nil {
		return nil, err
	}
	actor := r.occupantOf(from)
	if actor == nil || actor.role != Moderator {
		return nil, modules.StanzaError(stanza.Auth, stanza.Forbidden, "only moderators may retract other occupants' messages")
	}
	msgs, _, err := m.store.QueryRoomArchive(ctx, m.domain.Domainpart(), r.jid.Localpart(), storage.ArchiveQuery{IDs: []string{mo.id}, Max: 1})
	if err != nil {
		return nil, m.storeError("read the archive", r, err)
	}
	if len(msgs) == 0 {
		return nil, modules.StanzaError(stanza.Cancel, stanza.ItemNotFound, "the room's archive has no message of that id")
	}
	a := msgs[0]
	el, ok := wire.ParseElement(a.XML)
	switch {
	case !ok:
		return nil, modules.StanzaError(stanza.Wait, stanza.InternalServerError, "")
	case a.With == r.jid.String():
		return nil, modules.StanzaError(stanza.Modify, stanza.NotAcceptable, "the room's own notices are not retracted")
	case el.Sub(xml.Name{Space: nsRetract1, Local: "retracted"}) != nil:
		return nil, nil // retracted already
	}
	by := occupantJID(r, actor.nick)
	stamp := modules.Stamp(m.now())
	tomb := tombstone(el, by, actor.id, mo.reason, stamp)
	if err := m.store.ReplaceRoomArchived(ctx, m.domain.Domainpart(), r.jid.Localpart(), a.ID, tomb); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return nil, modules.StanzaError(stanza.Cancel, stanza.ItemNotFound, "the room's archive has no message of that id")
		}
		return nil, m.storeError("retract a message", r, err)
	}
	notice := stanzaOf("message", r.jid.String(), "", "groupchat", randomID()).Add(retraction(a.ID, by, actor.id, mo.reason)...)
	if sid := m.archive(ctx, r, nil, notice); sid != "" {
		notice = notice.Add(stanzaID(r, sid))
	}
	for _, o := range r.list() {
		for _, s := range o.sessions {
			m.sendTo(ctx, notice, s.jid)
		}
	}
	m.loadHistory(ctx, r)
	r.History = slices.DeleteFunc(r.History, func(e HistoryEntry) bool { return e.StanzaID == a.ID })
	return nil, nil
}

// moderated is the <moderated/> of space (nsModerate0 or 1): by whom, with
// the moderator's occupant id, and more inside.
func moderated(space, by, occID string, kids ...wire.Node) wire.Node {
	return wire.Elem(space, "moderated", "by", by).Add(wire.Elem(nsOccupantID, "occupant-id", "id", occID)).Add(kids...)
}

// reasonNode is a <reason/> in space, or nothing for no reason.
func reasonNode(space, reason string) []wire.Node {
	if reason == "" {
		return nil
	}
	return []wire.Node{wire.TextElem(space, "reason", reason)}
}

// retraction is the notice's payload in both forms: XEP-0425 0.3's
// <retract/> and 0.2's <apply-to/>.
func retraction(id, by, occID, reason string) []wire.Node {
	v1 := wire.Elem(nsRetract1, "retract", "id", id).Add(moderated(nsModerate1, by, occID)).Add(reasonNode(nsRetract1, reason)...)
	v0 := wire.Elem(nsFasten, "apply-to", "id", id).Add(
		moderated(nsModerate0, by, occID, wire.Elem(nsRetract0, "retract")).Add(reasonNode(nsModerate0, reason)...))
	return []wire.Node{v1, v0}
}

// tombstone is the archived message el retracted: its attributes, its
// sender's occupant id and real JID, and the retraction in both forms
// (XEP-0425 §4 of 0.3, and of 0.2) in the place of the rest.
func tombstone(el *wire.Element, by, occID, reason, stamp string) string {
	kept := withoutElems(el.Inner, func(st xml.StartElement) bool {
		return st.Name.Space != nsOccupantID && !isUserX(st.Name)
	})
	v1 := wire.Elem(nsRetract1, "retracted", "stamp", stamp).Add(moderated(nsModerate1, by, occID)).Add(reasonNode(nsRetract1, reason)...)
	v0 := moderated(nsModerate0, by, occID, wire.Elem(nsRetract0, "retracted", "stamp", stamp)).Add(reasonNode(nsModerate0, reason)...)
	t := wire.Node{Name: el.Start.Name, Attr: el.Start.Attr, Raw: kept}.Add(v1, v0)
	return wire.Serialize(t.Tokens(nil), 1<<20)
}

// randomID is an id for a stanza the room writes.
func randomID() string {
	b := make([]byte, 9)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
