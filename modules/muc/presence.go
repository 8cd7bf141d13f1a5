package muc

import (
	"context"
	"crypto/subtle"
	"encoding/xml"
	"strconv"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/modules"
	"github.com/adhocd/adhocd/wire"
)

// Status codes of muc#user (XEP-0045 §15.6).
const (
	codeNonAnonymous = "100"
	codeConfigChange = "104"
	codeSelf         = "110"
	codeNowNonAnon   = "172"
	codeNowSemiAnon  = "173"
	codeCreated      = "201"
	codeBanned       = "301"
	codeNickChange   = "303"
	codeKicked       = "307"
	codeAffiliation  = "321"
	codeMembersOnly  = "322"
)

// handlePresence is a session's presence to a room: entering, a change of
// presence or of nickname, or leaving (XEP-0045 §7.2, §7.6, §7.7, §7.14).
func (m *Module) handlePresence(ctx context.Context, from jid.JID, el *wire.Element, to jid.JID) error {
	if to.Localpart() == "" {
		return nil // presence to the service itself means nothing
	}
	switch el.Attr("type") {
	case "":
		if to.Resourcepart() == "" {
			return modules.StanzaError(stanza.Modify, stanza.JIDMalformed, "a room is entered with a nickname: room@service/nick")
		}
		return m.available(ctx, from, el, to)
	case "unavailable":
		if r := m.lookup(to.Localpart()); r != nil {
			defer r.mu.Unlock()
			m.leave(ctx, r, from, el)
		}
	}
	return nil
}

// presenceOpts is how an occupant's presence is rendered.
type presenceOpts struct {
	// typ is "" or "unavailable".
	typ string
	// codes are status codes for everyone, selfCodes for the occupant's own
	// sessions only (110 is added for them).
	codes, selfCodes []string
	// inner, when set, replaces the primary session's presence children.
	inner []xml.Token
	// nick is the item's nick (a nickname change, 303); actor and reason
	// are the item's children (kick, ban).
	nick, actor, reason string
	// destroy is the <destroy/> of a destroyed room.
	destroy *wire.Node
}

// render is o's presence as viewer sees it: with o's real JID when the
// room is non-anonymous, when viewer is a moderator or is o.
func (m *Module) render(r *room, o, viewer *occupant, po presenceOpts) wire.Node {
	p := stanzaOf("presence", occupantJID(r, o.nick), "", po.typ, "")
	if po.inner != nil {
		p.Raw = po.inner
	} else {
		p.Raw = o.primary().presence
	}
	real := ""
	if r.nonAnonymous() || viewer == o || viewer.role == Moderator {
		real = o.primary().jid.String()
	}
	item := wire.Elem(nsUser, "item", "affiliation", string(r.affiliation(o.bare.String())), "jid", real, "nick", po.nick, "role", string(o.role))
	if po.actor != "" {
		item = item.Add(wire.Elem(nsUser, "actor", "nick", po.actor))
	}
	if po.reason != "" {
		item = item.Add(wire.TextElem(nsUser, "reason", po.reason))
	}
	x := wire.Elem(nsUser, "x").Add(item)
	if po.destroy != nil {
		x = x.Add(*po.destroy)
	}
	x = x.Add(statusNodes(po.codes...)...)
	if viewer == o {
		x = x.Add(statusNodes(po.selfCodes...)...)
		x = x.Add(statusNodes(codeSelf)...)
	}
	p = p.Add(x, wire.Elem(nsOccupantID, "occupant-id", "id", o.id))
	return p
}

// broadcast sends o's presence to every session of every occupant (o's
// own with 110).
func (m *Module) broadcast(ctx context.Context, r *room, o *occupant, po presenceOpts) {
	for _, v := range r.list() {
		n := m.render(r, o, v, po)
		for _, s := range v.sessions {
			m.sendTo(ctx, n, s.jid)
		}
	}
}

// toSelf sends o's presence to o's sessions alone.
func (m *Module) toSelf(ctx context.Context, r *room, o *occupant, po presenceOpts) {
	n := m.render(r, o, o, po)
	for _, s := range o.sessions {
		m.sendTo(ctx, n, s.jid)
	}
}

// available handles available presence to room/nick: entering (and
// creating the room), a new presence, or a new nickname.
func (m *Module) available(ctx context.Context, from jid.JID, el *wire.Element, to jid.JID) error {
	r, created, err := m.open(to.Localpart(), from)
	if err != nil {
		return err
	}
	defer r.mu.Unlock()
	nick := to.Resourcepart()
	if o := r.occupantOf(from); o != nil {
		if !m.allow(ctx, o) {
			return tooFast
		}
		s := o.session(from)
		s.presence = without(el.Inner, mucChild)
		if o.nick == nick {
			o.touch(s)
			m.broadcast(ctx, r, o, presenceOpts{})
			return nil
		}
		return m.changeNick(ctx, r, o, from, nick)
	}
	err = m.enter(ctx, r, from, el, nick, created)
	if err != nil && created {
		m.destroy(r)
	}
	return err
}

