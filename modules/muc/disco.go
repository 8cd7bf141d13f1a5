package muc

import (
	"context"
	"slices"
	"strconv"
	"strings"

	"mellium.im/xmpp/disco/items"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/modules"
)

// DiscoInfo implements modules.NodeHandler: the service serves no node of
// the server JID.
func (m *Module) DiscoInfo(context.Context, jid.JID, string) (modules.DiscoInfo, error) {
	return modules.DiscoInfo{}, modules.ErrNoNode
}

// DiscoItems implements modules.NodeHandler: the server's items list the
// service (XEP-0045 §6.1).
func (m *Module) DiscoItems(_ context.Context, _ jid.JID, node string) ([]items.Item, error) {
	if node != "" {
		return nil, modules.ErrNoNode
	}
	return []items.Item{{JID: m.domain, Name: m.opts.Name}}, nil
}

// serviceFeatures are the features of the service's JID.
var serviceFeatures = []string{nsDiscoInfo, nsDiscoItems, nsMUC, nsOccupantID, nsPing, nsSelfPing, nsStableID}

// serviceInfo is disco#info of the service (XEP-0045 §6.2).
func (m *Module) serviceInfo(discoNode string) ([]node, error) {
	if discoNode != "" {
		return nil, errorOf(stanza.Cancel, stanza.ItemNotFound, "")
	}
	q := elem(nsDiscoInfo, "query").add(elem(nsDiscoInfo, "identity", "category", "conference", "type", "text", "name", m.opts.Name))
	for _, f := range serviceFeatures {
		q = q.add(elem(nsDiscoInfo, "feature", "var", f))
	}
	return []node{q}, nil
}

// serviceItems lists the public rooms (XEP-0045 §6.3): not hidden, not
// locked, by name.
func (m *Module) serviceItems(discoNode string) ([]node, error) {
	if discoNode != "" {
		return nil, errorOf(stanza.Cancel, stanza.ItemNotFound, "")
	}
	m.mu.Lock()
	rooms := make([]*room, 0, len(m.rooms))
	for _, r := range m.rooms {
		rooms = append(rooms, r)
	}
	m.mu.Unlock()
	type listed struct{ jid, name string }
	var out []listed
	for _, r := range rooms {
		r.mu.Lock()
		if !r.gone && !r.Locked && r.Config.Public {
			out = append(out, listed{r.jid.String(), r.title()})
		}
		r.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b listed) int { return strings.Compare(a.jid, b.jid) })
	q := elem(nsDiscoItems, "query")
	for _, l := range out {
		q = q.add(elem(nsDiscoItems, "item", "jid", l.jid, "name", l.name))
	}
	return []node{q}, nil
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
	return []string{
		nsDiscoInfo, nsMUC, nsOccupantID, nsSelfPing, nsStableID,
		pick(r.Config.Public, "muc_public", "muc_hidden"),
		pick(r.Config.MembersOnly, "muc_membersonly", "muc_open"),
		pick(r.Config.Moderated, "muc_moderated", "muc_unmoderated"),
		pick(r.Config.Persistent, "muc_persistent", "muc_temporary"),
		pick(r.nonAnonymous(), "muc_nonanonymous", "muc_semianonymous"),
		pick(r.Config.Password != "", "muc_passwordprotected", "muc_unsecured"),
	}
}

// roomInfo is disco#info of a room: its identity, features and the
// XEP-0128 muc#roominfo form.
func (m *Module) roomInfo(r *room, discoNode string) ([]node, error) {
	if discoNode != "" {
		return nil, errorOf(stanza.Cancel, stanza.ItemNotFound, "")
	}
	q := elem(nsDiscoInfo, "query").add(elem(nsDiscoInfo, "identity", "category", "conference", "type", "text", "name", r.title()))
	for _, f := range r.features() {
		q = q.add(elem(nsDiscoInfo, "feature", "var", f))
	}
	form := elem(nsXData, "x", "type", "result").add(
		formField("FORM_TYPE", "hidden", "", nil, nsRoomInfo),
		formField("muc#roominfo_description", "text-single", "Description", nil, r.Config.Description),
		formField("muc#roominfo_occupants", "text-single", "Number of occupants", nil, strconv.Itoa(len(r.occupants))),
		formField("muc#roominfo_subject", "text-single", "Subject", nil, r.Subject),
		formField("muc#roominfo_subjectmod", "boolean", "Participants may change the subject", nil, modules.FormBool(r.Config.ChangeSubject)),
		formField("muc#roomconfig_roomname", "text-single", "Name", nil, r.Config.Name),
	)
	return []node{q.add(form)}, nil
}

// roomItems is disco#items of a room: empty, since listing occupants would
// tell nicknames to anyone who asks (XEP-0045 §6.5 lets a room do so).
func (m *Module) roomItems(discoNode string) ([]node, error) {
	if discoNode != "" {
		return nil, errorOf(stanza.Cancel, stanza.ItemNotFound, "")
	}
	return []node{elem(nsDiscoItems, "query")}, nil
}
