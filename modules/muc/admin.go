package muc

import (
	"context"
	"encoding/xml"
	"maps"
	"slices"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/canonjid"
	"github.com/adhocd/adhocd/modules"
	"github.com/adhocd/adhocd/wire"
)

// maxAdminItems bounds the items of one muc#admin request.
const maxAdminItems = 100

// parseBare reads a user's JID from an attribute, as its bare JID.
func parseBare(s string) (jid.JID, error) {
	j, err := canonjid.Parse(s)
	if err != nil || s == "" {
		return jid.JID{}, modules.StanzaError(stanza.Modify, stanza.JIDMalformed, "not a JID: "+s)
	}
	return j.Bare(), nil
}

var itemName = xml.Name{Space: nsAdmin, Local: "item"}

// adminIQ is a muc#admin request (XEP-0045 §8, §9, §10): a list of
// occupants by role or of users by affiliation, or changes of roles and
// affiliations.
func (m *Module) adminIQ(ctx context.Context, r *room, from jid.JID, typ string, q *wire.Element) ([]wire.Node, error) {
	items := q.Children(itemName)
	if len(items) == 0 || len(items) > maxAdminItems {
		return nil, modules.StanzaError(stanza.Modify, stanza.BadRequest, "expected from 1 to 100 items")
	}
	if typ == "get" {
		return m.adminList(r, from, items[0])
	}
	return nil, m.adminSet(ctx, r, from, items)
}

// adminList answers the list of one affiliation (to admins and owners) or
// one role (to moderators).
func (m *Module) adminList(r *room, from jid.JID, item *wire.Element) ([]wire.Node, error) {
	actor := r.occupantOf(from)
	q := wire.Elem(nsAdmin, "query")
	if a := Affiliation(item.Attr("affiliation")); a != "" {
		if a == None || a.rank() < 0 {
			return nil, modules.StanzaError(stanza.Modify, stanza.BadRequest, "no list of affiliation "+string(a))
		}
		if r.affiliation(from.Bare().String()).rank() < Admin.rank() {
			return nil, modules.StanzaError(stanza.Auth, stanza.Forbidden, "only admins and owners see the affiliation lists")
		}
		for _, bare := range slices.Sorted(maps.Keys(r.Affiliations)) {
			if r.Affiliations[bare] != a {
				continue
			}
			nick := ""
			if j, err := jid.Parse(bare); err == nil {
				if os := r.occupantsOf(j); len(os) > 0 {
					nick = os[0].nick
				}
			}
			q = q.Add(wire.Elem(nsAdmin, "item", "affiliation", string(a), "jid", bare, "nick", nick))
		}
		return []wire.Node{q}, nil
	}
	role := Role(item.Attr("role"))
	if role.rank() <= 0 {
		return nil, modules.StanzaError(stanza.Modify, stanza.BadRequest, "expected an item with an affiliation or a role")
	}
	if actor == nil || actor.role != Moderator {
		return nil, modules.StanzaError(stanza.Auth, stanza.Forbidden, "only moderators see the lists of roles")
	}
	for _, o := range r.list() {
		if o.role == role {
			q = q.Add(wire.Elem(nsAdmin, "item", "affiliation", string(r.affiliation(o.bare.String())),
				"jid", o.primary().jid.String(), "nick", o.nick, "role", string(role)))
		}
	}
	return []wire.Node{q}, nil
}

// change is one item of a muc#admin set, checked.
type change struct {
	// target is the occupant of a role change; bare the user of an
	// affiliation change.
	target *occupant
	bare   string
	role   Role
	aff    Affiliation
	reason string
}