// enter lets from in as nick, if the room's rules let it (XEP-0045 §7.2),
// and sends it the room: the others' presence, its own last, the history,
// the subject.
func (m *Module) enter(ctx context.Context, r *room, from jid.JID, el *wire.Element, nick string, created bool) error {
	bare := from.Bare()
	aff := r.affiliation(bare.String())
	x := el.Sub(xml.Name{Space: nsMUC, Local: "x"})
	existing := r.occupants[nick]
	switch {
	case r.Locked && aff != Owner:
		return modules.StanzaError(stanza.Cancel, stanza.ItemNotFound, "the room is locked until its owner configures it")
	case aff == Outcast:
		return modules.StanzaError(stanza.Auth, stanza.Forbidden, "you are banned from this room")
	case r.Config.MembersOnly && aff.rank() < Member.rank():
		return modules.StanzaError(stanza.Auth, stanza.RegistrationRequired, "the room is members-only")
	case r.Config.Password != "" && aff.rank() < Admin.rank() && !passwordOK(x, r.Config.Password):
		return modules.StanzaError(stanza.Auth, stanza.NotAuthorized, "the room is password-protected")
	case existing != nil && !existing.bare.Equal(bare):
		return modules.StanzaError(stanza.Cancel, stanza.Conflict, "that nickname is in use in the room")
	case existing != nil && len(existing.sessions) >= maxSessions:
		return modules.StanzaError(stanza.Wait, stanza.ResourceConstraint, "too many sessions share this nickname")
	case existing == nil && len(r.occupants) >= m.opts.MaxOccupants,
		existing == nil && len(r.occupants) >= r.Config.MaxUsers && aff.rank() < Admin.rank():
		return modules.StanzaError(stanza.Wait, stanza.ServiceUnavailable, "the room is full")
	}
	s := &occSession{jid: from, presence: without(el.Inner, mucChild)}
	o := existing
	if o == nil {
		o = &occupant{nick: nick, bare: bare, role: r.roleFor(aff), id: m.occupantID(r.jid, bare)}
		r.addOccupant(o)
	}
	o.sessions = append(o.sessions, s)
	// The others' presence to the newcomer.
	for _, other := range r.list() {
		if other != o {
			m.sendTo(ctx, m.render(r, other, o, presenceOpts{}), from)
		}
	}
	// The newcomer's to everyone, its own sessions last so that the
	// newcomer's self-presence ends the list.
	var self []string
	if r.nonAnonymous() {
		self = append(self, codeNonAnonymous)
	}
	if created {
		self = append(self, codeCreated)
	}
	for _, v := range r.list() {
		if v == o {
			continue
		}
		n := m.render(r, o, v, presenceOpts{})
		for _, vs := range v.sessions {
			m.sendTo(ctx, n, vs.jid)
		}
	}
	m.toSelf(ctx, r, o, presenceOpts{selfCodes: self})
	m.sendHistory(ctx, r, from, historyLimitOf(x, m.now()))
	m.sendSubject(ctx, r, from)
	return nil
}

