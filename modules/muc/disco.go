package muc

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/adhoc"
	"github.com/adhocd/adhocd/modules"
	"github.com/adhocd/adhocd/wire"
)

// serviceFeatures are the features of the service's JID; the
// administration commands (commands.go) are XEP-0050 commands on it.
var serviceFeatures = []string{adhoc.NS, nsDiscoInfo, nsDiscoItems, nsMUC, nsOccupantID, nsPing, nsSelfPing, nsStableID}

// serviceInfo is disco#info of the service (XEP-0045 §6.2), or of one of
// its command nodes for requester (XEP-0050 §2.3, §2.4; forbidden for one
// who may not run the command).
func (m *Module) serviceInfo(ctx context.Context, requester jid.JID, discoNode string) ([]wire.Node, error) {
	if discoNode != "" {
		ids, feats, ok, err := m.h.Commands().Info(ctx, m.domain, requester, discoNode, "")
		var ae adhoc.Error
		switch {
		case !ok:
			return nil, modules.StanzaError(stanza.Cancel, stanza.ItemNotFound, "")
		case errors.As(err, &ae):
			return nil, ae.Stanza
		case err != nil:
			return nil, err
		}
		q := wire.Elem(nsDiscoInfo, "query", "node", discoNode)
		for _, id := range ids {
			q = q.Add(wire.Elem(nsDiscoInfo, "identity", "category", id.Category, "type", id.Type, "name", id.Name))
		}
		for _, f := range feats {
			q = q.Add(wire.Elem(nsDiscoInfo, "feature", "var", f))
		}
		return []wire.Node{q}, nil
	}
	q := wire.Elem(nsDiscoInfo, "query").Add(wire.Elem(nsDiscoInfo, "identity", "category", "conference", "type", "text", "name", m.opts.Name))
	for _, f := range serviceFeatures {
		q = q.Add(wire.Elem(nsDiscoInfo, "feature", "var", f))
	}
	return []wire.Node{q}, nil
}

// allRooms is every room of the service, unlocked, in no order.
func (m *Module) allRooms() []*room {
	m.mu.Lock()
	defer m.mu.Unlock()
	rooms := make([]*room, 0, len(m.rooms))
	for _, r := range m.rooms {
		rooms = append(rooms, r)
	}
	return rooms
}

// serviceItems lists the public rooms (XEP-0045 §6.3): not hidden, not
// locked, by JID; on the commands node, the commands requester may run
// (XEP-0050 §2.2).
func (m *Module) serviceItems(ctx context.Context, requester jid.JID, discoNode string) ([]wire.Node, error) {
	switch discoNode {
	case "":
	case adhoc.NS:
		q := wire.Elem(nsDiscoItems, "query", "node", discoNode)
		for _, it := range m.h.Commands().Items(ctx, m.domain, requester, "") {
			q = q.Add(wire.Elem(nsDiscoItems, "item", "jid", it.JID.String(), "node", it.Node, "name", it.Name))
		}
		return []wire.Node{q}, nil
	default:
		return nil, modules.StanzaError(stanza.Cancel, stanza.ItemNotFound, "")
	}
	type listed struct{ jid, name string }
	var out []listed
	for _, r := range m.allRooms() {
		r.mu.Lock()
		if !r.gone && !r.Locked && r.Config.Public {
			out = append(out, listed{r.jid.String(), r.title()})
		}
		r.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b listed) int { return strings.Compare(a.jid, b.jid) })
	q := wire.Elem(nsDiscoItems, "query")
	for _, l := range out {
		q = q.Add(wire.Elem(nsDiscoItems, "item", "jid", l.jid, "name", l.name))
	}
	return []wire.Node{q}, nil
}

// title is the room's name, or its localpart.
func (r *room) title() string {
	if r.Config.Name != "" {
		return r.Config.Name
	}
	return r.jid.Localpart()
}

// features are the room's disco features (XEP-0045 §6.4, §15.2).
func (r *room) features() []string {
	pick := func(b bool, yes, no string) string {
		if b {
			return yes
		}
		return no
	}
	return append([]string{
		nsDiscoInfo, nsMUC, nsOccupantID, nsSelfPing, nsStableID,
		pick(r.Config.Public, "muc_public", "muc_hidden"),
		pick(r.Config.MembersOnly, "muc_membersonly", "muc_open"),
		pick(r.Config.Moderated, "muc_moderated", "muc_unmoderated"),
		pick(r.Config.Persistent, "muc_persistent", "muc_temporary"),
		pick(r.nonAnonymous(), "muc_nonanonymous", "muc_semianonymous"),
		pick(r.Config.Password != "", "muc_passwordprotected", "muc_unsecured"),
	}, r.archiveFeatures()...) // archive.go
}

// roomInfo is disco#info of a room: its identity, features and the
// XEP-0128 muc#roominfo form.
func (m *Module) roomInfo(r *room, discoNode string) ([]wire.Node, error) {
	if discoNode != "" {
		return nil, modules.StanzaError(stanza.Cancel, stanza.ItemNotFound, "")
	}
	q := wire.Elem(nsDiscoInfo, "query").Add(wire.Elem(nsDiscoInfo, "identity", "category", "conference", "type", "text", "name", r.title()))
	for _, f := range r.features() {
		q = q.Add(wire.Elem(nsDiscoInfo, "feature", "var", f))
	}
	form := wire.Elem(nsXData, "x", "type", "result").Add(
		formField("FORM_TYPE", "hidden", "", nil, nsRoomInfo),
		formField("muc#roominfo_description", "text-single", "Description", nil, r.Config.Description),
		formField("muc#roominfo_occupants", "text-single", "Number of occupants", nil, strconv.Itoa(len(r.occupants))),
		formField("muc#roominfo_subject", "text-single", "Subject", nil, r.Subject),
		formField("muc#roominfo_subjectmod", "boolean", "Participants may change the subject", nil, modules.FormBool(r.Config.ChangeSubject)),
		formField("muc#roomconfig_roomname", "text-single", "Name", nil, r.Config.Name),
	)
	return []wire.Node{q.Add(form)}, nil
}

// roomItems is disco#items of a room: empty, since listing occupants would
// tell nicknames to anyone who asks (XEP-0045 §6.5 lets a room do so).
func (m *Module) roomItems(discoNode string) ([]wire.Node, error) {
	if discoNode != "" {
		return nil, modules.StanzaError(stanza.Cancel, stanza.ItemNotFound, "")
	}
	return []wire.Node{wire.Elem(nsDiscoItems, "query")}, nil
}