// adminSet checks every item against the rules of XEP-0045 §8–§10 and then
// applies them all, or none.
func (m *Module) adminSet(ctx context.Context, r *room, from jid.JID, items []*wire.Element) error {
	actor := r.occupantOf(from)
	actorAff := r.affiliation(from.Bare().String())
	if from.Equal(m.domain) {
		// The service itself (a server administrator's command,
		// commands.go) acts as an owner.
		actorAff = Owner
	}
	actorRole := RoleNone
	actorNick := ""
	if actor != nil {
		actorRole, actorNick = actor.role, actor.nick
	}
	// affs is the affiliations as they will be, for the last-owner rule.
	affs := maps.Clone(r.Affiliations)
	var changes []change
	for _, it := range items {
		c := change{role: Role(it.Attr("role")), aff: Affiliation(it.Attr("affiliation"))}
		c.reason, _ = textOf(it, nsAdmin, "reason")
		nick := it.Attr("nick")
		switch {
		case c.role != "" && c.aff != "", c.role == "" && c.aff == "":
			return modules.StanzaError(stanza.Modify, stanza.BadRequest, "an item changes a role or an affiliation")
		case c.role != "":
			if c.role.rank() < 0 {
				return modules.StanzaError(stanza.Modify, stanza.BadRequest, "no such role: "+string(c.role))
			}
			if c.target = r.occupants[nick]; c.target == nil {
				return modules.StanzaError(stanza.Cancel, stanza.ItemNotFound, "no occupant has the nickname "+nick)
			}
			if err := checkRole(r, actorAff, actorRole, c); err != nil {
				return err
			}
		default:
			if c.aff.rank() < 0 {
				return modules.StanzaError(stanza.Modify, stanza.BadRequest, "no such affiliation: "+string(c.aff))
			}
			switch {
			case it.Attr("jid") != "":
				j, err := parseBare(it.Attr("jid"))
				if err != nil {
					return err
				}
				c.bare = j.String()
			case r.occupants[nick] != nil:
				c.bare = r.occupants[nick].bare.String()
			default:
				return modules.StanzaError(stanza.Modify, stanza.BadRequest, "an affiliation is changed for a jid (or an occupant's nick)")
			}
			cur := None
			if a, ok := affs[c.bare]; ok {
				cur = a
			}
			if err := checkAffiliation(actorAff, cur, c.aff); err != nil {
				return err
			}
			if c.aff == None {
				delete(affs, c.bare)
			} else {
				affs[c.bare] = c.aff
			}
		}
		changes = append(changes, c)
	}
	if len(affs) > m.opts.MaxAffiliations && len(affs) > len(r.Affiliations) {
		return modules.StanzaError(stanza.Wait, stanza.ResourceConstraint, "the room has too many affiliations")
	}
	affChange := slices.ContainsFunc(changes, func(c change) bool { return c.aff != "" })
	if affChange && !slices.Contains(slices.Collect(maps.Values(affs)), Owner) {
		return modules.StanzaError(stanza.Cancel, stanza.Conflict, "the room's last owner cannot give up ownership")
	}
	if affChange {
		// The affiliations as they will be are stored first: changes the
		// store refuses are not made.
		next := r.State
		next.Affiliations = affs
		if err := m.save(ctx, r, next); err != nil {
			return err
		}
	}
	for _, c := range changes {
		if c.role != "" {
			m.applyRole(ctx, r, c, actorNick)
		} else {
			m.applyAffiliation(ctx, r, c, actorNick)
		}
	}
	return nil
}

// checkRole applies the rules of role changes: moderators kick and give or
// take voice (§8.2–§8.4), admins and owners give or take moderation (§9.6,
// §9.7); no one acts on an occupant of a higher affiliation, and the roles
// that come with admin and owner are theirs.
func checkRole(r *room, actorAff Affiliation, actorRole Role, c change) error {
	targetAff := r.affiliation(c.target.bare.String())
	switch {
	case actorRole != Moderator:
		return modules.StanzaError(stanza.Auth, stanza.Forbidden, "only moderators change roles")
	case c.role != Moderator && targetAff.rank() >= Admin.rank():
		return modules.StanzaError(stanza.Cancel, stanza.NotAllowed, "admins and owners keep their role")
	case c.role == Moderator && actorAff.rank() < Admin.rank():
		return modules.StanzaError(stanza.Auth, stanza.Forbidden, "only admins and owners give moderation")
	case c.target.role == Moderator && c.role != Moderator && actorAff.rank() < Admin.rank():
		return modules.StanzaError(stanza.Cancel, stanza.NotAllowed, "only admins and owners take moderation")
	case targetAff.rank() > actorAff.rank():
		return modules.StanzaError(stanza.Cancel, stanza.NotAllowed, "the occupant's affiliation is higher than yours")
	}
	return nil
}

// checkAffiliation applies the rules of affiliation changes: admins manage
// members and outcasts (§9), owners every affiliation (§10).
func checkAffiliation(actor, cur, next Affiliation) error {
	switch actor {
	case Owner:
		return nil
	case Admin:
		if cur.rank() >= Admin.rank() || next.rank() >= Admin.rank() {
			return modules.StanzaError(stanza.Cancel, stanza.NotAllowed, "only owners change who is admin or owner")
		}
		return nil
	}
	return modules.StanzaError(stanza.Auth, stanza.Forbidden, "only admins and owners change affiliations")
}

// applyRole gives the occupant its new role, or kicks it (role none, 307);
// everyone sees its new presence.
func (m *Module) applyRole(ctx context.Context, r *room, c change, actor string) {
	if r.occupants[c.target.nick] != c.target {
		return // removed by an earlier item
	}
	if c.role == RoleNone {
		m.remove(ctx, r, c.target, []string{codeKicked}, actor, c.reason)
		m.destroyIfIdle(r)
		return
	}
	c.target.role = c.role
	m.broadcast(ctx, r, c.target, presenceOpts{actor: actor, reason: c.reason})
}

// applyAffiliation records the affiliation and updates the user's
// occupants: banned (301), or out of a members-only room (321), or
// with the role the affiliation brings.
func (m *Module) applyAffiliation(ctx context.Context, r *room, c change, actor string) {
	r.setAffiliation(c.bare, c.aff)
	j, err := jid.Parse(c.bare)
	if err != nil {
		return
	}
	for _, o := range r.occupantsOf(j) {
		switch {
		case c.aff == Outcast:
			m.remove(ctx, r, o, []string{codeBanned}, actor, c.reason)
		case c.aff == None && r.Config.MembersOnly:
			m.remove(ctx, r, o, []string{codeAffiliation}, actor, c.reason)
		default:
			o.role = r.roleFor(c.aff)
			m.broadcast(ctx, r, o, presenceOpts{actor: actor, reason: c.reason})
		}
	}
	m.destroyIfIdle(r)
}