// passwordOK reports whether the join's <x/> carries the room's password.
func passwordOK(x *wire.Element, want string) bool {
	if x == nil {
		return false
	}
	got, _ := x.Text(xml.Name{Space: nsMUC, Local: "password"})
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// changeNick gives o a new nickname (XEP-0045 §7.6): the others see it
// leave with 303 and the new nick, then come back. An occupant with several
// sessions cannot change it (one session would leave the others behind);
// such a request is not-acceptable.
func (m *Module) changeNick(ctx context.Context, r *room, o *occupant, from jid.JID, nick string) error {
	if r.occupants[nick] != nil {
		return modules.StanzaError(stanza.Cancel, stanza.Conflict, "that nickname is in use in the room")
	}
	if len(o.sessions) > 1 {
		return modules.StanzaError(stanza.Modify, stanza.NotAcceptable, "leave from your other sessions before changing your nickname")
	}
	m.broadcast(ctx, r, o, presenceOpts{typ: "unavailable", codes: []string{codeNickChange}, nick: nick, inner: []xml.Token{}})
	r.removeOccupant(o.nick)
	o.nick = nick
	r.addOccupant(o)
	m.broadcast(ctx, r, o, presenceOpts{})
	return nil
}

// leave handles the unavailable presence of from: its session leaves; the
// occupant with it when it was the last one (XEP-0045 §7.14). A temporary
// room left empty is destroyed.
func (m *Module) leave(ctx context.Context, r *room, from jid.JID, el *wire.Element) {
	o := r.occupantOf(from)
	if o == nil {
		return
	}
	inner := without(el.Inner, mucChild)
	if len(o.sessions) > 1 {
		// One session of several: it hears itself leave, the others see
		// the occupant's presence as its remaining sessions show it.
		role := o.role
		o.role = RoleNone
		n := m.render(r, o, o, presenceOpts{typ: "unavailable", inner: inner})
		o.role = role
		o.dropSession(from)
		m.sendTo(ctx, n, from)
		m.broadcast(ctx, r, o, presenceOpts{})
		return
	}
	o.role = RoleNone
	m.broadcast(ctx, r, o, presenceOpts{typ: "unavailable", inner: inner})
	r.removeOccupant(o.nick)
	m.destroyIfIdle(r)
}

// remove takes every session of o out of the room after a kick, a ban or
// a change that excludes it, with codes and why; everyone sees it go.
func (m *Module) remove(ctx context.Context, r *room, o *occupant, codes []string, actor, reason string) {
	o.role = RoleNone
	m.broadcast(ctx, r, o, presenceOpts{typ: "unavailable", codes: codes, actor: actor, reason: reason, inner: []xml.Token{}})
	r.removeOccupant(o.nick)
}

// historyLimit is what a joining client asks of the history (XEP-0045
// §7.2.15); negative counts are no bound.
type historyLimit struct {
	maxStanzas, maxChars int
	since                time.Time
}

// historyLimitOf reads <history/> in the join's <x/>.
func historyLimitOf(x *wire.Element, now time.Time) historyLimit {
	l := historyLimit{maxStanzas: -1, maxChars: -1}
	if x == nil {
		return l
	}
	h := x.Sub(xml.Name{Space: nsMUC, Local: "history"})
	if h == nil {
		return l
	}
	num := func(name string) int {
		v, err := strconv.Atoi(h.Attr(name))
		if err != nil || v < 0 {
			return -1
		}
		return v
	}
	l.maxStanzas, l.maxChars = num("maxstanzas"), num("maxchars")
	if s := num("seconds"); s >= 0 {
		l.since = now.Add(-time.Duration(s) * time.Second)
	}
	if t, err := time.Parse(time.RFC3339, h.Attr("since")); err == nil && t.After(l.since) {
		l.since = t
	}
	return l
}

// sendHistory sends to the kept messages that limit allows, oldest first,
// each with a XEP-0203 delay from the room. maxchars counts each message's
// payload and the attributes the room writes, close to the characters of
// the stanza as sent.
func (m *Module) sendHistory(ctx context.Context, r *room, to jid.JID, limit historyLimit) {
	m.loadHistory(ctx, r)
	if ret := m.opts.ArchiveRetention; ret > 0 && r.archiving() && limit.since.Before(m.now().Add(-ret)) {
		// What the archive no longer holds is not history either.
		limit.since = m.now().Add(-ret)
	}
	first := len(r.History)
	chars := 0
	for i := len(r.History) - 1; i >= 0; i-- {
		e := r.History[i]
		if limit.maxStanzas >= 0 && len(r.History)-i > limit.maxStanzas {
			break
		}
		if !limit.since.IsZero() && e.Stamp.Before(limit.since) {
			break
		}
		chars += len(e.Payload) + len(occupantJID(r, e.Nick)) + len(to.String()) + 150
		if limit.maxChars >= 0 && chars > limit.maxChars {
			break
		}
		first = i
	}
	for _, e := range r.History[first:] {
		msg := stanzaOf("message", occupantJID(r, e.Nick), "", "groupchat", e.ID)
		msg.Raw = wire.Parse(e.Payload)
		msg = msg.Add(wire.Elem(nsDelay, "delay", "from", r.jid.String(), "stamp", modules.Stamp(e.Stamp)))
		m.sendTo(ctx, msg, to)
	}
}

// sendSubject sends the subject, empty when none was set, from who set it
// (XEP-0045 §7.2.16): the end of the room's history.
func (m *Module) sendSubject(ctx context.Context, r *room, to jid.JID) {
	from := r.jid.String()
	if r.SubjectBy != "" {
		from = occupantJID(r, r.SubjectBy)
	}
	msg := stanzaOf("message", from, "", "groupchat", "")
	msg = msg.Add(wire.TextElem(stanza.NSClient, "subject", r.Subject))
	m.sendTo(ctx, msg, to)
}
