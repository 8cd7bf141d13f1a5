package muc

import (
	"context"
	"encoding/xml"
	"fmt"
	"maps"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/modules"
	"github.com/adhocd/adhocd/wire"
)

var (
	bodyName    = xml.Name{Space: stanza.NSClient, Local: "body"}
	subjectName = xml.Name{Space: stanza.NSClient, Local: "subject"}
)

// handleMessage is a message to the service, to a room (groupchat, a
// mediated invitation) or to an occupant (a private message).
func (m *Module) handleMessage(ctx context.Context, from jid.JID, el *wire.Element, to jid.JID) error {
	typ := el.Attr("type")
	if to.Localpart() == "" {
		if typ == "headline" {
			return nil
		}
		return modules.StanzaError(stanza.Cancel, stanza.ServiceUnavailable, "the service takes no messages; send them to a room")
	}
	r := m.lookup(to.Localpart())
	if r == nil {
		return modules.StanzaError(stanza.Cancel, stanza.ItemNotFound, "no such room")
	}
	defer r.mu.Unlock()
	o := r.occupantOf(from)
	if o != nil && !m.allow(ctx, o) {
		return tooFast
	}
	if to.Resourcepart() != "" {
		return m.private(ctx, r, o, el, to.Resourcepart())
	}
	if typ == "groupchat" {
		return m.groupchat(ctx, r, o, el)
	}
	if x := el.Sub(xml.Name{Space: nsUser, Local: "x"}); x != nil {
		if inv := x.Sub(xml.Name{Space: nsUser, Local: "invite"}); inv != nil {
			return m.invite(ctx, r, o, from, inv)
		}
	}
	return modules.StanzaError(stanza.Modify, stanza.BadRequest, "messages to the room are of type groupchat")
}

// notOccupant is the answer to a message or IQ from someone not in the room.
var notOccupant = modules.StanzaError(stanza.Modify, stanza.NotAcceptable, "you are not in this room")

// payloadOf is what r relays of el: its children without the MUC
// payloads, occupant ids and stanza ids by r that the sender put in,
// within maxBytes (as XML), and that text (for the history).
func (m *Module) payloadOf(r *room, el *wire.Element) ([]xml.Token, string, error) {
	own := ownStanzaID(r)
	payload := withoutElems(el.Inner, func(st xml.StartElement) bool { return mucChild(st.Name) || own(st) })
	text := wire.Serialize(payload, m.opts.MaxMessageBytes)
	if text == "" && len(payload) > 0 {
		return nil, "", modules.StanzaError(stanza.Modify, stanza.PolicyViolation,
			fmt.Sprintf("the message is longer than the room's limit of %d bytes", m.opts.MaxMessageBytes))
	}
	return payload, text, nil
}

// groupchat relays an occupant's message to every occupant (XEP-0045
// §7.4), and keeps it in the history when it has a body. A message with a
// subject and no body changes the subject (§8.1), stored first in a
// persistent room. Both go into the room's archive when it keeps one, and
// out with their stanza id (archive.go).
func (m *Module) groupchat(ctx context.Context, r *room, o *occupant, el *wire.Element) error {
	if o == nil {
		return notOccupant
	}
	subject, isSubject := el.Text(subjectName)
	isSubject = isSubject && el.Sub(bodyName) == nil
	switch {
	case isSubject && o.role != Moderator && !(r.Config.ChangeSubject && o.role.rank() >= Participant.rank()):
		return modules.StanzaError(stanza.Auth, stanza.Forbidden, "only moderators may change the subject of this room")
	case o.role.rank() < Participant.rank():
		return modules.StanzaError(stanza.Auth, stanza.Forbidden, "visitors have no voice in this moderated room")
	case isSubject && len(subject) > m.opts.MaxSubjectBytes:
		return modules.StanzaError(stanza.Modify, stanza.PolicyViolation,
			fmt.Sprintf("the subject is longer than the limit of %d bytes", m.opts.MaxSubjectBytes))
	}
	payload, text, err := m.payloadOf(r, el)
	if err != nil {
		return err
	}
	if isSubject {
		// The new subject is stored before anyone sees it.
		next := r.State
		next.Subject, next.SubjectBy = subject, o.nick
		if err := m.save(ctx, r, next); err != nil {
			return err
		}
	}
	hasBody := el.Sub(bodyName) != nil
	oid := wire.Elem(nsOccupantID, "occupant-id", "id", o.id)
	msg := stanzaOf("message", occupantJID(r, o.nick), "", "groupchat", el.Attr("id"))
	msg.Raw = payload
	msg = msg.Add(oid)
	sid := ""
	if isSubject || hasBody {
		sid = m.archive(ctx, r, o, msg)
	}
	extra := oid.Tokens(nil)
	if sid != "" {
		msg = msg.Add(stanzaID(r, sid))
		extra = stanzaID(r, sid).Tokens(extra)
	}
	for _, v := range r.list() {
		for _, s := range v.sessions {
			m.sendTo(ctx, msg, s.jid)
		}
	}
	m.metrics.messages.Add(ctx, 1, kindGroupchat)
	switch {
	case isSubject:
		r.Subject, r.SubjectBy = subject, o.nick
	case hasBody:
		m.keep(ctx, r, HistoryEntry{Nick: o.nick, ID: el.Attr("id"), StanzaID: sid, Payload: text + wire.Serialize(extra, 2048)})
	}
	return nil
}

// keep adds e, stamped now, to the history, within the room's length.
func (m *Module) keep(ctx context.Context, r *room, e HistoryEntry) {
	m.loadHistory(ctx, r)
	n := r.maxHistory(m.opts.HistoryLength)
	if n == 0 {
		r.History = nil
		return
	}
	e.Stamp = m.now()
	r.History = append(r.History, e)
	if over := len(r.History) - n; over > 0 {
		r.History = append(r.History[:0:0], r.History[over:]...)
	}
}

// private relays a message to the occupant nick (XEP-0045 §7.5), to each of
// its sessions, from the sender's room JID and marked with a muc#user <x/>.
func (m *Module) private(ctx context.Context, r *room, o *occupant, el *wire.Element, nick string) error {
	if el.Attr("type") == "groupchat" {
		return modules.StanzaError(stanza.Modify, stanza.BadRequest, "a private message is not of type groupchat")
	}
	if o == nil {
		return notOccupant
	}
	target := r.occupants[nick]
	if target == nil {
		return modules.StanzaError(stanza.Cancel, stanza.ItemNotFound, "no occupant has that nickname")
	}
	allowed := false
	switch r.Config.AllowPM {
	case PMAnyone:
		allowed = true
	case PMParticipants:
		allowed = o.role.rank() >= Participant.rank()
	case PMModerators:
		allowed = o.role == Moderator
	}
	if !allowed {
		return modules.StanzaError(stanza.Auth, stanza.Forbidden, "private messages are not allowed in this room")
	}
	payload, _, err := m.payloadOf(r, el)
	if err != nil {
		return err
	}
	msg := stanzaOf("message", occupantJID(r, o.nick), "", el.Attr("type"), el.Attr("id"))
	msg.Raw = payload
	msg = msg.Add(wire.Elem(nsUser, "x"), wire.Elem(nsOccupantID, "occupant-id", "id", o.id))
	for _, s := range target.sessions {
		m.sendTo(ctx, msg, s.jid)
	}
	m.metrics.messages.Add(ctx, 1, kindPrivate)
	return nil
}

// invite relays a mediated invitation (XEP-0045 §7.8.2) from the room to
// the invitee. In a members-only room only admins and owners may invite,
// and the invitee becomes a member.
func (m *Module) invite(ctx context.Context, r *room, o *occupant, from jid.JID, inv *wire.Element) error {
	if o == nil {
		return notOccupant
	}
	invitee, err := parseBare(inv.Attr("to"))
	if err != nil {
		return err
	}
	if r.Config.MembersOnly {
		if r.affiliation(o.bare.String()).rank() < Admin.rank() {
			return modules.StanzaError(stanza.Auth, stanza.Forbidden, "only admins and owners may invite to this members-only room")
		}
		if a := r.affiliation(invitee.String()); a.rank() < Member.rank() {
			if len(r.Affiliations) >= m.opts.MaxAffiliations {
				return modules.StanzaError(stanza.Wait, stanza.ResourceConstraint, "the room has too many affiliations")
			}
			next := r.State
			next.Affiliations = maps.Clone(r.Affiliations)
			next.Affiliations[invitee.String()] = Member
			if err := m.save(ctx, r, next); err != nil {
				return err
			}
			r.setAffiliation(invitee.String(), Member)
		}
	}
	reason, _ := textOf(inv, nsUser, "reason")
	invite := wire.Elem(nsUser, "invite", "from", from.String())
	if reason != "" {
		invite = invite.Add(wire.TextElem(nsUser, "reason", reason))
	}
	x := wire.Elem(nsUser, "x").Add(invite)
	if r.Config.Password != "" {
		x = x.Add(wire.TextElem(nsUser, "password", r.Config.Password))
	}
	body := from.Bare().String() + " invites you to the room " + r.jid.String()
	if reason != "" {
		body += ": " + reason
	}
	msg := stanzaOf("message", r.jid.String(), invitee.String(), "normal", "").
		Add(wire.TextElem(stanza.NSClient, "body", body), x)
	if err := m.h.Send(ctx, msg.Reader()); err != nil {
		return modules.StanzaError(stanza.Cancel, stanza.ItemNotFound, "the invitation cannot reach "+invitee.String())
	}
	return nil
}
